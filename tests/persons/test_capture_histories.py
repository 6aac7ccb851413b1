"""Capture histories: counts, covariate resolution rules, periods and reconciliation."""

import datetime as dt

import polars as pl
import pytest

from recapture.persons import CaptureHistoryRules, Period, build_persons

D = dt.date


def _records() -> pl.DataFrame:
    rows = [
        # record_id, source, event_date, sex, birth_year, month, day, quality, iso3, region, reason, unit, in_target
        (
            1,
            "police",
            D(2017, 8, 1),
            "M",
            1990,
            3,
            4,
            "full",
            "MAR",
            "North Africa",
            "criminal_offence",
            "Amsterdam",
            True,
        ),
        (
            2,
            "police",
            D(2017, 9, 1),
            "M",
            1990,
            1,
            1,
            "default",
            "MAR",
            "North Africa",
            "immigration_check",
            "Rotterdam",
            True,
        ),
        (
            3,
            "police",
            D(2018, 1, 5),
            "F",
            1990,
            3,
            4,
            "full",
            "DZA",
            "North Africa",
            "other",
            "Rotterdam",
            True,
        ),
        (
            4,
            "iom",
            D(2018, 3, 1),
            "M",
            1990,
            None,
            None,
            "year_only",
            "MAR",
            "North Africa",
            None,
            None,
            True,
        ),
        (
            5,
            "police",
            D(2016, 1, 1),
            "F",
            1970,
            5,
            6,
            "full",
            "TUR",
            "Turkey",
            "other",
            "Limburg",
            True,
        ),  # outside
        (
            6,
            "iom",
            D(2018, 2, 1),
            "F",
            1985,
            2,
            2,
            "full",
            "CHN",
            "Asia",
            None,
            None,
            False,
        ),  # out of target
        (7, "iom", D(2018, 4, 1), None, None, None, None, "missing", None, None, None, None, True),
    ]
    cols = [
        "record_id",
        "source",
        "event_date",
        "sex",
        "birth_year",
        "birth_month",
        "birth_day",
        "birth_date_quality",
        "nationality_iso3",
        "nationality_region",
        "reason",
        "police_unit",
        "in_target",
    ]
    return pl.DataFrame(rows, schema=cols, orient="row")


def _clusters() -> pl.DataFrame:
    return pl.DataFrame(
        {"record_id": [1, 2, 3, 4, 5, 6, 7], "person_id": [10, 10, 10, 10, 11, 12, 13]}
    )


def test_counts_indicators_and_reconciliation():
    period = Period.year_from_july(2017)
    persons, counts = build_persons(_records(), _clusters(), period, sources=["police", "iom"])
    assert persons["person_id"].to_list() == [10, 13]
    p10 = persons.row(0, named=True)
    assert (p10["n_police"], p10["n_iom"], p10["in_police"], p10["in_iom"]) == (3, 1, 1, 1)
    assert p10["record_count"] == 4
    assert counts.outside_period == {"police": 1, "iom": 0}
    assert counts.out_of_target == {"police": 0, "iom": 1}
    # records in = outside + out of target + used
    used = sum(counts.records_used.values())
    assert counts.records_in == used + sum(counts.outside_period.values()) + sum(
        counts.out_of_target.values()
    )
    assert persons["record_count"].sum() == used


def test_covariate_rules_and_conflicts():
    persons, _ = build_persons(
        _records(), _clusters(), Period.year_from_july(2017), sources=["police", "iom"]
    )
    p10 = persons.row(0, named=True)
    assert p10["sex"] == "M" and p10["conflicts_sex"] == 1
    assert p10["nationality_iso3"] == "MAR" and p10["conflicts_nationality"] == 1
    assert p10["region"] == "North Africa"
    # best birth quality is 'full' (1990-03-04): age at 2017-07-01 is 27
    assert p10["age"] == 27 and p10["conflicts_birth_year"] == 0
    assert p10["age_class"] == "25-39"
    # reason and unit of the first police apprehension
    assert (p10["reason"], p10["police_unit"]) == ("criminal_offence", "Amsterdam")
    # the IOM departure on 2018-03-01 ends the time at risk
    assert p10["days_at_risk"] == (D(2018, 3, 1) - D(2017, 7, 1)).days + 1
    p13 = persons.row(1, named=True)
    assert p13["sex"] == "unknown" and p13["age_class"] == "unknown" and p13["region"] == "Unknown"


def test_weakest_link_probability():
    pairs = pl.DataFrame(
        {
            "record_id_l": [1, 1, 2, 3, 5],
            "record_id_r": [2, 3, 3, 4, 6],
            "match_probability": [0.99, 0.6, 0.7, 0.95, 0.2],
        }
    )
    persons, _ = build_persons(
        _records(), _clusters(), Period.year_from_july(2017), sources=["police", "iom"], pairs=pairs
    )
    # record 1 best 0.99, 2 best 0.99, 3 best 0.95, 4 best 0.95 → weakest 0.95
    assert persons.filter(pl.col("person_id") == 10)[
        "min_link_probability"
    ].item() == pytest.approx(0.95)
    assert persons.filter(pl.col("person_id") == 13)["min_link_probability"].item() is None


def test_no_identifiers_in_persons():
    persons, _ = build_persons(_records(), _clusters(), Period.year_from_july(2017))
    forbidden = {"family_name", "given_name", "birth_date", "birth_day", "birth_month", "v_number"}
    assert not forbidden & set(persons.columns)


def test_age_classes_configurable():
    rules = CaptureHistoryRules(age_breaks=(18, 30, 40))
    assert rules.age_labels() == ["<18", "18-29", "30-39", "40+"]
