"""Capture-history tables: persons or published counts → a complete table of cells.

Persons appear in k ≥ 2 sources (lists). A persons frame (one row per person, 0/1 capture
indicators and covariates) is aggregated into the table of counts that published data come
in, so both input forms give identical results. Every stratum has all 2^k − 1 observable
histories, zero counts included; the all-zero cell is never observed.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from scipy import sparse

from recapture.errors import InputError
from recapture.estimators.reading import read_frame


@dataclass
class CaptureTable:
    """A complete table of capture histories × covariate strata with observed counts.

    ``histories`` (C × k, 0/1) and ``strata`` (C,) index the observable cells; every stratum
    has all 2^k − 1 histories, zero counts included. ``partial`` holds counts of people whose
    value of some covariate is missing (e.g. a police-only variable for people seen only by
    IOM): each such group is spread over the cells it may belong to by EM.
    """

    lists: list[str]
    covariates: list[str]
    levels: dict[str, list[Any]]
    histories: np.ndarray
    strata: np.ndarray
    stratum_values: np.ndarray  # (S × q) level indices of each stratum
    counts: np.ndarray
    partial_cells: sparse.csr_matrix | None = None  # (P × C) membership of partial groups
    partial_counts: np.ndarray | None = None
    partial_labels: list[dict[str, Any]] = field(default_factory=list)
    dropped_all_zero: int = 0

    @property
    def k(self) -> int:
        return len(self.lists)

    @property
    def n_strata(self) -> int:
        return len(self.stratum_values)

    @property
    def n_observed(self) -> float:
        extra = float(self.partial_counts.sum()) if self.partial_counts is not None else 0.0
        return float(self.counts.sum()) + extra

    def cell_covariates(self) -> np.ndarray:
        """(C × q) level index of every covariate in every cell."""
        if not self.covariates:
            return np.zeros((len(self.counts), 0), dtype=int)
        return self.stratum_values[self.strata]

    def stratum_label(self, s: int) -> dict[str, Any]:
        return {
            c: self.levels[c][int(self.stratum_values[s, j])] for j, c in enumerate(self.covariates)
        }

    def collapse(self, keep: Sequence[str]) -> CaptureTable:
        """The table summed over every covariate not in ``keep`` (no partial counts)."""
        keep = [c for c in self.covariates if c in keep]
        if self.partial_counts is not None and self.partial_counts.sum() > 0:
            raise ValueError("collapse a table with partly classified counts after EM")
        idx = [self.covariates.index(c) for c in keep]
        cellcov = self.cell_covariates()[:, idx]
        key = np.column_stack([self.histories, cellcov])
        hist_codes = history_codes(self.histories)
        if keep:
            levels = {c: self.levels[c] for c in keep}
            sizes = [len(levels[c]) for c in keep]
            grid = np.array(list(itertools.product(*[range(s) for s in sizes])), dtype=int)
        else:
            levels, grid = {}, np.zeros((1, 0), dtype=int)
        hists = all_histories(self.k)
        C = len(hists) * len(grid)
        counts = np.zeros(C)
        strat_of = grid_index(cellcov, grid) if keep else np.zeros(len(key), dtype=int)
        pos = strat_of * len(hists) + hist_position(hist_codes, self.k)
        np.add.at(counts, pos, self.counts)
        return CaptureTable(
            lists=list(self.lists),
            covariates=keep,
            levels=levels,
            histories=np.tile(hists, (len(grid), 1)),
            strata=np.repeat(np.arange(len(grid)), len(hists)),
            stratum_values=grid,
            counts=counts,
        )

    def to_frame(self) -> pl.DataFrame:
        """The table as a frame: list columns, covariate columns, ``count``."""
        data: dict[str, Any] = {name: self.histories[:, j] for j, name in enumerate(self.lists)}
        cellcov = self.cell_covariates()
        for j, c in enumerate(self.covariates):
            data[c] = [self.levels[c][i] for i in cellcov[:, j]]
        data["count"] = self.counts
        return pl.DataFrame(data)


def all_histories(k: int) -> np.ndarray:
    """All 2^k − 1 observable histories, in Rcapture's order (1…1 first, 0…01 last)."""
    return np.array(list(itertools.product([1, 0], repeat=k)), dtype=np.int8)[:-1]


def history_codes(h: np.ndarray) -> np.ndarray:
    k = h.shape[1]
    return (h.astype(np.int64) * (1 << np.arange(k - 1, -1, -1))).sum(axis=1)


def hist_position(codes: np.ndarray, k: int) -> np.ndarray:
    """Row of a history code in :func:`all_histories` order."""
    return (1 << k) - 1 - codes


def grid_index(values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    sizes = grid.max(axis=0) + 1 if len(grid) else np.zeros(0, dtype=int)
    mult = np.ones(values.shape[1], dtype=np.int64)
    for j in range(values.shape[1] - 2, -1, -1):
        mult[j] = mult[j + 1] * sizes[j + 1]
    return (values.astype(np.int64) * mult).sum(axis=1)


def capture_table(
    data: Any,
    lists: Sequence[str] | None = None,
    count: str | None = None,
    covariates: Sequence[str] = (),
    *,
    source: str | None = None,
    allow_missing: Sequence[str] = (),
) -> CaptureTable:
    """Aggregate persons or a capture-history table into a complete :class:`CaptureTable`.

    ``lists`` are the 0/1 capture columns (default: every ``in_*`` column); ``count`` the
    frequency column of an aggregated table (default: one person per row). Rows whose
    history is all zero (not observed in the period) are dropped and counted. Covariates
    named in ``allow_missing`` may be null; those rows become partly classified counts.
    """
    if isinstance(data, CaptureTable):
        return data
    if source is None and isinstance(data, str | Path):
        source = str(data)
    df = read_frame(data)
    where = source
    if lists is None:
        lists = [c for c in df.columns if c.startswith("in_")]
    lists = list(lists)
    if len(lists) < 2:
        raise InputError(f"need at least 2 capture columns, found {lists}", file=where)
    covariates = list(covariates)
    for col in [*lists, *covariates, *([count] if count else [])]:
        if col not in df.columns:
            raise InputError("column not found", file=where, column=col)
    # -- capture indicators: 0/1, no nulls
    hist_cols = []
    for col in lists:
        s = df[col]
        if s.dtype == pl.Boolean:
            s = s.cast(pl.Int8)
        if s.null_count():
            row = int(s.is_null().arg_max()) + 1
            raise InputError("missing capture indicator", file=where, row=row, column=col)
        try:
            v = s.cast(pl.Float64).to_numpy()
        except Exception as exc:
            raise InputError(
                f"capture indicator is not numeric ({exc})", file=where, column=col
            ) from None
        bad = ~np.isin(v, (0.0, 1.0))
        if bad.any():
            row = int(np.argmax(bad)) + 1
            raise InputError(
                f"capture indicator must be 0 or 1, got {v[row - 1]!r}",
                file=where,
                row=row,
                column=col,
            )
        hist_cols.append(v.astype(np.int8))
    H = np.column_stack(hist_cols)
    if count:
        c = df[count]
        if c.null_count():
            raise InputError(
                "missing count", file=where, row=int(c.is_null().arg_max()) + 1, column=count
            )
        w = c.cast(pl.Float64).to_numpy()
        if (w < 0).any() or not np.isfinite(w).all():
            row = int(np.argmax((w < 0) | ~np.isfinite(w))) + 1
            raise InputError(
                "counts must be finite and non-negative", file=where, row=row, column=count
            )
    else:
        w = np.ones(len(df))
    zero = H.sum(axis=1) == 0
    dropped = float(w[zero].sum())
    H, w = H[~zero], w[~zero]
    df = df.filter(pl.Series(~zero))
    if not np.any(w > 0):
        raise InputError(
            "no person is observed by any list (every row has an all-zero history or a zero "
            "count): there is nothing to estimate from",
            file=where,
        )
    # -- covariates: levels in order of appearance sorted (first = reference level)
    levels: dict[str, list[Any]] = {}
    codes = np.zeros((len(df), len(covariates)), dtype=np.int64)
    missing = np.zeros((len(df), len(covariates)), dtype=bool)
    for j, cov in enumerate(covariates):
        s = df[cov]
        present = s.drop_nulls().unique()
        if isinstance(s.dtype, pl.Enum):  # the declared order gives the reference level
            seen = set(present.cast(pl.String).to_list())
            lv = [x for x in s.dtype.categories.to_list() if x in seen]
        else:
            if s.dtype == pl.Categorical:
                present = present.cast(pl.String)
            lv = sorted(present.to_list())
        if len(lv) == 0:
            raise InputError("covariate has no observed value", file=where, column=cov)
        levels[cov] = lv
        isnull = s.is_null().to_numpy()
        if isnull.any() and cov not in allow_missing:
            raise InputError(
                "missing covariate value (pass it as a partly observed covariate to fit it by EM)",
                file=where,
                row=int(np.argmax(isnull)) + 1,
                column=cov,
            )
        missing[:, j] = isnull
        if s.dtype == pl.Categorical or s.dtype == pl.Enum:
            s = s.cast(pl.String)
        codes[:, j] = (
            s.replace_strict(lv, list(range(len(lv))), default=-1, return_dtype=pl.Int64)
            .fill_null(-1)
            .to_numpy()
        )
    sizes = [len(levels[c]) for c in covariates]
    grid = (
        np.array(list(itertools.product(*[range(s) for s in sizes])), dtype=np.int64)
        if covariates
        else np.zeros((1, 0), dtype=np.int64)
    )
    hists = all_histories(len(lists))
    nh = len(hists)
    C = nh * len(grid)
    counts = np.zeros(C)
    hpos = hist_position(history_codes(H), len(lists))
    full = ~missing.any(axis=1)
    spos = (
        grid_index(codes[full], grid) if covariates else np.zeros(int(full.sum()), dtype=np.int64)
    )
    np.add.at(counts, spos * nh + hpos[full], w[full])
    table = CaptureTable(
        lists=lists,
        covariates=covariates,
        levels=levels,
        histories=np.tile(hists, (len(grid), 1)),
        strata=np.repeat(np.arange(len(grid)), nh),
        stratum_values=grid,
        counts=counts,
        dropped_all_zero=int(dropped),
    )
    if (~full).any():
        # group partly classified rows by (history, observed covariates, missingness pattern)
        keys = np.column_stack([hpos[~full], np.where(missing[~full], -1, codes[~full])])
        uniq, inv = np.unique(keys, axis=0, return_inverse=True)
        pc = np.zeros(len(uniq))
        np.add.at(pc, inv.ravel(), w[~full])
        cellcov = table.cell_covariates()
        cell_hpos = np.tile(np.arange(nh), len(grid))
        rows, cols, labels = [], [], []
        for g, key in enumerate(uniq):
            ok = cell_hpos == key[0]
            for j in range(len(covariates)):
                if key[1 + j] >= 0:
                    ok &= cellcov[:, j] == key[1 + j]
            idx = np.flatnonzero(ok)
            rows.extend([g] * len(idx))
            cols.extend(idx.tolist())
            lab = {name: int(hists[key[0], i]) for i, name in enumerate(lists)}
            for j, cov in enumerate(covariates):
                lab[cov] = levels[cov][key[1 + j]] if key[1 + j] >= 0 else None
            labels.append(lab)
        table.partial_cells = sparse.csr_matrix(
            (np.ones(len(rows)), (rows, cols)), shape=(len(uniq), C)
        )
        table.partial_counts = pc
        table.partial_labels = labels
    return table
