"""Linkage metrics on tiny hand-computed worlds, and calibration with known answers."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from recapture.errors import InputError
from recapture.linkage.evaluation import (
    blocking_metrics,
    brier_score,
    cluster_metrics,
    count_true_pairs,
    expected_calibration_error,
    expected_metrics_by_threshold,
    label_pairs,
    pairwise_metrics,
    pairwise_metrics_from_clusters,
    possible_pairs,
    reliability_table,
)

# True persons A = {1, 2, 3}, B = {4, 5}, C = {6}; records 3 and 5 are IOM, the rest police.
TRUTH = pl.DataFrame(
    {
        "record_id": [1, 2, 3, 4, 5, 6],
        "person_id": [10, 10, 10, 20, 20, 30],
        "source": ["police", "police", "iom", "police", "iom", "police"],
    }
)
# Predicted clusters {1, 2}, {3, 4, 5}, {6}.
CLUSTERS = pl.DataFrame({"record_id": [1, 2, 3, 4, 5, 6], "person_id": [0, 0, 1, 1, 1, 2]})


def test_pairwise_metrics_from_clusters_by_hand():
    # true pairs (1,2) (1,3) (2,3) (4,5); induced (1,2) (3,4) (3,5) (4,5) → TP 2
    m = pairwise_metrics_from_clusters(CLUSTERS, TRUTH)
    assert (m.true_positives, m.false_positives, m.false_negatives) == (2, 2, 2)
    assert m.precision == pytest.approx(0.5)
    assert m.recall == pytest.approx(0.5)
    assert m.f1 == pytest.approx(0.5)


def test_pairwise_metrics_scoped_within_and_between_sources():
    within = pairwise_metrics_from_clusters(CLUSTERS, TRUTH, "police")
    # police pairs: true (1,2); induced (1,2)
    assert (within.true_positives, within.false_positives, within.false_negatives) == (1, 0, 0)
    between = pairwise_metrics_from_clusters(CLUSTERS, TRUTH, ("police", "iom"))
    # true cross pairs (1,3) (2,3) (4,5); induced (4,3) (4,5) → TP 1
    assert (between.true_positives, between.false_positives, between.false_negatives) == (1, 1, 2)
    assert between.f1 == pytest.approx(0.4)
    assert count_true_pairs(TRUTH, ("iom", "police")) == 3
    assert count_true_pairs(TRUTH) == 4


def test_pairwise_metrics_from_listed_pairs_normalises_order_and_duplicates():
    pairs = pl.DataFrame({"record_id_l": [2, 1, 4, 1, 5], "record_id_r": [1, 3, 6, 2, 5]})
    m = pairwise_metrics(pairs, TRUTH)  # unique pairs (1,2) (1,3) (4,6); self-pair dropped
    assert (m.true_positives, m.false_positives, m.false_negatives) == (2, 1, 2)
    assert m.precision == pytest.approx(2 / 3)
    assert m.recall == pytest.approx(0.5)
    scoped = pairwise_metrics(pairs, TRUTH, ("police", "iom"))  # only (1,3) is cross-source
    assert (scoped.true_positives, scoped.false_positives, scoped.false_negatives) == (1, 0, 2)


def test_blocking_metrics_pair_completeness_and_reduction_ratio():
    cands = pl.DataFrame({"record_id_l": [1, 1, 4], "record_id_r": [2, 3, 6]})
    b = blocking_metrics(cands, TRUTH)
    assert b.n_possible == 15
    assert b.reduction_ratio == pytest.approx(1 - 3 / 15)
    assert b.pair_completeness == pytest.approx(0.5)
    assert possible_pairs(TRUTH, "police") == 6
    assert possible_pairs(TRUTH, ("police", "iom")) == 8


def test_cluster_metrics_by_hand():
    c = cluster_metrics(CLUSTERS, TRUTH)
    assert (c.persons_found, c.true_persons, c.exact_matches) == (3, 3, 1)
    assert c.exact_precision == pytest.approx(1 / 3)
    # per record precision 1, 1, 1/3, 2/3, 2/3, 1 ; recall 2/3, 2/3, 1/3, 1, 1, 1
    assert c.bcubed_precision == pytest.approx(7 / 9)
    assert c.bcubed_recall == pytest.approx(7 / 9)
    assert c.bcubed_f1 == pytest.approx(7 / 9)
    assert (c.split_persons, c.merged_persons, c.mixed_clusters) == (1, 2, 1)


def test_perfect_clustering_scores_one():
    perfect = TRUTH.select("record_id", "person_id")
    c = cluster_metrics(perfect, TRUTH)
    assert (c.exact_precision, c.exact_recall, c.bcubed_f1) == (1.0, 1.0, 1.0)
    assert (c.split_persons, c.merged_persons) == (0, 0)
    assert pairwise_metrics_from_clusters(perfect, TRUTH).f1 == 1.0


def test_record_missing_from_truth_is_an_input_error():
    extra = pl.concat([CLUSTERS, pl.DataFrame({"record_id": [99], "person_id": [5]})])
    with pytest.raises(InputError, match="99"):
        cluster_metrics(extra, TRUTH)
    with pytest.raises(InputError, match="99"):
        label_pairs(pl.DataFrame({"record_id_l": [1], "record_id_r": [99]}), TRUTH)


def test_reliability_table_and_ece_by_hand():
    p = [0.15, 0.15, 0.95, 1.0]
    y = [0, 1, 1, 1]
    table = reliability_table(p, y, n_bins=10)
    assert table["bin"].to_list() == [1, 9]  # p = 1 falls in the last bin
    assert table["count"].to_list() == [2, 2]
    assert table["observed_rate"].to_list() == pytest.approx([0.5, 1.0])
    assert table["mean_predicted"].to_list() == pytest.approx([0.15, 0.975])
    # (2·|0.15−0.5| + 2·|0.975−1|) / 4
    assert expected_calibration_error(p, y) == pytest.approx((0.7 + 0.05) / 4)
    assert brier_score(p, y) == pytest.approx((0.15**2 + 0.85**2 + 0.05**2 + 0) / 4)


def test_ece_known_answers_on_simulated_probabilities():
    rng = np.random.default_rng(20261128)
    p = rng.uniform(size=200_000)
    calibrated = rng.uniform(size=p.size) < p
    assert expected_calibration_error(p, calibrated) < 0.01
    # outcomes drawn with probability p² : the gap p − p² ≥ 0 everywhere, so ECE → ∫(p − p²) = 1/6
    overconfident = rng.uniform(size=p.size) < p**2
    assert expected_calibration_error(p, overconfident) == pytest.approx(1 / 6, abs=0.01)
    assert expected_calibration_error(p, overconfident, strategy="quantile") == pytest.approx(
        1 / 6, abs=0.01
    )
    # Brier of calibrated uniform p: E[p(1−p)] = 1/6
    assert brier_score(p, calibrated) == pytest.approx(1 / 6, abs=0.005)


def test_calibration_rejects_bad_inputs():
    with pytest.raises(ValueError):
        reliability_table([0.5, 1.2], [0, 1])
    with pytest.raises(ValueError):
        reliability_table([0.5, 0.2], [0, 2])
    with pytest.raises(ValueError):
        reliability_table([0.5], [0, 1])


def test_expected_metrics_by_threshold_by_hand():
    p = pl.Series([0.9, 0.8, 0.3, 0.1])
    out = expected_metrics_by_threshold(p, thresholds=[0.5, 0.8, 0.95])
    row = out.row(0, named=True)
    assert row["n_accepted"] == 2
    assert row["expected_true_positives"] == pytest.approx(1.7)
    assert row["expected_precision"] == pytest.approx(0.85)
    assert row["expected_recall"] == pytest.approx(1.7 / 2.1)
    assert row["expected_f1"] == pytest.approx(3.4 / 4.1)
    assert out["n_accepted"].to_list() == [2, 2, 0]  # p ≥ t includes t itself
    assert out["expected_true_positives"][2] == 0.0
    assert out["expected_false_negatives"][2] == pytest.approx(2.1)


def test_expected_metrics_match_truth_when_probabilities_are_calibrated():
    rng = np.random.default_rng(7)
    p = rng.beta(0.3, 0.3, size=100_000)
    y = rng.uniform(size=p.size) < p
    exp = expected_metrics_by_threshold(p, thresholds=[0.5]).row(0, named=True)
    accepted = p >= 0.5
    precision = y[accepted].mean()
    recall = y[accepted].sum() / y.sum()
    assert exp["expected_precision"] == pytest.approx(precision, abs=0.01)
    assert exp["expected_recall"] == pytest.approx(recall, abs=0.01)
