"""Choosing the linkage engine: the default engine never imports Spark, and the Spark
engine without pyspark is a clear input error, not a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from recapture import synthetic
from recapture.errors import ConfigError, InputError
from recapture.linkage import LinkageSettings
from recapture.linkage.engines import EngineOptions, link_and_write, spark_engine
from recapture.loader import key_value
from recapture.validation import validate_extracts

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def records_path(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("engines")
    config = synthetic.SimulationConfig(size=2_500, seed=4)
    raw = synthetic.write_world(synthetic.simulate_world(config), tmp / "raw")
    records = validate_extracts(
        [(raw[n], n) for n in ("police", "iom")], as_of=config.period_end
    ).records
    path = tmp / "records.parquet"
    records.write_parquet(path)
    return path


def test_spark_engine_without_pyspark_is_an_input_error(monkeypatch, records_path, tmp_path):
    monkeypatch.setitem(sys.modules, "pyspark", None)  # import pyspark now fails
    with pytest.raises(InputError, match="pip install"):
        spark_engine()
    import polars as pl

    with pytest.raises(InputError, match="pyspark"):
        link_and_write(
            pl.read_parquet(records_path),
            LinkageSettings.default(),
            tmp_path,
            EngineOptions(engine="spark"),
        )


def test_default_engine_does_not_import_the_spark_engine(records_path, tmp_path):
    """(pyspark itself may be imported by a library that integrates with it when it is
    installed, e.g. pandera; the Spark engine package is not.)"""
    code = (
        "import sys\n"
        "from recapture.cli import main\n"
        f"assert main(['link', {str(records_path)!r}, '-o', {str(tmp_path)!r}]) == 0\n"
        "assert not [m for m in sys.modules if m.startswith('recapture.linkage.spark')]\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert (tmp_path / "pairs.parquet").is_file()


def test_spark_conf_on_the_command_line_is_key_equals_value():
    assert key_value("spark.driver.memory=8g", key="--spark-conf") == ("spark.driver.memory", "8g")
    assert key_value("spark.x=a=b", key="--spark-conf") == ("spark.x", "a=b")
    for bad in ("spark.driver.memory", "=1", "spark x=1", "__import__('os')=1"):
        with pytest.raises(ConfigError):
            key_value(bad, key="--spark-conf")


def test_spark_options_without_the_spark_engine_are_refused(records_path, tmp_path, capsys):
    from recapture.cli import main

    code = main(["link", str(records_path), "-o", str(tmp_path), "--spark-conf", "a.b=1"])
    assert code == 2
    assert "need --engine spark" in capsys.readouterr().err
    assert not (tmp_path / "pairs.parquet").exists()
