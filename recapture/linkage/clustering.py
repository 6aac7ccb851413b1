"""Clustering scored pairs into persons: connected components with a guard against chaining.

Connected components at a threshold are transitive: A–B and B–C link A and C even when the
model scored A–C as clearly different people. Such a cluster holds a *conflict*: a scored
pair of its own records below ``conflict_probability``. The guard reports those clusters
and (``chaining_action = "split"``) raises the threshold inside them step by step until no
conflict remains, leaving every other cluster as it was.

Person ids are deterministic: clusters are numbered in the order of their smallest record id.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components, minimum_spanning_tree


@dataclass
class Clustering:
    labels: np.ndarray  # person id per record row (0..n_persons-1, ordered by smallest row)
    linked: np.ndarray  # bool per candidate pair: an edge used by the clustering
    report: dict = field(default_factory=dict)


def _components(n: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    graph = coo_matrix((np.ones(i.size, dtype=np.int8), (i, j)), shape=(n, n)).tocsr()
    _, labels = connected_components(graph, directed=False)
    return _renumber(labels)


def _renumber(labels: np.ndarray) -> np.ndarray:
    """Number clusters by their smallest member row, so ids do not depend on graph internals."""
    n_labels = int(labels.max()) + 1 if labels.size else 0
    first = np.full(n_labels, labels.size, dtype=np.int64)
    np.minimum.at(first, labels, np.arange(labels.size))
    order = np.argsort(first, kind="stable")
    rank = np.empty(n_labels, dtype=np.int64)
    rank[order] = np.arange(n_labels)
    return rank[labels]


def mutual_best(
    i: np.ndarray, j: np.ndarray, prob: np.ndarray, src: np.ndarray, keep: np.ndarray
) -> np.ndarray:
    """Keep a cross-source edge only if it is each end's best edge into the other's source."""
    idx = np.flatnonzero(keep & (src[i] != src[j]))
    if idx.size == 0:
        return keep
    frame = pl.DataFrame(
        {"e": idx, "a": i[idx], "b": j[idx], "sa": src[i[idx]], "sb": src[j[idx]], "p": prob[idx]}
    )
    # ties broken by the smaller partner row, deterministically
    best_a = frame.sort(["p", "b"], descending=[True, False]).group_by(["a", "sb"]).first()["e"]
    best_b = frame.sort(["p", "a"], descending=[True, False]).group_by(["b", "sa"]).first()["e"]
    good = np.intersect1d(best_a.to_numpy(), best_b.to_numpy())
    out = keep.copy()
    out[idx] = False
    out[good] = True
    return out


def _conflicts(labels, i, j) -> np.ndarray:
    """Clusters holding one of the pairs (i, j): pairs scored below the conflict limit (the
    model says: different people)."""
    li = labels[i]
    return np.unique(li[li == labels[j]])


def cluster_pairs(
    n: int,
    i: np.ndarray,
    j: np.ndarray,
    prob: np.ndarray,
    threshold: float,
    *,
    sources: np.ndarray | None = None,
    one_to_one: bool = False,
    conflict_probability: float = 0.01,
    chaining_action: str = "split",
    chaining_steps: list[float] | None = None,
) -> Clustering:
    keep = prob >= threshold
    report: dict = {"threshold": threshold}
    if one_to_one and sources is not None:
        before = int(keep.sum())
        keep = mutual_best(i, j, prob, sources, keep)
        report["one_to_one_links_removed"] = before - int(keep.sum())
    labels = _components(n, i[keep], j[keep])
    # Splitting only ever splits clusters, so a low pair that is not inside one cluster now
    # never will be: the guard watches the few that are.
    grouped = np.bincount(labels)[labels] > 1  # records not alone in their cluster
    low = np.flatnonzero((prob < conflict_probability) & grouped[i] & grouped[j])
    inside = low[labels[i[low]] == labels[j[low]]]
    ci, cj = i[inside], j[inside]
    conflicted = _conflicts(labels, ci, cj)
    chaining = {
        "conflict_probability": conflict_probability,
        "clusters_with_conflicts": int(conflicted.size),
        "records_in_conflicted_clusters": int(np.isin(labels, conflicted).sum()),
        "action": chaining_action,
        "steps": [],
    }
    if chaining_action == "split" and conflicted.size:
        for step in chaining_steps or []:
            if step <= threshold:
                continue
            flagged = np.zeros(int(labels.max()) + 1, dtype=bool)
            flagged[conflicted] = True
            kept = np.flatnonzero(keep)
            drop = kept[flagged[labels[i[kept]]] & (prob[kept] < step)]
            keep[drop] = False
            labels = _components(n, i[keep], j[keep])
            conflicted = _conflicts(labels, ci, cj)
            chaining["steps"].append(
                {
                    "threshold": step,
                    "links_removed": int(drop.size),
                    "clusters_with_conflicts": int(conflicted.size),
                }
            )
            if conflicted.size == 0:
                break
        chaining["clusters_with_conflicts_after"] = int(conflicted.size)
    report["chaining"] = chaining
    report.update(_shape_report(n, labels, i, j, prob, keep))
    return Clustering(labels=labels, linked=keep, report=report)


def _shape_report(n, labels, i, j, prob, keep) -> dict:
    sizes = np.bincount(labels)
    hist = np.bincount(np.minimum(sizes, 10))
    dist = {("10+" if k == 10 else str(k)): int(v) for k, v in enumerate(hist) if v and k > 0}
    out = {
        "records": n,
        "clusters": int(sizes.size),
        "singletons": int((sizes == 1).sum()),
        "largest_cluster": int(sizes.max()) if sizes.size else 0,
        "cluster_size_distribution": dist,
    }
    # weakest link: the smallest edge of each cluster's maximum spanning tree, i.e. the
    # threshold just above which the cluster would fall apart
    if keep.any():
        graph = coo_matrix((2.0 - prob[keep], (i[keep], j[keep])), shape=(n, n)).tocsr()
        tree = minimum_spanning_tree(graph).tocoo()
        tree_p = 2.0 - tree.data
        weakest = np.full(sizes.size, np.inf)
        np.minimum.at(weakest, labels[tree.row], tree_p)
        multi = sizes > 1
        w = weakest[multi]
        out["weakest_link_quantiles"] = {
            q: float(np.quantile(w, float(q))) for q in ("0.01", "0.05", "0.5")
        }
        within = np.bincount(labels[i[keep]], minlength=sizes.size)
        possible = sizes * (sizes - 1) / 2
        big = sizes >= 4
        density = np.divide(within, possible, out=np.ones(sizes.size), where=possible > 0)
        out["sparse_clusters"] = int((big & (density < 0.5)).sum())
        out["sparse_cluster_rule"] = "size >= 4 and fewer than half of its record pairs linked"
    return out
