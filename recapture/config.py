"""Pipeline configuration: a TOML file → typed, validated objects.

Every key is checked on load; an unknown or mistyped key is an error naming the key, so a
typo never silently falls back to a default. Relative paths are resolved against the
config file's folder, so a run directory and its config can be moved together.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from recapture.errors import ConfigError
from recapture.estimators import MODELS
from recapture.loader import check_keys, expect, in_range, read_toml, require, spark_conf
from recapture.persons import CaptureHistoryRules, Period
from recapture.uncertainty import UncertaintyOptions
from recapture.validation import load_source_definition

#: Seeds are 32-bit unsigned integers (numpy's and the manifest's common ground).
SEED_LIMIT = 2**32


@dataclass
class SourceConfig:
    """One raw extract and the source definition that reads it."""

    name: str
    path: Path
    definition: str  # a built-in definition name ('police', 'iom') or a TOML path


#: Linkage engines: the local polars engine (the default) and Apache Spark.
ENGINES = ("polars", "spark")


@dataclass
class SparkConfig:
    """``[linkage.spark]``: where the Spark engine runs."""

    #: Spark master URL (``local[2]``, ``spark://host:7077``, ``yarn``, …).
    master: str = "local[2]"
    #: Spark configuration, key → string value, passed to the session builder as is.
    conf: dict[str, str] = field(default_factory=dict)


@dataclass
class LinkageConfig:
    #: Optional linkage settings TOML; the built-in registration settings when absent.
    settings: Path | None = None
    #: Match-probability threshold for clustering; the settings' own when absent.
    threshold: float | None = None
    #: "polars" (local) or "spark".
    engine: str = "polars"
    spark: SparkConfig = field(default_factory=SparkConfig)


@dataclass
class EstimatorConfig:
    """One estimator to fit on persons.parquet for each period.

    ``options`` are the registry options of the model (those of ``recapture estimate``:
    formula, count, lists, covariates, variance, replicates, …); the model checks them.
    """

    name: str
    model: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class PipelineConfig:
    run_dir: Path
    sources: list[SourceConfig]
    periods: list[Period]
    estimators: list[EstimatorConfig]
    linkage: LinkageConfig = field(default_factory=LinkageConfig)
    uncertainty: dict[str, Any] = field(default_factory=dict)
    as_of: dt.date | None = None
    persons: CaptureHistoryRules = field(default_factory=CaptureHistoryRules)
    seed: int = 20170701
    reports: bool = True
    path: Path | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def source_names(self) -> list[str]:
        return [s.name for s in self.sources]


def _check_keys(table: dict, allowed: set[str], where: str, file: str | None) -> None:
    check_keys(table, allowed, file=file, prefix=where)


def _require(table: dict, key: str, kind: type | tuple, where: str, file: str | None) -> Any:
    return require(table, key, kind, prefix=where, file=file)


def _typed(value: Any, kind: type | tuple, key: str, file: str | None) -> Any:
    return expect(value, kind, key=key, file=file)


def _path(value: Any, base: Path, key: str, file: str | None) -> Path:
    p = Path(_typed(value, str, key, file)).expanduser()
    return p if p.is_absolute() else (base / p)


def _date(value: Any, key: str, file: str | None) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    raise ConfigError(f"expected a date (YYYY-MM-DD), got {value!r}", file=file, key=key)


def parse_config(
    data: dict[str, Any], *, base_dir: Path, file: str | None = None
) -> PipelineConfig:
    """Validate a parsed TOML mapping into a :class:`PipelineConfig`."""
    _check_keys(
        data,
        {"run", "sources", "linkage", "periods", "persons", "estimators", "uncertainty", "reports"},
        "",
        file,
    )
    run = data.get("run", {})
    _check_keys(run, {"dir", "seed", "as_of"}, "run.", file)
    as_of = _date(run["as_of"], "run.as_of", file) if "as_of" in run else None
    run_dir = _path(run.get("dir", "run"), base_dir, "run.dir", file)
    seed = _typed(run.get("seed", 20170701), int, "run.seed", file)
    in_range(seed, 0, SEED_LIMIT, upper_open=True, key="run.seed", file=file)

    raw_sources = data.get("sources")
    if not raw_sources:
        raise ConfigError("at least one [[sources]] entry is required", file=file, key="sources")
    sources = []
    for i, src in enumerate(_typed(raw_sources, list, "sources", file)):
        where = f"sources[{i}]."
        _check_keys(src, {"name", "path", "definition"}, where, file)
        definition = _typed(src.get("definition", src.get("name")), str, f"{where}definition", file)
        if definition is None:
            raise ConfigError("missing required key", file=file, key=f"{where}definition")
        if definition.endswith(".toml"):
            definition = str(_path(definition, base_dir, f"{where}definition", file))
        name = _definition_name(definition, f"{where}definition", file)
        if src.get("name", name) != name:
            raise ConfigError(
                f"the source definition names this source {name!r}; records carry that name",
                file=file,
                key=f"{where}name",
            )
        sources.append(
            SourceConfig(
                name=name,
                path=_path(_require(src, "path", str, where, file), base_dir, f"{where}path", file),
                definition=definition,
            )
        )
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        raise ConfigError(f"source names must be unique, got {names}", file=file, key="sources")

    link = data.get("linkage", {})
    _check_keys(link, {"settings", "threshold", "engine", "spark"}, "linkage.", file)
    engine = _typed(link.get("engine", "polars"), str, "linkage.engine", file)
    if engine not in ENGINES:
        raise ConfigError(
            f"unknown engine {engine!r} (allowed: {', '.join(ENGINES)})",
            file=file,
            key="linkage.engine",
        )
    spark_table = link.get("spark", {})
    _check_keys(spark_table, {"master": str, "conf": None}, "linkage.spark.", file)
    spark = SparkConfig(
        master=spark_table.get("master", SparkConfig.master),
        conf=spark_conf(spark_table.get("conf", {}), key="linkage.spark.conf", file=file),
    )
    threshold = link.get("threshold")
    if threshold is not None:
        threshold = float(_typed(threshold, (int, float), "linkage.threshold", file))
        if not 0.0 < threshold < 1.0:
            raise ConfigError(
                "must be a probability strictly between 0 and 1", file=file, key="linkage.threshold"
            )
    linkage = LinkageConfig(
        settings=_path(link["settings"], base_dir, "linkage.settings", file)
        if "settings" in link
        else None,
        threshold=threshold,
        engine=engine,
        spark=spark,
    )

    periods = []
    for i, per in enumerate(_typed(data.get("periods", []), list, "periods", file)):
        where = f"periods[{i}]."
        _check_keys(per, {"start", "end", "label"}, where, file)
        start = _date(_require(per, "start", (str, dt.date), where, file), f"{where}start", file)
        end = _date(_require(per, "end", (str, dt.date), where, file), f"{where}end", file)
        if end < start:
            raise ConfigError(
                f"period ends ({end}) before it starts ({start})", file=file, key=f"{where}end"
            )
        periods.append(Period(start, end, str(per.get("label", ""))))
    if not periods:
        periods = [Period.year_from_july(2017)]
    labels = [p.label for p in periods]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"period labels must be unique, got {labels}", file=file, key="periods")

    persons_table = data.get("persons", {})
    allowed_rules = {f.name for f in fields(CaptureHistoryRules)}
    _check_keys(persons_table, allowed_rules, "persons.", file)
    rules = CaptureHistoryRules()
    if "age_breaks" in persons_table:
        breaks = _typed(persons_table["age_breaks"], list, "persons.age_breaks", file)
        if (
            not breaks
            or any(not isinstance(b, int) for b in breaks)
            or breaks != sorted(set(breaks))
        ):
            raise ConfigError(
                "must be a non-empty increasing list of integers",
                file=file,
                key="persons.age_breaks",
            )
        rules.age_breaks = tuple(breaks)
    if "exclude_out_of_target" in persons_table:
        rules.exclude_out_of_target = _typed(
            persons_table["exclude_out_of_target"], bool, "persons.exclude_out_of_target", file
        )
    for key in ("departure_source", "primary_source"):
        if key in persons_table:
            setattr(rules, key, _typed(persons_table[key], str, f"persons.{key}", file))

    estimators = []
    for i, est in enumerate(_typed(data.get("estimators", []), list, "estimators", file)):
        where = f"estimators[{i}]."
        est = dict(_typed(est, dict, f"estimators[{i}]", file))
        model = _require(est, "model", str, where, file)
        if model not in MODELS:
            raise ConfigError(
                f"unknown model {model!r}; known: {', '.join(sorted(MODELS))}",
                file=file,
                key=f"{where}model",
            )
        name = str(est.pop("name", model))
        est.pop("model")
        lists = est.get("lists")
        if lists is not None:
            lists = (
                [lists] if isinstance(lists, str) else _typed(lists, list, f"{where}lists", file)
            )
            unknown = [x for x in lists if x not in names]
            if unknown:
                raise ConfigError(
                    f"unknown sources {unknown} (configured: {names})",
                    file=file,
                    key=f"{where}lists",
                )
            est["lists"] = lists
        estimators.append(EstimatorConfig(name=name, model=model, options=est))
    est_names = [e.name for e in estimators]
    if len(set(est_names)) != len(est_names):
        raise ConfigError(
            f"estimator names must be unique, got {est_names}", file=file, key="estimators"
        )

    uncertainty = _typed(data.get("uncertainty", {}), dict, "uncertainty", file)
    if uncertainty:
        UncertaintyOptions.from_dict(uncertainty, file=file)  # validated now, built per run

    reports = data.get("reports", {})
    _check_keys(reports, {"enabled"}, "reports.", file)
    return PipelineConfig(
        run_dir=run_dir,
        sources=sources,
        periods=periods,
        estimators=estimators,
        linkage=linkage,
        uncertainty=uncertainty,
        as_of=as_of,
        persons=rules,
        seed=seed,
        reports=_typed(reports.get("enabled", True), bool, "reports.enabled", file),
        path=Path(file) if file else None,
        raw=data,
    )


def _definition_name(definition: str, key: str, file: str | None) -> str:
    try:
        return load_source_definition(definition).name
    except ConfigError as exc:
        raise ConfigError(str(exc), file=file, key=key) from None


def load_config(path: str | Path) -> PipelineConfig:
    """Read and validate a pipeline TOML file."""
    path = Path(path)
    data = read_toml(path)
    return parse_config(data, base_dir=path.resolve().parent, file=str(path))
