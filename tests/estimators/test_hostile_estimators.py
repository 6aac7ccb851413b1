"""Hostile and degenerate input to the estimators: formulas are parsed by a closed grammar
and never evaluated; implausible counts and degenerate tables are errors or flagged
non-estimates, never a 'converged' number."""

from __future__ import annotations

import builtins
import json
import math
import re
import subprocess
import sys
from unittest import mock

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recapture.errors import ConfigError, InputError
from recapture.estimators import (
    PopulationEstimate,
    ZeroTruncatedPoisson,
    estimate,
    estimate_from_frequencies,
)
from recapture.estimators.dse import Petersen
from recapture.estimators.formula import parse_formula, parse_generators
from recapture.estimators.loglinear import LogLinearModel

EXPLOIT = (
    "~ {n_iom.__class__.__init__.__globals__['__builtins__']['__import__']('os')"
    ".system('id > FILE') * 0 + n_iom}"
)
VARIANTS = [
    "~ sex.__class__",  # attribute access
    "~ sex[0]",  # subscript
    "~ (lambda: 0)()",  # lambda
    "~ __import__",  # dunder name
    "~ I(__import__)",
    "~ I('os')",  # string literal
    '~ C(sex, "a")',
    "~ eval(sex)",  # calls of functions not in the whitelist
    "~ open(sex)",
    "~ np.log(n_iom)",
    "~ I(exec(sex))",
    "~ log(sex, 2)",
    "~ C(sex, contr.treatment('F'))",
    "~ sex; import os",
    "~ {sex}",
    "~ sex if 1 else 0",
    "~ `sex`",
    "~ sex @ n_iom",
    "~ sex +",
    "~ 2",
]


@pytest.fixture()
def persons() -> pl.DataFrame:
    rng = np.random.default_rng(0)
    n = 400
    return pl.DataFrame(
        {
            "n_police": rng.poisson(0.8, n) + 1,
            "n_iom": rng.poisson(0.3, n),
            "sex": rng.choice(["F", "M"], n),
            "in_police": np.ones(n, dtype=int),
            "in_iom": (rng.random(n) < 0.3).astype(int),
        }
    )


@pytest.fixture()
def no_eval(monkeypatch):
    """Evaluating anything during the test fails it."""

    def refuse(*args, **kwargs):
        raise AssertionError("user text reached eval/exec")

    monkeypatch.setattr(builtins, "eval", refuse)
    monkeypatch.setattr(builtins, "exec", refuse)


# ------------------------------------------------------------------------------ formulas
def test_the_exploit_is_refused_and_runs_nothing(persons, tmp_path, no_eval):
    target = tmp_path / "pwned"
    formula = EXPLOIT.replace("FILE", str(target))
    with pytest.raises(ConfigError) as exc:
        estimate(persons, "ztpoisson", formula=formula, count="n_police")
    assert exc.value.key == "formula" and "position" in str(exc.value)
    assert "\n" not in str(exc.value)
    assert not target.exists()


@pytest.mark.parametrize("formula", VARIANTS)
def test_formula_variants_are_refused_naming_the_token(persons, formula, no_eval):
    with pytest.raises(ConfigError) as exc:
        estimate(persons, "ztpoisson", formula=formula, count="n_police")
    assert "position" in str(exc.value)
    with pytest.raises(ConfigError):
        ZeroTruncatedPoisson("~ 1", omega_formula=formula)  # the second predictor as well


@pytest.mark.parametrize(
    "option",
    [
        {"terms": "__import__('os').system('id')"},
        {"terms": "[in_police.__class__][in_iom]"},
        {"terms": "in_police:in_iom + eval"},
        {"covariates": "sex.__class__"},
        {"covariates": "__class__"},
        {"passive": "sex=in_iom.__class__"},
    ],
)
def test_loglinear_terms_and_names_use_the_same_grammar(persons, option, no_eval):
    with pytest.raises(ConfigError):
        estimate(persons, "loglinear", lists="in_police,in_iom", **option)


def test_strata_and_offset_names_use_the_same_grammar(persons, no_eval):
    with pytest.raises(ConfigError):
        estimate(persons, "chapman", lists="in_police,in_iom", strata="sex.x")
    with pytest.raises(ConfigError):
        ZeroTruncatedPoisson("~ sex", strata=["sex", "__dict__"])
    with pytest.raises(ConfigError):
        ZeroTruncatedPoisson("~ sex", offset="os.system")


def test_grammar_keeps_what_models_need():
    f = parse_formula("capture ~ sex*age + C(region) + log(days) + I(age ** 2 - 1) - 1")
    assert f.text == "~ sex * age + C(region) + log(days) + I(age ** 2 - 1) - 1"
    assert f.variables == ("sex", "age", "region", "days")
    gens = parse_generators("(A + B + C)^2 + C:D", ["A", "B", "C", "D"])
    assert frozenset("AB") in gens and frozenset("CD") in gens
    assert parse_generators("[AB][C]", list("ABC")) == [frozenset("AB"), frozenset("C")]


def test_cli_refuses_the_exploit_in_one_line(persons, tmp_path):
    data = tmp_path / "persons.parquet"
    persons.write_parquet(data)
    target = tmp_path / "pwned"
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "recapture",
            "--quiet",
            "estimate",
            str(data),
            "--model",
            "ztpoisson",
            "--count-col",
            "n_police",
            "--formula",
            EXPLOIT.replace("FILE", str(target)),
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr
    assert "formula" in lines[0] and "position" in lines[0]
    assert not target.exists()


_ALPHABET = st.sampled_from(
    list("abcxyz_019 ~+-*/:()^[],.'\"{}@!;=<>`\\\n")
    + ["sex", "log", "C", "I", "**", "__", "lambda", "import", "os", "eval("]
)


@settings(max_examples=300, deadline=2000)  # ms per example: the parser is bounded
@given(pieces=st.lists(_ALPHABET, max_size=60), raw=st.text(max_size=80))
def test_fuzz_the_parser_parses_or_refuses_and_never_evaluates(pieces, raw):
    def refuse(*args, **kwargs):
        raise AssertionError("the parser evaluated its input")

    for text in ("".join(pieces), raw, "~ " + "".join(pieces)):
        with (
            mock.patch.object(builtins, "eval", refuse),
            mock.patch.object(builtins, "exec", refuse),
            mock.patch.object(builtins, "compile", refuse),
        ):
            try:
                f = parse_formula(text)
            except ConfigError as exc:
                assert "\n" not in str(exc).split(" in ", 1)[0]
                f = None
            try:
                parse_generators(text, ["a", "b", "c", "sex"])
            except ConfigError:
                pass
        if f is not None:
            # what passes is re-rendered from names, numbers and whitelisted calls only
            assert re.fullmatch(r"~ [A-Za-z0-9_ +\-*/:().]*", f.text), f.text
            assert not re.search(r"(?<![A-Za-z0-9_])__", f.text)  # no dunder name
            assert parse_formula(f.text).text == f.text  # the canonical form is a fixed point


def test_pipeline_toml_formula_is_refused_and_runs_nothing(tmp_path):
    from conftest import pipeline_toml

    from recapture.errors import RecaptureError
    from recapture.pipelines.run import run_pipeline
    from recapture.synthetic import SimulationConfig, run_simulation

    run_simulation(SimulationConfig(size=1_500, seed=3), tmp_path / "world")
    target = tmp_path / "pwned"
    formula = EXPLOIT.replace("FILE", str(target)).replace("'", "\\u0027")
    rest = f"""
[[estimators]]
name = "ztp"
model = "ztpoisson"
formula = "{formula}"
count = "n_police"

[reports]
enabled = false
"""
    (tmp_path / "pipeline.toml").write_text(
        pipeline_toml(rest, seed=1),
        encoding="utf-8",
    )
    with pytest.raises(RecaptureError) as exc:
        run_pipeline(tmp_path / "pipeline.toml")
    assert "formula" in str(exc.value)
    assert not target.exists()


# ------------------------------------------------------------------------------ resource bounds
def test_an_absurd_count_is_an_input_error_naming_column_and_row(persons):
    for huge in (30_000_000, 10**15):
        data = persons.with_columns(
            pl.when(pl.int_range(pl.len()) == 7)
            .then(huge)
            .otherwise(pl.col("n_police"))
            .alias("n_police")
        )
        with pytest.raises(InputError) as exc:
            estimate(data, "ztpoisson", count="n_police")
        assert exc.value.column == "n_police" and exc.value.row == 8
        assert "max_count" in str(exc.value)
    # a higher bound is a choice the user makes
    data = persons.with_columns(pl.lit(1).alias("n_police")).with_columns(
        pl.when(pl.int_range(pl.len()) < 50).then(1_500).otherwise(2).alias("n_police")
    )
    res = estimate(data, "ztpoisson", count="n_police", max_count=2_000)
    assert res.estimable
    with pytest.raises(ConfigError):
        estimate(data, "ztpoisson", count="n_police", max_count=0)


def test_capture_frequencies_refuse_an_absurd_count():
    table = pl.DataFrame({"nbcap": [1, 2, 3, 40_000_000], "freq": [50, 10, 3, 1]})
    with pytest.raises(InputError) as exc:
        estimate(table, "closedp0", count="nbcap", weights="freq")
    assert exc.value.column == "nbcap" and exc.value.row == 4


# ------------------------------------------------------------------------------ non-estimates
def _json(res) -> dict:
    """What estimates.json would hold: strict JSON (no NaN/Infinity) must accept it."""
    return json.loads(json.dumps(res.to_dict(), allow_nan=False, default=str))


def test_all_counts_one_is_a_flagged_non_estimate_not_a_converged_number(persons):
    ones = persons.with_columns(pl.lit(1).alias("n_police"))
    for model in ("ztpoisson", "ztgeom", "chao", "zelterman"):
        res = estimate(ones, model, count="n_police")
        assert not res.estimable and "never seen" in res.non_estimate
        assert res.warnings[0].startswith("not an estimate")
        assert "NOT AN ESTIMATE" in res.summary()
        out = _json(res)
        assert out["population_size"] is None and out["se"] is None
        assert out["non_estimate"] == res.non_estimate
        assert all("error" in iv for iv in out["intervals"].values())
    by_sex = estimate(ones, "ztpoisson", formula="~ sex", count="n_police")
    assert not by_sex.estimable and by_sex.strata
    assert all(row["population_size"] is None for row in _json(by_sex)["strata"])


@pytest.mark.parametrize("model", ["petersen", "chapman"])
def test_two_lists_without_overlap_are_non_estimates(model):
    table = pl.DataFrame({"a": [1, 0], "b": [0, 1], "n": [120, 80]})
    res = estimate(table, model, lists="a,b", weights="n")
    assert not res.estimable and "both lists" in res.non_estimate
    out = _json(res)
    assert out["population_size"] is None
    with pytest.raises(ValueError, match="not an estimate"):
        res.confint()


def test_petersen_with_an_empty_stratum_overlap_is_a_non_estimate():
    table = pl.DataFrame(
        {"a": [1, 1, 0, 1, 0], "b": [1, 0, 1, 0, 1], "x": ["u", "u", "u", "v", "v"]}
    )
    res = estimate(table, "petersen", lists="a,b", strata="x")
    assert not res.estimable and "stratum" in res.non_estimate


def test_loglinear_on_zero_persons_is_an_input_error():
    empty = pl.DataFrame({"in_a": [0, 0], "in_b": [0, 0]})
    with pytest.raises(InputError, match="no person is observed"):
        estimate(empty, "loglinear", lists="in_a,in_b")
    with pytest.raises(InputError):
        estimate(pl.DataFrame({"in_a": [1], "in_b": [1], "n": [0]}), "loglinear", weights="n")


def test_loglinear_without_an_mle_is_a_flagged_non_estimate():
    # the A:B overlap is empty and kept in the model: the MLE does not exist
    table = pl.DataFrame(
        {"A": [1, 1, 0, 1, 0, 0, 0], "B": [1, 0, 1, 0, 1, 0, 1], "C": [0, 1, 1, 0, 0, 1, 1]}
    ).with_columns(n=pl.Series([0, 20, 15, 30, 25, 40, 10]))
    res = estimate(
        table, "loglinear", lists="A,B,C", weights="n", terms="A*B", empty_overlaps="keep"
    )
    assert not res.estimable
    assert _json(res)["population_size"] is None


def test_intervals_never_go_below_the_observed_n():
    # a small dark figure with a large SE: N̂ − 1.96·SE < n
    res = estimate_from_frequencies([30, 1], "chao")
    assert res.population_size - 1.96 * res.se < res.n_observed
    lo, hi = res.confint("normal")
    assert lo == res.n_observed and hi > res.population_size
    for method in res.available_intervals():
        assert res.confint(method)[0] >= res.n_observed


def test_level_must_be_in_the_open_unit_interval(persons):
    res = estimate_from_frequencies([100, 30, 8], "ztpoisson")
    for bad in (1.5, 0, 1, -0.2, "x"):
        with pytest.raises(ConfigError) as exc:
            res.confint(level=bad)
        assert exc.value.key == "level"
        with pytest.raises(ConfigError):
            res.to_dict(level=bad)
        with pytest.raises(ConfigError):
            res.summary(level=bad)
    with pytest.raises(ConfigError):
        LogLinearModel(level=1.5)
    with pytest.raises(ConfigError):
        Petersen(level=2)


def test_cli_level_out_of_range_is_exit_2(persons, tmp_path):
    data = tmp_path / "persons.parquet"
    persons.write_parquet(data)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "recapture",
            "--quiet",
            "estimate",
            str(data),
            "--model",
            "chao",
            "--count-col",
            "n_police",
            "--level",
            "1.5",
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2 and "level" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_no_standard_error_means_no_lognormal_interval():
    res = PopulationEstimate(model="x", population_size=150.0, se=math.nan, n_observed=100)
    with pytest.raises(ValueError, match="standard error"):
        res.confint("lognormal")
    out = _json(res)
    assert "error" in out["intervals"]["lognormal"] and "lower" not in out["intervals"]["lognormal"]
    assert "undefined" in res.summary()


def test_the_em_rule_bounds_counts_too():
    """Unknown covariates send the fit through the EM; its input passes the same count check."""
    import polars as pl

    from recapture.errors import InputError
    from recapture.estimators import ZeroTruncatedPoisson

    frame = pl.DataFrame(
        {
            "n_police": [1, 2, 1, 3, 30_000_000, 1],
            "sex": ["M", "F", None, "M", None, "F"],
        }
    )
    with pytest.raises(InputError, match="max_count") as err:
        ZeroTruncatedPoisson("~ sex", missing="em").fit(frame, count="n_police")
    assert err.value.column == "n_police"
