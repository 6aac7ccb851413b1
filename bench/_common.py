"""What every benchmark script shares: the machine it ran on and its section of
docs/benchmarks.md (between ``<!-- bench:NAME -->`` markers, replaced on every run).
Standard library only: peer workers in another interpreter import it too."""

from __future__ import annotations

import os
import platform
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Where sections are written; RECAPTURE_BENCHMARKS_MD redirects it (e.g. from a snapshot).
BENCHMARKS_MD = Path(os.environ.get("RECAPTURE_BENCHMARKS_MD", ROOT / "docs" / "benchmarks.md"))


def machine_line() -> str:
    """CPU model, cores, RAM, OS and Python of this machine, as one line."""
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{cpu}, {os.cpu_count()} cores, {ram:.1f} GiB RAM, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}")


def write_section(name: str, markdown: str, doc: Path | None = None) -> Path:
    """Replace (or append) the ``name`` section of docs/benchmarks.md, atomically."""
    doc = doc or BENCHMARKS_MD
    begin, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    text = doc.read_text(encoding="utf-8") if doc.exists() else "# Benchmarks\n"
    block = f"{begin}\n{markdown.strip()}\n{end}"
    if begin in text and end in text:
        text = text[: text.index(begin)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    tmp = doc.with_suffix(".md.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, doc)
    return doc
