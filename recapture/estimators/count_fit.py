"""Data preparation and maximum-likelihood fitting for the single-source count models.

The likelihood of a truncated count regression depends on the data only through the
distinct (covariate pattern, offset, count) cells and their frequencies, so every input —
one row per person or pre-aggregated rows with frequency weights — is first reduced to
those cells. Design matrices are built on the distinct covariate patterns; derivatives are
computed per cell and summed per pattern before touching the design matrix. This is what
makes a million-person fit and a thousand bootstrap refits cheap, and it makes individual
and aggregated input give the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

from recapture.errors import ConfigError, InputError
from recapture.estimators.count_families import CountFamily
from recapture.io import read_table

WEIGHT = "__weight__"
OFFSET = "__offset__"
COUNT = "__count__"


# ------------------------------------------------------------------------------ problem
@dataclass
class CountProblem:
    """The aggregated data and design of one fit (picklable: it travels to bootstrap workers)."""

    family: CountFamily
    X: list[np.ndarray]  # per predictor: patterns × q_j
    offset: np.ndarray  # per pattern, on the λ linear predictor
    pattern: np.ndarray  # per cell: pattern index
    y: np.ndarray  # per cell: count ≥ 1
    w: np.ndarray  # per cell: frequency
    names: list[str]
    predictor_of: list[str]
    patterns: pd.DataFrame  # per pattern: the variables (for strata and diagnostics)
    formula: str
    strata_columns: list[str] = field(default_factory=list)

    @property
    def n_patterns(self) -> int:
        return self.X[0].shape[0]

    @property
    def sizes(self) -> list[int]:
        return [x.shape[1] for x in self.X]

    def eta_patterns(self, beta: np.ndarray) -> np.ndarray:
        out = np.empty((self.n_patterns, len(self.X)))
        start = 0
        for j, x in enumerate(self.X):
            q = x.shape[1]
            out[:, j] = x @ beta[start : start + q]
            start += q
        out[:, 0] += self.offset
        return out

    def with_cells(self, pattern: np.ndarray, y: np.ndarray, w: np.ndarray) -> CountProblem:
        return CountProblem(
            family=self.family,
            X=self.X,
            offset=self.offset,
            pattern=pattern,
            y=y,
            w=w,
            names=self.names,
            predictor_of=self.predictor_of,
            patterns=self.patterns,
            formula=self.formula,
            strata_columns=self.strata_columns,
        )


def warm_start(
    problem: CountProblem, max_patterns: int = 100_000, seed: int = 0
) -> np.ndarray | None:
    """ML estimate on a random subset of the covariate patterns, as the start of the full fit.

    With a million distinct patterns each Newton step touches the whole design; a start
    from a 100,000-pattern subsample leaves two or three full steps. The final estimate is
    the full-data MLE whatever the start (same convergence criterion).
    """
    P = problem.n_patterns
    if P <= 2 * max_patterns:
        return None
    rng = np.random.default_rng(seed)
    keep = np.zeros(P, dtype=bool)
    keep[rng.choice(P, max_patterns, replace=False)] = True
    new_index = np.cumsum(keep) - 1
    cells = keep[problem.pattern]
    sub = CountProblem(
        family=problem.family,
        X=[x[keep] for x in problem.X],
        offset=problem.offset[keep],
        pattern=new_index[problem.pattern[cells]],
        y=problem.y[cells],
        w=problem.w[cells],
        names=problem.names,
        predictor_of=problem.predictor_of,
        patterns=problem.patterns.iloc[:0],
        formula=problem.formula,
    )
    fit = fit_ml(sub, tol=1e-6)
    return fit.beta if fit.converged and np.all(np.isfinite(fit.beta)) else None


def _to_polars(data: Any) -> pl.DataFrame:
    return read_table(data)


def required_variables(formula: str) -> list[str]:
    from formulaic import Formula

    try:
        return sorted(Formula(formula).required_variables)
    except Exception as exc:  # formulaic raises several parser exceptions
        raise ConfigError(f"cannot parse formula {formula!r}: {exc}", key="formula") from exc


def prepare(
    data: Any,
    *,
    family: CountFamily,
    formula: str,
    count: str,
    weights: str | None,
    offset: str | None,
    reference: dict[str, str] | None,
    extra_formulas: dict[str, str] | None = None,
    strata: list[str] | None = None,
) -> tuple[CountProblem, dict[str, Any]]:
    """Validate and aggregate the input into a :class:`CountProblem`.

    Rows with count 0 are not observed by this source (persons.parquet holds every person
    of every source) and are left out, and counted in the returned notes. Anything else
    wrong — a missing column, a negative or fractional count, a null covariate, a bad
    weight — is an :class:`InputError` naming the column and the first offending row.
    """
    frame = _to_polars(data)
    formulas = {"lambda": formula, **(extra_formulas or {})}
    variables: list[str] = []
    for f in formulas.values():
        for v in required_variables(f):
            if v not in variables:
                variables.append(v)
    strata = list(strata) if strata is not None else None
    for col in [count, *(c for c in [weights, offset] if c), *variables, *(strata or [])]:
        if col not in frame.columns:
            raise InputError(f"column not found (columns: {', '.join(frame.columns)})", column=col)
    for var in reference or {}:
        if var not in variables:
            raise ConfigError(
                f"reference level given for {var!r}, which is not in the formula", key="reference"
            )

    frame = frame.with_row_index("__row__", offset=1)
    y = frame[count]
    if not y.dtype.is_numeric():
        raise InputError("counts must be numeric", column=count)
    bad = frame.filter(y.is_null() | (y < 0) | (y.cast(pl.Float64) != y.cast(pl.Float64).round(0)))
    if bad.height:
        raise InputError(
            f"count must be a non-negative integer (found {bad[count][0]!r})",
            row=int(bad["__row__"][0]),
            column=count,
        )
    if weights:
        wcol = frame[weights]
        if not wcol.dtype.is_numeric():
            raise InputError("weights must be numeric", column=weights)
        bad = frame.filter(wcol.is_null() | ~wcol.cast(pl.Float64).is_finite() | (wcol < 0))
        if bad.height:
            raise InputError(
                "weights must be finite and ≥ 0", row=int(bad["__row__"][0]), column=weights
            )
    if offset:
        ocol = frame[offset]
        if not ocol.dtype.is_numeric():
            raise InputError(
                "offset must be numeric (on the log scale, e.g. log days at risk)", column=offset
            )
        bad = frame.filter(ocol.is_null() | ~ocol.cast(pl.Float64).is_finite())
        if bad.height:
            raise InputError(
                "offset must be finite (log of a positive exposure)",
                row=int(bad["__row__"][0]),
                column=offset,
            )
    for var in [*variables, *(strata or [])]:
        nulls = frame.filter(frame[var].is_null())
        if nulls.height:
            raise InputError(
                "missing covariate value (recode missing values as an explicit level, e.g. 'unknown')",
                row=int(nulls["__row__"][0]),
                column=var,
            )

    zero_rows = int(frame.filter(pl.col(count) == 0).height)
    frame = frame.filter(pl.col(count) > 0)
    if weights:
        frame = frame.filter(pl.col(weights) > 0)
    if frame.height == 0:
        raise InputError("no persons with a count ≥ 1", column=count)

    keys = list(dict.fromkeys([*variables, *(strata or [])]))
    pattern_keys = [*keys, OFFSET]
    # one pass: distinct covariate patterns (in order of first appearance, so the result
    # is reproducible) with the counts and weights of their persons as lists
    patterns = (
        frame.select(
            *[pl.col(k) for k in keys],
            (pl.col(offset).cast(pl.Float64) if offset else pl.lit(0.0)).alias(OFFSET),
            pl.col(count).cast(pl.Int64).alias(COUNT),
            (pl.col(weights).cast(pl.Float64) if weights else pl.lit(1.0)).alias(WEIGHT),
        )
        .group_by(pattern_keys, maintain_order=True)
        .agg(pl.col(COUNT), pl.col(WEIGHT))
    )
    lengths = patterns[COUNT].list.len().to_numpy()
    row_pattern = np.repeat(np.arange(patterns.height, dtype=np.int64), lengths)
    row_y = patterns[COUNT].explode().to_numpy().astype(np.int64)
    row_w = patterns[WEIGHT].explode().to_numpy().astype(float)
    y_span = int(row_y.max()) + 1
    cell_key, cell_of_row = np.unique(row_pattern * y_span + row_y, return_inverse=True)
    cell_w = np.bincount(cell_of_row, weights=row_w, minlength=len(cell_key))
    patterns = patterns.drop(COUNT, WEIGHT).with_row_index("__pattern__")

    pdf = patterns.drop("__pattern__").to_pandas()
    for var, level in (reference or {}).items():
        values = pdf[var]
        levels = (
            sorted(values.astype(str).unique())
            if values.dtype == object
            else sorted(values.unique())
        )
        if str(level) not in [str(v) for v in levels]:
            raise ConfigError(
                f"reference level {level!r} not found in {var!r} (levels: {', '.join(map(str, levels))})",
                key="reference",
            )
        match = [v for v in levels if str(v) == str(level)][0]
        pdf[var] = pd.Categorical(values, categories=[match] + [v for v in levels if v != match])

    X, names, predictor_of = [], [], []
    for predictor, f in formulas.items():
        mat, cols = _design(f, pdf)
        X.append(mat)
        prefix = "" if predictor == "lambda" else f"{predictor}:"
        names.extend(prefix + c for c in cols)
        predictor_of.extend([predictor] * len(cols))

    if strata is None:
        strata = [v for v in variables if not patterns.schema[v].is_numeric()]
    problem = CountProblem(
        family=family,
        X=X,
        offset=patterns[OFFSET].to_numpy().astype(float),
        pattern=(cell_key // y_span).astype(np.int64),
        y=(cell_key % y_span).astype(float),
        w=cell_w,
        names=names,
        predictor_of=predictor_of,
        patterns=pdf,
        formula=formula,
        strata_columns=strata,
    )
    notes = {
        "rows_with_zero_count_excluded": zero_rows,
        "n_cells": len(cell_key),
        "n_patterns": int(patterns.height),
    }
    return problem, notes


def _design(formula: str, frame: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    from formulaic import model_matrix

    try:
        mm = model_matrix(formula, frame, na_action="raise", output="numpy")
    except Exception as exc:
        raise ConfigError(
            f"cannot build the design matrix for {formula!r}: {exc}", key="formula"
        ) from exc
    mat = np.ascontiguousarray(np.asarray(mm, dtype=float))
    if mat.ndim == 1:
        mat = mat[:, None]
    if mat.shape[1] == 0:
        raise ConfigError(
            f"formula {formula!r} has no terms (use '~ 1' for intercept only)", key="formula"
        )
    return mat, [str(c) for c in mm.model_spec.column_names]


# ------------------------------------------------------------------------------ fitting
@dataclass
class FitResult:
    beta: np.ndarray
    loglik: float
    hessian: np.ndarray  # of the log-likelihood (unpenalised), at beta
    converged: bool
    iterations: int
    active: np.ndarray  # bool per coefficient: identified by the data
    penalty: str | None = None


def _aggregate(
    problem: CountProblem, beta: np.ndarray, w: np.ndarray, want_hessian: bool = True, stats=None
):
    """Log-likelihood, gradient and Hessian in beta, summing cell terms per pattern first."""
    fam = problem.family
    eta_p = problem.eta_patterns(beta)
    if stats is not None:  # fast path: pattern-level sufficient statistics
        X = problem.X[0]
        ll, g_p, h_p = fam.evaluate_patterns(stats, eta_p)
        return ll, X.T @ g_p, (X.T @ (h_p[:, None] * X)) if want_hessian else None
    eta = eta_p[problem.pattern]
    ll, g, h = fam.evaluate(problem.y, eta)
    P = problem.n_patterns
    k = eta.shape[1]
    g_p = np.empty((P, k))
    for j in range(k):
        g_p[:, j] = np.bincount(problem.pattern, weights=w * g[:, j], minlength=P)
    grad = np.concatenate([problem.X[j].T @ g_p[:, j] for j in range(k)])
    total = float(np.sum(w * ll))
    if not want_hessian:
        return total, grad, None
    sizes = problem.sizes
    q = sum(sizes)
    hess = np.empty((q, q))
    offs = np.cumsum([0, *sizes])
    for a in range(k):
        for b in range(a, k):
            hp = np.bincount(problem.pattern, weights=w * h[:, a, b], minlength=P)
            block = problem.X[a].T @ (hp[:, None] * problem.X[b])
            hess[offs[a] : offs[a + 1], offs[b] : offs[b + 1]] = block
            if a != b:
                hess[offs[b] : offs[b + 1], offs[a] : offs[a + 1]] = block.T
    return total, grad, hess


def _firth_terms(problem: CountProblem, beta: np.ndarray, w: np.ndarray, active: np.ndarray):
    """½·log det I(β) and its gradient for single-predictor families (Firth 1993)."""
    fam = problem.family
    X = problem.X[0][:, active]
    eta = problem.eta_patterns(beta)
    mask = fam.fit_mask(problem.y)
    W = np.bincount(problem.pattern, weights=w * mask, minlength=problem.n_patterns)
    v = fam.info_weight(eta)
    d = 1e-5
    up, down = eta.copy(), eta.copy()
    up[:, 0] += d
    down[:, 0] -= d
    dv = (fam.info_weight(up) - fam.info_weight(down)) / (2 * d)
    info = X.T @ ((W * v)[:, None] * X)
    sign, logdet = np.linalg.slogdet(info)
    if sign <= 0:
        return -np.inf, np.zeros(len(beta))
    inv = np.linalg.inv(info)
    lev = W * v * np.einsum("ij,jk,ik->i", X, inv, X)
    grad = np.zeros(len(beta))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(v > 0, dv / v, 0.0)
    grad[active] = 0.5 * X.T @ (lev * ratio)
    return 0.5 * logdet, grad


def identified_columns(problem: CountProblem, w: np.ndarray) -> np.ndarray:
    """Coefficients whose design column is not all zero among patterns with data."""
    mask = problem.family.fit_mask(problem.y)
    W = np.bincount(problem.pattern, weights=w * mask, minlength=problem.n_patterns)
    has = (W > 0).astype(float)
    return np.concatenate([(np.abs(x).T @ has) > 0 for x in problem.X])


def fit_ml(
    problem: CountProblem,
    w: np.ndarray | None = None,
    beta0: np.ndarray | None = None,
    *,
    penalty: str | None = None,
    ridge: float = 1.0,
    max_iter: int = 100,
    tol: float = 1e-10,
) -> FitResult:
    """Newton–Raphson with step halving (and Levenberg damping when the Hessian is not
    negative definite). ``penalty``: None (ML), ``"firth"`` (Jeffreys-prior penalty,
    single-predictor families) or ``"ridge"`` (½·ridge·Σβ² on non-intercept coefficients)."""
    w = problem.w if w is None else w
    q = sum(problem.sizes)
    active = identified_columns(problem, w)
    if beta0 is None:
        beta = np.zeros(q)
        starts = problem.family.start(
            problem.y[problem.family.fit_mask(problem.y)], w[problem.family.fit_mask(problem.y)]
        )
        offs = np.cumsum([0, *problem.sizes])
        for j, x in enumerate(problem.X):
            # the start goes on the intercept (without one, every coefficient starts at 0)
            ones = np.where(np.all(x == 1.0, axis=0))[0]
            if len(ones):
                beta[offs[j] + ones[0]] = starts[j] - (np.mean(problem.offset) if j == 0 else 0.0)
    else:
        beta = np.array(beta0, dtype=float)
    beta[~active] = 0.0
    pen_mask = np.ones(q, dtype=bool)
    for j, x in enumerate(problem.X):
        offs = np.cumsum([0, *problem.sizes])
        intercepts = np.all(x == 1.0, axis=0)
        pen_mask[offs[j] : offs[j + 1]] &= ~intercepts
    if penalty == "firth" and len(problem.X) > 1:
        penalty = "ridge"

    stats = problem.family.sufficient(problem.y, w, problem.pattern, problem.n_patterns)

    def objective(b):
        ll, g, h = _aggregate(problem, b, w, stats=stats)
        obj, og = ll, g.copy()
        if penalty == "firth":
            pen, pg = _firth_terms(problem, b, w, active)
            obj += pen
            og += pg
        elif penalty == "ridge":
            obj -= 0.5 * ridge * np.sum((b * pen_mask) ** 2)
            og -= ridge * b * pen_mask
        return obj, og, ll, g, h

    obj, og, ll, g, h = objective(beta)
    converged = False
    iterations = 0
    all_active = bool(active.all())
    for it in range(1, max_iter + 1):
        iterations = it
        ha = h if all_active else h[np.ix_(active, active)]
        if penalty == "ridge":
            ha = ha - ridge * np.diag(pen_mask[active].astype(float))
        neg = -ha
        step = _solve_pd(neg, og[active])
        if step is None or not np.all(np.isfinite(step)):
            break
        full = np.zeros(q)
        full[active] = step
        t = 1.0
        improved = False
        for _ in range(40):
            cand = beta + t * full
            c_obj, c_og, c_ll, c_g, c_h = objective(cand)
            if np.isfinite(c_obj) and c_obj >= obj - 1e-12 * max(1.0, abs(obj)):
                improved = True
                break
            t *= 0.5
        if not improved:
            break
        change = np.max(np.abs(cand - beta))
        gain = c_obj - obj
        beta, obj, og, ll, _g, h = cand, c_obj, c_og, c_ll, c_g, c_h
        if change < tol * (1 + np.max(np.abs(beta))) or (
            abs(gain) < 1e-13 * max(1.0, abs(obj)) and np.max(np.abs(og[active])) < 1e-6
        ):
            converged = True
            break
    return FitResult(
        beta=beta,
        loglik=ll,
        hessian=h,
        converged=converged,
        iterations=iterations,
        active=active,
        penalty=penalty,
    )


def _solve_pd(a: np.ndarray, b: np.ndarray) -> np.ndarray | None:
    """Solve a·x = b for a (should be) positive definite; damp if it is not."""
    try:
        np.linalg.cholesky(a)  # raises unless a is positive definite
        return np.linalg.solve(a, b)
    except np.linalg.LinAlgError:
        pass
    try:
        eig = np.linalg.eigvalsh(a)
    except np.linalg.LinAlgError:
        return None
    shift = max(1e-8, -eig.min() * 1.5 + 1e-6 * max(1.0, abs(eig).max()))
    for _ in range(30):
        try:
            c = np.linalg.cholesky(a + shift * np.eye(len(a)))
            return np.linalg.solve(c.T, np.linalg.solve(c, b))
        except np.linalg.LinAlgError:
            shift *= 10
    return None


def expected_hessian(
    problem: CountProblem, beta: np.ndarray, w: np.ndarray | None = None
) -> np.ndarray:
    """Minus the expected information: Σ_k P(k | x) · Hessian(k), per pattern, then summed.

    The sum runs over k = 1…K until the remaining probability is below 1e-12 (at most
    10,000). For the canonical-link families (Poisson, Zelterman/Chao) it equals the
    observed Hessian.
    """
    w = problem.w if w is None else w
    fam = problem.family
    P = problem.n_patterns
    W = np.bincount(problem.pattern, weights=w * fam.fit_mask(problem.y), minlength=P)
    eta_p = problem.eta_patterns(beta)
    if not fam.uses_all_counts:
        return _aggregate(problem, beta, w)[2]
    k = eta_p.shape[1]
    acc = np.zeros((P, k, k))
    covered = np.zeros(P)
    chunk = 50
    start = 1
    while start <= 10_000:
        ks = np.arange(start, start + chunk, dtype=float)
        pmf = fam.truncated_pmf(ks, eta_p)  # P × chunk
        yy = np.tile(ks, P)
        ee = np.repeat(eta_p, chunk, axis=0)
        _, _, h = fam.evaluate(yy, ee)
        h = h.reshape(P, chunk, k, k)
        acc += np.einsum("pc,pcab->pab", pmf, h)
        covered += pmf.sum(axis=1)
        start += chunk
        if np.all(1 - covered < 1e-12):
            break
    sizes = problem.sizes
    offs = np.cumsum([0, *sizes])
    q = offs[-1]
    hess = np.empty((q, q))
    for a in range(k):
        for b in range(k):
            hess[offs[a] : offs[a + 1], offs[b] : offs[b + 1]] = problem.X[a].T @ (
                (W * acc[:, a, b])[:, None] * problem.X[b]
            )
    return hess


def population_estimate(
    problem: CountProblem,
    beta: np.ndarray,
    w: np.ndarray | None = None,
    cells: np.ndarray | None = None,
):
    """N̂, the gradient dN̂/dβ and Σ w·(1−p)/p² over the selected cells."""
    w = problem.w if w is None else w
    fam = problem.family
    eta = problem.eta_patterns(beta)[problem.pattern]
    n_i, dn, var_i = fam.population_terms(problem.y, eta)
    sel = np.ones(len(w), dtype=bool) if cells is None else cells
    ww = w * sel
    P = problem.n_patterns
    grad = np.concatenate(
        [
            problem.X[j].T @ np.bincount(problem.pattern, weights=ww * dn[:, j], minlength=P)
            for j in range(dn.shape[1])
        ]
    )
    return float(np.sum(ww * n_i)), grad, float(np.sum(ww * var_i))


def population_size(problem: CountProblem, beta: np.ndarray, w: np.ndarray) -> float:
    eta = problem.eta_patterns(beta)[problem.pattern]
    return float(np.sum(w * problem.family.population_size_terms(problem.y, eta)))
