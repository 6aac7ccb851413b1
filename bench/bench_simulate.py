"""Simulator throughput: a world whose police extract has about 1,000,000 records.

    python bench/bench_simulate.py                # 1,000,000 police records, default model
    python bench/bench_simulate.py --records 200000 --no-docs

With the default (realistic) apprehension rates a person is apprehended 0.18 times a
year on average, so a million police records take a population of about 5.4 million
people: the benchmark measures the whole world (people, both extracts, the truth),
not only the police rows. A pilot world fixes N; the measured run happens in a fresh
subprocess so that its peak resident memory (ru_maxrss) is its own. Results go to
stdout and to the ``simulate`` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import BENCHMARKS_MD, machine_line, write_section  # noqa: E402

TARGET_SECONDS = 60
TARGET_GIB = 4.0


def child(size: int, seed: int, out: str) -> None:
    """The measured run: simulate, write, report times and peak memory as one JSON line."""
    from recapture import progress
    from recapture.synthetic import SimulationConfig, simulate_world, write_world

    def cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    progress.set_quiet(True)
    cpu0, start = cpu(), time.perf_counter()
    world = simulate_world(SimulationConfig(size=size, seed=seed))
    cpu1, simulated = cpu(), time.perf_counter()
    paths = write_world(world, out)
    cpu2, written = cpu(), time.perf_counter()
    print(
        json.dumps(
            {
                "size": size,
                "police_records": world.police.height,
                "iom_records": world.iom.height,
                "people_rows": world.people.height,
                "simulate_s": simulated - start,
                "write_s": written - simulated,
                "total_s": written - start,
                "simulate_cpu_s": cpu1 - cpu0,
                "write_cpu_s": cpu2 - cpu1,
                "total_cpu_s": cpu2 - cpu0,
                "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
                "bytes": {name: Path(p).stat().st_size for name, p in paths.items()},
            }
        )
    )


def pilot_size(records: int, seed: int) -> int:
    """N whose expected police extract has ``records`` rows, from a 200,000-person pilot."""
    from recapture import progress
    from recapture.synthetic import SimulationConfig, simulate_world

    progress.set_quiet(True)
    pilot_n = 200_000
    world = simulate_world(SimulationConfig(size=pilot_n, seed=seed + 1))
    return int(round(records * pilot_n / world.police.height))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000, help="police records to simulate")
    parser.add_argument("--seed", type=int, default=20180630)
    parser.add_argument(
        "--no-docs", action="store_true", help="print only; leave docs/benchmarks.md alone"
    )
    parser.add_argument("--child", nargs=2, metavar=("SIZE", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(int(args.child[0]), args.seed, args.child[1])
        return

    size = pilot_size(args.records, args.seed)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-simulate-") as tmp:
        proc = subprocess.run(
            [sys.executable, __file__, "--seed", str(args.seed), "--child", str(size), tmp],
            check=True,
            capture_output=True,
            text=True,
        )
    load_after = os.getloadavg()[0]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    ok_time = result["total_s"] < TARGET_SECONDS
    ok_mem = result["peak_rss_gib"] < TARGET_GIB
    sizes = result["bytes"]
    mib = {k: v / 2**20 for k, v in sizes.items()}
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    shared = max(load_before, load_after) > 1.5
    md = f"""## Simulator throughput

Command: `python bench/bench_simulate.py` (default: {args.records:,} police records, seed {args.seed})

Machine: {machine_line()}. Date: {now}. Load average before/after the run: {load_before:.1f} / {load_after:.1f}{" — the machine was shared with other work, so the times are upper bounds" if shared else ""}.

The default, realistic model ({result["police_records"] / result["size"]:.3f} police records per person) needs N = {result["size"]:,} people for {result["police_records"]:,} police records; the run simulates all of them, writes both extracts and the truth (`truth/people.parquet` has {result["people_rows"]:,} rows, including the IOM clients outside the target population). Time and peak memory (ru_maxrss) are those of a fresh worker process.

Target: 1,000,000 police records in under {TARGET_SECONDS} s and {TARGET_GIB:g} GiB. Wall-clock seconds depend on what else runs on the machine; CPU seconds (user + system of the worker) hardly do: on an otherwise idle machine the wall time is about the CPU time or less (some steps use both cores).

| police records | IOM records | people | simulate s (CPU s) | write s (CPU s) | total s (CPU s) | peak GiB | wall-clock target met |
|---|---|---|---|---|---|---|---|
| {result["police_records"]:,} | {result["iom_records"]:,} | {result["people_rows"]:,} | {result["simulate_s"]:.1f} ({result["simulate_cpu_s"]:.1f}) | {result["write_s"]:.1f} ({result["write_cpu_s"]:.1f}) | {result["total_s"]:.1f} ({result["total_cpu_s"]:.1f}) | {result["peak_rss_gib"]:.2f} | {"yes" if ok_time and ok_mem else "no"} |

Files: police.csv {mib["police"]:.0f} MiB, iom.csv {mib["iom"]:.0f} MiB, truth/people.parquet {mib["truth_people"]:.0f} MiB, truth/records.parquet {mib["truth_records"]:.0f} MiB.
"""
    print(md)
    if not args.no_docs:
        write_section("simulate", md)
        print(f"section 'simulate' written to {BENCHMARKS_MD}")


if __name__ == "__main__":
    main()
