"""Single-source estimators: zero-truncated count regression with a Horvitz–Thompson N̂.

- :mod:`.families` — the count distributions as objects that own their likelihood, its
  derivatives, the saturated likelihood of the deviance and P(observed); one-inflation is a
  wrapper around a base family;
- :mod:`.problem` — validation and aggregation of the data into a :class:`CountProblem`;
- :mod:`.fit` — Newton–Raphson maximum likelihood (optionally Firth or ridge penalised);
- :mod:`.bootstrap` — parametric, semi- and nonparametric bootstrap;
- :mod:`.models` — one model class per estimator name, each returning a
  :class:`~recapture.estimators.result.PopulationEstimate`.
"""

from recapture.estimators.count.models import (
    MODEL_CLASSES,
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

__all__ = [
    "MODEL_CLASSES",
    "Chao",
    "CountModel",
    "OneInflatedZeroTruncated",
    "OneInflatedZeroTruncatedGeometric",
    "OneInflatedZeroTruncatedPoisson",
    "Zelterman",
    "ZeroTruncatedGeometric",
    "ZeroTruncatedNegativeBinomial",
    "ZeroTruncatedOneInflated",
    "ZeroTruncatedOneInflatedGeometric",
    "ZeroTruncatedOneInflatedPoisson",
    "ZeroTruncatedPoisson",
]
