"""The one strict TOML-to-dataclass loader.

Every configuration file recapture reads (pipeline, source definitions, simulation and
linkage settings) goes through here, so the rules are the same
everywhere: an unknown key, a wrong type or an out-of-range value is a
:class:`~recapture.errors.ConfigError` naming the file and the dotted key
(``police.age_breaks[1]``); nothing is ever evaluated.

Use it in three ways:

* :func:`read_toml` reads a file (a regular file, valid UTF-8 TOML) into a mapping.
* :func:`build` turns a mapping into a dataclass, recursing into nested dataclasses,
  lists and tables by the type hints; bounds come from field metadata,
  ``field(default=..., metadata=bounds(0, 2**32, upper_open=True))``.
* :func:`check_keys` and :func:`expect` check hand-shaped tables (where a key's meaning
  depends on another key, as in source definitions); :func:`convert` checks one value
  against a type hint declared elsewhere (a linkage kind's options).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import os
import re
import stat
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from recapture.errors import ConfigError

#: Largest config file read (a config is text someone wrote; anything bigger is a mistake).
MAX_CONFIG_BYTES = 4 * 2**20


def bounds(
    low: float | None = None,
    high: float | None = None,
    *,
    upper_open: bool = False,
    lower_open: bool = False,
) -> dict[str, Any]:
    """Field metadata for :func:`build`: the value (or each item of a list) must lie in
    ``[low, high]`` (ends open where asked)."""
    return {"bounds": (low, high, lower_open, upper_open)}


def read_toml(path: str | os.PathLike) -> dict[str, Any]:
    """Parse a TOML file; a missing, non-regular, huge or malformed file is a ConfigError."""
    path = Path(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise ConfigError("config file not found", file=str(path)) from None
    except OSError as exc:
        raise ConfigError(f"cannot open: {exc.strerror}", file=str(path)) from None
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError("not a regular file", file=str(path))
    if info.st_size > MAX_CONFIG_BYTES:
        raise ConfigError(f"config file over {MAX_CONFIG_BYTES:,} bytes", file=str(path))
    return parse_toml(path.read_bytes(), file=str(path))


def parse_toml(raw: bytes | str, *, file: str | None = None) -> dict[str, Any]:
    """Parse TOML text (bytes must be UTF-8); errors name ``file``."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        return tomllib.loads(text)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"not valid TOML: {exc}", file=file) from None


def check_keys(
    table: Any,
    allowed: Mapping[str, Any] | set[str] | frozenset[str],
    *,
    file: str | None = None,
    prefix: str = "",
) -> None:
    """Reject keys of ``table`` not in ``allowed``. When ``allowed`` maps keys to a type (or
    tuple of types) the value is checked too; to a mapping, the value is a table checked
    recursively; to ``None``, any value is accepted."""
    if not isinstance(table, dict):
        raise ConfigError("expected a table", file=file, key=prefix.rstrip(".") or None)
    spec = allowed if isinstance(allowed, Mapping) else dict.fromkeys(allowed)
    for key, value in table.items():
        dotted = f"{prefix}{key}"
        if key not in spec:
            raise ConfigError(
                f"unknown key (allowed: {', '.join(sorted(spec))})", file=file, key=dotted
            )
        expected = spec[key]
        if isinstance(expected, Mapping):
            check_keys(value, expected, file=file, prefix=dotted + ".")
        elif expected is not None:
            expect(value, expected, key=dotted, file=file)


def expect(value: Any, kind: type | tuple[type, ...], *, key: str, file: str | None = None) -> Any:
    """``value`` if it is a ``kind`` (a bool is never an int or a float), else a ConfigError."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, kinds) and (bool in kinds or not isinstance(value, bool)):
        return value
    names = " or ".join(_describe(k) for k in kinds)
    raise ConfigError(f"expected {names}, got {type(value).__name__} {value!r}", file=file, key=key)


#: A Spark configuration key (``spark.sql.shuffle.partitions``): dotted words, nothing else.
SPARK_CONF_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]*(\.[A-Za-z0-9_\-]+)*$")


def spark_conf(table: Any, *, key: str, file: str | None = None) -> dict[str, str]:
    """A table of Spark configuration: dotted keys to *string* values, passed to Spark
    as they are (nothing is evaluated; write ``"4"``, not ``4``)."""
    if not isinstance(table, dict):
        raise ConfigError("expected a table of Spark settings", file=file, key=key)
    out = {}
    for name, value in table.items():
        if not SPARK_CONF_KEY.match(str(name)):
            raise ConfigError("not a Spark configuration key", file=file, key=f"{key}.{name}")
        out[str(name)] = expect(value, str, key=f"{key}.{name}", file=file)
    return out


def key_value(text: str, *, key: str) -> tuple[str, str]:
    """``"name=value"`` (a command-line Spark setting) split and checked."""
    name, sep, value = text.partition("=")
    if not sep or not SPARK_CONF_KEY.match(name.strip()):
        raise ConfigError(f"expected KEY=VALUE with a dotted Spark key, got {text!r}", key=key)
    return name.strip(), value


def require(table: dict, key: str, kind: type | tuple, *, prefix: str = "", file=None) -> Any:
    """``table[key]`` checked against ``kind``; missing is a ConfigError naming the key."""
    if key not in table:
        raise ConfigError("missing required key", file=file, key=f"{prefix}{key}")
    return expect(table[key], kind, key=f"{prefix}{key}", file=file)


def in_range(
    value: float,
    low: float | None,
    high: float | None,
    *,
    key: str,
    file: str | None = None,
    lower_open: bool = False,
    upper_open: bool = False,
) -> float:
    """``value`` if ``low <= value <= high`` (ends open where asked), else a ConfigError."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"must be a finite number, got {value}", file=file, key=key)
    too_low = low is not None and (value <= low if lower_open else value < low)
    too_high = high is not None and (value >= high if upper_open else value > high)
    if too_low or too_high:
        left = "(" if lower_open else "["
        right = ")" if upper_open else "]"
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        raise ConfigError(f"must lie in {left}{lo}, {hi}{right}, got {value}", file=file, key=key)
    return value


def build(cls: type, data: Any, *, prefix: str = "", file: str | None = None) -> Any:
    """Build dataclass ``cls`` from a mapping, strictly, by its type hints and field bounds.

    Keys absent from ``data`` keep their defaults. A ConfigError raised by ``cls``'s own
    ``__post_init__`` gets ``prefix`` and ``file`` added to its key.
    """
    if not isinstance(data, dict):
        raise ConfigError("expected a table", file=file, key=prefix.rstrip(".") or None)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    for key, value in data.items():
        full = f"{prefix}{key}"
        if key not in fields:
            raise ConfigError(
                f"unknown key (allowed: {', '.join(sorted(fields))})", file=file, key=full
            )
        converted = _convert(hints[key], value, key=full, file=file)
        limits = fields[key].metadata.get("bounds")
        if limits is not None:
            low, high, lower_open, upper_open = limits
            items = converted if isinstance(converted, list) else [converted]
            for i, item in enumerate(items):
                where = f"{full}[{i}]" if isinstance(converted, list) else full
                in_range(
                    item,
                    low,
                    high,
                    key=where,
                    file=file,
                    lower_open=lower_open,
                    upper_open=upper_open,
                )
        kwargs[key] = converted
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        if exc.key is not None and prefix and not exc.key.startswith(prefix):
            exc.key = prefix + exc.key
        if exc.file is None:
            exc.file = file
        raise


def convert(hint: Any, value: Any, *, key: str, file: str | None = None) -> Any:
    """``value`` checked against (and converted to) type ``hint``, strictly: TOML ``true`` is
    not a number, ``"5"`` not an integer, 1.5 not an integer; a ConfigError names ``key``."""
    return _convert(hint, value, key=key, file=file)


def _convert(hint: Any, value: Any, *, key: str, file: str | None) -> Any:
    if dataclasses.is_dataclass(hint):
        if isinstance(value, hint):  # already built (Python API)
            return value
        return build(hint, value, prefix=key + ".", file=file)
    origin = typing.get_origin(hint)
    bad = ConfigError(f"expected {_describe(hint)}, got {value!r}", file=file, key=key)
    if hint is Any:
        return value
    if hint is type(None):
        if value is not None:
            raise bad
        return value
    if hint in (bool, str):
        if not isinstance(value, hint):
            raise bad
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad
        return float(value)
    if hint is dt.date:
        if isinstance(value, dt.datetime):
            return value.date()
        if isinstance(value, dt.date):
            return value
        try:
            return dt.date.fromisoformat(str(value))
        except ValueError:
            raise bad from None
    if hint is Path:
        if not isinstance(value, str):
            raise bad
        return Path(value)
    if origin in (list, tuple):
        args = typing.get_args(hint)
        item = args[0] if args else Any
        if not isinstance(value, list | tuple):  # tuples come from the Python API
            raise bad
        items = [_convert(item, v, key=f"{key}[{i}]", file=file) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        args = typing.get_args(hint)
        item = args[1] if args else Any
        if not isinstance(value, dict):
            raise bad
        return {str(k): _convert(item, v, key=f"{key}.{k}", file=file) for k, v in value.items()}
    if origin in (types.UnionType, typing.Union):
        options = typing.get_args(hint)
        for option in options:
            if option is type(None):
                if value is None:  # None comes only from the Python API (TOML has no null)
                    return None
                continue
            try:
                return _convert(option, value, key=key, file=file)
            except ConfigError:
                continue
        raise bad
    return value


def _describe(hint: Any) -> str:
    names = {
        float: "a number",
        int: "an integer",
        bool: "true or false",
        str: "a string",
        dt.date: "a date (YYYY-MM-DD)",
        Path: "a path",
        list: "a list",
        dict: "a table",
    }
    if hint in names:
        return names[hint]
    origin = typing.get_origin(hint)
    if origin in (list, tuple):
        return "a list"
    if origin is dict:
        return "a table"
    if origin in (types.UnionType, typing.Union):
        return " or ".join(_describe(a) for a in typing.get_args(hint) if a is not type(None))
    return getattr(hint, "__name__", str(hint))
