"""Profile-likelihood interval of the covariate log-linear model: the hidden count is one sum
over the strata, so the likelihood in the coefficients is not concave and the profile must
follow the branch of maxima through the MLE."""

import math

import numpy as np
import polars as pl
import pytest

from recapture.estimators.loglinear import LogLinearModel, profile_interval
from recapture.estimators.loglinear.fit import newton_step

COVARIATES = ["sex", "age_class", "region"]
MODEL = " + ".join(f"{lst}*{c}" for lst in ("in_police", "in_iom") for c in COVARIATES)

# a simulated police × IOM table (N = 5,000): per sex, age class and region the persons only in
# IOM, only in police, in both
ROWS = """\
F 40+ Asia 11 1 3
F 40+ EasternEurope 28 3 4
F 40+ LatinAmerica 9 0 0
F 40+ MiddleEast 10 2 3
F 40+ NorthAfrica 14 9 12
F 40+ Other 0 3 2
F 40+ SubSaharanAfrica 10 3 4
F <40 Asia 50 21 20
F <40 EasternEurope 24 52 34
F <40 LatinAmerica 14 14 6
F <40 MiddleEast 14 27 14
F <40 NorthAfrica 15 186 19
F <40 Other 3 12 5
F <40 SubSaharanAfrica 19 33 11
M 40+ Asia 32 11 9
M 40+ EasternEurope 32 19 20
M 40+ LatinAmerica 20 6 7
M 40+ MiddleEast 23 26 10
M 40+ NorthAfrica 34 111 23
M 40+ Other 4 5 4
M 40+ SubSaharanAfrica 21 19 8
M <40 Asia 80 129 52
M <40 EasternEurope 52 272 88
M <40 LatinAmerica 27 63 19
M <40 MiddleEast 25 181 49
M <40 NorthAfrica 15 749 99
M <40 Other 3 47 9
M <40 SubSaharanAfrica 34 188 38
"""


def _table() -> pl.DataFrame:
    rows = []
    for line in ROWS.splitlines():
        sex, age, region, iom_only, police_only, both = line.split()
        for (p, i), n in (((0, 1), iom_only), ((1, 0), police_only), ((1, 1), both)):
            if int(n):
                rows.append(
                    {
                        "in_police": p,
                        "in_iom": i,
                        "sex": sex,
                        "age_class": age,
                        "region": region,
                        "n": int(n),
                    }
                )
    return pl.DataFrame(rows)


def test_covariate_profile_interval_follows_the_mle():
    # The profile search used to start at a hidden count three times the MLE's, where the
    # fit crept for its 200 scoring steps and stopped short; the maximum was then looked for
    # only beyond it, and the interval came out as (n, ∞).
    r = LogLinearModel(MODEL, covariates=COVARIATES).fit(
        _table(), lists=["in_police", "in_iom"], count="n"
    )
    # with covariate strata the default is the bias-reduced interval; the profile stays
    assert r.default_interval == "bias_reduced" and "profile" in r.available_intervals()
    lo, hi = r.confint("profile")
    assert math.isfinite(lo) and math.isfinite(hi)
    assert lo < r.population_size < hi
    lo_ln, hi_ln = r.confint("lognormal")
    width = hi_ln - lo_ln
    assert abs(lo - lo_ln) < 0.05 * width and abs(hi - hi_ln) < 0.05 * width
    assert abs(r.extra["profile"]["0.95"]["population_size_multinomial"] - r.population_size) < 5


def test_profile_interval_of_a_known_curve():
    # deviance quadratic in N around 1,000: the limits are where the profile log-likelihood
    # (Cormack's correction included) drops by χ²(0.95)/2 from its maximum
    n, n_hat = 600.0, 1000.0

    def deviance(n0):
        return ((n + n0 - n_hat) / 60.0) ** 2

    Nmax, lo, hi = profile_interval(deviance, n, n_hat)
    assert abs(Nmax - n_hat) < 5
    from recapture.estimators.loglinear import cormack_profile_loglik

    grid = np.linspace(n + 1, 3 * n_hat, 200_001)
    ll = np.array([cormack_profile_loglik(deviance(N - n), N - n, N) for N in grid])
    inside = grid[ll >= ll.max() - 3.841458820694124 / 2]
    assert lo == pytest.approx(inside.min(), abs=0.05) and hi == pytest.approx(
        inside.max(), abs=0.05
    )


def test_newton_step_ascends_where_the_information_is_indefinite():
    hess = np.array([[2.0, 0.0], [0.0, -1.0]])
    grad = np.array([1.0, 1.0])
    step = newton_step(hess, np.eye(2), grad)
    assert grad @ step > 0
    assert step == pytest.approx([0.5, 1.0])


def test_bias_reduced_interval_takes_its_se_at_the_firth_coefficients():
    """Two lists in strata with list × stratum terms: each stratum is its own Petersen
    table: leverage 1 in every observed cell, so the one-step Firth fit is log μ̃ = log n +
    1/(2n) (≈ n + ½), and the reduced hidden count μ̃₁₀μ̃₀₁/μ̃₁₁ and its variance
    Σ μ̃₀ (1 + μ̃₀ (1/μ̃₁₀ + 1/μ̃₀₁ + 1/μ̃₁₁)), the information taken at μ̃, are known in
    closed form; the default interval is log-normal around them."""
    counts = {"a": (40, 25, 9), "b": (31, 60, 14), "c": (12, 7, 3)}  # n10, n01, n11
    rows = [
        {"in_police": p, "in_iom": i, "group": g, "n": n}
        for g, (n10, n01, n11) in counts.items()
        for (p, i), n in (((1, 0), n10), ((0, 1), n01), ((1, 1), n11))
    ]
    r = LogLinearModel("in_police*group + in_iom*group", covariates=["group"]).fit(
        pl.DataFrame(rows), lists=["in_police", "in_iom"], count="n"
    )
    assert r.default_interval == "bias_reduced"
    n = np.array(list(counts.values()), dtype=float)
    mu = n * np.exp(0.5 / n)
    mu0 = mu[:, 0] * mu[:, 1] / mu[:, 2]
    var = float(np.sum(mu0 + mu0**2 * (1 / mu).sum(axis=1)))
    n_obs = sum(sum(c) for c in counts.values())
    assert r.extra["population_size_bias_reduced"] == pytest.approx(n_obs + mu0.sum(), rel=1e-9)
    assert r.extra["se_bias_reduced"] == pytest.approx(math.sqrt(var), rel=1e-9)
    assert r.extra["se_bias_reduced"] < r.se  # the ML SE is taken at the larger ML N̂
    c = math.exp(1.959964 * math.sqrt(math.log1p(var / mu0.sum() ** 2)))
    lo, hi = r.confint()
    assert lo == pytest.approx(n_obs + mu0.sum() / c, rel=1e-6)
    assert hi == pytest.approx(n_obs + mu0.sum() * c, rel=1e-6)
