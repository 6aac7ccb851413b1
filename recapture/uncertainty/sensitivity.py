"""Threshold sensitivity: how N̂ and its interval move with the match threshold.

Raising the threshold drops links: missed duplicates split persons (single-source counts
shift towards 1, the truncated-count N̂ rises) and missed cross-list links lower m (the DSE
rises); lowering it adds false links with the opposite effects. The table shows a reader
how much of the answer rests on one choice of threshold. Each threshold re-clusters the
scored pairs with the engine's chaining guard, rebuilds the capture histories and refits.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl

from recapture.estimators.result import PopulationEstimate
from recapture.persons import CaptureHistoryRules, Period
from recapture.uncertainty import _fitting
from recapture.uncertainty.draws import (
    DEFAULT_CHAINING_STEPS,
    DEFAULT_CONFLICT_PROBABILITY,
    PairGraph,
    labels_to_clusters,
    prepare_pairs,
    threshold_labels,
)

#: Thresholds used when none are given.
DEFAULT_THRESHOLDS: tuple[float, ...] = (0.1, 0.3, 0.5, 0.7, 0.9, 0.99)

_STATE: dict[str, Any] = {}


def _init_worker(
    graph, records, period, sources, rules, estimators, fit_kwargs, thresholds, level, interval
) -> None:
    _STATE.update(
        graph=graph,
        records=records,
        period=period,
        sources=sources,
        rules=rules,
        estimators=estimators,
        fit_kwargs=fit_kwargs,
        thresholds=thresholds,
        level=level,
        interval=interval,
    )


def _one_threshold(k: int) -> dict[str, dict[str, Any]]:
    s = _STATE
    threshold = s["thresholds"][k]
    labels = threshold_labels(s["graph"], threshold)
    persons = _fitting.persons_for(
        s["records"], labels_to_clusters(s["graph"], labels), s["period"], s["sources"], s["rules"]
    )
    out = {}
    for name, estimator in s["estimators"].items():
        row: dict[str, Any] = {"threshold": float(threshold)}
        try:
            est = _fitting.fit_estimator(estimator, persons, s["fit_kwargs"].get(name))
            row.update(_fitting.summary_row(est, s["level"], s["interval"]))
        except Exception:  # a threshold where the model cannot be fitted shows as NaN
            row.update(
                population_size=math.nan,
                se=math.nan,
                lower=math.nan,
                upper=math.nan,
                n_observed=int(persons.height),
            )
        out[name] = row
    return out


def threshold_sensitivity_many(
    records: pl.DataFrame,
    pairs: pl.DataFrame,
    estimators: Mapping[str, Any],
    *,
    period: Period,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    sources: list[str] | None = None,
    rules: CaptureHistoryRules | None = None,
    fit_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
    conflict_probability: float = DEFAULT_CONFLICT_PROBABILITY,
    chaining_steps: Sequence[float] = DEFAULT_CHAINING_STEPS,
    level: float = 0.95,
    interval: str | None = None,
    workers: int | None = 1,
    graph: PairGraph | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """For each named estimator, one row per threshold: {threshold, population_size, se,
    lower, upper, n_observed}. Persons are rebuilt once per threshold and shared by all
    estimators. ``interval`` is the confint method (each estimate's default when None)."""
    thresholds = sorted(float(t) for t in thresholds)
    if not thresholds or thresholds[0] <= 0 or thresholds[-1] >= 1:
        raise ValueError("thresholds must lie strictly between 0 and 1")
    rules = rules or CaptureHistoryRules()
    sources = sources or sorted(records["source"].unique().to_list())
    if graph is None:
        graph = prepare_pairs(
            records["record_id"],
            pairs,
            conflict_probability=conflict_probability,
            chaining_steps=chaining_steps,
            min_probability=min(thresholds),
        )
    kept = _fitting.period_records(records, period, rules)
    kwargs = {name: dict((fit_kwargs or {}).get(name, {})) for name in estimators}
    n_workers = _fitting.resolve_workers(workers, len(thresholds))
    init_args = (
        graph,
        kept,
        period,
        sources,
        rules,
        dict(estimators),
        kwargs,
        thresholds,
        level,
        interval,
    )
    per_threshold = _fitting.run_tasks(
        _one_threshold, len(thresholds), n_workers, _init_worker, init_args, label="thresholds"
    )
    _STATE.clear()
    return {name: [res[name] for res in per_threshold] for name in estimators}


def threshold_sensitivity(
    records: pl.DataFrame,
    pairs: pl.DataFrame,
    estimator: Any,
    *,
    period: Period,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    fit_kwargs: Mapping[str, Any] | None = None,
    **options: Any,
) -> list[dict[str, Any]]:
    """One estimator's threshold table (see :func:`threshold_sensitivity_many`)."""
    table = threshold_sensitivity_many(
        records,
        pairs,
        {"_": estimator},
        period=period,
        thresholds=thresholds,
        fit_kwargs={"_": fit_kwargs or {}},
        **options,
    )
    return table["_"]


def attach_threshold_sensitivity(
    estimate: PopulationEstimate, table: list[dict[str, Any]]
) -> PopulationEstimate:
    """Store the table where reports look for it: ``extra['threshold_sensitivity']``."""
    estimate.extra["threshold_sensitivity"] = [dict(row) for row in table]
    return estimate


def sensitivity_range(table: list[dict[str, Any]]) -> tuple[float, float]:
    """Smallest and largest N̂ over the thresholds (NaNs ignored)."""
    values = np.array([row["population_size"] for row in table], dtype=float)
    values = values[np.isfinite(values)]
    return (float(values.min()), float(values.max())) if values.size else (math.nan, math.nan)
