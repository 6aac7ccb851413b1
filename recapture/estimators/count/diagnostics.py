"""What a fitted count model says beyond N̂: fitted frequencies and goodness of fit, N̂ by
stratum, leave-one-out influence, and per-pattern predictions.

Everything runs on the (pattern, count) cells of the :class:`CountProblem`, so aggregated
and individual input give the same numbers. :class:`FittedCountModel` keeps what these
need (the problem, β̂ and its covariance) so that a result can be asked for new strata or
predictions after the fit; it pickles.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse, stats

from recapture.errors import ConfigError
from recapture.estimators.count.fit import FitResult, fit_ml, population_size
from recapture.estimators.count.problem import OFFSET, CountProblem

#: above this many cells the leave-one-out change in N̂ is linearised instead of refitted
DFPOPSIZE_EXACT_MAX_CELLS = 400
#: grouped cells must have at least this expected frequency (the tail is pooled)
MIN_EXPECTED = 5.0

#: a column name: no dunder names, nothing that could be an expression
_NAME = r"(?!__)[A-Za-z_][A-Za-z0-9_.]*"


# ------------------------------------------------------------------------------ strata specs
def parse_strata(spec: str | Sequence[str] | None) -> list[list[str]] | None:
    """Strata as groups of columns: ``"~ sex:age_class + region"`` or ``["sex:age_class",
    "region"]`` → ``[["sex", "age_class"], ["region"]]``. Only column names joined by ':'
    and '+' are accepted; nothing is evaluated."""
    if spec is None:
        return None
    items = [spec] if isinstance(spec, str) else list(spec)
    groups: list[list[str]] = []
    for item in items:
        text = str(item).strip().removeprefix("~").strip()
        for term in text.split("+"):
            names = [t.strip() for t in term.split(":")]
            if not all(re.fullmatch(_NAME, n) for n in names):
                raise ConfigError(
                    f"strata {spec!r}: expected column names joined by ':' and '+', "
                    f"e.g. '~ sex:age_class + region' (got {term.strip()!r})",
                    key="strata",
                )
            if names not in groups:
                groups.append(names)
    return groups


def strata_columns(groups: list[list[str]] | None) -> list[str] | None:
    if groups is None:
        return None
    return list(dict.fromkeys(c for g in groups for c in g))


# ------------------------------------------------------------------------------ frequencies
def frequency_table(problem: CountProblem, fit: FitResult) -> tuple[list[dict], dict[str, Any]]:
    """Observed and fitted f_k, and the χ² and G tests of the grouped frequencies.

    The tail is pooled until every expected frequency is at least 5 (singleRcapture's
    ``marginalFreq`` grouping). df = groups − 1 − (number of linear predictors): with
    covariates the coefficients are estimated from the ungrouped data, so the statistic
    lies between χ²(groups − 1 − q) and χ²(groups − 1) (Chernoff & Lehmann 1954); one
    degree per distribution parameter is what singleRcapture's printed tests use, and it
    is the exact df without covariates.
    """
    fam = problem.family
    eta_p = problem.eta_patterns(fit.beta)
    pw = np.bincount(problem.pattern, weights=problem.w, minlength=problem.n_patterns)
    k_max = int(problem.y.max())  # at most max_count (checked in prepare)
    ks = np.arange(1, k_max + 1, dtype=float)
    # patterns × counts in blocks, so memory stays bounded whatever the largest count
    block = max(1, 4_000_000 // max(problem.n_patterns, 1))
    expected = np.concatenate(
        [pw @ fam.truncated_pmf(ks[i : i + block], eta_p) for i in range(0, k_max, block)]
    )
    observed = np.bincount(problem.y.astype(int), weights=problem.w, minlength=k_max + 1)[1:]
    n = pw.sum()
    rows = [
        {"k": int(k), "observed": float(o), "fitted": float(e)}
        for k, o, e in zip(ks, observed, expected, strict=True)
    ]
    rows.append({"k": f">{k_max}", "observed": 0.0, "fitted": float(max(n - expected.sum(), 0.0))})
    obs_g = list(observed)
    exp_g = list(expected[:-1]) + [n - expected[:-1].sum()]  # last group: ≥ k_max
    labels = [str(int(k)) for k in ks[:-1]] + [f"≥{k_max}"]
    while len(exp_g) > 1 and exp_g[-1] < MIN_EXPECTED:
        e, o = exp_g.pop(), obs_g.pop()
        labels.pop()
        exp_g[-1] += e
        obs_g[-1] += o
        labels[-1] = "≥" + labels[-1].lstrip("≥")
    obs_a, exp_a = np.array(obs_g), np.array(exp_g)
    chi2 = float(np.sum((obs_a - exp_a) ** 2 / exp_a))
    with np.errstate(divide="ignore", invalid="ignore"):
        g_terms = np.where(obs_a > 0, obs_a * np.log(obs_a / exp_a), 0.0)
    g_stat = float(2 * np.sum(g_terms))
    df = len(exp_a) - 1 - len(problem.X)
    gof = {
        "chi2": chi2,
        "g": g_stat,
        "df": df,
        "p_value": float(stats.chi2.sf(chi2, df)) if df > 0 else float("nan"),
        "g_p_value": float(stats.chi2.sf(g_stat, df)) if df > 0 else float("nan"),
        "groups": [
            {"k": lab, "observed": float(o), "fitted": float(e)}
            for lab, o, e in zip(labels, obs_a, exp_a, strict=True)
        ],
        "df_rule": "groups − 1 − number of linear predictors",
    }
    if df <= 0:
        gof["note"] = (
            "no degrees of freedom left after grouping the tail: the test is not available"
        )
    return rows, gof


# ------------------------------------------------------------------------------ strata
def strata_table(
    problem: CountProblem,
    beta: np.ndarray,
    active: np.ndarray,
    cov: np.ndarray,
    groups: list[list[str]],
    level: float = 0.95,
) -> list[dict[str, Any]]:
    """N̂ by level of each group of pattern variables (singleRcapture's stratifyPopsize).

    A stratum is a set of covariate patterns, so everything is summed per pattern first
    and per level with one sparse product; the levels of each group add up to N̂.
    """
    missing = [c for g in groups for c in g if c not in problem.patterns.columns]
    if missing:
        raise ConfigError(
            f"cannot stratify by {', '.join(missing)}: not a variable of the fit (name it in "
            "the formula or in strata= when the model is made)",
            key="strata",
        )
    z = stats.norm.ppf(0.5 + level / 2)
    cov_a = cov[np.ix_(active, active)]
    fam = problem.family
    P, w, pat = problem.n_patterns, problem.w, problem.pattern
    n_i, dn, var_i = fam.population_terms(problem.y, problem.eta_patterns(beta)[pat])
    n_p = np.bincount(pat, weights=w * n_i, minlength=P)
    v_p = np.bincount(pat, weights=w * var_i, minlength=P)
    o_p = np.bincount(pat, weights=w, minlength=P)
    d_p = [np.bincount(pat, weights=w * dn[:, j], minlength=P) for j in range(dn.shape[1])]
    weighted = np.hstack([d_p[j][:, None] * problem.X[j] for j in range(len(d_p))])
    out = []
    for group in groups:
        labels = problem.patterns[group].astype(str).agg(":".join, axis=1)
        codes, levels = pd.factorize(labels, sort=True)
        onehot = sparse.csr_matrix((np.ones(P), (codes, np.arange(P))), shape=(len(levels), P))
        grads = onehot @ weighted
        n_s, v_s, o_s = onehot @ n_p, onehot @ v_p, onehot @ o_p
        for i, lev in enumerate(levels):
            g = grads[i][active]
            var_s = v_s[i] + float(g @ cov_a @ g)
            se = float(np.sqrt(var_s)) if var_s >= 0 else float("nan")
            obs, n_hat = float(o_s[i]), float(n_s[i])
            row = {
                "variable": ":".join(group),
                "level": str(lev),
                "observed": obs,
                "population_size": n_hat,
                "se": se,
                "observed_share": obs / n_hat if n_hat > 0 else float("nan"),
                "normal_lower": max(n_hat - z * se, obs),  # N is at least the observed
                "normal_upper": n_hat + z * se,
            }
            f0 = n_hat - obs
            if f0 > 0 and np.isfinite(se):
                c = float(np.exp(z * np.sqrt(np.log1p(se**2 / f0**2))))
                row["lognormal_lower"], row["lognormal_upper"] = obs + f0 / c, obs + f0 * c
            out.append(row)
    return out


# ------------------------------------------------------------------------------ residuals
#: at most this many covariate patterns are kept in ``diagnostics["pattern_residuals"]``
MAX_RESIDUAL_PATTERNS = 500


def pattern_residuals(problem: CountProblem, beta: np.ndarray) -> list[dict[str, Any]]:
    """Per covariate pattern: persons, observed and fitted mean count (zero-truncated), and
    the Pearson residual of the mean, (ȳ − μ)/√(σ²/n) — the residual plot's data. Patterns
    with the most persons first, at most :data:`MAX_RESIDUAL_PATTERNS`."""
    fam = problem.family
    eta = problem.eta_patterns(beta)
    P, pat, w = problem.n_patterns, problem.pattern, problem.w
    mask = fam.fit_mask(problem.y)
    n_p = np.bincount(pat, weights=w, minlength=P)
    ybar = np.bincount(pat, weights=w * problem.y, minlength=P) / np.maximum(n_p, 1e-300)
    ks = np.arange(1, int(problem.y.max()) + 60, dtype=float)
    pmf = fam.truncated_pmf(ks, eta)
    mean = pmf @ ks
    var = pmf @ ks**2 - mean**2
    with np.errstate(divide="ignore", invalid="ignore"):
        resid = (ybar - mean) / np.sqrt(var / n_p)
    order = np.argsort(-n_p, kind="stable")[:MAX_RESIDUAL_PATTERNS]
    names = [c for c in problem.patterns.columns if not str(c).startswith("__")]
    rows = []
    for i in order:
        row = {c: _plain(problem.patterns[c].iloc[i]) for c in names}
        row.update(
            {
                "persons": float(n_p[i]),
                "persons_in_likelihood": float(np.sum(w[(pat == i) & mask])),
                "observed_mean": float(ybar[i]),
                "fitted_mean": float(mean[i]),
                "pearson_residual": float(resid[i]) if np.isfinite(resid[i]) else None,
            }
        )
        rows.append(row)
    return rows


def pearson_residual_summary(problem: CountProblem, beta: np.ndarray) -> dict[str, float]:
    """Min, quartiles, mean and max over persons of the Pearson residual
    (y − E[y | y > 0]) / √Var(y | y > 0) — the first block of singleRcapture's summary.
    Quantiles are R's default (type 7) over the persons, computed on the cells."""
    fam = problem.family
    eta = problem.eta_patterns(beta)
    ks = np.arange(1, int(problem.y.max()) + 60, dtype=float)
    pmf = fam.truncated_pmf(ks, eta)
    mean = pmf @ ks
    var = pmf @ ks**2 - mean**2
    with np.errstate(divide="ignore", invalid="ignore"):
        r = (problem.y - mean[problem.pattern]) / np.sqrt(var[problem.pattern])
    ok = np.isfinite(r) & (problem.w > 0)
    r, w = r[ok], problem.w[ok]
    if not len(r):
        return {}
    order = np.argsort(r, kind="stable")
    r, w = r[order], w[order]
    upper = np.cumsum(w)  # persons 0 … upper−1 of the expanded sorted list sit in cells ≤ i
    total = upper[-1]

    def at(position: float) -> float:
        return float(r[min(np.searchsorted(upper, position, side="right"), len(r) - 1)])

    def quantile(q: float) -> float:
        h = (total - 1) * q
        lo = np.floor(h)
        return at(lo) + (h - lo) * (at(lo + 1) - at(lo))

    return {
        "min": float(r[0]),
        "q1": quantile(0.25),
        "median": quantile(0.5),
        "mean": float(np.sum(w * r) / total),
        "q3": quantile(0.75),
        "max": float(r[-1]),
    }


# ------------------------------------------------------------------------------ dfpopsize
def dfpopsize(
    problem: CountProblem, fit: FitResult, n_hat: float, grad: np.ndarray, cov: np.ndarray
) -> dict[str, Any]:
    """Change in N̂ when one person of each (pattern, count) cell is left out: N̂ − N̂₍₋ᵢ₎
    (singleRcapture's ``dfpopsize``), by warm-started refits or, for many cells, the
    one-step approximation sᵢᵀ·Cov·∇N̂ + Nᵢ."""
    C = len(problem.w)
    fam = problem.family
    eta = problem.eta_patterns(fit.beta)[problem.pattern]
    n_i = fam.population_size_terms(problem.y, eta)
    if C <= DFPOPSIZE_EXACT_MAX_CELLS:
        method = "exact refit"
        values = np.empty(C)
        for c in range(C):
            w = problem.w.copy()
            w[c] -= min(1.0, w[c])
            refit = fit_ml(problem, w, fit.beta, max_iter=50, penalty=fit.penalty)
            values[c] = n_hat - population_size(problem, refit.beta, w)
    else:
        method = "one-step (linearised) approximation"
        a = fit.active
        _, g, _ = fam.evaluate(problem.y, eta)
        v = np.zeros(len(fit.beta))
        v[a] = cov[np.ix_(a, a)] @ grad[a]
        offs = np.cumsum([0, *problem.sizes])
        values = n_i.copy()
        for j in range(g.shape[1]):
            u = problem.X[j] @ v[offs[j] : offs[j + 1]]
            values += g[:, j] * u[problem.pattern]
    order = np.argsort(-np.abs(values))[:20]
    top = []
    for c in order:
        row = {
            k: _plain(v)
            for k, v in problem.patterns.iloc[problem.pattern[c]].items()
            if not str(k).startswith("__")
        }
        row.update(
            {
                "count": int(problem.y[c]),
                "weight": float(problem.w[c]),
                "dfpopsize": float(values[c]),
            }
        )
        top.append(row)
    return {
        "dfpopsize_method": method,
        "dfpopsize_max_abs": float(np.max(np.abs(values))),
        "dfpopsize_top": top,
        **({"dfpopsize_values": values.tolist()} if C <= 500 else {}),
    }


def _plain(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    return v if isinstance(v, str | int | float | bool) or v is None else str(v)


# ------------------------------------------------------------------------------ fitted model
class FittedCountModel:
    """The parts of a count fit that predictions and new strata need (picklable).

    ``scale`` multiplies every count of persons (N̂, strata): the allocation factor
    n / n_complete when persons with unknown covariates were fitted on the others.
    """

    def __init__(
        self, problem: CountProblem, fit: FitResult, cov: np.ndarray, offset: str | None = None
    ):
        self.problem = problem
        self.offset_column = offset
        self.beta = np.asarray(fit.beta, dtype=float)
        self.active = np.asarray(fit.active, dtype=bool)
        self.cov = np.asarray(cov, dtype=float)
        self.scale = 1.0

    def scaled(self, ratio: float) -> FittedCountModel:
        out = object.__new__(FittedCountModel)
        out.__dict__.update(self.__dict__)
        out.scale = self.scale * ratio
        return out

    def pattern_frame(self) -> pd.DataFrame:
        """One row per covariate pattern: its variables, the fitted parameters (λ, ω, α),
        P(seen), the observed persons and their Horvitz–Thompson contribution."""
        p = self.problem
        eta = p.eta_patterns(self.beta)
        frame = p.patterns.drop(columns=[OFFSET]).reset_index(drop=True).copy()
        frame = frame.loc[:, [c for c in frame.columns if not str(c).startswith("__")]]
        if np.any(p.offset != 0):
            frame["offset"] = p.offset
        for name, values in p.family.parameters(eta).items():
            frame[name] = values
        frame["p_seen"] = np.real(p.family.p_observed(eta))
        frame["observed"] = np.bincount(p.pattern, weights=p.w, minlength=p.n_patterns)
        n_i = p.family.population_size_terms(p.y, eta[p.pattern])
        frame["population_size"] = (
            np.bincount(p.pattern, weights=p.w * n_i, minlength=p.n_patterns) * self.scale
        )
        return frame

    def predict(self, data: Any = None) -> pd.DataFrame:
        """λ (and ω, α) and P(seen) per covariate pattern, or per row of ``data`` (joined on
        the pattern variables; rows whose pattern the fit did not see get NaN)."""
        table = self.pattern_frame()
        if data is None:
            return table
        from recapture.estimators.reading import read_frame

        rows = read_frame(data).to_pandas()
        keys = [c for c in self.problem.patterns.columns if not str(c).startswith("__")]
        absent = [c for c in keys if c not in rows.columns]
        if absent:
            raise ConfigError(f"predict: data lack {', '.join(absent)}", key="data")
        values = table.drop(columns=["observed", "population_size"])
        if "offset" in values.columns:
            values = values.drop(columns=["offset"])
        left = rows[keys].astype(str)
        right = values.assign(**{k: values[k].astype(str) for k in keys})
        if self.offset_column:  # patterns differ by offset too
            left[OFFSET] = rows[self.offset_column].astype(float).to_numpy()
            right[OFFSET] = self.problem.offset
            keys = [*keys, OFFSET]
        merged = left.merge(right, on=keys, how="left")
        return pd.concat([rows.reset_index(drop=True), merged.drop(columns=keys)], axis=1)

    def stratify(self, spec: str | Sequence[str], level: float = 0.95) -> list[dict[str, Any]]:
        groups = parse_strata(spec) or []
        rows = strata_table(self.problem, self.beta, self.active, self.cov, groups, level)
        if self.scale != 1.0:
            from recapture.estimators.covariates import scale_stratum

            rows = [scale_stratum(r, self.scale) for r in rows]
        return rows
