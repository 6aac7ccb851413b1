"""Reading an extract into text columns, and the whole-file faults that stop a run.

Every value is read as text (nothing inferred), so what the extract said is what the
quarantine keeps. Faults that concern the whole file — unreadable, empty, header only, a
delimiter that splits nothing, required columns missing, unexpected columns — raise
:class:`~recapture.errors.InputError` naming the file and the columns; faults of single
rows are left to the checks, which quarantine them.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from recapture.errors import InputError
from recapture.io import file_sha256
from recapture.validation.definition import SourceDefinition

__all__ = ["Extract", "read_extract", "decode_bytes"]

ROW = "source_row"
_COMMON_DELIMITERS = (";", ",", "\t", "|")


@dataclass
class Extract:
    """An extract read as text: ``frame`` has ``source_row`` (1-based data row) and one
    String column per extract column, values exactly as read."""

    path: str
    frame: pl.DataFrame
    format: str
    encoding: str | None
    delimiter: str | None
    sha256: str
    #: extract column name as in the file → as named in the definition (case/space-folded match)
    header_map: dict[str, str] = field(default_factory=dict)
    #: rows with more fields than the header (their extra fields are in ``frame['_extra']``)
    ragged_rows: int = 0
    typed_date_columns: tuple[str, ...] = ()
    #: "polars" (fast CSV parser), "lenient" (Python's csv module, for malformed rows) or "pyarrow" (Parquet)
    parser: str = "polars"


def decode_bytes(data: bytes, encoding: str, fallbacks: tuple[str, ...]) -> tuple[str, str]:
    """Decode an extract: a UTF-8 byte-order mark wins, then text that is valid UTF-8 (a
    Windows-1252 file with any non-ASCII letter is practically never valid UTF-8), then
    the declared encoding, then the fallbacks. Returns (text, encoding used)."""
    if data.startswith(codecs.BOM_UTF8):
        return data[len(codecs.BOM_UTF8) :].decode("utf-8", errors="strict"), "utf-8-sig"
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16", errors="strict"), "utf-16"
    tried = []
    for enc in ("utf-8", encoding, *fallbacks):
        if enc in ("auto", "utf-8-sig"):
            enc = "utf-8"
        if enc in tried:
            continue
        tried.append(enc)
        try:
            return data.decode(enc, errors="strict"), enc
        except UnicodeDecodeError:
            continue
    raise UnicodeDecodeError(
        "recapture", data[:1], 0, 1, f"not decodable as any of {', '.join(tried)}"
    )


def _fold(name: str) -> str:
    return " ".join(name.replace("\ufeff", "").split()).casefold()


def _guess_delimiter(header: str, declared: str) -> str | None:
    counts = {d: header.count(d) for d in _COMMON_DELIMITERS if d != declared}
    best = max(counts, key=counts.get)
    return best if counts[best] > 0 else None


def _read_csv(path: str, definition: SourceDefinition) -> tuple[pl.DataFrame, str, int, str]:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read file: {exc.strerror or exc}", file=path) from None
    if not data.strip(b" \t\r\n\x00" + codecs.BOM_UTF8):
        raise InputError("empty file: no header and no rows", file=path)
    try:
        text, encoding = decode_bytes(data, definition.encoding, definition.fallback_encodings)
    except UnicodeDecodeError:
        raise InputError(
            f"cannot decode the file with {definition.encoding} or {', '.join(definition.fallback_encodings)}",
            file=path,
        ) from None
    utf8 = (
        data[3:]
        if encoding == "utf-8-sig"
        else (data if encoding == "utf-8" else text.encode("utf-8"))
    )
    if encoding == "utf-16":
        text = text.lstrip("\ufeff")
    options = dict(
        separator=definition.delimiter,
        quote_char=definition.quote_char,
        infer_schema=False,
        has_header=True,
        row_index_name=ROW,
        row_index_offset=1,
        encoding="utf8",
    )
    try:
        frame = pl.read_csv(io.BytesIO(utf8), **options)
        return frame, encoding, 0, "polars"
    except Exception as exc:  # noqa: BLE001 — fall back to the lenient reader below
        first_error = str(exc).splitlines()[0]
    frame, ragged = _read_lenient(text, definition, path, first_error)
    return frame, encoding, ragged, "lenient"


def _read_lenient(text: str, definition: SourceDefinition, path: str, first_error: str):
    """Read a file the fast parser rejects (rows longer than the header, a stray quote inside
    an unquoted field) with Python's lenient csv reader. Surplus fields of a row go to
    ``_extra`` so the row can be quarantined with everything it said. A quote that is never
    closed would swallow the rest of the file into one field: that stays a whole-file fault."""
    reader = csv.reader(
        io.StringIO(text, newline=""),
        delimiter=definition.delimiter,
        quotechar=definition.quote_char,
        strict=False,
    )
    try:
        header = next(reader)
        rows = list(reader)
    except csv.Error as exc:
        raise InputError(f"cannot parse as CSV: {exc} ({first_error})", file=path) from None
    width = len(header)
    for i, fields in enumerate(rows, start=1):
        for value in fields:
            if "\n" in value and definition.delimiter in value:
                raise InputError(
                    "a quote opened in this row is never closed: the rest of the file would be "
                    "read as one field",
                    file=path,
                    row=i,
                )
    columns: list[list[str | None]] = [[] for _ in range(width)]
    extra: list[str | None] = []
    for fields in rows:
        for j in range(width):
            columns[j].append(fields[j] if j < len(fields) and fields[j] != "" else None)
        extra.append(definition.delimiter.join(fields[width:]) if len(fields) > width else None)
    names = _unique_names(header)
    frame = pl.DataFrame(
        {
            ROW: pl.int_range(1, len(rows) + 1, eager=True, dtype=pl.Int64),
            **{
                name: pl.Series(name, col, dtype=pl.String)
                for name, col in zip(names, columns, strict=True)
            },
        },
    )
    ragged = sum(e is not None for e in extra)
    if ragged:
        frame = frame.with_columns(pl.Series("_extra", extra, dtype=pl.String))
    return frame, ragged


def _unique_names(header: list[str]) -> list[str]:
    """Header names made unique the way the fast parser does (``a``, ``a_duplicated_0``)."""
    seen: dict[str, int] = {}
    out = []
    for name in header:
        if name in seen:
            out.append(f"{name}_duplicated_{seen[name]}")
            seen[name] += 1
        else:
            seen[name] = 0
            out.append(name)
    return out


def _read_parquet(path: str) -> tuple[pl.DataFrame, tuple[str, ...]]:
    try:
        frame = pl.read_parquet(path)
    except FileNotFoundError:
        raise
    except Exception as exc:  # noqa: BLE001 — an unreadable file is the user's input problem
        raise InputError(f"cannot read as Parquet: {str(exc).splitlines()[0]}", file=path) from None
    typed = tuple(
        c
        for c, t in frame.schema.items()
        if t in (pl.Date, pl.Datetime) or isinstance(t, pl.Datetime)
    )
    frame = frame.with_columns(
        [pl.col(c).dt.strftime("%Y-%m-%d") for c in typed]
        + [pl.col(c).cast(pl.String) for c, t in frame.schema.items() if c not in typed]
    )
    frame = frame.with_row_index(ROW, offset=1)
    return frame, typed


def read_extract(path: str | Path, definition: SourceDefinition) -> Extract:
    """Read an extract as text and check it as a whole against the definition."""
    path = str(path)
    if not Path(path).exists():
        raise InputError("no such file", file=path)
    if Path(path).is_dir():
        raise InputError("is a directory, not an extract", file=path)
    fmt = definition.format
    if fmt == "auto":
        with open(path, "rb") as handle:
            magic = handle.read(4)
        fmt = "parquet" if path.lower().endswith((".parquet", ".pq")) or magic == b"PAR1" else "csv"
    encoding = delimiter = None
    ragged = 0
    parser = "pyarrow"
    typed: tuple[str, ...] = ()
    if fmt == "parquet":
        frame, typed = _read_parquet(path)
    else:
        frame, encoding, ragged, parser = _read_csv(path, definition)
        delimiter = definition.delimiter
    columns = [c for c in frame.columns if c not in (ROW, "_extra")]
    folded_names = [_fold(re.sub(r"_duplicated_\d+$", "", c)) for c in columns]
    repeated = sorted({c for c in folded_names if folded_names.count(c) > 1})
    if repeated:
        raise InputError(
            f"column names repeated in the header: {', '.join(repeated)}",
            file=path,
            column=repeated[0],
        )

    expected = definition.extract_columns
    folded_expected = {_fold(c): c for c in expected}
    header_map: dict[str, str] = {}
    for column in columns:
        if _fold(column) in folded_expected:
            header_map[column] = folded_expected[_fold(column)]
    if fmt == "csv" and len(columns) == 1 and len(expected) > 1:
        guess = _guess_delimiter(columns[0], definition.delimiter)
        hint = f"; the header contains {guess!r} — is that the delimiter?" if guess else ""
        raise InputError(
            f"only one column found ({columns[0]!r}) with delimiter {definition.delimiter!r}{hint}",
            file=path,
            column=columns[0],
        )
    found = set(header_map.values())
    missing = [c for c in expected if c not in found]
    if missing:
        raise InputError(
            f"required columns missing: {', '.join(missing)} (found: {', '.join(columns)})",
            file=path,
            column=missing[0],
        )
    ignored = {_fold(c) for c in definition.ignore_columns}
    unknown = [c for c in columns if c not in header_map and _fold(c) not in ignored]
    if unknown and definition.unknown_columns == "error":
        raise InputError(
            f"unknown columns: {', '.join(unknown)} (list them in file.ignore_columns or set "
            f"file.unknown_columns = 'ignore' in the source definition)",
            file=path,
            column=unknown[0],
        )
    if frame.height == 0:
        raise InputError("header only: the file has no data rows", file=path)
    frame = frame.with_columns(pl.col(ROW).cast(pl.Int64))
    typed_mapped = tuple(header_map[c] for c in typed if c in header_map)
    return Extract(
        path=path,
        frame=frame,
        format=fmt,
        encoding=encoding,
        delimiter=delimiter,
        sha256=file_sha256(path),
        header_map=header_map,
        ragged_rows=ragged,
        parser=parser,
        typed_date_columns=typed_mapped,
    )
