"""Fuzzing the extract reader: for arbitrary rows and bytes — random delimiters, quotes,
encodings, line ends, short and long rows, control characters, huge fields — every input
row ends in records or quarantine and the counts reconcile, or the file is refused with one
line naming it (an InputError). Nothing in an extract is evaluated.

The default run tries a few dozen examples; ``-m slow`` runs the larger profile."""

from __future__ import annotations

import csv
import datetime as dt
import io
import tempfile
import tomllib
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recapture import progress
from recapture.errors import InputError, RecaptureError
from recapture.validation import load_source_definition, parse_source_definition, validate_extracts

AS_OF = dt.date(2020, 1, 1)
ROOT = Path(__file__).parents[2]
#: The police extract's columns, in the order its source definition names them.
HEADER = list(load_source_definition("police").columns.values())
#: Would leave a file behind if anything in an extract were ever run as code or a template.
PAYLOADS = [
    "__import__('pathlib').Path('PWNED').touch()",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "${jndi:ldap://x}",
    '=HYPERLINK("http://x")',
    "$(touch PWNED)",
]
CHARS = list("aZ09 ;,|\t\"'\r\n=+-@.éÖßИя١٢０王\x00\x01\x1b\x7f\u200b\ufeff\u202e")

field = st.one_of(
    st.text(alphabet=st.sampled_from(CHARS), max_size=24),
    st.sampled_from(["PSH000000001", "05-01-2018", "12-03-1990", "M", "V", "Marokko", ""]),
    st.sampled_from(PAYLOADS),
    st.integers(min_value=201, max_value=300_000).map(lambda n: "x" * n),  # huge field
)
rows = st.lists(st.lists(field, min_size=0, max_size=13), min_size=0, max_size=25)


def _definition(delimiter: str, unknown: str):
    data = tomllib.loads(
        (ROOT / "recapture" / "validation" / "sources" / "police.toml").read_text("utf-8")
    )
    data["file"]["delimiter"] = delimiter
    data["file"]["unknown_columns"] = unknown
    return parse_source_definition(data, "fuzz definition")


def _check(path: Path, definition, expected_rows: int | None) -> None:
    progress.set_quiet(True)
    try:
        result = validate_extracts([(path, definition)], None, as_of=AS_OF)
    except InputError as exc:
        message = str(exc)
        assert exc.file == str(path), message
        assert "\n" not in message and "\r" not in message, message
        assert len(message) < 2_000, message[:200]
        return
    except RecaptureError as exc:  # pragma: no cover - only InputError is expected here
        pytest.fail(f"not an InputError: {type(exc).__name__}: {exc}")
    summary = result.summary
    assert summary["totals"]["reconciled"]
    assert result.rows_in == summary["totals"]["rows_in"] == summary["files"][0]["rows_in"]
    if expected_rows is not None:
        assert result.rows_in == expected_rows
    longest = result.records["family_name_raw"].drop_nulls().str.len_chars().max()
    assert (longest or 0) <= 200  # field limits hold: the linkage compares bounded strings
    assert not (path.parent / "PWNED").exists()


FUZZ = settings(
    max_examples=50,
    deadline=timedelta(seconds=60),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
)
FUZZ_SLOW = settings(FUZZ, max_examples=600)


def _well_formed(data, body, delimiter, newline, encoding, header_kind, unknown):
    header = {
        "exact": HEADER,
        "shuffled": data.draw(st.permutations(HEADER)),
        "spaced": [f"  {h.upper()} " for h in HEADER],
        "extra": [*HEADER, "opmerking"],
        "missing": HEADER[:-1],
        "repeated": [*HEADER, HEADER[0]],
        "random": data.draw(st.lists(field, min_size=1, max_size=12)),
    }[header_kind]
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator=newline)
    writer.writerow(header)
    writer.writerows(body)
    text = buffer.getvalue()
    raw = text.encode(encoding, errors="replace")  # plain utf-16 writes a byte-order mark
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "extract.csv"
        path.write_bytes(raw)
        # a row count is only certain for a clean file: exact header, one line end per row
        clean = (
            header_kind in ("exact", "shuffled", "spaced")
            and newline != "\r"
            and all(all("\x00" not in f and "\r" not in f for f in r) for r in body)
        )
        _check(path, _definition(delimiter, unknown), len(body) if clean and body else None)


def _draw_file(data):
    body = data.draw(rows)
    delimiter = data.draw(st.sampled_from([";", ",", "\t", "|"]))
    newline = data.draw(st.sampled_from(["\n", "\r\n", "\r"]))
    encoding = data.draw(
        st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "cp1252"])
    )
    header_kind = data.draw(
        st.sampled_from(["exact", "shuffled", "spaced", "extra", "missing", "repeated", "random"])
    )
    unknown = data.draw(st.sampled_from(["error", "ignore"]))
    _well_formed(data, body, delimiter, newline, encoding, header_kind, unknown)


@FUZZ
@given(st.data())
def test_fuzzed_extracts_reconcile_or_are_refused_in_one_line(data):
    _draw_file(data)


@FUZZ
@given(st.binary(max_size=4_000), st.sampled_from([";", ","]))
def test_arbitrary_bytes_reconcile_or_are_refused_in_one_line(blob, delimiter):
    head = ";".join(HEADER).replace(";", delimiter).encode() + b"\r\n"
    with tempfile.TemporaryDirectory() as folder:
        for name, raw in (("bytes.csv", blob), ("headed.csv", head + blob)):
            path = Path(folder) / name
            path.write_bytes(raw)
            _check(path, _definition(delimiter, "ignore"), None)


@pytest.mark.slow
@FUZZ_SLOW
@given(st.data())
def test_fuzzed_extracts_larger_profile(data):
    _draw_file(data)


@pytest.mark.slow
@FUZZ_SLOW
@given(st.binary(max_size=20_000), st.sampled_from([";", ",", "\t"]))
def test_arbitrary_bytes_larger_profile(blob, delimiter):
    head = ";".join(HEADER).replace(";", delimiter).encode() + b"\n"
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "headed.csv"
        path.write_bytes(head + blob)
        _check(path, _definition(delimiter, "ignore"), None)
