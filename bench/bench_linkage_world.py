"""Linkage on the simulator's default world: accuracy, calibration and what errors do to N̂.

    python bench/bench_linkage_world.py [--seed 1] [--tools recapture,splink] [--peer-python PY]

simulate (recapture.synthetic, default config) → write the raw extracts → validate
(recapture.validation) → link all records with recapture and with Splink 5 configured
as closely as the two engines allow (same blocking keys, same fields, TF adjustment on
names, EM on two blocking rules). Each tool's threshold is chosen without the truth:
recapture's own rule, and for Splink both its customary 0.5 and the threshold that
maximises its own model-expected F1. Reported, against the simulator's truth:

* police deduplication F1 and police × IOM linkage F1 of the links the clusters induce;
* calibration of the match probabilities over all scored candidate pairs (ECE, Brier,
  reliability table);
* the covariate-free truncated Poisson, Chao and Chapman estimates computed from each
  tool's clusters and from the true persons (target: within 3%).

Results go to the ``linkage-world`` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_linkage_common as common  # noqa: E402

#: Columns of records.parquet that the Splink model sees.
SPLINK_COLUMNS = [
    "record_id",
    "source",
    "family_name",
    "given_name",
    "family_name_key",
    "given_name_key",
    "birth_date",
    "birth_year",
    "sex",
    "nationality_iso3",
    "nationality_region",
    "v_number",
]


# ------------------------------------------------------------------------ the world
def build_world(
    workdir: Path,
    *,
    seed: int | None = None,
    police_target: int | None = None,
    sources=("police", "iom"),
):
    """Simulate, write and validate a world; return (records, truth, note).

    ``truth`` has record_id, source and the true person_id of every validated record
    (quarantined rows have no record). ``police_target`` scales the population so that
    the police extract holds about that many registrations.
    """
    import dataclasses

    from recapture import synthetic
    from recapture.validation import validate_extracts

    config = synthetic.SimulationConfig() if seed is None else synthetic.SimulationConfig(seed=seed)
    note = "World: the simulator's default configuration"
    if police_target:
        probe = synthetic.simulate_world(config)
        size = int(round(config.size * police_target / max(probe.police.height, 1)))
        config = dataclasses.replace(config, size=size)
        note += f", population scaled to {size:,} people for about {police_target:,} police registrations"
    world = synthetic.simulate_world(config)
    raw = synthetic.write_world(world, workdir / "raw")
    inputs = [(raw[name], name) for name in sources]
    result = validate_extracts(inputs, as_of=config.period_end)
    records = result.records
    truth = records.select("record_id", "source", "source_row").join(
        world.records.select("source", "source_row", "person_id", "identity"),
        on=["source", "source_row"],
        how="left",
    )
    if truth["person_id"].null_count():
        raise RuntimeError("validated records that do not map to a simulated registration")
    truth = truth.select("record_id", "source", "person_id", "identity")
    note += (
        f" (seed {config.seed}, N = {config.size:,}): {records.height:,} validated records "
        f"({', '.join(f'{k} {v:,}' for k, v in records.group_by('source').len().sort('source').iter_rows())}), "
        f"{result.quarantine.height:,} quarantined, {truth['person_id'].n_unique():,} true persons among them."
    )
    return records, truth, note


def linkable_truth(records, truth):
    """The persons an oracle could form from what the records say.

    Two records of one person are joined when they were registered under the same identity
    (the person's own, or the same alias) or carry the same recorded V-number. A person's
    registrations under an alias without a shared V-number share nothing but chance
    agreements (a kept birth date, sex, a nationality), no more than namesakes do, so no
    linker can be expected to join them: their split is the information ceiling of the
    world, and the estimates from these clusters are the closest any linker can get.
    """
    import numpy as np
    import polars as pl
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    d = (
        records.select("record_id", "v_number")
        .join(truth.select("record_id", "person_id", "identity"), on="record_id")
        .sort("record_id")
        .with_row_index("_i")
    )
    same = d.join(d, on="person_id", suffix="_r").filter(
        (pl.col("_i") < pl.col("_i_r"))
        & (
            (pl.col("identity") == pl.col("identity_r"))
            | (pl.col("v_number") == pl.col("v_number_r")).fill_null(False)
        )
    )
    n = d.height
    graph = coo_matrix(
        (np.ones(same.height), (same["_i"].to_numpy(), same["_i_r"].to_numpy())), shape=(n, n)
    )
    _, labels = connected_components(graph, directed=False)
    return (
        d.select("record_id", pl.Series("person_id", labels.astype(np.int64)))
        .join(truth.select("record_id", "source"), on="record_id")
        .select("record_id", "source", "person_id")
    )


# --------------------------------------------------------------------------- Splink
def splink_frame(pdf):
    """records.parquet columns as Splink sees them (birth date as ISO text)."""
    import pandas as pd

    out = pdf[[c for c in SPLINK_COLUMNS if c in pdf.columns]].copy()
    out["birth_date"] = pd.to_datetime(out["birth_date"]).dt.strftime("%Y-%m-%d")
    return out


def splink_settings(link_type: str):
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl
    from splink import SettingsCreator, block_on

    tf = {"term_frequency_adjustments": True}
    nationality = cl.CustomComparison(
        output_column_name="nationality",
        comparison_levels=[
            cll.NullLevel("nationality_iso3"),
            cll.ExactMatchLevel("nationality_iso3"),
            cll.ExactMatchLevel("nationality_region"),
            cll.ElseLevel(),
        ],
    )
    return SettingsCreator(
        link_type=link_type,
        unique_id_column_name="record_id",
        blocking_rules_to_generate_predictions=[
            block_on("v_number"),
            block_on("family_name_key", "birth_year"),
            block_on("given_name_key", "birth_date"),
            "l.given_name_key = r.family_name_key and l.family_name_key = r.given_name_key",
        ],
        comparisons=[
            cl.NameComparison("family_name").configure(**tf),
            cl.NameComparison("given_name").configure(**tf),
            cl.DateOfBirthComparison("birth_date", input_is_string=True),
            cl.ExactMatch("sex"),
            nationality,
            cl.LevenshteinAtThresholds("v_number", [1]),
        ],
        retain_intermediate_calculation_columns=False,
        retain_matching_columns=False,
    )


def _splink_rules():
    from splink import block_on

    deterministic = [block_on("v_number"), block_on("family_name", "given_name", "birth_date")]
    em = [block_on("family_name_key", "given_name_key"), block_on("birth_date")]
    return deterministic, em


def __getattr__(name):  # lazy so that importing this module does not import splink
    if name == "SPLINK_DETERMINISTIC":
        return _splink_rules()[0]
    if name == "SPLINK_EM_RULES":
        return _splink_rules()[1]
    raise AttributeError(name)


# --------------------------------------------------------------------------- workers
def worker_splink(inputs: list[str], out: Path) -> dict:
    import pandas as pd
    from splink import DuckDBAPI, Linker

    start = time.perf_counter()
    db = DuckDBAPI()
    df = splink_frame(pd.read_parquet(inputs[0]))
    by_source = [
        db.register(g.drop(columns=["source"]), dataset_display_name=str(s))
        for s, g in df.groupby("source", sort=True)
    ]
    link_type = "link_and_dedupe" if len(by_source) > 1 else "dedupe_only"
    linker = Linker(
        by_source if len(by_source) > 1 else by_source[0],
        splink_settings(link_type),
        log_level=logging.WARNING,
    )
    deterministic, em_rules = _splink_rules()
    linker.training.estimate_probability_two_random_records_match(deterministic, recall=0.7)
    linker.training.estimate_u_using_random_sampling(max_pairs=1e7, seed=1)
    for rule in em_rules:
        linker.training.estimate_parameters_using_expectation_maximisation(rule)
    pred = linker.inference.predict()
    pairs = pred.as_pandas_dataframe()[["record_id_l", "record_id_r", "match_probability"]]
    pairs.to_parquet(out / "pairs.parquet")
    wall = time.perf_counter() - start
    return {"wall_s": wall, "n_pairs": len(pairs)}


def worker_recapture(inputs: list[str], out: Path) -> dict:
    import polars as pl

    try:
        from recapture.linkage import LinkageSettings, link_records
    except ImportError:
        from recapture.linkage.engine import link_records
        from recapture.linkage.settings import LinkageSettings

    start = time.perf_counter()
    records = pl.read_parquet(inputs[0])
    result = link_records(records, LinkageSettings.default())
    result.pairs.select("record_id_l", "record_id_r", "match_probability").write_parquet(
        out / "pairs.parquet"
    )
    result.clusters.select("record_id", "person_id").write_parquet(out / "clusters.parquet")
    wall = time.perf_counter() - start
    return {"wall_s": wall, "n_pairs": result.pairs.height, "threshold": float(result.threshold)}


WORKERS = {"recapture": worker_recapture, "splink": worker_splink}


# ------------------------------------------------------------------------ estimators
def truncated_poisson(counts) -> float:
    """Covariate-free zero-truncated Poisson N̂ = n/(1 − e^{−λ}), λ from mean = λ/(1 − e^{−λ})."""
    import numpy as np
    from scipy.optimize import brentq

    y = np.asarray(counts, dtype=float)
    n, mean = y.size, y.mean()
    if mean <= 1.0:
        return float("inf")
    lam = brentq(lambda x: x / -math.expm1(-x) - mean, 1e-10, mean + 50)
    return n / -math.expm1(-lam)


def chao(counts) -> float:
    """Chao's lower bound n + f1²/(2 f2)."""
    import numpy as np

    y = np.asarray(counts)
    f1, f2 = int((y == 1).sum()), int((y == 2).sum())
    return y.size + (f1 * f1 / (2 * f2) if f2 else float("inf"))


def chapman(n1: int, n2: int, m: int) -> float:
    return (n1 + 1) * (n2 + 1) / (m + 1) - 1


def estimates(assign, records) -> dict:
    """The three estimates from a record → person assignment (police counts; IOM in target)."""
    import polars as pl

    rec = records.select(
        "record_id", "source", *(["in_target"] if "in_target" in records.columns else [])
    )
    joined = assign.select("record_id", "person_id").join(rec, on="record_id", how="inner")
    police = joined.filter(pl.col("source") == "police").group_by("person_id").len()
    iom_rows = joined.filter(pl.col("source") == "iom")
    if "in_target" in iom_rows.columns:
        iom_rows = iom_rows.filter(pl.col("in_target"))
    iom = iom_rows.select("person_id").unique()
    m = police.join(iom, on="person_id", how="inner").height
    counts = police["len"].to_numpy()
    return {
        "police_persons": police.height,
        "f1": int((counts == 1).sum()),
        "f2": int((counts == 2).sum()),
        "iom_persons": iom.height,
        "both": m,
        "ztp": truncated_poisson(counts),
        "chao": chao(counts),
        "chapman": chapman(police.height, iom.height, m) if iom.height else float("nan"),
    }


def cross_link_noise(pairs, records) -> float:
    """The sd of the number of police × IOM-in-target links that the model's own match
    probabilities imply (√Σ p(1 − p) over the candidate pairs across the sources): the
    spread of the 'in both' count, and so of Chapman, that a calibrated linker cannot avoid
    in a world of this size, however good its threshold."""
    import numpy as np
    import polars as pl

    rec = records.select(
        "record_id",
        "source",
        pl.col("in_target").fill_null(False)  # as estimates(): only IOM in target counts
        if "in_target" in records.columns
        else pl.lit(True).alias("in_target"),
    )
    left = rec.rename({c: f"{c}_l" for c in rec.columns})
    right = rec.rename({c: f"{c}_r" for c in rec.columns})
    cross = (
        pairs.select("record_id_l", "record_id_r", "match_probability")
        .join(left, on="record_id_l")
        .join(right, on="record_id_r")
        .filter(
            (pl.col("source_l") != pl.col("source_r"))
            & pl.when(pl.col("source_l") == "iom")
            .then(pl.col("in_target_l"))
            .otherwise(pl.col("in_target_r"))
        )
    )
    p = cross["match_probability"].to_numpy()
    return float(np.sqrt(np.sum(p * (1 - p))))


# ----------------------------------------------------------------------------- main
def clusters_at(pairs, record_ids, threshold: float):
    """Connected components of the pairs at or above ``threshold`` (for Splink's scores)."""
    import numpy as np
    import polars as pl
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    ids = np.sort(np.asarray(record_ids))
    keep = pairs.filter(pl.col("match_probability") >= threshold)
    i = np.searchsorted(ids, keep["record_id_l"].to_numpy())
    j = np.searchsorted(ids, keep["record_id_r"].to_numpy())
    graph = coo_matrix((np.ones(i.size), (i, j)), shape=(ids.size, ids.size))
    _, labels = connected_components(graph, directed=False)
    return pl.DataFrame({"record_id": ids, "person_id": labels.astype(np.int64)})


def evaluate(
    tool: str, label: str, pairs, clusters, truth, records, threshold, linkable=None
) -> dict:
    import polars as pl

    from recapture.linkage import evaluation as ev

    truth = truth.select("record_id", "source", "person_id")
    out = {}
    if linkable is not None:  # the same F1 against the persons an oracle could form
        out["police_f1_linkable"] = ev.pairwise_metrics_from_clusters(
            clusters, linkable, "police"
        ).f1
        out["link_f1_linkable"] = ev.pairwise_metrics_from_clusters(
            clusters, linkable, ("police", "iom")
        ).f1
    if pairs is None:  # the oracle's clusters: no scored pairs
        police = ev.pairwise_metrics_from_clusters(clusters, truth, "police")
        link = ev.pairwise_metrics_from_clusters(clusters, truth, ("police", "iom"))
        return {
            **out,
            "tool": label,
            "threshold": float("nan"),
            "police_precision": police.precision,
            "police_recall": police.recall,
            "police_f1": police.f1,
            "link_precision": link.precision,
            "link_recall": link.recall,
            "link_f1": link.f1,
            "estimates": estimates(clusters, records),
        }
    labelled = ev.label_pairs(pairs, truth)
    p, y = labelled["match_probability"], labelled["is_match"]
    middle = labelled.filter(pl.col("match_probability").is_between(0.01, 0.99))
    police = ev.pairwise_metrics_from_clusters(clusters, truth, "police")
    link = ev.pairwise_metrics_from_clusters(clusters, truth, ("police", "iom"))
    cm = ev.cluster_metrics(clusters, truth)
    return {
        **out,
        "tool": label,
        "threshold": threshold,
        "police_precision": police.precision,
        "police_recall": police.recall,
        "police_f1": police.f1,
        "link_precision": link.precision,
        "link_recall": link.recall,
        "link_f1": link.f1,
        "pair_completeness": ev.blocking_metrics(pairs, truth).pair_completeness,
        "ece": ev.expected_calibration_error(p, y),
        "ece_middle": ev.expected_calibration_error(middle["match_probability"], middle["is_match"])
        if middle.height
        else float("nan"),
        "brier": ev.brier_score(p, y),
        "reliability": ev.reliability_table(p, y, n_bins=10),
        "persons_found": cm.persons_found,
        "true_persons": cm.true_persons,
        "split_persons": cm.split_persons,
        "merged_persons": cm.merged_persons,
        "estimates": estimates(clusters, records),
    }


def simulated_review(
    pairs, records, truth, threshold: float, workdir: Path, sample_size: int = 300
) -> dict:
    """Clerical review with the truth as the reviewer: estimated vs actual error rates."""
    import polars as pl

    from recapture.linkage import evaluation as ev
    from recapture.linkage.review import export_review_sample, review_error_rates

    path = workdir / "review.csv"
    sample = export_review_sample(
        pairs, records, path, threshold=threshold, sample_size=sample_size, seed=1
    )
    labelled = ev.label_pairs(sample.drop("label"), truth).with_columns(
        label=pl.when(pl.col("is_match")).then(pl.lit("match")).otherwise(pl.lit("non-match"))
    )
    labelled.drop("is_match").write_csv(path)
    est = review_error_rates(path)
    all_labelled = ev.label_pairs(pairs, truth)
    accepted = all_labelled.filter(pl.col("match_probability") >= threshold)
    return {
        "sample_size": sample_size,
        "precision": (est.precision, est.precision_ci, float(accepted["is_match"].mean())),
        "missed": (
            est.missed_link_rate,
            est.missed_link_rate_ci,
            float(
                (all_labelled["is_match"] & (all_labelled["match_probability"] < threshold)).sum()
                / all_labelled["is_match"].sum()
            ),
        ),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--seed", type=int, default=None, help="simulation seed (default: the simulator's)"
    )
    ap.add_argument("--tools", default="recapture,splink")
    ap.add_argument("--peer-python", default=None)
    ap.add_argument("--timeout", type=float, default=3600)
    ap.add_argument("--no-docs", action="store_true")
    ap.add_argument(
        "--seeds",
        default=None,
        metavar="A-B",
        help="instead: recapture alone on worlds with seeds A..B (and the default seed)",
    )
    common.add_worker_arguments(ap)
    args = ap.parse_args(argv)
    if common.run_as_worker(args, WORKERS, with_task=False):
        return 0
    if args.seeds:
        return main_seeds(args)

    import polars as pl

    from recapture.linkage.evaluation import expected_metrics_by_threshold

    info = common.machine()
    rows, failures = [], []
    with tempfile.TemporaryDirectory(prefix="bench_world_") as tmp:
        workdir = Path(tmp)
        t0 = time.perf_counter()
        records, truth, note = build_world(workdir, seed=args.seed)
        records_path = workdir / "records.parquet"
        records.write_parquet(records_path)
        print(f"{note} ({time.perf_counter() - t0:.0f} s)", flush=True)
        true_est = estimates(truth, records)
        linkable = linkable_truth(records, truth)
        rows.append(
            evaluate("oracle", "information ceiling (oracle)", None, linkable, truth, records, None)
        )
        for tool in [t for t in args.tools.split(",") if t]:
            python = sys.executable if tool == "recapture" else common.peer_python(args.peer_python)
            out = workdir / tool
            res = common.run_worker(
                python,
                Path(__file__),
                [tool, "--inputs", str(records_path), "--out", str(out)],
                args.timeout,
            )
            if res["status"] != "ok":
                failures.append((tool, res))
                print(f"{tool}: {res['status']}\n{res.get('error', '')}", file=sys.stderr)
                continue
            pairs = pl.read_parquet(out / "pairs.parquet")
            if tool == "recapture":
                variants = [
                    ("recapture", res["threshold"], pl.read_parquet(out / "clusters.parquet"))
                ]
            else:
                exp = expected_metrics_by_threshold(
                    pairs["match_probability"], thresholds=[x / 100 for x in range(1, 100)]
                )
                best = float(exp.sort("expected_f1", descending=True)["threshold"][0])
                variants = [
                    (f"{tool} p≥0.5", 0.5, None),
                    (f"{tool} p≥{best:.2f} (best expected F1)", best, None),
                ]
            for label, threshold, clusters in variants:
                if clusters is None:
                    clusters = clusters_at(pairs, records["record_id"], threshold)
                row = evaluate(tool, label, pairs, clusters, truth, records, threshold, linkable)
                if tool == "recapture":
                    row["review"] = simulated_review(pairs, records, truth, threshold, workdir)
                row.update(wall_s=res["wall_s"], peak_rss_gib=res["peak_rss_gib"])
                rows.append(row)
                e = row["estimates"]
                print(
                    f"{label:40s} police F1 {row['police_f1']:.4f}  link F1 {row['link_f1']:.4f}  PC {row['pair_completeness']:.4f}  "
                    f"ECE {row['ece']:.4f}  ZTP {_dev(e['ztp'], true_est['ztp'])}  Chao {_dev(e['chao'], true_est['chao'])}  "
                    f"Chapman {_dev(e['chapman'], true_est['chapman'])}  {row['wall_s']:.1f} s",
                    flush=True,
                )
    if not args.no_docs:
        common.write_section(
            "linkage-world", render(rows, failures, true_est, note, info, args.seed)
        )
    return 0 if not failures else 1


def run_seed(seed: int | None) -> dict:
    """One world, linked in-process by recapture with its defaults; against truth and oracle."""
    from recapture import progress
    from recapture.linkage import LinkageSettings, link_records

    progress.set_quiet(True)
    with tempfile.TemporaryDirectory(prefix="bench_world_") as tmp:
        records, truth, _ = build_world(Path(tmp), seed=seed)
    linkable = linkable_truth(records, truth)
    start = time.perf_counter()
    result = link_records(records, LinkageSettings.default())
    wall = time.perf_counter() - start
    row = evaluate(
        "recapture",
        "recapture",
        result.pairs,
        result.clusters,
        truth,
        records,
        result.threshold,
        linkable,
    )
    oracle = evaluate("oracle", "oracle", None, linkable, truth, records, None)
    return {
        "seed": seed,
        "records": records.height,
        "wall_s": wall,
        "recapture": row,
        "oracle": oracle,
        "truth": estimates(truth, records),
        "cross_link_sd": cross_link_noise(result.pairs, records),
    }


def main_seeds(args) -> int:
    from recapture.synthetic import SimulationConfig

    first, _, last = args.seeds.partition("-")
    seeds = [SimulationConfig().seed] + list(range(int(first), int(last or first) + 1))
    info = common.machine()
    results = []
    for seed in seeds:
        r = run_seed(seed)
        results.append(r)
        rc, o, t = r["recapture"], r["oracle"], r["truth"]
        print(
            f"seed {seed}: police F1 {rc['police_f1']:.4f} link F1 {rc['link_f1']:.4f} (linkable {rc['link_f1_linkable']:.4f}, "
            f"oracle R {o['link_recall']:.4f})  ZTP {_dev(rc['estimates']['ztp'], t['ztp'])} (oracle {_dev(o['estimates']['ztp'], t['ztp'])})  "
            f"Chapman {_dev(rc['estimates']['chapman'], t['chapman'])} (oracle {_dev(o['estimates']['chapman'], t['chapman'])})",
            flush=True,
        )
    if not args.no_docs:
        common.write_section("linkage-world-seeds", render_seeds(results, args.seeds, info))
    return 0


def render_seeds(results: list[dict], seeds_arg: str, info: dict) -> str:
    import numpy as np

    def dev(r, who, key):
        return 100 * (r[who]["estimates"][key] / r["truth"][key] - 1) if who != "truth" else 0.0

    rows, cols = (
        [],
        {
            k: []
            for k in (
                "pf1",
                "lf1",
                "plf1",
                "llf1",
                "opf1",
                "olf1",
                "ztp",
                "oztp",
                "chao",
                "ochao",
                "chap",
                "ochap",
            )
        },
    )
    for r in results:
        rc, o = r["recapture"], r["oracle"]
        vals = dict(
            pf1=rc["police_f1"],
            lf1=rc["link_f1"],
            plf1=rc["police_f1_linkable"],
            llf1=rc["link_f1_linkable"],
            opf1=o["police_f1"],
            olf1=o["link_f1"],
            ztp=dev(r, "recapture", "ztp"),
            oztp=dev(r, "oracle", "ztp"),
            chao=dev(r, "recapture", "chao"),
            ochao=dev(r, "oracle", "chao"),
            chap=dev(r, "recapture", "chapman"),
            ochap=dev(r, "oracle", "chapman"),
        )
        for k, v in vals.items():
            cols[k].append(v)
        rows.append(
            [
                r["seed"],
                r["records"],
                *(f"{vals[k]:.4f}" for k in ("pf1", "lf1", "plf1", "llf1", "opf1", "olf1")),
                *(f"{vals[k]:+.1f}%" for k in ("ztp", "oztp", "chao", "ochao", "chap", "ochap")),
            ]
        )
    mean = {k: float(np.mean(v)) for k, v in cols.items()}
    absmean = {k: float(np.mean(np.abs(v))) for k, v in cols.items()}
    # the bar: recapture's estimates against the oracle's (not the true persons')
    vs_oracle = {
        key: np.array(
            [
                100 * (r["recapture"]["estimates"][key] / r["oracle"]["estimates"][key] - 1)
                for r in results
            ]
        )
        for key in ("ztp", "chao", "chapman")
    }
    oracle_line = (
        "Recapture's estimates against the oracle's (mean |deviation|, largest): "
        + ", ".join(
            f"{name} {np.mean(np.abs(v)):.2f}% ({np.max(np.abs(v)):.1f}%)"
            for name, v in zip(("ZTP", "Chao", "Chapman"), vs_oracle.values(), strict=True)
        )
        + "."
    )
    # the part of that deviation no linker can remove: the model's own uncertainty about the
    # cross-source links, relative to the oracle's persons in both lists
    noise = np.array(
        [100 * r["cross_link_sd"] / (r["oracle"]["estimates"]["both"] + 1) for r in results]
    )
    noise_line = (
        "The Chapman part is mostly the model's own uncertainty about the police × IOM links: "
        "the sd of the number of persons in both lists that its match probabilities imply "
        "(√Σ p(1 − p) over the candidate pairs across the sources) is "
        f"{noise.mean():.2f}% of that number on average (range {noise.min():.2f}–"
        f"{noise.max():.2f}%), so even a calibrated linker with the best threshold deviates "
        f"from the oracle's Chapman by about √(2/π) × {noise.mean():.2f}% = "
        f"{np.sqrt(2 / np.pi) * noise.mean():.2f}% on average in worlds with "
        f"{np.mean([r['oracle']['estimates']['both'] for r in results]):.0f} persons in both "
        "lists; the spread shrinks with the square root of the overlap."
    )
    rows.append(
        [
            "mean",
            "",
            *(f"{mean[k]:.4f}" for k in ("pf1", "lf1", "plf1", "llf1", "opf1", "olf1")),
            *(
                f"{mean[k]:+.1f}% (abs. {absmean[k]:.1f}%)"
                for k in ("ztp", "oztp", "chao", "ochao", "chap", "ochap")
            ),
        ]
    )
    return "\n".join(
        [
            "## Linkage on simulated default worlds, several seeds",
            "",
            f"Command: `python bench/bench_linkage_world.py --seeds {seeds_arg}`",
            "",
            common.machine_line(info),
            "",
            "The simulator's default configuration with its default seed and seeds "
            f"{seeds_arg}; recapture with its default settings (threshold chosen without the truth). "
            "F1 as above, against the true persons and, in the 'linkable' columns, against the persons "
            "an oracle could form from what the records say (records of one person joined when "
            "registered under the same identity or carrying the same V-number; see `linkable_truth`). "
            "The oracle columns are the information ceiling: F1 of the oracle's persons against the "
            "truth, and the deviation of its estimates from the true-person estimates. Deviations: "
            "covariate-free truncated Poisson, Chao and Chapman from recapture's clusters (and the "
            "oracle's) relative to the same estimates from the true persons; the mean row also gives "
            "the mean absolute deviation (abs.).",
            "",
            common.table(
                [
                    "seed",
                    "records",
                    "police F1",
                    "link F1",
                    "police F1 linkable",
                    "link F1 linkable",
                    "oracle police F1",
                    "oracle link F1",
                    "ZTP",
                    "oracle ZTP",
                    "Chao",
                    "oracle Chao",
                    "Chapman",
                    "oracle Chapman",
                ],
                rows,
            ),
            "",
            oracle_line,
            "",
            noise_line,
        ]
    )


def _dev(value: float, ref: float) -> str:
    if not (math.isfinite(value) and math.isfinite(ref)) or not ref:
        return "–"
    return f"{100 * (value / ref - 1):+.1f}%"


def render(rows, failures, true_est, note, info, seed) -> str:
    cmd = "python bench/bench_linkage_world.py" + ("" if seed is None else f" --seed {seed}")
    lines = [
        "## Linkage on the simulated default world",
        "",
        f"Command: `{cmd}`",
        "",
        common.machine_line(info),
        "",
        note,
        "",
        "F1: pairwise, of the links the final clusters induce (police deduplication = pairs of two "
        "police records; police × IOM = pairs across the sources). PC: pair completeness of the "
        "scored candidate pairs. ECE: expected calibration error over all scored candidate pairs "
        "(10 equal-width bins); 'ECE mid' over the pairs with 0.01 < p < 0.99 only. Thresholds are "
        "chosen without the truth. Splink 5 (DuckDB) sees the same standardised fields and the "
        "same blocking keys (V-number; family-name key + birth year; given-name key + birth date; "
        "swapped names), NameComparison with TF adjustment on both names, DateOfBirthComparison, "
        "sex, nationality (exact / same region), V-number (Levenshtein ≤ 1); u by random sampling "
        "(10⁷ pairs), EM on two rules.",
        "",
        "Targets for recapture: F1 ≥ 0.95 on both; estimates within 3% of the true-cluster estimates.",
        "",
        common.table(
            [
                "tool",
                "threshold",
                "police P",
                "police R",
                "police F1",
                "link P",
                "link R",
                "link F1",
                "police F1 linkable",
                "link F1 linkable",
                "PC",
                "ECE",
                "ECE mid",
                "Brier",
                "wall s",
            ],
            [
                [
                    r["tool"],
                    r["threshold"],
                    r["police_precision"],
                    r["police_recall"],
                    r["police_f1"],
                    r["link_precision"],
                    r["link_recall"],
                    r["link_f1"],
                    r.get("police_f1_linkable", "–"),
                    r.get("link_f1_linkable", "–"),
                    r.get("pair_completeness", "–"),
                    r.get("ece", "–"),
                    r.get("ece_middle", "–"),
                    r.get("brier", "–"),
                    f"{r['wall_s']:.1f}" if "wall_s" in r else "–",
                ]
                for r in rows
            ],
        ),
        "",
        "The first row is the information ceiling: the persons an oracle forms by joining the "
        "records of one person registered under the same identity or carrying the same V-number "
        "(`linkable_truth`). A person's registrations under an alias without a shared V-number "
        "share only chance agreements (a kept birth date, sex, nationality), as namesakes do, so "
        "no linker can be expected to join them; 'linkable' F1 scores each tool against these "
        "persons instead of the truth. The bars (F1 ≥ 0.95; estimates within 3%) are stated "
        "against the truth; where the oracle itself misses them, the world's aliases, not the "
        "linker, are the limit. Several seeds: section linkage-world-seeds.",
        "",
        "Covariate-free estimates from each tool's clusters vs from the true persons "
        "(police counts per person for the truncated Poisson and Chao; police × IOM-in-target "
        "persons for Chapman):",
        "",
    ]
    est_rows = [
        [
            "truth",
            true_est["police_persons"],
            true_est["f1"],
            true_est["f2"],
            true_est["both"],
            f"{true_est['ztp']:,.0f}",
            f"{true_est['chao']:,.0f}",
            f"{true_est['chapman']:,.0f}",
        ]
    ]
    for r in rows:
        e = r["estimates"]
        est_rows.append(
            [
                r["tool"],
                e["police_persons"],
                e["f1"],
                e["f2"],
                e["both"],
                f"{e['ztp']:,.0f} ({_dev(e['ztp'], true_est['ztp'])})",
                f"{e['chao']:,.0f} ({_dev(e['chao'], true_est['chao'])})",
                f"{e['chapman']:,.0f} ({_dev(e['chapman'], true_est['chapman'])})",
            ]
        )
    lines.append(
        common.table(
            [
                "clusters",
                "police persons",
                "f1",
                "f2",
                "in both",
                "truncated Poisson",
                "Chao",
                "Chapman",
            ],
            est_rows,
        )
    )
    for r in rows:
        if r["tool"] == "recapture":
            rel = r["reliability"]
            lines += [
                "",
                "Reliability of recapture's match probabilities (all scored candidate pairs):",
                "",
            ]
            lines.append(
                common.table(
                    ["bin", "pairs", "mean p", "observed match rate"],
                    [
                        [f"[{a:.1f}, {b:.1f}{']' if b >= 1 else ')'}", c, m, o]
                        for a, b, c, m, o in zip(
                            rel["lower"],
                            rel["upper"],
                            rel["count"],
                            rel["mean_predicted"],
                            rel["observed_rate"],
                            strict=True,
                        )
                    ],
                )
            )
    for r in rows:
        if "review" in r:
            rv = r["review"]
            lines += [
                "",
                f"Clerical review check: {rv['sample_size']} of recapture's scored pairs drawn by "
                "`export_review_sample` (stratified over probability bands), labelled from the truth, "
                "read back and estimated by `review_error_rates`, against the actual rates over all "
                "candidate pairs:",
                "",
                common.table(
                    ["rate", "estimated", "95% interval", "actual"],
                    [
                        [name, est, f"{ci[0]:.4f} – {ci[1]:.4f}", actual]
                        for name, (est, ci, actual) in (
                            ("precision at threshold", rv["precision"]),
                            ("missed-link rate", rv["missed"]),
                        )
                    ],
                ),
            ]
    for tool, res in failures:
        err = (res.get("error") or "").strip().splitlines()[-1:] or [""]
        lines.append(f"\n{tool}: {res['status']} — {err[0]}")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
