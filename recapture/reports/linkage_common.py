"""Helpers shared by the linkage report's sections: weights and probabilities, and
looking records up by id."""

from __future__ import annotations

import math

import numpy as np

from recapture.errors import InputError

#: Width of a match-weight histogram bin (bits).
WEIGHT_BIN = 0.5


def _prob_to_weight(p: float) -> float:
    p = min(max(p, 1e-15), 1 - 1e-15)
    return math.log2(p / (1 - p))


def _lookup(
    keys: np.ndarray, values: np.ndarray, query: np.ndarray, what: str = "clusters.parquet"
) -> np.ndarray:
    """values[k] for each query key k (keys unique); vectorised, no join.

    Record ids are small non-negative integers (0, 1, … from validation), so a direct
    index table is used; sparse or negative ids fall back to a binary search.
    """
    if keys.size and query.size and keys.min() >= 0 and keys.max() < 4 * keys.size + 1024:
        table = np.full(int(max(keys.max(), query.max(initial=0))) + 1, -1, dtype=np.int64)
        table[keys] = np.arange(keys.size)
        valid = (query >= 0) & (query < table.size)
        pos = np.where(valid, table[np.where(valid, query, 0)], -1)
        if (pos < 0).any():
            missing = query[pos < 0][0]
            raise InputError(
                f"record_id {missing} of pairs.parquet is not in {what}",
                file=what,
                column="record_id",
            )
        return values[pos]
    order = np.argsort(keys, kind="stable")
    pos = np.searchsorted(keys, query, sorter=order)
    pos = np.clip(pos, 0, max(keys.size - 1, 0))
    found = keys[order[pos]] == query if keys.size else np.zeros(query.size, dtype=bool)
    if not found.all():
        missing = query[~found][0]
        raise InputError(
            f"record_id {missing} of pairs.parquet is not in {what}", file=what, column="record_id"
        )
    return values[order[pos]]
