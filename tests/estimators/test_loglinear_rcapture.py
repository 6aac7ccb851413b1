"""Closed-population models against Rcapture 1.4-4 (closedp.t, closedp.0, closedpCI).

Reference values are Rcapture's printed results: the package's own example output
(tests/Examples/Rcapture-Ex.Rout.save) for the Seber (1982, p. 107) two-list data, the
``ill`` data and the HIV interaction model, and the values quoted in issue 6 for HIV.
Point estimates to relative 1e-6, standard errors and interval ends to 1e-4.
"""

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from recapture.estimators.closed_population import (
    ClosedPopulationModel,
    capture_frequency_models,
    closed_population_models,
)
from recapture.estimators.loglinear import LogLinearModel

DATA = Path(__file__).parents[1] / "data"
HIV_LISTS = ["c1", "c2", "c3", "c4"]

# Seber (1982, p. 107), as in Rcapture's closedp example: 167 on both lists, 781 on the first
# only, 254 on the second only.
SEBER = pl.DataFrame({"first": [1, 1, 0], "second": [1, 0, 1], "freq": [167, 781, 254]})


def rel(a, b):
    return abs(a - b) / abs(b)


def shown(value, printed, decimals):
    """``value`` agrees with a number R printed to ``decimals`` (and to relative 1e-4)."""
    return abs(value - printed) <= 0.5 * 10**-decimals + 1e-4 * abs(printed)


@pytest.fixture(scope="module")
def hiv():
    return pl.read_csv(DATA / "rcapture_HIV.csv")


@pytest.fixture(scope="module")
def hiv_models(hiv):
    return {r.model: r for r in closed_population_models(hiv, lists=HIV_LISTS, count="freq")}


def test_hiv_closedp_t_point_estimates_and_se(hiv_models):
    expected = {
        "M0": (11576.70, 946.07),
        "Mt": (11124.58, 904.75),
        "Mh Chao (LB)": (12145.15, None),
        "Mh Poisson2": (15070.97, None),
        "Mh Darroch": (20984.63, None),
    }
    for name, (N, se) in expected.items():
        r = hiv_models[name]
        assert r.n_observed == 1896
        assert rel(r.population_size, N) < 1e-6, (name, r.population_size)
        if se is not None:
            assert rel(r.se, se) < 1e-4, (name, r.se)


def test_hiv_closedp_t_fit_statistics(hiv_models):
    # df as Rcapture: 15 cells minus parameters; Mh Chao drops the negative eta4 (Chao.neg)
    df = {
        "M0": 13,
        "Mt": 10,
        "Mh Chao (LB)": 12,
        "Mh Poisson2": 12,
        "Mh Darroch": 12,
        "Mh Gamma3.5": 12,
        "Mth Chao (LB)": 9,
        "Mth Poisson2": 9,
        "Mth Darroch": 9,
        "Mth Gamma3.5": 9,
        "Mb": 12,
        "Mbh": 11,
    }
    assert {m: r.df_residual for m, r in hiv_models.items()} == df
    assert hiv_models["Mh Chao (LB)"].diagnostics["dropped_eta"] == ["eta4"]
    # R's glm AIC = deviance + 2·rank + a constant of the data (−2 Σ log dpois(y; y))
    consts = [r.aic - r.deviance - 2 * (15 - r.df_residual) for r in hiv_models.values()]
    assert np.ptp(consts) < 1e-8
    assert hiv_models["Mt"].deviance < hiv_models["M0"].deviance


def test_hiv_interaction_model_matches_closedpci(hiv):
    # Rcapture example: closedpCI.t(HIV, mX = ~ . + c1:c2): 12318.5 (1188.7), dev 7.614, df 9,
    # AIC 86.65; multinomial profile: 12308, CI 10266 – 14992.3
    r = LogLinearModel("c1:c2").fit(hiv, lists=HIV_LISTS, count="freq")
    assert round(r.population_size, 1) == 12318.5
    assert round(r.se, 1) == 1188.7
    assert round(r.deviance, 3) == 7.614 and r.df_residual == 9
    assert round(r.aic, 2) == 86.65
    lo, hi = r.confint("profile")
    assert round(lo) == 10266 and round(hi, 1) == 14992.3
    assert round(r.extra["profile"]["0.95"]["population_size_multinomial"]) == 12308


def test_seber_two_lists_mt_profile_interval():
    r = ClosedPopulationModel("Mt").fit(SEBER, lists=["first", "second"], count="freq")
    assert rel(r.population_size, 2389.87) < 1e-6
    assert rel(r.se, 130.38) < 1e-4
    lo, hi = r.confint("profile")
    assert rel(lo, 2156.0) < 1e-4 and rel(hi, 2670.3) < 1e-4
    assert r.default_interval == "profile"


def test_seber_closedp_t_table():
    # Rout.save: M0 2805.6 (164.1) dev 281.334 df 1 AIC 308.166; Mt 2389.9 (130.4) 0 0 28.831;
    # Mb 1295.0 (17.3) 0 0 28.831
    res = {
        r.model: r for r in closed_population_models(SEBER, lists=["first", "second"], count="freq")
    }
    assert list(res) == ["M0", "Mt", "Mb"]
    for name, (N, se, dev, df, aic) in {
        "M0": (2805.6, 164.1, 281.334, 1, 308.166),
        "Mt": (2389.9, 130.4, 0.0, 0, 28.831),
        "Mb": (1295.0, 17.3, 0.0, 0, 28.831),
    }.items():
        r = res[name]
        assert round(r.population_size, 1) == N and round(r.se, 1) == se
        assert round(r.deviance, 3) == dev and r.df_residual == df and round(r.aic, 3) == aic


def test_ill_capture_frequencies_closedp_0():
    ill = pl.read_csv(DATA / "rcapture_ill.csv")
    res = {r.model: r for r in capture_frequency_models(ill, nbcap="nbcap", freq="freq")}
    assert rel(res["M0"].population_size, 7079.90) < 1e-6
    assert rel(res["Mh Chao (LB)"].population_size, 9273.51) < 1e-6
    assert rel(res["Mh Darroch"].population_size, 15562.10) < 1e-6
    # the rest of Rcapture's printed table (Rout.save)
    table = {
        "M0": (7079.9, 365.8, 61.811, 4, 95.971),
        "Mh Chao (LB)": (9273.5, 662.6, 1.534, 1, 41.695),
        "Mh Poisson2": (8617.6, 537.3, 26.341, 3, 62.502),
        "Mh Darroch": (15562.1, 1808.5, 7.277, 3, 43.438),
        "Mh Gamma3.5": (29058.3, 5496.8, 3.661, 3, 39.822),
    }
    for name, (N, se, dev, df, aic) in table.items():
        r = res[name]
        assert round(r.population_size, 1) == N and shown(r.se, se, 1)
        assert round(r.deviance, 3) == dev and r.df_residual == df and round(r.aic, 3) == aic
    # M0 here is the zero-truncated Poisson: N̂ = n / (1 − e^{−λ̂})
    assert rel(res["Mh Chao (LB)"].population_size, 1880 + 1645**2 / (2 * 183)) < 1e-9


def test_ill_profile_interval_closedpci_0():
    # closedpCI.0(ill, t = Inf, m = "Mh", h = "LB"): 9267.5, CI 8088.2 – 10704
    ill = pl.read_csv(DATA / "rcapture_ill.csv")
    (r,) = capture_frequency_models(ill, models=["Mh Chao (LB)"], profile=True)
    lo, hi = r.confint("profile")
    assert round(lo, 1) == 8088.2 and round(hi) == 10704
    assert round(r.extra["profile"]["0.95"]["population_size_multinomial"], 1) == 9267.5


def test_frequencies_from_persons_equal_frequency_table():
    ill = pl.read_csv(DATA / "rcapture_ill.csv")
    persons = pl.DataFrame({"times": np.repeat(ill["nbcap"].to_numpy(), ill["freq"].to_numpy())})
    a = capture_frequency_models(ill)
    b = capture_frequency_models(persons, nbcap="times", freq=None)
    for x, y in zip(a, b, strict=True):
        assert x.population_size == pytest.approx(y.population_size, rel=1e-12)


def test_cormack_three_lists_rcapture_paper_results():
    # Rcapture's tests (Cormack, Chang & Smith 2000, Table 3b): Mt 209, dev 75.1, df 3,
    # profile CI 203 – 217; with c2:c3 dev 1.2, df 2, lower 210
    hist = np.array([[1, 1, 1], [1, 1, 0], [1, 0, 1], [1, 0, 0], [0, 1, 1], [0, 1, 0], [0, 0, 1]])
    df = pl.DataFrame(
        {"c1": hist[:, 0], "c2": hist[:, 1], "c3": hist[:, 2], "n": [72, 5, 29, 54, 24, 3, 14]}
    )
    mt = ClosedPopulationModel("Mt").fit(df, lists=["c1", "c2", "c3"], count="n")
    assert (
        round(mt.population_size) == 209 and round(mt.deviance, 1) == 75.1 and mt.df_residual == 3
    )
    lo, hi = mt.confint("profile")
    assert round(lo) == 203 and round(hi) == 217
    b2 = LogLinearModel("c2:c3").fit(df, lists=["c1", "c2", "c3"], count="n")
    assert (
        round(b2.deviance, 1) == 1.2
        and b2.df_residual == 2
        and round(b2.confint("profile")[0]) == 210
    )


def _table(counts, t):
    from recapture.estimators.loglinear import all_histories

    H = all_histories(t)
    return pl.DataFrame({f"c{i + 1}": H[:, i] for i in range(t)}).with_columns(n=pl.Series(counts))


def test_interactions_with_heterogeneity_rivest_2011_diabetes():
    # Rcapture's tests reproducing Rivest (2011) on the diabetes data of Bruno et al. (1994):
    # mX = ~ . + c1:c3 + c2:c4 + c3:c4 with h = none / LB / Poisson / Darroch / Gamma
    d = _table([58, 157, 18, 104, 46, 650, 12, 709, 14, 20, 7, 74, 8, 182, 10], 4)
    L = ["c1", "c2", "c3", "c4"]
    expected = {  # N (rounded), SE (rounded), deviance (2 decimals), df
        None: (2472, 53, 21.97, 7),
        "Chao (LB)": (2588, 75, 3.13, 6),
        "Poisson2": (2573, 76, 12.88, 6),
        "Darroch": (2752, 133, 8.32, 6),
        "Gamma3.5": (2964, 219, 6.74, 6),
        "Gamma0.5": (4238, 952, 5.49, 6),
    }
    for het, (N, se, dev, df) in expected.items():
        r = LogLinearModel("c1:c3 + c2:c4 + c3:c4", heterogeneity=het).fit(d, lists=L, count="n")
        assert (round(r.population_size), round(r.se), round(r.deviance, 2), r.df_residual) == (
            N,
            se,
            dev,
            df,
        ), het
    bruno = LogLinearModel(["c1:c2", "c1:c3", "c2:c3", "c2:c4", "c3:c4"]).fit(d, lists=L, count="n")
    assert (
        round(bruno.population_size),
        round(bruno.se),
        round(bruno.deviance, 2),
        bruno.df_residual,
    ) == (2771, 145, 7.62, 5)


def test_interactions_with_heterogeneity_darroch_r3():
    # Rivest (2011) on the R3 data of Darroch et al. (1993), as in Rcapture's tests
    d = _table([72, 155, 7, 71, 13, 53, 43], 3)
    L = ["c1", "c2", "c3"]
    sat = LogLinearModel("(c1+c2+c3)^2").fit(d, lists=L, count="n")
    assert (round(sat.population_size), round(sat.se)) == (1240, 451)
    inter2 = LogLinearModel("c1:c2 + c2:c3").fit(d, lists=L, count="n")
    assert (
        round(inter2.population_size),
        round(inter2.se),
        round(inter2.deviance, 1),
        inter2.df_residual,
    ) == (850, 186, 3.8, 1)
    lb = LogLinearModel("c1:c2", heterogeneity="Chao").fit(d, lists=L, count="n")
    assert (round(lb.population_size), round(lb.se), round(lb.deviance, 2), lb.df_residual) == (
        681,
        78,
        3.45,
        1,
    )
    dar = LogLinearModel("c1:c2", heterogeneity="Darroch").fit(d, lists=L, count="n")
    assert (round(dar.population_size, 1), round(dar.se, 1)) == (1181.8, 404.2)
