"""The linkage explorer: one offline HTML page to look inside a run's linkage.

A reader picks a pair and sees its match weight built up field by field (a waterfall),
browses every comparison pattern, draws a cluster as a graph with its weakest link, moves
the threshold and sees what the model expects (precision, recall, persons, a
covariate-free N̂), and follows EM's path. All of it is computed here from the run's
artifacts (``pairs.parquet``, ``clusters.parquet``, ``linkage_model.json``,
``linkage_metrics.json``), embedded as JSON and drawn by a small vanilla script: no
network, no library. The embedded data are bounded (every pair around the threshold up
to a cap, a capped sample elsewhere, capped patterns and clusters), so the page stays a
few MB on a run of a million records.

The waterfall of pair (l, r) with levels γ_k, in bits (docs/artifacts.md):

* prior = log2(λ_g / (1 − λ_g)), λ_g the prior of the pair's two sources
  (``lambda_by_source_pair``, else ``lambda``);
* field k: F_k = log2(m_k[γ_k] / u_k[γ_k]) (0 when γ_k = −1, a missing value);
* term frequencies: T = log2((2^(w − prior) − π·2^K) / (1 − π)) − ΣF, with
  π = ``alias_share`` and K = Σ_{k kept under an alias} F_k (π = 0: T = w − prior − ΣF);
* alias: A = w − prior − ΣF − T, the mixture's share (0 without aliases);

so prior + ΣF + T + A is the pair's ``match_weight`` w and 1/(1 + 2^−w) its probability.
"""

from __future__ import annotations

import json
import math
import os
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from markupsafe import Markup
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from recapture import progress
from recapture.errors import InputError
from recapture.linkage import evaluation
from recapture.reports._render import render
from recapture.reports.linkage import (
    DEFAULT_CONFLICT_PROBABILITY,
    NAME_FIELDS,
    L,
    R,
    _cluster_stats,
    _lookup,
    _prob_to_weight,
    _read_json_opt,
)

#: Half-width (bits) of the band around the threshold whose pairs are all embedded ...
BAND_BITS = 3.0
#: ... up to this many (a seeded sample when the band holds more).
MAX_BAND_PAIRS = 4000
#: Pairs embedded from outside the band, spread over the match-weight range.
MAX_OTHER_PAIRS = 1500
#: Comparison patterns listed (the most frequent), and example pairs per pattern.
MAX_PATTERNS = 1000
PATTERN_EXAMPLES = 2
#: Clusters drawn as graphs, and the largest drawn.
MAX_CLUSTERS = 40
MAX_CLUSTER_SIZE = 60
#: Match-probability thresholds of the slider (the run's threshold is added).
THRESHOLD_GRID = (
    0.01,
    0.02,
    0.05,
    0.1,
    0.2,
    0.3,
    0.4,
    0.5,
    0.6,
    0.7,
    0.8,
    0.9,
    0.95,
    0.98,
    0.99,
    0.999,
)


def _log2_odds(lam: float) -> float:
    lam = min(max(float(lam), 1e-300), 1 - 1e-16)
    return math.log2(lam / (1 - lam))


def source_pair_key(a: str, b: str) -> str:
    """Key of ``lambda_by_source_pair``: the two source names sorted, joined by '–'."""
    return "–".join(sorted((str(a), str(b))))


def level_bits(model: dict) -> list[list[float]]:
    """log2(m/u) of every level of every comparison (index = gamma)."""
    out = []
    for comp in model.get("comparisons", []):
        levels = sorted(comp.get("levels", []), key=lambda lv: int(lv.get("gamma", 0)))
        bits = []
        for lv in levels:
            m, u = lv.get("m"), lv.get("u")
            if lv.get("match_weight") is not None:
                bits.append(float(lv["match_weight"]))
            elif m and u:
                bits.append(math.log2(m / u))
            else:
                bits.append(0.0)
        out.append(bits)
    return out


def waterfall(
    model: dict, gammas: list[int], sources: tuple[str, str] | None, match_weight: float
) -> list[tuple[str, float]]:
    """The bars of one pair's match weight: prior, one per comparison, term frequencies,
    alias; they add up to ``match_weight`` (formula in the module docstring)."""
    lams = model.get("lambda_by_source_pair") or {}
    key = source_pair_key(*sources) if sources else None
    prior = (
        _log2_odds(lams[key])
        if key in lams
        else float(model.get("prior_match_weight", _log2_odds(model.get("lambda", 0.5))))
    )
    bits = level_bits(model)
    names = [c.get("name") for c in model.get("comparisons", [])]
    alias = set(model.get("alias_comparisons") or [])
    pi = float(model.get("alias_share") or 0.0)
    fields = [(bits[k][g] if g >= 0 else 0.0) for k, g in enumerate(gammas)]
    total_f = sum(fields)
    kept = sum(f for f, n in zip(fields, names, strict=True) if n in alias)
    rest = match_weight - prior
    tf = rest - total_f
    if pi > 0:
        own = 2.0**rest - pi * 2.0**kept
        if own > 0:
            tf = math.log2(own / (1 - pi)) - total_f
    out = [("prior", prior)] + list(zip(names, fields, strict=True))
    out.append(("term frequencies", tf))
    out.append(("alias", match_weight - prior - total_f - tf))
    return out


def tf_fields(model: dict, gammas: list[int]) -> str:
    """Which fields the term-frequency bits of a pair belong to: the TF fields that agree
    exactly or on their key, the only levels TF bits apply to. With one such field the
    bits are all its own; with both names they include the joint-name penalty and cannot
    be split further (the per-value bits are not stored per pair)."""
    agree = [
        c.get("name")
        for c, g in zip(model.get("comparisons", []), gammas, strict=True)
        if c.get("tf") and g >= 0 and _level_name(c, g) in ("exact", "key")
    ]
    if len(agree) <= 1:
        return "".join(agree) or "none (no name agrees exactly or on its key)"
    return f"{' + '.join(agree)}, joint names"


def _level_name(comp: dict, gamma: int) -> str:
    for lv in comp.get("levels", []):
        if int(lv.get("gamma", -9)) == gamma:
            return str(lv.get("level"))
    return ""


# ------------------------------------------------------------------------------ data
def _record_index(clusters: pl.DataFrame) -> dict[str, np.ndarray]:
    c = clusters.sort("record_id")
    return {
        "ids": c["record_id"].to_numpy(),
        "source": c["source"].cast(pl.String).to_numpy(),
        "person": c["person_id"].to_numpy(),
    }


def _sample_pairs(pairs: pl.DataFrame, tw: float, rng: np.random.Generator) -> np.ndarray:
    """Row numbers of the embedded pairs: the band around the threshold (capped) and a
    sample spread evenly over the 1-bit match-weight bins elsewhere."""
    w = pairs["match_weight"].to_numpy()
    key = rng.random(w.size)
    band = np.flatnonzero(np.abs(w - tw) <= BAND_BITS)
    if band.size > MAX_BAND_PAIRS:
        band = band[np.argsort(key[band], kind="stable")[:MAX_BAND_PAIRS]]
    rest = np.flatnonzero(np.abs(w - tw) > BAND_BITS)
    if rest.size:
        # about the same number from every 1-bit bin: keep a pair with probability
        # quota / pairs in its bin (one pass, no sort of all pairs), then cap
        bins = np.floor(w[rest]).astype(np.int64)
        bins -= bins.min()
        counts = np.bincount(bins)
        quota = max(1, math.ceil(MAX_OTHER_PAIRS / max(int((counts > 0).sum()), 1)))
        rest = rest[key[rest] < quota / counts[bins]]
        if rest.size > MAX_OTHER_PAIRS:
            rest = rest[np.argsort(key[rest], kind="stable")[:MAX_OTHER_PAIRS]]
    return np.unique(np.concatenate([band, rest]))


def _patterns(
    pairs: pl.DataFrame, gamma_cols: list[str], threshold: float, rng: np.random.Generator
) -> tuple[list[dict[str, Any]], np.ndarray, int]:
    """The most frequent comparison patterns, their example pair rows, and how many
    distinct patterns there are."""
    frame = pairs.select(gamma_cols + ["match_weight", "match_probability"]).with_columns(
        pl.Series("_row", np.arange(pairs.height)), pl.Series("_key", rng.random(pairs.height))
    )
    grouped = (
        frame.group_by(gamma_cols)
        .agg(
            pl.len().alias("count"),
            pl.col("match_weight").mean().alias("mean_weight"),
            pl.col("match_weight").min().alias("min_weight"),
            pl.col("match_weight").max().alias("max_weight"),
            pl.col("match_probability").mean().alias("mean_probability"),
            (pl.col("match_probability") >= threshold).sum().alias("links"),
            pl.col("_row").sort_by("_key").head(PATTERN_EXAMPLES).alias("examples"),
        )
        .sort(["count", *gamma_cols], descending=[True] + [False] * len(gamma_cols))
    )
    total = grouped.height
    grouped = grouped.head(MAX_PATTERNS)
    rows = []
    examples: list[int] = []
    for rec in grouped.iter_rows(named=True):
        rows.append(
            {
                "gammas": [int(rec[c]) for c in gamma_cols],
                "count": int(rec["count"]),
                "mean_weight": float(rec["mean_weight"]),
                "min_weight": float(rec["min_weight"]),
                "max_weight": float(rec["max_weight"]),
                "mean_probability": float(rec["mean_probability"]),
                "links": int(rec["links"]),
                "example_rows": list(rec["examples"]),
            }
        )
        examples.extend(rec["examples"])
    return rows, np.asarray(examples, dtype=np.int64), total


def _threshold_grid(
    pairs: pl.DataFrame,
    index: dict[str, np.ndarray],
    model: dict,
    threshold: float,
) -> dict[str, Any]:
    """Per threshold: links, model-expected precision/recall/F1, persons as
    ``recapture link --threshold`` would cluster them, and covariate-free N̂."""
    from recapture.linkage import LinkageSettings
    from recapture.linkage.clustering import cluster_pairs

    # the run's clustering settings; the built-in ones where linkage_model.json has none
    settings = {**LinkageSettings.default().to_dict(), **(model.get("settings") or {})}
    grid = sorted(set(THRESHOLD_GRID) | {round(float(threshold), 12)})
    prob = pairs["match_probability"].to_numpy()
    ids = index["ids"]
    i, j = np.minimum(index["row_l"], index["row_r"]), np.maximum(index["row_l"], index["row_r"])
    names, codes = np.unique(index["source"].astype(str), return_inverse=True)
    codes = codes.ravel()
    expected = evaluation.expected_metrics_by_threshold(pairs["match_probability"], grid)
    conflict_p = float(settings.get("conflict_probability", DEFAULT_CONFLICT_PROBABILITY))
    # Only two kinds of pair can change a clustering at a grid threshold: links (p ≥ the
    # lowest threshold) and conflicts (p < conflict_p inside one cluster, so inside one
    # component of the lowest threshold's links). Leaving out the rest, usually nearly
    # all pairs, gives the same clusters at a fraction of the cost.
    strong = prob >= grid[0]
    _, comp = connected_components(
        coo_matrix((np.ones(int(strong.sum())), (i[strong], j[strong])), shape=(ids.size,) * 2),
        directed=False,
    )
    relevant = strong | ((prob < conflict_p) & (comp[i] == comp[j]))
    # records in none of those pairs are persons on their own at every threshold
    touched = np.unique(np.concatenate([i[relevant], j[relevant]]))
    ri, rj = np.searchsorted(touched, i[relevant]), np.searchsorted(touched, j[relevant])
    rp = prob[relevant]
    alone = np.setdiff1d(np.arange(ids.size), touched, assume_unique=True)
    rows = []
    for k, t in enumerate(progress.bar(grid, label="threshold grid", unit="threshold")):
        clustering = cluster_pairs(
            touched.size,
            ri,
            rj,
            rp,
            t,
            sources=codes[touched] if settings.get("source") else None,
            one_to_one=bool(settings.get("one_to_one", False)),
            conflict_probability=conflict_p,
            chaining_action=str(settings.get("chaining_action", "split")),
            chaining_steps=settings.get("chaining_steps"),
        )
        inside = int(clustering.labels.max()) + 1 if touched.size else 0
        labels = np.empty(ids.size, dtype=np.int64)  # persons numbered 0 … n_persons − 1
        labels[touched] = clustering.labels
        labels[alone] = inside + np.arange(alone.size)
        n_persons = inside + alone.size
        row = {
            "threshold": float(t),
            "weight": _prob_to_weight(t),
            "links": int((prob >= t).sum()),
            "persons": n_persons,
            "expected_precision": _finite(expected["expected_precision"][k]),
            "expected_recall": _finite(expected["expected_recall"][k]),
            "expected_f1": _finite(expected["expected_f1"][k]),
        }
        row.update(_covariate_free(labels, codes, names, n_persons))
        rows.append(row)
    return {"rows": rows, "run_threshold": float(threshold), "sources": names.tolist()}


def _finite(x: Any) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def _covariate_free(
    labels: np.ndarray, codes: np.ndarray, names: np.ndarray, n_persons: int
) -> dict[str, Any]:
    """Chapman's two-list N̂ (first two sources) and Chao's lower bound on the counts of
    the largest source, from the persons of one clustering; no covariates, no period."""
    out: dict[str, Any] = {}
    k = max(names.size, 1)
    seen = np.bincount(
        codes.astype(np.int64) * n_persons + labels, minlength=k * n_persons
    ).reshape(k, n_persons)
    if names.size >= 2:
        a, b = seen[0] > 0, seen[1] > 0
        n1, n2, m = int(a.sum()), int(b.sum()), int((a & b).sum())
        out["chapman"] = (n1 + 1) * (n2 + 1) / (m + 1) - 1
        out["chapman_counts"] = [n1, n2, m]
    big = int(np.argmax(seen.sum(axis=1)))
    counts = seen[big][seen[big] > 0]
    f1, f2 = int((counts == 1).sum()), int((counts == 2).sum())
    n = int(counts.size)
    out["chao"] = n + (f1 * f1 / (2 * f2) if f2 > 0 else f1 * (f1 - 1) / 2)
    out["chao_counts"] = [n, f1, f2]
    out["chao_source"] = str(names[big]) if names.size else ""
    return out


def _clusters(
    pairs: pl.DataFrame,
    clusters: pl.DataFrame,
    index: dict[str, np.ndarray],
    threshold: float,
    conflict_p: float,
) -> list[dict[str, Any]]:
    """The clusters worth a look (conflicts, weakest links, the largest) as small graphs."""
    stats, _ = _cluster_stats(pairs, clusters, threshold, conflict_p)
    if stats.height == 0:
        return []
    small = stats.filter(pl.col("size") <= MAX_CLUSTER_SIZE)
    suspect = small.sort(
        ["conflicts", "weakest_link", "size"], descending=[True, False, True], nulls_last=True
    ).head(MAX_CLUSTERS // 2)
    large = small.sort(["size", "person_id"], descending=[True, False]).head(MAX_CLUSTERS // 2)
    chosen = pl.concat([suspect, large]).unique("person_id", keep="first", maintain_order=True)
    wanted = chosen["person_id"].to_numpy()
    person = index["person"]
    ids = index["ids"]
    pl_rows, pr_rows = index["row_l"], index["row_r"]
    in_wanted = np.isin(person[pl_rows], wanted) & (person[pl_rows] == person[pr_rows])
    sel = np.flatnonzero(in_wanted)
    edge_person = person[pl_rows[sel]]
    w = pairs["match_weight"].to_numpy()
    p = pairs["match_probability"].to_numpy()
    linked = pairs["linked"].to_numpy() if "linked" in pairs.columns else p >= threshold
    out = []
    for rec in chosen.iter_rows(named=True):
        pid = rec["person_id"]
        members = np.flatnonzero(person == pid)
        node_ids = ids[members]
        mine = sel[edge_person == pid]
        a = np.searchsorted(node_ids, pairs[L].to_numpy()[mine])
        b = np.searchsorted(node_ids, pairs[R].to_numpy()[mine])
        edges = [
            [int(x), int(y), round(float(p[e]), 6), round(float(w[e]), 3), bool(linked[e])]
            for x, y, e in zip(a, b, mine, strict=True)
        ]
        weakest = rec["weakest_link"]
        if rec["conflicts"]:
            verdict = (
                f"conflict: {rec['conflicts']} scored pair(s) inside at p < {conflict_p:g}; "
                "the chaining guard could not split it"
            )
        elif rec["size"] >= 4 and rec["density"] < 0.5:
            verdict = "sparse: fewer than half of its record pairs linked (held by a chain)"
        else:
            verdict = f"passes the chaining guard (no pair inside below p = {conflict_p:g})"
        out.append(
            {
                "person_id": int(pid),
                "records": [int(x) for x in node_ids],
                "sources": [str(s) for s in index["source"][members]],
                "edges": edges,
                "weakest_link": None if weakest is None else float(weakest),
                "conflicts": int(rec["conflicts"]),
                "density": float(rec["density"]),
                "verdict": verdict,
            }
        )
    return out


def _tf_charts(model: dict, show_names: bool) -> list[dict[str, Any]]:
    """Term-frequency bits of the most frequent values of each TF column; the values
    themselves (names) only with ``show_names``."""
    cap = float((model.get("settings") or {}).get("tf_max_bits", 8.0))
    out = []
    for column, table in (model.get("term_frequency_tables") or {}).items():
        sq = float(table.get("sum_squared_frequency") or 0.0)
        top = table.get("top_values") or []
        if sq <= 0 or not top:
            continue
        bits = [
            max(-cap, min(cap, math.log2(sq / float(v["frequency"]))))
            for v in top
            if v.get("frequency")
        ]
        out.append(
            {
                "column": column,
                "distinct_values": table.get("distinct_values"),
                "sum_squared_frequency": sq,
                "bits": [round(b, 3) for b in bits],
                "counts": [int(v.get("count", 0)) for v in top],
                "values": [str(v.get("value")) for v in top] if show_names else None,
            }
        )
    return out


def _em_trace(model: dict) -> list[dict[str, Any]]:
    keep = ("iteration", "lambda", "log_likelihood", "max_change", "session", "alias_share")
    out = []
    for entry in model.get("em_trace") or []:
        row = {k: entry[k] for k in keep if k in entry}
        if "m" in entry and "u" in entry:
            row["m"], row["u"] = entry["m"], entry["u"]
        out.append(row)
    return out


def explorer_data(
    run_dir: str | os.PathLike, show_names: bool = False, *, seed: int = 0
) -> dict[str, Any]:
    """Everything the explorer page shows, as JSON-ready data (bounded in size)."""
    run = Path(run_dir)
    for name in ("pairs.parquet", "clusters.parquet", "linkage_model.json"):
        if not (run / name).is_file():
            raise InputError(
                "no such file (the explorer needs the linkage artifacts)", file=str(run / name)
            )
    model = _read_json_opt(run / "linkage_model.json") or {}
    metrics = _read_json_opt(run / "linkage_metrics.json") or {}
    pairs = pl.read_parquet(run / "pairs.parquet")
    clusters = pl.read_parquet(run / "clusters.parquet")
    threshold = model.get("threshold", metrics.get("threshold"))
    threshold = float(threshold) if threshold is not None else 0.5
    tw = _prob_to_weight(threshold)
    comps = [c for c in model.get("comparisons", []) if isinstance(c, dict)]
    gamma_cols = [f"gamma_{c.get('name')}" for c in comps]
    missing = [c for c in gamma_cols if c not in pairs.columns]
    if missing:
        raise InputError(
            "column of a comparison in linkage_model.json is missing",
            file=str(run / "pairs.parquet"),
            column=missing[0],
        )
    rng = np.random.default_rng(seed)
    index = _record_index(clusters)
    # each pair's two records as rows of the record index, looked up once
    index["row_l"] = _lookup(index["ids"], np.arange(index["ids"].size), pairs[L].to_numpy())
    index["row_r"] = _lookup(index["ids"], np.arange(index["ids"].size), pairs[R].to_numpy())
    chaining = (metrics.get("clustering") or {}).get("chaining") or {}
    conflict_p = float(chaining.get("conflict_probability", DEFAULT_CONFLICT_PROBABILITY))

    patterns, example_rows, n_patterns = _patterns(pairs, gamma_cols, threshold, rng)
    rows = np.union1d(_sample_pairs(pairs, tw, rng), example_rows)
    sample = pairs[rows]
    li, ri = index["row_l"][rows], index["row_r"][rows]
    src_names, src_codes = np.unique(index["source"].astype(str), return_inverse=True)
    src_codes = src_codes.ravel()
    pos = {int(r): k for k, r in enumerate(rows)}
    for pat in patterns:
        pat["examples"] = [pos[int(r)] for r in pat.pop("example_rows")]
    embedded: dict[str, Any] = {
        "l": sample[L].to_list(),
        "r": sample[R].to_list(),
        "src_l": src_codes[li].tolist(),
        "src_r": src_codes[ri].tolist(),
        "person_l": index["person"][li].tolist(),
        "person_r": index["person"][ri].tolist(),
        "gammas": np.column_stack([sample[c].to_numpy() for c in gamma_cols]).tolist()
        if gamma_cols
        else [[] for _ in range(sample.height)],
        "weight": np.round(sample["match_weight"].to_numpy(), 6).tolist(),
        "prob": [float(f"{x:.6g}") for x in sample["match_probability"].to_numpy()],
        "linked": sample["linked"].to_list() if "linked" in sample.columns else None,
        "swapped": sample["names_swapped"].to_list() if "names_swapped" in sample.columns else None,
        "rule": sample["blocking_rule"].to_list() if "blocking_rule" in sample.columns else None,
        "band": (np.abs(sample["match_weight"].to_numpy() - tw) <= BAND_BITS).tolist(),
    }
    if show_names and (run / "records.parquet").is_file():
        embedded["names"] = _names(run / "records.parquet", embedded["l"], embedded["r"])

    with progress.step("explorer: threshold grid") as st:
        grid = _threshold_grid(pairs, index, model, threshold)
        st["result"] = f"{len(grid['rows'])} thresholds"
    return {
        "show_names": bool(show_names),
        "threshold": threshold,
        "threshold_weight": tw,
        "band_bits": BAND_BITS,
        "counts": {
            "pairs": pairs.height,
            "records": clusters.height,
            "embedded_pairs": int(rows.size),
            "band_pairs": int(np.sum(np.abs(pairs["match_weight"].to_numpy() - tw) <= BAND_BITS)),
            "patterns": n_patterns,
        },
        "sources": src_names.tolist(),
        "model": {
            "comparisons": [
                {
                    "name": c.get("name"),
                    "kind": c.get("kind"),
                    "tf": bool(c.get("tf")),
                    "levels": [
                        {
                            "gamma": int(lv.get("gamma", 0)),
                            "level": lv.get("level"),
                            "m": lv.get("m"),
                            "u": lv.get("u"),
                        }
                        for lv in sorted(c.get("levels", []), key=lambda v: int(v.get("gamma", 0)))
                    ],
                    "bits": bits,
                }
                for c, bits in zip(comps, level_bits(model), strict=True)
            ],
            "lambda": model.get("lambda"),
            "prior_match_weight": model.get("prior_match_weight"),
            "lambda_by_source_pair": model.get("lambda_by_source_pair") or {},
            "alias_share": float(model.get("alias_share") or 0.0),
            "alias_comparisons": model.get("alias_comparisons") or [],
            "em_mode": model.get("em_mode"),
            "converged": model.get("converged"),
        },
        "em_trace": _em_trace(model),
        "tf": _tf_charts(model, show_names),
        "pairs": embedded,
        "patterns": patterns,
        "clusters": _clusters(pairs, clusters, index, threshold, conflict_p),
        "chaining": chaining,
        "grid": grid,
    }


def _names(records_path: Path, left: list[int], right: list[int]) -> dict[str, list]:
    """Recorded names etc. of the embedded pairs' records (``show_names`` only)."""
    records = pl.read_parquet(records_path)
    cols = [c for c in NAME_FIELDS if c in records.columns]
    wanted = pl.DataFrame({"record_id": sorted(set(left) | set(right))})
    table = wanted.join(records.select(["record_id", *cols]), on="record_id", how="left")
    text = {
        int(row[0]): " · ".join(str(v) for v in row[1:] if v not in (None, ""))
        for row in table.iter_rows()
    }
    return {"l": [text.get(x, "") for x in left], "r": [text.get(x, "") for x in right]}


def _json_for_script(data: Any) -> str:
    """JSON safe inside <script>: no '</' can close the element early."""
    text = json.dumps(data, separators=(",", ":"), allow_nan=False, default=_default)
    return text.replace("</", "<\\/").replace("<!--", "<\\!--")


def _default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _clean(value: Any) -> Any:
    """NaN and infinities become null (JSON has neither)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def explorer_report(
    run_dir: str | os.PathLike,
    out_path: str | os.PathLike,
    show_names: bool = False,
    run_info: dict[str, Any] | None = None,
) -> Path:
    """Write the explorer page for the linkage of ``run_dir``; return its path."""
    data = _clean(explorer_data(run_dir, show_names=show_names))
    return render(
        "explorer.html",
        out_path,
        title="Linkage explorer",
        report_name="explorer",
        run=run_info or {},
        show_names=show_names,
        sections=[],
        data_json=_json_for_script(data),
        script=Markup(_script()),
    )


def _script() -> str:
    text = resources.files("recapture.reports").joinpath("templates/explorer.js").read_text("utf-8")
    if "</script" in text.lower():  # would end the element early
        raise ValueError("explorer.js must not contain a closing script tag")
    return text
