"""Blocking rules as Spark equi-joins, unioned without duplicate pairs.

The same rules, keys and caps as :mod:`recapture.linkage.blocking`: the key columns are
computed on the driver with the local engine's own polars expressions (``key_expr``,
empty strings as missing), and the block sizes are counted there too (a group-by of n
records), so a block over ``max_block_size`` is refined or skipped, and reported, exactly
as locally. Only the joins — where the pairs appear — run in Spark: each rule's key
frame is joined with itself (or with its right-key frame), the rules' pairs are unioned
and each pair is kept once, under the first rule that produced it (``min(rule)``).
"""

from __future__ import annotations

import numpy as np
import polars as pl
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.storagelevel import StorageLevel

from recapture.linkage.blocking import ROW, SRC, BlockingResult, _empty_to_null, key_expr
from recapture.linkage.settings import BlockingRule


def _spark_frame(spark: SparkSession, frame: pl.DataFrame) -> DataFrame:
    """A small driver frame as a Spark DataFrame (row positions as long)."""
    frame = frame.with_columns(pl.col(ROW).cast(pl.Int64))
    if SRC in frame.columns:
        frame = frame.with_columns(pl.col(SRC).cast(pl.Int64))
    return spark.createDataFrame(frame.to_arrow())


def _key_frame(records: pl.DataFrame, keys: list[str], names: list[str], link_only: bool):
    carry = [pl.col(ROW)] + ([pl.col(SRC)] if link_only else [])
    frame = records.select(*carry, *[key_expr(k, a) for k, a in zip(keys, names, strict=True)])
    return _empty_to_null(frame).drop_nulls()


def _join_blocks(spark, records, keys, right_keys, max_block, link_only):
    """:func:`recapture.linkage.blocking._join_blocks` with the join in Spark: (pairs as a
    Spark DataFrame [i, j], rows in over-cap blocks with a count of those blocks, largest
    block size)."""
    names = [f"_k{k}" for k in range(len(keys))]
    cap_pairs = max_block * (max_block - 1) // 2
    left = _key_frame(records, keys, names, link_only)
    if right_keys is None:
        sizes = left.group_by(names).len()
        big = sizes.filter(pl.col("len") > max_block)
        largest = int(sizes["len"].max()) if sizes.height else 0
        big_rows = None
        if big.height:
            big_rows = (
                left.join(big.select(names), on=names, how="semi")
                .select(ROW)
                .with_columns(pl.lit(big.height).alias("_blocks"))
            )
            left = left.join(big.select(names), on=names, how="anti")
        a = _spark_frame(spark, left).alias("a")
        b = a.alias("b")
        cond = [F.col(f"a.{k}") == F.col(f"b.{k}") for k in names]
        cond.append(F.col(f"a.{ROW}") < F.col(f"b.{ROW}"))
        if link_only:
            cond.append(F.col(f"a.{SRC}") != F.col(f"b.{SRC}"))
        pairs = a.join(b, on=cond).select(
            F.col(f"a.{ROW}").alias("i"), F.col(f"b.{ROW}").alias("j")
        )
        return pairs, big_rows, largest
    right = _key_frame(records, right_keys, names, link_only)
    sl = left.group_by(names).len()
    sr = right.group_by(names).len()
    both = sl.join(sr, on=names, suffix="_r").with_columns(
        (pl.col("len") * pl.col("len_r")).alias("n")
    )
    big = both.filter(pl.col("n") > cap_pairs)
    largest = int(both["n"].max()) if both.height else 0
    big_rows = None
    if big.height:
        rows_l = left.join(big.select(names), on=names, how="semi").select(ROW)
        rows_r = right.join(big.select(names), on=names, how="semi").select(ROW)
        big_rows = (
            pl.concat([rows_l, rows_r]).unique().with_columns(pl.lit(big.height).alias("_blocks"))
        )
        left = left.join(big.select(names), on=names, how="anti")
    a = _spark_frame(spark, left).alias("a")
    b = _spark_frame(spark, right).alias("b")
    cond = [F.col(f"a.{k}") == F.col(f"b.{k}") for k in names]
    cond.append(F.col(f"a.{ROW}") != F.col(f"b.{ROW}"))
    if link_only:
        cond.append(F.col(f"a.{SRC}") != F.col(f"b.{SRC}"))
    pairs = (
        a.join(b, on=cond)
        .select(
            F.least(f"a.{ROW}", f"b.{ROW}").alias("i"),
            F.greatest(f"a.{ROW}", f"b.{ROW}").alias("j"),
        )
        .distinct()
    )
    return pairs, big_rows, largest


def _rule_pairs(spark, records, rule: BlockingRule, max_block: int, link_only: bool):
    """Pairs of one rule and its statistics, as :func:`recapture.linkage.blocking._rule_pairs`
    (``pairs`` is filled in once the rules' pairs are counted)."""
    stats = {
        "rule": rule.name,
        "keys": rule.keys,
        "blocks_refined": 0,
        "blocks_skipped": 0,
        "records_in_skipped_blocks": 0,
    }
    pairs, big, largest = _join_blocks(
        spark, records, rule.keys, rule.right_keys, max_block, link_only
    )
    stats["largest_block"] = largest
    if big is not None and rule.refine:
        stats["blocks_refined"] = int(big["_blocks"].max())
        keys = rule.keys + rule.refine
        right = rule.right_keys + rule.refine if rule.right_keys is not None else None
        sub = records.join(big, on=ROW, how="semi")
        more, big, _ = _join_blocks(spark, sub, keys, right, max_block, link_only)
        pairs = pairs.unionAll(more)
        if rule.right_keys is not None:
            pairs = pairs.distinct()
    if big is not None:
        stats["blocks_skipped"] = int(big["_blocks"].max()) if big.height else 0
        stats["records_in_skipped_blocks"] = big.height
    return pairs, stats


def block_spark(
    spark: SparkSession,
    records: pl.DataFrame,
    rules: list[BlockingRule],
    max_block_size: int,
    link_only: bool = False,
) -> tuple[DataFrame, list[dict]]:
    """Candidate pairs [i int, j int, rule int] (persisted), each once under its first rule,
    and the per-rule statistics of :func:`recapture.linkage.blocking.block`.

    ``records`` is the driver's sorted frame with ``_row`` (and ``_src`` for link_only).
    """
    stats, parts = [], []
    for index, rule in enumerate(rules):
        pairs, st = _rule_pairs(spark, records, rule, max_block_size, link_only)
        parts.append(pairs.withColumn("rule", F.lit(index)))
        stats.append(st)
    if not parts:
        empty = spark.createDataFrame([], "i int, j int, rule int")
        return empty, stats
    union = parts[0]
    for part in parts[1:]:
        union = union.unionAll(part)
    union = union.persist(StorageLevel.MEMORY_AND_DISK)
    per_rule = dict(union.groupBy("rule").count().collect())
    candidates = (
        union.groupBy("i", "j")
        .agg(F.min("rule").alias("rule"))
        .select(
            F.col("i").cast("int").alias("i"),
            F.col("j").cast("int").alias("j"),
            F.col("rule").cast("int").alias("rule"),
        )
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    first = dict(candidates.groupBy("rule").count().collect())
    union.unpersist()
    for index, st in enumerate(stats):
        st["pairs"] = int(per_rule.get(index, 0))
        st["pairs_first"] = int(first.get(index, 0))
    return candidates, stats


def collect_blocks(
    candidates: DataFrame, stats: list[dict], rules: list[BlockingRule], n: int
) -> BlockingResult:
    """The candidate pairs on the driver, in the local engine's order (by i, then j)."""
    table = candidates.select("i", "j", "rule").toArrow()
    i = table.column("i").to_numpy().astype(np.int64)
    j = table.column("j").to_numpy().astype(np.int64)
    rule = table.column("rule").to_numpy().astype(np.uint8)
    order = np.argsort(i * n + j, kind="stable")
    return BlockingResult(
        i=i[order].astype(np.int32),
        j=j[order].astype(np.int32),
        rule=rule[order],
        rule_names=[r.name for r in rules],
        stats=stats,
        n_records=n,
    )
