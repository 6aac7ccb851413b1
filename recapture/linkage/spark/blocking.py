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

from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.storagelevel import StorageLevel

from recapture.linkage.blocking import (
    ROW,
    SRC,
    BlockingResult,
    _empty_to_null,
    key_expr,
    over_cap_blocks,
    rule_stats,
)
from recapture.linkage.settings import BlockingRule

#: Records per partition of the key frame (fewer partitions, fewer tasks per join: a
#: small run is not spread over more tasks than it has work for).
ROWS_PER_PARTITION = 100_000


def _key_frame(records: pl.DataFrame, keys: list[str], names: list[str]) -> pl.DataFrame:
    frame = records.select(ROW, *[key_expr(k, a) for k, a in zip(keys, names, strict=True)])
    return _empty_to_null(frame).drop_nulls()


def _pass(records: pl.DataFrame, keys, right_keys, max_block: int, tag: str):
    """One join pass of :func:`recapture.linkage.blocking._join_blocks`, up to the join: the
    key columns (named ``{tag}l<k>``/``{tag}r<k>``, missing for rows that take no part),
    the rows in over-cap blocks with a count of those blocks, the largest block size."""
    names = [f"{tag}l{k}" for k in range(len(keys))]
    left = _key_frame(records, keys, names)
    if right_keys is None:
        left, big_rows, largest = over_cap_blocks(left, None, names, max_block)
        return [left], (names, None), big_rows, largest
    rnames = [f"{tag}r{k}" for k in range(len(keys))]
    right = _key_frame(records, right_keys, rnames)
    keyed_right = right.rename(dict(zip(rnames, names, strict=True)))
    left, big_rows, largest = over_cap_blocks(left, keyed_right, names, max_block)
    return [left, right], (names, rnames), big_rows, largest


def _rule_keys(records: pl.DataFrame, rule: BlockingRule, index: int, max_block: int):
    """The key frames and join passes of one rule, and its statistics, as
    :func:`recapture.linkage.blocking._rule_pairs` (pair counts filled in later)."""
    stats = rule_stats(rule)
    frames, names, big, largest = _pass(records, rule.keys, rule.right_keys, max_block, f"r{index}")
    passes = [names]
    stats["largest_block"] = largest
    if big is not None and rule.refine:
        stats["blocks_refined"] = int(big["_blocks"].max())
        keys = rule.keys + rule.refine
        right = rule.right_keys + rule.refine if rule.right_keys is not None else None
        sub = records.join(big, on=ROW, how="semi")
        more, names, big, _ = _pass(sub, keys, right, max_block, f"f{index}")
        frames += more
        passes.append(names)
    if big is not None:
        stats["blocks_skipped"] = int(big["_blocks"].max()) if big.height else 0
        stats["records_in_skipped_blocks"] = big.height
    return frames, passes, stats


def _join(wide: DataFrame, names: list[str], rnames: list[str] | None, link_only: bool):
    """Pairs [i, j] of one join pass over the shared key frame."""
    carry = [ROW] + ([SRC] if link_only else [])
    keys = [f"_k{k}" for k in range(len(names))]
    a = wide.select(*carry, *[F.col(c).alias(k) for c, k in zip(names, keys, strict=True)])
    a = a.dropna(subset=keys).alias("a")
    if rnames is None:
        b = a.alias("b")
    else:
        b = wide.select(*carry, *[F.col(c).alias(k) for c, k in zip(rnames, keys, strict=True)])
        b = b.dropna(subset=keys).alias("b")
    cond = [F.col(f"a.{k}") == F.col(f"b.{k}") for k in keys]
    if rnames is None:
        cond.append(F.col(f"a.{ROW}") < F.col(f"b.{ROW}"))
    else:
        cond.append(F.col(f"a.{ROW}") != F.col(f"b.{ROW}"))
    if link_only:
        cond.append(F.col(f"a.{SRC}") != F.col(f"b.{SRC}"))
    joined = a.join(b, on=cond)
    if rnames is None:
        return joined.select(F.col(f"a.{ROW}").alias("i"), F.col(f"b.{ROW}").alias("j"))
    return joined.select(
        F.least(f"a.{ROW}", f"b.{ROW}").alias("i"), F.greatest(f"a.{ROW}", f"b.{ROW}").alias("j")
    )


def block_spark(
    spark: SparkSession,
    records: pl.DataFrame,
    rules: list[BlockingRule],
    max_block_size: int,
    link_only: bool = False,
) -> tuple[DataFrame, list[dict]]:
    """Candidate pairs [i int, j int, rule int, rules long] (persisted): each pair once,
    under its first rule, with the bit mask of all rules that produced it; and the per-rule
    statistics of :func:`recapture.linkage.blocking.block` (counted by
    :func:`collect_blocks`).

    ``records`` is the driver's sorted frame with ``_row`` (and ``_src`` for link_only).
    The key columns of every rule go to Spark once, in one frame (a row's key is missing
    where the row takes no part in a pass: a missing key, an over-cap block).
    """
    if len(rules) > 62:
        raise ValueError("at most 62 blocking rules")
    n = records.height
    wide = records.select(ROW, *([SRC] if link_only else []))
    stats, passes = [], []
    for index, rule in enumerate(rules):
        frames, rule_passes, st = _rule_keys(records, rule, index, max_block_size)
        for frame in frames:
            wide = wide.join(frame, on=ROW, how="left")
        passes.append(rule_passes)
        stats.append(st)
    wide = wide.with_columns(pl.col(ROW).cast(pl.Int64))
    if link_only:
        wide = wide.with_columns(pl.col(SRC).cast(pl.Int64))
    parts_wanted = max(1, min(spark.sparkContext.defaultParallelism, -(-n // ROWS_PER_PARTITION)))
    keyframe = (
        spark.createDataFrame(wide.to_arrow())
        .repartition(parts_wanted)
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    keyframe.count()  # materialised once: its size lets Spark broadcast a small one in joins
    parts = []
    for index, rule_passes in enumerate(passes):
        pairs = None
        for names, rnames in rule_passes:
            more = _join(keyframe, names, rnames, link_only)
            pairs = more if pairs is None else pairs.unionAll(more)
        if rules[index].right_keys is not None or len(rule_passes) > 1:
            pairs = pairs.distinct()
        parts.append(
            pairs.withColumn("rule", F.lit(index)).withColumn("bit", F.lit(1 << index).cast("long"))
        )
    if not parts:
        return spark.createDataFrame([], "i int, j int, rule int, rules long"), stats
    union = parts[0]
    for part in parts[1:]:
        union = union.unionAll(part)
    candidates = (
        union.groupBy("i", "j")
        .agg(F.min("rule"), F.bit_or("bit"))
        .toDF("i", "j", "rule", "rules")
        .select(
            F.col("i").cast("int").alias("i"),
            F.col("j").cast("int").alias("j"),
            F.col("rule").cast("int").alias("rule"),
            "rules",
        )
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    candidates.count()  # materialise before the key frame goes
    keyframe.unpersist()
    return candidates, stats


def collect_blocks(
    candidates: DataFrame, stats: list[dict], rules: list[BlockingRule], n: int
) -> BlockingResult:
    """The candidate pairs on the driver, in the local engine's order (by i, then j), and
    each rule's pair counts (all its pairs, and those it produced first) set in ``stats``."""
    table = candidates.select("i", "j", "rule", "rules").toArrow()
    i = table.column("i").to_numpy().astype(np.int64)
    j = table.column("j").to_numpy().astype(np.int64)
    rule = table.column("rule").to_numpy().astype(np.uint8)
    mask = table.column("rules").to_numpy().astype(np.int64)
    first = np.bincount(rule, minlength=len(rules))
    for index, st in enumerate(stats):
        st["pairs"] = int(np.count_nonzero(mask & (1 << index)))
        st["pairs_first"] = int(first[index])
    order = np.argsort(i * n + j, kind="stable")
    return BlockingResult(
        i=i[order].astype(np.int32),
        j=j[order].astype(np.int32),
        rule=rule[order],
        rule_names=[r.name for r in rules],
        stats=stats,
        n_records=n,
    )


def count_blocks(
    candidates: DataFrame, stats: list[dict], rules: list[BlockingRule], n: int
) -> BlockingResult:
    """The candidate pairs' count and each rule's pair counts (all its pairs, and those it
    produced first), aggregated in Spark and set in ``stats``: what the run's metrics need
    of the blocking, without bringing the pairs to the driver (the returned result holds
    no pair arrays; ``n_pairs`` is the count)."""
    aggs = [F.count(F.lit(1)).alias("pairs")]
    for index in range(len(rules)):
        aggs.append(F.sum((F.col("rule") == index).cast("long")).alias(f"first{index}"))
        bit = F.col("rules").bitwiseAND(F.lit(1 << index).cast("long")) != 0
        aggs.append(F.sum(bit.cast("long")).alias(f"all{index}"))
    row = candidates.agg(*aggs).collect()[0]
    for index, st in enumerate(stats):
        st["pairs"] = int(row[f"all{index}"] or 0)
        st["pairs_first"] = int(row[f"first{index}"] or 0)
    return CountedBlocks(
        i=np.zeros(0, np.int32),
        j=np.zeros(0, np.int32),
        rule=np.zeros(0, np.uint8),
        rule_names=[r.name for r in rules],
        stats=stats,
        n_records=n,
        pairs=int(row["pairs"]),
    )


@dataclass
class CountedBlocks(BlockingResult):
    """A :class:`BlockingResult` whose pairs stay in Spark: their number, no arrays."""

    pairs: int = 0

    @property
    def n_pairs(self) -> int:
        return self.pairs


def candidate_test(spark: SparkSession, candidates: DataFrame):
    """``is_candidate(ri, rj)`` for the training's random pairs (a bool per pair), by a
    semi-join with the candidate pairs in Spark instead of their codes on the driver."""
    pairs = candidates.select("i", "j")

    def is_candidate(ri: np.ndarray, rj: np.ndarray) -> np.ndarray:
        if ri.size == 0:
            return np.zeros(0, dtype=bool)
        probe = pa.table(
            {
                "k": pa.array(np.arange(ri.size, dtype=np.int64)),
                "i": pa.array(ri.astype(np.int32)),
                "j": pa.array(rj.astype(np.int32)),
            }
        )
        hits = spark.createDataFrame(probe).join(pairs, on=["i", "j"], how="left_semi")
        found = hits.select("k").toArrow().column("k").to_numpy()
        out = np.zeros(ri.size, dtype=bool)
        out[found] = True
        return out

    return is_candidate
