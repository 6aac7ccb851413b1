"""Training the Fellegi–Sunter model: one function for every engine.

:func:`train` is what the local engine (:func:`recapture.linkage.engine.link_records`) and
the Spark engine (:mod:`recapture.linkage.spark`) call once the candidate pairs are
compared: u from random pairs, m (and u, λ) by EM on the counts of the candidate pairs'
comparison patterns, then a prior per pair of sources. It sees the candidate pairs only
through their :class:`~recapture.linkage.model.Patterns` (and the counts of each pattern
per pair of sources), so an engine may count the patterns wherever the pairs live.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np

from recapture.errors import InputError
from recapture.linkage.blocking import BlockingResult, block
from recapture.linkage.comparisons import PreparedRecords, compare_pairs
from recapture.linkage.kinds import kind_of
from recapture.linkage.model import (
    FellegiSunterModel,
    Patterns,
    estimate_lambda,
    initial_m,
    level_probabilities,
    run_em,
    u_from_random_pairs,
)
from recapture.linkage.settings import BlockingRule, LinkageSettings

#: ``comparer(i, j)`` → (gammas, TF bits, swapped) of pairs (i, j): :func:`compare_pairs`.
Comparer = Callable[[np.ndarray, np.ndarray], tuple[dict, dict, np.ndarray]]

#: ``is_candidate(i, j)`` → bool per pair: whether the pairs (i, j) are candidate pairs.
CandidateTest = Callable[[np.ndarray, np.ndarray], np.ndarray]

#: Pairs of a training session beyond which a seeded random sample of them is used.
TRAINING_PAIRS_MAX = 1_000_000


def random_pairs(n: int, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Uniform random record pairs i < j (all pairs when there are fewer than ``size``)."""
    total = n * (n - 1) // 2
    if total <= size:
        i, j = np.triu_indices(n, k=1)
        return i.astype(np.int32), j.astype(np.int32)
    a = rng.integers(0, n, size=int(size * 1.01) + 10)
    b = rng.integers(0, n, size=a.size)
    ok = a != b
    a, b = a[ok][:size], b[ok][:size]
    return np.minimum(a, b).astype(np.int32), np.maximum(a, b).astype(np.int32)


def fit_model(
    prep: PreparedRecords,
    cand_gammas: dict[str, np.ndarray],
    patterns: Patterns,
    settings: LinkageSettings,
    rng: np.random.Generator,
    labelled_gammas: tuple[dict[str, np.ndarray], np.ndarray] | None = None,
    n_pairs_all: float | None = None,
    candidate_codes: np.ndarray | CandidateTest | None = None,
    blocker: Callable[[BlockingRule], BlockingResult] | None = None,
    comparer: Comparer | None = None,
) -> FellegiSunterModel:
    """u from random pairs, then m (and u, λ) by EM on the candidate pattern counts.

    ``candidate_codes`` (sorted i·n + j of the candidate pairs, or a function telling which
    pairs (i, j) are candidates) let the refit of u count the candidate pairs exactly (see
    :func:`u_over_all_pairs`).
    """
    comps = settings.comparisons
    ri, rj = random_pairs(prep.n, settings.u_sample_pairs, rng)
    rgam, rtf, _ = (comparer or partial(compare_pairs, prep))(ri, rj)
    _check_identifiable(rgam, comps)
    u_random = u_from_random_pairs(rgam, comps, settings.smoothing)
    m0 = [initial_m(c.n_levels) for c in comps]
    fixed_m = False
    if labelled_gammas is not None:
        lg, is_match = labelled_gammas
        if is_match.sum() > 0:
            m0 = [
                level_probabilities(
                    lg[c.name][is_match],
                    np.ones(int(is_match.sum())),
                    c.n_levels,
                    settings.smoothing,
                )
                for c in comps
            ]
            fixed_m = True
    if n_pairs_all is None:
        n_pairs_all = prep.n * (prep.n - 1) / 2
    u_fixed = u_random
    alias_mask = (
        np.array([c.name in settings.alias_comparisons for c in comps])
        if settings.alias_comparisons
        else None
    )
    alias = dict(
        alias_mask=alias_mask, alias_share=settings.alias_share if alias_mask is not None else 0.0
    )
    em_alias = dict(alias, fix_alias_share=not settings.estimate_alias_share)
    em = dict(max_iter=settings.em_max_iter, tol=settings.em_tol, smoothing=settings.smoothing)
    extra = max(n_pairs_all - patterns.counts.sum(), 0.0)
    lam0 = min(0.5, max(1e-9, prep.n / max(n_pairs_all, 1.0) * 0.1))
    trace: list[dict] = []
    if settings.em_mode == "sessions" and not fixed_m:
        m0, u_sess, trace = train_sessions(prep, settings, m0, u_random, blocker, comparer)
        fixed_m = True
        if settings.session_u:
            u_fixed = [
                u_sess[k] if c.name in settings.session_u else u_random[k]
                for k, c in enumerate(comps)
            ]
    if settings.em_mode == "fixed_u" or (settings.em_mode == "sessions" and settings.session_u):
        m, u, lam, tr, conv = run_em(
            patterns,
            comps,
            m0,
            u_fixed,
            lam0,
            fix_u=True,
            fix_m=fixed_m,
            extra_nonmatches=extra,
            **em,
            **em_alias,
        )
        if candidate_codes is None:
            outside = None
        elif callable(candidate_codes):
            outside = ~candidate_codes(ri, rj)
        else:
            outside = ~_is_candidate(ri, rj, prep.n, candidate_codes)
        for _ in range(settings.u_refits if settings.u_without_matches else 0):
            alias["alias_share"] = (
                tr[-1].get("alias_share", alias["alias_share"]) if tr else alias["alias_share"]
            )
            em_alias["alias_share"] = alias["alias_share"]
            if outside is not None:
                model = FellegiSunterModel(comparisons=comps, m=m, u=u, lam=lam, **alias)
                post_patterns = 1.0 / (
                    1.0 + np.exp2(-np.clip(model.pattern_weights(patterns.levels), -60, 60))
                )
                u_clean = u_over_all_pairs(
                    patterns,
                    post_patterns,
                    {c.name: rgam[c.name][outside] for c in comps},
                    comps,
                    n_pairs_all,
                    settings.smoothing,
                )
            else:
                post = _random_pair_posteriors(rgam, rtf, comps, m, u, lam, **alias)
                u_clean = u_from_random_pairs(rgam, comps, settings.smoothing, weights=1.0 - post)
            change = max(
                float(np.max(np.abs(np.log(a) - np.log(b))))
                for a, b in zip(u_clean, u_random, strict=True)
            )
            u_fixed = [
                u_clean[k] if c.name not in settings.session_u else u_fixed[k]
                for k, c in enumerate(comps)
            ]
            u_random = u_clean
            trace += [dict(t, session="all candidate pairs (u from random pairs)") for t in tr]
            m, u, lam, tr, conv = run_em(
                patterns,
                comps,
                m if fixed_m else m0,
                u_fixed,
                lam,
                fix_u=True,
                fix_m=fixed_m,
                extra_nonmatches=extra,
                **em,
                **em_alias,
            )
            if change < 0.01:
                break
    else:
        m, u, lam, tr, conv = run_em(
            patterns, comps, m0, u_random, 0.1, fix_u=False, fix_m=fixed_m, **em, **em_alias
        )
    if tr:
        alias["alias_share"] = tr[-1].get("alias_share", alias["alias_share"])
    trace = trace + [dict(t, session="all candidate pairs") for t in tr]
    return FellegiSunterModel(
        comparisons=comps,
        m=m,
        u=u,
        lam=lam,
        u_random=u_random,
        trace=trace,
        converged=conv,
        mode=settings.em_mode,
        **alias,
    )


#: Largest share of random record pairs agreeing on everything for which u is estimable.
MAX_IDENTICAL_RANDOM_SHARE = 0.5


def _check_identifiable(rgam: dict[str, np.ndarray], comps) -> None:
    """Refuse to fit when random record pairs are mostly identical.

    u (how often non-matching records agree) is read off random pairs, which is right when
    the records hold many people, so that random pairs are almost all non-matches. When
    most random pairs agree on every comparison (e.g. 60 copies of one registration), the
    matches and the non-matches look alike, EM drives λ to its floor and every record
    became its own person; nothing in the records can tell a person's repeated
    registrations from namesakes, so the run stops and says so.
    """
    n = next(iter(rgam.values())).size if rgam else 0
    if n == 0:
        return
    observed = np.zeros(n, dtype=bool)
    same = np.ones(n, dtype=bool)
    for c in comps:
        g = rgam[c.name]
        observed |= g >= 0
        same &= (g < 0) | (g == c.n_levels - 1)
    share = float(np.mean(same & observed))
    if share > MAX_IDENTICAL_RANDOM_SHARE:
        raise InputError(
            f"cannot fit the linkage model: {share:.0%} of random record pairs agree on every "
            "comparison, so the records hold too few distinct people to learn how often "
            "different people agree (u); link them together with more records"
        )


def _is_candidate(
    ri: np.ndarray, rj: np.ndarray, n: int, candidate_codes: np.ndarray
) -> np.ndarray:
    code = ri.astype(np.int64) * n + rj.astype(np.int64)
    if candidate_codes.size == 0:
        return np.zeros(code.size, dtype=bool)
    pos = np.minimum(np.searchsorted(candidate_codes, code), candidate_codes.size - 1)
    return candidate_codes[pos] == code


def u_over_all_pairs(
    patterns: Patterns,
    post_patterns: np.ndarray,
    outside_gammas: dict[str, np.ndarray],
    comps,
    n_pairs_all: float,
    smoothing: float,
) -> list[np.ndarray]:
    """u per level over all record pairs: the candidate pairs counted exactly (weighted by
    their non-match probability), the pairs outside the candidate set from the random pairs
    that fall outside it (scaled up to their number).

    Random pairs alone cannot see a level that a blocking rule gathers into the candidate
    set, such as an agreeing V-number: a few hundred thousand random pairs hold a handful
    of them, so u of that level was set by the smoothing pseudo-count, not by the data, and
    an agreeing V-number weighed 17 bits where the registrations support about 25.
    """
    wu = patterns.counts * (1.0 - post_patterns)
    n_outside = max(n_pairs_all - patterns.counts.sum(), 0.0)
    out = []
    for k, comp in enumerate(comps):
        lv = patterns.levels[:, k]
        obs = lv >= 0
        inside = np.bincount(lv[obs], weights=wu[obs], minlength=comp.n_levels)
        g = outside_gammas[comp.name]
        sample = np.bincount(g[g >= 0], minlength=comp.n_levels).astype(np.float64)
        scale = n_outside / g.size if g.size else 0.0
        totals = inside + sample * scale
        out.append((totals + smoothing) / (totals.sum() + smoothing * comp.n_levels))
    return out


def _random_pair_posteriors(
    rgam, rtf, comps, m, u, lam, alias_mask=None, alias_share=0.0
) -> np.ndarray:
    """Match probability of each random pair under a fitted model.

    A random sample of all pairs holds λ·n matches. Where u is tiny, as for an identifier
    that two people never share, those few matches are most of the pairs agreeing and
    make u several times too large (a V-number match then counted for 13 bits, not 17);
    weighting the random pairs by 1 − p removes them.
    """
    pats = Patterns.from_gammas([rgam[c.name] for c in comps], [c.n_levels for c in comps])
    model = FellegiSunterModel(
        comparisons=comps, m=m, u=u, lam=lam, alias_mask=alias_mask, alias_share=alias_share
    )
    weight = model.pair_weights(pats, list(rtf.values()))
    return 1.0 / (1.0 + np.exp2(-np.clip(weight, -60, 60)))


def train_sessions(
    prep: PreparedRecords,
    settings: LinkageSettings,
    m0,
    u_random,
    blocker: Callable[[BlockingRule], BlockingResult] | None = None,
    comparer: Comparer | None = None,
) -> tuple[list[np.ndarray], list[np.ndarray], list[dict]]:
    """m per comparison: the mean of its EM estimates over the sessions that do not fix it.

    ``blocker(rule)`` gives a session's pairs (default: :func:`block` on ``prep.frame``); an
    engine whose pairs live elsewhere passes its own, which must return the same pairs in
    the same (i, j) order for the sample of a large session to be the same.
    """
    comps = settings.comparisons
    recs = prep.frame
    sums = [np.zeros(c.n_levels) for c in comps]
    usums = [np.zeros(c.n_levels) for c in comps]
    counts = np.zeros(len(comps))
    trace: list[dict] = []
    for sess in settings.training_sessions:
        rule = BlockingRule(sess.name, sess.keys)
        blocks = blocker(rule) if blocker else block(recs, [rule], settings.max_block_size)
        if blocks.n_pairs == 0:
            continue
        si, sj = blocks.i, blocks.j
        if si.size > TRAINING_PAIRS_MAX:  # EM needs pattern frequencies, not every pair
            keep = np.sort(
                np.random.default_rng(settings.seed).choice(
                    si.size, TRAINING_PAIRS_MAX, replace=False
                )
            )
            si, sj = si[keep], sj[keep]
        gammas, _, _ = (comparer or partial(compare_pairs, prep))(si, sj)
        gl = [
            gammas[c.name] if c.name not in sess.fixes else np.full(si.size, -1, np.int8)
            for c in comps
        ]
        pats = Patterns.from_gammas(gl, [c.n_levels for c in comps])
        m, u, lam, tr, conv = run_em(
            pats,
            comps,
            m0,
            u_random,
            0.1,
            fix_u=False,
            max_iter=settings.em_max_iter,
            tol=settings.em_tol,
            smoothing=settings.smoothing,
        )
        trace += [dict(t, session=sess.name, pairs=blocks.n_pairs) for t in tr]
        for k, c in enumerate(comps):
            if c.name not in sess.fixes:
                sums[k] += m[k]
                usums[k] += u[k]
                counts[k] += 1
    m_out = [s / n if n else m0[k] for k, (s, n) in enumerate(zip(sums, counts, strict=True))]
    u_out = [
        s / n if n else u_random[k] for k, (s, n) in enumerate(zip(usums, counts, strict=True))
    ]
    return m_out, u_out, trace


def source_pair_group(source_codes: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Group index of each pair (i, j): min(a, b)·S + max(a, b) of its two source codes."""
    n_src = int(source_codes.max()) + 1 if source_codes.size else 1
    # the smallest integer type that holds a group: one byte a pair for up to 16 sources
    codes = source_codes.astype(np.min_scalar_type(n_src * n_src - 1))
    a, b = codes[i], codes[j]
    group = np.minimum(a, b)
    group *= n_src
    group += np.maximum(a, b)
    return group


def group_pattern_counts(patterns: Patterns, group: np.ndarray, n_groups: int) -> np.ndarray:
    """(n_groups, n_patterns) counts of each pattern among each group's pairs."""
    n_pat = patterns.levels.shape[0]
    out = np.zeros((n_groups, n_pat))
    present = np.bincount(group, minlength=n_groups)
    for g in np.flatnonzero(present):
        index = patterns.index if present[g] == group.size else patterns.index[group == g]
        out[g] = np.bincount(index, minlength=n_pat)
    return out


def source_pair_priors(
    model: FellegiSunterModel,
    patterns: Patterns,
    group_counts: np.ndarray,
    source_codes: np.ndarray,
    sources: np.ndarray,
    settings: LinkageSettings,
) -> None:
    """λ per pair of sources (police–police, police–IOM, IOM–IOM), set on ``model``.

    People are registered again by the same source far more often than by the other one,
    so one λ over all pairs overstates the prior of a cross-source pair and understates
    that of a within-source pair. m and u stay shared; only the prior is per group.
    ``group_counts[g]`` counts the patterns among the candidate pairs of group g (see
    :func:`source_pair_group`).
    """
    names = np.unique(sources)
    n_src = names.size
    sizes = np.bincount(source_codes, minlength=n_src).astype(np.float64)
    lams, labels = [], {}
    for g in range(n_src * n_src):
        x, y = divmod(g, n_src)
        if x > y:
            lams.append(model.lam)
            continue
        total = sizes[x] * (sizes[x] - 1) / 2 if x == y else sizes[x] * sizes[y]
        lam = estimate_lambda(
            patterns.levels, group_counts[g], model, total, settings.em_max_iter, settings.em_tol
        )
        lams.append(lam)
        labels[f"{names[x]}–{names[y]}"] = lam
    model.group_lams = lams
    model.lam_by_source_pair = labels


def training_summary(model: FellegiSunterModel, patterns: Patterns) -> str:
    """One line on a fitted model, for the progress display."""
    return (
        f"λ = {model.lam:.4g}, {len(model.trace)} EM iterations on "
        f"{patterns.levels.shape[0]:,} patterns"
    )


def uses_source_priors(settings: LinkageSettings, source_codes) -> bool:
    """Whether the model gets a prior per pair of sources."""
    return settings.scores_per_source_pair(source_codes is not None)


def train(
    prep: PreparedRecords,
    patterns: Patterns,
    settings: LinkageSettings,
    *,
    candidate_codes: np.ndarray | CandidateTest,
    source_codes: np.ndarray | None,
    sources: np.ndarray | None,
    group_counts: Callable[[], np.ndarray] | None = None,
    labelled: tuple[dict[str, np.ndarray], np.ndarray] | None = None,
    blocker: Callable[[BlockingRule], BlockingResult] | None = None,
    comparer: Comparer | None = None,
) -> FellegiSunterModel:
    """The model of a run, as every engine trains it.

    ``patterns`` are the candidate pairs' comparison patterns with their counts (``index``
    is not needed), ``candidate_codes`` the sorted i·n + j of the candidate pairs (or a
    function ``(i, j) → bool`` telling which pairs are candidates, for pairs kept elsewhere), and
    ``group_counts()`` the (S², n_patterns) pattern counts per pair of sources
    (:func:`group_pattern_counts`), asked for only when the model has a prior per pair of
    sources. The random generator is seeded here, from ``settings.seed``, so the random
    pairs of u are the same in every engine. ``blocker(rule)`` gives a training session's
    pairs and ``comparer(i, j)`` compares pairs as :func:`compare_pairs` does (both on the
    driver by default; an engine may run them where its pairs live).
    """
    rng = np.random.default_rng(settings.seed)
    model = fit_model(
        prep,
        {},
        patterns,
        settings,
        rng,
        labelled,
        _pairs_compared(prep.n, source_codes, settings),
        candidate_codes=candidate_codes,
        blocker=blocker,
        comparer=comparer,
    )
    if uses_source_priors(settings, source_codes) and group_counts is not None:
        source_pair_priors(
            model, patterns, group_counts(), source_codes, np.asarray(sources).astype(str), settings
        )
        source_pair_tf_bits(model, prep)
    return model


def source_pair_tf_bits(model: FellegiSunterModel, prep: PreparedRecords) -> None:
    """The TF bits of each pair of sources (:attr:`PreparedRecords.tf_source_bits`) as
    (group, level) tables on ``model``, at the levels a column's term frequency weighs.

    Like the other TF bits they refine the weight of an agreeing value and stay out of the
    EM, which works on patterns (λ per source pair included)."""
    if not prep.tf_source_bits:
        return
    names = prep.tf_sources
    n_src = len(names)
    tables, labels = [], {}
    for comp in model.comparisons:
        table = np.zeros((n_src * n_src, comp.n_levels))
        for level, col in kind_of(comp.kind).tf_levels(comp).items():
            if col in prep.tf_source_bits:
                table[:, level] = prep.tf_source_bits[col].ravel()
                for a in range(n_src):
                    for b in range(a + 1, n_src):
                        label = labels.setdefault(f"{names[a]}–{names[b]}", {})
                        label.setdefault(comp.name, {})[comp.level_names()[level]] = float(
                            table[a * n_src + b, level]
                        )
        tables.append(table)
    if any(t.any() for t in tables):  # one source: nothing to add to any pair
        model.group_tf_bits = tables
        model.tf_bits_by_source_pair = labels


def _pairs_compared(n: int, source_codes, settings) -> float:
    """Number of record pairs the model covers: all pairs, or cross-source pairs (link_only)."""
    if not settings.link_only:
        return n * (n - 1) / 2
    sizes = np.bincount(source_codes).astype(np.float64)
    return float((sizes.sum() ** 2 - (sizes**2).sum()) / 2)


def _source_codes(sources):
    if sources is None:
        return None
    _, codes = np.unique(sources.astype(str), return_inverse=True)
    return codes.ravel()
