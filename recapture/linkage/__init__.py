"""Record linkage: block → compare → Fellegi–Sunter (EM on pattern counts) → score → cluster.

Public API::

    from recapture.linkage import LinkageSettings, link_records, write_linkage
    result = link_records(records, LinkageSettings.default())
    write_linkage(result, "out/")

See docs/linkage.md for the model, the blocking rules, comparison levels and settings.
"""

from recapture.linkage.engine import LinkageResult, link_records, read_linkage_model, write_linkage
from recapture.linkage.settings import BlockingRule, Comparison, LinkageSettings

__all__ = [
    "BlockingRule",
    "Comparison",
    "LinkageResult",
    "LinkageSettings",
    "link_records",
    "read_linkage_model",
    "write_linkage",
]
