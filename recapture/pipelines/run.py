"""The end-to-end run: raw extracts → records → linkage → persons → estimates → reports.

Every stage writes its artifacts atomically into the run directory, and the manifest
records the config, seeds, input checksums, package versions, reconciled row counts and
stage timings. Rerunning with unchanged inputs and config reuses finished stages.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from recapture import progress
from recapture.config import PipelineConfig, load_config
from recapture.errors import ConfigError, RecaptureError
from recapture.estimators import estimate
from recapture.io import (
    ARTIFACTS,
    artifact_path,
    file_sha256,
    read_json,
)
from recapture.linkage import LinkageSettings
from recapture.linkage.engines import EngineOptions, link_and_write
from recapture.persons import build_persons, write_persons
from recapture.pipelines.rundir import RunDirectory
from recapture.pipelines.stages import (
    Manifest,
    Stage,
    fingerprint,
    interrupt_on_sigterm,
    run_stages,
)
from recapture.reports import write_reports
from recapture.uncertainty import UncertaintyOptions, linkage_aware_estimate
from recapture.validation import validate_extracts


@dataclass
class RunResult:
    """What a run produced: the run directory, its manifest and the fitted estimates."""

    run_dir: Path
    manifest: dict[str, Any]
    estimates: list[dict[str, Any]] = field(default_factory=list)
    reports: dict[str, str] = field(default_factory=dict)

    def path(self, artifact: str) -> Path:
        return artifact_path(self.run_dir, artifact)


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
            # the engine changes where the pairs are computed, not what they are; recorded
            # only when not the default, so a polars run's snapshot stays as it was
            **({"engine": config.linkage.engine} if config.linkage.engine != "polars" else {}),
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
    settings = (
        LinkageSettings.from_toml(config.linkage.settings)
        if config.linkage.settings
        else LinkageSettings.default()
    )
    overrides: dict[str, Any] = {"seed": config.seed}
    if config.linkage.threshold is not None:
        overrides["threshold"] = config.linkage.threshold
    return dataclasses.replace(settings, **overrides)


#: Stages in order; ``until`` names one of them.
STAGES = ("validate", "link", "persons", "estimate", "report")


def run_pipeline(
    config: PipelineConfig | str | Path,
    *,
    run_dir: str | Path | None = None,
    force: bool = False,
    until: str | None = None,
    allow_other_files: bool = False,
) -> RunResult:
    """Run (or resume) the pipeline described by ``config`` into its run directory.

    Finished stages whose inputs and settings are unchanged are reused; ``force`` redoes
    them all; ``until`` stops after the named stage (``"persons"`` produces the Parquet
    contract without the estimators). A failing stage raises
    :class:`~recapture.errors.StageError` naming it, and leaves the artifacts of earlier
    stages intact; an estimator that fails to fit is recorded in estimates.json and does
    not stop the others. The run holds its directory for its duration (see
    :class:`~recapture.pipelines.rundir.RunDirectory`): a second run into it fails, and a
    directory with files recapture did not write is refused unless ``allow_other_files``.
    SIGINT/SIGTERM stop the run, its workers with it, and the manifest records the stage
    (``status = "interrupted"``).
    """
    if not isinstance(config, PipelineConfig):
        config = load_config(config)
    if until is not None and until not in STAGES:
        raise ConfigError(f"unknown stage {until!r}; stages: {', '.join(STAGES)}", key="until")
    out = Path(run_dir) if run_dir is not None else config.run_dir
    with RunDirectory(out, allow_other_files=allow_other_files), interrupt_on_sigterm():
        return _run(config, out, force=force, until=until)


def _run(config: PipelineConfig, out: Path, *, force: bool, until: str | None) -> RunResult:
    snapshot = _config_snapshot(config)
    manifest = Manifest(out, snapshot, config.seed)
    run_id = manifest.data["run_id"] = fingerprint(
        {"config": snapshot, "inputs": input_checksums(config)}
    )
    as_of = config.as_of or dt.date.today()
    sources = config.source_names
    settings = _linkage_settings(config)

    def validate() -> dict[str, Any]:
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
        records = pl.read_parquet(artifact_path(out, "records"))
        options = EngineOptions(
            engine=config.linkage.engine,
            spark_master=config.linkage.spark.master,
            spark_conf=config.linkage.spark.conf,
        )
        result, _ = link_and_write(records, settings, out, options, run_id=run_id)
        return {
            "records": records.height,
            "records_in_clusters": result.clusters.height,
            "persons": int(result.clusters["person_id"].n_unique()),
            "pairs_scored": result.metrics["candidate_pairs"],
            "threshold": result.threshold,
        }

    def persons() -> dict[str, Any]:
        records = pl.read_parquet(artifact_path(out, "records"))
        clusters = pl.read_parquet(artifact_path(out, "clusters"))
        # only the links the clustering used: the weakest-link summary needs nothing else,
        # and at a million records they are a small share of the scored pairs
        pairs = (
            pl.scan_parquet(artifact_path(out, "pairs"))
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
        write_persons(
            table,
            artifact_path(out, "persons"),
            sources=sources,
            periods=config.periods,
            rules=config.persons,
            run_id=run_id,
        )
        ARTIFACTS["persons_summary"].write(counts, out)
        return {"rows": table.height, "by_period": counts}

    def estimate() -> dict[str, Any]:
        entries = fit_estimators(config, out, settings_threshold=_used_threshold(out))
        ARTIFACTS["estimates"].write(entries, out)
        failures = [
            {"name": e["name"], "period": e["period"], "error": e["error"]}
            for e in entries
            if e.get("error")
        ]
        failures += [
            {
                "name": e["name"],
                "period": e["period"],
                "error": e["extra"]["linkage_aware"]["error"],
            }
            for e in entries
            if not e.get("error") and (e.get("extra", {}).get("linkage_aware") or {}).get("error")
        ]
        return {"estimates": len(entries), "failed": len(failures), "failures": failures}

    def report() -> dict[str, Any]:
        written = write_reports(out)
        return {"reports": {k: str(v) for k, v in written.items()}}

    stages = [
        Stage(
            "validate",
            [ARTIFACTS[a].file for a in ("records", "quarantine", "validation_summary")],
            validate,
            settings={"sources": snapshot["sources"], "as_of": as_of.isoformat()},
            input_files=[s.path for s in config.sources]
            + [Path(s.definition) for s in config.sources if s.definition.endswith(".toml")],
        ),
        Stage(
            "link",
            [ARTIFACTS[a].file for a in ("pairs", "clusters", "linkage_model", "linkage_metrics")],
            link,
            settings=settings.to_dict(),
            upstream=["validate"],
        ),
        Stage(
            "persons",
            [ARTIFACTS["persons"].file, ARTIFACTS["persons_summary"].file],
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
            [ARTIFACTS["estimates"].file],
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
                    ARTIFACTS[f"{name}_report"].file
                    for name in ("validation", "linkage", "explorer", "estimates")
                ],
                report,
                settings={"version": 3},  # bumped when the reports change: reruns rewrite them
                upstream=["estimate"],
            )
        )

    if until is not None:
        stages = [s for s in stages if STAGES.index(s.name) <= STAGES.index(until)]
    manifest.data["until"] = until
    manifest.data["removed_stale"] = remove_stale_outputs(manifest, stages)
    try:
        data = run_stages(stages, manifest, force=force)
    except KeyboardInterrupt:  # between stages: run_stages records one inside a stage
        if manifest.data.get("status") != "interrupted":
            manifest.data["status"] = "interrupted"
            manifest.save()
        raise
    manifest.data["reconciliation"] = reconcile(manifest.data["stages"])
    failed = [
        f"{e['name']} [{e['period']}]"
        for e in (data["stages"].get("estimate", {}).get("counts", {}).get("failures") or [])
    ]
    manifest.data["failed_estimates"] = failed
    manifest.data["status"] = (
        "done" if manifest.data["reconciliation"]["ok"] else "counts do not reconcile"
    )
    manifest.save()
    ran_estimate = any(s.name == "estimate" for s in stages)
    estimates = read_json(artifact_path(out, "estimates")) if ran_estimate else []
    reports = data["stages"].get("report", {}).get("counts", {}).get("reports", {})
    return RunResult(run_dir=out, manifest=manifest.data, estimates=estimates, reports=reports)


def remove_stale_outputs(manifest: Manifest, stages: list[Stage]) -> list[str]:
    """Delete the outputs an earlier run wrote that this run will not produce (e.g. the
    reports of a run now without reports), so the directory never mixes two runs. Only
    files the previous manifest lists as written, and only the registry's artifact names."""
    producing = {s.name for s in stages}
    known = {a.file for a in ARTIFACTS.values()}
    removed = []
    for name, stage in sorted(manifest.previous_stages.items()):
        if name in producing or not isinstance(stage, dict):
            continue
        for output in stage.get("outputs") or []:
            path = manifest.run_dir / str(output)
            if output in known and path.is_file() and not path.is_symlink():
                path.unlink()
                removed.append(output)
                progress.info(f"· removed {output}: written by an earlier run, not by this one")
    return removed


def format_run(result: RunResult) -> str:
    """What ``recapture run`` prints: stages, reconciliation and the estimates."""
    lines = [f"run {result.manifest.get('run_id')} in {result.run_dir}"]
    for name, stage in result.manifest["stages"].items():
        state = "reused" if stage.get("reused") else f"{stage.get('seconds', 0):.1f} s"
        lines.append(f"  {name:<10} {stage.get('status')} ({state})")
    for check in result.manifest["reconciliation"]["checks"]:
        mark = "ok" if check["ok"] else "MISMATCH"
        lines.append(f"  {mark:<8} {check['check']}: {check['left']:,} vs {check['right']:,}")
    for output in result.manifest.get("removed_stale") or []:
        lines.append(f"  removed  {output} (an earlier run's; this run does not write it)")
    if not result.estimates:
        lines.append(f"  stopped after '{result.manifest.get('until')}'; no estimates")
    else:
        lines.append("")
        lines.append(f"  {'estimator':<26}{'period':<12}{'N̂':>10}{'SE':>9}   95% interval")
    for e in result.estimates:
        if e.get("error"):
            lines.append(f"  {e['name']:<26}{e['period']:<12} failed: {e['error']}")
            if e.get("suggestion"):
                lines.append(f"      try: {e['suggestion']}")
            continue
        iv = e["intervals"].get(e["default_interval"]) or {}
        lines.append(
            f"  {e['name']:<26}{e['period']:<12}{_num(e.get('population_size')):>10}"
            f"{_num(e.get('se')):>9}   {_num(iv.get('lower'))} – {_num(iv.get('upper'))}"
        )
        lines.extend(f"      warning: {w}" for w in e.get("warnings") or [])
    failed = result.manifest.get("failed_estimates") or []
    if failed:
        lines.append(
            f"  {len(failed)} estimate(s) failed: {', '.join(failed)} "
            "(recorded in estimates.json; --strict makes this exit 1)"
        )
    for name, path in sorted(result.reports.items()):
        lines.append(f"  {name} report: {path}")
    return "\n".join(lines)


def _num(value: Any) -> str:
    """A population figure for the console; JSON null (NaN, infinite) prints as n/a."""
    return "n/a" if value is None else f"{value:,.0f}"


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
    path = artifact_path(out, "linkage_model")
    return read_json(path).get("threshold") if path.exists() else None


def fit_estimators(
    config: PipelineConfig, out: Path, *, settings_threshold: float | None = None
) -> list[dict[str, Any]]:
    """Fit every configured estimator to every period's persons. Problems of the fit
    (boundary estimates, non-convergence) are warnings on its result; an estimator that
    cannot be fitted as configured is an error naming its config key."""

    from recapture.estimators.covariates import MISSING_RULES

    persons_all = pl.read_parquet(artifact_path(out, "persons"))
    uncertainty = None
    if config.uncertainty:
        uncertainty = UncertaintyOptions.from_dict(config.uncertainty)
    entries: list[dict[str, Any]] = []
    for period in config.periods:
        persons = persons_all.filter(pl.col("period") == period.label)
        for i, est in enumerate(config.estimators):
            options = dict(est.options)
            missing_rule = options.pop("missing", None)
            linkage_aware = options.pop("linkage_uncertainty", True)
            if missing_rule is not None and missing_rule not in MISSING_RULES:
                raise ConfigError(
                    "must be one of " + ", ".join(f"'{r}'" for r in MISSING_RULES),
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
                except Exception as exc:  # a fit that fails on these data: recorded, not fatal
                    entries.append(_failed_entry(est.name, est.model, period.label, exc, i))
                    progress.info(f"  {label} failed: {entries[-1]['error']}")
                    continue
                if uncertainty is not None and uncertainty.active and linkage_aware:
                    try:
                        result = _with_linkage_uncertainty(
                            result, estimator, uncertainty, config, out, period, settings_threshold
                        )
                    except Exception as exc:  # the plug-in estimate stands; the failure is recorded
                        reason = _reason(exc)
                        result.extra["linkage_aware"] = {
                            "error": reason,
                            "suggestion": LINKAGE_AWARE_SUGGESTION,
                        }
                        result.warnings.append(
                            f"linkage-aware interval failed ({reason}); {LINKAGE_AWARE_SUGGESTION}"
                        )
            entry = result.to_dict()
            entry.update({"name": est.name, "period": period.label})
            entry["extra"]["period"] = period.label
            entries.append(entry)
    return entries


#: What to try when an estimator's fit fails on the data (recorded in estimates.json).
FIT_SUGGESTION = (
    "simplify the model (fewer covariates in formula/covariates), merge sparse levels "
    "(merge_sparse_levels = 5), or set linkage_uncertainty = false for this estimator"
)
LINKAGE_AWARE_SUGGESTION = (
    "the imputed linkages are too sparse for this model: simplify it (fewer covariates, "
    "merge_sparse_levels) or set linkage_uncertainty = false for this estimator"
)


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _failed_entry(name: str, model: str, period: str, exc: BaseException, index: int) -> dict:
    """The estimates.json entry of an estimator that could not be fitted."""
    return {
        "name": name,
        "model": model,
        "period": period,
        "config_key": f"estimators[{index}]",
        "error": _reason(exc),
        "suggestion": FIT_SUGGESTION,
        "warnings": [],
        "extra": {"period": period},
    }


@dataclass
class ConfiguredEstimator:
    """A configured estimator, picklable, so imputation workers fit exactly what the
    plug-in fit did. A thin mapping of the config onto :func:`recapture.estimators.estimate`,
    which owns the rules for unknown covariates and sparse levels (``missing``,
    ``merge_sparse_levels``); None means the estimators' default rule."""

    model: str
    options: dict[str, Any]
    missing_rule: str | None = None

    @property
    def name(self) -> str:
        return self.model

    def fit(self, persons: pl.DataFrame):
        return _fit_one(persons, self.model, self.options, self.missing_rule)


def _fit_one(
    persons: pl.DataFrame, model: str, options: dict[str, Any], missing_rule: str | None = None
):
    """One registry fit of a configured estimator (``options`` may hold
    ``merge_sparse_levels``)."""

    return estimate(persons, model, missing=missing_rule, **options)


def _with_linkage_uncertainty(result, estimator, uncertainty, config, out, period, threshold):
    records = pl.read_parquet(artifact_path(out, "records"))
    pairs = pl.read_parquet(artifact_path(out, "pairs"))
    clusters = pl.read_parquet(artifact_path(out, "clusters"))
    persons = pl.read_parquet(artifact_path(out, "persons")).filter(
        pl.col("period") == period.label
    )
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
