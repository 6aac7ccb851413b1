"""Single-source estimators: truncated count regression with Horvitz–Thompson N̂.

Usage::

    from recapture.estimators import ZeroTruncatedPoisson
    est = ZeroTruncatedPoisson("~ gender + age + reason + nation").fit(persons, count="capture")
    est.population_size, est.se, est.confint("lognormal"), print(est.summary())

Every model returns a :class:`~recapture.estimators.result.PopulationEstimate`. Problems
the fit notices (non-convergence, a parameter at a boundary, a covariate level without
repeated captures, an N̂ absurd relative to n) are put in ``warnings`` — never hidden.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
from scipy import stats

from recapture.errors import ConfigError
from recapture.estimators.count import families as fams
from recapture.estimators.count.bootstrap import bootstrap_warnings, run_bootstrap
from recapture.estimators.count.diagnostics import (
    FittedCountModel,
    dfpopsize,
    frequency_table,
    parse_strata,
    pattern_residuals,
    pearson_residual_summary,
    strata_columns,
    strata_table,
)
from recapture.estimators.count.fit import (
    FitResult,
    expected_hessian,
    fit_ml,
    population_estimate,
    warm_start,
)
from recapture.estimators.count.problem import (
    DEFAULT_MAX_COUNT,
    CountProblem,
    check_max_count,
    prepare,
    required_variables,
)
from recapture.estimators.covariates import check_missing, fit_with_covariates
from recapture.estimators.formula import check_name, parse_formula
from recapture.estimators.reading import read_frame
from recapture.estimators.result import (
    BiasReducedLognormal,
    PopulationEstimate,
    likelihood_data,
    row_key,
)

VARIANCE_METHODS = ("analytic", "bootstrap")
INTERVALS = ("normal", "lognormal", "bootstrap")


class CountModel:
    """Base of the single-source models; subclasses set ``family``."""

    family_class: Callable[[], fams.CountFamily] = fams.ZTPoisson
    second_formula_name: str | None = None  # "omega" or "alpha"

    def __init__(
        self,
        formula: str = "~ 1",
        *,
        reference: Mapping[str, str] | None = None,
        offset: str | None = None,
        information: str = "observed",
        strata: str | Sequence[str] | None = None,
        absurd_ratio: float = 50.0,
        dfpopsize: bool = True,
        penalty: str | None = None,
        max_count: int = DEFAULT_MAX_COUNT,
        missing: str | None = None,
        merge_sparse_levels: int | None = None,
        **second: str,
    ):
        if information not in ("observed", "expected"):
            raise ConfigError("information must be 'observed' or 'expected'", key="information")
        if not isinstance(formula, str):
            raise ConfigError(
                f"expected a formula string, got {type(formula).__name__}", key="formula"
            )
        formula = formula.strip()
        if not formula.startswith("~"):
            # allow "capture ~ x": the response is given by ``count`` in fit()
            formula = "~" + formula.split("~", 1)[1] if "~" in formula else "~ " + formula
        parse_formula(formula)  # refuse anything outside the grammar before any data is read
        self.formula = formula
        self.reference = dict(reference or {})
        self.offset = check_name(offset, "offset") if offset is not None else None
        self.information = information
        #: strata as groups of columns (a formula '~ sex:age_class + region' or columns)
        self.strata_groups = parse_strata(strata)
        self.strata = strata_columns(self.strata_groups)
        self.absurd_ratio = absurd_ratio
        self.max_count = check_max_count(max_count)
        self.dfpopsize = dfpopsize
        if penalty not in (None, "none", "firth", "ridge"):
            raise ConfigError("penalty must be 'firth', 'ridge' or None", key="penalty")
        self.penalty = None if penalty == "none" else penalty
        # persons with an unknown covariate and sparse levels: the rules every entry point
        # shares (recapture.estimators.covariates)
        self.missing = check_missing(missing)
        self.merge_sparse_levels = merge_sparse_levels
        self.family = self._make_family()
        self.extra_formulas: dict[str, str] = {}
        for key, value in second.items():
            name = key.removesuffix("_formula")
            if name not in self.family.predictors[1:]:
                raise ConfigError(f"unknown option {key!r} for {self.family.name}", key=key)
            parse_formula(value, key)
            self.extra_formulas[name] = value
        for name in self.family.predictors[1:]:
            self.extra_formulas.setdefault(name, "~ 1")

    def _make_family(self) -> fams.CountFamily:
        return self.family_class()

    # ------------------------------------------------------------------------ API
    def fit(
        self,
        data: Any,
        count: str = "capture",
        weights: str | None = None,
        *,
        variance: str = "analytic",
        bootstrap_type: str = "parametric",
        replicates: int = 1000,
        seed: int | None = None,
        workers: int = 1,
        interval: str | None = None,
        bootstrap_penalty: str | None = "firth",
    ) -> PopulationEstimate:
        """Fit by maximum likelihood and estimate N by Horvitz–Thompson.

        ``data``: polars/pandas frame (or a Parquet/CSV path), one row per person, or one
        row per (covariates, count) with a frequency column named by ``weights``.
        ``variance="bootstrap"`` replaces the SE by the bootstrap SD and makes the
        percentile interval the default one; the analytic SE is kept in
        ``variance_components``. Persons with an unknown covariate value are treated by
        the model's ``missing`` rule, sparse levels merged if ``merge_sparse_levels`` is
        set — as ``estimate()``, ``recapture estimate`` and the pipeline do.
        """
        frame = read_frame(data)
        options = {
            "count": count,
            "weights": weights,
            "variance": variance,
            "bootstrap_type": bootstrap_type,
            "replicates": replicates,
            "seed": seed,
            "workers": workers,
            "interval": interval,
            "bootstrap_penalty": bootstrap_penalty,
        }
        if count in frame.columns:
            variables = [v for f in self.formulas.values() for v in required_variables(f)]
            weight = pl.col(weights) if weights and weights in frame.columns else pl.lit(1.0)
            return fit_with_covariates(
                frame.with_columns(row_key(frame)),
                variables,
                functools.partial(self.fit_complete, **options),
                missing=self.missing,
                merge_sparse=self.merge_sparse_levels,
                informative=(pl.col(count) >= 2).cast(pl.Float64) * weight,
                observed=pl.col(count) > 0,
                weight=weight,
                model=self,
                options=options,
            )
        return self.fit_complete(frame, **options)  # prepare() names the missing column

    @property
    def formulas(self) -> dict[str, str]:
        """The model's formulas by predictor (λ first)."""
        return {"lambda": self.formula, **self.extra_formulas}

    def fit_complete(self, data: Any, **options: Any) -> PopulationEstimate:
        """:meth:`fit` without the rule for unknown covariates and sparse levels: every
        row is used as it is (what a rule calls on the persons it keeps)."""
        merged = {
            "count": "capture",
            "weights": None,
            "variance": "analytic",
            "bootstrap_type": "parametric",
            "replicates": 1000,
            "seed": None,
            "workers": 1,
            "interval": None,
            "bootstrap_penalty": "firth",
            **options,
        }
        # numerical trouble (log 0 at a boundary, overflow of a diverging λ) is reported in
        # the result's warnings, not as numpy RuntimeWarnings
        with np.errstate(all="ignore"):
            return self._fit(
                data,
                merged["count"],
                merged["weights"],
                merged["variance"],
                merged["bootstrap_type"],
                merged["replicates"],
                merged["seed"],
                merged["workers"],
                merged["interval"],
                merged["bootstrap_penalty"],
            )

    def _fit(
        self,
        data,
        count,
        weights,
        variance,
        bootstrap_type,
        replicates,
        seed,
        workers,
        interval,
        bootstrap_penalty,
    ):
        if bootstrap_penalty == "none":
            bootstrap_penalty = None
        if variance not in VARIANCE_METHODS:
            raise ConfigError(
                f"unknown variance {variance!r} (analytic or bootstrap)", key="variance"
            )
        if interval is not None and interval not in INTERVALS:
            raise ConfigError(
                f"unknown interval {interval!r} ({', '.join(INTERVALS)})", key="interval"
            )
        if interval == "bootstrap" and variance != "bootstrap":
            raise ConfigError("a bootstrap interval needs variance='bootstrap'", key="interval")
        problem, notes = prepare(
            data,
            family=self.family,
            formula=self.formula,
            count=count,
            weights=weights,
            offset=self.offset,
            reference=self.reference,
            extra_formulas={k: v for k, v in self.extra_formulas.items()},
            strata=self.strata,
            max_count=self.max_count,
        )
        fit = fit_ml(problem, beta0=warm_start(problem), penalty=self.penalty)
        result = self._result(problem, fit, notes)
        result.likelihood_data = self._likelihood_data(read_frame(data), count, weights)
        result.extra["call"] = self._call(count, weights)
        if variance == "bootstrap" and result.estimable:
            reps, info = run_bootstrap(
                problem,
                fit.beta,
                result.population_size,
                kind=bootstrap_type,
                replicates=replicates,
                seed=seed,
                workers=workers,
                penalty=bootstrap_penalty,
            )
            result.bootstrap_replicates = reps
            result.bootstrap_info = info
            result.variance_components["analytic_se"] = result.se
            result.se = info["sd"]
            result.default_interval = "bootstrap"
            result.warnings += bootstrap_warnings(info, reps, result.n_observed, self.absurd_ratio)
        if interval is not None:
            result.default_interval = interval
        return result

    @classmethod
    def fit_frequencies(
        cls, frequencies: Mapping[int, float] | Sequence[float], **fit_options
    ) -> PopulationEstimate:
        """Covariate-free fit from a frequency table: ``{k: f_k}`` or ``[f_1, f_2, …]``."""
        if isinstance(frequencies, Mapping):
            ks, fs = zip(*sorted(frequencies.items()), strict=True)
        else:
            fs = tuple(frequencies)
            ks = tuple(range(1, len(fs) + 1))
        table = pd.DataFrame(
            {"count": np.asarray(ks, dtype=np.int64), "freq": np.asarray(fs, dtype=float)}
        )
        return cls("~ 1").fit(table, count="count", weights="freq", **fit_options)

    # ------------------------------------------------------------------------ internals
    def _call(self, count: str, weights: str | None) -> str:
        """The fit as one line of Python (the summary's "Call")."""
        args = [repr(self.formula)]
        args += [f"{k}_formula={v!r}" for k, v in self.extra_formulas.items() if v != "~ 1"]
        for name in ("reference", "offset", "penalty"):
            if getattr(self, name):
                args.append(f"{name}={getattr(self, name)!r}")
        args.append(f"missing={self.missing!r}")
        if self.merge_sparse_levels:
            args.append(f"merge_sparse_levels={self.merge_sparse_levels}")
        fit = f"count={count!r}" + (f", weights={weights!r}" if weights else "")
        return f"{type(self).__name__}({', '.join(args)}).fit(data, {fit})"

    def _likelihood_data(self, frame: pl.DataFrame, count: str, weights: str | None):
        """The rows and response the log-likelihood covers: every person seen (counts
        ≥ 1), or for Zelterman/Chao the logistic response 1{y = 2} of those seen once or
        twice — so their AIC is not comparable with a count model's."""
        y = pl.col(count)
        weight = pl.col(weights) if weights else pl.lit(1.0)
        if self.family.uses_all_counts:
            used, response, rows = y > 0, f"{count} (zero-truncated)", f"{count} ≥ 1"
        else:
            used = y.is_in([1, 2])
            response, rows = f"{count} = 2 vs 1", f"{count} ∈ {{1, 2}}"
        return likelihood_data(
            frame, used & (weight > 0), response=response, rows=rows, weight=weight
        )

    def _covariance(self, problem: CountProblem, fit: FitResult) -> tuple[np.ndarray, list[str]]:
        warnings: list[str] = []
        q = len(fit.beta)
        a = fit.active
        hess = (
            fit.hessian if self.information == "observed" else expected_hessian(problem, fit.beta)
        )
        cov = np.full((q, q), np.nan)
        info = -hess[np.ix_(a, a)]
        try:
            eig = np.linalg.eigvalsh(info)
            if eig.min() <= 1e-10 * max(1.0, eig.max()):
                warnings.append(
                    "the information matrix is (nearly) singular: some coefficients are not identified, no standard errors"
                )
            else:
                cov[np.ix_(a, a)] = np.linalg.inv(info)
        except np.linalg.LinAlgError:
            warnings.append("the information matrix cannot be inverted: no analytic standard error")
        return cov, warnings

    def _result(
        self, problem: CountProblem, fit: FitResult, notes: dict[str, Any]
    ) -> PopulationEstimate:
        fam = problem.family
        warnings: list[str] = []
        cov, cov_warnings = self._covariance(problem, fit)
        warnings.extend(cov_warnings)
        n_obs = float(problem.w.sum())
        n_hat, grad, var_sampling = population_estimate(problem, fit.beta)
        a = fit.active
        var_est = float(grad[a] @ cov[np.ix_(a, a)] @ grad[a])
        total_var = var_sampling + var_est
        se = (
            float(np.sqrt(total_var)) if np.isfinite(total_var) and total_var >= 0 else float("nan")
        )
        if not np.isfinite(se):
            warnings.append(
                "the analytic variance of N̂ is undefined (not finite or negative): no standard error"
            )

        # ---- coefficients
        ses = np.sqrt(np.clip(np.diag(cov), 0, None))
        ses[~np.isfinite(np.diag(cov))] = np.nan
        coefficients = []
        for i, name in enumerate(problem.names):
            z = fit.beta[i] / ses[i] if ses[i] > 0 else np.nan
            coefficients.append(
                {
                    "term": name,
                    "predictor": problem.predictor_of[i],
                    "estimate": float(fit.beta[i]) if a[i] else float("nan"),
                    "se": float(ses[i]),
                    "z": float(z),
                    "p_value": float(2 * stats.norm.sf(abs(z))) if np.isfinite(z) else float("nan"),
                }
            )

        # ---- fit statistics
        mask = fam.fit_mask(problem.y)
        n_fit = float(np.sum(problem.w * mask))
        k_par = int(a.sum())
        loglik = float(fit.loglik)
        aic = -2 * loglik + 2 * k_par
        bic = -2 * loglik + k_par * np.log(n_fit)
        deviance = self._deviance(problem, fit)

        # ---- honest failure
        if fit.penalty:
            warnings.append(
                f"coefficients are {fit.penalty}-penalised (not ML): finite where ML runs to a boundary; "
                "the variance uses the unpenalised information"
            )
        if not fit.converged:
            warnings.append(
                f"the fit did not converge in {fit.iterations} iterations: estimates are not reliable"
            )
        if not a.all():
            dropped = [problem.names[i] for i in np.where(~a)[0]]
            warnings.append(f"coefficients without data, fixed at 0: {', '.join(dropped)}")
        warnings.extend(self._boundary_warnings(problem, fit))
        if not np.isfinite(n_hat):
            warnings.append(
                "N̂ is not finite: the model runs to a boundary (see the other warnings)"
            )
        elif n_hat > self.absurd_ratio * n_obs:
            warnings.append(
                f"N̂ = {n_hat:,.0f} is {n_hat / n_obs:,.0f} times the observed n = {n_obs:,.0f}: "
                "absurd for this kind of data; the model is not supported by the data"
            )
        if np.isfinite(se) and np.isfinite(n_hat) and se > n_hat - n_obs and n_hat > n_obs:
            warnings.append(
                "the standard error exceeds the estimated number of unobserved: the interval is uninformative"
            )

        # ---- diagnostics
        fitted, gof = frequency_table(problem, fit)
        diagnostics: dict[str, Any] = {
            "goodness_of_fit": gof,
            "iterations": fit.iterations,
            "information": self.information,
            **notes,
        }
        diagnostics["pattern_residuals"] = pattern_residuals(problem, fit.beta)
        diagnostics["pearson_residuals"] = pearson_residual_summary(problem, fit.beta)
        params = fam.parameters(problem.eta_patterns(fit.beta))
        pw = np.bincount(problem.pattern, weights=problem.w, minlength=problem.n_patterns)
        diagnostics["parameters"] = {
            name: {
                "min": float(np.min(v)),
                "max": float(np.max(v)),
                "mean": float(np.sum(pw * v) / pw.sum()),
            }
            for name, v in params.items()
        }
        if self.dfpopsize:
            diagnostics.update(dfpopsize(problem, fit, n_hat, grad, cov))
            worst = diagnostics["dfpopsize_top"][0] if diagnostics["dfpopsize_top"] else None
            plausible = np.isfinite(n_hat) and n_hat <= self.absurd_ratio * n_obs
            if (
                worst is not None
                and plausible
                and abs(worst["dfpopsize"]) > max(n_hat - n_obs, 0.0)
            ):
                where = ", ".join(
                    f"{k}={v}" for k, v in worst.items() if k not in ("dfpopsize", "weight")
                )
                if abs(worst["dfpopsize"]) > self.absurd_ratio * n_obs:
                    effect = (
                        "makes N̂ unbounded (a covariate level is left without repeated captures)"
                    )
                else:
                    effect = f"changes N̂ by {worst['dfpopsize']:,.0f}, more than the estimated number unobserved"
                warnings.append(
                    f"N̂ hinges on single persons: leaving out one person ({where}) {effect}"
                )

        groups = self.strata_groups or [[c] for c in problem.strata_columns]
        strata = strata_table(problem, fit.beta, a, cov, groups) if groups else []
        result = PopulationEstimate(
            param_names=list(problem.names),
            param_values=np.where(a, fit.beta, np.nan),
            param_cov=cov,
            model=fam.name,
            population_size=n_hat,
            se=se,
            n_observed=int(round(n_obs)),
            formula=problem.formula,
            description=fam.description,
            coefficients=coefficients,
            loglik=loglik,
            aic=float(aic),
            bic=float(bic),
            deviance=deviance,
            df_residual=float(n_fit - k_par),
            converged=fit.converged,
            variance_components={
                "sampling": var_sampling,
                "estimation": var_est,
                "information": self.information,
            },
            fitted_frequencies=fitted,
            strata=strata,
            diagnostics=diagnostics,
            warnings=warnings,
            fitted_model=FittedCountModel(problem, fit, cov, self.offset),
            extra={
                "family": fam.name,
                "penalty": fit.penalty,
                "parameterisation": fam.parameterisation,
                "offset": self.offset,
                "reference": self.reference,
                "formulas": {"lambda": problem.formula, **self.extra_formulas},
            },
        )
        if fit.penalty is None and len(problem.X) == 1 and problem.X[0].shape[1] > 1:
            _add_bias_reduced_interval(result, problem, fit, n_obs, self._covariance)
        reason = self._non_estimate(problem, n_hat)
        if reason is not None:
            result.extra["unreliable_population_size"] = n_hat
            result.population_size, result.se = float("nan"), float("nan")
            result.flag_non_estimate(reason)
        return result

    @staticmethod
    def _non_estimate(problem: CountProblem, n_hat: float) -> str | None:
        """Why the data cannot give N̂ at all (a boundary the fit 'converges' to), or None.

        Without anyone seen twice (or, for Zelterman/Chao, anyone with a count of 2) the
        likelihood keeps rising as λ → 0 and N̂ → ∞: the optimizer stops somewhere (all
        counts 1 gave N̂ ≈ 7e17) and the number means nothing.
        """
        fam = problem.family
        repeat = (problem.y == 2) if not fam.uses_all_counts else (problem.y >= 2)
        if not np.any(problem.w[repeat] > 0):
            what = "a count of 2" if not fam.uses_all_counts else "more than one capture"
            return (
                f"no one has {what}, so the data carry no information on how many were "
                "never seen (N̂ runs to infinity)"
            )
        if not np.isfinite(n_hat):
            return "N̂ is not finite: the model runs to a boundary (see the warnings)"
        return None

    def _boundary_warnings(self, problem: CountProblem, fit: FitResult) -> list[str]:
        fam = problem.family
        out = []
        X = problem.X[0]
        repeat = (problem.y == 2) if not fam.uses_all_counts else (problem.y >= 2)
        mask = fam.fit_mask(problem.y)
        W = np.bincount(problem.pattern, weights=problem.w * mask, minlength=problem.n_patterns)
        R = np.bincount(problem.pattern, weights=problem.w * repeat, minlength=problem.n_patterns)
        what = "a count of 2" if not fam.uses_all_counts else "repeated captures"
        if R.sum() == 0:
            out.append(
                f"no one has {what}: the data carry no information on how many were never seen "
                "(N̂ is set by the boundary, not by the data)"
            )
            return out
        q0 = X.shape[1]
        binary = np.all((X == 0) | (X == 1), axis=0) & ~np.all(X == 1, axis=0)
        w1, r1 = X.T @ W, X.T @ R
        for c in np.where(binary & (w1 > 0) & (r1 == 0))[0]:
            if fit.penalty:
                out.append(
                    f"no one with {problem.names[c]} has {what}: its ML coefficient would run to −∞; "
                    "the penalised estimate is finite but rests on the penalty, not on data"
                )
            else:
                out.append(
                    f"no one with {problem.names[c]} has {what}: its coefficient runs to −∞ "
                    "(boundary) and N̂ for this group is unbounded; merge the level or drop the covariate"
                )
        big = np.where(fit.active[:q0] & (np.abs(fit.beta[:q0]) > 10))[0]
        for c in big:
            if not any(problem.names[c] in w for w in out):
                out.append(
                    f"coefficient {problem.names[c]} = {fit.beta[c]:.1f} is diverging "
                    "(near-separation, or another parameter running to a boundary)"
                )
        params = fam.parameters(problem.eta_patterns(fit.beta))
        if "alpha" in params:
            alpha = params["alpha"]
            if np.max(alpha) > 1e3:
                out.append(
                    f"dispersion α = {np.max(alpha):.3g} runs to +∞ (boundary): the negative binomial "
                    "puts almost all mass at zero and N̂ is not identified"
                )
            if np.min(alpha) < 1e-4:
                out.append(
                    f"dispersion α = {np.min(alpha):.3g} runs to 0 (boundary): the negative binomial reduces "
                    "to the Poisson; use ztpoisson"
                )
        if "omega" in params:
            omega = params["omega"]
            if np.min(omega) < 1e-5:
                out.append(
                    "one-inflation ω runs to 0 (boundary): the model reduces to its non-inflated form"
                )
            if np.max(omega) > 1 - 1e-5:
                out.append(
                    "one-inflation ω runs to 1 (boundary): every unit is a one; N̂ is not identified"
                )
        return out

    def _deviance(self, problem: CountProblem, fit: FitResult) -> float | None:
        ll_sat = problem.family.saturated_loglik(problem.y)
        if ll_sat is None:
            return None
        eta = problem.eta_patterns(fit.beta)[problem.pattern]
        ll = problem.family.evaluate(problem.y, eta)[0]
        return float(2 * np.sum(problem.w * (ll_sat - ll)))


# ------------------------------------------------------------------------------ models
class ZeroTruncatedPoisson(CountModel):
    """Zero-truncated Poisson regression (van der Heijden et al. 2003)."""

    family_class = fams.ZTPoisson


class ZeroTruncatedGeometric(CountModel):
    """Zero-truncated geometric regression (unobserved exponential heterogeneity)."""

    family_class = fams.ZTGeometric


class ZeroTruncatedNegativeBinomial(CountModel):
    """Zero-truncated negative binomial; ``alpha_formula`` (default ``~ 1``) for log α."""

    family_class = fams.ZTNegBin


_BASES = {"poisson": fams.ZTPoisson, "geometric": fams.ZTGeometric}


def _base(base: str) -> fams.CountFamily:
    if base not in _BASES:
        raise ConfigError("base must be 'poisson' or 'geometric'", key="base")
    return _BASES[base]()


class OneInflatedZeroTruncated(CountModel):
    """One-inflated *then* zero-truncated model (Godwin & Böhning 2017), ``base`` poisson or
    geometric. N̂ = Σ 1/(1 − (1−ω)·P(0)): the extra ones are part of the population
    model, so fewer people are missed than under :class:`ZeroTruncatedOneInflated`."""

    base = "poisson"

    def __init__(self, formula: str = "~ 1", *, base: str | None = None, **options):
        self.base = base or type(self).base
        super().__init__(formula, **options)

    def _make_family(self) -> fams.CountFamily:
        return fams.OneInflated(_base(self.base))


class ZeroTruncatedOneInflated(CountModel):
    """Zero-truncated *then* one-inflated model: ω·1{y=1} + (1−ω)·f(y|y>0). It fits the
    observed counts as well as :class:`OneInflatedZeroTruncated` but treats the extra ones
    as a behavioural response after the first capture, so N̂ = Σ 1/(1 − P(0)) as in the
    non-inflated model."""

    base = "poisson"

    def __init__(self, formula: str = "~ 1", *, base: str | None = None, **options):
        self.base = base or type(self).base
        super().__init__(formula, **options)

    def _make_family(self) -> fams.CountFamily:
        return fams.OneInflated(_base(self.base), truncate_first=True)


class OneInflatedZeroTruncatedPoisson(OneInflatedZeroTruncated):
    """``oiztpoisson``: one-inflated, then zero-truncated Poisson."""


class ZeroTruncatedOneInflatedPoisson(ZeroTruncatedOneInflated):
    """``ztoipoisson``: zero-truncated, then one-inflated Poisson."""


class OneInflatedZeroTruncatedGeometric(OneInflatedZeroTruncated):
    """``oiztgeom``: one-inflated, then zero-truncated geometric."""

    base = "geometric"


class ZeroTruncatedOneInflatedGeometric(ZeroTruncatedOneInflated):
    """``ztoigeom``: zero-truncated, then one-inflated geometric."""

    base = "geometric"


class Zelterman(CountModel):
    """Zelterman regression (Böhning & van der Heijden 2009): logistic fit on counts 1–2,
    then the Horvitz–Thompson sum over all observed units with λ = 2·exp(xγ)."""

    family_class = fams.ZeltermanFamily


class Chao(CountModel):
    """Generalised Chao lower bound (Böhning et al. 2013): n + Σ_{y∈{1,2}} 1/(λ + λ²/2);
    without covariates n + f1²/(2 f2)."""

    family_class = fams.ChaoFamily


#: model name (``--model``) → its class, one class per name
MODEL_CLASSES: dict[str, type[CountModel]] = {
    "ztpoisson": ZeroTruncatedPoisson,
    "ztgeom": ZeroTruncatedGeometric,
    "ztnegbin": ZeroTruncatedNegativeBinomial,
    "oiztpoisson": OneInflatedZeroTruncatedPoisson,
    "ztoipoisson": ZeroTruncatedOneInflatedPoisson,
    "oiztgeom": OneInflatedZeroTruncatedGeometric,
    "ztoigeom": ZeroTruncatedOneInflatedGeometric,
    "zelterman": Zelterman,
    "chao": Chao,
}


def _add_bias_reduced_interval(
    result: PopulationEstimate, problem: CountProblem, fit: FitResult, n_obs: float, covariance
) -> None:
    """The default interval of a model with covariates: log-normal around N̂ at the Firth
    (bias-reduced) coefficients, with the standard error evaluated there too
    (docs/estimators.md, "Variance and intervals"). The SE of the ML fit is evaluated at
    the upward-biased N̂, where it rises about as fast as (N̂ − n)^2.4 for the ZTP."""
    n_hat = result.population_size
    if not (np.isfinite(n_hat) and np.isfinite(result.se) and n_hat > n_obs):
        return
    reduced = fit_ml(problem, problem.w, fit.beta, penalty="firth")
    if not reduced.converged:
        return
    n_reduced, grad, var_sampling = population_estimate(problem, reduced.beta)
    if not (np.isfinite(n_reduced) and n_reduced > n_obs):
        return
    cov, _ = covariance(problem, reduced)  # the unpenalised information at the Firth point
    a = reduced.active
    var = var_sampling + float(grad[a] @ cov[np.ix_(a, a)] @ grad[a])
    se = float(np.sqrt(var)) if np.isfinite(var) and var > 0 else result.se
    result.extra["population_size_bias_reduced"] = n_reduced
    result.extra["se_bias_reduced"] = se
    result.interval_methods["bias_reduced"] = BiasReducedLognormal(
        n_obs, n_reduced - n_obs, se, n_reduced - n_obs
    )
    result.default_interval = "bias_reduced"
