"""The validation stage: raw extracts → records.parquet + quarantine.parquet + summary.

Every input row ends in exactly one of the two artifacts. A row is quarantined when any
check whose policy is ``error`` fails on it, with every such reason; checks whose policy
is ``warning`` leave the row in the records with the codes in ``warnings``. The summary
counts reconcile: rows in = records + quarantined, per file, per source and in total.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandera.polars as pa
import polars as pl

from recapture import progress
from recapture.errors import InputError
from recapture.io import ARTIFACTS
from recapture.schemas import (
    BIRTH_DATE_QUALITY,
    EXTRACT_MODELS,
    QuarantineSchema,
    RecordSchema,
)
from recapture.validation.definition import (
    CANONICAL_FIELDS,
    SourceDefinition,
    load_source_definition,
)
from recapture.validation.reading import EXTRA, ROW, SHORT, Extract, read_extract
from recapture.validation.standardise import (
    _days_in_month,
    classify_birth_dates,
    full_date_from_parts,
    map_codes,
    parse_date_parts,
    standardise_names,
    standardise_nationality,
    standardise_sex,
    standardise_v_number,
)

__all__ = ["validate_extracts", "ValidationResult", "MESSAGES", "SUMMARY_VERSION"]

SUMMARY_VERSION = "1"

#: Checks whose failure can only quarantine: a record needs a calendar event date.
ALWAYS_ERROR = ("event_date.missing", "event_date.unparseable", "event_date.partial")

#: What each check code means (the quarantine message is this text plus the value).
MESSAGES: dict[str, str] = {
    "row.empty": "the row is empty",
    "row.too_many_fields": "the row has more fields than the header",
    "row.too_few_fields": "the row has fewer fields than the header",
    "field.too_long": "a value is longer than the definition's limit",
    "source_key.missing": "registration id is empty",
    "source_key.format": "registration id does not match the definition's pattern",
    "source_key.duplicate": "registration id already seen earlier in this source",
    "event_date.missing": "event date is empty",
    "event_date.unparseable": "event date matches none of the definition's formats or is no calendar date",
    "event_date.partial": "event date lacks day or month",
    "event_date.future": "event date is after the as-of date",
    "event_date.two_digit_year": "event date has a two-digit year",
    "birth_date.unparseable": "birth date matches none of the definition's formats",
    "birth_date.impossible": "birth date is no calendar date",
    "birth_date.future": "birth date is after the as-of date",
    "birth_date.after_event": "birth date is after the event date",
    "birth_date.age_over_max": "age at the event is above the definition's max_age",
    "birth_date.two_digit_year": "birth date has a two-digit year (century by pivot)",
    "birth_date.missing": "birth date is empty",
    "name.missing": "family and given names are both empty",
    "sex.unrecognised": "sex code is not in the definition's code list",
    "nationality.unrecognised": "nationality text is not a known country name, adjective or code",
    "v_number.invalid": "V-number is not 10 digits",
    "reason.unrecognised": "reason is not in the definition's code list",
    "client_category.missing": "client category is empty",
    "client_category.unrecognised": "client category is not in the definition's code list",
    "police_unit.missing": "police unit is empty",
    "schema.failed": "a check of the extract's pandera model failed",
}
#: Bit position of each check in the masks the stage computes per row.
CHECK_CODES: tuple[str, ...] = tuple(MESSAGES)

_CHECK_COLUMN = {"name": "family_name", "row": "row"}

_RECORD_COLUMNS: dict[str, pl.DataType] = {
    "record_id": pl.Int64,
    "source": pl.String,
    "source_file": pl.String,
    "source_row": pl.Int64,
    "source_key": pl.String,
    "event_date": pl.Date,
    "family_name_raw": pl.String,
    "given_name_raw": pl.String,
    "family_name": pl.String,
    "given_name": pl.String,
    "family_name_key": pl.String,
    "given_name_key": pl.String,
    "birth_date": pl.Date,
    "birth_year": pl.Int64,
    "birth_month": pl.Int64,
    "birth_day": pl.Int64,
    "birth_date_raw": pl.String,
    "birth_date_quality": pl.String,
    "sex": pl.String,
    "sex_raw": pl.String,
    "nationality_iso3": pl.String,
    "nationality_region": pl.String,
    "nationality_raw": pl.String,
    "v_number": pl.String,
    "v_number_raw": pl.String,
    "police_unit": pl.String,
    "reason": pl.String,
    "client_category": pl.String,
    "in_target": pl.Boolean,
    "warnings": pl.List(pl.String),
}
_QUARANTINE_COLUMNS: dict[str, pl.DataType] = {
    "source": pl.String,
    "source_file": pl.String,
    "source_row": pl.Int64,
    "source_key": pl.String,
    "original": pl.String,
    "reasons": pl.List(pl.String),
    "columns": pl.List(pl.String),
    "messages": pl.List(pl.String),
}
_ALL_FIELDS = tuple(dict.fromkeys(f for fields in CANONICAL_FIELDS.values() for f in fields))


@dataclass
class ValidationResult:
    """What the stage produced: the two tables, the summary and where they were written."""

    records: pl.DataFrame
    quarantine: pl.DataFrame
    summary: dict[str, Any]
    paths: dict[str, Path] = field(default_factory=dict)

    @property
    def rows_in(self) -> int:
        return self.records.height + self.quarantine.height


# ----------------------------------------------------------------------------- per extract
def _schema_failures(mapped: pl.DataFrame, definition: SourceDefinition, path: str) -> pl.DataFrame:
    """Run the kind's pandera model (lazily, all failures) and return (row position, code)."""
    schema = EXTRACT_MODELS[definition.kind].to_schema()
    if definition.source_key_pattern and "source_key" in mapped.columns:
        schema = schema.update_column(
            "source_key", checks=[pa.Check.str_matches(definition.source_key_pattern)]
        )
    empty = pl.DataFrame(schema={"_pos": pl.Int64, "_code": pl.String})
    try:
        schema.validate(mapped, lazy=True)
        return empty
    except pa.errors.SchemaErrors as exc:
        cases = (
            pl.from_pandas(exc.failure_cases)
            if not isinstance(exc.failure_cases, pl.DataFrame)
            else exc.failure_cases
        )
    whole = cases.filter(pl.col("index").is_null())
    if whole.height:
        first = whole.row(0, named=True)
        raise InputError(
            f"extract fails schema check {first['check']}: {first['failure_case']}",
            file=path,
            column=first["column"],
        )
    check = pl.col("check").cast(pl.String)
    code = (
        pl.when(check == "not_nullable")
        .then(pl.concat_str(pl.col("column"), pl.lit(".missing")))
        .when(check.str.starts_with("str_matches"))
        .then(pl.concat_str(pl.col("column"), pl.lit(".format")))
        .otherwise(pl.concat_str(pl.col("column"), pl.lit(".invalid")))
    )
    return cases.select(pl.col("index").cast(pl.Int64).alias("_pos"), code.alias("_code")).unique()


def _text(column: str) -> pl.Expr:
    stripped = pl.col(column).str.strip_chars()
    return pl.when(stripped == "").then(None).otherwise(stripped)


def _process_extract(
    extract: Extract, definition: SourceDefinition, index: int, as_of: dt.date
) -> pl.DataFrame:
    """Map, check and standardise one extract; one output row per input row, with bit masks
    of its failed error and warning checks (decoded after the duplicate check)."""
    rename = {
        col: canonical
        for canonical, ext in definition.columns.items()
        for col, mapped in extract.header_map.items()
        if mapped == ext
    }
    raw = extract.frame
    mapped = raw.select(
        pl.col(ROW),
        *[_text(col).alias(canonical) for col, canonical in rename.items()],
        *([pl.col(EXTRA)] if EXTRA in raw.columns else []),
    )
    # Values over their field's length limit quarantine the row and are blanked here, so
    # no standardiser or message ever handles them (the quarantine keeps the original).
    limits = {c: definition.max_lengths[c] for c in rename.values() if c in definition.max_lengths}
    if limits:  # bytes bound characters: only columns whose longest value has more bytes
        longest = mapped.select(pl.col(c).str.len_bytes().max() for c in limits).row(0)
        limits = {c: n for (c, n), b in zip(limits.items(), longest, strict=True) if (b or 0) > n}
    long_flags = {c: (pl.col(c).str.len_chars() > n).fill_null(False) for c, n in limits.items()}
    if long_flags:
        mapped = mapped.with_columns(
            pl.concat_str(
                [
                    pl.when(f).then(pl.lit(f"{c} longer than {limits[c]} characters"))
                    for c, f in long_flags.items()
                ],
                separator="; ",
                ignore_nulls=True,
            ).alias("_too_long"),
            pl.coalesce([pl.when(f).then(pl.lit(c)) for c, f in long_flags.items()]).alias(
                "_too_long_first"
            ),
        ).with_columns(
            pl.when(f).then(None).otherwise(pl.col(c)).alias(c) for c, f in long_flags.items()
        )
        mapped = mapped.with_columns(pl.col("_too_long").replace("", None))
    else:
        mapped = mapped.with_columns(
            pl.lit(None, dtype=pl.String).alias("_too_long"),
            pl.lit(None, dtype=pl.String).alias("_too_long_first"),
        )
    extract_cols = [c for c in raw.columns if c not in (ROW, EXTRA, SHORT)]
    all_empty = pl.all_horizontal(
        pl.col(c).is_null() | (pl.col(c).str.strip_chars() == "") for c in extract_cols
    )
    row_flags = raw.select(
        all_empty.alias("_row_empty"),
        (pl.col(EXTRA).is_not_null() if EXTRA in raw.columns else pl.lit(False)).alias(
            "_row_ragged"
        ),
        (pl.col(SHORT).fill_null(False) if SHORT in raw.columns else pl.lit(False)).alias(
            "_row_short"
        ),
    )
    failures = _schema_failures(mapped.select(list(rename.values())), definition, extract.path)
    per_row = failures.group_by("_pos").agg(pl.col("_code").sort().alias("_schema_codes"))

    work = (
        pl.concat([mapped, row_flags], how="horizontal")
        .with_row_index("_pos")
        .with_columns(pl.col("_pos").cast(pl.Int64))
    )
    work = work.join(per_row, on="_pos", how="left", maintain_order="left")
    work = work.with_columns(
        pl.lit(None, dtype=pl.String).alias(f) for f in _ALL_FIELDS if f not in work.columns
    )

    pivot = as_of.year
    ev_formats = list(definition.event_date_formats)
    bd_formats = list(definition.birth_date_formats)
    typed = {
        canonical
        for canonical, ext in definition.columns.items()
        if ext in extract.typed_date_columns
    }
    if "event_date" in typed:
        ev_formats.insert(0, "%Y-%m-%d")
    if "birth_date" in typed:
        bd_formats.insert(0, "%Y-%m-%d")
    bparts = parse_date_parts(pl.col("birth_date"), bd_formats, pivot_year=pivot)
    work = work.with_columns(
        _evp=parse_date_parts(pl.col("event_date"), ev_formats, pivot_year=pivot),
        _bp=bparts,
        _sex=standardise_sex(pl.col("sex"), definition.sex_codes),
        _vn=standardise_v_number(pl.col("v_number")),
        _reason=map_codes(pl.col("reason"), definition.reason_codes),
    )
    work = work.with_columns(
        _bc=classify_birth_dates(pl.col("_bp"), pl.col("birth_date")),
        _ev=full_date_from_parts(pl.col("_evp"), pl.col("event_date")),
    )
    family = standardise_names(work["family_name"])
    given = standardise_names(work["given_name"], first_only=True)
    nat = standardise_nationality(work["nationality"], definition.nationality_aliases)
    work = work.with_columns(
        family_name_std=family["standard"],
        family_name_key=family["key"],
        given_name_std=given["standard"],
        given_name_key=given["key"],
        nationality_iso3=nat["iso3"],
        nationality_region=nat["region"],
        _nat_unrec=nat["unrecognised"],
    )
    ev = pl.col("_ev")
    bc = pl.col("_bc")
    by, bm, bd = bc.struct.field("year"), bc.struct.field("month"), bc.struct.field("day")
    work = work.with_columns(
        _event=ev.struct.field("date"),
        _earliest=pl.date(by, bm.fill_null(1), bd.fill_null(1)),
        _m_hi=bm.fill_null(12),
    ).with_columns(_d_hi=bd.fill_null(_days_in_month(by, pl.col("_m_hi"))))
    event = pl.col("_event")
    earliest = pl.col("_earliest")
    age = (
        event.dt.year()
        - by
        - (
            (event.dt.month() * 100 + event.dt.day()) < (pl.col("_m_hi") * 100 + pl.col("_d_hi"))
        ).cast(pl.Int32)
    )

    folded_category = pl.col("client_category").str.to_lowercase()
    in_cats = [c.casefold() for c in definition.client_categories_in_target]
    out_cats = [c.casefold() for c in definition.client_categories_not_in_target]
    category_names = {
        c.casefold(): c
        for c in (
            *definition.client_categories_in_target,
            *definition.client_categories_not_in_target,
        )
    }
    schema_codes = pl.col("_schema_codes").fill_null(pl.lit([], dtype=pl.List(pl.String)))
    flags: dict[str, pl.Expr] = {
        "row.empty": pl.col("_row_empty"),
        "row.too_many_fields": pl.col("_row_ragged"),
        "row.too_few_fields": pl.col("_row_short"),
        "field.too_long": pl.col("_too_long").is_not_null(),
        "source_key.missing": schema_codes.list.contains("source_key.missing"),
        "source_key.format": schema_codes.list.contains("source_key.format"),
        "event_date.missing": pl.col("event_date").is_null(),
        "event_date.unparseable": ev.struct.field("unparseable"),
        "event_date.partial": ev.struct.field("partial") & ~ev.struct.field("unparseable"),
        "event_date.future": event > pl.lit(as_of),
        "event_date.two_digit_year": ev.struct.field("two_digit_year") & event.is_not_null(),
        "birth_date.missing": pl.col("birth_date").is_null(),
        "birth_date.unparseable": bc.struct.field("unparseable"),
        "birth_date.impossible": bc.struct.field("impossible"),
        "birth_date.two_digit_year": pl.col("_bp").struct.field("two_digit_year")
        & by.is_not_null(),
        "birth_date.future": earliest > pl.lit(as_of),
        "birth_date.after_event": earliest > event,
        "birth_date.age_over_max": age > definition.max_age,
        "name.missing": pl.col("family_name_std").is_null() & pl.col("given_name_std").is_null(),
        "sex.unrecognised": pl.col("_sex").struct.field("unrecognised"),
        "nationality.unrecognised": pl.col("_nat_unrec"),
        "v_number.invalid": pl.col("_vn").struct.field("invalid"),
    }
    if definition.kind == "police":
        flags["reason.unrecognised"] = pl.col("_reason").struct.field("unrecognised")
        flags["police_unit.missing"] = pl.col("police_unit").is_null()
    else:
        flags["client_category.missing"] = pl.col("client_category").is_null()
        flags["client_category.unrecognised"] = pl.col(
            "client_category"
        ).is_not_null() & ~folded_category.is_in(in_cats + out_cats)
    # Other pandera failures (none with the shipped models) quarantine as schema.failed.
    known = set(flags)
    unknown_codes = failures.filter(~pl.col("_code").is_in(list(known)))["_code"].unique().to_list()
    flags["schema.failed"] = (
        schema_codes.list.eval(pl.element().is_in(unknown_codes)).list.any()
        if unknown_codes
        else pl.lit(False)
    )
    # Each row's failed checks as two bit masks (error, warning) over CHECK_CODES; decoded
    # into code lists after the duplicate check, once per distinct mask.
    error_codes = [c for c in flags if _level(definition, c) == "error"]
    warning_codes = [c for c in flags if _level(definition, c) == "warning"]
    errors = _mask({c: flags[c] for c in error_codes}).alias("_err")
    warnings = _mask({c: flags[c] for c in warning_codes}).alias("_warn")

    in_target = (
        pl.lit(True)
        if definition.kind == "police"
        else folded_category.is_in(in_cats).fill_null(False)
    )
    out = work.select(
        pl.lit(index, dtype=pl.Int64).alias("_input"),
        pl.lit(definition.name).alias("source"),
        pl.lit(extract.path).alias("source_file"),
        pl.col(ROW).alias("source_row"),
        pl.col("source_key"),
        event.alias("event_date"),
        pl.col("family_name").alias("family_name_raw"),
        pl.col("given_name").alias("given_name_raw"),
        pl.col("family_name_std").alias("family_name"),
        pl.col("given_name_std").alias("given_name"),
        "family_name_key",
        "given_name_key",
        bc.struct.field("date").alias("birth_date"),
        by.cast(pl.Int64).alias("birth_year"),
        bm.cast(pl.Int64).alias("birth_month"),
        bd.cast(pl.Int64).alias("birth_day"),
        pl.col("birth_date").alias("birth_date_raw"),
        bc.struct.field("quality").alias("birth_date_quality"),
        pl.col("_sex").struct.field("value").alias("sex"),
        pl.col("sex").alias("sex_raw"),
        "nationality_iso3",
        "nationality_region",
        pl.col("nationality").alias("nationality_raw"),
        pl.col("_vn").struct.field("value").alias("v_number"),
        pl.col("v_number").alias("v_number_raw"),
        pl.col("police_unit"),
        pl.col("_reason").struct.field("value").alias("reason"),
        folded_category.replace_strict(category_names, default=pl.col("client_category")).alias(
            "client_category"
        ),
        in_target.alias("in_target"),
        warnings,
        errors,
        pl.col("event_date").alias("_event_raw"),
        pl.col("reason").alias("_reason_raw"),
        pl.col("_nat_unrec"),
        pl.col("_too_long"),
        pl.col("_too_long_first"),
    )
    return out


def _level(definition: SourceDefinition, code: str) -> str:
    if code in ALWAYS_ERROR or code.startswith(("row.", "schema.", "field.")):
        return "error"
    return definition.level(code)


def _bit(code: str) -> int:
    return 1 << CHECK_CODES.index(code)


def _mask(flags: dict[str, pl.Expr]) -> pl.Expr:
    if not flags:
        return pl.lit(0, dtype=pl.UInt64)
    return pl.sum_horizontal(
        [
            f.fill_null(False).cast(pl.UInt64) * pl.lit(_bit(c), dtype=pl.UInt64)
            for c, f in flags.items()
        ]
    )


def _decode_mask(rows: pl.DataFrame, mask: str, out: str) -> pl.DataFrame:
    """Replace a bit-mask column by the sorted list of check codes it holds."""
    distinct = rows[mask].unique().to_list()
    lists = [sorted(c for i, c in enumerate(CHECK_CODES) if m >> i & 1) for m in distinct]
    table = pl.DataFrame(
        {mask: distinct, out: lists}, schema={mask: pl.UInt64, out: pl.List(pl.String)}
    )
    return rows.join(table, on=mask, how="left", maintain_order="left").drop(mask)


# ----------------------------------------------------------------------------- quarantine
def _message_frame(quarantined: pl.DataFrame) -> pl.DataFrame:
    """Columns and messages aligned with each quarantined row's reasons."""
    if quarantined.height == 0:
        return quarantined.with_columns(
            pl.lit([], dtype=pl.List(pl.String)).alias("columns"),
            pl.lit([], dtype=pl.List(pl.String)).alias("messages"),
        )
    flat = quarantined.select(
        "_qid",
        "_errors",
        "_too_long",
        "_too_long_first",
        *[c for c in _VALUE_OF.values() if c in quarantined.columns],
    ).explode("_errors")
    prefix = pl.col("_errors").str.split(".").list.first()
    column = prefix.replace(_CHECK_COLUMN)
    value = pl.lit(None, dtype=pl.String)
    for canonical, value_col in _VALUE_OF.items():
        if value_col in flat.columns:
            value = pl.when(column == canonical).then(pl.col(value_col)).otherwise(value)
    # field.too_long names the field(s) at fault, never the (long) value itself
    too_long = prefix == "field"
    value = pl.when(too_long).then(pl.col("_too_long")).otherwise(value)
    column = pl.when(too_long).then(pl.col("_too_long_first")).otherwise(column)
    text = pl.col("_errors").replace_strict(
        MESSAGES, default=pl.concat_str(pl.lit("schema check failed: "), pl.col("_errors"))
    )
    message = pl.when(value.is_not_null()).then(pl.format("{} ('{}')", text, value)).otherwise(text)
    flat = flat.select("_qid", column.alias("_col"), message.alias("_msg"))
    grouped = flat.group_by("_qid", maintain_order=True).agg(
        pl.col("_col").alias("columns"), pl.col("_msg").alias("messages")
    )
    return quarantined.join(grouped, on="_qid", how="left", maintain_order="left")


_VALUE_OF = {
    "source_key": "source_key",
    "event_date": "_event_raw",
    "birth_date": "birth_date_raw",
    "sex": "sex_raw",
    "nationality": "nationality_raw",
    "v_number": "v_number_raw",
    "reason": "_reason_raw",
    "client_category": "client_category",
    "family_name": "family_name_raw",
    "police_unit": "police_unit",
}


def _originals(extracts: list[Extract], keys: pl.DataFrame) -> pl.DataFrame:
    """JSON of the original values of the quarantined rows (``_input``, ``source_row``)."""
    parts = []
    for index, extract in enumerate(extracts):
        rows = keys.filter(pl.col("_input") == index).select(pl.col("source_row").alias(ROW))
        if rows.height == 0:
            continue
        raw = extract.frame.join(rows, on=ROW, how="semi", maintain_order="left")
        cols = [c for c in raw.columns if c not in (ROW, SHORT)]
        struct = pl.struct([pl.col(c).alias("_extra_fields" if c == EXTRA else c) for c in cols])
        parts.append(
            raw.select(
                pl.lit(index, dtype=pl.Int64).alias("_input"),
                pl.col(ROW).alias("source_row"),
                struct.struct.json_encode().alias("original"),
            )
        )
    if not parts:
        return pl.DataFrame(
            schema={"_input": pl.Int64, "source_row": pl.Int64, "original": pl.String}
        )
    return pl.concat(parts)


# ----------------------------------------------------------------------------- summary
def _counts(series: pl.Series) -> dict[str, int]:
    if series.len() == 0:
        return {}
    vc = series.value_counts(sort=True, name="n")
    return {
        str(k): int(n) for k, n in zip(vc[series.name].to_list(), vc["n"].to_list(), strict=True)
    }


def _list_counts(frame: pl.DataFrame, column: str) -> dict[str, int]:
    if frame.height == 0:
        return {}
    flat = frame.select(pl.col(column).list.unique()).explode(column).drop_nulls()[column]
    counts = _counts(flat)
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


_COMPLETENESS = (
    "source_key",
    "family_name",
    "given_name",
    "birth_date",
    "birth_year",
    "sex",
    "nationality_iso3",
    "v_number",
    "police_unit",
    "reason",
    "client_category",
)


def _source_summary(
    all_rows: pl.DataFrame,
    records: pl.DataFrame,
    quarantine: pl.DataFrame,
    unknown_nat: pl.DataFrame,
) -> dict[str, Any]:
    n_rec = records.height
    quality_counts = {q: 0 for q in BIRTH_DATE_QUALITY}
    quality_counts.update(_counts(records["birth_date_quality"]) if n_rec else {})
    unknown = (
        unknown_nat.group_by("nationality_raw")
        .agg(pl.len().alias("count"))
        .sort(["count", "nationality_raw"], descending=[True, False])
    )
    return {
        "rows_in": all_rows.height,
        "records": n_rec,
        "quarantined": quarantine.height,
        "reconciled": all_rows.height == n_rec + quarantine.height,
        "quarantine_by_reason": _list_counts(quarantine, "reasons"),
        "quarantine_by_column": _list_counts(quarantine, "columns"),
        "warnings": _list_counts(records, "warnings"),
        "records_with_warnings": int(records["warnings"].list.len().gt(0).sum()) if n_rec else 0,
        "unknown_nationalities": [{"text": t, "count": int(c)} for t, c in unknown.iter_rows()],
        "birth_date_quality": {
            "counts": quality_counts,
            "shares": {q: (n / n_rec if n_rec else None) for q, n in quality_counts.items()},
        },
        "completeness": {
            c: (float(records[c].is_not_null().mean()) if n_rec else None) for c in _COMPLETENESS
        },
        "in_target": {
            "in": int(records["in_target"].sum()) if n_rec else 0,
            "out": int((~records["in_target"]).sum()) if n_rec else 0,
        },
    }


# ----------------------------------------------------------------------------- the stage
def _check_out_dir(out: Path) -> None:
    """Refuse, before any work, an output directory that is a file or lies below one."""
    for folder in (out, *out.parents):
        if folder.exists() or folder.is_symlink():
            if not folder.is_dir():
                what = "is" if folder == out else f"lies below {folder}, which is"
                raise InputError(f"the output directory {what} not a directory", file=str(out))
            return


def validate_extracts(
    inputs: Sequence[tuple[str | os.PathLike, str | os.PathLike | SourceDefinition]],
    out_dir: str | os.PathLike | None = None,
    *,
    as_of: dt.date | None = None,
    run_id: str | None = None,
) -> ValidationResult:
    """Validate and standardise extracts into records, quarantine and a summary.

    ``inputs`` pairs each extract path with its source definition (a built-in name such
    as ``"police"``, a TOML path, or a :class:`SourceDefinition`). ``as_of`` is the date
    "future" is judged against (default: today; give it for reproducible runs). With
    ``out_dir`` the stage writes ``records.parquet``, ``quarantine.parquet`` and
    ``validation_summary.json`` there — only after every file has been read, so a
    whole-file fault (:class:`~recapture.errors.InputError`) leaves nothing written.
    """
    if not inputs:
        raise InputError("no extracts given")
    if out_dir is not None:
        _check_out_dir(Path(out_dir))
    as_of = as_of or dt.date.today()
    definitions = [load_source_definition(spec) for _, spec in inputs]
    extracts: list[Extract] = []
    for (path, _), definition in zip(inputs, definitions, strict=True):
        with progress.step(f"reading {Path(path).name} ({definition.name})") as state:
            extracts.append(read_extract(path, definition))
            state["result"] = f"{extracts[-1].frame.height:,} rows"

    with progress.step("checking and standardising") as state:
        parts = [
            _process_extract(e, d, i, as_of)
            for i, (e, d) in enumerate(zip(extracts, definitions, strict=True))
        ]
        rows = pl.concat(parts, how="vertical_relaxed")
        # Duplicates: the first row with a registration id (in input order) is the
        # registration; later rows with the same id in the same source are flagged.
        key = pl.concat_str(pl.col("source"), pl.lit("\x00"), pl.col("source_key"))
        duplicate = pl.col("source_key").is_not_null() & ~key.is_first_distinct()
        bit = pl.lit(_bit("source_key.duplicate"), dtype=pl.UInt64)
        for level, mask in (("error", "_err"), ("warning", "_warn")):
            inputs_at_level = [
                i for i, d in enumerate(definitions) if d.level("source_key.duplicate") == level
            ]
            if inputs_at_level:
                hit = duplicate & pl.col("_input").is_in(inputs_at_level)
                rows = rows.with_columns((pl.col(mask) | (hit.cast(pl.UInt64) * bit)).alias(mask))
        rows = _decode_mask(_decode_mask(rows, "_err", "_errors"), "_warn", "warnings")
        bad = pl.col("_errors").list.len() > 0
        state["result"] = f"{rows.height:,} rows"

    records = (
        rows.filter(~bad)
        .drop("_errors")
        .with_columns(pl.int_range(pl.len(), dtype=pl.Int64).alias("record_id"))
        .select([pl.col(c).cast(t) for c, t in _RECORD_COLUMNS.items()])
    )
    quarantined = rows.filter(bad).with_row_index("_qid")
    quarantined = quarantined.with_columns(pl.col("_errors").list.sort())
    quarantined = _message_frame(quarantined)
    originals = _originals(extracts, quarantined.select("_input", "source_row"))
    quarantined = quarantined.join(
        originals, on=["_input", "source_row"], how="left", maintain_order="left"
    )
    quarantine = quarantined.select(
        "source",
        "source_file",
        "source_row",
        "source_key",
        "original",
        pl.col("_errors").alias("reasons"),
        "columns",
        "messages",
    ).select([pl.col(c).cast(t) for c, t in _QUARANTINE_COLUMNS.items()])

    with progress.step("checking the outputs against their schemas"):
        try:
            RecordSchema.validate(records, lazy=True)
            QuarantineSchema.validate(quarantine, lazy=True)
        except pa.errors.SchemaErrors as exc:  # pragma: no cover - a bug, not an input fault
            raise RuntimeError(f"validation stage produced an invalid artifact:\n{exc}") from exc

    summary = _summary(rows, records, quarantine, extracts, definitions, as_of, run_id)
    result = ValidationResult(records=records, quarantine=quarantine, summary=summary)
    if out_dir is not None:
        out = Path(out_dir)
        result.paths["records"] = ARTIFACTS["records"].write(records, out, run_id=run_id)
        result.paths["quarantine"] = ARTIFACTS["quarantine"].write(quarantine, out, run_id=run_id)
        result.paths["summary"] = ARTIFACTS["validation_summary"].write(summary, out)
    progress.info(f"  {records.height:,} records, {quarantine.height:,} quarantined")
    return result


def _summary(
    rows: pl.DataFrame,
    records: pl.DataFrame,
    quarantine: pl.DataFrame,
    extracts: list[Extract],
    definitions: list[SourceDefinition],
    as_of: dt.date,
    run_id: str | None,
) -> dict[str, Any]:
    files = []
    for index, (extract, definition) in enumerate(zip(extracts, definitions, strict=True)):
        in_rows = extract.frame.height
        files.append(
            {
                "path": extract.path,
                "source": definition.name,
                "definition": definition.origin,
                "format": extract.format,
                "encoding": extract.encoding,
                "delimiter": extract.delimiter,
                "sha256": extract.sha256,
                "rows_in": in_rows,
                "_index": index,
                "ragged_rows": extract.ragged_rows,
                "short_rows": extract.short_rows,
                "parser": extract.parser,
            }
        )
    per_input = rows.group_by("_input").agg(
        (pl.col("_errors").list.len() == 0).sum().alias("records"),
        (pl.col("_errors").list.len() > 0).sum().alias("quarantined"),
    )
    counts = {r["_input"]: r for r in per_input.iter_rows(named=True)}
    for entry in files:
        c = (
            counts[entry.pop("_index")]
            if entry["_index"] in counts
            else {"records": 0, "quarantined": 0}
        )
        entry["records"] = int(c["records"])
        entry["quarantined"] = int(c["quarantined"])
        entry["reconciled"] = entry["rows_in"] == entry["records"] + entry["quarantined"]

    unknown_nat = rows.filter(pl.col("_nat_unrec")).select("source", "nationality_raw")
    sources = {}
    for name in dict.fromkeys(d.name for d in definitions):
        defs = [d for d in definitions if d.name == name]
        entry = _source_summary(
            rows.filter(pl.col("source") == name),
            records.filter(pl.col("source") == name),
            quarantine.filter(pl.col("source") == name),
            unknown_nat.filter(pl.col("source") == name),
        )
        sources[name] = {
            "kind": defs[0].kind,
            "definitions": sorted({d.origin for d in defs}),
            "files": sum(1 for d in definitions if d.name == name),
            **entry,
        }
    total = _source_summary(rows, records, quarantine, unknown_nat)
    policy = {d.name: {k: v for k, v in sorted(d.policy.items())} for d in definitions}
    return {
        "artifact": "validation_summary",
        "schema_version": SUMMARY_VERSION,
        "run_id": run_id,
        "as_of": as_of.isoformat(),
        "totals": {
            k: total[k]
            for k in ("rows_in", "records", "quarantined", "reconciled", "records_with_warnings")
        },
        "files": files,
        "sources": sources,
        "quarantine_by_reason": total["quarantine_by_reason"],
        "quarantine_by_column": total["quarantine_by_column"],
        "warnings": total["warnings"],
        "unknown_nationalities": total["unknown_nationalities"],
        "birth_date_quality": total["birth_date_quality"],
        "policy": policy,
    }
