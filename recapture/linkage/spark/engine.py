"""``link_records_spark``: the linkage stage with its pairs in Spark.

The same steps, settings, model and artifacts as :func:`recapture.linkage.link_records`:

1. records numbered by record id (:mod:`.records`), on the driver or in Spark
   (``encode_on``); vocabularies and TF tables from Spark aggregates (:mod:`.encoding`),
   every record encoded on the driver (broadcast) or on the executors (joined onto pairs);
2. blocking rules as Spark equi-joins (:mod:`.blocking`);
3. comparison levels and TF bits by ``mapInArrow(compare_batch)`` (:mod:`.compare`);
4. pattern counts (and counts per pair of sources) aggregated in Spark, the model fitted on
   the driver by :func:`recapture.linkage.training.train`, the local engine's function;
5. scores by ``mapInArrow(score_batch)``; the threshold ("auto": best expected F1) from
   the collected probabilities;
6. clustering by connected components in Spark (:func:`.clustering.cluster_pairs_spark`);
7. ``pairs.parquet`` written by Spark as a Parquet dataset folder (:mod:`.write`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from recapture import progress
from recapture.errors import ConfigError
from recapture.linkage.blocking import SRC, BlockingResult
from recapture.linkage.clustering import Clustering
from recapture.linkage.engine import (
    LinkageResult,
    _clusters_frame,
    _labelled_gammas,
    _metrics,
    _tf_tables,
)
from recapture.linkage.model import match_threshold
from recapture.linkage.settings import BlockingRule, LinkageSettings
from recapture.linkage.spark.blocking import (
    block_spark,
    candidate_test,
    collect_blocks,
    count_blocks,
)
from recapture.linkage.spark.clustering import cluster_pairs_spark
from recapture.linkage.spark.compare import (
    compare_spark,
    levels_schema,
    pattern_counts,
    prepared_broadcast,
    score_spark,
    spark_comparer,
)
from recapture.linkage.spark.encoding import (
    encode_records_spark,
    encoded_columns,
    prepare_spark,
)
from recapture.linkage.spark.records import driver_records, spark_records, to_spark
from recapture.linkage.spark.session import spark_session as build_session
from recapture.linkage.spark.write import write_linkage_spark
from recapture.linkage.training import train, training_summary, uses_source_priors

#: From this many records ``encode_on="auto"`` numbers, keys and encodes the records on the
#: executors instead of the driver (at about 50 bytes a record, 5M records make a 250 MB
#: broadcast, unpickled in every Python worker, besides the records on the driver).
EXECUTORS_FROM_RECORDS = 5_000_000
#: Spark settings that choose the mode without code: ``--spark-conf`` on the command line,
#: ``[linkage.spark] conf`` in pipeline.toml, or ``spark-submit --conf``.
CONF_ENCODE_ON = "spark.recapture.encodeOn"
CONF_EXECUTORS_FROM = "spark.recapture.executorsFromRecords"


def encode_mode(spark: SparkSession, records: Any, encode_on: str | None) -> str:
    """``"driver"`` or ``"executors"`` for ``records`` (see :func:`link_records_spark`);
    ``None`` reads :data:`CONF_ENCODE_ON` from the session (default "auto"); "auto" counts
    the records (a polars frame's height, or a Spark count) against
    :data:`CONF_EXECUTORS_FROM` (default :data:`EXECUTORS_FROM_RECORDS`)."""
    if encode_on is None:
        encode_on = spark.conf.get(CONF_ENCODE_ON, "auto")
    if encode_on not in ("auto", "driver", "executors"):
        raise ConfigError(
            f"is 'auto', 'driver' or 'executors', not {encode_on!r}", key=CONF_ENCODE_ON
        )
    if encode_on != "auto":
        return encode_on
    raw = spark.conf.get(CONF_EXECUTORS_FROM, str(EXECUTORS_FROM_RECORDS))
    try:
        limit = int(raw)
    except ValueError:
        raise ConfigError(f"is a number of records, not {raw!r}", key=CONF_EXECUTORS_FROM) from None
    if isinstance(records, pl.DataFrame):
        n = records.height
    else:
        n = (
            spark.read.parquet(str(records)) if isinstance(records, str | Path) else records
        ).count()
    return "executors" if n >= limit else "driver"


def _pair_source_codes(source_codes: np.ndarray, encoded) -> np.ndarray:
    """The source codes the comparison broadcasts for the prior groups: every record's
    (pairs by row position), or just 0..S-1 when the pairs carry their records' codes."""
    if encoded is None:
        return source_codes
    return np.arange(int(source_codes.max()) + 1 if source_codes.size else 1)


@dataclass
class SparkLinkageResult(LinkageResult):
    """A :class:`LinkageResult` whose ``pairs`` is a Spark DataFrame (pairs.parquet's
    columns, plus the row positions ``i`` and ``j``); :meth:`pairs_frame` collects it."""

    def pairs_frame(self) -> pl.DataFrame:
        """The pairs as the local engine returns them (sorted by record ids, no i/j)."""
        frame = pl.from_arrow(self.pairs.drop("i", "j").toArrow())
        return frame.sort("record_id_l", "record_id_r")


@contextmanager
def spark_session(master: str, conf: dict[str, str] | None = None) -> Iterator[SparkSession]:
    """A Spark session for one command: the active one if there is one (left running), else
    a new one on ``master`` with ``conf`` (stopped at the end). The executors' Python is
    this interpreter unless ``PYSPARK_PYTHON`` says otherwise."""
    active = SparkSession.getActiveSession()
    if active is not None:
        yield active
        return
    session = build_session(master, conf)
    try:
        yield session
    finally:
        session.stop()


def _spark_blocker(spark: SparkSession, frame, settings: LinkageSettings, n: int):
    """A training session's pairs by Spark joins, collected in the local order (``frame``:
    the driver's records or the records numbered in Spark)."""

    def blocker(rule: BlockingRule) -> BlockingResult:
        cands, stats = block_spark(spark, frame, [rule], settings.max_block_size)
        out = collect_blocks(cands, stats, [rule], n)
        cands.unpersist()
        return out

    return blocker


def _columns(spark: SparkSession, records: Any) -> list[str]:
    """The records' column names (a Parquet path's from its schema, nothing read)."""
    if isinstance(records, pl.DataFrame | DataFrame):
        return list(records.columns)
    try:
        return spark.read.parquet(str(records)).columns
    except Exception:  # an unreadable path is reported by driver_records, with its name
        return []


def link_records_spark(
    spark: SparkSession,
    records: Any,
    settings: LinkageSettings | None = None,
    *,
    labelled_pairs: pl.DataFrame | None = None,
    out=None,
    encode_on: str | None = None,
) -> SparkLinkageResult:
    """Deduplicate and link ``records`` into persons with the pairs in Spark.

    ``records``: a polars frame, a Spark DataFrame or a Parquet path (read by ``spark``).
    The result equals :func:`recapture.linkage.link_records`'s (the same candidate pairs and
    rules, levels, weights to rounding, the same persons); ``pairs`` is a Spark DataFrame.
    With ``out`` the artifacts are written there (:func:`write_linkage_spark`).

    ``encode_on``: where the records are numbered, encoded and keyed —
    ``"driver"`` (collected to the driver, which computes the blocking keys and every
    record's codes and broadcasts the codes, about 50 bytes a record; fastest while that
    fits), ``"executors"`` (numbered, keyed and encoded in Spark, their codes joined onto
    the pairs; the driver holds each record's id and source only) or ``"auto"``: the
    executors from :data:`EXECUTORS_FROM_RECORDS` records. ``None``: the session's
    ``spark.recapture.encodeOn`` (and ``spark.recapture.executorsFromRecords``), else
    "auto". Both modes give the same results. The vocabularies and TF tables are counted
    in Spark either way.
    """
    settings = (settings or LinkageSettings.default()).for_columns(_columns(spark, records))
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    mode = encode_mode(spark, records, encode_on)
    encoded = None
    with progress.step(f"numbering records (on the {mode})") as st:
        if mode == "executors":
            recs, keyed = spark_records(spark, records, settings)
            frame = keyed
        else:
            recs = driver_records(spark, records, settings)
            keyed = recs.frame
            frame = to_spark(spark, records, settings)
        n = recs.n
        st["result"] = f"{n:,} records"
    with progress.step("vocabularies and term frequencies (Spark)") as st:
        tables, tf_counts = prepare_spark(frame, settings)
        st["result"] = f"{sum(len(v.values) for v in tables.vocab_of.values()):,} values"
    with progress.step(f"encoding records (on the {mode})") as st:
        if mode == "executors":
            # the encoded records stay in Spark and are joined onto the pairs
            encoded = (
                encode_records_spark(spark, keyed, tables, settings.record_id),
                encoded_columns(tables),
            )
            prep = replace(tables, n=n)
        else:
            prep = tables.with_records(recs.frame.drop(SRC, strict=False))
        st["result"] = f"{n:,} records"
    timings["encode"] = time.perf_counter() - t0

    t = time.perf_counter()
    with progress.step("blocking (Spark)") as st:
        candidates, stats = block_spark(
            spark, keyed, settings.blocking_rules, settings.max_block_size, settings.link_only
        )
        blocks = count_blocks(candidates, stats, settings.blocking_rules, n)
        st["result"] = f"{blocks.n_pairs:,} candidate pairs"
    timings["blocking"] = time.perf_counter() - t

    t = time.perf_counter()
    priors = uses_source_priors(settings, recs.source_codes)
    n_groups = int(np.unique(recs.source_codes).size ** 2) if priors else 0
    with progress.step("comparing candidate pairs (Spark)"):
        prepared = prepared_broadcast(spark, settings, prep)
        levels = compare_spark(
            spark,
            candidates,
            prepared,
            levels_schema(settings, prep, priors),
            _pair_source_codes(recs.source_codes, encoded) if priors else None,
            encoded,
        )
        patterns, group_counts = pattern_counts(levels, settings, n, n_groups)
    timings["comparing"] = time.perf_counter() - t

    comparer = spark_comparer(spark, prepared, settings, prep, encoded)
    labelled = None
    if labelled_pairs is not None:
        labelled = _labelled_gammas(labelled_pairs, recs.frame, settings, prep, comparer)
    t = time.perf_counter()
    with progress.step("training the Fellegi–Sunter model") as st:
        model = train(
            prep,
            patterns,
            settings,
            candidate_codes=candidate_test(spark, candidates),
            source_codes=recs.source_codes,
            sources=recs.sources,
            group_counts=lambda: group_counts,
            labelled=labelled,
            blocker=_spark_blocker(spark, keyed, settings, n),
            comparer=comparer,
        )
        st["result"] = training_summary(model, patterns)
    candidates.unpersist()
    if encoded is not None:
        encoded[0].unpersist()
        keyed.unpersist()  # the numbered records: the training sessions were the last to key them
    timings["training"] = time.perf_counter() - t

    t = time.perf_counter()
    scored = score_spark(
        spark,
        levels,
        model,
        settings,
        None if encoded is not None else recs.record_ids,  # else carried with the levels
        blocks.rule_names,
        priors,
        recs.source_codes,
    )
    # one float per pair on the driver, in no particular order: the threshold and the
    # expected-quality metrics depend on the probabilities' values only
    prob = scored.select("match_probability").toArrow().column(0).to_numpy()
    levels.unpersist()  # only now: the scores are computed (and persisted) from it
    threshold = match_threshold(prob, settings.threshold)
    with progress.step("clustering") as st:
        clustered = cluster_pairs_spark(
            spark,
            scored.select(
                F.col("i").cast("long").alias("i"),
                F.col("j").cast("long").alias("j"),
                F.col("match_probability").alias("prob"),
                "src_i",
                "src_j",
            ),
            n,
            threshold,
            one_to_one=settings.one_to_one,
            conflict_probability=settings.conflict_probability,
            chaining_action=settings.chaining_action,
            chaining_steps=settings.chaining_steps,
        )
        person = clustered.labels.toArrow()
        labels = np.empty(n, dtype=np.int64)
        labels[person.column("row").to_numpy()] = person.column("person").to_numpy()
        st["result"] = f"{clustered.report['clusters']:,} persons"
    clustering = Clustering(labels=labels, linked=np.zeros(0, bool), report=clustered.report)
    pairs = (
        scored.drop("src_i", "src_j")
        .join(
            clustered.edges.select(
                F.col("i").cast("int").alias("i"), F.col("j").cast("int").alias("j"), "linked"
            ),
            on=["i", "j"],
            how="left",
        )
        .withColumn("linked", F.coalesce(F.col("linked"), F.lit(False)))
    )
    timings["scoring_clustering"] = time.perf_counter() - t

    clusters = _clusters_frame(recs.record_ids, recs.sources, clustering)
    metrics = _metrics(
        blocks, prob, threshold, clustering, model, patterns, timings, recs.sources, settings
    )
    metrics["engine"] = "spark"
    timings["total"] = time.perf_counter() - t0
    result = SparkLinkageResult(
        pairs=pairs,
        clusters=clusters,
        model=model,
        metrics=metrics,
        settings=settings,
        threshold=threshold,
        tf_tables=_tf_tables(prep, settings, tf_counts),
    )
    if out is not None:
        write_linkage_spark(result, out)
    return result
