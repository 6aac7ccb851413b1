"""Hostile and degenerate input to the estimators: formulas are parsed by a closed grammar
and never evaluated; implausible counts and degenerate tables are errors or flagged
non-estimates, never a 'converged' number."""

from __future__ import annotations

import builtins
import re
import subprocess
import sys
from unittest import mock

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recapture.errors import ConfigError
from recapture.estimators import ZeroTruncatedPoisson, estimate
from recapture.estimators.formula import parse_formula, parse_generators

EXPLOIT = (
    "~ {n_iom.__class__.__init__.__globals__['__builtins__']['__import__']('os')"
    ".system('id > FILE') * 0 + n_iom}"
)
VARIANTS = [
    "~ sex.__class__",  # attribute access
    "~ sex[0]",  # subscript
    "~ (lambda: 0)()",  # lambda
    "~ __import__",  # dunder name
    "~ I(__import__)",
    "~ I('os')",  # string literal
    '~ C(sex, "a")',
    "~ eval(sex)",  # calls of functions not in the whitelist
    "~ open(sex)",
    "~ np.log(n_iom)",
    "~ I(exec(sex))",
    "~ log(sex, 2)",
    "~ C(sex, contr.treatment('F'))",
    "~ sex; import os",
    "~ {sex}",
    "~ sex if 1 else 0",
    "~ `sex`",
    "~ sex @ n_iom",
    "~ sex +",
    "~ 2",
]


@pytest.fixture()
def persons() -> pl.DataFrame:
    rng = np.random.default_rng(0)
    n = 400
    return pl.DataFrame(
        {
            "n_police": rng.poisson(0.8, n) + 1,
            "n_iom": rng.poisson(0.3, n),
            "sex": rng.choice(["F", "M"], n),
            "in_police": np.ones(n, dtype=int),
            "in_iom": (rng.random(n) < 0.3).astype(int),
        }
    )


@pytest.fixture()
def no_eval(monkeypatch):
    """Evaluating anything during the test fails it."""

    def refuse(*args, **kwargs):
        raise AssertionError("user text reached eval/exec")

    monkeypatch.setattr(builtins, "eval", refuse)
    monkeypatch.setattr(builtins, "exec", refuse)


# ------------------------------------------------------------------------------ formulas
def test_the_exploit_is_refused_and_runs_nothing(persons, tmp_path, no_eval):
    target = tmp_path / "pwned"
    formula = EXPLOIT.replace("FILE", str(target))
    with pytest.raises(ConfigError) as exc:
        estimate(persons, "ztpoisson", formula=formula, count="n_police")
    assert exc.value.key == "formula" and "position" in str(exc.value)
    assert "\n" not in str(exc.value)
    assert not target.exists()


@pytest.mark.parametrize("formula", VARIANTS)
def test_formula_variants_are_refused_naming_the_token(persons, formula, no_eval):
    with pytest.raises(ConfigError) as exc:
        estimate(persons, "ztpoisson", formula=formula, count="n_police")
    assert "position" in str(exc.value)
    with pytest.raises(ConfigError):
        ZeroTruncatedPoisson("~ 1", omega_formula=formula)  # the second predictor as well


@pytest.mark.parametrize(
    "option",
    [
        {"terms": "__import__('os').system('id')"},
        {"terms": "[in_police.__class__][in_iom]"},
        {"terms": "in_police:in_iom + eval"},
        {"covariates": "sex.__class__"},
        {"covariates": "__class__"},
        {"passive": "sex=in_iom.__class__"},
    ],
)
def test_loglinear_terms_and_names_use_the_same_grammar(persons, option, no_eval):
    with pytest.raises(ConfigError):
        estimate(persons, "loglinear", lists="in_police,in_iom", **option)


def test_strata_and_offset_names_use_the_same_grammar(persons, no_eval):
    with pytest.raises(ConfigError):
        estimate(persons, "chapman", lists="in_police,in_iom", strata="sex.x")
    with pytest.raises(ConfigError):
        ZeroTruncatedPoisson("~ sex", strata=["sex", "__dict__"])
    with pytest.raises(ConfigError):
        ZeroTruncatedPoisson("~ sex", offset="os.system")


def test_grammar_keeps_what_models_need():
    f = parse_formula("capture ~ sex*age + C(region) + log(days) + I(age ** 2 - 1) - 1")
    assert f.text == "~ sex * age + C(region) + log(days) + I(age ** 2 - 1) - 1"
    assert f.variables == ("sex", "age", "region", "days")
    gens = parse_generators("(A + B + C)^2 + C:D", ["A", "B", "C", "D"])
    assert frozenset("AB") in gens and frozenset("CD") in gens
    assert parse_generators("[AB][C]", list("ABC")) == [frozenset("AB"), frozenset("C")]


def test_cli_refuses_the_exploit_in_one_line(persons, tmp_path):
    data = tmp_path / "persons.parquet"
    persons.write_parquet(data)
    target = tmp_path / "pwned"
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "recapture",
            "--quiet",
            "estimate",
            str(data),
            "--model",
            "ztpoisson",
            "--count-col",
            "n_police",
            "--formula",
            EXPLOIT.replace("FILE", str(target)),
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr
    assert "formula" in lines[0] and "position" in lines[0]
    assert not target.exists()


_ALPHABET = st.sampled_from(
    list("abcxyz_019 ~+-*/:()^[],.'\"{}@!;=<>`\\\n")
    + ["sex", "log", "C", "I", "**", "__", "lambda", "import", "os", "eval("]
)


@settings(max_examples=300, deadline=500)  # ms per example: the parser is bounded
@given(pieces=st.lists(_ALPHABET, max_size=60), raw=st.text(max_size=80))
def test_fuzz_the_parser_parses_or_refuses_and_never_evaluates(pieces, raw):
    def refuse(*args, **kwargs):
        raise AssertionError("the parser evaluated its input")

    for text in ("".join(pieces), raw, "~ " + "".join(pieces)):
        with (
            mock.patch.object(builtins, "eval", refuse),
            mock.patch.object(builtins, "exec", refuse),
            mock.patch.object(builtins, "compile", refuse),
        ):
            try:
                f = parse_formula(text)
            except ConfigError as exc:
                assert "\n" not in str(exc).split(" in ", 1)[0]
                f = None
            try:
                parse_generators(text, ["a", "b", "c", "sex"])
            except ConfigError:
                pass
        if f is not None:
            # what passes is re-rendered from names, numbers and whitelisted calls only
            assert re.fullmatch(r"~ [A-Za-z0-9_ +\-*/:().]*", f.text), f.text
            assert not re.search(r"(?<![A-Za-z0-9_])__", f.text)  # no dunder name
            assert parse_formula(f.text).text == f.text  # the canonical form is a fixed point


def test_pipeline_toml_formula_is_refused_and_runs_nothing(tmp_path):
    from recapture.errors import RecaptureError
    from recapture.pipelines.run import run_pipeline
    from recapture.synthetic import SimulationConfig, run_simulation

    run_simulation(SimulationConfig(size=1_500, seed=3), tmp_path / "world")
    target = tmp_path / "pwned"
    formula = EXPLOIT.replace("FILE", str(target)).replace("'", "\\u0027")
    (tmp_path / "pipeline.toml").write_text(
        f"""
[run]
dir = "run"
seed = 1
as_of = "2019-01-01"

[[sources]]
path = "world/police.csv"
definition = "police"

[[sources]]
path = "world/iom.csv"
definition = "iom"

[[periods]]
start = 2017-07-01
end = 2018-06-30
label = "2017/18"

[[estimators]]
name = "ztp"
model = "ztpoisson"
formula = "{formula}"
count = "n_police"

[reports]
enabled = false
""",
        encoding="utf-8",
    )
    with pytest.raises(RecaptureError) as exc:
        run_pipeline(tmp_path / "pipeline.toml")
    assert "formula" in str(exc.value)
    assert not target.exists()
