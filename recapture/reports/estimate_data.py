"""Reading estimates for the estimate report: the entries of ``estimates.json`` (or
result objects) and the documented keys their optional parts are found under."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from recapture.errors import InputError
from recapture.estimators.result import PopulationEstimate
from recapture.io import artifact_path, read_json

#: Keys accepted for the parts of optional structures, first match wins.
K_KEYS = ("k", "count", "y", "times", "frequency_class", "history", "pattern", "cell", "label")
OBS_KEYS = ("observed", "f_observed", "observed_frequency", "f", "n")
FIT_KEYS = ("fitted", "expected", "f_fitted", "fitted_frequency", "e")
THETA_KEYS = ("theta", "odds_ratio", "dependence", "log_odds_ratio")
N_KEYS = ("population_size", "n_hat", "N_hat", "estimate")
LO_KEYS = ("lower", "lo", "ci_lower")
HI_KEYS = ("upper", "hi", "ci_upper")

#: Largest number of strata rows drawn in one plot (a table lists them all).
MAX_STRATA_PLOTTED = 40


def load_estimates(source: Any) -> list[dict[str, Any]]:
    """Estimates as dicts from a run directory, an estimates.json path or objects.

    Entries of estimators that failed (``{"model", "error", ...}`` without N̂) are kept:
    the report lists them.
    """
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        if path.is_dir():
            path = artifact_path(path, "estimates")
        if not path.exists():
            raise InputError("no estimates.json: run 'recapture estimate' first", file=str(path))
        try:
            data = read_json(path)
        except ValueError as exc:
            raise InputError(f"not valid JSON: {exc}", file=str(path)) from None
        if isinstance(data, dict) and "estimates" in data:
            data = data["estimates"]
        if not isinstance(data, list):
            raise InputError("estimates.json must hold a list of estimates", file=str(path))
        entries = data
    else:
        entries = list(source)
    out = []
    for i, entry in enumerate(entries):
        if isinstance(entry, PopulationEstimate):
            entry = entry.to_dict()
        if (
            not isinstance(entry, dict)
            or "model" not in entry
            or ("population_size" not in entry and "error" not in entry)
        ):
            raise InputError(f"estimate {i + 1} lacks 'model' or 'population_size'", row=i + 1)
        out.append(entry)
    return out


# ------------------------------------------------------------------------------ helpers
def _f(value: Any) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return math.nan
    return x


def period_of(est: dict[str, Any]) -> str | None:
    extra = est.get("extra") or {}
    value = extra.get("period", est.get("period"))
    return None if value is None else str(value)


def label_of(est: dict[str, Any]) -> str:
    """The configured name (if any) and the model's description."""
    text = est.get("description") or est.get("model") or "?"
    name = est.get("name")
    if name and name != est.get("model") and name not in text:
        text = f"{name}: {text}"
    return text


def interval_of(est: dict[str, Any]) -> tuple[float, float, str]:
    """The estimate's default interval (lower, upper, method); NaN when missing."""
    intervals = est.get("intervals") or {}
    method = est.get("default_interval") or "normal"
    chosen = intervals.get(method) or {}
    if "lower" not in chosen:
        for name, iv in intervals.items():
            if isinstance(iv, dict) and "lower" in iv:
                method, chosen = name, iv
                break
    lo, hi = _f(chosen.get("lower")), _f(chosen.get("upper"))
    if math.isnan(lo) and math.isfinite(_f(est.get("se"))):
        n, se = _f(est["population_size"]), _f(est["se"])
        lo, hi, method = n - 1.96 * se, n + 1.96 * se, "normal"
    return lo, hi, method


# ------------------------------------------------------------------------------ sections
