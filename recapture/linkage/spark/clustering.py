"""Clustering scored pairs into persons in Spark, as :func:`recapture.linkage.clustering.cluster_pairs`.

The same steps and the same answers as the local clustering, on DataFrames:

* links are the pairs at or above the threshold; with ``one_to_one`` a cross-source link is
  kept only when it is each end's best link into the other end's source (a window per
  ``(i, source of j)`` and per ``(j, source of i)``, ties broken by the smaller partner row,
  as locally);
* clusters are connected components (large-star / small-star,
  :mod:`recapture.linkage.spark.components`), person ids numbered by smallest row;
* the chaining guard finds clusters holding a scored pair below ``conflict_probability``
  and, with ``chaining_action = "split"``, raises the threshold inside them step by step;
* the report is the local one, key for key.

Everything per record or per pair stays in Spark. Two things reach the driver: counts, and
one number per cluster of two or more records (its weakest link, for the quantiles of the
report). The weakest link is the smallest edge of the cluster's maximum spanning tree; each
cluster's tree is computed on an executor, by the same scipy call as locally, over a
partition holding whole clusters (``repartition`` by cluster, then ``mapInArrow``), so no
executor holds more than the kept links of the clusters of one partition. The driver then
holds one float per non-singleton cluster, at most n/2 of them and in a register about the
number of persons recorded more than once; numpy computes the quantiles from them exactly
as locally.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import minimum_spanning_tree

from recapture.linkage.spark.components import star_components

EDGE_COLUMNS = ("i", "j", "prob", "src_i", "src_j")


@dataclass
class SparkClustering:
    labels: DataFrame  # row long, person long (0..n_persons-1, ordered by smallest row)
    edges: DataFrame  # i long, j long, linked bool: an edge used by the clustering
    report: dict = field(default_factory=dict)


def _mutual_best(e: DataFrame) -> DataFrame:
    """``keep`` of a cross-source link: it is the best link of both of its ends."""
    cross = F.col("keep") & (F.col("src_i") != F.col("src_j"))
    by_i = Window.partitionBy("_cross", "i", "src_j").orderBy(F.desc("prob"), F.asc("j"))
    by_j = Window.partitionBy("_cross", "j", "src_i").orderBy(F.desc("prob"), F.asc("i"))
    ranked = e.withColumn("_cross", cross).select(
        *e.columns,
        "_cross",
        (F.row_number().over(by_i) == 1).alias("_best_i"),
        (F.row_number().over(by_j) == 1).alias("_best_j"),
    )
    keep = F.when(F.col("_cross"), F.col("_best_i") & F.col("_best_j")).otherwise(F.col("keep"))
    return ranked.select(*[keep.alias(c) if c == "keep" else F.col(c) for c in e.columns])


def _labelled(e: DataFrame, comp: DataFrame) -> DataFrame:
    """The edges with the cluster of each end (a row without a link is its own cluster)."""
    ci = comp.select(F.col("node").alias("i"), F.col("component").alias("_ci"))
    cj = comp.select(F.col("node").alias("j"), F.col("component").alias("_cj"))
    out = e.join(ci, "i", "left").join(cj, "j", "left")
    return out.select(
        *e.columns,
        F.coalesce("_ci", "i").alias("li"),
        F.coalesce("_cj", "j").alias("lj"),
    ).localCheckpoint(eager=True)


def _conflicts(labelled: DataFrame, limit: float) -> DataFrame:
    """DataFrame[cluster]: clusters holding a scored pair below ``limit``."""
    bad = (F.col("li") == F.col("lj")) & (F.col("prob") < limit)
    return labelled.where(bad).select(F.col("li").alias("cluster")).distinct().localCheckpoint(True)


def _cluster_sizes(comp: DataFrame) -> DataFrame:
    """DataFrame[cluster, size] of the clusters of two or more rows."""
    return comp.groupBy(F.col("component").alias("cluster")).agg(F.count(F.lit(1)).alias("size"))


def _records_in(conflicted: DataFrame, comp: DataFrame) -> int:
    sizes = _cluster_sizes(comp)
    joined = conflicted.join(sizes, "cluster", "left")
    total = joined.agg(F.sum(F.coalesce(F.col("size"), F.lit(1)))).first()[0]
    return int(total or 0)


def _components(e: DataFrame, checkpoint_every: int) -> DataFrame:
    kept = e.where(F.col("keep")).select("i", "j")
    return star_components(kept, src="i", dst="j", checkpoint_every=checkpoint_every)


def cluster_pairs_spark(
    spark: SparkSession,
    edges: DataFrame,
    n: int,
    threshold: float,
    *,
    one_to_one: bool = False,
    conflict_probability: float = 0.01,
    chaining_action: str = "split",
    chaining_steps: list[float] | None = None,
    checkpoint_every: int = 4,
) -> SparkClustering:
    """Persons of the rows ``0 .. n-1`` from scored pairs, as the local ``cluster_pairs``.

    ``edges`` has the columns i, j (rows), prob (match probability), src_i, src_j (source
    codes of the two rows; used by ``one_to_one``). Pairs must be distinct.
    """
    missing = [c for c in EDGE_COLUMNS if c not in edges.columns]
    if missing:
        raise ValueError(f"edges lack the column(s) {', '.join(missing)}")
    e = edges.select(
        F.col("i").cast("long"),
        F.col("j").cast("long"),
        F.col("prob").cast("double"),
        F.col("src_i").cast("int"),
        F.col("src_j").cast("int"),
    ).withColumn("keep", F.col("prob") >= F.lit(float(threshold)))
    report: dict = {"threshold": threshold}
    if one_to_one:
        before = e.where("keep").count()
        e = _mutual_best(e).localCheckpoint(eager=True)
        report["one_to_one_links_removed"] = before - e.where("keep").count()
    else:
        e = e.localCheckpoint(eager=True)
    comp = _components(e, checkpoint_every)
    labelled = _labelled(e, comp)
    conflicted = _conflicts(labelled, conflict_probability)
    n_conflicted = conflicted.count()
    chaining = {
        "conflict_probability": conflict_probability,
        "clusters_with_conflicts": n_conflicted,
        "records_in_conflicted_clusters": _records_in(conflicted, comp),
        "action": chaining_action,
        "steps": [],
    }
    if chaining_action == "split" and n_conflicted:
        for step in chaining_steps or []:
            if step <= threshold:
                continue
            flagged = labelled.join(
                conflicted.select(F.col("cluster").alias("li"), F.lit(True).alias("_bad")),
                "li",
                "left",
            )
            drop = F.col("keep") & F.col("_bad").isNotNull() & (F.col("prob") < F.lit(step))
            e = flagged.select(
                *[c for c in e.columns if c != "keep"],
                (F.col("keep") & ~drop).alias("keep"),
                drop.alias("_drop"),
            ).localCheckpoint(eager=True)
            removed = e.where("_drop").count()
            e = e.drop("_drop")
            comp = _components(e, checkpoint_every)
            labelled = _labelled(e, comp)
            conflicted = _conflicts(labelled, conflict_probability)
            n_conflicted = conflicted.count()
            chaining["steps"].append(
                {
                    "threshold": step,
                    "links_removed": removed,
                    "clusters_with_conflicts": n_conflicted,
                }
            )
            if n_conflicted == 0:
                break
        chaining["clusters_with_conflicts_after"] = n_conflicted
    report["chaining"] = chaining
    comp = comp.localCheckpoint(eager=True)
    report.update(_shape_report(n, labelled, comp))
    return SparkClustering(
        labels=_person_ids(spark, n, comp),
        edges=e.select("i", "j", F.col("keep").alias("linked")),
        report=report,
    )


# ----------------------------------------------------------------------- person ids
def _person_ids(spark: SparkSession, n: int, comp: DataFrame) -> DataFrame:
    """DataFrame[row, person]: clusters numbered 0, 1, … in the order of their smallest row.

    A cluster's smallest row is its component id, so the person id of a cluster is the rank
    of its id among the roots (rows that are their own component). Ranks are computed as
    Spark's zipWithIndex does, without moving every root into one partition: roots are
    range-partitioned and sorted, each partition's count is collected (one number per
    partition) and its rows are numbered from the sum of the counts before it.
    """
    rows = spark.range(n).select(F.col("id").alias("row"))
    every = rows.join(comp.withColumnRenamed("node", "row"), "row", "left").select(
        "row", F.coalesce(F.col("component"), F.col("row")).alias("component")
    )
    parts = max(spark.sparkContext.defaultParallelism, 1)
    roots = (
        every.where(F.col("row") == F.col("component"))
        .select(F.col("row").alias("root"))
        .repartitionByRange(parts, "root")
        .withColumn("_part", F.spark_partition_id())
        .localCheckpoint(eager=True)
    )
    counts = dict(roots.groupBy("_part").count().collect())
    offsets, total = [], 0
    for part in sorted(counts):
        offsets.append((part, total))
        total += counts[part]
    offset = spark.createDataFrame(offsets, "_part int, _offset long")
    within = Window.partitionBy("_part").orderBy("root")
    numbered = roots.join(F.broadcast(offset), "_part").select(
        "root", (F.col("_offset") + F.row_number().over(within) - 1).alias("person")
    )
    return every.join(numbered, every["component"] == numbered["root"]).select("row", "person")


# ----------------------------------------------------------------------- the report
def _weakest_links(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Per cluster of a partition holding whole clusters: its maximum spanning tree's weakest
    edge (the same scipy call as the local clustering; only the node ids are compacted)."""
    table = pa.Table.from_batches(list(batches))
    if table.num_rows == 0:
        return
    cluster = table.column("cluster").to_numpy()
    i, j = table.column("i").to_numpy(), table.column("j").to_numpy()
    prob = table.column("prob").to_numpy()
    nodes, inverse = np.unique(np.concatenate([i, j]), return_inverse=True)
    ii, jj = inverse[: i.size], inverse[i.size :]
    m = nodes.size
    graph = coo_matrix((2.0 - prob, (ii, jj)), shape=(m, m)).tocsr()
    tree = minimum_spanning_tree(graph).tocoo()
    node_cluster = np.empty(m, dtype=np.int64)
    node_cluster[ii] = cluster
    node_cluster[jj] = cluster
    ids, index = np.unique(node_cluster[tree.row], return_inverse=True)
    weakest = np.full(ids.size, np.inf)
    np.minimum.at(weakest, index, 2.0 - tree.data)
    yield pa.RecordBatch.from_arrays(
        [pa.array(ids, pa.int64()), pa.array(weakest, pa.float64())], names=["cluster", "weakest"]
    )


def _shape_report(n: int, labelled: DataFrame, comp: DataFrame) -> dict:
    sizes = _cluster_sizes(comp).localCheckpoint(eager=True)
    row = sizes.agg(
        F.count(F.lit(1)).alias("multi"),
        F.sum("size").alias("rows"),
        F.max("size").alias("largest"),
    ).first()
    multi, in_multi, largest = int(row["multi"]), int(row["rows"] or 0), row["largest"]
    singletons = n - in_multi
    hist = dict(sizes.groupBy(F.least(F.col("size"), F.lit(10))).count().collect())
    if singletons:
        hist[1] = singletons
    dist = {("10+" if k == 10 else str(k)): int(hist[k]) for k in sorted(hist) if hist[k]}
    out = {
        "records": n,
        "clusters": singletons + multi,
        "singletons": singletons,
        "largest_cluster": int(largest) if largest is not None else (1 if singletons else 0),
        "cluster_size_distribution": dist,
    }
    kept = labelled.where("keep").select(F.col("li").alias("cluster"), "i", "j", "prob")
    if kept.limit(1).count():
        parts = max(labelled.sparkSession.sparkContext.defaultParallelism, 1)
        weakest = (
            kept.repartition(parts, "cluster")
            .mapInArrow(_weakest_links, "cluster long, weakest double")
            .select("weakest")
            .toPandas()["weakest"]
            .to_numpy(dtype=np.float64)
        )
        out["weakest_link_quantiles"] = {
            q: float(np.quantile(weakest, float(q))) for q in ("0.01", "0.05", "0.5")
        }
        within = kept.groupBy("cluster").agg(F.count(F.lit(1)).alias("within"))
        possible = F.col("size") * (F.col("size") - 1) / 2
        sparse = sizes.join(within, "cluster", "left").where(
            (F.col("size") >= 4) & (F.coalesce("within", F.lit(0)) / possible < 0.5)
        )
        out["sparse_clusters"] = sparse.count()
        out["sparse_cluster_rule"] = "size >= 4 and fewer than half of its record pairs linked"
    return out
