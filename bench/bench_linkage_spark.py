"""Linkage on Apache Spark (``local[2]``): recapture's Spark engine beside Splink's Spark backend.

    python bench/bench_linkage_spark.py                         # 1M dedupe and 1M × 1M link
    python bench/bench_linkage_spark.py --n 100000              # the same at 100,000
    python bench/bench_linkage_spark.py --only splink --n 100000 --tasks link
    python bench/bench_linkage_spark.py --growth                # recapture-on-Spark, link,
                                                                # 100k → 250k → 500k → 1M

The data and the model settings are those of ``bench_linkage_scale.py``: the dedupe is a
simulated police extract of about N registrations, the link N clean FEBRL-like records
against one corrupted copy of each, with the same five blocking rules for both tools.
Both tools run on a ``local[2]`` Spark with the same Spark settings (``--master``,
``--conf``, ``--driver-memory``), each in its own process tree:

* recapture calls ``recapture.linkage.spark.engine.link_records_spark`` (imported inside its
  runner, so that ``--only splink`` works without it);
* Splink 5 runs on its Spark backend (``SparkAPI``, its similarity-UDF jar registered) under
  another interpreter — ``--splink-python`` (default ``/tmp/splink-venv/bin/python``), because
  Splink is not a dependency of recapture::

      python -m venv /tmp/splink-venv
      /tmp/splink-venv/bin/pip install splink pyspark pandas pyarrow

Measured per run: wall time (reading the input Parquet to pairs and clusters written),
CPU time and peak resident memory of the whole process tree — the Python driver, the JVM
it starts and Spark's Python workers — sampled five times a second by the parent (the
worker's own ``ru_maxrss`` is kept as ``worker_peak_rss_gib``), and the pairwise F1 of the
clusters against the simulated truth. The machine's load average before and after each run
is recorded, because the machine may be shared. Every run is appended to
``bench/results/linkage_spark.jsonl``; the ``linkage-spark`` section of docs/benchmarks.md
shows the newest run of each (task, size, tool) found there.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_linkage_common as common  # noqa: E402
import bench_linkage_scale as scale  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "linkage_spark.jsonl"
SPLINK_PYTHON = "/tmp/splink-venv/bin/python"
GROWTH = (100_000, 250_000, 500_000, 1_000_000)
#: The Spark settings both tools get on top of ``--conf``: a 2-core machine, one JVM.
BASE_CONF = {
    "spark.sql.shuffle.partitions": "16",
    "spark.default.parallelism": "4",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
}
ENV_SETTINGS = "RECAPTURE_BENCH_SPARK"  # master and conf, passed from the parent to workers


def _spark_settings() -> tuple[str, dict[str, str]]:
    raw = json.loads(os.environ.get(ENV_SETTINGS, "{}"))
    return raw.get("master", "local[2]"), raw.get("conf", dict(BASE_CONF))


def _label(row: dict) -> str:
    """The tool, with where recapture encoded the records when that was not "auto"."""
    mode = row.get("encode_on", "auto")
    return row["tool"] if mode == "auto" or row["tool"] != "recapture" else f"recapture ({mode})"


def _write_frame(frame, path: Path) -> None:
    """A Spark DataFrame as a Parquet dataset, a polars one as a file."""
    if hasattr(frame, "toPandas"):
        frame.write.mode("overwrite").parquet(str(path))
    else:
        frame.write_parquet(path)


def _dataset(path: Path):
    """A Parquet file, or a dataset directory as Spark writes it (its .crc files ignored)."""
    import pyarrow.dataset as ds

    return ds.dataset(str(path), format="parquet", exclude_invalid_files=True)


def _count_rows(path: Path) -> int:
    return _dataset(path).count_rows()


def _read_dataset(path: Path):
    return _dataset(path).to_table()


# --------------------------------------------------------------------------- workers
def worker_recapture(task: str, inputs: list[str], out: Path) -> dict:
    from recapture.linkage.spark.engine import link_records_spark  # lands with the engine
    from recapture.linkage.spark.session import spark_session

    master, conf = _spark_settings()
    spark = spark_session(master, conf=conf, checkpoint_dir=str(out / "checkpoints"))
    start = time.perf_counter()
    records = spark.read.parquet(*inputs)
    if task == "link":
        from recapture.linkage.febrl import febrl_settings

        settings = febrl_settings(
            blocking_rules=[
                {"name": "_".join(keys), "keys": list(keys)} for keys in scale.SCALE_BLOCKS
            ],
            link_only=True,
        )
    else:
        from recapture.linkage.settings import LinkageSettings

        settings = LinkageSettings.default()
    encode_on = json.loads(os.environ.get(ENV_SETTINGS, "{}")).get("encode_on", "auto")
    result = link_records_spark(spark, records, settings, encode_on=encode_on)
    _write_frame(
        result.pairs.select("record_id_l", "record_id_r", "match_probability"),
        out / "pairs.parquet",
    )
    _write_frame(result.clusters.select("record_id", "person_id"), out / "clusters.parquet")
    wall = time.perf_counter() - start
    spark.stop()
    return {
        "wall_s": wall,
        "threshold": float(result.threshold),
        "n_pairs": _count_rows(out / "pairs.parquet"),
    }


def worker_splink(task: str, inputs: list[str], out: Path) -> dict:
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F
    from splink import Linker, SparkAPI, block_on
    from splink.backends.spark import similarity_jar_location

    master, conf = _spark_settings()
    builder = SparkSession.builder.master(master).appName("splink-bench")
    for key, value in {**conf, "spark.jars": similarity_jar_location()}.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    spark.sparkContext.setCheckpointDir(str(out / "checkpoints"))
    start = time.perf_counter()
    db = SparkAPI(spark_session=spark, break_lineage_method="parquet")
    if task == "link":
        import bench_linkage_febrl as febrl

        tables = [
            db.register(spark.read.parquet(p).drop("source"), dataset_display_name=f"t{i}")
            for i, p in enumerate(inputs)
        ]
        import splink.comparison_library as cl

        settings = febrl.splink_settings("link_only", blocks=scale.SCALE_BLOCKS)
        # the same comparisons; Spark parses dates with Java patterns, not strptime's
        settings.comparisons = [
            cl.DateOfBirthComparison(
                "date_of_birth", input_is_string=True, datetime_format="yyyyMMdd"
            )
            if type(c).__name__ == "DateOfBirthComparison"
            else c
            for c in settings.comparisons
        ]
        linker = Linker(tables, settings, log_level=logging.WARNING)
        det = [block_on("given_name", "surname", "date_of_birth")]
        em_rules = [block_on("given_name", "surname"), block_on("date_of_birth")]
    else:
        import bench_linkage_world as world

        frame = spark.read.parquet(inputs[0])
        frame = frame.select(*[c for c in world.SPLINK_COLUMNS if c in frame.columns])
        frame = frame.withColumn("birth_date", F.date_format("birth_date", "yyyy-MM-dd"))
        linker = Linker(
            db.register(frame, dataset_display_name="police"),
            world.splink_settings("dedupe_only"),
            log_level=logging.WARNING,
        )
        det, em_rules = world.SPLINK_DETERMINISTIC, world.SPLINK_EM_RULES
    pred, clusters = scale.splink_fit_predict(linker, det, em_rules)
    pred.as_spark_dataframe().select("record_id_l", "record_id_r", "match_probability").write.mode(
        "overwrite"
    ).parquet(str(out / "pairs.parquet"))
    # cluster ids are text in a link ("t0-__-17"): numbered by the parent, outside the timing
    clusters.as_spark_dataframe().select(
        "record_id", F.col("cluster_id").cast("string")
    ).write.mode("overwrite").parquet(str(out / "clusters.parquet"))
    wall = time.perf_counter() - start
    spark.stop()
    return {"wall_s": wall, "threshold": 0.5, "n_pairs": _count_rows(out / "pairs.parquet")}


WORKERS = {"recapture": worker_recapture, "splink": worker_splink}


# ---------------------------------------------------------------- process-tree runner
def run_tree(python: str, args: list[str], timeout: float, max_rss_gib: float) -> dict:
    """Run a worker under the shared harness; its process tree (the JVM and Spark's Python
    workers included) is what is measured, the worker's own figures are kept beside."""
    row = common.run_worker(python, Path(__file__).resolve(), args, timeout, max_rss_gib)
    row["tree_peak_gib"] = row.pop("sampled_peak_gib")
    row["worker_peak_rss_gib"] = row.pop("peak_rss_gib", None)
    row["worker_cpu_s"] = row.pop("cpu_s", None)
    return row


# ----------------------------------------------------------------------------- main
def _inputs(task: str, n: int, workdir: Path, seed: int):
    """Write the task's input Parquet files; return (paths, truth, size label, note)."""
    if task == "link":
        a, b, truth = scale.febrl_like(n, seed=seed)
        paths = [workdir / f"link_a_{n}.parquet", workdir / f"link_b_{n}.parquet"]
        # recapture's FEBRL settings compare birth year, month and day as numbers
        scale._split_dob(a).write_parquet(paths[0])
        scale._split_dob(b).write_parquet(paths[1])
        return paths, truth, f"{n:,} × {n:,}", ""
    records, truth, note = scale.police_extract(n, workdir, seed=seed)
    paths = [workdir / f"police_{n}.parquet"]
    records.write_parquet(paths[0])
    return paths, truth, f"{records.height:,}", note


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=1_000_000, help="records (per side for the link)")
    ap.add_argument("--tasks", default="dedupe,link")
    ap.add_argument("--only", default="recapture,splink", help="tools to run")
    ap.add_argument(
        "--growth",
        action="store_true",
        help="recapture-on-Spark only, link task, at each of --sizes",
    )
    ap.add_argument("--sizes", default=",".join(map(str, GROWTH)))
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--driver-memory", default="8g")
    ap.add_argument("--conf", action="append", default=[], help="KEY=VALUE, repeatable")
    ap.add_argument(
        "--encode-on",
        default="auto",
        choices=("auto", "driver", "executors"),
        help="recapture: where the records are numbered, keyed and encoded",
    )
    ap.add_argument("--splink-python", default=os.environ.get("RECAPTURE_BENCH_SPLINK_PYTHON"))
    ap.add_argument("--timeout", type=float, default=3 * 3600, help="seconds per run")
    ap.add_argument("--max-rss-gib", type=float, default=19.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--no-docs", action="store_true")
    ap.add_argument(
        "--docs-only",
        action="store_true",
        help="rewrite the docs section from --results, run nothing",
    )
    common.add_worker_arguments(ap)
    args = ap.parse_args(argv)
    if common.run_as_worker(args, WORKERS):
        return 0
    if args.docs_only:
        common.write_section("linkage-spark", render(_newest(args.results)))
        return 0

    import polars as pl

    from recapture.linkage.evaluation import pairwise_metrics_from_clusters

    conf = {**BASE_CONF, "spark.driver.memory": args.driver_memory}
    for item in args.conf:
        key, _, value = item.partition("=")
        conf[key.strip()] = value.strip()
    os.environ[ENV_SETTINGS] = json.dumps(
        {"master": args.master, "conf": conf, "encode_on": args.encode_on}
    )
    if args.growth:
        plan = [("link", int(s), "recapture") for s in args.sizes.split(",") if s]
    else:
        tools = [t for t in args.only.split(",") if t]
        plan = [(task, args.n, tool) for task in args.tasks.split(",") if task for tool in tools]
    info = common.machine()
    cmd = " ".join(
        ["python bench/bench_linkage_spark.py", *(sys.argv[1:] if argv is None else argv)]
    )
    with tempfile.TemporaryDirectory(prefix="bench_spark_", dir="/tmp") as tmp:
        workdir = Path(tmp)
        made: dict[tuple[str, int], tuple] = {}
        for task, n, tool in plan:
            if (task, n) not in made:
                t0 = time.perf_counter()
                made[task, n] = _inputs(task, n, workdir, args.seed)
                print(f"{task} {n:,}: data ready in {time.perf_counter() - t0:.0f} s", flush=True)
            paths, truth, size, note = made[task, n]
            python = sys.executable
            if tool == "splink":
                python = args.splink_python or SPLINK_PYTHON
            out = workdir / f"{task}_{n}_{tool}"
            res = run_tree(
                python,
                [tool, "--task", task, "--inputs", ",".join(map(str, paths)), "--out", str(out)],
                args.timeout,
                args.max_rss_gib,
            )
            row = {
                "date": info["date"],
                "machine": common.machine_line(info),
                "command": cmd,
                "task": task,
                "n": n,
                "size": size,
                "tool": tool,
                "engine": "spark",
                "master": args.master,
                "conf": conf,
                "encode_on": args.encode_on if tool == "recapture" else "auto",
                "note": note,
                **res,
            }
            if res["status"] == "ok":
                clusters = pl.from_arrow(_read_dataset(out / "clusters.parquet"))
                if "person_id" not in clusters.columns:
                    clusters = clusters.with_columns(
                        person_id=pl.col("cluster_id").rank("dense").cast(pl.Int64)
                    )
                scope = ("A", "B") if task == "link" else None
                row["cluster_f1"] = pairwise_metrics_from_clusters(clusters, truth, scope).f1
            args.results.parent.mkdir(parents=True, exist_ok=True)
            with args.results.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(row, default=float) + "\n")
            print(
                f"{task} {size} {tool}: {res['status']} wall {common.fmt(res.get('wall_s'), 1)} s, "
                f"tree CPU {common.fmt(res.get('tree_cpu_s'), 1)} s, tree peak "
                f"{common.fmt(res.get('tree_peak_gib'), 2)} GiB, pairs {res.get('n_pairs', '–')}, "
                f"F1 {common.fmt(row.get('cluster_f1'))} {res.get('error', '')}",
                flush=True,
            )
            if not args.no_docs:
                common.write_section("linkage-spark", render(_newest(args.results)))
    return 0


def _newest(path: Path) -> list[dict]:
    """The newest run of each (task, n, tool) in the results file, in a stable order."""
    rows: dict[tuple, dict] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                r = json.loads(line)
                rows[r["task"], r["n"], _label(r)] = r
    order = {"dedupe": 0, "link": 1}
    return sorted(rows.values(), key=lambda r: (order.get(r["task"], 2), r["n"], _label(r)))


def _status(row: dict) -> str:
    """``ok``, or why the run stopped: a timeout with the seconds it had run."""
    if row["status"] == "timeout" and row.get("process_wall_s"):
        return f"timeout at {row['process_wall_s']:,.0f} s"
    return row["status"]


def render(rows: list[dict]) -> str:
    body = [
        "## Linkage on Spark (local[2]): recapture's Spark engine and Splink's Spark backend",
        "",
        "Command: `python bench/bench_linkage_spark.py` (options per row below; every run is "
        "kept in `bench/results/linkage_spark.jsonl`, this table shows the newest of each).",
        "",
        "Both tools on one `local[2]` Spark (one JVM: driver and executor), the same Spark "
        "settings (16 shuffle partitions, Arrow on, `--driver-memory`, default 8g), the data "
        "and blocking rules of the scale benchmark (dedupe: simulated police extract with "
        "recapture's registration settings and Splink configured as in the world section; "
        "link: FEBRL-like N clean × N corrupted, five blocking rules for both). Wall: reading "
        "the input Parquet to pairs and clusters written. CPU and peak memory are those of the "
        "whole process tree (Python driver + JVM + Spark's Python workers), sampled every "
        "0.2 s; a JVM's heap grows towards `--driver-memory` before it collects, so the peak "
        "says more about that setting than about the tool's need. Load: the machine's 1-minute load average before → after the run; the machine "
        "has 2 cores and was shared with other work, so wall times are upper bounds and CPU "
        "time is the steadier figure. Driver Python GiB: the peak resident memory of the "
        "driver's Python process alone (the JVM is shared with the executor in local mode). "
        "'recapture (driver)' / 'recapture (executors)': `--encode-on`, where the records "
        "were numbered, keyed and encoded (docs/spark.md); plain 'recapture': runs of the "
        "engine before it could encode on the executors (everything on the driver).",
        "",
    ]
    table = []
    for r in rows:
        load = (
            f"{r['loadavg_before'][0]:.1f} → {r['loadavg_after'][0]:.1f}"
            if r.get("loadavg_before")
            else "–"
        )
        pairs = r.get("n_pairs")
        table.append(
            [
                r["task"],
                r["size"],
                _label(r),
                _status(r),
                common.fmt(r.get("wall_s"), 1),
                common.fmt(r.get("tree_cpu_s"), 1),
                common.fmt(r.get("tree_peak_gib"), 2),
                common.fmt(r.get("worker_peak_rss_gib"), 2),
                f"{pairs:,}" if isinstance(pairs, int) else "–",
                common.fmt(r.get("cluster_f1")),
                load,
                r["date"],
            ]
        )
    body.append(
        common.table(
            [
                "task",
                "records",
                "tool",
                "status",
                "wall s",
                "CPU s (tree)",
                "peak GiB (tree)",
                "driver Python GiB",
                "scored pairs",
                "cluster F1",
                "load",
                "date",
            ],
            table,
        )
    )
    growth = [r for r in rows if r["tool"] == "recapture" and r["task"] == "link"]
    if len(growth) > 1 and all(r["status"] == "ok" for r in growth):
        first = growth[0]
        body.append(
            "\nGrowth of recapture-on-Spark (link): "
            + ", ".join(
                f"{r['n']:,}: {r['wall_s'] / first['wall_s']:.1f}× wall, "
                f"{r['tree_cpu_s'] / first['tree_cpu_s']:.1f}× CPU"
                for r in growth
            )
            + f" (relative to {first['n']:,})."
        )
    for r in rows:
        if r["status"] not in ("ok", "timeout"):
            err = str(r.get("error") or "").strip().splitlines()[-1:] or [""]
            body.append(f"\n{r['task']} {r['size']} / {r['tool']}: {r['status']} {err[0]}")
    if not any(r["tool"] == "recapture" for r in rows):
        body.append(
            "\nrecapture-on-Spark: not measured yet — its runner calls "
            "`recapture.linkage.spark.engine.link_records_spark`; run "
            "`python bench/bench_linkage_spark.py --only recapture` (and `--growth`) once it is "
            "in place. Splink's side does not depend on it."
        )
    notes = sorted({r["note"] for r in rows if r.get("note")})
    body += [f"\n{note}" for note in notes]
    if rows:
        body.append(f"\n{rows[-1]['machine']}")
    return "\n".join(body)


if __name__ == "__main__":
    raise SystemExit(main())
