"""Self-contained HTML reports of a run: validation, linkage quality and estimates.

Each report is one HTML file with its styles and plots (inline SVG) embedded, so it
opens offline on a secure workstation and prints. Reports show counts, model parameters
and pseudonymous record ids only; names appear solely in the linkage review sample and
only with ``show_names=True``, and the page then says so at the top.

    from recapture.reports import write_reports
    paths = write_reports("runs/2018")      # {"validation": Path(...), ...}
"""

from recapture.reports.estimate import estimate_report
from recapture.reports.explorer import explorer_report
from recapture.reports.linkage import linkage_report
from recapture.reports.run import REPORTS, write_reports
from recapture.reports.validation import validation_report

__all__ = [
    "REPORTS",
    "estimate_report",
    "explorer_report",
    "linkage_report",
    "validation_report",
    "write_reports",
]
