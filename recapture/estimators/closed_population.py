"""Closed-population capture–recapture models with Rcapture's names and conventions.

``closed_population_models(table)`` fits the models of Rcapture's ``closedp.t`` (Baillargeon &
Rivest 2007, *J. Stat. Softw.* 19(5)) to a table of capture histories over t lists/occasions:
M0, Mt, Mh Chao (LB), Mh Poisson2, Mh Darroch, Mh Gamma3.5, the four Mth models, Mb and Mbh.
All are Poisson log-linear models on the 2^t − 1 observable histories (Rivest 2011); the
heterogeneity models add a function of the number of captures. Deviance, df and AIC are R's
``glm`` values, and the Chao models drop negative η parameters one at a time as Rcapture does.

``capture_frequency_models(freq)`` is ``closedp.0`` with ``t = Inf``: a single source counted
as frequencies f₁, f₂, … (persons seen k times), modelled as Poisson counts in continuous time
(offset −log k!), giving M0 (the zero-truncated Poisson), Mh Chao (LB) and Mh Darroch etc.

Profile-likelihood intervals are Rcapture's ``closedpCI``: the multinomial profile likelihood
from the deviance of the completed table with Cormack's (1992) correction.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from recapture.errors import ConfigError, InputError
from recapture.estimators.count.problem import DEFAULT_MAX_COUNT, check_max_count
from recapture.estimators.loglinear import (
    CaptureTable,
    CellFit,
    PoissonFit,
    all_histories,
    capture_table,
    fit_poisson,
    heterogeneity_columns,
    profile_interval,
)
from recapture.estimators.reading import read_frame
from recapture.estimators.result import PopulationEstimate, check_level

#: closedp.t model names, in Rcapture's order
CLOSEDP_T_MODELS = (
    "M0",
    "Mt",
    "Mh Chao (LB)",
    "Mh Poisson2",
    "Mh Darroch",
    "Mh Gamma3.5",
    "Mth Chao (LB)",
    "Mth Poisson2",
    "Mth Darroch",
    "Mth Gamma3.5",
    "Mb",
    "Mbh",
)
#: closedp.0 model names
CLOSEDP_0_MODELS = ("M0", "Mh Chao (LB)", "Mh Poisson2", "Mh Darroch", "Mh Gamma3.5")

_ALIASES = {
    "mhc": "Mh Chao (LB)",
    "mh chao": "Mh Chao (LB)",
    "mh lb": "Mh Chao (LB)",
    "mhp": "Mh Poisson2",
    "mh poisson": "Mh Poisson2",
    "mhd": "Mh Darroch",
    "mhg": "Mh Gamma3.5",
    "mh gamma": "Mh Gamma3.5",
    "mthc": "Mth Chao (LB)",
    "mth chao": "Mth Chao (LB)",
    "mthp": "Mth Poisson2",
    "mth poisson": "Mth Poisson2",
    "mthd": "Mth Darroch",
    "mthg": "Mth Gamma3.5",
    "mth gamma": "Mth Gamma3.5",
}


def canonical_model_name(name: str) -> str:
    known = {m.lower(): m for m in CLOSEDP_T_MODELS}
    key = name.strip().lower()
    if key in known:
        return known[key]
    if key in _ALIASES:
        return _ALIASES[key]
    raise ConfigError(
        f"unknown closed-population model {name!r}; known: {', '.join(CLOSEDP_T_MODELS)}",
        key="model",
    )


def _heterogeneity(model: str, nbcap: np.ndarray, t: int) -> tuple[np.ndarray, list[str]]:
    for kind, theta in (("Chao", None), ("Poisson2", 2.0), ("Darroch", None), ("Gamma3.5", 3.5)):
        if kind in model:
            return heterogeneity_columns(kind.rstrip("0123456789."), nbcap, t, theta)
    raise ConfigError(f"no heterogeneity in model {model!r}", key="model")


def closed_population_design(
    model: str, histories: np.ndarray
) -> tuple[np.ndarray, list[str], int]:
    """Design (intercept first) of an Rcapture model on the given histories, its column names
    and ``nca`` (number of columns, with the intercept, that do not model heterogeneity)."""
    model = canonical_model_name(model)
    t = histories.shape[1]
    nbcap = histories.sum(axis=1).astype(float)
    ones = np.ones((len(histories), 1))
    if model == "M0":
        X, names = np.column_stack([ones, nbcap]), ["Intercept", "beta"]
    elif model == "Mt":
        X, names = (
            np.column_stack([ones, histories]),
            ["Intercept"] + [f"beta{i + 1}" for i in range(t)],
        )
    elif model.startswith("Mh "):
        het, hn = _heterogeneity(model, nbcap, t)
        X, names = np.column_stack([ones, nbcap, het]), ["Intercept", "beta", *hn]
    elif model.startswith("Mth "):
        het, hn = _heterogeneity(model, nbcap, t)
        X = np.column_stack([ones, histories, het])
        names = ["Intercept"] + [f"beta{i + 1}" for i in range(t)] + hn
    elif model in ("Mb", "Mbh"):
        first = np.argmax(histories == 1, axis=1).astype(
            float
        )  # occasions before the first capture
        after = nbcap - 1
        if model == "Mb":
            X, names = np.column_stack([ones, first, after]), ["Intercept", "beta1", "beta2"]
        else:
            X = np.column_stack([ones, 1 - histories[:, 0], first, after])
            names = ["Intercept", "eta", "beta1", "beta2"]
    else:  # pragma: no cover
        raise ConfigError(f"unknown model {model!r}", key="model")
    nca = 2 if model.startswith("Mh ") else t + 1
    return X.astype(float), names, nca


def _fit_chao_neg(
    X: np.ndarray, y: np.ndarray, offset: np.ndarray, nca: int
) -> tuple[PoissonFit, np.ndarray]:
    """Rcapture's ``Chao.neg``: refit without the first non-positive η until none is left."""
    cols = np.arange(X.shape[1])
    fit = fit_poisson(X, y, offset)
    while len(cols) > nca:
        eta = fit.coef[nca:]
        if not np.any(eta < 0):
            break
        pos = nca
        while pos < len(cols) and fit.coef[pos] > 0:
            pos += 1
        cols = np.delete(cols, pos)
        fit = fit_poisson(X[:, cols], y, offset)
    return fit, cols


def _estimate(
    model: str,
    X: np.ndarray,
    names: list[str],
    nca: int,
    y: np.ndarray,
    offset: np.ndarray,
    n: float,
    t: int,
    *,
    profile: bool,
    level: float,
    description: str,
) -> PopulationEstimate:
    chao = "Chao" in model
    if chao:
        fit, cols = _fit_chao_neg(X, y, offset, nca)
    else:
        fit, cols = fit_poisson(X, y, offset), np.arange(X.shape[1])
    b = fit.coef
    V = fit.cov
    warnings: list[str] = []
    if model == "Mb":
        e1, e2 = math.exp(b[1]), math.exp(b[2])
        N = math.exp(b[0]) * (1 + e2) ** t / (1 + e2 - e1)
        v = N * np.array([1.0, e1 / (1 + e2 - e1), t * e2 / (1 + e2) - e2 / (1 + e2 - e1)])
        var = float(v @ V @ v - N)
    elif model == "Mbh":
        e2, e3, e23 = math.exp(b[2]), math.exp(b[3]), math.exp(b[1] + b[2])
        d = 1 + e3 - e2
        N = math.exp(b[0]) * (1 + e3) ** (t - 1) * (1 + e23 / d)
        v = (
            math.exp(b[0])
            * (1 + e3) ** (t - 1)
            * np.array(
                [
                    1 + e23 / d,
                    e23 / d,
                    e23 / d + math.exp(b[1] + 2 * b[2]) / d**2,
                    (t - 1) * e3 / (1 + e3) - math.exp(b[1] + b[2] + b[3]) / d**2,
                ]
            )
        )
        var = float(v @ V @ v - N)
    else:
        N = n + math.exp(b[0])
        var = math.exp(b[0]) + math.exp(2 * b[0]) * V[0, 0]
    if var < 0:
        warnings.append(
            "negative variance estimate (Rcapture's formula for this model); SE reported as NaN"
        )
    se = math.sqrt(var) if var >= 0 else math.nan
    if not fit.converged:
        warnings.append("the Poisson fit did not converge")
    used = [names[i] for i in cols]
    coefs = [
        {
            "term": nm,
            "estimate": float(b[j]),
            "se": float(math.sqrt(V[j, j])) if np.isfinite(V[j, j]) else math.nan,
        }
        for j, nm in enumerate(used)
    ]
    res = PopulationEstimate(
        param_names=list(used),
        param_values=np.array(b, dtype=float),
        param_cov=np.array(V, dtype=float),
        model=model,
        population_size=N,
        se=se,
        n_observed=int(round(n)),
        formula=model,
        description=description,
        coefficients=coefs,
        loglik=fit.loglik,
        aic=-2 * fit.loglik + 2 * fit.rank,
        bic=-2 * fit.loglik + math.log(n) * fit.rank,
        deviance=fit.deviance,
        df_residual=fit.df_residual,
        converged=fit.converged,
        warnings=warnings,
        default_interval="normal",
    )
    res.diagnostics["dropped_eta"] = [
        nm for i, nm in enumerate(names) if i not in set(cols.tolist())
    ]
    res.extra["occasions"] = t
    res.fitted_frequencies = [
        {"observed": float(o), "fitted": float(m)} for o, m in zip(y, fit.mu, strict=True)
    ]
    if profile and model not in ("Mb", "Mbh"):
        cf = CellFit(fit, X[:, cols], y, offset, np.zeros((1, len(cols))), np.zeros(1), n)
        cf.X0[0, 0] = 1.0
        Xa = np.vstack([X, np.zeros((1, X.shape[1]))])
        Xa[-1, 0] = 1.0
        offa = np.concatenate([offset, [0.0]])

        def deviance_at(n0: float) -> float:
            ya = np.concatenate([y, [n0]])
            if chao:
                return _fit_chao_neg(Xa, ya, offa, nca)[0].deviance
            return fit_poisson(Xa, ya, offa, start=fit.coef).deviance

        cache: dict[float, tuple[float, float, float]] = {}

        def interval(lv: float) -> tuple[float, float]:
            if lv not in cache:
                cache[lv] = profile_interval(deviance_at, n, N, lv)
                res.extra.setdefault("profile", {})[str(lv)] = {
                    "population_size_multinomial": cache[lv][0],
                    "lower": cache[lv][1],
                    "upper": cache[lv][2],
                }
            return cache[lv][1], cache[lv][2]

        res.interval_methods["profile"] = interval
        res.default_interval = "profile"
    return res


def _history_table(data: Any, lists: Sequence[str] | None, count: str | None) -> CaptureTable:
    if isinstance(data, CaptureTable):
        table = data
    else:
        if lists is None:
            df = read_frame(data)
            lists = [c for c in df.columns if c.startswith("in_")] or [
                c for c in df.columns if c != count
            ]
        table = capture_table(data, lists=lists, count=count)
    if table.covariates:
        table = table.collapse([])
    return table


def closed_population_models(
    data: Any,
    lists: Sequence[str] | None = None,
    count: str | None = None,
    models: Sequence[str] | None = None,
    *,
    profile: bool = False,
) -> list[PopulationEstimate]:
    """Rcapture ``closedp.t``: every closed-population model, one :class:`PopulationEstimate`
    each (with two lists only M0, Mt and Mb, as Rcapture)."""
    table = _history_table(data, lists, count)
    t = table.k
    if models is None:
        models = ("M0", "Mt", "Mb") if t == 2 else CLOSEDP_T_MODELS
    out = []
    for m in models:
        out.append(ClosedPopulationModel(m, profile=profile).fit(table))
    return out


class ClosedPopulationModel:
    """One Rcapture model (``closedpCI.t`` when ``profile``), e.g. ``ClosedPopulationModel("Mt")``."""

    def __init__(self, model: str = "Mt", *, profile: bool = True, level: float = 0.95):
        self.model = canonical_model_name(model)
        self.profile = profile
        self.level = check_level(level)

    def fit(
        self, data: Any, lists: Sequence[str] | None = None, count: str | None = None
    ) -> PopulationEstimate:
        table = _history_table(data, lists, count)
        t = table.k
        if t < 3 and (self.model.startswith("Mh") or self.model.startswith("Mth")):
            raise ConfigError("heterogeneity models need at least 3 lists/occasions", key="model")
        hist = all_histories(t).astype(float)
        y = table.counts.astype(float)
        X, names, nca = closed_population_design(self.model, hist)
        return _estimate(
            self.model,
            X,
            names,
            nca,
            y,
            np.zeros(len(y)),
            float(y.sum()),
            t,
            profile=self.profile,
            level=self.level,
            description=f"Closed population model {self.model} (Rcapture closedp.t), {t} lists",
        )


# ----------------------------------------------------------------------------- capture frequencies


def _frequency_vector(
    data: Any, nbcap: str, freq: str | None, max_count: int = DEFAULT_MAX_COUNT
) -> np.ndarray:
    """f_k for k = 1..max from a frequency table (``nbcap``, ``freq``) or one count per person.

    The vector is as long as the largest count, so counts above ``max_count`` are refused
    (see :data:`~recapture.estimators.count.problem.DEFAULT_MAX_COUNT`)."""
    df = read_frame(data)
    if nbcap not in df.columns:
        raise InputError("column not found", column=nbcap)
    if freq and freq not in df.columns:
        raise InputError("column not found", column=freq)
    k = df[nbcap].cast(float).to_numpy()
    w = df[freq].cast(float).to_numpy() if freq else np.ones(len(k))
    bad = ~np.isfinite(k) | (k < 0) | (k != np.round(k))
    if bad.any():
        raise InputError(
            "capture counts must be non-negative integers",
            row=int(np.argmax(bad)) + 1,
            column=nbcap,
        )
    too_big = k > max_count
    if too_big.any():
        raise InputError(
            f"implausible count {k[too_big][0]:.0f}: more than max_count = {max_count:,} "
            "captures; a data error, or raise max_count",
            row=int(np.argmax(too_big)) + 1,
            column=nbcap,
        )
    if not np.any((k > 0) & (w > 0)):
        raise InputError("no person with a capture count ≥ 1", column=nbcap)
    keep = (k > 0) & (w > 0)
    kmax = int(k[keep].max())
    f = np.zeros(kmax)
    np.add.at(f, k[keep].astype(int) - 1, w[keep])
    return f


def capture_frequency_models(
    data: Any,
    nbcap: str = "nbcap",
    freq: str | None = "freq",
    models: Sequence[str] | None = None,
    *,
    t: float = math.inf,
    t0: int | None = None,
    profile: bool = False,
    max_count: int = DEFAULT_MAX_COUNT,
) -> list[PopulationEstimate]:
    """Rcapture ``closedp.0``: models for one source counted as capture frequencies.

    ``t = inf`` (continuous time: the Poisson count model, offset −log k!) or a finite number of
    occasions (binomial, offset log C(t, k)); ``t0`` keeps only f₁…f_{t0} in the fit.
    """
    f = _frequency_vector(data, nbcap, freq, check_max_count(max_count))
    tmax = len(f)
    tinf = math.isinf(t)
    T = tmax if tinf else int(t)
    if not tinf and tmax > T:
        raise InputError(f"capture counts exceed t = {T}", column=nbcap)
    t0_ = T if t0 is None else int(t0)
    if t0_ < 2:
        raise ConfigError("t0 must be at least 2", key="t0")
    n = float(f.sum())
    ks = np.arange(t0_, 0, -1).astype(float)  # Rcapture's order: t0, …, 1
    fk = np.concatenate([f, np.zeros(max(0, t0_ - tmax))])
    y = fk[ks.astype(int) - 1]
    from scipy import special

    offset = -special.gammaln(ks + 1) if tinf else np.log(special.comb(T, ks))
    if models is None:
        models = ("M0",) if t0_ == 2 else CLOSEDP_0_MODELS
    out = []
    for m in models:
        m = canonical_model_name(m)
        if m not in CLOSEDP_0_MODELS:
            raise ConfigError(f"model {m} needs capture histories, not frequencies", key="model")
        ones = np.ones((len(ks), 1))
        if m == "M0":
            X, names, nca = np.column_stack([ones, ks]), ["Intercept", "beta"], 2
        else:
            het, hn = _heterogeneity(m, ks, t0_)
            X, names, nca = np.column_stack([ones, ks, het]), ["Intercept", "beta", *hn], 2
        res = _estimate(
            m,
            X,
            names,
            nca,
            y,
            offset,
            n,
            t0_,
            profile=profile,
            level=0.95,
            description=f"Capture-frequency model {m} (Rcapture closedp.0, t = {'Inf' if tinf else T})",
        )
        res.model = m
        res.extra["frequencies"] = f.tolist()
        out.append(res)
    return out
