"""Speed and memory at scale: 1M-record police dedupe and a 1M × 1M link, recapture vs Splink.

    python bench/bench_linkage_scale.py            # full scale (1,000,000 records per side)
    python bench/bench_linkage_scale.py --quick    # 100,000 per side, for development

Two tasks, each tool in its own process (wall time and peak RSS of that process):

* ``dedupe``: a simulated police extract of about N registrations from
  ``recapture.synthetic`` (the simulator's default world with the population scaled up
  until the police source holds N registrations), validated by ``recapture.validation``.
  When the simulator is not importable the FEBRL-like generator below makes a dedupe
  file instead, and the section says so.
* ``link``: N × N FEBRL-like records made by :func:`febrl_like`: N people with
  Zipf-distributed names, street, suburb, postcode, state and birth date drawn from
  generated vocabularies; file A holds them clean, file B one corrupted copy of each
  (per field: 12% one random edit — deletion, insertion, substitution or transposition —
  5% missing; birth dates 8% one digit changed, 4% day and month swapped; 2% given and
  family names swapped), shuffled. Every record of A has exactly one true match in B.

Wall time counts loading the input Parquet, training, scoring every candidate pair and
clustering. Results go to the ``linkage-scale`` section of docs/benchmarks.md.
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

SYLLABLES = (
    "ba be bi bo bu da de di do du ka ke ki ko ku la le li lo lu ma me mi mo mu na ne ni no nu "
    "ra re ri ro ru sa se si so su ta te ti to tu va ve vi vo wa we wi an en in on ar er ir or "
    "el al il ol han son sen man berg ton ley ford well wood ham shaw field"
).split()
STATES = ("nsw", "vic", "qld", "wa", "sa", "tas", "act", "nt")
STATE_WEIGHTS = (0.32, 0.25, 0.2, 0.1, 0.07, 0.03, 0.02, 0.01)
LETTERS = "abcdefghijklmnopqrstuvwxyz"


# ------------------------------------------------------------------------ data: FEBRL-like
def _vocabulary(rng, size: int, min_syl: int, max_syl: int) -> list[str]:
    words: set[str] = set()
    while len(words) < size:
        k = rng.integers(min_syl, max_syl + 1, size=size)
        parts = rng.integers(0, len(SYLLABLES), size=(size, max_syl))
        for row, n in zip(parts, k, strict=True):
            words.add("".join(SYLLABLES[p] for p in row[:n]))
    return sorted(words)[:size]


def _zipf_draw(rng, vocab: list[str], n: int, s: float = 1.05, offset: float = 5.0):
    import numpy as np

    w = 1.0 / (np.arange(len(vocab)) + offset) ** s
    idx = rng.choice(len(vocab), size=n, p=w / w.sum())
    perm = rng.permutation(len(vocab))  # rank not tied to alphabetical order
    return np.asarray(vocab)[perm][idx]


def _corrupt(frame, col: str, rng, edit_rate: float, missing_rate: float):
    """One random character edit on a share of rows, and some values made missing."""
    import numpy as np
    import polars as pl

    n = frame.height
    op = rng.choice(
        5, size=n, p=[1 - edit_rate, edit_rate / 4, edit_rate / 4, edit_rate / 4, edit_rate / 4]
    )
    tmp = pl.DataFrame(
        {
            "_op": op,
            "_u": rng.uniform(size=n),
            "_ch": np.asarray(list(LETTERS))[rng.integers(0, 26, size=n)],
            "_miss": rng.uniform(size=n) < missing_rate,
        }
    )
    s = pl.col(col)
    pos = (pl.col("_u") * s.str.len_chars()).floor().cast(pl.Int64)
    head = s.str.slice(0, pos)
    edited = (
        pl.when(pl.col("_op") == 1)
        .then(pl.concat_str([head, s.str.slice(pos + 1)]))
        .when(pl.col("_op") == 2)
        .then(pl.concat_str([head, pl.col("_ch"), s.str.slice(pos)]))
        .when(pl.col("_op") == 3)
        .then(pl.concat_str([head, pl.col("_ch"), s.str.slice(pos + 1)]))
        .when(pl.col("_op") == 4)
        .then(
            pl.concat_str(
                [head, s.str.slice(pos + 1, 1), s.str.slice(pos, 1), s.str.slice(pos + 2)]
            )
        )
        .otherwise(s)
    )
    out = pl.concat([frame, tmp], how="horizontal").with_columns(
        pl.when(pl.col("_miss")).then(None).otherwise(edited).alias(col)
    )
    return out.drop("_op", "_u", "_ch", "_miss")


def febrl_like(n: int, seed: int = 1):
    """(A, B, truth): N clean records, one corrupted copy of each, record → person truth."""
    import numpy as np
    import polars as pl

    rng = np.random.default_rng(seed)
    given = _vocabulary(rng, 4_000, 2, 3)
    family = _vocabulary(rng, 40_000, 2, 4)
    streets = [
        w + " " + t
        for w, t in zip(
            _vocabulary(rng, 8_000, 2, 3),
            rng.choice(["street", "road", "avenue", "place", "crescent"], 8_000),
            strict=True,
        )
    ]
    suburbs = _vocabulary(rng, 3_000, 2, 4)
    suburb = _zipf_draw(rng, suburbs, n, s=0.9)
    suburb_postcode = {s: f"{2000 + i * 7 % 7000:04d}" for i, s in enumerate(suburbs)}
    birth = np.datetime64("1935-01-01") + rng.integers(0, 365 * 70, size=n).astype("timedelta64[D]")
    a = (
        pl.DataFrame(
            {
                "given_name": _zipf_draw(rng, given, n),
                "surname": _zipf_draw(rng, family, n),
                "street_number": rng.geometric(0.03, size=n).astype(str),
                "address_1": _zipf_draw(rng, streets, n, s=0.8),
                "address_2": np.char.add("unit ", rng.integers(1, 40, size=n).astype(str)),
                "suburb": suburb,
                "postcode": pl.Series(suburb).replace_strict(suburb_postcode),
                "state": rng.choice(STATES, size=n, p=STATE_WEIGHTS),
                "date_of_birth": np.datetime_as_string(birth),
                "_unit": rng.uniform(size=n) < 0.3,
            },
        )
        .with_columns(
            pl.when(pl.col("_unit")).then(pl.col("address_2")).alias("address_2"),
            pl.col("date_of_birth").str.replace_all("-", ""),
            person=pl.int_range(n, dtype=pl.Int64),
        )
        .drop("_unit")
    )
    b = a
    for col in (
        "given_name",
        "surname",
        "address_1",
        "address_2",
        "suburb",
        "postcode",
        "street_number",
    ):
        b = _corrupt(b, col, rng, 0.12, 0.05)
    dob = pl.col("date_of_birth")
    digit = rng.integers(0, 8, size=n)
    b = b.with_columns(
        _r=pl.Series(rng.uniform(size=n)),
        _d=pl.Series(digit),
        _v=pl.Series(rng.integers(0, 10, size=n).astype(str)),
    )
    b = (
        b.with_columns(
            pl.when(pl.col("_r") < 0.08)
            .then(
                pl.concat_str(
                    [dob.str.slice(0, pl.col("_d")), pl.col("_v"), dob.str.slice(pl.col("_d") + 1)]
                )
            )
            .when(pl.col("_r") < 0.12)
            .then(pl.concat_str([dob.str.slice(0, 4), dob.str.slice(6, 2), dob.str.slice(4, 2)]))
            .when(pl.col("_r") < 0.15)
            .then(None)
            .otherwise(dob)
            .alias("date_of_birth"),
            _swap=pl.Series(rng.uniform(size=n) < 0.02),
        )
        .with_columns(
            pl.when(pl.col("_swap"))
            .then(pl.col("surname"))
            .otherwise(pl.col("given_name"))
            .alias("given_name"),
            pl.when(pl.col("_swap"))
            .then(pl.col("given_name"))
            .otherwise(pl.col("surname"))
            .alias("surname"),
        )
        .drop("_r", "_d", "_v", "_swap")
    )
    b = b.sample(fraction=1.0, shuffle=True, seed=seed)
    a = a.with_columns(record_id=pl.int_range(n, dtype=pl.Int64), source=pl.lit("A"))
    b = b.with_columns(record_id=pl.int_range(n, 2 * n, dtype=pl.Int64), source=pl.lit("B"))
    truth = pl.concat(
        [a.select("record_id", "source", "person"), b.select("record_id", "source", "person")]
    ).rename({"person": "person_id"})
    return a.drop("person"), b.drop("person"), truth


def _split_dob(records):
    import polars as pl

    dob = pl.col("date_of_birth")
    out = records.with_columns(
        dob.str.slice(0, 4).cast(pl.Int32, strict=False).alias("birth_year"),
        dob.str.slice(4, 2).cast(pl.Int32, strict=False).alias("birth_month"),
        dob.str.slice(6, 2).cast(pl.Int32, strict=False).alias("birth_day"),
    )
    valid = pl.col("birth_month").is_between(1, 12) & pl.col("birth_day").is_between(1, 31)
    return out.with_columns(
        pl.when(valid).then(pl.col("birth_month")).alias("birth_month"),
        pl.when(valid).then(pl.col("birth_day")).alias("birth_day"),
        pl.when(pl.col("birth_year").is_between(1800, 2100))
        .then(pl.col("birth_year"))
        .alias("birth_year"),
    )


def police_extract(n: int, workdir: Path, seed: int = 1):
    """A simulated, validated police extract of about ``n`` registrations, and its truth."""
    import bench_linkage_world as world

    records, truth, note = world.build_world(
        workdir / "world", seed=seed, police_target=n, sources=("police",)
    )
    return records, truth, note


# --------------------------------------------------------------------------- workers
def _link_fn():
    try:
        from recapture.linkage import link_records
    except ImportError:
        from recapture.linkage.engine import link_records
    return link_records


def worker_recapture(task: str, inputs: list[str], out: Path) -> dict:
    import polars as pl

    start = time.perf_counter()
    records = pl.concat([pl.read_parquet(p) for p in inputs], how="diagonal_relaxed")
    if task == "link":
        from recapture.linkage.febrl import febrl_settings

        # the same candidate rules as Splink at this scale: the FEBRL settings' broad rules
        # (exact birth date, name prefixes + state, street number + suburb) are meant for
        # 5,000 records and materialise hundreds of millions of pairs at 1M × 1M
        settings = febrl_settings(
            blocking_rules=[{"name": "_".join(keys), "keys": list(keys)} for keys in SCALE_BLOCKS],
            link_only=True,
        )
        records = _split_dob(records)
    else:
        from recapture.linkage.settings import LinkageSettings

        settings = LinkageSettings.default()
    result = _link_fn()(records, settings)
    result.pairs.select("record_id_l", "record_id_r", "match_probability").write_parquet(
        out / "pairs.parquet"
    )
    result.clusters.select("record_id", "person_id").write_parquet(out / "clusters.parquet")
    wall = time.perf_counter() - start
    return {"wall_s": wall, "threshold": float(result.threshold), "n_pairs": result.pairs.height}


def splink_fit_predict(linker, det, em_rules):
    """Splink's training and prediction as every linkage benchmark runs them, whatever the
    backend: λ from deterministic rules (recall 0.7), u from 10⁷ random pairs (seed 1), m
    by EM under each rule; pairs scored and clustered at probability 0.5."""
    linker.training.estimate_probability_two_random_records_match(det, recall=0.7)
    linker.training.estimate_u_using_random_sampling(max_pairs=1e7, seed=1)
    for rule in em_rules:
        linker.training.estimate_parameters_using_expectation_maximisation(rule)
    pred = linker.inference.predict()
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
        pred, threshold_match_probability=0.5
    )
    return pred, clusters


def worker_splink(task: str, inputs: list[str], out: Path) -> dict:
    import pandas as pd
    from splink import DuckDBAPI, Linker, block_on

    start = time.perf_counter()
    db = DuckDBAPI()
    if task == "link":
        import bench_linkage_febrl as febrl

        tables = [
            db.register(pd.read_parquet(p).drop(columns=["source"]), dataset_display_name=f"t{i}")
            for i, p in enumerate(inputs)
        ]
        settings = febrl.splink_settings("link_only", blocks=SCALE_BLOCKS)
        linker = Linker(tables, settings, log_level=logging.WARNING)
        det = [block_on("given_name", "surname", "date_of_birth")]
        em_rules = [block_on("given_name", "surname"), block_on("date_of_birth")]
    else:
        import bench_linkage_world as world

        df = world.splink_frame(pd.read_parquet(inputs[0]))
        linker = Linker(
            db.register(df, dataset_display_name="police"),
            world.splink_settings("dedupe_only"),
            log_level=logging.WARNING,
        )
        det, em_rules = world.SPLINK_DETERMINISTIC, world.SPLINK_EM_RULES
    pred, clusters = splink_fit_predict(linker, det, em_rules)
    pred.as_duckdbpyrelation().select("record_id_l, record_id_r, match_probability").write_parquet(
        str(out / "pairs.parquet")
    )
    clusters.as_duckdbpyrelation().select(
        "record_id, dense_rank() over (order by cluster_id) - 1 as person_id"
    ).write_parquet(str(out / "clusters.parquet"))
    wall = time.perf_counter() - start
    import pyarrow.parquet as pq

    n_pairs = pq.ParquetFile(out / "pairs.parquet").metadata.num_rows
    return {"wall_s": wall, "threshold": 0.5, "n_pairs": int(n_pairs)}


#: Splink candidate rules at scale: single-field rules blow up with Zipf names at 1M.
SCALE_BLOCKS = (
    ("given_name", "surname"),
    ("surname", "date_of_birth"),
    ("given_name", "date_of_birth"),
    ("postcode", "street_number"),
    ("suburb", "address_1"),
)

WORKERS = {"recapture": worker_recapture, "splink": worker_splink}


# ----------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--quick", action="store_true", help="100,000 records per side instead of 1,000,000"
    )
    ap.add_argument("--n", type=int, default=None, help="records per side (overrides --quick)")
    ap.add_argument("--tasks", default="link,dedupe")
    ap.add_argument("--tools", default="recapture,splink")
    ap.add_argument("--peer-python", default=None)
    ap.add_argument("--timeout", type=float, default=4 * 3600)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--max-rss-gib",
        type=float,
        default=14.0,
        help="stop a tool whose resident memory exceeds this",
    )
    ap.add_argument("--no-docs", action="store_true")
    ap.add_argument(
        "--section",
        default=None,
        help="docs section key (default linkage-scale[-quick]); lets tasks run separately",
    )
    common.add_worker_arguments(ap)
    args = ap.parse_args(argv)

    if common.run_as_worker(args, WORKERS):
        return 0

    import polars as pl

    from recapture.linkage.evaluation import pairwise_metrics_from_clusters

    n = args.n or (100_000 if args.quick else 1_000_000)
    key = args.section or ("linkage-scale" if n >= 1_000_000 else "linkage-scale-quick")
    info = common.machine()
    rows, notes = [], []
    with tempfile.TemporaryDirectory(prefix="bench_scale_", dir="/tmp") as tmp:
        workdir = Path(tmp)
        for task in [t for t in args.tasks.split(",") if t]:
            t0 = time.perf_counter()
            if task == "link":
                a, b, truth = febrl_like(n, seed=args.seed)
                inputs = [workdir / "link_a.parquet", workdir / "link_b.parquet"]
                a.write_parquet(inputs[0])
                b.write_parquet(inputs[1])
                size = f"{n:,} × {n:,}"
            else:
                records, truth, note = police_extract(n, workdir, seed=args.seed)
                inputs = [workdir / "police.parquet"]
                records.write_parquet(inputs[0])
                size = f"{records.height:,}"
                notes.append(note)
            print(f"{task}: data ready ({size}) in {time.perf_counter() - t0:.0f} s", flush=True)
            for tool in [t for t in args.tools.split(",") if t]:
                python = (
                    sys.executable if tool == "recapture" else common.peer_python(args.peer_python)
                )
                out = workdir / f"{task}_{tool}"
                res = common.run_worker(
                    python,
                    Path(__file__),
                    [
                        tool,
                        "--task",
                        task,
                        "--inputs",
                        ",".join(map(str, inputs)),
                        "--out",
                        str(out),
                    ],
                    args.timeout,
                    args.max_rss_gib,
                )
                row = {"task": task, "size": size, "tool": tool, **res}
                if res["status"] == "ok":
                    clusters = pl.read_parquet(out / "clusters.parquet")
                    scope = ("A", "B") if task == "link" else None
                    row["cluster_f1"] = pairwise_metrics_from_clusters(clusters, truth, scope).f1
                rows.append(row)
                print(
                    f"{task} {tool}: {res['status']} wall {common.fmt(res.get('wall_s'), 1)} s, CPU {common.fmt(res.get('cpu_s'), 1)} s, peak {common.fmt(res.get('peak_rss_gib'), 2)} GiB, "
                    f"pairs {res.get('n_pairs', '–')}, cluster F1 {common.fmt(row.get('cluster_f1'))} {res.get('error', '')}",
                    flush=True,
                )
                if not args.no_docs:  # after every tool, so a long run leaves partial results
                    common.write_section(key, render(rows, notes, info, n, argv))
    return 0


#: What each task's table needs said beside it.
TASK_NOTES = {
    "link": "Scored pairs differ although both tools use the same five blocking rules: recapture refines "
    "blocks larger than its `max_block_size` (100) with a second key instead of comparing every pair "
    "in them, Splink compares them all.",
    "dedupe": "Both tools use their registration settings (recapture's built-in defaults; Splink as in the "
    "world section). The cluster F1 values are low for both because this world is scaled to 5.3 "
    "million people, where namesakes are far more frequent than in the default world (see the "
    "world section for accuracy at the realistic size).",
}
TASK_TITLES = {"link": "1M × 1M link", "dedupe": "1M-record police dedupe"}


def render(rows: list[dict], notes: list[str], info: dict, n: int, argv=None) -> str:
    shown = [a for a in (sys.argv[1:] if argv is None else argv)]
    cmd = " ".join(["python bench/bench_linkage_scale.py", *shown])
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    title = (
        f"## Linkage speed and memory: {TASK_TITLES[tasks[0]]}"
        if len(tasks) == 1 and n == 1_000_000
        else f"## Linkage speed and memory ({n:,} records per side)"
    )
    body = [
        title,
        "",
        f"Command: `{cmd}`",
        "",
        common.machine_line(info),
        "",
        "Dedupe: a simulated police extract (see the notes below); link: FEBRL-like generated "
        "records, N clean × N corrupted copies (generator and corruption rates in the script's "
        "docstring). Each tool runs alone in its own process: wall time from reading the input "
        "Parquet to scored pairs and clusters written; peak memory is that process's ru_maxrss "
        "(the sampled peak, RSS polled every 0.2 s by the parent, is a cross-check). CPU s: user + "
        "system time of all the process's threads, the fairer yardstick when other work shares the "
        "cores (wall time then depends on what else ran). "
        "Splink 5 on DuckDB with its default threads; recapture with its default settings "
        "(registration settings for the dedupe; for the link the FEBRL comparisons with the same five "
        "blocking rules as Splink and link-only, so both score the same candidate set). Target: recapture "
        "under half of Splink's wall time and under 8 GiB.",
        "",
    ]
    trows = []
    by_task: dict[str, dict[str, dict]] = {}
    for r in rows:
        by_task.setdefault(r["task"], {})[r["tool"]] = r
        trows.append(
            [
                r["task"],
                r["size"],
                r["tool"],
                r["status"],
                common.fmt(r.get("wall_s"), 1),
                common.fmt(r.get("cpu_s"), 1),
                common.fmt(r.get("peak_rss_gib"), 2),
                common.fmt(r.get("sampled_peak_gib"), 2),
                f"{r.get('n_pairs', '–'):,}" if isinstance(r.get("n_pairs"), int) else "–",
                r.get("cluster_f1"),
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
                "CPU s",
                "peak GiB",
                "sampled peak GiB",
                "scored pairs",
                "cluster F1",
            ],
            trows,
        )
    )
    for task, tools in by_task.items():
        rc, sp = tools.get("recapture"), tools.get("splink")
        if rc and sp and rc.get("wall_s") and sp.get("wall_s"):
            body.append(
                f"\n{task}: recapture/Splink wall-time ratio {rc['wall_s'] / sp['wall_s']:.2f}, "
                f"CPU-time ratio {rc.get('cpu_s', float('nan')) / sp.get('cpu_s', float('nan')):.2f}, "
                f"peak-memory ratio {rc['peak_rss_gib'] / sp['peak_rss_gib']:.2f}."
            )
    for r in rows:
        if r["status"] != "ok":
            err = (r.get("error") or "").strip().splitlines()[-1:] or [""]
            body.append(f"\n{r['task']} / {r['tool']}: {r['status']} {err[0]}")
    body += [f"\n{note}" for note in notes if note]
    body += [f"\n{TASK_NOTES[t]}" for t in tasks if t in TASK_NOTES]
    return "\n".join(body)


if __name__ == "__main__":
    raise SystemExit(main())
