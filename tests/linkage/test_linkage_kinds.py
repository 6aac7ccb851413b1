"""Comparison kinds as registered parts; the batch entry points; strict settings loading."""

from __future__ import annotations

import datetime as dt
import pickle

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from test_linkage import canonical

from recapture.errors import ConfigError, InputError
from recapture.linkage import (
    ComparisonKind,
    LinkageSettings,
    PreparedRecords,
    compare_batch,
    link_records,
    register_kind,
    score_batch,
)
from recapture.linkage.blocking import ROW
from recapture.linkage.comparisons import compare_pairs
from recapture.linkage.kinds import KINDS

D = dt.date
PEOPLE = [
    {
        "family_name": "el amrani",
        "family_name_key": "LMRN",
        "given_name": "mohamed",
        "given_name_key": "MHMT",
        "birth_date": D(1990, 3, 7),
        "sex": "M",
        "nationality_iso3": "MAR",
        "nationality_region": "North Africa",
        "v_number": "1234567890",
    },
    {  # names swapped, transliteration variant, day and month swapped, one V-number edit
        "family_name": "mohammed",
        "family_name_key": "MHMT",
        "given_name": "el amrany",
        "given_name_key": "LMRN",
        "birth_date": D(1990, 7, 3),
        "sex": "M",
        "nationality_iso3": "MAR",
        "nationality_region": "North Africa",
        "v_number": "1234567809",
    },
    {
        "family_name": "janssen",
        "family_name_key": "JNSN",
        "given_name": "piet",
        "given_name_key": "PT",
        "birth_year": 1975,
        "birth_date_quality": "year_only",
        "sex": "M",
        "nationality_iso3": "NLD",
        "nationality_region": "Western Europe",
    },
    {"family_name": "el amrani", "family_name_key": "LMRN", "sex": "F"},
]


def _prepared(records, settings):
    recs = records.sort("record_id").with_row_index(ROW)
    return recs, PreparedRecords.build(recs, settings)


def _value_batch(recs: pl.DataFrame, settings, i, j) -> pa.RecordBatch:
    cols = sorted(settings.required_columns() - {settings.record_id})
    left = recs[i.tolist()].select([pl.col(c).alias(f"{c}_l") for c in cols])
    right = recs[j.tolist()].select([pl.col(c).alias(f"{c}_r") for c in cols])
    return pl.concat([left, right], how="horizontal").to_arrow().to_batches()[0]


def test_compare_batch_on_values_equals_positions():
    """A worker that gets the values of a pair computes what the local engine computes."""
    settings = LinkageSettings.default()
    recs, prep = _prepared(canonical(PEOPLE), settings)
    i, j = np.triu_indices(recs.height, k=1)
    by_rows = compare_batch(settings, prep, pa.RecordBatch.from_pydict({"row_l": i, "row_r": j}))
    shipped = pickle.loads(pickle.dumps(prep.for_batches()))  # as broadcast to workers
    by_values = compare_batch(settings, shipped, _value_batch(recs, settings, i, j))
    assert by_rows.schema.names == by_values.schema.names
    assert by_rows.equals(by_values)
    assert by_rows.column("names_swapped").to_pylist()[0] is True
    assert "tf_names_joint" in by_rows.schema.names


def test_compare_batch_names_an_unknown_value():
    settings = LinkageSettings.default()
    recs, prep = _prepared(canonical(PEOPLE), settings)
    batch = _value_batch(recs, settings, np.array([0]), np.array([2]))
    batch = batch.set_column(
        batch.schema.get_field_index("family_name_l"),
        "family_name_l",
        pa.array(["never seen"]),
    )
    with pytest.raises(InputError, match="family_name.*vocabulary|vocabulary.*family_name"):
        compare_batch(settings, prep.for_batches(), batch)


def test_score_batch_is_what_the_engine_scores():
    settings = LinkageSettings.from_dict({"u_sample_pairs": 20_000, "workers": 1})
    rng = np.random.default_rng(3)
    rows = []
    for k in range(300):  # 150 people, each registered twice
        person = dict(PEOPLE[0])
        person["family_name"] = f"name{k // 2}"
        person["family_name_key"] = f"K{k // 2}"
        person["given_name"] = ["ali", "omar", "said"][int(rng.integers(3))]
        person["given_name_key"] = person["given_name"].upper()
        person["birth_date"] = D(1960 + (k // 2) % 40, 1 + (k // 2) % 12, 1 + (k // 2) % 28)
        person["v_number"] = None
        person["source"] = "police" if k % 3 else "iom"
        rows.append(person)
    result = link_records(canonical(rows), settings)
    recs, prep = _prepared(canonical(rows), settings)
    ids = recs["record_id"].to_numpy()
    pos = {int(r): k for k, r in enumerate(ids)}
    i = np.array([pos[r] for r in result.pairs["record_id_l"]])
    j = np.array([pos[r] for r in result.pairs["record_id_r"]])
    levels = compare_batch(settings, prep, pa.RecordBatch.from_pydict({"row_l": i, "row_r": j}))
    src = recs["source"].to_numpy()
    names = np.unique(src)
    code = np.searchsorted(names, src)
    group = np.minimum(code[i], code[j]) * names.size + np.maximum(code[i], code[j])
    scored = score_batch(result.model, levels.append_column("prior_group", pa.array(group)))
    np.testing.assert_allclose(
        scored.column("match_weight").to_numpy(), result.pairs["match_weight"].to_numpy()
    )


@register_kind
class _YearDistance(ComparisonKind):
    """A kind defined in a few lines: |a - b| within ``within`` years."""

    name = "test_year_distance"
    options = {"within": (int, 2)}

    def level_names(self, comp):
        return ["else", "close", "exact"]

    def columns(self, comp):
        return {comp.column: "int"}

    def compare(self, comp, pairs):
        a, b = pairs.left(comp.column), pairs.right(comp.column)
        gamma = np.where(a == b, 2, np.where(np.abs(a - b) <= comp.option("within"), 1, 0))
        return np.where((a < 0) | (b < 0), -1, gamma).astype(np.int8)


def test_a_kind_added_with_a_small_class_runs_without_engine_changes():
    assert "test_year_distance" in KINDS
    data = {
        "comparisons": LinkageSettings.default().to_dict()["comparisons"]
        + [
            {
                "name": "year_near",
                "kind": "test_year_distance",
                "column": "birth_year",
                "options": {"within": 1},
            }
        ]
    }
    settings = LinkageSettings.from_dict(data)
    recs, prep = _prepared(canonical(PEOPLE), settings)
    gammas, _, _ = compare_pairs(prep, np.array([0, 0, 0]), np.array([1, 2, 3]))
    assert gammas["year_near"].tolist() == [2, 0, -1]
    with pytest.raises(ConfigError, match=r"comparisons\[6\]\.options\.radius"):
        LinkageSettings.from_dict(
            {
                "comparisons": data["comparisons"][:6]
                + [dict(data["comparisons"][6], options={"radius": 1})]
            }
        )
    with pytest.raises(ConfigError, match=r"comparisons\[6\]\.options\.within"):
        LinkageSettings.from_dict(
            {
                "comparisons": data["comparisons"][:6]
                + [dict(data["comparisons"][6], options={"within": "1"})]
            }
        )


def test_person_columns_for_name_frequencies_live_in_settings():
    """Name frequencies count people told apart by ``tf_person_columns``: with only the
    names, five registrations of one man count once, and so do two namesakes."""
    rows = [dict(PEOPLE[0])] * 5 + [dict(PEOPLE[0], birth_date=D(1950, 1, 2))] + PEOPLE[2:3]
    default = LinkageSettings.from_dict({"tf_pseudo_people": 0.0})
    names_only = LinkageSettings.from_dict({"tf_person_columns": [], "tf_pseudo_people": 0.0})
    _, p1 = _prepared(canonical(rows), default)
    _, p2 = _prepared(canonical(rows), names_only)
    code = int(p1.codes["family_name"][0])
    assert p1.tf["family_name"][code] == pytest.approx(2 / 3)  # two people named el amrani
    assert p2.tf["family_name"][code] == pytest.approx(1 / 2)  # one name pair among two


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("seed = 'x'\n", "seed"),
        ("threshold = true\n", "threshold"),
        ("workers = 1.5\n", "workers"),
        ("name_swap = ['a', 2]\n", "name_swap"),
        ("colour = 1\n", "colour"),
        ("[[comparisons]]\nname = 'a'\nkind = 'exact'\ncolumn = 3\n", "comparisons[0].column"),
        ("[[comparisons]]\nname = 'a'\nkind = 'exact'\ncolum = 'x'\n", "comparisons[0].colum"),
        ("[[comparisons]]\nname = 'a'\nkind = 'fuzzy'\ncolumn = 'x'\n", "comparisons[0].kind"),
        (
            "[[blocking_rules]]\nname = 'r'\nkeys = 'family_name'\n",
            "blocking_rules[0].keys",
        ),
        (
            "[[comparisons]]\nname = 'a'\nkind = 'string'\ncolumn = 'x'\ntf = 1\n",
            "comparisons[0].tf",
        ),
    ],
)
def test_toml_settings_are_strict(tmp_path, text, key):
    path = tmp_path / "link.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        LinkageSettings.from_toml(path)
    assert err.value.file == str(path)
    assert err.value.key == key
    assert str(path) in str(err.value) and f"'{key}'" in str(err.value)


def test_identical_records_say_why_the_model_cannot_fit():
    """60 copies of one registration: no pair of different people to learn u from."""
    with pytest.raises(InputError, match="too few distinct people"):
        link_records(canonical([PEOPLE[0]] * 60), LinkageSettings.from_dict({"workers": 1}))


def test_v_number_both_missing_can_be_a_level_of_its_own():
    """A person without a V-number lacks it in every registration: with
    ``both_missing_level`` two records both without one get their own level (own m and u)
    instead of neutral."""
    comps = LinkageSettings.default().to_dict()["comparisons"]
    for c in comps:
        if c["name"] == "v_number":
            c["both_missing_level"] = True
    settings = LinkageSettings.from_dict({"comparisons": comps})
    names = next(c for c in settings.comparisons if c.name == "v_number").level_names()
    assert names == ["else", "both_missing", "one_side_only", "one_edit", "exact"]
    rows = [PEOPLE[0], PEOPLE[1], PEOPLE[2], PEOPLE[3]]
    recs, prep = _prepared(canonical(rows), settings)
    gammas, _, _ = compare_pairs(prep, np.array([0, 0, 2]), np.array([1, 2, 3]))
    assert [names[g] for g in gammas["v_number"]] == ["one_edit", "one_side_only", "both_missing"]


def test_plus_n_blocking_key_pairs_a_year_with_the_next():
    """``plus1(birth_year)`` as a right key: a given name, nationality and sex agreeing with
    birth years one apart make a candidate pair, in either order."""
    from recapture.linkage.blocking import block
    from recapture.linkage.settings import BlockingRule

    base = {"given_name_key": "MHMT", "nationality_iso3": "MAR", "sex": "M"}
    rows = [
        dict(base, birth_year=1990),
        dict(base, birth_year=1991),
        dict(base, birth_year=1989),
        dict(base, birth_year=1993),
    ]
    recs = canonical(rows).sort("record_id").with_row_index(ROW)
    keys = ["given_name_key", "nationality_iso3", "sex"]
    rule = BlockingRule("year_apart", keys + ["birth_year"], keys + ["plus1(birth_year)"])
    got = block(recs, [rule], 100)
    assert sorted(zip(got.i.tolist(), got.j.tolist(), strict=True)) == [(0, 1), (0, 2)]
    with pytest.raises(ConfigError, match="blocking key"):
        LinkageSettings.from_dict({"blocking_rules": [{"name": "x", "keys": ["plus(birth_year)"]}]})


def test_an_optional_comparison_is_left_out_when_its_column_is_absent():
    """The default police-unit comparison needs a column that not every extract has:
    without it the records link with the other comparisons; with it a shared unit is a
    level, a unit on one side only (an IOM registration) is neutral."""
    settings = LinkageSettings.default()
    rows = [dict(p) for p in PEOPLE[:4]]
    without = canonical(rows).drop("police_unit")
    kept = settings.for_columns(without.columns)
    assert "police_unit" not in [c.name for c in kept.comparisons]
    assert [c.name for c in kept.comparisons] == [
        c.name for c in settings.comparisons if c.name != "police_unit"
    ]
    assert settings.for_columns(canonical(rows).columns) is settings
    result = link_records(without, settings)
    assert "gamma_police_unit" not in result.pairs.columns
    assert [c.name for c in result.settings.comparisons] == [c.name for c in kept.comparisons]

    for row, unit in zip(rows, ["Amsterdam", "Amsterdam", "Rotterdam", None], strict=True):
        row["police_unit"] = unit
    recs, prep = _prepared(canonical(rows), settings)
    names = next(c for c in settings.comparisons if c.name == "police_unit").level_names()
    gammas, _, _ = compare_pairs(prep, np.array([0, 0, 0]), np.array([1, 2, 3]))
    assert [names[g] if g >= 0 else "missing" for g in gammas["police_unit"]] == [
        "exact",
        "else",
        "missing",
    ]


def test_key_similarity_lifts_names_written_down_by_ear():
    """Yowusu / Owousou (Jaro–Winkler 0.849) and Huseynov / Guseinov (0.833) fall below
    both name thresholds, while their transliteration keys are close (0.917, 0.867): with
    ``key_similarity`` the key's similarity counts, so both reach ``jw_0.85``. A pair whose
    keys are far apart too (Zhang / Cheung) stays ``else``, and names with equal keys stay
    at ``key``."""
    from recapture.validation.standardise import name_keys

    names = ["yowusu", "owousou", "huseynov", "guseinov", "zhang", "cheung", "ibrahim", "ebrahim"]
    keys = name_keys(pl.Series(names)).to_list()
    rows = [{"family_name": n, "family_name_key": k} for n, k in zip(names, keys, strict=True)]

    def levels(on: bool) -> list[str]:
        comps = LinkageSettings.default().to_dict()["comparisons"]
        for c in comps:
            if c["name"] == "family_name":
                c["options"] = {"key_similarity": on}
        settings = LinkageSettings.from_dict({"comparisons": comps})
        comp = next(c for c in settings.comparisons if c.name == "family_name")
        _, prep = _prepared(canonical(rows), settings)
        gammas, _, _ = compare_pairs(prep, np.array([0, 2, 4, 6]), np.array([1, 3, 5, 7]))
        return [comp.level_names()[g] for g in gammas["family_name"]]

    assert levels(False) == ["else", "else", "else", "key"]
    assert levels(True) == ["jw_0.85", "jw_0.85", "else", "key"]
    assert LinkageSettings.default().comparisons[0].option("key_similarity") is True


def test_key_similarity_needs_a_key_column():
    with pytest.raises(ConfigError) as err:
        LinkageSettings.from_dict(
            {
                "comparisons": [
                    {
                        "name": "a",
                        "kind": "string",
                        "column": "family_name",
                        "options": {"key_similarity": True},
                    }
                ]
            }
        )
    assert err.value.key == "comparisons[0].options.key_similarity"


def test_key_similarity_follows_keys_that_are_not_a_function_of_the_name():
    """Keys are compared once per pair of names when each name has one key; a key column
    that gives one name two keys is compared pair by pair."""
    rows = [
        {"family_name": "yowusu", "family_name_key": "jufs"},
        {"family_name": "owousou", "family_name_key": "ufs"},
        {"family_name": "owousou", "family_name_key": "qqqq"},
    ]
    settings = LinkageSettings.default()
    comp = next(c for c in settings.comparisons if c.name == "family_name")
    _, prep = _prepared(canonical(rows), settings)
    gammas, _, _ = compare_pairs(prep, np.array([0, 0]), np.array([1, 2]))
    assert [comp.level_names()[g] for g in gammas["family_name"]] == ["jw_0.85", "else"]


def test_key_similarity_per_pair_of_names_equals_per_pair_of_records():
    """The local engine compares keys once per pair of names (the records give each name
    one key); a worker without the records compares them pair by pair, swapped names
    included. Both give the same levels."""
    from recapture.validation.standardise import name_keys

    # as validation keys them: a given name by its first name, so "owousou kofi" has the
    # family key of "owousou" in the given-name column only
    extra = [("kwame", "yowusu"), ("owousou kofi", "kwami"), ("mohamed", "owousou")]
    given_keys = name_keys(pl.Series([g.split()[0] for g, _ in extra])).to_list()
    family_keys = name_keys(pl.Series([f for _, f in extra])).to_list()
    rows = PEOPLE + [
        {"given_name": g, "given_name_key": gk, "family_name": f, "family_name_key": fk}
        for (g, f), gk, fk in zip(extra, given_keys, family_keys, strict=True)
    ]
    settings = LinkageSettings.default()
    recs, prep = _prepared(canonical(rows), settings)
    shipped = pickle.loads(pickle.dumps(prep.for_batches()))  # before any key map is made
    i, j = np.triu_indices(recs.height, k=1)
    by_rows = compare_batch(settings, prep, pa.RecordBatch.from_pydict({"row_l": i, "row_r": j}))
    assert prep.key_of_value["family_name"] is not None and not shipped.key_of_value
    by_values = compare_batch(settings, shipped, _value_batch(recs, settings, i, j))
    assert by_rows.equals(by_values)
    levels = next(c for c in settings.comparisons if c.name == "family_name").level_names()
    pair = {(int(a), int(b)): k for k, (a, b) in enumerate(zip(i, j, strict=True))}
    swapped = by_rows.column("names_swapped").to_pylist()
    family = by_rows.column("gamma_family_name").to_pylist()
    assert swapped[pair[(4, 5)]] and levels[family[pair[(4, 5)]]] == "jw_0.85"
    assert not swapped[pair[(4, 6)]] and levels[family[pair[(4, 6)]]] == "jw_0.85"
