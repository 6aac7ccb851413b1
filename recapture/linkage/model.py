"""Fellegi–Sunter model: m, u and λ by EM on the counts of distinct comparison patterns.

A candidate pair is summarised by its vector of comparison levels γ. Millions of pairs share
a few thousand distinct vectors, so EM runs on (pattern, count) rows, not on pairs: each
iteration costs O(patterns × comparisons) whatever the number of pairs.

Model: P(γ | match) = Π_k m_k(γ_k), P(γ | non-match) = Π_k u_k(γ_k) over the comparisons
whose level is observed; a missing level (-1) contributes m/u = 1 (neutral). The match
weight of a pair is log2(λ/(1−λ)) + Σ_k log2(m_k/u_k) + term-frequency bits, and its match
probability is 1 / (1 + 2^−weight).

Two estimation modes (``em_mode``):
  * ``fixed_u`` (default): u from random record pairs (almost all non-matches) is kept
    fixed; m and λ, the match rate among *all* record pairs, are estimated by EM with the
    pairs outside the candidate set counted as non-matches. The weights are then
    population likelihood ratios and the prior the population prior, so the posterior of a
    candidate pair does not depend on which blocking rules let it through.
  * ``candidates``: m, u and λ are all estimated by EM among the candidate pairs (u started
    from random pairs), as classic unsupervised Fellegi–Sunter tools do.
On FEBRL and on simulated registration worlds ``fixed_u`` linked at least as well and was
better calibrated (docs/linkage.md).

Aliases. A person who gives another identity agrees with their other registrations on
nothing the identity carries — names, birth date, nationality look like a random pair's —
but still on what is tied to the person: a V-number found by fingerprints, sex. Under
conditional independence such a pair scores as a certain non-match however strongly the
V-number agrees. With ``alias_mask`` (the comparisons kept under an alias) the match class
is a mixture: with probability 1 − π the usual Π m_k, with probability π (the alias share,
estimated by EM) Π_{kept} m_k · Π_{other} u_k. The likelihood ratio of a pattern becomes
(1 − π)·Π m/u + π·Π_{kept} m/u: nothing changes where the identity agrees, and a pair whose
identity fields all disagree keeps the evidence of its V-number instead of losing it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa

from recapture import progress
from recapture.linkage.settings import Comparison

LOG2 = np.log(2.0)


@dataclass
class Patterns:
    """Distinct comparison vectors (rows of ``levels``), their counts, and each pair's row."""

    levels: np.ndarray  # (n_patterns, n_comparisons) int8, -1 missing
    counts: np.ndarray  # (n_patterns,) float64
    index: np.ndarray  # (n_pairs,) pattern row of each pair

    @classmethod
    def from_gammas(cls, gammas: list[np.ndarray], n_levels: list[int]) -> Patterns:
        code = np.zeros(gammas[0].shape, dtype=np.int64)
        radix = 1
        radices = []
        for g, n in zip(gammas, n_levels, strict=True):
            code += (g.astype(np.int64) + 1) * radix
            radices.append(radix)
            radix *= n + 1
        index, uniq = pd.factorize(code)  # hash-based: no sort of millions of codes
        counts = np.bincount(index, minlength=uniq.size)
        levels = np.empty((uniq.size, len(gammas)), dtype=np.int8)
        for k, (r, n) in enumerate(zip(radices, n_levels, strict=True)):
            levels[:, k] = (uniq // r) % (n + 1) - 1
        return cls(levels=levels, counts=counts.astype(np.float64), index=index.ravel())


def level_probabilities(
    levels: np.ndarray, weights: np.ndarray, n_levels: int, smoothing: float
) -> np.ndarray:
    """Smoothed distribution of one comparison's observed levels under pattern weights."""
    observed = levels >= 0
    totals = np.bincount(levels[observed], weights=weights[observed], minlength=n_levels)
    return (totals + smoothing) / (totals.sum() + smoothing * n_levels)


def log_ratio(levels: np.ndarray, m: list[np.ndarray], u: list[np.ndarray]) -> np.ndarray:
    """Σ_k ln(m_k/u_k) per pattern, missing levels contributing 0."""
    out = np.zeros(levels.shape[0])
    for k in range(levels.shape[1]):
        lv = levels[:, k]
        obs = lv >= 0
        ratio = np.log(m[k]) - np.log(u[k])
        out[obs] += ratio[lv[obs]]
    return out


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def mixture_log_ratio(full: np.ndarray, kept: np.ndarray, alias_share: float) -> np.ndarray:
    """ln[(1 − π)·e^full + π·e^kept]: the match-class log ratio with the alias component."""
    if alias_share <= 0.0:
        return full
    return np.logaddexp(np.log1p(-alias_share) + full, np.log(alias_share) + kept)


def kept_log_ratio(
    levels: np.ndarray, m: list[np.ndarray], u: list[np.ndarray], alias_mask
) -> np.ndarray:
    """Σ ln(m_k/u_k) over the comparisons kept under an alias (0 without a mask)."""
    if alias_mask is None or not np.any(alias_mask):
        return np.zeros(levels.shape[0])
    idx = np.flatnonzero(alias_mask)
    return log_ratio(levels[:, idx], [m[k] for k in idx], [u[k] for k in idx])


@dataclass
class FellegiSunterModel:
    """Fitted parameters: m and u per comparison level, λ, and the EM trace."""

    comparisons: list[Comparison]
    m: list[np.ndarray]
    u: list[np.ndarray]
    lam: float
    u_random: list[np.ndarray] = field(default_factory=list)
    trace: list[dict] = field(default_factory=list)
    converged: bool = False
    mode: str = "candidates"
    #: λ per source pair (``prior_by_source_pair``): by group index, and by "a–b" label.
    group_lams: list[float] | None = None
    lam_by_source_pair: dict[str, float] = field(default_factory=dict)
    #: Term-frequency bits per source pair (``tf_across_sources``): per comparison, a
    #: (group, level) table added to the pair's TF bits; and by "a–b" label for the report.
    group_tf_bits: list[np.ndarray] | None = None
    tf_bits_by_source_pair: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    #: Comparisons kept under an alias (bool per comparison) and the alias share π.
    alias_mask: np.ndarray | None = None
    alias_share: float = 0.0

    @property
    def prior_log2_odds(self) -> float:
        return float(np.log2(self.lam / (1.0 - self.lam)))

    def log_ratio(self, levels: np.ndarray) -> np.ndarray:
        """ln P(γ | match)/P(γ | non-match) per pattern (alias mixture included)."""
        full = log_ratio(levels, self.m, self.u)
        return mixture_log_ratio(
            full, kept_log_ratio(levels, self.m, self.u, self.alias_mask), self.alias_share
        )

    def pattern_weights(self, levels: np.ndarray) -> np.ndarray:
        """Match weight (bits) of each comparison pattern, without term-frequency bits."""
        return self.prior_log2_odds + self.log_ratio(levels) / LOG2

    def pair_weights(self, patterns: Patterns, tf_bits: list[np.ndarray]) -> np.ndarray:
        """Match weight (bits) of each pair: pattern weight plus term-frequency bits.

        The term-frequency bits refine the evidence of agreeing names, so they belong to
        the usual match component only; under an alias the names agree by chance.
        """
        # per pattern first, then gathered, and updated in place: millions of pairs, and
        # each temporary the size of the pairs costs as much as the arithmetic
        full = (log_ratio(patterns.levels, self.m, self.u) / LOG2)[patterns.index]
        for bits in tf_bits:
            full += bits
        if self.alias_share > 0.0:
            kept = kept_log_ratio(patterns.levels, self.m, self.u, self.alias_mask) / LOG2
            full += np.log2(1.0 - self.alias_share)
            np.logaddexp2(full, (np.log2(self.alias_share) + kept)[patterns.index], out=full)
        full += self.prior_log2_odds
        return full

    def to_dict(self) -> dict:
        out = {
            "em_mode": self.mode,
            "lambda": self.lam,
            "lambda_by_source_pair": self.lam_by_source_pair,
            "tf_bits_by_source_pair": self.tf_bits_by_source_pair,
            "prior_match_weight": self.prior_log2_odds,
            "alias_share": self.alias_share,
            "alias_comparisons": [
                c.name for c, kept in zip(self.comparisons, self.alias_mask, strict=True) if kept
            ]
            if self.alias_mask is not None
            else [],
            "converged": self.converged,
            "comparisons": [],
            "em_trace": self.trace,
        }
        for k, comp in enumerate(self.comparisons):
            levels = []
            for lv, name in enumerate(comp.level_names()):
                levels.append(
                    {
                        "gamma": lv,
                        "level": name,
                        "m": float(self.m[k][lv]),
                        "u": float(self.u[k][lv]),
                        "u_random_pairs": float(self.u_random[k][lv]) if self.u_random else None,
                        "match_weight": float(np.log2(self.m[k][lv] / self.u[k][lv])),
                    }
                )
            out["comparisons"].append(
                {"name": comp.name, "kind": comp.kind, "tf": comp.tf, "levels": levels}
            )
        return out


def initial_m(n_levels: int) -> np.ndarray:
    """A starting m putting most mass on the top levels (EM is insensitive to the details)."""
    w = 2.0 ** np.arange(n_levels) * 1.0
    w[-1] *= 8
    return w / w.sum()


def run_em(
    patterns: Patterns,
    comparisons: list[Comparison],
    m: list[np.ndarray],
    u: list[np.ndarray],
    lam: float,
    *,
    fix_u: bool,
    fix_m: bool = False,
    extra_nonmatches: float = 0.0,
    max_iter: int = 200,
    tol: float = 1e-6,
    smoothing: float = 0.5,
    alias_mask: np.ndarray | None = None,
    alias_share: float = 0.0,
    fix_alias_share: bool = False,
) -> tuple[list[np.ndarray], list[np.ndarray], float, list[dict], bool]:
    """EM over pattern counts. ``extra_nonmatches`` are pairs outside the candidate set,
    counted as certain non-matches (for λ over all pairs in ``fixed_u`` mode).

    With ``alias_mask`` and a starting ``alias_share`` > 0 the match class is the alias
    mixture (module docstring): π is estimated too (unless ``fix_alias_share``), the m of
    the kept comparisons from all matches and the m of the others from the matches under
    the person's own identity.
    The alias share is returned in the last trace entry (``alias_share``).
    """
    levels, counts = patterns.levels, patterns.counts
    n_levels = [c.n_levels for c in comparisons]
    total = counts.sum() + extra_nonmatches
    trace = []
    converged = False
    m = [x.copy() for x in m]
    u = [x.copy() for x in u]
    mixture = alias_mask is not None and bool(np.any(alias_mask)) and alias_share > 0.0
    pi = alias_share if mixture else 0.0
    em_bar = progress.bar(total=max_iter, label="EM iterations", unit="iter")
    for it in range(1, max_iter + 1):
        em_bar.update()
        full = log_ratio(levels, m, u)
        ratio = (
            mixture_log_ratio(full, kept_log_ratio(levels, m, u, alias_mask), pi)
            if mixture
            else full
        )
        logit = np.log(lam) - np.log1p(-lam) + ratio
        post = _sigmoid(logit)
        # log-likelihood of the mixture over the candidate patterns (u-part as normaliser)
        lu = np.zeros(levels.shape[0])
        for k in range(levels.shape[1]):
            lv = levels[:, k]
            obs = lv >= 0
            lu[obs] += np.log(u[k][lv[obs]])
        loglik = float(np.sum(counts * (lu + np.log1p(-lam) + np.logaddexp(0.0, logit))))
        wm = counts * post
        wu = counts * (1.0 - post)
        wm_own = wm
        new_pi = pi
        if mixture:
            own_share = np.exp(np.log1p(-pi) + full - ratio)  # P(own identity | match, γ)
            wm_own = wm * own_share
            if not fix_alias_share:
                new_pi = float(np.clip(1.0 - wm_own.sum() / max(wm.sum(), 1e-300), 1e-6, 0.5))
        new_m = (
            m
            if fix_m
            else [
                level_probabilities(
                    levels[:, k],
                    wm if (mixture and alias_mask[k]) else wm_own,
                    n_levels[k],
                    smoothing,
                )
                for k in range(len(m))
            ]
        )
        new_u = (
            u
            if fix_u
            else [
                level_probabilities(levels[:, k], wu, n_levels[k], smoothing) for k in range(len(u))
            ]
        )
        new_lam = float(np.clip(wm.sum() / total, 1e-12, 1 - 1e-9))
        change = max(
            max(float(np.max(np.abs(a - b))) for a, b in zip(new_m, m, strict=True)),
            max(float(np.max(np.abs(a - b))) for a, b in zip(new_u, u, strict=True)),
            abs(new_lam - lam) / max(lam, 1e-12) * 1e-3,
            abs(new_pi - pi),
        )
        m, u, lam, pi = new_m, new_u, new_lam, new_pi
        entry = {
            "iteration": it,
            "lambda": lam,
            "log_likelihood": loglik,
            "max_change": change,
            # per comparison, per level (gamma order): the path EM took, for the explorer
            "m": [[float(x) for x in mk] for mk in m],
            "u": [[float(x) for x in uk] for uk in u],
        }
        if mixture:
            entry["alias_share"] = pi
        trace.append(entry)
        if change < tol:
            converged = True
            break
    em_bar.close()
    return m, u, lam, trace, converged


def estimate_lambda(
    levels: np.ndarray,
    counts: np.ndarray,
    model: FellegiSunterModel,
    total_pairs: float,
    max_iter: int = 200,
    tol: float = 1e-6,
) -> float:
    """λ among ``total_pairs`` record pairs by EM with m and u fixed; ``counts`` are the
    candidate pairs per pattern, the other pairs count as non-matches."""
    ratio = model.log_ratio(levels)
    lam = model.lam
    if counts.sum() == 0 or total_pairs <= 0:
        return lam
    for _ in range(max_iter):
        post = _sigmoid(np.log(lam) - np.log1p(-lam) + ratio)
        new = float(np.clip(np.sum(counts * post) / total_pairs, 1e-12, 1 - 1e-9))
        done = abs(new - lam) <= tol * lam
        lam = new
        if done:
            break
    return lam


def u_from_random_pairs(
    gammas: dict[str, np.ndarray],
    comparisons: list[Comparison],
    smoothing: float,
    weights: np.ndarray | None = None,
) -> list[np.ndarray]:
    """u per level from random record pairs, which are almost all non-matches; ``weights``
    (each pair's non-match probability) leave out the few matches among them."""
    out = []
    for comp in comparisons:
        g = gammas[comp.name]
        w = np.ones(g.shape) if weights is None else weights
        out.append(level_probabilities(g, w, comp.n_levels, smoothing))
    return out


def expected_quality(prob: np.ndarray, thresholds: np.ndarray) -> list[dict]:
    """Model-expected precision, recall and F1 of linking pairs with probability ≥ t.

    Treats the probabilities as calibrated: expected true links Σ_{p≥t} p; recall is among
    the matches in the candidate set (matches lost by blocking are not visible here).
    One sort and one vectorised search for all thresholds (tens of millions of pairs).
    """
    ascending = np.sort(np.asarray(prob, dtype=float))
    csum = np.cumsum(ascending)
    total = float(csum[-1]) if csum.size else 0.0
    t = np.asarray(thresholds, dtype=float)
    below = np.searchsorted(ascending, t, side="left")  # pairs with p < t
    links = ascending.size - below
    tp = (
        total - np.where(below > 0, csum[np.maximum(below - 1, 0)], 0.0)
        if csum.size
        else np.zeros(t.size)
    )
    out = []
    for threshold, n, tpi in zip(t, links, tp, strict=True):
        n, tpi = int(n), float(tpi)
        out.append(
            {
                "threshold": float(threshold),
                "links": n,
                "expected_precision": tpi / n if n else 1.0,
                "expected_recall": tpi / total if total > 0 else 1.0,
                "expected_f1": 2 * tpi / (n + total) if (n + total) > 0 else 1.0,
            }
        )
    return out


def match_threshold(prob: np.ndarray, setting: float | str) -> float:
    """The link threshold a run uses: ``setting`` itself, or for "auto" the threshold of
    maximum model-expected F1 over the run's probabilities (every engine decides alike)."""
    return best_expected_f1_threshold(prob) if setting == "auto" else float(setting)


def best_expected_f1_threshold(prob: np.ndarray) -> float:
    """The probability threshold maximising model-expected F1 (no truth needed)."""
    if prob.size == 0:
        return 0.5
    order = np.sort(prob)[::-1]
    csum = np.cumsum(order)
    total = csum[-1]
    n = np.arange(1, order.size + 1)
    f1 = 2 * csum / (n + total)
    best = int(np.argmax(f1))
    return float(np.clip(order[best], 0.01, 0.99))


#: Optional batch column of :func:`score_batch`: index into ``model.group_lams`` (the prior
#: of the pair's source pair).
PRIOR_GROUP = "prior_group"


def _group_tf_bits(tables: list[np.ndarray], gammas: list[np.ndarray], group) -> np.ndarray:
    """Σ_k tables[k][group, γ_k] per pair (observed levels only)."""
    out = np.zeros(group.shape[0], dtype=np.float64)
    for table, gamma in zip(tables, gammas, strict=True):
        if not table.any():
            continue
        obs = gamma >= 0
        out[obs] += table[group[obs], gamma[obs]]
    return out


def score_batch(model: FellegiSunterModel, batch: pa.RecordBatch) -> pa.RecordBatch:
    """Match weight (bits) and probability of each pair of a batch of comparison levels.

    ``batch`` is what :func:`recapture.linkage.comparisons.compare_batch` returns (columns
    ``gamma_<comparison>`` and ``tf_*``, the TF bits summed in column order), optionally with
    ``prior_group`` (index into ``model.group_lams``: the prior of the pair's source pair).
    A pure function of the fitted model and the batch, like ``compare_batch``.
    """
    names = batch.schema.names
    gammas = [
        batch.column(f"gamma_{c.name}").to_numpy(zero_copy_only=False) for c in model.comparisons
    ]
    tf_bits = [batch.column(n).to_numpy(zero_copy_only=False) for n in names if n.startswith("tf_")]
    group = (
        batch.column(PRIOR_GROUP).to_numpy(zero_copy_only=False) if PRIOR_GROUP in names else None
    )
    if group is not None and model.group_tf_bits is not None:
        tf_bits.append(_group_tf_bits(model.group_tf_bits, gammas, group))
    patterns = Patterns.from_gammas(gammas, [c.n_levels for c in model.comparisons])
    weight = model.pair_weights(patterns, tf_bits)
    if group is not None and model.group_lams is not None:
        lams = np.asarray(model.group_lams)
        weight += (np.log2(lams / (1.0 - lams)) - model.prior_log2_odds)[group]
    prob = np.clip(weight, -60, 60)  # 1 / (1 + 2^-w), in place
    np.negative(prob, out=prob)
    np.exp2(prob, out=prob)
    prob += 1.0
    np.divide(1.0, prob, out=prob)
    return pa.RecordBatch.from_pydict(
        {
            "match_weight": pa.array(weight, type=pa.float64()),
            "match_probability": pa.array(prob, type=pa.float64()),
        }
    )
