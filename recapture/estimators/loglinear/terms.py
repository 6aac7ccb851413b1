"""The model language and the design of log-linear models.

Terms are tuples of variable names (lists and covariates); a model is a hierarchical set of
terms, closed under taking margins. The design has an intercept, then per term the product of
its lists' capture indicators × treatment dummies of its covariates; the all-zero (hidden)
cell of every stratum gets its own row. :func:`prepare_design` removes the cells of empty
overlaps (SparseMSE's extended MLE) and adds Rcapture's heterogeneity columns.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from recapture.errors import ConfigError
from recapture.estimators.formula import check_names, parse_generators
from recapture.estimators.loglinear.fit import (
    fit_poisson,
    independent_columns,
    mle_exists,
    rank_deficiency,
)
from recapture.estimators.loglinear.tables import CaptureTable

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
    if model is None or (
        isinstance(model, str) and model.strip().lower() in ("", "main", "independence", "mt")
    ):
        pass
    elif isinstance(model, str):
        gens.extend(set(g) for g in parse_generators(model, variables, key="model"))
    else:
        for term in model:
            if isinstance(term, str):
                gens.extend(set(g) for g in parse_generators(term, variables, key="model"))
                continue
            names = set(check_names(term, "model"))
            unknown = sorted(names - set(order))
            if unknown:
                raise ConfigError(
                    f"unknown variable {unknown[0]!r} in model term {tuple(term)!r}; "
                    f"known: {', '.join(variables)}",
                    key="model",
                )
            gens.append(names)
    gens.extend({name} for name in lists)
    terms: set[Term] = set()
    for g in gens:
        for r in range(1, len(g) + 1):
            for sub in itertools.combinations(sorted(g, key=order.get), r):
                terms.add(sub)
    return sorted(terms, key=lambda t: (len(t), [order[v] for v in t]))


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
    cols, cols0, names, owner = [np.ones(len(table.counts))], [np.ones(S)], ["Intercept"], [None]
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
                label.append(f"{c}[T.{table.levels[c][lev]}]")
            cols.append(col)
            cols0.append(col0)
            names.append(":".join(label))
            owner.append(term)
    return Design(np.column_stack(cols), np.column_stack(cols0), names, owner)


def list_only(term: Term, lists: Sequence[str]) -> bool:
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


def prepare_design(
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
            if len(term) >= 2 and list_only(term, lists):
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
    if table.covariates and tuple(table.covariates) in set(terms):
        # the saturated covariate distribution puts strata nobody was seen in at zero (their
        # parameters at −∞, the extended MLE): drop them rather than report a failed MLE.
        # With partly classified counts the support is the strata some fully classified
        # person is in (as the count models' EM): a stratum reached only through partly
        # classified groups would have its joint parameter at the boundary and a singular
        # observed information; it is kept only when a group could belong nowhere else.
        totals = np.bincount(table.strata, weights=table.counts, minlength=table.n_strata)
        empty_strata = totals == 0
        if partial_present and empty_strata.any():
            reach = table.partial_cells @ (~empty_strata[table.strata]).astype(float)
            stranded = np.flatnonzero((np.asarray(reach).ravel() == 0) & (table.partial_counts > 0))
            if len(stranded):
                touched = np.asarray(table.partial_cells[stranded].sum(axis=0)).ravel() > 0
                empty_strata[np.unique(table.strata[touched])] = False
        if empty_strata.any():
            cell_keep &= ~empty_strata[table.strata]
            offset0[empty_strata] = -np.inf
            # covariate-only columns that the remaining strata no longer identify are aliased
            idx = np.flatnonzero(col_keep)
            indep = set(idx[independent_columns(design.X[cell_keep][:, idx])].tolist())
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
    prep = prepare_design(table, terms, empty_overlaps)
    return int(not mle_exists(prep.X, prep.y)) + 2 * int(rank_deficiency(prep.X) > 0)


def chao_negative_eta(prep: PreparedDesign) -> tuple[PreparedDesign, list[str]]:
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
