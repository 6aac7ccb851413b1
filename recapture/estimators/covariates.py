"""Preparing person covariates for a model: unknown values and sparse levels.

**Unknown values.**

A covariate value is unknown far more often for people seen once than for people seen
several times (every extra registration is another chance to record it). Kept as a level
of its own, 'unknown' then has almost no repeated captures, its coefficient runs to the
boundary and N̂ explodes. The ``allocate`` rule fits the model on the persons with
complete covariates and allocates the persons with unknown values proportionally:
N̂ = N̂_complete · n / n_complete — they are assumed to have, on average, the capture
probability of the persons with known values. The standard error is scaled alike
(n / n_complete is fixed by the observed data).

**Sparse levels.** A level with no informative observations — no one seen twice (count
models), no one in both lists (dual systems) — has no maximum-likelihood estimate: its
coefficient runs to the boundary and N̂ is meaningless. :func:`merge_sparse_levels` merges
the levels with fewer than a given number of informative persons, sparsest first, into
one level named after them all, and reports what it merged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

import numpy as np
import polars as pl

from recapture.errors import ConfigError
from recapture.estimators.result import PopulationEstimate

#: Values that mean "unknown" in persons.parquet covariates.
UNKNOWN_VALUES = ("unknown", "Unknown")


def formula_covariates(formula: str | None) -> list[str]:
    """The data columns a model formula uses."""
    if not formula or formula.strip() in ("~ 1", "~1", "1"):
        return []
    from formulaic import Formula

    text = formula if "~" in formula else f"~ {formula}"
    return sorted(Formula(text).required_variables)


def is_unknown(columns: Iterable[str]) -> pl.Expr:
    expr = pl.lit(False)
    for column in columns:
        col = pl.col(column)
        expr = expr | col.is_null() | col.cast(pl.String).is_in(list(UNKNOWN_VALUES))
    return expr


def allocate_unknown(
    persons: pl.DataFrame,
    covariates: list[str],
    fit: Any,
    *,
    observed: pl.Expr | None = None,
) -> PopulationEstimate:
    """Fit ``fit(complete_persons)`` and allocate the persons with unknown covariates.

    ``observed`` selects the rows that count as observed units of the model (e.g.
    ``n_police > 0`` for a single-source count model); all rows by default.
    """
    missing = [c for c in covariates if c not in persons.columns]
    if missing:
        raise ConfigError(f"covariate(s) not in persons: {', '.join(missing)}", key="formula")
    unknown = is_unknown(covariates)
    units = persons.filter(observed) if observed is not None else persons
    n_total = units.height
    n_unknown = units.filter(unknown).height
    result = fit(persons.filter(~unknown))
    if n_unknown == 0:
        return result
    n_complete = n_total - n_unknown
    if n_complete == 0:
        raise ConfigError(
            "every person has an unknown value of " + ", ".join(covariates), key="formula"
        )
    ratio = n_total / n_complete
    scaled = dataclasses.replace(
        result,
        population_size=result.population_size * ratio,
        se=result.se * ratio,
        n_observed=n_total,
        bootstrap_replicates=None
        if result.bootstrap_replicates is None
        else np.asarray(result.bootstrap_replicates) * ratio,
        interval_methods={
            name: (lambda level, f=f: tuple(ratio * v for v in f(level)))
            for name, f in result.interval_methods.items()
        },
        warnings=[
            *result.warnings,
            f"{n_unknown:,} of {n_total:,} observed persons ({n_unknown / n_total:.1%}) have an unknown "
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
                        "unknown": (k := units.filter(is_unknown([c])).height),
                        "share": k / n_total,
                    }
                    for c in covariates
                },
            },
        },
    )
    return scaled


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
