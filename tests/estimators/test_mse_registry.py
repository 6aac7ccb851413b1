"""The multiple-systems estimators behind ``recapture estimate --model ...``."""

from pathlib import Path

import pytest

from recapture.errors import ConfigError, InputError
from recapture.estimators import MODELS, estimate

DATA = Path(__file__).parents[1] / "data"


def test_models_are_registered():
    for name in ("loglinear", "petersen", "chapman", "closedp", "closedp0"):
        assert MODELS[name].kind == "multiple-systems"


def test_estimate_loglinear_from_csv_path_with_sparsemse_search():
    r = estimate(
        DATA / "sparsemse_UKdat_5.csv",
        "loglinear",
        lists="LA,NG,PFNCA,GO,GP",
        weights="count",
        search="sparsemse",
        formula=None,
        seed=None,
    )
    assert r.population_size == pytest.approx(11312.99, rel=1e-6)


def test_estimate_closedp_models():
    r = estimate(
        DATA / "rcapture_HIV.csv",
        "closedp",
        lists="c1,c2,c3,c4",
        weights="freq",
        closed_model="Mh Darroch",
    )
    assert r.population_size == pytest.approx(20984.63, rel=1e-6)
    r0 = estimate(
        DATA / "rcapture_ill.csv", "closedp0", count="nbcap", weights="freq", closed_model="M0"
    )
    assert r0.population_size == pytest.approx(7079.90, rel=1e-6)


def test_unsupported_option_is_a_config_error():
    with pytest.raises(ConfigError) as exc:
        estimate(
            DATA / "rcapture_HIV.csv",
            "petersen",
            lists="c1,c2",
            weights="freq",
            omega_formula="~ 1",
        )
    assert exc.value.key == "omega_formula"


def test_bad_path_and_bad_list_are_clear_errors(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        estimate(tmp_path / "missing.parquet", "loglinear")
    with pytest.raises(InputError, match="not a regular file"):
        estimate(tmp_path, "loglinear")
    with pytest.raises(InputError) as exc:
        estimate(DATA / "rcapture_HIV.csv", "loglinear", lists="c1,c9", weights="freq")
    assert exc.value.column == "c9"


def test_cli_estimate_loglinear_writes_json(tmp_path, capsys):
    from recapture.cli import main
    from recapture.io import read_json

    out = tmp_path / "estimates.json"
    rc = main(
        [
            "--quiet",
            "estimate",
            str(DATA / "rcapture_HIV.csv"),
            "--model",
            "loglinear",
            "--lists",
            "c1,c2,c3,c4",
            "--weights",
            "freq",
            "--terms",
            "c1:c2",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    assert "12,318.47" in capsys.readouterr().out
    d = read_json(out)
    assert d["model"] == "loglinear" and d["default_interval"] == "profile"
    assert d["intervals"]["profile"]["lower"] == pytest.approx(10266, abs=0.5)


def test_cli_petersen_prints_dependence_sensitivity(capsys):
    from recapture.cli import main

    rc = main(
        [
            "--quiet",
            "estimate",
            str(DATA / "rcapture_HIV.csv"),
            "--model",
            "petersen",
            "--lists",
            "c1,c2",
            "--weights",
            "freq",
            "--dependence-thetas",
            "1,2",
        ]
    )
    assert rc == 0
    text = capsys.readouterr().out
    assert "θ = 2" in text
    rc = main(
        [
            "--quiet",
            "estimate",
            str(DATA / "rcapture_HIV.csv"),
            "--model",
            "petersen",
            "--lists",
            "c1,c2",
            "--weights",
            "freq",
            "--search",
            "stepwise",
        ]
    )
    assert rc == 2
    assert "search" in capsys.readouterr().err
