"""The result type shared by every population-size estimator.

Models are separate from results (as in statsmodels): ``Model(...).fit(data)`` returns a
:class:`PopulationEstimate`, whatever the estimator, so reports, the pipeline and the
linkage-uncertainty layer treat all estimators alike.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
from scipy import stats

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
    default_interval: str = "normal"
    #: method name → callable(level) → (lower, upper); set by models with special intervals
    interval_methods: dict[str, Callable[[float], tuple[float, float]]] = field(
        default_factory=dict, repr=False
    )

    # -------------------------------------------------------------------- intervals
    @property
    def observed_share(self) -> float:
        return self.n_observed / self.population_size if self.population_size > 0 else math.nan

    @property
    def dark_figure(self) -> float:
        """Estimated number of people never observed, N̂ − n."""
        return self.population_size - self.n_observed

    def confint(self, method: str | None = None, level: float = 0.95) -> tuple[float, float]:
        """Interval for N at ``level``.

        Methods: ``normal`` (N̂ ± z·SE), ``lognormal`` (Chao 1987: log-normal on the dark
        figure N̂ − n, never below n), ``bootstrap`` (percentile of the stored replicates),
        and whatever the model adds (e.g. ``profile``).
        """
        method = method or self.default_interval
        z = stats.norm.ppf(0.5 + level / 2)
        if method == "normal":
            return (self.population_size - z * self.se, self.population_size + z * self.se)
        if method == "lognormal":
            f0 = self.dark_figure
            if f0 <= 0 or not np.isfinite(self.se):
                return (float(self.n_observed), float(self.n_observed))
            c = math.exp(z * math.sqrt(math.log1p(self.se**2 / f0**2)))
            return (self.n_observed + f0 / c, self.n_observed + f0 * c)
        if method == "bootstrap":
            if self.bootstrap_replicates is None or len(self.bootstrap_replicates) == 0:
                raise ValueError("no bootstrap replicates: fit with a bootstrap variance first")
            reps = np.asarray(self.bootstrap_replicates, dtype=float)
            reps = reps[np.isfinite(reps)]
            alpha = (1 - level) / 2
            lo, hi = np.quantile(reps, [alpha, 1 - alpha])
            return (float(lo), float(hi))
        if method in self.interval_methods:
            return self.interval_methods[method](level)
        known = ["normal", "lognormal", "bootstrap", *self.interval_methods]
        raise ValueError(f"unknown interval method {method!r}; known: {', '.join(known)}")

    def available_intervals(self) -> list[str]:
        methods = ["normal", "lognormal"]
        if self.bootstrap_replicates is not None and len(self.bootstrap_replicates):
            methods.append("bootstrap")
        methods.extend(m for m in self.interval_methods if m not in methods)
        return methods

    # -------------------------------------------------------------------- output
    def to_dict(self, level: float = 0.95) -> dict[str, Any]:
        intervals = {}
        for method in self.available_intervals():
            try:
                lo, hi = self.confint(method, level)
                intervals[method] = {"lower": lo, "upper": hi, "level": level}
            except Exception as exc:  # an interval that cannot be computed is reported, not fatal
                intervals[method] = {"error": str(exc)}
        out = {
            "model": self.model,
            "description": self.description,
            "formula": self.formula,
            "population_size": self.population_size,
            "se": self.se,
            "n_observed": self.n_observed,
            "observed_share": self.observed_share,
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
        return out

    def summary(self, level: float = 0.95) -> str:
        lo, hi = self.confint(None, level)
        lines = [
            f"{self.description or self.model}" + (f"  [{self.formula}]" if self.formula else ""),
            f"  observed n        {self.n_observed:>14,d}",
            f"  population size   {self.population_size:>14,.2f}",
            f"  standard error    {self.se:>14,.2f}",
            f"  {int(level * 100)}% interval ({self.default_interval})  {lo:,.1f} – {hi:,.1f}",
            f"  observed share    {self.observed_share:>14.3f}",
        ]
        if self.loglik is not None:
            lines.append(f"  log-likelihood    {self.loglik:>14.3f}")
        if self.aic is not None:
            lines.append(f"  AIC / BIC         {self.aic:>14.3f} / {self.bic:.3f}")
        if self.coefficients:
            lines.append("  coefficients:")
            for row in self.coefficients:
                se = row.get("se")
                se_txt = f"  (SE {se:.5f})" if se is not None and np.isfinite(se) else ""
                lines.append(f"    {row['term']:<32} {row['estimate']:>12.5f}{se_txt}")
        for warning in self.warnings:
            lines.append(f"  WARNING: {warning}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


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
