"""Multiple systems estimation against SparseMSE 2.0.1 (Chan, Silverman & Vincent 2021).

UK modern slavery 2013, five lists (UKdat_5): main effects 13,444.13 with the log-normal
interval 11,985 – 15,133 of ``estimatepopulation.0``; SparseMSE's stepwise rule
(``stepwisefit``, p < 0.02) 11,312.99. Artificial_3: with AB, AB+AC or AB+BC the MLE does not
exist, with all three two-list terms the model is not identifiable (package documentation).
"""

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from recapture.estimators.loglinear import LogLinearModel, capture_table, check_model, parse_terms
from recapture.estimators.loglinear.search import exhaustive, sparsemse_stepwise, stepwise

DATA = Path(__file__).parents[1] / "data"
UK_LISTS = ["LA", "NG", "PFNCA", "GO", "GP"]


def rel(a, b):
    return abs(a - b) / abs(b)


@pytest.fixture(scope="module")
def uk():
    return pl.read_csv(DATA / "sparsemse_UKdat_5.csv")


@pytest.fixture(scope="module")
def art():
    return pl.read_csv(DATA / "sparsemse_Artificial_3.csv")


def test_uk_main_effects_and_lognormal_interval(uk):
    r = LogLinearModel("main").fit(uk, lists=UK_LISTS, count="count")
    assert r.n_observed == 2744
    assert rel(r.population_size, 13444.13) < 1e-6
    lo, hi = r.confint("dark_lognormal")
    assert rel(lo, 11985) < 1e-4 and rel(hi, 15133) < 1e-4
    # every other interval is there as well, and they bracket the estimate
    for method in ("profile", "lognormal", "normal"):
        lo, hi = r.confint(method)
        assert lo < r.population_size < hi


def test_uk_sparsemse_stepwise(uk):
    r = sparsemse_stepwise(uk, lists=UK_LISTS, count="count", pthresh=0.02)
    assert rel(r.population_size, 11312.99) < 1e-6
    added = [step["added"] for step in r.extra["search"]["path"][1:]]
    assert added == ["LA:NG", "NG:GP", "PFNCA:GP", "LA:PFNCA", "GO:GP", "NG:GO"]
    assert all(step["p_value"] < 0.02 for step in r.extra["search"]["path"][1:])


def test_persons_and_table_give_identical_results(uk):
    counts = uk["count"].to_numpy()
    persons = pl.DataFrame({c: np.repeat(uk[c].to_numpy(), counts) for c in UK_LISTS})
    a = LogLinearModel("LA:NG + NG:GP").fit(uk, lists=UK_LISTS, count="count")
    b = LogLinearModel("LA:NG + NG:GP").fit(persons, lists=UK_LISTS)
    assert a.population_size == pytest.approx(b.population_size, rel=1e-12)
    assert a.se == pytest.approx(b.se, rel=1e-12)
    assert a.aic == pytest.approx(b.aic, rel=1e-12)


@pytest.mark.parametrize("model", ["A:B", "A:B + A:C", "A:B + B:C"])
def test_artificial_mle_does_not_exist(art, model):
    r = LogLinearModel(model).fit(art, lists=["A", "B", "C"], count="n")
    assert r.diagnostics["mle_exists"] is False
    assert np.isnan(r.population_size)
    assert any("does not exist" in w for w in r.warnings)
    assert np.isfinite(r.extra["unreliable_population_size"])


def test_artificial_all_two_way_not_identifiable(art):
    r = LogLinearModel("(A+B+C)^2").fit(art, lists=["A", "B", "C"], count="n")
    assert r.diagnostics["identifiable"] is False
    assert np.isnan(r.population_size)
    assert any("not identifiable" in w for w in r.warnings)
    table = capture_table(art, lists=["A", "B", "C"], count="n")
    L = ["A", "B", "C"]
    assert check_model(table, parse_terms("(A+B+C)^2", L, L)) == 2
    assert check_model(table, parse_terms("A:B", L, L)) == 1
    assert check_model(table, parse_terms("A:C + B:C", L, L)) == 0


def test_artificial_empty_overlap_is_boundary_not_failure(art):
    # A and C never overlap: the A:C parameter is −∞; SparseMSE fits it by removing the cells
    r = LogLinearModel("A:C + B:C").fit(art, lists=["A", "B", "C"], count="n")
    assert r.diagnostics["mle_exists"] and r.diagnostics["identifiable"]
    assert r.diagnostics["empty_overlaps"] == ["A:C", "B:C"]
    assert any("boundary" in w for w in r.warnings)
    assert np.isfinite(r.population_size)
    kept = LogLinearModel("A:C + B:C", empty_overlaps="keep").fit(
        art, lists=["A", "B", "C"], count="n"
    )
    assert kept.diagnostics["mle_exists"] is False


def test_stepwise_and_exhaustive_agree_on_uk(uk):
    step = stepwise(uk, lists=UK_LISTS, count="count", criterion="aic")
    every = exhaustive(uk, lists=UK_LISTS, count="count", criterion="aic")
    assert len(every) == 2**10
    assert every[0].aic <= step.aic + 1e-9
    assert every[0].formula == step.formula  # here the greedy search finds the best model
    assert all(a.aic <= b.aic for a, b in zip(every, every[1:], strict=False) if np.isfinite(b.aic))
    # BIC penalises more: never more parameters than AIC's choice
    bic = stepwise(uk, lists=UK_LISTS, count="count", criterion="bic")
    assert bic.extra["parameters"] <= step.extra["parameters"]


def test_stepwise_respects_hierarchy_and_finds_hiv_interaction():
    hiv = pl.read_csv(DATA / "rcapture_HIV.csv")
    r = stepwise(hiv, lists=["c1", "c2", "c3", "c4"], count="freq", max_order=3)
    # Rcapture's HIV example: only the [1,2] interaction matters
    assert r.extra["terms"] == ["c1", "c2", "c3", "c4", "c1:c2"]
    for step in r.extra["search"]["path"]:
        assert step["model"].startswith("[")
