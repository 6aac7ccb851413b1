"""End-to-end accuracy: does the whole pipeline give what its models give on the truth?

    python bench/bench_end_to_end.py                       # 50 worlds of N = 23,000
    python bench/bench_end_to_end.py --worlds 5 --no-docs  # development
    python bench/bench_end_to_end.py --jobs 2              # two worlds at a time

Each world (seeds ``--seed``, ``--seed`` + 1, …) is the demo world (the models'
assumptions hold) with the simulator's default recording noise and no alias identities
(:func:`recapture.pipelines.accuracy.accuracy_world_config`), written to raw extracts and
run through validation, linkage, capture histories and the demo's covariate ZTP
(``~ sex + age_class + region`` on police counts) and covariate log-linear DSE (police ×
IOM by sex, age class and region), each with the default rule for unknown covariates and
sparse levels merged as configured, and ``--imputations`` imputed linkages for the
linkage-aware interval. The same estimators are fitted on (a) the true persons with their
true covariates and (b) the true persons with the covariates their records state; the
pipeline's fit is (c). Covariate part = b/a − 1, linkage part = c/b − 1, total = c/a − 1
(:mod:`recapture.pipelines.accuracy`). The target: mean total within ±1% for both. The DSE
is also refitted on the expected capture histories (:mod:`recapture.uncertainty.fractional`:
the threshold's links replaced by the model's probabilities) and that bias reported too.

Per-world rows go to ``bench/results/end_to_end.jsonl``; the table to the ``end-to-end``
section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import as_completed
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, machine_line, write_section  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "end_to_end.jsonl"
TARGET = 0.01


def _one_world(task: tuple[int, int, int]) -> list[dict]:
    from recapture import progress
    from recapture.pipelines.accuracy import world_accuracy

    seed, size, imputations = task
    progress.set_quiet(True)
    with tempfile.TemporaryDirectory(prefix=f"e2e-{seed}-") as tmp:
        return world_accuracy(tmp, seed=seed, size=size, imputations=imputations)


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def code_version() -> str:
    """The commit measured, the last change to the linkage (with validation) and to the
    estimators, and whether the tree had uncommitted changes (taken when the run starts)."""
    try:
        head = _git("log", "-1", "--format=%h")
        parts = [f"commit `{head}`"]
        for what, paths in (
            # the name keys and standard forms the linkage compares come from validation
            ("linkage and validation", ("recapture/linkage", "recapture/validation")),
            ("estimators", ("recapture/estimators",)),
        ):
            last = _git("log", "-1", "--format=%h %cs: %s", "--", *paths)
            if last:
                commit, subject = last.split(" ", 1)
                subject = subject if len(subject) < 100 else subject[:97] + "…"
                parts.append(f"{what} as of `{commit}` ({subject})")
        dirty = _git("status", "--porcelain", "--untracked-files=no", "--", "recapture")
    except (OSError, subprocess.CalledProcessError):
        return "unknown (no git)"
    return "; ".join(parts) + ("; with uncommitted changes to recapture/" if dirty else "")


def run(worlds: int, seed: int, size: int, imputations: int, jobs: int, results: Path) -> list:
    tasks = [(s, size, imputations) for s in range(seed, seed + worlds)]
    code = code_version()
    results.parent.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    t0 = time.perf_counter()
    with open(results, "w", encoding="utf-8") as out:

        def record(world_rows: list[dict]) -> None:
            rows.extend(world_rows)
            for r in world_rows:
                r["finished"] = time.time()
                r["started"] = r["finished"] - r["seconds"]
                r["code"] = code
                out.write(json.dumps(r, default=float) + "\n")
            out.flush()
            parts = ", ".join(
                f"{r['estimator']}: b/a {r['b'] / r['a'] - 1:+.2%} c/b {r['c'] / r['b'] - 1:+.2%}"
                for r in world_rows
            )
            print(
                f"world {world_rows[0]['seed']} ({world_rows[0]['seconds']:.0f} s; "
                f"{time.perf_counter() - t0:.0f} s in all): {parts}",
                flush=True,
            )

        if jobs > 1:
            from recapture.workers import worker_pool

            for k in ("POLARS_MAX_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
                os.environ[k] = "1"
            with worker_pool(jobs, mp_context=mp.get_context("spawn")) as pool:
                for fut in as_completed([pool.submit(_one_world, t) for t in tasks]):
                    record(fut.result())
        else:
            for t in tasks:
                record(_one_world(t))
    return sorted(rows, key=lambda r: (r["seed"], r["estimator"]))


def _pct(x: float, se: float | None = None) -> str:
    if x != x:  # NaN
        return "–"
    return f"{x:+.2%}" + (f" ± {se:.2%}" if se is not None and se == se else "")


def render(rows: list[dict], args, wall: float) -> str:
    from recapture.pipelines.accuracy import summarise_accuracy

    summary = summarise_accuracy(rows)
    per_world = {r["seed"]: r for r in rows}.values()
    finished = max((r.get("finished", 0) for r in rows), default=0) or time.time()
    per_world = list(per_world)

    def mean_of(value) -> float:
        return sum(value(r) for r in per_world) / len(per_world)

    def mean(key: str) -> float:
        return mean_of(lambda r: r[key])

    lines = [
        "## End to end: the pipeline against its models on the truth",
        "",
        f"`python bench/bench_end_to_end.py --worlds {args.worlds} --seed {args.seed} "
        f"--size {args.size} --imputations {args.imputations} --jobs {args.jobs}` — "
        f"{machine_line()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(finished))}; "
        f"{wall / 60:.1f} min wall ({args.jobs} job(s), machine shared with other work). "
        f"Code measured: {rows[0].get('code') or code_version()}.",
        "",
        f"{args.worlds} demo worlds of N = {args.size:,} (the models' assumptions hold) with the "
        "simulator's default recording noise and no alias identities, from raw extracts "
        "through validation, linkage and capture histories to the demo's covariate models. "
        f"Per world on average {mean('records'):,.0f} registrations, "
        f"{mean('persons_true'):,.0f} true persons seen ({mean('persons_linked'):,.0f} found by "
        f"the linkage), linkage F1 {mean('f1_police'):.3f} (police) and "
        f"{mean('f1_police_iom'):.3f} (police × IOM); {mean('unknown_covariate_share'):.1%} of "
        "the true persons have a covariate their records leave unknown.",
        "",
        "(a) true persons, true covariates; (b) true persons, covariates as recorded "
        "(unknown where every registration lacks it, fitted by the default rule); (c) the "
        "pipeline. Parts: covariate = b/a − 1, linkage = c/b − 1, total = c/a − 1 "
        f"(mean ± Monte-Carlo SE over worlds; target: total within ±{TARGET:.0%}). "
        "Coverage and width (relative to N) of the pipeline's model interval and of its "
        f"linkage-aware interval ({args.imputations} imputed linkages, Rubin's rules).",
        "",
        "| estimator | worlds | covariate part | linkage part | total | mean abs total "
        "| SD of total | (a) vs N | (c) vs N | coverage: model / linkage-aware "
        "| width: model / linkage-aware | linkage share of variance |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in summary:
        lines.append(
            f"| {s['estimator']} | {s['worlds']}"
            + (f" ({s['failed']} failed)" if s["failed"] else "")
            + f" | {_pct(s['covariate'], s['covariate_se'])} | {_pct(s['linkage'], s['linkage_se'])}"
            f" | {_pct(s['total'], s['total_se'])} | {s['total_abs']:.2%} | {s['total_sd']:.2%}"
            f" | {_pct(s['a_vs_truth'])} | {_pct(s['c_vs_truth'])}"
            f" | {s['coverage']:.0%} / {s['aware_coverage']:.0%}"
            f" | {s['width']:.1%} / {s['aware_width']:.1%} | {s['linkage_variance_share']:.1%} |"
        )
    verdicts = []
    for s in summary:
        ok = abs(s["total"]) <= TARGET
        part = "linkage" if abs(s["linkage"]) >= abs(s["covariate"]) else "covariate"
        verdicts.append(
            f"{s['estimator']}: total {_pct(s['total'])} — "
            + ("within" if ok else "outside")
            + f" ±{TARGET:.0%}; the larger part is the {part} part ({_pct(s[part])})."
        )
    lines += ["", " ".join(verdicts)]
    expected = [s for s in summary if s.get("expected_worlds")]
    if expected:
        lines += [
            "",
            "The same model fitted to the expected capture histories "
            "(`recapture.uncertainty.fractional.expected_capture_persons`: each cross-list "
            "link weighted by its probability of being true, each list-2-only person given "
            "its probability of a missed counterpart; docs/linkage-uncertainty.md): "
            + "; ".join(
                f"{s['estimator']}: linkage part {_pct(s['expected_linkage'], s['expected_linkage_se'])}, "
                f"total {_pct(s['expected_total'], s['expected_total_se'])} over "
                f"{s['expected_worlds']} worlds"
                for s in expected
            )
            + ".",
        ]
    if all("in_both_true" in r for r in per_world):
        change = {
            what: _pct(mean_of(lambda r, k=key: r[f"{k}_linked"] / r[f"{k}_true"] - 1))
            for what, key in (
                ("police persons seen once", "police_once"),
                ("seen twice", "police_twice"),
                ("persons in both lists", "in_both"),
            )
        }
        lines += [
            "",
            "What the linkage changed, linked against true persons, mean per world: "
            + ", ".join(f"{what} {value}" for what, value in change.items())
            + " (a wrong merge of two persons seen once makes one seen twice; a missed "
            "police × IOM link lowers the overlap).",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--worlds", type=int, default=50)
    ap.add_argument("--seed", type=int, default=1, help="seed of the first world")
    ap.add_argument("--size", type=int, default=23_000, help="true population size N per world")
    ap.add_argument("--imputations", type=int, default=20, help="imputed linkages per world")
    ap.add_argument("--jobs", type=int, default=1, help="worlds run in parallel")
    ap.add_argument("--results", type=Path, default=RESULTS, help="per-world rows (JSON lines)")
    ap.add_argument("--no-docs", action="store_true", help="print only")
    ap.add_argument(
        "--summary-only",
        action="store_true",
        help="re-render the table from --results (the rows of an earlier run) without running",
    )
    args = ap.parse_args(argv)
    if args.worlds < 2 or args.jobs < 1 or args.size < 100:
        ap.error("--worlds ≥ 2, --jobs ≥ 1 and --size ≥ 100")
    t0 = time.perf_counter()
    if args.summary_only:
        rows = [json.loads(line) for line in args.results.read_text().splitlines() if line]
        seeds = sorted({r["seed"] for r in rows})
        args.worlds, args.seed, args.size = len(seeds), seeds[0], rows[0]["size"]
        args.imputations = rows[0].get("imputations", args.imputations)
        if all("finished" in r for r in rows):
            wall = max(r["finished"] for r in rows) - min(r["started"] for r in rows)
        else:  # rows without timestamps: the worlds' own times, one after another
            wall = sum({r["seed"]: r["seconds"] for r in rows}.values())
    else:
        rows = run(args.worlds, args.seed, args.size, args.imputations, args.jobs, args.results)
        wall = time.perf_counter() - t0
    text = render(rows, args, wall)
    print(text)
    if not args.no_docs:
        write_section("end-to-end", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
