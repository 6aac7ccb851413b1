"""Expected capture histories: the persons table with the cross-list links the model
expects, not the ones the threshold chose (the Di Consiglio–Tuoto correction at the
person level, so that any two-list model with covariates can be fitted to it).

A threshold rule is unbiased for the number of persons in both lists only when the
probability mass it leaves below the threshold equals the mass of doubt it accepts above.
With many weak candidates it is not: on the end-to-end worlds (docs/linkage.md,
"Persons in both lists") the candidates below 0.5 held about 17 expected missed
counterparts per six worlds against about 13 expected false links above it, and the
linkage found 1% fewer persons in both lists than there are — which the DSE turns into a
1% larger N̂.

:func:`expected_capture_persons` returns the persons with a ``weight`` column such that
the weighted capture-history table has the expected cell counts:

* a person linked across the lists with true-link probability a (the strongest
  cross-list pair inside it) keeps weight a and gains two rows of weight 1 − a, one in
  each list only (a false link joined a list-1-only and a list-2-only person);
* a list-2-only person Y scored against list-1-only persons X_k (strongest pair p_k per
  person pair) has a counterpart among them with probability r = min(1, Σ p_k): it keeps
  weight 1 − r and gains a row of weight r in both lists; each X_k gives up the share
  p_k·r/Σ p of its weight (capped at its weight of 1, the shares scaled down together).

The row counts per list stay n1 and n2 (unless a list-1 person's shares had to be
capped); the linked cell becomes M̂ = A + R as in
:func:`~recapture.uncertainty.analytic.fellegi_sunter_link_counts`. Added rows copy the
covariates of the person they come from (a missed link counts in the list-2 person's
stratum, as in the analytic correction). Fit with ``weights="weight"``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import polars as pl

from recapture.errors import InputError
from recapture.persons import CaptureHistoryRules, Period
from recapture.uncertainty.analytic import cross_list_person_pairs

#: Name of the weight column of :func:`expected_capture_persons`.
WEIGHT = "weight"


def expected_capture_persons(
    records: pl.DataFrame,
    clusters: pl.DataFrame,
    pairs: pl.DataFrame,
    persons: pl.DataFrame,
    *,
    lists: tuple[str, str] = ("police", "iom"),
    period: Period,
    rules: CaptureHistoryRules | None = None,
) -> pl.DataFrame:
    """``persons`` (built from ``clusters`` for ``period``) with rows added and a
    ``weight`` column such that the weighted capture histories are the model-expected ones
    (module docstring)."""
    l1, l2 = lists
    in1, in2 = f"in_{l1}", f"in_{l2}"
    for col in ("person_id", in1, in2):
        if col not in persons.columns:
            raise InputError(f"persons need column {col!r}", column=col)
    if WEIGHT in persons.columns:
        raise InputError(f"persons already have a column {WEIGHT!r}", column=WEIGHT)
    side = cross_list_person_pairs(
        records, clusters, pairs, lists=lists, period=period, rules=rules
    )
    flags = persons.select("person_id", pl.col(in1).alias("_in1"), pl.col(in2).alias("_in2"))
    both = flags.filter((pl.col("_in1") == 1) & (pl.col("_in2") == 1)).select("person_id")
    only1 = flags.filter((pl.col("_in1") == 1) & (pl.col("_in2") == 0)).select(
        pl.col("person_id").alias("person_1")
    )
    only2 = flags.filter((pl.col("_in1") == 0) & (pl.col("_in2") == 1)).select(
        pl.col("person_id").alias("person_2")
    )

    # a: a linked person's chance that its cross-list link is true
    accepted = (
        side.filter(pl.col("person_1") == pl.col("person_2"))
        .group_by("person_1")
        .agg(pl.col("p").max().clip(0.0, 1.0).alias("_a"))
        .rename({"person_1": "person_id"})
    )
    accepted = both.join(accepted, on="person_id", how="inner")

    # r: a list-2-only person's chance of a counterpart among the list-1-only persons
    cand = (
        side.filter(pl.col("person_1") != pl.col("person_2"))
        .join(only1, on="person_1")
        .join(only2, on="person_2")
        .group_by("person_1", "person_2")
        .agg(pl.col("p").max().clip(0.0, 1.0))
        .filter(pl.col("p") > 0)
    )
    cand = cand.with_columns(pl.col("p").sum().over("person_2").alias("_sum")).with_columns(
        (pl.col("p") * pl.col("_sum").clip(upper_bound=1.0) / pl.col("_sum")).alias("_q")
    )
    # a list-1 person cannot give away more than itself
    cand = cand.with_columns(pl.col("_q").sum().over("person_1").alias("_out")).with_columns(
        (pl.col("_q") / pl.col("_out").clip(lower_bound=1.0)).alias("_q")
    )
    missed = cand.group_by("person_2").agg(pl.col("_q").sum().alias("_r"))
    given = cand.group_by("person_1").agg(pl.col("_q").sum().alias("_g"))

    base = (
        persons.join(accepted, on="person_id", how="left")
        .join(missed.rename({"person_2": "person_id"}), on="person_id", how="left")
        .join(given.rename({"person_1": "person_id"}), on="person_id", how="left")
        .with_columns(pl.col("_a", "_r", "_g").fill_null(0.0))
    )
    has_a = pl.col("_a") > 0
    kept = base.with_columns(
        pl.when(has_a)
        .then(pl.col("_a"))
        .otherwise(1.0 - pl.col("_r") - pl.col("_g"))
        .clip(lower_bound=0.0)
        .alias(WEIGHT)
    )
    dtype1, dtype2 = persons.schema[in1], persons.schema[in2]
    false_links = base.filter(has_a & (pl.col("_a") < 1.0))
    parts = [
        kept,
        false_links.with_columns(
            pl.lit(1, dtype=dtype1).alias(in1),
            pl.lit(0, dtype=dtype2).alias(in2),
            (1.0 - pl.col("_a")).alias(WEIGHT),
        ),
        false_links.with_columns(
            pl.lit(0, dtype=dtype1).alias(in1),
            pl.lit(1, dtype=dtype2).alias(in2),
            (1.0 - pl.col("_a")).alias(WEIGHT),
        ),
        base.filter(pl.col("_r") > 0).with_columns(
            pl.lit(1, dtype=dtype1).alias(in1),
            pl.lit(1, dtype=dtype2).alias(in2),
            pl.col("_r").alias(WEIGHT),
        ),
    ]
    out = pl.concat(parts, how="vertical").drop("_a", "_r", "_g")
    return out.filter(pl.col(WEIGHT) > 0)


def expected_links_estimate(
    estimator: Any,
    *,
    records: pl.DataFrame,
    clusters: pl.DataFrame,
    pairs: pl.DataFrame,
    persons: pl.DataFrame,
    lists: tuple[str, str],
    period: Period,
    rules: CaptureHistoryRules | None = None,
    level: float = 0.95,
) -> dict[str, Any]:
    """Refit ``estimator`` (a dataclass with an ``options`` dict fitted by the registry,
    as the pipeline's and the CLI's are) on :func:`expected_capture_persons`, weighted.
    Returns N̂, its model interval and the linked cell before and after."""
    if not dataclasses.is_dataclass(estimator) or not isinstance(
        getattr(estimator, "options", None), dict
    ):
        raise TypeError("the estimator cannot be refitted with weights")
    if estimator.options.get("weights"):
        raise InputError("persons are weighted already: expected links need unweighted persons")
    frame = expected_capture_persons(
        records, clusters, pairs, persons, lists=lists, period=period, rules=rules
    )
    weighted = dataclasses.replace(estimator, options={**estimator.options, "weights": WEIGHT})
    fit = weighted.fit(frame)
    in1, in2 = (pl.col(f"in_{s}") == 1 for s in lists)
    try:
        lower, upper = fit.confint(level=level)
    except ValueError:  # no interval for this fit: reported as missing
        lower = upper = math.nan
    return {
        "method": "expected_capture_histories",
        "population_size": float(fit.population_size),
        "se": float(fit.se) if fit.se is not None else math.nan,
        "interval": fit.default_interval,
        "lower": lower,
        "upper": upper,
        "level": level,
        "m": int(persons.filter(in1 & in2).height),
        "expected_m": float(frame.filter(in1 & in2)[WEIGHT].sum()),
        "warnings": list(fit.warnings),
    }
