"""One call for the pipeline and the CLI: a plug-in estimate made linkage-aware.

:class:`UncertaintyOptions` is the ``[uncertainty]`` table of a pipeline config (and the
``--imputations``/``--thresholds`` options of ``recapture estimate``);
:func:`linkage_aware_estimate` runs what it asks for around a fitted plug-in estimate and
stores the results in the estimate's ``extra``, where reports look for them:

* ``extra["linkage_aware"]`` — the multiple-imputation interval (or, for a two-list model
  when no imputations are asked for, the analytic Di Consiglio–Tuoto correction);
* ``extra["linkage_aware_analytic"]`` — the analytic correction when both are computed;
* ``extra["threshold_sensitivity"]`` — N̂ and its interval per match threshold;
* ``extra["linkage_expected"]`` — a two-list model refitted on the model-expected capture
  histories (``expected_links = true``; :mod:`recapture.uncertainty.fractional`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from recapture.errors import ConfigError, InputError
from recapture.estimators.result import PopulationEstimate
from recapture.io import artifact_path
from recapture.loader import build
from recapture.persons import CaptureHistoryRules, Period
from recapture.uncertainty.analytic import model_corrected_dse
from recapture.uncertainty.draws import DEFAULT_CHAINING_STEPS, DEFAULT_CONFLICT_PROBABILITY
from recapture.uncertainty.fractional import expected_links_estimate
from recapture.uncertainty.imputation import multiple_imputation
from recapture.uncertainty.sensitivity import threshold_sensitivity


@dataclass
class RegistryEstimator:
    """A picklable estimator from the registry: ``estimate(persons, model, **options)``.

    Lets multiple imputation run any registered model (``recapture estimate --model``) in
    worker processes, with the same options the plug-in fit used.
    """

    model: str
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.model

    def fit(self, persons: pl.DataFrame) -> PopulationEstimate:
        from recapture.estimators import estimate

        return estimate(persons, self.model, **self.options)


@dataclass
class UncertaintyOptions:
    """What linkage uncertainty to compute (all off by default: it costs refits)."""

    #: Number of imputed linkages M (0 = no multiple imputation; 20–50 is typical).
    imputations: int = 0
    #: Seed of the imputations (the run seed when None).
    seed: int | None = None
    #: Worker processes for the imputations (None = all cores).
    workers: int | None = None
    #: "auto" (the model's own interval: log of the bias-reduced N̂ for models with
    #: covariate strata, else N̂), "linear" (combine N̂) or "log" (combine log N̂).
    scale: str = "auto"
    #: Match thresholds for the sensitivity table (empty = none).
    thresholds: list[float] = field(default_factory=list)
    #: Analytic Ding–Fienberg/Di Consiglio–Tuoto correction for two-list models.
    analytic: bool = True
    #: Person covariates to stratify the analytic correction by (e.g. ["sex"]).
    analytic_strata: list[str] = field(default_factory=list)
    #: Two-list models: refit on the model-expected capture histories (each cross-list
    #: link weighted by its probability, each unlinked candidate counterpart by its own;
    #: uncertainty.fractional), reported as ``extra["linkage_expected"]``.
    expected_links: bool = False
    #: Chaining guard used when re-clustering (the linkage settings' values).
    conflict_probability: float = DEFAULT_CONFLICT_PROBABILITY
    chaining_steps: list[float] = field(default_factory=lambda: list(DEFAULT_CHAINING_STEPS))
    level: float = 0.95

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], *, file: str | None = None, where: str = "uncertainty."
    ) -> UncertaintyOptions:
        """Build from a config table by the strict loader: unknown keys and wrong types are
        ConfigErrors naming ``uncertainty.<key>``."""
        opts = build(cls, dict(data), prefix=where, file=file)
        opts.check(file=file, where=where)
        return opts

    def check(self, *, file: str | None = None, where: str = "uncertainty.") -> None:
        def bad(key: str, msg: str) -> ConfigError:
            return ConfigError(msg, file=file, key=where + key)

        if (
            not isinstance(self.imputations, int)
            or isinstance(self.imputations, bool)
            or self.imputations < 0
            or self.imputations == 1
        ):
            raise bad("imputations", "imputations must be 0 (off) or an integer ≥ 2")
        if self.scale not in ("auto", "linear", "log"):
            raise bad("scale", "scale must be 'auto', 'linear' or 'log'")
        if any(not isinstance(t, int | float) or not 0 < t < 1 for t in self.thresholds):
            raise bad("thresholds", "thresholds must be numbers strictly between 0 and 1")
        if self.workers is not None and (not isinstance(self.workers, int) or self.workers < 1):
            raise bad("workers", "workers must be a positive integer")
        if not 0 < self.level < 1:
            raise bad("level", "level must lie strictly between 0 and 1")

    @property
    def active(self) -> bool:
        return bool(self.imputations or self.thresholds or self.analytic or self.expected_links)


def period_from_label(label: str) -> Period:
    """The Period of a persons.parquet ``period`` label ('2017-07-01/2018-06-30')."""
    import datetime as dt

    try:
        start, end = (dt.date.fromisoformat(x) for x in label.split("/"))
    except ValueError:
        raise ConfigError(
            f"period label {label!r} is not 'YYYY-MM-DD/YYYY-MM-DD'", key="period"
        ) from None
    return Period(start, end, label)


def read_linkage_inputs(
    persons_path: str | Path,
    *,
    records: str | Path | None = None,
    pairs: str | Path | None = None,
    clusters: str | Path | None = None,
) -> dict[str, Any]:
    """records, pairs, clusters, persons and period for a persons.parquet; the other files
    default to the same run directory (records.parquet, pairs.parquet, clusters.parquet).
    Persons of several periods need one call per period (filter ``persons`` first)."""
    persons_path = Path(persons_path)
    run = persons_path.parent
    paths = {
        "records": Path(records) if records else artifact_path(run, "records"),
        "pairs": Path(pairs) if pairs else artifact_path(run, "pairs"),
        "clusters": Path(clusters) if clusters else artifact_path(run, "clusters"),
    }
    for name, path in paths.items():
        if not path.exists():
            raise InputError(
                f"linkage-aware estimates need {name}.parquet (give its path)", file=str(path)
            )
    persons = pl.read_parquet(persons_path)
    periods = persons["period"].unique().to_list() if "period" in persons.columns else []
    if len(periods) != 1:
        raise InputError(
            f"persons must hold exactly one period for linkage-aware estimates, found {periods}",
            file=str(persons_path),
            column="period",
        )
    return {
        "records": pl.read_parquet(paths["records"]),
        "pairs": pl.read_parquet(
            paths["pairs"], columns=["record_id_l", "record_id_r", "match_probability"]
        ),
        "clusters": pl.read_parquet(paths["clusters"], columns=["record_id", "person_id"]),
        "persons": persons,
        "period": _period_of(persons_path, periods[0]),
    }


def _period_of(persons_path: Path, label: str) -> Period:
    """The period's dates from the persons file's metadata (any label), else from a
    'YYYY-MM-DD/YYYY-MM-DD' label."""
    import datetime as dt
    import json

    from recapture.io import read_metadata

    known = json.loads(read_metadata(persons_path).get("periods", "{}"))
    if label in known:
        start, end = known[label]
        return Period(dt.date.fromisoformat(start), dt.date.fromisoformat(end), label)
    return period_from_label(label)


def linkage_aware_estimate(
    plug_in: PopulationEstimate,
    *,
    estimator: Any,
    records: pl.DataFrame,
    pairs: pl.DataFrame,
    clusters: pl.DataFrame,
    persons: pl.DataFrame,
    period: Period,
    options: UncertaintyOptions,
    threshold: float | None = None,
    sources: list[str] | None = None,
    rules: CaptureHistoryRules | None = None,
    lists: Sequence[str] | None = None,
    seed: int = 0,
) -> PopulationEstimate:
    """Add linkage-aware results to ``plug_in`` (fitted by ``estimator`` on ``persons``,
    which were built from ``clusters``) and return it.

    ``lists`` names the two lists of a two-list model (enables the analytic correction);
    ``threshold`` is the linkage threshold used, added to the sensitivity thresholds so
    the table contains the plug-in row.
    """
    common = dict(
        period=period,
        sources=sources,
        rules=rules,
        conflict_probability=options.conflict_probability,
        chaining_steps=options.chaining_steps,
    )
    if options.imputations:
        mi = multiple_imputation(
            records,
            pairs,
            estimator,
            imputations=options.imputations,
            seed=options.seed if options.seed is not None else seed,
            workers=options.workers,
            scale=options.scale,
            level=options.level,
            **common,
        )
        plug_in.extra["linkage_aware"] = mi.extra["linkage_aware"]
        plug_in.warnings.extend(f"linkage-aware: {w}" for w in mi.warnings)
    if options.analytic and lists is not None and len(lists) == 2:
        try:
            analytic = model_corrected_dse(
                records,
                clusters,
                pairs,
                persons,
                period=period,
                lists=tuple(lists),
                strata=options.analytic_strata,
                rules=rules,
                level=options.level,
            )
        except Exception as exc:  # reported, not fatal: the plug-in estimate stands
            plug_in.warnings.append(f"analytic linkage correction failed: {exc}")
        else:
            key = "linkage_aware_analytic" if "linkage_aware" in plug_in.extra else "linkage_aware"
            plug_in.extra[key] = analytic.extra["linkage_aware"]
    if options.expected_links and lists is not None and len(lists) == 2:
        try:
            plug_in.extra["linkage_expected"] = expected_links_estimate(
                estimator,
                records=records,
                clusters=clusters,
                pairs=pairs,
                persons=persons,
                lists=(lists[0], lists[1]),
                period=period,
                rules=rules,
                level=options.level,
            )
        except Exception as exc:  # reported, not fatal: the plug-in estimate stands
            plug_in.warnings.append(f"expected-links refit failed: {exc}")
    if options.thresholds:
        thresholds = sorted(
            set(options.thresholds) | ({float(threshold)} if threshold is not None else set())
        )
        plug_in.extra["threshold_sensitivity"] = threshold_sensitivity(
            records,
            pairs,
            estimator,
            thresholds=thresholds,
            level=options.level,
            workers=options.workers,
            **common,
        )
    return plug_in
