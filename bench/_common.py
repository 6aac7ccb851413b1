"""What every benchmark script shares: the machine it ran on and its section of
docs/benchmarks.md (between ``<!-- bench:NAME -->`` markers, replaced on every run).
Standard library only: peer workers in another interpreter import it too."""

from __future__ import annotations

import datetime as dt
import os
import platform
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Where sections are written; RECAPTURE_BENCHMARKS_MD redirects it (e.g. from a snapshot).
BENCHMARKS_MD = Path(os.environ.get("RECAPTURE_BENCHMARKS_MD", ROOT / "docs" / "benchmarks.md"))


def machine() -> dict:
    """CPU model, cores, RAM, OS, Python and date of this run."""
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        ram = float("nan")
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gib": round(ram, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def machine_line() -> str:
    """CPU model, cores, RAM, OS and Python of this machine, as one line."""
    m = machine()
    return f"{m['cpu']}, {m['cores']} cores, {m['ram_gib']:.1f} GiB RAM, {m['os']}, Python {m['python']}"


def write_section(name: str, markdown: str, doc: Path | None = None) -> Path:
    """Replace (or append) the ``name`` section of docs/benchmarks.md, atomically."""
    doc = doc or BENCHMARKS_MD
    begin, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    text = doc.read_text(encoding="utf-8") if doc.exists() else "# Benchmarks\n"
    block = f"{begin}\n{markdown.strip()}\n{end}"
    if begin in text and end in text:
        text = text[: text.index(begin)] + block + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    tmp = doc.with_suffix(".md.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, doc)
    return doc
