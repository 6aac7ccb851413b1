"""Multiple imputation of the linkage: intervals that carry linkage error.

Linking once and treating the links as truth hides the linkage error: a few percent of
missed duplicates moves a truncated count estimate by more than its standard error. Here
M link configurations are drawn from the pair match probabilities
(:mod:`recapture.uncertainty.draws`), the capture histories are rebuilt for each
(:func:`~recapture.persons.build_persons`), the estimator is refitted,
and the M fits are combined by Rubin's rules, so the interval carries the variance
between linkages as well as the sampling variance of each fit.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl
from scipy import stats

from recapture.estimators.result import PopulationEstimate
from recapture.persons import CaptureHistoryRules, Period
from recapture.uncertainty import _fitting
from recapture.uncertainty.draws import (
    DEFAULT_CHAINING_STEPS,
    DEFAULT_CONFLICT_PROBABILITY,
    PairGraph,
    draw_labels,
    labels_to_clusters,
    prepare_pairs,
)
from recapture.uncertainty.rubin import combine_rubin

_STATE: dict[str, Any] = {}


def _init_worker(graph, records, period, sources, rules, estimator, fit_kwargs, seeds) -> None:
    _STATE.update(
        graph=graph,
        records=records,
        period=period,
        sources=sources,
        rules=rules,
        estimator=estimator,
        fit_kwargs=fit_kwargs,
        seeds=seeds,
    )


#: How the imputations' estimates are combined (see :func:`multiple_imputation`).
SCALES = ("auto", "linear", "log")


def _one_imputation(k: int) -> dict[str, Any]:
    s = _STATE
    rng = np.random.default_rng(s["seeds"][k])
    labels, n_links = draw_labels(s["graph"], rng)
    clusters = labels_to_clusters(s["graph"], labels)
    persons = _fitting.persons_for(s["records"], clusters, s["period"], s["sources"], s["rules"])
    out: dict[str, Any] = {"imputation": k, "pair_links": n_links, "persons": int(persons.height)}
    try:
        est = _fitting.fit_estimator(s["estimator"], persons, s["fit_kwargs"])
    except Exception as exc:  # a failed refit is reported and left out of the combination
        out["error"] = f"{type(exc).__name__}: {exc}"
        return out
    if not (math.isfinite(est.population_size) and math.isfinite(est.se)):
        out["error"] = f"non-finite estimate (N̂ = {est.population_size}, SE = {est.se})"
        return out
    out.update(
        population_size=float(est.population_size),
        se=float(est.se),
        n_observed=int(est.n_observed),
        model=est.model,
        formula=est.formula,
        n_coefficients=len(est.coefficients),
        converged=bool(est.converged),
    )
    reduced = est.extra.get("population_size_bias_reduced")
    se_reduced = est.extra.get("se_bias_reduced")
    if est.default_interval == "bias_reduced" and reduced is not None and se_reduced is not None:
        out.update(population_size_reduced=float(reduced), se_reduced=float(se_reduced))
    return out


def multiple_imputation(
    records: pl.DataFrame,
    pairs: pl.DataFrame,
    estimator: Any,
    *,
    period: Period,
    imputations: int = 50,
    seed: int = 0,
    sources: list[str] | None = None,
    rules: CaptureHistoryRules | None = None,
    fit_kwargs: Mapping[str, Any] | None = None,
    workers: int | None = None,
    conflict_probability: float = DEFAULT_CONFLICT_PROBABILITY,
    chaining_steps: Sequence[float] = DEFAULT_CHAINING_STEPS,
    min_probability: float = 1e-6,
    scale: str = "auto",
    level: float = 0.95,
    graph: PairGraph | None = None,
) -> PopulationEstimate:
    """Fit ``estimator`` on ``imputations`` linkages drawn from ``pairs`` and combine.

    ``estimator`` is any object with ``.fit(persons, **fit_kwargs)`` returning a
    :class:`PopulationEstimate` (single-source or log-linear), or such a callable. It must
    be picklable when ``workers`` > 1 (imputations run in a process pool). Imputation k
    uses the k-th child of ``numpy.random.SeedSequence(seed)``, so the result does not
    depend on ``workers``. ``scale="log"`` combines log N̂ (variance (SE/N̂)²) and
    back-transforms the interval, which keeps it above zero and asymmetric like N̂;
    ``"linear"`` combines N̂. ``"auto"`` (the default) follows the model's own default
    interval: for a model whose interval is ``bias_reduced`` (covariate strata) it combines
    the log of the bias-reduced N̂ with its SE, so that the linkage-aware interval is the
    model's interval widened by the linkage's variance, not an interval around the ML N̂,
    which is biased upwards in sparse strata; otherwise it combines N̂ on the linear scale.

    The result is a PopulationEstimate named ``mi:<inner model>`` whose interval (method
    ``mi``, the default) is the Rubin t-interval; ``extra["linkage_aware"]`` holds the
    variance split, the df and the per-imputation estimates.
    """
    if imputations < 2:
        raise ValueError("multiple imputation needs at least 2 imputations")
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {', '.join(SCALES)}")
    rules = rules or CaptureHistoryRules()
    sources = sources or sorted(records["source"].unique().to_list())
    started = time.perf_counter()
    if graph is None:
        graph = prepare_pairs(
            records["record_id"],
            pairs,
            conflict_probability=conflict_probability,
            chaining_steps=chaining_steps,
            min_probability=min_probability,
        )
    kept = _fitting.period_records(records, period, rules)
    seeds = np.random.SeedSequence(seed).spawn(imputations)
    n_workers = _fitting.resolve_workers(workers, imputations)
    init_args = (graph, kept, period, sources, rules, estimator, dict(fit_kwargs or {}), seeds)
    runs = _fitting.run_tasks(
        _one_imputation, imputations, n_workers, _init_worker, init_args, label="imputations"
    )
    _STATE.clear()
    return combine_imputations(
        runs,
        scale=scale,
        level=level,
        seed=seed,
        workers=n_workers,
        seconds=time.perf_counter() - started,
        expected_links=graph.expected_links,
    )


def combine_imputations(
    runs: list[dict[str, Any]],
    *,
    scale: str = "auto",
    level: float = 0.95,
    seed: int | None = None,
    workers: int | None = None,
    seconds: float | None = None,
    expected_links: float | None = None,
) -> PopulationEstimate:
    """Rubin-combine per-imputation fits (dicts with population_size, se, n_observed)."""
    ok = [r for r in runs if "error" not in r]
    failed = [r for r in runs if "error" in r]
    if len(ok) < 2 or len(failed) > len(runs) / 2:
        msgs = "; ".join(sorted({r["error"] for r in failed})[:3])
        raise ValueError(f"{len(failed)} of {len(runs)} imputation fits failed: {msgs}")
    centre = "ml"
    if scale == "auto":
        reduced = all("population_size_reduced" in r for r in ok)
        scale, centre = ("log", "bias_reduced") if reduced else ("linear", "ml")
    key, se_key = (
        ("population_size_reduced", "se_reduced")
        if centre == "bias_reduced"
        else ("population_size", "se")
    )
    n_hat = np.array([r[key] for r in ok])
    se = np.array([r[se_key] for r in ok])
    n_obs = np.array([r["n_observed"] for r in ok])
    df_complete = float(np.mean(n_obs) - ok[0].get("n_coefficients", 0) - 1)
    if scale == "log":
        comb = combine_rubin(np.log(n_hat), (se / n_hat) ** 2, level=level, df_complete=df_complete)
        estimate = math.exp(comb.estimate)
        se_total = estimate * comb.se  # delta method back on the N scale
        lower, upper = math.exp(comb.lower), math.exp(comb.upper)
        within, between = comb.within_var * estimate**2, comb.between_var * estimate**2
    else:
        comb = combine_rubin(n_hat, se**2, level=level, df_complete=df_complete)
        estimate, se_total, lower, upper = comb.estimate, comb.se, comb.lower, comb.upper
        within, between = comb.within_var, comb.between_var
    inner = ok[0]["model"]
    ml_sizes = np.array([r["population_size"] for r in ok])
    centre_size = estimate
    if centre == "bias_reduced":  # N̂ stays the ML estimate, as for the model itself
        estimate = float(ml_sizes.mean())
    linkage_aware = {
        "method": "multiple_imputation",
        "M": len(ok),
        "population_size": estimate,
        "se": se_total,
        "lower": lower,
        "upper": upper,
        "level": level,
        "within_var": within,
        "between_var": between,
        "linkage_variance_share": comb.linkage_variance_share,
        "df": comb.df,
        "scale": scale,
        "centre": centre,
        "relative_increase": comb.relative_increase,
        "imputed_population_sizes": ml_sizes.tolist(),
        "imputed_se": [r["se"] for r in ok],
        "imputed_n_observed": n_obs.tolist(),
        "imputed_pair_links": [r["pair_links"] for r in ok],
        "expected_pair_links": expected_links,
        "failed_imputations": [
            {"imputation": r["imputation"], "error": r["error"]} for r in failed
        ],
        "seed": seed,
        "workers": workers,
        "seconds": seconds,
    }
    if centre == "bias_reduced":
        linkage_aware.update(
            population_size_bias_reduced=centre_size,
            imputed_population_sizes_bias_reduced=n_hat.tolist(),
            imputed_se_bias_reduced=se.tolist(),
        )
    df, combined_level = comb.df, level

    def mi_interval(lv: float) -> tuple[float, float]:
        if lv == combined_level:
            return (lower, upper)
        crit = stats.norm.ppf(0.5 + lv / 2) if math.isinf(df) else stats.t.ppf(0.5 + lv / 2, df)
        if scale == "log":
            return (
                math.exp(comb.estimate - crit * comb.se),
                math.exp(comb.estimate + crit * comb.se),
            )
        return (centre_size - crit * se_total, centre_size + crit * se_total)

    warnings = []
    if failed:
        warnings.append(f"{len(failed)} of {len(runs)} imputation fits failed and were left out")
    not_converged = sum(1 for r in ok if not r.get("converged", True))
    if not_converged:
        warnings.append(f"{not_converged} imputation fits did not converge")
    return PopulationEstimate(
        model=f"mi:{inner}",
        population_size=estimate,
        se=se_total,
        n_observed=int(round(float(n_obs.mean()))),
        formula=ok[0].get("formula"),
        description=f"{inner}, linkage-aware (multiple imputation, M = {len(ok)})",
        variance_components={"within_imputation": within, "between_imputation": between},
        warnings=warnings,
        extra={"linkage_aware": linkage_aware},
        default_interval="mi",
        interval_methods={"mi": mi_interval},
    )
