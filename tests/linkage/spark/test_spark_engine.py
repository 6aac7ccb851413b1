"""The Spark engine gives the local engine's results: the same candidate pairs under the
same rules, the same comparison levels, match weights to 1e-9, the same persons, the same
deterministic metrics, and artifacts with the local schemas."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest

from recapture import synthetic
from recapture.io import read_json, read_table
from recapture.linkage import LinkageSettings, link_records, write_linkage
from recapture.linkage.febrl import febrl_settings, load_febrl
from recapture.linkage.spark.engine import link_records_spark
from recapture.schemas import PairsSchema, validate
from recapture.validation import validate_extracts

#: Metrics that depend on the machine, not on the data.
NOT_DETERMINISTIC = {"timings_seconds", "engine"}


def _close(a, b, path="metrics"):
    """Equal JSON-like values, floats to 1e-9 relative."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), path
        for key in a:
            _close(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), path
        for k, (x, y) in enumerate(zip(a, b, strict=True)):
            _close(x, y, f"{path}[{k}]")
    elif isinstance(a, float) and not (isinstance(b, float) and math.isnan(a) and math.isnan(b)):
        assert b == pytest.approx(a, rel=1e-9, abs=1e-12), path
    else:
        assert a == b, path


def assert_same_linkage(local, spark_result) -> None:
    pairs_l = local.pairs.sort("record_id_l", "record_id_r")
    pairs_s = spark_result.pairs_frame()
    assert pairs_s.columns == pairs_l.columns
    assert pairs_s.schema == pairs_l.schema
    exact = [c for c in pairs_l.columns if c not in ("match_weight", "match_probability")]
    # candidate pairs, their first rule, every comparison level, the swap flag, linked
    assert pairs_s.select(exact).equals(pairs_l.select(exact))
    for col in ("match_weight", "match_probability"):
        diff = np.abs(pairs_s[col].to_numpy() - pairs_l[col].to_numpy())
        assert diff.max(initial=0.0) <= 1e-9, col
    # the same persons, numbered alike (by smallest record)
    assert spark_result.clusters.equals(local.clusters)
    assert spark_result.threshold == pytest.approx(local.threshold, rel=1e-12)
    _close(
        {k: v for k, v in local.metrics.items() if k not in NOT_DETERMINISTIC},
        {k: v for k, v in spark_result.metrics.items() if k not in NOT_DETERMINISTIC},
    )
    model_l, model_s = local.model_dict(), spark_result.model_dict()
    model_l.pop("trace", None), model_s.pop("trace", None)
    _close(model_l, model_s, "model")


def world_records(size: int, seed: int, tmp: Path) -> pl.DataFrame:
    """Validated records of a simulated world of ``size`` people."""
    config = synthetic.SimulationConfig(size=size, seed=seed)
    raw = synthetic.write_world(synthetic.simulate_world(config), tmp / "raw")
    inputs = [(raw[name], name) for name in ("police", "iom")]
    return validate_extracts(inputs, as_of=config.period_end).records


# ------------------------------------------------------------------ default run
def test_febrl4_sample_equals_local_and_writes_the_local_artifacts(spark, tmp_path):
    """Cross-source linkage (link_only) with blocks over the cap skipped, threshold "auto";
    pairs.parquet is a dataset folder that polars, pandas and read_table read as the local
    file, and the other artifacts are the local ones."""
    records, _ = load_febrl("febrl4")
    records = records.sample(2_000, seed=7)
    settings = febrl_settings(
        link_only=True, u_sample_pairs=50_000, max_block_size=3, threshold="auto"
    )
    local = link_records(records, settings)
    skipped = [r for r in local.metrics["blocking_rules"] if r["blocks_skipped"]]
    assert skipped, "the sample should hold blocks over the cap"
    result = link_records_spark(spark, records, settings, out=tmp_path / "spark")
    assert_same_linkage(local, result)
    write_linkage(local, tmp_path / "local")

    folder = tmp_path / "spark" / "pairs.parquet"
    assert folder.is_dir() and len(list(folder.glob("*.parquet"))) >= 1
    assert not list(folder.glob("_SUCCESS")) and not list(folder.glob(".*"))
    want = pl.read_parquet(tmp_path / "local" / "pairs.parquet")
    for got in (
        read_table(folder),
        pl.read_parquet(folder),
        pl.from_pandas(pd.read_parquet(folder)),
    ):
        got = got.sort("record_id_l", "record_id_r")
        assert got.columns == want.columns
        assert got.drop("match_weight", "match_probability").equals(
            want.drop("match_weight", "match_probability")
        )
    validate(read_table(folder), PairsSchema)
    assert read_table(folder).schema == want.schema
    assert pl.read_parquet(tmp_path / "spark" / "clusters.parquet").equals(
        pl.read_parquet(tmp_path / "local" / "clusters.parquet")
    )
    model_s = read_json(tmp_path / "spark" / "linkage_model.json")
    model_l = read_json(tmp_path / "local" / "linkage_model.json")
    assert model_s.keys() == model_l.keys()
    assert model_s["settings"] == model_l["settings"]
    assert model_s["term_frequency_tables"] == model_l["term_frequency_tables"]
    metrics = read_json(tmp_path / "spark" / "linkage_metrics.json")
    assert metrics["engine"] == "spark"
    assert (
        metrics.keys() - {"engine"} == read_json(tmp_path / "local" / "linkage_metrics.json").keys()
    )


def test_simulated_world_equals_local_with_sessions_priors_refined_blocks(spark, tmp_path):
    """The default registration settings (EM sessions blocked in Spark, a prior per pair of
    sources, right-key rules), with a small block cap so that blocks are refined and
    skipped, and one-to-one across sources."""
    records = world_records(22_000, 11, tmp_path)
    assert 4_000 <= records.height <= 6_500
    settings = dataclasses.replace(
        LinkageSettings.default(), max_block_size=5, one_to_one=True, workers=1
    )
    local = link_records(records, settings)
    rules = local.metrics["blocking_rules"]
    assert any(r["blocks_refined"] for r in rules) and any(r["blocks_skipped"] for r in rules)
    assert local.metrics["lambda_by_source_pair"]
    assert_same_linkage(local, link_records_spark(spark, records, settings))


# ------------------------------------------------------------------ slow
@pytest.mark.slow
@pytest.mark.parametrize("encode_on", ["driver", "executors"])
@pytest.mark.parametrize("name", ["febrl3", "febrl4"])
def test_full_febrl_equals_local(spark, name, encode_on):
    records, _ = load_febrl(name)
    settings = febrl_settings(link_only=(name == "febrl4"), u_sample_pairs=200_000)
    assert_same_linkage(
        link_records(records, settings),
        link_records_spark(spark, records, settings, encode_on=encode_on),
    )


@pytest.mark.slow
@pytest.mark.parametrize("encode_on", ["driver", "executors"])
def test_20k_world_equals_local(spark, tmp_path, encode_on):
    records = world_records(90_000, 5, tmp_path)
    assert records.height >= 18_000
    settings = LinkageSettings.default()
    assert_same_linkage(
        link_records(records, settings),
        link_records_spark(spark, records, settings, encode_on=encode_on),
    )


@pytest.mark.slow
def test_records_as_spark_dataframe_or_parquet_path(spark, tmp_path):
    """Records given to Spark (a DataFrame, or a Parquet path read by Spark) link as the
    same records given as a polars frame."""
    records = world_records(9_000, 2, tmp_path)
    settings = LinkageSettings.default()
    local = link_records(records, settings)
    path = tmp_path / "records.parquet"
    records.write_parquet(path)
    assert_same_linkage(local, link_records_spark(spark, spark.read.parquet(str(path)), settings))
    assert_same_linkage(local, link_records_spark(spark, path, settings))
