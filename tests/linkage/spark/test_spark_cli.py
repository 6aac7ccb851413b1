"""``recapture link --engine spark`` and ``[linkage] engine = "spark"`` end to end: the
same artifacts, and the same persons, as the polars engine."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from conftest import pipeline_toml

from recapture.cli import main
from recapture.io import read_json, read_table

from .test_spark_engine import world_records


def _same_artifacts(a: Path, b: Path) -> None:
    pairs_a = read_table(a / "pairs.parquet").sort("record_id_l", "record_id_r")
    pairs_b = read_table(b / "pairs.parquet").sort("record_id_l", "record_id_r")
    assert pairs_a.schema == pairs_b.schema
    assert pairs_a.drop("match_weight", "match_probability").equals(
        pairs_b.drop("match_weight", "match_probability")
    )
    assert (pairs_a["match_weight"] - pairs_b["match_weight"]).abs().max() <= 1e-9
    assert pl.read_parquet(a / "clusters.parquet").equals(pl.read_parquet(b / "clusters.parquet"))


@pytest.mark.slow
def test_cli_link_engine_spark_writes_the_polars_artifacts(spark, tmp_path, capsys):
    path = tmp_path / "records.parquet"
    world_records(6_000, 21, tmp_path).write_parquet(path)
    assert main(["link", str(path), "-o", str(tmp_path / "polars")]) == 0
    args = ["link", str(path), "-o", str(tmp_path / "spark"), "--engine", "spark"]
    args += ["--spark-master", "local[2]", "--spark-conf", "spark.sql.shuffle.partitions=2"]
    assert main(args) == 0
    assert (tmp_path / "spark" / "pairs.parquet").is_dir()
    _same_artifacts(tmp_path / "polars", tmp_path / "spark")
    assert "persons" in capsys.readouterr().out


@pytest.mark.slow
def test_pipeline_with_spark_engine_gives_the_polars_persons(spark, simulated_world, tmp_path):
    world = simulated_world(2_500, 5)
    runs = {}
    for engine in ("polars", "spark"):
        project = tmp_path / engine
        (project / "world").mkdir(parents=True)
        for name in ("police.csv", "iom.csv"):
            (project / "world" / name).write_bytes((world / name).read_bytes())
        (project / "pipeline.toml").write_text(
            pipeline_toml(f'[linkage]\nengine = "{engine}"\n', seed=5), encoding="utf-8"
        )
        assert main(["run", str(project / "pipeline.toml"), "--until", "persons"]) == 0
        runs[engine] = project / "run"
    manifest = read_json(runs["spark"] / "manifest.json")
    assert manifest["config"]["linkage"]["engine"] == "spark"
    assert (runs["spark"] / "pairs.parquet").is_dir()
    _same_artifacts(runs["polars"], runs["spark"])
    assert pl.read_parquet(runs["polars"] / "persons.parquet").equals(
        pl.read_parquet(runs["spark"] / "persons.parquet")
    )
