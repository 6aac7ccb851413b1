"""Blocking rules as Spark equi-joins, unioned without duplicate pairs.

The same rules, keys and caps as :mod:`recapture.linkage.blocking`: the key columns are
computed with the local engine's own polars expressions (``key_expr``, empty strings as
missing) — on the driver from its records, or on the executors by ``mapInArrow`` over the
records numbered in Spark — and the block sizes are counted with the local
``over_cap_blocks`` on the driver or with the same group-bys in Spark
(:func:`spark_key_frame`), so a block over ``max_block_size`` is refined or skipped, and
reported, exactly as locally. Only the joins — where the pairs appear — run in Spark: each rule's key
frame is joined with itself (or with its right-key frame), the rules' pairs are unioned
and each pair is kept once, under the first rule that produced it (``min(rule)``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_schema
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
from recapture.linkage.settings import BlockingRule, parse_key

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
    records: pl.DataFrame | DataFrame,
    rules: list[BlockingRule],
    max_block_size: int,
    link_only: bool = False,
) -> tuple[DataFrame, list[dict]]:
    """Candidate pairs [i int, j int, rule int, rules long] (persisted): each pair once,
    under its first rule, with the bit mask of all rules that produced it; and the per-rule
    statistics of :func:`recapture.linkage.blocking.block` (counted by
    :func:`collect_blocks`).

    ``records`` is the driver's sorted frame with ``_row`` (and ``_src`` for link_only), or
    the records numbered in Spark with the same columns (their keys are then computed and
    counted in Spark, :func:`spark_key_frame`). The key columns of every rule go to Spark
    once, in one frame (a row's key is missing where the row takes no part in a pass: a
    missing key, an over-cap block).
    """
    if len(rules) > 62:
        raise ValueError("at most 62 blocking rules")
    if isinstance(records, DataFrame):
        keyframe, passes, stats = spark_key_frame(records, rules, max_block_size, link_only)
    else:
        keyframe, passes, stats = _driver_key_frame(
            spark, records, rules, max_block_size, link_only
        )
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


def _driver_key_frame(spark, records: pl.DataFrame, rules, max_block_size, link_only):
    """The key frame built on the driver from its polars records, handed to Spark."""
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
    return keyframe, passes, stats


# ------------------------------------------------------------------ keys counted in Spark
def _key_specs(rules: list[BlockingRule]) -> list[tuple[str, str]]:
    """(column name, key) of every pass's key columns, named as :func:`_pass` names them."""
    specs = []
    for index, rule in enumerate(rules):
        tags = [(f"r{index}", rule.keys, rule.right_keys)]
        if rule.refine:
            right = rule.right_keys + rule.refine if rule.right_keys is not None else None
            tags.append((f"f{index}", rule.keys + rule.refine, right))
        for tag, keys, right_keys in tags:
            specs += [(f"{tag}l{k}", key) for k, key in enumerate(keys)]
            if right_keys is not None:
                specs += [(f"{tag}r{k}", key) for k, key in enumerate(right_keys)]
    return specs


def _keys_in_spark(records: DataFrame, rules: list[BlockingRule], link_only: bool) -> DataFrame:
    """Every pass's key columns of the numbered records, by ``mapInArrow`` running the local
    engine's polars expressions (:func:`recapture.linkage.blocking.key_expr`, empty strings
    as missing) on Arrow batches: no second copy of a key."""
    specs = _key_specs(rules)
    carry = [ROW] + ([SRC] if link_only else [])

    def keys_of(frame: pl.DataFrame) -> pl.DataFrame:
        out = frame.select(
            pl.col(ROW).cast(pl.Int64),
            *([pl.col(SRC).cast(pl.Int64)] if link_only else []),
            *[key_expr(key, name) for name, key in specs],
        )
        return _empty_to_null(out)

    probe = keys_of(pl.from_arrow(records.limit(0).toArrow())).to_arrow().schema
    target = pa.schema(
        [
            pa.field(f.name, pa.string() if pa.types.is_large_string(f.type) else f.type)
            for f in probe
        ]
    )
    schema = from_arrow_schema(target)
    used = list(dict.fromkeys(carry + [parse_key(key)[1] for _, key in specs]))

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            table = keys_of(pl.from_arrow(batch)).to_arrow().cast(target)
            yield from table.to_batches()

    return records.select(*used).mapInArrow(run, schema)


def _over_cap_spark(wide: DataFrame, names: list[str], rnames, max_block: int):
    """:func:`recapture.linkage.blocking.over_cap_blocks` on the key frame in Spark: (the
    frame with the left keys of over-cap blocks nulled and ``_big`` marking the rows in
    them, the number of such blocks, the largest block size)."""
    left = wide.select(*names).dropna(subset=names)
    sizes = left.groupBy(*names).agg(F.count(F.lit(1)).alias("len"))
    if rnames is None:
        cap = max_block
    else:
        right = wide.select(*[F.col(r).alias(n) for r, n in zip(rnames, names, strict=True)])
        right = right.dropna(subset=names).groupBy(*names).agg(F.count(F.lit(1)).alias("len_r"))
        sizes = sizes.join(right, on=names).select(
            *names, (F.col("len") * F.col("len_r")).alias("len")
        )
        cap = max_block * (max_block - 1) // 2
    # materialised without lineage: the key frame is joined with it, and a plan that held
    # both copies of the frame's history would double with every pass
    big = sizes.filter(F.col("len") > cap).select(*names).localCheckpoint(eager=True)
    row = sizes.agg(F.max("len").alias("largest")).collect()[0]
    largest = int(row["largest"] or 0)
    n_big = big.count()
    if n_big == 0:
        return wide.withColumn("_big", F.lit(False)), 0, largest
    marked = wide.join(F.broadcast(big.withColumn("_bl", F.lit(True))), on=names, how="left")
    in_big = F.coalesce(F.col("_bl"), F.lit(False))
    if rnames is not None:
        big_r = big.toDF(*rnames).withColumn("_br", F.lit(True))
        marked = marked.join(F.broadcast(big_r), on=rnames, how="left")
        in_big = in_big | F.coalesce(F.col("_br"), F.lit(False))
    cols = [c for c in wide.columns]
    out = marked.select(
        *[
            F.when(F.col("_bl").isNull(), F.col(c)).alias(c) if c in names else F.col(c)
            for c in cols
        ],
        in_big.alias("_big"),
    )
    return out, n_big, largest


def spark_key_frame(records: DataFrame, rules: list[BlockingRule], max_block: int, link_only: bool):
    """The key frame, join passes and per-rule statistics of :func:`_driver_key_frame`, with
    the keys computed and the blocks counted in Spark (the numbered records never reach the
    driver; the only collected numbers are block counts and sizes)."""
    wide = _keys_in_spark(records, rules, link_only).localCheckpoint(eager=True)
    stats, passes = [], []
    for index, rule in enumerate(rules):
        st = rule_stats(rule)
        tag = f"r{index}"
        names = [f"{tag}l{k}" for k in range(len(rule.keys))]
        rnames = None if rule.right_keys is None else [f"{tag}r{k}" for k in range(len(rule.keys))]
        wide_next, n_big, largest = _over_cap_spark(wide, names, rnames, max_block)
        st["largest_block"] = largest
        rule_passes = [(names, rnames)]
        n_refined = len(rule.keys) + len(rule.refine or [])
        refine = [f"f{index}l{k}" for k in range(n_refined)]
        refine_r = None if rule.right_keys is None else [f"f{index}r{k}" for k in range(n_refined)]
        if n_big and rule.refine:
            st["blocks_refined"] = n_big
            # the refined keys only for the rows in over-cap blocks
            own = refine + (refine_r or [])
            wide_next = wide_next.select(
                *[
                    F.when(F.col("_big"), F.col(c)).alias(c) if c in own else F.col(c)
                    for c in wide_next.columns
                    if c != "_big"
                ]
            )
            wide_next, n_big, _ = _over_cap_spark(wide_next, refine, refine_r, max_block)
            rule_passes.append((refine, refine_r))
        if n_big:
            st["blocks_skipped"] = n_big
            st["records_in_skipped_blocks"] = wide_next.filter(F.col("_big")).count()
        wide = wide_next.drop("_big").localCheckpoint(eager=True)
        passes.append(rule_passes)
        stats.append(st)
    return wide, passes, stats


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
