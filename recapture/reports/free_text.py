"""Free text stays out of default reports.

Covariate levels without a code list (``police_unit``, a column of a user's own table) may
hold a name or a birth date, so a default report numbers them (``level 1``, ``level 2``, …)
in strata, warnings and the count models' diagnostics; ``show_names`` shows them.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from recapture.reports._render import first_key
from recapture.reports._render import table_rows as _rows

#: Covariates whose levels come from a code list or are derived by recapture (persons.parquet):
#: only their levels are shown by default. Levels of any other variable — police_unit, a
#: column of a user's own table — are free text that may hold a name or a birth date; the
#: report numbers them (``level 1``, ``level 2``, …) unless written with ``show_names``.
CODED_VARIABLES = frozenset(
    {"sex", "age_class", "nationality_iso3", "region", "reason", "client_category", "period"}
)


def _coded(variable: str) -> bool:
    return variable in CODED_VARIABLES or variable.startswith("in_")


#: Diagnostics whose rows name covariate patterns (one key per covariate).
DIAGNOSTIC_ROW_KEYS = ("dfpopsize_top", "pattern_residuals")


def _diagnostic_rows(est: dict[str, Any]) -> list[dict[str, Any]]:
    diagnostics = est.get("diagnostics")
    if not isinstance(diagnostics, dict):
        return []
    return [
        r for key in DIAGNOSTIC_ROW_KEYS for r in _rows(diagnostics.get(key)) if isinstance(r, dict)
    ]


def mask_free_text(entries: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """Estimates with the strata levels of free-text variables replaced by numbers, and those
    levels removed from warning and error texts; also the variables masked. Levels are
    numbered in sorted order per variable, the same in every estimate."""
    levels: dict[str, set[str]] = defaultdict(set)
    for est in entries:
        for row in _rows(est.get("strata")):
            variable = str(first_key(row, ("variable", "covariate", "name"), ""))
            level = first_key(row, ("level", "value", "stratum", "group"), "")
            if not _coded(variable):
                levels[variable].add(str(level))
        for row in _diagnostic_rows(est):
            for variable, value in row.items():
                if isinstance(value, str) and not _coded(variable):
                    levels[variable].add(value)
    if not levels:
        return entries, []
    labels = {
        (variable, text): f"level {k}"
        for variable, texts in levels.items()
        for k, text in enumerate(sorted(texts), start=1)
    }
    # longest first, so a level inside another is not replaced within it
    secret = sorted(((t, label) for (_, t), label in labels.items() if t), key=lambda x: -len(x[0]))

    def redact(text: Any) -> Any:
        """A warning or error with the masked levels replaced by their numbers: anywhere
        when 3 characters or longer, in coefficient names and quotes when shorter."""
        if not isinstance(text, str):
            return text
        for t, label in secret:
            if len(t) >= 3:
                text = text.replace(t, label)
            else:
                for form in ("[T.{}]", "[{}]", "'{}'", '"{}"', "={}"):
                    text = text.replace(form.format(t), form.format(label))
        return text

    out = []
    for est in entries:
        est = dict(est)
        strata = []
        for row in _rows(est.get("strata")):
            variable = str(first_key(row, ("variable", "covariate", "name"), ""))
            if not _coded(variable):
                level = str(first_key(row, ("level", "value", "stratum", "group"), ""))
                row = {
                    k: v for k, v in row.items() if k not in ("level", "value", "stratum", "group")
                }
                row["level"] = labels[(variable, level)]
            strata.append(row)
        if strata:
            est["strata"] = strata
        if est.get("warnings"):
            est["warnings"] = [redact(w) for w in est["warnings"]]
        diagnostics = est.get("diagnostics")
        if isinstance(diagnostics, dict):
            diagnostics = dict(diagnostics)
            for key in DIAGNOSTIC_ROW_KEYS:
                if isinstance(diagnostics.get(key), list):
                    diagnostics[key] = [
                        {
                            k: labels.get((k, v), v) if isinstance(v, str) else v
                            for k, v in row.items()
                        }
                        if isinstance(row, dict)
                        else row
                        for row in diagnostics[key]
                    ]
            est["diagnostics"] = diagnostics
        if "error" in est:
            est["error"] = redact(est["error"])
        out.append(est)
    return out, sorted(levels)
