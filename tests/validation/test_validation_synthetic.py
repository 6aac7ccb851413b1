"""Validation of a small simulated world: every extract row is accounted for, and what the
standardisers recover agrees with the simulator's truth."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from recapture.synthetic import SimulationConfig, simulate_world, write_world
from recapture.validation import validate_extracts


@pytest.fixture(scope="module")
def world_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("world")
    world = simulate_world(SimulationConfig(size=2_500, seed=11))
    paths = write_world(world, out)
    result = validate_extracts(
        [(paths["police"], "police"), (paths["iom"], "iom")], out / "run", as_of=dt.date(2019, 1, 1)
    )
    truth = pl.read_parquet(paths["truth_records"])
    return result, truth


def test_every_simulated_row_is_in_exactly_one_output(world_run):
    result, truth = world_run
    keys = pl.concat(
        [
            result.records.select("source", "source_key", "source_row"),
            result.quarantine.select("source", "source_key", "source_row"),
        ]
    )
    assert keys.height == truth.height == result.summary["totals"]["rows_in"]
    assert result.summary["totals"]["reconciled"]
    assert keys.select(pl.struct("source", "source_key").is_unique().all()).item()
    joined = truth.join(keys, on=["source", "source_key"], how="inner", suffix="_v")
    assert joined.height == truth.height
    assert (joined["source_row"] == joined["source_row_v"]).all()


def test_standardised_values_agree_with_the_truth(world_run):
    result, truth = world_run
    j = result.records.join(truth, on=["source", "source_key"], how="inner", suffix="_t")
    assert j.height == result.records.height
    assert (j["event_date"] == j["event_date_t"]).all()
    assert (j["in_target"] == j["in_target_t"]).all()
    # nationality: every form the simulator writes is recognised, except "unknown"
    named = j.filter(pl.col("nationality_form") != "unknown")
    assert (named["nationality_iso3"] == named["nationality_recorded_iso3"]).all()
    assert j.filter(pl.col("nationality_form") == "unknown")["nationality_iso3"].is_null().all()
    assert result.summary["unknown_nationalities"] == []


def test_name_key_joins_transliteration_variants_of_one_person(world_run):
    """Same person, same identity, no typo and no swap: the family-name key should agree
    far more often than the standardised spelling does."""
    result, truth = world_run
    j = result.records.join(truth, on=["source", "source_key"], how="inner")
    cols = [
        "record_id",
        "person_id",
        "identity",
        "typo_family",
        "name_swap",
        "family_name",
        "family_name_key",
    ]
    r = j.select(cols)
    pairs = (
        r.join(r, on="person_id", suffix="_b")
        .filter(pl.col("record_id") < pl.col("record_id_b"))
        .filter(
            ~pl.col("typo_family")
            & ~pl.col("typo_family_b")
            & ~pl.col("name_swap")
            & ~pl.col("name_swap_b")
            & (pl.col("identity") == pl.col("identity_b"))
        )
    )
    assert pairs.height >= 30
    key_agree = (pairs["family_name_key"] == pairs["family_name_key_b"]).mean()
    spelling_agree = (pairs["family_name"] == pairs["family_name_b"]).mean()
    assert key_agree >= 0.95
    assert key_agree > spelling_agree + 0.1
