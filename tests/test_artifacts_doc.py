"""docs/artifacts.md agrees with the pandera models in recapture.schemas, for every artifact.

An artifact model is any DataFrameModel in ``recapture.schemas`` whose docstring starts with
``<name>.parquet:``; its section in the docs is headed ``## <name>.parquet`` and lists each
column as a table row whose first cell is the column name in backticks. Regex columns
(``alias="gamma_.+", regex=True``) are documented with a placeholder, ``gamma_<comparison>``.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pandera.polars as pa
import pytest

from recapture import schemas

DOC = Path(__file__).parents[1] / "docs" / "artifacts.md"


def artifact_models() -> dict[str, type[pa.DataFrameModel]]:
    models = {}
    for _, obj in inspect.getmembers(schemas, inspect.isclass):
        if issubclass(obj, pa.DataFrameModel) and obj is not pa.DataFrameModel:
            match = re.match(r"\s*([\w.-]+)\.parquet:", obj.__doc__ or "")
            if match:
                models[match.group(1)] = obj
    return models


def documented_columns(text: str, artifact: str) -> list[str] | None:
    match = re.search(rf"^## {re.escape(artifact)}\.parquet\s*$(.*?)(?=^## |\Z)", text, re.M | re.S)
    if match is None:
        return None
    return re.findall(r"^\|\s*`([^`]+)`\s*\|", match.group(1), re.M)


def model_columns(model) -> tuple[set[str], list[re.Pattern]]:
    exact, patterns = set(), []
    for name, column in model.to_schema().columns.items():
        if column.regex:
            patterns.append(re.compile(f"^{name}$"))
        else:
            exact.add(name)
    return exact, patterns


def test_every_artifact_in_schema_versions_has_a_model():
    models = artifact_models()
    assert set(schemas.SCHEMA_VERSIONS) <= set(models), set(schemas.SCHEMA_VERSIONS) - set(models)


@pytest.mark.parametrize("artifact", sorted(artifact_models()))
def test_artifact_doc_matches_model(artifact):
    text = DOC.read_text(encoding="utf-8")
    documented = documented_columns(text, artifact)
    assert documented is not None, f"docs/artifacts.md has no section '## {artifact}.parquet'"
    exact, patterns = model_columns(artifact_models()[artifact])
    # a placeholder like gamma_<comparison> stands for any name the regex accepts
    concrete = {c: re.sub(r"<[^>]+>", "x", c) for c in documented}
    undocumented = sorted(exact - set(documented))
    assert not undocumented, f"{artifact}: model columns not documented: {undocumented}"
    for pattern in patterns:
        placeholders = [d for d in documented if "<" in d]
        assert any(pattern.match(concrete[d]) for d in placeholders), (
            f"{artifact}: regex column {pattern.pattern} not documented (as e.g. name_<part>)"
        )
    unknown = sorted(
        d for d in documented if d not in exact and not any(p.match(concrete[d]) for p in patterns)
    )
    assert not unknown, f"{artifact}: documented columns not in the model: {unknown}"
    assert len(documented) == len(set(documented)), f"{artifact}: a column is documented twice"


def test_the_checker_catches_a_missing_and_an_extra_column():
    text = DOC.read_text(encoding="utf-8")
    records = documented_columns(text, "records")
    exact, _ = model_columns(schemas.RecordSchema)
    assert set(records) == exact
    broken = text.replace("| `birth_day` |", "| `birth_dayy` |")
    assert "birth_day" not in documented_columns(broken, "records")
    assert "birth_dayy" in documented_columns(broken, "records")
