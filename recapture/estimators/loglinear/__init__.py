"""Dual and multiple systems estimation: Poisson log-linear models on capture-history tables.

Persons appear in k ≥ 2 sources (lists). The table of capture histories (2^k − 1 observable
cells per covariate stratum) is modelled as Poisson with a log-linear model of main effects
and hierarchical interactions; the fitted model predicts the all-zero cell(s), and
N̂ = n + Σ predicted hidden counts. Sparse tables are checked before anything is reported:
empty overlaps in the model are treated as parameters at −∞ (cells removed, as SparseMSE
does), the existence of the MLE is tested with the linear program of Fienberg & Rinaldo
(2012) and identifiability by the rank of the design.

Modules, in the order of a fit:

- :mod:`.tables` — :class:`CaptureTable` and :func:`capture_table` (persons or counts → cells);
- :mod:`.terms` — the model language (:func:`parse_terms`), the design and its preparation;
- :mod:`.fit` — Poisson IRLS, EM for partly classified counts, existence and rank checks;
- :mod:`.intervals` — profile likelihood, parametric bootstrap, log-normal dark figure;
- :mod:`.model` — :class:`LogLinearModel`, :class:`FitOptions` and :func:`fit_terms` (the
  interface the two-list, closed-population and search estimators use), dependence sensitivity;
- :mod:`.search` — stepwise, exhaustive and SparseMSE model search.
"""

from recapture.estimators.loglinear.fit import CellFit, PoissonFit, fit_poisson
from recapture.estimators.loglinear.intervals import cormack_profile_loglik, profile_interval
from recapture.estimators.loglinear.model import (
    DEFAULT_THETAS,
    FitOptions,
    LogLinearModel,
    dependence_sensitivity,
    fit_loglinear,
    fit_terms,
    marginal_strata,
)
from recapture.estimators.loglinear.tables import CaptureTable, all_histories, capture_table
from recapture.estimators.loglinear.terms import (
    HETEROGENEITY,
    Term,
    check_model,
    generating_class,
    heterogeneity_columns,
    parse_terms,
    term_name,
)

__all__ = [
    "DEFAULT_THETAS",
    "HETEROGENEITY",
    "CaptureTable",
    "CellFit",
    "FitOptions",
    "LogLinearModel",
    "PoissonFit",
    "Term",
    "all_histories",
    "capture_table",
    "check_model",
    "cormack_profile_loglik",
    "dependence_sensitivity",
    "fit_loglinear",
    "fit_poisson",
    "fit_terms",
    "generating_class",
    "heterogeneity_columns",
    "marginal_strata",
    "parse_terms",
    "profile_interval",
    "term_name",
]
