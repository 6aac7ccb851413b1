"""Population-size estimators.

Every estimator returns a :class:`PopulationEstimate`. ``MODELS`` maps a model name (the
``--model`` of ``recapture estimate``) to an :class:`EstimatorEntry` whose ``run(data,
**options)`` fits it; :func:`estimate` is the one function the CLI calls. Other estimator
modules add themselves with :func:`register_model` when imported (see the end of this file).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd
import polars as pl

from recapture.errors import ConfigError
from recapture.estimators.count import (
    MODEL_CLASSES as _COUNT_MODEL_CLASSES,
)
from recapture.estimators.count import (
    Chao,
    CountModel,
    OneInflatedZeroTruncated,
    OneInflatedZeroTruncatedGeometric,
    OneInflatedZeroTruncatedPoisson,
    Zelterman,
    ZeroTruncatedGeometric,
    ZeroTruncatedNegativeBinomial,
    ZeroTruncatedOneInflated,
    ZeroTruncatedOneInflatedGeometric,
    ZeroTruncatedOneInflatedPoisson,
    ZeroTruncatedPoisson,
)
from recapture.estimators.covariates import (
    DEFAULT_MISSING,
    MISSING_RULES,
    check_missing,
    fit_with_covariates,
    register_missing_rule,
)
from recapture.estimators.reading import read_frame
from recapture.estimators.result import (
    PopulationEstimate,
    likelihood_data,
    row_key,
    same_likelihood_data,
)

__all__ = [
    "DEFAULT_MISSING",
    "MISSING_RULES",
    "MODELS",
    "Chao",
    "CountModel",
    "EstimatorEntry",
    "OneInflatedZeroTruncated",
    "OneInflatedZeroTruncatedGeometric",
    "OneInflatedZeroTruncatedPoisson",
    "PopulationEstimate",
    "Zelterman",
    "ZeroTruncatedGeometric",
    "ZeroTruncatedNegativeBinomial",
    "ZeroTruncatedOneInflated",
    "ZeroTruncatedOneInflatedGeometric",
    "ZeroTruncatedOneInflatedPoisson",
    "ZeroTruncatedPoisson",
    "estimate",
    "estimate_from_frequencies",
    "register_missing_rule",
    "register_model",
    "same_likelihood_data",
]


@dataclass(frozen=True)
class EstimatorEntry:
    """A named estimator: ``run(data, **options) -> PopulationEstimate``.

    ``options`` holds every option the caller set (the CLI passes its parsed options, with
    None for those not given); ``run`` uses those it knows and must reject, with a
    :class:`ConfigError`, a set option it does not support.
    """

    name: str
    kind: str  # "single-source" or "multiple-systems"
    description: str
    run: Callable[..., PopulationEstimate]


MODELS: dict[str, EstimatorEntry] = {}


def register_model(
    name: str, run: Callable[..., PopulationEstimate], *, kind: str, description: str
) -> None:
    MODELS[name] = EstimatorEntry(name=name, kind=kind, description=description, run=run)


def estimate(
    data: Any,
    model: str,
    *,
    missing: str | None = None,
    merge_sparse_levels: int | None = None,
    **options: Any,
) -> PopulationEstimate:
    """Fit the estimator named ``model`` to ``data`` (a frame or a Parquet/CSV path).

    ``missing`` names the rule for persons with an unknown covariate value
    (:data:`~recapture.estimators.covariates.MISSING_RULES`, default
    :data:`~recapture.estimators.covariates.DEFAULT_MISSING`); ``merge_sparse_levels=K``
    merges covariate levels with fewer than K informative persons first. The model
    classes, ``recapture estimate`` and the pipeline apply the same rules with the same
    defaults, so all four give the same estimate.
    """
    if model not in MODELS:
        raise ConfigError(
            f"unknown model {model!r}; known: {', '.join(sorted(MODELS))}", key="model"
        )
    entry = MODELS[model]
    missing = check_missing(missing)
    if entry.kind == "single-source":  # the model class applies the rules itself
        return entry.run(data, missing=missing, merge_sparse_levels=merge_sparse_levels, **options)
    covariates = _listed(options.get("covariates"))
    persons = isinstance(data, pl.DataFrame | pd.DataFrame | str | os.PathLike)
    if not persons or (not covariates and not merge_sparse_levels):
        # a path goes to the model as it is, so its errors name the file
        result = entry.run(data, **options)
        return _tag(result, read_frame(data), options) if persons else result
    frame = read_frame(data)
    lists = _listed(options.get("lists")) or [c for c in frame.columns if c.startswith("in_")]
    weight = pl.col(options["weights"]) if options.get("weights") else pl.lit(1.0)
    in_lists = pl.sum_horizontal([pl.col(c).cast(pl.Int64) for c in lists]) if lists else pl.lit(0)
    return fit_with_covariates(
        frame.with_columns(row_key(frame)),
        covariates,
        lambda f, **extra: _tag(entry.run(f, **{**options, **extra}), f, options),
        missing=missing,
        merge_sparse=merge_sparse_levels,
        informative=(in_lists >= 2).cast(pl.Float64) * weight,
        weight=weight,
        options=options,
        name=model,
    )


def _tag(result: PopulationEstimate, frame: pl.DataFrame, options: dict[str, Any]):
    """Tag a multiple-systems fit with the data its likelihood covers: the table of
    capture histories × covariates over the persons seen by some list."""
    lists = _listed(options.get("lists")) or [c for c in frame.columns if c.startswith("in_")]
    if result.loglik is not None and result.likelihood_data is None and lists:
        weight = pl.col(options["weights"]) if options.get("weights") else pl.lit(1.0)
        in_lists = pl.sum_horizontal([pl.col(c).cast(pl.Int64) for c in lists])
        tables = [*lists, *(result.extra.get("covariates") or [])]
        result.likelihood_data = likelihood_data(
            frame,
            in_lists > 0,
            response="cell counts of " + " × ".join(map(str, tables)),
            rows="seen by " + " or ".join(lists),
            weight=weight,
        )
    return result


def _listed(value: Any) -> list[str]:
    if not value:
        return []
    items = value.split(",") if isinstance(value, str) else value
    return [str(v).strip() for v in items if str(v).strip()]


def estimate_from_frequencies(
    frequencies: Any, model: str = "chao", **options: Any
) -> PopulationEstimate:
    """Covariate-free single-source estimate from f_k: ``{k: f_k}`` or ``[f_1, f_2, …]``."""
    import pandas as pd

    if isinstance(frequencies, dict):
        ks, fs = zip(*sorted(frequencies.items()), strict=True)
    else:
        fs = tuple(frequencies)
        ks = tuple(range(1, len(fs) + 1))
    table = pd.DataFrame({"count": [int(k) for k in ks], "frequency": [float(f) for f in fs]})
    return estimate(table, model, formula="~ 1", count="count", weights="frequency", **options)


# ------------------------------------------------------------------------------ single-source
_COUNT_CONSTRUCT = (
    "formula",
    "reference",
    "offset",
    "information",
    "strata",
    "absurd_ratio",
    "dfpopsize",
    "penalty",
    "omega_formula",
    "alpha_formula",
    "max_count",
    "missing",
    "merge_sparse_levels",
)
_COUNT_FIT = (
    "count",
    "weights",
    "variance",
    "bootstrap_type",
    "replicates",
    "seed",
    "workers",
    "interval",
    "bootstrap_penalty",
)


def _count_split(name: str, options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A count model's options split into constructor and fit() options (unknown: an error)."""
    given = {k: v for k, v in options.items() if v is not None}
    unknown = sorted(set(given) - set(_COUNT_CONSTRUCT) - set(_COUNT_FIT))
    if unknown:
        raise ConfigError(
            f"option(s) not supported by --model {name}: {', '.join(unknown)}", key=unknown[0]
        )
    construct = {k: given[k] for k in _COUNT_CONSTRUCT if k in given}
    fit = {k: given[k] for k in _COUNT_FIT if k in given}
    if "count" not in fit:
        raise ConfigError("single-source models need the count column (--count-col)", key="count")
    return construct, fit


def _count_runner(name: str) -> Callable[..., PopulationEstimate]:
    def run(data: Any, **options: Any) -> PopulationEstimate:
        construct, fit = _count_split(name, options)
        formula = construct.pop("formula", "~ 1")
        return _COUNT_MODEL_CLASSES[name](formula, **construct).fit(data, **fit)

    return run


for _name in _COUNT_MODEL_CLASSES:
    register_model(
        _name,
        _count_runner(_name),
        kind="single-source",
        description=_COUNT_MODEL_CLASSES[_name]("~ 1").family.description,
    )

# ------------------------------------------------------------------------------ other modules
# The multiple-systems estimators register themselves (register_model) when imported; an
# error there is a bug and must surface, not be turned into a missing model.
from recapture.estimators import mse as _mse  # noqa: E402,F401
