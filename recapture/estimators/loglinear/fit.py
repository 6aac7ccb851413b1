"""Poisson log-linear fitting (R ``glm`` conventions) and the checks of sparse tables.

Numerics follow R's ``glm`` (Poisson, IRLS, aliased columns dropped in order) so that results
agree with Rcapture and SparseMSE. Counts known only as sums over groups of cells are fitted
by EM. The existence of the maximum-likelihood estimate is tested with the linear program of
Fienberg & Rinaldo (2012) and identifiability by the rank of the design (Chan, Silverman &
Vincent 2021).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import optimize, sparse, special

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


def independent_columns(X: np.ndarray, tol: float = 1e-7) -> np.ndarray:
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
    keep = independent_columns(X)
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


def ascent(beta: np.ndarray, step: np.ndarray, ll: float, fitted: Callable) -> tuple:
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


def with_loglik(parts: tuple, loglik: Callable) -> tuple:
    mu, mu0, tot0 = parts
    return loglik(mu, tot0), parts


def newton_step(hess: np.ndarray, scoring: np.ndarray, grad: np.ndarray) -> np.ndarray:
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
