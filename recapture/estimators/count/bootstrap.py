"""Bootstrap for the single-source count models, robust to diverging replicates.

Three resampling schemes (Zwane & van der Heijden 2003; Norris & Pollock 1996):

* ``parametric`` — draw a population of round(N̂) units over the covariate patterns in
  proportion to their Horvitz–Thompson contributions, draw counts from the fitted
  untruncated model, keep those seen at least once, refit;
* ``semiparametric`` — draw n* ~ Binomial(round(N̂), n/N̂) and resample n* observed units;
* ``nonparametric`` — resample n observed units with replacement.

Everything works on the aggregated cells: a replicate is a vector of cell frequencies drawn
by one multinomial, so a thousand refits take well under a second.

Robust refits: in a replicate a sparse covariate level can lose all its repeated captures
(or its reference level can), and the ML coefficient then runs to ±∞, N̂ to 10¹⁰ and the
percentile interval with it. A replicate is *flagged* when the ML refit does not converge,
when a 0/1 design column has no repeated captures on one side, or when a coefficient moves
more than 8 (a factor e⁸ ≈ 3,000 in λ) from the full-data estimate. Flagged replicates are
refitted with Firth's Jeffreys-prior penalty (single-predictor families; a ridge penalty for
two-predictor families), which always has a finite maximiser. The share of flagged
replicates and the interval the unstabilised refits would have given are reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from recapture import progress
from recapture.errors import ConfigError
from recapture.estimators.count.fit import fit_ml, population_size
from recapture.estimators.count.problem import CountProblem
from recapture.workers import worker_pool

BOOTSTRAP_TYPES = ("parametric", "semiparametric", "nonparametric")
DIVERGENCE = 8.0
#: Above this share of failed replicates the warning says the interval understates.
FAILED_SHARE_WARNING = 0.05


@dataclass
class _Job:
    problem: CountProblem  # cells used for refits (grid for parametric)
    beta: np.ndarray
    kind: str
    n_obs: int
    n_hat: float
    pop_probs: np.ndarray | None  # parametric: P(pattern) in the population
    count_probs: np.ndarray | None  # parametric: P × (K+1) untruncated count probabilities
    base_w: np.ndarray | None  # resampling: observed cell frequencies
    penalty: str | None


def _draw(job: _Job, rng: np.random.Generator) -> np.ndarray:
    if job.kind == "nonparametric":
        return rng.multinomial(job.n_obs, job.base_w / job.base_w.sum()).astype(float)
    if job.kind == "semiparametric":
        total = int(round(job.n_hat))
        n_star = rng.binomial(total, min(1.0, job.n_obs / job.n_hat))
        return rng.multinomial(n_star, job.base_w / job.base_w.sum()).astype(float)
    total = int(round(job.n_hat))
    per_pattern = rng.multinomial(total, job.pop_probs)
    counts = rng.multinomial(per_pattern, job.count_probs)  # P × (K+1)
    return counts[:, 1:].reshape(-1).astype(float)


def separated(problem: CountProblem, w: np.ndarray) -> bool:
    """A 0/1 design column whose units on one side have no repeated captures."""
    repeat = (problem.y == 2) if not problem.family.uses_all_counts else (problem.y >= 2)
    mask = problem.family.fit_mask(problem.y)
    P = problem.n_patterns
    W = np.bincount(problem.pattern, weights=w * mask, minlength=P)
    R = np.bincount(problem.pattern, weights=w * repeat, minlength=P)
    for x in problem.X[:1]:
        binary = np.all((x == 0) | (x == 1), axis=0) & ~np.all(x == 1, axis=0)
        if not binary.any():
            continue
        xb = x[:, binary]
        w1, r1 = xb.T @ W, xb.T @ R
        w0, r0 = W.sum() - w1, R.sum() - r1
        if np.any((w1 > 0) & (r1 == 0)) or np.any((w0 > 0) & (r0 == 0)):
            return True
    return False


def diverged(
    problem: CountProblem,
    w: np.ndarray,
    beta: np.ndarray,
    converged: bool,
    n_hat: float,
    beta_ref: np.ndarray,
    active: np.ndarray,
) -> bool:
    """Whether a replicate's ML refit (coefficients ``beta`` on cell frequencies ``w``) has
    diverged: it did not converge, N̂ is not finite, a coefficient moved more than
    ``DIVERGENCE`` from the full-data ``beta_ref``, or a 0/1 design column has no repeated
    captures on one side (the ML estimate does not exist). Every bootstrap of a count model
    (the EM's too) flags its replicates by this one rule."""
    return (
        not converged
        or not np.isfinite(n_hat)
        or not np.all(np.isfinite(beta[active]))
        or np.max(np.abs(beta - beta_ref)[active], initial=0.0) > DIVERGENCE
        or separated(problem, w)
    )


def replicate_penalty(problem: CountProblem, penalty: str | None) -> str | None:
    """The penalty of the refits of flagged replicates: ``firth``, ``ridge`` or None (kept
    as they are); Firth's is implemented for single-predictor families, the others get
    the ridge."""
    if penalty == "none":
        penalty = None
    if penalty not in (None, "firth", "ridge"):
        raise ConfigError(
            f"unknown bootstrap penalty {penalty!r} (firth, ridge or none)", key="bootstrap_penalty"
        )
    if penalty == "firth" and len(problem.X) > 1:
        return "ridge"
    return penalty


def bootstrap_warnings(
    info: dict[str, Any], reps: np.ndarray, n_observed: float, absurd_ratio: float
) -> list[str]:
    """What a result says about its bootstrap: an absurd distribution, failed replicates
    (left out of the SD and the interval; a large share makes the interval rest on the
    replicates that happened to behave) and flagged ones."""
    out = []
    finite = reps[np.isfinite(reps)]
    replicates = info["replicates"]
    if len(finite) and np.quantile(finite, 0.975) > absurd_ratio * n_observed:
        out.append(
            f"the bootstrap distribution is absurd (97.5% quantile {np.quantile(finite, 0.975):,.3g} "
            f"against n = {n_observed:,}): the model is not supported by the data"
        )
    if info["n_failed"]:
        share = info["n_failed"] / replicates
        out.append(
            f"{info['n_failed']} of {replicates} bootstrap replicates failed and were left out"
            + (
                f" ({share:.0%}: the SD and the percentile interval rest on the other "
                f"{replicates - info['n_failed']} and understate the uncertainty)"
                if share > FAILED_SHARE_WARNING
                else ""
            )
        )
    if info["share_flagged"] > 0:
        out.append(
            f"{info['share_flagged']:.1%} of bootstrap replicates diverged under ML "
            f"(separation or non-convergence) and were refitted with a {info['penalty']} penalty"
            if info["penalty"] != "none"
            else f"{info['share_flagged']:.1%} of bootstrap replicates diverged under ML and were kept as they are"
        )
    return out


def _one(job: _Job, seed: np.random.SeedSequence) -> tuple[float, float, bool, bool]:
    """(robust N̂*, ML N̂*, flagged, failed) for one replicate."""
    rng = np.random.default_rng(seed)
    w = _draw(job, rng)
    if w.sum() == 0:
        return np.nan, np.nan, True, True
    if job.penalty is not None and separated(job.problem, w):
        # ML has no finite maximiser here: go straight to the penalised fit
        robust = fit_ml(job.problem, w, job.beta, penalty=job.penalty, max_iter=100, tol=1e-8)
        n_rob = population_size(job.problem, robust.beta, w)
        return n_rob, np.nan, True, not np.isfinite(n_rob)
    fit = fit_ml(job.problem, w, job.beta, max_iter=60, tol=1e-8)
    n_ml = population_size(job.problem, fit.beta, w) if np.all(np.isfinite(fit.beta)) else np.nan
    flagged = diverged(job.problem, w, fit.beta, fit.converged, n_ml, job.beta, fit.active)
    if not flagged or job.penalty is None:
        return n_ml, n_ml, flagged, not np.isfinite(n_ml)
    robust = fit_ml(job.problem, w, job.beta, penalty=job.penalty, max_iter=100, tol=1e-8)
    n_rob = population_size(job.problem, robust.beta, w)
    return n_rob, n_ml, True, not np.isfinite(n_rob)


def _chunk(job: _Job, seeds: list[np.random.SeedSequence], show: bool = False) -> np.ndarray:
    """Replicates of ``seeds``; ``show`` draws a progress bar (the inline run only: pool
    workers share the terminal and would draw over each other)."""
    todo = progress.bar(seeds, label="bootstrap replicates", unit="rep") if show else seeds
    with np.errstate(all="ignore"):  # diverging replicates are counted, not printed
        return np.array([_one(job, s) for s in todo], dtype=float).reshape(-1, 4)


def _parametric_grid(problem: CountProblem, beta: np.ndarray):
    """Grid of (pattern, k) cells and the untruncated count distribution per pattern."""
    fam = problem.family
    eta_p = problem.eta_patterns(beta)
    p_obs = np.real(fam.p_observed(eta_p))
    k_max = int(problem.y.max())
    while True:
        ks = np.arange(1, k_max + 1, dtype=float)
        pmf = fam.truncated_pmf(ks, eta_p)
        if np.all(1 - pmf.sum(axis=1) < 1e-10) or k_max >= 400:
            break
        k_max = int(k_max * 1.5) + 5
    pmf = pmf / pmf.sum(axis=1, keepdims=True)  # the remaining ≤ 1e-10 goes to the others
    probs = np.column_stack([1 - p_obs, p_obs[:, None] * pmf])
    probs = np.clip(probs, 0, None)
    probs /= probs.sum(axis=1, keepdims=True)
    P = problem.n_patterns
    grid = problem.with_cells(
        pattern=np.repeat(np.arange(P), k_max),
        y=np.tile(np.arange(1, k_max + 1, dtype=float), P),
        w=np.zeros(P * k_max),
    )
    return grid, probs


def run_bootstrap(
    problem: CountProblem,
    beta: np.ndarray,
    n_hat: float,
    *,
    kind: str = "parametric",
    replicates: int = 1000,
    seed: int | None = None,
    workers: int = 1,
    penalty: str | None = "firth",
) -> tuple[np.ndarray, dict[str, Any]]:
    """Bootstrap replicates of N̂ and a summary of how they went.

    Each replicate has its own seed spawned from ``seed``, so the replicates are the same
    whatever the number of ``workers`` (processes).
    """
    if kind not in BOOTSTRAP_TYPES:
        raise ConfigError(
            f"unknown bootstrap type {kind!r} (choose from {', '.join(BOOTSTRAP_TYPES)})",
            key="bootstrap_type",
        )
    if replicates < 2:
        raise ConfigError("need at least 2 bootstrap replicates", key="replicates")
    penalty = replicate_penalty(problem, penalty)
    n_obs = float(problem.w.sum())
    if kind != "parametric" and not np.allclose(problem.w, np.round(problem.w)):
        raise ConfigError(
            "resampling bootstraps need integer frequency weights", key="bootstrap_type"
        )
    if not np.isfinite(n_hat):
        raise ConfigError("N̂ is not finite: nothing to bootstrap", key="variance")
    seq = np.random.SeedSequence(seed)
    children = seq.spawn(replicates)
    if kind == "parametric":
        grid, probs = _parametric_grid(problem, beta)
        eta = problem.eta_patterns(beta)[problem.pattern]
        contrib = problem.w * problem.family.population_size_terms(problem.y, eta)
        pop = np.bincount(problem.pattern, weights=contrib, minlength=problem.n_patterns)
        job = _Job(
            grid, beta, kind, int(round(n_obs)), n_hat, pop / pop.sum(), probs, None, penalty
        )
    else:
        job = _Job(
            problem, beta, kind, int(round(n_obs)), n_hat, None, None, problem.w.copy(), penalty
        )

    workers = max(1, int(workers))
    if workers == 1 or replicates < 50:
        out = _chunk(job, children, show=True)
    else:
        parts = [children[i::workers] for i in range(workers)]
        with worker_pool(workers) as pool:
            results = list(
                progress.bar(
                    pool.map(_chunk, [job] * workers, parts),
                    total=workers,
                    label=f"bootstrap replicates ({workers} processes)",
                    unit="part",
                )
            )
        out = np.empty((replicates, 4))
        for i in range(workers):
            out[i::workers] = results[i]
    robust, ml, flagged, failed = (
        out[:, 0],
        out[:, 1],
        out[:, 2].astype(bool),
        out[:, 3].astype(bool),
    )
    finite_ml = ml[np.isfinite(ml)]
    info: dict[str, Any] = {
        "type": kind,
        "replicates": replicates,
        "seed": seed if seed is not None else int(seq.entropy),
        "workers": workers,
        "penalty": penalty or "none",
        "n_flagged": int(flagged.sum()),
        "share_flagged": float(flagged.mean()),
        "n_failed": int(failed.sum()),
        "mean": float(np.nanmean(robust)),
        "sd": float(np.nanstd(robust, ddof=1)),
    }
    if penalty is None and len(finite_ml) > 1:
        lo, hi = np.quantile(finite_ml, [0.025, 0.975])
        info["unstabilised_percentile_95"] = [float(lo), float(hi)]
        info["unstabilised_max"] = float(finite_ml.max())
    return robust, info
