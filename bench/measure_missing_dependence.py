"""Is birth-date missingness independent of the name comparisons among matches?

    python bench/measure_missing_dependence.py --seeds 1-10       # docs/linkage.md
    python bench/measure_missing_dependence.py --seeds 1-6 --tf   # and the TF bits
    python bench/measure_missing_dependence.py --settings FILE.toml --save DIR

Prints only (a diagnosis, like diagnose_cross_source.py); about 5 s a world, 20 s with --tf.

Links simulated default worlds with the default settings (or ``--settings``) and, over the
scored candidate pairs, reports against the simulator's truth (same person and same
identity, i.e. the linkable truth's pairs):

* per name comparison, the distribution of its level among matches and among non-matches,
  split by whether the birth date is observed on both records or missing on one;
* P(birth date missing) among matches and non-matches of the candidate set;
* the same level distributions over *all* true pairs (candidates or not: blocking may keep
  out the matches whose names differ and whose birth date is missing) and over random
  record pairs (almost all non-matches, where u comes from), with P(birth date missing);
* calibration of match_probability (reliability by bins, ECE, log-loss) for the pairs with
  and without a birth date;
* the most a model with per-stratum m could gain (an in-sample bound): the candidate pairs
  rescored with m of every comparison given "birth date missing" taken from the true pairs
  of those very worlds, and P(missing | match) / P(missing | non-match) as evidence —
  the log-linear latent-class model with birth-date missingness × comparison interactions
  in the match class, fitted by an oracle (the non-match class is left as it is: the
  level distributions above show it has no such interaction).

With ``--tf`` it also checks the name-frequency (TF) bits T of each name level: E[2^T] over
random non-matches and E[2^−T] over the true pairs (both 1 if the bits refine u as they
should), the oracle exponential tilt p_M(T) = p_U(T)·2^(βT)/Z(β) with β solved so that the
tilted random-pair mean of T equals the true pairs' mean, and the candidates rescored with
the tilted bits (βT − log2 Z(β) in place of T).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_linkage_world import build_world  # noqa: E402

BINS = [0.0, 0.01, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99, 1.0001]


def population_pairs(records, truth, settings) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Comparison levels of all true pairs (same person, same identity) and of random pairs."""
    from recapture.linkage.comparisons import PreparedRecords, compare_pairs
    from recapture.linkage.training import random_pairs

    recs = records.sort(settings.record_id).with_row_index("_row")
    prep = PreparedRecords.build(recs, settings)
    d = (
        recs.select("record_id", "_row")
        .join(truth.select("record_id", "person_id", "identity"), on="record_id")
        .select("_row", "person_id", "identity")
    )
    same = d.join(d, on=["person_id", "identity"], suffix="_r").filter(
        pl.col("_row") < pl.col("_row_r")
    )
    ri, rj = random_pairs(prep.n, settings.u_sample_pairs, np.random.default_rng(settings.seed))
    out = []
    for i, j in ((same["_row"].to_numpy(), same["_row_r"].to_numpy()), (ri, rj)):
        g, _, _ = compare_pairs(prep, np.asarray(i, np.int32), np.asarray(j, np.int32))
        out.append(pl.DataFrame({f"gamma_{k}": v for k, v in g.items()}))
    pid = d.sort("_row")["person_id"].to_numpy()
    return out[0].with_columns(is_match=pl.lit(True)), out[1].with_columns(
        is_match=pl.Series(pid[ri] == pid[rj])
    )


def tf_check(records, truth, settings, pairs: pl.DataFrame, seed: int) -> np.ndarray:
    """Print the TF identities and the oracle tilt per name level; return the candidates'
    weights with the tilted bits (module docstring)."""
    from scipy.optimize import brentq

    from recapture.linkage.comparisons import PreparedRecords, compare_pairs
    from recapture.linkage.training import random_pairs

    recs = records.sort(settings.record_id).with_row_index("_row")
    prep = PreparedRecords.build(recs, settings)
    ids = recs["record_id"].to_numpy()
    t = recs.select("record_id").join(truth, on="record_id", how="left")
    pid = t["person_id"].to_numpy()
    ci = np.searchsorted(ids, pairs["record_id_l"].to_numpy()).astype(np.int32)
    cj = np.searchsorted(ids, pairs["record_id_r"].to_numpy()).astype(np.int32)
    g, tf, _ = compare_pairs(prep, ci, cj)
    ri, rj = random_pairs(prep.n, settings.u_sample_pairs, np.random.default_rng(settings.seed))
    rg, rtf, _ = compare_pairs(prep, ri, rj)
    nonmatch = pid[ri] != pid[rj]
    d = t.with_row_index("i").select("i", "person_id", "identity")
    same = d.join(d, on=["person_id", "identity"], suffix="_r").filter(pl.col("i") < pl.col("i_r"))
    mi, mj = same["i"].to_numpy().astype(np.int32), same["i_r"].to_numpy().astype(np.int32)
    gm, tfm, _ = compare_pairs(prep, mi, mj)
    w = pairs["match_weight"].to_numpy().copy()
    for comp in settings.comparisons:
        if comp.name not in tf:
            continue
        for lv in (comp.n_levels - 2, comp.n_levels - 1):  # key and exact
            tu = rtf[comp.name][nonmatch & (rg[comp.name] == lv)].astype(float)
            tm = tfm[comp.name][gm[comp.name] == lv].astype(float)
            if tu.size < 30 or tm.size < 30:
                continue

            def gap(b, tu=tu, tm=tm):
                e = np.exp2(b * tu)
                return np.sum(tu * e) / np.sum(e) - tm.mean()

            beta = brentq(gap, -1.0, 3.0) if gap(-1.0) < 0 < gap(3.0) else 1.0
            log2z = float(np.log2(np.mean(np.exp2(beta * tu))))
            print(
                f"seed {seed} {comp.name} level {lv}: E[2^T] random non-matches "
                f"{np.mean(np.exp2(tu)):.3f} ({tu.size:,}), E[2^-T] true pairs "
                f"{np.mean(np.exp2(-tm)):.3f} ({tm.size:,}); oracle tilt β {beta:.2f}, "
                f"log2 Z {log2z:+.2f}"
            )
            sel = g[comp.name] == lv
            w[sel] += (beta - 1.0) * tf[comp.name][sel].astype(float) - log2z
    return w


def scored_pairs(seed: int, settings=None, tf: bool = False) -> tuple[pl.DataFrame, dict]:
    from recapture import progress
    from recapture.linkage import LinkageSettings, link_records

    progress.set_quiet(True)
    with tempfile.TemporaryDirectory(prefix="condm_") as tmp:
        records, truth, _ = build_world(Path(tmp), seed=seed)
    settings = settings or LinkageSettings.default()
    result = link_records(records, settings)
    true_pairs, random = population_pairs(records, truth, settings)
    t = truth.select("record_id", "source", "person_id", "identity")
    pairs = (
        result.pairs.join(t.rename(lambda c: c + "_l"), on="record_id_l")
        .join(t.rename(lambda c: c + "_r"), on="record_id_r")
        .with_columns(
            is_match=(pl.col("person_id_l") == pl.col("person_id_r"))
            & (pl.col("identity_l") == pl.col("identity_r")),
            cross=pl.col("source_l") != pl.col("source_r"),
        )
    )
    names = {
        c["name"]: [lv["level"] for lv in c["levels"]]
        for c in result.model.to_dict()["comparisons"]
    }
    if tf:
        w = tf_check(records, truth, settings, pairs, seed)
        pairs = pairs.with_columns(
            tilted_probability=pl.Series(1.0 / (1.0 + np.exp2(-np.clip(w, -60, 60))))
        )
    return pairs, {
        "names": names,
        "threshold": result.threshold,
        "true_pairs": true_pairs,
        "random": random.filter(~pl.col("is_match")),
    }


def level_table(pairs: pl.DataFrame, comp: str, names: list[str]) -> str:
    lines = [f"\n{comp}: share of each level (rows: class × birth date)"]
    lines.append(
        f"{'':28s}" + "".join(f"{n[:14]:>15s}" for n in names) + f"{'missing':>10s}{'n':>10s}"
    )
    for match in (True, False):
        for bd_missing in (False, True):
            sub = pairs.filter(
                (pl.col("is_match") == match) & ((pl.col("gamma_birth_date") < 0) == bd_missing)
            )
            g = sub[f"gamma_{comp}"].to_numpy()
            n_obs = max(int((g >= 0).sum()), 1)
            shares = [float((g == k).sum()) / n_obs for k in range(len(names))]
            label = (
                f"{'match' if match else 'non-match'}, bd {'missing' if bd_missing else 'observed'}"
            )
            lines.append(
                f"{label:28s}"
                + "".join(f"{s:15.4f}" for s in shares)
                + f"{float((g < 0).mean()) if g.size else 0:10.4f}{g.size:10d}"
            )
    return "\n".join(lines)


COMPARED = ("family_name", "given_name", "nationality", "sex", "v_number")


#: Pseudo-pairs of the Dirichlet prior of m given "birth date missing", centred on m given
#: "observed" (the shrinkage a per-stratum model would need: a level no missing-date true
#: pair reaches keeps the observed stratum's m instead of jumping by the pseudo-count).
PRIOR_PAIRS = 20.0


def m_shift(true_pairs: pl.DataFrame, comp: str, n_levels: int) -> np.ndarray:
    """log2 m(level | birth date missing) / m(level | observed) among the true pairs, the
    missing stratum shrunk towards the observed one (:data:`PRIOR_PAIRS`); 0 for a level
    that no true pair reaches."""
    counts = {}
    for missing in (True, False):
        g = true_pairs.filter((pl.col("gamma_birth_date") < 0) == missing)[f"gamma_{comp}"]
        g = g.to_numpy()
        counts[missing] = np.bincount(g[g >= 0], minlength=n_levels).astype(float)
    observed = (counts[False] + 0.5) / (counts[False].sum() + 0.5 * n_levels)
    missing = (counts[True] + PRIOR_PAIRS * observed) / (counts[True].sum() + PRIOR_PAIRS)
    seen = (counts[True] + counts[False]) > 0  # a level no true pair reaches: m ≈ 0 in both
    return np.where(seen, np.log2(missing / observed), 0.0)


def oracle_strata(pairs: pl.DataFrame, true_pairs: pl.DataFrame, names, pm, pu) -> pl.DataFrame:
    """The candidate pairs rescored with the true per-stratum m (module docstring)."""
    missing = pairs["gamma_birth_date"].to_numpy() < 0
    add = np.full(pairs.height, np.log2(pm / pu))
    for comp in COMPARED:
        shift = m_shift(true_pairs, comp, len(names[comp]))
        g = pairs[f"gamma_{comp}"].to_numpy()
        add[g >= 0] += shift[g[g >= 0]]
    w = pairs["match_weight"].to_numpy() + np.where(missing, add, 0.0)
    return pairs.with_columns(
        match_weight=pl.Series(w),
        match_probability=pl.Series(1.0 / (1.0 + np.exp2(-np.clip(w, -60, 60)))),
    )


def pair_f1(pairs: pl.DataFrame, threshold: float) -> str:
    linked = pairs["match_probability"].to_numpy() >= threshold
    y = pairs["is_match"].to_numpy()
    tp, fp, fn = int((linked & y).sum()), int((linked & ~y).sum()), int((~linked & y).sum())
    return f"pair F1 at {threshold:.2f}: {2 * tp / max(2 * tp + fp + fn, 1):.4f} (fp {fp}, fn {fn})"


def reliability(pairs: pl.DataFrame, label: str) -> str:
    p = pairs["match_probability"].to_numpy()
    y = pairs["is_match"].to_numpy().astype(float)
    idx = np.digitize(p, BINS) - 1
    lines = [f"\ncalibration, {label} ({p.size:,} pairs, {int(y.sum()):,} matches)"]
    lines.append(f"{'bin':>14s}{'pairs':>10s}{'mean p':>10s}{'match rate':>12s}")
    ece = 0.0
    for b in range(len(BINS) - 1):
        sel = idx == b
        if not sel.any():
            continue
        ece += sel.sum() / p.size * abs(p[sel].mean() - y[sel].mean())
        lines.append(
            f"{BINS[b]:6.2f}–{min(BINS[b + 1], 1):<6.2f}{int(sel.sum()):10d}{p[sel].mean():10.4f}{y[sel].mean():12.4f}"
        )
    eps = 1e-12
    ll = -np.mean(y * np.log(np.clip(p, eps, 1)) + (1 - y) * np.log(np.clip(1 - p, eps, 1)))
    lines.append(f"ECE {ece:.5f}   log-loss {ll:.5f}")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--seeds", default="1-3")
    ap.add_argument("--settings", default=None)
    ap.add_argument("--save", default=None, help="folder to write each seed's scored pairs to")
    ap.add_argument("--tf", action="store_true", help="also check the name-frequency bits")
    args = ap.parse_args(argv)
    from recapture.linkage import LinkageSettings

    settings = LinkageSettings.from_toml(args.settings) if args.settings else None
    a, _, b = args.seeds.partition("-")
    frames, info, true_frames, random_frames = [], {}, [], []
    for seed in range(int(a), int(b or a) + 1):
        pairs, info = scored_pairs(seed, settings, args.tf)
        if args.save:
            pairs.write_parquet(Path(args.save) / f"pairs_{seed}.parquet")
        frames.append(pairs)
        true_frames.append(info["true_pairs"])
        random_frames.append(info["random"])
    pairs = pl.concat(frames)
    names = info["names"]
    m = pairs["is_match"].to_numpy()
    bd_missing = pairs["gamma_birth_date"].to_numpy() < 0
    print(f"candidate pairs {pairs.height:,}, matches {int(m.sum()):,}")
    print(f"P(birth date missing | match) = {bd_missing[m].mean():.4f}")
    print(f"P(birth date missing | non-match, candidates) = {bd_missing[~m].mean():.4f}")
    for comp in ("family_name", "given_name", "nationality", "sex", "v_number"):
        print(level_table(pairs, comp, names[comp]))
    population = pl.concat(true_frames + random_frames)
    pm = (pl.concat(true_frames)["gamma_birth_date"] < 0).mean()
    pu = (pl.concat(random_frames)["gamma_birth_date"] < 0).mean()
    print(
        f"\nall true pairs {sum(f.height for f in true_frames):,}, random non-match pairs "
        f"{sum(f.height for f in random_frames):,}: P(birth date missing | match) = {pm:.4f}, "
        f"P(birth date missing | random non-match) = {pu:.4f}, "
        f"log2 ratio {np.log2(pm / pu):+.2f} bits"
    )
    for comp in ("family_name", "given_name", "nationality", "sex", "v_number"):
        print(level_table(population, comp, names[comp]).replace("\n", "\n[all pairs] ", 1))
    threshold = float(info["threshold"])
    oracle = oracle_strata(pairs, pl.concat(true_frames), names, pm, pu)
    print("\nm(level | birth date missing) / m(level | observed), log2, all true pairs:")
    for comp in COMPARED:
        shift = m_shift(pl.concat(true_frames), comp, len(names[comp]))
        print(
            f"  {comp:12s} "
            + "  ".join(f"{n} {x:+.2f}" for n, x in zip(names[comp], shift, strict=True))
        )
    for label, where in (
        ("birth date missing", pl.col("gamma_birth_date") < 0),
        ("birth date observed", pl.col("gamma_birth_date") >= 0),
        ("cross-source, birth date missing", pl.col("cross") & (pl.col("gamma_birth_date") < 0)),
        ("all pairs", pl.lit(True)),
    ):
        frames_ = [("model", pairs), ("oracle strata", oracle)]
        if args.tf:
            tilted = pairs.with_columns(match_probability=pl.col("tilted_probability"))
            frames_.append(("oracle TF tilt", tilted))
        for model, frame in frames_:
            sub = frame.filter(where)
            print(reliability(sub, f"{label} [{model}]"))
            print(pair_f1(sub, threshold))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
