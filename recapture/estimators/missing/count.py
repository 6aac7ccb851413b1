"""Single-source count models with unknown covariates: maximum likelihood by EM.

**Likelihood.** Let π(x) be the covariate distribution in the population and P(x) =
P(y > 0 | x). A person is seen with probability Σ_x π(x)P(x), and among the seen,
p(x | seen) ∝ π(x)P(x). Under missingness at random given the count y (a covariate is
unknown when *all* of a person's y registrations lack it, a function of y only), the
observed-data likelihood conditional on being seen factorises as

    Π_complete p(x_i | seen) f(y_i | x_i, seen) · Π_unknown Σ_{x ~ x_i} p(x | seen) f(y_i | x, seen)

where f is the zero-truncated model and x ~ x_i runs over the patterns that agree with
what is known of person i (sex known, region unknown: only patterns with that sex). With
``history`` (the other sources' counts z), each term gains g(z | x, y ≥ 2), saturated: the
value is unknown when every registration lacks it, in every source.
p(· | seen) is saturated over the covariate patterns seen among complete cases; it is
variation-independent of the count model's β, so the EM M-step is the ordinary weighted
fit of the count model on the completed (pattern, count) cells plus the weighted pattern
shares. Everything runs on aggregated cells: complete (pattern, count) cells and unknown
(known part, count) groups expanded over their candidate patterns.

**N̂** is the Horvitz–Thompson sum with each unknown person spread over the candidate
patterns by the posterior: Σ_i Σ_x w_i(x) / P(x) = Σ_x E[n_x] / P(x); strata get their
posterior shares.

**Variance.** The missing-information principle (Louis 1982): the observed information
of (β, a), with a the multinomial logits of p(· | seen), is the posterior expectation of
the complete-data information minus the posterior covariance of the complete-data score,
summed over the unknown groups. The standard error adds to the complete-data variance of
the weighted fit the extra term ∇N̂ᵀ (I_obs⁻¹ − I_c⁻¹) ∇N̂. ``variance="bootstrap"``
resamples persons and reruns the EM in every replicate instead.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl
from scipy import sparse, stats

from recapture.errors import ConfigError, InputError
from recapture.estimators.count.bootstrap import (
    bootstrap_warnings,
    diverged,
    replicate_penalty,
)
from recapture.estimators.count.fit import fit_ml, population_estimate, population_size
from recapture.estimators.count.problem import (
    CountProblem,
    check_counts,
    prepare,
    required_variables,
)
from recapture.estimators.reading import read_frame
from recapture.estimators.result import PopulationEstimate
from recapture.estimators.unknown import unknown_expr

_Y = "__em_count__"
_W = "__em_weight__"
_PAT = "__em_pattern__"
_GROUP = "__em_group__"
_Z = "__em_history__"

#: Above this many covariate patterns (or n/5) p(x | seen) is a log-linear model, not saturated.
MAX_SATURATED_PATTERNS = 1000


def unknown_summary(
    persons: pl.DataFrame, covariates: Sequence[str], observed: pl.Expr | None = None
) -> dict[str, Any]:
    """Observed persons with an unknown value: per covariate and in any of them."""
    units = persons.filter(observed) if observed is not None else persons
    n = units.height
    per = {}
    anyu = pl.lit(False)
    for c in covariates:
        e = unknown_expr(c, units.schema[c])
        k = int(units.select(e.sum()).item())
        per[c] = {"unknown": k, "share": k / n if n else float("nan")}
        anyu = anyu | e
    k_any = int(units.select(anyu.sum()).item()) if covariates else 0
    return {
        "observed": n,
        "unknown": k_any,
        "share": k_any / n if n else float("nan"),
        "per_covariate": per,
    }


@dataclasses.dataclass
class _Layout:
    """The augmented cells: complete rows first, then each unknown group's candidates."""

    problem: CountProblem
    r_cell: np.ndarray  # per row: cell of the problem
    r_pat: np.ndarray  # per row: covariate pattern
    r_group: np.ndarray  # per unknown row: group index (rows sorted by group)
    n_complete_rows: int
    w_complete: np.ndarray  # per complete row: frequency
    w_group: np.ndarray  # per group: frequency
    mask_out: np.ndarray  # per row: the family ignores this count (Zelterman/Chao, y ≥ 3)
    n_patterns: int
    unmatched_groups: int
    r_z: np.ndarray  # per row: the rest of the capture history (with y ≥ 2), coded
    n_z: int
    #: the pattern model's design (K × r, intercept first); None: saturated over the patterns
    pattern_design: np.ndarray | None = None

    @property
    def share_design(self) -> np.ndarray:
        """D (K × free parameters): a person in pattern x has the share score D[x] − pᵀD."""
        if self.pattern_design is None:
            return np.eye(self.n_patterns)[:, 1:]
        return self.pattern_design[:, 1:]

    @property
    def u_pat(self) -> np.ndarray:
        return self.r_pat[self.n_complete_rows :]

    @property
    def u_cell(self) -> np.ndarray:
        return self.r_cell[self.n_complete_rows :]


def _pattern_variables(model: Any) -> list[str]:
    variables: list[str] = []
    for f in [model.formula, *model.extra_formulas.values()]:
        for v in required_variables(f):
            if v not in variables:
                variables.append(v)
    for v in model.strata or []:
        if v not in variables:
            variables.append(v)
    return variables


def _layout(
    model: Any,
    frame: pl.DataFrame,
    variables: list[str],
    unknown: pl.Expr,
    count: str,
    weights,
    history: list[str],
) -> tuple[_Layout, dict[str, Any]]:
    # the rest of the capture history (other sources' counts, capped at 2), coded 0…Z−1,
    # last bit y ≥ 2: the missingness may depend on it; its distribution given x is saturated
    zexpr = pl.lit(0, dtype=pl.Int64)
    for h in history:
        zexpr = zexpr * 3 + pl.col(h).cast(pl.Float64).clip(0, 2).round(0).cast(pl.Int64)
    zexpr = zexpr * 2 + (pl.col(count).cast(pl.Int64) >= 2).cast(pl.Int64)
    units = frame.select(
        *variables,
        zexpr.alias(_Z),
        pl.col(count).cast(pl.Int64).alias(_Y),
        (pl.col(weights).cast(pl.Float64) if weights else pl.lit(1.0)).alias(_W),
        unknown.alias("__unknown__"),
    ).filter((pl.col(_Y) > 0) & (pl.col(_W) > 0))
    complete = units.filter(~pl.col("__unknown__")).drop("__unknown__")
    if complete.height == 0:
        raise ConfigError(
            "every observed person has an unknown value of " + ", ".join(variables), key="missing"
        )
    patterns = complete.select(variables).unique(maintain_order=True).with_row_index(_PAT)
    K = patterns.height
    cells_c = (
        complete.join(patterns, on=variables, how="left", nulls_equal=True)
        .group_by(_PAT, _Y, _Z)
        .agg(pl.col(_W).sum())
        .sort(_PAT, _Y, _Z)
    )
    # unknown persons: group by the known part (unknown values as null) and the count
    blanked = units.filter(pl.col("__unknown__")).with_columns(
        pl.when(unknown_expr(v, units.schema[v])).then(None).otherwise(pl.col(v)).alias(v)
        for v in variables
    )
    groups = (
        blanked.group_by(*variables, _Y, _Z, maintain_order=True)
        .agg(pl.col(_W).sum())
        .with_row_index(_GROUP)
    )
    pieces = []
    unmatched = 0
    masks = groups.select([pl.col(v).is_null().alias(v) for v in variables]).unique()
    for row in masks.iter_rows(named=True):
        known = [v for v in variables if not row[v]]
        sel = groups.filter(
            pl.all_horizontal([pl.col(v).is_null() == row[v] for v in variables])
        ).select(_GROUP, _Y, _Z, _W, *known)
        if known:
            cand = sel.join(patterns.select(_PAT, *known), on=known, how="inner").select(
                _GROUP, _PAT, _Y, _Z, _W
            )
            missed = sel.join(cand.select(_GROUP).unique(), on=_GROUP, how="anti")
        else:
            cand = sel.select(_GROUP, _Y, _Z, _W).join(patterns.select(_PAT), how="cross")
            missed = sel.head(0)
        if missed.height:
            # a known value no complete person has: nothing to say which pattern; use all
            unmatched += missed.height
            cand = pl.concat(
                [
                    cand,
                    missed.select(_GROUP, _Y, _Z, _W)
                    .join(patterns.select(_PAT), how="cross")
                    .select(_GROUP, _PAT, _Y, _Z, _W),
                ]
            )
        pieces.append(cand.select(_GROUP, _PAT, _Y, _Z, _W))
    cand = pl.concat(pieces).sort(_GROUP, _PAT)
    # the augmented frame: complete cells in pattern order first (so prepare's pattern
    # index, in order of first appearance, is ours), then the candidate rows
    n_cand = cand.group_by(_GROUP).len()
    cand = cand.join(n_cand, on=_GROUP).with_columns((pl.col(_W) / pl.col("len")).alias(_W))
    rows = pl.concat(
        [cells_c.select(_PAT, _Y, _Z, _W), cand.select(_PAT, _Y, _Z, _W)], how="vertical_relaxed"
    )
    aug = rows.join(patterns, on=_PAT, how="left", maintain_order="left")
    r_z = aug[_Z].to_numpy().astype(np.int64)
    problem, notes = prepare(
        aug,
        family=model.family,
        formula=model.formula,
        count=_Y,
        weights=_W,
        offset=None,
        reference=model.reference,
        extra_formulas=dict(model.extra_formulas),
        strata=model.strata,
    )
    if problem.n_patterns != K:  # cannot happen: every pattern has a complete cell
        raise AssertionError("pattern index mismatch in the EM layout")
    r_pat = aug[_PAT].to_numpy().astype(np.int64)
    r_y = aug[_Y].to_numpy().astype(np.int64)
    span = int(max(r_y.max(), problem.y.max())) + 1
    ckey = problem.pattern * span + problem.y.astype(np.int64)
    r_cell = np.searchsorted(ckey, r_pat * span + r_y)
    w_group = groups.sort(_GROUP)[_W].to_numpy().astype(float)
    layout = _Layout(
        problem=problem,
        r_cell=r_cell,
        r_pat=r_pat,
        r_group=cand[_GROUP].to_numpy().astype(np.int64),
        n_complete_rows=cells_c.height,
        w_complete=cells_c[_W].to_numpy().astype(float),
        w_group=w_group,
        mask_out=~model.family.fit_mask(r_y.astype(float)),
        r_z=r_z,
        n_z=2 * 3 ** len(history),
        n_patterns=K,
        unmatched_groups=unmatched,
    )
    notes = {
        **notes,
        "n_patterns_complete": K,
        "n_unknown_groups": groups.height,
        "n_candidate_rows": cand.height,
        "patterns": patterns.drop(_PAT),
    }
    return layout, notes


@dataclasses.dataclass
class _EMState:
    beta: np.ndarray
    p: np.ndarray
    post: np.ndarray  # per unknown row: posterior within its group
    row_w: np.ndarray  # per row: completed frequency
    loglik: float
    iterations: int
    converged: bool


def _pattern_design(patterns: pl.DataFrame, variables: list[str]) -> np.ndarray:
    """Main effects and two-way interactions of the pattern variables (categorical: treatment
    dummies; numeric: standardised linear and quadratic), intercept first, without aliased
    columns; main effects only when the interactions would need more than K/2 parameters."""
    from recapture.estimators.loglinear.fit import independent_columns

    K = patterns.height
    blocks = []
    for v in variables:
        col = patterns[v]
        if col.dtype.is_numeric():
            x = col.cast(pl.Float64).to_numpy()
            x = (x - x.mean()) / (x.std() or 1.0)
            blocks.append(np.column_stack([x, x**2]) if col.n_unique() > 2 else x[:, None])
        else:
            codes = col.cast(pl.String).to_numpy()
            levels = np.unique(codes)
            blocks.append((codes[:, None] == levels[None, 1:]).astype(float))
    main = np.hstack([np.ones((K, 1)), *blocks])
    pairs = [
        (a[:, i] * b[:, j])[:, None]
        for m, a in enumerate(blocks)
        for b in blocks[m + 1 :]
        for i in range(a.shape[1])
        for j in range(b.shape[1])
    ]
    design = np.hstack([main, *pairs]) if pairs else main
    if design.shape[1] > max(K // 2, main.shape[1]):
        design = main
    return design[:, independent_columns(design)]


def _pattern_shares(lay: _Layout, counts: np.ndarray, start: np.ndarray | None) -> np.ndarray:
    """p(x | seen) from the expected pattern counts: their shares (saturated), or the
    multinomial log-linear fit of the pattern model (a Poisson fit to the counts)."""
    if lay.pattern_design is None:
        return np.maximum(counts / counts.sum(), 1e-300)
    from recapture.estimators.loglinear.fit import fit_poisson

    if start is not None:  # coefficients of log p: on the scale of the counts
        start = start.copy()
        start[0] += np.log(counts.sum())
    fit = fit_poisson(lay.pattern_design, counts, start=start)
    return np.maximum(fit.mu / fit.mu.sum(), 1e-300)


def _row_loglik(
    lay: _Layout, beta: np.ndarray, p: np.ndarray, c_out: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """log f(y | x, seen) per unknown row and per cell (for counts the family ignores:
    log c(x)/p(x), so the posterior follows the complete cases with such counts)."""
    prob = lay.problem
    eta = prob.eta_patterns(beta)[prob.pattern]
    ll_cell = np.real(prob.family.loglik(prob.y, eta))
    ll = ll_cell[lay.u_cell]
    out = lay.mask_out[lay.n_complete_rows :]
    if out.any():
        pk = lay.u_pat[out]
        ll = ll.copy()
        ll[out] = np.log(c_out[pk] + 1e-9) - np.log(p[pk])
    return ll, ll_cell


def _em(
    lay: _Layout,
    w_complete: np.ndarray,
    w_group: np.ndarray,
    beta: np.ndarray,
    p: np.ndarray,
    *,
    penalty: str | None,
    max_iter: int,
    tol: float,
) -> _EMState:
    prob = lay.problem
    nc = lay.n_complete_rows
    K = lay.n_patterns
    G = len(w_group)
    cpat = lay.r_pat[:nc]
    c_out = np.bincount(cpat, weights=w_complete * lay.mask_out[:nc], minlength=K)
    g = lay.r_group
    # g(z | x, y ≥ 2): the rest of the history given the pattern and whether y ≥ 2,
    # saturated; the code's last bit is y ≥ 2, so without a history g ≡ 1
    zkey = lay.r_pat * lay.n_z + lay.r_z
    ykey = lay.r_pat * 2 + lay.r_z % 2
    ll_prev = -np.inf
    row_w = np.concatenate([w_complete, w_group[g] / np.bincount(g, minlength=G)[g]])
    converged = False
    it = 0
    for it in range(1, max_iter + 1):
        # E-step: posterior of each candidate pattern within its group
        lf, ll_cell = _row_loglik(lay, beta, p, c_out)
        gz = np.bincount(zkey, weights=row_w, minlength=K * lay.n_z)
        gx = np.bincount(ykey, weights=row_w, minlength=K * 2)
        log_g = np.log(np.maximum(gz[zkey], 1e-300)) - np.log(np.maximum(gx[ykey], 1e-300))
        logit = np.log(p[lay.u_pat]) + lf + log_g[nc:]
        top = np.full(G, -np.inf)
        np.maximum.at(top, g, logit)
        e = np.exp(logit - top[g])
        s = np.bincount(g, weights=e, minlength=G)
        post = e / s[g]
        loglik = float(
            np.sum(w_complete * (np.log(p[cpat]) + ll_cell[lay.r_cell[:nc]] + log_g[:nc]))
            + np.sum(w_group * (top + np.log(s)))
        )
        row_w = np.concatenate([w_complete, w_group[g] * post])
        if it > 1 and abs(loglik - ll_prev) <= tol * (1.0 + abs(loglik)):
            converged = True
            break
        ll_prev = loglik
        # M-step: the weighted count-model fit and the weighted pattern shares
        w_cell = np.bincount(lay.r_cell, weights=row_w, minlength=len(prob.w))
        fit = fit_ml(prob, w_cell, beta, penalty=penalty, max_iter=50)
        if np.all(np.isfinite(fit.beta)):
            beta = fit.beta
        theta = None if lay.pattern_design is None else _share_coef(lay, p)
        p = _pattern_shares(lay, np.bincount(lay.r_pat, weights=row_w, minlength=K), theta)
    return _EMState(beta, p, post, row_w, loglik, it, converged)


def _share_coef(lay: _Layout, p: np.ndarray) -> np.ndarray:
    """Coefficients of the pattern model reproducing shares p (a warm start)."""
    coef, *_ = np.linalg.lstsq(lay.pattern_design, np.log(p), rcond=None)
    return coef


def _louis_extra(
    lay: _Layout, state: _EMState, cov_beta: np.ndarray, active: np.ndarray, info_beta: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(I_obs⁻¹, I_c⁻¹) over the active β and the free parameters a of p(x | seen): the K−1
    pattern logits (saturated) or the pattern model's coefficients.

    I_obs = I_c − I_mis (Louis 1982): I_c is the complete-data information at the posterior
    weights (β: the weighted fit's; a: n(diag p − ppᵀ)); I_mis sums, over the unknown
    groups, the frequency times the posterior covariance of the complete-data score
    (s_β = ∂ℓ/∂η · x, s_a = e_x − p)."""
    prob = lay.problem
    fam = prob.family
    K = lay.n_patterns
    G = len(lay.w_group)
    n = float(state.row_w.sum())
    p = state.p
    eta = prob.eta_patterns(state.beta)[prob.pattern]
    _, grad_cell, _ = fam.evaluate(prob.y, eta)
    ucell, upat, g = lay.u_cell, lay.u_pat, lay.r_group
    R = len(upat)
    S_b = np.hstack([prob.X[j][upat] * grad_cell[ucell, j][:, None] for j in range(len(prob.X))])
    S_b = S_b[:, active]
    u = lay.w_group[g] * state.post
    M = sparse.csr_matrix((state.post, (g, np.arange(R))), shape=(G, R))
    E = sparse.csr_matrix((np.ones(R), (np.arange(R), upat)), shape=(R, K))
    Sbar = M @ S_b  # G × q: posterior mean score
    Pi = sparse.csr_matrix(M @ E)  # G × K: posterior over the patterns
    wg = lay.w_group
    I_bb = S_b.T @ (u[:, None] * S_b) - Sbar.T @ (wg[:, None] * Sbar)
    I_ba = np.asarray(E.T @ (u[:, None] * S_b)).T - np.asarray(Pi.T @ (wg[:, None] * Sbar)).T
    PiW = (Pi.T @ sparse.diags(wg) @ Pi).toarray()
    I_aa = np.diag(np.bincount(upat, weights=u, minlength=K)) - PiW
    Ic_aa = n * (np.diag(p) - np.outer(p, p))
    # per pattern, the share parameters' score is D[x] − pᵀD: the K-pattern blocks above
    # (indicator scores) map onto the parameters by D
    D = lay.share_design
    Ic_aa, I_ba, I_aa = D.T @ Ic_aa @ D, I_ba @ D, D.T @ I_aa @ D
    q = int(active.sum())
    d = q + D.shape[1]
    I_c = np.zeros((d, d))
    I_c[:q, :q] = info_beta
    I_c[q:, q:] = Ic_aa
    I_mis = np.zeros((d, d))
    I_mis[:q, :q] = I_bb
    I_mis[:q, q:] = I_ba
    I_mis[q:, :q] = I_ba.T
    I_mis[q:, q:] = I_aa
    I_obs = I_c - I_mis
    C_obs = np.linalg.inv(I_obs)
    C_c = np.zeros((d, d))
    C_c[:q, :q] = cov_beta
    C_c[q:, q:] = np.linalg.inv(Ic_aa)
    return C_obs, C_c


def _extra_variance(C_obs, C_c, J_beta, J_a) -> float:
    J = np.concatenate([J_beta, J_a])
    return float(J @ C_obs @ J - J @ C_c @ J)


def fit_count_em(
    model: Any,
    data: Any,
    *,
    count: str = "capture",
    weights: str | None = None,
    variance: str = "analytic",
    replicates: int = 1000,
    seed: int | None = None,
    interval: str | None = None,
    history: Sequence[str] = (),
    pattern_model: str = "auto",
    max_patterns: int = MAX_SATURATED_PATTERNS,
    max_iter: int = 1000,
    tol: float = 1e-11,
    **fit_options: Any,
) -> PopulationEstimate:
    """Fit ``model`` (a :class:`~recapture.estimators.count.CountModel`) by maximum
    likelihood with the unknown covariate values (null or 'unknown') integrated out.

    Without any unknown value this is ``model.fit_complete(data, ...)`` itself. Offsets are not
    supported (an offset is a person's own exposure, not a pattern to sum over).

    ``history``: the rest of each person's capture history (e.g. ``n_iom`` for a model of
    the police counts; counts are capped at 2). A value is unknown when all the person's registrations lack it,
    in every source, so the chance also falls with registrations elsewhere; the EM then
    conditions on them too, with their distribution given the pattern (and y = 1 or
    y ≥ 2) saturated. Without it the missingness may depend on the count only.

    ``pattern_model``: p(x | seen) ``saturated`` over the covariate patterns seen among the
    complete persons, ``loglinear`` (main effects and two-way interactions of the pattern
    variables), or ``auto``: saturated unless there are more patterns than n/5 or than
    ``max_patterns`` — then most patterns hold a person or two, their shares are noise,
    and the unknowns would be spread by that noise.
    """
    if pattern_model not in ("auto", "saturated", "loglinear"):
        raise ConfigError(
            f"unknown pattern_model {pattern_model!r} (auto, saturated or loglinear)",
            key="pattern_model",
        )
    if model.offset:
        raise ConfigError(
            "missing='em' does not combine with an offset; use missing='allocate'", key="missing"
        )
    frame = read_frame(data)
    variables = _pattern_variables(model)
    history = [h for h in history if h != count]
    for col in [count, *([weights] if weights else []), *variables, *history]:
        if col not in frame.columns:
            raise InputError(f"column not found (columns: {', '.join(frame.columns)})", column=col)
    unknown = pl.lit(False)
    for v in variables:
        unknown = unknown | unknown_expr(v, frame.schema[v])
    frame = check_counts(frame, count, weights, model.max_count)
    observed = (pl.col(count) > 0) & (pl.col(weights) > 0 if weights else pl.lit(True))
    n_unknown = int(frame.select((unknown & observed).sum()).item()) if variables else 0
    plain = dict(count=count, weights=weights, variance=variance, replicates=replicates, seed=seed)
    if n_unknown == 0:
        return model.fit_complete(frame, interval=interval, **plain, **fit_options)
    if variance not in ("analytic", "bootstrap"):
        raise ConfigError(f"unknown variance {variance!r} (analytic or bootstrap)", key="variance")
    summary = unknown_summary(frame, variables, observed)

    with np.errstate(all="ignore"):
        lay, notes = _layout(model, frame, variables, unknown, count, weights, history)
        n_seen = float(lay.w_complete.sum() + lay.w_group.sum())
        if pattern_model == "loglinear" or (
            pattern_model == "auto"
            and (lay.n_patterns > n_seen / 5 or lay.n_patterns > max_patterns)
        ):
            lay.pattern_design = _pattern_design(notes["patterns"], variables)
        prob = lay.problem
        nc = lay.n_complete_rows
        # start: the complete-case fit and the complete-case pattern shares
        w0 = np.bincount(lay.r_cell[:nc], weights=lay.w_complete, minlength=len(prob.w))
        start = fit_ml(prob, w0, penalty=model.penalty)
        p0 = _pattern_shares(
            lay, np.bincount(lay.r_pat[:nc], weights=lay.w_complete, minlength=lay.n_patterns), None
        )
        state = _em(
            lay,
            lay.w_complete,
            lay.w_group,
            start.beta,
            p0,
            penalty=model.penalty,
            max_iter=max_iter,
            tol=tol,
        )
        w_cell = np.bincount(lay.r_cell, weights=state.row_w, minlength=len(prob.w))
        fitted = prob.with_cells(prob.pattern, prob.y, w_cell)
        fit = fit_ml(fitted, beta0=state.beta, penalty=model.penalty)
        state.p = _pattern_shares(
            lay,
            np.bincount(lay.r_pat, weights=state.row_w, minlength=lay.n_patterns),
            None if lay.pattern_design is None else _share_coef(lay, state.p),
        )
        # N̂ = n Σ p(x)/P(x): the persons spread over the patterns by the model's shares
        # (with the saturated model these are the posterior counts themselves)
        final = prob.with_cells(prob.pattern, prob.y, _model_cells(lay, state, w_cell))
        notes.pop("patterns")
        result = model._result(final, fit, {**notes, "em_iterations": state.iterations})
        cov, _ = model._covariance(fitted, fit)
        a = fit.active
        n_hat, grad, _ = population_estimate(final, fit.beta)
        eta = final.eta_patterns(fit.beta)[final.pattern]
        n_i = final.family.population_terms(final.y, eta)[0]
        N_k = np.bincount(final.pattern, weights=w_cell * n_i, minlength=lay.n_patterns)
        extra_var = float("nan")
        try:
            info_beta = np.linalg.inv(cov[np.ix_(a, a)])
            C_obs, C_c = _louis_extra(lay, state, cov[np.ix_(a, a)], a, info_beta)
            J_a = lay.share_design.T @ (N_k - state.p * n_hat)
            extra_var = _extra_variance(C_obs, C_c, grad[a], J_a)
        except np.linalg.LinAlgError:
            C_obs = C_c = None
        base_var = result.se**2
        result.variance_components["complete_data_se"] = result.se
        result.variance_components["missing_information"] = extra_var
        total = base_var + extra_var
        result.se = float(np.sqrt(total)) if np.isfinite(total) and total >= 0 else float("nan")
        if "bias_reduced" in result.interval_methods:
            # its SE is the complete-data one at the Firth coefficients: the missing
            # information widens it by the same factor as the ML fit's
            br = result.interval_methods["bias_reduced"]
            br.se *= result.se / base_var**0.5 if base_var > 0 else float("nan")
            result.extra["se_bias_reduced"] = br.se
        if not np.isfinite(result.se):
            result.warnings.append(
                "the observed-data information is singular: no analytic standard error "
                "(use variance='bootstrap')"
            )
        if C_obs is not None:
            _adjust_strata(result, final, fit.beta, a, state.p, N_k, C_obs, C_c, lay.share_design)

    if not state.converged:
        result.warnings.append(
            f"the EM for the unknown covariates did not converge in {state.iterations} iterations"
        )
    if lay.unmatched_groups:
        result.warnings.append(
            f"{lay.unmatched_groups} group(s) of persons have a known covariate value no complete "
            "person has; they were spread over every pattern"
        )
    result.extra["missing_covariates"] = {
        "rule": "em",
        "covariates": variables,
        **summary,
        "complete": summary["observed"] - summary["unknown"],
        "em_iterations": state.iterations,
        "em_converged": state.converged,
        "observed_data_loglik": state.loglik,
        "patterns": lay.n_patterns,
        "pattern_model": "saturated" if lay.pattern_design is None else "loglinear",
        "assumption": "missing at random given the capture count"
        + (f" and {', '.join(history)}" if history else ""),
    }
    if variance == "bootstrap":
        penalty = fit_options.get("bootstrap_penalty", "firth")
        with np.errstate(all="ignore"):  # diverging replicates are counted, not printed
            _bootstrap(result, model, lay, state, fit, replicates, seed, penalty)
    if interval is not None:
        if interval not in result.available_intervals():
            raise ConfigError(
                f"interval {interval!r} not available; available: "
                + ", ".join(result.available_intervals()),
                key="interval",
            )
        result.default_interval = interval
    return result


def _model_cells(lay: _Layout, state: _EMState, w_cell: np.ndarray) -> np.ndarray:
    """Cell frequencies with each pattern's persons scaled to n·p(x | seen)."""
    if lay.pattern_design is None:
        return w_cell
    K = lay.n_patterns
    expected = np.bincount(lay.r_pat, weights=state.row_w, minlength=K)
    scale = state.p * state.row_w.sum() / np.maximum(expected, 1e-300)
    pat = lay.problem.pattern
    return w_cell * scale[pat]


def _adjust_strata(result, final, beta, active, p, N_k, C_obs, C_c, D) -> None:
    """Add the missing-information term to every stratum's variance."""
    z = stats.norm.ppf(0.975)
    for row in result.strata:
        in_s = (final.patterns[row["variable"]].astype(str) == row["level"]).to_numpy()
        n_s, g_s, _ = population_estimate(final, beta, cells=in_s[final.pattern])
        J_a = D.T @ (N_k * in_s - p * n_s)
        extra = _extra_variance(C_obs, C_c, g_s[active], J_a)
        var = row["se"] ** 2 + extra
        se = float(np.sqrt(var)) if np.isfinite(var) and var >= 0 else float("nan")
        row["se"] = se
        n_hat, obs = row["population_size"], row["observed"]
        row["normal_lower"], row["normal_upper"] = n_hat - z * se, n_hat + z * se
        f0 = n_hat - obs
        if f0 > 0 and np.isfinite(se):
            c = float(np.exp(z * np.sqrt(np.log1p(se**2 / f0**2))))
            row["lognormal_lower"], row["lognormal_upper"] = obs + f0 / c, obs + f0 * c


def _bootstrap(
    result, model, lay: _Layout, state: _EMState, fit, replicates: int, seed, penalty
) -> None:
    """Resample persons (complete cells and unknown groups alike) and rerun the EM.

    The number seen varies too: n* ~ Binomial(N̂, n/N̂), then n* persons drawn with
    replacement from the observed (a resample of fixed size would miss Var(n)).

    A replicate is flagged by the complete-data bootstrap's rule (``diverged``: the EM did
    not converge, N̂* is not finite, a coefficient moved more than 8 from the full-data
    fit, or a 0/1 design column has no repeated captures on one side in the completed
    cells) or when N̂* exceeds ``absurd_ratio`` × n*; a flagged replicate is refitted by
    the EM with the penalised M-step (Firth; ridge for two-predictor families). A
    replicate still not finite or absurd has *failed*: it is counted and left out of the
    SD and the percentile interval."""
    rng = np.random.default_rng(seed)
    prob = lay.problem
    penalty = replicate_penalty(prob, penalty)
    nc = lay.n_complete_rows
    base = np.concatenate([lay.w_complete, lay.w_group])
    n = base.sum()
    N = max(float(result.population_size), n) if np.isfinite(result.population_size) else n
    probs = base / n
    reps = np.full(replicates, np.nan)
    flagged = np.zeros(replicates, dtype=bool)
    failed = np.zeros(replicates, dtype=bool)

    def refit(wc, wg, pen):
        st = _em(lay, wc, wg, state.beta, state.p, penalty=pen, max_iter=200, tol=1e-9)
        w_cell = np.bincount(lay.r_cell, weights=st.row_w, minlength=len(prob.w))
        return st, w_cell, population_size(prob, st.beta, _model_cells(lay, st, w_cell))

    for b in range(replicates):
        n_b = rng.binomial(int(round(N)), n / N)
        draw = rng.multinomial(n_b, probs).astype(float)
        wc, wg = draw[:nc], draw[nc:]
        try:
            st, w_cell, n_hat = refit(wc, wg, model.penalty)
            absurd = not n_hat <= model.absurd_ratio * n_b
            flagged[b] = absurd or diverged(
                prob, w_cell, st.beta, st.converged, n_hat, state.beta, fit.active
            )
            if flagged[b] and penalty is not None and model.penalty is None:
                st, w_cell, n_hat = refit(wc, wg, penalty)
                absurd = not n_hat <= model.absurd_ratio * n_b
        except (np.linalg.LinAlgError, ValueError, FloatingPointError):
            failed[b] = flagged[b] = True
            continue
        if absurd:  # not finite, or beyond any plausible N: a boundary of the likelihood
            failed[b] = True
        else:
            reps[b] = n_hat
    valid = reps[~failed]
    result.bootstrap_replicates = reps
    result.bootstrap_info = {
        "kind": "nonparametric (n* ~ Binomial(N̂, n/N̂)), EM refitted in each replicate",
        "replicates": replicates,
        "penalty": penalty or "none",
        "n_flagged": int(flagged.sum()),
        "share_flagged": float(flagged.mean()),
        "n_failed": int(failed.sum()),
        "share_failed": float(failed.mean()),
        "mean": float(np.mean(valid)) if len(valid) else float("nan"),
        "sd": float(np.std(valid, ddof=1)) if len(valid) > 1 else float("nan"),
        "seed": seed,
    }
    result.warnings += bootstrap_warnings(
        result.bootstrap_info, reps, result.n_observed, model.absurd_ratio
    )
    result.variance_components["analytic_se"] = result.se
    result.se = result.bootstrap_info["sd"]
    result.default_interval = "bootstrap"
