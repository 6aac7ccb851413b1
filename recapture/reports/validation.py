"""The validation report: what came in, what was kept, what was quarantined and why.

Reads ``records.parquet`` and ``quarantine.parquet`` (and ``validation_summary.json`` for
the input files, when present). Everything shown is an aggregate: counts, shares and
code-listed values — never a name, birth date or V-number, and never the quarantined rows'
original values. Free text (the nationality strings that could not be recognised) is
counted, and listed only with ``show_names``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from recapture.errors import InputError
from recapture.io import artifact_path, read_json
from recapture.reports._render import (
    Section,
    absent_section,
    new_figure,
    plot_context,
    render,
    svg,
)
from recapture.schemas import BIRTH_DATE_QUALITY

#: Fields whose completeness is reported: label → expression "value is known".
COMPLETENESS_FIELDS: dict[str, str] = {
    "family name": "family_name",
    "given name": "given_name",
    "birth year": "birth_year",
    "full birth date": "birth_date",
    "sex": "sex",
    "nationality": "nationality_iso3",
    "V-number": "v_number",
    "event date": "event_date",
    "police unit": "police_unit",
    "reason": "reason",
    "client category": "client_category",
}

#: Raw nationality strings listed (most frequent first); the rest are summed.
MAX_NATIONALITY_STRINGS = 40
#: A raw nationality string is shown only when this many records carry it: a rare string
#: may be a name or a date typed into the wrong field, and the report shows no personal data.
MIN_STRING_RECORDS = 3
#: Quarantine reasons listed per table (most frequent first).
MAX_REASONS = 40


def _scan(path: Path) -> pl.LazyFrame:
    try:
        return pl.scan_parquet(path)
    except Exception as exc:  # noqa: BLE001 — unreadable file is the user's input problem
        raise InputError(f"cannot read Parquet: {exc}", file=str(path)) from None


def _columns(lf: pl.LazyFrame) -> list[str]:
    return lf.collect_schema().names()


def _rows_section(records: pl.LazyFrame, quarantine: pl.LazyFrame | None) -> Section:
    cols = _columns(records)
    agg = [pl.len().alias("kept")]
    if "in_target" in cols:
        agg.append((~pl.col("in_target")).sum().alias("outside_target"))
    kept = records.group_by("source").agg(agg).collect()
    if quarantine is not None:
        quar = quarantine.group_by("source").agg(pl.len().alias("quarantined")).collect()
        table = kept.join(quar, on="source", how="full", coalesce=True)
    else:
        table = kept.with_columns(pl.lit(None, dtype=pl.UInt32).alias("quarantined"))
    table = table.with_columns(pl.col("kept").fill_null(0), pl.col("quarantined").fill_null(0))
    table = table.with_columns((pl.col("kept") + pl.col("quarantined")).alias("rows_in")).sort(
        "source"
    )
    rows = table.to_dicts()
    totals = {
        "source": "all sources",
        "rows_in": int(table["rows_in"].sum()),
        "kept": int(table["kept"].sum()),
        "quarantined": int(table["quarantined"].sum()),
        "outside_target": int(table["outside_target"].sum())
        if "outside_target" in table.columns
        else None,
    }
    for row in [*rows, totals]:
        row["quarantined_share"] = (
            row["quarantined"] / row["rows_in"] if row["rows_in"] else float("nan")
        )
        row.setdefault("outside_target", None)
    with plot_context():
        fig, ax = new_figure(6.4, 0.9 + 0.45 * len(rows))
        y = np.arange(len(rows))[::-1]
        kept_n = np.array([r["kept"] for r in rows], dtype=float)
        quar_n = np.array([r["quarantined"] for r in rows], dtype=float)
        ax.barh(y, kept_n, label="kept", height=0.6)
        ax.barh(y, quar_n, left=kept_n, label="quarantined", height=0.6, color="#D55E00")
        ax.set_yticks(y, [r["source"] for r in rows])
        ax.set_xlabel("input rows")
        ax.legend(frameon=False, fontsize=8, ncols=2, loc="lower center", bbox_to_anchor=(0.5, 1.0))
    return Section(
        "Rows in, kept, quarantined",
        "rows",
        rows=rows,
        totals=totals,
        plot=svg(fig, "rows"),
        has_quarantine=quarantine is not None,
    )


def _quarantine_section(quarantine: pl.LazyFrame | None) -> Section:
    title, anchor = "Quarantine by reason and column", "quarantine"
    if quarantine is None:
        return absent_section(title, anchor, "no quarantine.parquet in the run directory.")
    cols = _columns(quarantine)
    if "reasons" not in cols:
        return absent_section(title, anchor, "quarantine.parquet has no 'reasons' column.")
    n_rows = quarantine.select(pl.len()).collect().item()
    if n_rows == 0:
        return absent_section(title, anchor, "no row was quarantined.")
    explode_cols = ["reasons"] + (["columns"] if "columns" in cols else [])
    flat = quarantine.select("source", *explode_cols).explode(explode_cols)
    by_reason = (
        flat.group_by("reasons", "source")
        .agg(pl.len().alias("n"))
        .collect()
        .pivot(on="source", index="reasons", values="n")
        .fill_null(0)
    )
    sources = [c for c in by_reason.columns if c != "reasons"]
    by_reason = by_reason.with_columns(pl.sum_horizontal(sources).alias("total")).sort(
        ["total", "reasons"], descending=[True, False]
    )
    by_column = None
    if "columns" in cols:
        by_column = (
            flat.group_by("columns")
            .agg(pl.len().alias("n"), pl.col("source").n_unique().alias("sources"))
            .sort(["n", "columns"], descending=[True, False])
            .collect()
        )
    reasons_per_row = (
        quarantine.select(pl.col("reasons").list.len().alias("k"))
        .group_by("k")
        .agg(pl.len().alias("rows"))
        .sort("k")
        .collect()
    )
    top = by_reason.head(20)
    with plot_context():
        fig, ax = new_figure(6.4, 0.9 + 0.3 * top.height)
        y = np.arange(top.height)[::-1]
        left = np.zeros(top.height)
        for source in sources:
            values = top[source].to_numpy().astype(float)
            ax.barh(y, values, left=left, label=source, height=0.65)
            left += values
        ax.set_yticks(y, top["reasons"].to_list())
        ax.set_xlabel("quarantined rows with this reason")
        ax.legend(frameon=False, fontsize=8, loc="lower right")
    return Section(
        title,
        anchor,
        plot=svg(fig, "quarantine-reasons"),
        n_rows=n_rows,
        sources=sources,
        by_reason=by_reason.head(MAX_REASONS).to_dicts(),
        more_reasons=max(by_reason.height - MAX_REASONS, 0),
        by_column=by_column.to_dicts() if by_column is not None else None,
        reasons_per_row=reasons_per_row.to_dicts(),
    )


def _completeness_section(records: pl.LazyFrame) -> Section:
    cols = set(_columns(records))
    fields = {label: col for label, col in COMPLETENESS_FIELDS.items() if col in cols}
    table = (
        records.group_by("source")
        .agg(
            pl.len().alias("rows"),
            *[pl.col(col).is_not_null().mean().alias(label) for label, col in fields.items()],
        )
        .sort("source")
        .collect()
    )
    sources = table["source"].to_list()
    matrix = table.select(list(fields)).to_numpy().astype(float).T  # fields × sources
    with plot_context():
        fig, ax = new_figure(1.8 + 1.1 * len(sources), 0.6 + 0.32 * len(fields))
        ax.grid(False)
        image = ax.imshow(matrix, cmap="Blues", vmin=0, vmax=1, aspect="auto")
        ax.set_xticks(range(len(sources)), sources)
        ax.set_yticks(range(len(fields)), list(fields))
        for (i, j), value in np.ndenumerate(matrix):
            ax.text(
                j,
                i,
                f"{100 * value:.0f}%",
                ha="center",
                va="center",
                fontsize=8,
                color="white" if value > 0.6 else "black",
            )
        fig.colorbar(image, ax=ax, shrink=0.8, label="share known")
    rows = [
        {"field": label, **{s: float(matrix[i, j]) for j, s in enumerate(sources)}}
        for i, label in enumerate(fields)
    ]
    return Section(
        "Field completeness per source",
        "completeness",
        rows=rows,
        sources=sources,
        n_rows=dict(zip(sources, table["rows"].to_list(), strict=True)),
        plot=svg(fig, "completeness"),
    )


def _birth_date_section(records: pl.LazyFrame) -> Section:
    title, anchor = "Birth-date quality", "birth-dates"
    if "birth_date_quality" not in _columns(records):
        return absent_section(title, anchor, "records.parquet has no 'birth_date_quality' column.")
    counts = (
        records.group_by("source", "birth_date_quality")
        .agg(pl.len().alias("n"))
        .collect()
        .pivot(on="birth_date_quality", index="source", values="n")
        .fill_null(0)
        .sort("source")
    )
    qualities = [q for q in BIRTH_DATE_QUALITY if q in counts.columns]
    qualities += [q for q in counts.columns if q not in qualities and q != "source"]
    totals = counts.select(pl.sum_horizontal(qualities)).to_series().to_numpy().astype(float)
    rows = []
    for i, row in enumerate(counts.iter_rows(named=True)):
        rows.append(
            {
                "source": row["source"],
                "rows": int(totals[i]),
                **{q: (row[q] / totals[i] if totals[i] else float("nan")) for q in qualities},
            }
        )
    with plot_context():
        fig, ax = new_figure(6.4, 0.9 + 0.45 * len(rows))
        y = np.arange(len(rows))[::-1]
        left = np.zeros(len(rows))
        for q in qualities:
            share = np.array([r[q] for r in rows])
            ax.barh(y, share, left=left, label=q.replace("_", " "), height=0.6)
            left += share
        ax.set_yticks(y, [r["source"] for r in rows])
        ax.set_xlim(0, 1)
        ax.set_xlabel("share of kept records")
        ax.legend(
            frameon=False,
            fontsize=8,
            ncols=min(len(qualities), 5),
            loc="upper center",
            bbox_to_anchor=(0.5, -0.25),
        )
    return Section(title, anchor, rows=rows, qualities=qualities, plot=svg(fig, "birth-dates"))


def _nationality_section(records: pl.LazyFrame, show_names: bool = False) -> Section:
    title, anchor = "Unrecognised nationality strings", "nationality"
    cols = _columns(records)
    if "nationality_iso3" not in cols or "nationality_raw" not in cols:
        return absent_section(
            title, anchor, "records.parquet lacks nationality_iso3 or nationality_raw."
        )
    unknown = records.filter(pl.col("nationality_iso3").is_null())
    summary = (
        unknown.group_by("source")
        .agg(pl.len().alias("unknown"), pl.col("nationality_raw").is_null().sum().alias("empty"))
        .sort("source")
        .collect()
    )
    strings = (
        unknown.filter(pl.col("nationality_raw").is_not_null())
        .group_by("nationality_raw", "source")
        .agg(pl.len().alias("n"))
        .collect()
        .pivot(on="source", index="nationality_raw", values="n")
        .fill_null(0)
    )
    sources = [c for c in strings.columns if c != "nationality_raw"]
    if strings.height:
        strings = strings.with_columns(pl.sum_horizontal(sources).alias("total")).sort(
            ["total", "nationality_raw"], descending=[True, False]
        )
    # Unrecognised text is free text: by default only counted, never shown; with show_names
    # the strings held by at least MIN_STRING_RECORDS records are listed.
    enough = pl.col("total") >= (MIN_STRING_RECORDS if show_names else float("inf"))
    shown = strings.filter(enough) if strings.height else strings
    rare = strings.filter(~enough) if strings.height else strings
    listed = shown.head(MAX_NATIONALITY_STRINGS)
    hidden = shown.slice(MAX_NATIONALITY_STRINGS)
    return Section(
        title,
        anchor,
        summary=summary.to_dicts(),
        sources=sources,
        strings=listed.to_dicts(),
        n_strings=strings.height,
        more=hidden.height,
        more_rows=int(hidden["total"].sum()) if hidden.height else 0,
        rare=rare.height,
        rare_rows=int(rare["total"].sum()) if rare.height else 0,
        min_records=MIN_STRING_RECORDS,
        show_names=show_names,
    )


def _warnings_section(records: pl.LazyFrame) -> Section:
    title, anchor = "Warnings on kept records", "warnings"
    if "warnings" not in _columns(records):
        return absent_section(title, anchor, "records.parquet has no 'warnings' column.")
    table = (
        records.select("source", "warnings")
        .explode("warnings")
        .filter(pl.col("warnings").is_not_null())
        .group_by("warnings", "source")
        .agg(pl.len().alias("n"))
        .collect()
    )
    if table.height == 0:
        return absent_section(title, anchor, "no kept record carries a warning.")
    table = table.pivot(on="source", index="warnings", values="n").fill_null(0)
    sources = [c for c in table.columns if c != "warnings"]
    table = table.with_columns(pl.sum_horizontal(sources).alias("total")).sort(
        ["total", "warnings"], descending=[True, False]
    )
    return Section(title, anchor, rows=table.head(MAX_REASONS).to_dicts(), sources=sources)


def _timeline_section(records: pl.LazyFrame) -> Section:
    title, anchor = "Registrations per month", "timeline"
    if "event_date" not in _columns(records):
        return absent_section(title, anchor, "records.parquet has no 'event_date' column.")
    monthly = (
        records.select("source", pl.col("event_date").dt.truncate("1mo").alias("month"))
        .group_by("source", "month")
        .agg(pl.len().alias("n"))
        .sort("month")
        .collect()
    )
    if monthly.height == 0:
        return absent_section(title, anchor, "no dated records.")
    with plot_context():
        fig, ax = new_figure(6.4, 2.8)
        for j, source in enumerate(sorted(monthly["source"].unique().to_list())):
            part = monthly.filter(pl.col("source") == source)
            ax.plot(
                part["month"].to_numpy(),
                part["n"].to_numpy(),
                "o-",
                ms=2.5,
                label=source,
                color=f"C{j % 8}",
            )
        ax.set_ylabel("kept records")
        ax.legend(frameon=False, fontsize=8)
        fig.autofmt_xdate()
    return Section(title, anchor, plot=svg(fig, "timeline"))


def _summary_files(run_dir: Path) -> list[dict[str, Any]] | None:
    """Input files from validation_summary.json (name, source, rows), when present."""
    path = artifact_path(run_dir, "validation_summary")
    if not path.exists():
        return None
    try:
        summary = read_json(path)
    except ValueError as exc:
        raise InputError(f"not valid JSON: {exc}", file=str(path)) from None
    files = summary.get("files") or summary.get("inputs") if isinstance(summary, dict) else None
    if isinstance(files, dict):
        files = [
            {"file": k, **(v if isinstance(v, dict) else {"value": v})} for k, v in files.items()
        ]
    if not isinstance(files, list):
        return []
    out = []
    for entry in files:
        if not isinstance(entry, dict):
            continue
        out.append(
            {
                "file": Path(
                    str(entry.get("file") or entry.get("path") or entry.get("source_file") or "?")
                ).name,
                "source": entry.get("source", ""),
                "rows": entry.get("rows_in", entry.get("rows", entry.get("rows_read"))),
                "records": entry.get("records"),
                "quarantined": entry.get("quarantined"),
                "encoding": entry.get("encoding") or "",
                "sha256": str(entry.get("sha256") or entry.get("checksum") or "")[:12],
            }
        )
    return out


def validation_report(
    run_dir: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    run_info: dict[str, Any] | None = None,
    title: str = "Validation report",
    show_names: bool = False,
) -> Path:
    """Write the validation report of the run directory's validation stage. Unrecognised
    nationality strings (free text) are listed only with ``show_names``; by default they
    are counted."""
    run = Path(run_dir)
    records_path = artifact_path(run, "records")
    if not records_path.exists():
        raise InputError(
            "no records.parquet: run 'recapture validate' first", file=str(records_path)
        )
    records = _scan(records_path)
    if "source" not in _columns(records):
        raise InputError(
            "records.parquet has no 'source' column", file=str(records_path), column="source"
        )
    quarantine_path = artifact_path(run, "quarantine")
    quarantine = _scan(quarantine_path) if quarantine_path.exists() else None
    sections = [
        _rows_section(records, quarantine),
        _quarantine_section(quarantine),
        _completeness_section(records),
        _birth_date_section(records),
        _nationality_section(records, show_names),
        _warnings_section(records),
        _timeline_section(records),
    ]
    return render(
        "validation.html",
        out_path,
        report_name="validation",
        title=title,
        run=run_info or {"run directory": run.name},
        sections=sections,
        s={x.anchor: x for x in sections},
        files=_summary_files(run),
        show_names=show_names,
    )
