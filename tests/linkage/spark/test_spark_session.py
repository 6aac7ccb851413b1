"""The Spark session helper: defaults, conf as strings, clear errors without Spark or Java."""

from __future__ import annotations

import pytest

from recapture.errors import ConfigError, InputError
from recapture.linkage.spark import session as session_module
from recapture.linkage.spark.session import spark_session


def test_missing_java_or_pyspark_is_an_input_error(monkeypatch):
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setattr(session_module.shutil, "which", lambda name: None)
    with pytest.raises(InputError, match="Java"):
        spark_session()
    monkeypatch.setattr(session_module, "SparkSession", None)
    with pytest.raises(InputError, match=r"pip install -e \"\.\[spark\]\""):
        spark_session()


def test_conf_values_are_passed_as_strings_and_nothing_else():
    assert session_module._conf_strings(
        {"spark.sql.shuffle.partitions": 64, "spark.ui.enabled": True, "x": "__import__('os')"}
    ) == {"spark.sql.shuffle.partitions": "64", "spark.ui.enabled": "true", "x": "__import__('os')"}
    with pytest.raises(ConfigError) as err:
        session_module._conf_strings({"spark.executor.memory": ["4g"]})
    assert err.value.key == "spark.executor.memory"


def test_session_applies_conf_and_checkpoint_dir(spark, tmp_path):
    # the running test session is returned, with runtime conf applied on top
    got = spark_session(
        "local[2]",
        conf={"spark.sql.shuffle.partitions": "3"},
        checkpoint_dir=str(tmp_path / "ck"),
    )
    assert got.conf.get("spark.sql.shuffle.partitions") == "3"
    assert got.conf.get("spark.sql.session.timeZone") == "UTC"
    assert got.sparkContext.getCheckpointDir() is not None
    got.conf.set("spark.sql.shuffle.partitions", "4")
