"""A SparkSession for the linkage: sane defaults on a small machine, clear errors without Spark.

``spark_session()`` starts (or returns the running) Spark session. In ``local[…]`` mode —
one JVM on this machine, the default — it sets what a 2-core machine needs: few shuffle
partitions (Spark's default of 200 makes hundreds of tiny tasks per join), Arrow transfers
between the JVM and Python, no web UI, 2 GB for the driver JVM, and ``PYSPARK_PYTHON`` set to
this interpreter so Spark's Python workers import the same recapture. On a cluster
(``yarn``, ``k8s://…``, ``spark://…``) only Arrow and the UTC session time zone are set:
partitions, memory and the executors' Python are the cluster's business (see docs/spark.md).

``conf`` entries are passed to the builder as strings, after the defaults, so they override
them; nothing in them is evaluated.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from recapture.errors import ConfigError, InputError

try:
    from pyspark.sql import SparkSession
except ImportError:  # the [spark] extra is not installed
    SparkSession = None  # type: ignore[assignment,misc]

#: Set whatever the master.
COMMON_DEFAULTS = {
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.session.timeZone": "UTC",
}

#: Set in local mode only: a single JVM on a small shared machine.
LOCAL_DEFAULTS = {
    "spark.sql.shuffle.partitions": "8",
    "spark.default.parallelism": "8",
    "spark.ui.enabled": "false",
    "spark.driver.memory": "2g",
    "spark.ui.showConsoleProgress": "false",
}


def _java_available() -> bool:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").exists():
        return True
    return shutil.which("java") is not None


def _conf_strings(conf: dict | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in (conf or {}).items():
        if not isinstance(key, str) or not key:
            raise ConfigError(f"Spark conf keys are strings, not {key!r}", key=str(key))
        if isinstance(value, bool):
            out[key] = "true" if value else "false"
        elif isinstance(value, str | int | float):
            out[key] = str(value)
        else:
            raise ConfigError(
                f"Spark conf values are strings or numbers, not {type(value).__name__}", key=key
            )
    return out


def spark_session(
    master: str = "local[2]",
    conf: dict[str, str] | None = None,
    app_name: str = "recapture-linkage",
    checkpoint_dir: str | None = None,
):
    """The SparkSession of a linkage run (created, or the running one with ``conf`` applied).

    ``checkpoint_dir`` (a path or URI every executor can reach, e.g. ``hdfs://…`` or
    ``s3a://…`` on a cluster) lets the connected components use reliable checkpoints.
    """
    if SparkSession is None:
        raise InputError(
            "the Spark engine needs pyspark: install recapture with the spark extra "
            '(pip install -e ".[spark]")'
        )
    if not _java_available():
        raise InputError(
            "the Spark engine needs a Java runtime (Java 17; e.g. apt-get install "
            "openjdk-17-jre-headless) on PATH or in JAVA_HOME"
        )
    local = master.startswith("local")
    if local:
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    settings = {**COMMON_DEFAULTS, **(LOCAL_DEFAULTS if local else {}), **_conf_strings(conf)}
    builder = SparkSession.builder.master(master).appName(app_name)
    for key, value in settings.items():
        builder = builder.config(key, value)
    try:
        session = builder.getOrCreate()
    except Exception as err:  # the JVM did not start: a broken Java or a bad master URL
        raise InputError(f"Spark did not start (master {master!r}): {err}") from err
    if checkpoint_dir is not None:
        session.sparkContext.setCheckpointDir(str(checkpoint_dir))
    return session
