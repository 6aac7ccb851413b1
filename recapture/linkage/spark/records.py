"""The records of a Spark linkage run, as the driver holds them.

Two ways, with the same numbering (row ``i`` is the i-th smallest record id, as the local
engine numbers them):

* :func:`driver_records` (``encode_on="driver"``): the records are small beside their
  pairs (10⁶ records make 10⁷–10⁸ candidate pairs), so the driver keeps one copy of them,
  sorted and numbered; it encodes every record with the vocabularies counted in Spark and
  computes the blocking keys with the very polars expressions of the local engine
  (:func:`recapture.linkage.blocking.key_expr`), and the executors receive the codes once,
  as a broadcast variable;
* :func:`spark_records` (``encode_on="executors"``): the records are numbered in Spark
  (:func:`recapture.linkage.spark.encoding.number_records`) and keyed and encoded there;
  the driver keeps each row's record id and source code only.

Everything quadratic — the pairs — lives in Spark either way.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from pyspark.sql import DataFrame, SparkSession

from recapture.errors import InputError
from recapture.linkage.blocking import ROW, SRC
from recapture.linkage.engine import _check_columns
from recapture.linkage.settings import LinkageSettings
from recapture.linkage.spark.encoding import number_records
from recapture.linkage.training import _source_codes


@dataclass
class DriverRecords:
    """The sorted records with row positions, their ids, sources and source codes."""

    frame: pl.DataFrame  # sorted by record id, with ``_row`` (and ``_src`` for link_only)
    record_ids: np.ndarray
    sources: np.ndarray | None
    source_codes: np.ndarray | None

    @property
    def n(self) -> int:
        return self.frame.height


def to_spark(spark: SparkSession, records: Any, settings: LinkageSettings) -> DataFrame:
    """The columns the settings read, as a Spark DataFrame (a polars frame is handed to
    Spark, a path read by Spark)."""
    wanted = settings.required_columns() | set(settings.tf_person_columns)
    if isinstance(records, pl.DataFrame):
        present = [c for c in records.columns if c in wanted]
        return spark.createDataFrame(records.select(present).to_arrow())
    if isinstance(records, str | os.PathLike):
        _check_path(records)
        records = spark.read.parquet(str(records))
    if not isinstance(records, DataFrame):
        raise InputError(
            f"records must be a polars or Spark DataFrame or a Parquet path, got "
            f"{type(records).__name__}"
        )
    return records.select(*[c for c in records.columns if c in wanted])


def _check_path(records) -> None:
    if not str(records).startswith(("s3", "gs:", "hdfs:", "abfs")) and not Path(records).exists():
        raise InputError("no such file or folder", file=str(records))


def spark_records(
    spark: SparkSession, records: Any, settings: LinkageSettings
) -> tuple[DriverRecords, DataFrame]:
    """The records numbered in Spark (:func:`recapture.linkage.spark.encoding.number_records`,
    the columns the settings read with ``_row`` and ``_src``) and, on the driver, only each
    row's record id and source: ``DriverRecords.frame`` holds ``_row``, the record id and
    the source code ``_src``, not the compared columns. Checked as :func:`driver_records`
    checks."""
    frame = to_spark(spark, records, settings)
    missing = sorted(c for c in settings.required_columns() if c not in frame.columns)
    if missing:
        raise InputError(
            f"records lack the column(s) the linkage settings use: {', '.join(missing)}",
            column=missing[0],
        )
    numbered, ids, source_values = number_records(spark, frame, settings)
    rid = ids[settings.record_id]
    if rid.null_count():
        raise InputError("record ids must not be missing", column=settings.record_id)
    if rid.n_unique() != ids.height:
        raise InputError("record ids must be unique", column=settings.record_id)
    codes = sources = None
    if settings.source:
        # codes computed in Spark; the sources an array of references to a few values
        codes = ids[SRC].to_numpy().astype(np.intp)
        sources = source_values[codes]
    if settings.link_only and codes is None:
        raise InputError("link_only needs a source column", column="source")
    return DriverRecords(
        frame=ids, record_ids=rid.to_numpy(), sources=sources, source_codes=codes
    ), numbered


def to_polars(spark: SparkSession, records: Any, settings: LinkageSettings) -> pl.DataFrame:
    """The columns the settings read, as a polars frame on the driver.

    ``records`` is a polars frame, a Spark DataFrame, or the path of a Parquet file or
    dataset folder (read by Spark, so a path on a shared filesystem or object store works).
    """
    if isinstance(records, pl.DataFrame):
        return records
    if isinstance(records, str | os.PathLike):
        _check_path(records)
        records = spark.read.parquet(str(records))
    if isinstance(records, DataFrame):
        # the columns the comparisons, keys and term-frequency tables read, no more
        wanted = settings.required_columns() | set(settings.tf_person_columns)
        present = [c for c in records.columns if c in wanted]
        return pl.from_arrow(records.select(*present).toArrow())
    raise InputError(
        f"records must be a polars or Spark DataFrame or a Parquet path, got "
        f"{type(records).__name__}"
    )


def driver_records(spark: SparkSession, records: Any, settings: LinkageSettings) -> DriverRecords:
    """Checked, sorted and numbered records (as :func:`recapture.linkage.link_records`)."""
    frame = to_polars(spark, records, settings)
    _check_columns(frame, settings)
    recs = frame.sort(settings.record_id).with_row_index(ROW)
    sources = recs[settings.source].to_numpy() if settings.source else None
    codes = _source_codes(sources)
    if settings.link_only:
        if codes is None:
            raise InputError("link_only needs a source column", column="source")
        recs = recs.with_columns(pl.Series(SRC, codes))
    return DriverRecords(
        frame=recs,
        record_ids=recs[settings.record_id].to_numpy(),
        sources=sources,
        source_codes=codes,
    )
