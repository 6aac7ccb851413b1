"""The validation stage end to end: faults real extracts have end in quarantine or a clear
error, never a crash or a silent drop, and the counts reconcile."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import polars as pl
import pytest

from recapture.cli import main
from recapture.errors import ConfigError, InputError
from recapture.io import read_json, read_metadata
from recapture.schemas import QuarantineSchema, RecordSchema
from recapture.validation import (
    DEFAULT_POLICY,
    MESSAGES,
    load_source_definition,
    parse_source_definition,
    validate_extracts,
)

DATA = Path(__file__).parents[1] / "data" / "validation"
AS_OF = dt.date(2020, 1, 1)

#: The police extract's columns, in the order its source definition names them.
POLICE_HEADER = list(load_source_definition("police").columns.values())
IOM_HEADER = [
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


def police_row(
    n,
    family="Amrani",
    given="Mohamed",
    birth="12-03-1990",
    sex="M",
    nat="Marokkaanse",
    vnr="1234567890",
    date="05-01-2018",
    unit="Amsterdam",
    reason="vreemdelingencontrole",
):
    return [f"PSH{n:09d}", family, given, birth, sex, nat, vnr, date, unit, reason]


def write_csv(path: Path, header, rows, *, delimiter=";", encoding="utf-8-sig", quote_all=False):
    def fmt(value):
        text = "" if value is None else str(value)
        if quote_all or delimiter in text or '"' in text:
            return '"' + text.replace('"', '""') + '"'
        return text

    lines = [delimiter.join(header)] + [delimiter.join(fmt(v) for v in row) for row in rows]
    path.write_text("\r\n".join(lines) + "\r\n", encoding=encoding)
    return path


def validate_one(path, definition="police", tmp_out=None):
    return validate_extracts([(path, definition)], tmp_out, as_of=AS_OF)


def assert_reconciles(result, rows_in):
    s = result.summary
    assert s["totals"]["rows_in"] == rows_in == result.records.height + result.quarantine.height
    assert s["totals"]["reconciled"] is True
    for f in s["files"]:
        assert f["rows_in"] == f["records"] + f["quarantined"]
    RecordSchema.validate(result.records, lazy=True)
    QuarantineSchema.validate(result.quarantine, lazy=True)


def reasons_of(result, key):
    q = result.quarantine.filter(pl.col("source_key") == key)
    assert q.height == 1, f"{key} not quarantined"
    return q["reasons"][0].to_list()


# ----------------------------------------------------------------------------- row faults
def test_row_faults_end_in_quarantine_with_every_reason(tmp_path):
    rows = [
        police_row(1),  # clean
        police_row(2, birth="31-02-1990"),  # impossible
        police_row(3, birth="01-01-2030"),  # future + after event
        police_row(4, birth="06-01-2018", date="05-01-2018"),  # birth after apprehension
        police_row(5, birth="01-06-1900"),  # age over 110
        police_row(1, family="Dup"),  # duplicate record key
        police_row(7, date="05-01-2021"),  # future apprehension
        police_row(8, date="2018-01-05"),  # unreadable apprehension date
        police_row(9, birth="1990/03/12", date=""),  # two faults at once
        police_row(10, nat="Atlantis", sex="Q", vnr="12.34"),  # warnings only
        police_row(11, birth="00-00-1985"),  # partial: fine
    ]
    path = write_csv(tmp_path / "police.csv", POLICE_HEADER, rows)
    result = validate_one(path, tmp_out=tmp_path / "out")
    assert_reconciles(result, 11)
    assert result.records["source_key"].to_list() == [f"PSH{n:09d}" for n in (1, 10, 11)]
    assert reasons_of(result, "PSH000000002") == ["birth_date.impossible"]
    assert reasons_of(result, "PSH000000003") == ["birth_date.after_event", "birth_date.future"]
    assert reasons_of(result, "PSH000000004") == ["birth_date.after_event"]
    assert reasons_of(result, "PSH000000005") == ["birth_date.age_over_max"]
    assert reasons_of(result, "PSH000000007") == ["event_date.future"]
    assert reasons_of(result, "PSH000000008") == ["event_date.unparseable"]
    assert reasons_of(result, "PSH000000009") == ["birth_date.unparseable", "event_date.missing"]
    dup = result.quarantine.filter(pl.col("source_row") == 6)
    assert dup["reasons"][0].to_list() == ["source_key.duplicate"]
    # the first occurrence is the registration
    assert result.records.filter(pl.col("source_key") == "PSH000000001")[
        "source_row"
    ].to_list() == [1]

    q = result.quarantine.filter(pl.col("source_key") == "PSH000000009").row(0, named=True)
    assert q["columns"] == ["birth_date", "event_date"]
    assert q["messages"][0] == MESSAGES["birth_date.unparseable"] + " ('1990/03/12')"
    original = json.loads(q["original"])
    assert original["geboortedatum"] == "1990/03/12" and original["datum_staandehouding"] is None
    assert list(original) == POLICE_HEADER

    warned = result.records.filter(pl.col("source_key") == "PSH000000010").row(0, named=True)
    assert sorted(warned["warnings"]) == [
        "nationality.unrecognised",
        "sex.unrecognised",
        "v_number.invalid",
    ]
    assert warned["nationality_iso3"] is None and warned["nationality_raw"] == "Atlantis"
    assert warned["v_number"] is None and warned["v_number_raw"] == "12.34"
    partial = result.records.filter(pl.col("source_key") == "PSH000000011").row(0, named=True)
    assert (partial["birth_date_quality"], partial["birth_year"], partial["birth_date"]) == (
        "year_only",
        1985,
        None,
    )

    s = result.summary
    assert s["quarantine_by_reason"]["birth_date.after_event"] == 2
    assert s["quarantine_by_column"]["birth_date"] == 5
    assert s["warnings"] == {
        "nationality.unrecognised": 1,
        "sex.unrecognised": 1,
        "v_number.invalid": 1,
    }
    assert s["unknown_nationalities"] == [{"text": "Atlantis", "count": 1}]
    assert s["sources"]["police"]["birth_date_quality"]["counts"]["year_only"] == 1
    assert s["sources"]["police"]["rows_in"] == 11
    written = read_json(tmp_path / "out" / "validation_summary.json")
    assert written["totals"] == s["totals"]
    assert read_metadata(tmp_path / "out" / "records.parquet")["artifact"] == "records"
    assert pl.read_parquet(tmp_path / "out" / "quarantine.parquet").height == 8


def test_encoding_bom_latin1_quoted_delimiters_and_trailing_spaces(tmp_path):
    rows = [
        police_row(1, family="Öztürk ", given=" Şükrü", nat=" Turkse "),
        police_row(2, family='El-Amrani; "jr"', given="Mohamed  Ali"),
        police_row(3, family="Müller", birth=" 12-03-1990 "),
    ]
    bom = validate_one(write_csv(tmp_path / "bom.csv", POLICE_HEADER, rows, encoding="utf-8-sig"))
    latin = validate_one(
        write_csv(
            tmp_path / "latin.csv",
            POLICE_HEADER,
            [r for r in rows if "Ş" not in r[2]],
            encoding="cp1252",
        )
    )
    assert_reconciles(bom, 3)
    assert_reconciles(latin, 2)
    assert bom.summary["files"][0]["encoding"] == "utf-8-sig"
    assert latin.summary["files"][0]["encoding"] == "cp1252"
    rec = bom.records.sort("source_row")
    assert rec["family_name_raw"].to_list() == ["Öztürk", 'El-Amrani; "jr"', "Müller"]
    assert rec["family_name"].to_list() == ["ozturk", "el amrani jr", "muller"]
    assert rec["given_name"].to_list()[:2] == ["sukru", "mohamed ali"]
    assert rec["nationality_iso3"].to_list()[0] == "TUR"
    assert rec["birth_date"].to_list()[2] == dt.date(1990, 3, 12)
    assert latin.records.sort("source_row")["family_name_raw"].to_list() == [
        'El-Amrani; "jr"',
        "Müller",
    ]


def test_mixed_date_formats_declared_in_the_definition(tmp_path):
    definition = tmp_path / "mixed.toml"
    base = (
        Path(__file__).parents[2] / "recapture" / "validation" / "sources" / "police.toml"
    ).read_text()
    definition.write_text(
        base.replace(
            'birth_date_formats = ["%d-%m-%Y"]',
            'birth_date_formats = ["%d-%m-%Y", "%Y-%m-%d", "%d.%m.%Y"]',
        )
    )
    rows = [
        police_row(1, birth="12-03-1990"),
        police_row(2, birth="1990-03-12"),
        police_row(3, birth="12.03.1990"),
        police_row(4, birth="12/03/1990"),
    ]
    result = validate_one(write_csv(tmp_path / "police.csv", POLICE_HEADER, rows), str(definition))
    assert_reconciles(result, 4)
    assert result.records["birth_date"].to_list() == [dt.date(1990, 3, 12)] * 3
    assert reasons_of(result, "PSH000000004") == ["birth_date.unparseable"]


def test_policy_turns_errors_into_warnings(tmp_path):
    base = (
        Path(__file__).parents[2] / "recapture" / "validation" / "sources" / "police.toml"
    ).read_text()
    definition = tmp_path / "lenient.toml"
    definition.write_text(
        base
        + '\n[policy]\n"birth_date.impossible" = "warning"\n"source_key.duplicate" = "warning"\n'
    )
    rows = [police_row(1, birth="31-02-1990"), police_row(1)]
    result = validate_one(write_csv(tmp_path / "police.csv", POLICE_HEADER, rows), str(definition))
    assert_reconciles(result, 2)
    assert result.quarantine.height == 0
    first, second = result.records.sort("source_row").iter_rows(named=True)
    assert first["warnings"] == ["birth_date.impossible"]
    assert (
        first["birth_date"] is None
        and first["birth_year"] is None
        and first["birth_date_raw"] == "31-02-1990"
    )
    assert first["birth_date_quality"] == "missing"
    assert second["warnings"] == ["source_key.duplicate"]


def test_iom_extract_and_target_population(tmp_path):
    rows = [
        [
            "IOM-0000001",
            "Amrani",
            "Mohamed",
            "1990-03-12",
            "Male",
            "Moroccan",
            "1234.567.890",
            "2018-02-01",
            "irregular",
        ],
        ["IOM-0000002", "Tesfaye", "Selam", "1992", "Female", "ER", "", "2018-02-02", "dublin"],
        [
            "IOM-0000003",
            "Nguyen",
            "Lan",
            "",
            "Unknown",
            "Unknown",
            "",
            "2018-02-03",
            "pending_procedure",
        ],
        ["IOM-0000004", "Doe", "Jan", "1980-01-01", "Male", "Ghana", "", "2018-02-04", "tourist"],
        ["IOM-0000005", "Doe", "Jan", "1980-01-01", "Male", "Ghana", "", "2018-02-04", ""],
        ["IOM-123", "Doe", "Jan", "1980-01-01", "Male", "Ghana", "", "2018-02-04", "irregular"],
    ]
    path = write_csv(tmp_path / "iom.csv", IOM_HEADER, rows, delimiter=",", encoding="cp1252")
    result = validate_one(path, "iom")
    assert_reconciles(result, 6)
    rec = result.records.sort("source_row")
    assert rec["in_target"].to_list() == [True, False, False]
    assert rec["v_number"].to_list() == ["1234567890", None, None]
    assert rec["sex"].to_list() == ["M", "F", None]
    assert rec["birth_date_quality"].to_list() == ["full", "year_only", "missing"]
    assert rec["nationality_iso3"].to_list() == ["MAR", "ERI", None]
    assert rec["warnings"].to_list() == [[], [], []]  # "Unknown" is a known way to say unknown
    assert reasons_of(result, "IOM-0000004") == ["client_category.unrecognised"]
    assert reasons_of(result, "IOM-0000005") == ["client_category.missing"]
    assert reasons_of(result, "IOM-123") == ["source_key.format"]
    assert result.summary["sources"]["iom"]["in_target"] == {"in": 1, "out": 2}


def test_two_sources_stacked_with_deterministic_record_ids(tmp_path):
    police = write_csv(tmp_path / "police.csv", POLICE_HEADER, [police_row(i) for i in range(1, 4)])
    iom = write_csv(
        tmp_path / "iom.csv",
        IOM_HEADER,
        [["IOM-0000001", "A", "B", "1990", "Male", "MAR", "", "2018-02-01", "irregular"]],
        delimiter=",",
    )
    a = validate_extracts([(police, "police"), (iom, "iom")], tmp_path / "a", as_of=AS_OF)
    b = validate_extracts([(police, "police"), (iom, "iom")], tmp_path / "b", as_of=AS_OF)
    assert a.records["record_id"].to_list() == [0, 1, 2, 3]
    assert a.records["source"].to_list() == ["police"] * 3 + ["iom"]
    assert a.records.equals(b.records)
    assert set(a.summary["sources"]) == {"police", "iom"}
    assert a.summary["totals"]["rows_in"] == 4


def test_blank_and_ragged_rows_are_quarantined_not_dropped(tmp_path):
    path = tmp_path / "police.csv"
    good = ";".join(police_row(1))
    ragged = ";".join(police_row(2)) + ";extra;fields"
    path.write_text(
        ";".join(POLICE_HEADER) + "\n" + good + "\n\n" + ragged + "\n", encoding="utf-8"
    )
    result = validate_one(path)
    assert_reconciles(result, 3)
    assert (
        result.quarantine.filter(pl.col("source_row") == 2)["reasons"][0].to_list()[0]
        == "event_date.missing"
    )
    assert (
        "row.empty" in result.quarantine.filter(pl.col("source_row") == 2)["reasons"][0].to_list()
    )
    r = result.quarantine.filter(pl.col("source_row") == 3).row(0, named=True)
    assert r["reasons"] == ["row.too_many_fields"]
    assert json.loads(r["original"])["_extra_fields"] == "extra;fields"


# ----------------------------------------------------------------------------- whole-file faults
@pytest.mark.parametrize(
    "content, fragment",
    [
        (b"", "empty file"),
        (b"\xef\xbb\xbf\r\n", "empty file"),
        ((";".join(POLICE_HEADER) + "\r\n").encode(), "header only"),
        (
            (",".join(POLICE_HEADER) + "\n" + ",".join(police_row(1)) + "\n").encode(),
            "only one column",
        ),
        (
            (";".join(POLICE_HEADER[:-2]) + "\n" + ";".join(police_row(1)[:-2]) + "\n").encode(),
            "required columns missing: eenheid, reden",
        ),
        (
            (
                ";".join([*POLICE_HEADER, "opmerking"])
                + "\n"
                + ";".join([*police_row(1), "x"])
                + "\n"
            ).encode(),
            "unknown columns: opmerking",
        ),
        (
            (
                ";".join([*POLICE_HEADER, "Achternaam "])
                + "\n"
                + ";".join([*police_row(1), "x"])
                + "\n"
            ).encode(),
            "column names repeated in the header: achternaam",
        ),
    ],
    ids=[
        "empty",
        "bom-only",
        "header-only",
        "wrong-delimiter",
        "missing-columns",
        "unknown-column",
        "repeated-column",
    ],
)
def test_whole_file_faults_raise_and_write_nothing(tmp_path, content, fragment):
    path = tmp_path / "police.csv"
    path.write_bytes(content)
    out = tmp_path / "out"
    with pytest.raises(InputError) as info:
        validate_extracts([(path, "police")], out, as_of=AS_OF)
    assert fragment in str(info.value)
    assert str(path) in str(info.value)
    assert not out.exists()


def test_a_bad_second_file_leaves_nothing_written(tmp_path):
    good = write_csv(tmp_path / "police.csv", POLICE_HEADER, [police_row(1)])
    bad = tmp_path / "iom.csv"
    bad.write_text("")
    with pytest.raises(InputError, match="empty file"):
        validate_extracts([(good, "police"), (bad, "iom")], tmp_path / "out", as_of=AS_OF)
    assert not (tmp_path / "out").exists()


def test_unreadable_parquet_and_missing_file(tmp_path):
    bad = tmp_path / "police.parquet"
    bad.write_bytes(b"not parquet at all")
    with pytest.raises(InputError, match="cannot read as Parquet"):
        validate_one(bad)
    with pytest.raises(InputError, match="no such file"):
        validate_one(tmp_path / "nope.csv")


def test_parquet_input_with_typed_dates(tmp_path):
    frame = pl.DataFrame(
        [police_row(1), police_row(2, birth="00-00-1970")], schema=POLICE_HEADER, orient="row"
    )
    frame = frame.with_columns(pl.col("datum_staandehouding").str.to_date("%d-%m-%Y"))
    frame.write_parquet(tmp_path / "police.parquet")
    result = validate_one(tmp_path / "police.parquet")
    assert_reconciles(result, 2)
    assert result.records["event_date"].to_list() == [dt.date(2018, 1, 5)] * 2
    assert result.records["birth_date_quality"].to_list() == ["full", "year_only"]
    assert result.summary["files"][0]["format"] == "parquet"


# ----------------------------------------------------------------------------- definitions
def test_hand_written_layout_needs_only_a_new_definition():
    definition = load_source_definition(DATA / "kmar_2019.toml")
    assert definition.name == "kmar" and definition.delimiter == "|"
    result = validate_extracts([(DATA / "kmar_2019.csv", DATA / "kmar_2019.toml")], as_of=AS_OF)
    assert_reconciles(result, 5)
    rec = result.records.sort("source_row")
    assert rec["source_key"].to_list() == ["K-0001", "K-0002", "K-0003"]
    assert rec["birth_date"].to_list() == [dt.date(1990, 3, 12), dt.date(1985, 7, 3), None]
    assert rec["birth_date_quality"].to_list() == ["full", "full", "year_only"]
    assert rec["nationality_iso3"].to_list() == ["MAR", "POL", "VNM"]
    assert rec["sex"].to_list() == ["M", "F", None]
    assert rec["reason"].to_list() == ["immigration_check", "other", "criminal_offence"]
    assert rec["v_number"].to_list() == ["1234567890", None, None]
    assert rec["warnings"].to_list() == [[], [], []]
    assert reasons_of(result, "K-0004") == ["birth_date.impossible"]
    assert reasons_of(result, "K-0005") == ["birth_date.age_over_max", "nationality.unrecognised"]


def test_builtin_definitions_match_the_documented_layouts():
    doc = (Path(__file__).parents[2] / "docs" / "extracts.md").read_text(encoding="utf-8")
    police, iom = load_source_definition("police"), load_source_definition("iom")
    police_part = doc.split("## Police apprehensions")[1].split("## IOM")[0]
    iom_part = doc.split("## IOM assisted returns")[1].split("## Truth")[0]
    for definition, part in ((police, police_part), (iom, iom_part)):
        documented = [
            line.split("|")[1].strip().strip("`")
            for line in part.splitlines()
            if line.startswith("| `")
        ]
        assert definition.extract_columns == documented
    assert (police.delimiter, iom.delimiter) == (";", ",")
    assert police.encoding == "utf-8-sig" and iom.encoding == "cp1252"
    assert set(iom.client_categories_not_in_target) == {"pending_procedure", "dublin"}


@pytest.mark.parametrize(
    "patch, key",
    [
        ({"colour": "blue"}, "colour"),
        ({"file": {"delimter": ";"}}, "file.delimter"),
        ({"columns": {"surname": "x"}}, "columns.surname"),
        ({"policy": {"birth_date.wrong": "error"}}, "policy.birth_date.wrong"),
        ({"policy": {"birth_date.impossible": "fatal"}}, "policy.birth_date.impossible"),
        ({"dates": {"birth_date_formats": ["%d-%B-%Y"]}}, "dates.birth_date_formats"),
        ({"codes": {"sex": {"X": ["x"]}}}, "codes.sex.X"),
        ({"kind": "customs"}, "kind"),
    ],
)
def test_bad_definition_keys_raise_config_error_naming_the_key(patch, key):
    data = {"name": "t", "kind": "police", "columns": {"event_date": "d"}}
    for k, v in patch.items():
        data[k] = {**data[k], **v} if isinstance(v, dict) and isinstance(data.get(k), dict) else v
    with pytest.raises(ConfigError) as info:
        parse_source_definition(data, "t.toml")
    assert info.value.key == key


def test_every_check_has_a_message_and_a_documented_policy():
    doc = (Path(__file__).parents[2] / "docs" / "validation.md").read_text(encoding="utf-8")
    for code, level in DEFAULT_POLICY.items():
        assert code in MESSAGES
        assert f"`{code}`" in doc and level in doc


# ----------------------------------------------------------------------------- CLI
def test_cli_validate_and_its_error_exit(tmp_path, capsys):
    src = write_csv(
        tmp_path / "police.csv", POLICE_HEADER, [police_row(1), police_row(2, birth="31-02-1990")]
    )
    out = tmp_path / "run"
    assert main(["--quiet", "validate", str(src), "-o", str(out), "--as-of", "2020-01-01"]) == 0
    assert "2 rows in: 1 records, 1 quarantined" in capsys.readouterr().out
    assert (out / "records.parquet").exists() and (out / "validation_summary.json").exists()
    shutil.copy(DATA / "kmar_2019.csv", tmp_path / "export.csv")
    assert (
        main(
            [
                "--quiet",
                "validate",
                "-i",
                str(DATA / "kmar_2019.toml"),
                str(tmp_path / "export.csv"),
                "-o",
                str(tmp_path / "k"),
                "--as-of",
                "2020-01-01",
            ]
        )
        == 0
    )
    empty = tmp_path / "e" / "police.csv"
    empty.parent.mkdir()
    empty.write_text("")
    assert main(["--quiet", "validate", str(empty), "-o", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "empty file" in err and "Traceback" not in err
    assert (
        main(["--quiet", "validate", str(tmp_path / "export.csv"), "-o", str(tmp_path / "y")]) == 2
    )
    assert "--input DEFINITION" in capsys.readouterr().err


def test_stray_quote_is_read_leniently_and_an_unclosed_quote_is_a_clear_error(tmp_path):
    stray = tmp_path / "police.csv"
    rows = [";".join(police_row(1, family='O"Brien')), ";".join(police_row(2))]
    stray.write_text(";".join(POLICE_HEADER) + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    result = validate_one(stray)
    assert_reconciles(result, 2)
    assert result.summary["files"][0]["parser"] == "lenient"
    assert result.records.sort("source_row")["family_name_raw"].to_list() == ['O"Brien', "Amrani"]

    unclosed = tmp_path / "unclosed" / "police.csv"
    unclosed.parent.mkdir()
    rows = [
        ";".join(police_row(1)),
        ";".join(police_row(2, family='"Amrani')),
        ";".join(police_row(3)),
    ]
    unclosed.write_text(";".join(POLICE_HEADER) + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    with pytest.raises(InputError, match="never closed") as info:
        validate_one(unclosed)
    assert info.value.row == 2


def test_utf16_with_byte_order_mark_is_decoded(tmp_path):
    path = write_csv(
        tmp_path / "police.csv", POLICE_HEADER, [police_row(1, family="Öztürk")], encoding="utf-16"
    )
    result = validate_one(path)
    assert result.summary["files"][0]["encoding"] == "utf-16"
    assert result.records["family_name"].to_list() == ["ozturk"]
