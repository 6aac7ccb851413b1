"""Clustering in Spark equals the local clustering: partition, links used, report."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from recapture.linkage.clustering import cluster_pairs
from recapture.linkage.spark.clustering import cluster_pairs_spark


def _scored_graph(seed: int, n: int, n_pairs: int, n_sources: int = 3):
    """Distinct pairs i < j with probabilities from a few values (ties for one-to-one) and
    a continuous part; chains of strong links joined by weak ones make conflicts."""
    rng = np.random.default_rng(seed)
    sources = rng.integers(0, n_sources, size=n)
    # pairs mostly between nearby rows, so that clusters of several records form
    a = rng.integers(0, n, size=n_pairs * 2)
    b = np.clip(a + rng.integers(1, 8, size=a.size), 0, n - 1)
    keep = a != b
    codes = np.unique(np.minimum(a, b)[keep] * n + np.maximum(a, b)[keep])
    codes = rng.permutation(codes)[:n_pairs]
    i, j = codes // n, codes % n
    prob = np.where(
        rng.uniform(size=i.size) < 0.5,
        rng.choice([0.001, 0.005, 0.3, 0.6, 0.9, 0.97, 0.999], size=i.size),
        rng.uniform(size=i.size),
    )
    return n, i.astype(np.int64), j.astype(np.int64), prob, sources


def _spark_edges(spark, i, j, prob, sources):
    frame = pl.DataFrame(
        {
            "i": i,
            "j": j,
            "prob": prob,
            "src_i": sources[i].astype(np.int32),
            "src_j": sources[j].astype(np.int32),
        }
    )
    return spark.createDataFrame(frame.to_pandas())


def _assert_same(spark, n, i, j, prob, sources, threshold, **options):
    local = cluster_pairs(n, i, j, prob, threshold, sources=sources, **options)
    result = cluster_pairs_spark(
        spark, _spark_edges(spark, i, j, prob, sources), n, threshold, **options
    )
    labels = result.labels.toPandas().sort_values("row")
    assert labels["row"].tolist() == list(range(n))
    np.testing.assert_array_equal(labels["person"].to_numpy(), local.labels)
    linked = (
        pl.from_pandas(result.edges.toPandas())
        .join(pl.DataFrame({"i": i, "j": j, "k": np.arange(i.size)}), on=["i", "j"])
        .sort("k")
    )
    assert linked.height == i.size
    np.testing.assert_array_equal(linked["linked"].to_numpy(), local.linked)
    assert result.report == local.report
    return local


def _tied_best(i, j, prob, sources) -> int:
    """Rows whose best link into another source is tied between partners (one-to-one ties)."""
    f = pl.DataFrame({"a": i, "sb": sources[j], "p": prob}).filter(
        pl.Series(sources[i] != sources[j])
    )
    best = f.group_by("a", "sb").agg(pl.col("p").max().alias("m"))
    tied = f.join(best, on=["a", "sb"]).filter(pl.col("p") == pl.col("m"))
    return tied.group_by("a", "sb").len().filter(pl.col("len") > 1).height


def test_spark_clustering_equals_local_with_conflicts_split_steps_and_one_to_one(spark):
    n, i, j, prob, sources = _scored_graph(seed=5, n=120, n_pairs=200)
    assert _tied_best(i, j, prob, sources) > 0
    local = _assert_same(
        spark,
        n,
        i,
        j,
        prob,
        sources,
        0.5,
        one_to_one=True,
        conflict_probability=0.01,
        chaining_action="split",
        chaining_steps=[0.4, 0.8, 0.95, 0.99],
    )
    # the case exercises what it claims to
    report = local.report
    assert report["one_to_one_links_removed"] > 0
    assert report["chaining"]["clusters_with_conflicts"] > 0
    assert len(report["chaining"]["steps"]) >= 2
    assert all(step["links_removed"] > 0 for step in report["chaining"]["steps"])
    assert report["largest_cluster"] >= 4 and report["sparse_clusters"] > 0


@pytest.mark.slow
@pytest.mark.parametrize(
    ("seed", "threshold", "options"),
    [
        (1, 0.5, {"chaining_action": "report"}),
        (2, 0.9, {"chaining_steps": [0.95, 0.999], "conflict_probability": 0.05}),
        (4, 0.3, {"one_to_one": True, "chaining_action": "split", "chaining_steps": [0.6]}),
        (5, 0.999, {}),
        (
            3,
            0.5,
            {"one_to_one": True, "chaining_steps": [0.4, 0.8, 0.95, 0.99], "n_sources": 3},
        ),
    ],
)
def test_spark_clustering_equals_local_on_random_graphs(spark, seed, threshold, options):
    options = dict(options)
    n_sources = options.pop("n_sources", 2)
    n, i, j, prob, sources = _scored_graph(seed=seed, n=500, n_pairs=900, n_sources=n_sources)
    _assert_same(spark, n, i, j, prob, sources, threshold, **options)


def test_spark_clustering_without_links(spark):
    i = np.array([0, 2], dtype=np.int64)
    j = np.array([1, 3], dtype=np.int64)
    prob = np.array([0.1, 0.2])
    local = _assert_same(spark, 5, i, j, prob, np.zeros(5, dtype=np.int64), 0.9)
    assert local.report["clusters"] == 5 and "weakest_link_quantiles" not in local.report


@pytest.mark.slow
def test_spark_clustering_equals_local_on_a_linked_simulated_world(spark, simulated_world):
    """The scored pairs of a real local linkage: same persons, links and report in Spark."""
    import datetime as dt

    from recapture.linkage import LinkageSettings, link_records
    from recapture.validation import validate_extracts

    world = simulated_world(4000, 11)
    records = validate_extracts(
        [(world / "police.csv", "police"), (world / "iom.csv", "iom")], as_of=dt.date(2026, 1, 1)
    ).records
    settings = LinkageSettings.from_dict({"u_sample_pairs": 20_000, "one_to_one": True})
    result = link_records(records, settings)
    ids = result.clusters["record_id"].to_numpy()  # sorted: the position is the row
    assert (np.diff(ids) > 0).all()
    _, sources = np.unique(result.clusters["source"].to_numpy(), return_inverse=True)
    i = np.searchsorted(ids, result.pairs["record_id_l"].to_numpy())
    j = np.searchsorted(ids, result.pairs["record_id_r"].to_numpy())
    prob = result.pairs["match_probability"].to_numpy()
    local = _assert_same(
        spark,
        ids.size,
        i,
        j,
        prob,
        sources,
        result.threshold,
        one_to_one=True,
        conflict_probability=settings.conflict_probability,
        chaining_action=settings.chaining_action,
        chaining_steps=settings.chaining_steps,
    )
    # and both are the clustering the linkage itself produced
    np.testing.assert_array_equal(local.labels, result.clusters["person_id"].to_numpy())
    np.testing.assert_array_equal(local.linked, result.pairs["linked"].to_numpy())
    assert local.report["clusters"] < ids.size
