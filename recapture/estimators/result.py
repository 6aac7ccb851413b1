"""The result type shared by every population-size estimator.

Models are separate from results (as in statsmodels): ``Model(...).fit(data)`` returns a
:class:`PopulationEstimate`, whatever the estimator, so reports, the pipeline and the
linkage-uncertainty layer treat all estimators alike.
"""

from __future__ import annotations

import hashlib
import math
import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
from scipy import stats

from recapture.errors import ConfigError

#: hidden column carrying each input row's identity through merging and filtering
ROW_KEY = "__row_key__"


@dataclass
class PopulationEstimate:
    """A fitted population-size estimate.

    ``population_size`` is N̂ (observed plus estimated unobserved), ``se`` its standard
    error. ``warnings`` holds every problem the fit noticed (non-convergence, boundary
    estimates, an N̂ absurd relative to n); they are printed by :meth:`summary`.
    """

    model: str
    population_size: float
    se: float
    n_observed: int
    formula: str | None = None
    description: str = ""
    coefficients: list[dict[str, Any]] = field(default_factory=list)
    loglik: float | None = None
    aic: float | None = None
    bic: float | None = None
    deviance: float | None = None
    df_residual: float | None = None
    converged: bool = True
    variance_components: dict[str, float] = field(default_factory=dict)
    fitted_frequencies: list[dict[str, Any]] = field(default_factory=list)
    strata: list[dict[str, Any]] = field(default_factory=list)
    diagnostics: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    bootstrap_replicates: np.ndarray | None = None
    bootstrap_info: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    #: what the log-likelihood is a likelihood of: ``response``, ``rows`` (in words), ``n``
    #: and ``key`` (a digest of the rows used); AIC/BIC compare only equal tags
    likelihood_data: dict[str, Any] | None = None
    #: what predictions and new strata need (count models: the fitted problem), or None
    fitted_model: Any = field(default=None, repr=False, compare=False)
    default_interval: str = "normal"
    #: why this result is not an estimate (None when it is one): no information in the data
    #: on the unseen (no repeated captures, no overlap), a boundary, a non-existent MLE …
    non_estimate: str | None = None
    #: method name → callable(level) → (lower, upper); set by models with special intervals
    interval_methods: dict[str, Callable[[float], tuple[float, float]]] = field(
        default_factory=dict, repr=False
    )
    #: the model's coefficient vector (NaN where not estimable), named by term, and its
    #: covariance; read them through ``params``, ``bse``, ``cov_params()`` …
    param_names: list[str] = field(default_factory=list)
    param_values: np.ndarray | None = field(default=None, repr=False)
    param_cov: np.ndarray | None = field(default=None, repr=False)

    # -------------------------------------------------------------------- coefficients
    def _param_arrays(self) -> tuple[list[str], np.ndarray, np.ndarray]:
        if self.param_values is not None:
            values = np.asarray(self.param_values, dtype=float)
            cov = (
                np.asarray(self.param_cov, dtype=float)
                if self.param_cov is not None
                else np.full((len(values), len(values)), np.nan)
            )
            return list(self.param_names), values, cov
        # estimators without a covariance matrix: the reported coefficients, variances only
        names = [str(c["term"]) for c in self.coefficients]
        values = np.array([_num(c.get("estimate")) for c in self.coefficients], dtype=float)
        se = np.array([_num(c.get("se")) for c in self.coefficients], dtype=float)
        cov = np.diag(se**2) if len(se) else np.zeros((0, 0))
        cov[~np.eye(len(se), dtype=bool)] = np.nan
        return names, values, cov

    @property
    def params(self) -> pd.Series:
        """Coefficients named by term (``Intercept``, ``var[T.level]``, ``a:b``)."""
        names, values, _ = self._param_arrays()
        return pd.Series(values, index=pd.Index(names, name="term"), name="params")

    def cov_params(self) -> pd.DataFrame:
        """Covariance matrix of the coefficients (NaN for those not estimable)."""
        names, _, cov = self._param_arrays()
        index = pd.Index(names, name="term")
        return pd.DataFrame(cov, index=index, columns=index)

    @property
    def bse(self) -> pd.Series:
        """Standard errors of the coefficients."""
        names, _, cov = self._param_arrays()
        with np.errstate(invalid="ignore"):
            se = np.sqrt(np.where(np.diag(cov) >= 0, np.diag(cov), np.nan))
        return pd.Series(se, index=pd.Index(names, name="term"), name="bse")

    @property
    def tvalues(self) -> pd.Series:
        """Wald z statistics (the models are likelihood-based: z, not t)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            z = self.params / self.bse
        return z.rename("z")

    zvalues = tvalues

    @property
    def pvalues(self) -> pd.Series:
        """Two-sided p-values of the Wald z statistics."""
        z = self.tvalues.to_numpy()
        p = 2 * stats.norm.sf(np.abs(z))
        return pd.Series(p, index=self.params.index, name="pvalues")

    def conf_int(self, alpha: float = 0.05) -> pd.DataFrame:
        """Wald intervals for the coefficients at level 1 − alpha (columns 0 and 1)."""
        if not 0 < alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
        z = stats.norm.ppf(1 - alpha / 2)
        b, se = self.params, self.bse
        return pd.DataFrame({0: b - z * se, 1: b + z * se})

    # -------------------------------------------------------------------- pickling
    def __getstate__(self) -> dict[str, Any]:
        """Interval methods that are closures (profile likelihood, multiple imputation) do not
        pickle: they are replaced by the intervals they give at the levels computed so far
        (and at 95%)."""
        state = dict(self.__dict__)
        methods = {}
        for name, fn in self.interval_methods.items():
            try:
                pickle.dumps(fn)
                methods[name] = fn
            except Exception:
                levels = {0.95} | {float(k) for k in self.extra.get(name, {}) if _is_float(k)}
                methods[name] = StoredInterval.of(fn, sorted(levels))
        state["interval_methods"] = methods
        return state

    # -------------------------------------------------------------------- intervals
    @property
    def estimable(self) -> bool:
        """False for a flagged non-estimate (see ``non_estimate``)."""
        return self.non_estimate is None

    @property
    def observed_share(self) -> float:
        return self.n_observed / self.population_size if self.population_size > 0 else math.nan

    @property
    def dark_figure(self) -> float:
        """Estimated number of people never observed, N̂ − n."""
        return self.population_size - self.n_observed

    def confint(self, method: str | None = None, level: float = 0.95) -> tuple[float, float]:
        """Interval for N at ``level`` (in (0, 1)); never below the observed n.

        Methods: ``normal`` (N̂ ± z·SE), ``lognormal`` (Chao 1987: log-normal on the dark
        figure N̂ − n), ``bootstrap`` (percentile of the stored replicates), and whatever the
        model adds (e.g. ``profile``). An interval that is undefined — a non-estimate, no
        standard error — raises ValueError saying why; ``to_dict`` reports it as an error.
        """
        check_level(level)
        method = method or self.default_interval
        if self.non_estimate is not None:
            raise ValueError(f"no interval: not an estimate ({self.non_estimate})")
        z = stats.norm.ppf(0.5 + level / 2)
        n = float(self.n_observed)
        if method in ("normal", "lognormal") and not (
            np.isfinite(self.se) and np.isfinite(self.population_size)
        ):
            raise ValueError(
                f"no {method} interval: the standard error of N̂ is undefined (see the warnings)"
            )
        if method == "normal":
            lo, hi = self.population_size - z * self.se, self.population_size + z * self.se
        elif method == "lognormal":
            f0 = self.dark_figure
            if f0 <= 0:
                return (n, n)  # nobody unseen: N̂ = n, and N ≥ n
            c = math.exp(z * math.sqrt(math.log1p(self.se**2 / f0**2)))
            lo, hi = n + f0 / c, n + f0 * c
        elif method == "bootstrap":
            if self.bootstrap_replicates is None or len(self.bootstrap_replicates) == 0:
                raise ValueError("no bootstrap replicates: fit with a bootstrap variance first")
            reps = np.asarray(self.bootstrap_replicates, dtype=float)
            reps = reps[np.isfinite(reps)]
            if len(reps) == 0:
                raise ValueError(
                    "no finite bootstrap replicate: the percentile interval is undefined"
                )
            alpha = (1 - level) / 2
            lo, hi = (float(q) for q in np.quantile(reps, [alpha, 1 - alpha]))
        elif method in self.interval_methods:
            lo, hi = self.interval_methods[method](level)
        else:
            known = ["normal", "lognormal", "bootstrap", *self.interval_methods]
            raise ValueError(f"unknown interval method {method!r}; known: {', '.join(known)}")
        # N is at least the number of people seen: no interval goes below n
        return (max(float(lo), n), max(float(hi), n))

    def available_intervals(self) -> list[str]:
        methods = ["normal", "lognormal"]
        if self.bootstrap_replicates is not None and len(self.bootstrap_replicates):
            methods.append("bootstrap")
        methods.extend(m for m in self.interval_methods if m not in methods)
        return methods

    # -------------------------------------------------------------------- output
    def to_dict(self, level: float = 0.95) -> dict[str, Any]:
        """The estimate as plain JSON-able data; every non-finite number becomes None (never
        NaN or Infinity in JSON), and a non-estimate has a null N̂ and SE."""
        check_level(level)
        intervals = {}
        for method in self.available_intervals():
            try:
                lo, hi = self.confint(method, level)
                intervals[method] = {"lower": lo, "upper": hi, "level": level}
            except Exception as exc:  # an interval that cannot be computed is reported, not fatal
                intervals[method] = {"error": str(exc)}
        estimable = self.non_estimate is None
        out = {
            "model": self.model,
            "description": self.description,
            "formula": self.formula,
            "population_size": self.population_size if estimable else None,
            "se": self.se if estimable else None,
            "n_observed": self.n_observed,
            "observed_share": self.observed_share if estimable else None,
            "non_estimate": self.non_estimate,
            "default_interval": self.default_interval,
            "intervals": intervals,
            "coefficients": self.coefficients,
            "loglik": self.loglik,
            "aic": self.aic,
            "bic": self.bic,
            "deviance": self.deviance,
            "df_residual": self.df_residual,
            "converged": self.converged,
            "variance_components": self.variance_components,
            "fitted_frequencies": self.fitted_frequencies,
            "strata": self.strata,
            "diagnostics": self.diagnostics,
            "warnings": self.warnings,
            "bootstrap": self.bootstrap_info or None,
            "likelihood_data": self.likelihood_data,
            "extra": self.extra,
        }
        return _finite_or_none(out)

    # -------------------------------------------------------------------- tables
    def coefficients_table(self) -> pd.DataFrame:
        """Coefficients as a frame indexed by term (``Intercept``, ``var[T.level]``,
        ``a:b``; a second predictor's terms prefixed ``omega:``/``alpha:``): estimate, SE,
        z, p-value and, where the model has several, the linear predictor."""
        rows = []
        for c in self.coefficients:
            est, se = _number(c.get("estimate")), _number(c.get("se"))
            z = _number(c.get("z")) if c.get("z") is not None else (est / se if se else math.nan)
            p = c.get("p_value")
            p = _number(p) if p is not None else float(2 * stats.norm.sf(abs(z)))
            rows.append(
                {
                    "term": str(c["term"]),
                    "predictor": c.get("predictor", "lambda"),
                    "estimate": est,
                    "se": se,
                    "z": z,
                    "p_value": p,
                }
            )
        columns = ["term", "predictor", "estimate", "se", "z", "p_value"]
        return pd.DataFrame(rows, columns=columns).set_index("term")

    def strata_table(self) -> pd.DataFrame:
        """N̂ by stratum: one row per (variable, level) with observed n, N̂, SE, intervals."""
        frame = pd.DataFrame(self.strata)
        return frame.set_index(["variable", "level"]) if len(frame) else frame

    def frequencies_table(self) -> pd.DataFrame:
        """Observed and fitted frequencies (per count k, or per capture history)."""
        return pd.DataFrame(self.fitted_frequencies)

    def predict(self, data: Any = None) -> pd.DataFrame:
        """λ (and ω, α) and P(seen) per covariate pattern — with the observed persons and
        their N̂ contribution — or per row of ``data``. Count models only."""
        if self.fitted_model is None or not hasattr(self.fitted_model, "predict"):
            raise ValueError(f"{self.model}: no per-person predictions for this estimator")
        return self.fitted_model.predict(data)

    def stratify(self, strata: str | list[str], level: float = 0.95) -> pd.DataFrame:
        """N̂ by the levels of ``strata``: a formula of columns joined by ':' and '+'
        (``"~ sex:age_class + region"``) or a list of such names; each group's levels add
        up to N̂ (singleRcapture's ``stratifyPopsize``). Count models only."""
        if self.fitted_model is None or not hasattr(self.fitted_model, "stratify"):
            raise ValueError(f"{self.model}: stratify needs a count model's fit")
        frame = pd.DataFrame(self.fitted_model.stratify(strata, level))
        return frame.set_index(["variable", "level"]) if len(frame) else frame

    # -------------------------------------------------------------------- summary
    def summary(self, level: float = 0.95) -> str:
        """A printed summary as singleRcapture's: call, coefficients with SE, z and
        p-values, fit statistics, goodness of fit, N̂ with both intervals, strata."""
        check_level(level)
        pct = int(round(level * 100))
        head = f"{self.description or self.model}" + (f"  [{self.formula}]" if self.formula else "")
        lines = [head]
        if self.non_estimate is not None:
            lines.append(f"NOT AN ESTIMATE: {self.non_estimate}")
        call = self.extra.get("call")
        if call:
            lines.append(f"Call: {call}")
        resid = self.diagnostics.get("pearson_residuals") or {}
        if resid:
            keys = ("min", "q1", "median", "mean", "q3", "max")
            lines += ["", "Pearson residuals (over persons):"]
            lines.append(
                "  "
                + "".join(
                    f"{k:>11}" for k in ("Min.", "1st Qu.", "Median", "Mean", "3rd Qu.", "Max.")
                )
            )
            lines.append("  " + "".join(f"{resid[k]:>11.6f}" for k in keys))
        coefs = self.coefficients_table()
        if len(coefs):
            lines += ["", "Coefficients:"]
            several = coefs["predictor"].nunique() > 1
            width = max(24, *(len(t) for t in coefs.index))
            for predictor, block in coefs.groupby("predictor", sort=False):
                if several:
                    lines.append(f"  for the linear predictor of {predictor}:")
                lines.append(
                    f"  {'':<{width}} {'Estimate':>10} {'Std. Error':>11} {'z value':>8} {'P(>|z|)':>10}"
                )
                for term, r in block.iterrows():
                    lines.append(
                        f"  {term:<{width}} {r['estimate']:>10.4f} {r['se']:>11.4f} "
                        f"{r['z']:>8.3f} {_p(r['p_value']):>10}"
                    )
        fit_lines = []
        if self.loglik is not None:
            df = f" on {self.df_residual:,.0f} degrees of freedom" if self.df_residual else ""
            fit_lines.append(f"  log-likelihood {self.loglik:.4f}{df}")
        if self.aic is not None:
            fit_lines.append(f"  AIC {self.aic:.3f}   BIC {self.bic:.3f}")
        if self.deviance is not None:
            fit_lines.append(f"  residual deviance {self.deviance:.3f}")
        if self.diagnostics.get("iterations") is not None:
            fit_lines.append(f"  iterations {self.diagnostics['iterations']}")
        if self.likelihood_data:
            ld = self.likelihood_data
            fit_lines.append(
                f"  likelihood of {ld['response']} over {ld['rows']} (n = {ld['n']:,.0f})"
            )
        gof = self.diagnostics.get("goodness_of_fit") or {}
        if gof.get("groups"):
            cells = " ".join(str(g["k"]) for g in gof["groups"])
            for name, stat, p in (
                ("chi-squared", gof.get("chi2"), gof.get("p_value")),
                ("G", gof.get("g"), gof.get("g_p_value")),
            ):
                if stat is not None:
                    fit_lines.append(
                        f"  {name + ' test':<18} {stat:>9.2f}  df {gof['df']}  p {_p(p)}  (cells {cells})"
                    )
        if fit_lines:
            lines += ["", "Fit:", *fit_lines]
        lines += [
            "",
            "Population size:",
            f"  point estimate    {self.population_size:>14,.2f}",
            f"  standard error    {self.se:>14,.2f}",
            f"  observed n        {self.n_observed:>14,d}  ({self.observed_share:.1%} of N̂)",
            f"  {pct}% intervals:",
        ]
        shares = []
        for method in self.available_intervals():
            try:
                lo, hi = self.confint(method, level)
                mark = "  (default)" if method == self.default_interval else ""
                lines.append(f"    {method:<12} {lo:>14,.2f} {hi:>14,.2f}{mark}")
                if lo > 0 and hi > 0:
                    n = self.n_observed
                    shares.append(f"    {method:<12} {100 * n / hi:>13.2f}% {100 * n / lo:>13.2f}%")
            except Exception as exc:  # an interval that cannot be computed is shown as such
                lines.append(f"    {method:<12} not available: {exc}")
        if shares:
            lines += [f"  {pct}% intervals for the observed share n/N:", *shares]
        if self.strata:
            lines += ["", "By stratum (observed n, N̂, SE, 95% log-normal interval):"]
            for r in self.strata:
                label = f"{r['variable']}={r['level']}"
                lo, hi = r.get("lognormal_lower"), r.get("lognormal_upper")
                iv = f"  {lo:,.1f} – {hi:,.1f}" if lo is not None else ""
                lines.append(
                    f"  {label:<36} n {_number(r.get('observed')):>10,.1f}  N̂ {r['population_size']:>12,.1f}"
                    f"  SE {_number(r.get('se')):>10,.1f}{iv}"
                )
        if self.warnings:
            lines.append("")
        for warning in self.warnings:
            lines.append(f"WARNING: {warning}")
        return "\n".join(lines)

    def flag_non_estimate(self, reason: str) -> None:
        """Mark this result as not an estimate, for ``reason`` (kept first in the warnings,
        which every report shows)."""
        self.non_estimate = reason
        self.warnings[:] = [w for w in self.warnings if w not in reason]
        self.warnings.insert(0, f"not an estimate: {reason}")
        for row in self.strata:  # nor are its breakdowns: only what was observed stays
            for key in row:
                if key not in ("variable", "level", "observed"):
                    row[key] = math.nan

    def __str__(self) -> str:
        return self.summary()


class StoredInterval:
    """An interval method reduced to its values at some levels (what survives pickling)."""

    def __init__(self, values: dict[float, tuple[float, float] | str]):
        self.values = values

    @classmethod
    def of(cls, fn: Callable[[float], tuple[float, float]], levels: list[float]) -> StoredInterval:
        values: dict[float, tuple[float, float] | str] = {}
        for level in levels:
            try:
                values[level] = tuple(fn(level))  # type: ignore[assignment]
            except Exception as exc:  # kept as the error it was
                values[level] = str(exc)
        return cls(values)

    def __call__(self, level: float) -> tuple[float, float]:
        value = self.values.get(float(level))
        if value is None:
            raise ValueError(
                f"interval at level {level} was not computed before the estimate was stored; "
                f"stored levels: {', '.join(map(str, self.values))}"
            )
        if isinstance(value, str):
            raise ValueError(value)
        return value


def _num(value: Any) -> float:
    return float(value) if value is not None else math.nan


def _is_float(text: Any) -> bool:
    try:
        float(text)
        return True
    except (TypeError, ValueError):
        return False


def check_level(level: Any, key: str = "level") -> float:
    """An interval level must be a number strictly between 0 and 1."""
    try:
        value = float(level)
    except (TypeError, ValueError):
        raise ConfigError(f"level must be a number in (0, 1), got {level!r}", key=key) from None
    if not 0 < value < 1:
        raise ConfigError(f"level must be in (0, 1), got {level!r}", key=key)
    return value


def _finite_or_none(value: Any) -> Any:
    """Nested data with every NaN/±inf float replaced by None (JSON has neither)."""
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite_or_none(v) for v in value]
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.ndarray):
        return _finite_or_none(value.tolist())
    return value


# ------------------------------------------------------------------------ likelihood data
def row_key(frame: pl.DataFrame) -> pl.Series:
    """Each row's identity: a hash of the whole input row, kept as rows are filtered and
    levels merged, so fits on the same persons can be recognised as such."""
    if ROW_KEY in frame.columns:
        return frame[ROW_KEY]
    return frame.hash_rows(seed=0).alias(ROW_KEY)


def likelihood_data(
    frame: pl.DataFrame, used: pl.Expr, *, response: str, rows: str, weight: pl.Expr | None = None
) -> dict[str, Any]:
    """The tag of what a log-likelihood covers: the response, the rows (in words), their
    weighted number and a digest of exactly which rows (order-free)."""
    weight = weight if weight is not None else pl.lit(1.0)
    sel = frame.select(
        row_key(frame).alias("key"), weight.cast(pl.Float64).alias("w"), used.alias("used")
    )
    sel = sel.filter(pl.col("used")).sort("key", "w")
    digest = hashlib.sha256(response.encode())
    digest.update(sel["key"].to_numpy().tobytes())
    digest.update(sel["w"].to_numpy().tobytes())
    return {
        "response": response,
        "rows": rows,
        "n": float(sel["w"].sum()),
        "key": digest.hexdigest()[:16],
    }


def same_likelihood_data(a: Any, b: Any) -> bool:
    """Whether two estimates' (or their dicts') log-likelihoods are of the same data, so
    that their AIC and BIC may be compared."""

    def tag(x: Any) -> Any:
        return x.likelihood_data if isinstance(x, PopulationEstimate) else x.get("likelihood_data")

    ta, tb = tag(a), tag(b)
    return bool(ta and tb and ta.get("key") == tb.get("key"))


def _number(value: Any) -> float:
    try:
        return float(value) if value is not None else math.nan
    except (TypeError, ValueError):
        return math.nan


def _p(p: Any) -> str:
    p = _number(p)
    if not math.isfinite(p):
        return "–"
    return "< 2e-16" if p < 2e-16 else f"{p:.3g}"


class BiasReducedLognormal:
    """Chao's (1987) log-normal interval for the dark figure, centred on a bias-reduced
    hidden count with the coefficient of variation ``se / hidden`` (picklable).

    The ML N̂ of a model with sparse covariate strata or patterns is biased upwards (a sum
    of convex functions of the coefficients: ratios of small counts in a stratified DSE,
    1/P(x) in a count model), and an interval centred on it holds the truth too rarely
    (DSE) or, with an SE evaluated at the same inflated N̂, too often (ZTP). The centre here
    is the hidden count at the bias-reduced (Firth 1993) coefficients; ``se`` the standard
    error of ``hidden``, both taken at the Firth coefficients by the callers (the SE grows
    with N̂, so the ML SE is too large for the reduced centre); a rule that adds variance,
    such as the EM's missing information, widens it.
    """

    def __init__(self, n: float, hidden: float, se: float, hidden_reduced: float):
        self.n, self.hidden, self.se, self.hidden_reduced = n, hidden, se, hidden_reduced

    def __call__(self, level: float) -> tuple[float, float]:
        if not (
            self.hidden > 0
            and self.hidden_reduced > 0
            and np.isfinite(self.se)
            and np.isfinite(self.hidden_reduced)
        ):
            raise ValueError("no bias-reduced interval: no hidden count or no standard error")
        z = stats.norm.ppf(0.5 + level / 2)
        c = math.exp(z * math.sqrt(math.log1p(self.se**2 / self.hidden**2)))
        return self.n + self.hidden_reduced / c, self.n + self.hidden_reduced * c
