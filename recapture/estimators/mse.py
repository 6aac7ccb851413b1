"""Multiple systems estimators in the estimator registry (``recapture estimate --model ...``).

Public API in one place:

- :class:`LogLinearModel` — Poisson log-linear models on capture histories × covariates;
- :class:`Petersen`, :class:`Chapman` — two lists;
- :func:`closed_population_models` / :class:`ClosedPopulationModel` — Rcapture's closedp.t;
- :func:`capture_frequency_models` — Rcapture's closedp.0 for one source counted as frequencies;
- :func:`stepwise`, :func:`exhaustive`, :func:`sparsemse_stepwise` — model search;
- :func:`dependence_sensitivity` — N̂(θ) for two lists.

Registered models: ``loglinear``, ``petersen``, ``chapman``, ``closedp`` (one Rcapture model on
capture histories), ``closedp0`` (one Rcapture model on capture frequencies).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from recapture.errors import ConfigError
from recapture.estimators import register_model
from recapture.estimators.closed_population import (
    CLOSEDP_0_MODELS,
    ClosedPopulationModel,
    capture_frequency_models,
    closed_population_models,
)
from recapture.estimators.dse import Chapman, Petersen
from recapture.estimators.formula import check_name, check_names
from recapture.estimators.loglinear import (
    CaptureTable,
    LogLinearModel,
    capture_table,
    dependence_sensitivity,
    fit_loglinear,
    parse_terms,
)
from recapture.estimators.loglinear.search import exhaustive, sparsemse_stepwise, stepwise
from recapture.estimators.result import PopulationEstimate

__all__ = [
    "CLOSEDP_0_MODELS",
    "CaptureTable",
    "Chapman",
    "ClosedPopulationModel",
    "LogLinearModel",
    "Petersen",
    "capture_frequency_models",
    "capture_table",
    "closed_population_models",
    "dependence_sensitivity",
    "exhaustive",
    "fit_loglinear",
    "parse_terms",
    "sparsemse_stepwise",
    "stepwise",
]


def _split(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return [str(v) for v in value]


def _names(value: Any, key: str) -> list[str]:
    """Column or list names of an option, each checked against the closed grammar."""
    return check_names(_split(value), key)


def _floats(value: Any, key: str) -> list[float] | None:
    if value is None:
        return None
    try:
        return [float(v) for v in _split(value)]
    except ValueError:
        raise ConfigError(f"expected comma-separated numbers, got {value!r}", key=key) from None


def _passive(value: Any) -> dict[str, str]:
    if not value:
        return {}
    if isinstance(value, dict):
        return dict(value)
    out = {}
    for item in [value] if isinstance(value, str) else value:
        if "=" not in item:
            raise ConfigError(f"--passive expects COVARIATE=LIST, got {item!r}", key="passive")
        cov, lst = item.split("=", 1)
        out[check_name(cov, "passive")] = check_name(lst, "passive")
    return out


def _check(name: str, given: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(
        k
        for k, v in given.items()
        if v is not None and v is not False and k not in allowed | {"interval"}
    )
    if unknown:
        raise ConfigError(
            f"option(s) not supported by --model {name}: {', '.join(unknown)}", key=unknown[0]
        )


def _with_interval(result: PopulationEstimate, interval: str | None) -> PopulationEstimate:
    """Make ``interval`` the one shown, if the result has it."""
    if interval:
        if interval not in result.available_intervals():
            raise ConfigError(
                f"interval {interval!r} not available for this estimate; available: "
                + ", ".join(result.available_intervals()),
                key="interval",
            )
        result.default_interval = interval
    return result


_TABLE = {"lists", "weights"}


def _run_loglinear(data: Any, **options: Any) -> PopulationEstimate:
    return _with_interval(_fit_loglinear_options(data, **options), options.get("interval"))


def _fit_loglinear_options(data: Any, **options: Any) -> PopulationEstimate:
    _check(
        "loglinear",
        options,
        _TABLE
        | {
            "terms",
            "covariates",
            "partial_covariates",
            "passive",
            "search",
            "criterion",
            "max_order",
            "dependence_thetas",
            "replicates",
            "seed",
            "empty_overlaps",
            "pthresh",
            "heterogeneity",
        },
    )
    lists = _names(options.get("lists"), "lists") or None
    count = options.get("weights")
    covariates = _names(options.get("covariates"), "covariates")
    search = options.get("search")
    if search:
        if options.get("passive") or options.get("heterogeneity"):
            raise ConfigError(
                "model search does not combine with passive covariates or heterogeneity",
                key="search",
            )
        criterion = options.get("criterion") or "aic"
        max_order = int(options.get("max_order") or 2)
        partial = _names(options.get("partial_covariates"), "partial_covariates")
        if search == "stepwise":
            return stepwise(
                data,
                lists,
                count,
                covariates,
                start=options.get("terms"),
                criterion=criterion,
                max_order=max_order,
                partial_covariates=partial,
            )
        if search == "exhaustive":
            return exhaustive(
                data,
                lists,
                count,
                covariates,
                criterion=criterion,
                max_order=max_order,
                partial_covariates=partial,
            )[0]
        if search == "sparsemse":
            if covariates or partial:
                raise ConfigError(
                    "the SparseMSE stepwise rule is for tables without covariates", key="covariates"
                )
            return sparsemse_stepwise(
                data, lists, count, pthresh=float(options.get("pthresh") or 0.02)
            )
        raise ConfigError(
            f"unknown search {search!r} (stepwise, exhaustive, sparsemse)", key="search"
        )
    model = LogLinearModel(
        options.get("terms"),
        covariates,
        partial_covariates=_names(options.get("partial_covariates"), "partial_covariates"),
        passive=_passive(options.get("passive")),
        empty_overlaps=options.get("empty_overlaps") or "drop",
        bootstrap=int(options.get("replicates") or 0),
        seed=options.get("seed"),
        dependence_thetas=_floats(options.get("dependence_thetas"), "dependence_thetas"),
        heterogeneity=options.get("heterogeneity"),
    )
    return model.fit(data, lists=lists, count=count)


def _two_list(cls: type) -> Callable[..., PopulationEstimate]:
    def run(data: Any, **options: Any) -> PopulationEstimate:
        _check(cls.model, options, _TABLE | {"covariates", "strata", "dependence_thetas"})
        thetas = _floats(options.get("dependence_thetas"), "dependence_thetas")
        strata = list(
            dict.fromkeys(
                _names(options.get("covariates"), "covariates")
                + _names(options.get("strata"), "strata")
            )
        )
        est = cls(strata, **({} if thetas is None else {"dependence_thetas": thetas}))
        res = est.fit(
            data, lists=_names(options.get("lists"), "lists") or None, count=options.get("weights")
        )
        return _with_interval(res, options.get("interval"))

    return run


def _run_closedp(data: Any, **options: Any) -> PopulationEstimate:
    _check("closedp", options, _TABLE | {"closed_model"})
    model = options.get("closed_model") or "Mt"
    res = ClosedPopulationModel(model).fit(
        data, lists=_names(options.get("lists"), "lists") or None, count=options.get("weights")
    )
    return _with_interval(res, options.get("interval"))


def _run_closedp0(data: Any, **options: Any) -> PopulationEstimate:
    _check("closedp0", options, {"count", "weights", "closed_model", "max_count"})
    if not options.get("count"):
        raise ConfigError(
            "closedp0 needs the column with each person's number of captures (--count-col)",
            key="count",
        )
    model = options.get("closed_model") or "Mh Chao (LB)"
    (res,) = capture_frequency_models(
        data,
        nbcap=options["count"],
        freq=options.get("weights"),
        models=[model],
        profile=True,
        **({"max_count": options["max_count"]} if options.get("max_count") else {}),
    )
    return _with_interval(res, options.get("interval"))


register_model(
    "loglinear",
    _run_loglinear,
    kind="multiple-systems",
    description="Poisson log-linear model on capture histories × covariates (DSE/MSE)",
)
register_model(
    "petersen",
    _two_list(Petersen),
    kind="multiple-systems",
    description="Lincoln–Petersen dual systems estimate (optionally stratified)",
)
register_model(
    "chapman",
    _two_list(Chapman),
    kind="multiple-systems",
    description="Chapman dual systems estimate (optionally stratified)",
)
register_model(
    "closedp",
    _run_closedp,
    kind="multiple-systems",
    description="Rcapture closed-population model (M0, Mt, Mh …, Mth …, Mb, Mbh) on capture histories",
)
register_model(
    "closedp0",
    _run_closedp0,
    kind="multiple-systems",
    description="Rcapture closed-population model on capture frequencies (continuous time)",
)
