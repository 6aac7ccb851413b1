"""Model formulas and term lists: a closed grammar, parsed and never evaluated.

A formula such as ``~ sex + age_class + C(region) + log(days) + I(age ** 2)`` is read by a
small tokenizer and a recursive-descent parser into a tree; anything outside the grammar — an
attribute (``a.b``), a subscript, a string, a lambda, a dunder name, a call of a function not
in the whitelist — is a :class:`~recapture.errors.ConfigError` naming the offending token and
its position. The validated tree is rendered back into a canonical string in which every name
is a column of the data (checked before any design is built) and every call is one of ``C``,
``log`` or ``I``; only that string reaches formulaic. This keeps formulaic's treatment coding
and column names — so estimates are unchanged — while no user text is ever evaluated: formulaic
evaluates Python, and with the raw string a pipeline.toml could run a shell command.

Grammar (``NAME`` is ``[A-Za-z_][A-Za-z0-9_]*`` without a leading ``__``)::

    formula  := [NAME] '~' sum | sum
    sum      := product (('+' | '-') product)*
    product  := power (('*' | '/' | ':') power)*
    power    := atom ['**' INTEGER]
    atom     := NAME | '0' | '1' | '(' sum ')'
              | 'C' '(' NAME ')' | 'log' '(' NAME ')' | 'I' '(' arith ')'
    arith    := aterm (('+' | '-') aterm)*
    aterm    := unary (('*' | '/') unary)*
    unary    := ('+' | '-') unary | apow
    apow     := aatom ['**' unary]
    aatom    := NAME | NUMBER | '(' arith ')'

Log-linear models use the same tokens (:func:`parse_generators`): a sum of products of
names with ``:``/``*``, ``(A + B + C)^2`` for all interactions up to order 2, or generating
classes in brackets (``[AB][C]``, ``[A,B][C]``).
"""

from __future__ import annotations

import itertools
import keyword
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from recapture.errors import ConfigError

__all__ = [
    "MAX_FORMULA_LENGTH",
    "Formula",
    "check_name",
    "check_names",
    "parse_formula",
    "parse_generators",
]

#: longer texts are refused before parsing (a formula is a line, not a program)
MAX_FORMULA_LENGTH = 2000
_MAX_DEPTH = 50

NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER_RE = re.compile(r"(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_OPERATORS = ("**", "~", "+", "-", "*", "/", ":", "(", ")", "^", "[", "]", ",")
TRANSFORMS = ("C", "log", "I")


@dataclass(frozen=True)
class Token:
    kind: str  # "name", "number", "op", "end"
    text: str
    pos: int  # 1-based character position in the text


def _fail(text: str, key: str, message: str, pos: int | None = None) -> ConfigError:
    where = f" at position {pos}" if pos is not None else ""
    shown = text if len(text) <= 120 else text[:117] + "..."
    return ConfigError(f"{message}{where} in {shown!r}", key=key)


def _describe(ch: str) -> str:
    if ch == ".":
        return "attribute access '.' is not allowed"
    if ch in "'\"":
        return "string literals are not allowed"
    if ch == "{" or ch == "}":
        return "braces are not allowed"
    if ch == "`":
        return "quoted names are not allowed"
    return f"unexpected character {ch!r}"


def tokenize(text: str, key: str = "formula") -> list[Token]:
    """Split ``text`` into names, numbers and operators; anything else is refused."""
    if not isinstance(text, str):
        raise ConfigError(f"expected a formula string, got {type(text).__name__}", key=key)
    if len(text) > MAX_FORMULA_LENGTH:
        raise ConfigError(
            f"formula longer than {MAX_FORMULA_LENGTH} characters ({len(text)})", key=key
        )
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in " \t\r\n":
            i += 1
            continue
        m = NAME_RE.match(text, i)
        if m:
            word = m.group()
            if word.startswith("__"):
                raise _fail(text, key, f"dunder name {word!r} is not allowed", i + 1)
            if keyword.iskeyword(word):
                raise _fail(text, key, f"Python keyword {word!r} is not allowed", i + 1)
            tokens.append(Token("name", word, i + 1))
            i = m.end()
            continue
        m = _NUMBER_RE.match(text, i)
        if m and (ch.isdigit() or (ch == "." and i + 1 < n and text[i + 1].isdigit())):
            tokens.append(Token("number", m.group(), i + 1))
            i = m.end()
            if i < n and (NAME_RE.match(text, i) or text[i] == "."):
                raise _fail(text, key, f"unexpected {text[i]!r} after a number", i + 1)
            continue
        for op in _OPERATORS:
            if text.startswith(op, i):
                tokens.append(Token("op", op, i + 1))
                i += len(op)
                break
        else:
            raise _fail(text, key, _describe(ch), i + 1)
    tokens.append(Token("end", "", n + 1))
    return tokens


class _Parser:
    def __init__(self, text: str, key: str):
        self.text, self.key = text, key
        self.tokens = tokenize(text, key)
        self.i = 0
        self.depth = 0

    # -------------------------------------------------------------- helpers
    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def error(self, message: str, tok: Token | None = None) -> ConfigError:
        tok = tok or self.tok
        return _fail(self.text, self.key, message, tok.pos)

    def unexpected(self) -> ConfigError:
        tok = self.tok
        if tok.kind == "end":
            return self.error("unexpected end of formula")
        return self.error(f"unexpected {tok.text!r}")

    def accept(self, op: str) -> bool:
        if self.tok.kind == "op" and self.tok.text == op:
            self.i += 1
            return True
        return False

    def expect(self, op: str) -> None:
        if not self.accept(op):
            raise self.error(
                f"expected {op!r}, found {self.tok.text!r}"
                if self.tok.kind != "end"
                else f"expected {op!r} before the end"
            )

    def enter(self) -> None:
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise self.error(f"formula nested deeper than {_MAX_DEPTH} levels")

    # -------------------------------------------------------------- formula
    def formula(self) -> tuple[str | None, str]:
        response = None
        if (
            self.tok.kind == "name"
            and self.tokens[self.i + 1].kind == "op"
            and self.tokens[self.i + 1].text == "~"
        ):
            response = self.tok.text
            self.i += 1
        self.accept("~")
        if self.tok.kind == "end":
            raise self.error("empty formula (use '~ 1' for an intercept only)")
        body = self.sum()
        if self.tok.kind != "end":
            raise self.unexpected()
        return response, body

    def sum(self) -> str:
        self.enter()
        out = self.product()
        while self.tok.kind == "op" and self.tok.text in "+-":
            op = self.tok.text
            self.i += 1
            out += f" {op} {self.product()}"
        self.depth -= 1
        return out

    def product(self) -> str:
        out = self.power()
        while self.tok.kind == "op" and self.tok.text in ("*", "/", ":"):
            op = self.tok.text
            self.i += 1
            right = self.power()
            out = f"{out}{op}{right}" if op == ":" else f"{out} {op} {right}"
        return out

    def power(self) -> str:
        out = self.atom()
        if self.accept("**"):
            tok = self.tok
            if tok.kind != "number" or not tok.text.isdigit() or int(tok.text) < 1:
                raise self.error("'**' in a formula takes a positive integer")
            self.i += 1
            out = f"{out} ** {int(tok.text)}"
        return out

    def atom(self) -> str:
        tok = self.tok
        if tok.kind == "number":
            if tok.text not in ("0", "1"):
                raise self.error(
                    f"number {tok.text!r} outside I(...) (only 0 and 1, for the intercept)"
                )
            self.i += 1
            return tok.text
        if tok.kind == "op" and tok.text == "(":
            self.i += 1
            inner = self.sum()
            self.expect(")")
            return f"({inner})"
        if tok.kind == "name":
            self.i += 1
            if self.tok.kind == "op" and self.tok.text == "(":
                return self.call(tok)
            self.names.append(tok.text)
            return tok.text
        raise self.unexpected()

    def call(self, fn: Token) -> str:
        if fn.text not in TRANSFORMS:
            raise self.error(
                f"function {fn.text!r} is not allowed (allowed: C(column), log(column), I(...))",
                fn,
            )
        self.expect("(")
        if fn.text == "I":
            self.enter()
            inner = self.arith()
            self.depth -= 1
        else:
            tok = self.tok
            if tok.kind != "name":
                raise self.error(f"{fn.text}(...) takes one column name")
            self.i += 1
            self.names.append(tok.text)
            inner = tok.text
            if self.tok.kind == "op" and self.tok.text == ",":
                hint = (
                    "; give reference levels with reference= (--reference VAR=LEVEL)"
                    if fn.text == "C"
                    else ""
                )
                raise self.error(f"{fn.text}(...) takes exactly one column name{hint}")
        self.expect(")")
        return f"{fn.text}({inner})"

    # -------------------------------------------------------------- arithmetic inside I()
    def arith(self) -> str:
        out = self.aterm()
        while self.tok.kind == "op" and self.tok.text in "+-":
            op = self.tok.text
            self.i += 1
            out += f" {op} {self.aterm()}"
        return out

    def aterm(self) -> str:
        out = self.unary()
        while self.tok.kind == "op" and self.tok.text in ("*", "/"):
            op = self.tok.text
            self.i += 1
            out += f" {op} {self.unary()}"
        return out

    def unary(self) -> str:
        if self.tok.kind == "op" and self.tok.text in "+-":
            op = self.tok.text
            self.i += 1
            self.enter()
            out = f"{op}{self.unary()}"
            self.depth -= 1
            return out
        return self.apow()

    def apow(self) -> str:
        out = self.aatom()
        if self.accept("**"):
            out = f"{out} ** {self.unary()}"
        return out

    def aatom(self) -> str:
        tok = self.tok
        if tok.kind == "number":
            self.i += 1
            return tok.text
        if tok.kind == "name":
            self.i += 1
            if self.tok.kind == "op" and self.tok.text == "(":
                raise self.error(f"calls are not allowed inside I(...): {tok.text!r}", tok)
            self.names.append(tok.text)
            return tok.text
        if self.accept("("):
            self.enter()
            inner = self.arith()
            self.depth -= 1
            self.expect(")")
            return f"({inner})"
        raise self.unexpected()

    names: list[str]


@dataclass(frozen=True)
class Formula:
    """A validated formula: ``text`` the canonical right-hand side (``~ ...``) and
    ``variables`` the column names it uses, in order of first appearance."""

    text: str
    variables: tuple[str, ...]
    response: str | None = None


def parse_formula(text: str, key: str = "formula") -> Formula:
    """Parse a model formula of the closed grammar (module docstring) without evaluating it."""
    parser = _Parser(text, key)
    parser.names = []
    response, body = parser.formula()
    return Formula(
        text=f"~ {body}", variables=tuple(dict.fromkeys(parser.names)), response=response
    )


# ------------------------------------------------------------------------------ names
def check_name(name: object, key: str) -> str:
    """A single column or list name of the grammar (``NAME``), returned stripped."""
    if not isinstance(name, str):
        raise ConfigError(f"expected a column name, got {type(name).__name__}", key=key)
    text = name.strip()
    m = NAME_RE.fullmatch(text)
    if not m or text.startswith("__") or keyword.iskeyword(text):
        bad = NAME_RE.match(text)
        pos = (bad.end() if bad else 0) + 1
        reason = (
            "dunder names are not allowed"
            if text.startswith("__")
            else "Python keywords are not allowed"
            if m
            else "not a column name"
        )
        raise _fail(text, key, reason, pos if m is None else None)
    return text


def check_names(names: Iterable[object], key: str) -> list[str]:
    return [check_name(n, key) for n in names]


# ------------------------------------------------------------------------------ log-linear
def parse_generators(
    model: str, variables: Sequence[str], key: str = "model"
) -> list[frozenset[str]]:
    """Generators of a hierarchical log-linear model written as a formula (``A*B + C``,
    ``A + B + A:B``, ``(A+B+C)^2``) or as generating classes (``[AB][C]``, ``[A,B][C]``).

    Names must be variables (lists or covariates) of the table; single-letter variables may
    be run together inside brackets. Nothing is evaluated.
    """
    tokens = tokenize(model, key)
    known = set(variables)

    def unknown(tok: Token) -> ConfigError:
        return _fail(
            model,
            key,
            f"unknown variable {tok.text!r}; known: {', '.join(variables)}",
            tok.pos,
        )

    if any(t.kind == "op" and t.text == "[" for t in tokens):
        return _bracket_generators(model, tokens, known, key, unknown)
    p = _Parser.__new__(_Parser)
    p.text, p.key, p.tokens, p.i, p.depth = model, key, tokens, 0, 0

    def gsum() -> list[frozenset[str]]:
        p.enter()
        out = gproduct()
        while p.accept("+"):
            out = out + gproduct()
        p.depth -= 1
        return out

    def gproduct() -> list[frozenset[str]]:
        out = gfactor()
        while p.tok.kind == "op" and p.tok.text in (":", "*"):
            p.i += 1
            right = gfactor()
            out = [a | b for a in out for b in right]
        return out

    def gfactor() -> list[frozenset[str]]:
        tok = p.tok
        if tok.kind == "name":
            if tok.text not in known:
                raise unknown(tok)
            p.i += 1
            return [frozenset([tok.text])]
        if p.accept("("):
            inner = gsum()
            p.expect(")")
            if p.accept("^"):
                deg = p.tok
                if deg.kind != "number" or not deg.text.isdigit() or int(deg.text) < 1:
                    raise p.error("'^' takes a positive integer")
                p.i += 1
                names = sorted(set().union(*inner), key=list(variables).index)
                return [
                    frozenset(c)
                    for r in range(1, min(int(deg.text), len(names)) + 1)
                    for c in itertools.combinations(names, r)
                ]
            return inner
        raise p.unexpected()

    if tokens[0].kind == "end":
        return []
    gens = gsum()
    if p.tok.kind != "end":
        raise p.unexpected()
    return gens


def _bracket_generators(model, tokens, known, key, unknown) -> list[frozenset[str]]:
    gens: list[frozenset[str]] = []
    i = 0
    while tokens[i].kind != "end":
        tok = tokens[i]
        if not (tok.kind == "op" and tok.text == "["):
            raise _fail(model, key, f"expected '[', found {tok.text!r}", tok.pos)
        i += 1
        names: set[str] = set()
        while not (tokens[i].kind == "op" and tokens[i].text == "]"):
            t = tokens[i]
            if t.kind == "name":
                if t.text in known:
                    names.add(t.text)
                elif all(ch in known for ch in t.text):
                    names.update(t.text)  # [AB]: single-letter variables run together
                else:
                    raise unknown(t)
            elif not (t.kind == "op" and t.text in (",", ":", "*")):
                what = "end of model" if t.kind == "end" else repr(t.text)
                raise _fail(model, key, f"unexpected {what} inside [...]", t.pos)
            i += 1
        i += 1
        gens.append(frozenset(names))
    return gens
