"""Dual systems estimation on simulated police × IOM worlds with covariate-driven heterogeneity.

Each world draws N persons with two covariates (region group, sex); the probability of
appearing in each source depends on them through additive logits, and the two sources are
independent given the covariates (the assumption of the log-linear model [PX][IX]). The
covariate log-linear model [police,region][police,sex][iom,region][iom,sex][region,sex] is
then the true model; the covariate-free Petersen/Chapman estimates are biased because the
heterogeneity is shared by both sources.

    python bench/bench_dse_simulation.py [--worlds 200] [--population 50000] [--seed 2026] [--no-docs]

Prints and writes the ``dse_simulation`` section of docs/benchmarks.md: mean N̂, relative bias,
RMSE and 95% interval coverage of each estimator over the worlds.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_linkage_common import machine, machine_line, table, write_section  # noqa: E402

from recapture.estimators.dse import Chapman, Petersen  # noqa: E402
from recapture.estimators.loglinear import LogLinearModel  # noqa: E402

REGIONS = np.array(["North Africa", "Sub-Saharan Africa", "Eastern Europe", "Asia", "Other"])
REGION_P = np.array([0.30, 0.20, 0.20, 0.15, 0.15])
# logit effects: police sees North Africans and men more, IOM Eastern Europeans and Asians
POLICE_LOGIT = {"base": -2.1, "region": np.array([0.9, 0.3, -0.6, -0.8, 0.0]), "male": 0.7}
IOM_LOGIT = {"base": -2.0, "region": np.array([0.6, 0.4, -0.7, -0.5, 0.0]), "male": 0.5}
MODEL = "[police,region][police,sex][iom,region][iom,sex][region,sex]"


def simulate(rng: np.random.Generator, N: int) -> pl.DataFrame:
    """One world: per-person covariates, then independent captures given the covariates."""
    region = rng.choice(len(REGIONS), size=N, p=REGION_P)
    male = rng.random(N) < 0.7
    lp = POLICE_LOGIT["base"] + POLICE_LOGIT["region"][region] + POLICE_LOGIT["male"] * male
    li = IOM_LOGIT["base"] + IOM_LOGIT["region"][region] + IOM_LOGIT["male"] * male
    police = rng.random(N) < 1 / (1 + np.exp(-lp))
    iom = rng.random(N) < 1 / (1 + np.exp(-li))
    seen = police | iom
    return pl.DataFrame(
        {
            "police": police[seen].astype(np.int8),
            "iom": iom[seen].astype(np.int8),
            "region": REGIONS[region[seen]],
            "sex": np.where(male[seen], "M", "F"),
        }
    )


def run(worlds: int, N: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    estimators = {
        "log-linear [PX][IX] (covariates)": lambda d: LogLinearModel(
            MODEL, covariates=["region", "sex"]
        ).fit(d, lists=["police", "iom"]),
        "Petersen (no covariates)": lambda d: Petersen(dependence_thetas=None).fit(
            d, lists=["police", "iom"]
        ),
        "Chapman (no covariates)": lambda d: Chapman(dependence_thetas=None).fit(
            d, lists=["police", "iom"]
        ),
    }
    intervals = {
        "log-linear [PX][IX] (covariates)": ["profile", "lognormal", "normal"],
        "Petersen (no covariates)": ["profile", "lognormal", "normal"],
        "Chapman (no covariates)": ["lognormal", "normal"],
    }
    est = {k: [] for k in estimators}
    cover = {(k, m): [] for k in estimators for m in intervals[k]}
    width = {(k, m): [] for k in estimators for m in intervals[k]}
    n_obs, m_both = [], []
    t0 = time.perf_counter()
    for _ in range(worlds):
        data = simulate(rng, N)
        n_obs.append(data.height)
        m_both.append(int(((data["police"] == 1) & (data["iom"] == 1)).sum()))
        for name, fit in estimators.items():
            res = fit(data)
            est[name].append(res.population_size)
            for method in intervals[name]:
                lo, hi = res.confint(method, 0.95)
                cover[(name, method)].append(lo <= N <= hi)
                width[(name, method)].append(hi - lo)
    seconds = time.perf_counter() - t0
    rows = []
    for name in estimators:
        x = np.array(est[name])
        rows.append(
            {
                "estimator": name,
                "mean": float(x.mean()),
                "rel_bias": float(x.mean() / N - 1),
                "mc_se_rel": float(x.std(ddof=1) / np.sqrt(len(x)) / N),
                "rmse": float(np.sqrt(np.mean((x - N) ** 2))),
                "coverage": {m: float(np.mean(cover[(name, m)])) for m in intervals[name]},
                "width": {m: float(np.mean(width[(name, m)])) for m in intervals[name]},
            }
        )
    return {
        "worlds": worlds,
        "population": N,
        "seed": seed,
        "mean_observed": float(np.mean(n_obs)),
        "mean_both": float(np.mean(m_both)),
        "seconds": seconds,
        "rows": rows,
    }


def markdown(res: dict, info: dict) -> str:
    N = res["population"]
    lines = [
        "## Dual systems estimation: simulated police × IOM worlds",
        "",
        f"Command: `python bench/bench_dse_simulation.py --worlds {res['worlds']} --population {N} --seed {res['seed']}`",
        "",
        machine_line(info),
        "",
        f"{res['worlds']} worlds of N = {N:,} people. Region group (5 levels) and sex drive the probability of "
        "appearing in the police and the IOM registrations through additive logits; the two "
        "sources are independent given the covariates. On average "
        f"{res['mean_observed']:,.0f} people are observed, {res['mean_both']:,.0f} in both sources. "
        f"The covariate model is `{MODEL}` (the true model); Petersen and Chapman ignore the covariates. "
        f"Wall time {res['seconds']:.0f} s for all worlds and estimators.",
        "",
    ]
    header = [
        "estimator",
        "mean N̂",
        "relative bias",
        "MC s.e. of bias",
        "RMSE",
        "95% coverage",
        "mean interval width",
    ]
    body = []
    for r in res["rows"]:
        cov = ", ".join(f"{m} {v:.1%}" for m, v in r["coverage"].items())
        wid = ", ".join(f"{m} {v:,.0f}" for m, v in r["width"].items())
        body.append(
            [
                r["estimator"],
                f"{r['mean']:,.0f}",
                f"{r['rel_bias']:+.2%}",
                f"{r['mc_se_rel']:.2%}",
                f"{r['rmse']:,.0f}",
                cov,
                wid,
            ]
        )
    lines.append(table(header, body))
    lines += [
        "",
        "Targets (issue 6): the covariate log-linear estimate's mean within 2% of the truth and 95% "
        "coverage between 93% and 97%, while the covariate-free Petersen estimate is biased. The "
        "coverage of an exact 95% interval over this many worlds has a Monte Carlo standard error "
        f"of about {np.sqrt(0.95 * 0.05 / res['worlds']):.1%}.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worlds", type=int, default=200)
    ap.add_argument("--population", type=int, default=50000)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--no-docs", action="store_true")
    args = ap.parse_args(argv)
    info = machine()
    res = run(args.worlds, args.population, args.seed)
    text = markdown(res, info)
    print(text)
    if not args.no_docs:
        write_section("dse_simulation", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
