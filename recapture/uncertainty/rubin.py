"""Rubin's rules: combine estimates fitted on several imputed linkages into one.

Each imputation m gives an estimate Q_m with complete-data variance U_m. The combined
estimate is the mean Q̄; its variance T = Ū + (1 + 1/M)·B adds to the mean within-imputation
variance Ū the between-imputation variance B, which is here the part of the uncertainty
that comes from not knowing the links (Rubin 1987, *Multiple Imputation for Nonresponse
in Surveys*, ch. 3). Degrees of freedom: Rubin (1987) ν = (M − 1)(1 + 1/r)², r the relative
increase in variance, or Barnard & Rubin (1999) when a complete-data df is given.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class RubinCombination:
    """The combined estimate, its variance split, degrees of freedom and interval."""

    estimate: float
    within_var: float
    between_var: float
    total_var: float
    df: float
    lower: float
    upper: float
    level: float
    imputations: int
    #: (1 + 1/M)·B / T: share of the total variance due to the imputed quantity (linkage).
    linkage_variance_share: float
    #: r = (1 + 1/M)·B / Ū, Rubin's relative increase in variance.
    relative_increase: float

    @property
    def se(self) -> float:
        return math.sqrt(self.total_var)

    def to_dict(self) -> dict:
        return asdict(self)


def combine_rubin(
    estimates,
    variances,
    *,
    level: float = 0.95,
    df_complete: float | None = None,
) -> RubinCombination:
    """Combine M point estimates and their variances by Rubin's rules.

    The interval is Q̄ ± t_ν·√T. With ``df_complete`` (the degrees of freedom the analysis
    would have without missing links) the Barnard–Rubin small-sample df is used, which never
    exceeds ``df_complete``; otherwise Rubin's 1987 df. When the imputations agree exactly
    (B = 0) the df is infinite and the interval is the normal one.
    """
    q = np.asarray(estimates, dtype=float)
    u = np.asarray(variances, dtype=float)
    if q.ndim != 1 or q.shape != u.shape:
        raise ValueError("estimates and variances must be 1-d and of equal length")
    m = q.size
    if m < 2:
        raise ValueError("Rubin's rules need at least 2 imputations")
    if not (np.isfinite(q).all() and np.isfinite(u).all()):
        raise ValueError("estimates and variances must be finite")
    qbar = float(q.mean())
    ubar = float(u.mean())
    b = float(q.var(ddof=1))
    inflation = (1.0 + 1.0 / m) * b
    t = ubar + inflation
    r = inflation / ubar if ubar > 0 else math.inf
    lam = inflation / t if t > 0 else 0.0
    if inflation <= 0:
        df = math.inf
    else:
        df = (m - 1) / lam**2
        if df_complete is not None and math.isfinite(df_complete):
            df_obs = (df_complete + 1) / (df_complete + 3) * df_complete * (1 - lam)
            df = 1.0 / (1.0 / df + 1.0 / df_obs)
    crit = stats.norm.ppf(0.5 + level / 2) if math.isinf(df) else stats.t.ppf(0.5 + level / 2, df)
    half = crit * math.sqrt(t)
    return RubinCombination(
        estimate=qbar,
        within_var=ubar,
        between_var=b,
        total_var=t,
        df=df,
        lower=qbar - half,
        upper=qbar + half,
        level=level,
        imputations=m,
        linkage_variance_share=lam,
        relative_increase=r,
    )
