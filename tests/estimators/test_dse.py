"""Dual systems estimation: Petersen, Chapman, covariates, EM, passive covariates, dependence."""

import json
import math

import numpy as np
import polars as pl
import pytest

from recapture.errors import ConfigError, InputError
from recapture.estimators.dse import Chapman, Petersen, dependence_sensitivity
from recapture.estimators.loglinear import LogLinearModel, capture_table, parse_terms

SEBER = pl.DataFrame({"police": [1, 1, 0], "iom": [1, 0, 1], "n": [167, 781, 254]})


def rel(a, b):
    return abs(a - b) / abs(b)


def world(seed=3, N=30000):
    """Persons with a covariate that drives both capture probabilities (independent given x)."""
    rng = np.random.default_rng(seed)
    x = rng.choice(3, size=N, p=[0.5, 0.3, 0.2])
    police = rng.random(N) < np.array([0.25, 0.05, 0.15])[x]
    iom = rng.random(N) < np.array([0.20, 0.04, 0.30])[x]
    df = pl.DataFrame(
        {
            "in_police": police.astype(int),
            "in_iom": iom.astype(int),
            "region": np.array(["a", "b", "c"])[x],
        }
    )
    return df.filter((pl.col("in_police") + pl.col("in_iom")) > 0)


def test_petersen_seber():
    r = Petersen().fit(SEBER, lists=["police", "iom"], count="n")
    assert rel(r.population_size, 948 * 421 / 167) < 1e-12
    assert rel(r.population_size, 2389.87) < 1e-6
    assert rel(r.se, 130.38) < 1e-4
    lo, hi = r.confint("profile")  # Rcapture closedpCI.t, model Mt
    assert rel(lo, 2156.0) < 1e-4 and rel(hi, 2670.3) < 1e-4


def test_chapman_seber():
    r = Chapman().fit(SEBER, lists=["police", "iom"], count="n")
    # Rcapture closedp.bc(X, m = "Mt"): 2382.8 (129.1); Krebs (1989) Box 2.1: 2383
    assert round(r.population_size, 1) == 2382.8
    assert round(r.se, 1) == 129.1


def test_stratified_petersen_equals_loglinear_ax_bx():
    df = world()
    strat = Petersen(strata=["region"]).fit(df)
    ll = LogLinearModel("[in_police region][in_iom region]", covariates=["region"]).fit(df)
    # [AX][BX] is the Petersen estimate in each stratum, summed
    assert ll.population_size == pytest.approx(strat.population_size, rel=1e-9)
    assert sum(s["population_size"] for s in ll.strata) == pytest.approx(
        ll.population_size, rel=1e-12
    )
    # a covariate named in the model is taken from the data without declaring it
    assert (
        LogLinearModel("[in_police,region][in_iom,region]").fit(df).population_size
        == ll.population_size
    )
    plain = Petersen().fit(df)
    assert plain.population_size < 0.9 * ll.population_size  # heterogeneity biases it down here


def test_dependence_sensitivity_closed_form():
    rows = dependence_sensitivity(SEBER, lists=["police", "iom"], count="n", thetas=[0.5, 1, 2])
    n = 1202
    for row in rows:
        assert row["population_size"] == pytest.approx(n + row["theta"] * 781 * 254 / 167, rel=1e-9)
        assert row["lower"] < row["population_size"] < row["upper"]
    assert [r["theta"] for r in rows] == [0.5, 1.0, 2.0]
    res = Petersen().fit(SEBER, lists=["police", "iom"], count="n")
    assert {r["theta"] for r in res.extra["dependence_sensitivity"]} >= {1.0, 2.0}


def test_dependence_sensitivity_with_covariates_is_stratified():
    df = world()
    rows = dependence_sensitivity(df, covariates=["region"], thetas=[2.0])
    t = capture_table(df, covariates=["region"])
    expected = t.n_observed
    for s in range(t.n_strata):
        c = t.counts[t.strata == s]  # histories 11, 10, 01
        expected += 2.0 * c[1] * c[2] / c[0]
    assert rows[0]["population_size"] == pytest.approx(expected, rel=1e-9)


def test_passive_covariate_leaves_estimate_unchanged_and_breaks_it_down():
    df = world()
    base = LogLinearModel().fit(df)
    passive = LogLinearModel(passive={"region": "in_police"}).fit(df)
    assert passive.population_size == pytest.approx(base.population_size, rel=1e-9)
    parts = passive.strata
    assert {(p["variable"], p["level"]) for p in parts} == {
        ("region", "a"),
        ("region", "b"),
        ("region", "c"),
    }
    assert sum(p["population_size"] for p in parts) == pytest.approx(
        passive.population_size, rel=1e-9
    )
    # the profile likelihood over the strata (hidden cells pooled) is invariant as well
    assert passive.confint("profile") == pytest.approx(base.confint("profile"), rel=1e-9)


def test_em_covariate_observed_in_one_source_only():
    df = world()
    # reason-like covariate known only for people the police saw
    masked = df.with_columns(
        pl.when(pl.col("in_police") == 1).then(pl.col("region")).otherwise(None).alias("region")
    )
    r = LogLinearModel("[in_iom region][in_police]", partial_covariates=["region"]).fit(masked)
    # the model is collapsible over the covariate: N̂ equals the covariate-free estimate
    petersen = Petersen().fit(df)
    assert r.population_size == pytest.approx(petersen.population_size, rel=1e-7)
    # so is the profile likelihood of the partly classified table (observed-data likelihood)
    assert r.confint("profile") == pytest.approx(petersen.confint("profile"), rel=1e-7)
    assert r.diagnostics["em_iterations"] > 1
    assert r.n_observed == df.height
    # the hidden people (in_iom = 0) are split by region like the police-only people
    t = capture_table(df, covariates=["region"])
    only_police = np.array([t.counts[(t.strata == s)][1] for s in range(3)])
    hidden = np.array([s["hidden"] for s in r.strata])
    assert hidden / hidden.sum() == pytest.approx(only_police / only_police.sum(), rel=1e-6)
    # with the covariate tied to both lists the missing part is not identified: flagged
    bad = LogLinearModel("[in_iom region][in_police region]", partial_covariates=["region"]).fit(
        masked
    )
    assert bad.diagnostics["identifiable"] is False and math.isnan(bad.population_size)


def test_missing_covariate_without_em_is_an_input_error():
    df = world().with_columns(pl.lit(None, dtype=pl.Utf8).alias("reason"))
    with pytest.raises(InputError) as exc:
        LogLinearModel(covariates=["reason"]).fit(df)
    assert exc.value.column == "reason"


def test_bad_capture_indicator_names_row_and_column():
    df = pl.DataFrame({"in_a": [1, 0, 2], "in_b": [0, 1, 1]})
    with pytest.raises(InputError) as exc:
        LogLinearModel().fit(df)
    assert exc.value.row == 3 and exc.value.column == "in_a"


def test_model_language_forms_are_equivalent():
    L = ["A", "B", "C"]
    want = parse_terms(["A:B"], L, L)
    assert parse_terms("A*B + C", L, L) == want
    assert parse_terms("[AB][C]", L, L) == want
    assert parse_terms("[A,B][C]", L, L) == want
    assert parse_terms("A + B + C + A:B", L, L) == want
    assert len(parse_terms("(A+B+C)^2", L, L)) == 6
    assert parse_terms("[ABC]", L, L)[-1] == ("A", "B", "C")  # hierarchy: all margins included
    with pytest.raises(ConfigError):
        parse_terms("A:D", L, L)


def test_parametric_bootstrap_is_seeded():
    a = LogLinearModel(bootstrap=60, seed=11).fit(SEBER, lists=["police", "iom"], count="n")
    b = LogLinearModel(bootstrap=60, seed=11).fit(SEBER, lists=["police", "iom"], count="n")
    assert np.array_equal(a.bootstrap_replicates, b.bootstrap_replicates)
    lo, hi = a.confint("bootstrap")
    assert lo < a.population_size < hi
    assert np.std(a.bootstrap_replicates) == pytest.approx(a.se, rel=0.35)


def test_result_serialises_to_json():
    r = LogLinearModel(dependence_thetas=[1, 2]).fit(SEBER, lists=["police", "iom"], count="n")
    d = json.loads(json.dumps(r.to_dict()))
    assert set(d["intervals"]) >= {"normal", "lognormal", "profile", "dark_lognormal"}
    assert d["extra"]["dependence_sensitivity"][1]["theta"] == 2.0
    assert "WARNING" not in r.summary()


def test_search_with_covariates_finds_the_true_two_list_model():
    from recapture.estimators.loglinear.search import exhaustive, stepwise

    df = world()
    step = stepwise(df, covariates=["region"], criterion="bic")
    assert step.formula == "[in_police,region][in_iom,region]"
    every = exhaustive(df, covariates=["region"], criterion="bic")
    assert every[0].formula == step.formula


def test_categorical_covariates_pandas_and_enum():
    df = world()
    plain = LogLinearModel(covariates=["region"]).fit(df)
    pdf = df.to_pandas()
    pdf["region"] = pdf["region"].astype("category")
    assert LogLinearModel(covariates=["region"]).fit(pdf).population_size == pytest.approx(
        plain.population_size, rel=1e-12
    )
    enum = df.with_columns(pl.col("region").cast(pl.Enum(["c", "b", "a"])))
    res = LogLinearModel(covariates=["region"]).fit(enum)
    assert res.population_size == pytest.approx(plain.population_size, rel=1e-9)
    assert [r["level"] for r in res.strata] == [
        "c",
        "b",
        "a",
    ]  # the Enum's order: c is the reference


def test_default_model_handles_empty_strata_and_unseen_levels():
    rng = np.random.default_rng(5)
    N = 6000
    x = rng.choice(4, N)
    z = rng.choice(3, N)
    a = rng.random(N) < 0.3
    b = rng.random(N) < np.array([0.1, 0.3, 0.2, 0.0])[x]  # IOM never sees x = 3
    df = pl.DataFrame(
        {"in_a": a.astype(int), "in_b": b.astype(int), "x": x.astype(str), "z": z.astype(str)}
    )
    df = df.filter((pl.col("in_a") + pl.col("in_b")) > 0)
    # nobody observed in the stratum x = 2, z = 2: a boundary of the covariate distribution
    df = df.filter(~((pl.col("x") == "2") & (pl.col("z") == "2")))
    r = LogLinearModel(covariates=["x", "z"]).fit(df)
    assert r.diagnostics["mle_exists"] and r.diagnostics["identifiable"]
    assert np.isfinite(r.population_size)
    assert r.extra["dropped_terms"] == [
        "in_a:x",
        "in_b:x",
    ]  # in x = 3 police saw everybody, IOM nobody
    assert "simplified" in r.warnings[0]
    # named explicitly, the same model is reported as failing rather than silently changed
    named = LogLinearModel("[in_a,x][in_b,x][in_a,z][in_b,z]").fit(df)
    assert named.diagnostics["mle_exists"] is False and math.isnan(named.population_size)
