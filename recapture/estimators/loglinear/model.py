"""The log-linear model for multiple systems estimation and its fit to one table.

:class:`LogLinearModel` turns options into terms and a :class:`FitOptions`; :func:`fit_terms`
(the interface that the two-list estimators, the closed-population models and the model
search share) fits one hierarchical model to one table and builds the
:class:`~recapture.estimators.result.PopulationEstimate`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from recapture.errors import ConfigError
from recapture.estimators.formula import check_name, check_names
from recapture.estimators.loglinear.fit import (
    CellFit,
    fit_grouped_poisson,
    fit_poisson,
    grouped_information,
    mle_exists,
    observed_grouped_loglik,
    rank_deficiency,
)
from recapture.estimators.loglinear.intervals import (
    bias_reduced_cellfit,
    cached_profile,
    dark_lognormal_interval,
    grouped_profile_deviance_fn,
    parametric_bootstrap,
)
from recapture.estimators.loglinear.tables import CaptureTable, capture_table
from recapture.estimators.loglinear.terms import (
    Term,
    chao_negative_eta,
    check_model,
    generating_class,
    parse_terms,
    prepare_design,
    term_name,
)
from recapture.estimators.reading import read_frame
from recapture.estimators.result import BiasReducedLognormal, PopulationEstimate, check_level

Z95 = stats.norm.ppf(0.975)

# =============================================================================== the model


class LogLinearModel:
    """Poisson log-linear model for k ≥ 2 lists, optionally stratified by covariates.

    ``LogLinearModel("[AX][BX]", covariates=["X"]).fit(persons, lists=["A", "B"])`` fits the
    two-list model with covariate-driven heterogeneity; ``LogLinearModel("A*B + C")`` a three-list
    model with one interaction. ``partial_covariates`` may be missing for some people (observed in
    one source only) and are fitted by EM; ``passive`` covariates enter only as ``list:X`` terms
    with the list given, so they break N̂ down without changing it.

    ``empty_overlaps="drop"`` treats an interaction whose lists never overlap as a parameter at
    −∞ (SparseMSE's extended MLE; AIC counts it); ``"keep"`` leaves it to the existence check.
    """

    def __init__(
        self,
        model: str | Sequence[Any] | None = None,
        covariates: Sequence[str] = (),
        *,
        partial_covariates: Sequence[str] = (),
        passive: dict[str, str] | None = None,
        empty_overlaps: str = "drop",
        offsets: dict[Term, float] | None = None,
        profile: bool = True,
        bootstrap: int = 0,
        seed: int | None = None,
        level: float = 0.95,
        name: str | None = None,
        dependence_thetas: Sequence[float] | None = None,
        heterogeneity: str | None = None,
        theta: float | None = None,
    ):
        if empty_overlaps not in ("drop", "keep"):
            raise ConfigError("empty_overlaps must be 'drop' or 'keep'", key="empty_overlaps")
        self.model = model
        self.covariates = check_names(covariates, "covariates")
        self.partial_covariates = check_names(partial_covariates, "partial_covariates")
        self.passive = {
            check_name(cov, "passive"): check_name(lst, "passive")
            for cov, lst in (passive or {}).items()
        }
        self.empty_overlaps = empty_overlaps
        self.offsets = dict(offsets or {})
        self.profile = profile
        self.bootstrap = int(bootstrap)
        self.seed = seed
        self.level = check_level(level)
        self.name = name
        self.dependence_thetas = None if dependence_thetas is None else list(dependence_thetas)
        if heterogeneity is not None:
            m = re.fullmatch(
                r"\s*(Chao|LB|Poisson|Darroch|Gamma)\s*(\(LB\))?\s*([0-9.]+)?\s*", heterogeneity
            )
            if not m:
                raise ConfigError(
                    f"unknown heterogeneity {heterogeneity!r}; known: Chao (LB), Poisson2, Darroch, Gamma3.5",
                    key="heterogeneity",
                )
            theta = float(m.group(3)) if m.group(3) else theta
            self.heterogeneity: tuple[str, float | None] | None = (m.group(1), theta)
        else:
            self.heterogeneity = None

    # ------------------------------------------------------------------ public
    def fit(
        self,
        data: Any,
        lists: Sequence[str] | None = None,
        count: str | None = None,
        *,
        source: str | None = None,
    ) -> PopulationEstimate:
        covs = list(dict.fromkeys([*self.covariates, *self.partial_covariates, *self.passive]))
        covs += self._covariates_named_in_model(data, lists, count, covs)
        table = capture_table(
            data,
            lists=lists,
            count=count,
            covariates=covs,
            source=source,
            allow_missing=self.partial_covariates,
        )
        return self.fit_table(table)

    def _covariates_named_in_model(self, data: Any, lists, count, known: list[str]) -> list[str]:
        """Columns the model names that are neither lists nor declared covariates: covariates."""
        if self.model is None or isinstance(data, CaptureTable):
            return []
        text = (
            self.model
            if isinstance(self.model, str)
            else " ".join(t if isinstance(t, str) else " ".join(t) for t in self.model)
        )
        try:
            columns = read_frame(data).columns
        except Exception:  # reading errors are reported by capture_table
            return []
        skip = set(known) | set(lists or [c for c in columns if c.startswith("in_")]) | {count}
        names = re.findall(r"[A-Za-z_][\w.]*", text)
        return [c for c in dict.fromkeys(names) if c in columns and c not in skip]

    def terms(self, table: CaptureTable) -> list[Term]:
        """The model's terms. Without a model, every list interacts with every declared
        covariate ([AX][BX]…: capture independent given the covariates). The covariates'
        joint distribution is always saturated: it is a nuisance, not a capture effect."""
        variables = [*table.lists, *table.covariates]
        model: Any = self.model
        if model is None and self.covariates:
            model = [(lst, c) for lst in table.lists for c in self.covariates]
        base = parse_terms(model, variables, table.lists)
        extra = [(lst, cov) for cov, lst in self.passive.items()]
        if table.covariates:
            extra.append(tuple(table.covariates))
        base = parse_terms([*base, *extra], variables, table.lists)
        missing = [
            c
            for c in self.partial_covariates
            if not any(c in t and any(v in table.lists for v in t) for t in base)
        ]
        if missing:
            raise ConfigError(
                f"partly observed covariate(s) {', '.join(missing)} must appear in the model with a list, "
                "e.g. '[iom,reason][police]'",
                key="model",
            )
        return base

    def fit_table(self, table: CaptureTable) -> PopulationEstimate:
        terms = self.terms(table)
        for lst, cov in [(v, k) for k, v in self.passive.items()]:
            if lst not in table.lists:
                raise ConfigError(
                    f"passive covariate {cov!r} is linked to unknown list {lst!r}", key="passive"
                )
        simplified: list[str] = []
        if self.model is None and self.covariates and not self.partial_covariates:
            terms, simplified = estimable_default(
                table, terms, self.covariates, self.empty_overlaps
            )
        result = fit_terms(
            table,
            terms,
            FitOptions(
                empty_overlaps=self.empty_overlaps,
                offsets=self.offsets,
                profile=self.profile,
                bootstrap=self.bootstrap,
                seed=self.seed,
                level=self.level,
                name=self.name,
                heterogeneity=self.heterogeneity,
            ),
        )
        if simplified:
            result.warnings.insert(
                0,
                "the default model was simplified because the table is too sparse for it: dropped "
                + ", ".join(simplified)
                + " (a list that saw nobody, or everybody, in some covariate level); name the "
                "model to fit another",
            )
            result.extra["dropped_terms"] = simplified
        if self.dependence_thetas is not None and table.k == 2:
            if table.partial_counts is not None and table.partial_counts.sum() > 0:
                result.warnings.append(
                    "dependence sensitivity skipped: not available with EM covariates"
                )
            else:
                result.extra["dependence_sensitivity"] = dependence_sensitivity(
                    table, model=terms, thetas=self.dependence_thetas, level=self.level
                )
        return result


@dataclass(frozen=True)
class FitOptions:
    """How :func:`fit_terms` fits a model: the options the estimators share.

    ``empty_overlaps`` ``"drop"`` (an interaction of lists that never overlap is a parameter
    at −∞, SparseMSE's extended MLE) or ``"keep"``; ``offsets`` fixes terms at log(value)
    (the dependence sensitivity); ``profile`` adds the profile-likelihood interval;
    ``bootstrap`` replicates of the parametric bootstrap with ``seed``; ``name`` is the
    description; ``check`` runs the existence and identifiability checks; ``heterogeneity``
    (kind, θ) adds Rcapture's heterogeneity columns.
    """

    empty_overlaps: str = "drop"
    offsets: dict[Term, float] = field(default_factory=dict)
    profile: bool = True
    bootstrap: int = 0
    seed: int | None = None
    level: float = 0.95
    name: str | None = None
    check: bool = True
    heterogeneity: tuple[str, float | None] | None = None


def fit_terms(
    table: CaptureTable, terms: Sequence[Term], options: FitOptions | None = None
) -> PopulationEstimate:
    """Fit one hierarchical model to a table and build the :class:`PopulationEstimate`."""
    options = options or FitOptions()
    empty_overlaps, offsets, profile = options.empty_overlaps, options.offsets, options.profile
    bootstrap, seed, name, check = options.bootstrap, options.seed, options.name, options.check
    heterogeneity = options.heterogeneity
    lists = table.lists
    warnings: list[str] = []
    prep = prepare_design(table, terms, empty_overlaps, offsets, heterogeneity)
    dropped_eta: list[str] = []
    if heterogeneity is not None and heterogeneity[0] in ("Chao", "LB"):
        prep, dropped_eta = chao_negative_eta(prep)
    X, X0, names, y, offset, offset0 = (
        prep.X,
        prep.X0,
        prep.names,
        prep.y,
        prep.offset,
        prep.offset0,
    )
    cell_keep, empty = prep.cell_keep, prep.empty
    partial_present = table.partial_counts is not None and table.partial_counts.sum() > 0
    if empty:
        warnings.append(
            "empty overlap(s) "
            + ", ".join(empty)
            + ": their interaction is at −∞ (boundary of the parameter space); the cells are "
            "treated as structural zeros, as SparseMSE does"
        )
    # ---- existence and identifiability
    exists, rankdef = True, 0
    if check:
        rankdef = rank_deficiency(X)
        if not partial_present:
            exists = mle_exists(X, y)
    identifiable = rankdef == 0
    if not exists:
        warnings.append(
            "the maximum-likelihood estimate does not exist for this model and table "
            "(Fienberg–Rinaldo linear program): some fitted counts go to zero and N̂ is meaningless"
        )
    if not identifiable:
        warnings.append(
            f"the model is not identifiable on this table (design rank deficient by {rankdef}): "
            "N̂ depends on an arbitrary choice of parameters"
        )
    # ---- fit
    groups = table.partial_cells[:, cell_keep] if partial_present else None
    fit, completed, em_iter = fit_grouped_poisson(
        X, offset, y, groups, table.partial_counts if partial_present else None
    )
    info = grouped_information(X, fit.mu, groups, table.partial_counts) if partial_present else None
    if partial_present:
        obs_ll = observed_grouped_loglik(fit.mu, y, groups, table.partial_counts)
        fit.loglik = obs_ll
        ev = np.linalg.eigvalsh(info[np.ix_(fit.keep, fit.keep)])
        if identifiable and ev.min() <= 1e-9 * ev.max():
            identifiable = False
            warnings.append(
                "the model is not identifiable from the partly classified table (singular "
                "observed-data information): the covariate's distribution among people missing it "
                "is not determined by the data"
            )
    if not fit.converged:
        warnings.append("IRLS did not converge")
    n = table.n_observed
    cf = CellFit(fit, X, y if not partial_present else completed, offset, X0, offset0, n, info)
    N = cf.population_size
    se = math.sqrt(max(cf.variance(), 0.0))
    keep = fit.keep
    cov_full = np.full((X.shape[1], X.shape[1]), np.nan)
    cov_full[np.ix_(keep, keep)] = cf.covariance()
    coefs = [
        {
            "term": nm,
            "estimate": float(b),
            "se": float(math.sqrt(v)) if np.isfinite(v) and v >= 0 else math.nan,
        }
        for nm, b, v in zip(names, fit.coef, np.diag(cov_full), strict=True)
    ]
    p = fit.rank + len(empty)
    aic = -2 * fit.loglik + 2 * p
    bic = -2 * fit.loglik + math.log(max(n, 1.0)) * p
    df_res = int(len(y) - fit.rank - (table.partial_counts is not None and partial_present) * 0)
    if partial_present:
        # free cells: fully classified cells that can hold observations + partial groups, minus the
        # cells only reachable through groups
        only_partial = np.asarray(groups.sum(axis=0) > 0).ravel() & (y == 0)
        df_res = int(len(y) - only_partial.sum() + len(table.partial_counts) - fit.rank)
    gen = generating_class(terms)
    if heterogeneity is not None:
        gen += f" + h={heterogeneity[0]}" + (
            f"({heterogeneity[1]:g})" if heterogeneity[1] is not None else ""
        )
    result = PopulationEstimate(
        param_names=list(names),
        param_values=np.array(fit.coef, dtype=float),
        param_cov=cov_full,
        model="loglinear",
        population_size=N if (exists and identifiable) else math.nan,
        se=se if (exists and identifiable) else math.nan,
        n_observed=int(round(n)),
        formula=gen,
        description=name or "Log-linear model",
        coefficients=coefs,
        loglik=fit.loglik,
        aic=aic,
        bic=bic,
        deviance=fit.deviance if not partial_present else None,
        df_residual=df_res,
        converged=fit.converged,
        warnings=warnings,
        default_interval=("profile" if profile else "lognormal")
        if (exists and identifiable)
        else "normal",
    )
    hidden = cf.hidden
    result.diagnostics.update(
        {
            "mle_exists": exists,
            "identifiable": identifiable,
            "rank_deficiency": rankdef,
            "empty_overlaps": empty,
            "iterations": fit.iterations,
            "em_iterations": em_iter,
            "cells": int(len(y)),
            "dropped_all_zero_rows": table.dropped_all_zero,
            "dropped_eta": dropped_eta,
        }
    )
    result.extra.update(
        {
            "lists": list(lists),
            "covariates": list(table.covariates),
            "terms": [term_name(t) for t in terms],
            "parameters": fit.rank,
            "unreliable_population_size": None if (exists and identifiable) else N,
        }
    )
    # fitted frequencies
    hist_all = table.histories[cell_keep]
    strata_all = table.strata[cell_keep]
    fitted = []
    for i in range(len(y)):
        row = {name: int(hist_all[i, j]) for j, name in enumerate(lists)}
        row.update(table.stratum_label(int(strata_all[i])))
        row.update({"observed": float(cf.y[i]), "fitted": float(fit.mu[i])})
        fitted.append(row)
    for s in range(table.n_strata):
        row = {name: 0 for name in lists}
        row.update(table.stratum_label(s))
        row.update({"observed": None, "fitted": float(hidden[s])})
        fitted.append(row)
    result.fitted_frequencies = fitted
    if table.covariates:
        obs_s = np.bincount(table.strata[cell_keep], weights=cf.y, minlength=table.n_strata)
        result.strata = marginal_strata(table, obs_s, hidden, cf.variance)
    # ---- intervals
    if exists and identifiable:
        if (
            fit.keep[0] == 0
            and table.n_strata == 1
            and not partial_present
            and np.all(offset0 == 0)
        ):
            b0, v0 = fit.coef[0], cov_full[0, 0]
            result.interval_methods["dark_lognormal"] = lambda lv, b0=b0, v0=v0: (
                dark_lognormal_interval(n, b0, math.sqrt(v0), lv)
            )
        if table.n_strata > 1:
            at_reduced = bias_reduced_cellfit(
                cf, groups, table.partial_counts if partial_present else None
            )
            reduced = float(at_reduced.hidden.sum())
            var_reduced = at_reduced.variance()
            result.extra["population_size_bias_reduced"] = n + reduced
            if np.isfinite(var_reduced) and var_reduced > 0 and np.isfinite(reduced):
                se_reduced = math.sqrt(var_reduced)
                result.extra["se_bias_reduced"] = se_reduced
                brl = BiasReducedLognormal(n, reduced, se_reduced, reduced)
            else:  # the ML fit's coefficient of variation, around the reduced count
                brl = BiasReducedLognormal(n, float(hidden.sum()), se, reduced)
            result.interval_methods["bias_reduced"] = brl
            # the strata's small-sample bias adds up: the ML-centred intervals hold the
            # truth too rarely (docs/estimators.md, "Intervals with covariate strata")
            result.default_interval = "bias_reduced"
        if profile and not partial_present:
            result.interval_methods["profile"] = cached_profile(cf, result)
        elif profile:
            keep = fit.keep
            dev_fn = grouped_profile_deviance_fn(
                X[:, keep],
                y,
                offset,
                groups,
                table.partial_counts,
                X0[:, keep],
                offset0,
                fit.coef[keep],
            )
            result.interval_methods["profile"] = cached_profile(cf, result, dev_fn)
        if bootstrap > 0 and not partial_present:

            def refit(ysim: np.ndarray) -> float:
                f = fit_poisson(X, ysim, offset, start=fit.coef)
                return float(ysim.sum() + np.exp(X0[:, f.keep] @ f.coef[f.keep] + offset0).sum())

            reps = parametric_bootstrap(refit, fit.mu, float(hidden.sum()), bootstrap, seed)
            result.bootstrap_replicates = reps
            result.bootstrap_info = {
                "replicates": bootstrap,
                "kind": "parametric multinomial",
                "seed": seed,
            }
    if not (exists and identifiable):
        reasons = [w for w in warnings if "does not exist" in w or "not identifiable" in w]
        result.flag_non_estimate("; ".join(reasons))
    return result


def marginal_strata(
    table: CaptureTable,
    observed: np.ndarray,
    totals: np.ndarray,
    variance_of: Callable[[np.ndarray], float],
    *,
    hidden_given: bool = True,
) -> list[dict[str, Any]]:
    """One row per covariate level (summed over the other covariates), the shape every
    estimator's ``strata`` has: variable, level, observed, population_size, se, intervals."""
    z = Z95
    rows = []
    for j, cov in enumerate(table.covariates):
        for lev_idx, level in enumerate(table.levels[cov]):
            mask = (table.stratum_values[:, j] == lev_idx).astype(float)
            obs = float(observed @ mask)
            hid = float(totals @ mask) if hidden_given else float(totals @ mask) - obs
            N = obs + hid
            var = variance_of(mask)
            se = math.sqrt(var) if var >= 0 and np.isfinite(var) else math.nan
            row = {
                "variable": cov,
                "level": level,
                "observed": obs,
                "hidden": hid,
                "population_size": N,
                "se": se,
                "observed_share": obs / N if N > 0 else math.nan,
                "normal_lower": max(N - z * se, obs),  # N is at least the observed
                "normal_upper": N + z * se,
            }
            if hid > 0 and np.isfinite(se):
                c = math.exp(z * math.sqrt(math.log1p(se**2 / hid**2)))
                row["lognormal_lower"], row["lognormal_upper"] = obs + hid / c, obs + hid * c
            rows.append(row)
    return rows


def estimable_default(
    table: CaptureTable, terms: list[Term], covariates: Sequence[str], empty_overlaps: str
) -> tuple[list[Term], list[str]]:
    """Drop list × covariate terms of the default model until its MLE exists and is
    identifiable: first those whose list saw nobody (or everybody) in some covariate level,
    then, if needed, one covariate at a time from the last."""
    lists = table.lists
    current = list(terms)
    dropped: list[str] = []
    if check_model(table, current, empty_overlaps) == 0:
        return current, dropped
    cellcov = table.cell_covariates()
    for lst in lists:
        on = table.histories[:, lists.index(lst)] == 1
        for cov in covariates:
            j = table.covariates.index(cov)
            levels = len(table.levels[cov])
            seen = np.bincount(cellcov[on, j], weights=table.counts[on], minlength=levels)
            unseen = np.bincount(cellcov[~on, j], weights=table.counts[~on], minlength=levels)
            if (seen == 0).any() or (unseen == 0).any():
                term = tuple(v for v in [*lists, *table.covariates] if v in (lst, cov))
                if term in current:
                    current.remove(term)
                    dropped.append(term_name(term))
    for cov in reversed(list(covariates)):
        if check_model(table, current, empty_overlaps) == 0:
            break
        for lst in lists:
            term = tuple(v for v in [*lists, *table.covariates] if v in (lst, cov))
            if term in current:
                current.remove(term)
                dropped.append(term_name(term))
    return current, dropped


def fit_loglinear(
    data: Any,
    model: str | Sequence[Any] | None = None,
    lists: Sequence[str] | None = None,
    count: str | None = None,
    covariates: Sequence[str] = (),
    **kwargs: Any,
) -> PopulationEstimate:
    """Shorthand for ``LogLinearModel(model, covariates, **kwargs).fit(data, lists, count)``."""
    return LogLinearModel(model, covariates, **kwargs).fit(data, lists=lists, count=count)


# =============================================================================== dependence


DEFAULT_THETAS = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0)


def dependence_sensitivity(
    data: Any,
    lists: Sequence[str] | None = None,
    count: str | None = None,
    covariates: Sequence[str] = (),
    *,
    model: str | Sequence[Any] | None = None,
    thetas: Sequence[float] = DEFAULT_THETAS,
    level: float = 0.95,
) -> list[dict[str, float]]:
    """N̂(θ) when the odds ratio between the two lists (within covariate strata) is fixed at θ
    instead of 1 (Gerritse, van der Heijden & Bakker 2015): θ enters as an offset log θ on the
    cells seen by both lists, so μ₀₀ = θ·μ₁₀·μ₀₁/μ₁₁. θ > 1 (positive dependence) raises N̂.
    With no covariates this is n + θ·n₁₀·n₀₁/n₁₁."""
    table = capture_table(data, lists=lists, count=count, covariates=covariates)
    if table.k != 2:
        raise ConfigError("the dependence sensitivity analysis is for two lists", key="lists")
    if model is None:
        model = [(lst, c) for lst in table.lists for c in table.covariates]
    terms = parse_terms(model, [*table.lists, *table.covariates], table.lists)
    if tuple(table.lists) in terms:
        raise ConfigError("the model may not contain the interaction of the two lists", key="model")
    out = []
    for theta in thetas:
        if not theta > 0:
            raise ConfigError("odds ratios must be positive", key="thetas")
        res = fit_terms(
            table,
            terms,
            FitOptions(offsets={tuple(table.lists): float(theta)}, profile=table.n_strata == 1),
        )
        method = "profile" if "profile" in res.interval_methods else "lognormal"
        try:
            lo, hi = res.confint(method, level)
        except Exception:  # an interval that cannot be computed is reported as NaN
            lo, hi = math.nan, math.nan
        out.append(
            {
                "theta": float(theta),
                "population_size": float(res.population_size),
                "se": float(res.se),
                "lower": float(lo),
                "upper": float(hi),
                "interval": method,
            }
        )
    return out
