"""The strict TOML-to-dataclass loader: unknown keys, wrong types and out-of-range values
are ConfigErrors naming the file and the dotted key."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from recapture.errors import ConfigError
from recapture.loader import bounds, build, check_keys, read_toml


@dataclass
class Inner:
    share: float = field(default=0.5, metadata=bounds(0, 1))
    breaks: list[int] = field(default_factory=lambda: [1], metadata=bounds(0))


@dataclass
class Outer:
    seed: int = field(default=1, metadata=bounds(0, 2**32, upper_open=True))
    name: str = "x"
    inner: Inner = field(default_factory=Inner)


def test_build_fills_defaults_and_nests():
    built = build(Outer, {"seed": 5, "inner": {"share": 1}})
    assert built == Outer(seed=5, inner=Inner(share=1.0))


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"sed": 1}, "sed"),
        ({"seed": "1"}, "seed"),
        ({"seed": True}, "seed"),
        ({"seed": -1}, "seed"),
        ({"seed": 2**32}, "seed"),
        ({"inner": {"share": 1.5}}, "inner.share"),
        ({"inner": {"breaks": [1, -2]}}, "inner.breaks[1]"),
        ({"inner": {"breaks": [1, "a"]}}, "inner.breaks[1]"),
        ({"inner": {"nope": 1}}, "inner.nope"),
        ({"inner": 3}, "inner"),
    ],
)
def test_build_rejects_naming_file_and_key(data, key):
    with pytest.raises(ConfigError) as exc:
        build(Outer, data, file="cfg.toml")
    assert exc.value.key == key
    assert exc.value.file == "cfg.toml"
    assert "cfg.toml" in str(exc.value) and key in str(exc.value)


def test_check_keys_nested_spec():
    check_keys({"a": 1, "t": {"b": "x"}}, {"a": int, "t": {"b": str}})
    with pytest.raises(ConfigError) as exc:
        check_keys({"t": {"b": 1}}, {"t": {"b": str}}, file="f.toml")
    assert exc.value.key == "t.b"


def test_read_toml_refuses_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        read_toml(tmp_path / "none.toml")
    with pytest.raises(ConfigError, match="not a regular file"):
        read_toml(tmp_path)
    bad = tmp_path / "bad.toml"
    bad.write_text("a = [")
    with pytest.raises(ConfigError, match="not valid TOML") as exc:
        read_toml(bad)
    assert exc.value.file == str(bad)


def test_every_config_is_parsed_by_the_loader_only():
    """One TOML parser: no module but the loader imports tomllib."""
    import ast

    root = Path(__file__).parents[1] / "recapture"
    parsers = []
    for path in root.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            if "tomllib" in names:
                parsers.append(path.relative_to(root).as_posix())
    assert parsers == ["loader.py"]


def test_linkage_settings_and_uncertainty_tables_are_read_strictly(tmp_path):
    from recapture.linkage import LinkageSettings
    from recapture.uncertainty import UncertaintyOptions

    with pytest.raises(ConfigError, match="not a regular file"):
        LinkageSettings.from_toml(tmp_path)
    path = tmp_path / "link.toml"
    path.write_text("[[comparisons]]\nname = 'sex'\nkind = 'exact'\ncolumn = 3\n", encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        LinkageSettings.from_toml(path)
    assert exc.value.key == "comparisons[0].column" and exc.value.file == str(path)
    with pytest.raises(ConfigError) as exc:
        UncertaintyOptions.from_dict({"analytic": "yes"}, file="run.toml")
    assert exc.value.key == "uncertainty.analytic" and exc.value.file == "run.toml"
