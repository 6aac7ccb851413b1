"""All reports of a run directory at once."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from recapture import progress
from recapture.errors import InputError
from recapture.io import ARTIFACTS, artifact_path, read_json
from recapture.reports.estimate import estimate_report
from recapture.reports.explorer import explorer_report
from recapture.reports.linkage import linkage_report
from recapture.reports.validation import validation_report

#: Report name → (file name, artifacts that must exist in the run directory).
REPORTS: dict[str, tuple[str, tuple[str, ...]]] = {
    name: (
        Path(ARTIFACTS[f"{name}_report"].file).name,
        tuple(ARTIFACTS[a].file for a in needs),
    )
    for name, needs in (
        ("validation", ("records",)),
        ("linkage", ("pairs", "clusters")),
        ("explorer", ("pairs", "clusters", "linkage_model")),
        ("estimates", ("estimates",)),
    )
}


def run_info(run_dir: Path) -> dict[str, Any]:
    """Header facts of the run from manifest.json, when there is one."""
    info: dict[str, Any] = {"run directory": run_dir.name or str(run_dir)}
    manifest_path = artifact_path(run_dir, "manifest")
    if manifest_path.exists():
        try:
            manifest = read_json(manifest_path)
        except ValueError as exc:
            raise InputError(f"not valid JSON: {exc}", file=str(manifest_path)) from None
        if isinstance(manifest, dict):
            for key in ("run_id", "created", "started", "seed"):
                if manifest.get(key) is not None:
                    info[key.replace("_", " ")] = manifest[key]
            version = manifest.get("recapture_version") or (manifest.get("versions") or {}).get(
                "recapture"
            )
            if version:
                info["run by recapture"] = version
    return info


def write_reports(
    run_dir: str | os.PathLike,
    out_dir: str | os.PathLike | None = None,
    show_names: bool = False,
) -> dict[str, Path]:
    """Write every report whose inputs exist in ``run_dir``; return name → path.

    Reports go to ``out_dir`` (default ``run_dir/reports``). A stage that has not run
    yet just has no report; a run directory with none of the inputs is an error.
    ``show_names`` puts names and birth dates into the linkage review sample and free text
    (police units, unrecognised nationality strings) into the other reports, and names into the explorer's pairs; by default
    free text is only counted.
    """
    run = Path(run_dir)
    if not run.is_dir():
        raise InputError("run directory not found", file=str(run))
    out = Path(out_dir) if out_dir is not None else run / "reports"
    info = run_info(run)
    writers = {
        "validation": lambda path: validation_report(
            run, path, run_info=info, show_names=show_names
        ),
        "linkage": lambda path: linkage_report(run, path, show_names=show_names, run_info=info),
        "explorer": lambda path: explorer_report(run, path, show_names=show_names, run_info=info),
        "estimates": lambda path: estimate_report(run, path, run_info=info, show_names=show_names),
    }
    written: dict[str, Path] = {}
    for name, (file_name, needs) in REPORTS.items():
        missing = [f for f in needs if not (run / f).exists()]
        if missing:
            progress.info(f"  {name} report skipped: no {', '.join(missing)} in {run}")
            continue
        with progress.step(f"{name} report") as state:
            written[name] = writers[name](out / file_name)
            state["result"] = str(written[name])
    if not written:
        expected = sorted({f for _, needs in REPORTS.values() for f in needs})
        raise InputError(f"nothing to report: none of {', '.join(expected)} found", file=str(run))
    return written
