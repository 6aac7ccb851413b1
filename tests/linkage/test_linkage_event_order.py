"""An assisted return ends the stay: the ``event_order`` comparison of police and IOM
registrations, and what the EM makes of it."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from test_linkage import canonical, levels_of
from worlds import simulated_world

from recapture.errors import ConfigError
from recapture.linkage import LinkageSettings, link_records
from recapture.linkage.evaluation import pairwise_metrics_from_clusters

D = dt.date


def test_levels_order_a_registration_against_the_departure():
    records = canonical(
        [
            {"source": "iom", "event_date": D(2018, 3, 1)},  # 0: departure
            {"source": "police", "event_date": D(2018, 1, 5)},  # 1: before it
            {"source": "police", "event_date": D(2018, 3, 1)},  # 2: on the day
            {"source": "police", "event_date": D(2018, 4, 9)},  # 3: after it
            {"source": "police", "event_date": None},  # 4: no date
            {"source": "iom", "event_date": D(2018, 2, 1)},  # 5: another departure
        ]
    )
    pairs = [(0, 1), (0, 2), (0, 3), (3, 0), (0, 4), (1, 3), (0, 5), (3, 5)]
    named, _, _ = levels_of(records, pairs)
    assert named["event_order"] == [
        "in_order",
        "in_order",
        "after_end",
        "after_end",  # either side may be the IOM record
        "missing",
        "missing",  # two police registrations: no departure between them
        "missing",  # two departures
        "after_end",
    ]


def test_records_without_the_ending_source_are_all_missing():
    records = canonical(
        [
            {"source": "police", "event_date": D(2018, 1, 5)},
            {"source": "police", "event_date": D(2018, 4, 9)},
        ]
    )
    named, _, _ = levels_of(records, [(0, 1)])
    assert named["event_order"] == ["missing"]


def test_the_ending_source_must_be_named():
    with pytest.raises(ConfigError, match="ending_source"):
        LinkageSettings.from_dict(
            {"comparisons": [{"name": "o", "kind": "event_order", "column": "event_date"}]}
        )


def test_records_without_event_dates_drop_the_optional_comparison():
    settings = LinkageSettings.default()
    names = [c.name for c in settings.comparisons]
    assert "event_order" in names and "event_order" in settings.alias_comparisons
    cols = settings.required_columns() - {"event_date"}
    dropped = settings.for_columns(cols)
    assert "event_order" not in [c.name for c in dropped.comparisons]
    assert "event_order" not in dropped.alias_comparisons


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return simulated_world(tmp_path_factory.mktemp("world"), size=23_000, seed=8)


def test_em_learns_that_one_person_is_not_apprehended_after_departing(world):
    result = link_records(world[0], LinkageSettings.default())
    comp = next(c for c in result.model.to_dict()["comparisons"] if c["name"] == "event_order")
    level = {lv["level"]: lv for lv in comp["levels"]}
    # half of two different people's dates fall after the departure, almost none of one's
    assert 0.2 < level["after_end"]["u"] < 0.8
    assert level["after_end"]["m"] < 0.05
    assert level["after_end"]["match_weight"] < -3 < 0 < level["in_order"]["match_weight"]


def test_the_order_finds_cross_source_links_that_names_alone_leave_in_doubt(world):
    records, truth = world
    settings = LinkageSettings.default()
    without = dataclasses.replace(
        settings,
        comparisons=[c for c in settings.comparisons if c.name != "event_order"],
        alias_comparisons=[c for c in settings.alias_comparisons if c != "event_order"],
    )
    on, off = link_records(records, settings), link_records(records, without)
    merged = on.pairs.join(
        off.pairs.select("record_id_l", "record_id_r", w_off="match_weight"),
        on=["record_id_l", "record_id_r"],
    )
    top = next(c for c in on.settings.comparisons if c.name == "event_order").n_levels - 1
    after = merged.filter(merged["gamma_event_order"] == 0)
    in_order = merged.filter(merged["gamma_event_order"] == top)
    assert after.height > 0 and in_order.height > 0
    assert ((after["match_weight"] - after["w_off"]) < -3).all()
    assert ((in_order["match_weight"] - in_order["w_off"]) > 0).mean() > 0.95
    cross = [
        pairwise_metrics_from_clusters(r.clusters, truth, ("police", "iom")) for r in (on, off)
    ]
    assert cross[0].precision >= cross[1].precision and cross[0].f1 >= cross[1].f1
