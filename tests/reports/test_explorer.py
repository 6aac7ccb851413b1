"""The linkage explorer's data: the waterfall formula, the threshold grid against a
relink, bounded size, and names only on request."""

from __future__ import annotations

import json
import re

import numpy as np
import polars as pl
import pytest
from test_reports import shared_run  # pytest puts tests/ on sys.path (prepend import mode)

from recapture.io import read_json
from recapture.reports.explorer import (
    MAX_BAND_PAIRS,
    MAX_OTHER_PAIRS,
    MAX_PATTERNS,
    explorer_data,
    tf_fields,
    waterfall,
)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    run, reports = shared_run(tmp_path_factory, "demo")
    return run, reports


@pytest.fixture(scope="module")
def data(demo):
    return explorer_data(demo[0])


def test_waterfall_adds_up_and_reproduces_weights_without_term_frequencies(demo):
    """The bars add up to every pair's weight; where no name agrees exactly or on its key
    (no TF bits can apply), prior + Σ log2(m/u) (+ alias) alone gives the weight, so the
    term-frequency bar is zero: the formula of docs/artifacts.md is the engine's."""
    run = demo[0]
    model = read_json(run / "linkage_model.json")
    pairs = pl.read_parquet(run / "pairs.parquet")
    clusters = pl.read_parquet(run / "clusters.parquet")
    source = dict(zip(clusters["record_id"].to_list(), clusters["source"].to_list(), strict=True))
    names = [c["name"] for c in model["comparisons"]]
    levels = {c["name"]: len(c["levels"]) for c in model["comparisons"]}
    checked = with_tf = 0
    for row in pairs.head(3000).iter_rows(named=True):
        gammas = [row[f"gamma_{n}"] for n in names]
        bars = waterfall(
            model,
            gammas,
            (source[row["record_id_l"]], source[row["record_id_r"]]),
            row["match_weight"],
        )
        assert sum(b for _, b in bars) == pytest.approx(row["match_weight"], abs=1e-9)
        tf = dict(bars)["term frequencies"]
        no_tf = all(row[f"gamma_{n}"] < levels[n] - 2 for n in ("family_name", "given_name"))
        if no_tf:
            assert tf == pytest.approx(0.0, abs=1e-6), (row, bars)
            assert tf_fields(model, gammas).startswith("none")
            checked += 1
        elif abs(tf) > 1e-3:
            with_tf += 1
    assert checked >= 10 and with_tf > 5


def test_threshold_grid_matches_a_relink_at_that_threshold(demo, data):
    """What the slider shows at p ≥ 0.9 is what `recapture link --threshold 0.9` gives."""
    from recapture.linkage import LinkageSettings, link_records
    from recapture.linkage.engine import read_records

    run = demo[0]
    settings = LinkageSettings.from_dict(read_json(run / "linkage_model.json")["settings"])
    settings.threshold = 0.9
    result = link_records(read_records(run / "records.parquet"), settings)
    row = next(r for r in data["grid"]["rows"] if r["threshold"] == 0.9)
    assert row["links"] == result.metrics["links"]
    assert row["persons"] == result.metrics["clustering"]["clusters"]
    run_row = next(r for r in data["grid"]["rows"] if r["threshold"] == data["threshold"])
    metrics = read_json(run / "linkage_metrics.json")
    assert run_row["persons"] == metrics["clustering"]["clusters"]
    assert run_row["links"] == metrics["links"]
    persons = np.array([r["persons"] for r in data["grid"]["rows"]])
    assert (np.diff(persons) >= 0).all()  # a higher threshold never merges more
    n1, n2, m = run_row["chapman_counts"]
    assert run_row["chapman"] == pytest.approx((n1 + 1) * (n2 + 1) / (m + 1) - 1)


def test_embedded_data_are_bounded_and_consistent(data):
    p = data["pairs"]
    n = len(p["l"])
    assert n <= MAX_BAND_PAIRS + MAX_OTHER_PAIRS + 2 * MAX_PATTERNS
    assert all(len(p[k]) == n for k in ("r", "weight", "prob", "gammas", "band", "src_l"))
    assert sum(p["band"]) == min(data["counts"]["band_pairs"], MAX_BAND_PAIRS)
    assert len(data["patterns"]) <= MAX_PATTERNS
    assert sum(pt["count"] for pt in data["patterns"]) <= data["counts"]["pairs"]
    for pt in data["patterns"][:50]:
        for k in pt["examples"]:
            assert p["gammas"][k] == pt["gammas"]
    assert data["em_trace"] and "m" in data["em_trace"][-1]
    comps = data["model"]["comparisons"]
    last = data["em_trace"][-1]
    assert [len(x) for x in last["m"]] == [len(c["levels"]) for c in comps]
    for c in data["clusters"]:
        assert len(c["records"]) >= 2 and c["verdict"]
        assert all(
            0 <= e[0] < len(c["records"]) and 0 <= e[1] < len(c["records"]) for e in c["edges"]
        )


def test_names_only_with_show_names(demo, tmp_path):
    from recapture.reports import explorer_report

    run = demo[0]
    records = pl.read_parquet(run / "records.parquet")
    plain = explorer_report(run, tmp_path / "plain.html").read_text(encoding="utf-8")
    named = explorer_report(run, tmp_path / "named.html", show_names=True).read_text(
        encoding="utf-8"
    )
    payload = json.loads(
        re.search(r'id="explorer-data">(.*?)</script>', plain, re.S).group(1).replace("<\\/", "</")
    )
    assert "names" not in payload["pairs"] and all(t["values"] is None for t in payload["tf"])
    common = records["family_name_raw"].drop_nulls().value_counts(sort=True)[0, 0]
    assert f'"{common}' not in plain
    assert common in named and 'id="names-banner"' in named
    assert 'id="names-banner"' not in plain


def test_grid_persons_equal_clustering_all_pairs(tmp_path):
    """The grid reclusters only the pairs that can matter (links and in-cluster conflicts)
    and only the records they touch; at every threshold the persons equal those of the
    clustering of all pairs and all records, chaining guard included."""
    from recapture.linkage import LinkageSettings
    from recapture.linkage.clustering import cluster_pairs
    from recapture.reports.example import write_example_run

    run = write_example_run(tmp_path / "run", 10_000, seed=0)  # holds a conflicted cluster
    data = explorer_data(run)
    settings = LinkageSettings.default()
    clusters = pl.read_parquet(run / "clusters.parquet").sort("record_id")
    pairs = pl.read_parquet(run / "pairs.parquet")
    ids = clusters["record_id"].to_numpy()
    i = np.searchsorted(ids, pairs["record_id_l"].to_numpy())
    j = np.searchsorted(ids, pairs["record_id_r"].to_numpy())
    codes = np.unique(clusters["source"].to_numpy().astype(str), return_inverse=True)[1].ravel()
    conflicts = 0
    for row in data["grid"]["rows"]:
        full = cluster_pairs(
            ids.size,
            i,
            j,
            pairs["match_probability"].to_numpy(),
            row["threshold"],
            sources=codes,
            one_to_one=settings.one_to_one,
            conflict_probability=settings.conflict_probability,
            chaining_action=settings.chaining_action,
            chaining_steps=settings.chaining_steps,
        )
        assert row["persons"] == int(full.labels.max()) + 1, row["threshold"]
        conflicts += full.report["chaining"]["clusters_with_conflicts"]
    assert conflicts > 0  # the guard was exercised
