"""Population-size estimators.

Every estimator returns a :class:`PopulationEstimate`. ``MODELS`` maps a model name (the
``--model`` of ``recapture estimate``) to an :class:`EstimatorEntry` whose ``run(data,
**options)`` fits it; :func:`estimate` is the one function the CLI calls. Other estimator
modules add themselves with :func:`register_model` when imported (see the end of this file).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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
from recapture.estimators.result import PopulationEstimate

__all__ = [
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
    "register_model",
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


def estimate(data: Any, model: str, **options: Any) -> PopulationEstimate:
    """Fit the estimator named ``model`` to ``data`` (a frame or a Parquet/CSV path)."""
    if model not in MODELS:
        raise ConfigError(
            f"unknown model {model!r}; known: {', '.join(sorted(MODELS))}", key="model"
        )
    return MODELS[model].run(data, **options)


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
