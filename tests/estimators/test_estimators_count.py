"""Single-source truncated count models against published and singleRcapture results.

Reference values (issue 5): van der Heijden et al. (2003, Statistical Modelling 3:305–322)
for the zero-truncated Poisson on the 1995 data; singleRcapture 0.2.x
(``estimatePopsize``, default observed information) for the other models; Böhning et al.
(2013, Biometrics 69:1033–1042) data for farmsubmission.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from recapture.cli import main
from recapture.errors import ConfigError, InputError
from recapture.estimators import (
    MODELS,
    Chao,
    OneInflatedZeroTruncated,
    Zelterman,
    ZeroTruncatedGeometric,
    ZeroTruncatedNegativeBinomial,
    ZeroTruncatedOneInflated,
    ZeroTruncatedPoisson,
    estimate,
    estimate_from_frequencies,
)
from recapture.estimators.count.fit import fit_ml, population_estimate
from recapture.estimators.count.problem import prepare

DATA = Path(__file__).parents[1] / "data"
FULL = "~ gender + age + reason + nation"


@pytest.fixture(scope="module")
def nl() -> pl.DataFrame:
    return pl.read_csv(DATA / "netherlandsimmigrant.csv")


@pytest.fixture(scope="module")
def farms() -> pl.DataFrame:
    return pl.read_csv(DATA / "farmsubmission.csv")


def close(value, target, rel):
    return value == pytest.approx(target, rel=rel)


# ------------------------------------------------------------------------------ bars: 1995 data
def test_ztpoisson_full_model_reproduces_the_2003_paper(nl):
    r = ZeroTruncatedPoisson(FULL).fit(nl, count="capture")
    assert close(r.population_size, 12_691.45, 1e-6)
    assert close(r.se, 2_809.51, 1e-4)
    lo, hi = r.confint("normal")
    assert close(lo, 7_184.8, 1e-4) and close(hi, 18_198.1, 1e-4)
    assert r.loglik == pytest.approx(-848.448, abs=5e-4)
    published = {
        "Intercept": -1.33179,
        "gender[T.male]": 0.39741,
        "nation[T.Surinam]": -2.33665,
        "reason[T.Other reason]": -0.01093,
    }
    coefs = {c["term"]: c["estimate"] for c in r.coefficients}
    for term, value in published.items():
        assert coefs[term] == pytest.approx(value, abs=1e-5)
    assert r.converged


@pytest.mark.parametrize(
    ("formula", "n_hat", "se"),
    [("~ gender + age + nation", 12_690.35, 2_808.17), ("~ 1", 7_079.93, 365.75)],
)
def test_ztpoisson_smaller_models(nl, formula, n_hat, se):
    r = ZeroTruncatedPoisson(formula).fit(nl, count="capture")
    assert close(r.population_size, n_hat, 1e-6)
    assert close(r.se, se, 1e-4)


def test_zelterman_regression(nl):
    full = Zelterman(FULL).fit(nl, count="capture")
    assert close(full.population_size, 16_188.30, 1e-6)
    assert close(full.se, 3_166.09, 1e-4)
    ga = Zelterman("~ gender + age").fit(nl, count="capture")
    assert round(ga.population_size) == 10_213
    assert [round(v) for v in ga.confint("normal")] == [8_416, 12_009]
    none = Zelterman("~ 1").fit(nl, count="capture")
    assert close(none.population_size, 9_424.56, 1e-6)
    assert [round(v) for v in none.confint("normal")] == [8_084, 10_765]


def test_generalised_chao(nl):
    full = Chao(FULL).fit(nl, count="capture")
    assert close(full.population_size, 16_042.20, 1e-6)
    assert close(full.se, 3_151.38, 1e-4)
    none = Chao("~ 1").fit(nl, count="capture")
    assert close(none.population_size, 9_273.51, 1e-6)
    f1, f2 = 1645, 183
    assert none.population_size == pytest.approx(1880 + f1**2 / (2 * f2), rel=1e-10)


def test_geometric_and_one_inflated_forms(nl):
    geom = ZeroTruncatedGeometric(FULL).fit(nl, count="capture")
    assert close(geom.population_size, 24_671.33, 1e-6)
    assert close(geom.se, 5_672.2, 1e-4)
    expected = {
        ("geometric", "oizt"): 7_551.43,
        ("geometric", "ztoi"): 18_111.68,
        ("poisson", "oizt"): 2_934.30,
        ("poisson", "ztoi"): 6_766.69,
    }
    for (base, form), n_hat in expected.items():
        cls = OneInflatedZeroTruncated if form == "oizt" else ZeroTruncatedOneInflated
        r = cls(FULL, base=base, dfpopsize=False).fit(nl, count="capture")
        assert close(r.population_size, n_hat, 1e-6), (base, form, r.population_size)
        assert r.model == f"{form}{'poisson' if base == 'poisson' else 'geom'}"
        assert not r.warnings


def test_one_inflated_parameterisations_fit_identically_but_differ_in_n(nl):
    for base in ("poisson", "geometric"):
        oizt = OneInflatedZeroTruncated("~ 1", base=base).fit(nl, count="capture")
        ztoi = ZeroTruncatedOneInflated("~ 1", base=base).fit(nl, count="capture")
        assert oizt.loglik == pytest.approx(ztoi.loglik, abs=1e-7)
        assert ztoi.population_size > 1.2 * oizt.population_size
        assert (
            "inflate, then truncate" in oizt.description
            and "truncate, then inflate" in ztoi.description
        )


# ------------------------------------------------------------------------------ bars: farms
def test_farmsubmission(farms):
    formula = "~ log_size + log_distance + C_TYPE"
    ztp = ZeroTruncatedPoisson(formula).fit(farms, count="TOTAL_SUB")
    assert close(ztp.population_size, 18_346, 1e-3)
    lo, hi = ztp.confint("normal")
    assert close(lo, 17_932, 1e-3) and close(hi, 18_760, 1e-3)
    chao = Chao(formula).fit(farms, count="TOTAL_SUB")
    assert close(chao.population_size, 21_657, 1e-3)
    lo, hi = chao.confint("normal")
    assert close(lo, 20_883, 1e-3) and close(hi, 22_430, 1e-3)


# ------------------------------------------------------------------------------ input forms
@pytest.mark.parametrize(
    "model", ["ztpoisson", "ztgeom", "oiztpoisson", "ztoigeom", "zelterman", "chao"]
)
def test_aggregated_input_with_weights_matches_individual_rows(nl, model):
    agg = nl.group_by(["gender", "age", "reason", "nation", "capture"]).len("n")
    a = estimate(nl, model, formula=FULL, count="capture", dfpopsize=False)
    b = estimate(agg, model, formula=FULL, count="capture", weights="n", dfpopsize=False)
    assert b.population_size == pytest.approx(a.population_size, rel=1e-8)
    assert b.se == pytest.approx(a.se, rel=1e-8)
    assert b.loglik == pytest.approx(a.loglik, rel=1e-8)
    for sa, sb in zip(a.strata, b.strata, strict=True):
        assert sb["population_size"] == pytest.approx(sa["population_size"], rel=1e-8)


def test_leave_one_out_is_per_pattern_and_the_same_for_aggregated_input(nl):
    agg = nl.group_by(["gender", "age", "capture"]).len("n")
    a = ZeroTruncatedPoisson("~ gender + age").fit(nl, count="capture")
    b = ZeroTruncatedPoisson("~ gender + age").fit(agg, count="capture", weights="n")
    assert len(a.diagnostics["dfpopsize_values"]) == a.diagnostics["n_cells"] == agg.height
    np.testing.assert_allclose(
        sorted(a.diagnostics["dfpopsize_values"]),
        sorted(b.diagnostics["dfpopsize_values"]),
        rtol=1e-7,
    )


def test_frequency_table_path_matches_individual_fit(nl):
    ill = pl.read_csv(DATA / "rcapture_ill.csv")
    freqs = dict(zip(ill["nbcap"].to_list(), ill["freq"].to_list(), strict=True))
    assert freqs == {1: 1645, 2: 183, 3: 37, 4: 13, 5: 1, 6: 1}
    for cls in (ZeroTruncatedPoisson, Chao, Zelterman, ZeroTruncatedGeometric):
        table = cls.fit_frequencies(freqs)
        rows = cls("~ 1").fit(nl, count="capture")
        assert table.population_size == pytest.approx(rows.population_size, rel=1e-10)
        assert table.se == pytest.approx(rows.se, rel=1e-8)
    assert ZeroTruncatedPoisson.fit_frequencies(
        [1645, 183, 37, 13, 1, 1]
    ).population_size == pytest.approx(7_079.93, rel=1e-6)
    assert estimate_from_frequencies(freqs, "zelterman").population_size == pytest.approx(
        9_424.56, rel=1e-6
    )
    oizt = estimate_from_frequencies(freqs, "oiztgeom")
    assert oizt.population_size == pytest.approx(
        OneInflatedZeroTruncated("~ 1", base="geometric").fit(nl, count="capture").population_size,
        rel=1e-8,
    )


def test_reference_level_changes_coefficients_not_the_estimate(nl):
    default = ZeroTruncatedPoisson(FULL).fit(nl, count="capture")
    by_arg = ZeroTruncatedPoisson(FULL, reference={"nation": "North Africa"}).fit(
        nl, count="capture"
    )
    # a reference level inside the formula would need a string and an attribute
    # (contr.treatment('North Africa')): formulas are a closed grammar without either
    with pytest.raises(ConfigError, match="attribute access"):
        ZeroTruncatedPoisson("~ gender + age + reason + C(nation, contr.treatment('North Africa'))")
    by_formula = ZeroTruncatedPoisson(
        "~ gender + age + reason + C(nation)", reference={"nation": "North Africa"}
    ).fit(nl, count="capture")
    for r in (by_arg, by_formula):
        assert r.population_size == pytest.approx(default.population_size, rel=1e-9)
        assert r.se == pytest.approx(default.se, rel=1e-7)
    terms = [c["term"] for c in by_arg.coefficients]
    assert "nation[T.American and Australia]" in terms and "nation[T.North Africa]" not in terms
    with pytest.raises(ConfigError):
        ZeroTruncatedPoisson(FULL, reference={"nation": "Atlantis"}).fit(nl, count="capture")


def test_offset_for_time_at_risk_recovers_the_population():
    rng = np.random.default_rng(7)
    n_true = 40_000
    days = rng.uniform(30, 365, n_true)
    male = rng.integers(0, 2, n_true)
    lam = np.exp(np.log(days / 365) + -1.0 + 0.5 * male)
    y = rng.poisson(lam)
    frame = pl.DataFrame({"y": y, "male": male, "log_days": np.log(days / 365)}).filter(
        pl.col("y") > 0
    )
    with_offset = ZeroTruncatedPoisson("~ male", offset="log_days", dfpopsize=False).fit(
        frame, count="y"
    )
    assert abs(with_offset.population_size - n_true) < 2.5 * with_offset.se
    coefs = {c["term"]: c["estimate"] for c in with_offset.coefficients}
    assert coefs["male"] == pytest.approx(0.5, abs=0.06)
    # a constant offset is absorbed by the intercept
    shifted = frame.with_columns(pl.lit(np.log(2.0)).alias("c"))
    a = ZeroTruncatedPoisson("~ male", dfpopsize=False).fit(shifted, count="y")
    b = ZeroTruncatedPoisson("~ male", offset="c", dfpopsize=False).fit(shifted, count="y")
    assert b.population_size == pytest.approx(a.population_size, rel=1e-9)
    assert b.coefficients[0]["estimate"] == pytest.approx(
        a.coefficients[0]["estimate"] - np.log(2.0), abs=1e-8
    )


def test_zero_counts_are_left_out_and_noted(nl):
    extra = pl.concat([nl, nl.head(5).with_columns(pl.lit(0, dtype=pl.Int64).alias("capture"))])
    r = ZeroTruncatedPoisson("~ 1").fit(extra, count="capture")
    assert r.population_size == pytest.approx(7_079.93, rel=1e-6)
    assert r.diagnostics["rows_with_zero_count_excluded"] == 5


def test_bad_input_names_row_and_column(nl):
    with pytest.raises(InputError) as err:
        ZeroTruncatedPoisson("~ gender").fit(nl, count="n_police")
    assert err.value.column == "n_police"
    broken = nl.with_columns(
        pl.when(pl.int_range(pl.len()) == 9).then(None).otherwise(pl.col("gender")).alias("gender")
    )
    # a null covariate is an unknown value: allocated by default, an error when 'unknown'
    # is to be kept as a level
    allocated = ZeroTruncatedPoisson("~ gender").fit(broken, count="capture")
    assert allocated.extra["missing_covariates"]["unknown"] == 1
    with pytest.raises(InputError) as err:
        ZeroTruncatedPoisson("~ gender", missing="level").fit(broken, count="capture")
    assert (err.value.row, err.value.column) == (10, "gender")
    negative = nl.with_columns(
        pl.when(pl.int_range(pl.len()) == 3).then(-1).otherwise(pl.col("capture")).alias("capture")
    )
    with pytest.raises(InputError) as err:
        ZeroTruncatedPoisson("~ 1").fit(negative, count="capture")
    assert err.value.row == 4
    with pytest.raises(ConfigError):
        ZeroTruncatedPoisson("~ gender +").fit(nl, count="capture")


# ------------------------------------------------------------------------------ variance
def test_observed_and_expected_information(nl):
    obs = ZeroTruncatedPoisson(FULL, information="observed").fit(nl, count="capture")
    exp = ZeroTruncatedPoisson(FULL, information="expected").fit(nl, count="capture")
    assert exp.se == pytest.approx(obs.se, rel=1e-8)  # canonical link: they coincide
    g_obs = ZeroTruncatedGeometric(FULL, information="observed").fit(nl, count="capture")
    g_exp = ZeroTruncatedGeometric(FULL, information="expected").fit(nl, count="capture")
    assert g_exp.population_size == g_obs.population_size
    assert g_exp.se != pytest.approx(g_obs.se, rel=1e-3)
    assert g_exp.variance_components["information"] == "expected"


def test_variance_components_and_lognormal_interval(nl):
    r = ZeroTruncatedPoisson(FULL).fit(nl, count="capture")
    v = r.variance_components
    assert v["sampling"] + v["estimation"] == pytest.approx(r.se**2, rel=1e-12)
    lo, hi = r.confint("lognormal")
    assert r.n_observed < lo < r.population_size < hi


def test_strata_add_up_to_the_total(nl):
    r = ZeroTruncatedPoisson(FULL).fit(nl, count="capture")
    for var in ("gender", "age", "reason", "nation"):
        rows = [s for s in r.strata if s["variable"] == var]
        assert sum(s["population_size"] for s in rows) == pytest.approx(
            r.population_size, rel=1e-10
        )
        assert sum(s["observed"] for s in rows) == 1880
    assert {s["level"] for s in r.strata if s["variable"] == "nation"} == {
        "American and Australia",
        "Asia",
        "North Africa",
        "Rest of Africa",
        "Surinam",
        "Turkey",
    }


# ------------------------------------------------------------------------------ diagnostics
def test_fitted_frequencies_and_goodness_of_fit(nl):
    r = ZeroTruncatedPoisson("~ 1").fit(nl, count="capture")
    obs = [row["observed"] for row in r.fitted_frequencies if isinstance(row["k"], int)]
    assert obs == [1645, 183, 37, 13, 1, 1]
    assert sum(row["fitted"] for row in r.fitted_frequencies) == pytest.approx(1880, rel=1e-9)
    gof = r.diagnostics["goodness_of_fit"]
    assert all(g["fitted"] >= 5 for g in gof["groups"])
    assert gof["chi2"] > 20 and gof["p_value"] < 1e-3  # the Poisson misses the heterogeneity
    assert r.aic == pytest.approx(-2 * r.loglik + 2, rel=1e-12)
    assert r.bic == pytest.approx(-2 * r.loglik + np.log(1880), rel=1e-12)
    assert r.deviance > 0


def test_dfpopsize_exact_refit_matches_leaving_the_person_out(nl):
    r = ZeroTruncatedPoisson("~ gender + age").fit(nl, count="capture")
    top = r.diagnostics["dfpopsize_top"][0]
    idx = nl.with_row_index().filter(
        (pl.col("gender") == top["gender"])
        & (pl.col("age") == top["age"])
        & (pl.col("capture") == top["count"])
    )["index"][0]
    without = nl.filter(pl.int_range(pl.len()) != idx)
    refit = ZeroTruncatedPoisson("~ gender + age", dfpopsize=False).fit(without, count="capture")
    assert top["dfpopsize"] == pytest.approx(r.population_size - refit.population_size, rel=1e-6)
    assert r.diagnostics["dfpopsize_method"] == "exact refit"


# ------------------------------------------------------------------------------ honest failure
def test_negative_binomial_boundary_is_reported_not_hidden(nl):
    r = ZeroTruncatedNegativeBinomial(FULL, dfpopsize=False).fit(nl, count="capture")
    text = " ".join(r.warnings)
    assert "runs to +∞" in text and "absurd" in text
    assert "WARNING" in r.summary()


def test_level_without_repeated_captures_is_reported(nl):
    # Surinam has exactly one person seen more than once; drop that person
    data = nl.filter(~((pl.col("nation") == "Surinam") & (pl.col("capture") > 1)))
    r = ZeroTruncatedPoisson("~ nation", dfpopsize=False).fit(data, count="capture")
    assert any("Surinam" in w and "repeated captures" in w for w in r.warnings)
    z = Zelterman("~ nation", dfpopsize=False).fit(data, count="capture")
    assert any("Surinam" in w for w in z.warnings)


def test_firth_penalised_fit_stays_finite_where_ml_diverges(nl):
    data = nl.filter(~((pl.col("nation") == "Surinam") & (pl.col("capture") > 1)))
    ml = ZeroTruncatedPoisson("~ nation", dfpopsize=False).fit(data, count="capture")
    firth = ZeroTruncatedPoisson("~ nation", dfpopsize=False, penalty="firth").fit(
        data, count="capture"
    )
    assert ml.population_size > 50 * ml.n_observed
    assert firth.population_size < 20 * firth.n_observed and np.isfinite(firth.se)
    assert any("firth-penalised" in w for w in firth.warnings)
    # where ML is well determined, Firth moves the estimate by less than its standard error
    a = ZeroTruncatedPoisson("~ gender + age", dfpopsize=False).fit(nl, count="capture")
    b = ZeroTruncatedPoisson("~ gender + age", dfpopsize=False, penalty="firth").fit(
        nl, count="capture"
    )
    assert abs(a.population_size - b.population_size) < a.se


def test_no_repeated_captures_at_all_is_reported():
    data = pl.DataFrame({"y": [1] * 50})
    for model in ("ztpoisson", "chao", "ztgeom"):
        r = estimate(data, model, count="y")
        assert any("no information on how many were never seen" in w for w in r.warnings)
        assert any("absurd" in w for w in r.warnings)


def test_single_influential_person_is_reported(nl):
    r = ZeroTruncatedPoisson(FULL).fit(nl, count="capture")
    assert any("hinges on single persons" in w and "Surinam" in w for w in r.warnings)


# ------------------------------------------------------------------------------ bootstrap
def test_robust_percentile_bootstrap_is_finite_on_the_1995_data(nl):
    r = ZeroTruncatedPoisson(FULL, dfpopsize=False).fit(
        nl,
        count="capture",
        variance="bootstrap",
        bootstrap_type="parametric",
        replicates=400,
        seed=11,
    )
    lo, hi = r.confint()
    assert r.default_interval == "bootstrap"
    assert 5_000 < lo < r.population_size < hi < 40_000
    info = r.bootstrap_info
    assert (
        0.2 < info["share_flagged"] < 0.6
    )  # Surinam loses its only repeat in about e⁻¹ of replicates
    assert info["n_failed"] == 0
    assert r.variance_components["analytic_se"] == pytest.approx(2_809.51, rel=1e-4)
    # without stabilisation the same replicates explode (singleRcapture's 3.7e10 upper bound)
    raw = ZeroTruncatedPoisson(FULL, dfpopsize=False).fit(
        nl, count="capture", variance="bootstrap", replicates=400, seed=11, bootstrap_penalty=None
    )
    assert raw.confint()[1] > 1e6


@pytest.mark.parametrize("kind", ["semiparametric", "nonparametric"])
def test_resampling_bootstraps_are_seeded_and_worker_independent(nl, kind):
    model = Chao("~ gender + age", dfpopsize=False)
    a = model.fit(
        nl, count="capture", variance="bootstrap", bootstrap_type=kind, replicates=60, seed=5
    )
    b = model.fit(
        nl,
        count="capture",
        variance="bootstrap",
        bootstrap_type=kind,
        replicates=60,
        seed=5,
        workers=2,
    )
    np.testing.assert_array_equal(a.bootstrap_replicates, b.bootstrap_replicates)
    assert np.isfinite(a.se) and a.se > 0
    c = model.fit(
        nl, count="capture", variance="bootstrap", bootstrap_type=kind, replicates=60, seed=6
    )
    assert not np.array_equal(a.bootstrap_replicates, c.bootstrap_replicates)


def test_parametric_bootstrap_sd_is_close_to_the_analytic_se_in_a_regular_model(nl):
    r = ZeroTruncatedPoisson("~ 1").fit(
        nl, count="capture", variance="bootstrap", replicates=400, seed=2
    )
    assert r.bootstrap_info["share_flagged"] == 0
    assert r.se == pytest.approx(r.variance_components["analytic_se"], rel=0.15)
    lo, hi = r.confint("bootstrap")
    assert lo < r.population_size < hi


# ------------------------------------------------------------------------------ registry and CLI
def test_registry_names_every_single_source_model():
    for name in [
        "ztpoisson",
        "ztgeom",
        "ztnegbin",
        "oiztpoisson",
        "ztoipoisson",
        "oiztgeom",
        "ztoigeom",
        "zelterman",
        "chao",
    ]:
        assert MODELS[name].kind == "single-source"
    with pytest.raises(ConfigError):
        estimate(pl.DataFrame({"y": [1]}), "nonsense")
    with pytest.raises(ConfigError):
        estimate(pl.DataFrame({"y": [1, 2]}), "ztpoisson", count="y", lists=["a", "b"])


def test_cli_estimate_writes_json_and_prints_warnings(tmp_path, capsys):
    out = tmp_path / "estimates.json"
    code = main(
        [
            "--quiet",
            "estimate",
            str(DATA / "netherlandsimmigrant.csv"),
            "--model",
            "ztpoisson",
            "--formula",
            FULL,
            "--count-col",
            "capture",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "12,691.45" in printed and "WARNING" in printed and "nation=Surinam" in printed
    payload = json.loads(out.read_text())
    assert payload["population_size"] == pytest.approx(12_691.45, rel=1e-6)
    assert payload["intervals"]["normal"]["lower"] == pytest.approx(7_184.8, rel=1e-4)
    code = main(
        [
            "estimate",
            str(DATA / "netherlandsimmigrant.csv"),
            "--model",
            "chao",
            "--count-col",
            "nope",
        ]
    )
    assert code == 2
    assert "nope" in capsys.readouterr().err


# ------------------------------------------------------------------------------ simulated truth
@pytest.mark.parametrize(
    ("column", "model", "options"),
    [
        ("ztpoisson2", "ztpoisson", {}),
        ("ztgeom2", "ztgeom", {}),
        ("ztnegbin4", "ztnegbin", {"alpha_formula": "~ x1 + x2 + x3"}),
    ],
)
def test_singlercapture_simulations_recover_the_true_size(column, model, options):
    data = pl.read_csv(DATA / "synthetic_singlercapture_test_zerotruncated.csv")
    r = estimate(data, model, formula="~ x1 + x2 + x3", count=column, dfpopsize=False, **options)
    assert r.diagnostics["rows_with_zero_count_excluded"] == 1000 - r.n_observed
    assert abs(r.population_size - 1000) < 2.5 * r.se
    assert not r.warnings


@pytest.mark.parametrize("model", ["ztoipoisson", "oiztpoisson", "ztoigeom", "oiztgeom"])
def test_singlercapture_one_inflated_simulations_recover_the_true_size(model):
    data = pl.read_csv(DATA / "synthetic_singlercapture_test_inflated.csv").with_columns(
        pl.Series("x1", np.repeat([0, 1, 2, 3], [99, 228, 137, 36]))
    )
    r = estimate(
        data, model, formula="~ x1", omega_formula="~ x1", count=f"{model}1", dfpopsize=False
    )
    assert abs(r.population_size - 500) < 2.5 * r.se
    assert [c["predictor"] for c in r.coefficients] == ["lambda", "lambda", "omega", "omega"]


# ------------------------------------------------------------------------------ derivatives
def test_analytic_derivatives_match_complex_step_differentiation():
    from recapture.estimators.count import families

    rng = np.random.default_rng(0)
    for cls in (
        families.ZTPoisson,
        families.ZTGeometric,
        families.ZTNegBin,
        families.OIZTPoisson,
        families.ZTOIPoisson,
        families.OIZTGeometric,
        families.ZTOIGeometric,
    ):
        fam = cls()
        k = len(fam.predictors)
        y = rng.integers(1, 8, 300).astype(float)
        eta = np.column_stack([rng.normal(-0.5, 1, 300), rng.normal(-0.5, 1.2, 300)])[:, :k]
        analytic = fam.evaluate(y, eta)
        numeric = families.CountFamily.evaluate(fam, y, eta)  # complex step + central differences
        for got, ref, tol in zip(analytic, numeric, (1e-12, 1e-10, 1e-6), strict=True):
            np.testing.assert_allclose(got, ref, rtol=tol, atol=tol, err_msg=cls.__name__)


def test_bias_reduced_interval_takes_its_se_at_the_firth_coefficients(nl):
    """Centre and SE of the default interval both at the Firth fit: the delta-method SE
    there (unpenalised information), not the ML SE evaluated at the inflated N̂."""
    model = ZeroTruncatedPoisson("~ gender + age + reason")
    r = model.fit(nl, count="capture")
    assert r.default_interval == "bias_reduced"
    prob, _ = prepare(
        nl,
        family=model.family,
        formula=model.formula,
        count="capture",
        weights=None,
        offset=None,
        reference=None,
    )
    firth = fit_ml(prob, prob.w, penalty="firth")
    n_red, grad, var_sampling = population_estimate(prob, firth.beta)
    se = np.sqrt(var_sampling + grad @ np.linalg.inv(-firth.hessian) @ grad)
    assert r.extra["population_size_bias_reduced"] == pytest.approx(n_red, rel=1e-6)
    assert r.extra["se_bias_reduced"] == pytest.approx(se, rel=1e-6)
    assert r.extra["se_bias_reduced"] < r.se  # N̂ and its SE grow together
    n, hidden = r.n_observed, n_red - r.n_observed
    c = np.exp(1.959964 * np.sqrt(np.log1p(se**2 / hidden**2)))
    lo, hi = r.confint()
    assert lo == pytest.approx(n + hidden / c, rel=1e-6)
    assert hi == pytest.approx(n + hidden * c, rel=1e-6)
