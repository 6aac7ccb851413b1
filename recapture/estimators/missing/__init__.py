"""Maximum likelihood when a person's covariates are unknown.

A person's covariate is unknown only when every one of their registrations lacks it, so
the chance of being "unknown" falls with each capture: the missingness depends on the
capture history. Fitting on the complete cases therefore over-represents repeat captures
and under-estimates N. Here the unknown values are missing at random *given the capture
history* (MAR), which makes the mechanism ignorable for likelihood inference: the
observed-data likelihood of a person with count y and unknown x is
Σ_x p(x | seen) f(y | x, seen), summed over the patterns consistent with what is known.

* :mod:`~recapture.estimators.missing.count` — single-source count models, EM over the
  aggregated (pattern, count) cells with a saturated model for p(x | seen); variance by
  the missing-information principle (Louis 1982) or a bootstrap with the EM inside.
* :mod:`~recapture.estimators.missing.loglinear` — log-linear DSE/MSE with covariates: the
  covariates become partly classified (missing by design, Zwane & van der Heijden 2007).
"""

from recapture.estimators.missing.count import fit_count_em, unknown_summary
from recapture.estimators.missing.loglinear import fit_loglinear_em

__all__ = ["fit_count_em", "fit_loglinear_em", "unknown_summary"]
