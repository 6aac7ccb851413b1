"""Linkage uncertainty: Rubin's rules, linkage draws, multiple imputation, Ding–Fienberg,
threshold sensitivity — on hand-computed numbers and constructed linkages."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import polars as pl
import pytest

from recapture.estimators.result import PopulationEstimate
from recapture.persons import Period, build_persons
from recapture.uncertainty import (
    combine_rubin,
    draw_labels,
    multiple_imputation,
    prepare_pairs,
    threshold_labels,
)
from recapture.uncertainty.analytic import (
    ding_fienberg,
    fellegi_sunter_link_counts,
    linkage_corrected_dse,
    rates_from_link_counts,
)
from recapture.uncertainty.draws import labels_to_clusters, within_cluster_pairs
from recapture.uncertainty.imputation import combine_imputations
from recapture.uncertainty.sensitivity import attach_threshold_sensitivity, threshold_sensitivity

PERIOD = Period.year_from_july(2017)


# ----------------------------------------------------------------------------- helpers
class Chao:
    """Chao's lower bound n + f1²/(2 f2) on police counts, variance from Chao (1987)."""

    model = "chao"

    def fit(self, persons: pl.DataFrame) -> PopulationEstimate:
        y = persons["n_police"].to_numpy()
        y = y[y > 0]
        f1, f2 = float((y == 1).sum()), float((y == 2).sum())
        r = f1 / f2
        var = f2 * (r**4 / 4 + r**3 + r**2 / 2)
        return PopulationEstimate(
            model="chao",
            population_size=y.size + f1**2 / (2 * f2),
            se=math.sqrt(var),
            n_observed=int(y.size),
        )


class Petersen:
    """Petersen DSE on police × IOM with its usual variance."""

    def fit(self, persons: pl.DataFrame) -> PopulationEstimate:
        a = persons["in_police"].to_numpy()
        b = persons["in_iom"].to_numpy()
        n1, n2, m = float(a.sum()), float(b.sum()), float((a & b).sum())
        n_hat = n1 * n2 / m
        var = n1 * n2 * (n1 - m) * (n2 - m) / m**3
        return PopulationEstimate(
            model="petersen",
            population_size=n_hat,
            se=math.sqrt(var),
            n_observed=int(persons.height),
        )


def _records(sources: list[str], dates: list[dt.date] | None = None) -> pl.DataFrame:
    n = len(sources)
    dates = dates or [dt.date(2017, 9, 1)] * n
    return pl.DataFrame(
        {
            "record_id": np.arange(n, dtype=np.int64),
            "source": sources,
            "event_date": dates,
            "sex": ["M"] * n,
            "birth_year": [1990] * n,
            "birth_month": [1] * n,
            "birth_day": [1] * n,
            "birth_date_quality": ["full"] * n,
            "nationality_iso3": ["MAR"] * n,
            "nationality_region": ["North Africa"] * n,
            "reason": ["other" if s == "police" else None for s in sources],
            "police_unit": ["A" if s == "police" else None for s in sources],
            "in_target": [True] * n,
        }
    )


def _world(n_people: int = 1500, seed: int = 1, certain: bool = False):
    """A police × IOM world with known persons; true pairs score high, some false pairs
    score low-to-moderate. ``certain`` makes every probability 0 or 1 (truth-based)."""
    rng = np.random.default_rng(seed)
    counts = rng.poisson(0.6, n_people)
    iom = rng.random(n_people) < 0.25
    person = np.concatenate([np.repeat(np.arange(n_people), counts), np.flatnonzero(iom)])
    sources = ["police"] * int(counts.sum()) + ["iom"] * int(iom.sum())
    records = _records(sources)
    truth = person
    # all within-person pairs
    order = np.argsort(truth, kind="stable")
    groups = np.split(order, np.flatnonzero(np.diff(truth[order])) + 1)
    li, ri = [], []
    for g in groups:
        if g.size > 1:
            a, b = np.triu_indices(g.size, 1)
            li.append(g[a])
            ri.append(g[b])
    li = np.concatenate(li)
    ri = np.concatenate(ri)
    p_true = np.ones(li.size) if certain else rng.beta(8, 1.2, li.size)
    # false candidate pairs between random records of different people
    k = truth.size
    fl = rng.integers(0, k, 3 * k)
    fr = rng.integers(0, k, 3 * k)
    ok = truth[fl] != truth[fr]
    fl, fr = fl[ok], fr[ok]
    p_false = np.zeros(fl.size) if certain else rng.beta(0.3, 6, fl.size)
    left = np.concatenate([li, fl])
    right = np.concatenate([ri, fr])
    lo, hi = np.minimum(left, right), np.maximum(left, right)
    pairs = pl.DataFrame(
        {
            "record_id_l": lo,
            "record_id_r": hi,
            "match_probability": np.concatenate([p_true, p_false]),
        }
    ).unique(["record_id_l", "record_id_r"], keep="first")
    return records, pairs, truth


# ----------------------------------------------------------------------------- Rubin
def test_rubin_rules_on_hand_computed_numbers():
    comb = combine_rubin([10.0, 12.0, 14.0], [1.0, 1.0, 1.0])
    # Q̄ = 12, Ū = 1, B = 4, T = 1 + (4/3)·4 = 19/3; λ = (16/3)/(19/3) = 16/19
    assert comb.estimate == pytest.approx(12.0)
    assert comb.within_var == pytest.approx(1.0)
    assert comb.between_var == pytest.approx(4.0)
    assert comb.total_var == pytest.approx(19 / 3)
    assert comb.linkage_variance_share == pytest.approx(16 / 19)
    # Rubin 1987: ν = (M − 1)(1 + 1/r)², r = 16/3 → 2·(19/16)²
    assert comb.df == pytest.approx(2 * (19 / 16) ** 2)
    from scipy import stats

    half = stats.t.ppf(0.975, 2 * (19 / 16) ** 2) * math.sqrt(19 / 3)
    assert (comb.lower, comb.upper) == pytest.approx((12 - half, 12 + half))


def test_barnard_rubin_df_and_zero_between_variance():
    comb = combine_rubin([10.0, 12.0, 14.0], [1.0, 1.0, 1.0], df_complete=20)
    lam = 16 / 19
    old = 2 / lam**2
    obs = 21 / 23 * 20 * (1 - lam)
    assert comb.df == pytest.approx(old * obs / (old + obs))
    assert comb.df < 20
    same = combine_rubin([5.0, 5.0, 5.0], [4.0, 4.0, 4.0])
    assert same.between_var == 0 and math.isinf(same.df)
    assert (same.lower, same.upper) == pytest.approx((5 - 1.959964 * 2, 5 + 1.959964 * 2), rel=1e-6)


# ----------------------------------------------------------------------------- draws
def test_certain_probabilities_reproduce_the_deterministic_clustering():
    records, pairs, truth = _world(certain=True)
    graph = prepare_pairs(records["record_id"], pairs)
    rng = np.random.default_rng(3)
    for _ in range(5):
        labels, _ = draw_labels(graph, rng)
        same = labels[:, None] == labels[None, :]
        assert np.array_equal(same, truth[:, None] == truth[None, :])
    assert np.array_equal(threshold_labels(graph, 0.5), draw_labels(graph, rng)[0])


def test_average_drawn_links_match_the_sum_of_probabilities():
    records, pairs, _ = _world()
    graph = prepare_pairs(records["record_id"], pairs)
    rng = np.random.default_rng(11)
    links = np.array([draw_labels(graph, rng)[1] for _ in range(200)], dtype=float)
    expected = graph.expected_links
    var = float((graph.probability * (1 - graph.probability)).sum())
    # the mean of 200 draws lies within 4 standard errors of Σ p
    assert abs(links.mean() - expected) < 4 * math.sqrt(var / 200)


def test_isolated_pairs_merge_with_their_probability():
    # 400 disjoint record pairs: a draw merges pair k with probability p_k exactly
    p = np.linspace(0.05, 0.95, 400)
    records = _records(["police"] * 800)
    pairs = pl.DataFrame(
        {
            "record_id_l": np.arange(0, 800, 2),
            "record_id_r": np.arange(1, 800, 2),
            "match_probability": p,
        }
    )
    graph = prepare_pairs(records["record_id"], pairs)
    rng = np.random.default_rng(5)
    merged = np.array(
        [800 - (draw_labels(graph, rng)[0].max() + 1) for _ in range(300)], dtype=float
    )
    sd = math.sqrt((p * (1 - p)).sum() / 300)
    assert abs(merged.mean() - p.sum()) < 4 * sd


def test_chaining_guard_keeps_coherent_and_breaks_conflicting_merges():
    records = _records(["police"] * 6)
    pairs = pl.DataFrame(
        {
            # records 0-1-2: one person, all pairs certain; 3-4 and 4-5 likely but 3-5 impossible
            "record_id_l": [0, 0, 1, 3, 4, 3],
            "record_id_r": [1, 2, 2, 4, 5, 5],
            "match_probability": [0.99, 0.99, 0.99, 0.7, 0.7, 0.0001],
        }
    )
    graph = prepare_pairs(records["record_id"], pairs)
    rng = np.random.default_rng(0)
    for _ in range(200):
        labels, _ = draw_labels(graph, rng)
        assert labels[3] != labels[5]
    assert within_cluster_pairs(threshold_labels(graph, 0.5)) == 3


# ----------------------------------------------------------------------------- multiple imputation
def test_imputation_collapses_to_the_plug_in_estimate_with_certain_links():
    records, pairs, truth = _world(certain=True)
    clusters = pl.DataFrame({"record_id": records["record_id"], "person_id": truth})
    persons, _ = build_persons(records, clusters, PERIOD, sources=["police", "iom"])
    plug_in = Chao().fit(persons)
    mi = multiple_imputation(
        records, pairs, Chao(), period=PERIOD, imputations=5, seed=1, workers=1
    )
    aware = mi.extra["linkage_aware"]
    assert mi.model == "mi:chao"
    assert mi.population_size == plug_in.population_size
    assert mi.se == pytest.approx(plug_in.se, rel=1e-12)
    assert aware["between_var"] == 0 and aware["linkage_variance_share"] == 0
    assert aware["imputed_population_sizes"] == [plug_in.population_size] * 5
    assert mi.confint() == pytest.approx(plug_in.confint("normal"))


def test_imputation_is_seeded_and_independent_of_workers():
    records, pairs, _ = _world(n_people=800, seed=4)
    a = multiple_imputation(
        records, pairs, Petersen(), period=PERIOD, imputations=6, seed=42, workers=1
    )
    b = multiple_imputation(
        records, pairs, Petersen(), period=PERIOD, imputations=6, seed=42, workers=2
    )
    c = multiple_imputation(
        records, pairs, Petersen(), period=PERIOD, imputations=6, seed=43, workers=1
    )
    ka, kb, kc = (x.extra["linkage_aware"] for x in (a, b, c))
    assert ka["imputed_population_sizes"] == kb["imputed_population_sizes"]
    assert ka["imputed_population_sizes"] != kc["imputed_population_sizes"]
    assert ka["between_var"] > 0 and 0 < ka["linkage_variance_share"] < 1
    for key in (
        "method",
        "M",
        "population_size",
        "se",
        "lower",
        "upper",
        "within_var",
        "between_var",
        "linkage_variance_share",
        "df",
    ):
        assert key in ka
    lo, hi = a.confint()
    assert (lo, hi) == pytest.approx((ka["lower"], ka["upper"]))
    # the MI interval is wider than the average complete-data interval
    assert a.se > math.sqrt(ka["within_var"])


def test_imputation_accepts_a_callable_and_log_scale():
    records, pairs, _ = _world(n_people=600, seed=6)
    mi = multiple_imputation(
        records, pairs, Chao().fit, period=PERIOD, imputations=4, seed=2, workers=1, scale="log"
    )
    lo, hi = mi.confint()
    assert lo < mi.population_size < hi
    assert mi.population_size / lo != pytest.approx(hi / mi.population_size, rel=1e-9) or lo > 0


# ----------------------------------------------------------------------------- Ding–Fienberg
def test_ding_fienberg_reduces_to_petersen():
    res = ding_fienberg(500, 400, 180, 1.0, 0.0)
    assert res.population_size == pytest.approx(500 * 400 / 180)
    assert res.sampling_var == pytest.approx(500 * 400 * 320 * 220 / 180**3)
    assert res.linkage_var == 0


def test_ding_fienberg_hand_computed_and_recovers_truth():
    res = ding_fienberg(100, 80, 30, 0.9, 0.05, link_randomness=False)
    assert res.population_size == pytest.approx(100 * 80 * 0.85 / 26)
    # N = 1000, n1 = 500, n2 = 400, M = 200; α = 0.9, β = 0.02 → E[m] = 180 + 4 = 184
    exact = ding_fienberg(500, 400, 184, 0.9, 0.02)
    assert exact.matches == pytest.approx(200)
    assert exact.population_size == pytest.approx(1000)
    # the delta-method gradient matches finite differences
    base = ding_fienberg(500, 400, 184, 0.9, 0.02, var_alpha=1e-4, link_randomness=False)
    h = 1e-6
    g = (
        ding_fienberg(500, 400, 184, 0.9 + h, 0.02).population_size
        - ding_fienberg(500, 400, 184, 0.9 - h, 0.02).population_size
    ) / (2 * h)
    assert base.linkage_var == pytest.approx(g**2 * 1e-4, rel=1e-5)
    with pytest.raises(ValueError):
        ding_fienberg(500, 400, 5, 0.9, 0.05)


def test_rates_from_link_counts_give_n1_n2_over_expected_matches():
    alpha, beta, va, vb, cab = rates_from_link_counts(400, 184, 170.0, 30.0, 10.0, 5.0)
    assert alpha == pytest.approx(170 / 200) and beta == pytest.approx(14 / 200)
    res = ding_fienberg(
        500,
        400,
        184,
        alpha,
        beta,
        var_alpha=va,
        var_beta=vb,
        cov_alpha_beta=cab,
        link_randomness=False,
    )
    assert res.population_size == pytest.approx(500 * 400 / 200)
    # Var(N̂) from the rates equals (N̂/M̂)²·(Var A + Var R): N̂ depends on A + R only
    assert res.linkage_var == pytest.approx((1000 / 200) ** 2 * 15.0)


def test_fellegi_sunter_link_counts_on_a_constructed_linkage():
    # persons: 0 = police 0 + IOM 1 (linked, p 0.9); 1 = police 2; 2 = IOM 3 (candidate of
    # police 2 with p 0.3 and of police 4 with p 0.9 → capped at 1); 3 = police 4
    records = _records(["police", "iom", "police", "iom", "police"])
    clusters = pl.DataFrame({"record_id": [0, 1, 2, 3, 4], "person_id": [0, 0, 1, 2, 3]})
    pairs = pl.DataFrame(
        {"record_id_l": [0, 2, 3], "record_id_r": [1, 3, 4], "match_probability": [0.9, 0.3, 0.9]}
    )
    persons, _ = build_persons(records, clusters, PERIOD, sources=["police", "iom"])
    counts = fellegi_sunter_link_counts(records, clusters, pairs, persons, period=PERIOD)
    row = counts.row(0, named=True)
    assert (row["n1"], row["n2"], row["m"]) == (3, 2, 1)
    assert row["true_links"] == pytest.approx(0.9)
    assert row["var_true_links"] == pytest.approx(0.09)
    assert row["missed_links"] == pytest.approx(1.0)
    est = linkage_corrected_dse(counts)
    assert est.population_size == pytest.approx(3 * 2 / 1.9)
    assert set(est.extra["linkage_aware"]) >= {
        "method",
        "M",
        "population_size",
        "se",
        "lower",
        "upper",
        "within_var",
        "between_var",
        "linkage_variance_share",
        "df",
    }


def _calibrated_dse_world(seed: int):
    """Police × IOM, one record per person and list; 600 disjoint cross-list candidate
    pairs whose match status is drawn with the pair's probability (calibrated scores)."""
    rng = np.random.default_rng(seed)
    k, only1, only2 = 600, 1400, 300
    p = rng.beta(1.5, 0.6, k)
    true = rng.random(k) < p
    sources = ["police"] * (k + only1) + ["iom"] * (k + only2)
    records = _records(sources)
    police_ids = np.arange(k)
    iom_ids = np.arange(k + only1, k + only1 + k)
    person = np.arange(len(sources))
    person[iom_ids[true]] = police_ids[true]
    pairs = pl.DataFrame(
        {"record_id_l": police_ids, "record_id_r": iom_ids, "match_probability": p}
    )
    return records, pairs, person


def test_model_corrected_dse_removes_the_linkage_bias_on_calibrated_scores():
    errors_plug, errors_dct, z = [], [], []
    for seed in range(20):
        records, pairs, truth = _calibrated_dse_world(seed)
        graph = prepare_pairs(records["record_id"], pairs)
        clusters = labels_to_clusters(graph, threshold_labels(graph, 0.5))
        persons, _ = build_persons(records, clusters, PERIOD, sources=["police", "iom"])
        true_clusters = pl.DataFrame({"record_id": records["record_id"], "person_id": truth})
        true_persons, _ = build_persons(records, true_clusters, PERIOD, sources=["police", "iom"])
        target = Petersen().fit(true_persons).population_size  # the estimate perfect links give
        errors_plug.append(Petersen().fit(persons).population_size / target - 1)
        counts = fellegi_sunter_link_counts(records, clusters, pairs, persons, period=PERIOD)
        est = linkage_corrected_dse(counts)
        errors_dct.append(est.population_size / target - 1)
        z.append(
            (est.population_size - target) / math.sqrt(est.extra["linkage_aware"]["between_var"])
        )
    assert abs(np.mean(errors_dct)) < 0.01 < abs(np.mean(errors_plug))
    # the linkage part of the variance describes the spread around the perfect-link estimate
    assert 0.5 < np.std(z) < 1.6


# ----------------------------------------------------------------------------- thresholds
def test_threshold_sensitivity_is_monotone_when_duplicates_score_moderately():
    records, pairs, _ = _world(n_people=1500, seed=9)
    table = threshold_sensitivity(
        records, pairs, Chao(), period=PERIOD, thresholds=[0.2, 0.5, 0.8, 0.95]
    )
    assert [r["threshold"] for r in table] == [0.2, 0.5, 0.8, 0.95]
    assert set(table[0]) == {"threshold", "population_size", "se", "lower", "upper", "n_observed"}
    n_obs = [r["n_observed"] for r in table]
    n_hat = [r["population_size"] for r in table]
    assert n_obs == sorted(n_obs) and n_obs[0] < n_obs[-1]
    assert n_hat == sorted(n_hat) and n_hat[0] < n_hat[-1]
    graph = prepare_pairs(records["record_id"], pairs)
    clusters = labels_to_clusters(graph, threshold_labels(graph, 0.5))
    est = attach_threshold_sensitivity(
        Chao().fit(build_persons(records, clusters, PERIOD)[0]), table
    )
    assert est.extra["threshold_sensitivity"] == table
    assert est.population_size == pytest.approx(table[1]["population_size"])


# ----------------------------------------------------------------------------- pipeline API
def test_linkage_aware_estimate_with_a_registry_model_and_config_checks():
    from recapture.errors import ConfigError
    from recapture.uncertainty import RegistryEstimator, UncertaintyOptions, linkage_aware_estimate

    records, pairs, _ = _world(n_people=1500, seed=21)
    graph = prepare_pairs(records["record_id"], pairs)
    clusters = labels_to_clusters(graph, threshold_labels(graph, 0.5))
    persons, _ = build_persons(records, clusters, PERIOD, sources=["police", "iom"])
    estimator = RegistryEstimator("ztpoisson", {"formula": "~ 1", "count": "n_police"})
    plug_in = estimator.fit(persons)  # persons never seen by the police are left out by the model

    options = UncertaintyOptions.from_dict(
        {"imputations": 4, "workers": 1, "thresholds": [0.3, 0.9]}
    )
    out = linkage_aware_estimate(
        plug_in,
        estimator=estimator,
        records=records,
        pairs=pairs,
        clusters=clusters,
        persons=persons,
        period=PERIOD,
        options=options,
        threshold=0.5,
        seed=3,
    )
    aware = out.extra["linkage_aware"]
    assert aware["method"] == "multiple_imputation" and aware["M"] == 4
    assert [r["threshold"] for r in out.extra["threshold_sensitivity"]] == [0.3, 0.5, 0.9]
    assert out.extra["threshold_sensitivity"][1]["population_size"] == pytest.approx(
        plug_in.population_size
    )

    dse = linkage_aware_estimate(
        Petersen().fit(persons),
        estimator=Petersen(),
        records=records,
        pairs=pairs,
        clusters=clusters,
        persons=persons,
        period=PERIOD,
        options=UncertaintyOptions(),
        lists=["police", "iom"],
    )
    assert dse.extra["linkage_aware"]["method"] == "di_consiglio_tuoto"

    with pytest.raises(ConfigError, match="imputation"):
        UncertaintyOptions.from_dict({"imputation": 5})
    with pytest.raises(ConfigError):
        UncertaintyOptions.from_dict({"imputations": 1})
    with pytest.raises(ConfigError):
        UncertaintyOptions.from_dict({"thresholds": [0.5, 1.0]})


# ----------------------------------------------------------------------------- recalibration, log-linear
def test_platt_recalibration_recovers_a_known_miscalibration():
    from recapture.uncertainty.calibration import fit_recalibration

    rng = np.random.default_rng(8)
    p = rng.uniform(0.001, 0.999, 3000)
    eta = -2.0 + 0.8 * np.log(p / (1 - p))
    y = rng.random(p.size) < 1 / (1 + np.exp(-eta))
    recal = fit_recalibration(pl.DataFrame({"match_probability": p, "is_match": y}), ridge=0.0)
    assert recal.intercept == pytest.approx(-2.0, abs=0.25)
    assert recal.slope == pytest.approx(0.8, abs=0.1)
    out = recal.apply(pl.DataFrame({"match_probability": [0.5, 0.9]}))
    assert out["match_probability_model"].to_list() == [0.5, 0.9]
    assert out["match_probability"][0] == pytest.approx(1 / (1 + math.exp(-recal.intercept)))


def test_corrected_linked_cell_refit_matches_the_closed_form():
    from recapture.estimators.dse import Petersen as RepoPetersen
    from recapture.uncertainty.analytic import linkage_corrected_loglinear

    records, pairs, _ = _calibrated_dse_world(3)
    graph = prepare_pairs(records["record_id"], pairs)
    clusters = labels_to_clusters(graph, threshold_labels(graph, 0.5))
    persons, _ = build_persons(records, clusters, PERIOD, sources=["police", "iom"])
    counts = fellegi_sunter_link_counts(records, clusters, pairs, persons, period=PERIOD)
    closed = linkage_corrected_dse(counts)
    refit = linkage_corrected_loglinear(
        records,
        clusters,
        pairs,
        persons,
        RepoPetersen(dependence_thetas=None),
        period=PERIOD,
        covariates=["sex"],
        replicates=30,
        seed=1,
    )
    assert refit.population_size == pytest.approx(closed.population_size, rel=1e-9)
    # replicate linkage variance ≈ the delta-method one
    ratio = (
        refit.extra["linkage_aware"]["between_var"] / closed.extra["linkage_aware"]["between_var"]
    )
    assert 0.5 < ratio < 2.0


def test_threshold_clustering_equals_the_linkage_engine():
    from recapture.linkage.clustering import cluster_pairs

    records, pairs, _ = _world(n_people=1500, seed=31)
    graph = prepare_pairs(records["record_id"], pairs, min_probability=0.0)
    ids = graph.record_ids
    i = np.searchsorted(ids, pairs["record_id_l"].to_numpy())
    j = np.searchsorted(ids, pairs["record_id_r"].to_numpy())
    for threshold in (0.3, 0.5, 0.9):
        engine = cluster_pairs(
            ids.size,
            i,
            j,
            pairs["match_probability"].to_numpy(),
            threshold,
            chaining_steps=[0.8, 0.9, 0.95, 0.99, 0.999],
        ).labels
        ours = threshold_labels(graph, threshold)
        assert np.array_equal(engine[:, None] == engine[None, :], ours[:, None] == ours[None, :])


def test_read_linkage_inputs_from_a_run_directory(tmp_path):
    from recapture.errors import InputError
    from recapture.uncertainty import read_linkage_inputs

    records, pairs, truth = _world(n_people=300, seed=41)
    clusters = pl.DataFrame({"record_id": records["record_id"], "person_id": truth})
    persons, _ = build_persons(records, clusters, PERIOD, sources=["police", "iom"])
    for name, frame in (
        ("records", records),
        ("pairs", pairs),
        ("clusters", clusters),
        ("persons", persons),
    ):
        frame.write_parquet(tmp_path / f"{name}.parquet")
    inputs = read_linkage_inputs(tmp_path / "persons.parquet")
    assert inputs["period"] == PERIOD
    assert inputs["pairs"].height == pairs.height and inputs["records"].height == records.height
    (tmp_path / "pairs.parquet").unlink()
    with pytest.raises(InputError, match="pairs"):
        read_linkage_inputs(tmp_path / "persons.parquet")


def test_linkage_aware_interval_follows_the_models_bias_reduced_interval():
    """With covariate strata the model's interval is log-normal around the bias-reduced N̂
    (docs/estimators.md); the default ("auto") combination widens that interval by the
    linkage's variance — Rubin's rules on log Ñ with variance (SE(Ñ)/Ñ)², the
    Barnard–Rubin df — and keeps N̂ the mean ML estimate. Without reduced estimates it
    combines N̂ on the linear scale, as before."""
    ml = [26_400.0, 25_900.0, 26_800.0, 26_100.0]
    reduced = [25_500.0, 25_100.0, 25_900.0, 25_300.0]
    se_ml, se_red = [2_300.0, 2_250.0, 2_400.0, 2_280.0], [2_100.0, 2_060.0, 2_180.0, 2_090.0]
    runs = [
        dict(
            imputation=k,
            pair_links=1000 + k,
            population_size=ml[k],
            se=se_ml[k],
            n_observed=5_400 + k,
            model="loglinear",
            formula=None,
            n_coefficients=30,
            converged=True,
            population_size_reduced=reduced[k],
            se_reduced=se_red[k],
        )
        for k in range(4)
    ]
    r = combine_imputations(runs)
    la = r.extra["linkage_aware"]
    assert (la["scale"], la["centre"]) == ("log", "bias_reduced")
    df_complete = float(np.mean([5_400, 5_401, 5_402, 5_403]) - 30 - 1)
    comb = combine_rubin(
        np.log(reduced),
        (np.array(se_red) / np.array(reduced)) ** 2,
        df_complete=df_complete,
    )
    lo, hi = r.confint()
    assert lo == pytest.approx(math.exp(comb.lower), rel=1e-12)
    assert hi == pytest.approx(math.exp(comb.upper), rel=1e-12)
    assert r.population_size == pytest.approx(np.mean(ml), rel=1e-12)
    assert la["population_size_bias_reduced"] == pytest.approx(math.exp(comb.estimate))
    assert lo < la["population_size_bias_reduced"] < hi
    # without the reduced estimates: the linear combination of the ML N̂
    plain = [{k: v for k, v in run.items() if "reduced" not in k} for run in runs]
    p = combine_imputations(plain)
    assert (p.extra["linkage_aware"]["scale"], p.extra["linkage_aware"]["centre"]) == (
        "linear",
        "ml",
    )
    lin = combine_rubin(ml, np.array(se_ml) ** 2, df_complete=df_complete)
    assert p.confint() == pytest.approx((lin.lower, lin.upper), rel=1e-12)
