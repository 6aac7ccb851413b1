"""The linkage stage: block → compare → train Fellegi–Sunter → score → cluster.

``link_records(records, settings)`` runs one model over all records together, so that
deduplication within each source and linkage across sources come out of the same scores
and the same clusters (the analysis needs persons, not pairs).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

from recapture import progress
from recapture.errors import InputError
from recapture.io import ARTIFACTS, read_json
from recapture.linkage.blocking import ROW, SRC, BlockingResult, block
from recapture.linkage.clustering import Clustering, cluster_pairs
from recapture.linkage.comparisons import (
    ROW_L,
    ROW_R,
    PreparedRecords,
    compare_batch,
    compare_pairs,
)
from recapture.linkage.model import (
    PRIOR_GROUP,
    FellegiSunterModel,
    Patterns,
    best_expected_f1_threshold,
    estimate_lambda,
    expected_quality,
    initial_m,
    level_probabilities,
    run_em,
    score_batch,
    u_from_random_pairs,
)
from recapture.linkage.settings import LinkageSettings

#: Thresholds at which the metrics report model-expected precision and recall.
REPORT_THRESHOLDS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)
#: Pairs of a training session beyond which a seeded random sample of them is used.
TRAINING_PAIRS_MAX = 1_000_000
#: Values per term-frequency table written to linkage_model.json (most frequent first).
TF_TABLE_TOP = 200


@dataclass
class LinkageResult:
    """Everything a linkage run produced; ``write_linkage`` turns it into the artifacts."""

    pairs: pl.DataFrame
    clusters: pl.DataFrame
    model: FellegiSunterModel
    metrics: dict
    settings: LinkageSettings
    threshold: float
    tf_tables: dict = field(default_factory=dict)

    def model_dict(self) -> dict:
        out = self.model.to_dict()
        out["threshold"] = self.threshold
        out["term_frequency_tables"] = self.tf_tables
        out["settings"] = self.settings.to_dict()
        return out


def _check_columns(records: pl.DataFrame, settings: LinkageSettings) -> None:
    missing = sorted(c for c in settings.required_columns() if c not in records.columns)
    if missing:
        raise InputError(
            f"records lack the column(s) the linkage settings use: {', '.join(missing)}",
            column=missing[0],
        )
    rid = records[settings.record_id]
    if rid.null_count():
        raise InputError("record ids must not be missing", column=settings.record_id)
    if rid.n_unique() != records.height:
        raise InputError("record ids must be unique", column=settings.record_id)


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
    candidate_codes: np.ndarray | None = None,
) -> FellegiSunterModel:
    """u from random pairs, then m (and u, λ) by EM on the candidate pattern counts.

    ``candidate_codes`` (sorted i·n + j of the candidate pairs) let the refit of u count the
    candidate pairs exactly (see :func:`u_over_all_pairs`).
    """
    comps = settings.comparisons
    ri, rj = random_pairs(prep.n, settings.u_sample_pairs, rng)
    rgam, rtf, _ = compare_pairs(prep, ri, rj)
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
        m0, u_sess, trace = train_sessions(prep, settings, m0, u_random)
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
        outside = (
            ~_is_candidate(ri, rj, prep.n, candidate_codes) if candidate_codes is not None else None
        )
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
    prep: PreparedRecords, settings: LinkageSettings, m0, u_random
) -> tuple[list[np.ndarray], list[dict]]:
    """m per comparison: the mean of its EM estimates over the sessions that do not fix it."""
    from recapture.linkage.settings import BlockingRule

    comps = settings.comparisons
    recs = prep.frame
    sums = [np.zeros(c.n_levels) for c in comps]
    usums = [np.zeros(c.n_levels) for c in comps]
    counts = np.zeros(len(comps))
    trace: list[dict] = []
    for sess in settings.training_sessions:
        blocks = block(recs, [BlockingRule(sess.name, sess.keys)], settings.max_block_size)
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
        gammas, _, _ = compare_pairs(prep, si, sj)
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


def score(
    model: FellegiSunterModel,
    levels: pa.RecordBatch,
    pair_group: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Match weight and probability of each candidate pair (:func:`score_batch` on the
    levels of :func:`compare_batch`, with the prior of its source pair when ``pair_group``
    indexes ``model.group_lams``)."""
    if pair_group is not None:
        levels = levels.append_column(PRIOR_GROUP, pa.array(pair_group))
    out = score_batch(model, levels)
    return (
        out.column("match_weight").to_numpy(zero_copy_only=False),
        out.column("match_probability").to_numpy(zero_copy_only=False),
    )


def link_records(
    records: pl.DataFrame,
    settings: LinkageSettings | None = None,
    *,
    labelled_pairs: pl.DataFrame | None = None,
) -> LinkageResult:
    """Deduplicate and link ``records`` (all sources together) into persons.

    ``labelled_pairs`` (columns record_id_l, record_id_r, is_match) optionally fix m from
    known matches instead of estimating it by EM.
    """
    settings = settings or LinkageSettings.default()
    _check_columns(records, settings)
    timings: dict[str, float] = {}
    rng = np.random.default_rng(settings.seed)
    t0 = time.perf_counter()
    recs = records.sort(settings.record_id).with_row_index(ROW)
    record_ids = recs[settings.record_id].to_numpy()
    sources = recs[settings.source].to_numpy() if settings.source else None

    with progress.step("encoding records") as st:
        prep = PreparedRecords.build(recs, settings)
        st["result"] = f"{prep.n:,} records"
    timings["encode"] = time.perf_counter() - t0

    t = time.perf_counter()
    source_codes = _source_codes(sources)
    if settings.link_only:
        if source_codes is None:
            raise InputError("link_only needs a source column", column="source")
        recs = recs.with_columns(pl.Series(SRC, source_codes))
    with progress.step("blocking") as st:
        blocks = block(recs, settings.blocking_rules, settings.max_block_size, settings.link_only)
        st["result"] = f"{blocks.n_pairs:,} candidate pairs"
    timings["blocking"] = time.perf_counter() - t

    t = time.perf_counter()
    with progress.step("comparing candidate pairs"):
        levels = compare_batch(
            settings,
            prep,
            pa.RecordBatch.from_pydict({ROW_L: pa.array(blocks.i), ROW_R: pa.array(blocks.j)}),
        )
        gammas = {
            c.name: levels.column(f"gamma_{c.name}").to_numpy(zero_copy_only=False)
            for c in settings.comparisons
        }
        swapped = levels.column("names_swapped").to_numpy(zero_copy_only=False)
        n_levels = [c.n_levels for c in settings.comparisons]
        patterns = Patterns.from_gammas([gammas[c.name] for c in settings.comparisons], n_levels)
    timings["comparing"] = time.perf_counter() - t

    labelled = None
    if labelled_pairs is not None:
        labelled = _labelled_gammas(labelled_pairs, recs, settings, prep)

    t = time.perf_counter()
    with progress.step("training the Fellegi–Sunter model") as st:
        codes = np.sort(blocks.i.astype(np.int64) * prep.n + blocks.j.astype(np.int64))
        model = fit_model(
            prep,
            gammas,
            patterns,
            settings,
            rng,
            labelled,
            _pairs_compared(prep.n, source_codes, settings),
            candidate_codes=codes,
        )
        pair_group = None
        if settings.prior_by_source_pair and source_codes is not None and not settings.link_only:
            pair_group = _source_pair_priors(
                model, patterns, blocks, source_codes, np.asarray(sources).astype(str), settings
            )
        st["result"] = (
            f"λ = {model.lam:.4g}, {len(model.trace)} EM iterations on {patterns.levels.shape[0]:,} patterns"
        )
    timings["training"] = time.perf_counter() - t

    t = time.perf_counter()
    weight, prob = score(model, levels, pair_group)
    threshold = (
        best_expected_f1_threshold(prob)
        if settings.threshold == "auto"
        else float(settings.threshold)
    )
    with progress.step("clustering") as st:
        clustering = cluster_pairs(
            prep.n,
            blocks.i,
            blocks.j,
            prob,
            threshold,
            sources=source_codes,
            one_to_one=settings.one_to_one,
            conflict_probability=settings.conflict_probability,
            chaining_action=settings.chaining_action,
            chaining_steps=settings.chaining_steps,
        )
        st["result"] = f"{clustering.report['clusters']:,} persons"
    timings["scoring_clustering"] = time.perf_counter() - t

    pairs = _pairs_frame(record_ids, blocks, gammas, settings, weight, prob, swapped, clustering)
    clusters = _clusters_frame(record_ids, sources, clustering)
    metrics = _metrics(
        blocks, prob, threshold, clustering, model, patterns, timings, sources, settings
    )
    timings["total"] = time.perf_counter() - t0
    return LinkageResult(
        pairs=pairs,
        clusters=clusters,
        model=model,
        metrics=metrics,
        settings=settings,
        threshold=threshold,
        tf_tables=_tf_tables(prep, settings),
    )


def _source_pair_priors(
    model: FellegiSunterModel,
    patterns: Patterns,
    blocks: BlockingResult,
    source_codes: np.ndarray,
    sources: np.ndarray,
    settings: LinkageSettings,
) -> np.ndarray:
    """λ per pair of sources (police–police, police–IOM, IOM–IOM); each pair's group index.

    People are registered again by the same source far more often than by the other one,
    so one λ over all pairs overstates the prior of a cross-source pair and understates
    that of a within-source pair. m and u stay shared; only the prior is per group.
    """
    names = np.unique(sources)
    n_src = names.size
    sizes = np.bincount(source_codes, minlength=n_src).astype(np.float64)
    a, b = source_codes[blocks.i], source_codes[blocks.j]
    group = np.minimum(a, b) * n_src + np.maximum(a, b)
    lams, labels = [], {}
    for g in range(n_src * n_src):
        x, y = divmod(g, n_src)
        if x > y:
            lams.append(model.lam)
            continue
        total = sizes[x] * (sizes[x] - 1) / 2 if x == y else sizes[x] * sizes[y]
        counts = np.bincount(patterns.index[group == g], minlength=patterns.levels.shape[0]).astype(
            np.float64
        )
        lam = estimate_lambda(
            patterns.levels, counts, model, total, settings.em_max_iter, settings.em_tol
        )
        lams.append(lam)
        labels[f"{names[x]}–{names[y]}"] = lam
    model.group_lams = lams
    model.lam_by_source_pair = labels
    return group


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


def _labelled_gammas(labelled: pl.DataFrame, recs: pl.DataFrame, settings, prep):
    for col in ("record_id_l", "record_id_r", "is_match"):
        if col not in labelled.columns:
            raise InputError(
                "labelled pairs need record_id_l, record_id_r and is_match", column=col
            )
    ids = recs.select(pl.col(settings.record_id).alias("rid"), pl.col(ROW))
    lab = labelled.join(ids.rename({"rid": "record_id_l", ROW: "i"}), on="record_id_l").join(
        ids.rename({"rid": "record_id_r", ROW: "j"}), on="record_id_r"
    )
    if lab.height < labelled.height:
        raise InputError(
            "labelled pairs refer to record ids not in the records", column="record_id_l"
        )
    g, _, _ = compare_pairs(
        prep, lab["i"].to_numpy().astype(np.int32), lab["j"].to_numpy().astype(np.int32)
    )
    return g, lab["is_match"].cast(pl.Boolean).to_numpy()


def _pairs_frame(
    record_ids,
    blocks: BlockingResult,
    gammas,
    settings,
    weight,
    prob,
    swapped,
    clustering: Clustering,
):
    names = pl.Series(blocks.rule_names)
    cols = {
        "record_id_l": pl.Series(record_ids[blocks.i], dtype=pl.Int64),
        "record_id_r": pl.Series(record_ids[blocks.j], dtype=pl.Int64),
        "blocking_rule": names.gather(blocks.rule.astype(np.int64)),
    }
    for comp in settings.comparisons:
        cols[f"gamma_{comp.name}"] = pl.Series(gammas[comp.name], dtype=pl.Int8)
    cols["names_swapped"] = pl.Series(swapped, dtype=pl.Boolean)
    cols["match_weight"] = pl.Series(weight, dtype=pl.Float64)
    cols["match_probability"] = pl.Series(prob, dtype=pl.Float64)
    cols["linked"] = pl.Series(clustering.linked, dtype=pl.Boolean)
    return pl.DataFrame(cols)


def _clusters_frame(record_ids, sources, clustering: Clustering):
    labels = clustering.labels
    sizes = np.bincount(labels)
    return pl.DataFrame(
        {
            "record_id": pl.Series(record_ids, dtype=pl.Int64),
            "source": pl.Series(
                sources.astype(str) if sources is not None else np.full(labels.size, ""),
                dtype=pl.String,
            ),
            "person_id": pl.Series(labels, dtype=pl.Int64),
            "cluster_size": pl.Series(sizes[labels], dtype=pl.Int64),
        }
    )


def _metrics(
    blocks, prob, threshold, clustering, model, patterns, timings, sources, settings
) -> dict:
    n = blocks.n_records
    rules = []
    for st in blocks.stats:
        rules.append(dict(st))
    out = {
        "records": n,
        "candidate_pairs": blocks.n_pairs,
        "reduction_ratio": blocks.reduction_ratio(),
        "blocking_rules": rules,
        "comparison_patterns": int(patterns.levels.shape[0]),
        "lambda": model.lam,
        "lambda_by_source_pair": model.lam_by_source_pair,
        "em_iterations": len(model.trace),
        "em_converged": model.converged,
        "threshold": threshold,
        "threshold_rule": "maximum model-expected F1" if settings.threshold == "auto" else "fixed",
        "links": int((prob >= threshold).sum()),
        "expected_matches_in_candidates": float(prob.sum()),
        "expected_quality": expected_quality(prob, np.asarray(REPORT_THRESHOLDS)),
        "expected_quality_at_threshold": expected_quality(prob, np.asarray([threshold]))[0],
        "clustering": clustering.report,
        "timings_seconds": timings,
    }
    if sources is not None:
        src = np.asarray(sources).astype(str)
        per = {}
        for s in np.unique(src):
            labels = clustering.labels[src == s]
            per[str(s)] = {"records": int(labels.size), "persons": int(np.unique(labels).size)}
        out["per_source"] = per
    return out


def _tf_tables(prep: PreparedRecords, settings: LinkageSettings) -> dict:
    out = {}
    for col, freq in prep.tf.items():
        vocab = prep.vocab_of[col].values
        codes = prep.codes[col]
        counts = np.bincount(codes[codes >= 0], minlength=len(vocab))
        order = np.argsort(-counts, kind="stable")[:TF_TABLE_TOP]
        order = order[counts[order] > 0]
        out[col] = {
            "distinct_values": int((counts > 0).sum()),
            "sum_squared_frequency": prep.tf_sq[col],
            "top_values": [
                {"value": str(vocab[k]), "count": int(counts[k]), "frequency": float(freq[k])}
                for k in order
            ],
        }
    return out


# ------------------------------------------------------------------ artifacts
def write_linkage(
    result: LinkageResult, out_dir: str | Path, *, run_id: str | None = None
) -> dict[str, Path]:
    """Write pairs.parquet, clusters.parquet, linkage_model.json and linkage_metrics.json."""
    from recapture.schemas import ClusterSchema, PairsSchema, validate

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    validate(result.pairs, PairsSchema)
    validate(result.clusters, ClusterSchema)
    paths = {
        name: ARTIFACTS[name].write(data, out, run_id=run_id)
        for name, data in (
            ("pairs", result.pairs),
            ("clusters", result.clusters),
            ("linkage_model", result.model_dict()),
            ("linkage_metrics", result.metrics),
        )
    }
    return paths


def read_records(path: str | Path) -> pl.DataFrame:
    """Read records.parquet, with a one-line error for a missing or unreadable file."""
    path = Path(path)
    if not path.is_file():
        raise InputError("no such file", file=str(path))
    try:
        return pl.read_parquet(path)
    except Exception as exc:  # polars raises several kinds for a damaged file
        raise InputError(f"cannot read as Parquet: {exc}", file=str(path)) from None


def read_linkage_model(path: str | Path) -> dict:
    """The JSON model of a run (m, u, λ, TF tables, settings, EM trace)."""
    return read_json(path)
