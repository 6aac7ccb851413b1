"""Unknown covariates fitted by maximum likelihood (EM), missing at random given the
capture history: checked against the complete-data fit, against a direct numerical
maximisation of the observed-data likelihood, and with partly known covariates."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from scipy import optimize
from scipy.special import gammaln

from recapture.errors import ConfigError
from recapture.estimators import ZeroTruncatedGeometric, ZeroTruncatedPoisson
from recapture.estimators.missing import fit_count_em, fit_loglinear_em
from recapture.pipelines.run import ConfiguredEstimator, _fit_one

SEX = np.array(["f", "m"])
REGION = np.array(["a", "b", "c"])


def _world(seed: int, N: int, rate: float) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Persons with sex and region, Poisson counts; each registration records sex with
    probability 1 − rate/2 and the region with 1 − rate: unknown when all lack it."""
    rng = np.random.default_rng(seed)
    sex = rng.integers(0, 2, N)
    region = rng.choice(3, N, p=[0.5, 0.3, 0.2])
    lam = np.exp(-0.6 + 0.5 * sex - 0.6 * (region == 1) + 0.4 * (region == 2))
    y = rng.poisson(lam)
    sex_unknown = rng.random(N) < (rate / 2) ** y
    region_unknown = rng.random(N) < rate**y
    full = pl.DataFrame({"sex": SEX[sex], "region": REGION[region], "y": y})
    masked = full.with_columns(
        pl.when(pl.Series(sex_unknown)).then(pl.lit("unknown")).otherwise("sex").alias("sex"),
        pl.when(pl.Series(region_unknown)).then(None).otherwise("region").alias("region"),
    )
    return full, masked


def test_without_unknowns_em_is_the_complete_data_fit():
    full, _ = _world(1, 3000, 0.0)
    model = ZeroTruncatedPoisson("~ sex + region")
    plain = model.fit(full, count="y")
    em = fit_count_em(model, full, count="y")
    assert em.population_size == plain.population_size
    assert em.se == plain.se
    rule = _fit_one(full, "ztpoisson", {"formula": "~ sex + region", "count": "y"}, "em")
    assert rule.population_size == plain.population_size
    assert "missing_covariates" not in rule.extra


def _observed_loglik(theta, X, logits, cells_c, groups):
    """Observed-data log-likelihood of the ZTP with p(x | seen) = softmax(logits(shares)),
    written out directly: complete persons log p(x) + log f(y|x), unknown ones
    log Σ_x~ p(x) f(y|x)."""
    q = X.shape[1]
    beta, a = theta[:q], logits(theta[q:])
    logp = a - np.logaddexp.reduce(a)
    lam = np.exp(X @ beta)

    def logf(k, y):
        return y * np.log(lam[k]) - lam[k] - gammaln(y + 1) - np.log(-np.expm1(-lam[k]))

    ll = sum(w * (logp[k] + logf(k, y)) for k, y, w in cells_c)
    for cand, y, w in groups:
        ll += w * np.logaddexp.reduce([logp[k] + logf(k, y) for k in cand])
    return ll


def _check_against_direct_maximisation(em, masked, logits, n_shares):
    """β̂, N̂ = n Σ p(x)/P(x) and the delta-method SE from the numerical observed
    information of the likelihood written out by hand, on the 6 sex × region patterns."""
    pats = [(s, r) for s in SEX for r in REGION]
    X = np.array([[1.0, s == "m", r == "b", r == "c"] for s, r in pats])
    seen = masked.filter(pl.col("y") > 0)
    cells_c, groups = [], []
    for (s, r, y), sub in seen.group_by(["sex", "region", "y"]):
        cand = [
            k
            for k, (ps, pr) in enumerate(pats)
            if (s == "unknown" or s == ps) and (r is None or r == pr)
        ]
        if len(cand) == 1:
            cells_c.append((cand[0], y, sub.height))
        else:
            groups.append((cand, y, sub.height))

    def f(t):
        return _observed_loglik(t, X, logits, cells_c, groups)

    opt = optimize.minimize(
        lambda t: -f(t),
        np.zeros(4 + n_shares),
        method="BFGS",
        options={"gtol": 1e-7, "maxiter": 2000},
    )
    # the optimiser stops within numerical precision of the optimum (status 2 at worst)
    assert opt.status in (0, 2) and np.max(np.abs(opt.jac)) < 1e-2
    beta = opt.x[:4]
    est = {c["term"]: c["estimate"] for c in em.coefficients}
    got = np.array([est["Intercept"], est["sex[T.m]"], est["region[T.b]"], est["region[T.c]"]])
    np.testing.assert_allclose(got, beta, atol=2e-4)

    # N̂ = n Σ p(x)/P(x) at the optimum, and its delta-method variance from the numerical
    # observed information: Var = N̂(N̂/n − 1) + ∇N̂ᵀ I⁻¹ ∇N̂
    n = seen.height

    def n_hat(t):
        a = logits(t[4:])
        p = np.exp(a - np.logaddexp.reduce(a))
        return n * np.sum(p / -np.expm1(-np.exp(X @ t[:4])))

    N = n_hat(opt.x)
    assert em.population_size == pytest.approx(N, rel=1e-5)
    h = 1e-4
    d = len(opt.x)
    H = np.zeros((d, d))
    grad = np.zeros(d)
    for i in range(d):
        ei = np.eye(d)[i] * h
        grad[i] = (n_hat(opt.x + ei) - n_hat(opt.x - ei)) / (2 * h)
        for j in range(i, d):
            ej = np.eye(d)[j] * h
            H[i, j] = H[j, i] = (
                f(opt.x + ei + ej) - f(opt.x + ei - ej) - f(opt.x - ei + ej) + f(opt.x - ei - ej)
            ) / (4 * h * h)
    var = N * (N / n - 1) + grad @ np.linalg.solve(-H, grad)
    assert em.se == pytest.approx(np.sqrt(var), rel=5e-3)
    # and the missing information makes it larger than the complete-data SE
    assert em.se > em.variance_components["complete_data_se"]


def test_em_matches_direct_maximisation_of_the_observed_likelihood():
    _, masked = _world(2, 2500, 0.4)
    em = fit_count_em(ZeroTruncatedPoisson("~ sex + region"), masked, count="y")
    info = em.extra["missing_covariates"]
    assert info["unknown"] > 200 and info["em_converged"]
    assert info["pattern_model"] == "saturated"  # 6 patterns for 2,500 persons
    _check_against_direct_maximisation(em, masked, lambda a: np.concatenate([[0.0], a]), n_shares=5)


def test_a_loglinear_pattern_model_is_maximum_likelihood_too():
    """p(x | seen) log-linear in sex and region (main effects: 3 parameters for 6
    patterns), maximised jointly with β; N̂ and its SE against the hand-written likelihood."""
    _, masked = _world(2, 2500, 0.4)
    model = ZeroTruncatedPoisson("~ sex + region")
    em = fit_count_em(model, masked, count="y", pattern_model="loglinear")
    assert em.extra["missing_covariates"]["pattern_model"] == "loglinear"
    A = np.array([[s == "m", r == "b", r == "c"] for s in SEX for r in REGION], dtype=float)
    _check_against_direct_maximisation(em, masked, lambda a: A @ a, n_shares=3)
    saturated = fit_count_em(model, masked, count="y", pattern_model="saturated")
    # sex and region are independent in this world: the smaller model loses little
    assert em.population_size == pytest.approx(saturated.population_size, rel=0.01)
    assert (
        em.extra["missing_covariates"]["observed_data_loglik"]
        <= saturated.extra["missing_covariates"]["observed_data_loglik"]
    )


def test_many_patterns_get_the_loglinear_pattern_model():
    """Four covariates with 4 levels each: 256 patterns for ~1,000 persons seen. The
    default switches to the log-linear model; N̂ stays near the full-covariate fit."""
    rng = np.random.default_rng(12)
    N = 2500
    levels = np.array(list("abcd"))
    cov = {f"x{j}": rng.integers(0, 4, N) for j in range(4)}
    lam = np.exp(-0.5 + 0.3 * (cov["x0"] == 1) - 0.4 * (cov["x1"] == 2))
    y = rng.poisson(lam)
    unknown = rng.random(N) < 0.3**y
    full = pl.DataFrame({k: levels[v] for k, v in cov.items()} | {"y": y})
    masked = full.with_columns(pl.when(pl.Series(unknown)).then(None).otherwise("x3").alias("x3"))
    model = ZeroTruncatedPoisson("~ x0 + x1 + x2 + x3")
    em = fit_count_em(model, masked, count="y")
    info = em.extra["missing_covariates"]
    assert info["pattern_model"] == "loglinear" and info["patterns"] > info["observed"] / 5
    assert info["em_converged"] and np.isfinite(em.se)
    ref = model.fit(full, count="y")
    assert abs(em.population_size / ref.population_size - 1) < 0.02
    # the strata still add up to N̂
    for var in ("x0", "x3"):
        rows = [r for r in em.strata if r["variable"] == var]
        assert sum(r["population_size"] for r in rows) == pytest.approx(em.population_size)


def test_partly_known_covariates_keep_what_is_known():
    _, masked = _world(3, 4000, 0.4)
    masked = masked.with_columns(  # sex always known, region sometimes not
        pl.when(pl.col("sex") == "unknown").then(pl.lit("f")).otherwise("sex").alias("sex")
    )
    em = fit_count_em(ZeroTruncatedPoisson("~ sex + region"), masked, count="y")
    seen = masked.filter(pl.col("y") > 0)
    by_sex = {r["level"]: r for r in em.strata if r["variable"] == "sex"}
    for s in SEX:
        # the unknown-region persons stay in their own sex: observed counts are exact
        assert by_sex[s]["observed"] == pytest.approx(seen.filter(pl.col("sex") == s).height)
    by_region = {r["level"]: r["observed"] for r in em.strata if r["variable"] == "region"}
    assert sum(by_region.values()) == pytest.approx(seen.height)
    assert by_region["a"] > seen.filter(pl.col("region") == "a").height


def test_em_removes_the_bias_of_the_allocation():
    full, masked = _world(4, 40_000, 0.4)
    options = {"formula": "~ sex + region", "count": "y"}
    ref = _fit_one(full, "ztpoisson", options, "em").population_size
    em = _fit_one(masked, "ztpoisson", options, "em")
    allocate = _fit_one(masked, "ztpoisson", options, "allocate").population_size
    assert abs(em.population_size / ref - 1) < 0.01
    assert allocate / ref - 1 < -0.05  # the complete cases over-represent repeat captures
    assert em.extra["missing_covariates"]["rule"] == "em"
    per = em.extra["missing_covariates"]["per_covariate"]
    assert per["region"]["unknown"] > per["sex"]["unknown"] > 0


def test_other_families_and_the_bootstrap_run_the_em():
    _, masked = _world(5, 3000, 0.3)
    model = ZeroTruncatedGeometric("~ sex + region")
    em = fit_count_em(model, masked, count="y", variance="bootstrap", replicates=40, seed=7)
    assert em.default_interval == "bootstrap"
    assert len(em.bootstrap_replicates) == 40
    assert np.isfinite(em.bootstrap_replicates).all()
    lo, hi = em.confint()
    assert lo < em.population_size < hi
    again = fit_count_em(model, masked, count="y", variance="bootstrap", replicates=40, seed=7)
    np.testing.assert_array_equal(em.bootstrap_replicates, again.bootstrap_replicates)


def _tiny_stratum(seed: int = 3, N: int = 4000) -> pl.DataFrame:
    """Two regions of thousands and a region 'd' of 6 persons, one seen twice: a resample
    leaves 'd' without repeated captures in about e⁻¹ of the draws (its ML coefficient
    then runs to −∞ and N̂* to 10¹²); region unknown with probability 0.3^y."""
    rng = np.random.default_rng(seed)
    region = rng.choice(2, N, p=[0.6, 0.4])
    sex = rng.integers(0, 2, N)
    y = rng.poisson(np.exp(-0.7 + 0.4 * sex - 0.5 * region))
    big = pl.DataFrame({"sex": SEX[sex], "region": REGION[region], "y": y})
    tiny = pl.DataFrame({"sex": ["f", "m"] * 3, "region": ["d"] * 6, "y": [2, 1, 1, 1, 1, 1]})
    persons = pl.concat([big, tiny.with_columns(pl.col("y").cast(big["y"].dtype))])
    persons = persons.filter(pl.col("y") > 0)
    unknown = rng.random(persons.height) < 0.3 ** persons["y"].to_numpy()
    return persons.with_columns(
        pl.when(pl.Series(unknown)).then(None).otherwise("region").alias("region")
    )


def test_the_em_bootstrap_refits_diverging_replicates_and_counts_failures():
    persons = _tiny_stratum()
    model = ZeroTruncatedPoisson("~ sex + region")
    em = fit_count_em(model, persons, count="y", variance="bootstrap", replicates=100, seed=1)
    info = em.bootstrap_info
    # the complete-data rule flags the replicates where 'd' lost its repeated capture
    assert 0.15 < info["share_flagged"] < 0.6
    assert info["penalty"] == "firth" and info["n_failed"] == 0
    reps = em.bootstrap_replicates
    assert np.isfinite(reps).all() and reps.max() < 1.5 * em.population_size
    lo, hi = em.confint()
    assert lo < em.population_size < hi < 1.3 * em.population_size
    assert any("refitted with a firth penalty" in w for w in em.warnings)
    # kept as they are, the diverged replicates reach N̂* ≫ 50 n: they fail, are counted,
    # and the SD and interval come from the others
    raw = fit_count_em(
        model,
        persons,
        count="y",
        variance="bootstrap",
        replicates=100,
        seed=1,
        bootstrap_penalty="none",
    )
    info = raw.bootstrap_info
    assert info["n_failed"] > 10 and info["share_failed"] == info["n_failed"] / 100
    assert np.isnan(raw.bootstrap_replicates).sum() == info["n_failed"]
    assert np.isfinite(raw.se) and raw.confint()[1] < 2 * raw.population_size
    assert any("failed and were left out" in w and "understate" in w for w in raw.warnings)


def test_every_person_unknown_is_a_clear_error():
    _, masked = _world(6, 500, 0.3)
    masked = masked.with_columns(pl.lit(None, dtype=pl.String).alias("region"))
    with pytest.raises(ConfigError, match="every observed person"):
        fit_count_em(ZeroTruncatedPoisson("~ region"), masked, count="y")


def _two_lists(seed: int, N: int, rate: float) -> tuple[pl.DataFrame, pl.DataFrame]:
    rng = np.random.default_rng(seed)
    region = rng.choice(3, N, p=[0.5, 0.3, 0.2])
    n1 = rng.poisson(np.exp(-1.0 + 0.8 * (region == 2) - 0.5 * (region == 1)))
    n2 = rng.poisson(np.exp(-1.3 + 0.6 * (region == 1)))
    unknown = rng.random(N) < rate ** (n1 + n2)
    full = pl.DataFrame(
        {
            "in_a": (n1 > 0).astype(np.int8),
            "in_b": (n2 > 0).astype(np.int8),
            "region": REGION[region],
        }
    ).filter((pl.col("in_a") + pl.col("in_b")) > 0)
    masked = full.with_columns(
        pl.when(pl.Series(unknown[(n1 + n2) > 0]))
        .then(pl.lit("unknown"))
        .otherwise("region")
        .alias("region")
    )
    return full, masked


def test_loglinear_em_uses_the_partly_classified_table():
    full, masked = _two_lists(8, 60_000, 0.3)
    options = {"lists": ["in_a", "in_b"], "covariates": "region"}
    ref = _fit_one(full, "loglinear", options, "em")
    em = _fit_one(masked, "loglinear", options, "em")
    allocate = _fit_one(masked, "loglinear", options, "allocate")
    info = em.extra["missing_covariates"]
    assert info["rule"] == "em" and info["unknown"] > 0
    assert abs(em.population_size / ref.population_size - 1) < 0.02
    assert abs(em.population_size / ref.population_size - 1) < abs(
        allocate.population_size / ref.population_size - 1
    )
    assert em.se / em.population_size > ref.se / ref.population_size  # information lost
    # without unknowns the wrapper is the plain fit
    from recapture.estimators import estimate

    def run(frame, **o):
        return estimate(frame, "loglinear", **o)

    wrapped = fit_loglinear_em(full, ["region"], run, options)
    assert wrapped.population_size == ref.population_size
    assert "missing_covariates" not in wrapped.extra


def test_stepwise_search_fits_every_candidate_by_em():
    """The search compares models on one partly classified table (observed-data AIC) and
    finds the list × region terms the complete data need; the allocation would fit the
    complete cases only."""
    from recapture.estimators.loglinear import LogLinearModel

    full, masked = _two_lists(8, 60_000, 0.3)
    options = {"lists": ["in_a", "in_b"], "covariates": "region", "search": "stepwise"}
    ref = _fit_one(full, "loglinear", options, "em")
    em = _fit_one(masked, "loglinear", options, "em")
    allocate = _fit_one(masked, "loglinear", options, "allocate")
    assert em.extra["missing_covariates"]["rule"] == "em"
    assert em.formula == ref.formula and "in_a,region" in em.formula
    assert em.extra["search"]["path"][0]["model"] != em.formula  # it moved
    assert abs(em.population_size / ref.population_size - 1) < 0.02
    assert abs(em.population_size / ref.population_size - 1) < abs(
        allocate.population_size / ref.population_size - 1
    )
    # the chosen model is the plain EM fit of its terms
    blanked = masked.with_columns(
        pl.when(pl.col("region") == "unknown").then(None).otherwise("region").alias("region")
    )
    direct = LogLinearModel(em.extra["terms"], ["region"], partial_covariates=["region"]).fit(
        blanked, lists=["in_a", "in_b"]
    )
    assert em.population_size == pytest.approx(direct.population_size, rel=1e-9)
    assert em.aic == pytest.approx(direct.aic, rel=1e-9)


def test_the_rule_is_checked_and_defaults_to_em():
    from recapture.estimators import DEFAULT_MISSING, ZeroTruncatedPoisson

    # the pipeline leaves the rule to the estimators, whose default is em everywhere
    assert ConfiguredEstimator("ztpoisson", {}).missing_rule is None
    assert DEFAULT_MISSING == "em"
    assert ZeroTruncatedPoisson("~ 1").missing == "em"


def test_the_estimates_report_says_how_unknowns_were_handled():
    from recapture.reports.estimate import _missing_covariates

    _, masked = _world(9, 3000, 0.3)
    for rule in ("em", "allocate"):
        est = _fit_one(masked, "ztpoisson", {"formula": "~ sex + region", "count": "y"}, rule)
        row = _missing_covariates(est.to_dict())
        assert row["rule"] == rule and 0 < row["share"] < 1
        assert {c["covariate"] for c in row["per_covariate"]} == {"sex", "region"}


def test_the_rest_of_the_capture_history_enters_the_em():
    """Unknown when every registration lacks it, in both sources: among persons with the
    same count y the unknowns have fewer registrations in the other source, whose rate
    depends on the region. Conditioning on y alone is then biased; on (y, n_b) it is not."""
    rng = np.random.default_rng(10)
    N = 60_000
    region = rng.choice(3, N, p=[0.5, 0.3, 0.2])
    y = rng.poisson(np.exp(-0.6 - 0.6 * (region == 1) + 0.4 * (region == 2)))
    n_b = rng.poisson(np.array([0.05, 1.5, 0.4])[region])
    unknown = rng.random(N) < 0.5 ** (y + n_b)
    full = pl.DataFrame({"region": REGION[region], "y": y, "n_b": n_b})
    masked = full.with_columns(
        pl.when(pl.Series(unknown)).then(None).otherwise("region").alias("region")
    )
    model = ZeroTruncatedPoisson("~ region")
    ref = model.fit(full, count="y").population_size
    count_only = fit_count_em(model, masked, count="y").population_size / ref - 1
    em = fit_count_em(model, masked, count="y", history=["n_b"])
    assert count_only > 0.03
    assert abs(em.population_size / ref - 1) < 0.01
    assert "n_b" in em.extra["missing_covariates"]["assumption"]
    # the pipeline passes the other sources' counts
    rule = _fit_one(masked, "ztpoisson", {"formula": "~ region", "count": "y"}, "em")
    assert rule.population_size == pytest.approx(em.population_size)
