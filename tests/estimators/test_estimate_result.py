"""PopulationEstimate as a statsmodels user expects it: params, bse, cov_params, pvalues,
conf_int, one naming convention for terms, and pickling (interval closures included)."""

import pickle
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from recapture.estimators import estimate, estimate_from_frequencies
from recapture.estimators.dse import Chapman
from recapture.estimators.loglinear import LogLinearModel

DATA = Path(__file__).parents[1] / "data"


def _persons(seed=1, n=4000):
    rng = np.random.default_rng(seed)
    sex = rng.choice(["female", "male"], n)
    lam = np.where(sex == "male", 0.9, 0.5)
    y = rng.poisson(lam)
    police = rng.random(n) < np.where(sex == "male", 0.3, 0.2)
    iom = rng.random(n) < 0.25
    df = pl.DataFrame(
        {"n_police": y, "sex": sex, "in_police": police.astype(int), "in_iom": iom.astype(int)}
    )
    return df


def test_count_model_params_match_coefficients_and_covariance():
    res = estimate(_persons(), "ztpoisson", formula="~ sex", count="n_police")
    assert list(res.params.index) == ["Intercept", "sex[T.male]"]
    coefs = {c["term"]: c for c in res.coefficients}
    for term, value in res.params.items():
        assert value == pytest.approx(coefs[term]["estimate"])
        assert res.bse[term] == pytest.approx(coefs[term]["se"])
        assert res.pvalues[term] == pytest.approx(coefs[term]["p_value"])
    cov = res.cov_params()
    assert np.allclose(cov.to_numpy(), cov.to_numpy().T)
    assert np.allclose(np.sqrt(np.diag(cov)), res.bse)
    ci = res.conf_int(0.05)
    assert (ci[0] < res.params).all() and (res.params < ci[1]).all()
    assert np.allclose((ci[1] - ci[0]) / 2, 1.959964 * res.bse, rtol=1e-5)
    with pytest.raises(ValueError):
        res.conf_int(1.5)


def test_one_term_naming_convention_across_models():
    """Intercept, var[T.level] for treatment dummies, ':' for interactions — everywhere."""
    persons = _persons()
    count = estimate(persons, "ztpoisson", formula="~ sex", count="n_police")
    loglin = LogLinearModel(covariates=["sex"]).fit(
        persons.filter((pl.col("in_police") + pl.col("in_iom")) > 0),
        lists=["in_police", "in_iom"],
    )
    closed = estimate(DATA / "rcapture_HIV.csv", "closedp", lists="c1,c2,c3,c4", weights="freq")
    for res in (count, loglin, closed):
        assert res.params.index[0] == "Intercept"
    assert "sex[T.male]" in count.params.index
    assert "in_police:sex[T.male]" in loglin.params.index


def test_estimates_pickle_with_their_intervals():
    loglin = estimate(DATA / "rcapture_HIV.csv", "loglinear", lists="c1,c2,c3,c4", weights="freq")
    want = loglin.to_dict()
    back = pickle.loads(pickle.dumps(loglin))
    assert back.to_dict().keys() == want.keys()
    assert back.confint("profile") == pytest.approx(loglin.confint("profile"))
    assert back.to_dict()["intervals"] == want["intervals"]
    pd_params = back.params
    assert pd_params.equals(loglin.params)
    freq = estimate_from_frequencies([120, 30, 6, 1], "chao")
    assert pickle.loads(pickle.dumps(freq)).population_size == freq.population_size
    two = Chapman().fit(
        pl.DataFrame({"a": [1, 1, 0], "b": [1, 0, 1], "n": [50, 200, 150]}),
        lists=["a", "b"],
        count="n",
    )
    assert two.params.empty  # a closed form has no coefficient vector
    assert pickle.loads(pickle.dumps(two)).confint() == pytest.approx(two.confint())


def test_estimates_json_keys_are_documented_in_artifacts_md():
    """docs/artifacts.md documents every key of PopulationEstimate.to_dict() and no other
    (besides `input`, which `recapture estimate --out` adds)."""
    import re

    text = (Path(__file__).parents[2] / "docs" / "artifacts.md").read_text(encoding="utf-8")
    section = re.search(r"^## estimates\.json\s*$(.*?)(?=^## |\Z)", text, re.M | re.S).group(1)
    documented = set()
    for first_cell in re.findall(r"^\|([^|]*)\|", section, re.M):
        for key in re.findall(r"`([^`]+)`", first_cell):
            documented.add(re.split(r"[.\[]", key)[0])
    keys = set(estimate_from_frequencies([100, 30, 8], "ztpoisson").to_dict())
    assert keys - documented == set(), f"undocumented keys: {sorted(keys - documented)}"
    assert documented - keys - {"input"} == set(), sorted(documented - keys - {"input"})
