"""Linkage engine: comparison levels, TF adjustment, EM, missing-as-neutral, blocking,
clustering, artifacts, and accuracy/calibration floors on FEBRL."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from recapture.errors import ConfigError, InputError
from recapture.linkage import LinkageSettings, link_records, write_linkage
from recapture.linkage.blocking import ROW, block
from recapture.linkage.clustering import cluster_pairs
from recapture.linkage.comparisons import PreparedRecords, compare_pairs
from recapture.linkage.model import (
    FellegiSunterModel,
    Patterns,
    log_ratio,
    mixture_log_ratio,
    run_em,
)
from recapture.linkage.settings import BlockingRule, Comparison
from recapture.linkage.training import u_over_all_pairs
from recapture.schemas import ClusterSchema, PairsSchema, validate


def canonical(rows: list[dict]) -> pl.DataFrame:
    """A small canonical records frame; unspecified fields missing."""
    base = {
        "family_name": None,
        "given_name": None,
        "family_name_key": None,
        "given_name_key": None,
        "birth_date": None,
        "birth_year": None,
        "birth_month": None,
        "birth_day": None,
        "birth_date_quality": "missing",
        "sex": None,
        "nationality_iso3": None,
        "nationality_region": None,
        "v_number": None,
        "police_unit": None,
        "event_date": None,
        "source": "police",
    }
    out = []
    for k, row in enumerate(rows):
        rec = dict(base, record_id=k, **row)
        if rec["birth_date"] is not None:
            d = rec["birth_date"]
            rec.update(birth_year=d.year, birth_month=d.month, birth_day=d.day)
            if rec["birth_date_quality"] == "missing":
                rec["birth_date_quality"] = "full"
        out.append(rec)
    schema = {
        "record_id": pl.Int64,
        "source": pl.String,
        "family_name": pl.String,
        "given_name": pl.String,
        "family_name_key": pl.String,
        "given_name_key": pl.String,
        "birth_date": pl.Date,
        "birth_year": pl.Int32,
        "birth_month": pl.Int32,
        "birth_day": pl.Int32,
        "birth_date_quality": pl.String,
        "sex": pl.String,
        "nationality_iso3": pl.String,
        "nationality_region": pl.String,
        "v_number": pl.String,
        "police_unit": pl.String,
        "event_date": pl.Date,
    }
    return pl.DataFrame(out, schema=schema)


def levels_of(records: pl.DataFrame, pairs: list[tuple[int, int]], settings=None):
    settings = settings or LinkageSettings.default()
    recs = records.sort("record_id").with_row_index(ROW)
    prep = PreparedRecords.build(recs, settings)
    i = np.array([p[0] for p in pairs], dtype=np.int32)
    j = np.array([p[1] for p in pairs], dtype=np.int32)
    gammas, tf, swap = compare_pairs(prep, i, j)
    names = {c.name: c.level_names() for c in settings.comparisons}
    named = {k: [names[k][g] if g >= 0 else "missing" for g in v] for k, v in gammas.items()}
    return named, tf, swap


# ------------------------------------------------------------------ comparison levels
def test_string_levels():
    rec = canonical(
        [
            {"family_name": "el amrani", "family_name_key": "LMRN"},
            {"family_name": "elamrani", "family_name_key": "LMRN"},  # exact once spaces removed
            {"family_name": "al amrany", "family_name_key": "LMRN"},  # same transliteration key
            {"family_name": "el amranu", "family_name_key": "LMRNU"},  # JW ≥ 0.92
            {"family_name": "el omrany", "family_name_key": "X1"},  # 0.85 ≤ JW < 0.92
            {"family_name": "janssen", "family_name_key": "JNSN"},  # else
            {"family_name": None},  # missing
            {"family_name": "amrani el", "family_name_key": "Q"},  # tokens swapped → exact
            {"family_name": "amrani", "family_name_key": "Q2"},  # token subset → top JW level
        ]
    )
    named, _, _ = levels_of(rec, [(0, 1), (0, 2), (0, 3), (0, 4), (0, 5), (0, 6), (0, 7), (0, 8)])
    assert named["family_name"] == [
        "exact",
        "key",
        "jw_0.92",
        "jw_0.85",
        "else",
        "missing",
        "exact",
        "jw_0.92",
    ]


def test_date_levels():
    d = dt.date
    rec = canonical(
        [
            {"birth_date": d(1990, 3, 7)},
            {"birth_date": d(1990, 3, 7)},  # exact
            {"birth_date": d(1990, 7, 3)},  # day–month swapped
            {"birth_date": d(1990, 3, 9)},  # one component off
            {
                "birth_date": d(1990, 1, 1),
                "birth_date_quality": "default",
            },  # default date, same year
            {"birth_date": d(1990, 11, 20)},  # same year only
            {"birth_date": d(1991, 11, 20)},  # year off by one
            {"birth_date": d(1970, 11, 20)},  # else
            {},  # missing
            {"birth_year": 1990, "birth_date_quality": "year_only"},  # year only, same year
        ]
    )
    pairs = [(0, k) for k in range(1, 10)]
    named, _, _ = levels_of(rec, pairs)
    assert named["birth_date"] == [
        "exact",
        "day_month_swapped",
        "one_component_off",
        "partial_same_year",
        "same_year",
        "year_off_by_one",
        "else",
        "missing",
        "partial_same_year",
    ]
    # two default dates of one year are not an exact agreement: 1 January is a placeholder
    rec2 = canonical([{"birth_date": d(1990, 1, 1), "birth_date_quality": "default"}] * 2)
    assert levels_of(rec2, [(0, 1)])[0]["birth_date"] == ["partial_same_year"]


def test_sex_nationality_vnumber_levels():
    rec = canonical(
        [
            {
                "sex": "M",
                "nationality_iso3": "MAR",
                "nationality_region": "North Africa",
                "v_number": "1234567890",
            },
            {
                "sex": "M",
                "nationality_iso3": "MAR",
                "nationality_region": "North Africa",
                "v_number": "1234567890",
            },
            {
                "sex": "F",
                "nationality_iso3": "DZA",
                "nationality_region": "North Africa",
                "v_number": "1234567809",
            },
            {
                "sex": "F",
                "nationality_iso3": "SYR",
                "nationality_region": "Middle East",
                "v_number": "9999999999",
            },
            {},
            {},
        ]
    )
    named, _, _ = levels_of(rec, [(0, 1), (0, 2), (0, 3), (0, 4), (4, 5)])
    assert named["sex"] == ["exact", "else", "else", "missing", "missing"]
    assert named["nationality"] == ["exact", "same_group", "else", "missing", "missing"]
    # a V-number on one record only is evidence of its own, and so is one on neither record
    assert named["v_number"] == ["exact", "one_edit", "else", "one_side_only", "both_missing"]


def test_given_family_swap_is_detected_and_compared_aligned():
    rec = canonical(
        [
            {
                "given_name": "karim",
                "family_name": "benali",
                "given_name_key": "KRM",
                "family_name_key": "BNL",
            },
            {
                "given_name": "benali",
                "family_name": "karim",
                "given_name_key": "BNL",
                "family_name_key": "KRM",
            },
            {
                "given_name": "karim",
                "family_name": "benaly",
                "given_name_key": "KRM",
                "family_name_key": "BNL",
            },
        ]
    )
    named, _, swap = levels_of(rec, [(0, 1), (0, 2)])
    assert swap.tolist() == [True, False]
    assert named["family_name"][0] == "exact" and named["given_name"][0] == "exact"
    assert named["family_name"][1] == "key"


# ------------------------------------------------------------------ term frequencies
def test_tf_common_name_weighs_less_than_rare_name():
    # 100 people (distinct family names): 60 called mohamed, 2 called zakariya
    rows = [{"given_name": "mohamed", "given_name_key": "MHMT"} for _ in range(60)]
    rows += [{"given_name": f"name{k}", "given_name_key": f"K{k}"} for k in range(38)]
    rows += [{"given_name": "zakariya", "given_name_key": "SKR"}] * 2
    rows = [dict(r, family_name=f"fam{k}") for k, r in enumerate(rows)]
    rec = canonical(rows)
    raw = LinkageSettings.from_dict({"tf_pseudo_people": 0.0})
    named, tf, _ = levels_of(rec, [(0, 1), (98, 99)], raw)
    assert named["given_name"] == ["exact", "exact"]
    common, rare = tf["given_name"]
    assert common < 0 < rare
    # log2(Σf²/f): f(mohamed) = 0.6, f(zakariya) = 0.02, Σf² = 0.36 + 38·0.0001 + 0.0004
    sum_sq = 0.36 + 38 * 0.01**2 + 0.02**2
    assert common == pytest.approx(np.log2(sum_sq / 0.6), abs=1e-4)
    assert rare == pytest.approx(np.log2(sum_sq / 0.02), abs=1e-4)


def test_tf_counts_people_not_registrations():
    """A man registered many times does not make his own name common."""
    people = [
        {"given_name": f"name{k}", "given_name_key": f"K{k}", "family_name": f"fam{k}"}
        for k in range(50)
    ]
    once = canonical(
        people + [{"given_name": "zakariya", "given_name_key": "SKR", "family_name": "idrissi"}] * 2
    )
    often = canonical(
        people
        + [{"given_name": "zakariya", "given_name_key": "SKR", "family_name": "idrissi"}] * 20
    )
    raw = LinkageSettings.from_dict({"tf_pseudo_people": 0.0})
    _, tf_once, _ = levels_of(once, [(50, 51)], raw)
    _, tf_often, _ = levels_of(often, [(50, 51)], raw)
    assert tf_often["given_name"][0] == pytest.approx(tf_once["given_name"][0])
    assert tf_once["given_name"][0] == pytest.approx(np.log2(51 / 51**2 / (1 / 51)), abs=1e-4)


# ------------------------------------------------------------------ EM and missing values
def _simulate_vectors(rng, n, lam, m, u, missing_rate=0.0):
    is_match = rng.random(n) < lam
    gammas = []
    for mk, uk in zip(m, u, strict=True):
        g = np.where(is_match, rng.choice(len(mk), n, p=mk), rng.choice(len(uk), n, p=uk)).astype(
            np.int8
        )
        g[rng.random(n) < missing_rate] = -1
        gammas.append(g)
    return gammas, is_match


@pytest.mark.parametrize("fix_u", [False, True])
def test_em_recovers_known_m_u_and_lambda(fix_u):
    rng = np.random.default_rng(7)
    m = [np.array([0.05, 0.15, 0.8]), np.array([0.1, 0.9]), np.array([0.02, 0.08, 0.2, 0.7])]
    u = [np.array([0.85, 0.1, 0.05]), np.array([0.7, 0.3]), np.array([0.6, 0.3, 0.08, 0.02])]
    gammas, _ = _simulate_vectors(rng, 200_000, 0.2, m, u, missing_rate=0.1)
    comps = [Comparison(name=f"c{k}", kind="exact", column="x") for k in range(3)]
    for c, mk in zip(comps, m, strict=True):  # level counts come from level_names(); patch to match
        c.level_names = (lambda n: lambda: [str(x) for x in range(n)])(len(mk))
    patterns = Patterns.from_gammas(gammas, [len(x) for x in m])
    assert patterns.levels.shape[0] <= 4 * 3 * 5  # EM sees distinct patterns, not 200,000 pairs
    start_m = [np.full(len(x), 1 / len(x)) + np.linspace(0, 0.2, len(x)) for x in m]
    start_m = [x / x.sum() for x in start_m]
    start_u = u if fix_u else [np.full(len(x), 1 / len(x)) for x in u]
    if not fix_u:
        start_u = [x[::-1].copy() * 0 + np.linspace(0.5, 0.1, len(x)) for x in u]
        start_u = [x / x.sum() for x in start_u]
    m_hat, u_hat, lam, trace, converged = run_em(
        patterns, comps, start_m, start_u, 0.05, fix_u=fix_u, max_iter=500, tol=1e-8, smoothing=0.0
    )
    assert converged
    assert lam == pytest.approx(0.2, abs=0.01)
    for a, b in zip(m_hat, m, strict=True):
        np.testing.assert_allclose(a, b, atol=0.015)
    for a, b in zip(u_hat, u, strict=True):
        np.testing.assert_allclose(a, b, atol=0.015)
    lls = [t["log_likelihood"] for t in trace]
    assert all(
        b >= a - 1e-6 * abs(a) for a, b in zip(lls, lls[1:], strict=False)
    )  # EM never decreases


def test_missing_level_is_neutral():
    m = [np.array([0.1, 0.9]), np.array([0.2, 0.8])]
    u = [np.array([0.9, 0.1]), np.array([0.6, 0.4])]
    levels = np.array([[1, 1], [1, -1], [-1, -1], [-1, 0]], dtype=np.int8)
    lr = log_ratio(levels, m, u)
    assert lr[0] == pytest.approx(np.log(9) + np.log(2))
    assert lr[1] == pytest.approx(np.log(9))  # second comparison contributes m/u = 1
    assert lr[2] == 0.0
    assert lr[3] == pytest.approx(np.log(0.2 / 0.6))


def _two_comparisons():
    comps = [
        Comparison(name="name", kind="exact", column="a"),
        Comparison(name="v", kind="exact", column="b"),
    ]
    return (
        comps,
        [np.array([0.05, 0.95]), np.array([0.1, 0.9])],
        [np.array([0.99, 0.01]), np.array([0.999, 0.001])],
    )


def test_alias_mixture_keeps_the_evidence_of_a_kept_identifier():
    comps, m, u = _two_comparisons()
    levels = np.array([[1, 1], [0, 1], [0, 0], [1, -1]], dtype=np.int8)
    plain = FellegiSunterModel(comparisons=comps, m=m, u=u, lam=0.01)
    mixed = FellegiSunterModel(
        comparisons=comps, m=m, u=u, lam=0.01, alias_mask=np.array([False, True]), alias_share=0.1
    )
    full = log_ratio(levels, m, u)
    kept = np.array([np.log(900.0), np.log(900.0), np.log(0.1 / 0.999), 0.0])
    # LR = (1 − π)·Π m/u + π·Π_kept m/u, by hand
    np.testing.assert_allclose(
        np.exp(mixed.log_ratio(levels)), 0.9 * np.exp(full) + 0.1 * np.exp(kept)
    )
    np.testing.assert_allclose(mixture_log_ratio(full, kept, 0.0), full)
    np.testing.assert_allclose(plain.log_ratio(levels), full)
    # names disagree, identifier agrees: the plain model loses the identifier's evidence
    assert plain.pattern_weights(levels)[1] < mixed.pattern_weights(levels)[1]
    assert mixed.pattern_weights(levels)[1] == pytest.approx(
        np.log2(0.01 / 0.99) + np.log2(0.9 * 900 * 0.05 / 0.99 + 0.1 * 900)
    )
    # where the identity agrees, the alias component changes (almost) nothing
    assert mixed.pattern_weights(levels)[0] == pytest.approx(
        plain.pattern_weights(levels)[0] + np.log2(0.9), abs=0.01
    )
    # term-frequency bits act on the own-identity component only
    pats = Patterns(levels=levels, counts=np.ones(4), index=np.arange(4))
    tf = [np.array([-3.0, 0.0, 0.0, -3.0])]
    w = mixed.pair_weights(pats, tf)
    expected = np.log2(0.01 / 0.99) + np.logaddexp2(
        np.log2(0.9) + full / np.log(2) + tf[0], np.log2(0.1) + kept / np.log(2)
    )
    np.testing.assert_allclose(w, expected)


def test_em_with_alias_mixture_recovers_the_alias_share():
    rng = np.random.default_rng(3)
    comps, m, u = _two_comparisons()
    comps.append(Comparison(name="dob", kind="exact", column="c"))
    m.append(np.array([0.1, 0.9]))
    u.append(np.array([0.95, 0.05]))
    n, lam, pi = 400_000, 0.05, 0.2
    is_match = rng.random(n) < lam
    alias = is_match & (rng.random(n) < pi)
    gammas = []
    for k in range(3):
        own = rng.random(n) < m[k][1]
        chance = rng.random(n) < u[k][1]
        kept = k == 1
        g = np.where(is_match & (kept | ~alias), own, chance)
        gammas.append(g.astype(np.int8))
    patterns = Patterns.from_gammas(gammas, [2, 2, 2])
    start_m = [np.array([0.3, 0.7])] * 3
    m_hat, _, lam_hat, trace, converged = run_em(
        patterns,
        comps,
        start_m,
        u,
        0.1,
        fix_u=True,
        smoothing=0.0,
        max_iter=2000,
        tol=1e-9,
        alias_mask=np.array([False, True, False]),
        alias_share=0.05,
    )
    assert converged
    assert lam_hat == pytest.approx(lam, rel=0.05)
    assert trace[-1]["alias_share"] == pytest.approx(pi, abs=0.03)
    for a, b in zip(m_hat, m, strict=True):
        np.testing.assert_allclose(a, b, atol=0.02)
    # with π fixed, EM leaves it alone
    _, _, _, trace_fixed, _ = run_em(
        patterns,
        comps,
        start_m,
        u,
        0.1,
        fix_u=True,
        alias_mask=np.array([False, True, False]),
        alias_share=0.05,
        fix_alias_share=True,
    )
    assert {t["alias_share"] for t in trace_fixed} == {0.05}


def test_u_over_all_pairs_counts_candidates_exactly():
    comps, _, _ = _two_comparisons()
    # 10 candidate pairs: 8 agree on v and are matches (p = 1), 2 agree on v with p = 0.5
    levels = np.array([[1, 1], [0, 1]], dtype=np.int8)
    pats = Patterns(levels=levels, counts=np.array([8.0, 2.0]), index=np.array([0] * 8 + [1] * 2))
    post = np.array([1.0, 0.5])
    # random pairs outside the candidate set never agree on v (it is a blocking key)
    outside = {"name": np.zeros(1000, np.int8), "v": np.zeros(1000, np.int8)}
    u = u_over_all_pairs(pats, post, outside, comps, n_pairs_all=1_000_010.0, smoothing=0.0)
    # v agrees in 2 × 0.5 expected non-matches out of 1,000,001 expected non-match pairs
    assert u[1][1] == pytest.approx(1.0 / 1_000_001.0)
    assert u[0][1] == 0.0


def test_settings_reject_unknown_alias_comparison():
    with pytest.raises(ConfigError, match="alias_comparisons"):
        LinkageSettings.from_dict({"alias_comparisons": ["passport"]})


# ------------------------------------------------------------------ blocking
def test_blocking_union_has_no_duplicates_and_keeps_first_rule():
    rec = canonical(
        [
            {"family_name_key": "A", "given_name_key": "X", "birth_year": 1990, "v_number": "1"},
            {"family_name_key": "A", "given_name_key": "X", "birth_year": 1990, "v_number": "1"},
            {"family_name_key": "A", "given_name_key": "Y", "birth_year": 1990},
            {
                "family_name_key": "X",
                "given_name_key": "A",
                "birth_year": 1980,
            },  # swapped names of 0/1
            {"family_name_key": "B", "given_name_key": "Z", "birth_year": 1990},
        ]
    ).with_row_index(ROW)
    rules = [
        BlockingRule("v", ["v_number"]),
        BlockingRule("fam_year", ["family_name_key", "birth_year"]),
        BlockingRule("fam_given", ["family_name_key", "given_name_key"]),
        BlockingRule(
            "swap", ["given_name_key", "family_name_key"], ["family_name_key", "given_name_key"]
        ),
    ]
    res = block(rec, rules, max_block_size=100)
    pairs = list(zip(res.i.tolist(), res.j.tolist(), strict=True))
    assert len(pairs) == len(set(pairs))
    assert all(a < b for a, b in pairs)
    found = {p: res.rule_names[r] for p, r in zip(pairs, res.rule.tolist(), strict=True)}
    assert found == {
        (0, 1): "v",
        (0, 2): "fam_year",
        (1, 2): "fam_year",
        (0, 3): "swap",
        (1, 3): "swap",
    }
    stats = {s["rule"]: s for s in res.stats}
    assert stats["fam_given"]["pairs"] == 1 and stats["fam_given"]["pairs_first"] == 0
    assert res.reduction_ratio() == pytest.approx(1 - 5 / 10)


def test_blocking_refines_then_skips_oversized_blocks():
    rows = [
        {"family_name_key": "MHMD", "given_name_key": "A" if k < 4 else f"G{k}", "birth_year": 1990}
        for k in range(30)
    ]
    rows += [
        {"family_name_key": "MHMD", "given_name_key": "B", "birth_year": 1990} for _ in range(12)
    ]
    rows += [{"family_name_key": "RARE", "birth_year": 1990} for _ in range(3)]
    rec = canonical(rows).with_row_index(ROW)
    plain = block(
        rec, [BlockingRule("fam_year", ["family_name_key", "birth_year"])], max_block_size=10
    )
    assert plain.n_pairs == 3  # the 42-record block is skipped
    assert (
        plain.stats[0]["blocks_skipped"] == 1 and plain.stats[0]["records_in_skipped_blocks"] == 42
    )
    refined = block(
        rec,
        [BlockingRule("fam_year", ["family_name_key", "birth_year"], refine=["given_name_key"])],
        max_block_size=10,
    )
    # inside the big block, given key A (4 records) gives 6 pairs; B (12 records) is still too big
    assert refined.n_pairs == 3 + 6
    st = refined.stats[0]
    assert st["blocks_refined"] == 1
    assert st["blocks_skipped"] == 1 and st["records_in_skipped_blocks"] == 12


# ------------------------------------------------------------------ clustering
def test_clustering_chaining_guard_splits_on_conflict():
    i = np.array([0, 1, 0, 3])
    j = np.array([1, 2, 2, 4])
    p = np.array([0.999, 0.9, 0.001, 0.7])
    kept = cluster_pairs(5, i, j, p, 0.5, chaining_action="report")
    assert kept.labels.tolist() == [0, 0, 0, 1, 1]
    assert kept.report["chaining"]["clusters_with_conflicts"] == 1
    split = cluster_pairs(5, i, j, p, 0.5, chaining_action="split", chaining_steps=[0.8, 0.95])
    assert split.labels.tolist() == [0, 0, 1, 2, 2]
    assert split.linked.tolist() == [True, False, False, True]
    assert split.report["chaining"]["clusters_with_conflicts_after"] == 0


def test_clustering_one_to_one_keeps_mutual_best_cross_source_link():
    src = np.array([0, 1, 1, 0])
    i = np.array([0, 0, 1, 2])
    j = np.array([1, 2, 3, 3])
    p = np.array([0.9, 0.8, 0.6, 0.95])
    res = cluster_pairs(4, i, j, p, 0.5, sources=src, one_to_one=True)
    assert res.linked.tolist() == [True, False, False, True]
    assert res.labels.tolist() == [0, 0, 1, 1]


# ------------------------------------------------------------------ settings, artifacts, CLI
def test_settings_reject_unknown_keys_and_load_toml(tmp_path):
    with pytest.raises(ConfigError) as err:
        LinkageSettings.from_dict({"treshold": 0.5})
    assert err.value.key == "treshold"
    with pytest.raises(ConfigError):
        LinkageSettings.from_dict({"comparisons": [{"name": "x", "kind": "fuzzy", "column": "x"}]})
    path = tmp_path / "link.toml"
    path.write_text(
        'threshold = 0.8\nmax_block_size = 50\n[[blocking_rules]]\nname = "v"\nkeys = ["v_number"]\n'
    )
    s = LinkageSettings.from_toml(path)
    assert s.threshold == 0.8 and [r.name for r in s.blocking_rules] == ["v"]
    assert LinkageSettings.from_dict(s.to_dict()) == s


def _small_world() -> pl.DataFrame:
    d = dt.date
    people = [
        ("mohamed", "benali", d(1990, 5, 17), "M", "MAR", "North Africa"),
        ("mohamed", "el amrani", d(1988, 1, 1), "M", "MAR", "North Africa"),
        ("olena", "shevchenko", d(1995, 11, 2), "F", "UKR", "Eastern Europe"),
        ("ahmad", "karimi", d(1979, 3, 30), "M", "AFG", "Asia"),
        ("fatima", "ouali", d(2001, 6, 12), "F", "DZA", "North Africa"),
    ]
    rows = []
    for k, (g, f, b, s, n, r) in enumerate(people):
        for copy, src in enumerate(["police", "police", "iom"]):
            fam = f if copy != 1 else f.replace("i", "y", 1)
            rows.append(
                {
                    "given_name": g,
                    "family_name": fam,
                    "given_name_key": g[:3].upper(),
                    "family_name_key": f[:4].upper(),
                    "birth_date": b,
                    "sex": s,
                    "nationality_iso3": n,
                    "nationality_region": r,
                    "source": src,
                    "v_number": f"12345678{k}{0}" if src == "iom" else None,
                }
            )
    return canonical(rows)


def test_link_records_writes_valid_artifacts(tmp_path):
    records = _small_world()
    result = link_records(records, LinkageSettings.from_dict({"u_sample_pairs": 1000}))
    validate(result.pairs, PairsSchema)
    validate(result.clusters, ClusterSchema)
    assert result.clusters.height == records.height
    assert (result.pairs["record_id_l"] < result.pairs["record_id_r"]).all()
    paths = write_linkage(result, tmp_path)
    assert {p.name for p in paths.values()} == {
        "pairs.parquet",
        "clusters.parquet",
        "linkage_model.json",
        "linkage_metrics.json",
    }
    again = link_records(records, LinkageSettings.from_dict({"u_sample_pairs": 1000}))
    assert again.clusters.equals(result.clusters)  # deterministic


def test_link_records_rejects_missing_columns():
    with pytest.raises(InputError) as err:
        link_records(pl.DataFrame({"record_id": [1, 2]}))
    assert "family_name" in str(err.value)


def test_cli_link(tmp_path, capsys):
    from recapture.cli import main

    path = tmp_path / "records.parquet"
    _small_world().write_parquet(path)
    settings = tmp_path / "link.toml"
    settings.write_text("u_sample_pairs = 1000\n")
    assert (
        main(
            [
                "--quiet",
                "link",
                str(path),
                "--out",
                str(tmp_path / "out"),
                "--settings",
                str(settings),
                "--threshold",
                "0.9",
            ]
        )
        == 0
    )
    clusters = pl.read_parquet(tmp_path / "out" / "clusters.parquet")
    assert clusters.height == 15
    assert main(["link", str(tmp_path / "missing.parquet"), "--out", str(tmp_path / "o")]) == 2
    assert "no such file" in capsys.readouterr().err


# ------------------------------------------------------------------ accuracy and calibration
def _pairs_of_clusters(clusters: pl.DataFrame) -> pl.DataFrame:
    c = clusters.select("record_id", "person_id")
    return (
        c.join(c, on="person_id", suffix="_r")
        .filter(pl.col("record_id") < pl.col("record_id_r"))
        .select(pl.col("record_id").alias("record_id_l"), "record_id_r")
    )


@pytest.mark.parametrize(("name", "floor"), [("febrl3", 0.995), ("febrl4", 0.998)])
def test_febrl_accuracy_and_calibration(name, floor):
    from recapture.linkage.febrl import febrl_settings, load_febrl

    records, truth = load_febrl(name)
    result = link_records(
        records, febrl_settings(link_only=(name == "febrl4"), u_sample_pairs=200_000)
    )
    found = _pairs_of_clusters(result.clusters)
    tp = found.join(truth, on=["record_id_l", "record_id_r"]).height
    f1 = 2 * tp / (found.height + truth.height)
    assert f1 >= floor
    # calibration: the expected number of matches among candidates is the true number (±1%)
    scored = result.pairs.join(
        truth.with_columns(pl.lit(1).alias("y")), on=["record_id_l", "record_id_r"], how="left"
    ).with_columns(pl.col("y").fill_null(0))
    assert scored["match_probability"].sum() == pytest.approx(scored["y"].sum(), rel=0.01)
    high = scored.filter(pl.col("match_probability") >= 0.99)
    assert high["y"].mean() >= 0.998


def test_simulated_world_accuracy_and_calibration(tmp_path):
    """Default simulated world (noise as in real registrations), threshold chosen without truth."""
    from recapture.synthetic import SimulationConfig, simulate_world, write_world
    from recapture.validation import validate_extracts

    world = simulate_world(SimulationConfig(seed=20180630))
    paths = write_world(world, tmp_path)
    records = validate_extracts(
        [(paths["police"], "police"), (paths["iom"], "iom")], as_of=dt.date(2026, 1, 1)
    ).records
    result = link_records(records)
    truth = world.records.select("source", "source_key", "person_id")
    ids = records.select("record_id", "source", "source_key").join(
        truth, on=["source", "source_key"]
    )
    assert ids.height == records.height
    true_pairs = (
        ids.join(ids, on="person_id", suffix="_r")
        .filter(pl.col("record_id") < pl.col("record_id_r"))
        .select(
            pl.col("record_id").alias("record_id_l"),
            "record_id_r",
            pl.col("source").alias("sl"),
            pl.col("source_r").alias("sr"),
        )
    )
    found = _pairs_of_clusters(result.clusters)
    found = found.join(
        ids.select(pl.col("record_id").alias("record_id_l"), pl.col("source").alias("sl")),
        on="record_id_l",
    ).join(
        ids.select("record_id", pl.col("source").alias("sr")),
        left_on="record_id_r",
        right_on="record_id",
    )
    for scope, floor in (
        ((pl.col("sl") == "police") & (pl.col("sr") == "police"), 0.95),
        (pl.col("sl") != pl.col("sr"), 0.90),
    ):
        t, f = true_pairs.filter(scope), found.filter(scope)
        tp = f.join(t, on=["record_id_l", "record_id_r"]).height
        assert 2 * tp / (f.height + t.height) >= floor
    scored = result.pairs.join(
        true_pairs.select("record_id_l", "record_id_r", pl.lit(1).alias("y")),
        on=["record_id_l", "record_id_r"],
        how="left",
    ).with_columns(pl.col("y").fill_null(0))
    # calibrated: expected matches among candidates within 3% of the true number
    assert scored["match_probability"].sum() == pytest.approx(scored["y"].sum(), rel=0.03)
