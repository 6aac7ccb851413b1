"""Model search for multiple systems estimation.

- :func:`stepwise`: forward/backward search over hierarchical log-linear models by AIC or BIC;
  a term may enter only when all its margins are in the model and leave only when no larger
  term contains it. Models whose MLE does not exist or is not identifiable are never chosen.
- :func:`exhaustive`: every hierarchical model up to a given interaction order (small k).
- :func:`sparsemse_stepwise`: the stepwise rule of SparseMSE's ``stepwisefit`` (Chan, Silverman
  & Vincent 2021): from main effects, add the two-list interaction with the smallest one-sided
  Poisson p-value of its observed overlap, while that p-value is below ``pthresh`` (0.02) and
  the enlarged model passes the existence and identifiability checks.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats

from recapture.errors import ConfigError
from recapture.estimators.loglinear.model import FitOptions, fit_terms
from recapture.estimators.loglinear.tables import CaptureTable, capture_table
from recapture.estimators.loglinear.terms import (
    Term,
    check_model,
    generating_class,
    parse_terms,
    term_name,
)
from recapture.estimators.result import PopulationEstimate


def _table(data: Any, lists, count, covariates, partial: Sequence[str] = ()) -> CaptureTable:
    """The table searched over; covariates in ``partial`` may be unknown (partly classified
    counts, fitted by EM in every candidate model: the observed-data log-likelihood of one
    and the same table, so AIC and BIC compare)."""
    covs = list(dict.fromkeys([*covariates, *partial]))
    return capture_table(data, lists=lists, count=count, covariates=covs, allow_missing=partial)


def _criterion(res: PopulationEstimate, criterion: str) -> float:
    if not (res.diagnostics.get("mle_exists", True) and res.diagnostics.get("identifiable", True)):
        return math.inf
    return float(res.aic if criterion == "aic" else res.bic)


def _candidate_terms(table: CaptureTable, max_order: int, covariates_in_scope: bool) -> list[Term]:
    """All interaction terms of order 2..max_order among lists (and list × covariate terms)."""
    lists = table.lists
    variables = [*lists, *(table.covariates if covariates_in_scope else [])]
    out: list[Term] = []
    for r in range(2, max_order + 1):
        for combo in itertools.combinations(variables, r):
            if any(v in lists for v in combo):
                out.append(combo)
    return out


def _hierarchical(terms: set[Term]) -> bool:
    for t in terms:
        for r in range(1, len(t)):
            for sub in itertools.combinations(t, r):
                if sub not in terms:
                    return False
    return True


def stepwise(
    data: Any,
    lists: Sequence[str] | None = None,
    count: str | None = None,
    covariates: Sequence[str] = (),
    *,
    start: str | Sequence[Any] | None = None,
    criterion: str = "aic",
    direction: str = "both",
    max_order: int = 2,
    empty_overlaps: str = "drop",
    partial_covariates: Sequence[str] = (),
) -> PopulationEstimate:
    """Greedy hierarchical search by AIC/BIC; the chosen model's estimate, with the path in
    ``extra['search']``. ``partial_covariates`` may be unknown for some persons: every
    candidate is then fitted by EM on the partly classified table."""
    criterion = criterion.lower()
    if criterion not in ("aic", "bic"):
        raise ConfigError("criterion must be 'aic' or 'bic'", key="criterion")
    if direction not in ("both", "forward", "backward"):
        raise ConfigError("direction must be 'both', 'forward' or 'backward'", key="direction")
    table = _table(data, lists, count, covariates, partial_covariates)
    variables = [*table.lists, *table.covariates]
    nuisance = [tuple(table.covariates)] if table.covariates else []
    current = set(
        parse_terms(
            [*parse_terms(start, variables, table.lists), *nuisance], variables, table.lists
        )
    )
    # covariate main effects (and their mutual interactions given at start) stay in
    cache: dict[frozenset, PopulationEstimate] = {}

    def fit(terms: set[Term]) -> PopulationEstimate:
        key = frozenset(terms)
        if key not in cache:
            ordered = parse_terms(sorted(terms, key=len), variables, table.lists)
            cache[key] = fit_terms(table, ordered, FitOptions(empty_overlaps=empty_overlaps))
        return cache[key]

    best = fit(current)
    best_score = _criterion(best, criterion)
    path = [
        {
            "model": generating_class(sorted(current, key=len)),
            criterion: best_score,
            "population_size": best.population_size,
        }
    ]
    candidates = _candidate_terms(table, max_order, bool(table.covariates))
    while True:
        moves: list[set[Term]] = []
        if direction in ("both", "forward"):
            for term in candidates:
                if term not in current and _hierarchical(current | {term}):
                    moves.append(current | {term})
        if direction in ("both", "backward"):
            for term in current:
                if len(term) >= 2 and not any(set(term) < set(o) for o in current):
                    rest = current - {term}
                    moves.append(rest)
        scored = [(_criterion(fit(m), criterion), i, m) for i, m in enumerate(moves)]
        if not scored:
            break
        score, _, move = min(scored, key=lambda x: (x[0], x[1]))
        if not score < best_score - 1e-9:
            break
        current, best_score, best = move, score, fit(move)
        path.append(
            {"model": best.formula, criterion: score, "population_size": best.population_size}
        )
    best.extra["search"] = {
        "method": f"stepwise ({direction}) by {criterion.upper()}",
        "path": path,
    }
    best.description = f"Log-linear model chosen stepwise by {criterion.upper()}"
    return best


def exhaustive(
    data: Any,
    lists: Sequence[str] | None = None,
    count: str | None = None,
    covariates: Sequence[str] = (),
    *,
    criterion: str = "aic",
    max_order: int = 2,
    max_models: int = 5000,
    empty_overlaps: str = "drop",
    partial_covariates: Sequence[str] = (),
) -> list[PopulationEstimate]:
    """Every hierarchical model with list interactions up to ``max_order``, best first by the
    criterion; models without an existing, identifiable MLE are kept at the end, flagged.
    ``partial_covariates`` as in :func:`stepwise`."""
    criterion = criterion.lower()
    if criterion not in ("aic", "bic"):
        raise ConfigError("criterion must be 'aic' or 'bic'", key="criterion")
    table = _table(data, lists, count, covariates, partial_covariates)
    variables = [*table.lists, *table.covariates]
    nuisance = [tuple(table.covariates)] if table.covariates else []
    base = set(parse_terms(nuisance, variables, table.lists))
    models: list[set[Term]] = [base]
    for r in range(2, max_order + 1):
        terms_r = [t for t in _candidate_terms(table, r, bool(table.covariates)) if len(t) == r]
        grown: list[set[Term]] = []
        for m in models:
            allowed = [
                t for t in terms_r if all(sub in m for sub in itertools.combinations(t, r - 1))
            ]
            for k in range(len(allowed) + 1):
                for combo in itertools.combinations(allowed, k):
                    grown.append(m | set(combo))
                    if len(grown) > max_models:
                        raise ConfigError(
                            f"more than {max_models} models; lower max_order or use stepwise",
                            key="max_order",
                        )
        models = grown
    out = []
    for m in models:
        ordered = parse_terms(sorted(m, key=len), variables, table.lists)
        out.append(fit_terms(table, ordered, FitOptions(empty_overlaps=empty_overlaps)))
    out.sort(key=lambda r: _criterion(r, criterion))
    for rank, r in enumerate(out, 1):
        r.extra["search"] = {
            "method": f"exhaustive by {criterion.upper()}",
            "rank": rank,
            "models": len(out),
        }
    return out


def sparsemse_stepwise(
    data: Any,
    lists: Sequence[str] | None = None,
    count: str | None = None,
    *,
    pthresh: float = 0.02,
) -> PopulationEstimate:
    """SparseMSE ``stepwisefit``: two-list interactions added by Poisson p-value of the overlap."""
    table = _table(data, lists, count, ())
    L = table.lists
    m = len(L)
    pairs = [(L[i], L[j]) for i in range(m - 1) for j in range(i + 1, m)]
    H = table.histories
    nstar = np.array(
        [table.counts[(H[:, L.index(a)] * H[:, L.index(b)]).astype(bool)].sum() for a, b in pairs]
    )
    included: list[Term] = []

    def fit(terms: list[Term]) -> PopulationEstimate:
        ordered = parse_terms(terms, L, L)
        return fit_terms(table, ordered, FitOptions(check=False))

    current = fit([])
    path = [{"added": None, "p_value": None, "population_size": current.population_size}]
    if pthresh > 0:
        while len(included) < len(pairs):
            rows = [r for r in current.fitted_frequencies if r["observed"] is not None]
            mu = np.array([r["fitted"] for r in rows])
            pval = np.ones(len(pairs))
            for j, (a, b) in enumerate(pairs):
                if (a, b) in included:
                    continue
                both = np.array([r[a] * r[b] for r in rows], dtype=float)
                pstar = float(mu @ both)
                pval[j] = min(
                    stats.poisson.cdf(nstar[j], pstar), stats.poisson.sf(nstar[j] - 1, pstar)
                )
                if check_model(table, parse_terms([*included, (a, b)], L, L)) > 0:
                    pval[j] = 1.0
            pmin = float(pval.min())
            if pmin >= pthresh:
                break
            jbest = int(np.flatnonzero(pval == pmin)[0])
            included.append(pairs[jbest])
            current = fit(included)
            path.append(
                {
                    "added": term_name(pairs[jbest]),
                    "p_value": pmin,
                    "population_size": current.population_size,
                }
            )
    code = check_model(table, parse_terms(included, L, L))
    current.diagnostics["mle_exists"] = code in (0, 2)
    current.diagnostics["identifiable"] = code in (0, 1)
    current.extra["search"] = {
        "method": f"SparseMSE stepwise (Poisson p-value < {pthresh})",
        "path": path,
    }
    current.description = f"Log-linear model chosen by SparseMSE stepwise (p < {pthresh})"
    return current
