"""Building capture histories: from linked records to one row per person and period.

This is the contract estimators read (``persons.parquet``). Each person's covariates are
resolved from their records by documented rules (see ``docs/artifacts.md``), and the
conflicts between records are counted, so a statistician can see how much the linkage
and the recording disagree. Nothing identifying (names, birth dates, V-numbers) leaves
this stage.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from recapture.errors import ConfigError

#: Birth-date qualities in order of preference when resolving a person's birth date.
_BIRTH_QUALITY_RANK = {"full": 0, "month_year": 1, "default": 2, "year_only": 3, "missing": 9}


@dataclass(frozen=True)
class Period:
    """A reference period, inclusive on both ends (default 1 July – 30 June)."""

    start: dt.date
    end: dt.date
    label: str = ""

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ConfigError(
                f"period ends ({self.end}) before it starts ({self.start})", key="periods"
            )
        if not self.label:
            object.__setattr__(self, "label", f"{self.start.isoformat()}/{self.end.isoformat()}")

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    @classmethod
    def year_from_july(cls, year: int) -> Period:
        """The period 1 July ``year`` – 30 June ``year + 1`` used in the Dutch estimates."""
        return cls(dt.date(year, 7, 1), dt.date(year + 1, 6, 30))


@dataclass
class CaptureHistoryRules:
    """How a person's covariates are resolved from their records."""

    #: Upper-exclusive age breaks; ages are measured at the period's start.
    age_breaks: tuple[int, ...] = (25, 40)
    #: Drop registrations flagged as outside the target population (in_target == False).
    exclude_out_of_target: bool = True
    #: Source whose registration ends a person's time at risk (assisted departure).
    departure_source: str | None = "iom"
    #: Source whose first registration gives reason and police unit.
    primary_source: str = "police"

    def age_labels(self) -> list[str]:
        breaks = list(self.age_breaks)
        labels = []
        lower = 0
        for b in breaks:
            labels.append(f"{lower}-{b - 1}" if lower else f"<{b}")
            lower = b
        labels.append(f"{lower}+")
        return labels


@dataclass
class CaptureHistoryCounts:
    """Row counts of the stage, reconciling records in with persons out."""

    records_in: int = 0
    outside_period: dict[str, int] = field(default_factory=dict)
    out_of_target: dict[str, int] = field(default_factory=dict)
    records_used: dict[str, int] = field(default_factory=dict)
    persons: int = 0
    persons_by_source: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "records_in": self.records_in,
            "outside_period": self.outside_period,
            "out_of_target": self.out_of_target,
            "records_used": self.records_used,
            "persons": self.persons,
            "persons_by_source": self.persons_by_source,
        }


def _mode_with_conflicts(frame: pl.DataFrame, column: str, name: str) -> pl.DataFrame:
    """Most frequent non-missing value per person (ties: earliest registration) and the
    number of the person's records that disagree with it."""
    present = frame.filter(pl.col(column).is_not_null())
    counts = present.group_by(["person_id", column]).agg(
        pl.len().alias("_n"), pl.col("event_date").min().alias("_first")
    )
    best = (
        counts.sort(["person_id", "_n", "_first", column], descending=[False, True, False, False])
        .group_by("person_id", maintain_order=True)
        .agg(
            pl.col(column).first().alias(name),
            pl.col("_n").first().alias("_n_best"),
            pl.col("_n").sum().alias("_n_all"),
        )
        .with_columns(
            (pl.col("_n_all") - pl.col("_n_best")).cast(pl.Int32).alias(f"conflicts_{name}")
        )
        .drop("_n_best", "_n_all")
    )
    return best


def build_persons(
    records: pl.DataFrame,
    clusters: pl.DataFrame,
    period: Period,
    *,
    sources: list[str] | None = None,
    pairs: pl.DataFrame | None = None,
    rules: CaptureHistoryRules | None = None,
) -> tuple[pl.DataFrame, CaptureHistoryCounts]:
    """One row per person seen in ``period``: counts per source, capture indicators,
    resolved covariates, conflict counts and linkage confidence.

    ``sources`` fixes the capture columns (and their order) even when a source has no
    registration in the period. ``pairs`` (scored pairs from the linkage) adds each
    person's weakest link probability.
    """
    rules = rules or CaptureHistoryRules()
    sources = sources or sorted(records["source"].unique().to_list())
    counts = CaptureHistoryCounts(records_in=records.height)

    in_period = pl.col("event_date").is_between(period.start, period.end, closed="both")
    tally = records.group_by("source").agg(
        (~in_period).sum().alias("outside"),
        (in_period & ~pl.col("in_target")).sum().alias("out_of_target"),
    )
    for row in tally.iter_rows(named=True):
        counts.outside_period[row["source"]] = int(row["outside"])
        counts.out_of_target[row["source"]] = (
            int(row["out_of_target"]) if rules.exclude_out_of_target else 0
        )

    kept = records.filter(in_period)
    if rules.exclude_out_of_target:
        kept = kept.filter(pl.col("in_target"))
    kept = kept.join(clusters.select("record_id", "person_id"), on="record_id", how="left")
    unassigned = kept.filter(pl.col("person_id").is_null()).height
    if unassigned:
        raise ValueError(f"{unassigned} records have no person in clusters.parquet")
    for src in sources:
        counts.records_used[src] = int((kept["source"] == src).sum())

    base = kept.group_by("person_id").agg(
        *[(pl.col("source") == s).sum().cast(pl.Int32).alias(f"n_{s}") for s in sources],
        pl.len().cast(pl.Int32).alias("record_count"),
        pl.col("event_date").min().alias("first_date"),
        pl.col("event_date").max().alias("last_date"),
    )
    base = base.with_columns(
        *[(pl.col(f"n_{s}") > 0).cast(pl.Int8).alias(f"in_{s}") for s in sources],
    )

    # time at risk: from the period's start to an assisted departure, if any
    if rules.departure_source and rules.departure_source in sources:
        departure = (
            kept.filter(pl.col("source") == rules.departure_source)
            .group_by("person_id")
            .agg(pl.col("event_date").min().alias("_departure"))
        )
        base = base.join(departure, on="person_id", how="left")
    else:
        base = base.with_columns(pl.lit(None, dtype=pl.Date).alias("_departure"))
    base = base.with_columns(
        ((pl.coalesce("_departure", pl.lit(period.end)) - pl.lit(period.start)).dt.total_days() + 1)
        .cast(pl.Int32)
        .alias("days_at_risk")
    ).drop("_departure")

    sex = _mode_with_conflicts(kept, "sex", "sex")
    nationality = _mode_with_conflicts(kept, "nationality_iso3", "nationality")
    region = (
        kept.filter(pl.col("nationality_region").is_not_null())
        .join(nationality.select("person_id", "nationality"), on="person_id")
        .filter(pl.col("nationality_iso3") == pl.col("nationality"))
        .group_by("person_id")
        .agg(pl.col("nationality_region").first().alias("region"))
    )

    birth = _resolve_birth_year(kept)
    age = birth.with_columns(
        (
            pl.lit(period.start.year)
            - pl.col("birth_year")
            - (
                pl.lit(period.start.month * 100 + period.start.day)
                < pl.col("_birth_md").fill_null(101)
            ).cast(pl.Int32)
        )
        .cast(pl.Int32)
        .alias("age")
    ).select("person_id", "age", "conflicts_birth_year")

    primary = (
        kept.filter(pl.col("source") == rules.primary_source)
        .sort(["person_id", "event_date", "record_id"])
        .group_by("person_id", maintain_order=True)
        .agg(
            pl.col("reason").first().alias("reason"),
            pl.col("police_unit").first().alias("police_unit"),
        )
    )

    persons = (
        base.join(sex, on="person_id", how="left")
        .join(age, on="person_id", how="left")
        .join(nationality.rename({"nationality": "nationality_iso3"}), on="person_id", how="left")
        .join(region, on="person_id", how="left")
        .join(primary, on="person_id", how="left")
    )
    persons = persons.with_columns(
        _age_class(pl.col("age"), rules).alias("age_class"),
        pl.col("region").fill_null("Unknown"),
        pl.col("sex").fill_null("unknown"),
        pl.col("age").cast(pl.Int32),
        *[
            pl.col(c).fill_null(0)
            for c in ("conflicts_sex", "conflicts_nationality", "conflicts_birth_year")
        ],
    )
    persons = persons.join(_link_confidence(kept, clusters, pairs), on="person_id", how="left")
    persons = persons.with_columns(pl.lit(period.label).alias("period")).sort("person_id")

    ordered = [
        "person_id",
        "period",
        *[f"n_{s}" for s in sources],
        *[f"in_{s}" for s in sources],
        "record_count",
        "first_date",
        "last_date",
        "days_at_risk",
        "sex",
        "age",
        "age_class",
        "nationality_iso3",
        "region",
        "reason",
        "police_unit",
        "conflicts_sex",
        "conflicts_birth_year",
        "conflicts_nationality",
        "min_link_probability",
    ]
    persons = persons.select(ordered)
    counts.persons = persons.height
    counts.persons_by_source = {s: int(persons[f"in_{s}"].sum()) for s in sources}
    return persons, counts


def _age_class(age: pl.Expr, rules: CaptureHistoryRules) -> pl.Expr:
    labels = rules.age_labels()
    expr = pl.when(age.is_null()).then(pl.lit("unknown"))
    for b, label in zip(rules.age_breaks, labels, strict=False):
        expr = expr.when(age < b).then(pl.lit(label))
    return expr.otherwise(pl.lit(labels[-1]))


def _resolve_birth_year(kept: pl.DataFrame) -> pl.DataFrame:
    """The person's birth year from their best-quality birth dates (most frequent among
    the best quality class), month-day when known, and how many records disagree."""
    rank = pl.col("birth_date_quality").replace_strict(_BIRTH_QUALITY_RANK, default=9)
    dated = kept.filter(pl.col("birth_year").is_not_null()).with_columns(rank.alias("_rank"))
    best_rank = dated.group_by("person_id").agg(pl.col("_rank").min().alias("_best"))
    best = (
        dated.join(best_rank, on="person_id")
        .filter(pl.col("_rank") == pl.col("_best"))
        .with_columns(
            pl.when(pl.col("birth_date_quality") == "full")
            .then(pl.col("birth_month") * 100 + pl.col("birth_day"))
            .otherwise(None)
            .alias("_birth_md")
        )
        .group_by(["person_id", "birth_year"])
        .agg(pl.len().alias("_n"), pl.col("_birth_md").drop_nulls().first().alias("_birth_md"))
        .sort(["person_id", "_n", "birth_year"], descending=[False, True, False])
        .group_by("person_id", maintain_order=True)
        .agg(pl.col("birth_year").first(), pl.col("_birth_md").first())
    )
    disagree = (
        dated.join(best.select("person_id", pl.col("birth_year").alias("_chosen")), on="person_id")
        .group_by("person_id")
        .agg(
            (pl.col("birth_year") != pl.col("_chosen"))
            .sum()
            .cast(pl.Int32)
            .alias("conflicts_birth_year")
        )
    )
    return best.join(disagree, on="person_id", how="left")


def _link_confidence(
    kept: pl.DataFrame, clusters: pl.DataFrame, pairs: pl.DataFrame | None
) -> pl.DataFrame:
    """Weakest link per person: over the person's records, the lowest of each record's
    best match probability to another record of the same person (null for singletons).
    The pipeline passes only the links the clustering used."""
    persons = kept.select("person_id").unique()
    if pairs is None or pairs.height == 0:
        return persons.with_columns(pl.lit(None, dtype=pl.Float64).alias("min_link_probability"))
    ids = clusters.select("record_id", "person_id")
    within = (
        pairs.select("record_id_l", "record_id_r", "match_probability")
        .join(ids.rename({"record_id": "record_id_l", "person_id": "_pl"}), on="record_id_l")
        .join(ids.rename({"record_id": "record_id_r", "person_id": "_pr"}), on="record_id_r")
        .filter(pl.col("_pl") == pl.col("_pr"))
    )
    per_record = (
        pl.concat(
            [
                within.select(pl.col("record_id_l").alias("record_id"), "_pl", "match_probability"),
                within.select(pl.col("record_id_r").alias("record_id"), "_pl", "match_probability"),
            ]
        )
        .group_by(["record_id", "_pl"])
        .agg(pl.col("match_probability").max())
    )
    weakest = (
        per_record.group_by("_pl")
        .agg(pl.col("match_probability").min().alias("min_link_probability"))
        .rename({"_pl": "person_id"})
    )
    return persons.join(weakest, on="person_id", how="left")
