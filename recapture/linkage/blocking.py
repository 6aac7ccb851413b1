"""Blocking: candidate record pairs from equality joins on keys, unioned without duplicates.

Each rule is a polars join of the records with themselves on the rule's keys, so candidate
generation is a hash join and scales like one (and maps onto any engine that can join).
A key value held by more than ``max_block_size`` records is skipped for that rule and
reported: such a block (a very common name in a common year) would add pairs quadratically
while the other rules, with more keys, still reach its true matches.

Pairs are held as row positions ``i < j`` into the record frame sorted by record id, so
``i < j`` is the same as ``record_id_l < record_id_r``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl

from recapture.linkage.settings import BlockingRule, parse_key

ROW = "_row"
SRC = "_src"


@dataclass
class BlockingResult:
    """Candidate pairs (positions ``i < j``), the first rule producing each, and per-rule counts."""

    i: np.ndarray
    j: np.ndarray
    rule: np.ndarray  # index into rule_names of the first rule producing the pair
    rule_names: list[str]
    stats: list[dict] = field(default_factory=list)
    n_records: int = 0

    @property
    def n_pairs(self) -> int:
        return int(self.i.size)

    def reduction_ratio(self) -> float:
        total = self.n_records * (self.n_records - 1) / 2
        return 1.0 - self.n_pairs / total if total > 0 else 0.0

    def to_frame(self) -> pl.DataFrame:
        return pl.DataFrame({"i": self.i, "j": self.j, "rule": self.rule})


def rule_stats(rule: BlockingRule) -> dict:
    """A rule's entry in the blocking statistics, before its blocks are counted (every
    engine reports the same keys)."""
    return {
        "rule": rule.name,
        "keys": rule.keys,
        "blocks_refined": 0,
        "blocks_skipped": 0,
        "records_in_skipped_blocks": 0,
    }


def key_expr(key: str, alias: str) -> pl.Expr:
    """Polars expression of a blocking key; empty strings count as missing."""
    fn, col, n = parse_key(key)
    expr = pl.col(col)
    if fn == "first":
        expr = expr.str.slice(0, n)
    elif fn == "last":
        expr = expr.str.slice(-n, n)
    elif fn == "token1":
        expr = expr.str.split(" ").list.first()
    elif fn == "compact":
        expr = expr.str.replace_all(r"[\s\-']", "")
    elif fn == "sorted":
        expr = expr.str.split(" ").list.sort().list.join(" ")
    elif fn == "plus":
        return (expr + n).alias(alias)
    if fn is not None:
        expr = pl.when(expr.str.len_chars() > 0).then(expr).otherwise(None)
    return expr.alias(alias)


def _empty_to_null(frame: pl.DataFrame) -> pl.DataFrame:
    exprs = [
        pl.when(pl.col(c).str.len_chars() > 0).then(pl.col(c)).otherwise(None).alias(c)
        for c, t in frame.schema.items()
        if t == pl.String
    ]
    return frame.with_columns(exprs) if exprs else frame


def _rule_pairs(
    records: pl.DataFrame, rule: BlockingRule, max_block: int, link_only: bool
) -> tuple[pl.DataFrame, dict]:
    """Pairs of one rule. A block over the cap is re-blocked with the rule's ``refine`` keys
    added (a second key only where the first is too common); what is still too big is
    skipped. Both are reported."""
    stats = rule_stats(rule)
    pairs, big, largest = _join_blocks(records, rule.keys, rule.right_keys, max_block, link_only)
    stats["largest_block"] = largest
    if big is not None and rule.refine:
        stats["blocks_refined"] = int(big["_blocks"].max())
        keys = rule.keys + rule.refine
        right = rule.right_keys + rule.refine if rule.right_keys is not None else None
        sub = records.join(big, on=ROW, how="semi")
        more, big, _ = _join_blocks(sub, keys, right, max_block, link_only)
        pairs = (
            pl.concat([pairs, more]).unique()
            if rule.right_keys is not None
            else pl.concat([pairs, more])
        )
    if big is not None:
        stats["blocks_skipped"] = int(big["_blocks"].max()) if big.height else 0
        stats["records_in_skipped_blocks"] = big.height
    stats["pairs"] = pairs.height
    return pairs, stats


def over_cap_blocks(
    left: pl.DataFrame, right: pl.DataFrame | None, names: list[str], max_block: int
) -> tuple[pl.DataFrame, pl.DataFrame | None, int]:
    """Blocks of key columns ``names`` too large to join: (left without them, the rows in
    them with the count of such blocks as ``_blocks`` — None when there are none —, the
    largest block size). Without ``right`` a block is too large above ``max_block`` records;
    with it (keys renamed to ``names``), above the pairs a block of ``max_block`` records
    makes. Shared by the local and the Spark engine, so both skip the same blocks."""
    if right is None:
        sizes = left.group_by(names).len()
        big = sizes.filter(pl.col("len") > max_block)
        largest = int(sizes["len"].max()) if sizes.height else 0
        parts = [left]
    else:
        both = (
            left.group_by(names)
            .len()
            .join(right.group_by(names).len(), on=names, suffix="_r")
            .with_columns((pl.col("len") * pl.col("len_r")).alias("n"))
        )
        big = both.filter(pl.col("n") > max_block * (max_block - 1) // 2)
        largest = int(both["n"].max()) if both.height else 0
        parts = [left, right]
    if not big.height:
        return left, None, largest
    keys = big.select(names)
    rows = pl.concat([p.join(keys, on=names, how="semi").select(ROW) for p in parts])
    big_rows = (rows if right is None else rows.unique()).with_columns(
        pl.lit(big.height).alias("_blocks")
    )
    return left.join(keys, on=names, how="anti"), big_rows, largest


def _join_blocks(records, keys, right_keys, max_block, link_only):
    """(pairs, rows in over-cap blocks with a count of those blocks, largest block size)."""
    names = [f"_k{k}" for k in range(len(keys))]
    carry = [pl.col(ROW)] + ([pl.col(SRC)] if link_only else [])
    other_source = (pl.col(SRC) != pl.col(f"{SRC}_r")) if link_only else pl.lit(True)
    left = records.select(*carry, *[key_expr(k, a) for k, a in zip(keys, names, strict=True)])
    left = _empty_to_null(left).drop_nulls()
    if right_keys is None:
        left, big_rows, largest = over_cap_blocks(left, None, names, max_block)
        pairs = (
            left.join(left, on=names, suffix="_r")
            .filter((pl.col(ROW) < pl.col(f"{ROW}_r")) & other_source)
            .select(pl.col(ROW).alias("i"), pl.col(f"{ROW}_r").alias("j"))
        )
        return pairs, big_rows, largest
    right = records.select(
        *carry, *[key_expr(k, a) for k, a in zip(right_keys, names, strict=True)]
    )
    right = _empty_to_null(right).drop_nulls()
    left, big_rows, largest = over_cap_blocks(left, right, names, max_block)
    pairs = (
        left.join(right, on=names, suffix="_r")
        .filter((pl.col(ROW) != pl.col(f"{ROW}_r")) & other_source)
        .select(
            pl.min_horizontal(ROW, f"{ROW}_r").alias("i"),
            pl.max_horizontal(ROW, f"{ROW}_r").alias("j"),
        )
        .unique()
    )
    return pairs, big_rows, largest


def block(
    records: pl.DataFrame, rules: list[BlockingRule], max_block_size: int, link_only: bool = False
) -> BlockingResult:
    """Union the candidate pairs of every rule; each pair is kept once, under its first rule.

    ``records`` must carry the row position column ``_row`` (0..n-1 in record-id order), and
    for ``link_only`` (pairs across sources only) an integer source column ``_src``.
    """
    n = records.height
    keys_parts, rule_parts, stats = [], [], []
    for index, rule in enumerate(rules):
        pairs, st = _rule_pairs(records, rule, max_block_size, link_only)
        i = pairs["i"].to_numpy().astype(np.int64)
        j = pairs["j"].to_numpy().astype(np.int64)
        keys_parts.append(i * n + j)
        rule_parts.append(np.full(i.size, index, dtype=np.uint8))
        stats.append(st)
    keys = np.concatenate(keys_parts) if keys_parts else np.zeros(0, np.int64)
    rule_of = np.concatenate(rule_parts) if rule_parts else np.zeros(0, np.uint8)
    # one sort of (pair, rule) packed in an int64: equal pairs end up adjacent in rule order,
    # the first of each run is the pair under its first rule, and the output order is fixed
    # whatever order the parallel joins produced
    bits = max(int(len(rules)).bit_length(), 1)
    packed = np.sort(keys << bits | rule_of.astype(np.int64))
    keys = packed >> bits
    rule_of = (packed & ((1 << bits) - 1)).astype(np.uint8)
    if keys.size:
        first = np.empty(keys.size, dtype=bool)
        first[0] = True
        np.not_equal(keys[1:], keys[:-1], out=first[1:])
        keys, rule_of = keys[first], rule_of[first]
    counts = np.bincount(rule_of, minlength=len(rules))
    for index, st in enumerate(stats):
        st["pairs_first"] = int(counts[index])
    return BlockingResult(
        i=(keys // n).astype(np.int32),
        j=(keys % n).astype(np.int32),
        rule=rule_of,
        rule_names=[r.name for r in rules],
        stats=stats,
        n_records=records.height,
    )
