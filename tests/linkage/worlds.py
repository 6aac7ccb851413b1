"""Simulated registration worlds for linkage tests: validated records and their truth."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from recapture import synthetic
from recapture.validation import validate_extracts


def simulated_world(tmp: Path, size: int, seed: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Validated police and IOM records of a world, and each record's true person
    (``record_id``, ``source``, ``person_id``)."""
    config = synthetic.SimulationConfig(size=size, seed=seed)
    sim = synthetic.simulate_world(config)
    raw = synthetic.write_world(sim, tmp)
    inputs = [(raw[name], name) for name in ("police", "iom")]
    records = validate_extracts(inputs, as_of=config.period_end).records
    truth = records.select("record_id", "source", "source_row").join(
        sim.records.select("source", "source_row", "person_id"), on=["source", "source_row"]
    )
    return records, truth.select("record_id", "source", "person_id")
