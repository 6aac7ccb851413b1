"""The demo: simulate a world, run the whole pipeline on it, and hold the estimates
against the truth.

The demo world satisfies the models' assumptions (no heterogeneity beyond the covariates,
no behavioural response, everyone at risk the whole year, police and IOM independent
given the covariates), so the truth should fall inside the 95% intervals about 95% of
the time; ``realistic=True`` simulates the default world instead, where it need not.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from recapture.config import parse_config
from recapture.io import artifact_path, read_json, to_json_text, world_path
from recapture.linkage.evaluation import pairwise_metrics_from_clusters
from recapture.persons import build_persons
from recapture.pipelines.run import RunResult, _fit_one, run_pipeline
from recapture.synthetic import SimulationConfig, run_simulation

#: The estimators the demo fits (the pipeline config's [[estimators]] tables).
DEMO_ESTIMATORS: list[dict[str, Any]] = [
    {
        "name": "zero-truncated Poisson",
        "model": "ztpoisson",
        "formula": "~ sex + age_class + region",
        "count": "n_police",
        "merge_sparse_levels": 5,
    },
    {
        "name": "Chao lower bound",
        "model": "chao",
        "count": "n_police",
        "linkage_uncertainty": False,
    },
    {
        "name": "log-linear DSE",
        "model": "loglinear",
        "lists": ["police", "iom"],
        "covariates": "sex,age_class,region",
        "merge_sparse_levels": 5,
    },
    {
        "name": "Chapman",
        "model": "chapman",
        "lists": ["police", "iom"],
        "linkage_uncertainty": False,
    },
]


def demo_world_config(seed: int, size: int | None = None, realistic: bool = False):
    """The simulation config of the demo world (see the module docstring)."""

    config = SimulationConfig(seed=seed)
    if not realistic:
        config = dataclasses.replace(
            config,
            police=dataclasses.replace(
                config.police, frailty_shape=0.0, one_inflation=0.0, time_at_risk=False
            ),
            iom=dataclasses.replace(config.iom, apprehended_odds_ratio=1.0),
        )
    if size is not None:
        config = dataclasses.replace(config, size=size)
    return config


def demo_pipeline_config(
    world_dir: Path,
    run_dir: Path,
    seed: int,
    *,
    imputations: int,
    thresholds: list[float],
    age_breaks: list[int],
) -> dict[str, Any]:
    return {
        "run": {"dir": str(run_dir), "seed": seed, "as_of": "2019-01-01"},
        "sources": [
            {"path": str(world_path(world_dir, "police")), "definition": "police"},
            {"path": str(world_path(world_dir, "iom")), "definition": "iom"},
        ],
        "periods": [{"start": "2017-07-01", "end": "2018-06-30", "label": "2017/18"}],
        "persons": {"age_breaks": age_breaks},
        "estimators": DEMO_ESTIMATORS,
        "uncertainty": {"imputations": imputations, "thresholds": thresholds, "seed": seed},
    }


@dataclass
class DemoRow:
    name: str
    population_size: float
    lower: float
    upper: float
    aware_lower: float | None
    aware_upper: float | None
    true_links_estimate: float | None
    warnings: list[str] = field(default_factory=list)


@dataclass
class DemoResult:
    true_n: int
    run: RunResult
    rows: list[DemoRow]
    linkage: dict[str, Any]
    world_dir: Path
    realistic: bool


def run_demo(
    out_dir: str | Path = "demo-run",
    *,
    seed: int = 20180630,
    size: int | None = None,
    realistic: bool = False,
    imputations: int = 20,
    force: bool = False,
) -> DemoResult:
    """Simulate the demo world into ``out_dir/world``, run the pipeline into ``out_dir/run``,
    and compare each estimate with the truth."""

    out = Path(out_dir).resolve()
    world_dir = out / "world"
    sim_config = demo_world_config(seed, size, realistic)
    if (
        force
        or not (world_path(world_dir, "manifest")).exists()
        or read_json(world_path(world_dir, "manifest")).get("config")
        != _jsonable(sim_config.to_dict())
    ):
        run_simulation(sim_config, world_dir)
    raw = demo_pipeline_config(
        world_dir,
        out / "run",
        seed,
        imputations=imputations,
        thresholds=[0.2, 0.35, 0.5, 0.65, 0.8, 0.95],
        age_breaks=[int(b) for b in sim_config.police.age_breaks],
    )
    config = parse_config(raw, base_dir=out, file=None)
    run = run_pipeline(config, force=force)
    true_n = int(
        pl.read_parquet(world_path(world_dir, "truth_people")).filter(pl.col("in_target")).height
    )
    truth = _true_clusters(run.run_dir, world_dir)
    linkage = _linkage_quality(run.run_dir, truth)
    true_persons, _ = build_persons(
        pl.read_parquet(artifact_path(run.run_dir, "records")),
        truth,
        config.periods[0],
        sources=config.source_names,
        rules=config.persons,
    )
    rows = []
    for est_config, entry in zip(config.estimators, run.estimates, strict=True):
        if entry.get("error"):
            rows.append(
                DemoRow(
                    entry["name"], math.nan, math.nan, math.nan, None, None, None, [entry["error"]]
                )
            )
            continue
        interval = entry["intervals"].get(entry["default_interval"]) or entry["intervals"]["normal"]
        aware = (entry.get("extra") or {}).get("linkage_aware") or {}
        options = {
            k: v
            for k, v in est_config.options.items()
            if k not in ("missing", "linkage_uncertainty")
        }
        if isinstance(options.get("lists"), list):
            options["lists"] = [f"in_{s}" for s in options["lists"]]
        try:
            rule = est_config.options.get("missing", "em")
            perfect = _fit_one(true_persons, est_config.model, options, rule).population_size
        except Exception:  # the comparison row is informative only
            perfect = None
        rows.append(
            DemoRow(
                name=entry["name"],
                population_size=entry["population_size"],
                lower=interval["lower"],
                upper=interval["upper"],
                aware_lower=aware.get("lower"),
                aware_upper=aware.get("upper"),
                true_links_estimate=perfect,
                warnings=entry.get("warnings") or [],
            )
        )
    return DemoResult(
        true_n=true_n, run=run, rows=rows, linkage=linkage, world_dir=world_dir, realistic=realistic
    )


def _jsonable(data: Any) -> Any:
    import json

    return json.loads(to_json_text(data))


def _true_clusters(run_dir: Path, world_dir: Path) -> pl.DataFrame:
    """Record → true person, by joining records to the simulator's truth on the registration id."""
    records = pl.read_parquet(
        artifact_path(run_dir, "records"), columns=["record_id", "source", "source_key"]
    )
    truth = pl.read_parquet(
        world_path(world_dir, "truth_records"), columns=["source", "source_key", "person_id"]
    )
    joined = records.join(truth, on=["source", "source_key"], how="left")
    return joined.select("record_id", "source", "person_id")


def _linkage_quality(run_dir: Path, truth: pl.DataFrame) -> dict[str, Any]:
    clusters = pl.read_parquet(artifact_path(run_dir, "clusters"))
    out: dict[str, Any] = {
        "records": clusters.height,
        "persons_found": int(clusters["person_id"].n_unique()),
        "persons_true": int(truth["person_id"].n_unique()),
    }
    for label, scope in (("police", "police"), ("police × IOM", ("police", "iom"))):
        m = pairwise_metrics_from_clusters(clusters, truth, scope)
        out[label] = {"precision": m.precision, "recall": m.recall, "f1": m.f1}
    return out


def format_demo(result: DemoResult) -> str:
    """The side-by-side table the demo prints."""
    lk = result.linkage
    world = (
        "realistic default world"
        if result.realistic
        else "world that meets the models' assumptions"
    )
    lines = [
        f"recapture demo — simulated {world}",
        f"  true population size N = {result.true_n:,}",
        f"  linkage: {lk['records']:,} records → {lk['persons_found']:,} persons (true: {lk['persons_true']:,}); "
        + "; ".join(
            f"{k} F1 {lk[k]['f1']:.3f} (precision {lk[k]['precision']:.3f}, recall {lk[k]['recall']:.3f})"
            for k in ("police", "police × IOM")
        ),
        "",
        f"  {'estimator':<24}{'N̂':>9}  {'95% interval':>19}  {'linkage-aware 95%':>19}  "
        f"{'truth in':>8}  {'N̂, true links':>13}",
    ]
    for row in result.rows:
        if math.isnan(row.population_size):
            lines.append(f"  {row.name:<24}  failed: {'; '.join(row.warnings)}")
            continue
        aware = (
            f"{row.aware_lower:>9,.0f}–{row.aware_upper:<9,.0f}"
            if row.aware_lower is not None
            else f"{'—':^19}"
        )
        inside = row.lower <= result.true_n <= row.upper
        inside_aware = (
            row.aware_lower is not None and row.aware_lower <= result.true_n <= row.aware_upper
        )
        mark = ("yes" if inside else "no") + (
            "/yes" if inside_aware else "/no" if row.aware_lower is not None else ""
        )
        perfect = (
            f"{row.true_links_estimate:>13,.0f}"
            if row.true_links_estimate is not None
            else f"{'—':>13}"
        )
        lines.append(
            f"  {row.name:<24}{row.population_size:>9,.0f}  {row.lower:>9,.0f}–{row.upper:<9,.0f}  "
            f"{aware}  {mark:>8}  {perfect}"
        )
    warned = [
        (r.name, w) for r in result.rows for w in r.warnings if not math.isnan(r.population_size)
    ]
    if warned:
        lines.append("")
        lines.extend(f"  note ({name}): {w}" for name, w in warned)
    lines += [
        "",
        "  The Poisson and Chao figures count people the police can meet; the DSE counts those",
        "  police or IOM can meet. 'truth in': naive/linkage-aware interval holds N.",
        f"  run directory: {result.run.run_dir}   manifest: {result.run.run_dir / 'manifest.json'}",
    ]
    for name, path in sorted(result.run.reports.items()):
        lines.append(f"  {name} report: {path}")
    return "\n".join(lines)
