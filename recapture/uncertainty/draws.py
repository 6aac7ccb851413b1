"""Random link configurations drawn from pair match probabilities.

The scheme (documented in docs/linkage-uncertainty.md):

1. every scored candidate pair with probability p is drawn as a link with probability p,
   independently (pairs below ``min_probability`` are never drawn);
2. the drawn links are closed transitively into persons (connected components);
3. transitivity can chain records the model scored as clearly different people: a drawn
   cluster that holds a scored pair below ``conflict_probability`` is split the way the
   linkage engine splits its own clusters — its drawn links weaker than the next chaining
   step are dropped, step after step, until no conflict remains.

With every probability 0 or 1, step 1 draws exactly the links at or above any threshold
in (0, 1), so a draw reproduces the deterministic clustering. Steps 1–2 alone would
over-merge through transitivity; step 3 removes the incoherent merges and leaves the
coherent ones (three records of one person, each pair scored high) untouched. Everything
is vectorised: one uniform per pair, sparse connected components, ``np.isin`` for the guard.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from recapture.errors import InputError

#: The linkage engine's default chaining guard.
DEFAULT_CONFLICT_PROBABILITY = 0.01
DEFAULT_CHAINING_STEPS: tuple[float, ...] = (0.8, 0.9, 0.95, 0.99, 0.999)


@dataclass(frozen=True)
class PairGraph:
    """Scored pairs in row-index form, prepared once and drawn from many times."""

    record_ids: np.ndarray  # sorted record ids; node k is record_ids[k]
    left: np.ndarray  # node index of each drawable pair
    right: np.ndarray
    probability: np.ndarray
    conflict_left: np.ndarray  # pairs below the conflict probability (never linked together)
    conflict_right: np.ndarray
    conflict_probability: float
    chaining_steps: tuple[float, ...]
    #: Σ p over pairs too improbable to draw (the expected links the draws leave out).
    undrawn_probability_mass: float

    @property
    def n_records(self) -> int:
        return int(self.record_ids.size)

    @property
    def expected_links(self) -> float:
        """Expected number of drawn pair links, Σ p over drawable pairs."""
        return float(self.probability.sum())


def prepare_pairs(
    record_ids: Sequence[int] | np.ndarray | pl.Series,
    pairs: pl.DataFrame,
    *,
    conflict_probability: float = DEFAULT_CONFLICT_PROBABILITY,
    chaining_steps: Sequence[float] = DEFAULT_CHAINING_STEPS,
    min_probability: float = 1e-6,
) -> PairGraph:
    """Index the scored pairs (``record_id_l``, ``record_id_r``, ``match_probability``)
    against the records, so that each draw is pure numpy."""
    ids = np.unique(np.asarray(record_ids, dtype=np.int64))
    for col in ("record_id_l", "record_id_r", "match_probability"):
        if col not in pairs.columns:
            raise InputError(f"pairs need column {col!r}", column=col)
    left_ids = pairs["record_id_l"].to_numpy().astype(np.int64)
    right_ids = pairs["record_id_r"].to_numpy().astype(np.int64)
    prob = pairs["match_probability"].to_numpy().astype(float)
    if prob.size and (np.isnan(prob).any() or prob.min() < 0 or prob.max() > 1):
        raise InputError("match_probability must lie in [0, 1]", column="match_probability")
    li = np.searchsorted(ids, left_ids)
    ri = np.searchsorted(ids, right_ids)
    li_c = np.minimum(li, max(ids.size - 1, 0))
    ri_c = np.minimum(ri, max(ids.size - 1, 0))
    known = (ids.size > 0) & (ids[li_c] == left_ids) & (ids[ri_c] == right_ids)
    if not np.all(known):
        bad = int(np.flatnonzero(~known)[0])
        raise InputError(
            f"pair ({left_ids[bad]}, {right_ids[bad]}) refers to a record that is not among the records",
            column="record_id_l",
        )
    drawable = prob >= min_probability
    conflict = prob < conflict_probability
    return PairGraph(
        record_ids=ids,
        left=li[drawable].astype(np.int64),
        right=ri[drawable].astype(np.int64),
        probability=prob[drawable],
        conflict_left=li[conflict].astype(np.int64),
        conflict_right=ri[conflict].astype(np.int64),
        conflict_probability=float(conflict_probability),
        chaining_steps=tuple(sorted(float(s) for s in chaining_steps)),
        undrawn_probability_mass=float(prob[~drawable].sum()),
    )


def _components(n: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    graph = coo_matrix((np.ones(i.size, dtype=np.int8), (i, j)), shape=(n, n)).tocsr()
    return connected_components(graph, directed=False)[1]


def cluster_links(graph: PairGraph, linked: np.ndarray, *, floor: float = 0.0) -> np.ndarray:
    """Persons (component label per record) from a boolean link per drawable pair, with the
    chaining guard; steps at or below ``floor`` (a threshold already applied) are skipped.

    Splitting only removes links, so clusters only shrink: conflicts are searched once
    over all conflict pairs, and later steps look only at the pairs still conflicting and
    the links inside conflicted clusters."""
    n = graph.n_records
    edges = np.flatnonzero(np.asarray(linked, dtype=bool))
    left, right, prob = graph.left[edges], graph.right[edges], graph.probability[edges]
    labels = _components(n, left, right)
    if graph.conflict_left.size == 0:
        return labels
    same = labels[graph.conflict_left] == labels[graph.conflict_right]
    cl, cr = graph.conflict_left[same], graph.conflict_right[same]
    for step in graph.chaining_steps:
        if cl.size == 0:
            break
        if step <= floor:
            continue
        bad = np.zeros(n, dtype=bool)  # labels are < n
        bad[labels[cl]] = True
        drop = bad[labels[left]] & (prob < step)
        left, right, prob = left[~drop], right[~drop], prob[~drop]
        labels = _components(n, left, right)
        still = labels[cl] == labels[cr]
        cl, cr = cl[still], cr[still]
    return labels


def threshold_labels(graph: PairGraph, threshold: float) -> np.ndarray:
    """The deterministic clustering: links at or above ``threshold``, then the guard."""
    return cluster_links(graph, graph.probability >= threshold, floor=threshold)


def draw_labels(graph: PairGraph, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """One random clustering: each pair linked with its probability, then the guard.
    Returns the labels and the number of pair links drawn."""
    linked = rng.random(graph.probability.size) < graph.probability
    return cluster_links(graph, linked), int(linked.sum())


def labels_to_clusters(graph: PairGraph, labels: np.ndarray) -> pl.DataFrame:
    """clusters frame (record_id, person_id) for :func:`build_persons`."""
    return pl.DataFrame({"record_id": graph.record_ids, "person_id": labels.astype(np.int64)})


def within_cluster_pairs(labels: np.ndarray) -> int:
    """Number of record pairs that share a person: Σ s(s−1)/2 over cluster sizes s."""
    sizes = np.bincount(labels)
    return int((sizes * (sizes - 1) // 2).sum())
