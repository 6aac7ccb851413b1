"""Linkage uncertainty in population-size estimates (docs/linkage-uncertainty.md).

* :func:`multiple_imputation` — draw link configurations from the match probabilities,
  refit any estimator on each, combine by Rubin's rules.
* :func:`ding_fienberg`, :func:`model_corrected_dse`, :func:`review_corrected_dse` —
  analytic two-list DSE corrections (Ding & Fienberg 1994; Di Consiglio & Tuoto 2015)
  with linkage error rates from the Fellegi–Sunter probabilities or a clerical review,
  and a variance that includes their uncertainty.
* :func:`threshold_sensitivity` — N̂ and its interval as the match threshold varies.
* :func:`linkage_aware_estimate` with :class:`UncertaintyOptions` — all of it around a
  plug-in estimate, for the pipeline and the CLI.
"""

from recapture.uncertainty.analytic import (
    DingFienberg,
    ding_fienberg,
    fellegi_sunter_link_counts,
    linkage_corrected_dse,
    model_corrected_dse,
    rates_from_link_counts,
    review_corrected_dse,
)
from recapture.uncertainty.api import (
    RegistryEstimator,
    UncertaintyOptions,
    linkage_aware_estimate,
    period_from_label,
    read_linkage_inputs,
)
from recapture.uncertainty.draws import PairGraph, draw_labels, prepare_pairs, threshold_labels
from recapture.uncertainty.imputation import combine_imputations, multiple_imputation
from recapture.uncertainty.rubin import RubinCombination, combine_rubin
from recapture.uncertainty.sensitivity import (
    attach_threshold_sensitivity,
    threshold_sensitivity,
    threshold_sensitivity_many,
)

__all__ = [
    "DingFienberg",
    "PairGraph",
    "RegistryEstimator",
    "RubinCombination",
    "UncertaintyOptions",
    "attach_threshold_sensitivity",
    "combine_imputations",
    "combine_rubin",
    "ding_fienberg",
    "draw_labels",
    "fellegi_sunter_link_counts",
    "linkage_aware_estimate",
    "linkage_corrected_dse",
    "model_corrected_dse",
    "multiple_imputation",
    "period_from_label",
    "read_linkage_inputs",
    "prepare_pairs",
    "rates_from_link_counts",
    "review_corrected_dse",
    "threshold_labels",
    "threshold_sensitivity",
    "threshold_sensitivity_many",
]
