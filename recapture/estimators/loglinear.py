"""Dual and multiple systems estimation: Poisson log-linear models on capture-history tables.

Persons appear in k ≥ 2 sources (lists). The table of capture histories (2^k − 1 observable
cells per covariate stratum; the all-zero cell is never observed) is modelled as Poisson with a
log-linear model of main effects and hierarchical interactions; the fitted model predicts the
all-zero cell(s), and N̂ = n + Σ predicted hidden counts.

The same code serves both input forms: a persons frame (one row per person, 0/1 capture
indicators and covariates) is aggregated into the table of counts that published data come in,
so both give identical results.

Numerics follow R's ``glm`` (Poisson, IRLS, aliased columns dropped in order) so that results
agree with Rcapture and SparseMSE. Sparse tables are checked before anything is reported:
empty overlaps in the model are treated as parameters at −∞ (cells removed, as SparseMSE does),
the existence of the maximum-likelihood estimate is tested with the linear program of Fienberg &
Rinaldo (2012) and identifiability by the rank of the design (Chan, Silverman & Vincent 2021).
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from scipy import optimize, sparse, special, stats

from recapture import progress
from recapture.errors import ConfigError, InputError
from recapture.estimators.result import PopulationEstimate

Z95 = stats.norm.ppf(0.975)

# =============================================================================== the table


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
        hist_codes = _history_codes(self.histories)
        if keep:
            levels = {c: self.levels[c] for c in keep}
            sizes = [len(levels[c]) for c in keep]
            grid = np.array(list(itertools.product(*[range(s) for s in sizes])), dtype=int)
        else:
            levels, grid = {}, np.zeros((1, 0), dtype=int)
        hists = _all_histories(self.k)
        C = len(hists) * len(grid)
        counts = np.zeros(C)
        strat_of = _grid_index(cellcov, grid) if keep else np.zeros(len(key), dtype=int)
        pos = strat_of * len(hists) + _hist_position(hist_codes, self.k)
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


def _all_histories(k: int) -> np.ndarray:
    """All 2^k − 1 observable histories, in Rcapture's order (1…1 first, 0…01 last)."""
    return np.array(list(itertools.product([1, 0], repeat=k)), dtype=np.int8)[:-1]


def _history_codes(h: np.ndarray) -> np.ndarray:
    k = h.shape[1]
    return (h.astype(np.int64) * (1 << np.arange(k - 1, -1, -1))).sum(axis=1)


def _hist_position(codes: np.ndarray, k: int) -> np.ndarray:
    """Row of a history code in :func:`_all_histories` order."""
    return (1 << k) - 1 - codes


def _grid_index(values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    sizes = grid.max(axis=0) + 1 if len(grid) else np.zeros(0, dtype=int)
    mult = np.ones(values.shape[1], dtype=np.int64)
    for j in range(values.shape[1] - 2, -1, -1):
        mult[j] = mult[j + 1] * sizes[j + 1]
    return (values.astype(np.int64) * mult).sum(axis=1)


def _to_polars(data: Any) -> pl.DataFrame:
    if isinstance(data, pl.DataFrame):
        return data
    if isinstance(data, str | Path):
        path = Path(data)
        if not path.exists():
            raise FileNotFoundError(2, "No such file or directory", str(path))
        try:
            if path.suffix.lower() in (".csv", ".txt"):
                return pl.read_csv(path)
            return pl.read_parquet(path)
        except Exception as exc:
            raise InputError(f"cannot read the table ({exc})", file=str(path)) from None
    if isinstance(data, CaptureTable):
        return data.to_frame()
    try:
        import pandas as pd

        if isinstance(data, pd.DataFrame):
            return pl.from_pandas(data)
    except ImportError:  # pragma: no cover
        pass
    raise InputError(f"expected a polars or pandas DataFrame, got {type(data).__name__}")


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
    df = _to_polars(data)
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
    hists = _all_histories(len(lists))
    nh = len(hists)
    C = nh * len(grid)
    counts = np.zeros(C)
    hpos = _hist_position(_history_codes(H), len(lists))
    full = ~missing.any(axis=1)
    spos = (
        _grid_index(codes[full], grid) if covariates else np.zeros(int(full.sum()), dtype=np.int64)
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


# =============================================================================== model language

Term = tuple[str, ...]


def parse_terms(
    model: str | Sequence[Any] | None, variables: Sequence[str], lists: Sequence[str]
) -> list[Term]:
    """Terms of a hierarchical log-linear model, closed under taking margins.

    Accepts a formula (``"A*B + C"``, ``"A + B + A:B"``, ``"(A+B+C)^2"``), generating classes
    (``"[AB][C]"`` when names are single letters, otherwise ``"[A,B][C]"`` or ``"[A B][C]"``),
    a list of terms (``["A:B", ("A", "C")]``), or ``"main"``/``None`` for main effects. The main
    effects of every list are always included. Returns terms sorted by order, then by position.
    """
    order = {v: i for i, v in enumerate(variables)}
    gens: list[set[str]] = []

    def check(names: Iterable[str], context: str) -> set[str]:
        out = set()
        for nm in names:
            nm = nm.strip()
            if not nm:
                continue
            if nm not in order:
                raise ConfigError(
                    f"unknown variable {nm!r} in model {context!r}; known: {', '.join(variables)}",
                    key="model",
                )
            out.add(nm)
        return out

    if model is None or (
        isinstance(model, str) and model.strip().lower() in ("", "main", "independence", "mt")
    ):
        pass
    elif isinstance(model, str) and "[" in model:
        for body in re.findall(r"\[([^\]]*)\]", model):
            if re.search(r"[,\s:*]", body.strip()):
                names = re.split(r"[,\s:*]+", body.strip())
            elif body in order:
                names = [body]
            elif all(ch in order for ch in body):
                names = list(body)
            else:
                raise ConfigError(f"cannot read generator [{body}] in model {model!r}", key="model")
            gens.append(check(names, model))
    elif isinstance(model, str):
        for piece in _split_plus(model):
            piece = piece.strip()
            m = re.fullmatch(r"\((.*)\)\s*\^\s*(\d+)", piece)
            if m:
                names = check(m.group(1).split("+"), model)
                deg = int(m.group(2))
                for r in range(1, deg + 1):
                    gens.extend(set(c) for c in itertools.combinations(sorted(names), r))
            elif "*" in piece:
                gens.append(check(piece.split("*"), model))
            else:
                gens.append(check(piece.split(":"), model))
    else:
        for term in model:
            names = term.split(":") if isinstance(term, str) else list(term)
            gens.append(check(names, str(model)))
    gens.extend({name} for name in lists)
    terms: set[Term] = set()
    for g in gens:
        for r in range(1, len(g) + 1):
            for sub in itertools.combinations(sorted(g, key=order.get), r):
                terms.add(sub)
    return sorted(terms, key=lambda t: (len(t), [order[v] for v in t]))


def _split_plus(formula: str) -> list[str]:
    out, depth, cur = [], 0, ""
    for ch in formula:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "+" and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    out.append(cur)
    return [p for p in out if p.strip()]


def term_name(term: Term) -> str:
    return ":".join(term)


def generating_class(terms: Sequence[Term]) -> str:
    """Bracket notation of the maximal terms, e.g. ``[A,B][C]``."""
    sets = [set(t) for t in terms]
    maximal = [t for t, s in zip(terms, sets, strict=True) if not any(s < o for o in sets)]
    return "".join("[" + ",".join(t) + "]" for t in maximal)


# =============================================================================== design


@dataclass
class Design:
    """Design matrix of the observable cells and of the hidden (all-zero) cell per stratum."""

    X: np.ndarray
    X0: np.ndarray
    names: list[str]
    term_of_column: list[Term | None]


def build_design(table: CaptureTable, terms: Sequence[Term]) -> Design:
    """Columns: intercept, then each term's list product × treatment dummies of its covariates."""
    lists = table.lists
    cellcov = table.cell_covariates()
    S = table.n_strata
    cols, cols0, names, owner = [np.ones(len(table.counts))], [np.ones(S)], ["(Intercept)"], [None]
    for term in terms:
        lt = [v for v in term if v in lists]
        ct = [v for v in term if v not in lists]
        base = np.ones(len(table.counts))
        for v in lt:
            base = base * table.histories[:, lists.index(v)]
        base0 = np.ones(S) if not lt else np.zeros(S)
        combos = itertools.product(*[range(1, len(table.levels[c])) for c in ct]) if ct else [()]
        for combo in combos:
            col, col0 = base.copy(), base0.copy()
            label = list(lt)
            for c, lev in zip(ct, combo, strict=True):
                j = table.covariates.index(c)
                col = col * (cellcov[:, j] == lev)
                col0 = col0 * (table.stratum_values[:, j] == lev)
                label.append(f"{c}[{table.levels[c][lev]}]")
            cols.append(col)
            cols0.append(col0)
            names.append(":".join(label))
            owner.append(term)
    return Design(np.column_stack(cols), np.column_stack(cols0), names, owner)


# =============================================================================== Poisson fitting


@dataclass
class PoissonFit:
    """A Poisson log-linear fit (R ``glm`` conventions: aliased columns get NaN)."""

    coef: np.ndarray
    cov: np.ndarray  # unscaled covariance of the estimable coefficients (full size, NaN aliased)
    mu: np.ndarray
    deviance: float
    loglik: float
    rank: int
    df_residual: int
    converged: bool
    iterations: int
    keep: np.ndarray  # estimable columns


def _independent_columns(X: np.ndarray, tol: float = 1e-7) -> np.ndarray:
    """Columns kept by R's limited pivoting: a column is dropped if it is (nearly) spanned by
    the columns before it."""
    keep: list[int] = []
    Q = np.zeros((X.shape[0], 0))
    for j in range(X.shape[1]):
        v = X[:, j].astype(float)
        norm = np.linalg.norm(v)
        if norm == 0:
            continue
        r = v - Q @ (Q.T @ v)
        r = r - Q @ (Q.T @ r)
        if np.linalg.norm(r) > tol * norm:
            keep.append(j)
            Q = np.column_stack([Q, r / np.linalg.norm(r)])
    return np.array(keep, dtype=int)


def poisson_loglik(y: np.ndarray, mu: np.ndarray) -> float:
    """Σ log dpois(y; mu) with gamma for non-integer y (as R's dpois warns and rounds)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.sum(special.xlogy(y, mu) - mu - special.gammaln(y + 1)))


def poisson_deviance(y: np.ndarray, mu: np.ndarray) -> float:
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(2 * np.sum(special.xlogy(y, y) - special.xlogy(y, mu) - (y - mu)))


def fit_poisson(
    X: np.ndarray,
    y: np.ndarray,
    offset: np.ndarray | None = None,
    *,
    start: np.ndarray | None = None,
    tol: float = 1e-11,
    maxit: int = 200,
) -> PoissonFit:
    """Poisson regression with log link by IRLS, vectorised; R's ``glm.fit`` start and rules."""
    y = np.asarray(y, dtype=float)
    n, p = X.shape
    off = np.zeros(n) if offset is None else np.asarray(offset, dtype=float)
    keep = _independent_columns(X)
    Xk = X[:, keep]
    if start is not None and np.all(np.isfinite(start[keep])):
        eta = Xk @ start[keep] + off
        mu = np.exp(eta)
    else:
        mu = y + 0.1
        eta = np.log(mu)
    dev_old = poisson_deviance(y, mu)
    converged = False
    beta = np.zeros(len(keep))
    it = 0
    for it in range(1, maxit + 1):  # noqa: B007
        z = eta - off + (y - mu) / mu
        sw = np.sqrt(mu)
        beta, *_ = np.linalg.lstsq(Xk * sw[:, None], z * sw, rcond=None)
        eta = Xk @ beta + off
        mu = np.exp(np.minimum(eta, 700))
        dev = poisson_deviance(y, mu)
        if abs(dev - dev_old) / (abs(dev) + 0.1) < tol:
            converged = True
            break
        dev_old = dev
    info = (Xk * mu[:, None]).T @ Xk
    try:
        cov_k = np.linalg.inv(info)
    except np.linalg.LinAlgError:
        cov_k = np.linalg.pinv(info)
    coef = np.full(p, np.nan)
    coef[keep] = beta
    cov = np.full((p, p), np.nan)
    cov[np.ix_(keep, keep)] = cov_k
    return PoissonFit(
        coef=coef,
        cov=cov,
        mu=mu,
        deviance=dev,
        loglik=poisson_loglik(y, mu),
        rank=len(keep),
        df_residual=n - len(keep),
        converged=converged,
        iterations=it,
        keep=keep,
    )


def fit_grouped_poisson(
    X: np.ndarray,
    offset: np.ndarray,
    y_cells: np.ndarray,
    groups: sparse.csr_matrix | None,
    y_groups: np.ndarray | None,
    *,
    start: np.ndarray | None = None,
    tol: float = 1e-10,
    maxit: int = 5000,
) -> tuple[PoissonFit, np.ndarray, int]:
    """Poisson log-linear fit when some counts are known only as sums over groups of cells.

    EM (Zwane & van der Heijden 2007): each group count is spread over its cells in proportion
    to the fitted means, then the model is refitted to the completed table. Returns the fit on
    the completed table, the completed counts, and the number of EM iterations.
    """
    if groups is None or y_groups is None or len(y_groups) == 0:
        return fit_poisson(X, y_cells, offset, start=start), y_cells, 0
    mu = np.full(len(y_cells), max(1.0, float(np.mean(y_cells))))
    fit = None
    old = -np.inf
    it = 0
    for it in range(1, maxit + 1):  # noqa: B007
        tot = groups @ mu
        ratio = np.divide(y_groups, tot, out=np.zeros_like(y_groups, dtype=float), where=tot > 0)
        completed = y_cells + mu * (groups.T @ ratio)
        fit = fit_poisson(X, completed, offset, start=None if fit is None else fit.coef)
        mu = fit.mu
        ll = observed_grouped_loglik(mu, y_cells, groups, y_groups)
        if abs(ll - old) < tol * (abs(ll) + 1):
            break
        old = ll
    assert fit is not None
    return fit, completed, it


def observed_grouped_loglik(mu, y_cells, groups, y_groups) -> float:
    """Observed-data Poisson log-likelihood (cell part excluding cells only in groups)."""
    tot = groups @ mu
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(
            np.sum(special.xlogy(y_cells, mu) - mu - special.gammaln(y_cells + 1))
            + np.sum(special.xlogy(y_groups, tot) - special.gammaln(y_groups + 1))
        )


def grouped_information(X, mu, groups, y_groups) -> np.ndarray:
    """Observed-data information of the grouped Poisson model (Louis 1982 in closed form)."""
    info = (X * mu[:, None]).T @ X
    if groups is None or y_groups is None or len(y_groups) == 0:
        return info
    G = groups.tocsr()
    tot = G @ mu
    for g in range(G.shape[0]):
        idx = G.indices[G.indptr[g] : G.indptr[g + 1]]
        if tot[g] <= 0 or len(idx) < 2:
            continue
        w = mu[idx] / tot[g]
        Xi = X[idx]
        xbar = w @ Xi
        info -= y_groups[g] * ((Xi * w[:, None]).T @ Xi - np.outer(xbar, xbar))
    return info


# =============================================================================== sparse-table checks


def mle_exists(X: np.ndarray, y: np.ndarray) -> bool:
    """Fienberg & Rinaldo (2012) linear program: the Poisson MLE exists iff the sufficient
    statistics Xᵀy can be written as Xᵀx with every x_i > 0 (as SparseMSE ``checkident``)."""
    n, p = X.shape
    # variables x (n) and s; maximise s subject to Xᵀx = Xᵀy, x_i − s ≥ 0, x ≥ 0, 0 ≤ s ≤ 1
    scale = max(1.0, float(y.sum()))
    c = np.zeros(n + 1)
    c[-1] = -1.0
    A_eq = np.hstack([X.T, np.zeros((p, 1))])
    b_eq = X.T @ y / scale
    A_ub = np.hstack([-np.eye(n), np.ones((n, 1))])
    b_ub = np.zeros(n)
    res = optimize.linprog(
        c,
        A_ub=A_ub,
        b_ub=b_ub,
        A_eq=A_eq,
        b_eq=b_eq,
        bounds=[(0, None)] * n + [(0, 1)],
        method="highs",
    )
    if res.status != 0:
        return False
    return bool(-res.fun > 1e-9)


def rank_deficiency(X: np.ndarray) -> int:
    return X.shape[1] - int(np.linalg.matrix_rank(X))


# =============================================================================== estimate pieces


@dataclass
class CellFit:
    """What a fitted cell model says about the hidden cells."""

    fit: PoissonFit
    X: np.ndarray
    y: np.ndarray
    offset: np.ndarray
    X0: np.ndarray
    offset0: np.ndarray
    n: float
    information: np.ndarray | None = None  # observed-data information (EM), else complete-data

    @property
    def hidden(self) -> np.ndarray:
        keep = self.fit.keep
        return np.exp(self.X0[:, keep] @ self.fit.coef[keep] + self.offset0)

    @property
    def population_size(self) -> float:
        return self.n + float(self.hidden.sum())

    def covariance(self) -> np.ndarray:
        keep = self.fit.keep
        if self.information is None:
            return self.fit.cov[np.ix_(keep, keep)]
        info = self.information[np.ix_(keep, keep)]
        try:
            return np.linalg.inv(info)
        except np.linalg.LinAlgError:
            return np.linalg.pinv(info)

    def variance(self, mask: np.ndarray | None = None) -> float:
        """Var(N̂ − n) = Σ μ₀ + gᵀ V g (Poisson variance of the hidden count plus the delta
        method; for one stratum this is Rcapture's formula)."""
        keep = self.fit.keep
        mu0 = self.hidden if mask is None else self.hidden * mask
        g = mu0 @ self.X0[:, keep]
        return float(mu0.sum() + g @ self.covariance() @ g)


def cormack_profile_loglik(deviance: float, n0: float, total: float) -> float:
    """Multinomial profile log-likelihood from the Poisson deviance of the completed table,
    with the correction term of Cormack (1992) exactly as Rcapture's ``closedpCI`` uses it."""
    if total > 100:
        if n0 in (0, 1):
            ct = -total + 0.5 * math.log(2 * math.pi * total)
        else:
            ct = n0 - total - 0.5 * math.log(n0 / total)
    else:
        ct = (
            special.xlogy(n0, n0)
            + special.gammaln(total + 1)
            - total * math.log(total)
            - special.gammaln(n0 + 1)
        )
    return (deviance - 2 * ct) / -2


def profile_interval(
    deviance_at: Callable[[float], float],
    n: float,
    N_hat: float,
    level: float = 0.95,
    fmax: float = 3.0,
) -> tuple[float, float, float]:
    """Profile-likelihood interval for N (Rcapture ``closedpCI``): returns (N_max, lower, upper);
    ``upper`` is +inf when the likelihood does not drop enough below ``fmax``·N̂.

    The profile is explored outwards from N̂: the maximum is searched next to N̂ (the
    multinomial maximum differs from the Poisson N̂ by about one), and each limit is bracketed
    by steps that double away from the maximum before the root is polished. With covariate
    strata the hidden count is one sum over the strata, the likelihood in the coefficients is
    not concave and far from N̂ it can have other local maxima; a search over the whole range
    (n, 3·N̂) then starts where the fits can land on one of them and lose the maximum.
    """

    def ll(N: float) -> float:
        return cormack_profile_loglik(deviance_at(N - n), N - n, N)

    f0 = max(N_hat - n, 0.0)
    half = max(f0 / 2, 1.0)
    opt = optimize.minimize_scalar(
        lambda N: -ll(N),
        bounds=(max(n, N_hat - half), N_hat + half),
        method="bounded",
        options={"xatol": 1e-8 * N_hat},
    )
    Nmax, lmax = float(opt.x), -float(opt.fun)
    target = lmax - stats.chi2.ppf(level, 1) / 2

    def f(N: float) -> float:
        return ll(N) - target

    step0 = max(f0 / 20, 1.0)
    # lower limit: step down towards n
    inner, step, lower = Nmax, step0, float(n)
    while inner > n:
        outer = max(float(n), Nmax - step)
        if f(outer) < 0:
            lower = optimize.brentq(f, outer, inner, xtol=1e-10 * N_hat)
            break
        inner, step = outer, 2 * step
    # upper limit: step up to fmax·N̂
    hi = fmax * N_hat
    inner, step, upper = Nmax, step0, math.inf
    while inner < hi:
        outer = min(hi, Nmax + step)
        if f(outer) < 0:
            upper = optimize.brentq(f, inner, outer, xtol=1e-10 * N_hat)
            break
        inner, step = outer, 2 * step
    return Nmax, float(lower), float(upper)


class _Continuation:
    """Starting values of the profile fits: the solution at the evaluated hidden count nearest
    to the requested one on the side of the MLE (the MLE itself at first). The fits then follow
    the branch of maxima through the MLE, whatever order a root finder asks for the counts in;
    a start from the last evaluated count, far on the other side, can land on another local
    maximum of the non-concave likelihood."""

    def __init__(self, n0_hat: float, coef: np.ndarray):
        self.n0_hat = float(n0_hat)
        self.points: dict[float, np.ndarray] = {self.n0_hat: np.where(np.isfinite(coef), coef, 0.0)}

    def start(self, n0: float) -> np.ndarray:
        d = n0 - self.n0_hat
        inner = [
            m for m in self.points if (m - self.n0_hat) * d >= 0 and abs(m - self.n0_hat) <= abs(d)
        ]
        return self.points[max(inner, key=lambda m: abs(m - self.n0_hat))]

    def store(self, n0: float, coef: np.ndarray) -> None:
        self.points[float(n0)] = coef


def fit_with_hidden_total(
    X: np.ndarray,
    y: np.ndarray,
    offset: np.ndarray,
    X0: np.ndarray,
    offset0: np.ndarray,
    n0: float,
    start: np.ndarray,
    *,
    tol: float = 1e-12,
    maxit: int = 200,
) -> tuple[np.ndarray, float]:
    """Maximise the Poisson likelihood of the observed cells plus one count n0 for the hidden
    cells of all strata together (mean Σ_s μ0_s); returns the coefficients and the deviance.

    Damped Newton: the hidden cell's mean is a sum of exponentials, not log-linear, so the
    Hessian can be indefinite far from the optimum; then the scoring matrix is used instead.
    """
    beta = np.where(np.isfinite(start), start, 0.0)

    def parts(b):
        mu = np.exp(np.minimum(X @ b + offset, 700))
        mu0 = np.exp(np.minimum(X0 @ b + offset0, 700))
        return mu, mu0, mu0.sum()

    def loglik(mu, tot0):
        return float(np.sum(special.xlogy(y, mu) - mu) + special.xlogy(n0, tot0) - tot0)

    mu, mu0, tot0 = parts(beta)
    ll = loglik(mu, tot0)
    for _ in range(maxit):
        w = mu0 / tot0
        grad = X.T @ (y - mu) + X0.T @ (n0 * w - mu0)
        scoring = (X * mu[:, None]).T @ X + (X0 * mu0[:, None]).T @ X0
        xbar = w @ X0
        hess = scoring - n0 * ((X0 * w[:, None]).T @ X0 - np.outer(xbar, xbar))
        step = _newton_step(hess, scoring, grad)
        cand, ll_c, (mu_c, mu0_c, tot_c) = _ascent(
            beta, step, ll, lambda b: _with_loglik(parts(b), loglik)
        )
        if ll_c < ll - 1e-12 * abs(ll):  # no ascent left along the step: at the maximum
            break
        beta, mu, mu0, tot0 = cand, mu_c, mu0_c, tot_c
        done = abs(ll_c - ll) <= tol * (abs(ll) + 1)
        ll = ll_c
        if done:
            break
    dev = poisson_deviance(y, mu) + poisson_deviance(np.array([n0]), np.array([tot0]))
    return beta, dev


def augmented_deviance_fn(cf: CellFit) -> Callable[[float], float]:
    """Deviance of the completed table (observed cells plus a hidden count n0 shared by the
    strata), the building block of the profile likelihood; one stratum is Rcapture's case."""
    keep = cf.fit.keep
    X, y, off, X0, off0 = cf.X[:, keep], cf.y, cf.offset, cf.X0[:, keep], cf.offset0
    S = X0.shape[0]
    path = _Continuation(cf.population_size - cf.n, cf.fit.coef[keep])
    if S == 1:
        Xa = np.vstack([X, X0])
        offa = np.concatenate([off, off0])

    def deviance(n0: float) -> float:
        if S == 1:
            fit = fit_poisson(Xa, np.concatenate([y, [n0]]), offa, start=path.start(n0))
            path.store(n0, fit.coef)
            return fit.deviance
        beta, dev = fit_with_hidden_total(X, y, off, X0, off0, n0, path.start(n0))
        path.store(n0, beta)
        return dev

    return deviance


def grouped_profile_deviance_fn(
    X: np.ndarray,
    y_cells: np.ndarray,
    offset: np.ndarray,
    groups: sparse.csr_matrix,
    y_groups: np.ndarray,
    X0: np.ndarray,
    offset0: np.ndarray,
    start: np.ndarray,
) -> Callable[[float], float]:
    """Profile building block when some counts are partly classified (EM fits): the hidden
    cells become one more group with count n0 and the observed-data likelihood is maximised by
    damped Newton. Returns −2 log L(n0) + 2(n0 log n0 − n0), which differs from the deviance
    of the completed table only by a constant."""
    C, S = X.shape[0], X0.shape[0]
    Xa = np.vstack([X, X0])
    offa = np.concatenate([offset, offset0])
    ya = np.concatenate([y_cells, np.zeros(S)])
    hidden_group = sparse.csr_matrix(
        (np.ones(S), (np.zeros(S, dtype=int), C + np.arange(S))), shape=(1, C + S)
    )
    Ga = sparse.vstack(
        [sparse.hstack([groups, sparse.csr_matrix((groups.shape[0], S))]), hidden_group]
    ).tocsr()
    start = np.where(np.isfinite(start), start, 0.0)
    path = _Continuation(float(np.exp(X0 @ start + offset0).sum()), start)

    def loglik(mu: np.ndarray, yg: np.ndarray) -> float:
        tot = Ga @ mu
        return float(np.sum(special.xlogy(ya, mu)) + np.sum(special.xlogy(yg, tot)) - mu.sum())

    def deviance(n0: float) -> float:
        yg = np.concatenate([y_groups, [n0]])
        beta = path.start(n0)
        mu = np.exp(np.minimum(Xa @ beta + offa, 700))
        ll = loglik(mu, yg)
        for _ in range(200):
            tot = Ga @ mu
            ratio = np.divide(yg, tot, out=np.zeros_like(yg), where=tot > 0)
            wsum = mu * (Ga.T @ ratio)
            grad = Xa.T @ (ya + wsum - mu)
            scoring = (Xa * mu[:, None]).T @ Xa
            inv_tot = np.divide(1.0, tot, out=np.zeros_like(tot), where=tot > 0)
            Xbar = sparse.diags(inv_tot) @ Ga @ sparse.diags(mu) @ Xa
            hess = scoring - (Xa * wsum[:, None]).T @ Xa + Xbar.T @ (Xbar * yg[:, None])
            step = _newton_step(hess, scoring, grad)

            def fitted(b, yg=yg):
                mu_b = np.exp(np.minimum(Xa @ b + offa, 700))
                return loglik(mu_b, yg), mu_b

            cand, ll_c, mu_c = _ascent(beta, step, ll, fitted)
            if ll_c < ll - 1e-12 * abs(ll):  # no ascent left along the step: at the maximum
                break
            done = abs(ll_c - ll) <= 1e-12 * (abs(ll) + 1)
            beta, mu, ll = cand, mu_c, ll_c
            if done:
                break
        path.store(n0, beta)
        return -2 * ll + 2 * (special.xlogy(n0, n0) - n0)

    return deviance


def parametric_bootstrap(
    refit_population: Callable[[np.ndarray], float],
    mu_observed: np.ndarray,
    hidden_total: float,
    replicates: int,
    seed: int | np.random.Generator | None,
) -> np.ndarray:
    """Multinomial parametric bootstrap (Buckland & Garthwaite 1991): draw round(N̂) people over
    all cells including the hidden one, drop the hidden ones, refit."""
    rng = np.random.default_rng(seed)
    N = int(round(mu_observed.sum() + hidden_total))
    probs = np.concatenate([mu_observed, [hidden_total]])
    probs = probs / probs.sum()
    draws = rng.multinomial(N, probs, size=replicates)[:, :-1]
    out = np.empty(replicates)
    for b in progress.bar(range(replicates), label="bootstrap replicates", unit="rep"):
        try:
            out[b] = refit_population(draws[b].astype(float))
        except Exception:  # a replicate that cannot be fitted is dropped, not fatal
            out[b] = np.nan
    return out


def dark_lognormal_interval(
    n: float, log_dark: float, se_log_dark: float, level: float
) -> tuple[float, float]:
    """SparseMSE's interval: the dark figure exp(β₀) log-normal with the intercept's SE."""
    z = stats.norm.ppf(0.5 + level / 2)
    return (n + math.exp(log_dark - z * se_log_dark), n + math.exp(log_dark + z * se_log_dark))


# =============================================================================== the model


class LogLinearModel:
    """Poisson log-linear model for k ≥ 2 lists, optionally stratified by covariates.

    ``LogLinearModel("[AX][BX]", covariates=["X"]).fit(persons, lists=["A", "B"])`` fits the
    two-list model with covariate-driven heterogeneity; ``LogLinearModel("A*B + C")`` a three-list
    model with one interaction. ``partial_covariates`` may be missing for some people (observed in
    one source only) and are fitted by EM; ``passive`` covariates enter only as ``list:X`` terms
    with the list given, so they break N̂ down without changing it.

    ``empty_overlaps="drop"`` treats an interaction whose lists never overlap as a parameter at
    −∞ (SparseMSE's extended MLE; AIC counts it); ``"keep"`` leaves it to the existence check.
    """

    def __init__(
        self,
        model: str | Sequence[Any] | None = None,
        covariates: Sequence[str] = (),
        *,
        partial_covariates: Sequence[str] = (),
        passive: dict[str, str] | None = None,
        empty_overlaps: str = "drop",
        offsets: dict[Term, float] | None = None,
        profile: bool = True,
        bootstrap: int = 0,
        seed: int | None = None,
        level: float = 0.95,
        name: str | None = None,
        dependence_thetas: Sequence[float] | None = None,
        heterogeneity: str | None = None,
        theta: float | None = None,
    ):
        if empty_overlaps not in ("drop", "keep"):
            raise ConfigError("empty_overlaps must be 'drop' or 'keep'", key="empty_overlaps")
        self.model = model
        self.covariates = list(covariates)
        self.partial_covariates = list(partial_covariates)
        self.passive = dict(passive or {})
        self.empty_overlaps = empty_overlaps
        self.offsets = dict(offsets or {})
        self.profile = profile
        self.bootstrap = int(bootstrap)
        self.seed = seed
        self.level = level
        self.name = name
        self.dependence_thetas = None if dependence_thetas is None else list(dependence_thetas)
        if heterogeneity is not None:
            m = re.fullmatch(
                r"\s*(Chao|LB|Poisson|Darroch|Gamma)\s*(\(LB\))?\s*([0-9.]+)?\s*", heterogeneity
            )
            if not m:
                raise ConfigError(
                    f"unknown heterogeneity {heterogeneity!r}; known: Chao (LB), Poisson2, Darroch, Gamma3.5",
                    key="heterogeneity",
                )
            theta = float(m.group(3)) if m.group(3) else theta
            self.heterogeneity: tuple[str, float | None] | None = (m.group(1), theta)
        else:
            self.heterogeneity = None

    # ------------------------------------------------------------------ public
    def fit(
        self,
        data: Any,
        lists: Sequence[str] | None = None,
        count: str | None = None,
        *,
        source: str | None = None,
    ) -> PopulationEstimate:
        covs = list(dict.fromkeys([*self.covariates, *self.partial_covariates, *self.passive]))
        covs += self._covariates_named_in_model(data, lists, count, covs)
        table = capture_table(
            data,
            lists=lists,
            count=count,
            covariates=covs,
            source=source,
            allow_missing=self.partial_covariates,
        )
        return self.fit_table(table)

    def _covariates_named_in_model(self, data: Any, lists, count, known: list[str]) -> list[str]:
        """Columns the model names that are neither lists nor declared covariates: covariates."""
        if self.model is None or isinstance(data, CaptureTable):
            return []
        text = (
            self.model
            if isinstance(self.model, str)
            else " ".join(t if isinstance(t, str) else " ".join(t) for t in self.model)
        )
        try:
            columns = _to_polars(data).columns
        except Exception:  # reading errors are reported by capture_table
            return []
        skip = set(known) | set(lists or [c for c in columns if c.startswith("in_")]) | {count}
        names = re.findall(r"[A-Za-z_][\w.]*", text)
        return [c for c in dict.fromkeys(names) if c in columns and c not in skip]

    def terms(self, table: CaptureTable) -> list[Term]:
        """The model's terms. Without a model, every list interacts with every declared
        covariate ([AX][BX]…: capture independent given the covariates). The covariates'
        joint distribution is always saturated: it is a nuisance, not a capture effect."""
        variables = [*table.lists, *table.covariates]
        model: Any = self.model
        if model is None and self.covariates:
            model = [(lst, c) for lst in table.lists for c in self.covariates]
        base = parse_terms(model, variables, table.lists)
        extra = [(lst, cov) for cov, lst in self.passive.items()]
        if table.covariates:
            extra.append(tuple(table.covariates))
        base = parse_terms([*base, *extra], variables, table.lists)
        missing = [
            c
            for c in self.partial_covariates
            if not any(c in t and any(v in table.lists for v in t) for t in base)
        ]
        if missing:
            raise ConfigError(
                f"partly observed covariate(s) {', '.join(missing)} must appear in the model with a list, "
                "e.g. '[iom,reason][police]'",
                key="model",
            )
        return base

    def fit_table(self, table: CaptureTable) -> PopulationEstimate:
        terms = self.terms(table)
        for lst, cov in [(v, k) for k, v in self.passive.items()]:
            if lst not in table.lists:
                raise ConfigError(
                    f"passive covariate {cov!r} is linked to unknown list {lst!r}", key="passive"
                )
        simplified: list[str] = []
        if self.model is None and self.covariates and not self.partial_covariates:
            terms, simplified = _estimable_default(
                table, terms, self.covariates, self.empty_overlaps
            )
        result = _fit_terms(
            table,
            terms,
            empty_overlaps=self.empty_overlaps,
            offsets=self.offsets,
            profile=self.profile,
            bootstrap=self.bootstrap,
            seed=self.seed,
            level=self.level,
            name=self.name,
            heterogeneity=self.heterogeneity,
        )
        if simplified:
            result.warnings.insert(
                0,
                "the default model was simplified because the table is too sparse for it: dropped "
                + ", ".join(simplified)
                + " (a list that saw nobody, or everybody, in some covariate level); name the "
                "model to fit another",
            )
            result.extra["dropped_terms"] = simplified
        if self.dependence_thetas is not None and table.k == 2:
            if table.partial_counts is not None and table.partial_counts.sum() > 0:
                result.warnings.append(
                    "dependence sensitivity skipped: not available with EM covariates"
                )
            else:
                result.extra["dependence_sensitivity"] = dependence_sensitivity(
                    table, model=terms, thetas=self.dependence_thetas, level=self.level
                )
        return result


def _ascent(beta: np.ndarray, step: np.ndarray, ll: float, fitted: Callable) -> tuple:
    """Halve ``step`` until the log-likelihood does not fall (or the step vanishes).

    ``fitted(b)`` returns (log-likelihood, what the caller keeps of the fit at b); returns
    (b, its log-likelihood, that state). A step that found no ascent is the caller's stop.
    """
    t = 1.0
    while True:
        cand = beta + t * step
        ll_c, state = fitted(cand)
        if ll_c >= ll - 1e-12 * abs(ll) or t < 1e-8:
            return cand, ll_c, state
        t /= 2


def _with_loglik(parts: tuple, loglik: Callable) -> tuple:
    mu, mu0, tot0 = parts
    return loglik(mu, tot0), parts


def _newton_step(hess: np.ndarray, scoring: np.ndarray, grad: np.ndarray) -> np.ndarray:
    """Newton step on the observed information when it is positive definite. Otherwise the
    information with its eigenvalues made positive (|λ|, a "saddle-free" Newton step): an ascent
    direction that, unlike a Fisher-scoring step, also climbs along the directions of positive
    curvature, where scoring creeps for hundreds of iterations. ``scoring`` (the expected
    information) scales the floor on the eigenvalues."""
    try:
        np.linalg.cholesky(hess)
        return np.linalg.solve(hess, grad)
    except np.linalg.LinAlgError:
        lam, vec = np.linalg.eigh((hess + hess.T) / 2)
        floor = 1e-8 * max(float(np.abs(np.diag(scoring)).max()), 1e-300)
        return vec @ ((vec.T @ grad) / np.maximum(np.abs(lam), floor))


def _list_only(term: Term, lists: Sequence[str]) -> bool:
    return all(v in lists for v in term)


HETEROGENEITY = ("Chao", "LB", "Poisson", "Darroch", "Gamma")


def heterogeneity_columns(
    kind: str, nbcap: np.ndarray, t: int, theta: float | None = None
) -> tuple[np.ndarray, list[str]]:
    """Rcapture's heterogeneity columns, functions of the number of captures c (zero at c = 0,
    so the hidden cell is untouched): Chao/LB max(c − j + 1, 0) for j = 3..t, Poisson θ^c − 1
    (θ = 2), Darroch c²/2, Gamma −log(θ + c) + log θ (θ = 3.5)."""
    nbcap = np.asarray(nbcap, dtype=float)
    key = kind.strip()
    if key in ("Chao", "LB"):
        if t < 3:
            return np.zeros((len(nbcap), 1)), ["eta"]
        cols = np.column_stack([np.maximum(nbcap - j + 1, 0) for j in range(3, t + 1)])
        return cols, [f"eta{j}" for j in range(3, t + 1)]
    if key == "Poisson":
        th = 2.0 if theta is None else float(theta)
        return (th**nbcap - 1)[:, None], ["tau"]
    if key == "Darroch":
        return (nbcap**2 / 2.0)[:, None], ["tau"]
    if key == "Gamma":
        th = 3.5 if theta is None else float(theta)
        return (-np.log(th + nbcap) + math.log(th))[:, None], ["tau"]
    raise ConfigError(
        f"unknown heterogeneity {kind!r}; known: {', '.join(HETEROGENEITY)}", key="heterogeneity"
    )


@dataclass
class PreparedDesign:
    """Design after removing the cells of empty overlaps (SparseMSE's extended MLE)."""

    X: np.ndarray
    X0: np.ndarray
    names: list[str]
    y: np.ndarray
    offset: np.ndarray
    offset0: np.ndarray
    cell_keep: np.ndarray
    empty: list[str]


def _prepare_design(
    table: CaptureTable,
    terms: Sequence[Term],
    empty_overlaps: str = "drop",
    offsets: dict[Term, float] | None = None,
    heterogeneity: tuple[str, float | None] | None = None,
) -> PreparedDesign:
    lists = table.lists
    design = build_design(table, terms)
    if heterogeneity is not None:
        het, het_names = heterogeneity_columns(
            heterogeneity[0], table.histories.sum(axis=1), table.k, heterogeneity[1]
        )
        design = Design(
            np.column_stack([design.X, het]),
            np.column_stack([design.X0, np.zeros((design.X0.shape[0], het.shape[1]))]),
            [*design.names, *het_names],
            [*design.term_of_column, *[None] * het.shape[1]],
        )
    cell_keep = np.ones(len(table.counts), dtype=bool)
    col_keep = np.ones(design.X.shape[1], dtype=bool)
    empty: list[str] = []
    partial_present = table.partial_counts is not None and table.partial_counts.sum() > 0
    if empty_overlaps == "drop":
        for term in terms:
            if len(term) >= 2 and _list_only(term, lists):
                ind = np.prod(table.histories[:, [lists.index(v) for v in term]], axis=1).astype(
                    bool
                )
                total = table.counts[ind].sum()
                if partial_present:
                    total += float(
                        table.partial_counts @ (table.partial_cells @ ind.astype(float) > 0)
                    )
                if total == 0:
                    empty.append(term_name(term))
                    cell_keep &= ~ind
                    col_keep &= np.array(
                        [o is None or not set(term) <= set(o) for o in design.term_of_column]
                    )
    offset0 = np.zeros(table.n_strata)
    if table.covariates and tuple(table.covariates) in set(terms) and not partial_present:
        # the saturated covariate distribution puts strata nobody was seen in at zero (their
        # parameters at −∞, the extended MLE): drop them rather than report a failed MLE
        totals = np.bincount(table.strata, weights=table.counts, minlength=table.n_strata)
        empty_strata = totals == 0
        if empty_strata.any():
            cell_keep &= ~empty_strata[table.strata]
            offset0[empty_strata] = -np.inf
            # covariate-only columns that the remaining strata no longer identify are aliased
            idx = np.flatnonzero(col_keep)
            indep = set(idx[_independent_columns(design.X[cell_keep][:, idx])].tolist())
            for j in idx:
                owner = design.term_of_column[j]
                if j not in indep and owner is not None and not any(v in lists for v in owner):
                    col_keep[j] = False
    offset = np.zeros(len(table.counts))
    for term, value in (offsets or {}).items():
        ind = np.prod(table.histories[:, [lists.index(v) for v in term]], axis=1).astype(bool)
        offset[ind] += math.log(value)
    return PreparedDesign(
        X=design.X[cell_keep][:, col_keep],
        X0=design.X0[:, col_keep],
        names=[nm for nm, k in zip(design.names, col_keep, strict=True) if k],
        y=table.counts[cell_keep],
        offset=offset[cell_keep],
        offset0=offset0,
        cell_keep=cell_keep,
        empty=empty,
    )


def check_model(table: CaptureTable, terms: Sequence[Term], empty_overlaps: str = "drop") -> int:
    """SparseMSE ``checkident`` error code: 0 fine, 1 MLE does not exist, 2 not identifiable,
    3 both."""
    prep = _prepare_design(table, terms, empty_overlaps)
    return int(not mle_exists(prep.X, prep.y)) + 2 * int(rank_deficiency(prep.X) > 0)


def _chao_negative_eta(prep: PreparedDesign) -> tuple[PreparedDesign, list[str]]:
    """Rcapture's ``Chao.neg``: drop the first non-positive η column and refit, until none is."""
    dropped: list[str] = []
    while True:
        etas = [j for j, nm in enumerate(prep.names) if nm.startswith("eta")]
        if not etas:
            return prep, dropped
        fit = fit_poisson(prep.X, prep.y, prep.offset)
        bad = [j for j in etas if not fit.coef[j] > 0]
        if not bad:
            return prep, dropped
        j = bad[0]
        keep = np.ones(prep.X.shape[1], dtype=bool)
        keep[j] = False
        dropped.append(prep.names[j])
        prep = PreparedDesign(
            X=prep.X[:, keep],
            X0=prep.X0[:, keep],
            names=[nm for nm, k in zip(prep.names, keep, strict=True) if k],
            y=prep.y,
            offset=prep.offset,
            offset0=prep.offset0,
            cell_keep=prep.cell_keep,
            empty=prep.empty,
        )


def _fit_terms(
    table: CaptureTable,
    terms: Sequence[Term],
    *,
    empty_overlaps: str = "drop",
    offsets: dict[Term, float] | None = None,
    profile: bool = True,
    bootstrap: int = 0,
    seed: int | None = None,
    level: float = 0.95,
    name: str | None = None,
    check: bool = True,
    heterogeneity: tuple[str, float | None] | None = None,
) -> PopulationEstimate:
    """Fit one hierarchical model to a table and build the :class:`PopulationEstimate`."""
    lists = table.lists
    warnings: list[str] = []
    prep = _prepare_design(table, terms, empty_overlaps, offsets, heterogeneity)
    dropped_eta: list[str] = []
    if heterogeneity is not None and heterogeneity[0] in ("Chao", "LB"):
        prep, dropped_eta = _chao_negative_eta(prep)
    X, X0, names, y, offset, offset0 = (
        prep.X,
        prep.X0,
        prep.names,
        prep.y,
        prep.offset,
        prep.offset0,
    )
    cell_keep, empty = prep.cell_keep, prep.empty
    partial_present = table.partial_counts is not None and table.partial_counts.sum() > 0
    if empty:
        warnings.append(
            "empty overlap(s) "
            + ", ".join(empty)
            + ": their interaction is at −∞ (boundary of the parameter space); the cells are "
            "treated as structural zeros, as SparseMSE does"
        )
    # ---- existence and identifiability
    exists, rankdef = True, 0
    if check:
        rankdef = rank_deficiency(X)
        if not partial_present:
            exists = mle_exists(X, y)
    identifiable = rankdef == 0
    if not exists:
        warnings.append(
            "the maximum-likelihood estimate does not exist for this model and table "
            "(Fienberg–Rinaldo linear program): some fitted counts go to zero and N̂ is meaningless"
        )
    if not identifiable:
        warnings.append(
            f"the model is not identifiable on this table (design rank deficient by {rankdef}): "
            "N̂ depends on an arbitrary choice of parameters"
        )
    # ---- fit
    groups = table.partial_cells[:, cell_keep] if partial_present else None
    fit, completed, em_iter = fit_grouped_poisson(
        X, offset, y, groups, table.partial_counts if partial_present else None
    )
    info = grouped_information(X, fit.mu, groups, table.partial_counts) if partial_present else None
    if partial_present:
        obs_ll = observed_grouped_loglik(fit.mu, y, groups, table.partial_counts)
        fit.loglik = obs_ll
        ev = np.linalg.eigvalsh(info[np.ix_(fit.keep, fit.keep)])
        if identifiable and ev.min() <= 1e-9 * ev.max():
            identifiable = False
            warnings.append(
                "the model is not identifiable from the partly classified table (singular "
                "observed-data information): the covariate's distribution among people missing it "
                "is not determined by the data"
            )
    if not fit.converged:
        warnings.append("IRLS did not converge")
    n = table.n_observed
    cf = CellFit(fit, X, y if not partial_present else completed, offset, X0, offset0, n, info)
    N = cf.population_size
    se = math.sqrt(max(cf.variance(), 0.0))
    keep = fit.keep
    cov_full = np.full((X.shape[1], X.shape[1]), np.nan)
    cov_full[np.ix_(keep, keep)] = cf.covariance()
    coefs = [
        {
            "term": nm,
            "estimate": float(b),
            "se": float(math.sqrt(v)) if np.isfinite(v) and v >= 0 else math.nan,
        }
        for nm, b, v in zip(names, fit.coef, np.diag(cov_full), strict=True)
    ]
    p = fit.rank + len(empty)
    aic = -2 * fit.loglik + 2 * p
    bic = -2 * fit.loglik + math.log(max(n, 1.0)) * p
    df_res = int(len(y) - fit.rank - (table.partial_counts is not None and partial_present) * 0)
    if partial_present:
        # free cells: fully classified cells that can hold observations + partial groups, minus the
        # cells only reachable through groups
        only_partial = np.asarray(groups.sum(axis=0) > 0).ravel() & (y == 0)
        df_res = int(len(y) - only_partial.sum() + len(table.partial_counts) - fit.rank)
    gen = generating_class(terms)
    if heterogeneity is not None:
        gen += f" + h={heterogeneity[0]}" + (
            f"({heterogeneity[1]:g})" if heterogeneity[1] is not None else ""
        )
    result = PopulationEstimate(
        model="loglinear",
        population_size=N if (exists and identifiable) else math.nan,
        se=se if (exists and identifiable) else math.nan,
        n_observed=int(round(n)),
        formula=gen,
        description=name or "Log-linear model",
        coefficients=coefs,
        loglik=fit.loglik,
        aic=aic,
        bic=bic,
        deviance=fit.deviance if not partial_present else None,
        df_residual=df_res,
        converged=fit.converged,
        warnings=warnings,
        default_interval=("profile" if profile else "lognormal")
        if (exists and identifiable)
        else "normal",
    )
    hidden = cf.hidden
    result.diagnostics.update(
        {
            "mle_exists": exists,
            "identifiable": identifiable,
            "rank_deficiency": rankdef,
            "empty_overlaps": empty,
            "iterations": fit.iterations,
            "em_iterations": em_iter,
            "cells": int(len(y)),
            "dropped_all_zero_rows": table.dropped_all_zero,
            "dropped_eta": dropped_eta,
        }
    )
    result.extra.update(
        {
            "lists": list(lists),
            "covariates": list(table.covariates),
            "terms": [term_name(t) for t in terms],
            "parameters": fit.rank,
            "unreliable_population_size": None if (exists and identifiable) else N,
        }
    )
    # fitted frequencies
    hist_all = table.histories[cell_keep]
    strata_all = table.strata[cell_keep]
    fitted = []
    for i in range(len(y)):
        row = {name: int(hist_all[i, j]) for j, name in enumerate(lists)}
        row.update(table.stratum_label(int(strata_all[i])))
        row.update({"observed": float(cf.y[i]), "fitted": float(fit.mu[i])})
        fitted.append(row)
    for s in range(table.n_strata):
        row = {name: 0 for name in lists}
        row.update(table.stratum_label(s))
        row.update({"observed": None, "fitted": float(hidden[s])})
        fitted.append(row)
    result.fitted_frequencies = fitted
    if table.covariates:
        obs_s = np.bincount(table.strata[cell_keep], weights=cf.y, minlength=table.n_strata)
        result.strata = _marginal_strata(table, obs_s, hidden, cf.variance)
    # ---- intervals
    if exists and identifiable:
        if (
            fit.keep[0] == 0
            and table.n_strata == 1
            and not partial_present
            and np.all(offset0 == 0)
        ):
            b0, v0 = fit.coef[0], cov_full[0, 0]
            result.interval_methods["dark_lognormal"] = lambda lv, b0=b0, v0=v0: (
                dark_lognormal_interval(n, b0, math.sqrt(v0), lv)
            )
        if profile and not partial_present:
            result.interval_methods["profile"] = _cached_profile(cf, result)
        elif profile:
            keep = fit.keep
            dev_fn = grouped_profile_deviance_fn(
                X[:, keep],
                y,
                offset,
                groups,
                table.partial_counts,
                X0[:, keep],
                offset0,
                fit.coef[keep],
            )
            result.interval_methods["profile"] = _cached_profile(cf, result, dev_fn)
        if bootstrap > 0 and not partial_present:

            def refit(ysim: np.ndarray) -> float:
                f = fit_poisson(X, ysim, offset, start=fit.coef)
                return float(ysim.sum() + np.exp(X0[:, f.keep] @ f.coef[f.keep] + offset0).sum())

            reps = parametric_bootstrap(refit, fit.mu, float(hidden.sum()), bootstrap, seed)
            result.bootstrap_replicates = reps
            result.bootstrap_info = {
                "replicates": bootstrap,
                "kind": "parametric multinomial",
                "seed": seed,
            }
    return result


def _marginal_strata(
    table: CaptureTable,
    observed: np.ndarray,
    totals: np.ndarray,
    variance_of: Callable[[np.ndarray], float],
    *,
    hidden_given: bool = True,
) -> list[dict[str, Any]]:
    """One row per covariate level (summed over the other covariates), the shape every
    estimator's ``strata`` has: variable, level, observed, population_size, se, intervals."""
    z = Z95
    rows = []
    for j, cov in enumerate(table.covariates):
        for lev_idx, level in enumerate(table.levels[cov]):
            mask = (table.stratum_values[:, j] == lev_idx).astype(float)
            obs = float(observed @ mask)
            hid = float(totals @ mask) if hidden_given else float(totals @ mask) - obs
            N = obs + hid
            var = variance_of(mask)
            se = math.sqrt(var) if var >= 0 and np.isfinite(var) else math.nan
            row = {
                "variable": cov,
                "level": level,
                "observed": obs,
                "hidden": hid,
                "population_size": N,
                "se": se,
                "observed_share": obs / N if N > 0 else math.nan,
                "normal_lower": N - z * se,
                "normal_upper": N + z * se,
            }
            if hid > 0 and np.isfinite(se):
                c = math.exp(z * math.sqrt(math.log1p(se**2 / hid**2)))
                row["lognormal_lower"], row["lognormal_upper"] = obs + hid / c, obs + hid * c
            rows.append(row)
    return rows


def _estimable_default(
    table: CaptureTable, terms: list[Term], covariates: Sequence[str], empty_overlaps: str
) -> tuple[list[Term], list[str]]:
    """Drop list × covariate terms of the default model until its MLE exists and is
    identifiable: first those whose list saw nobody (or everybody) in some covariate level,
    then, if needed, one covariate at a time from the last."""
    lists = table.lists
    current = list(terms)
    dropped: list[str] = []
    if check_model(table, current, empty_overlaps) == 0:
        return current, dropped
    cellcov = table.cell_covariates()
    for lst in lists:
        on = table.histories[:, lists.index(lst)] == 1
        for cov in covariates:
            j = table.covariates.index(cov)
            levels = len(table.levels[cov])
            seen = np.bincount(cellcov[on, j], weights=table.counts[on], minlength=levels)
            unseen = np.bincount(cellcov[~on, j], weights=table.counts[~on], minlength=levels)
            if (seen == 0).any() or (unseen == 0).any():
                term = tuple(v for v in [*lists, *table.covariates] if v in (lst, cov))
                if term in current:
                    current.remove(term)
                    dropped.append(term_name(term))
    for cov in reversed(list(covariates)):
        if check_model(table, current, empty_overlaps) == 0:
            break
        for lst in lists:
            term = tuple(v for v in [*lists, *table.covariates] if v in (lst, cov))
            if term in current:
                current.remove(term)
                dropped.append(term_name(term))
    return current, dropped


def _cached_profile(
    cf: CellFit, result: PopulationEstimate, dev_fn: Callable[[float], float] | None = None
) -> Callable[[float], tuple[float, float]]:
    cache: dict[float, tuple[float, float, float]] = {}
    dev_fn = dev_fn or augmented_deviance_fn(cf)

    def interval(level: float) -> tuple[float, float]:
        if level not in cache:
            cache[level] = profile_interval(dev_fn, cf.n, cf.population_size, level)
            result.extra.setdefault("profile", {})[str(level)] = {
                "population_size_multinomial": cache[level][0],
                "lower": cache[level][1],
                "upper": cache[level][2],
            }
        return cache[level][1], cache[level][2]

    return interval


def fit_loglinear(
    data: Any,
    model: str | Sequence[Any] | None = None,
    lists: Sequence[str] | None = None,
    count: str | None = None,
    covariates: Sequence[str] = (),
    **kwargs: Any,
) -> PopulationEstimate:
    """Shorthand for ``LogLinearModel(model, covariates, **kwargs).fit(data, lists, count)``."""
    return LogLinearModel(model, covariates, **kwargs).fit(data, lists=lists, count=count)


# =============================================================================== dependence


DEFAULT_THETAS = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0)


def dependence_sensitivity(
    data: Any,
    lists: Sequence[str] | None = None,
    count: str | None = None,
    covariates: Sequence[str] = (),
    *,
    model: str | Sequence[Any] | None = None,
    thetas: Sequence[float] = DEFAULT_THETAS,
    level: float = 0.95,
) -> list[dict[str, float]]:
    """N̂(θ) when the odds ratio between the two lists (within covariate strata) is fixed at θ
    instead of 1 (Gerritse, van der Heijden & Bakker 2015): θ enters as an offset log θ on the
    cells seen by both lists, so μ₀₀ = θ·μ₁₀·μ₀₁/μ₁₁. θ > 1 (positive dependence) raises N̂.
    With no covariates this is n + θ·n₁₀·n₀₁/n₁₁."""
    table = capture_table(data, lists=lists, count=count, covariates=covariates)
    if table.k != 2:
        raise ConfigError("the dependence sensitivity analysis is for two lists", key="lists")
    if model is None:
        model = [(lst, c) for lst in table.lists for c in table.covariates]
    terms = parse_terms(model, [*table.lists, *table.covariates], table.lists)
    if tuple(table.lists) in terms:
        raise ConfigError("the model may not contain the interaction of the two lists", key="model")
    out = []
    for theta in thetas:
        if not theta > 0:
            raise ConfigError("odds ratios must be positive", key="thetas")
        res = _fit_terms(
            table, terms, offsets={tuple(table.lists): float(theta)}, profile=table.n_strata == 1
        )
        method = "profile" if "profile" in res.interval_methods else "lognormal"
        try:
            lo, hi = res.confint(method, level)
        except Exception:  # an interval that cannot be computed is reported as NaN
            lo, hi = math.nan, math.nan
        out.append(
            {
                "theta": float(theta),
                "population_size": float(res.population_size),
                "se": float(res.se),
                "lower": float(lo),
                "upper": float(hi),
                "interval": method,
            }
        )
    return out
