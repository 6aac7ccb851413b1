"""Cross-source pairs weigh an agreeing name by the overlap's name frequencies
(``tf_across_sources``): the pooled TF weight plus −log2 Σ_v f_a(v)·f_b(v)/f(v)."""

from __future__ import annotations

import dataclasses

import numpy as np
import polars as pl
import pytest
from worlds import simulated_world

from recapture.linkage import LinkageSettings, link_records
from recapture.linkage.comparisons import _overlap_bits


def test_overlap_bits_are_zero_for_alike_sources_and_the_normaliser_otherwise():
    alike = np.array([[2.0, 6.0, 2.0], [1.0, 3.0, 1.0]])
    assert np.allclose(_overlap_bits(alike, alike.sum(axis=0)), 0.0)
    # f_a = (½, ½, 0), f_b = (0, ½, ½), f = (¼, ½, ¼): Z = ½·½ / ½ = ½, one bit
    apart = np.array([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0]])
    bits = _overlap_bits(apart, np.array([1.0, 2.0, 1.0]))
    assert np.allclose(bits, [[0.0, 1.0], [1.0, 0.0]])


def test_bits_are_bounded_where_a_source_carries_one_name_rare_in_the_other():
    # all 1,000 people of b share a name held by 1 of a's 4,000: Z ≈ 1/800, 9.6 bits
    by_source = np.array([[1.0, 3999.0], [1000.0, 0.0]])
    pooled = by_source.sum(axis=0)
    assert _overlap_bits(by_source, pooled)[0, 1] > 9.5
    bits = _overlap_bits(by_source, pooled, limit=8.0)
    assert bits[0, 1] == bits[1, 0] == 8.0


def test_bits_are_positive_when_the_pooled_frequencies_mix_the_sources():
    rng = np.random.default_rng(4)
    by_source = rng.integers(0, 30, size=(3, 200)).astype(float)
    bits = _overlap_bits(by_source, by_source.sum(axis=0))
    assert np.all(np.diag(bits) == 0) and np.allclose(bits, bits.T)
    off = bits[~np.eye(3, dtype=bool)]
    assert np.all(off > 0)


@pytest.fixture(scope="module")
def world_records(tmp_path_factory):
    return simulated_world(tmp_path_factory.mktemp("world"), size=12_000, seed=21)[0]


def _people_frequencies(records: pl.DataFrame, col: str, by: list[str]) -> pl.DataFrame:
    key = ["given_name", "family_name", "birth_year", "sex", *by]
    people = records.unique(subset=key, keep="first", maintain_order=True).drop_nulls(col)
    return (
        people.group_by([col, *by])
        .len()
        .with_columns(f=pl.col("len") / pl.col("len").sum().over(by or pl.lit(1)))
    )


def test_cross_pairs_gain_exactly_the_overlap_bits_and_within_pairs_nothing(world_records):
    records = world_records.sort("record_id")
    settings = LinkageSettings.default()
    on = link_records(records, settings)
    off = link_records(records, dataclasses.replace(settings, tf_across_sources=False))
    assert off.model.group_tf_bits is None and not off.model.tf_bits_by_source_pair
    table = on.model.to_dict()["tf_bits_by_source_pair"]["iom–police"]

    # the bits of exact given-name agreement, from the records' people independently
    pooled = _people_frequencies(records, "given_name", [])
    by_source = _people_frequencies(records, "given_name", ["source"])
    f_p = by_source.filter(pl.col("source") == "police").select("given_name", fp="f")
    f_i = by_source.filter(pl.col("source") == "iom").select("given_name", fi="f")
    z = pooled.join(f_p, on="given_name").join(f_i, on="given_name")
    z = float((z["fp"] * z["fi"] / z["f"]).sum())
    assert table["given_name"]["exact"] == pytest.approx(-np.log2(z), abs=1e-9)
    assert 0.2 < table["given_name"]["exact"] < 3.0 and table["family_name"]["exact"] > 0.2

    src = dict(zip(records["record_id"], records["source"], strict=True))
    pairs = on.pairs.join(
        off.pairs.select("record_id_l", "record_id_r", weight_off="match_weight"),
        on=["record_id_l", "record_id_r"],
    ).with_columns(
        cross=pl.col("record_id_l").replace_strict(src) != pl.col("record_id_r").replace_strict(src)
    )
    assert pairs.height == on.pairs.height
    within = pairs.filter(~pl.col("cross"))
    assert np.allclose(within["match_weight"], within["weight_off"], atol=1e-9)
    top = {c.name: c.n_levels - 1 for c in on.settings.comparisons}
    exact = pairs.filter(
        pl.col("cross")
        & (pl.col("gamma_given_name") == top["given_name"])
        & (pl.col("gamma_family_name") == top["family_name"])
    )
    assert exact.height > 50
    gain = table["given_name"]["exact"] + table["family_name"]["exact"]
    diff = (exact["match_weight"] - exact["weight_off"]).to_numpy()
    # all of it in the own-identity term: the alias mixture takes a little off
    assert np.all(diff > 0) and np.all(diff <= gain + 1e-9)
    assert diff.max() == pytest.approx(gain, abs=1e-3)
    # and more persons in both lists are found
    both = [
        r.clusters.group_by("person_id")
        .agg(pl.col("source").n_unique())
        .filter(pl.col("source") == 2)
        .height
        for r in (on, off)
    ]
    assert both[0] >= both[1]
