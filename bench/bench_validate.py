"""Validation stage at scale: 1,000,000 police rows read, checked, standardised and written.

    python bench/bench_validate.py                # 1,000,000 rows, updates docs/benchmarks.md
    python bench/bench_validate.py --rows 100000 --no-docs

The extract is built from a simulated world's police extract (``recapture.synthetic``): its
rows are resampled column group by column group with a seeded generator, so names, birth
dates, nationality forms and units recombine into many distinct rows; a share of family
names gets an extra syllable (more distinct spellings than the world has), and a few faults
are injected so the quarantine path runs too (impossible and future birth dates, duplicate
registration ids, unknown nationality texts, mistyped V-numbers). It is written as the
police layout (``;``, UTF-8 with BOM, dd-mm-yyyy). The validation runs in its own process,
whose wall time and peak resident memory (``ru_maxrss``) are reported. Results go to the
``validate`` section of docs/benchmarks.md. Targets: under 60 s and under 4 GiB.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_linkage_common import (  # noqa: E402
    finish_worker,
    machine,
    machine_line,
    run_worker,
    table,
    write_section,
)

from recapture.validation import load_source_definition  # noqa: E402

#: The police extract's columns, in the order its source definition names them.
HEADER = list(load_source_definition("police").columns.values())
SYLLABLES = [
    "ova",
    "ski",
    "ani",
    "oui",
    "ic",
    "enko",
    "yan",
    "di",
    "ou",
    "el",
    "ami",
    "ez",
    "ov",
    "in",
    "a",
    "o",
    "es",
    "is",
    "ari",
    "uk",
]
AS_OF = dt.date(2019, 1, 1)


def police_pool(seed: int, size: int, workdir: Path) -> tuple[pl.DataFrame, str]:
    """Police rows of a simulated world (all text), or a small built-in pool if the
    simulator is unavailable."""
    try:
        from recapture import progress
        from recapture.synthetic import SimulationConfig, simulate_world, write_world

        progress.set_quiet(True)
        world = simulate_world(SimulationConfig(size=size, seed=seed))
        paths = write_world(world, workdir / "world")
        pool = pl.read_csv(paths["police"], separator=";", infer_schema=False, encoding="utf8")
        pool = pool.rename({pool.columns[0]: pool.columns[0].lstrip("\ufeff")})
        return pool, f"simulated world (size {size:,}, seed {seed}): {pool.height:,} police rows"
    except Exception as exc:  # noqa: BLE001 — fall back to a generated pool
        return generated_pool(
            seed, 20_000
        ), f"generated pool of 20,000 rows (simulator unavailable: {exc})"


GIVEN = [
    "Mohamed",
    "Mohammed",
    "Muhammad",
    "Ahmed",
    "Youssef",
    "Yusuf",
    "Ali",
    "Omar",
    "Hassan",
    "Hussein",
    "Ibrahim",
    "Abdelkader",
    "Abdel Kader",
    "Mustafa",
    "Karim",
    "Said",
    "Rachid",
    "Khalid",
    "Oleksandr",
    "Ivan",
    "Sergii",
    "Dmytro",
    "Andrei",
    "Wei",
    "Li",
    "Ming",
    "Selam",
    "Fatima",
    "Fatma",
    "Amina",
    "Aïcha",
    "Mariam",
    "Natalia",
    "Olena",
    "Kwame",
    "Kofi",
    "Ama",
    "Abdoulaye",
    "Mamadou",
    "Şükrü",
    "Ayşe",
    "Mehmet",
    "Gökhan",
    "José",
    "María",
    "Luis",
]
UNITS = [
    "Amsterdam",
    "Rotterdam",
    "Den Haag",
    "Midden-Nederland",
    "Noord-Holland",
    "Noord-Nederland",
    "Oost-Nederland",
    "Oost-Brabant",
    "Zeeland-West-Brabant",
    "Limburg",
]
REASONS = ["vreemdelingencontrole", "strafbaar feit", "overig"]


def generated_pool(seed: int, n: int) -> pl.DataFrame:
    """A police-layout pool without the simulator: syllable-built family names with
    diacritics, common given names, partial and default birth dates, nationality written
    as Dutch name, adjective or ISO code, V-numbers for about half."""
    from recapture.reference import countries

    rng = np.random.default_rng(seed)
    parts = np.array(["el ", "al ", "ben ", "", "", "", ""])
    stems = np.array(
        [
            "Am",
            "Ben",
            "Ch",
            "Dj",
            "Ez",
            "Far",
            "Gh",
            "Ha",
            "Ib",
            "Kh",
            "Lou",
            "Ma",
            "Na",
            "Ou",
            "Ra",
            "Sa",
            "Ta",
            "Ya",
            "Za",
            "Öz",
            "Şa",
            "Kow",
            "Shev",
            "Sjev",
            "Nguy",
            "Tes",
            "Oko",
            "Diall",
            "Ba",
            "Ko",
        ]
    )
    ends = np.array(
        [
            "rani",
            "ali",
            "aoui",
            "chenko",
            "tsjenko",
            "ski",
            "ov",
            "ova",
            "türk",
            "en",
            "faye",
            "ye",
            "lo",
            "di",
            "ouf",
            "sse",
            "ane",
            "ić",
            "yan",
            "ez",
        ]
    )
    family = (
        parts[rng.integers(0, len(parts), n)]
        + stems[rng.integers(0, len(stems), n)]
        + ends[rng.integers(0, len(ends), n)]
        + np.where(rng.random(n) < 0.5, ends[rng.integers(0, len(ends), n)], "")
    )
    family = np.char.title(family.astype(str))
    given = np.array(GIVEN)[rng.integers(0, len(GIVEN), n)]
    year = rng.integers(1950, 2001, n)
    month = rng.integers(1, 13, n)
    day = rng.integers(1, 29, n)
    kind = rng.random(n)
    birth = [
        f"00-00-{y}" if k < 0.03 else f"01-01-{y}" if k < 0.08 else f"{d:02d}-{m:02d}-{y}"
        for y, m, d, k in zip(year, month, day, kind, strict=True)
    ]
    table = countries()
    forms = np.array(
        table["name_nl"].to_list()
        + table["adjective_nl"].to_list()
        + table["iso2"].to_list()
        + table["iso3"].to_list()
    )
    forms = forms[forms != ""]
    vnr = np.where(rng.random(n) < 0.55, [f"{v:010d}" for v in rng.integers(10**9, 10**10, n)], "")
    return pl.DataFrame(
        {
            "registratienummer": [f"PSH{i:09d}" for i in range(n)],
            "achternaam": family,
            "voornamen": given,
            "geboortedatum": birth,
            "geslacht": np.array(["M", "M", "M", "V", "O"])[rng.integers(0, 5, n)],
            "nationaliteit": forms[rng.integers(0, len(forms), n)],
            "vnummer": vnr,
            "datum_staandehouding": ["05-01-2018"] * n,
            "eenheid": np.array(UNITS)[rng.integers(0, len(UNITS), n)],
            "reden": np.array(REASONS)[rng.integers(0, len(REASONS), n)],
        }
    )


def build_extract(rows: int, seed: int, pool: pl.DataFrame, path: Path) -> dict:
    rng = np.random.default_rng(seed)
    n_pool = pool.height

    def pick(cols: list[str]) -> pl.DataFrame:
        return pool.select(cols)[rng.integers(0, n_pool, rows)]

    names = pick(["achternaam", "voornamen"])
    person = pick(["geboortedatum", "geslacht", "nationaliteit", "vnummer"])
    place = pick(["eenheid", "reden"])
    syllable = np.array(SYLLABLES)[rng.integers(0, len(SYLLABLES), rows)]
    extend = rng.random(rows) < 0.5
    family = pl.Series(names["achternaam"]).to_numpy().astype(object)
    family[extend] = family[extend] + syllable[extend]
    start = dt.date(2014, 1, 1)
    calendar = pl.Series([start + dt.timedelta(days=d) for d in range(365 * 5)]).dt.strftime(
        "%d-%m-%Y"
    )
    event_dates = calendar[rng.integers(0, calendar.len(), rows)]
    frame = pl.DataFrame(
        {
            "registratienummer": [f"PSH{300_000_000 + i:09d}" for i in range(rows)],
            "achternaam": pl.Series(family, dtype=pl.String),
            "voornamen": names["voornamen"],
            "geboortedatum": person["geboortedatum"],
            "geslacht": person["geslacht"],
            "nationaliteit": person["nationaliteit"],
            "vnummer": person["vnummer"],
            "datum_staandehouding": event_dates,
            "eenheid": place["eenheid"],
            "reden": place["reden"],
        }
    )
    # injected faults
    fault = rng.random(rows)
    frame = frame.with_columns(
        pl.when(pl.Series(fault < 0.004))
        .then(pl.lit("31-02-1990"))
        .when(pl.Series((fault >= 0.004) & (fault < 0.006)))
        .then(pl.lit("01-01-2031"))
        .otherwise(pl.col("geboortedatum"))
        .alias("geboortedatum"),
        pl.when(pl.Series((fault >= 0.006) & (fault < 0.011)))
        .then(pl.lit("Atlantis"))
        .otherwise(pl.col("nationaliteit"))
        .alias("nationaliteit"),
        pl.when(pl.Series((fault >= 0.011) & (fault < 0.021)))
        .then(pl.lit("12345"))
        .otherwise(pl.col("vnummer"))
        .alias("vnummer"),
    )
    dup = np.flatnonzero((fault >= 0.021) & (fault < 0.023))
    keys = frame["registratienummer"].to_numpy().copy()
    keys[dup] = keys[np.maximum(dup - 1, 0)]
    frame = frame.with_columns(pl.Series("registratienummer", keys))
    with open(path, "wb") as handle:
        handle.write(b"\xef\xbb\xbf")
        frame.write_csv(handle, separator=";")
    return {
        "rows": rows,
        "bytes": path.stat().st_size,
        "distinct_family_names": frame["achternaam"].n_unique(),
        "distinct_given_names": frame["voornamen"].n_unique(),
        "distinct_nationality_texts": frame["nationaliteit"].n_unique(),
    }


def worker(args) -> None:
    from recapture import progress
    from recapture.validation import validate_extracts

    progress.set_quiet(True)
    start = time.perf_counter()
    result = validate_extracts([(args.extract, "police")], args.out, as_of=AS_OF)
    wall = time.perf_counter() - start
    s = result.summary
    finish_worker(
        args.result,
        {
            "wall_s": wall,
            "rows_in": s["totals"]["rows_in"],
            "records": s["totals"]["records"],
            "quarantined": s["totals"]["quarantined"],
            "reconciled": s["totals"]["reconciled"],
            "quarantine_by_reason": s["quarantine_by_reason"],
            "warnings": s["warnings"],
        },
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument(
        "--world-size",
        type=int,
        default=60_000,
        help="size of the simulated world used as the pool",
    )
    ap.add_argument(
        "--no-docs", action="store_true", help="print only; do not update docs/benchmarks.md"
    )
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--extract", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args)
        return
    with tempfile.TemporaryDirectory(prefix="bench_validate_") as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        pool, pool_note = police_pool(args.seed, args.world_size, work)
        extract = work / "police.csv"
        info = build_extract(args.rows, args.seed, pool, extract)
        print(
            f"extract: {info['rows']:,} rows, {info['bytes'] / 2**20:.0f} MiB, built in "
            f"{time.perf_counter() - t0:.0f} s from {pool_note}"
        )
        load = os.getloadavg()[0]
        res = run_worker(
            sys.executable, Path(__file__), ["--extract", str(extract), "--out", str(work / "run")]
        )
    if res.get("status") != "ok":
        print(json.dumps(res, indent=2))
        raise SystemExit(1)
    ok_time, ok_mem = res["wall_s"] < 60, res["peak_rss_gib"] < 4
    print(
        f"validate: {res['wall_s']:.1f} s, peak {res['peak_rss_gib']:.2f} GiB "
        f"({res['records']:,} records, {res['quarantined']:,} quarantined, reconciled={res['reconciled']})"
    )
    print(
        "targets: < 60 s",
        "met" if ok_time else "MISSED",
        "; < 4 GiB",
        "met" if ok_mem else "MISSED",
    )
    rows = [
        ["rows in", f"{res['rows_in']:,}"],
        ["extract size", f"{info['bytes'] / 2**20:.0f} MiB (';', UTF-8 with BOM)"],
        [
            "distinct family / given names",
            f"{info['distinct_family_names']:,} / {info['distinct_given_names']:,}",
        ],
        ["distinct nationality texts", f"{info['distinct_nationality_texts']:,}"],
        [
            "records / quarantined",
            f"{res['records']:,} / {res['quarantined']:,} (reconciled: {res['reconciled']})",
        ],
        [
            "quarantine reasons",
            ", ".join(f"{k} {v:,}" for k, v in res["quarantine_by_reason"].items()),
        ],
        ["warnings", ", ".join(f"{k} {v:,}" for k, v in res["warnings"].items())],
        [
            "wall time (read → records/quarantine/summary written)",
            f"{res['wall_s']:.1f} s (target < 60 s)",
        ],
        [
            "peak resident memory of the validating process",
            f"{res['peak_rss_gib']:.2f} GiB (target < 4 GiB)",
        ],
    ]
    md = "\n".join(
        [
            "## Validation stage: 1,000,000 police rows"
            if args.rows == 1_000_000
            else f"## Validation stage: {args.rows:,} police rows",
            "",
            f"Command: `python bench/bench_validate.py{'' if args.rows == 1_000_000 else f' --rows {args.rows}'}`. "
            f"Pool: {pool_note}; rows resampled by column group (seed {args.seed}) with injected faults. "
            "The validation runs in its own process: read, map, pandera extract model, checks, "
            "standardisers, duplicate check, RecordSchema/QuarantineSchema, Parquet and JSON written.",
            "",
            table(["measure", "value"], rows),
            "",
            machine_line(machine(), shared=True)
            + f" Load average at the start of the validation: {load:.1f}.",
        ]
    )
    print(md)
    if not args.no_docs:
        write_section("validate", md)


if __name__ == "__main__":
    main()
