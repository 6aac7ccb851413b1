"""End-to-end runs: reconciliation, stage reuse, reruns on change, failures and atomicity."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest
from conftest import pipeline_toml

from recapture.cli import main
from recapture.config import load_config, parse_config
from recapture.errors import ConfigError, StageError
from recapture.io import read_metadata
from recapture.pipelines.run import run_pipeline

PIPELINE = pipeline_toml(
    """
[persons]
age_breaks = [40]

[[estimators]]
name = "ztp"
model = "ztpoisson"
formula = "~ sex + age_class"
count = "n_police"

[[estimators]]
name = "dse"
model = "loglinear"
lists = ["police", "iom"]
covariates = "sex,age_class"

[reports]
enabled = false
""",
    seed=11,
)


@pytest.fixture()
def project(simulated_world, make_project) -> Path:
    """A fresh folder with the world's extracts (copied, so tests may change them)."""
    return make_project(simulated_world(2_500, 5), PIPELINE)


def _stages(run_dir: Path) -> dict:
    return json.loads((run_dir / "manifest.json").read_text())["stages"]


def test_counts_reconcile_and_manifest_is_complete(project: Path):
    result = run_pipeline(project / "pipeline.toml")
    manifest = result.manifest
    assert manifest["reconciliation"]["ok"], manifest["reconciliation"]
    assert manifest["status"] == "done"
    stages = manifest["stages"]
    v, k, p = stages["validate"]["counts"], stages["link"]["counts"], stages["persons"]["counts"]
    police_rows = sum(1 for _ in open(project / "world" / "police.csv", encoding="utf-8-sig")) - 1
    iom_rows = sum(1 for _ in open(project / "world" / "iom.csv", encoding="cp1252")) - 1
    assert v["rows_in"] == police_rows + iom_rows == v["records"] + v["quarantined"]
    assert k["records_in_clusters"] == v["records"]
    persons = pl.read_parquet(result.path("persons"))
    assert persons.height == p["rows"]
    assert persons["record_count"].sum() == sum(p["by_period"]["2017/18"]["records_used"].values())
    # traceability: config, seeds, checksums, versions and timings are recorded
    assert manifest["seed"] == 11 and manifest["run_id"]
    assert {Path(x).name for x in manifest["inputs"]} == {"police.csv", "iom.csv"}
    assert all(len(x["sha256"]) == 64 for x in manifest["inputs"].values())
    assert "polars" in manifest["packages"] and "numpy" in manifest["packages"]
    assert all(s["seconds"] >= 0 for s in stages.values())
    assert [e["name"] for e in result.estimates] == ["ztp", "dse"]
    assert all(
        e["population_size"] > persons.filter(pl.col("in_police") == 1).height
        for e in result.estimates
    )
    # artifacts carry their schema version and the run id
    meta = read_metadata(result.path("persons"))
    assert meta["artifact"] == "persons" and meta["run_id"] == manifest["run_id"]


def test_rerun_reuses_and_a_changed_input_reruns(project: Path):
    run_pipeline(project / "pipeline.toml")
    first = _stages(project / "run")
    run_pipeline(project / "pipeline.toml")
    second = _stages(project / "run")
    assert all(s["reused"] for s in second.values())
    assert all(second[n]["fingerprint"] == first[n]["fingerprint"] for n in first)

    # a changed setting redoes only what depends on it
    text = (
        (project / "pipeline.toml")
        .read_text()
        .replace('formula = "~ sex + age_class"', 'formula = "~ sex"')
    )
    (project / "pipeline.toml").write_text(text)
    run_pipeline(project / "pipeline.toml")
    third = _stages(project / "run")
    assert third["validate"]["reused"] and third["link"]["reused"] and third["persons"]["reused"]
    assert not third["estimate"]["reused"]

    # a changed input redoes everything downstream of it
    police = project / "world" / "police.csv"
    lines = police.read_text(encoding="utf-8-sig").splitlines(keepends=True)
    police.write_text("".join(lines[:-1]), encoding="utf-8-sig")
    run_pipeline(project / "pipeline.toml")
    fourth = _stages(project / "run")
    assert not any(s["reused"] for s in fourth.values())
    assert fourth["validate"]["counts"]["rows_in"] == first["validate"]["counts"]["rows_in"] - 1

    # --force redoes everything
    run_pipeline(project / "pipeline.toml", force=True)
    assert not any(s["reused"] for s in _stages(project / "run").values())


def test_failing_stage_is_named_and_leaves_earlier_artifacts(project: Path):
    run_pipeline(project / "pipeline.toml")
    persons_before = pl.read_parquet(project / "run" / "persons.parquet")
    text = (
        (project / "pipeline.toml")
        .read_text()
        .replace('formula = "~ sex + age_class"', 'formula = "~ sex + no_such_column"')
    )
    (project / "pipeline.toml").write_text(text)
    with pytest.raises(StageError) as err:
        run_pipeline(project / "pipeline.toml")
    assert err.value.stage == "estimate"
    stages = _stages(project / "run")
    assert stages["estimate"]["status"] == "failed" and stages["persons"]["status"] == "done"
    assert pl.read_parquet(project / "run" / "persons.parquet").equals(persons_before)
    assert (project / "run" / "estimates.json").exists()  # the previous one, intact
    json.loads((project / "run" / "estimates.json").read_text())


def test_cli_failure_is_one_line_naming_the_stage(project: Path, capsys):
    text = (
        (project / "pipeline.toml")
        .read_text()
        .replace('path = "world/iom.csv"', 'path = "world/nope.csv"')
    )
    (project / "pipeline.toml").write_text(text)
    code = main(["--quiet", "run", str(project / "pipeline.toml")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "sources[1].path" in err[0] and "nope.csv" in err[0]


def test_persons_carry_no_personal_identifiers(project: Path):
    result = run_pipeline(project / "pipeline.toml")
    persons = pl.read_parquet(result.path("persons"))
    records = pl.read_parquet(result.path("records"))
    banned = {
        "family_name",
        "given_name",
        "birth_date",
        "birth_day",
        "birth_month",
        "birth_year",
        "v_number",
        "source_key",
        "record_id",
        "family_name_raw",
        "given_name_raw",
    }
    assert not banned & set(persons.columns)
    identifying = set(records["family_name"].drop_nulls()) | set(records["v_number"].drop_nulls())
    for column in persons.columns:
        if persons[column].dtype == pl.String:
            assert not identifying & set(persons[column].drop_nulls()), column


def test_config_errors_name_the_key(tmp_path: Path):
    cases = {
        'extra = 1\n[[sources]]\npath = "x.csv"\ndefinition = "police"': "extra",
        '[[sources]]\npath = "x.csv"\ndefinition = "police"\n[linkage]\nthreshold = 2.0': "linkage.threshold",
        '[[sources]]\npath = "x.csv"\ndefinition = "police"\n[[estimators]]\nmodel = "nope"': "estimators[0].model",
        '[[sources]]\npath = "x.csv"\ndefinition = "police"\n[[periods]]\nstart = 2018-01-01\nend = 2017-01-01': "periods[0].end",
        '[[sources]]\npath = "x.csv"\ndefinition = "police"\n[persons]\nage_breaks = [40, 30]': "persons.age_breaks",
        '[[sources]]\npath = "x.csv"\ndefinition = "police"\n[uncertainty]\nimputations = 1': "uncertainty.imputations",
        '[[sources]]\npath = "x.csv"\ndefinition = "nosuchdefinition"': "sources[0].definition",
    }
    for text, key in cases.items():
        path = tmp_path / "p.toml"
        path.write_text(text)
        with pytest.raises(ConfigError) as err:
            load_config(path)
        assert err.value.key == key, (text, err.value)
        assert str(path) in str(err.value)


def test_linkage_engine_config_is_checked_strictly(tmp_path: Path):
    """[linkage] engine and [linkage.spark]: known engines only, the Spark conf as strings
    under dotted keys (nothing evaluated), errors naming the key."""
    head = '[[sources]]\npath = "x.csv"\ndefinition = "police"\n'
    path = tmp_path / "p.toml"
    path.write_text(
        head + '[linkage]\nengine = "spark"\n[linkage.spark]\nmaster = "local[1]"\n'
        '[linkage.spark.conf]\n"spark.sql.shuffle.partitions" = "8"\n'
    )
    config = load_config(path)
    assert config.linkage.engine == "spark"
    assert config.linkage.spark.master == "local[1]"
    assert config.linkage.spark.conf == {"spark.sql.shuffle.partitions": "8"}
    path.write_text(head)
    assert load_config(path).linkage.engine == "polars"
    cases = {
        '[linkage]\nengine = "duckdb"': "linkage.engine",
        "[linkage.spark]\nmaster = 2": "linkage.spark.master",
        '[linkage.spark]\nmasters = "x"': "linkage.spark.masters",
        '[linkage.spark.conf]\n"spark.executor.cores" = 4': "linkage.spark.conf.spark.executor.cores",
        '[linkage.spark.conf]\n"spark x; rm" = "1"': "linkage.spark.conf.spark x; rm",
    }
    for text, key in cases.items():
        path.write_text(head + text)
        with pytest.raises(ConfigError) as err:
            load_config(path)
        assert err.value.key == key, (text, err.value)


def test_two_periods_give_a_series(project: Path):
    text = (
        (project / "pipeline.toml")
        .read_text()
        .replace(
            '[[periods]]\nstart = 2017-07-01\nend = 2018-06-30\nlabel = "2017/18"',
            '[[periods]]\nstart = 2017-07-01\nend = 2017-12-31\nlabel = "H2 2017"\n'
            '[[periods]]\nstart = 2018-01-01\nend = 2018-06-30\nlabel = "H1 2018"',
        )
    )
    (project / "pipeline.toml").write_text(text)
    result = run_pipeline(project / "pipeline.toml")
    persons = pl.read_parquet(result.path("persons"))
    assert set(persons["period"]) == {"H2 2017", "H1 2018"}
    assert [(e["name"], e["period"]) for e in result.estimates] == [
        ("ztp", "H2 2017"),
        ("dse", "H2 2017"),
        ("ztp", "H1 2018"),
        ("dse", "H1 2018"),
    ]
    assert result.manifest["reconciliation"]["ok"]


_WRITER = textwrap.dedent("""
    import sys, numpy as np, polars as pl
    from recapture.io import write_parquet
    path = sys.argv[1]
    frame = pl.DataFrame({"x": np.arange(3_000_000), "y": np.random.default_rng(0).random(3_000_000)})
    print("ready", flush=True)
    while True:
        write_parquet(frame, path, artifact="test", schema_version="1")
""")


def test_killed_mid_write_leaves_no_half_written_parquet(tmp_path: Path):
    target = tmp_path / "big.parquet"
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(target)], stdout=subprocess.PIPE)
    assert proc.stdout.readline().strip() == b"ready"
    deadline = time.time() + 60
    while not target.exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # now in the middle of a later write
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    # the artifact is complete (from a finished write), never a partial one
    assert pq.read_table(target).num_rows == 3_000_000
    assert not [p for p in tmp_path.iterdir() if p.suffix == ".parquet" and p != target]


def test_parse_config_relative_paths(tmp_path: Path):
    config = parse_config(
        {"sources": [{"path": "a/police.csv", "definition": "police"}]}, base_dir=tmp_path
    )
    assert config.sources[0].path == tmp_path / "a" / "police.csv"
    assert config.sources[0].name == "police"
    assert config.periods[0].label == "2017-07-01/2018-06-30"


def test_estimate_cli_linkage_aware_on_a_run(project: Path):
    result = run_pipeline(project / "pipeline.toml")
    out = project / "est.json"
    code = main(
        [
            "--quiet",
            "estimate",
            str(result.path("persons")),
            "--model",
            "ztpoisson",
            "--formula",
            "~ sex",
            "--count-col",
            "n_police",
            "--imputations",
            "3",
            "--imputation-workers",
            "1",
            "--thresholds",
            "0.5,0.9",
            "--seed",
            "4",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    payload = json.loads(out.read_text())
    aware = payload["extra"]["linkage_aware"]
    assert aware["M"] == 3 and aware["lower"] < aware["population_size"] < aware["upper"]
    assert 0.0 <= aware["linkage_variance_share"] <= 1.0
    rows = payload["extra"]["threshold_sensitivity"]
    assert [r["threshold"] for r in rows] == [0.5, 0.9]
    # a stricter threshold links fewer records: more persons observed, not fewer
    assert rows[1]["n_observed"] >= rows[0]["n_observed"]


def test_review_round_trip_on_a_run(project: Path, simulated_world):
    result = run_pipeline(project / "pipeline.toml")
    sample_path = project / "review.csv"
    assert (
        main(
            [
                "--quiet",
                "review",
                "export",
                str(result.run_dir),
                "--n",
                "40",
                "--out",
                str(sample_path),
            ]
        )
        == 0
    )
    sample = pl.read_csv(sample_path, infer_schema=False)
    assert sample.height >= 20 and "label" in sample.columns
    # label the sample from the simulator's truth, as a reviewer would from the records
    records = pl.read_parquet(result.path("records"), columns=["record_id", "source", "source_key"])
    truth = pl.read_parquet(
        simulated_world(2_500, 5) / "truth" / "records.parquet",
        columns=["source", "source_key", "person_id"],
    )
    person = dict(
        records.join(truth, on=["source", "source_key"])
        .select("record_id", "person_id")
        .iter_rows()
    )
    labels = [
        "match" if person[int(a)] == person[int(b)] else "non-match"
        for a, b in zip(sample["record_id_l"], sample["record_id_r"], strict=True)
    ]
    sample.with_columns(pl.Series("label", labels)).write_csv(project / "labels.csv")
    assert (
        main(
            [
                "--quiet",
                "review",
                "estimate",
                str(project / "labels.csv"),
                "--out",
                str(project / "rates.json"),
            ]
        )
        == 0
    )
    rates = json.loads((project / "rates.json").read_text())
    assert rates["n_labelled"] == sample.height
    assert rates["precision_ci"][0] <= rates["precision"] <= rates["precision_ci"][1]
    # an unknown label is an error naming the file, row and column
    bad = sample.with_columns(pl.Series("label", ["maybe"] + labels[1:]))
    bad.write_csv(project / "bad.csv")
    assert main(["--quiet", "review", "estimate", str(project / "bad.csv")]) == 2
