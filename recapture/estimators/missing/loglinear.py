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

from recapture.estimators.covariates import UNKNOWN_VALUES
from recapture.estimators.reading import read_frame
from recapture.estimators.result import PopulationEstimate


def blank_unknown(data: Any, covariates: Sequence[str]) -> tuple[pl.DataFrame, list[str]]:
    """The frame with 'unknown' values of ``covariates`` as nulls, and the covariates that
    have any."""
    frame = read_frame(data)
    partial = []
    exprs = []
    for c in covariates:
        col = pl.col(c)
        if frame.schema[c] in (pl.String, pl.Categorical) or isinstance(frame.schema[c], pl.Enum):
            unknown = col.is_null() | col.cast(pl.String).is_in(list(UNKNOWN_VALUES))
        else:
            unknown = col.is_null()
        if frame.select(unknown.any()).item():
            partial.append(c)
            exprs.append(pl.when(unknown).then(None).otherwise(col.cast(pl.String)).alias(c))
    return (frame.with_columns(exprs) if exprs else frame), partial


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
    given = opts.get("partial_covariates") or []
    given = [c.strip() for c in given.split(",")] if isinstance(given, str) else list(given)
    opts["partial_covariates"] = list(dict.fromkeys([*given, *partial]))
    result = fit(frame, **opts)
    lists = opts.get("lists") or [c for c in frame.columns if c.startswith("in_")]
    lists = [c.strip() for c in lists.split(",")] if isinstance(lists, str) else list(lists)
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
