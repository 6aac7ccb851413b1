"""Preparing person covariates for a model: unknown values and sparse levels.

**Unknown values.**

A covariate value is unknown far more often for people seen once than for people seen
several times (every extra registration is another chance to record it). Kept as a level
of its own, 'unknown' then has almost no repeated captures, its coefficient runs to the
boundary and N̂ explodes. Every entry point — the model classes, ``estimate()``, the CLI and
the pipeline — goes through :func:`fit_with_covariates` with the rule named by ``missing=``
(:data:`MISSING_RULES`, default :data:`DEFAULT_MISSING`). The ``allocate`` rule fits the model on the persons with
complete covariates and allocates the persons with unknown values proportionally:
N̂ = N̂_complete · n / n_complete — they are assumed to have, on average, the capture
probability of the persons with known values. The standard error is scaled alike
(n / n_complete is fixed by the observed data), and so is every stratum: the unknown
persons are allocated to the levels in proportion, so the strata still add up to N̂.

**Sparse levels.** A level with no informative observations — no one seen twice (count
models), no one in both lists (dual systems) — has no maximum-likelihood estimate: its
coefficient runs to the boundary and N̂ is meaningless. :func:`merge_sparse_levels` merges
the levels with fewer than a given number of informative persons, sparsest first, into
one level named after them all, and reports what it merged.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import polars as pl

from recapture.errors import ConfigError
from recapture.estimators.formula import parse_formula
from recapture.estimators.missing import fit_count_em, fit_loglinear_em
from recapture.estimators.result import PopulationEstimate
from recapture.estimators.unknown import is_unknown


def formula_covariates(formula: str | None) -> list[str]:
    """The data columns a model formula uses."""
    if not formula or formula.strip() in ("~ 1", "~1", "1"):
        return []
    return sorted(parse_formula(formula).variables)


@dataclasses.dataclass(frozen=True)
class UnknownCovariates:
    """What a rule for unknown covariate values is given (see :data:`MISSING_RULES`).

    ``fit(frame, **extra_options)`` is the model's plain fit — no rule applied — so a rule
    can refit on a subset or with more options (``partial_covariates`` for the log-linear
    EM); ``model`` is the count model object (None for registry models), ``options`` the
    options of the call, ``observed``/``weight`` select and weigh the observed units.
    """

    data: pl.DataFrame
    covariates: list[str]
    fit: Callable[..., PopulationEstimate]
    observed: pl.Expr | None = None
    weight: pl.Expr | None = None
    model: Any = None
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: the registry name of the model (``loglinear``, ``chapman``, …; None for count models)
    name: str | None = None


MissingRule = Callable[[UnknownCovariates], PopulationEstimate]


def _observed_units(problem: UnknownCovariates) -> tuple[float, float]:
    """Observed units in all and with an unknown covariate (frequency-weighted)."""
    units = problem.data.filter(problem.observed) if problem.observed is not None else problem.data
    weight = problem.weight if problem.weight is not None else pl.lit(1.0)
    unknown = is_unknown(problem.covariates)
    w = units.with_columns(weight.cast(pl.Float64).alias("__w__"))
    total, n_unknown = w.select(
        pl.col("__w__").sum().alias("total"),
        (pl.col("__w__") * unknown).sum().alias("unknown"),
    ).row(0)
    return float(total), float(n_unknown)


def _unknown_units(problem: UnknownCovariates, covariates: list[str]) -> float:
    """Observed units (frequency-weighted) with an unknown value of any of ``covariates``."""
    units = problem.data.filter(problem.observed) if problem.observed is not None else problem.data
    weight = problem.weight if problem.weight is not None else pl.lit(1.0)
    return float(units.select((weight.cast(pl.Float64) * is_unknown(covariates)).sum()).item())


def allocate_unknown(problem: UnknownCovariates) -> PopulationEstimate:
    """The ``allocate`` rule: fit on the complete persons and allocate the others
    proportionally — N̂, its SE, intervals, replicates and every stratum × n / n_complete."""
    covariates = problem.covariates
    n_total, n_unknown = _observed_units(problem)
    n_complete = n_total - n_unknown
    if n_unknown and n_complete <= 0:
        raise ConfigError(
            "every observed person has an unknown value of " + ", ".join(covariates),
            key="missing",
        )
    result = problem.fit(problem.data.filter(~is_unknown(covariates)))
    if n_unknown == 0:
        return result
    ratio = n_total / n_complete
    share = n_unknown / n_total
    return dataclasses.replace(
        result,
        population_size=result.population_size * ratio,
        se=result.se * ratio,
        n_observed=int(round(n_total)),
        bootstrap_replicates=None
        if result.bootstrap_replicates is None
        else np.asarray(result.bootstrap_replicates) * ratio,
        interval_methods={
            name: ScaledInterval(f, ratio) for name, f in result.interval_methods.items()
        },
        strata=[scale_stratum(row, ratio) for row in result.strata],
        fitted_model=result.fitted_model.scaled(ratio)
        if hasattr(result.fitted_model, "scaled")
        else result.fitted_model,
        warnings=[
            *result.warnings,
            f"{n_unknown:,.0f} of {n_total:,.0f} observed persons ({share:.1%}) have an unknown "
            f"{'/'.join(covariates)}; fitted on the others and allocated proportionally (× {ratio:.4f})",
        ],
        extra={
            **result.extra,
            "missing_covariates": {
                "rule": "allocate",
                "covariates": covariates,
                "observed": n_total,
                "complete": n_complete,
                "unknown": n_unknown,
                "ratio": ratio,
                "population_size_complete": result.population_size,
                "per_covariate": {
                    c: {
                        "unknown": (k := _unknown_units(problem, [c])),
                        "share": k / n_total,
                    }
                    for c in covariates
                },
            },
        },
    )


class ScaledInterval:
    """An interval method times a constant (picklable, unlike a lambda)."""

    def __init__(self, method: Callable[[float], tuple[float, float]], ratio: float):
        self.method, self.ratio = method, ratio

    def __call__(self, level: float) -> tuple[float, float]:
        lo, hi = self.method(level)
        return (lo * self.ratio, hi * self.ratio)


#: stratum fields that count persons, scaled when unknown persons are allocated
_STRATUM_COUNTS = (
    "observed",
    "hidden",
    "population_size",
    "se",
    "normal_lower",
    "normal_upper",
    "lognormal_lower",
    "lognormal_upper",
)


def scale_stratum(row: dict[str, Any], ratio: float) -> dict[str, Any]:
    """A stratum of the complete-case fit with the unknown persons allocated to it in
    proportion (so the strata of each variable still add up to N̂)."""
    out = dict(row)
    for key in _STRATUM_COUNTS:
        if isinstance(out.get(key), int | float):
            out[key] = out[key] * ratio
    return out


def keep_unknown_as_level(problem: UnknownCovariates) -> PopulationEstimate:
    """The ``level`` rule: 'unknown' is a level like any other (null values stay errors)."""
    return problem.fit(problem.data)


# ------------------------------------------------------------------------------ the em rule
# Maximum likelihood with unknown covariate values integrated out (docs/estimators.md,
# "Unknown covariates"). Registered here, where both the models and the EM are importable.
def _em_rule(problem: UnknownCovariates) -> PopulationEstimate:
    options = dict(problem.options)
    if problem.model is not None:  # a count model
        if problem.model.offset:  # an offset is a person's own exposure: no pattern to sum over
            return allocate_unknown(problem)
        count = options.get("count", "capture")
        columns = problem.data.columns
        # a value is unknown when every registration lacks it, in every source: the other
        # sources' counts are part of the history the EM conditions on
        history = [c for c in columns if c.startswith("n_") and c != count] or [
            c for c in columns if c.startswith("in_")
        ]
        result = fit_count_em(problem.model, problem.data, history=history, **options)
        if result.likelihood_data is None:
            result.likelihood_data = _em_likelihood_data(problem, count, options.get("weights"))
            result.extra.setdefault("call", problem.model._call(count, options.get("weights")))
        return result
    if problem.name == "loglinear" and options.get("search") != "sparsemse":
        # the model search too: every candidate is fitted by EM on the partly classified table
        return fit_loglinear_em(problem.data, problem.covariates, problem.fit, options)
    # the other multiple-systems estimators (and SparseMSE's rule, for tables without
    # covariates) keep the allocation
    return allocate_unknown(problem)


def _em_likelihood_data(problem: UnknownCovariates, count: str, weights: str | None):
    """The EM's log-likelihood is of every observed person, with the unknown values of
    these covariates integrated out: other data than a complete-case fit, or an EM over
    other covariates, so the tag says which covariates were partly unknown."""
    tag = dict(problem.model._likelihood_data(problem.data, count, weights))
    tag["response"] += f", {' and '.join(problem.covariates)} partly unknown (integrated out)"
    tag["key"] = hashlib.sha256((tag["key"] + tag["response"]).encode()).hexdigest()[:16]
    return tag


#: Rules for persons with an unknown covariate value, by the name ``missing=`` takes.
MISSING_RULES: dict[str, MissingRule] = {
    "em": lambda problem: _em_rule(problem),
    "allocate": allocate_unknown,
    "level": keep_unknown_as_level,
}

#: The rule every entry point uses when none is given: model classes, ``estimate()``,
#: ``recapture estimate`` and the pipeline.
DEFAULT_MISSING = "em"


def register_missing_rule(name: str, rule: MissingRule) -> None:
    """Add a rule (e.g. maximum likelihood by EM) under the name ``missing=`` takes."""
    MISSING_RULES[name] = rule


def check_missing(missing: str | None) -> str:
    """The rule's name (the default for None); an unknown name is a :class:`ConfigError`."""
    missing = DEFAULT_MISSING if missing is None else missing
    if missing not in MISSING_RULES:
        raise ConfigError(
            f"unknown rule {missing!r} for unknown covariate values; known: "
            + ", ".join(MISSING_RULES),
            key="missing",
        )
    return missing


def fit_with_covariates(
    frame: pl.DataFrame,
    covariates: Iterable[str],
    fit: Callable[..., PopulationEstimate],
    *,
    missing: str | None,
    merge_sparse: int | None,
    informative: pl.Expr,
    observed: pl.Expr | None = None,
    weight: pl.Expr | None = None,
    model: Any = None,
    options: dict[str, Any] | None = None,
    name: str | None = None,
) -> PopulationEstimate:
    """The one path from persons to an estimate: merge sparse levels of the model's
    categorical covariates (when ``merge_sparse`` is set), then treat persons with an
    unknown value by the rule ``missing``; ``fit(frame, **extra)`` is the plain fit.

    ``informative`` marks the persons that carry information on capture (seen twice, in
    two lists) for the merging; ``observed``/``weight`` select and weigh observed units.
    """
    missing = check_missing(missing)
    covariates = [
        c for c in dict.fromkeys(covariates) if c in frame.columns and frame.schema[c] == pl.String
    ]
    merges: dict[str, list[str]] = {}
    if merge_sparse and covariates:
        frame, merges = merge_sparse_levels(frame, covariates, informative, int(merge_sparse))
    if not covariates:
        result = fit(frame)
    else:
        problem = UnknownCovariates(
            data=frame,
            covariates=covariates,
            fit=fit,
            observed=observed,
            weight=weight,
            model=model,
            options=dict(options or {}),
            name=name,
        )
        result = MISSING_RULES[missing](problem)
    result.extra.setdefault("missing_rule", missing)
    if merges:
        result.extra["merged_levels"] = merges
        result.warnings.extend(
            f"levels of {column} with fewer than {merge_sparse} informative persons merged: {' + '.join(levels)}"
            for column, levels in merges.items()
        )
    return result


def merge_sparse_levels(
    persons: pl.DataFrame,
    covariates: list[str],
    informative: pl.Expr,
    min_count: int,
) -> tuple[pl.DataFrame, dict[str, list[str]]]:
    """Merge levels of each covariate with fewer than ``min_count`` informative persons.

    The sparsest level is merged with the next sparsest until every level reaches
    ``min_count`` or one level is left. Unknown values are left alone. Returns the frame
    with merged labels and, per covariate, the labels of the merged level's members.
    """
    merges: dict[str, list[str]] = {}
    for column in covariates:
        if persons[column].dtype != pl.String:
            continue
        counts = (
            persons.filter(~is_unknown([column]))
            .group_by(column)
            .agg(informative.sum().alias("k"))
            .sort(["k", column])
        )
        levels = counts[column].to_list()
        ks = counts["k"].to_list()
        merged: list[str] = []
        total = 0
        while len(levels) > 1 and (ks[0] < min_count or (merged and total < min_count)):
            if not merged:
                merged, total = [levels.pop(0)], ks.pop(0)
            merged.append(levels.pop(0))
            total += ks.pop(0)
            if total >= min_count:
                break
        if len(merged) > 1:
            label = " + ".join(sorted(merged))
            persons = persons.with_columns(
                pl.when(pl.col(column).is_in(merged))
                .then(pl.lit(label))
                .otherwise(pl.col(column))
                .alias(column)
            )
            merges[column] = sorted(merged)
    return persons, merges
