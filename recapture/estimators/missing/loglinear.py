"""Log-linear DSE/MSE with unknown covariates: the covariates become partly classified.

A person whose covariate is unknown contributes to every cell of their capture history
consistent with what is known of them: the table is partly classified, and the log-linear
model (with the covariates' joint distribution saturated) is fitted by EM over those
cells with the observed-data information for the variance — the "missing by design"
estimator of Zwane & van der Heijden (2007), valid when the value is missing at random
given the capture history (a person's value is unknown when each of their registrations
lacks it). This module turns 'unknown' into a missing value and names the covariates
partly observed; :class:`~recapture.estimators.loglinear.LogLinearModel` does the EM.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import polars as pl

from recapture.estimators.loglinear import LogLinearModel, capture_table
from recapture.estimators.loglinear.model import estimable_default
from recapture.estimators.reading import read_frame
from recapture.estimators.result import PopulationEstimate
from recapture.estimators.unknown import unknown_expr


def blank_unknown(data: Any, covariates: Sequence[str]) -> tuple[pl.DataFrame, list[str]]:
    """The frame with 'unknown' values of ``covariates`` as nulls, and the covariates that
    have any."""
    frame = read_frame(data)
    partial = []
    exprs = []
    for c in covariates:
        unknown = unknown_expr(c, frame.schema[c])
        if frame.select(unknown.any()).item():
            partial.append(c)
            exprs.append(pl.when(unknown).then(None).otherwise(pl.col(c).cast(pl.String)).alias(c))
    return (frame.with_columns(exprs) if exprs else frame), partial


def _split(value: Any) -> list[str]:
    if not value:
        return []
    return [c.strip() for c in value.split(",")] if isinstance(value, str) else list(value)


def _estimable_terms(
    frame: pl.DataFrame, lists: list[str], opts: dict[str, Any], partial: list[str]
) -> tuple[list[tuple[str, ...]] | None, list[str]]:
    """The default model, simplified as the plain fit simplifies it (a list that saw nobody
    or everybody in some covariate level loses that term), judged on the fully classified
    persons. None when nothing is dropped (the model's own default is then used)."""
    covariates = _split(opts.get("covariates"))
    known = pl.all_horizontal([pl.col(c).is_not_null() for c in partial])
    complete = frame.filter(known)
    if complete.height == 0:
        return None, []
    table = capture_table(complete, lists=lists, count=opts.get("weights"), covariates=covariates)
    model = LogLinearModel(None, covariates, empty_overlaps=opts.get("empty_overlaps") or "drop")
    terms, dropped = estimable_default(table, model.terms(table), covariates, model.empty_overlaps)
    return (terms if dropped else None), dropped


def fit_loglinear_em(
    persons: Any,
    covariates: Sequence[str],
    fit: Callable[..., PopulationEstimate],
    options: dict[str, Any],
) -> PopulationEstimate:
    """``fit(frame, **options)`` with unknown covariate values fitted by EM.

    ``fit`` is the registry runner of a log-linear model (``options`` its options);
    the covariates with unknown values are added to ``partial_covariates``.
    """
    from recapture.estimators.missing.count import unknown_summary

    frame, partial = blank_unknown(persons, covariates)
    if not partial:
        return fit(frame, **options)
    opts = dict(options)
    given = _split(opts.get("partial_covariates"))
    opts["partial_covariates"] = list(dict.fromkeys([*given, *partial]))
    lists = _split(opts.get("lists")) or [c for c in frame.columns if c.startswith("in_")]
    dropped: list[str] = []
    collapsed: list[str] = []
    if opts.get("terms") is None and _split(opts.get("covariates")) and not opts.get("search"):
        terms, dropped = _estimable_terms(frame, lists, opts, partial)
        if terms is not None:
            # a covariate left without a list term does not change N̂: collapse over it
            # rather than spread its unknowns over a joint nothing else uses
            covs = _split(opts.get("covariates"))
            collapsed = [c for c in covs if not any(c in t and set(t) & set(lists) for t in terms)]
            keep = [c for c in covs if c not in collapsed]
            opts["covariates"] = keep
            opts["partial_covariates"] = [c for c in opts["partial_covariates"] if c in keep]
            opts["terms"] = [t for t in terms if not set(t) & set(collapsed)] or None
            if not opts["partial_covariates"]:
                opts.pop("partial_covariates")
    result = fit(frame, **opts)
    if collapsed:
        result.warnings.insert(
            0,
            f"{', '.join(collapsed)} left without a list term: summed over (N̂ does not depend on it)",
        )
    if dropped:
        result.warnings.insert(
            0,
            "the default model was simplified because the table of persons with every covariate "
            "known is too sparse for it: dropped " + ", ".join(dropped) + " (a list that saw "
            "nobody, or everybody, in some covariate level); name the model to fit another",
        )
        result.extra["dropped_terms"] = dropped
    seen = pl.sum_horizontal([pl.col(c) for c in lists]) > 0
    summary = unknown_summary(frame, list(covariates), seen)
    result.extra["missing_covariates"] = {
        "rule": "em",
        "covariates": list(covariates),
        **summary,
        "complete": summary["observed"] - summary["unknown"],
        "assumption": "missing at random given the capture history",
    }
    return result
