"""Accuracy and speed of the single-source count models.

Run: ``python bench/bench_estimators_count.py`` (``--no-docs`` to only print). Writes its
section of docs/benchmarks.md: every issue-5 reference value next to the measured one, the
1995 full-model fit with 1,000 parametric bootstrap replicates, and a 1,000,000-person fit
with 10 covariates.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

from recapture.estimators import estimate

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_line  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
DOC = ROOT / "docs" / "benchmarks.md"
START, END = "<!-- bench_estimators_count:start -->", "<!-- bench_estimators_count:end -->"
FULL = "~ gender + age + reason + nation"

# (label, data, model, formula, count, quantity, target, relative tolerance)
BARS = [
    ("ZTP full: N̂", "nl", "ztpoisson", FULL, "N", 12_691.45, 1e-6),
    ("ZTP full: SE", "nl", "ztpoisson", FULL, "se", 2_809.51, 1e-4),
    ("ZTP full: CI lower", "nl", "ztpoisson", FULL, "lo", 7_184.8, 1e-4),
    ("ZTP full: CI upper", "nl", "ztpoisson", FULL, "hi", 18_198.1, 1e-4),
    ("ZTP full: log-likelihood", "nl", "ztpoisson", FULL, "loglik", -848.448, 1e-6),
    (
        "ZTP gender+age+nation: N̂",
        "nl",
        "ztpoisson",
        "~ gender + age + nation",
        "N",
        12_690.35,
        1e-6,
    ),
    (
        "ZTP gender+age+nation: SE",
        "nl",
        "ztpoisson",
        "~ gender + age + nation",
        "se",
        2_808.17,
        1e-4,
    ),
    ("ZTP intercept only: N̂", "nl", "ztpoisson", "~ 1", "N", 7_079.93, 1e-6),
    ("ZTP intercept only: SE", "nl", "ztpoisson", "~ 1", "se", 365.75, 1e-4),
    ("Zelterman full: N̂", "nl", "zelterman", FULL, "N", 16_188.30, 1e-6),
    ("Zelterman full: SE", "nl", "zelterman", FULL, "se", 3_166.09, 1e-4),
    ("Zelterman gender+age: N̂", "nl", "zelterman", "~ gender + age", "N", 10_213, 5e-5),
    ("Zelterman gender+age: CI lower", "nl", "zelterman", "~ gender + age", "lo", 8_416, 1e-4),
    ("Zelterman gender+age: CI upper", "nl", "zelterman", "~ gender + age", "hi", 12_009, 1e-4),
    ("Zelterman none: N̂", "nl", "zelterman", "~ 1", "N", 9_424.56, 1e-6),
    ("Zelterman none: CI lower", "nl", "zelterman", "~ 1", "lo", 8_084, 1e-4),
    ("Zelterman none: CI upper", "nl", "zelterman", "~ 1", "hi", 10_765, 1e-4),
    ("Chao full: N̂", "nl", "chao", FULL, "N", 16_042.20, 1e-6),
    ("Chao full: SE", "nl", "chao", FULL, "se", 3_151.38, 1e-4),
    ("Chao none: N̂", "nl", "chao", "~ 1", "N", 9_273.51, 1e-6),
    ("ZT geometric full: N̂", "nl", "ztgeom", FULL, "N", 24_671.33, 1e-6),
    ("ZT geometric full: SE", "nl", "ztgeom", FULL, "se", 5_672.2, 1e-4),
    ("OIZT geometric full: N̂", "nl", "oiztgeom", FULL, "N", 7_551.43, 1e-6),
    ("ZTOI geometric full: N̂", "nl", "ztoigeom", FULL, "N", 18_111.68, 1e-6),
    ("OIZT Poisson full: N̂", "nl", "oiztpoisson", FULL, "N", 2_934.30, 1e-6),
    ("ZTOI Poisson full: N̂", "nl", "ztoipoisson", FULL, "N", 6_766.69, 1e-6),
    ("farms ZTP: N̂", "farms", "ztpoisson", "~ log_size + log_distance + C_TYPE", "N", 18_346, 1e-3),
    (
        "farms ZTP: CI lower",
        "farms",
        "ztpoisson",
        "~ log_size + log_distance + C_TYPE",
        "lo",
        17_932,
        1e-3,
    ),
    (
        "farms ZTP: CI upper",
        "farms",
        "ztpoisson",
        "~ log_size + log_distance + C_TYPE",
        "hi",
        18_760,
        1e-3,
    ),
    ("farms Chao: N̂", "farms", "chao", "~ log_size + log_distance + C_TYPE", "N", 21_657, 1e-3),
    (
        "farms Chao: CI lower",
        "farms",
        "chao",
        "~ log_size + log_distance + C_TYPE",
        "lo",
        20_883,
        1e-3,
    ),
    (
        "farms Chao: CI upper",
        "farms",
        "chao",
        "~ log_size + log_distance + C_TYPE",
        "hi",
        22_430,
        1e-3,
    ),
]


def timed(fn, repeat: int = 1):
    walls, cpus, out = [], [], None
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    return out, statistics.median(walls), statistics.median(cpus)


def accuracy(data: dict[str, pl.DataFrame]) -> list[tuple]:
    rows, cache = [], {}
    for label, which, model, formula, quantity, target, tol in BARS:
        key = (which, model, formula)
        if key not in cache:
            count = "capture" if which == "nl" else "TOTAL_SUB"
            cache[key] = estimate(data[which], model, formula=formula, count=count, dfpopsize=False)
        r = cache[key]
        lo, hi = r.confint("normal")
        value = {"N": r.population_size, "se": r.se, "lo": lo, "hi": hi, "loglik": r.loglik}[
            quantity
        ]
        rel = abs(value - target) / abs(target)
        rows.append((label, target, value, rel, tol, rel <= tol))
    return rows


def million(n: int = 1_000_000, continuous: bool = True, seed: int = 1) -> pl.DataFrame:
    """n observed persons with 10 covariates (6 categorical, and 4 continuous or categorical)."""
    rng = np.random.default_rng(seed)
    size = int(n * 3.6)
    cols: dict[str, np.ndarray] = {
        "sex": rng.choice(["F", "M"], size),
        "age": rng.choice(["<25", "25-40", "40-60", "60+"], size),
        "region": rng.choice(["NAF", "SSA", "ME", "TR", "EE", "AS", "LA", "OT"], size),
        "reason": rng.choice(["check", "crime"], size),
        "city": rng.choice(["A", "R", "D", "U", "O"], size),
        "year": rng.choice(["2017", "2018"], size),
    }
    for j in range(4):
        cols[f"x{j}"] = rng.normal(0, 1, size) if continuous else rng.choice(["a", "b", "c"], size)
    eta = (
        -1.2
        + 0.3 * (cols["sex"] == "M")
        + 0.2 * (cols["reason"] == "crime")
        - 0.3 * (cols["age"] == "60+")
    )
    if continuous:
        eta = eta + 0.1 * cols["x0"] - 0.1 * cols["x1"]
    y = rng.poisson(np.exp(eta))
    return pl.DataFrame(cols).with_columns(pl.Series("y", y)).filter(pl.col("y") > 0).head(n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--no-docs", action="store_true", help="print only")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    data = {
        "nl": pl.read_csv(DATA / "netherlandsimmigrant.csv"),
        "farms": pl.read_csv(DATA / "farmsubmission.csv"),
    }

    rows = accuracy(data)
    for row in rows:
        print(
            f"{row[0]:<34} target {row[1]:>12,.2f}  measured {row[2]:>14,.4f}  rel {row[3]:.1e}  {'pass' if row[5] else 'FAIL'}"
        )

    boot_opts = dict(
        formula=FULL,
        count="capture",
        variance="bootstrap",
        bootstrap_type="parametric",
        replicates=1000,
        seed=1,
    )
    boot, boot_wall, boot_cpu = timed(
        lambda: estimate(data["nl"], "ztpoisson", **boot_opts), repeat=3
    )
    boot2, boot2_wall, _ = timed(
        lambda: estimate(data["nl"], "ztpoisson", workers=2, **boot_opts), repeat=1
    )
    raw, raw_wall, _ = timed(
        lambda: estimate(data["nl"], "ztpoisson", bootstrap_penalty="none", **boot_opts)
    )
    lo, hi = boot.confint("bootstrap")
    raw_lo, raw_hi = raw.confint("bootstrap")
    print(
        f"ZTP full + 1000 parametric bootstrap: {boot_wall:.2f} s wall ({boot_cpu:.2f} s CPU); 2 workers {boot2_wall:.2f} s"
    )
    print(
        f"  percentile 95%: {lo:,.0f} – {hi:,.0f}; flagged {boot.bootstrap_info['share_flagged']:.1%}; unstabilised {raw_lo:,.0f} – {raw_hi:,.3g}"
    )

    big = {}
    for label, cont in [
        ("6 categorical + 4 continuous covariates", True),
        ("10 categorical covariates", False),
    ]:
        frame = million(continuous=cont)
        formula = "~ sex + age + region + reason + city + year + x0 + x1 + x2 + x3"
        r, wall, cpu = timed(
            lambda frame=frame, formula=formula: estimate(
                frame, "ztpoisson", formula=formula, count="y"
            )
        )
        big[label] = (
            frame.height,
            r.diagnostics["n_patterns"],
            wall,
            cpu,
            r.population_size,
            r.se,
            r.diagnostics["dfpopsize_method"],
        )
        print(
            f"1M persons, {label}: {wall:.2f} s wall ({cpu:.2f} s CPU), {r.diagnostics['n_patterns']:,} patterns, N̂ {r.population_size:,.0f}"
        )
    load_after = os.getloadavg()[0]

    if args.no_docs:
        return
    lines = [
        START,
        "## Single-source count models (`bench/bench_estimators_count.py`)",
        "",
        f"Command: `python bench/bench_estimators_count.py`. Machine: {machine_line()}. "
        f"Date: {dt.date.today().isoformat()}. Load average {load_before:.1f} before and "
        f"{load_after:.1f} after the run: the machine was shared with other jobs, so wall-clock "
        "times are upper bounds; CPU times (this process, all threads) are given as well and "
        "bound the wall time on an idle machine.",
        "",
        "### Reference values (issue 5)",
        "",
        "| quantity | reference | measured | relative difference | tolerance | |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for label, target, value, rel, tol, ok in rows:
        lines.append(
            f"| {label} | {target:,.2f} | {value:,.4f} | {rel:.1e} | {tol:.0e} | {'pass' if ok else '**fail**'} |"
        )
    lines += [
        "",
        "References: van der Heijden et al. (2003) for the zero-truncated Poisson full model; "
        "singleRcapture for the others (observed information, normal interval); Böhning et al. "
        "(2013) data for the farms.",
        "",
        "### Speed",
        "",
        "| task | wall | CPU |",
        "|---|---:|---:|",
        f"| 1995 data, full ZTP + 1,000 parametric bootstrap replicates (median of 3; singleRcapture: 13.7 s for 500) | {boot_wall:.2f} s | {boot_cpu:.2f} s |",
        f"| the same with `workers=2` (process start-up included) | {boot2_wall:.2f} s | |",
    ]
    for label, (n, patterns, wall, cpu, n_hat, se, method) in big.items():
        lines.append(
            f"| {n:,} persons, {label} ({patterns:,} distinct patterns), full fit with strata and "
            f"diagnostics (dfpopsize: {method}; N̂ {n_hat:,.0f}, SE {se:,.0f}) | {wall:.2f} s | {cpu:.2f} s |"
        )
    lines += [
        "",
        f"Robust bootstrap on the 1995 full model: percentile 95% interval {lo:,.0f} – {hi:,.0f} "
        f"({boot.bootstrap_info['share_flagged']:.1%} of replicates flagged and refitted with Firth's "
        f"penalty). The same replicates without stabilisation: {raw_lo:,.0f} – {raw_hi:.3g}.",
        END,
    ]
    section = "\n".join(lines) + "\n"
    text = DOC.read_text(encoding="utf-8")
    if START in text and END in text:
        text = re.sub(
            re.escape(START) + r".*?" + re.escape(END) + r"\n?", lambda _: section, text, flags=re.S
        )
    else:
        text = text.rstrip("\n") + "\n\n" + section
    DOC.write_text(text, encoding="utf-8")
    print(f"wrote {DOC}")


if __name__ == "__main__":
    main()
