"""End-to-end accuracy: the pipeline's estimates against the same models on the truth.

A simulated world is written to raw extracts and run through the whole pipeline
(validation, linkage, capture histories, the configured estimators). The same estimators
are then fitted twice more on the simulator's truth, which splits the pipeline's
deviation into the part the recording causes and the part the linkage causes:

* (a) true persons, true covariates — the validated records grouped by the simulator's
  person id, each person's sex, age class and region taken from the truth;
* (b) true persons, recorded covariates — the same persons with their covariates resolved
  from their records by the pipeline's rules (unknown where every registration lacks
  the value; the estimator's default rule for unknown values applies);
* (c) the pipeline — persons from the linkage, covariates as recorded.

covariate part = b/a − 1, linkage part = c/b − 1, total = c/a − 1. Every fit uses the
estimator exactly as configured (sparse levels merged by its own rule on its own data),
so the comparison is between what the pipeline did and what it would have done had the
linkage and the records been perfect. ``bench/bench_end_to_end.py`` runs it over many
worlds (docs/benchmarks.md, end-to-end).
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from recapture.config import parse_config
from recapture.estimators.unknown import is_unknown
from recapture.io import artifact_path, world_path
from recapture.linkage.evaluation import pairwise_metrics_from_clusters
from recapture.persons import build_persons
from recapture.pipelines.demo import (
    DEMO_ESTIMATORS,
    _true_clusters,
    demo_pipeline_config,
    demo_world_config,
)
from recapture.pipelines.run import ConfiguredEstimator, run_pipeline
from recapture.synthetic import SimulationConfig, run_simulation
from recapture.uncertainty.fractional import WEIGHT, expected_capture_persons

#: The estimators of the study: the demo's covariate models (names from DEMO_ESTIMATORS).
STUDIED = ("zero-truncated Poisson", "log-linear DSE")
#: Person covariates the truth replaces in (a).
COVARIATES = ("sex", "age_class", "region")


def accuracy_world_config(seed: int, size: int) -> SimulationConfig:
    """The demo world (the models' assumptions hold) with the simulator's default recording
    noise and no alias identities: a registration under a false identity that shares
    nothing with the person's others is invisible to any linkage model, so it would
    measure the information in the records, not the linkage."""
    config = demo_world_config(seed, size)
    return dataclasses.replace(
        config, noise=dataclasses.replace(config.noise, alias_person_share=0.0)
    )


def _estimator(options: dict[str, Any]) -> ConfiguredEstimator:
    """The estimator a pipeline config entry makes (as ``fit_estimators`` builds it)."""
    opts = {k: v for k, v in options.items() if k not in ("name", "model")}
    rule = opts.pop("missing", None)
    opts.pop("linkage_uncertainty", None)
    if isinstance(opts.get("lists"), list):
        opts["lists"] = [f"in_{s}" for s in opts["lists"]]
    return ConfiguredEstimator(options["model"], opts, rule)


def _fit(estimator: ConfiguredEstimator, persons: pl.DataFrame) -> tuple[float, str | None]:
    try:
        return float(estimator.fit(persons).population_size), None
    except Exception as exc:  # a failed fit is a NaN row with its reason, not a lost world
        return math.nan, f"{type(exc).__name__}: {exc}"


def world_accuracy(
    out_dir: str | Path,
    *,
    seed: int,
    size: int = 23_000,
    imputations: int = 20,
) -> list[dict[str, Any]]:
    """Simulate one world into ``out_dir``, run the pipeline on it and return one row per
    studied estimator: the true N, N̂ of (a), (b) and (c) (module docstring), the
    pipeline's model interval and its linkage-aware interval (``imputations`` imputed
    linkages; 0 = none), the linkage F1 and the seconds it took."""
    out = Path(out_dir).resolve()
    world_dir = out / "world"
    t0 = time.perf_counter()
    sim = accuracy_world_config(seed, size)
    run_simulation(sim, world_dir)
    raw = demo_pipeline_config(
        world_dir,
        out / "run",
        seed,
        imputations=imputations,
        thresholds=[],
        age_breaks=[int(b) for b in sim.police.age_breaks],
    )
    raw["estimators"] = [e for e in DEMO_ESTIMATORS if e["name"] in STUDIED]
    if imputations:
        raw["uncertainty"] = {"imputations": imputations, "seed": seed, "workers": 1}
    else:
        raw.pop("uncertainty")
    raw["reports"] = {"enabled": False}
    config = parse_config(raw, base_dir=out, file=None)
    run = run_pipeline(config)
    t_pipeline = time.perf_counter() - t0

    records = pl.read_parquet(artifact_path(run.run_dir, "records"))
    truth = _true_clusters(run.run_dir, world_dir)
    people = pl.read_parquet(world_path(world_dir, "truth_people"))
    true_n = int(people["in_target"].sum())
    recorded, _ = build_persons(
        records, truth, config.periods[0], sources=config.source_names, rules=config.persons
    )
    true_cov = recorded.drop(COVARIATES).join(
        people.select("person_id", *COVARIATES), on="person_id", how="left"
    )
    clusters = pl.read_parquet(artifact_path(run.run_dir, "clusters"))
    f1 = {
        scope_name: pairwise_metrics_from_clusters(clusters, truth, scope).f1
        for scope_name, scope in (("police", "police"), ("police_iom", ("police", "iom")))
    }
    linked = pl.read_parquet(artifact_path(run.run_dir, "persons")).filter(
        pl.col("period") == config.periods[0].label
    )
    pairs = pl.read_parquet(artifact_path(run.run_dir, "pairs"))
    shape = {"true": _shape(recorded), "linked": _shape(linked)}
    by_name = {e["name"]: e for e in run.estimates}
    rows = []
    for options in raw["estimators"]:
        estimator = _estimator(options)
        n_a, err_a = _fit(estimator, true_cov)
        n_b, err_b = _fit(estimator, recorded)
        n_e = math.nan
        lists = options.get("lists")
        if isinstance(lists, list) and len(lists) == 2:
            expected = expected_capture_persons(
                records,
                clusters,
                pairs,
                linked,
                lists=(lists[0], lists[1]),
                period=config.periods[0],
                rules=config.persons,
            )
            weighted = dataclasses.replace(
                estimator, options={**estimator.options, "weights": WEIGHT}
            )
            n_e, _ = _fit(weighted, expected)
        entry = by_name[options["name"]]
        model_iv = (entry.get("intervals") or {}).get(entry.get("default_interval")) or {}
        aware = (entry.get("extra") or {}).get("linkage_aware") or {}
        rows.append(
            {
                "seed": seed,
                "size": size,
                "imputations": imputations,
                "estimator": options["name"],
                "true_n": true_n,
                "records": records.height,
                "persons_true": int(recorded.height),
                "persons_linked": int(linked.height),
                **{f"{k}_{which}": v for which, d in shape.items() for k, v in d.items()},
                "unknown_covariate_share": _unknown_share(recorded),
                "f1_police": f1["police"],
                "f1_police_iom": f1["police_iom"],
                "a": n_a,
                "b": n_b,
                "c": _num(entry.get("population_size")),
                "c_expected_links": n_e,
                "c_lower": _num(model_iv.get("lower")),
                "c_upper": _num(model_iv.get("upper")),
                "c_interval": entry.get("default_interval"),
                "aware_lower": _num(aware.get("lower")),
                "aware_upper": _num(aware.get("upper")),
                "linkage_variance_share": _num(aware.get("linkage_variance_share")),
                "errors": [e for e in (err_a, err_b, entry.get("error")) if e],
                "seconds_pipeline": t_pipeline,
                "seconds": time.perf_counter() - t0,
            }
        )
    return rows


def _shape(persons: pl.DataFrame) -> dict[str, int]:
    """What the estimators feed on: police persons seen once and twice, persons in both
    lists (a linkage that merges wrongly moves the first into the second; one that misses
    cross-list links lowers the third)."""
    return {
        "police_once": int((persons["n_police"] == 1).sum()),
        "police_twice": int((persons["n_police"] == 2).sum()),
        "in_both": int(((persons["in_police"] == 1) & (persons["in_iom"] == 1)).sum()),
    }


def _unknown_share(persons: pl.DataFrame) -> float:
    """Share of persons with at least one studied covariate unknown."""
    return float(persons.select(is_unknown(COVARIATES).mean()).item())


def _num(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def summarise_accuracy(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per estimator over worlds: mean and Monte-Carlo standard error of the covariate,
    linkage and total parts (b/a − 1, c/b − 1, c/a − 1), the coverage of the true N by the
    pipeline's model and linkage-aware intervals, and their mean width relative to N.
    Worlds where a fit failed are counted and left out."""
    frame = pl.DataFrame(rows)
    out = []
    for name in dict.fromkeys(frame["estimator"].to_list()):
        f = frame.filter(pl.col("estimator") == name)
        a, b, c, n = (f[k].to_numpy().astype(float) for k in ("a", "b", "c", "true_n"))
        ok = np.isfinite(a) & np.isfinite(b) & np.isfinite(c)
        a, b, c, n = a[ok], b[ok], c[ok], n[ok]
        lo, hi = f["c_lower"].to_numpy()[ok], f["c_upper"].to_numpy()[ok]
        alo, ahi = f["aware_lower"].to_numpy()[ok], f["aware_upper"].to_numpy()[ok]
        row: dict[str, Any] = {
            "estimator": name,
            "worlds": int(ok.sum()),
            "failed": int((~ok).sum()),
        }
        for key, x in (("covariate", b / a - 1), ("linkage", c / b - 1), ("total", c / a - 1)):
            row[key] = _mean(x)
            row[f"{key}_se"] = _mc_se(x)
        row["total_abs"] = _mean(np.abs(c / a - 1))
        # the same model on the expected capture histories (uncertainty.fractional)
        e = (
            f["c_expected_links"].to_numpy().astype(float)[ok]
            if "c_expected_links" in f.columns
            else np.full(a.size, math.nan)
        )
        fine = np.isfinite(e)
        row["expected_worlds"] = int(fine.sum())
        for key, x in (("expected_linkage", e / b - 1), ("expected_total", e / a - 1)):
            row[key] = _mean(x[fine])
            row[f"{key}_se"] = _mc_se(x[fine])
        row["total_sd"] = float(np.std(c / a - 1, ddof=1)) if c.size > 1 else math.nan
        row["a_vs_truth"] = _mean(a / n - 1)
        row["c_vs_truth"] = _mean(c / n - 1)
        row["coverage"] = _mean((lo <= n) & (n <= hi))
        row["width"] = _mean((hi - lo) / n)
        aware = np.isfinite(alo) & np.isfinite(ahi)
        row["aware_worlds"] = int(aware.sum())
        row["aware_coverage"] = _mean(((alo <= n) & (n <= ahi))[aware])
        row["aware_width"] = _mean(((ahi - alo) / n)[aware])
        row["linkage_variance_share"] = _mean(
            f["linkage_variance_share"].to_numpy()[ok][aware].astype(float)
        )
        out.append(row)
    return out


def _mean(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=float)
    return float(x.mean()) if x.size else math.nan


def _mc_se(x: np.ndarray) -> float:
    return float(np.std(x, ddof=1) / math.sqrt(x.size)) if x.size > 1 else math.nan
