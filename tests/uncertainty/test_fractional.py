"""Expected capture histories (uncertainty.fractional): weights that turn the threshold's
persons into the model-expected capture-history table."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from recapture.errors import InputError
from recapture.estimators import estimate
from recapture.persons import Period
from recapture.uncertainty.analytic import fellegi_sunter_link_counts
from recapture.uncertainty.fractional import WEIGHT, expected_capture_persons

PERIOD = Period.year_from_july(2017)


def _world():
    """Persons: A in both lists (its cross pair p = 0.8), B police only and C IOM only
    (scored 0.3 against each other), E IOM only (scored 0.6 against B: B's shares must
    be scaled down), D police only with nothing, F police record outside the period."""
    rows = [
        # record_id, source, person (cluster), in period
        (1, "police", 0, True),
        (2, "iom", 0, True),
        (3, "police", 1, True),
        (4, "iom", 2, True),
        (5, "police", 3, True),
        (6, "iom", 4, True),
        (7, "police", 5, False),
    ]
    inside, outside = dt.date(2018, 1, 10), dt.date(2016, 1, 10)
    records = pl.DataFrame(
        {
            "record_id": [r[0] for r in rows],
            "source": [r[1] for r in rows],
            "event_date": [inside if r[3] else outside for r in rows],
            "in_target": [True] * len(rows),
        }
    )
    clusters = pl.DataFrame({"record_id": [r[0] for r in rows], "person_id": [r[2] for r in rows]})
    pairs = pl.DataFrame(
        {
            "record_id_l": [1, 3, 3, 7],
            "record_id_r": [2, 4, 6, 4],
            "match_probability": [0.8, 0.3, 0.9, 0.95],
        }
    )
    # the persons of the period, as build_persons makes them (person 5 is outside it)
    persons = pl.DataFrame(
        {
            "person_id": [0, 1, 2, 3, 4],
            "in_police": pl.Series([1, 1, 0, 1, 0], dtype=pl.Int8),
            "in_iom": pl.Series([1, 0, 1, 0, 1], dtype=pl.Int8),
            "sex": ["M", "F", "F", "M", "M"],
        }
    )
    return records, clusters, pairs, persons


def test_weights_give_the_expected_linked_cell_and_keep_the_list_counts():
    records, clusters, pairs, persons = _world()
    # record 6 (IOM, person 4) is scored 0.9 against B but left unlinked (say, by the guard)
    out = expected_capture_persons(records, clusters, pairs, persons, period=PERIOD)
    w = out[WEIGHT]
    n1 = float((out["in_police"] * w).sum())
    n2 = float((out["in_iom"] * w).sum())
    m = float((out["in_police"] * out["in_iom"] * w).sum())
    assert n2 == pytest.approx(float(persons["in_iom"].sum()))
    # B is claimed by C (0.3) and by person 4 (0.9): 1.2 > 1, so its shares are scaled to 1
    # and it keeps no weight of its own; the list-1 count stays n1
    assert n1 == pytest.approx(float(persons["in_police"].sum()))
    counts = fellegi_sunter_link_counts(records, clusters, pairs, persons, period=PERIOD)
    # A: 0.8 true; C and person 4 share B: 0.3/1.2 + 0.9/1.2 = 1 expected counterpart
    assert m == pytest.approx(0.8 + 1.0)
    # the analytic correction counts each list-2 person's own r (no cap on list 1)
    assert float(counts["true_links"].sum()) == pytest.approx(0.8)
    assert float(counts["missed_links"].sum()) == pytest.approx(0.3 + 0.9)
    by = {
        (r["person_id"], r["in_police"], r["in_iom"]): r[WEIGHT] for r in out.iter_rows(named=True)
    }
    assert by[(0, 1, 1)] == pytest.approx(0.8)
    assert by[(0, 1, 0)] == pytest.approx(0.2)  # the link may be false: two persons
    assert by[(0, 0, 1)] == pytest.approx(0.2)
    assert by[(2, 0, 1)] == pytest.approx(0.75)  # C keeps 1 − 0.25
    assert by[(2, 1, 1)] == pytest.approx(0.25)
    assert by[(3, 1, 0)] == pytest.approx(1.0)  # D: nothing to gain or give
    assert (1, 1, 0) not in by  # B gave its whole weight away
    # the out-of-period record 7 of person 5 plays no part
    assert 5 not in out["person_id"].to_list()


def test_without_competition_petersen_on_the_weights_is_the_analytic_correction():
    records, clusters, pairs, persons = _world()
    pairs = pairs.filter(pl.col("record_id_r") != 6)
    out = expected_capture_persons(records, clusters, pairs, persons, period=PERIOD)
    fit = estimate(out, "petersen", lists=["in_police", "in_iom"], weights=WEIGHT)
    n1, n2 = float(persons["in_police"].sum()), float(persons["in_iom"].sum())
    assert fit.population_size == pytest.approx(n1 * n2 / (0.8 + 0.3))


def test_a_weight_column_already_there_is_refused():
    records, clusters, pairs, persons = _world()
    with pytest.raises(InputError, match="weight"):
        expected_capture_persons(
            records,
            clusters,
            pairs,
            persons.with_columns(pl.lit(1.0).alias(WEIGHT)),
            period=PERIOD,
        )


def test_linkage_aware_estimate_adds_the_expected_links_refit():
    from recapture.uncertainty import RegistryEstimator, UncertaintyOptions, linkage_aware_estimate

    records, clusters, pairs, persons = _world()
    pairs = pairs.filter(pl.col("record_id_r") != 6)
    estimator = RegistryEstimator("petersen", {"lists": ["in_police", "in_iom"]})
    options = UncertaintyOptions.from_dict({"expected_links": True, "analytic": False})
    assert options.active

    def aware(refitted):
        """The plug-in Petersen fit made linkage-aware by refitting ``refitted``."""
        return linkage_aware_estimate(
            estimator.fit(persons),
            estimator=refitted,
            records=records,
            pairs=pairs,
            clusters=clusters,
            persons=persons,
            period=PERIOD,
            options=options,
            lists=["police", "iom"],
        )

    out = aware(estimator)
    expected = out.extra["linkage_expected"]
    assert expected["population_size"] == pytest.approx(3 * 3 / 1.1)
    assert expected["m"] == 1 and expected["expected_m"] == pytest.approx(1.1)
    assert out.population_size == pytest.approx(3 * 3 / 1)  # the plug-in is untouched
    # a weighted estimator cannot be refitted: reported, not fatal
    weighted = RegistryEstimator("petersen", {"lists": ["in_police", "in_iom"], "weights": "w"})
    again = aware(weighted)
    assert "linkage_expected" not in again.extra
    assert any("expected-links refit failed" in w for w in again.warnings)
