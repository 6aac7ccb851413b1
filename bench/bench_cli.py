"""Start-up time of the command line: ``recapture --help``, ``--version`` and a command's help.

    python bench/bench_cli.py             # 15 runs each, writes docs/benchmarks.md
    python bench/bench_cli.py --runs 5 --no-docs

Each command runs in a fresh process (as a user types it); the bare interpreter start-up
(``python -c pass``) is measured the same way, so what recapture adds can be told from what
Python and the site packages cost on this machine. Target: ``recapture --help`` under
0.3 s. Reported: the median and the fastest run (the fastest is the least disturbed by
other work on a shared machine).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_line, write_section  # noqa: E402

KEY = "cli"
TARGET_SECONDS = 0.3
ROOT = Path(__file__).resolve().parents[1]

COMMANDS = [
    ("python -c pass (interpreter only)", [sys.executable, "-c", "pass"]),
    ("recapture --help", [sys.executable, "-m", "recapture", "--help"]),
    ("recapture --version", [sys.executable, "-m", "recapture", "--version"]),
    ("recapture link --help", [sys.executable, "-m", "recapture", "link", "--help"]),
    ("recapture estimate --help", [sys.executable, "-m", "recapture", "estimate", "--help"]),
]


def _time(argv: list[str], runs: int) -> list[float]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        done = subprocess.run(argv, env=env, capture_output=True, check=False)
        out.append(time.perf_counter() - t)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed: {done.stderr.decode()[-300:]}")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--no-docs", action="store_true", help="print only")
    args = ap.parse_args()

    load_before = psutil.getloadavg()
    rows = []
    for label, argv in COMMANDS:
        times = _time(argv, args.runs)
        rows.append((label, statistics.median(times), min(times)))
        print(f"{label:<36} median {rows[-1][1]:.3f} s  fastest {rows[-1][2]:.3f} s", flush=True)
    base = rows[0][1]
    help_median = rows[1][1]
    ok = help_median < TARGET_SECONDS
    print(f"target recapture --help < {TARGET_SECONDS} s: {'met' if ok else 'MISSED'}")

    lines = [
        "## Command-line start-up",
        "",
        f"Command: `python bench/bench_cli.py{'' if args.runs == 15 else f' --runs {args.runs}'}`",
        "",
        f"Machine: {machine_line()}. Date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC. "
        f"Load average before the run {load_before[0]:.1f}"
        + (
            " — the machine was shared with other work, so times are upper bounds."
            if load_before[0] > 1.5
            else "."
        ),
        "",
        f"Each command in a fresh process, {args.runs} runs; `python -m recapture` "
        "(the `recapture` script runs the same code). `--help` and `--version` build no "
        "command's options and import none of the stages (no numpy, polars, scipy or "
        "pandas); a command's own `--help` builds only that command's options, and "
        "`estimate` imports the estimators to list the models. Target: `recapture --help` "
        f"< {TARGET_SECONDS} s (before: 1.3–1.8 s, when the parser imported scipy and pandas).",
        "",
        "| command | median s | fastest s | over the interpreter s |",
        "|---|---|---|---|",
    ]
    for label, median, fastest in rows:
        lines.append(f"| `{label}` | {median:.3f} | {fastest:.3f} | {median - base:+.3f} |")
    lines += ["", f"Target met: {'yes' if ok else 'NO'}."]
    markdown = "\n".join(lines)
    print()
    print(markdown)
    if not args.no_docs:
        write_section(KEY, markdown)
        print("\nwritten to docs/benchmarks.md")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
