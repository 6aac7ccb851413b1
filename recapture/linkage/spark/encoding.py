"""The records' vocabularies and term-frequency tables from Spark aggregates.

The driver receives what grows with the number of *distinct values* — the distinct values
of every compared string column, the count of each value among the records that are the
first of their person, the joint-name counts — never a column of the records, and builds
the local engine's :class:`~recapture.linkage.comparisons.PreparedRecords` from them with
:meth:`~recapture.linkage.comparisons.PreparedRecords.from_aggregates`: the same
vocabularies, codes, TF tables and joint-name table as
:meth:`~recapture.linkage.comparisons.PreparedRecords.build` on the same records.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import polars as pl
import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import (
    ByteType,
    DoubleType,
    IntegerType,
    LongType,
    StructField,
    StructType,
)
from pyspark.storagelevel import StorageLevel

from recapture.linkage.blocking import ROW, SRC
from recapture.linkage.comparisons import (
    PreparedRecords,
    RecordAggregates,
    encoding_plan,
    uses_source_frequencies,
    value_counts,
)
from recapture.linkage.settings import LinkageSettings
from recapture.linkage.spark.compare import RID, _value, broadcast


def _collect(frame: DataFrame) -> pl.DataFrame:
    return pl.from_arrow(frame.toArrow())


def _counts(frame: DataFrame, col: str) -> pl.DataFrame:
    """``value`` and ``count`` of one column (missing values included; the driver drops
    them when it encodes the values)."""
    return _collect(frame.groupBy(F.col(col).alias("value")).agg(F.count(F.lit(1)).alias("count")))


def _joint_counts_spark(records: DataFrame, keys: list[str], person_cols: list[str]) -> dict:
    """:func:`recapture.linkage.comparisons._joint_people` and ``_joint_counts`` in Spark:
    distinct (names, person columns) with the undated rule, counted per given name, family
    name and pair of names."""
    given, family = keys
    people = records.select(given, family, *person_cols).dropna(subset=[given, family]).distinct()
    if person_cols:
        first = person_cols[0]
        dated = people.filter(F.col(first).isNotNull())
        undated = (
            people.filter(F.col(first).isNull())
            .join(dated.select(given, family).distinct(), on=[given, family], how="left_anti")
            .select(given, family)
            .distinct()
        )
        people = dated.select(given, family).unionAll(undated)
    kj = _collect(people.groupBy(given, family).agg(F.count(F.lit(1)).alias("kj")))
    kj = kj.with_columns(pl.col("kj").cast(pl.UInt32))
    return {
        "n": int(kj["kj"].sum()),
        "kg": kj.group_by(given).agg(pl.col("kj").sum().alias("kg")),
        "kf": kj.group_by(family).agg(pl.col("kj").sum().alias("kf")),
        "kj": kj,
    }


def spark_aggregates(
    records: DataFrame, settings: LinkageSettings, record_id: str | None = None
) -> tuple[RecordAggregates, dict[str, pl.DataFrame]]:
    """The aggregates :meth:`PreparedRecords.from_aggregates` needs, computed in Spark, and
    each TF column's value counts over all records (for the model's TF tables).

    A record is the first of its person (names and ``tf_person_columns``, as in
    :func:`recapture.linkage.comparisons._person_first`) when it has the smallest record id
    among them: one group-by, each TF column taken with ``min_by`` the record id.
    """
    record_id = record_id or settings.record_id
    string_cols, swap_keys, tf_cols = encoding_plan(settings)
    names = list(settings.name_swap or [])
    person_cols = [c for c in settings.tf_person_columns if c in records.columns]
    used = {c for group in string_cols for c in group} | set(tf_cols) | set(names)
    used |= set(swap_keys or []) | set(person_cols) | {record_id}
    by_source = uses_source_frequencies(settings, records.columns)
    if by_source:
        used.add(settings.source)
    frame = records.select(*[c for c in records.columns if c in used]).persist(
        StorageLevel.MEMORY_AND_DISK
    )
    n = frame.count()
    values = [
        [_collect(frame.select(c).distinct()).to_series() for c in group] for group in string_cols
    ]
    people = _people(frame, names, person_cols, tf_cols, record_id)
    person_counts = {col: _counts(people, col) for col in tf_cols}
    source_counts, sources = None, []
    if by_source:
        src = settings.source
        in_source = _people(frame, names, person_cols + [src], tf_cols, record_id)
        source_counts = {
            col: _collect(
                in_source.groupBy(
                    F.col(col).alias("value"), F.col(src).cast("string").alias("source")
                ).agg(F.count(F.lit(1)).alias("count"))
            )
            for col in tf_cols
        }
        sources = sorted(
            str(v)
            for v in _collect(frame.select(F.col(src).cast("string").alias("s")).distinct())["s"]
        )
        if in_source is not frame:
            in_source.unpersist()
    all_counts = {col: _counts(frame, col) for col in tf_cols}
    joint = None
    if swap_keys and settings.joint_name_tf:
        joint = _joint_counts_spark(frame, swap_keys, person_cols)
    if people is not frame:
        people.unpersist()
    frame.unpersist()
    return RecordAggregates(
        n=n,
        values=values,
        person_counts=person_counts,
        joint=joint,
        source_person_counts=source_counts,
        sources=sources,
    ), all_counts


def _people(
    frame: DataFrame, names: list[str], key_cols: list[str], tf_cols: list[str], record_id: str
) -> DataFrame:
    """The first record (smallest id) of each person — names and ``key_cols`` — with the TF
    columns (persisted), or ``frame`` itself without names."""
    if not names or not all(c in frame.columns for c in names):
        return frame
    key = names + key_cols
    others = [c for c in tf_cols if c not in key]
    if others:
        people = frame.groupBy(*key).agg(*[F.min_by(c, record_id).alias(c) for c in others])
    else:
        people = frame.select(*key).distinct()
    return people.persist(StorageLevel.MEMORY_AND_DISK)


def prepare_spark(
    records: DataFrame, settings: LinkageSettings
) -> tuple[PreparedRecords, dict[str, np.ndarray]]:
    """The prepared vocabularies/TF tables (no per-record arrays) of Spark ``records``, and
    each TF column's count per code over all records."""
    agg, all_counts = spark_aggregates(records, settings)
    prep = PreparedRecords.from_aggregates(agg, settings)
    counts = {col: value_counts(prep.vocab_of[col], all_counts[col]) for col in prep.tf}
    return prep, counts


# ------------------------------------------------------------------ records encoded in Spark
#: Records per partition when the records are numbered and encoded in Spark.
RECORDS_PER_PARTITION = 1_000_000
#: Spark type of each encoding's column (:data:`recapture.linkage.kinds.ENCODINGS`).
_TYPES = {
    "string": IntegerType(),
    "int": IntegerType(),
    "float": DoubleType(),
    "quality": ByteType(),
}


def encoded_columns(prep: PreparedRecords) -> list[str]:
    """The columns of the encoded records, in order: the string columns, then the others."""
    strings = list(prep.vocab_of)
    return strings + [c for c, enc in prep.encoding.items() if enc != "string" and c not in strings]


def number_records(
    spark: SparkSession, records: DataFrame, settings: LinkageSettings
) -> tuple[DataFrame, pl.DataFrame, np.ndarray | None]:
    """The records numbered in Spark (persisted): ``_row`` (int: row i holds the i-th
    smallest record id, as the local engine numbers them) and, with a source column,
    ``_src`` (the source's rank among the distinct sources, as
    :func:`recapture.linkage.training._source_codes` gives it); and, collected, the record
    id (and source code) of each row in row order — what the driver keeps per record —
    and the source value of each source code.

    The records are range-partitioned by record id and sorted within partitions; each
    partition's count is collected (one number per partition) and its rows are numbered
    from the sum of the counts before it, by ``mapInArrow``.
    """
    rid, source = settings.record_id, settings.source
    n = records.count()
    parts = max(spark.sparkContext.defaultParallelism, -(-n // RECORDS_PER_PARTITION), 1)
    ranged = (
        records.repartitionByRange(parts, rid)
        .sortWithinPartitions(rid)
        .withColumn("_part", F.spark_partition_id())
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    counts = dict(ranged.groupBy("_part").count().collect())
    offsets, total = {}, 0
    for part in sorted(counts):
        offsets[part] = total
        total += counts[part]
    names = values = None
    if source:
        distinct = _collect(ranged.select(source).distinct()).to_series().to_numpy()
        names, first = np.unique(distinct.astype(str), return_index=True)
        values = distinct[first]  # the source value of each code
    fields = [StructField(ROW, IntegerType())]
    if source:
        fields.append(StructField(SRC, IntegerType()))
    schema = StructType(fields + [f for f in records.schema.fields])
    out_names = schema.fieldNames()
    carried = [f.name for f in records.schema.fields]

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        row = None
        for batch in batches:
            if batch.num_rows == 0:
                continue
            part = batch.column("_part")[0].as_py()
            if row is None:
                row = offsets[part]
            arrays = [pa.array(np.arange(row, row + batch.num_rows, dtype=np.int32))]
            if names is not None:
                values = pl.from_arrow(batch.column(source)).to_numpy().astype(str)
                arrays.append(pa.array(np.searchsorted(names, values).astype(np.int32)))
            arrays += [batch.column(name) for name in carried]
            row += batch.num_rows
            yield pa.RecordBatch.from_arrays(arrays, names=out_names)

    numbered = ranged.mapInArrow(run, schema).persist(StorageLevel.MEMORY_AND_DISK)
    keep = [ROW, rid] + ([SRC] if source else [])
    ids = _collect(numbered.select(*keep)).sort(ROW)
    ranged.unpersist()
    return numbered, ids, values


def encode_records_spark(
    spark: SparkSession, numbered: DataFrame, tables: PreparedRecords, rid: str
) -> DataFrame:
    """Each numbered record's codes and numbers (persisted): ``_row`` and each compared
    column, as :meth:`PreparedRecords.with_records` encodes them, by ``mapInArrow`` with
    the vocabularies (``tables``, broadcast once); then the record id (column ``rid``) as
    ``_rid`` and the source code ``_src``."""
    cols = encoded_columns(tables)
    bc = broadcast(spark, tables.for_batches())
    extra = [StructField(RID, LongType())]
    if SRC in numbered.columns:
        extra.append(StructField(SRC, IntegerType()))
    schema = StructType(
        [StructField(ROW, IntegerType())]
        + [StructField(c, _TYPES[tables.encoding[c]]) for c in cols]
        + extra
    )
    carried = [f.name for f in extra]
    names = schema.fieldNames()
    arrow_types = {
        "string": pa.int32(),
        "int": pa.int32(),
        "float": pa.float64(),
        "quality": pa.int8(),
    }

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        prep = _value(bc)
        for batch in batches:
            enc = prep.with_records(pl.from_arrow(batch))
            arrays = [batch.column(ROW)]
            for c in cols:
                values = enc.codes[c] if c in enc.codes else enc.ints[c]
                arrays.append(pa.array(values, type=arrow_types[tables.encoding[c]]))
            arrays += [batch.column(c) for c in carried]
            yield pa.RecordBatch.from_arrays(arrays, names=names)

    # the record id (and source code) ride along, so that the scored pairs carry them
    frame = numbered.select(ROW, *cols, F.col(rid).cast("long").alias(RID), *carried[1:])
    out = frame.mapInArrow(run, schema)
    return out.persist(StorageLevel.MEMORY_AND_DISK)
