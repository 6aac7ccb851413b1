"""The persons stage: capture histories, one row per person and period.

``persons.parquet`` is the contract the estimators read. This package builds it from
records and clusters (:func:`build_persons`), writes it with the rules it was built by
(:func:`write_persons`) and reads those rules back (:func:`persons_rules`), so the
pipeline, the uncertainty methods and the reports all build persons the same way.
"""

from recapture.persons.build import (
    CaptureHistoryCounts,
    CaptureHistoryRules,
    Period,
    build_persons,
)
from recapture.persons.store import persons_rules, write_persons

__all__ = [
    "CaptureHistoryCounts",
    "CaptureHistoryRules",
    "Period",
    "build_persons",
    "persons_rules",
    "write_persons",
]
