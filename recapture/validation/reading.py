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
import hashlib
import io
import os
import re
import stat
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from recapture.errors import InputError
from recapture.validation.definition import SourceDefinition

__all__ = ["Extract", "read_extract", "decode_bytes", "read_regular_file"]

ROW = "source_row"
#: Columns the reader adds beside the extract's own: surplus fields of long rows, and the
#: mark of rows with fewer fields than the header.
EXTRA, SHORT = "_extra", "_short"
_INTERNAL = (ROW, EXTRA, SHORT)
_COMMON_DELIMITERS = (";", ",", "\t", "|", ":")
#: Parquet types that are not one value per cell: refused, naming the column.
_NESTED = (pl.Struct, pl.List, pl.Array, pl.Object, pl.Binary)


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
    #: rows with fewer fields than the header (marked in ``frame['_short']``)
    short_rows: int = 0
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
    bomless = _utf16_without_bom(data)
    if bomless:
        return data.decode(bomless, errors="strict"), bomless
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


def _utf16_without_bom(data: bytes) -> str | None:
    """'utf-16-le' or 'utf-16-be' when the text is UTF-16 without a byte-order mark: in text
    of Latin letters, digits and delimiters every other byte is NUL, which no 8-bit or
    UTF-8 text has. Judged on the first 4 KiB; None otherwise."""
    head = data[:4096]
    half = len(head) // 2
    if half < 2:
        return None
    even, odd = head[0 : 2 * half : 2], head[1 : 2 * half : 2]
    for nuls, other, name in ((odd, even, "utf-16-le"), (even, odd, "utf-16-be")):
        if nuls.count(0) >= 0.9 * half and other.count(0) <= 0.1 * half:
            return name
    return None


def read_regular_file(path: str, max_bytes: int, limit_key: str = "limits.max_file_bytes") -> bytes:
    """The bytes of ``path`` if it is a regular file (symlinks followed) of at most
    ``max_bytes``. Devices, pipes and sockets are refused before anything is read, so
    ``/dev/zero`` or a FIFO cannot exhaust memory or hang the run."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise InputError("no such file", file=path) from None
    except IsADirectoryError:
        raise InputError("is a directory, not an extract", file=path) from None
    except OSError as exc:
        raise InputError(f"cannot read file: {exc.strerror or exc}", file=path) from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if stat.S_ISDIR(info.st_mode):
            raise InputError("is a directory, not an extract", file=path)
        if not stat.S_ISREG(info.st_mode):
            raise InputError(
                "not a regular file (a device, pipe or socket): only regular files are read",
                file=path,
            )
        too_big = InputError(
            f"larger than the limit of {max_bytes:,} bytes (raise {limit_key} in the "
            "source definition if it is really an extract)",
            file=path,
        )
        if info.st_size > max_bytes:
            raise too_big
        try:
            data = handle.read(max_bytes + 1)
        except OSError as exc:
            raise InputError(f"cannot read file: {exc.strerror or exc}", file=path) from None
    if len(data) > max_bytes:
        raise too_big
    return data


def shown(name: str, limit: int = 60) -> str:
    """A header name as an error message may show it: control and format characters
    escaped (the message stays one line), at most ``limit`` characters."""
    out = "".join(
        ch if unicodedata.category(ch)[0] not in "CZ" or ch == " " else repr(ch)[1:-1]
        for ch in name[: limit + 1]
    )
    return out if len(name) <= limit and len(out) <= limit * 4 else out[:limit] + "…"


def _names(names: list[str], most: int = 20) -> str:
    listed = ", ".join(shown(n) for n in names[:most])
    return listed + (f" and {len(names) - most} more" if len(names) > most else "")


def _fold(name: str) -> str:
    return " ".join(name.replace("\ufeff", "").split()).casefold()


def _guess_delimiter(header: str, declared: str) -> str | None:
    counts = {d: header.count(d) for d in _COMMON_DELIMITERS if d != declared}
    best = max(counts, key=counts.get)
    return best if counts[best] > 0 else None


def _read_csv(
    path: str, data: bytes, definition: SourceDefinition
) -> tuple[pl.DataFrame, str, int, str]:
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
    if encoding.startswith("utf-16"):
        text = text.lstrip("\ufeff")
    if "\n" not in text and "\r" in text:
        # Classic Mac line ends (CR only): the fast parser would see one long line.
        text = text.replace("\r", "\n")
        utf8 = text.encode("utf-8")
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
    except Exception as exc:  # noqa: BLE001 — fall back to the lenient reader below
        first_error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    else:
        short = _short_rows(utf8, definition, frame)
        if short is not None:
            if short.any():
                frame = frame.with_columns(short.alias(SHORT))
            return frame, encoding, 0, "polars"
        first_error = "rows and lines do not align"
    frame, ragged = _read_lenient(text, definition, path, first_error)
    return frame, encoding, ragged, "lenient"


def _short_rows(utf8: bytes, definition: SourceDefinition, frame: pl.DataFrame) -> pl.Series | None:
    """Which data rows have fewer fields than the header (the fast parser fills them with
    nulls silently). Delimiters are counted per line over the bytes at once (numpy), those
    inside quotes left out by quote parity. None when lines and rows do not align, or the
    delimiter or quote is not one byte: the lenient reader, which counts fields exactly,
    takes over."""
    d, q = definition.delimiter.encode(), definition.quote_char.encode()
    if len(d) != 1 or len(q) != 1 or not utf8:
        return None
    a = np.frombuffer(utf8, dtype=np.uint8)
    newline = a == 10
    delimiter = a == d[0]
    quote = a == q[0]
    if quote.any():  # a byte is quoted when an odd number of quotes precede it
        outside = (np.cumsum(quote, dtype=np.uint8) & 1) == 0
        newline &= outside
        delimiter &= outside
        del outside
    del quote
    starts = np.concatenate([[0], np.flatnonzero(newline) + 1])
    if starts[-1] == a.size:  # the file ends with a line end
        starts = starts[:-1]
    if starts.size - 1 != frame.height:
        return None
    fields = np.add.reduceat(delimiter.view(np.uint8), starts, dtype=np.uint32)[1:]
    del delimiter, newline
    # a line of spaces, tabs and control characters only is blank (row.empty), not short
    content = np.maximum.reduceat((a > 32).view(np.uint8), starts)[1:]
    width = len(frame.columns) - 1
    return pl.Series(SHORT, (fields < width - 1) & (content > 0))


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
    short: list[bool] = []
    for fields in rows:
        for j in range(width):
            columns[j].append(fields[j] if j < len(fields) and fields[j] != "" else None)
        extra.append(definition.delimiter.join(fields[width:]) if len(fields) > width else None)
        short.append(0 < len(fields) < width and any(f.strip() for f in fields))
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
        frame = frame.with_columns(pl.Series(EXTRA, extra, dtype=pl.String))
    if any(short):
        frame = frame.with_columns(pl.Series(SHORT, short, dtype=pl.Boolean))
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


def _read_parquet(path: str, data: bytes) -> tuple[pl.DataFrame, tuple[str, ...]]:
    try:
        frame = pl.read_parquet(io.BytesIO(data))
    except Exception as exc:  # noqa: BLE001 — an unreadable file is the user's input problem
        message = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise InputError(f"cannot read as Parquet: {message}", file=path) from None
    for name, dtype in frame.schema.items():
        if isinstance(dtype, _NESTED) or dtype in _NESTED:
            raise InputError(
                f"a {dtype.base_type()} column: extract columns must hold one text, number or "
                "date per cell",
                file=path,
                column=name,
            )
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
    data = read_regular_file(path, definition.max_file_bytes)
    fmt = definition.format
    if fmt == "auto":
        magic = data[:4]
        fmt = "parquet" if path.lower().endswith((".parquet", ".pq")) or magic == b"PAR1" else "csv"
    encoding = delimiter = None
    ragged = 0
    parser = "pyarrow"
    typed: tuple[str, ...] = ()
    if fmt == "parquet":
        frame, typed = _read_parquet(path, data)
    else:
        frame, encoding, ragged, parser = _read_csv(path, data, definition)
        delimiter = definition.delimiter
    columns = [c for c in frame.columns if c not in _INTERNAL]
    folded_names = [_fold(re.sub(r"_duplicated_\d+$", "", c)) for c in columns]
    repeated = sorted({c for c in folded_names if folded_names.count(c) > 1})
    if repeated:
        raise InputError(
            f"column names repeated in the header: {_names(repeated)}",
            file=path,
            column=shown(repeated[0]),
        )

    expected = definition.extract_columns
    folded_expected = {_fold(c): c for c in expected}
    header_map: dict[str, str] = {}
    for column in columns:
        if _fold(column) in folded_expected:
            header_map[column] = folded_expected[_fold(column)]
    if fmt == "csv" and len(columns) == 1 and len(expected) > 1:
        # The header is echoed only when it is this extract's header with another delimiter:
        # any other file's first line (a path given by mistake) is not printed.
        guess = _guess_delimiter(columns[0], definition.delimiter)
        ours = guess is not None and any(
            _fold(part) in folded_expected for part in columns[0].split(guess)
        )
        if ours:
            raise InputError(
                f"only one column found ('{shown(columns[0], 200)}') with delimiter "
                f"{definition.delimiter!r}; the header contains {guess!r} — is that the delimiter?",
                file=path,
                column=shown(columns[0]),
            )
        hint = (
            f"; the first line contains {guess!r}, which may be its delimiter"
            if guess
            else "; the first line contains none of ; , tab | :"
        )
        raise InputError(
            f"only one column found with delimiter {definition.delimiter!r}{hint}; "
            f"is it really an extract of source {definition.name!r}?",
            file=path,
        )
    found = set(header_map.values())
    missing = [c for c in expected if c not in found]
    if missing and not found:
        raise InputError(
            f"none of the columns of {definition.origin} found in the header "
            f"({len(columns)} columns); is it really an extract of source {definition.name!r}?",
            file=path,
            column=shown(missing[0]),
        )
    if missing:
        raise InputError(
            f"required columns missing: {_names(missing)} (found: {_names(columns)})",
            file=path,
            column=shown(missing[0]),
        )
    ignored = {_fold(c) for c in definition.ignore_columns}
    unknown = [c for c in columns if c not in header_map and _fold(c) not in ignored]
    if unknown and definition.unknown_columns == "error":
        raise InputError(
            f"unknown columns: {_names(unknown)} (list them in file.ignore_columns or set "
            f"file.unknown_columns = 'ignore' in the source definition)",
            file=path,
            column=shown(unknown[0]),
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
        sha256=hashlib.sha256(data).hexdigest(),
        header_map=header_map,
        ragged_rows=ragged,
        short_rows=int(frame[SHORT].sum()) if SHORT in frame.columns else 0,
        parser=parser,
        typed_date_columns=typed_mapped,
    )
