"""Choosing the linkage engine: the local polars engine or Apache Spark.

Both engines take the same settings and write the same artifacts; ``link_and_write`` is
what ``recapture link`` and the pipeline's link stage call. The Spark package (and so
pyspark and Java) is imported only when the Spark engine is asked for: pyspark is an
optional dependency (``pip install -e ".[spark]"``).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from recapture.errors import InputError
from recapture.linkage.engine import LinkageResult, link_records, write_linkage
from recapture.linkage.settings import LinkageSettings

#: The engines, the first the default.
ENGINES = ("polars", "spark")


@dataclass
class EngineOptions:
    """Which engine runs the linkage, and for Spark where (master URL, configuration)."""

    engine: str = "polars"
    spark_master: str = "local[2]"
    spark_conf: dict[str, str] = field(default_factory=dict)


def spark_engine():
    """The Spark engine's module, or an InputError saying what to install."""
    try:
        importlib.import_module("pyspark")
    except ImportError:
        raise InputError(
            'the Spark engine needs pyspark: pip install -e ".[spark]" (and a Java 17 runtime)'
        ) from None
    return importlib.import_module("recapture.linkage.spark.engine")


def link_and_write(
    records: pl.DataFrame,
    settings: LinkageSettings,
    out: str | Path,
    options: EngineOptions | None = None,
    *,
    run_id: str | None = None,
) -> tuple[LinkageResult, dict[str, Path]]:
    """Link ``records`` with the chosen engine and write the artifacts into ``out``."""
    options = options or EngineOptions()
    if options.engine not in ENGINES:
        raise InputError(f"unknown linkage engine {options.engine!r} (allowed: polars, spark)")
    if options.engine == "polars":
        result = link_records(records, settings)
        return result, write_linkage(result, out, run_id=run_id)
    spark = spark_engine()
    with spark.spark_session(options.spark_master, options.spark_conf) as session:
        result = spark.link_records_spark(session, records, settings)
        return result, spark.write_linkage_spark(result, out, run_id=run_id)
