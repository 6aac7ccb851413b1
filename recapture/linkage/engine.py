"""The linkage stage: block → compare → train Fellegi–Sunter → score → cluster.

``link_records(records, settings)`` runs one model over all records together, so that
deduplication within each source and linkage across sources come out of the same scores
and the same clusters (the analysis needs persons, not pairs).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

from recapture import progress
from recapture.errors import InputError
from recapture.io import ARTIFACTS, read_json
from recapture.linkage.blocking import ROW, SRC, BlockingResult, block
from recapture.linkage.clustering import Clustering, cluster_pairs
from recapture.linkage.comparisons import (
    ROW_L,
    ROW_R,
    PreparedRecords,
    compare_batch,
    compare_pairs,
)
from recapture.linkage.model import (
    PRIOR_GROUP,
    FellegiSunterModel,
    Patterns,
    expected_quality,
    match_threshold,
    score_batch,
)
from recapture.linkage.settings import LinkageSettings
from recapture.linkage.training import (
    _source_codes,
    group_pattern_counts,
    source_pair_group,
    train,
    training_summary,
    uses_source_priors,
)

#: Thresholds at which the metrics report model-expected precision and recall.
REPORT_THRESHOLDS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)
#: Values per term-frequency table written to linkage_model.json (most frequent first).
TF_TABLE_TOP = 200


@dataclass
class LinkageResult:
    """Everything a linkage run produced; ``write_linkage`` turns it into the artifacts."""

    pairs: pl.DataFrame
    clusters: pl.DataFrame
    model: FellegiSunterModel
    metrics: dict
    settings: LinkageSettings
    threshold: float
    tf_tables: dict = field(default_factory=dict)

    def model_dict(self) -> dict:
        out = self.model.to_dict()
        out["threshold"] = self.threshold
        out["term_frequency_tables"] = self.tf_tables
        out["settings"] = self.settings.to_dict()
        return out


def _check_columns(records: pl.DataFrame, settings: LinkageSettings) -> None:
    missing = sorted(c for c in settings.required_columns() if c not in records.columns)
    if missing:
        raise InputError(
            f"records lack the column(s) the linkage settings use: {', '.join(missing)}",
            column=missing[0],
        )
    rid = records[settings.record_id]
    if rid.null_count():
        raise InputError("record ids must not be missing", column=settings.record_id)
    if rid.n_unique() != records.height:
        raise InputError("record ids must be unique", column=settings.record_id)


def score(
    model: FellegiSunterModel,
    levels: pa.RecordBatch,
    pair_group: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Match weight and probability of each candidate pair (:func:`score_batch` on the
    levels of :func:`compare_batch`, with the prior of its source pair when ``pair_group``
    indexes ``model.group_lams``)."""
    if pair_group is not None:
        levels = levels.append_column(PRIOR_GROUP, pa.array(pair_group))
    out = score_batch(model, levels)
    return (
        out.column("match_weight").to_numpy(zero_copy_only=False),
        out.column("match_probability").to_numpy(zero_copy_only=False),
    )


def link_records(
    records: pl.DataFrame,
    settings: LinkageSettings | None = None,
    *,
    labelled_pairs: pl.DataFrame | None = None,
) -> LinkageResult:
    """Deduplicate and link ``records`` (all sources together) into persons.

    ``labelled_pairs`` (columns record_id_l, record_id_r, is_match) optionally fix m from
    known matches instead of estimating it by EM.
    """
    settings = (settings or LinkageSettings.default()).for_columns(records.columns)
    _check_columns(records, settings)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    recs = records.sort(settings.record_id).with_row_index(ROW)
    record_ids = recs[settings.record_id].to_numpy()
    sources = recs[settings.source].to_numpy() if settings.source else None

    with progress.step("encoding records") as st:
        prep = PreparedRecords.build(recs, settings)
        st["result"] = f"{prep.n:,} records"
    timings["encode"] = time.perf_counter() - t0

    t = time.perf_counter()
    source_codes = _source_codes(sources)
    if settings.link_only:
        if source_codes is None:
            raise InputError("link_only needs a source column", column="source")
        recs = recs.with_columns(pl.Series(SRC, source_codes))
    with progress.step("blocking") as st:
        blocks = block(recs, settings.blocking_rules, settings.max_block_size, settings.link_only)
        st["result"] = f"{blocks.n_pairs:,} candidate pairs"
    timings["blocking"] = time.perf_counter() - t

    t = time.perf_counter()
    with progress.step("comparing candidate pairs"):
        levels = compare_batch(
            settings,
            prep,
            pa.RecordBatch.from_pydict({ROW_L: pa.array(blocks.i), ROW_R: pa.array(blocks.j)}),
        )
        gammas = {
            c.name: levels.column(f"gamma_{c.name}").to_numpy(zero_copy_only=False)
            for c in settings.comparisons
        }
        swapped = levels.column("names_swapped").to_numpy(zero_copy_only=False)
        n_levels = [c.n_levels for c in settings.comparisons]
        patterns = Patterns.from_gammas([gammas[c.name] for c in settings.comparisons], n_levels)
    timings["comparing"] = time.perf_counter() - t

    labelled = None
    if labelled_pairs is not None:
        labelled = _labelled_gammas(labelled_pairs, recs, settings, prep)

    t = time.perf_counter()
    with progress.step("training the Fellegi–Sunter model") as st:
        pair_group = None
        if uses_source_priors(settings, source_codes):
            pair_group = source_pair_group(source_codes, blocks.i, blocks.j)
        n_groups = int(np.unique(source_codes).size ** 2) if pair_group is not None else 0
        model = train(
            prep,
            patterns,
            settings,
            candidate_codes=np.sort(blocks.i.astype(np.int64) * prep.n + blocks.j),
            source_codes=source_codes,
            sources=sources,
            group_counts=lambda: group_pattern_counts(patterns, pair_group, n_groups),
            labelled=labelled,
        )
        st["result"] = training_summary(model, patterns)
    timings["training"] = time.perf_counter() - t

    t = time.perf_counter()
    weight, prob = score(model, levels, pair_group)
    threshold = match_threshold(prob, settings.threshold)
    with progress.step("clustering") as st:
        clustering = cluster_pairs(
            prep.n,
            blocks.i,
            blocks.j,
            prob,
            threshold,
            sources=source_codes,
            one_to_one=settings.one_to_one,
            conflict_probability=settings.conflict_probability,
            chaining_action=settings.chaining_action,
            chaining_steps=settings.chaining_steps,
        )
        st["result"] = f"{clustering.report['clusters']:,} persons"
    timings["scoring_clustering"] = time.perf_counter() - t

    pairs = _pairs_frame(record_ids, blocks, gammas, settings, weight, prob, swapped, clustering)
    clusters = _clusters_frame(record_ids, sources, clustering)
    metrics = _metrics(
        blocks, prob, threshold, clustering, model, patterns, timings, sources, settings
    )
    timings["total"] = time.perf_counter() - t0
    return LinkageResult(
        pairs=pairs,
        clusters=clusters,
        model=model,
        metrics=metrics,
        settings=settings,
        threshold=threshold,
        tf_tables=_tf_tables(prep, settings),
    )


def _labelled_gammas(labelled: pl.DataFrame, recs: pl.DataFrame, settings, prep, comparer=None):
    for col in ("record_id_l", "record_id_r", "is_match"):
        if col not in labelled.columns:
            raise InputError(
                "labelled pairs need record_id_l, record_id_r and is_match", column=col
            )
    ids = recs.select(pl.col(settings.record_id).alias("rid"), pl.col(ROW))
    lab = labelled.join(ids.rename({"rid": "record_id_l", ROW: "i"}), on="record_id_l").join(
        ids.rename({"rid": "record_id_r", ROW: "j"}), on="record_id_r"
    )
    if lab.height < labelled.height:
        raise InputError(
            "labelled pairs refer to record ids not in the records", column="record_id_l"
        )
    g, _, _ = (comparer or partial(compare_pairs, prep))(
        lab["i"].to_numpy().astype(np.int32), lab["j"].to_numpy().astype(np.int32)
    )
    return g, lab["is_match"].cast(pl.Boolean).to_numpy()


def _pairs_frame(
    record_ids,
    blocks: BlockingResult,
    gammas,
    settings,
    weight,
    prob,
    swapped,
    clustering: Clustering,
):
    names = pl.Series(blocks.rule_names)
    cols = {
        "record_id_l": pl.Series(record_ids[blocks.i], dtype=pl.Int64),
        "record_id_r": pl.Series(record_ids[blocks.j], dtype=pl.Int64),
        "blocking_rule": names.gather(blocks.rule.astype(np.int64)),
    }
    for comp in settings.comparisons:
        cols[f"gamma_{comp.name}"] = pl.Series(gammas[comp.name], dtype=pl.Int8)
    cols["names_swapped"] = pl.Series(swapped, dtype=pl.Boolean)
    cols["match_weight"] = pl.Series(weight, dtype=pl.Float64)
    cols["match_probability"] = pl.Series(prob, dtype=pl.Float64)
    cols["linked"] = pl.Series(clustering.linked, dtype=pl.Boolean)
    return pl.DataFrame(cols)


def _clusters_frame(record_ids, sources, clustering: Clustering):
    labels = clustering.labels
    sizes = np.bincount(labels)
    return pl.DataFrame(
        {
            "record_id": pl.Series(record_ids, dtype=pl.Int64),
            "source": pl.Series(
                sources.astype(str) if sources is not None else np.full(labels.size, ""),
                dtype=pl.String,
            ),
            "person_id": pl.Series(labels, dtype=pl.Int64),
            "cluster_size": pl.Series(sizes[labels], dtype=pl.Int64),
        }
    )


def _metrics(
    blocks, prob, threshold, clustering, model, patterns, timings, sources, settings
) -> dict:
    n = blocks.n_records
    rules = []
    for st in blocks.stats:
        rules.append(dict(st))
    out = {
        "records": n,
        "candidate_pairs": blocks.n_pairs,
        "reduction_ratio": blocks.reduction_ratio(),
        "blocking_rules": rules,
        "comparison_patterns": int(patterns.levels.shape[0]),
        "lambda": model.lam,
        "lambda_by_source_pair": model.lam_by_source_pair,
        "em_iterations": len(model.trace),
        "em_converged": model.converged,
        "threshold": threshold,
        "threshold_rule": "maximum model-expected F1" if settings.threshold == "auto" else "fixed",
        "links": int((prob >= threshold).sum()),
        "expected_matches_in_candidates": float(prob.sum()),
        "expected_quality": expected_quality(prob, np.asarray(REPORT_THRESHOLDS)),
        "expected_quality_at_threshold": expected_quality(prob, np.asarray([threshold]))[0],
        "clustering": clustering.report,
        "timings_seconds": timings,
    }
    if sources is not None:
        src = np.asarray(sources).astype(str)
        per = {}
        for s in np.unique(src):
            labels = clustering.labels[src == s]
            per[str(s)] = {"records": int(labels.size), "persons": int(np.unique(labels).size)}
        out["per_source"] = per
    return out


def _tf_tables(
    prep: PreparedRecords, settings: LinkageSettings, counts_of: dict | None = None
) -> dict:
    """The model's TF tables; ``counts_of`` (column → count per code over all records) when
    ``prep`` holds no per-record codes (counted elsewhere, e.g. in Spark)."""
    out = {}
    for col, freq in prep.tf.items():
        vocab = prep.vocab_of[col].values
        if counts_of is None:
            codes = prep.codes[col]
            counts = np.bincount(codes[codes >= 0], minlength=len(vocab))
        else:
            counts = counts_of[col].astype(np.int64)
        order = np.argsort(-counts, kind="stable")[:TF_TABLE_TOP]
        order = order[counts[order] > 0]
        out[col] = {
            "distinct_values": int((counts > 0).sum()),
            "sum_squared_frequency": prep.tf_sq[col],
            "top_values": [
                {"value": str(vocab[k]), "count": int(counts[k]), "frequency": float(freq[k])}
                for k in order
            ],
        }
    return out


# ------------------------------------------------------------------ artifacts
def write_linkage(
    result: LinkageResult, out_dir: str | Path, *, run_id: str | None = None
) -> dict[str, Path]:
    """Write pairs.parquet, clusters.parquet, linkage_model.json and linkage_metrics.json."""
    from recapture.schemas import ClusterSchema, PairsSchema, validate

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    validate(result.pairs, PairsSchema)
    validate(result.clusters, ClusterSchema)
    paths = {
        name: ARTIFACTS[name].write(data, out, run_id=run_id)
        for name, data in (
            ("pairs", result.pairs),
            ("clusters", result.clusters),
            ("linkage_model", result.model_dict()),
            ("linkage_metrics", result.metrics),
        )
    }
    return paths


def read_records(path: str | Path) -> pl.DataFrame:
    """Read records.parquet, with a one-line error for a missing or unreadable file."""
    path = Path(path)
    if not path.is_file():
        raise InputError("no such file", file=str(path))
    try:
        return pl.read_parquet(path)
    except Exception as exc:  # polars raises several kinds for a damaged file
        raise InputError(f"cannot read as Parquet: {exc}", file=str(path)) from None


def read_linkage_model(path: str | Path) -> dict:
    """The JSON model of a run (m, u, λ, TF tables, settings, EM trace)."""
    return read_json(path)
