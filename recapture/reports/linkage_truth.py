"""The linkage report against a simulated world's truth: precision, recall and the
clustering metrics of the run's persons."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import polars as pl

from recapture.errors import InputError
from recapture.io import artifact_path, world_path
from recapture.linkage import evaluation
from recapture.reports._render import (
    Section,
    absent_section,
    new_figure,
    plot_context,
    svg,
)
from recapture.reports.linkage_common import WEIGHT_BIN, _lookup, _prob_to_weight


def _truth_for(
    run: Path, truth: str | os.PathLike | None, manifest: dict | None
) -> pl.DataFrame | None:
    """record_id → true person id, from a simulated world's truth/records.parquet."""
    candidates = []
    if truth is not None:
        candidates.append(Path(truth))
    candidates.append(world_path(run, "truth_records"))
    for key in ("truth", "truth_records"):
        value = (manifest or {}).get(key)
        if isinstance(value, str):
            p = Path(value)
            candidates.append(p if p.is_absolute() else run / p)
    # a simulated world keeps truth/ beside its extracts: look next to the run's inputs
    for src in ((manifest or {}).get("config") or {}).get("sources") or []:
        if isinstance(src, dict) and isinstance(src.get("path"), str):
            p = Path(src["path"])
            for base in [p] if p.is_absolute() else [run / p, run.parent / p, p]:
                candidates.append(world_path(base.parent, "truth_records"))
    path = next((p for p in candidates if p.exists()), None)
    if path is None:
        if truth is not None:
            raise InputError("truth table not found", file=str(truth))
        return None
    if path.is_dir():
        path = artifact_path(path, "records")
    table = pl.read_parquet(path)
    if "record_id" in table.columns and "person_id" in table.columns:
        return table.select("record_id", pl.col("person_id").alias("true_person"))
    needed = {"source", "source_key", "person_id"}
    if not needed <= set(table.columns):
        raise InputError(f"truth table needs record_id or {sorted(needed)}", file=str(path))
    records = artifact_path(run, "records")
    if not records.exists():
        raise InputError(
            "truth by source_key needs records.parquet to map record ids", file=str(records)
        )
    ids = pl.read_parquet(records, columns=["record_id", "source", "source_key"])
    return ids.join(
        table.select("source", "source_key", pl.col("person_id").alias("true_person")),
        on=["source", "source_key"],
        how="inner",
    ).select("record_id", "true_person")


def clustering_metrics(predicted: np.ndarray, true: np.ndarray) -> tuple[dict, dict]:
    """Pairwise metrics of the links a clustering implies and cluster-level metrics,
    from one contingency table built by sorting integer codes.

    The same definitions as :func:`recapture.linkage.evaluation.pairwise_metrics_from_clusters`
    and :func:`~recapture.linkage.evaluation.cluster_metrics` (a test holds them equal), a
    few times faster at a million records because no table is joined.
    """
    _, pred = np.unique(predicted, return_inverse=True)
    _, ent = np.unique(true, return_inverse=True)
    k_pred, k_true = int(pred.max()) + 1, int(ent.max()) + 1
    cells, n = np.unique(pred.astype(np.int64) * k_true + ent, return_counts=True)
    cell_pred, cell_true = cells // k_true, cells % k_true
    a = np.bincount(pred, minlength=k_pred)[cell_pred].astype(float)  # cluster sizes
    b = np.bincount(ent, minlength=k_true)[cell_true].astype(float)  # true person sizes
    n = n.astype(float)
    pairs = lambda x: x * (x - 1) / 2  # noqa: E731
    tp = float(pairs(n).sum())
    n_pred = float(pairs(np.bincount(pred).astype(float)).sum())
    n_true = float(pairs(np.bincount(ent).astype(float)).sum())
    induced = evaluation.PairwiseMetrics.from_counts(int(tp), int(n_pred), int(n_true)).to_dict()
    k_true_in_pred = np.bincount(cell_pred, minlength=k_pred)[cell_pred]
    k_pred_of_true = np.bincount(cell_true, minlength=k_true)[cell_true]
    records = float(n.sum())
    exact = int(((n == a) & (n == b)).sum())
    bp = float((n * n / a).sum() / records)
    br = float((n * n / b).sum() / records)
    cluster = {
        "n_records": int(records),
        "persons_found": k_pred,
        "true_persons": k_true,
        "exact_matches": exact,
        "exact_precision": exact / k_pred,
        "exact_recall": exact / k_true,
        "bcubed_precision": bp,
        "bcubed_recall": br,
        "bcubed_f1": 2 * bp * br / (bp + br) if bp + br else float("nan"),
        "split_persons": int(np.unique(cell_true[k_pred_of_true > 1]).size),
        "merged_persons": int(np.unique(cell_true[k_true_in_pred > 1]).size),
        "mixed_clusters": int(np.unique(cell_pred[k_true_in_pred > 1]).size),
    }
    return induced, cluster


def _truth_section(
    pairs: pl.DataFrame,
    clusters: pl.DataFrame,
    truth: pl.DataFrame | None,
    labels: pl.Series | None,
    threshold: float | None,
) -> Section:
    title, anchor = "Against the truth", "truth"
    if truth is None or labels is None:
        return absent_section(
            title, anchor, "no truth table (truth/records.parquet of a simulated world)."
        )
    if pairs.height == 0:
        return absent_section(title, anchor, "no candidate pairs to compare with the truth.")
    truth_ids = truth.rename({"true_person": "entity"})
    n_true = evaluation.count_true_pairs(truth_ids, entity_col="entity")
    w = pairs["match_weight"].to_numpy()
    y = labels.to_numpy().astype(bool)
    # precision–recall along the threshold from binned counts (no per-pair sort needed)
    edges = np.arange(
        math.floor(w.min()) if w.size else 0,
        (math.ceil(w.max()) if w.size else 1) + WEIGHT_BIN,
        WEIGHT_BIN,
    )
    idx = np.clip(np.searchsorted(edges, w, side="right") - 1, 0, len(edges) - 1)
    tp_bin = np.bincount(idx, weights=y, minlength=len(edges))
    all_bin = np.bincount(idx, minlength=len(edges))
    tp_above = np.cumsum(tp_bin[::-1])[::-1]
    n_above = np.cumsum(all_bin[::-1])[::-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(n_above > 0, tp_above / n_above, np.nan)
        recall = tp_above / n_true if n_true else np.full(edges.shape, np.nan)
    reliability = evaluation.reliability_table(
        pairs["match_probability"], y.astype(float), n_bins=10
    )
    gap = (reliability["mean_predicted"] - reliability["observed_rate"]).abs()
    ece = float((gap * reliability["count"]).sum() / max(int(reliability["count"].sum()), 1))
    brier = evaluation.brier_score(pairs["match_probability"], y.astype(float))
    with plot_context():
        fig_pr, ax = new_figure(4.6, 3.4)
        ax.plot(recall, precision, "-", lw=1.5)
        if threshold is not None:
            k = int(
                np.clip(
                    np.searchsorted(edges, _prob_to_weight(threshold), side="right") - 1,
                    0,
                    len(edges) - 1,
                )
            )
            ax.plot(
                [recall[k]], [precision[k]], "o", color="C1", label=f"threshold p={threshold:g}"
            )
            ax.legend(frameon=False, fontsize=8, loc="lower left")
        ax.set_xlim(0, 1.02)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("recall (of all true pairs)")
        ax.set_ylabel("precision")
        fig_cal, ax2 = new_figure(4.6, 3.4)
        ax2.plot([0, 1], [0, 1], color="grey", ls="--", lw=1)
        ax2.plot(
            reliability["mean_predicted"].to_numpy(), reliability["observed_rate"].to_numpy(), "o-"
        )
        ax2.set_xlabel("mean predicted match probability")
        ax2.set_ylabel("observed share of true matches")
        ax2.set_xlim(0, 1)
        ax2.set_ylim(0, 1)
    confusion = None
    induced = None
    cluster_m = None
    if threshold is not None:
        accepted = pairs["match_probability"].to_numpy() >= threshold
        tp = int((accepted & y).sum())
        fp = int((accepted & ~y).sum())
        fn_cand = int((~accepted & y).sum())
        confusion = {
            "tp": tp,
            "fp": fp,
            "fn_candidates": fn_cand,
            "fn_blocking": n_true - int(y.sum()),
            "tn": int((~accepted & ~y).sum()),
            "n_true": n_true,
            "precision": tp / (tp + fp) if tp + fp else float("nan"),
            "recall": tp / n_true if n_true else float("nan"),
        }
    keys = truth_ids["record_id"].to_numpy()
    ids = clusters["record_id"].to_numpy()
    if np.isin(ids, keys).all():
        entity = _lookup(keys, truth_ids["entity"].to_numpy(), ids, "the truth table")
        induced, cluster_m = clustering_metrics(clusters["person_id"].to_numpy(), entity)
    return Section(
        title,
        anchor,
        pr_plot=svg(fig_pr, "precision-recall"),
        calibration_plot=svg(fig_cal, "calibration"),
        confusion=confusion,
        reliability=reliability.to_dicts(),
        ece=ece,
        brier=brier,
        induced=induced,
        cluster=cluster_m,
        pair_completeness=int(y.sum()) / n_true if n_true else float("nan"),
    )
