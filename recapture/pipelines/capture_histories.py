"""Moved to :mod:`recapture.persons`; kept so existing imports keep working."""

from recapture.persons.build import (  # noqa: F401
    CaptureHistoryCounts,
    CaptureHistoryRules,
    Period,
    build_persons,
)
