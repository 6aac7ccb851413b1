"""Source definitions: how one extract layout maps onto the canonical record.

A source definition is a small TOML file (see ``docs/validation.md``): which extract column
holds which canonical field, the file's delimiter and encoding, its date formats, its code
lists, and per check whether a failure quarantines the row (``error``), flags it
(``warning``) or is ignored. A new year's extract with renamed columns needs a new
definition, not new code. Built-in definitions (``police``, ``iom``) live in
``recapture/validation/sources/`` and are addressed by name; any other by path.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from recapture.errors import ConfigError
from recapture.loader import check_keys, parse_toml, read_toml
from recapture.validation.standardise import DEFAULT_SEX_CODES, check_date_format

__all__ = [
    "SourceDefinition",
    "load_source_definition",
    "builtin_definitions",
    "CANONICAL_FIELDS",
    "DEFAULT_POLICY",
    "SOURCE_KINDS",
    "DEFAULT_MAX_FILE_BYTES",
    "DEFAULT_MAX_LENGTHS",
]

#: Canonical input fields a definition can map, per kind of source.
CANONICAL_FIELDS: dict[str, tuple[str, ...]] = {
    "police": (
        "source_key",
        "family_name",
        "given_name",
        "birth_date",
        "sex",
        "nationality",
        "v_number",
        "event_date",
        "police_unit",
        "reason",
    ),
    "iom": (
        "source_key",
        "family_name",
        "given_name",
        "birth_date",
        "sex",
        "nationality",
        "v_number",
        "event_date",
        "client_category",
    ),
}
SOURCE_KINDS = tuple(CANONICAL_FIELDS)

#: Fields every definition of a kind must map (the rest may be absent from a layout).
REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {
    "police": ("event_date",),
    "iom": ("event_date", "client_category"),
}

#: Every check and what a failure does by default: "error" quarantines the row,
#: "warning" keeps it with the code in ``warnings``, "ignore" does nothing.
DEFAULT_POLICY: dict[str, str] = {
    "source_key.missing": "error",
    "source_key.format": "error",
    "source_key.duplicate": "error",
    "event_date.missing": "error",
    "event_date.unparseable": "error",
    "event_date.partial": "error",
    "event_date.future": "error",
    "event_date.two_digit_year": "warning",
    "birth_date.unparseable": "error",
    "birth_date.impossible": "error",
    "birth_date.future": "error",
    "birth_date.after_event": "error",
    "birth_date.age_over_max": "error",
    "birth_date.two_digit_year": "warning",
    "birth_date.missing": "ignore",
    "name.missing": "warning",
    "sex.unrecognised": "warning",
    "nationality.unrecognised": "warning",
    "v_number.invalid": "warning",
    "reason.unrecognised": "warning",
    "client_category.missing": "error",
    "client_category.unrecognised": "error",
    "police_unit.missing": "ignore",
}
_LEVELS = ("error", "warning", "ignore")

#: Largest extract file read (bytes) unless ``[limits] max_file_bytes`` says otherwise: a
#: bound on memory, so a mistaken path (a disk image, a dump) fails at once with one line.
DEFAULT_MAX_FILE_BYTES = 2 * 1024**3
#: Longest value (characters) of each canonical field unless ``[limits.max_length]`` says
#: otherwise; a longer value quarantines the row (``field.too_long``), so that string
#: comparisons in the linkage stay bounded.
DEFAULT_MAX_LENGTHS: dict[str, int] = {
    "source_key": 100,
    "family_name": 200,
    "given_name": 200,
    "birth_date": 50,
    "sex": 50,
    "nationality": 100,
    "v_number": 50,
    "event_date": 50,
    "police_unit": 200,
    "reason": 200,
    "client_category": 100,
}

DEFAULT_REASON_CODES: dict[str, list[str]] = {
    "immigration_check": ["immigration_check", "immigration check"],
    "criminal_offence": ["criminal_offence", "criminal offence"],
    "other": ["other"],
}


@dataclass(frozen=True)
class SourceDefinition:
    """A parsed, checked source definition (see ``docs/validation.md`` for every key)."""

    name: str
    kind: str
    columns: dict[str, str]
    origin: str = "<memory>"
    description: str = ""
    format: str = "auto"
    delimiter: str = ","
    quote_char: str = '"'
    encoding: str = "utf-8"
    fallback_encodings: tuple[str, ...] = ("cp1252", "latin-1")
    unknown_columns: str = "error"
    ignore_columns: tuple[str, ...] = ()
    source_key_pattern: str | None = None
    event_date_formats: tuple[str, ...] = ("%d-%m-%Y",)
    birth_date_formats: tuple[str, ...] = ("%d-%m-%Y",)
    max_age: int = 110
    sex_codes: dict[str, list[str]] = field(default_factory=lambda: dict(DEFAULT_SEX_CODES))
    reason_codes: dict[str, list[str]] = field(default_factory=lambda: dict(DEFAULT_REASON_CODES))
    client_categories_in_target: tuple[str, ...] = ()
    client_categories_not_in_target: tuple[str, ...] = ()
    nationality_aliases: dict[str, str] = field(default_factory=dict)
    policy: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_POLICY))
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    max_lengths: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_MAX_LENGTHS))

    def level(self, check: str) -> str:
        """Policy level of a check: 'error', 'warning' or 'ignore'."""
        return self.policy.get(check, "error")

    @property
    def extract_columns(self) -> list[str]:
        """Extract columns the definition expects to find in the file."""
        return list(self.columns.values())


_ALLOWED: dict[str, Any] = {
    "name": str,
    "kind": str,
    "description": str,
    "file": {
        "format": str,
        "delimiter": str,
        "quote_char": str,
        "encoding": str,
        "fallback_encodings": list,
        "unknown_columns": str,
        "ignore_columns": list,
    },
    "columns": dict,
    "source_key": {"pattern": str},
    "dates": {"event_date_formats": list, "birth_date_formats": list, "max_age": int},
    "codes": {"sex": dict, "reason": dict, "client_category": dict, "nationality": dict},
    "policy": dict,
    "limits": {"max_file_bytes": int, "max_length": dict},
}


def _check_keys(table: dict, allowed: dict, origin: str, prefix: str = "") -> None:
    check_keys(table, allowed, file=origin, prefix=prefix)


def _str_list(value: Any, origin: str, key: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError("must be a list of strings", file=origin, key=key)
    return list(value)


def parse_source_definition(data: dict, origin: str = "<memory>") -> SourceDefinition:
    """Build a :class:`SourceDefinition` from a parsed TOML table, naming any bad key."""
    _check_keys(data, _ALLOWED, origin)
    for key in ("name", "kind", "columns"):
        if key not in data:
            raise ConfigError("required key missing", file=origin, key=key)
    kind = data["kind"]
    if kind not in CANONICAL_FIELDS:
        raise ConfigError(f"must be one of {', '.join(SOURCE_KINDS)}", file=origin, key="kind")
    fields = CANONICAL_FIELDS[kind]
    columns: dict[str, str] = {}
    for canonical, extract_column in data["columns"].items():
        if canonical not in fields:
            raise ConfigError(
                f"unknown canonical field for a {kind} source (allowed: {', '.join(fields)})",
                file=origin,
                key=f"columns.{canonical}",
            )
        if not isinstance(extract_column, str) or not extract_column.strip():
            raise ConfigError(
                "must name an extract column", file=origin, key=f"columns.{canonical}"
            )
        columns[canonical] = extract_column.strip()
    if len(set(columns.values())) != len(columns):
        raise ConfigError(
            "two canonical fields map to the same extract column", file=origin, key="columns"
        )
    for required in REQUIRED_FIELDS[kind]:
        if required not in columns:
            raise ConfigError(
                f"a {kind} source must map '{required}'", file=origin, key=f"columns.{required}"
            )

    file = data.get("file", {})
    fmt = file.get("format", "auto")
    if fmt not in ("auto", "csv", "parquet"):
        raise ConfigError("must be 'auto', 'csv' or 'parquet'", file=origin, key="file.format")
    delimiter = file.get("delimiter", ",")
    if delimiter == "\\t":
        delimiter = "\t"
    if len(delimiter) != 1:
        raise ConfigError("must be one character", file=origin, key="file.delimiter")
    quote_char = file.get("quote_char", '"')
    if len(quote_char) != 1:
        raise ConfigError("must be one character", file=origin, key="file.quote_char")
    encoding = file.get("encoding", "utf-8")
    fallback = tuple(
        _str_list(
            file.get("fallback_encodings", ["cp1252", "latin-1"]), origin, "file.fallback_encodings"
        )
    )
    import codecs

    for i, enc in enumerate((encoding, *fallback)):
        if enc == "auto":
            continue
        try:
            codecs.lookup(enc)
        except LookupError:
            key = "file.encoding" if i == 0 else "file.fallback_encodings"
            raise ConfigError(f"unknown encoding {enc!r}", file=origin, key=key) from None
    unknown_columns = file.get("unknown_columns", "error")
    if unknown_columns not in ("error", "ignore"):
        raise ConfigError("must be 'error' or 'ignore'", file=origin, key="file.unknown_columns")

    dates = data.get("dates", {})
    date_formats = {}
    for key in ("event_date_formats", "birth_date_formats"):
        formats = _str_list(dates.get(key, ["%d-%m-%Y"]), origin, f"dates.{key}")
        if not formats:
            raise ConfigError("needs at least one format", file=origin, key=f"dates.{key}")
        for fmt_text in formats:
            try:
                check_date_format(fmt_text)
            except ValueError as exc:
                raise ConfigError(str(exc), file=origin, key=f"dates.{key}") from None
        date_formats[key] = tuple(formats)
    max_age = dates.get("max_age", 110)
    if not 1 <= max_age <= 150:
        raise ConfigError("must be between 1 and 150", file=origin, key="dates.max_age")

    codes = data.get("codes", {})
    sex_codes = _code_table(
        codes.get("sex"), ("M", "F", "unknown"), origin, "codes.sex", DEFAULT_SEX_CODES
    )
    reason_codes = _code_table(
        codes.get("reason"),
        ("immigration_check", "criminal_offence", "other"),
        origin,
        "codes.reason",
        DEFAULT_REASON_CODES,
    )
    categories = codes.get("client_category", {})
    for key in categories:
        if key not in ("in_target", "not_in_target"):
            raise ConfigError(
                "allowed: in_target, not_in_target", file=origin, key=f"codes.client_category.{key}"
            )
    in_target = tuple(
        _str_list(categories.get("in_target", []), origin, "codes.client_category.in_target")
    )
    not_in_target = tuple(
        _str_list(
            categories.get("not_in_target", []), origin, "codes.client_category.not_in_target"
        )
    )
    if kind == "iom" and not (in_target or not_in_target):
        raise ConfigError(
            "an iom source must list its client categories",
            file=origin,
            key="codes.client_category",
        )
    nationality = codes.get("nationality", {})
    for text, iso3 in nationality.items():
        if not isinstance(iso3, str) or len(iso3) != 3:
            raise ConfigError(
                "must map to an ISO 3166-1 alpha-3 code",
                file=origin,
                key=f"codes.nationality.{text}",
            )

    policy = dict(DEFAULT_POLICY)
    for check, level in data.get("policy", {}).items():
        if check not in DEFAULT_POLICY:
            raise ConfigError(
                f"unknown check (known: {', '.join(DEFAULT_POLICY)})",
                file=origin,
                key=f"policy.{check}",
            )
        if level not in _LEVELS:
            raise ConfigError(
                f"must be one of {', '.join(_LEVELS)}", file=origin, key=f"policy.{check}"
            )
        policy[check] = level

    pattern = data.get("source_key", {}).get("pattern")
    if pattern is not None:
        import re

        try:
            re.compile(pattern)
        except re.error as exc:
            raise ConfigError(
                f"not a regular expression: {exc}", file=origin, key="source_key.pattern"
            ) from None

    return SourceDefinition(
        name=data["name"],
        kind=kind,
        columns=columns,
        origin=origin,
        description=data.get("description", ""),
        format=fmt,
        delimiter=delimiter,
        quote_char=quote_char,
        encoding=encoding,
        fallback_encodings=fallback,
        unknown_columns=unknown_columns,
        ignore_columns=tuple(
            _str_list(file.get("ignore_columns", []), origin, "file.ignore_columns")
        ),
        source_key_pattern=pattern,
        event_date_formats=date_formats["event_date_formats"],
        birth_date_formats=date_formats["birth_date_formats"],
        max_age=max_age,
        sex_codes=sex_codes,
        reason_codes=reason_codes,
        client_categories_in_target=in_target,
        client_categories_not_in_target=not_in_target,
        nationality_aliases={k: v.upper() for k, v in nationality.items()},
        policy=policy,
        **_parse_limits(data.get("limits", {}), fields, origin),
    )


def _parse_limits(limits: dict, fields: tuple[str, ...], origin: str) -> dict[str, Any]:
    """``[limits]``: the file size and per-field length bounds (positive integers)."""
    max_bytes = limits.get("max_file_bytes", DEFAULT_MAX_FILE_BYTES)
    if isinstance(max_bytes, bool) or max_bytes < 1:
        raise ConfigError("must be a positive integer", file=origin, key="limits.max_file_bytes")
    lengths = {f: n for f, n in DEFAULT_MAX_LENGTHS.items() if f in fields}
    for name, n in limits.get("max_length", {}).items():
        key = f"limits.max_length.{name}"
        if name not in fields:
            raise ConfigError(
                f"not a field of this kind ({', '.join(fields)})", file=origin, key=key
            )
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError("must be a positive integer", file=origin, key=key)
        lengths[name] = n
    return {"max_file_bytes": max_bytes, "max_lengths": lengths}


def _code_table(
    table: Any, allowed: tuple[str, ...], origin: str, key: str, default: dict[str, list[str]]
) -> dict[str, list[str]]:
    if table is None:
        return {k: list(v) for k, v in default.items()}
    out = {}
    for canonical, values in table.items():
        if canonical not in allowed:
            raise ConfigError(
                f"allowed: {', '.join(allowed)}", file=origin, key=f"{key}.{canonical}"
            )
        out[canonical] = _str_list(values, origin, f"{key}.{canonical}")
    return out


def builtin_definitions() -> list[str]:
    """Names of the built-in source definitions."""
    root = resources.files(__package__).joinpath("sources")
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".toml"))


def load_source_definition(spec: str | os.PathLike | SourceDefinition) -> SourceDefinition:
    """A source definition by built-in name (``police``, ``iom``) or by TOML path."""
    if isinstance(spec, SourceDefinition):
        return spec
    text_spec = str(spec)
    if text_spec in builtin_definitions():
        source = resources.files(__package__).joinpath("sources", f"{text_spec}.toml")
        origin = f"built-in definition '{text_spec}'"
        raw = source.read_bytes()
    else:
        path = Path(text_spec)
        if not path.exists():
            raise ConfigError(
                f"no such source definition (built-in: {', '.join(builtin_definitions())}, or a .toml path)",
                file=text_spec,
            )
        return parse_source_definition(read_toml(path), str(path))
    return parse_source_definition(parse_toml(raw, file=origin), origin)
