"""Writing and reading persons.parquet, always with the rules it was built by.

The file's metadata records the sources, the periods and the capture-history rules, so
anyone who rebuilds capture histories from other linkages (the uncertainty methods, the
CLI) builds them exactly as this file was built.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from pathlib import Path

import polars as pl

from recapture.io import ARTIFACTS, read_metadata, write_parquet
from recapture.persons.build import CaptureHistoryRules, Period
from recapture.schemas import PersonSchema


def write_persons(
    table: pl.DataFrame,
    path: str | os.PathLike,
    *,
    sources: Sequence[str],
    periods: Sequence[Period],
    rules: CaptureHistoryRules | None = None,
    run_id: str | None = None,
) -> Path:
    """Validate ``table`` against the persons schema and write it atomically with its
    sources, periods and rules in the metadata (the only writer of persons.parquet)."""
    PersonSchema.validate(table, lazy=True)
    rules = rules or CaptureHistoryRules()
    return write_parquet(
        table,
        path,
        artifact=ARTIFACTS["persons"].name,
        schema_version=ARTIFACTS["persons"].schema_version,
        run_id=run_id,
        extra_metadata={
            "sources": ",".join(sources),
            "periods": json.dumps(
                {p.label: [p.start.isoformat(), p.end.isoformat()] for p in periods}
            ),
            "capture_history_rules": json.dumps(dataclasses.asdict(rules)),
        },
    )


def persons_rules(path: str | os.PathLike) -> tuple[list[str] | None, CaptureHistoryRules | None]:
    """The sources and capture-history rules a persons.parquet was built with (from its
    metadata), so rebuilt capture histories match it; ``None`` where not recorded."""
    meta = read_metadata(path)
    sources = meta["sources"].split(",") if meta.get("sources") else None
    rules = None
    if meta.get("capture_history_rules"):
        data = json.loads(meta["capture_history_rules"])
        data["age_breaks"] = tuple(data["age_breaks"])
        rules = CaptureHistoryRules(**data)
    return sources, rules
