"""Linkage uncertainty in population-size estimates.

* :func:`multiple_imputation` — draw link configurations from the match probabilities,
  refit any estimator on each, combine by Rubin's rules (docs/linkage-uncertainty.md).
* :func:`ding_fienberg`, :func:`linkage_corrected_dse` — analytic two-list DSE corrections
  (Ding & Fienberg 1994; Di Consiglio & Tuoto 2015) with linkage error rates from the
  Fellegi–Sunter probabilities or a clerical review, and a variance that includes them.
* :func:`threshold_sensitivity` — N̂ and its interval as the match threshold varies.
"""

from recapture.uncertainty.draws import PairGraph, draw_labels, prepare_pairs, threshold_labels
from recapture.uncertainty.imputation import combine_imputations, multiple_imputation
from recapture.uncertainty.rubin import RubinCombination, combine_rubin

__all__ = [
    "PairGraph",
    "RubinCombination",
    "combine_imputations",
    "combine_rubin",
    "draw_labels",
    "multiple_imputation",
    "prepare_pairs",
    "threshold_labels",
]
