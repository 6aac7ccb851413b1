"""How registrations of one person differ, and the evidence the default settings take
from it: a year mistyped with day and month kept, a V-number absent from every
registration, a given name whose family name and birth date both differ, and name
frequencies counted from few people."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from test_linkage import canonical, levels_of

from recapture.linkage import LinkageSettings, link_records
from recapture.linkage.blocking import ROW, block

D = dt.date


def test_year_off_by_one_with_day_and_month_kept_is_a_level_of_its_own():
    """1990-03-07 / 1991-03-07 is a typo in the year; 1990-03-07 / 1990-03-09 another day.
    Among different people the first is rarer (about 2 in 365 × the spread of years),
    so it gets its own m and u instead of sharing "one component off" with the second."""
    rec = canonical(
        [
            {"birth_date": D(1990, 3, 7)},
            {"birth_date": D(1991, 3, 7)},  # year off by one, day and month kept
            {"birth_date": D(1989, 3, 7)},  # the other direction
            {"birth_date": D(1990, 3, 9)},  # another day
            {"birth_date": D(1991, 8, 20)},  # year off by one, nothing else kept
            {"birth_date": D(1995, 3, 7)},  # five years apart, day and month kept
            {"birth_date": D(1991, 1, 1), "birth_date_quality": "default"},  # placeholder
        ]
    )
    named, _, _ = levels_of(rec, [(0, k) for k in range(1, 7)])
    assert named["birth_date"] == [
        "year_off_same_day_month",
        "year_off_same_day_month",
        "one_component_off",
        "year_off_by_one",
        "one_component_off",
        "year_off_by_one",
    ]


def test_v_number_absent_from_both_records_is_evidence_by_default():
    """A person without a V-number lacks it in every registration, so two records without
    one are more often one person than two random records (+0.5 to +0.8 bits on simulated
    registrations): by default that is a level with its own m and u, not neutral."""
    settings = LinkageSettings.default()
    v = next(c for c in settings.comparisons if c.name == "v_number")
    assert "both_missing" in v.level_names()
    rows = [
        {"given_name": "karim", "family_name": "benali", "v_number": "1234567890"},
        {"given_name": "karim", "family_name": "benali"},
        {"given_name": "omar", "family_name": "idrissi"},
    ]
    named, _, _ = levels_of(canonical(rows), [(0, 1), (1, 2)])
    assert named["v_number"] == ["one_side_only", "both_missing"]


def test_default_blocking_keeps_a_given_name_with_family_name_and_birth_date_differing():
    """Family name misspelt beyond its key, birth year off by one and the day mistyped:
    only the given name, nationality, sex and birth month agree. The rule on given-name
    key + nationality + birth month + birth year ± 1 makes them a candidate pair; without
    it no default rule did."""
    a = {
        "given_name": "ketevan",
        "given_name_key": "KTFN",
        "family_name": "huseynov",
        "family_name_key": "HSNF",
        "birth_date": D(1995, 8, 9),
        "sex": "F",
        "nationality_iso3": "ARM",
    }
    b = dict(a, family_name="guseinov", family_name_key="KSNF", birth_date=D(1996, 8, 19))
    recs = canonical([a, b]).sort("record_id").with_row_index(ROW)
    settings = LinkageSettings.default()
    got = block(recs, settings.blocking_rules, settings.max_block_size)
    assert [got.rule_names[r] for r in got.rule] == ["given_key_nat_month_year_pm1"]
    others = [r for r in settings.blocking_rules if not r.name.endswith("_pm1")]
    assert block(recs, others, settings.max_block_size).n_pairs == 0


def test_pseudo_people_take_weight_off_names_seen_once_not_off_common_ones():
    """A name held by one person of the extract is a noisy estimate of its frequency;
    with three pseudo-people its TF weight drops by log2(4) = 2 bits, a name held by 60
    people loses log2(63/60) = 0.07 bits."""
    rows = [{"given_name": "mohamed", "given_name_key": "MHMT"} for _ in range(60)]
    rows += [{"given_name": f"name{k}", "given_name_key": f"K{k}"} for k in range(38)]
    rows += [{"given_name": "zakariya", "given_name_key": "SKR"}] * 2  # one person, twice
    rows = [dict(r, family_name=f"fam{k}") for k, r in enumerate(rows)]
    rows[-1]["family_name"] = rows[-2]["family_name"]
    rec = canonical(rows)
    pairs = [(0, 1), (98, 99)]
    _, raw, _ = levels_of(rec, pairs, LinkageSettings.from_dict({"tf_pseudo_people": 0.0}))
    _, shrunk, _ = levels_of(rec, pairs, LinkageSettings.from_dict({"tf_pseudo_people": 3.0}))
    common = raw["given_name"][0] - shrunk["given_name"][0]
    rare = raw["given_name"][1] - shrunk["given_name"][1]
    assert common == pytest.approx(np.log2(63 / 60), abs=1e-4)
    assert rare == pytest.approx(2.0, abs=1e-4)


def test_pseudo_people_setting_is_checked():
    from recapture.errors import ConfigError

    with pytest.raises(ConfigError, match="tf_pseudo_people"):
        LinkageSettings.from_dict({"tf_pseudo_people": -1.0})


def test_default_settings_link_a_small_world_end_to_end():
    """The new levels and rule run through training and scoring (no level left without
    m and u): two registrations of one man, one with a mistyped year, link."""
    people = []
    for k in range(40):
        people.append(
            {
                "given_name": f"given{k}",
                "given_name_key": f"G{k}",
                "family_name": f"family{k}",
                "family_name_key": f"F{k}",
                "birth_date": D(1970 + k % 30, 1 + k % 12, 1 + k % 28),
                "sex": "M" if k % 2 else "F",
                "nationality_iso3": ["MAR", "DZA", "TUN", "SYR"][k % 4],
            }
        )
    twice = [dict(p) for p in people[:20]]
    twice[0]["birth_date"] = D(1971, 1, 1)  # 1970-01-01 mistyped
    records = canonical(people + twice)
    result = link_records(records, LinkageSettings.from_dict({"workers": 1}))
    model = result.model.to_dict()
    date = next(c for c in model["comparisons"] if c["name"] == "birth_date")
    assert "year_off_same_day_month" in [lv["level"] for lv in date["levels"]]
    ids = result.clusters["record_id"].to_list()
    labels = dict(zip(ids, result.clusters["person_id"].to_list(), strict=True))
    assert labels[0] == labels[40]
