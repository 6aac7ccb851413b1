"""Where the persons in both lists are lost: a diagnosis of the cross-source linkage.

    python bench/diagnose_cross_source.py --seeds 1001-1006            # runs the worlds
    python bench/diagnose_cross_source.py --dirs /tmp/e2e/w1001 ...   # worlds already run

Each world is the end-to-end study's (``recapture.pipelines.accuracy.world_accuracy``,
no imputations). The DSE needs, per person of the period, whether they are in both lists.
The number of persons the linkage finds in both lists differs from the truth by

    found − true = spurious − lost − merged

* lost: true persons with a police and an IOM record in the period whose own records of
  the two sources are in no common cluster. Each is put in one class, by where its
  cross-source link is lost (first that applies):
  - ``within-source split``: a cross-source pair of the person is linked, but the
    period's records of one source are cut from it (a missed or guarded-off dedupe link);
  - ``guard cut``: a cross-source pair scored at or above the threshold was removed by
    the chaining guard (or the one-to-one rule);
  - ``below threshold``: candidate pairs exist, all scored below (the best pair's levels
    are tallied);
  - ``never candidate``: no cross-source pair of the person was formed by blocking;
* merged: clusters holding the complete records of k > 1 such persons count k − 1;
* spurious: clusters with records of both sources in the period but no person whose
  records of both sources are all theirs (false cross links, or a lost person's records
  joined to somebody else's).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _seeds(spec: str) -> list[int]:
    out: list[int] = []
    for part in spec.split(","):
        a, _, b = part.partition("-")
        out += list(range(int(a), int(b or a) + 1))
    return out


def _level_names(model: dict) -> dict[str, list[str]]:
    return {c["name"]: [lv["level"] for lv in c["levels"]] for c in model["comparisons"]}


def _components(ids: list[int], edges: list[tuple[int, int]]) -> dict[int, int]:
    parent = {i: i for i in ids}

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in edges:
        parent[find(a)] = find(b)
    return {i: find(i) for i in ids}


def diagnose_world(world: Path) -> dict:
    """Counts of the module docstring for one world directory (``world/`` and ``run/``)."""
    from recapture.io import artifact_path
    from recapture.pipelines.demo import _true_clusters

    run_dir, world_dir = world / "run", world / "world"
    records = pl.read_parquet(artifact_path(run_dir, "records"))
    truth = _true_clusters(run_dir, world_dir).select("record_id", pl.col("person_id").alias("t"))
    clusters = pl.read_parquet(artifact_path(run_dir, "clusters")).select(
        "record_id", pl.col("person_id").alias("c")
    )
    pairs = pl.read_parquet(artifact_path(run_dir, "pairs"))
    model = json.loads(artifact_path(run_dir, "linkage_model").read_text())
    threshold = float(model["threshold"])
    levels = _level_names(model)
    period = (pl.date(2017, 7, 1), pl.date(2018, 6, 30))
    rec = (
        records.select("record_id", "source", "event_date", "in_target")
        .join(truth, on="record_id")
        .join(clusters, on="record_id")
        .with_columns(
            (pl.col("event_date").is_between(*period, closed="both") & pl.col("in_target")).alias(
                "kept"
            )
        )
    )
    kept = rec.filter("kept")
    both_true = (
        kept.group_by("t")
        .agg(pl.col("source").n_unique().alias("k"))
        .filter(pl.col("k") == 2)["t"]
        .to_list()
    )
    # per (cluster, true person): does the cluster hold the person's kept records of both?
    per = kept.group_by(["c", "t"]).agg(pl.col("source").n_unique().alias("k"))
    complete = per.filter(pl.col("k") == 2)
    complete_persons = set(complete["t"].to_list())
    lost = [t for t in both_true if t not in complete_persons]
    k_per_cluster = complete.group_by("c").agg(pl.len().alias("n"))
    merged = int((k_per_cluster["n"] - 1).sum())
    both_clusters = kept.group_by("c").agg(pl.col("source").n_unique().alias("k"))
    both_clusters = set(both_clusters.filter(pl.col("k") == 2)["c"].to_list())
    spurious = len(both_clusters - set(complete["c"].to_list()))

    # classify each lost person by their own records and pairs
    src = dict(zip(rec["record_id"].to_list(), rec["source"].to_list(), strict=True))
    kept_ids = set(kept["record_id"].to_list())
    by_person = rec.filter(pl.col("t").is_in(lost)).group_by("t").agg(pl.col("record_id"))
    person_of = {r: t for t, ids in by_person.iter_rows() for r in ids}
    own = pairs.filter(
        pl.col("record_id_l").is_in(list(person_of)) & pl.col("record_id_r").is_in(list(person_of))
    ).filter(
        pl.col("record_id_l").replace_strict(person_of, default=-1)
        == pl.col("record_id_r").replace_strict(person_of, default=-2)
    )
    classes: Counter = Counter()
    below_levels: Counter = Counter()
    detail = []
    for t, ids in by_person.iter_rows():
        p = own.filter(pl.col("record_id_l").is_in(ids))
        cross = p.filter(
            pl.col("record_id_l").replace_strict(src) != pl.col("record_id_r").replace_strict(src)
        )
        linked = p.filter("linked")
        comp = _components(
            ids, list(zip(linked["record_id_l"], linked["record_id_r"], strict=True))
        )
        if cross.filter("linked").height:
            cls = "within-source split"
        elif cross.filter(pl.col("match_probability") >= threshold).height:
            cls = "guard cut"
        elif cross.height:
            cls = "below threshold"
            best = cross.sort("match_probability", descending=True).row(0, named=True)
            key = tuple(
                f"{name}={levels[name][best[f'gamma_{name}']] if best[f'gamma_{name}'] >= 0 else 'missing'}"
                for name in ("family_name", "given_name", "birth_date", "v_number")
            )
            below_levels[key] += 1
        else:
            cls = "never candidate"
        classes[cls] += 1
        detail.append(
            {
                "person": t,
                "class": cls,
                "records": len(ids),
                "kept": sum(i in kept_ids for i in ids),
                "components": len(set(comp.values())),
                "best_cross_p": float(cross["match_probability"].max()) if cross.height else None,
            }
        )
    found = len(both_clusters)
    return {
        "world": str(world),
        "true_both": len(both_true),
        "found_both": found,
        "lost": len(lost),
        "merged": merged,
        "spurious": spurious,
        "classes": dict(classes),
        "below_levels": {" ".join(k): v for k, v in below_levels.items()},
        "detail": detail,
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="1001-1006")
    ap.add_argument("--dirs", nargs="*", help="world directories already run (world/, run/)")
    ap.add_argument("--out", default="/tmp/diagnose-cross-source")
    ap.add_argument("--json", help="write the per-world results here")
    args = ap.parse_args(argv)
    dirs = [Path(d) for d in args.dirs] if args.dirs else []
    if not dirs:
        from recapture import progress
        from recapture.pipelines.accuracy import world_accuracy

        progress.set_quiet(True)
        for s in _seeds(args.seeds):
            d = Path(args.out) / f"w{s}"
            world_accuracy(d, seed=s, imputations=0)
            dirs.append(d)
    results = [diagnose_world(d) for d in dirs]
    total: Counter = Counter()
    levels: Counter = Counter()
    for r in results:
        print(
            f"{r['world']}: true {r['true_both']} found {r['found_both']} "
            f"(lost {r['lost']}, merged {r['merged']}, spurious {r['spurious']}) {r['classes']}"
        )
        total.update({k: r[k] for k in ("true_both", "found_both", "lost", "merged", "spurious")})
        total.update(r["classes"])
        levels.update(r["below_levels"])
    print("\n| | count |\n|---|---:|")
    for k, v in total.items():
        print(f"| {k} | {v} |")
    print("\nbelow threshold, best pair's levels:")
    for k, v in levels.most_common():
        print(f"  {v:3d}  {k}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=float))


if __name__ == "__main__":
    main()
