"""A synthetic run directory in the documented artifact formats, for report previews.

Writes records, quarantine, pairs, clusters, linkage model and metrics, estimates, truth
and a manifest whose numbers hang together (clusters are the components of the links,
pairs carry the truth's matches and plausible non-matches) without running the pipeline.
It lets the reports be previewed and benchmarked at any size in seconds; the values are
invented and mean nothing. Everything is drawn from one seeded generator.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import numpy as np
import polars as pl
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from recapture.estimators.result import PopulationEstimate
from recapture.io import WORLD_FILES, artifact_path, world_path, write_json, write_parquet
from recapture.schemas import REGIONS, SCHEMA_VERSIONS

FAMILY = np.array(
    [
        "El Amrani",
        "Öztürk",
        "Shevchenko",
        "Mohamed",
        "Nguyen",
        "Diallo",
        "Haddad",
        "Kowalski",
        "Popescu",
        "Rahimi",
        "Benali",
        "Ivanova",
        "Traoré",
        "Wang",
        "Silva",
    ]
)
GIVEN = np.array(
    [
        "Mohammed",
        "Fatima",
        "Oleksandr",
        "Ahmed",
        "Linh",
        "Mamadou",
        "Youssef",
        "Anna",
        "Ion",
        "Ali",
        "Samira",
        "Olga",
        "Aminata",
        "Wei",
        "João",
    ]
)
NATIONALITY = [
    ("Marokko", "MAR", "North Africa"),
    ("Turkije", "TUR", "Turkey"),
    ("Oekraïne", "UKR", "Eastern Europe"),
    ("Algerije", "DZA", "North Africa"),
    ("Vietnam", "VNM", "Asia"),
    ("Guinee", "GIN", "Sub-Saharan Africa"),
    ("Syrië", "SYR", "Middle East"),
    ("Brazilië", "BRA", "Latin America and Caribbean"),
    ("onbekend", None, None),
    ("Marokaans", None, None),
    ("XXA", None, None),
    ("Soviet-Unie", None, None),
]
COMPARISONS = {
    "family_name": ["else", "jw_0.85", "jw_0.92", "key", "exact"],
    "given_name": ["else", "jw_0.85", "jw_0.92", "key", "exact"],
    "birth_date": [
        "else",
        "year_off_by_one",
        "same_year",
        "partial_same_year",
        "one_component_off",
        "day_month_swapped",
        "exact",
    ],
    "sex": ["else", "exact"],
    "v_number": ["else", "one_edit", "exact"],
}
THRESHOLD = 0.5


def _level_probs(n: int, match: bool) -> np.ndarray:
    """m (match) puts mass on the top levels, u (non-match) on the bottom."""
    base = np.geomspace(1, 30, n)
    p = base if match else base[::-1] ** 1.6
    return p / p.sum()


def write_example_run(
    run_dir: str | os.PathLike,
    n_records: int = 3000,
    *,
    seed: int = 0,
    periods: int = 2,
    quarantine_share: float = 0.02,
) -> Path:
    """Write a synthetic run of about ``n_records`` registrations into ``run_dir``."""
    rng = np.random.default_rng(seed)
    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)

    # persons and their registrations
    n_candidates = max(n_records, 10)
    lam = rng.gamma(1.2, 0.6, n_candidates)
    police = rng.poisson(lam)
    iom = (rng.random(n_candidates) < 0.08).astype(int)
    police = np.where(police + iom == 0, 1, police)
    counts = police + iom
    # as many persons as it takes to reach n_records registrations
    n_persons = max(int(np.searchsorted(np.cumsum(counts), n_records, side="right")), 2)
    police, iom, counts = police[:n_persons], iom[:n_persons], counts[:n_persons]
    person = np.repeat(np.arange(n_persons), counts)
    offsets = np.arange(person.size) - np.repeat(np.cumsum(counts) - counts, counts)
    is_iom = offsets >= np.repeat(police, counts)
    n = person.size
    source = np.where(is_iom, "iom", "police")
    fam = FAMILY[rng.integers(0, FAMILY.size, n_persons)][person]
    giv = GIVEN[rng.integers(0, GIVEN.size, n_persons)][person]
    year = rng.integers(1960, 2004, n_persons)[person]
    month = rng.integers(1, 13, n_persons)[person]
    day = rng.integers(1, 29, n_persons)[person]
    quality = rng.choice(
        ["full", "default", "month_year", "year_only", "missing"],
        n,
        p=[0.7, 0.15, 0.05, 0.05, 0.05],
    )
    nat_idx = rng.choice(
        len(NATIONALITY), n_persons, p=np.r_[np.full(8, 0.11), [0.06, 0.02, 0.02, 0.02]]
    )[person]
    nat_raw = np.array([NATIONALITY[k][0] for k in nat_idx], dtype=object)
    nat_iso = np.array([NATIONALITY[k][1] for k in nat_idx], dtype=object)
    nat_region = np.array([NATIONALITY[k][2] for k in nat_idx], dtype=object)
    vnum = np.char.zfill(rng.integers(0, 10**10, n_persons).astype(str), 10)[person].astype(object)
    vnum[rng.random(n) < 0.4] = None
    start = dt.date(2017, 7, 1)
    event = pl.Series([start]).cast(pl.Date).to_numpy()[0] + rng.integers(
        0, 365 * periods, n
    ).astype("timedelta64[D]")
    quarantined = rng.random(n) < quarantine_share
    sources_key = np.char.add(
        np.where(is_iom, "IOM-", "PSH"), np.char.zfill(np.arange(n).astype(str), 9)
    )
    birth = pl.date(pl.col("y"), pl.col("m"), pl.col("d"))
    frame = pl.DataFrame(
        {
            "source": source,
            "source_key": sources_key,
            "person": person,
            "y": year,
            "m": month,
            "d": day,
            "q": quality,
            "fam": fam,
            "giv": giv,
            "nat_raw": nat_raw.astype(str),
            "nat_iso": pl.Series(nat_iso.tolist(), dtype=pl.String),
            "nat_region": pl.Series(nat_region.tolist(), dtype=pl.String),
            "v": pl.Series(vnum.tolist(), dtype=pl.String),
            "event_date": event,
            "quarantined": quarantined,
        }
    )
    rec = (
        frame.filter(~pl.col("quarantined"))
        .with_row_index("record_id")
        .with_columns(pl.col("record_id").cast(pl.Int64))
    )
    records = rec.select(
        "record_id",
        "source",
        pl.lit("extracts/").add(pl.col("source")).add(".csv").alias("source_file"),
        (pl.int_range(pl.len()).over("source") + 1).cast(pl.Int64).alias("source_row"),
        "source_key",
        "event_date",
        pl.col("fam").alias("family_name_raw"),
        pl.col("giv").alias("given_name_raw"),
        pl.col("fam").str.to_lowercase().alias("family_name"),
        pl.col("giv").str.to_lowercase().alias("given_name"),
        pl.col("fam").str.to_lowercase().str.slice(0, 4).alias("family_name_key"),
        pl.col("giv").str.to_lowercase().str.slice(0, 4).alias("given_name_key"),
        pl.when(pl.col("q").is_in(["full", "default"]))
        .then(pl.when(pl.col("q") == "default").then(pl.date(pl.col("y"), 1, 1)).otherwise(birth))
        .alias("birth_date"),
        pl.when(pl.col("q") != "missing").then(pl.col("y")).cast(pl.Int64).alias("birth_year"),
        pl.when(pl.col("q").is_in(["full", "month_year"]))
        .then(pl.col("m"))
        .cast(pl.Int64)
        .alias("birth_month"),
        pl.when(pl.col("q") == "full").then(pl.col("d")).cast(pl.Int64).alias("birth_day"),
        pl.when(pl.col("q") != "missing")
        .then(pl.format("{}-{}-{}", "d", "m", "y"))
        .alias("birth_date_raw"),
        pl.col("q").alias("birth_date_quality"),
        pl.when(pl.col("person") % 5 == 0).then(pl.lit("F")).otherwise(pl.lit("M")).alias("sex"),
        pl.when(pl.col("person") % 5 == 0)
        .then(pl.lit("V"))
        .otherwise(pl.lit("M"))
        .alias("sex_raw"),
        pl.col("nat_iso").alias("nationality_iso3"),
        pl.col("nat_region").alias("nationality_region"),
        pl.col("nat_raw").alias("nationality_raw"),
        pl.col("v").alias("v_number"),
        pl.col("v").alias("v_number_raw"),
        pl.when(pl.col("source") == "police").then(pl.lit("Amsterdam")).alias("police_unit"),
        pl.when(pl.col("source") == "police").then(pl.lit("immigration_check")).alias("reason"),
        pl.when(pl.col("source") == "iom").then(pl.lit("irregular")).alias("client_category"),
        pl.lit(True).alias("in_target"),
        pl.when(pl.col("q") == "default")
        .then(pl.lit(["birth_date.default"]))
        .otherwise(pl.lit(None, dtype=pl.List(pl.String)))
        .alias("warnings"),
    )
    assert set(records["nationality_region"].drop_nulls().unique()) <= set(REGIONS)
    write_parquet(
        records,
        artifact_path(run, "records"),
        artifact="records",
        schema_version=SCHEMA_VERSIONS["records"],
        run_id="example",
    )

    qrows = frame.filter(pl.col("quarantined"))
    reason_pool = [
        ("birth_date.impossible", "birth_date", "impossible birth date"),
        ("event_date.missing", "event_date", "no registration date"),
        ("family_name.missing", "family_name", "no family name"),
    ]
    pick = rng.integers(0, len(reason_pool), qrows.height)
    two = rng.random(qrows.height) < 0.2
    reasons = [
        [reason_pool[k][0]] + ([reason_pool[(k + 1) % 3][0]] if t else [])
        for k, t in zip(pick, two, strict=True)
    ]
    columns = [
        [reason_pool[k][1]] + ([reason_pool[(k + 1) % 3][1]] if t else [])
        for k, t in zip(pick, two, strict=True)
    ]
    messages = [
        [reason_pool[k][2]] + ([reason_pool[(k + 1) % 3][2]] if t else [])
        for k, t in zip(pick, two, strict=True)
    ]
    quarantine = pl.DataFrame(
        {
            "source": qrows["source"],
            "source_file": ("extracts/" + qrows["source"] + ".csv"),
            "source_row": pl.Series(np.arange(1, qrows.height + 1), dtype=pl.Int64),
            "source_key": qrows["source_key"],
            "original": pl.Series(['{"achternaam": "' + f + '"}' for f in qrows["fam"].to_list()]),
            "reasons": pl.Series(reasons, dtype=pl.List(pl.String)),
            "columns": pl.Series(columns, dtype=pl.List(pl.String)),
            "messages": pl.Series(messages, dtype=pl.List(pl.String)),
        }
    )
    write_parquet(
        quarantine,
        artifact_path(run, "quarantine"),
        artifact="quarantine",
        schema_version=SCHEMA_VERSIONS["quarantine"],
        run_id="example",
    )
    write_parquet(
        frame.select("source", "source_key", pl.col("person").alias("person_id")),
        world_path(run, "truth_records"),
        artifact="truth_records",
        schema_version="1",
    )

    # candidate pairs: true pairs within persons (capped) plus random non-matches
    pid = rec["person"].to_numpy()
    rid = rec["record_id"].to_numpy()
    order = np.argsort(pid, kind="stable")
    sp = pid[order]
    same = sp[1:] == sp[:-1]
    left, right = [], []
    for lag in range(1, 6):  # pairs up to 5 apart within a person: chains and cliques
        ok_lag = np.zeros(sp.size - lag, dtype=bool)
        ok_lag[:] = sp[lag:] == sp[:-lag]
        left.append(order[:-lag][ok_lag])
        right.append(order[lag:][ok_lag])
    del same
    true_l = np.concatenate(left)
    true_r = np.concatenate(right)
    n_false = 3 * rid.size
    fl = rng.integers(0, rid.size, n_false)
    fr = rng.integers(0, rid.size, n_false)
    keep = pid[fl] != pid[fr]
    a = np.concatenate([true_l, fl[keep]])
    b = np.concatenate([true_r, fr[keep]])
    is_match = np.concatenate([np.ones(true_l.size, bool), np.zeros(int(keep.sum()), bool)])
    lo, hi = np.minimum(rid[a], rid[b]), np.maximum(rid[a], rid[b])
    uniq = pl.DataFrame({"l": lo, "r": hi, "match": is_match}).unique(
        ["l", "r"], keep="first", maintain_order=True
    )
    lo, hi, is_match = uniq["l"].to_numpy(), uniq["r"].to_numpy(), uniq["match"].to_numpy()
    n_pairs = lo.size
    m_probs = {c: _level_probs(len(levels), True) for c, levels in COMPARISONS.items()}
    u_probs = {c: _level_probs(len(levels), False) for c, levels in COMPARISONS.items()}
    weight = np.full(n_pairs, np.log2(0.05 / 0.95))
    gammas = {}
    for c, levels in COMPARISONS.items():
        g_match = rng.choice(len(levels), n_pairs, p=m_probs[c])
        g_non = rng.choice(len(levels), n_pairs, p=u_probs[c])
        g = np.where(is_match, g_match, g_non)
        missing = rng.random(n_pairs) < (0.4 if c == "v_number" else 0.03)
        weight += np.where(missing, 0.0, np.log2(m_probs[c][g] / u_probs[c][g]))
        gammas[f"gamma_{c}"] = pl.Series(np.where(missing, -1, g), dtype=pl.Int8)
    prob = 1.0 / (1.0 + np.exp2(-weight))
    rules = np.array(["family_name_key+birth_year", "given_name_key+birth_year", "v_number"])
    pairs = pl.DataFrame(
        {
            "record_id_l": lo,
            "record_id_r": hi,
            "blocking_rule": rules[rng.choice(3, n_pairs, p=[0.6, 0.3, 0.1])],
            **gammas,
            "match_weight": weight,
            "match_probability": prob,
        }
    )
    write_parquet(
        pairs,
        artifact_path(run, "pairs"),
        artifact="pairs",
        schema_version=SCHEMA_VERSIONS["pairs"],
        run_id="example",
    )
    linked = prob >= THRESHOLD
    graph = coo_matrix(
        (np.ones(int(linked.sum())), (lo[linked], hi[linked])), shape=(rid.size, rid.size)
    )
    _, labels = connected_components(graph, directed=False)
    sizes = np.bincount(labels)
    clusters = pl.DataFrame(
        {
            "record_id": rid,
            "source": rec["source"],
            "person_id": labels.astype(np.int64),
            "cluster_size": sizes[labels].astype(np.int64),
        }
    )
    write_parquet(
        clusters,
        artifact_path(run, "clusters"),
        artifact="clusters",
        schema_version=SCHEMA_VERSIONS["clusters"],
        run_id="example",
    )
    model = {
        "em_mode": "candidates",
        "lambda": 0.05,
        "prior_match_weight": float(np.log2(0.05 / 0.95)),
        "converged": True,
        "threshold": THRESHOLD,
        "em_trace": [{"iteration": i} for i in range(12)],
        "comparisons": [
            {
                "name": c,
                "kind": "string",
                "tf": c.endswith("name"),
                "levels": [
                    {
                        "gamma": k,
                        "level": name,
                        "m": float(m_probs[c][k]),
                        "u": float(u_probs[c][k]),
                        "match_weight": float(np.log2(m_probs[c][k] / u_probs[c][k])),
                    }
                    for k, name in enumerate(levels)
                ],
            }
            for c, levels in COMPARISONS.items()
        ],
    }
    write_json(model, artifact_path(run, "linkage_model"))
    per_rule = pairs.group_by("blocking_rule").len()
    metrics = {
        "records": int(rid.size),
        "candidate_pairs": int(n_pairs),
        "reduction_ratio": 1 - n_pairs / (rid.size * (rid.size - 1) / 2),
        "blocking_rules": [
            {
                "rule": r,
                "keys": r.split("+"),
                "pairs": int(c * 1.2),
                "pairs_first": int(c),
                "largest_block": 40,
                "blocks_skipped": 0,
                "records_in_skipped_blocks": 0,
            }
            for r, c in per_rule.iter_rows()
        ],
        "threshold": THRESHOLD,
        "threshold_rule": "fixed",
        "links": int(linked.sum()),
        "clustering": {
            "chaining": {
                "conflict_probability": 0.01,
                "clusters_with_conflicts": 0,
                "action": "split",
                "steps": [],
            }
        },
    }
    write_json(metrics, artifact_path(run, "linkage_metrics"))

    # a clerical review sample, labelled from the truth as a reviewer would
    from recapture.linkage.review import export_review_sample

    sample = export_review_sample(
        pairs,
        records,
        artifact_path(run, "review_labels"),
        threshold=THRESHOLD,
        sample_size=min(150, n_pairs),
        seed=seed,
    )
    truth_of = dict(zip(rid.tolist(), pid.tolist(), strict=True))
    labels = [
        "match" if truth_of[a] == truth_of[b] else "non-match"
        for a, b in zip(
            sample["record_id_l"].to_list(), sample["record_id_r"].to_list(), strict=True
        )
    ]
    sample.with_columns(pl.Series("label", labels)).write_csv(artifact_path(run, "review_labels"))

    # estimates per period
    frequencies = np.bincount(police[police > 0])
    estimates = []
    for k in range(periods):
        label = f"{2017 + k}-07-01/{2018 + k}-06-30"
        f1, f2 = int(frequencies[1]), int(frequencies[2]) if frequencies.size > 2 else 1
        n_obs = int((police > 0).sum())
        chao = n_obs + f1 * f1 / (2 * max(f2, 1))
        fitted = [
            {
                "k": j,
                "observed": int(frequencies[j]),
                "fitted": float(frequencies[j]) * (1.05 if j == 1 else 0.97),
            }
            for j in range(1, min(frequencies.size, 8))
        ]
        grow = 1 + 0.08 * k
        estimates.append(
            PopulationEstimate(
                model="zero_truncated_poisson",
                description="Zero-truncated Poisson regression",
                formula="~ sex + age_group",
                population_size=chao * 0.9 * grow,
                se=chao * 0.06,
                n_observed=n_obs,
                aic=5000.0 + k,
                bic=5030.0 + k,
                loglik=-2497.0,
                fitted_frequencies=fitted,
                strata=[
                    {
                        "variable": "sex",
                        "level": "M",
                        "n_observed": int(n_obs * 0.8),
                        "population_size": chao * 0.72 * grow,
                    },
                    {
                        "variable": "sex",
                        "level": "F",
                        "n_observed": int(n_obs * 0.2),
                        "population_size": chao * 0.18 * grow,
                    },
                ],
                extra={
                    "period": label,
                    "threshold_sensitivity": [
                        {
                            "threshold": t,
                            "population_size": chao * (0.8 + 0.2 * t),
                            "lower": chao * (0.7 + 0.2 * t),
                            "upper": chao * (0.9 + 0.2 * t),
                        }
                        for t in (0.3, 0.5, 0.7, 0.9)
                    ],
                },
            ).to_dict()
        )
        estimates.append(
            PopulationEstimate(
                model="chao",
                description="Chao lower bound",
                population_size=chao * grow,
                se=chao * 0.05,
                n_observed=n_obs,
                extra={"period": label},
            ).to_dict()
        )
        n_both = int(((police > 0) & (iom > 0)).sum())
        n_p, n_i = n_obs, int((iom > 0).sum())
        chapman = (n_p + 1) * (n_i + 1) / (n_both + 1) - 1
        estimates.append(
            PopulationEstimate(
                model="loglinear_dse",
                description="Dual systems estimation [A][B]",
                population_size=chapman * grow,
                se=chapman * 0.1,
                n_observed=int((counts > 0).sum()),
                aic=120.0,
                bic=125.0,
                extra={
                    "period": label,
                    "dependence_sensitivity": [
                        {"theta": float(t), "population_size": chapman * t}
                        for t in (0.25, 0.5, 1.0, 2.0, 4.0)
                    ],
                    "linkage_aware": {
                        "method": "multiple imputation",
                        "population_size": chapman * grow * 1.02,
                        "se": chapman * 0.13,
                        "lower": chapman * 0.8,
                        "upper": chapman * 1.3,
                        "linkage_variance_share": 0.3,
                    },
                },
            ).to_dict()
        )
    write_json(estimates, artifact_path(run, "estimates"))
    write_json(
        {
            "run_id": "example",
            "seed": seed,
            "created": "2026-01-01T00:00:00Z",
            "truth": WORLD_FILES["truth_records"],
        },
        artifact_path(run, "manifest"),
    )
    return run


def write_demo_run(run_dir: str | os.PathLike, size: int = 3000, *, seed: int = 1) -> Path:
    """A small run made by the real stages: simulate → validate → link → persons → estimate.

    The artifacts are exactly what the stages write, so a report test on this run fails
    when a stage's output format drifts. The simulated truth is kept at
    ``run_dir/truth/records.parquet``, where the linkage report finds it.
    """
    import shutil

    from recapture import progress
    from recapture.estimators import estimate
    from recapture.linkage import LinkageSettings, link_records, write_linkage
    from recapture.linkage.engine import read_records
    from recapture.persons import Period, build_persons, write_persons
    from recapture.synthetic import load_config, run_simulation
    from recapture.validation import validate_extracts

    run = Path(run_dir)
    extracts = run / "extracts"
    quiet = progress._quiet
    progress.set_quiet(True)
    try:
        world, _ = run_simulation(load_config(size=size, seed=seed), extracts)
        shutil.copytree(extracts / "truth", run / "truth", dirs_exist_ok=True)
        validate_extracts(
            [(world_path(extracts, "police"), "police"), (world_path(extracts, "iom"), "iom")],
            run,
            as_of=dt.date(2026, 1, 1),
            run_id="demo",
        )
        settings = LinkageSettings.default()
        settings.seed = seed
        write_linkage(
            link_records(read_records(artifact_path(run, "records")), settings), run, run_id="demo"
        )
        records = pl.read_parquet(artifact_path(run, "records"))
        clusters = pl.read_parquet(artifact_path(run, "clusters"))
        pairs = pl.read_parquet(artifact_path(run, "pairs"))
        period = Period.year_from_july(2017)
        persons, _counts = build_persons(
            records, clusters, period, sources=["police", "iom"], pairs=pairs
        )
        write_persons(
            persons,
            artifact_path(run, "persons"),
            sources=["police", "iom"],
            periods=[period],
            run_id="demo",
        )
        police = persons.filter(pl.col("n_police") > 0)
        fits = [
            ("ztp", estimate(police, "ztpoisson", count="n_police", formula="~ sex")),
            ("ztnb", estimate(police, "ztnegbin", count="n_police", formula="~ sex")),
            ("chao", estimate(police, "chao", count="n_police")),
            (
                "dse",
                estimate(
                    persons,
                    "loglinear",
                    lists=["in_police", "in_iom"],
                    dependence_thetas=[0.5, 1.0, 2.0, 4.0],
                ),
            ),
        ]
        entries = []
        for name, result in fits:
            entry = result.to_dict()
            entry.update({"name": name, "period": period.label})
            entry["extra"]["period"] = period.label
            entries.append(entry)
        write_json(entries, artifact_path(run, "estimates"))
    finally:
        progress.set_quiet(quiet)
    return run
