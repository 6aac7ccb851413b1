"""``recapture init DIR``: a working starting point for a new run configuration.

Writes a commented ``pipeline.toml`` and copies of the built-in police and IOM source
definitions, so a data engineer edits a config that already runs instead of writing
one from the documentation. Existing files are never overwritten.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from recapture.errors import InputError

#: File written (relative to the target directory) → packaged template it is copied from.
TEMPLATES: dict[str, tuple[str, str]] = {
    "pipeline.toml": ("recapture.pipelines", "templates/pipeline.toml"),
    "sources/police.toml": ("recapture.validation", "sources/police.toml"),
    "sources/iom.toml": ("recapture.validation", "sources/iom.toml"),
}

_SOURCE_HEADER = (
    "# Copied by `recapture init` from the built-in '{name}' definition: edit the column\n"
    "# names, codes and date formats to match your extract (docs/validation.md).\n"
)


def write_templates(directory: str | os.PathLike) -> list[Path]:
    """Write pipeline.toml and sources/{police,iom}.toml into ``directory``; return them.

    Refuses (before writing anything) when any of them already exists, so a config that
    has been edited is never replaced. The extracts are expected in ``directory/extracts``
    as ``police.csv`` and ``iom.csv`` (the names ``recapture simulate`` writes).
    """
    root = Path(directory)
    if root.exists() and not root.is_dir():
        raise InputError("exists and is not a directory", file=str(root))
    targets = {rel: root / rel for rel in TEMPLATES}
    existing = [str(p) for p in targets.values() if p.exists()]
    if existing:
        raise InputError(
            "already exists; recapture init does not overwrite (move it away or pick another "
            "directory)",
            file=existing[0],
        )
    written = []
    for rel, (package, name) in TEMPLATES.items():
        text = resources.files(package).joinpath(name).read_text(encoding="utf-8")
        if rel.startswith("sources/"):
            text = _SOURCE_HEADER.format(name=Path(name).stem) + text
        path = targets[rel]
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "x", encoding="utf-8") as fh:  # "x": never replace a file
            fh.write(text)
        written.append(path)
    (root / "extracts").mkdir(exist_ok=True)
    return written
