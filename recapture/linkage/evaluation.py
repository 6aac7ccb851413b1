"""How well did linkage link? Metrics with truth, and expected metrics without it.

With truth (a simulated world, FEBRL) every record carries the id of the entity it
belongs to. Pairwise and cluster metrics are computed from the contingency table of
(predicted cluster, true entity) counts, so no true-pair list is materialised: a police
extract with one frequent flyer seen 300 times stays cheap. Without truth the match
probabilities themselves give expected precision and recall at each threshold, which is
only as good as the model's calibration — hence the reliability table, ECE and Brier
score, measured on simulated worlds where the truth is known.

Conventions: record pairs are columns ``record_id_l`` / ``record_id_r`` (any order, the
functions normalise), clusters are ``record_id`` → ``person_id``, and truth is
``record_id`` → an entity column (``entity_col``), optionally with ``source``. A
``scope`` restricts pair metrics to pairs within one source (``"police"``), between two
sources (``("police", "iom")``) or all pairs (``None``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import polars as pl

from recapture.errors import InputError

L, R = "record_id_l", "record_id_r"

Scope = str | tuple[str, str] | None


# ------------------------------------------------------------------------------- helpers
def _safe_div(num: float, den: float) -> float:
    return float(num) / float(den) if den else float("nan")


def _f1(precision: float, recall: float) -> float:
    if not (precision + recall) or np.isnan(precision) or np.isnan(recall):
        return float("nan")
    return 2 * precision * recall / (precision + recall)


def _require(df: pl.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise InputError(f"{what} lacks column(s) {missing}; has {df.columns}", column=missing[0])


def normalise_pairs(pairs: pl.DataFrame, left: str = L, right: str = R) -> pl.DataFrame:
    """Unique unordered pairs as (record_id_l < record_id_r); self-pairs dropped."""
    _require(pairs, [left, right], "pairs")
    return (
        pairs.lazy()
        .select(
            pl.min_horizontal(left, right).alias(L),
            pl.max_horizontal(left, right).alias(R),
        )
        .filter(pl.col(L) != pl.col(R))
        .unique()
        .collect()
    )


def _truth_table(truth: pl.DataFrame, id_col: str, entity_col: str, scope: Scope) -> pl.DataFrame:
    cols = [id_col, entity_col] + (["source"] if scope is not None else [])
    _require(truth, cols, "truth")
    out = truth.select(cols).rename({id_col: "record_id", entity_col: "_entity"})
    if out["record_id"].is_duplicated().any():
        raise InputError("truth has a record_id more than once", column=id_col)
    return out


def _scope_sources(scope: Scope) -> tuple[str, ...]:
    if scope is None:
        return ()
    if isinstance(scope, str):
        return (scope,)
    if len(scope) != 2 or scope[0] == scope[1]:
        raise ValueError(
            f"scope must be a source name or a pair of distinct sources, got {scope!r}"
        )
    return tuple(scope)


def _pairs_in_groups(counts: pl.DataFrame, group: list[str], scope: Scope) -> int:
    """Number of record pairs sharing ``group`` within the scope, from per-source counts.

    ``counts`` has one row per (group…, source) with ``n`` records (or one per group
    without source when scope is None).
    """
    if scope is None:
        n = counts.group_by(group).agg(pl.col("n").sum())["n"].cast(pl.Int64)
        return int((n * (n - 1) // 2).sum())
    sources = _scope_sources(scope)
    if len(sources) == 1:
        n = counts.filter(pl.col("source") == sources[0])["n"].cast(pl.Int64)
        return int((n * (n - 1) // 2).sum())
    a = counts.filter(pl.col("source") == sources[0]).select(group + [pl.col("n").alias("a")])
    b = counts.filter(pl.col("source") == sources[1]).select(group + [pl.col("n").alias("b")])
    joined = a.join(b, on=group, how="inner")
    return int((joined["a"].cast(pl.Int64) * joined["b"].cast(pl.Int64)).sum())


def _pair_in_scope(pairs: pl.DataFrame, sources: pl.DataFrame, scope: Scope) -> pl.DataFrame:
    """Keep pairs whose two records' sources match the scope (sources: record_id, source)."""
    if scope is None:
        return pairs
    src = _scope_sources(scope)
    s = sources.select("record_id", "source")
    tagged = pairs.join(s.rename({"record_id": L, "source": "_sl"}), on=L, how="left").join(
        s.rename({"record_id": R, "source": "_sr"}), on=R, how="left"
    )
    if len(src) == 1:
        keep = (pl.col("_sl") == src[0]) & (pl.col("_sr") == src[0])
    else:
        keep = ((pl.col("_sl") == src[0]) & (pl.col("_sr") == src[1])) | (
            (pl.col("_sl") == src[1]) & (pl.col("_sr") == src[0])
        )
    return tagged.filter(keep).drop("_sl", "_sr")


def possible_pairs(truth: pl.DataFrame, scope: Scope = None, *, id_col: str = "record_id") -> int:
    """Size of the full comparison space in the scope (denominator of the reduction ratio)."""
    if scope is None:
        n = truth.height
        return n * (n - 1) // 2
    _require(truth, [id_col, "source"], "truth")
    sizes = truth.group_by("source").len()
    size = dict(zip(sizes["source"].to_list(), sizes["len"].to_list(), strict=True))
    src = _scope_sources(scope)
    if len(src) == 1:
        n = size.get(src[0], 0)
        return n * (n - 1) // 2
    return size.get(src[0], 0) * size.get(src[1], 0)


# ------------------------------------------------------------------------ pairwise metrics
@dataclass(frozen=True)
class PairwiseMetrics:
    """Pair-level confusion counts and the rates derived from them."""

    true_positives: int
    false_positives: int
    false_negatives: int
    precision: float
    recall: float
    f1: float

    @classmethod
    def from_counts(cls, tp: int, n_predicted: int, n_true: int) -> PairwiseMetrics:
        precision = _safe_div(tp, n_predicted)
        recall = _safe_div(tp, n_true)
        return cls(tp, n_predicted - tp, n_true - tp, precision, recall, _f1(precision, recall))

    def to_dict(self) -> dict:
        return asdict(self)


def count_true_pairs(
    truth: pl.DataFrame,
    scope: Scope = None,
    *,
    id_col: str = "record_id",
    entity_col: str = "person_id",
) -> int:
    """Number of true matching pairs in the scope, without listing them."""
    t = _truth_table(truth, id_col, entity_col, scope)
    group = ["_entity"] + (["source"] if scope is not None else [])
    return _pairs_in_groups(t.group_by(group).len("n"), ["_entity"], scope)


def label_pairs(
    pairs: pl.DataFrame,
    truth: pl.DataFrame,
    *,
    id_col: str = "record_id",
    entity_col: str = "person_id",
    label: str = "is_match",
) -> pl.DataFrame:
    """Add a boolean ``label`` column: do the pair's two records share a true entity?

    A record absent from ``truth`` is an error, not a silent non-match.
    """
    _require(pairs, [L, R], "pairs")
    t = _truth_table(truth, id_col, entity_col, None)
    ent = t.select("record_id", "_entity")
    out = pairs.join(ent.rename({"record_id": L, "_entity": "_el"}), on=L, how="left").join(
        ent.rename({"record_id": R, "_entity": "_er"}), on=R, how="left"
    )
    unknown = out.filter(pl.col("_el").is_null() | pl.col("_er").is_null())
    if unknown.height:
        first = unknown.row(0, named=True)
        rid = first[L] if first["_el"] is None else first[R]
        raise InputError(f"record_id {rid} of a pair is not in the truth table", column=id_col)
    return out.with_columns((pl.col("_el") == pl.col("_er")).alias(label)).drop("_el", "_er")


def pairwise_metrics(
    predicted_pairs: pl.DataFrame,
    truth: pl.DataFrame,
    scope: Scope = None,
    *,
    id_col: str = "record_id",
    entity_col: str = "person_id",
) -> PairwiseMetrics:
    """Precision/recall/F1 of a set of predicted links (e.g. pairs at or above a threshold).

    Links implied transitively by clustering are not counted here; use
    :func:`pairwise_metrics_from_clusters` for the links a clustering induces.
    """
    pairs = normalise_pairs(predicted_pairs)
    if scope is not None:
        _require(truth, [id_col, "source"], "truth")
        pairs = _pair_in_scope(pairs, truth.rename({id_col: "record_id"}), scope)
    labelled = label_pairs(pairs, truth, id_col=id_col, entity_col=entity_col)
    tp = int(labelled["is_match"].sum())
    n_true = count_true_pairs(truth, scope, id_col=id_col, entity_col=entity_col)
    return PairwiseMetrics.from_counts(tp, labelled.height, n_true)


def _contingency(
    clusters: pl.DataFrame, truth: pl.DataFrame, id_col: str, entity_col: str, scope: Scope
) -> pl.DataFrame:
    """Counts n of records per (predicted person, true entity[, source])."""
    _require(clusters, ["record_id", "person_id"], "clusters")
    t = _truth_table(truth, id_col, entity_col, scope)
    joined = clusters.select("record_id", pl.col("person_id").alias("_pred")).join(
        t, on="record_id", how="full", coalesce=True
    )
    if joined["_pred"].null_count() or joined["_entity"].null_count():
        side = "clusters" if joined["_pred"].null_count() else "truth"
        missing = joined.filter(pl.col("_pred").is_null() | pl.col("_entity").is_null())
        raise InputError(
            f"record_id {missing['record_id'][0]} is in one of clusters/truth but not in {side}",
            column="record_id",
        )
    keys = ["_pred", "_entity"] + (["source"] if scope is not None else [])
    return joined.group_by(keys).len("n")


def pairwise_metrics_from_clusters(
    clusters: pl.DataFrame,
    truth: pl.DataFrame,
    scope: Scope = None,
    *,
    id_col: str = "record_id",
    entity_col: str = "person_id",
) -> PairwiseMetrics:
    """Pairwise metrics of the links a clustering induces (every pair in a cluster is a link).

    Computed from the contingency table: TP = Σ C(n_ij, 2) (within a scope's source, or
    Σ n_ij,s·n_ij,t between two sources), so clusters of any size stay cheap.
    """
    table = _contingency(clusters, truth, id_col, entity_col, scope)
    tp = _pairs_in_groups(table, ["_pred", "_entity"], scope)
    group_pred = ["_pred"] + (["source"] if scope is not None else [])
    group_true = ["_entity"] + (["source"] if scope is not None else [])
    n_pred = _pairs_in_groups(table.group_by(group_pred).agg(pl.col("n").sum()), ["_pred"], scope)
    n_true = _pairs_in_groups(table.group_by(group_true).agg(pl.col("n").sum()), ["_entity"], scope)
    return PairwiseMetrics.from_counts(tp, n_pred, n_true)


# ------------------------------------------------------------------------------ blocking
@dataclass(frozen=True)
class BlockingMetrics:
    """How much blocking saved (reduction ratio) and what it lost (pair completeness)."""

    n_candidates: int
    n_possible: int
    n_true_pairs: int
    n_true_candidates: int
    reduction_ratio: float
    pair_completeness: float

    def to_dict(self) -> dict:
        return asdict(self)


def blocking_metrics(
    candidates: pl.DataFrame,
    truth: pl.DataFrame,
    scope: Scope = None,
    *,
    id_col: str = "record_id",
    entity_col: str = "person_id",
) -> BlockingMetrics:
    """Pair completeness (share of true pairs among candidates) and reduction ratio."""
    pm = pairwise_metrics(candidates, truth, scope, id_col=id_col, entity_col=entity_col)
    n_cand = pm.true_positives + pm.false_positives
    n_possible = possible_pairs(truth, scope, id_col=id_col)
    n_true = pm.true_positives + pm.false_negatives
    return BlockingMetrics(
        n_candidates=n_cand,
        n_possible=n_possible,
        n_true_pairs=n_true,
        n_true_candidates=pm.true_positives,
        reduction_ratio=1.0 - _safe_div(n_cand, n_possible),
        pair_completeness=_safe_div(pm.true_positives, n_true),
    )


# ------------------------------------------------------------------------ cluster metrics
@dataclass(frozen=True)
class ClusterMetrics:
    """Persons found vs true persons, and how the clustering splits and merges them.

    ``split_persons``: true persons whose records landed in more than one cluster.
    ``merged_persons``: true persons sharing a cluster with another true person.
    ``mixed_clusters``: clusters holding records of more than one true person.
    Exact precision/recall: share of predicted / true clusters reproduced exactly.
    B-cubed: per-record precision/recall of its cluster, averaged over records.
    """

    n_records: int
    persons_found: int
    true_persons: int
    exact_matches: int
    exact_precision: float
    exact_recall: float
    bcubed_precision: float
    bcubed_recall: float
    bcubed_f1: float
    split_persons: int
    merged_persons: int
    mixed_clusters: int

    def to_dict(self) -> dict:
        return asdict(self)


def cluster_metrics(
    clusters: pl.DataFrame,
    truth: pl.DataFrame,
    *,
    id_col: str = "record_id",
    entity_col: str = "person_id",
) -> ClusterMetrics:
    """Cluster-level metrics of a record → person assignment against the truth."""
    table = _contingency(clusters, truth, id_col, entity_col, None).with_columns(
        pl.col("n").cast(pl.Int64),
        pl.col("n").sum().over("_pred").cast(pl.Int64).alias("a"),
        pl.col("n").sum().over("_entity").cast(pl.Int64).alias("b"),
        pl.len().over("_pred").alias("k_true_in_pred"),
        pl.len().over("_entity").alias("k_pred_of_true"),
    )
    n_records = int(table["n"].sum())
    n_pred = table["_pred"].n_unique()
    n_true = table["_entity"].n_unique()
    exact = int(table.filter((pl.col("n") == pl.col("a")) & (pl.col("n") == pl.col("b"))).height)
    n2 = table["n"].cast(pl.Float64) ** 2
    bp = _safe_div(float((n2 / table["a"]).sum()), n_records)
    br = _safe_div(float((n2 / table["b"]).sum()), n_records)
    return ClusterMetrics(
        n_records=n_records,
        persons_found=n_pred,
        true_persons=n_true,
        exact_matches=exact,
        exact_precision=_safe_div(exact, n_pred),
        exact_recall=_safe_div(exact, n_true),
        bcubed_precision=bp,
        bcubed_recall=br,
        bcubed_f1=_f1(bp, br),
        split_persons=int(table.filter(pl.col("k_pred_of_true") > 1)["_entity"].n_unique()),
        merged_persons=int(table.filter(pl.col("k_true_in_pred") > 1)["_entity"].n_unique()),
        mixed_clusters=int(table.filter(pl.col("k_true_in_pred") > 1)["_pred"].n_unique()),
    )


# ----------------------------------------------------------------------------- calibration
def _as_float_array(values, name: str) -> np.ndarray:
    arr = np.asarray(values.to_numpy() if isinstance(values, pl.Series) else values, dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional")
    return arr


def _check_prob_outcome(probabilities, outcomes) -> tuple[np.ndarray, np.ndarray]:
    p = _as_float_array(probabilities, "probabilities")
    y = _as_float_array(outcomes, "outcomes")
    if p.shape != y.shape:
        raise ValueError(f"probabilities ({p.size}) and outcomes ({y.size}) differ in length")
    if np.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise ValueError("probabilities must lie in [0, 1] and not be NaN")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("outcomes must be 0/1 (or boolean)")
    return p, y


def reliability_table(
    probabilities, outcomes, n_bins: int = 10, strategy: str = "uniform"
) -> pl.DataFrame:
    """Binned predicted probability vs observed match rate (empty bins omitted).

    ``uniform`` bins split [0, 1] into equal widths (the last bin includes 1);
    ``quantile`` bins hold about equal numbers of pairs, which suits the heavily
    skewed probabilities of candidate pairs.
    """
    p, y = _check_prob_outcome(probabilities, outcomes)
    if n_bins < 1:
        raise ValueError("n_bins must be at least 1")
    if strategy == "uniform":
        edges = np.linspace(0.0, 1.0, n_bins + 1)
    elif strategy == "quantile":
        edges = (
            np.unique(np.quantile(p, np.linspace(0, 1, n_bins + 1)))
            if p.size
            else np.array([0.0, 1.0])
        )
        edges[0], edges[-1] = 0.0, 1.0
    else:
        raise ValueError(f"strategy must be 'uniform' or 'quantile', got {strategy!r}")
    idx = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, len(edges) - 2)
    k = len(edges) - 1
    count = np.bincount(idx, minlength=k)
    sum_p = np.bincount(idx, weights=p, minlength=k)
    sum_y = np.bincount(idx, weights=y, minlength=k)
    keep = count > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p = sum_p / count
        rate = sum_y / count
    return pl.DataFrame(
        {
            "bin": np.arange(k)[keep],
            "lower": edges[:-1][keep],
            "upper": edges[1:][keep],
            "count": count[keep],
            "mean_predicted": mean_p[keep],
            "observed_rate": rate[keep],
        }
    )


def expected_calibration_error(
    probabilities, outcomes, n_bins: int = 10, strategy: str = "uniform"
) -> float:
    """ECE: Σ_bins (n_b/N)·|mean predicted − observed rate|."""
    table = reliability_table(probabilities, outcomes, n_bins, strategy)
    n = table["count"].sum()
    if not n:
        return float("nan")
    gap = (table["mean_predicted"] - table["observed_rate"]).abs()
    return float((gap * table["count"]).sum() / n)


def brier_score(probabilities, outcomes) -> float:
    """Mean squared difference between match probability and the 0/1 truth."""
    p, y = _check_prob_outcome(probabilities, outcomes)
    return float(np.mean((p - y) ** 2)) if p.size else float("nan")


# --------------------------------------------------------------- model-based (no truth)
def expected_metrics_by_threshold(match_probability, thresholds=None) -> pl.DataFrame:
    """Expected precision, recall and F1 of accepting pairs with p ≥ t, from p alone.

    A frame view of the engine's :func:`recapture.linkage.model.expected_quality` (one
    definition in the project), with the expected confusion counts added. If the
    probabilities are calibrated, E[TP] = Σ_{p≥t} p, E[FP] = Σ_{p≥t} (1−p) and the
    expected number of matches among candidates is Σ p. True pairs that blocking never
    produced are invisible here, so recall is relative to the candidate pairs. With no
    pair accepted, precision is reported as 1 (the engine's convention).
    """
    from recapture.linkage.model import expected_quality

    p = _as_float_array(match_probability, "match_probability")
    if np.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise ValueError("match probabilities must lie in [0, 1]")
    t = (
        np.asarray(thresholds, dtype=float)
        if thresholds is not None
        else np.round(np.linspace(0.05, 0.95, 19), 10)
    )
    rows = expected_quality(p, t)
    total = float(p.sum())
    n_acc = np.array([r["links"] for r in rows], dtype=np.int64)
    precision = np.array([r["expected_precision"] for r in rows], dtype=float)
    e_tp = precision * n_acc
    return pl.DataFrame(
        {
            "threshold": t,
            "n_accepted": n_acc,
            "expected_true_positives": e_tp,
            "expected_false_positives": n_acc - e_tp,
            "expected_false_negatives": total - e_tp,
            "expected_precision": precision,
            "expected_recall": [r["expected_recall"] for r in rows],
            "expected_f1": [r["expected_f1"] for r in rows],
        }
    )
