"""Extracts and options as a hostile or careless user would give them: each ends in records,
quarantine or one clear line with exit status 2 — never a traceback, a hang, a silent
null, a formula run by a spreadsheet or free text in a default report."""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from recapture.cli import main
from recapture.errors import ConfigError, InputError
from recapture.validation import load_source_definition, parse_source_definition, validate_extracts
from recapture.validation.standardise import standardise_names, transliterate

AS_OF = dt.date(2020, 1, 1)
ROOT = Path(__file__).parents[2]
POLICE_HEADER = (
    "registratienummer;achternaam;voornamen;geboortedatum;geslacht;nationaliteit;vnummer;"
    "datum_staandehouding;eenheid;reden"
)


def row(n, family="Amrani", given="Mohamed", birth="12-03-1990", date="05-01-2018", unit="Utrecht"):
    return f"PSH{n:09d};{family};{given};{birth};M;Marokkaanse;1234567890;{date};{unit};overig"


def police_file(path: Path, rows: list[str], *, newline="\r\n", encoding="utf-8") -> Path:
    path.write_bytes((newline.join([POLICE_HEADER, *rows]) + newline).encode(encoding))
    return path


def validate(path, definition="police"):
    return validate_extracts([(path, definition)], None, as_of=AS_OF)


def reasons(result, key: str) -> list[str]:
    q = result.quarantine.filter(pl.col("source_key") == key)
    assert q.height == 1, f"{key} not quarantined"
    return q["reasons"][0].to_list()


def cli(args: list[str], capsys) -> tuple[int, str]:
    code = main(["--quiet", *args])
    err = capsys.readouterr().err.strip()
    return code, err


def police_definition(**limits) -> dict:
    """The built-in police definition as a TOML table, to vary one key."""
    import tomllib

    text = (ROOT / "recapture" / "validation" / "sources" / "police.toml").read_text("utf-8")
    data = tomllib.loads(text)
    if limits:
        data["limits"] = limits
    return data


# ------------------------------------------------------------------ 3. CSV formula injection
FORMULAS = ['=HYPERLINK("http://evil.example","x")', "@SUM(A1:A9)", "=1+1", "+31", "-2+3", "\tx"]


def test_review_export_neutralises_formulas_and_reads_its_own_export_back(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    n = 12
    pl.DataFrame(
        {
            "record_id": list(range(n)),
            "source": ["police"] * n,
            "source_key": [f"=K{i}" for i in range(n)],
            "family_name_raw": [FORMULAS[i % len(FORMULAS)] for i in range(n)],
            "given_name_raw": ["@cmd|' /C calc'!A0"] * n,
            "family_name": ["x"] * n,
        }
    ).write_parquet(run / "records.parquet")
    pl.DataFrame(
        {
            "record_id_l": list(range(0, n, 2)),
            "record_id_r": list(range(1, n, 2)),
            "match_probability": [0.05, 0.2, 0.45, 0.55, 0.8, 0.97],
            "match_weight": [-4.2, -2.0, -0.3, 0.3, 2.0, 5.0],
        }
    ).write_parquet(run / "pairs.parquet")
    out = tmp_path / "review.csv"
    code, err = cli(["review", "export", str(run), "--out", str(out), "--threshold", "0.5"], capsys)
    assert code == 0, err
    text = out.read_text(encoding="utf-8")
    cells = [c for r in csv.reader(io.StringIO(text, newline="")) for c in r]
    for cell in cells:
        if cell[:1] in ("=", "+", "-", "@", "\t", "\r"):
            float(cell)  # only numbers (negative match weights) may start so
    for formula in FORMULAS:
        assert "'" + formula in cells
    assert "'=K0" in cells and "'@cmd|' /C calc'!A0" in cells
    # the reviewer fills the labels; the export reads back as is
    frame = pl.read_csv(out, infer_schema=False)
    frame = frame.with_columns(
        label=pl.when(pl.col("match_probability").cast(pl.Float64) > 0.5)
        .then(pl.lit("match"))
        .otherwise(pl.lit("non-match"))
    )
    frame.write_csv(out)
    code, err = cli(["review", "estimate", str(out)], capsys)
    assert code == 0, err


# ------------------------------------------------------------------ 4. free text in reports
def test_free_text_strata_levels_are_numbered_unless_show_names(tmp_path):
    from recapture.estimators import estimate
    from recapture.reports import estimate_report

    secret = "Jan Jansen 01-01-1990"
    persons = pl.DataFrame(
        {
            "n_police": [1, 1, 2, 1, 3, 1, 1, 2, 1, 1, 1, 2] * 5,
            "police_unit": (["Utrecht", secret, "Den Haag"] * 4) * 5,
            "sex": (["M", "F"] * 6) * 5,
        }
    )
    fit = estimate(persons, "ztpoisson", formula="~ police_unit + sex", count="n_police")
    default = (estimate_report([fit], tmp_path / "e.html")).read_text("utf-8")
    assert "Jansen" not in default and "Utrecht" not in default
    assert "level 1" in default and "police_unit are free text" in default
    assert "police_unit[T.level 3]" in default  # coefficient names in warnings, too
    assert ">M<" in default  # sex is code-listed: its levels are shown
    named = estimate_report([fit], tmp_path / "n.html", show_names=True).read_text("utf-8")
    assert "Jan Jansen 01-01-1990" in named and 'id="names-banner"' in named


# ------------------------------------------------------------------ 5. first lines of other files
def test_one_column_error_names_the_delimiter_not_another_files_content(tmp_path, capsys):
    other = tmp_path / "passwd"
    other.write_text("root:x:0:0:SECRET-LINE:/root:/bin/bash\nbin:x:1:1::/:\n", encoding="utf-8")
    code, err = cli(["validate", "-i", "police", str(other), "-o", str(tmp_path / "o")], capsys)
    assert code == 2 and "\n" not in err
    assert "SECRET" not in err and "bin/bash" not in err
    assert "':'" in err and "one column" in err
    other.write_text("name,secret\nJan,SECRET-VALUE\n", encoding="utf-8")
    code, err = cli(["validate", "-i", "police", str(other), "-o", str(tmp_path / "o")], capsys)
    assert code == 2 and "SECRET" not in err and "secret" not in err
    # the extract named, with the wrong delimiter: its header is shown, it helps
    ours = tmp_path / "police.csv"
    ours.write_text(POLICE_HEADER.replace(";", ",") + "\n" + row(1).replace(";", ",") + "\n")
    code, err = cli(["validate", str(ours), "-o", str(tmp_path / "o")], capsys)
    assert code == 2 and "registratienummer,achternaam" in err and "','" in err


# ------------------------------------------------------------------ 7. field length limits
def test_overlong_values_are_quarantined_without_being_echoed(tmp_path):
    huge = "A" * 5_000_000
    path = police_file(tmp_path / "p.csv", [row(1), row(2, family=huge), row(3, unit="U" * 201)])
    result = validate(path)
    assert result.records["source_key"].to_list() == ["PSH000000001"]
    assert reasons(result, "PSH000000002") == ["field.too_long"]
    q = result.quarantine.filter(pl.col("source_key") == "PSH000000002").row(0, named=True)
    assert q["columns"] == ["family_name"]
    assert "family_name longer than 200" in q["messages"][0] and len(q["messages"][0]) < 200
    assert huge in q["original"]  # nothing lost: the quarantine keeps what was read
    assert reasons(result, "PSH000000003") == ["field.too_long"]


def test_field_length_limits_are_configurable_per_field(tmp_path):
    definition = parse_source_definition(police_definition(max_length={"family_name": 5}))
    path = police_file(tmp_path / "p.csv", [row(1, family="Ali"), row(2, family="Amrani")])
    result = validate(path, definition)
    assert result.records["source_key"].to_list() == ["PSH000000001"]
    assert reasons(result, "PSH000000002") == ["field.too_long"]
    for bad in ({"max_length": {"shoe_size": 3}}, {"max_length": {"family_name": 0}}):
        with pytest.raises(ConfigError, match="limits.max_length"):
            parse_source_definition(police_definition(**bad))
    with pytest.raises(ConfigError, match="limits.max_file_bytes"):
        parse_source_definition(police_definition(max_file_bytes=-1))


def test_an_overlong_name_no_longer_reaches_the_linkage(tmp_path):
    from recapture.linkage import LinkageSettings, link_records

    rows = [row(i, family=f"Amrani{'x' * (i % 3)}", given="Mohamed") for i in range(1, 40)]
    rows.append(row(40, family="Amrani" + "x" * 5_000_000))
    result = validate(police_file(tmp_path / "p.csv", rows))
    assert result.records["family_name"].str.len_chars().max() <= 200
    linked = link_records(result.records, LinkageSettings.default())
    assert linked.metrics["records"] == 39


# ------------------------------------------------------------------ 8. digits of other scripts
def test_dates_in_arabic_indic_and_full_width_digits_are_read(tmp_path):
    rows = [
        row(1, date="٠٥-٠١-٢٠١٨", birth="١٢-٠٣-١٩٩٠"),  # Arabic-Indic
        row(2, date="０５－０１－２０１８"),  # full-width digits and hyphen
        row(3, date="۰۵-۰۱-۲۰۱۸"),  # Extended Arabic-Indic (Persian)
        row(4, date="٩٩-٩٩-٢٠١٨"),  # read, but no calendar date
        row(5, birth="१२-०३-१९९०"),  # Devanagari
    ]
    result = validate(police_file(tmp_path / "p.csv", rows))
    records = result.records.sort("source_key")
    assert records["source_key"].to_list() == [f"PSH00000000{i}" for i in (1, 2, 3, 5)]
    assert set(records["event_date"].to_list()) == {dt.date(2018, 1, 5)}
    assert records["birth_date"].to_list()[0] == dt.date(1990, 3, 12)
    assert records["birth_date"].to_list()[-1] == dt.date(1990, 3, 12)
    assert records["birth_date_raw"][0] == "١٢-٠٣-١٩٩٠"  # the recorded text stays
    assert reasons(result, "PSH000000004") == ["event_date.unparseable"]


# ------------------------------------------------------------------ 9. short rows
@pytest.mark.parametrize("lenient", [False, True], ids=["fast parser", "lenient reader"])
def test_rows_with_fewer_fields_than_the_header_are_quarantined(tmp_path, lenient):
    rows = [row(1), "PSH000000002;Amrani;Mohamed", row(3), "", row(4)]
    if lenient:  # a longer row sends the file to the lenient reader
        rows.append(row(5) + ";surplus")
    result = validate(police_file(tmp_path / "p.csv", rows))
    assert "row.too_few_fields" in reasons(result, "PSH000000002")
    assert result.summary["files"][0]["short_rows"] == 1
    assert result.summary["files"][0]["parser"] == ("lenient" if lenient else "polars")
    assert {"PSH000000001", "PSH000000003", "PSH000000004"} <= set(result.records["source_key"])
    empty = result.quarantine.filter(pl.col("source_key").is_null())
    blank = empty["reasons"].to_list()  # a blank line stays a blank line
    assert len(blank) == 1 and "row.empty" in blank[0] and "row.too_few_fields" not in blank[0]
    assert result.summary["totals"]["reconciled"]
    assert result.rows_in == len(rows)


def test_short_rows_with_quoted_delimiters_and_newlines_are_counted_right(tmp_path):
    rows = [
        row(1, family='"Amrani; El"', unit='"Utrecht\nNoord"'),
        'PSH000000002;"Ben; Ali"',
        row(3),
    ]
    result = validate(police_file(tmp_path / "p.csv", rows))
    assert "row.too_few_fields" in reasons(result, "PSH000000002")
    assert sorted(result.records["source_key"]) == ["PSH000000001", "PSH000000003"]


# ------------------------------------------------------------------ 10. nested Parquet columns
@pytest.mark.parametrize(
    "value",
    [pl.Series([{"a": "Amrani", "b": 1}] * 2), pl.Series([["Amrani", "El"]] * 2)],
    ids=["struct", "list"],
)
def test_struct_and_list_parquet_columns_are_refused_naming_the_column(tmp_path, value):
    names = POLICE_HEADER.split(";")
    frame = pl.DataFrame({c: [f"PSH00000000{i}" for i in (1, 2)] for c in names})
    frame = frame.with_columns(value.alias("achternaam"))
    path = tmp_path / "police.parquet"
    frame.write_parquet(path)
    with pytest.raises(InputError) as info:
        validate(path)
    assert info.value.column == "achternaam" and "one text, number or date" in str(info.value)


# ------------------------------------------------------------------ 11. line ends, UTF-16, scripts
def test_carriage_return_line_ends_are_read(tmp_path):
    path = police_file(tmp_path / "p.csv", [row(1), row(2)], newline="\r")
    result = validate(path)
    assert sorted(result.records["source_key"]) == ["PSH000000001", "PSH000000002"]


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_utf16_without_byte_order_mark_is_detected(tmp_path, encoding):
    path = police_file(tmp_path / "p.csv", [row(1, family="Öztürk"), row(2)], encoding=encoding)
    result = validate(path)
    assert result.summary["files"][0]["encoding"] == encoding
    assert result.records.sort("source_key")["family_name"].to_list() == ["ozturk", "amrani"]


def test_names_in_other_scripts_are_transliterated_not_emptied(tmp_path):
    names = {"Иванов": "ivanov", "Шевченко": "shevchenko", "王伟": "wangwei", "Ελένη": "eleni"}
    rows = [row(i, family=n, given="Мария") for i, n in enumerate(names, start=1)]
    rows.append(row(9, family="محمد", given="عبد القادر"))
    result = validate(police_file(tmp_path / "p.csv", rows)).records.sort("source_key")
    assert result["family_name"].to_list()[:4] == list(names.values())
    assert result["given_name"].to_list()[0] == "mariya"
    assert result["family_name"].null_count() == 0 and result["given_name"].null_count() == 0
    assert not any("name.missing" in w for w in result["warnings"].to_list())
    assert result["family_name_key"].to_list()[1] == "xifxnk"  # as Shevchenko in Latin script


def test_latin_names_are_untouched_by_the_transliteration():
    latin = pl.Series(
        ["Öztürk", "N'Diaye", "Strauß", "Søren", "Łukasz", "İbrahim", "Nguyễn", "van der Berg"]
    )
    assert transliterate(latin).to_list() == latin.to_list()
    assert standardise_names(latin)["standard"].to_list() == [
        "ozturk",
        "ndiaye",
        "strauss",
        "soren",
        "lukasz",
        "ibrahim",
        "nguyen",
        "van der berg",
    ]


# ------------------------------------------------------------------ 12. files that are no files
def test_output_path_that_is_a_file_is_one_line(tmp_path, capsys):
    path = police_file(tmp_path / "police.csv", [row(1)])
    taken = tmp_path / "taken"
    taken.write_text("mine")
    for out in (taken, taken / "below"):
        code, err = cli(["validate", str(path), "-o", str(out)], capsys)
        assert code == 2 and "\n" not in err and "not a directory" in err
    assert taken.read_text() == "mine"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX")
def test_devices_and_pipes_are_refused_at_once(tmp_path):
    zero = tmp_path / "police_zero.csv"
    zero.symlink_to("/dev/zero")
    fifo = tmp_path / "police_fifo.csv"
    os.mkfifo(fifo)
    for path in (zero, fifo):
        done = subprocess.run(
            [sys.executable, "-m", "recapture", "--quiet", "validate", str(path), "-o", "o"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        assert done.returncode == 2, done.stderr
        assert done.stderr.count("\n") == 1 and "not a regular file" in done.stderr


def test_file_size_limit_is_configurable(tmp_path):
    path = police_file(tmp_path / "p.csv", [row(i) for i in range(1, 30)])
    small = parse_source_definition(police_definition(max_file_bytes=1000))
    with pytest.raises(InputError, match="limits.max_file_bytes"):
        validate(path, small)
    assert validate(path).records.height == 29
    assert load_source_definition("police").max_file_bytes >= 1 << 30


# ------------------------------------------------------------------ 16. file name → definition
def test_a_file_name_starting_with_a_definition_name_needs_no_input_option(tmp_path, capsys):
    police_file(tmp_path / "police_ok.csv", [row(1)])
    police_file(tmp_path / "Police-2018.csv", [row(2)])
    out = tmp_path / "out"
    code, err = cli(
        ["validate", str(tmp_path / "police_ok.csv"), str(tmp_path / "Police-2018.csv")]
        + ["-o", str(out), "--as-of", "2020-01-01"],
        capsys,
    )
    assert code == 0, err
    assert pl.read_parquet(out / "records.parquet").height == 2
    other = police_file(tmp_path / "psh.csv", [row(3)])
    code, err = cli(["validate", str(other), "-o", str(out)], capsys)
    assert code == 2 and "starts with none of iom, police" in err


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX")
def test_review_labels_from_a_pipe_are_refused_at_once(tmp_path):
    """`recapture review estimate` reads a reviewer's file: a FIFO there would block forever."""
    fifo = tmp_path / "review_labels.csv"
    os.mkfifo(fifo)
    done = subprocess.run(
        [sys.executable, "-m", "recapture", "--quiet", "review", "estimate", str(fifo)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "not a regular file" in done.stderr
