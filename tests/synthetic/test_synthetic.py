"""The simulator: its generative model, its noise rates, its files and its truth."""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
import re

import numpy as np
import polars as pl
import pytest
from scipy import stats

from recapture.cli import main
from recapture.errors import ConfigError
from recapture.io import file_sha256, read_json, read_metadata
from recapture.synthetic import (
    IomConfig,
    NoiseConfig,
    PoliceConfig,
    PopulationConfig,
    SimulationConfig,
    config_from_dict,
    load_config,
    simulate_world,
    spelling,
    write_world,
)
from recapture.synthetic import names as pools
from recapture.synthetic.config import POLICE_UNITS
from recapture.synthetic.noise import _choose_forms, _name_part
from recapture.validation import load_source_definition

#: The police extract's columns, in the order its source definition names them.
POLICE_COLUMNS = list(load_source_definition("police").columns.values())
IOM_COLUMNS = [
    "case_no",
    "last_name",
    "first_name",
    "dob",
    "sex",
    "nationality",
    "v_number",
    "departure_date",
    "client_category",
]


def assert_rate(flags, rate: float, what: str) -> None:
    """Observed share within 4 binomial standard errors of the configured rate."""
    flags = np.asarray(flags, dtype=bool)
    n = len(flags)
    assert n > 200, f"{what}: too few eligible cases ({n}) to test a rate"
    observed = flags.mean()
    tolerance = 4 * math.sqrt(rate * (1 - rate) / n) + 1e-12
    assert abs(observed - rate) <= tolerance, (
        f"{what}: observed {observed:.4f}, configured {rate} (±{tolerance:.4f}, n={n})"
    )


@pytest.fixture(scope="module")
def world():
    return simulate_world(SimulationConfig(size=40_000, seed=11))


@pytest.fixture(scope="module")
def busy_world():
    """Many registrations per person, so that every noise process occurs often enough."""
    cfg = SimulationConfig(
        size=15_000, seed=12, police=PoliceConfig(intercept=0.6), iom=IomConfig(intercept=-1.0)
    )
    return simulate_world(cfg)


@pytest.fixture(scope="module")
def written(tmp_path_factory, world):
    out = tmp_path_factory.mktemp("world")
    return out, write_world(world, out)


# ----------------------------------------------------------------------------- the model
def _poisson_chi2(counts: np.ndarray, lam: np.ndarray, omega: float = 0.0) -> float:
    """p-value of a chi-square test of observed count frequencies (0,1,2,3+) against the
    sum over people of their (one-inflated) Poisson probabilities."""
    e0 = np.exp(-lam)
    p = [e0, lam * e0, lam**2 / 2 * e0]
    p.append(1 - p[0] - p[1] - p[2])
    tail = 1 - p[0] - p[1]  # P(Y ≥ 2) before inflation
    expected = np.array(
        [
            p[0].sum(),
            (p[1] + omega * tail).sum(),
            ((1 - omega) * p[2]).sum(),
            ((1 - omega) * p[3]).sum(),
        ]
    )
    observed = np.array(
        [(counts == 0).sum(), (counts == 1).sum(), (counts == 2).sum(), (counts >= 3).sum()]
    )
    chi2 = ((observed - expected) ** 2 / expected).sum()
    return float(stats.chi2.sf(chi2, df=len(observed) - 1))


def test_police_counts_are_poisson_given_lambda():
    world = simulate_world(
        SimulationConfig(size=60_000, seed=3, police=PoliceConfig(one_inflation=0.0))
    )
    people = world.people.filter(pl.col("in_target"))
    counts = people["police_count"].to_numpy()
    lam = people["police_lambda"].to_numpy()
    # mean count vs mean λ: Var(Σy) = Σλ
    assert abs(counts.sum() - lam.sum()) <= 4 * math.sqrt(lam.sum())
    assert _poisson_chi2(counts, lam) > 1e-3
    # the configured linear predictor, frailty and exposure make up λ
    reconstructed = (
        np.exp(people["linear_predictor"].to_numpy())
        * people["frailty"].to_numpy()
        * (people["days_at_risk"].to_numpy() / 365)
    )
    np.testing.assert_allclose(lam, reconstructed, rtol=1e-12)


def test_one_inflation_moves_repeat_counts_to_one():
    omega = 0.4
    world = simulate_world(
        SimulationConfig(size=60_000, seed=4, police=PoliceConfig(one_inflation=omega))
    )
    people = world.people.filter(pl.col("in_target"))
    counts = people["police_count"].to_numpy()
    lam = people["police_lambda"].to_numpy()
    assert _poisson_chi2(counts, lam, omega) > 1e-3
    # without the inflation term the frequencies do not fit
    assert _poisson_chi2(counts, lam, 0.0) < 1e-6
    p_two_plus = 1 - np.exp(-lam) * (1 + lam)
    inflated = people["one_inflated"].sum()
    assert abs(inflated - omega * p_two_plus.sum()) <= 4 * math.sqrt((omega * p_two_plus).sum())


def _poisson_fit(y: np.ndarray, X: np.ndarray, offset: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Poisson regression by Newton–Raphson: coefficients and their standard errors."""
    beta = np.zeros(X.shape[1])
    beta[0] = math.log(y.mean() / np.exp(offset).mean())
    for _ in range(50):
        mu = np.exp(X @ beta + offset)
        info = X.T @ (X * mu[:, None])
        step = np.linalg.solve(info, X.T @ (y - mu))
        beta += step
        if np.abs(step).max() < 1e-10:
            break
    return beta, np.sqrt(np.diag(np.linalg.inv(info)))


def test_poisson_regression_recovers_the_configured_coefficients():
    """Without frailty and one-inflation the counts follow the log-linear model exactly, so a
    Poisson GLM with a log(time at risk) offset recovers β within its standard errors."""
    police = PoliceConfig(frailty_shape=0.0, one_inflation=0.0)
    people = simulate_world(SimulationConfig(size=200_000, seed=5, police=police)).people.filter(
        pl.col("in_target")
    )
    regions = [r for r in police.region_coefficients if r != "Other"]
    X = np.column_stack(
        [
            np.ones(people.height),
            (people["sex"] == "M").to_numpy(),
            (people["age_class"] == "40+").to_numpy(),
        ]
        + [(people["region"] == r).to_numpy() for r in regions]
    ).astype(float)
    offset = np.log(people["days_at_risk"].to_numpy() / 365)
    beta, se = _poisson_fit(people["police_count"].to_numpy().astype(float), X, offset)
    truth = np.array(
        [police.intercept, police.male, police.age_coefficients[0]]
        + [police.region_coefficients[r] for r in regions]
    )
    z = (beta - truth) / se
    assert np.abs(z).max() < 4.5, dict(
        zip(["intercept", "male", "40+", *regions], z.round(2), strict=True)
    )


def test_iom_registrations_follow_their_probability(world):
    people = world.people.filter(pl.col("in_target"))
    registered = (people["iom_count"] > 0).to_numpy()
    p = people["iom_probability"].to_numpy()
    assert abs(registered.sum() - p.sum()) <= 4 * math.sqrt((p * (1 - p)).sum())
    # IOM reaches women and older people more than the police does
    by_sex = people.group_by("sex").agg(
        (pl.col("iom_count") > 0).mean().alias("iom"),
        (pl.col("police_count") > 0).mean().alias("police"),
    )
    d = {r["sex"]: r for r in by_sex.to_dicts()}
    assert d["F"]["iom"] / d["M"]["iom"] > 1.3
    assert d["F"]["police"] / d["M"]["police"] < 0.8


def _mantel_haenszel_or(people: pl.DataFrame) -> float:
    t = people.with_columns(a=pl.col("police_count") > 0, i=pl.col("iom_count") > 0)
    strata = t.group_by("sex", "age_class", "region").agg(
        n=pl.len(),
        ai=(pl.col("a") & pl.col("i")).sum(),
        an=(pl.col("a") & ~pl.col("i")).sum(),
        ni=(~pl.col("a") & pl.col("i")).sum(),
        nn=(~pl.col("a") & ~pl.col("i")).sum(),
    )
    num = (strata["ai"] * strata["nn"] / strata["n"]).sum()
    den = (strata["an"] * strata["ni"] / strata["n"]).sum()
    return num / den


@pytest.mark.parametrize("odds_ratio", [1.0, 3.0])
def test_iom_dependence_on_apprehension_has_the_configured_odds_ratio(odds_ratio):
    cfg = SimulationConfig(
        size=150_000,
        seed=6,
        iom=IomConfig(intercept=-2.5, apprehended_odds_ratio=odds_ratio, out_of_target_share=0.0),
    )
    people = simulate_world(cfg).people
    estimate = _mantel_haenszel_or(people)
    assert abs(math.log(estimate) - math.log(odds_ratio)) < 0.15


def test_realistic_default_calibration():
    """Defaults reproduce the 1995 police data: about 15% of N seen, f1/f2 about 9, a long
    tail (f2/f3 ≈ 5), and IOM reaching a few per cent of N."""
    world = simulate_world(SimulationConfig(size=200_000, seed=7))
    s = world.summary
    assert 0.13 <= s["police_share_seen"] <= 0.17
    assert 7.5 <= s["f1_over_f2"] <= 10.5
    f = s["police_frequencies"]
    assert 3.5 <= f["2"] / f["3"] <= 6.5
    assert 0.02 <= s["iom_persons_in_target"] / s["true_n"] <= 0.07


def test_time_at_risk_bounds_every_registration(world):
    people = world.people.select("person_id", "at_risk_from", "at_risk_to")
    recs = world.records.join(people, on="person_id")
    assert (
        recs.filter(
            (pl.col("event_date") < pl.col("at_risk_from"))
            | (pl.col("event_date") > pl.col("at_risk_to"))
        ).height
        == 0
    )
    # an IOM departure is not followed by a police apprehension
    last_police = (
        world.records.filter(pl.col("source") == "police")
        .group_by("person_id")
        .agg(last=pl.col("event_date").max())
    )
    first_iom = (
        world.records.filter(pl.col("source") == "iom")
        .group_by("person_id")
        .agg(first=pl.col("event_date").min())
    )
    both = last_police.join(first_iom, on="person_id")
    assert both.height > 50
    assert both.filter(pl.col("first") < pl.col("last")).height == 0
    # arrivals during the period shorten the time at risk for about the configured share
    share_partial = (world.people.filter(pl.col("in_target"))["days_at_risk"] < 365).mean()
    pop = PopulationConfig()
    expected = 1 - (1 - pop.arrive_share) * (1 - pop.leave_share)
    assert abs(share_partial - expected) < 0.02


def test_name_pools_are_skewed_and_varied(world):
    maghrebi_men = world.people.filter(
        (pl.col("naming_culture") == "maghrebi") & (pl.col("sex") == "M")
    )
    first = maghrebi_men["given_name"].str.split(" ").list.first()
    assert (first == "Mohamed").mean() > 0.10
    assert first.n_unique() > 50
    assert world.people["family_name"].n_unique() > 500
    assert set(world.people["naming_culture"].unique()) >= {
        "maghrebi",
        "turkish",
        "slavic",
        "chinese",
        "latin",
    }


def test_spelling_variants_cover_the_known_forms():
    assert {"Mohammed", "Muhammad", "Mouhamed", "Mohamad"} <= set(
        spelling.spelling_variants("Mohamed", "maghrebi", limit=20)
    )
    slavic = {spelling.render(v) for v in spelling.spelling_variants("Шевченко", "slavic")}
    assert spelling.romanise("Шевченко") == "Shevchenko"
    assert {"Sjevtsjenko", "Chevtchenko"} <= slavic
    assert "Oeztuerk" in spelling.spelling_variants("Öztürk", "turkish")
    assert spelling.compound_alternative("El Amrani") == "Elamrani"
    assert spelling.compound_alternative("Abdel~kader") == "Abdel Kader"
    assert spelling.render("Abdel~kader") == "Abdelkader"


# ----------------------------------------------------------------------------- noise rates
def test_spelling_variant_and_compound_rates():
    tables = pools.name_tables()
    eligible = np.flatnonzero(tables.n_forms > 1)
    entries = np.resize(eligible, 40_000)
    rng = np.random.default_rng(1)
    _, flip, _ = _choose_forms(rng, entries, 0.2)
    assert_rate(flip, 0.2, "transliteration")
    # compound names: draw canonical forms only, so eligibility is the entry's own
    compound_entries = np.asarray(
        [
            e
            for e in range(len(tables.form_offset))
            if tables.form_has_compound[tables.form_offset[e]]
        ]
    )
    cfg = SimulationConfig(noise=NoiseConfig(transliteration=0.0, compound=0.3))
    text, _, compound = _name_part(rng, np.resize(compound_entries, 20_000), cfg)
    assert_rate(compound, 0.3, "compound")
    canonical = tables.form_text.gather(
        pl.Series(tables.form_offset[np.resize(compound_entries, 20_000)])
    )
    changed = (text != canonical).to_numpy()
    np.testing.assert_array_equal(changed, compound)


def test_record_noise_rates(busy_world):
    world = busy_world
    noise = world.config.noise
    recs = world.records
    assert_rate(recs["name_swap"], noise.name_swap, "name swap")
    assert_rate(recs["typo_given"], noise.typo, "typo given")
    assert_rate(recs["typo_family"], noise.typo, "typo family")
    assert_rate(recs["sex_unknown"], noise.sex_unknown, "sex unknown")
    assert_rate(recs["nationality_wrong"], noise.nationality_wrong, "nationality wrong")
    police = recs.filter(pl.col("source") == "police")["birth_date_recorded"]
    iom = recs.filter(pl.col("source") == "iom")["birth_date_recorded"]
    assert_rate(police == "missing", noise.birth_missing, "birth missing")
    assert_rate(police == "year_only", noise.birth_year_only, "birth year only")
    assert_rate(police == "month_year", noise.birth_month_year, "birth month-year")
    assert_rate(police == "default", noise.birth_default, "birth default")
    assert (iom == "month_year").sum() == 0
    forms = noise.police_nationality
    pf = recs.filter(pl.col("source") == "police")["nationality_form"]
    for name in ("country_name", "adjective", "iso3", "iso2", "unknown"):
        share = getattr(forms, name) / sum(
            getattr(forms, f) for f in ("country_name", "adjective", "iso3", "iso2", "unknown")
        )
        assert_rate(pf == name, share, f"nationality form {name}")


def test_alias_and_v_number_rates(busy_world):
    world = busy_world
    noise = world.config.noise
    people = world.people
    assert_rate(people["has_alias"], noise.alias_person_share, "alias person share")
    recs = world.records.join(people.select("person_id", "has_alias", "v_number"), on="person_id")
    assert_rate(
        recs.filter(pl.col("has_alias"))["identity"] == "alias", noise.alias_use, "alias use"
    )
    assert (recs.filter(~pl.col("has_alias"))["identity"] == "alias").sum() == 0
    primary_v = recs.filter((pl.col("identity") == "primary") & pl.col("v_number").is_not_null())
    pol = primary_v.filter(pl.col("source") == "police")
    assert_rate(
        pol["v_number_recorded"] == "missing", noise.v_number_missing_police, "V missing police"
    )
    present = primary_v.filter(pl.col("v_number_recorded").is_in(["recorded", "mistyped"]))
    assert_rate(present["v_number_recorded"] == "mistyped", noise.v_number_mistyped, "V mistyped")
    alias_v = recs.filter((pl.col("identity") == "alias") & pl.col("v_number").is_not_null())
    assert_rate(
        alias_v["v_number_recorded"] != "alias_without", noise.alias_keeps_v_number, "alias keeps V"
    )


def test_birth_date_noise_matches_the_extract(busy_world):
    world = busy_world
    people = world.people.select("person_id", "birth_date", "alias_birth_date")
    pol = (
        world.police.with_row_index("i")
        .hstack(
            world.records.filter(pl.col("source") == "police").select(
                "identity", "birth_date_recorded", "birth_day_month_swap"
            )
        )
        .hstack(world.records.filter(pl.col("source") == "police").select("person_id"))
        .join(people, on="person_id")
        .with_columns(
            true=pl.when(pl.col("identity") == "alias")
            .then(pl.col("alias_birth_date"))
            .otherwise(pl.col("birth_date"))
        )
    )
    full = pol.filter((pl.col("birth_date_recorded") == "full") & ~pl.col("birth_day_month_swap"))
    assert (full["geboortedatum"] == full["true"].dt.strftime("%d-%m-%Y")).all()
    default = pol.filter(pl.col("birth_date_recorded") == "default")
    assert (default["geboortedatum"] == "01-01-" + default["true"].dt.year().cast(pl.String)).all()
    year = pol.filter(pl.col("birth_date_recorded") == "year_only")
    assert (year["geboortedatum"] == "00-00-" + year["true"].dt.year().cast(pl.String)).all()
    assert pol.filter(pl.col("birth_date_recorded") == "missing")["geboortedatum"].is_null().all()
    eligible = pol.filter(
        (pl.col("birth_date_recorded") == "full")
        & (pl.col("true").dt.day() <= 12)
        & (pl.col("true").dt.day() != pl.col("true").dt.month())
    )
    assert_rate(
        eligible["birth_day_month_swap"], world.config.noise.birth_day_month_swap, "day-month swap"
    )
    swapped = eligible.filter(pl.col("birth_day_month_swap"))
    assert (swapped["geboortedatum"] == swapped["true"].dt.strftime("%m-%d-%Y")).all()


def test_diacritics_dropped_at_its_rate():
    cfg = SimulationConfig(
        size=20_000,
        seed=9,
        population=PopulationConfig(nationality_weights={"TUR": 1.0}),
        noise=NoiseConfig(
            transliteration=0.0,
            compound=0.0,
            typo=0.0,
            name_swap=0.0,
            alias_person_share=0.0,
            diacritics_dropped=0.35,
        ),
    )
    world = simulate_world(cfg)
    recs = world.records.filter(pl.col("source") == "police")
    joined = world.police.hstack(recs.select("person_id", "diacritics_dropped")).join(
        world.people.select("person_id", "given_name", "family_name"), on="person_id"
    )
    has = joined.filter(
        pl.col("given_name").str.contains("[çğıİöşüÇÖŞÜ]")
        | pl.col("family_name").str.contains("[çğıİöşüÇÖŞÜ]")
    )
    assert_rate(has["diacritics_dropped"], 0.35, "diacritics")
    dropped = has.filter(pl.col("diacritics_dropped"))
    assert not dropped["achternaam"].str.contains("[çğıİöşüÇÖŞÜ]").any()
    kept = has.filter(~pl.col("diacritics_dropped"))
    assert (kept["achternaam"] == kept["family_name"]).all()
    assert joined.filter(~pl.col("diacritics_dropped"))["voornamen"].equals(
        joined.filter(~pl.col("diacritics_dropped"))["given_name"]
    )


# ----------------------------------------------------------------------------- files and truth
def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    cfg = SimulationConfig(size=3_000, seed=123)
    a = write_world(simulate_world(cfg), tmp_path / "a")
    b = write_world(simulate_world(SimulationConfig(size=3_000, seed=123)), tmp_path / "b")
    c = write_world(simulate_world(SimulationConfig(size=3_000, seed=124)), tmp_path / "c")
    for name in a:
        assert file_sha256(a[name]) == file_sha256(b[name]), name
    assert file_sha256(a["police"]) != file_sha256(c["police"])


def test_truth_is_consistent_with_the_extracts(world):
    recs, people = world.records, world.people
    for source, extract, key in (
        ("police", world.police, "registratienummer"),
        ("iom", world.iom, "case_no"),
    ):
        truth = recs.filter(pl.col("source") == source)
        assert truth.height == extract.height
        assert truth["source_key"].equals(extract[key].alias("source_key"))
        assert truth["source_key"].n_unique() == truth.height
        assert truth["source_row"].to_list() == list(range(1, truth.height + 1))
    # every record maps to exactly one existing person
    assert recs.join(people, on="person_id", how="anti").height == 0
    assert recs.group_by("source", "source_key").len()["len"].max() == 1
    # per-person counts agree with the truth table
    counts = recs.group_by("person_id").agg(
        police=(pl.col("source") == "police").sum(), iom=(pl.col("source") == "iom").sum()
    )
    check = people.join(counts, on="person_id", how="left").with_columns(
        pl.col("police", "iom").fill_null(0)
    )
    assert (check["police"] == check["police_count"]).all()
    assert (check["iom"] == check["iom_count"]).all()
    # people outside the target population appear only at IOM, in their categories
    outside = check.filter(~pl.col("in_target"))
    assert outside.height > 0 and (outside["police"] == 0).all() and (outside["iom"] > 0).all()
    iom = world.iom.hstack(recs.filter(pl.col("source") == "iom").select("in_target"))
    assert set(iom.filter(~pl.col("in_target"))["client_category"]) <= {
        "pending_procedure",
        "dublin",
    }
    assert set(iom.filter(pl.col("in_target"))["client_category"]) <= {
        "irregular",
        "rejected_asylum",
    }
    # the written V-number is the person's own unless it is flagged as mistyped
    pol = world.police.hstack(
        recs.filter(pl.col("source") == "police").select("person_id", "v_number_recorded")
    ).join(people.select("person_id", pl.col("v_number").alias("true_v")), on="person_id")
    assert (
        pol.filter(pl.col("v_number_recorded") == "recorded")
        .select((pl.col("vnummer") == pl.col("true_v")).all())
        .item()
    )
    mistyped = pol.filter(pl.col("v_number_recorded") == "mistyped")
    assert (mistyped["vnummer"] != mistyped["true_v"]).all()
    assert (
        pol.filter(pl.col("v_number_recorded").is_in(["missing", "none", "alias_without"]))[
            "vnummer"
        ]
        .is_null()
        .all()
    )
    assert world.summary["true_n"] == people["in_target"].sum() == world.config.size


def test_extracts_parse_with_their_declared_layout(written):
    out, paths = written
    raw = paths["police"].read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline=""), delimiter=";"))
    assert rows[0] == POLICE_COLUMNS
    body = rows[1:]
    assert all(len(r) == len(POLICE_COLUMNS) for r in body)
    col = {c: i for i, c in enumerate(POLICE_COLUMNS)}
    for r in body:
        assert re.fullmatch(r"PSH\d{9}", r[col["registratienummer"]])
        dt.datetime.strptime(r[col["datum_staandehouding"]], "%d-%m-%Y")
        b = r[col["geboortedatum"]]
        assert (
            b == ""
            or re.fullmatch(r"00-00-\d{4}|00-\d{2}-\d{4}", b)
            or dt.datetime.strptime(b, "%d-%m-%Y")
        )
        assert r[col["geslacht"]] in {"M", "V", "O", ""}
        assert r[col["vnummer"]] == "" or re.fullmatch(r"\d{10}", r[col["vnummer"]])
        assert r[col["eenheid"]] in POLICE_UNITS
        assert r[col["reden"]] in {"vreemdelingencontrole", "strafbaar feit", "overig"}
    iom_raw = paths["iom"].read_bytes()
    text = iom_raw.decode("cp1252")  # strict: every byte is Windows-1252
    assert any(b > 127 for b in iom_raw)  # names with accents, written in Windows-1252 …
    with pytest.raises(UnicodeDecodeError):
        iom_raw.decode("utf-8")  # … so not UTF-8
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=","))
    assert rows[0] == IOM_COLUMNS
    col = {c: i for i, c in enumerate(IOM_COLUMNS)}
    for r in rows[1:]:
        assert len(r) == len(IOM_COLUMNS)
        assert re.fullmatch(r"IOM-\d{7}", r[col["case_no"]])
        dt.date.fromisoformat(r[col["departure_date"]])
        b = r[col["dob"]]
        assert b == "" or re.fullmatch(r"\d{4}", b) or dt.date.fromisoformat(b)
        assert r[col["sex"]] in {"Male", "Female", "Unknown"}
        assert r[col["v_number"]] == "" or re.fullmatch(
            r"\d{10}|\d{4}\.\d{3}\.\d{3}", r[col["v_number"]]
        )
    # polars reads both back to the frames that were written
    police = pl.read_csv(paths["police"], separator=";", infer_schema=False, encoding="utf8")
    assert police.columns == POLICE_COLUMNS and police.height == len(body)
    iom = pl.read_csv(paths["iom"], separator=",", infer_schema=False, encoding="windows-1252")
    assert iom.height == len(rows) - 1


def test_truth_files_and_manifest(written, world):
    out, paths = written
    people = pl.read_parquet(paths["truth_people"])
    records = pl.read_parquet(paths["truth_records"])
    assert people.equals(world.people) and records.equals(world.records)
    assert read_metadata(paths["truth_records"])["artifact"] == "truth_records"
    manifest = read_json(paths["manifest"])
    assert manifest["seed"] == world.config.seed
    assert manifest["true_n"] == world.config.size
    assert manifest["config"]["noise"]["typo"] == world.config.noise.typo
    assert manifest["files"]["police"]["rows"] == world.police.height
    assert manifest["files"]["police"]["sha256"] == file_sha256(paths["police"])
    assert config_from_dict(manifest["config"]) == world.config  # the manifest rebuilds the world


# ----------------------------------------------------------------------------- config and CLI
def test_config_from_toml_with_overrides(tmp_path):
    path = tmp_path / "sim.toml"
    path.write_text(
        "size = 5000\nperiod_start = 2012-07-01\nperiod_end = 2013-06-30\n"
        "[police]\nintercept = -1.0\nregion_coefficients = { Turkey = -2.0 }\n"
        "[noise]\ntypo = 0.05\n[noise.police_nationality]\nunknown = 0.2\n",
        encoding="utf-8",
    )
    cfg = load_config(path, seed=9)
    assert cfg.size == 5000 and cfg.seed == 9 and cfg.period_start == dt.date(2012, 7, 1)
    assert cfg.police.intercept == -1.0 and cfg.police.region_coefficients == {"Turkey": -2.0}
    assert cfg.noise.typo == 0.05 and cfg.noise.police_nationality.unknown == 0.2
    assert load_config(path, size=100).size == 100


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("sise = 5\n", "sise"),
        ("[noise]\ntypoo = 0.1\n", "noise.typoo"),
        ("[noise]\ntypo = 1.5\n", "noise.typo"),
        ("[noise.police_nationality]\nfoo = 1\n", "noise.police_nationality.foo"),
        ('[police]\nintercept = "high"\n', "police.intercept"),
        ("[iom.region_coefficients]\nAtlantis = 1.0\n", "iom.region_coefficients.Atlantis"),
        ("[population.nationality_weights]\nXYZ = 1.0\n", "population.nationality_weights.XYZ"),
    ],
)
def test_config_errors_name_the_key(tmp_path, text, key):
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        simulate_world(load_config(path, size=50))
    assert err.value.key == key
    assert str(path) in str(err.value)


def test_cli_simulate_and_errors(tmp_path, capsys):
    assert main(["--quiet", "simulate", str(tmp_path / "w"), "--size", "400", "--seed", "2"]) == 0
    stdout = capsys.readouterr().out
    assert "true population size N" in stdout and "400" in stdout
    assert (tmp_path / "w" / "police.csv").exists() and (
        tmp_path / "w" / "truth" / "records.parquet"
    ).exists()
    bad = tmp_path / "bad.toml"
    bad.write_text("[noise]\nbogus = 1\n", encoding="utf-8")
    assert main(["simulate", str(tmp_path / "x"), "--config", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "noise.bogus" in err[0]


def test_cp1252_fallback_writes_what_windows_1252_cannot_hold():
    from recapture.synthetic.output import to_cp1252

    assert to_cp1252("Şimşek Yıldız Ćosić Öztürk").decode("cp1252") == "Simsek Yildiz Cosic Öztürk"
    assert to_cp1252("Ţară").decode("cp1252") == "Tara"  # not in the table: decomposed


def test_iom_side_rates(busy_world):
    world = busy_world
    cfg = world.config
    clients = world.people.filter(pl.col("iom_count") > 0)
    assert_rate(clients["iom_count"] == 2, cfg.iom.duplicate_rate, "IOM duplicate registration")
    assert clients["iom_count"].max() <= 2
    outside = (~clients["in_target"]).sum()
    assert abs(outside / clients.height - cfg.iom.out_of_target_share) < 2 / clients.height
    pending = clients.filter(~pl.col("in_target"))["iom_category"] == "pending_procedure"
    assert_rate(pending, cfg.iom.pending_procedure_share, "pending procedure share")
    recs = world.records.filter(pl.col("source") == "iom").join(
        world.people.select("person_id", pl.col("v_number").alias("true_v")), on="person_id"
    )
    with_v = recs.filter((pl.col("identity") == "primary") & pl.col("true_v").is_not_null())
    assert_rate(
        with_v["v_number_recorded"] == "missing", cfg.noise.v_number_missing_iom, "V missing IOM"
    )
    forms = cfg.noise.iom_nationality
    total = sum(getattr(forms, f) for f in ("country_name", "adjective", "iso3", "iso2", "unknown"))
    assert_rate(recs["nationality_form"] == "iso3", forms.iso3 / total, "IOM nationality iso3")
    # dotted V-numbers at IOM
    iom = world.iom.filter(pl.col("v_number").is_not_null())["v_number"]
    assert_rate(iom.str.contains(r"\."), cfg.iom.dotted_v_number_share, "dotted V-numbers")
