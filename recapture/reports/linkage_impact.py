"""The linkage report's view of the estimates: how far each estimate of the run moves with
the linkage — across the threshold grid and across the imputed linkages — beside the
model's own interval, so an analyst sees when the linkage, not the sampling, dominates
the uncertainty.

Reads what the estimate stage already computed (``estimates.json``: the default interval,
``extra['threshold_sensitivity']`` and ``extra['linkage_aware']``, docs/artifacts.md); it
refits nothing.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from recapture.errors import InputError
from recapture.io import ARTIFACTS, artifact_path
from recapture.reports._render import Section, absent_section
from recapture.reports.estimate_data import (
    HI_KEYS,
    LO_KEYS,
    N_KEYS,
    _f,
    interval_of,
    label_of,
    load_estimates,
    period_of,
)
from recapture.reports.free_text import mask_free_text

TITLE = "Linkage and the estimates"
ANCHOR = "estimate-impact"
#: The linkage dominates an estimate's uncertainty when it carries more than this share of
#: the linkage-aware variance (Rubin's (1 + 1/M)·B / T, or the analytic correction's) …
DOMINANT_SHARE = 0.5
#: … or when N̂ moves across the threshold grid by more than the model interval's width.


def _threshold_range(raw: Any) -> dict[str, Any] | None:
    """Smallest and largest finite N̂ over the threshold table, with their thresholds."""
    if not isinstance(raw, list):
        return None
    points = []
    for row in raw:
        if not isinstance(row, dict):
            continue
        t, n = _f(row.get("threshold")), _f(row.get("population_size"))
        if math.isfinite(t) and math.isfinite(n):
            points.append((t, n))
    if not points:
        return {"thresholds": len(raw), "finite": 0}
    t_lo, n_lo = min(points, key=lambda p: p[1])
    t_hi, n_hi = max(points, key=lambda p: p[1])
    grid = sorted(t for t, _ in points)
    return {
        "thresholds": len(raw),
        "finite": len(points),
        "t_min": grid[0],
        "t_max": grid[-1],
        "lower": n_lo,
        "upper": n_hi,
        "at_lower": t_lo,
        "at_upper": t_hi,
        "width": n_hi - n_lo,
    }


def _aware(raw: Any) -> dict[str, Any] | None:
    if not isinstance(raw, dict) or "error" in raw:
        return None
    lo, hi = (
        _f(next((raw[k] for k in LO_KEYS if k in raw), None)),
        _f(next((raw[k] for k in HI_KEYS if k in raw), None)),
    )
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return None
    method = str(raw.get("method") or "")
    return {
        "population_size": _f(next((raw[k] for k in N_KEYS if k in raw), None)),
        "lower": lo,
        "upper": hi,
        "width": hi - lo,
        "share": _f(raw.get("linkage_variance_share")),
        "method": method.replace("_", " "),
        "imputations": raw.get("M"),
    }


def _verdict(model_width: float, thresholds: dict | None, aware: dict | None) -> tuple[str, str]:
    """('linkage' | 'model' | 'unknown', the reason in words)."""
    reasons, model_wins = [], []
    share = aware["share"] if aware else math.nan
    if math.isfinite(share):
        text = f"the linkage carries {share:.0%} of the linkage-aware variance"
        (reasons if share > DOMINANT_SHARE else model_wins).append(text)
    if thresholds and thresholds.get("finite", 0) >= 2 and math.isfinite(model_width):
        ratio = thresholds["width"] / model_width if model_width > 0 else math.inf
        text = f"N̂ moves across the thresholds by {ratio:.0%} of the model interval's width"
        (reasons if ratio > 1 else model_wins).append(text)
    if reasons:
        return "linkage", "; ".join(reasons + model_wins)
    if model_wins:
        return "model", "; ".join(model_wins)
    return "unknown", "no threshold sensitivity or linkage-aware interval was computed"


def impact_rows(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per fitted estimate: N̂, the model interval, the range of N̂ across the
    threshold grid, the linkage-aware interval(s), the linkage's share of the variance
    and which of the two dominates (with the reason)."""
    rows = []
    for i, est in enumerate(entries):
        if "population_size" not in est:
            continue
        extra = est.get("extra") or {}
        lo, hi, method = interval_of(est)
        width = hi - lo if math.isfinite(lo) and math.isfinite(hi) else math.nan
        thresholds = _threshold_range(extra.get("threshold_sensitivity"))
        aware = _aware(extra.get("linkage_aware"))
        analytic = _aware(extra.get("linkage_aware_analytic"))
        failed = extra.get("linkage_aware")
        verdict, reason = _verdict(width, thresholds, aware or analytic)
        rows.append(
            {
                "index": i + 1,
                "label": label_of(est),
                "period": period_of(est),
                "population_size": _f(est.get("population_size")),
                "model": {"lower": lo, "upper": hi, "width": width, "method": method},
                "thresholds": thresholds,
                "aware": aware,
                "analytic": analytic,
                "aware_error": failed.get("error") if isinstance(failed, dict) else None,
                "verdict": verdict,
                "reason": reason,
            }
        )
    return rows


def _summary(rows: list[dict[str, Any]]) -> str:
    """One sentence: which of linkage and model dominates, over the run's estimates."""
    name = {id(r): f"{r['index']}. {r['label']}" for r in rows}
    linkage = [name[id(r)] for r in rows if r["verdict"] == "linkage"]
    model = [name[id(r)] for r in rows if r["verdict"] == "model"]
    unknown = [name[id(r)] for r in rows if r["verdict"] == "unknown"]
    if not linkage and not model:
        return (
            "No estimate of this run has a threshold sensitivity or a linkage-aware interval, "
            "so the linkage's share of the uncertainty is not known: set [uncertainty] "
            "imputations and thresholds in the pipeline config."
        )
    if linkage and not model:
        text = f"The linkage dominates the uncertainty of {_every(len(linkage))}"
    elif model and not linkage:
        text = f"The model's own sampling error dominates for all {len(model)} assessed estimates"
    else:
        text = (
            f"The linkage dominates the uncertainty of {', '.join(linkage)}; the model's "
            f"sampling error that of {', '.join(model)}"
        )
    if unknown:
        text += f"; not assessed: {', '.join(unknown)}"
    if linkage:
        text += (
            ". Where the linkage dominates, the model-only interval understates the "
            "uncertainty: quote the linkage-aware interval, or improve the linkage first"
        )
    return text + "."


def _every(n: int) -> str:
    return "the one assessed estimate" if n == 1 else f"all {n} assessed estimates"


def impact_section(run: Path, *, show_names: bool = False) -> Section:
    """The section of the linkage report (absent, saying why, without estimates.json)."""
    path = artifact_path(run, "estimates")
    if not path.exists():
        return absent_section(
            TITLE,
            ANCHOR,
            f"no {ARTIFACTS['estimates'].file} in the run directory (the estimate stage has "
            "not run): the estimates' sensitivity to the linkage is shown once it has.",
        )
    try:
        entries = load_estimates(path)
    except InputError as exc:
        return absent_section(TITLE, ANCHOR, f"{ARTIFACTS['estimates'].file} is unreadable: {exc}")
    if not show_names:
        entries, _ = mask_free_text(entries)
    rows = impact_rows(entries)
    if not rows:
        return absent_section(TITLE, ANCHOR, "no estimator of the run could be fitted.")
    return Section(TITLE, ANCHOR, rows=rows, summary=_summary(rows), dominant_share=DOMINANT_SHARE)
