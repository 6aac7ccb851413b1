"""Writing a simulated world: the two extracts in their own layouts, the truth, a manifest.

The layouts are those of ``docs/extracts.md``: the police extract is ``;``-separated UTF-8
with a byte-order mark and Dutch column names; the IOM extract is ``,``-separated
Windows-1252 with English column names. Every file is written atomically, and nothing in
them depends on the clock, so the same seed gives byte-identical files.
"""

from __future__ import annotations

import os
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import polars as pl

from recapture import __version__
from recapture.io import atomic_write, file_sha256, world_path, write_json, write_parquet

TRUTH_SCHEMA_VERSION = "1"

#: Letters outside Windows-1252 and how the IOM extract writes them.
CP1252_FALLBACK: dict[str, str] = {
    "ş": "s",
    "Ş": "S",
    "ğ": "g",
    "Ğ": "G",
    "ı": "i",
    "İ": "I",
    "ć": "c",
    "Ć": "C",
    "č": "c",
    "Č": "C",
    "đ": "d",
    "Đ": "D",
    "ė": "e",
    "ę": "e",
    "ą": "a",
    "ł": "l",
    "Ł": "L",
    "ń": "n",
    "ő": "o",
    "ű": "u",
    "ř": "r",
    "ș": "s",
    "ț": "t",
    "ā": "a",
    "ē": "e",
    "ī": "i",
    "ō": "o",
    "ū": "u",
}


def _csv_text(df: pl.DataFrame, separator: str) -> str:
    return df.write_csv(
        separator=separator, null_value="", line_terminator="\r\n", quote_style="necessary"
    )


def to_cp1252(text: str) -> bytes:
    """Encode for Windows-1252, writing letters it cannot hold in ASCII transliteration."""
    text = text.translate(str.maketrans(CP1252_FALLBACK))
    leftovers = {ch for ch in set(text) if ord(ch) > 127}
    bad = {}
    for ch in leftovers:
        try:
            ch.encode("cp1252")
        except UnicodeEncodeError:
            folded = "".join(
                c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c)
            )
            bad[ch] = folded if folded.isascii() and folded else "?"
    if bad:
        text = text.translate(str.maketrans(bad))
    return text.encode("cp1252")


def write_police_extract(df: pl.DataFrame, path: str | os.PathLike) -> Path:
    data = b"\xef\xbb\xbf" + _csv_text(df, ";").encode("utf-8")
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def write_iom_extract(df: pl.DataFrame, path: str | os.PathLike) -> Path:
    keys, values = list(CP1252_FALLBACK), list(CP1252_FALLBACK.values())
    df = df.with_columns(pl.col(pl.String).str.replace_many(keys, values))
    text = _csv_text(df, ",")
    try:
        data = text.encode("cp1252")
    except UnicodeEncodeError:  # a letter outside the fallback table
        data = to_cp1252(text)
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def write_world(world, out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write ``police.csv``, ``iom.csv``, ``truth/people.parquet``, ``truth/records.parquet``
    and ``manifest.json`` into ``out_dir``; return their paths by name."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    run_id = f"sim-{world.config.seed}-{world.config.size}"
    jobs = {
        "police": lambda: write_police_extract(world.police, world_path(out, "police")),
        "iom": lambda: write_iom_extract(world.iom, world_path(out, "iom")),
        "truth_people": lambda: write_parquet(
            world.people,
            world_path(out, "truth_people"),
            artifact="truth_people",
            schema_version=TRUTH_SCHEMA_VERSION,
            run_id=run_id,
        ),
        "truth_records": lambda: write_parquet(
            world.records,
            world_path(out, "truth_records"),
            artifact="truth_records",
            schema_version=TRUTH_SCHEMA_VERSION,
            run_id=run_id,
        ),
    }
    # The writers release the GIL (Arrow, polars), so the four files go out side by side.
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        futures = {name: pool.submit(job) for name, job in jobs.items()}
        paths = {name: future.result() for name, future in futures.items()}
    rows = {
        "police": world.police.height,
        "iom": world.iom.height,
        "truth_people": world.people.height,
        "truth_records": world.records.height,
    }
    manifest = {
        "generator": "recapture.synthetic",
        "recapture_version": __version__,
        "run_id": run_id,
        "seed": world.config.seed,
        "true_n": world.summary["true_n"],
        "summary": world.summary,
        "config": world.config.to_dict(),
        "files": {
            name: {
                "path": path.relative_to(out).as_posix(),
                "rows": rows[name],
                "sha256": file_sha256(path),
            }
            for name, path in paths.items()
        },
    }
    paths["manifest"] = write_json(manifest, world_path(out, "manifest"))
    return paths


def run_simulation(config, out_dir: str | os.PathLike):
    """Simulate a world from ``config`` and write it to ``out_dir``: what ``recapture
    simulate`` does. Returns the world and the written paths."""
    from recapture import progress
    from recapture.errors import ConfigError
    from recapture.synthetic.simulate import simulate_world

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} exists and is not a directory", key="out")
    world = simulate_world(config)
    with progress.step(f"write extracts and truth to {out}"):
        paths = write_world(world, out)
    return world, paths


def format_summary(summary: dict, paths: dict[str, Path] | None = None) -> str:
    """A short human-readable summary of a simulated world."""
    f = summary["police_frequencies"]
    lines = [
        f"true population size N        {summary['true_n']:>9,}",
        f"persons apprehended by police  {summary['police_persons']:>9,}  "
        f"({summary['police_share_seen']:.1%} of N) in {summary['police_records']:,} records",
        "police counts f1..f5, f6+      "
        + "  ".join(f"{f[k]:,}" for k in ("1", "2", "3", "4", "5", "6+"))
        + (f"   (f1/f2 = {summary['f1_over_f2']:.1f})" if summary["f1_over_f2"] else ""),
        f"persons registered by IOM      {summary['iom_persons_in_target']:>9,}  "
        f"(+{summary['iom_persons_out_of_target']:,} clients outside the target population) "
        f"in {summary['iom_records']:,} records",
        f"persons in both sources        {summary['persons_in_both_sources']:>9,}",
    ]
    if paths:
        lines.append("written: " + ", ".join(str(p) for p in paths.values()))
    return "\n".join(lines)
