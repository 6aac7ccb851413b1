"""Connected components in Spark (large-star / small-star) against scipy's."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components as scipy_components

from recapture.linkage.spark.components import connected_components


def _expected(n: int, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Per node, the smallest node of its component (scipy's components)."""
    graph = coo_matrix((np.ones(src.size), (src, dst)), shape=(n, n))
    _, labels = scipy_components(graph, directed=False)
    smallest = np.full(labels.max() + 1, n)
    np.minimum.at(smallest, labels, np.arange(n))
    return smallest[labels]


def _run(spark, n, src, dst, **kwargs) -> np.ndarray:
    edges = spark.createDataFrame(
        list(zip(src.tolist(), dst.tolist(), strict=True)), "src long, dst long"
    )
    out = connected_components(spark, edges, n, **kwargs).toPandas()
    assert out["node"].is_unique and len(out) == n
    return out.sort_values("node")["component"].to_numpy()


def _mixed_graph(seed: int, path: int):
    """A disjoint union of a long path with shuffled labels, a path with sorted labels, stars,
    chains of random length, a sparse random graph, duplicates, reversed edges, self-loops
    and isolated nodes; node labels permuted so structure and label order are unrelated."""
    rng = np.random.default_rng(seed)
    parts, offset = [], 0

    def add(a, b, size):
        nonlocal offset
        parts.append((np.asarray(a) + offset, np.asarray(b) + offset))
        offset += size

    p = rng.permutation(path)
    add(p[:-1], p[1:], path)  # long path, labels in random order
    add(np.arange(199), np.arange(1, 200), 200)  # path with sorted labels (worst order)
    for _ in range(5):  # stars, centre anywhere in the label order
        k = int(rng.integers(3, 40))
        centre = int(rng.integers(k))
        leaves = np.setdiff1d(np.arange(k), [centre])
        add(np.full(leaves.size, centre), leaves, k)
    for _ in range(20):  # short chains
        k = int(rng.integers(2, 15))
        add(np.arange(k - 1), np.arange(1, k), k)
    m = 300  # sparse random graph: many small components and a few larger ones
    e = rng.integers(0, m, size=(260, 2))
    add(e[:, 0], e[:, 1], m)
    add([], [], 50)  # isolated nodes
    src = np.concatenate([a for a, _ in parts]).astype(np.int64)
    dst = np.concatenate([b for _, b in parts]).astype(np.int64)
    extra = rng.integers(0, src.size, size=30)
    src = np.concatenate([src, dst[extra], [5, 5]])  # reversed duplicates, a self-loop
    dst = np.concatenate([dst, src[extra], [5, 5]])
    relabel = rng.permutation(offset)
    return offset, relabel[src], relabel[dst]


def test_components_equal_scipy_on_mixed_graph_with_long_path(spark):
    n, src, dst = _mixed_graph(seed=7, path=1000)
    got = _run(spark, n, src, dst, checkpoint_every=2)
    np.testing.assert_array_equal(got, _expected(n, src, dst))


def test_components_of_a_nodes_frame_and_an_empty_graph(spark):
    nodes = spark.createDataFrame([(k,) for k in (3, 10, 11, 12, 40)], "node long")
    edges = spark.createDataFrame([(10, 12), (12, 11), (3, 99)], "src long, dst long")
    out = connected_components(spark, edges, nodes=nodes).toPandas().sort_values("node")
    # 99 is not a node: its edge is ignored, 3 keeps its own component
    assert out["component"].tolist() == [3, 10, 10, 10, 40]
    empty = spark.createDataFrame([], "src long, dst long")
    assert _run(spark, 4, np.array([], int), np.array([], int)).tolist() == [0, 1, 2, 3]
    assert connected_components(spark, empty, 0).count() == 0
    with pytest.raises(ValueError):
        connected_components(spark, empty)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_components_equal_scipy_on_larger_random_graphs(spark, seed):
    n, src, dst = _mixed_graph(seed=seed, path=5000)
    rng = np.random.default_rng(seed)
    more = rng.integers(0, n, size=(n // 2, 2))  # a giant component joins many parts
    src, dst = np.concatenate([src, more[:, 0]]), np.concatenate([dst, more[:, 1]])
    np.testing.assert_array_equal(_run(spark, n, src, dst), _expected(n, src, dst))
