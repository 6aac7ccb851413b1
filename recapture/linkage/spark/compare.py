"""Comparison levels, pattern counts and scores of the candidate pairs, in Spark.

The executors run the local engine's own functions on Arrow batches through
``mapInArrow``: :func:`recapture.linkage.comparisons.compare_batch` for the levels and TF
bits, :func:`recapture.linkage.model.score_batch` for the match weights. There is no
second copy of a comparison, a term-frequency adjustment or a weight formula here.

With the records encoded on the driver the pairs travel as row positions
(``row_l``/``row_r``); the prepared records (codes per record, vocabularies, TF tables)
reach every executor once as a broadcast variable (about 50 bytes a record) and are
unpickled once per Python worker. With the records encoded on the executors their codes
(and record ids and source codes) are joined onto the pairs instead (:func:`with_codes`:
two shuffles of the pairs, nothing per record broadcast) and the broadcast holds only the
vocabularies and TF tables (:meth:`PreparedRecords.for_batches`).
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from dataclasses import replace

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import (
    BooleanType,
    ByteType,
    DoubleType,
    FloatType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
)
from pyspark.storagelevel import StorageLevel

from recapture.linkage.blocking import ROW, SRC
from recapture.linkage.comparisons import ROW_L, ROW_R, PreparedRecords, compare_batch
from recapture.linkage.kinds import QUALITY_CODES
from recapture.linkage.model import PRIOR_GROUP, FellegiSunterModel, Patterns, score_batch
from recapture.linkage.settings import LinkageSettings
from recapture.linkage.training import source_pair_group

#: Column of the encoded records holding each record's id (carried onto the pairs).
RID = "_rid"

#: Unpickled broadcast values of this Python worker, by broadcast file (a worker is reused
#: across tasks, so the prepared records are unpickled once, not once per batch).
_CACHE: dict[str, object] = {}


def _value(bc):
    key = bc._path  # the broadcast's file on this executor: one per broadcast variable
    if key not in _CACHE:
        _CACHE.clear()
        _CACHE[key] = pickle.loads(bc.value)
    return _CACHE[key]


def broadcast(spark: SparkSession, obj):
    """``obj`` pickled into a broadcast variable (read back with :func:`_value`)."""
    return spark.sparkContext.broadcast(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))


def levels_schema(settings: LinkageSettings, prep: PreparedRecords, priors: bool) -> StructType:
    """Schema of :func:`compare_spark`'s output: the pair, its rule, its prior group, then
    exactly the columns :func:`compare_batch` returns."""
    if prep.codes or prep.ints:
        probe = compare_batch(
            settings,
            prep,
            pa.RecordBatch.from_pydict(
                {ROW_L: pa.array([0], pa.int32()), ROW_R: pa.array([0], pa.int32())}
            ),
        )
    else:  # no per-record arrays: one pair of records with every column missing
        missing = {
            "string": -1,
            "int": -1,
            "float": float("nan"),
            "quality": QUALITY_CODES["missing"],
        }
        probe = compare_batch(
            settings,
            prep,
            pa.RecordBatch.from_pydict(
                {
                    f"{c}_{side}": pa.array([missing[enc]])
                    for c, enc in prep.encoding.items()
                    for side in ("l", "r")
                }
            ),
            encoded=True,
        )
    types = {pa.int8(): ByteType(), pa.float32(): FloatType(), pa.bool_(): BooleanType()}
    fields = [
        StructField("i", IntegerType()),
        StructField("j", IntegerType()),
        StructField("rule", IntegerType()),
    ]
    if priors:
        fields.append(StructField(PRIOR_GROUP, IntegerType()))
    fields += [StructField(f.name, types[f.type]) for f in probe.schema]
    return StructType(fields)


def prepared_broadcast(spark: SparkSession, settings: LinkageSettings, prep: PreparedRecords):
    """The settings and prepared records as one broadcast variable, for every comparison
    of a run (candidate pairs, random pairs of u, training sessions). The codes per record
    stay (pairs come as positions); the records frame does not."""
    return broadcast(spark, (settings, replace(prep, frame=None)))


def with_codes(pairs: DataFrame, encoded: DataFrame, cols: list[str]) -> DataFrame:
    """Pairs (``i``, ``j``, …) with each record's encoded columns joined on: ``<col>_l`` from
    row ``i``, ``<col>_r`` from row ``j`` (``encoded`` as
    :func:`recapture.linkage.spark.encoding.encode_records_spark` makes it)."""
    cols = cols + [c for c in (RID, SRC) if c in encoded.columns]
    left = encoded.select(F.col(ROW).alias("i"), *[F.col(c).alias(f"{c}_l") for c in cols])
    right = encoded.select(F.col(ROW).alias("j"), *[F.col(c).alias(f"{c}_r") for c in cols])
    return pairs.join(left, "i").join(right, "j")


def _levels(sett, prep, batch: pa.RecordBatch, cols: list[str] | None) -> pa.RecordBatch:
    """compare_batch on a batch of pairs: by row position (the broadcast records) or, with
    ``cols``, by the encoded columns joined onto the pairs."""
    if cols is None:
        return compare_batch(
            sett, prep, pa.RecordBatch.from_pydict({ROW_L: batch["i"], ROW_R: batch["j"]})
        )
    names = [f"{c}_{side}" for c in cols for side in ("l", "r")]
    return compare_batch(sett, prep, batch.select(names), encoded=True)


def compare_spark(
    spark: SparkSession,
    candidates: DataFrame,
    prepared,
    schema: StructType,
    source_codes: np.ndarray | None,
    encoded: tuple[DataFrame, list[str]] | None = None,
) -> DataFrame:
    """Levels of every candidate pair (persisted), via ``mapInArrow(compare_batch)``.

    ``prepared`` is :func:`prepared_broadcast`, ``schema`` :func:`levels_schema`. With
    ``source_codes`` the output also holds each pair's ``prior_group`` (min·S + max of its
    two source codes, :func:`recapture.linkage.training.source_pair_group`). With
    ``encoded`` (the encoded records and their columns) the records' codes are joined onto
    the pairs (:func:`with_codes`) instead of read from the broadcast by row position;
    ``prepared`` then needs no per-record arrays.
    """
    codes_bc = broadcast(spark, source_codes)
    enc_cols = None if encoded is None else encoded[1]
    if encoded is not None:
        candidates = with_codes(candidates, *encoded)

    carry = encoded is not None and RID in encoded[0].columns

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        sett, prep = _value(prepared)
        codes = pickle.loads(codes_bc.value)
        for batch in batches:
            names = batch.schema.names
            if f"{SRC}_l" in names:  # source codes joined on: ``codes`` is 0..S-1
                i = batch.column(f"{SRC}_l").to_numpy(zero_copy_only=False)
                j = batch.column(f"{SRC}_r").to_numpy(zero_copy_only=False)
            else:
                i = batch.column("i").to_numpy(zero_copy_only=False)
                j = batch.column("j").to_numpy(zero_copy_only=False)
            levels = _levels(sett, prep, batch, enc_cols)
            cols = [batch.column("i"), batch.column("j"), batch.column("rule")]
            names = ["i", "j", "rule"]
            if codes is not None:
                cols.append(pa.array(source_pair_group(codes, i, j).astype(np.int32)))
                names.append(PRIOR_GROUP)
            cols += list(levels.columns)
            names += levels.schema.names
            if carry:  # each record's id and source, for the scores
                cols += [batch.column(f"{RID}_l"), batch.column(f"{RID}_r")]
                names += ["record_id_l", "record_id_r"]
                if f"{SRC}_l" in batch.schema.names:
                    cols += [batch.column(f"{SRC}_l"), batch.column(f"{SRC}_r")]
                else:
                    zeros = pa.array(np.zeros(batch.num_rows, np.int32))
                    cols += [zeros, zeros]
                names += ["src_i", "src_j"]
            yield pa.RecordBatch.from_arrays(cols, names=names)

    if carry:
        schema = StructType(
            schema.fields
            + [
                StructField("record_id_l", LongType()),
                StructField("record_id_r", LongType()),
                StructField("src_i", IntegerType()),
                StructField("src_j", IntegerType()),
            ]
        )
    return candidates.mapInArrow(run, schema).persist(StorageLevel.MEMORY_AND_DISK)


def spark_comparer(
    spark: SparkSession,
    prepared,
    settings: LinkageSettings,
    prep,
    encoded: tuple[DataFrame, list[str]] | None = None,
):
    """``comparer(i, j)`` for :func:`recapture.linkage.training.train`: pairs given on the
    driver (the random pairs of u, a training session's sample) compared in Spark, returned
    in their order as :func:`recapture.linkage.comparisons.compare_pairs` returns them
    (``encoded`` as for :func:`compare_spark`)."""
    probe = levels_schema(settings, prep, False)
    schema = StructType([StructField("k", LongType())] + probe.fields[3:])
    parts = spark.sparkContext.defaultParallelism
    cols = None if encoded is None else encoded[1]

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        sett, prepared_records = _value(prepared)
        for batch in batches:
            levels = _levels(sett, prepared_records, batch, cols)
            yield pa.RecordBatch.from_arrays(
                [batch.column("k"), *levels.columns], names=["k", *levels.schema.names]
            )

    def compare(i: np.ndarray, j: np.ndarray):
        pairs = pa.table(
            {
                "k": np.arange(len(i), dtype=np.int64),
                "i": np.asarray(i, dtype=np.int32),
                "j": np.asarray(j, dtype=np.int32),
            }
        )
        frame = spark.createDataFrame(pairs).repartition(parts)
        if encoded is not None:
            frame = with_codes(frame, *encoded)
        out = frame.mapInArrow(run, schema).toArrow()
        order = np.argsort(out.column("k").to_numpy(), kind="stable")
        gammas, tfs = {}, {}
        for name in out.column_names[1:]:
            col = out.column(name).to_numpy(zero_copy_only=False)[order]
            if name.startswith("gamma_"):
                gammas[name[len("gamma_") :]] = col
            elif name.startswith("tf_"):
                tfs[name[len("tf_") :]] = col
        return gammas, tfs, out.column("names_swapped").to_numpy(zero_copy_only=False)[order]

    return compare


def pattern_counts(
    levels: DataFrame, settings: LinkageSettings, n: int, n_groups: int
) -> tuple[Patterns, np.ndarray | None]:
    """The candidate pairs' comparison patterns and counts, aggregated in Spark.

    Patterns come in the order of their first pair (by i·n + j), the order
    :meth:`Patterns.from_gammas` gives the local engine's sorted pairs, so EM sums the same
    numbers in the same order. With ``n_groups`` > 0 also the (n_groups, n_patterns)
    counts per prior group.
    """
    gcols = [f"gamma_{c.name}" for c in settings.comparisons]
    keys = gcols + ([PRIOR_GROUP] if n_groups else [])
    code = F.col("i").cast("long") * F.lit(n) + F.col("j").cast("long")
    table = (
        levels.groupBy(*keys).agg(F.count(F.lit(1)).alias("n"), F.min(code).alias("first"))
    ).toArrow()
    lv = (
        np.column_stack(
            [table.column(c).to_numpy(zero_copy_only=False).astype(np.int8) for c in gcols]
        )
        if table.num_rows
        else np.zeros((0, len(gcols)), np.int8)
    )
    counts = table.column("n").to_numpy(zero_copy_only=False).astype(np.float64)
    first = table.column("first").to_numpy(zero_copy_only=False)
    # one row per pattern: its first pair over all groups
    radix = np.int64(1)
    pcode = np.zeros(table.num_rows, np.int64)
    for k, c in enumerate(settings.comparisons):
        pcode += (lv[:, k].astype(np.int64) + 1) * radix
        radix *= c.n_levels + 1
    uniq, inverse = np.unique(pcode, return_inverse=True)
    inverse = inverse.ravel()
    first_of = np.full(uniq.size, np.iinfo(np.int64).max)
    np.minimum.at(first_of, inverse, first)
    rank = np.empty(uniq.size, np.int64)
    rank[np.argsort(first_of, kind="stable")] = np.arange(uniq.size)
    pat_of_row = rank[inverse]
    levels_out = np.zeros((uniq.size, len(gcols)), np.int8)
    levels_out[pat_of_row] = lv
    total = np.bincount(pat_of_row, weights=counts, minlength=uniq.size)
    patterns = Patterns(levels=levels_out, counts=total, index=np.zeros(0, np.int64))
    group_counts = None
    if n_groups:
        group = table.column(PRIOR_GROUP).to_numpy(zero_copy_only=False).astype(np.int64)
        flat = group * uniq.size + pat_of_row
        group_counts = np.bincount(flat, weights=counts, minlength=n_groups * uniq.size).reshape(
            n_groups, uniq.size
        )
    return patterns, group_counts


def scored_schema(settings: LinkageSettings) -> StructType:
    """Schema of :func:`score_spark`'s output: pairs.parquet's columns (but ``linked``) plus
    the row positions i, j and the source codes src_i, src_j of the two records."""
    fields = [
        StructField("i", IntegerType()),
        StructField("j", IntegerType()),
        StructField("record_id_l", LongType()),
        StructField("record_id_r", LongType()),
        StructField("blocking_rule", StringType()),
    ]
    fields += [StructField(f"gamma_{c.name}", ByteType()) for c in settings.comparisons]
    fields += [
        StructField("names_swapped", BooleanType()),
        StructField("match_weight", DoubleType()),
        StructField("match_probability", DoubleType()),
        StructField("src_i", IntegerType()),
        StructField("src_j", IntegerType()),
    ]
    return StructType(fields)


def score_spark(
    spark: SparkSession,
    levels: DataFrame,
    model: FellegiSunterModel,
    settings: LinkageSettings,
    record_ids: np.ndarray | None,
    rule_names: list[str],
    with_priors: bool,
    source_codes: np.ndarray | None = None,
) -> DataFrame:
    """Match weight and probability of every pair (persisted), via ``mapInArrow(score_batch)``,
    with the record ids and rule names of pairs.parquet. Without ``record_ids`` the levels
    carry each pair's record ids and source codes (:func:`compare_spark` with encoded
    records); else they are taken from the broadcast arrays by row position."""
    if record_ids is None:
        bc = broadcast(spark, (model, None, rule_names, None))
    else:
        src = np.zeros(len(record_ids), np.int32) if source_codes is None else source_codes
        bc = broadcast(
            spark,
            (model, np.asarray(record_ids, dtype=np.int64), rule_names, np.asarray(src, np.int32)),
        )
    schema = scored_schema(settings)
    arrow_schema = _arrow_schema(schema)
    gnames = [f"gamma_{c.name}" for c in settings.comparisons]

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        fitted, ids, names, codes = _value(bc)
        rules = pa.array(names, pa.string())
        for batch in batches:
            cols = batch.schema.names
            keep = [c for c in cols if c.startswith(("gamma_", "tf_"))]
            if with_priors:
                keep.append(PRIOR_GROUP)
            scores = score_batch(fitted, batch.select(keep))
            i = batch.column("i").to_numpy(zero_copy_only=False)
            j = batch.column("j").to_numpy(zero_copy_only=False)
            rule = batch.column("rule").to_numpy(zero_copy_only=False)
            if ids is None:
                id_l, id_r = batch.column("record_id_l"), batch.column("record_id_r")
                src_i, src_j = batch.column("src_i"), batch.column("src_j")
            else:
                id_l, id_r = pa.array(ids[i]), pa.array(ids[j])
                src_i, src_j = pa.array(codes[i]), pa.array(codes[j])
            yield pa.RecordBatch.from_arrays(
                [
                    batch.column("i"),
                    batch.column("j"),
                    id_l.cast(pa.int64()),
                    id_r.cast(pa.int64()),
                    rules.take(pa.array(rule)),
                    *[batch.column(g) for g in gnames],
                    batch.column("names_swapped"),
                    scores.column("match_weight"),
                    scores.column("match_probability"),
                    src_i,
                    src_j,
                ],
                schema=arrow_schema,
            )

    return levels.mapInArrow(run, schema).persist(StorageLevel.MEMORY_AND_DISK)


def _arrow_schema(schema: StructType) -> pa.Schema:
    types = {
        IntegerType(): pa.int32(),
        LongType(): pa.int64(),
        StringType(): pa.string(),
        ByteType(): pa.int8(),
        BooleanType(): pa.bool_(),
        DoubleType(): pa.float64(),
    }
    return pa.schema([pa.field(f.name, types[f.dataType]) for f in schema.fields])
