"""Record linkage: block → compare → Fellegi–Sunter (EM on pattern counts) → score → cluster.

Public API::

    from recapture.linkage import LinkageSettings, link_records, write_linkage
    result = link_records(records, LinkageSettings.default())
    write_linkage(result, "out/")

Engines that compare pairs elsewhere (e.g. on Arrow batches in Spark executors) call
``compare_batch(settings, prepared, batch)`` and ``score_batch(model, levels)``, exactly as
the local engine does. See docs/linkage.md for the model, the blocking rules, comparison levels and settings.
"""

from recapture.linkage.comparisons import PreparedRecords, compare_batch
from recapture.linkage.engine import LinkageResult, link_records, read_linkage_model, write_linkage
from recapture.linkage.kinds import ComparisonKind, register_kind
from recapture.linkage.model import score_batch
from recapture.linkage.settings import BlockingRule, Comparison, LinkageSettings

__all__ = [
    "BlockingRule",
    "Comparison",
    "ComparisonKind",
    "LinkageResult",
    "LinkageSettings",
    "PreparedRecords",
    "compare_batch",
    "link_records",
    "read_linkage_model",
    "register_kind",
    "score_batch",
    "write_linkage",
]
