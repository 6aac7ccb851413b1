"""Connected components of a graph held as a Spark DataFrame of edges, without GraphFrames.

The large-star / small-star algorithm of Kiveris, Lattanzi, Mirrokni, Rastogi and
Vassilvitskii (2014), "Connected Components in MapReduce and Beyond" (SoCC '14). Edges are
kept as ``(a, b)`` with ``a < b``; every step is a window minimum over a hash partitioning
and a few projections, so the work is distributed and nothing is collected to the driver but a few counts per round.

* **large-star**: each node ``u`` links its larger neighbours to ``m(u)``, the smallest of
  ``u`` and its neighbours. Only a smaller neighbour can lower ``m(u)``, so
  ``m(u) = min(u, min{a : (a, u) ∈ E})`` and the step is ``(a, b) → (m(a), b)``.
* **small-star**: each node ``u`` with smaller neighbours ``N(u)`` links ``N(u) ∪ {u}``
  to ``min N(u)``.

Both steps keep the components and lower node labels; alternated, they converge in
O(log² n) rounds to a forest of stars whose centres are the smallest node of their
component. Convergence is tested exactly: no centre is also a leaf, and every leaf has one
centre. A round's edges are materialised with ``localCheckpoint`` — both steps read their
input twice, so a plan left to grow would double with every step — and every
``checkpoint_every`` rounds with a reliable checkpoint instead when the SparkContext has a
checkpoint directory (an executor lost later then costs no recomputation from the start).

Each round costs three shuffles (two window minima and a ``distinct``) and two Spark
jobs: the materialisation and the convergence test.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

#: Rounds after which the loop gives up (log² of 10¹² is about 1,600; a path of 1,000
#: nodes needs about 10 rounds).
MAX_ROUNDS = 200


def _normalise(edges: DataFrame, src: str, dst: str) -> DataFrame:
    """Undirected edges as distinct ``(a, b)`` with ``a < b``; self-loops dropped."""
    u, v = F.col(src).cast("long"), F.col(dst).cast("long")
    return (
        edges.select(F.least(u, v).alias("a"), F.greatest(u, v).alias("b"))
        .where(F.col("a") != F.col("b"))
        .distinct()
    )


def _large_star(e: DataFrame) -> DataFrame:
    """Each node's larger neighbours linked to the smallest of it and its neighbours.

    Over both directions of every edge: ``m(u)`` is a window minimum per ``u``, and each row
    ``(u, v)`` with ``v > u`` becomes ``(m(u), v)``. Duplicates are left to the small-star."""
    both = e.select(F.col("a").alias("u"), F.col("b").alias("v")).union(
        e.select(F.col("b").alias("u"), F.col("a").alias("v"))
    )
    m = F.least(F.min("v").over(Window.partitionBy("u")), F.col("u"))
    return (
        both.select(m.alias("a"), F.col("v").alias("b"), F.col("u"))
        .where(F.col("b") > F.col("u"))
        .select("a", "b")
    )


def _small_star(e: DataFrame) -> DataFrame:
    """Each node's smaller neighbours, and the node itself, linked to the smallest of them.

    ``m(b)`` is a window minimum per ``b``; a row ``(a, b)`` yields ``(m, a)`` (unless
    ``a = m``) and ``(m, b)``."""
    m = F.min("a").over(Window.partitionBy("b"))
    ranked = e.select("a", "b", m.alias("m"))
    neighbours = ranked.where(F.col("a") != F.col("m")).select(
        F.col("m").alias("a"), F.col("a").alias("b")
    )
    itself = ranked.select(F.col("m").alias("a"), F.col("b"))
    return neighbours.union(itself).distinct()


def _converged(e: DataFrame) -> bool:
    """True when ``e`` is a forest of stars: centres are never leaves, leaves have one centre.

    One Spark job: per node, whether it is a centre and how many centres it hangs from."""
    ends = e.select(F.col("a").alias("node"), F.lit(1).alias("centre"), F.lit(0).alias("up"))
    ends = ends.union(e.select(F.col("b").alias("node"), F.lit(0), F.lit(1)))
    per_node = ends.groupBy("node").agg(F.max("centre").alias("centre"), F.sum("up").alias("up"))
    bad = (F.col("up") > 1) | ((F.col("up") > 0) & (F.col("centre") > 0))
    return per_node.where(bad).limit(1).count() == 0


def _materialise(e: DataFrame, reliable: bool) -> DataFrame:
    return e.checkpoint(eager=True) if reliable else e.localCheckpoint(eager=True)


def star_components(
    edges: DataFrame,
    *,
    src: str = "src",
    dst: str = "dst",
    checkpoint_every: int = 4,
    max_rounds: int = MAX_ROUNDS,
) -> DataFrame:
    """DataFrame[node long, component long] for every node that has an edge (not a self-loop).

    ``component`` is the smallest node of the node's component.
    """
    reliable = edges.sparkSession.sparkContext.getCheckpointDir() is not None
    e = _materialise(_normalise(edges, src, dst), False)
    for rounds in range(1, max_rounds + 1):
        # materialised every round: both steps read their input twice, so an unmaterialised
        # plan would double in size with every step
        e = _materialise(
            _small_star(_large_star(e)), reliable and rounds % max(checkpoint_every, 1) == 0
        )
        if _converged(e):
            break
    else:  # pragma: no cover - needs a graph beyond any realistic size
        raise RuntimeError(f"connected components did not converge in {max_rounds} rounds")
    leaves = e.select(F.col("b").alias("node"), F.col("a").alias("component"))
    centres = e.select(F.col("a").alias("node"), F.col("a").alias("component")).distinct()
    return leaves.unionByName(centres)


def connected_components(
    spark: SparkSession,
    edges: DataFrame,
    n: int | None = None,
    *,
    nodes: DataFrame | None = None,
    src: str = "src",
    dst: str = "dst",
    checkpoint_every: int = 4,
) -> DataFrame:
    """DataFrame[node long, component long]: each node's component, named by its smallest node.

    Nodes are ``0 .. n-1`` or the column ``node`` of ``nodes``; one without an edge is its
    own component, and an edge's end that is not among them is left out. Edges are
    undirected, taken from columns ``src`` and ``dst``.
    """
    if (n is None) == (nodes is None):
        raise ValueError("give exactly one of n and nodes")
    linked = star_components(edges, src=src, dst=dst, checkpoint_every=checkpoint_every)
    if nodes is not None:
        every = nodes.select(F.col("node").cast("long").alias("node")).distinct()
    else:
        every = spark.range(n).select(F.col("id").alias("node"))
    return every.join(linked, "node", "left").select(
        "node", F.coalesce(F.col("component"), F.col("node")).alias("component")
    )
