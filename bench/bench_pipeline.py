"""The whole pipeline at scale: a 1,000,000-record police extract plus a 100,000-record
IOM extract, validation → linkage → persons → estimates → reports.

    python bench/bench_pipeline.py                          # full scale
    python bench/bench_pipeline.py --police-records 100000 --no-docs

The world is the simulator's default (realistic) one, scaled up until the police extract
holds about ``--police-records`` registrations (N from a 200,000-person pilot, as in
bench_simulate.py), with the IOM intercept lowered from -3.6 to ``--iom-intercept`` so the
IOM extract holds about a tenth as many. The world is cached in bench/out/ and reused
while its simulation config is unchanged. The pipeline runs with ``run_pipeline`` in a
fresh subprocess, so its wall time and peak memory are the pipeline's own; per-stage
seconds and peak RSS come from the run's manifest. Results go to stdout and to the
``pipeline`` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import BENCHMARKS_MD, machine_line, write_section  # noqa: E402
from bench_simulate import pilot_size  # noqa: E402

OUT = ROOT / "bench" / "out" / "pipeline"
PERIOD = {"start": "2017-07-01", "end": "2018-06-30", "label": "2017/18"}
STAGES = ("validate", "link", "persons", "estimate", "report")


def world_config(size: int, seed: int, iom_intercept: float):
    from recapture.synthetic import SimulationConfig

    config = SimulationConfig(size=size, seed=seed)
    return dataclasses.replace(config, iom=dataclasses.replace(config.iom, intercept=iom_intercept))


def world_dir(police_records: int, seed: int, iom_intercept: float) -> Path:
    return OUT / f"world-{police_records}-s{seed}-iom{iom_intercept:g}"


def ensure_world(
    police_records: int, seed: int, iom_intercept: float, force: bool
) -> tuple[Path, dict]:
    """Simulate the world unless a cached one with the same config exists (in a subprocess,
    so the simulator's memory is returned before the pipeline starts)."""
    from recapture.io import read_json, to_json_text

    target = world_dir(police_records, seed, iom_intercept)
    manifest = target / "manifest.json"
    size = pilot_size(police_records, seed)
    wanted = json.loads(to_json_text(world_config(size, seed, iom_intercept).to_dict()))
    if not force and manifest.exists() and read_json(manifest).get("config") == wanted:
        print(f"reusing the simulated world in {target}", flush=True)
        return target, read_json(manifest)
    print(f"simulating N = {size:,} into {target} …", flush=True)
    started = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            __file__,
            "--simulate-child",
            str(size),
            str(target),
            "--seed",
            str(seed),
            "--iom-intercept",
            str(iom_intercept),
        ],
        check=True,
    )
    print(f"simulated in {time.perf_counter() - started:.0f} s", flush=True)
    return target, read_json(manifest)


def simulate_child(size: int, target: str, seed: int, iom_intercept: float) -> None:
    from recapture import progress
    from recapture.synthetic import run_simulation

    progress.set_quiet(True)
    run_simulation(world_config(size, seed, iom_intercept), target)


def pipeline_toml(
    world: Path, run_dir: Path, seed: int, linkage_settings: Path | None = None
) -> str:
    """The benchmarked config: both sources, default linkage, one period, four estimators,
    no linkage-uncertainty imputations, reports on."""
    return f"""\
[run]
dir = "{run_dir}"
seed = {seed}
as_of = "2019-01-01"

[[sources]]
path = "{world / "police.csv"}"
definition = "police"

[[sources]]
path = "{world / "iom.csv"}"
definition = "iom"

{f'[linkage]{chr(10)}settings = "{linkage_settings}"{chr(10)}' if linkage_settings else ""}
[[periods]]
start = {PERIOD["start"]}
end = {PERIOD["end"]}
label = "{PERIOD["label"]}"

[persons]
age_breaks = [40]

[[estimators]]
name = "ztpoisson"
model = "ztpoisson"
formula = "~ sex + age_class + region"
count = "n_police"

[[estimators]]
name = "chao"
model = "chao"
count = "n_police"

[[estimators]]
name = "loglinear"
model = "loglinear"
lists = ["police", "iom"]
covariates = "sex,age_class,region"

[[estimators]]
name = "chapman"
model = "chapman"
lists = ["police", "iom"]

[reports]
enabled = true
"""


def pipeline_child(config_path: str) -> None:
    """The measured run: the whole pipeline, forced, then one JSON line."""
    from recapture.pipelines.run import run_pipeline

    started = time.perf_counter()
    error = None
    try:
        run_pipeline(config_path, force=True)
    except Exception as exc:  # a failing stage is a result of the benchmark
        error = f"{type(exc).__name__}: {exc}"
    print(
        json.dumps(
            {
                "wall_s": time.perf_counter() - started,
                "max_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
                "children_max_rss_gib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
                / 2**20,
                "error": error,
            }
        )
    )


def run_monitored(config_path: Path) -> tuple[dict, float, list[str]]:
    """Run the pipeline child; sample its resident memory from outside (so a process the
    kernel kills for lack of memory still has a measured peak) and keep its last steps."""
    import threading
    from collections import deque

    import psutil

    proc = subprocess.Popen(
        [sys.executable, __file__, "--pipeline-child", str(config_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    steps: deque[str] = deque(maxlen=3)

    def relay() -> None:
        for line in proc.stderr:
            sys.stderr.write(line)
            sys.stderr.flush()
            if line.lstrip().startswith("·"):
                steps.append(line.strip().lstrip("· ").rstrip(" …"))

    relay_thread = threading.Thread(target=relay, daemon=True)
    relay_thread.start()
    watched = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            peak = max(
                peak,
                watched.memory_info().rss
                + sum(c.memory_info().rss for c in watched.children(recursive=True)),
            )
        except psutil.Error:
            pass
        time.sleep(0.5)
    out = proc.stdout.read()
    relay_thread.join(timeout=5)
    lines = out.strip().splitlines()
    if lines and lines[-1].startswith("{"):
        child = json.loads(lines[-1])
    else:
        killed = " (SIGKILL: the kernel's out-of-memory killer)" if proc.returncode == -9 else ""
        child = {
            "wall_s": None,
            "max_rss_gib": None,
            "children_max_rss_gib": None,
            "error": f"the pipeline process was killed, exit code {proc.returncode}{killed}",
        }
    return child, peak / 2**30, list(steps)


def git_state() -> str:
    def git(*cmd: str) -> str:
        return subprocess.run(
            ["git", *cmd], cwd=ROOT, capture_output=True, text=True
        ).stdout.rstrip()

    dirty = git("status", "--porcelain", "--", "recapture")
    return f"commit {git('rev-parse', '--short', 'HEAD')}" + (
        " with uncommitted changes in recapture/ ("
        + ", ".join(line[3:] for line in dirty.splitlines())
        + ")"
        if dirty
        else ""
    )


def link_precision(run_dir: Path, truth) -> dict[str, tuple[int, int]]:
    """(links, links joining records of one true person) among the linked pairs, within a
    source and across sources."""
    import polars as pl

    pairs = pl.read_parquet(
        run_dir / "pairs.parquet", columns=["record_id_l", "record_id_r", "linked"]
    ).filter("linked")
    side = truth.select("record_id", "source", "person_id")
    joined = pairs.join(
        side.rename({"record_id": "record_id_l", "source": "sl", "person_id": "pl"}),
        on="record_id_l",
    ).join(
        side.rename({"record_id": "record_id_r", "source": "sr", "person_id": "pr"}),
        on="record_id_r",
    )
    out = {}
    for label, where in (
        ("within", pl.col("sl") == pl.col("sr")),
        ("across", pl.col("sl") != pl.col("sr")),
    ):
        part = joined.filter(where)
        out[label] = (part.height, part.filter(pl.col("pl") == pl.col("pr")).height)
    return out


def true_link_estimates(
    config_path: Path, run_dir: Path, world: Path
) -> tuple[int, dict[str, float], dict]:
    """The true number of persons among the records, each estimator fitted to the persons
    the simulator's truth links (perfect linkage) — to separate linkage error from model
    error — and what the two sets of persons and the links look like."""
    import polars as pl

    from recapture.config import load_config
    from recapture.persons import build_persons
    from recapture.pipelines.demo import _true_clusters
    from recapture.pipelines.run import _fit_one

    config = load_config(config_path)
    truth = _true_clusters(run_dir, world)
    records = pl.read_parquet(run_dir / "records.parquet")
    persons, _ = build_persons(
        records, truth, config.periods[0], sources=config.source_names, rules=config.persons
    )
    fitted = {}
    for est in config.estimators:
        options = {
            k: v for k, v in est.options.items() if k not in ("missing", "linkage_uncertainty")
        }
        if isinstance(options.get("lists"), list):
            options["lists"] = [f"in_{name}" for name in options["lists"]]
        try:
            fitted[est.name] = _fit_one(
                persons, est.model, options, est.options.get("missing")
            ).population_size
        except Exception:  # a comparison only
            fitted[est.name] = float("nan")
    run_persons = pl.read_parquet(run_dir / "persons.parquet", columns=["in_police", "in_iom"])
    in_both = {
        name: frame.filter((pl.col("in_police") == 1) & (pl.col("in_iom") == 1)).height
        for name, frame in (("run", run_persons), ("truth", persons))
    }
    return (
        int(truth["person_id"].n_unique()),
        fitted,
        {"in_both": in_both, "links": link_precision(run_dir, truth)},
    )


def true_n(world: Path) -> int:
    import polars as pl

    return int(
        pl.scan_parquet(world / "truth" / "people.parquet")
        .filter(pl.col("in_target"))
        .select(pl.len())
        .collect()
        .item()
    )


def stage_rows(name: str, counts: dict) -> str:
    if name == "validate":
        return f"{counts['rows_in']:,} rows in → {counts['records']:,} records, {counts['quarantined']:,} quarantined"
    if name == "link":
        return (
            f"{counts['records']:,} records → {counts['persons']:,} persons; "
            f"{counts['pairs_scored']:,} pairs scored"
        )
    if name == "persons":
        return f"{counts['rows']:,} person rows"
    if name == "estimate":
        return f"{counts['estimates']} estimates, {counts['failed']} failed"
    return f"{len(counts.get('reports', {}))} reports"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--police-records", type=int, default=1_000_000, help="police records to simulate"
    )
    parser.add_argument(
        "--iom-intercept",
        type=float,
        default=-4.8,
        help="IOM logit intercept (default -4.8: about one IOM record per ten police records)",
    )
    parser.add_argument("--seed", type=int, default=20180630)
    parser.add_argument(
        "--resimulate", action="store_true", help="simulate the world even if it is cached"
    )
    parser.add_argument(
        "--no-docs", action="store_true", help="print only; leave docs/benchmarks.md alone"
    )
    parser.add_argument(
        "--from-last-run",
        action="store_true",
        help="do not run: write the section from the last measured run of this world",
    )
    parser.add_argument(
        "--max-block-size",
        type=int,
        default=None,
        help="run with the built-in linkage settings but this max_block_size",
    )
    parser.add_argument(
        "--simulate-only", action="store_true", help="simulate (or find) the world and stop"
    )
    parser.add_argument(
        "--simulate-child", nargs=2, metavar=("SIZE", "OUT"), help=argparse.SUPPRESS
    )
    parser.add_argument("--pipeline-child", metavar="CONFIG", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.simulate_child:
        simulate_child(
            int(args.simulate_child[0]), args.simulate_child[1], args.seed, args.iom_intercept
        )
        return
    if args.pipeline_child:
        pipeline_child(args.pipeline_child)
        return

    from recapture.io import read_json

    world, world_manifest = ensure_world(
        args.police_records, args.seed, args.iom_intercept, args.resimulate
    )
    if args.simulate_only:
        return
    variant = world.name.removeprefix("world-") + (
        f"-block{args.max_block_size}" if args.max_block_size else ""
    )
    run_dir = world.parent / f"run-{variant}"
    linkage_settings = None
    if args.max_block_size:
        linkage_settings = world.parent / f"linkage-block{args.max_block_size}.toml"
        linkage_settings.write_text(f"max_block_size = {args.max_block_size}\n", encoding="utf-8")
    config_path = world.parent / f"pipeline-{variant}.toml"
    config_path.write_text(
        pipeline_toml(world, run_dir, args.seed, linkage_settings), encoding="utf-8"
    )

    measured = world.parent / f"measured-{variant}.json"
    if args.from_last_run and measured.exists():
        saved = read_json(measured)
    else:
        (run_dir / "manifest.json").unlink(
            missing_ok=True
        )  # a killed run must not show an older manifest
        load_before, code = os.getloadavg(), git_state()
        print(f"running the pipeline ({config_path}) …", flush=True)
        child, monitored_gib, last_steps = run_monitored(config_path)
        saved = {
            "child": child,
            "monitored_peak_gib": monitored_gib,
            "last_steps": last_steps,
            "load_before": load_before,
            "load_after": os.getloadavg(),
            "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "code": code,
        }
        measured.write_text(json.dumps(saved), encoding="utf-8")
    child, load_before, load_after, now = (
        saved["child"],
        saved["load_before"],
        saved["load_after"],
        saved["date"],
    )
    manifest = (
        read_json(run_dir / "manifest.json")
        if (run_dir / "manifest.json").exists()
        else {"stages": {}}
    )

    files = world_manifest["files"]
    police_rows, iom_rows = files["police"]["rows"], files["iom"]["rows"]
    rows, reached_failure = [], False
    for name in STAGES:
        stage = manifest["stages"].get(name)
        if stage is None:
            if child["error"] and not reached_failure:
                reached_failure = True
                step = saved.get("last_steps", [])[-1:] or ["?"]
                rows.append(
                    f"| {name} | killed | – | – | {saved['monitored_peak_gib']:.2f} (sampled from outside) "
                    f"| killed during '{step[0]}' |"
                )
            else:
                rows.append(f"| {name} | – | – | – | – | not reached |")
            continue
        start, peak = (
            f"{stage[k] / 1024:.2f}" if stage.get(k) is not None else "–"
            for k in ("rss_start_mib", "peak_rss_mib")
        )
        what = (
            stage_rows(name, stage.get("counts", {}))
            if stage["status"] == "done"
            else stage.get("error", "")
        )
        rows.append(
            f"| {name} | {stage.get('status')} | {stage.get('seconds', float('nan')):.1f} | {start} | {peak} "
            f"| {what} |"
        )
    checks = manifest.get("reconciliation", {}).get("checks", [])
    check_lines = [
        f"- {'ok' if c['ok'] else 'MISMATCH'}: {c['check']}: {c['left']:,} vs {c['right']:,}"
        for c in checks
    ]

    truth = true_n(world)
    estimates = read_json(run_dir / "estimates.json") if child["error"] is None else []
    est_lines, link_line = [], ""
    if estimates:
        true_persons, perfect, check = true_link_estimates(config_path, run_dir, world)
        clusters = manifest["stages"]["link"]["counts"]["persons"]
        (wl, wc), (al, ac) = check["links"]["within"], check["links"]["across"]
        both = check["in_both"]
        link_line = (
            f"Linkage against the simulator's truth: {clusters:,} clusters for {true_persons:,} true persons "
            f"among the records ({clusters / true_persons - 1:+.1%}); of the links within a source "
            f"{wc:,} of {wl:,} join records of one person (precision {wc / max(wl, 1):.3f}), of the police × "
            f"IOM links {ac:,} of {al:,} ({ac / max(al, 1):.3f}); persons in both sources in "
            f"{PERIOD['label']}: {both['run']:,} (true links: {both['truth']:,}).\n\n"
        )
    for e in estimates:
        if e.get("error"):
            est_lines.append(f"| {e['name']} | failed: {e['error']} | | | | |")
            continue
        iv = e["intervals"].get(e["default_interval"]) or {}
        n_hat = e["population_size"]
        est_lines.append(
            f"| {e['name']} | {n_hat:,.0f} | {iv.get('lower', float('nan')):,.0f} – "
            f"{iv.get('upper', float('nan')):,.0f} | {n_hat / truth - 1:+.1%} | "
            f"{perfect[e['name']]:,.0f} ({perfect[e['name']] / truth - 1:+.1%}) | "
            f"{len(e.get('warnings') or [])} |"
        )
    link_steps = ""
    metrics_path = run_dir / "linkage_metrics.json"
    if "link" in manifest["stages"] and metrics_path.exists():
        t = read_json(metrics_path).get("timings_seconds") or {}
        rest = manifest["stages"]["link"]["seconds"] - t.get("total", 0.0)
        pairs_mib = (run_dir / "pairs.parquet").stat().st_size / 2**20
        link_steps = (
            f"Inside the link stage: encoding {t.get('encode', 0):.0f} s, blocking {t.get('blocking', 0):.0f} s, "
            f"comparing {t.get('comparing', 0):.0f} s, training {t.get('training', 0):.0f} s, scoring and "
            f"clustering {t.get('scoring_clustering', 0):.0f} s; reading the records, quality metrics and "
            f"writing the artifacts {rest:.0f} s (pairs.parquet {pairs_mib:,.0f} MiB)."
        )

    shared = max(load_before[0], load_after[0]) > 1.5
    cmd = (
        "python bench/bench_pipeline.py"
        + (f" --police-records {args.police_records}" if args.police_records != 1_000_000 else "")
        + (f" --max-block-size {args.max_block_size}" if args.max_block_size else "")
    )
    linkage_text = (
        f"the built-in linkage settings with `max_block_size = {args.max_block_size}`"
        if args.max_block_size
        else "the built-in linkage settings"
    )
    if child["error"] is None:
        status = (
            f"completed in {child['wall_s']:,.0f} s wall time; peak resident memory of that process "
            f"{child['max_rss_gib']:.2f} GiB"
        )
    else:
        status = (
            f"**failed**: {child['error']}, after the steps {' → '.join(saved.get('last_steps', []))}; "
            f"the highest resident memory sampled from outside was {saved['monitored_peak_gib']:.2f} GiB"
        )
    title = f"{police_rows:,} police + {iom_rows:,} IOM records, {linkage_text}"
    md = f"""### {title}

Command: `{cmd}` (seed {args.seed}, IOM intercept {args.iom_intercept:g}). Code: {saved.get("code", "not recorded")}.

Machine: {machine_line()}. Date: {now}. Load average (1/5/15 min) before the run {load_before[0]:.1f} / {load_before[1]:.1f} / {load_before[2]:.1f}, after {load_after[0]:.1f} / {load_after[1]:.1f} / {load_after[2]:.1f}{" — the machine was shared with other work, so the times are upper bounds and the memory left to the run was less than the machine's" if shared else ""}.

World: the simulator's default (realistic) configuration with N = {world_manifest["config"]["size"]:,} and the IOM intercept lowered from -3.6 to {args.iom_intercept:g}: police.csv {police_rows:,} rows, iom.csv {iom_rows:,} rows; {truth:,} people in the target population. Config: both sources with their built-in definitions, {linkage_text}, one period {PERIOD["label"]} ({PERIOD["start"]} – {PERIOD["end"]}), age classes <40 / 40+, estimators `ztpoisson ~ sex + age_class + region` on n_police, `chao` on n_police, `loglinear` [police, iom] with covariates sex, age_class, region, and `chapman`; no linkage-uncertainty imputations; reports on. `run_pipeline(config, force=True)` in a fresh process: {status}.

| stage | status | seconds | start GiB | peak GiB | rows |
|---|---|---|---|---|---|
{chr(10).join(rows)}

{link_steps}

Reconciliation:

{chr(10).join(check_lines) or "- not reached"}

{link_line}Estimates for {PERIOD["label"]} against the true N = {truth:,}; 'true links': the same estimator on the persons the simulator's truth links:

| estimator | N̂ | 95% interval | vs true N | true links N̂ (vs true N) | warnings |
|---|---|---|---|---|---|
{chr(10).join(est_lines) or "| – | not reached | | | | |"}
"""
    print(md)
    block_path = world.parent / f"section-{variant}.md"
    block_path.write_text(md, encoding="utf-8")
    if not args.no_docs:
        write_section("pipeline", compose_section(world.parent))
        print(f"section 'pipeline' written to {BENCHMARKS_MD}")


def compose_section(out: Path) -> str:
    """The docs section: every measured run with a saved block, the largest world first and
    the built-in settings before variants."""

    def order(path: Path) -> tuple:
        name = path.stem.removeprefix("section-")
        return (-int(name.split("-")[0]), "-block" in name, name)

    blocks = [
        p.read_text(encoding="utf-8").strip() for p in sorted(out.glob("section-*.md"), key=order)
    ]
    return f"""## Pipeline at scale

The whole pipeline (validate → link → persons → estimate → report) on a simulated world whose police extract holds about 1,000,000 registrations and whose IOM extract about 100,000, run by `python bench/bench_pipeline.py` (`--police-records 100000` for a tenth). Per stage, from the run's manifest.json: seconds; peak GiB, the highest resident memory of the process and its worker processes sampled every 50 ms during the stage; start GiB, the same when the stage began (memory an earlier stage freed is not always handed back to the system, so a stage's peak includes what it started with). When the kernel kills the process, its memory was sampled from outside every 0.5 s.

The link stage scores every candidate pair and writes them all to pairs.parquet; the persons stage (weakest link per person) and the linkage report read that file back, so the memory of all three grows with the number of candidate pairs, which grows faster than the number of records (blocks of common names fill up to the linkage settings' `max_block_size`).

In the realistic default world heterogeneity hides people from the truncated count models, which fall short of the true N, and the two sources reach different people, so the covariate-free Chapman estimate overshoots (docs/simulator.md).

{(chr(10) * 2).join(blocks)}
"""


if __name__ == "__main__":
    main()
