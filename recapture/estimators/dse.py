"""Dual systems estimation: two lists (e.g. police × IOM).

:class:`Petersen` (Lincoln–Petersen, N̂ = n₁n₂/m, the MLE of model Mt) and :class:`Chapman`
(N̂ = (n₁+1)(n₂+1)/(m+1) − 1, nearly unbiased) with their usual variances (Seber 1982;
Chapman's by Seber 1970 / Wittes 1972). With ``strata`` the estimate is summed over covariate
strata, which removes the bias from covariate-driven heterogeneity when capture is independent
within strata; a log-linear model [AX][BX] (:class:`~recapture.estimators.loglinear.LogLinearModel`)
does the same with smoothing across strata.

Independence of the two lists cannot be tested with two lists; :func:`dependence_sensitivity`
reports N̂(θ) for a range of odds ratios θ (Gerritse, van der Heijden & Bakker 2015).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from recapture.errors import InputError
from recapture.estimators.formula import check_names
from recapture.estimators.loglinear import (
    DEFAULT_THETAS,
    capture_table,
    dependence_sensitivity,
    marginal_strata,
)
from recapture.estimators.result import PopulationEstimate, check_level

__all__ = ["Petersen", "Chapman", "dependence_sensitivity", "DEFAULT_THETAS"]


class _TwoList:
    model = ""
    description = ""

    def __init__(
        self,
        strata: Sequence[str] = (),
        *,
        dependence_thetas: Sequence[float] | None = DEFAULT_THETAS,
        level: float = 0.95,
    ):
        self.strata = check_names(strata, "strata")
        self.dependence_thetas = None if dependence_thetas is None else list(dependence_thetas)
        self.level = check_level(level)

    @staticmethod
    def _point(n1: np.ndarray, n2: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def fit(
        self, data: Any, lists: Sequence[str] | None = None, count: str | None = None
    ) -> PopulationEstimate:
        table = capture_table(data, lists=lists, count=count, covariates=self.strata)
        if table.k != 2:
            raise InputError(f"{self.model} needs exactly two lists, got {table.lists}")
        H, y = table.histories, table.counts
        S = table.n_strata
        both = (H[:, 0] == 1) & (H[:, 1] == 1)
        only1 = (H[:, 0] == 1) & (H[:, 1] == 0)
        only2 = (H[:, 0] == 0) & (H[:, 1] == 1)
        m = np.bincount(table.strata[both], y[both], minlength=S)
        n1 = m + np.bincount(table.strata[only1], y[only1], minlength=S)
        n2 = m + np.bincount(table.strata[only2], y[only2], minlength=S)
        warnings = []
        nobs = n1 + n2 - m
        used = nobs > 0
        N_s, var_s = self._point(n1[used], n2[used], m[used])
        reason = None
        if not np.any(m[used] > 0):
            reason = (
                "no person is on both lists, so the lists carry no information on how many "
                "neither saw (N̂ = n₁n₂/m is infinite; Chapman's finite value is an artefact "
                "of its +1 terms)"
            )
        elif self.model == "petersen" and np.any(m[used] == 0):
            reason = (
                "no person is on both lists in some stratum: the Lincoln–Petersen estimate "
                "is infinite there; merge strata or use Chapman"
            )
        elif np.any(m[used] == 0):
            warnings.append(
                "no person is on both lists in some stratum: Chapman's estimate there rests "
                "on its +1 terms, not on data"
            )
        N = float(N_s.sum())
        var = float(var_s.sum())
        res = PopulationEstimate(
            model=self.model,
            population_size=N,
            se=math.sqrt(var) if np.isfinite(var) else math.nan,
            n_observed=int(round(float(nobs.sum()))),
            formula=None,
            description=self.description
            + (f", stratified by {', '.join(self.strata)}" if self.strata else ""),
            warnings=warnings,
            default_interval="lognormal",
        )
        res.extra.update(
            {"lists": list(table.lists), "n1": n1.tolist(), "n2": n2.tolist(), "m": m.tolist()}
        )
        if self.strata:
            N_all = np.zeros(S)
            var_all = np.zeros(S)
            N_all[used], var_all[used] = N_s, var_s
            with np.errstate(invalid="ignore"):  # ∞·0 of a stratum without overlap
                res.strata = marginal_strata(
                    table,
                    nobs.astype(float),
                    N_all,
                    lambda mask: float(var_all @ mask),
                    hidden_given=False,
                )
        elif self.model == "petersen" and m[0] > 0:
            # N̂ is the MLE of model Mt: Rcapture's profile-likelihood interval applies
            from recapture.estimators.closed_population import ClosedPopulationModel

            mt = ClosedPopulationModel("Mt", profile=True, level=self.level).fit(table)
            res.interval_methods["profile"] = mt.interval_methods["profile"]
            res.extra["mt"] = mt.extra
            res.default_interval = "profile"
        if reason is not None:
            res.extra["unreliable_population_size"] = N
            res.population_size, res.se = math.nan, math.nan
            res.flag_non_estimate(reason)
            return res
        if self.dependence_thetas is not None and np.all(m[used] > 0):
            res.extra["dependence_sensitivity"] = dependence_sensitivity(
                table.collapse([]) if not self.strata else table,
                thetas=self.dependence_thetas,
                level=self.level,
            )
        return res


class Petersen(_TwoList):
    """Lincoln–Petersen N̂ = n₁n₂/m with Var = n₁n₂(n₁−m)(n₂−m)/m³."""

    model = "petersen"
    description = "Lincoln–Petersen dual systems estimate"

    @staticmethod
    def _point(n1, n2, m):
        with np.errstate(divide="ignore", invalid="ignore"):
            N = np.where(m > 0, n1 * n2 / np.where(m > 0, m, 1), np.inf)
            var = np.where(
                m > 0, n1 * n2 * (n1 - m) * (n2 - m) / np.where(m > 0, m, 1) ** 3, np.inf
            )
        return N, var


class Chapman(_TwoList):
    """Chapman N̂ = (n₁+1)(n₂+1)/(m+1) − 1 with Var = (n₁+1)(n₂+1)(n₁−m)(n₂−m)/((m+1)²(m+2))."""

    model = "chapman"
    description = "Chapman dual systems estimate"

    @staticmethod
    def _point(n1, n2, m):
        N = (n1 + 1) * (n2 + 1) / (m + 1) - 1
        var = (n1 + 1) * (n2 + 1) * (n1 - m) * (n2 - m) / ((m + 1) ** 2 * (m + 2))
        return N, var
