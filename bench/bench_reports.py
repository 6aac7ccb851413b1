"""Time and size of the HTML reports of a 1,000,000-record run.

    python bench/bench_reports.py                 # 1,000,000 records, writes docs/benchmarks.md
    python bench/bench_reports.py --records 100000 --no-docs

The run directory is synthetic (``recapture.reports.example.write_example_run``): records,
quarantine, pairs, clusters, linkage model and metrics, estimates and truth in the
documented formats, generated in seconds, so the benchmark measures the reports and not
the pipeline. Targets: all three reports in under 30 s and each under 10 MB. The pages
are then opened in headless Chromium (when installed) to time loading and check that they
load cleanly. Results go to the ``reports`` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import sys
import tempfile
import time
from pathlib import Path

import polars as pl
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_line, write_section  # noqa: E402

KEY = "reports"
TARGET_SECONDS = 30.0
TARGET_BYTES = 10 * 1024 * 1024


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--no-docs", action="store_true", help="print only; do not update docs/benchmarks.md"
    )
    ap.add_argument("--no-browser", action="store_true", help="skip the Chromium check")
    args = ap.parse_args()

    from recapture import progress
    from recapture.reports import (
        estimate_report,
        explorer_report,
        linkage_report,
        validation_report,
    )
    from recapture.reports.browser import check_page, find_chromium
    from recapture.reports.example import write_example_run
    from recapture.reports.run import run_info

    progress.set_quiet(True)
    with tempfile.TemporaryDirectory(prefix="bench-reports-") as tmp:
        run = Path(tmp) / "run"
        t0 = time.perf_counter()
        write_example_run(run, args.records, seed=args.seed)
        build_s = time.perf_counter() - t0
        n_records = pl.scan_parquet(run / "records.parquet").select(pl.len()).collect().item()
        n_quar = pl.scan_parquet(run / "quarantine.parquet").select(pl.len()).collect().item()
        n_pairs = pl.scan_parquet(run / "pairs.parquet").select(pl.len()).collect().item()
        print(
            f"run built in {build_s:.1f} s: {n_records:,} records, {n_quar:,} quarantined, "
            f"{n_pairs:,} candidate pairs",
            flush=True,
        )

        out = run / "reports"
        info = run_info(run)
        writers = {
            "validation": lambda p: validation_report(run, p, run_info=info),
            "linkage": lambda p: linkage_report(run, p, run_info=info),
            "explorer": lambda p: explorer_report(run, p, run_info=info),
            "estimates": lambda p: estimate_report(run, p, run_info=info),
        }
        rss_before = psutil.Process().memory_info().rss
        rows = []
        total_start = time.perf_counter()
        for name, write in writers.items():
            t = time.perf_counter()
            path = write(out / f"{name}.html")
            seconds = time.perf_counter() - t
            rows.append(
                {"report": name, "seconds": seconds, "bytes": path.stat().st_size, "path": path}
            )
            print(f"{name:<11} {seconds:6.1f} s  {path.stat().st_size / 1024:8.0f} KiB", flush=True)
        total_s = time.perf_counter() - total_start
        peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        print(
            f"all reports {total_s:6.1f} s; peak RSS of the process {peak_gib:.2f} GiB "
            f"(RSS before the reports {rss_before / 2**30:.2f} GiB)"
        )

        browser_note = "Chromium check skipped."
        if not args.no_browser and find_chromium():
            for row in rows:
                check = check_page(row["path"])
                row["load_s"] = check.load_seconds
                row["clean"] = (
                    not check.console_errors
                    and not check.network_requests
                    and not check.empty_plots
                    and check.overflow_px <= 0
                )
                row["plots"] = len(check.plots)
            browser_note = (
                "Opened in headless Chromium (1280 px): load time to the load event, "
                "including the explorer's script drawing its charts; clean = no console "
                "error, no network request, no empty plot, no horizontal overflow. The "
                "explorer's plots are drawn by its script (not counted)."
            )
        ok_time = total_s < TARGET_SECONDS
        ok_size = all(r["bytes"] < TARGET_BYTES for r in rows)
        print(
            f"targets: time {'met' if ok_time else 'MISSED'}, size {'met' if ok_size else 'MISSED'}"
        )

    shared = psutil.getloadavg()[0] > 1.5
    lines = [
        "## Reports of a 1,000,000-record run"
        if args.records == 1_000_000
        else f"## Reports of a {args.records:,}-record run",
        "",
        f"Command: `python bench/bench_reports.py{'' if args.records == 1_000_000 else f' --records {args.records}'}`",
        "",
        f"Machine: {machine_line()}. Date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC."
        + (
            " The machine was shared with other work during the run (load average "
            f"{psutil.getloadavg()[0]:.1f}), so times are pessimistic."
            if shared
            else ""
        ),
        "",
        f"Synthetic run directory in the documented artifact formats (`write_example_run`): "
        f"{n_records + n_quar:,} input rows = {n_records:,} records + {n_quar:,} quarantined, "
        f"{n_pairs:,} scored candidate pairs, truth for every record, a labelled review sample, "
        f"estimates for two periods. Built in {build_s:.1f} s (not counted). "
        "Each report reads the artifacts itself; tables are aggregated before plotting "
        "(histograms from binned counts, top-N lists, a 30-pair sample), so size does not grow "
        "with the number of records; the explorer embeds at most 4,000 pairs around the "
        "threshold, 1,500 elsewhere, 1,000 patterns and 40 clusters, and reclusters the pairs "
        "at each of its 16 (or 17, with the run's) thresholds. "
        f"Targets: all reports < {TARGET_SECONDS:.0f} s, each < 10 MB.",
        "",
        "| report | seconds | size KiB | plots | Chromium load s | clean |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['report']} | {r['seconds']:.1f} | {r['bytes'] / 1024:,.0f} | {r.get('plots', '–')} | "
            f"{r['load_s']:.2f} |"
            if "load_s" in r
            else f"| {r['report']} | {r['seconds']:.1f} | {r['bytes'] / 1024:,.0f} | – | – |"
        )
        if "load_s" in r:
            lines[-1] += f" {'yes' if r['clean'] else 'NO'} |"
        else:
            lines[-1] += " – |"
    lines += [
        f"| **all** | **{total_s:.1f}** | **{sum(r['bytes'] for r in rows) / 1024:,.0f}** | | | |",
        "",
        f"Peak RSS of the benchmark process: {peak_gib:.2f} GiB (includes building the run). {browser_note}",
    ]
    markdown = "\n".join(lines)
    print()
    print(markdown)
    if not args.no_docs:
        write_section(KEY, markdown)
        print("\nwritten to docs/benchmarks.md")
    return 0 if ok_time and ok_size else 1


if __name__ == "__main__":
    sys.exit(main())
