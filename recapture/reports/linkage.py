"""The linkage-quality report: what blocking produced, what the model learned, how the
match weights fall around the threshold, which clusters look over-merged, and how far
the run's estimates move with the linkage.

Reads ``pairs.parquet``, ``clusters.parquet``, ``linkage_model.json`` and
``linkage_metrics.json`` (and ``estimates.json`` when the estimate stage has run); with a truth table (simulated runs) or a labelled clerical
review file it adds precision–recall, calibration and confusion counts. Large tables are
aggregated before plotting (histograms from binned counts), so a report of millions of
pairs stays small; record ids are the only per-record values shown unless
``show_names``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components, minimum_spanning_tree, shortest_path

from recapture.errors import InputError
from recapture.io import ARTIFACTS, REVIEW_FOLDER, artifact_path, read_json
from recapture.linkage import evaluation
from recapture.reports._render import (
    Section,
    absent_section,
    new_figure,
    plot_context,
    render,
    svg,
)
from recapture.reports.linkage_common import WEIGHT_BIN, _lookup, _prob_to_weight
from recapture.reports.linkage_impact import impact_section
from recapture.reports.linkage_truth import (  # noqa: F401  (the tests' entry)
    _truth_for,
    _truth_section,
    clustering_metrics,
)

L, R = "record_id_l", "record_id_r"
#: Pairs listed around the threshold.
SAMPLE_PAIRS = 30
#: Half-width (bits of match weight) of the band around the threshold the sample is drawn from.
SAMPLE_BAND_BITS = 3.0
#: Clusters listed as possibly over-merged.
SUSPECT_CLUSTERS = 20
#: Clusters above this size get no path-length (chain) computation.
MAX_CHAIN_SIZE = 2000
#: A scored pair inside a cluster below this probability is a conflict (weak internal link),
#: unless linkage_metrics.json says which limit the clustering used.
DEFAULT_CONFLICT_PROBABILITY = 0.01
#: Record fields shown in the review sample with ``show_names``.
NAME_FIELDS = (
    "family_name_raw",
    "given_name_raw",
    "birth_date_raw",
    "sex",
    "nationality_raw",
    "v_number_raw",
)


#: What each EM mode of linkage_model.json means, in the reader's words (docs/linkage.md).
EM_MODES = {
    "sessions": "m from training sessions (blocks with their fields fixed), u among all pairs, "
    "then λ by EM",
    "fixed_u": "u from random record pairs, m and λ by EM",
    "candidates": "m, u and λ all by EM among the candidate pairs",
}


def _read_json_opt(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        data = read_json(path)
    except ValueError as exc:
        raise InputError(f"not valid JSON: {exc}", file=str(path)) from None
    return data if isinstance(data, dict) else None


def _weight_to_prob(w: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp2(-np.clip(w, -60, 60)))


# ------------------------------------------------------------------------------ sections
def _overview(
    pairs: pl.DataFrame, clusters: pl.DataFrame, metrics: dict | None, threshold: float | None
) -> dict[str, Any]:
    n_records = clusters.height
    sizes = clusters.group_by("person_id").len()
    links = int((pairs["match_probability"] >= threshold).sum()) if threshold is not None else None
    possible = n_records * (n_records - 1) / 2
    out = {
        "records": n_records,
        "candidate_pairs": pairs.height,
        "reduction_ratio": 1 - pairs.height / possible if possible else float("nan"),
        "threshold": threshold,
        "threshold_weight": _prob_to_weight(threshold) if threshold is not None else None,
        "threshold_rule": (metrics or {}).get("threshold_rule"),
        "links": links,
        "persons": sizes.height,
        "singletons": int((sizes["len"] == 1).sum()),
        "expected_matches": float(pairs["match_probability"].sum()),
    }
    per_source = (
        clusters.group_by("source")
        .agg(pl.len().alias("records"), pl.col("person_id").n_unique().alias("persons"))
        .sort("source")
        .to_dicts()
    )
    out["per_source"] = per_source
    both = (
        clusters.group_by("person_id")
        .agg(pl.col("source").n_unique().alias("k"))
        .filter(pl.col("k") > 1)
        .height
    )
    out["persons_in_several_sources"] = both
    return out


def _blocking_section(pairs: pl.DataFrame, metrics: dict | None, n_records: int) -> Section:
    counts = pairs.group_by("blocking_rule").len("pairs").sort("pairs", descending=True)
    stats = {
        r.get("rule"): r for r in (metrics or {}).get("blocking_rules", []) if isinstance(r, dict)
    }
    if counts.height == 0 and not stats:
        return absent_section(
            "Blocking",
            "blocking",
            "no candidate pairs and no blocking statistics (linkage_metrics.json).",
        )
    order = [r for r in stats] + [r for r in counts["blocking_rule"].to_list() if r not in stats]
    first = dict(zip(counts["blocking_rule"].to_list(), counts["pairs"].to_list(), strict=True))
    possible = n_records * (n_records - 1) / 2
    rows = []
    for rule in order:
        st = stats.get(rule, {})
        rows.append(
            {
                "rule": rule,
                "key_columns": ", ".join(str(k) for k in (st.get("keys") or [])),
                "pairs": st.get("pairs"),
                "pairs_first": first.get(rule, 0),
                "largest_block": st.get("largest_block"),
                "blocks_skipped": st.get("blocks_skipped"),
                "records_in_skipped_blocks": st.get("records_in_skipped_blocks"),
            }
        )
    with plot_context():
        fig, ax = new_figure(6.4, 0.9 + 0.35 * len(rows))
        y = np.arange(len(rows))[::-1]
        total = [r["pairs"] if r["pairs"] is not None else r["pairs_first"] for r in rows]
        ax.barh(y, total, height=0.6, label="pairs found by the rule", alpha=0.5)
        ax.barh(y, [r["pairs_first"] for r in rows], height=0.35, label="pairs it found first")
        ax.set_yticks(y, [str(r["rule"]) for r in rows])
        ax.set_xlabel("candidate pairs")
        ax.legend(frameon=False, fontsize=8, loc="lower right")
    return Section(
        "Blocking",
        "blocking",
        rows=rows,
        plot=svg(fig, "blocking"),
        reduction_ratio=1 - pairs.height / possible if possible else float("nan"),
        possible=possible,
        n_pairs=pairs.height,
        has_stats=bool(stats),
    )


def _model_section(model: dict | None) -> Section:
    title, anchor = "Model: m, u and weights", "model"
    if model is None:
        return absent_section(title, anchor, "no linkage_model.json in the run directory.")
    comparisons = [
        c for c in model.get("comparisons", []) if isinstance(c, dict) and c.get("levels")
    ]
    if not comparisons:
        return absent_section(title, anchor, "linkage_model.json lists no comparison levels.")
    blocks = []
    for comp in comparisons:
        levels = sorted(comp["levels"], key=lambda lv: -int(lv.get("gamma", 0)))
        for lv in levels:
            if lv.get("match_weight") is None and lv.get("m") and lv.get("u"):
                lv["match_weight"] = math.log2(lv["m"] / lv["u"])
        blocks.append(
            {
                "name": comp.get("name"),
                "kind": comp.get("kind"),
                "tf": comp.get("tf"),
                "levels": levels,
            }
        )
    n_bars = sum(len(b["levels"]) for b in blocks)
    with plot_context():
        fig, ax = new_figure(6.6, 0.8 + 0.2 * n_bars)
        y, labels, weights, colours = [], [], [], []
        pos = n_bars + len(blocks)
        for j, b in enumerate(blocks):
            for lv in b["levels"]:
                y.append(pos)
                labels.append(f"{b['name']}: {lv.get('level', lv.get('gamma'))}")
                weights.append(float(lv.get("match_weight") or 0.0))
                colours.append(f"C{j % 8}")
                pos -= 1
            pos -= 1
        ax.barh(y, weights, color=colours, height=0.75)
        ax.axvline(0, color="black", lw=0.8)
        ax.set_yticks(y, labels, fontsize=7)
        ax.set_xlabel("weight log2(m/u), bits")
    return Section(
        title,
        anchor,
        blocks=blocks,
        plot=svg(fig, "model-weights"),
        lam=model.get("lambda"),
        prior=model.get("prior_match_weight"),
        converged=model.get("converged"),
        em_mode=model.get("em_mode"),
        em_mode_text=EM_MODES.get(model.get("em_mode"), model.get("em_mode") or ""),
        lam_label="λ (share of matches among "
        + ("candidate pairs)" if model.get("em_mode") == "candidates" else "all record pairs)"),
        iterations=len(model.get("em_trace") or []),
    )


def _weight_histogram(pairs: pl.DataFrame, labels: pl.Series | None) -> pl.DataFrame:
    """Counts per match-weight bin (and per truth label when given)."""
    bins = np.floor(pairs["match_weight"].to_numpy() / WEIGHT_BIN).astype(np.int64)
    if bins.size == 0:
        return pl.DataFrame({"bin": [], "n": []}, schema={"bin": pl.Int64, "n": pl.Int64})
    low = int(bins.min())
    if labels is None:
        counts = np.bincount(bins - low)
        keep = counts > 0
        return pl.DataFrame({"bin": np.flatnonzero(keep) + low, "n": counts[keep]})
    flag = labels.to_numpy().astype(np.int64)
    counts = np.bincount((bins - low) * 2 + flag)
    keep = np.flatnonzero(counts > 0)
    return pl.DataFrame(
        {"bin": keep // 2 + low, "is_match": (keep % 2).astype(bool), "n": counts[keep]}
    )


def _weights_section(
    pairs: pl.DataFrame, threshold: float | None, labels: pl.Series | None
) -> Section:
    if pairs.height == 0:
        return absent_section("Match-weight distribution", "weights", "no candidate pairs.")
    hist = _weight_histogram(pairs, labels)
    with plot_context():
        fig, ax = new_figure(6.6, 3.2)
        lo_bin, hi_bin = int(hist["bin"].min()), int(hist["bin"].max())
        edges = np.arange(lo_bin, hi_bin + 2) * WEIGHT_BIN
        groups = (
            [(None, "candidate pairs", "C0")]
            if labels is None
            else [(False, "true non-matches", "C0"), (True, "true matches", "C1")]
        )
        for flag, name, colour in groups:
            part = hist if flag is None else hist.filter(pl.col("is_match") == flag)
            counts = np.zeros(edges.size - 1)
            counts[part["bin"].to_numpy() - lo_bin] = part["n"].to_numpy()
            # one outline per group (not one patch per bin): small SVG, fast to draw
            ax.stairs(
                np.where(counts > 0, counts, 0.5),
                edges,
                fill=True,
                alpha=0.55,
                color=colour,
                label=name,
                baseline=0.5,
            )
        ax.set_yscale("log")
        ax.set_ylim(bottom=0.5)
        if threshold is not None:
            tw = _prob_to_weight(threshold)
            # a legend entry, not a label on the plot: nothing is drawn over the legend
            ax.axvline(
                tw,
                color="black",
                ls="--",
                lw=1.2,
                label=f"threshold p={threshold:g} ({tw:.1f} bits)",
            )
        ax.set_xlabel("match weight (bits)")
        ax.set_ylabel("pairs (log scale)")
        fig.legend(frameon=False, fontsize=8, loc="outside upper center", ncols=3)
    levels = (0.01, 0.5, 0.99)
    # one selection pass for all three (np.quantile partitions; no full sort per quantile)
    values = np.quantile(pairs["match_weight"].to_numpy(), levels, method="nearest")
    return Section(
        "Match-weight distribution",
        "weights",
        plot=svg(fig, "weights"),
        with_truth=labels is not None,
        quantiles={q: float(v) for q, v in zip(levels, values, strict=True)},
    )


def _expected_section(
    pairs: pl.DataFrame, threshold: float | None, metrics: dict | None
) -> Section:
    if pairs.height == 0:
        return absent_section(
            "Model-estimated precision and recall", "expected", "no candidate pairs."
        )
    weights = np.arange(-10.0, 20.5, 0.5)
    grid = _weight_to_prob(weights)
    if threshold is not None:
        grid = np.append(grid, threshold)
    table = evaluation.expected_metrics_by_threshold(pairs["match_probability"], grid)
    at = table.tail(1).to_dicts()[0] if threshold is not None else None
    table = table.head(weights.size)
    with plot_context():
        fig, ax = new_figure(6.4, 3.0)
        ax.plot(weights, table["expected_precision"].to_numpy(), label="expected precision")
        ax.plot(weights, table["expected_recall"].to_numpy(), label="expected recall")
        ax.plot(weights, table["expected_f1"].to_numpy(), ls=":", label="expected F1")
        if threshold is not None:
            ax.axvline(_prob_to_weight(threshold), color="black", ls="--", lw=1)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("threshold (match weight, bits)")
        ax.set_ylabel("share")
        ax.legend(frameon=False, fontsize=8, loc="lower left")
    rows = [r for r in (metrics or {}).get("expected_quality", []) if isinstance(r, dict)]
    return Section(
        "Model-estimated precision and recall",
        "expected",
        plot=svg(fig, "expected"),
        at=at,
        rows=rows,
    )


def _cluster_stats(
    pairs: pl.DataFrame, clusters: pl.DataFrame, threshold: float, conflict_probability: float
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Per multi-record cluster: links inside, density, conflicts, weakest spanning link.

    Record → cluster lookups are array gathers, not joins, so millions of pairs stay fast.
    """
    ids = clusters["record_id"].to_numpy()
    person_ids, cluster_idx = np.unique(clusters["person_id"].to_numpy(), return_inverse=True)
    row_l = _lookup(ids, np.arange(ids.size), pairs[L].to_numpy())
    row_r = _lookup(ids, np.arange(ids.size), pairs[R].to_numpy())
    c_l, c_r = cluster_idx[row_l], cluster_idx[row_r]
    prob = pairs["match_probability"].to_numpy()
    within = c_l == c_r
    link = within & (prob >= threshold)
    k = person_ids.size
    size = np.bincount(cluster_idx, minlength=k)
    links = np.bincount(c_l[link], minlength=k)
    conflicts = np.bincount(c_l[within & (prob < conflict_probability)], minlength=k)
    scored = np.bincount(c_l[within], minlength=k)
    link_p_sum = np.bincount(c_l[link], weights=prob[link], minlength=k)
    weakest = np.full(k, np.nan)
    if link.any():
        n = ids.size
        graph = coo_matrix((2.0 - prob[link], (row_l[link], row_r[link])), shape=(n, n)).tocsr()
        tree = minimum_spanning_tree(graph).tocoo()
        tree_min = np.full(k, np.inf)
        np.minimum.at(tree_min, cluster_idx[tree.row], 2.0 - tree.data)
        weakest = np.where(np.isfinite(tree_min), tree_min, np.nan)
    sources = clusters.select(pl.col("source").n_unique().over("person_id"))["source"].to_numpy()
    n_sources = np.zeros(k, dtype=np.int64)
    n_sources[cluster_idx] = sources
    first = np.full(k, np.iinfo(np.int64).max)
    np.minimum.at(first, cluster_idx, ids.astype(np.int64))
    multi = size > 1
    with np.errstate(invalid="ignore", divide="ignore"):
        density = links / (size * (size - 1) / 2)
        mean_p = np.where(links > 0, link_p_sum / np.maximum(links, 1), np.nan)
    stats = pl.DataFrame(
        {
            "person_id": person_ids[multi],
            "size": size[multi],
            "sources": n_sources[multi],
            "first_record": first[multi],
            "links": links[multi],
            "conflicts": conflicts[multi],
            "mean_link_probability": mean_p[multi],
            "scored_pairs": scored[multi],
            "density": density[multi],
            "weakest_link": weakest[multi],
        }
    ).with_columns(pl.col("mean_link_probability", "weakest_link").fill_nan(None))
    linked = pl.DataFrame(
        {
            L: pairs[L].to_numpy()[link],
            R: pairs[R].to_numpy()[link],
            "match_probability": prob[link],
        }
    )
    return stats, linked


def _chain_lengths(
    suspects: pl.DataFrame, clusters: pl.DataFrame, linked: pl.DataFrame
) -> dict[int, int]:
    """Longest shortest path (in links) inside each suspect cluster: long chains are suspect."""
    out: dict[int, int] = {}
    wanted = suspects.filter(pl.col("size") <= MAX_CHAIN_SIZE)["person_id"].to_list()
    if not wanted or linked.height == 0:
        return out
    members = clusters.filter(pl.col("person_id").is_in(wanted)).select("record_id", "person_id")
    edges = linked.join(members.rename({"record_id": L}), on=L, how="inner").select(
        L, R, "person_id"
    )
    for pid in wanted:
        ids = np.sort(members.filter(pl.col("person_id") == pid)["record_id"].to_numpy())
        e = edges.filter(pl.col("person_id") == pid)
        if ids.size < 2 or e.height == 0:
            continue
        a = np.searchsorted(ids, e[L].to_numpy())
        b = np.searchsorted(ids, e[R].to_numpy())
        graph = coo_matrix((np.ones(a.size), (a, b)), shape=(ids.size, ids.size)).tocsr()
        if connected_components(graph, directed=False)[0] > 1:
            out[pid] = -1  # held together by links below the threshold
            continue
        dist = shortest_path(graph, directed=False, unweighted=True)
        out[pid] = int(dist[np.isfinite(dist)].max())
    return out


def _clusters_section(
    pairs: pl.DataFrame, clusters: pl.DataFrame, threshold: float | None, metrics: dict | None
) -> Section:
    sizes = clusters.group_by("person_id").len("size")
    dist = sizes.group_by("size").len("clusters").sort("size")
    with plot_context():
        fig, ax = new_figure(6.4, 2.8)
        ax.bar(dist["size"].to_numpy(), dist["clusters"].to_numpy(), width=0.8)
        ax.set_yscale("log")
        ax.set_xlabel("records per person (cluster size)")
        ax.set_ylabel("persons (log scale)")
    chaining = ((metrics or {}).get("clustering") or {}).get("chaining") or {}
    conflict_p = float(chaining.get("conflict_probability", DEFAULT_CONFLICT_PROBABILITY))
    table = dist.with_columns((pl.col("size") * pl.col("clusters")).alias("records"))
    content: dict[str, Any] = {
        "plot": svg(fig, "cluster-sizes"),
        "dist": table.to_dicts(),
        "chaining": chaining,
        "conflict_probability": conflict_p,
        "suspects": [],
        "n_multi": int((sizes["size"] > 1).sum()),
    }
    if threshold is not None and content["n_multi"]:
        stats, linked = _cluster_stats(pairs, clusters, threshold, conflict_p)
        ranked = stats.filter(pl.col("size") >= 3).sort(
            ["conflicts", "density", "weakest_link", "size"],
            descending=[True, False, False, True],
            nulls_last=True,
        )
        # clusters of two with a conflict are suspect too
        ranked = pl.concat(
            [ranked, stats.filter((pl.col("size") == 2) & (pl.col("conflicts") > 0))],
            how="vertical_relaxed",
        )
        suspects = ranked.head(SUSPECT_CLUSTERS)
        chains = _chain_lengths(suspects, clusters, linked)
        rows = suspects.to_dicts()
        for row in rows:
            row["chain"] = chains.get(row["person_id"])
        content["suspects"] = rows
        content["n_conflicted"] = int((stats["conflicts"] > 0).sum())
        content["n_sparse"] = int(((stats["size"] >= 4) & (stats["density"] < 0.5)).sum())
    return Section("Clusters (persons)", "clusters", **content)


def _sample_section(
    pairs: pl.DataFrame,
    clusters: pl.DataFrame,
    model: dict | None,
    threshold: float | None,
    records_path: Path,
    show_names: bool,
    seed: int,
) -> Section:
    title, anchor = "Pairs around the threshold", "sample"
    if threshold is None:
        return absent_section(
            title, anchor, "no threshold in linkage_model.json or linkage_metrics.json."
        )
    tw = _prob_to_weight(threshold)
    band = pairs.filter((pl.col("match_weight") - tw).abs() <= SAMPLE_BAND_BITS)
    if band.height == 0:
        return absent_section(
            title, anchor, f"no pair within ±{SAMPLE_BAND_BITS:g} bits of the threshold."
        )
    rng = np.random.default_rng(seed)
    take = np.sort(rng.choice(band.height, size=min(SAMPLE_PAIRS, band.height), replace=False))
    sample = band[take].sort("match_weight", descending=True)
    gamma_cols = [c for c in sample.columns if c.startswith("gamma_")]
    level_names: dict[str, dict[int, str]] = {}
    for comp in (model or {}).get("comparisons", []):
        level_names[f"gamma_{comp.get('name')}"] = {
            int(lv["gamma"]): str(lv.get("level")) for lv in comp.get("levels", []) if "gamma" in lv
        }
    source = clusters.select("record_id", "source", "person_id")
    sample = sample.join(
        source.rename({"record_id": L, "source": "source_l", "person_id": "person_l"}),
        on=L,
        how="left",
    ).join(
        source.rename({"record_id": R, "source": "source_r", "person_id": "person_r"}),
        on=R,
        how="left",
    )
    name_fields: list[str] = []
    if show_names:
        if not records_path.exists():
            raise InputError(
                "--show-names needs records.parquet in the run directory", file=str(records_path)
            )
        available = pl.read_parquet_schema(records_path)
        name_fields = [f for f in NAME_FIELDS if f in available]
        ids = pl.concat([sample[L], sample[R]]).unique()
        people = (
            pl.scan_parquet(records_path)
            .select("record_id", *name_fields)
            .filter(pl.col("record_id").is_in(ids.implode()))
            .collect()
        )
        for side, key in (("_l", L), ("_r", R)):
            sample = sample.join(
                people.rename({"record_id": key} | {f: f + side for f in name_fields}),
                on=key,
                how="left",
            )
    rows = []
    for row in sample.iter_rows(named=True):
        levels = []
        for col in gamma_cols:
            g = row[col]
            name = "missing" if g is None or g < 0 else level_names.get(col, {}).get(int(g), str(g))
            levels.append(name)
        rows.append(
            {
                **row,
                "levels": levels,
                "same_person": row["person_l"] == row["person_r"],
                "above": row["match_probability"] >= threshold,
            }
        )
    return Section(
        title,
        anchor,
        rows=rows,
        comparisons=[c[len("gamma_") :] for c in gamma_cols],
        n_band=band.height,
        band_bits=SAMPLE_BAND_BITS,
        name_fields=name_fields,
    )


def _review_section(review: str | os.PathLike | None, run: Path) -> Section:
    title, anchor = "Clerical review", "review"
    candidates = [Path(review)] if review is not None else []
    labels = ARTIFACTS["review_labels"].file
    candidates += [run / labels, run / REVIEW_FOLDER / labels]
    path = next((p for p in candidates if p.exists()), None)
    if path is None:
        if review is not None:
            raise InputError("review file not found", file=str(review))
        return absent_section(title, anchor, "no labelled review file (review_labels.csv).")
    from recapture.linkage import review as review_mod

    labels = review_mod.read_review_labels(path, allow_unlabelled=True)
    labels = labels.filter(pl.col("label").is_not_null())
    if labels.height == 0:
        return absent_section(title, anchor, f"{path.name} holds no labels yet.")
    est = review_mod.estimate_error_rates(labels)
    strata = est.strata
    with plot_context():
        fig, ax = new_figure(4.6, 3.4)
        ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=1)
        x = strata["mean_probability"].to_numpy()
        rate = strata["match_rate"].to_numpy()
        lo = strata["match_rate_lower"].to_numpy()
        hi = strata["match_rate_upper"].to_numpy()
        err = np.clip(
            np.nan_to_num(np.vstack([rate - lo, hi - rate])), 0, None
        )  # rounding at 0 and 1
        ax.errorbar(x, rate, yerr=err, fmt="o", capsize=3)
        ax.set_xlabel("mean match probability in the band")
        ax.set_ylabel("share labelled match")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
    return Section(
        title,
        anchor,
        file=path.name,
        estimate=est.to_dict(),
        strata=strata.to_dicts(),
        plot=svg(fig, "review-calibration"),
    )


# ------------------------------------------------------------------------------ public
def linkage_report(
    run_dir: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    show_names: bool = False,
    truth: str | os.PathLike | None = None,
    review: str | os.PathLike | None = None,
    run_info: dict[str, Any] | None = None,
    seed: int = 0,
    title: str = "Linkage-quality report",
) -> Path:
    """Write the linkage-quality report of a run directory's linkage stage.

    ``truth``: a truth table (record_id → person_id, or source/source_key → person_id);
    found automatically at ``run_dir/truth/records.parquet``. ``review``: a labelled
    clerical review CSV; found automatically at ``run_dir/review_labels.csv``.
    ``show_names`` adds names and birth dates to the pair sample and a banner to the page.
    """
    run = Path(run_dir)
    for name in ("pairs", "clusters"):
        if not artifact_path(run, name).exists():
            raise InputError(
                f"no {ARTIFACTS[name].file}: run 'recapture link' first",
                file=str(artifact_path(run, name)),
            )
    pairs = pl.read_parquet(artifact_path(run, "pairs"))
    clusters = pl.read_parquet(
        artifact_path(run, "clusters"), columns=["record_id", "source", "person_id"]
    )
    for col in (L, R, "match_weight", "match_probability", "blocking_rule"):
        if col not in pairs.columns:
            raise InputError(
                f"pairs.parquet lacks column '{col}'",
                file=str(artifact_path(run, "pairs")),
                column=col,
            )
    model = _read_json_opt(artifact_path(run, "linkage_model"))
    metrics = _read_json_opt(artifact_path(run, "linkage_metrics"))
    manifest = _read_json_opt(artifact_path(run, "manifest"))
    threshold = (model or {}).get("threshold", (metrics or {}).get("threshold"))
    threshold = float(threshold) if threshold is not None else None
    truth_table = _truth_for(run, truth, manifest)
    labels = None
    if truth_table is not None:
        keys = truth_table["record_id"].to_numpy()
        entity = truth_table["true_person"].to_numpy()
        same = _lookup(keys, entity, pairs[L].to_numpy(), "the truth table") == _lookup(
            keys, entity, pairs[R].to_numpy(), "the truth table"
        )
        labels = pl.Series("is_match", same)
    overview = _overview(pairs, clusters, metrics, threshold)
    sections = [
        _blocking_section(pairs, metrics, clusters.height),
        _model_section(model),
        _weights_section(pairs, threshold, labels),
        _expected_section(pairs, threshold, metrics),
        _clusters_section(pairs, clusters, threshold, metrics),
        _sample_section(
            pairs, clusters, model, threshold, artifact_path(run, "records"), show_names, seed
        ),
        _truth_section(pairs, clusters, truth_table, labels, threshold),
        _review_section(review, run),
        impact_section(run, show_names=show_names),
    ]
    return render(
        "linkage.html",
        out_path,
        report_name="linkage",
        title=title,
        run=run_info or {"run directory": run.name},
        sections=sections,
        s={x.anchor: x for x in sections},
        overview=overview,
        show_names=show_names,
    )
