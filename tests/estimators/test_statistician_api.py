"""The statistician's API: one code path from Python, the CLI and the pipeline; strata that
add up to N̂; AIC compared only on the same data; summary(), predict(), stratify() and the
tables checked against singleRcapture's printed output for the 1995 data."""

from __future__ import annotations

import json
import math
import pickle
from collections import defaultdict
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from conftest import pipeline_toml

from recapture.cli import main
from recapture.errors import ConfigError
from recapture.estimators import (
    MISSING_RULES,
    Chao,
    ZeroTruncatedGeometric,
    ZeroTruncatedPoisson,
    estimate,
    register_missing_rule,
    same_likelihood_data,
)
from recapture.estimators.covariates import keep_unknown_as_level
from recapture.io import artifact_path
from recapture.pipelines.run import run_pipeline
from recapture.reports.estimate import estimate_report
from recapture.synthetic import SimulationConfig, run_simulation

DATA = Path(__file__).parents[1] / "data"
FORMULA = "~ sex + age_class + region"

PIPELINE = pipeline_toml(
    """
[persons]
age_breaks = [40]

[[estimators]]
name = "ztp"
model = "ztpoisson"
formula = "~ sex + age_class + region"
count = "n_police"
merge_sparse_levels = 5

[[estimators]]
name = "chao"
model = "chao"
count = "n_police"

[[estimators]]
name = "dse"
model = "loglinear"
lists = ["police", "iom"]
covariates = "sex,age_class"
merge_sparse_levels = 5

[reports]
enabled = false
""",
    seed=3,
)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, list[dict]]:
    """A small simulated world run through the pipeline: its persons and estimates."""
    base = tmp_path_factory.mktemp("statistician")
    run_simulation(SimulationConfig(size=4_000, seed=7), base / "world")
    (base / "pipeline.toml").write_text(PIPELINE, encoding="utf-8")
    result = run_pipeline(base / "pipeline.toml")
    return result.run_dir, result.estimates


@pytest.fixture(scope="module")
def persons(run) -> pl.DataFrame:
    return pl.read_parquet(artifact_path(run[0], "persons"))


@pytest.fixture(scope="module")
def nl() -> pl.DataFrame:
    return pl.read_csv(DATA / "netherlandsimmigrant.csv")


def _by_name(estimates: list[dict], name: str) -> dict:
    return next(e for e in estimates if e["name"] == name)


# ------------------------------------------------------------------------------ one code path
def test_python_api_cli_and_pipeline_give_the_same_estimate(run, persons, tmp_path):
    run_dir, estimates = run
    piped = _by_name(estimates, "ztp")
    assert persons.filter(pl.col("n_police") > 0)["sex"].is_in(["unknown"]).any() or any(
        "unknown" in w for w in piped["warnings"]
    ), "the world must have persons with unknown covariates for this test to mean anything"
    model = ZeroTruncatedPoisson(FORMULA, merge_sparse_levels=5)
    by_class = model.fit(persons, count="n_police")
    by_name = estimate(
        persons, "ztpoisson", formula=FORMULA, count="n_police", merge_sparse_levels=5
    )
    out = tmp_path / "est.json"
    argv = ["--quiet", "estimate", str(artifact_path(run_dir, "persons")), "--model", "ztpoisson"]
    argv += ["--formula", FORMULA, "--count-col", "n_police", "--merge-sparse-levels", "5"]
    assert main([*argv, "--out", str(out)]) == 0
    by_cli = json.loads(out.read_text())
    for got in (by_class.population_size, by_name.population_size, by_cli["population_size"]):
        assert got == pytest.approx(piped["population_size"], rel=1e-6)
    for got in (by_class.se, by_name.se, by_cli["se"]):
        assert got == pytest.approx(piped["se"], rel=1e-6)
    assert by_class.extra["missing_rule"] == piped["extra"]["missing_rule"]


def test_the_class_no_longer_keeps_unknown_as_a_level_by_accident(persons):
    """The documented call used to fit 'unknown' as a level (N̂ 4·10¹³ on the demo)."""
    default = ZeroTruncatedPoisson(FORMULA, merge_sparse_levels=5, missing="allocate")
    level = ZeroTruncatedPoisson(FORMULA, merge_sparse_levels=5, missing="level")
    default, level = (m.fit(persons, count="n_police") for m in (default, level))
    assert default.extra["missing_covariates"]["rule"] == "allocate"
    assert default.population_size < 50 * default.n_observed
    assert "missing_covariates" not in level.extra
    assert not any("unknown" in t.lower() for t in default.coefficients_table().index)
    assert any("unknown" in t.lower() for t in level.coefficients_table().index)


def test_an_unknown_rule_is_a_config_error(persons):
    with pytest.raises(ConfigError) as err:
        ZeroTruncatedPoisson(FORMULA, missing="drop")
    assert err.value.key == "missing"
    with pytest.raises(ConfigError):
        estimate(persons, "loglinear", lists="in_police,in_iom", covariates="sex", missing="drop")


def test_a_registered_rule_reaches_every_entry_point(persons):
    seen = []

    def spy(problem):
        seen.append((problem.covariates, problem.model is not None))
        return keep_unknown_as_level(problem)

    register_missing_rule("spy", spy)
    try:
        ZeroTruncatedPoisson("~ sex", missing="spy").fit(persons, count="n_police")
        estimate(persons, "ztpoisson", formula="~ sex", count="n_police", missing="spy")
        estimate(persons, "loglinear", lists="in_police,in_iom", covariates="sex", missing="spy")
    finally:
        del MISSING_RULES["spy"]
    assert seen == [(["sex"], True), (["sex"], True), (["sex"], False)]


# ------------------------------------------------------------------------------ strata add up
def _totals(strata: list[dict]) -> dict[str, float]:
    totals: dict[str, float] = defaultdict(float)
    for row in strata:
        totals[row["variable"]] += row["population_size"]
    return totals


@pytest.mark.parametrize("rule", sorted(MISSING_RULES))
def test_strata_of_each_variable_add_up_to_the_estimate(persons, rule):
    ztp = ZeroTruncatedPoisson(FORMULA, merge_sparse_levels=5, missing=rule)
    dse_options = {"lists": "in_police,in_iom", "covariates": "sex,age_class"}
    fits = [
        ztp.fit(persons, count="n_police"),
        estimate(persons, "loglinear", missing=rule, merge_sparse_levels=5, **dse_options),
    ]
    for fit in fits:
        if not math.isfinite(fit.population_size) or fit.population_size > 1e9:
            continue  # 'level' may diverge; that is what its warnings say
        totals = _totals(fit.strata)
        assert totals, fit.model
        for variable, total in totals.items():
            assert total == pytest.approx(fit.population_size, rel=0.005), (rule, variable)


def test_pipeline_strata_add_up(run):
    for entry in run[1]:
        for variable, total in _totals(entry["strata"]).items():
            assert total == pytest.approx(entry["population_size"], rel=0.005), variable


def test_allocated_strata_and_stratify_agree(persons):
    fit = ZeroTruncatedPoisson(FORMULA, merge_sparse_levels=5, missing="allocate").fit(
        persons, count="n_police"
    )
    ratio = fit.extra["missing_covariates"]["ratio"]
    assert ratio > 1
    table = fit.stratify("~ sex:age_class + region")
    for _variable, block in table.groupby(level="variable"):
        assert block["population_size"].sum() == pytest.approx(fit.population_size, rel=1e-9)
    by_sex = fit.stratify(["sex"])["population_size"]
    listed = {r["level"]: r["population_size"] for r in fit.strata if r["variable"] == "sex"}
    for level, value in listed.items():
        assert by_sex[("sex", level)] == pytest.approx(value, rel=1e-12)
    assert fit.predict()["population_size"].sum() == pytest.approx(fit.population_size)


# ------------------------------------------------------------------------------ AIC on the same data
def test_likelihood_data_tags_say_which_fits_are_comparable(persons):
    rule = {"missing": "allocate"}
    ztp = ZeroTruncatedPoisson("~ sex", **rule).fit(persons, count="n_police")
    geo = ZeroTruncatedGeometric("~ sex", **rule).fit(persons, count="n_police")
    chao = Chao("~ sex", **rule).fit(persons, count="n_police")
    region = ZeroTruncatedPoisson("~ sex + region", **rule).fit(persons, count="n_police")
    # under em every observed person counts, with the unknown values integrated out
    em_ztp = ZeroTruncatedPoisson("~ sex + region").fit(persons, count="n_police")
    em_geo = ZeroTruncatedGeometric("~ sex + region").fit(persons, count="n_police")
    assert same_likelihood_data(em_ztp, em_geo)
    assert not same_likelihood_data(em_ztp, region)
    assert same_likelihood_data(ztp, geo)
    assert not same_likelihood_data(ztp, chao)  # Chao: 1{y=2} among y ∈ {1, 2}
    assert chao.likelihood_data["n"] < ztp.likelihood_data["n"]
    # unknown regions are set aside: other complete cases, other data
    assert region.likelihood_data["n"] < ztp.likelihood_data["n"]
    assert not same_likelihood_data(ztp, region)
    # aggregated rows are other rows, but the same persons weigh the same
    assert ztp.likelihood_data["n"] == ztp.n_observed - ztp.extra["missing_covariates"]["unknown"]


def test_report_never_ranks_chao_against_a_count_model(run, tmp_path):
    html = estimate_report(run[1], tmp_path / "e.html").read_text(encoding="utf-8")
    section = html[html.index('id="comparison"') : html.index('id="diagnostics"')]
    blocks = section.split("<h3>")[1:]
    chao = [b for b in blocks if "Chao" in b or "chao" in b]
    assert chao and all("no other model on these data" in b for b in chao)
    assert 'id="diagnostics"' in html and "rootogram" in html.lower()
    assert "N̂ − N̂ without them" in html


# ------------------------------------------------------------------------------ singleRcapture
#: singleRcapture (ncn-foreigners/singleRcapture), reference/estimatePopsize.md, Examples:
#: summary(estimatePopsize(capture ~ gender + age + nation, data = netherlandsimmigrant,
#: model = ztpoisson)) prints, in part:
#:
#:                      Estimate Std. Error z value  P(>|z|)
#: (Intercept)           -1.3411     0.2149  -6.241 4.35e-10 ***
#: gendermale             0.3972     0.1630   2.436 0.014832 *
#: age>40yrs             -0.9746     0.4082  -2.387 0.016972 *
#: nationAsia            -1.0926     0.3016  -3.622 0.000292 ***
#: nationNorth Africa     0.1900     0.1940   0.979 0.327398
#: nationRest of Africa  -0.9106     0.3008  -3.027 0.002468 **
#: nationSurinam         -2.3364     1.0136  -2.305 0.021159 *
#: nationTurkey          -1.6754     0.6028  -2.779 0.005445 **
#: Pearson Residuals:  Min. -0.486442  1st Qu. -0.486442  Median -0.298080  Mean 0.002093
#:                     3rd Qu. -0.209444  Max. 13.910844
#: AIC: 1712.901  BIC: 1757.213  Residual deviance: 1128.553
#: Log-likelihood: -848.4504 on 1872 Degrees of freedom
#: Point estimate 12690.35   Observed proportion: 14.8% (N obs = 1880)   Std. Error 2808.169
#: 95% CI for the population size:  normal 7186.444 18194.26;  logNormal 8431.275 19718.32
#: 95% CI for the share of observed population:  normal 10.332927 26.16037;
#:                                               logNormal 9.534281 22.29793
#: and summary(marginalFreq(model), df = 1, "group"): Chi-squared test 50.06, G-test 34.31,
#: df 1, "Cells with fitted frequencies of < 5 have been grouped", cells 1 2 3.
SINGLERCAPTURE = {
    "Intercept": (-1.3411, 0.2149, -6.241, 4.35e-10),
    "gender[T.male]": (0.3972, 0.1630, 2.436, 0.014832),
    "age[T.>40yrs]": (-0.9746, 0.4082, -2.387, 0.016972),
    "nation[T.Asia]": (-1.0926, 0.3016, -3.622, 0.000292),
    "nation[T.North Africa]": (0.1900, 0.1940, 0.979, 0.327398),
    "nation[T.Rest of Africa]": (-0.9106, 0.3008, -3.027, 0.002468),
    "nation[T.Surinam]": (-2.3364, 1.0136, -2.305, 0.021159),
    "nation[T.Turkey]": (-1.6754, 0.6028, -2.779, 0.005445),
}


def test_summary_fields_match_singlercapture_on_the_1995_data(nl):
    fit = ZeroTruncatedPoisson("~ gender + age + nation").fit(nl, count="capture")
    table = fit.coefficients_table()
    assert list(table.columns) == ["predictor", "estimate", "se", "z", "p_value"]
    for term, (b, se, z, p) in SINGLERCAPTURE.items():
        row = table.loc[term]
        assert row["estimate"] == pytest.approx(b, abs=5e-5)
        assert row["se"] == pytest.approx(se, abs=5e-5)
        assert row["z"] == pytest.approx(z, abs=5e-4)
        assert row["p_value"] == pytest.approx(p, rel=2e-3)
    assert fit.loglik == pytest.approx(-848.4504, abs=1e-4)
    assert fit.aic == pytest.approx(1712.901, abs=1e-3)
    assert fit.bic == pytest.approx(1757.213, abs=1e-3)
    assert fit.deviance == pytest.approx(1128.553, abs=1e-3)
    assert fit.df_residual == 1872
    assert fit.population_size == pytest.approx(12690.35, abs=0.01)
    assert fit.se == pytest.approx(2808.169, abs=1e-3)
    assert fit.n_observed == 1880 and f"{fit.observed_share:.1%}" == "14.8%"
    assert fit.confint("normal") == pytest.approx((7186.444, 18194.26), abs=0.01)
    assert fit.confint("lognormal") == pytest.approx((8431.275, 19718.32), abs=0.01)
    resid = fit.diagnostics["pearson_residuals"]
    expected = (-0.486442, -0.486442, -0.298080, 0.002093, -0.209444, 13.910844)
    got = [resid[k] for k in ("min", "q1", "median", "mean", "q3", "max")]
    assert got == pytest.approx(expected, abs=1e-6)
    # singleRcapture groups the cells with fitted frequency < 5 into one (here 4, 5, 6,
    # still 3.6 expected); computed that way from our fitted frequencies:
    freq = fit.frequencies_table()
    k = freq[freq["k"].apply(lambda v: isinstance(v, int))]
    obs = np.array([*k["observed"][:3], k["observed"][3:].sum()])
    exp = np.array([*k["fitted"][:3], k["fitted"][3:].sum()])
    assert np.sum((obs - exp) ** 2 / exp) == pytest.approx(50.06, abs=0.01)
    assert 2 * np.sum(obs * np.log(obs / exp)) == pytest.approx(34.31, abs=0.01)
    # ours pools the tail until every group has 5 expected (1, 2, ≥3), with the df
    # singleRcapture printed: groups − 1 − one linear predictor
    gof = fit.diagnostics["goodness_of_fit"]
    assert [g["k"] for g in gof["groups"]] == ["1", "2", "≥3"] and gof["df"] == 1
    assert gof["g"] > 0 and 0 < gof["p_value"] < 1e-4

    text = fit.summary()
    for piece in (
        "Call: ZeroTruncatedPoisson('~ gender + age + nation'",
        "Std. Error",
        "P(>|z|)",
        "-848.4504 on 1,872 degrees of freedom",
        "AIC 1712.901   BIC 1757.213",
        "12,690.35",
        "2,808.17",
        "(14.8% of N̂)",
        "7,186.44",
        "19,718.32",
        "G test",
        "nation=Surinam",
        "-0.486442  -0.486442  -0.298080   0.002093  -0.209444  13.910844",
        "10.33%         26.16%",
        "9.53%         22.30%",
    ):
        assert piece in text, piece


def test_predict_gives_lambda_and_p_seen_per_pattern_and_person(nl):
    fit = ZeroTruncatedPoisson("~ gender + age + nation").fit(nl, count="capture")
    patterns = fit.predict()
    assert np.allclose(patterns["p_seen"], -np.expm1(-patterns["lambda"]))
    assert patterns["observed"].sum() == 1880
    assert patterns["population_size"].sum() == pytest.approx(fit.population_size)
    assert np.allclose(patterns["population_size"], patterns["observed"] / patterns["p_seen"])
    rows = fit.predict(nl)
    assert rows.shape[0] == nl.height and rows["lambda"].notna().all()
    assert (1 / rows["p_seen"]).sum() == pytest.approx(fit.population_size)
    again = pickle.loads(pickle.dumps(fit))
    assert again.stratify("gender")["population_size"].sum() == pytest.approx(fit.population_size)


def test_strata_formulas_are_parsed_never_evaluated(nl):
    with pytest.raises(ConfigError) as err:
        ZeroTruncatedPoisson("~ gender", strata="~ gender*age")
    assert err.value.key == "strata"
    fit = ZeroTruncatedPoisson("~ gender", strata="~ gender:age").fit(nl, count="capture")
    assert {r["variable"] for r in fit.strata} == {"gender:age"}
    assert sum(r["population_size"] for r in fit.strata) == pytest.approx(fit.population_size)
    with pytest.raises(ConfigError, match="not a variable of the fit"):
        fit.stratify("~ nation")
    for bad in ("__import__('os')", "~ __class__", "~ gender + log(age)", "~ a:"):
        with pytest.raises(ConfigError):
            fit.stratify(bad)
