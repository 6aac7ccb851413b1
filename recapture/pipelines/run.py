"""The end-to-end run: raw extracts → records → linkage → persons → estimates → reports.

Every stage writes its artifacts atomically into the run directory, and the manifest
records the config, seeds, input checksums, package versions, reconciled row counts and
stage timings. Rerunning with unchanged inputs and config reuses finished stages.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from recapture import progress
from recapture.config import PipelineConfig, load_config
from recapture.errors import ConfigError, RecaptureError
from recapture.io import file_sha256, read_json, remove_stale_temporaries, write_json, write_parquet
from recapture.pipelines.capture_histories import build_persons
from recapture.pipelines.stages import Manifest, Stage, fingerprint, run_stages
from recapture.schemas import SCHEMA_VERSIONS, PersonSchema

ARTIFACTS = {
    "records": "records.parquet",
    "quarantine": "quarantine.parquet",
    "validation_summary": "validation_summary.json",
    "pairs": "pairs.parquet",
    "clusters": "clusters.parquet",
    "linkage_model": "linkage_model.json",
    "linkage_metrics": "linkage_metrics.json",
    "persons": "persons.parquet",
    "persons_summary": "persons_summary.json",
    "estimates": "estimates.json",
}


@dataclass
class RunResult:
    """What a run produced: the run directory, its manifest and the fitted estimates."""

    run_dir: Path
    manifest: dict[str, Any]
    estimates: list[dict[str, Any]] = field(default_factory=list)
    reports: dict[str, str] = field(default_factory=dict)

    def path(self, artifact: str) -> Path:
        return self.run_dir / ARTIFACTS[artifact]


def _config_snapshot(config: PipelineConfig) -> dict[str, Any]:
    return {
        "file": str(config.path) if config.path else None,
        "run_dir": str(config.run_dir),
        "seed": config.seed,
        "as_of": config.as_of.isoformat() if config.as_of else None,
        "sources": [
            {"name": s.name, "path": str(s.path), "definition": s.definition}
            for s in config.sources
        ],
        "linkage": {
            "settings": str(config.linkage.settings) if config.linkage.settings else None,
            "threshold": config.linkage.threshold,
        },
        "periods": [
            {"label": p.label, "start": p.start.isoformat(), "end": p.end.isoformat()}
            for p in config.periods
        ],
        "persons": dataclasses.asdict(config.persons),
        "estimators": [dataclasses.asdict(e) for e in config.estimators],
        "uncertainty": config.uncertainty,
        "reports": config.reports,
    }


def _linkage_settings(config: PipelineConfig):
    from recapture.linkage import LinkageSettings

    settings = (
        LinkageSettings.from_toml(config.linkage.settings)
        if config.linkage.settings
        else LinkageSettings.default()
    )
    overrides: dict[str, Any] = {"seed": config.seed}
    if config.linkage.threshold is not None:
        overrides["threshold"] = config.linkage.threshold
    return dataclasses.replace(settings, **overrides)


def run_pipeline(
    config: PipelineConfig | str | Path,
    *,
    run_dir: str | Path | None = None,
    force: bool = False,
) -> RunResult:
    """Run (or resume) the pipeline described by ``config`` into its run directory.

    Finished stages whose inputs and settings are unchanged are reused; ``force`` redoes
    them all. A failing stage raises :class:`~recapture.errors.StageError` naming it, and
    leaves the artifacts of earlier stages intact.
    """
    if not isinstance(config, PipelineConfig):
        config = load_config(config)
    out = Path(run_dir) if run_dir is not None else config.run_dir
    out.mkdir(parents=True, exist_ok=True)
    for stale in remove_stale_temporaries(out):
        progress.info(f"· removed {stale.name}, left by an interrupted write")
    snapshot = _config_snapshot(config)
    manifest = Manifest(out, snapshot, config.seed)
    run_id = manifest.data["run_id"] = fingerprint(
        {"config": snapshot, "inputs": input_checksums(config)}
    )
    as_of = config.as_of or dt.date.today()
    sources = config.source_names
    settings = _linkage_settings(config)

    def validate() -> dict[str, Any]:
        from recapture.validation import validate_extracts

        result = validate_extracts(
            [(s.path, s.definition) for s in config.sources], out, as_of=as_of, run_id=run_id
        )
        found = set(result.records["source"].unique().to_list())
        if not found <= set(sources):
            raise ConfigError(
                f"records carry sources {sorted(found)}, config names {sources}", key="sources"
            )
        return {
            "rows_in": result.rows_in,
            "records": result.records.height,
            "quarantined": result.quarantine.height,
            "by_source": {
                s: {
                    "records": int((result.records["source"] == s).sum()),
                    "quarantined": int((result.quarantine["source"] == s).sum()),
                }
                for s in sources
            },
        }

    def link() -> dict[str, Any]:
        from recapture.linkage import link_records, write_linkage

        records = pl.read_parquet(out / ARTIFACTS["records"])
        result = link_records(records, settings)
        write_linkage(result, out, run_id=run_id)
        return {
            "records": records.height,
            "records_in_clusters": result.clusters.height,
            "persons": int(result.clusters["person_id"].n_unique()),
            "pairs_scored": result.pairs.height,
            "threshold": result.threshold,
        }

    def persons() -> dict[str, Any]:
        records = pl.read_parquet(out / ARTIFACTS["records"])
        clusters = pl.read_parquet(out / ARTIFACTS["clusters"])
        # only the links the clustering used: the weakest-link summary needs nothing else,
        # and at a million records they are a small share of the scored pairs
        pairs = (
            pl.scan_parquet(out / ARTIFACTS["pairs"])
            .filter(pl.col("linked"))
            .select("record_id_l", "record_id_r", "match_probability")
            .collect()
        )
        frames, counts = [], {}
        for period in config.periods:
            frame, c = build_persons(
                records, clusters, period, sources=sources, pairs=pairs, rules=config.persons
            )
            frames.append(frame)
            counts[period.label] = c.to_dict()
        table = pl.concat(frames, how="vertical")
        PersonSchema.validate(table, lazy=True)
        write_parquet(
            table,
            out / ARTIFACTS["persons"],
            artifact="persons",
            schema_version=SCHEMA_VERSIONS["persons"],
            run_id=run_id,
            extra_metadata={
                "sources": ",".join(sources),
                "periods": json.dumps(
                    {p.label: [p.start.isoformat(), p.end.isoformat()] for p in config.periods}
                ),
                "capture_history_rules": json.dumps(dataclasses.asdict(config.persons)),
            },
        )
        write_json(counts, out / ARTIFACTS["persons_summary"])
        return {"rows": table.height, "by_period": counts}

    def estimate() -> dict[str, Any]:
        entries = fit_estimators(config, out, settings_threshold=_used_threshold(out))
        write_json(entries, out / ARTIFACTS["estimates"])
        return {"estimates": len(entries), "failed": sum(1 for e in entries if e.get("error"))}

    def report() -> dict[str, Any]:
        from recapture.reports import write_reports

        written = write_reports(out)
        return {"reports": {k: str(v) for k, v in written.items()}}

    stages = [
        Stage(
            "validate",
            [ARTIFACTS[a] for a in ("records", "quarantine", "validation_summary")],
            validate,
            settings={"sources": snapshot["sources"], "as_of": as_of.isoformat()},
            input_files=[s.path for s in config.sources]
            + [Path(s.definition) for s in config.sources if s.definition.endswith(".toml")],
        ),
        Stage(
            "link",
            [ARTIFACTS[a] for a in ("pairs", "clusters", "linkage_model", "linkage_metrics")],
            link,
            settings=settings.to_dict(),
            upstream=["validate"],
        ),
        Stage(
            "persons",
            [ARTIFACTS["persons"], ARTIFACTS["persons_summary"]],
            persons,
            settings={
                "periods": snapshot["periods"],
                "rules": snapshot["persons"],
                "sources": sources,
            },
            upstream=["link"],
        ),
        Stage(
            "estimate",
            [ARTIFACTS["estimates"]],
            estimate,
            settings={
                "estimators": snapshot["estimators"],
                "uncertainty": config.uncertainty,
                "seed": config.seed,
            },
            upstream=["persons"],
        ),
    ]
    if config.reports:
        stages.append(
            Stage(
                "report",
                [
                    f"reports/{name}.html"
                    for name in ("validation", "linkage", "explorer", "estimates")
                ],
                report,
                settings={"version": 2},
                upstream=["estimate"],
            )
        )

    data = run_stages(stages, manifest, force=force)
    manifest.data["reconciliation"] = reconcile(manifest.data["stages"])
    manifest.data["status"] = (
        "done" if manifest.data["reconciliation"]["ok"] else "counts do not reconcile"
    )
    manifest.save()
    estimates = read_json(out / ARTIFACTS["estimates"])
    reports = data["stages"].get("report", {}).get("counts", {}).get("reports", {})
    return RunResult(run_dir=out, manifest=manifest.data, estimates=estimates, reports=reports)


def format_run(result: RunResult) -> str:
    """What ``recapture run`` prints: stages, reconciliation and the estimates."""
    lines = [f"run {result.manifest.get('run_id')} in {result.run_dir}"]
    for name, stage in result.manifest["stages"].items():
        state = "reused" if stage.get("reused") else f"{stage.get('seconds', 0):.1f} s"
        lines.append(f"  {name:<10} {stage.get('status')} ({state})")
    for check in result.manifest["reconciliation"]["checks"]:
        mark = "ok" if check["ok"] else "MISMATCH"
        lines.append(f"  {mark:<8} {check['check']}: {check['left']:,} vs {check['right']:,}")
    lines.append("")
    lines.append(f"  {'estimator':<26}{'period':<12}{'N̂':>10}{'SE':>9}   95% interval")
    for e in result.estimates:
        if e.get("error"):
            lines.append(f"  {e['name']:<26}{e['period']:<12} failed: {e['error']}")
            continue
        iv = e["intervals"].get(e["default_interval"]) or {}
        lines.append(
            f"  {e['name']:<26}{e['period']:<12}{e['population_size']:>10,.0f}{e['se']:>9,.0f}   "
            f"{iv.get('lower', float('nan')):,.0f} – {iv.get('upper', float('nan')):,.0f}"
        )
        lines.extend(f"      warning: {w}" for w in e.get("warnings") or [])
    for name, path in sorted(result.reports.items()):
        lines.append(f"  {name} report: {path}")
    return "\n".join(lines)


def persons_rules(persons_path: str | Path) -> tuple[list[str] | None, Any]:
    """The sources and capture-history rules a persons.parquet was built with (from its
    metadata), so rebuilt capture histories match it."""
    from recapture.io import read_metadata
    from recapture.pipelines.capture_histories import CaptureHistoryRules

    meta = read_metadata(persons_path)
    sources = meta["sources"].split(",") if meta.get("sources") else None
    rules = None
    if meta.get("capture_history_rules"):
        data = json.loads(meta["capture_history_rules"])
        data["age_breaks"] = tuple(data["age_breaks"])
        rules = CaptureHistoryRules(**data)
    return sources, rules


def input_checksums(config: PipelineConfig) -> dict[str, str]:
    """sha256 of every input extract, keyed by path; a missing file is an error naming it."""
    out = {}
    for i, source in enumerate(config.sources):
        if not source.path.is_file():
            raise ConfigError(
                f"extract not found: {source.path}",
                file=str(config.path) if config.path else None,
                key=f"sources[{i}].path",
            )
        out[str(source.path)] = file_sha256(source.path)
    return out


def _used_threshold(out: Path) -> float | None:
    path = out / ARTIFACTS["linkage_model"]
    return read_json(path).get("threshold") if path.exists() else None


def fit_estimators(
    config: PipelineConfig, out: Path, *, settings_threshold: float | None = None
) -> list[dict[str, Any]]:
    """Fit every configured estimator to every period's persons. Problems of the fit
    (boundary estimates, non-convergence) are warnings on its result; an estimator that
    cannot be fitted as configured is an error naming its config key."""

    persons_all = pl.read_parquet(out / ARTIFACTS["persons"])
    uncertainty = None
    if config.uncertainty:
        from recapture.uncertainty import UncertaintyOptions

        uncertainty = UncertaintyOptions.from_dict(config.uncertainty)
    entries: list[dict[str, Any]] = []
    for period in config.periods:
        persons = persons_all.filter(pl.col("period") == period.label)
        for i, est in enumerate(config.estimators):
            options = dict(est.options)
            missing_rule = options.pop("missing", "allocate")
            linkage_aware = options.pop("linkage_uncertainty", True)
            if missing_rule not in ("allocate", "level"):
                raise ConfigError(
                    "must be 'allocate' or 'level'",
                    file=str(config.path) if config.path else None,
                    key=f"estimators[{i}].missing",
                )
            if isinstance(options.get("lists"), list):
                options["lists"] = [f"in_{name}" for name in options["lists"]]
            wants_seed = options.get("variance") == "bootstrap" or options.get("replicates")
            if wants_seed and "seed" not in options:
                options["seed"] = config.seed
            label = f"{est.name} [{period.label}]"
            with progress.step(f"fitting {label}"):
                try:
                    estimator = ConfiguredEstimator(est.model, options, missing_rule)
                    result = estimator.fit(persons)
                    if uncertainty is not None and uncertainty.active and linkage_aware:
                        result = _with_linkage_uncertainty(
                            result, estimator, uncertainty, config, out, period, settings_threshold
                        )
                except ConfigError as exc:
                    exc.key = f"estimators[{i}].{exc.key}" if exc.key else f"estimators[{i}]"
                    exc.file = str(config.path) if config.path else exc.file
                    raise
                except RecaptureError as exc:  # e.g. a formula naming a column persons do not have
                    raise ConfigError(
                        f"estimator '{est.name}' [{period.label}]: {exc}",
                        file=str(config.path) if config.path else None,
                        key=f"estimators[{i}]",
                    ) from exc
            entry = result.to_dict()
            entry.update({"name": est.name, "period": period.label})
            entry["extra"]["period"] = period.label
            entries.append(entry)
    return entries


@dataclass
class ConfiguredEstimator:
    """A configured estimator, picklable, so imputation workers fit exactly what the
    plug-in fit did (including the rule for unknown covariates)."""

    model: str
    options: dict[str, Any]
    missing_rule: str = "allocate"

    @property
    def name(self) -> str:
        return self.model

    def fit(self, persons: pl.DataFrame):
        return _fit_one(persons, self.model, self.options, self.missing_rule)


def _fit_one(persons: pl.DataFrame, model: str, options: dict[str, Any], missing_rule: str):
    """Fit one registry model: merge sparse covariate levels if asked (option
    ``merge_sparse_levels``), then allocate persons with unknown covariates (``missing``)."""
    from recapture.estimators import estimate
    from recapture.estimators.covariates import (
        allocate_unknown,
        formula_covariates,
        merge_sparse_levels,
    )

    options = dict(options)
    min_informative = options.pop("merge_sparse_levels", None)
    covariates = formula_covariates(options.get("formula"))
    listed = options.get("covariates")
    if listed:
        covariates += [
            c.strip() for c in (listed.split(",") if isinstance(listed, str) else listed)
        ]
    covariates = [
        c
        for c in dict.fromkeys(covariates)
        if c in persons.columns and persons[c].dtype == pl.String
    ]
    count = options.get("count")
    merges: dict[str, list[str]] = {}
    if min_informative and covariates:
        lists = options.get("lists") or []
        lists = [c.strip() for c in lists.split(",")] if isinstance(lists, str) else lists
        informative = (
            (pl.col(count) >= 2) if count else (pl.sum_horizontal([pl.col(c) for c in lists]) >= 2)
        )
        persons, merges = merge_sparse_levels(
            persons, covariates, informative, int(min_informative)
        )
    if missing_rule == "level" or not covariates:
        result = estimate(persons, model, **options)
    else:
        observed = pl.col(count) > 0 if count else None
        result = allocate_unknown(
            persons, covariates, lambda frame: estimate(frame, model, **options), observed=observed
        )
    if merges:
        result.extra["merged_levels"] = merges
        result.warnings.extend(
            f"levels of {column} with fewer than {min_informative} informative persons merged: {' + '.join(levels)}"
            for column, levels in merges.items()
        )
    return result


def _with_linkage_uncertainty(result, estimator, uncertainty, config, out, period, threshold):
    from recapture.uncertainty import linkage_aware_estimate

    records = pl.read_parquet(out / ARTIFACTS["records"])
    pairs = pl.read_parquet(out / ARTIFACTS["pairs"])
    clusters = pl.read_parquet(out / ARTIFACTS["clusters"])
    persons = pl.read_parquet(out / ARTIFACTS["persons"]).filter(pl.col("period") == period.label)
    lists = [c.removeprefix("in_") for c in estimator.options.get("lists") or []]
    # The Ding–Fienberg / Di Consiglio–Tuoto correction is a Petersen-type estimate: it
    # applies to two-list models without covariates; a covariate model would inherit the
    # heterogeneity bias of the unstratified correction, so it gets the imputations only.
    two_list_plain = estimator.model in ("petersen", "chapman") and not estimator.options.get(
        "covariates"
    )
    if uncertainty.analytic and not two_list_plain:
        uncertainty = dataclasses.replace(uncertainty, analytic=False)
    return linkage_aware_estimate(
        result,
        estimator=estimator,
        records=records,
        pairs=pairs,
        clusters=clusters,
        persons=persons,
        period=period,
        options=uncertainty,
        threshold=threshold,
        sources=config.source_names,
        rules=config.persons,
        lists=lists if len(lists) == 2 else None,
        seed=config.seed,
    )


def reconcile(stages: dict[str, Any]) -> dict[str, Any]:
    """Check that row counts agree from stage to stage (nothing lost)."""
    checks = []
    v = stages.get("validate", {}).get("counts", {})
    k = stages.get("link", {}).get("counts", {})
    p = stages.get("persons", {}).get("counts", {})
    if v:
        checks.append(
            {
                "check": "rows in = records + quarantined",
                "left": v["rows_in"],
                "right": v["records"] + v["quarantined"],
                "ok": v["rows_in"] == v["records"] + v["quarantined"],
            }
        )
    if v and k:
        checks.append(
            {
                "check": "records = records in clusters",
                "left": v["records"],
                "right": k["records_in_clusters"],
                "ok": v["records"] == k["records_in_clusters"],
            }
        )
    for label, c in (p.get("by_period") or {}).items():
        used = sum(c["records_used"].values())
        excluded = sum(c["outside_period"].values()) + sum(c["out_of_target"].values())
        checks.append(
            {
                "check": f"[{label}] records = used + outside period + out of target",
                "left": c["records_in"],
                "right": used + excluded,
                "ok": c["records_in"] == used + excluded,
            }
        )
    return {"ok": all(c["ok"] for c in checks), "checks": checks}
