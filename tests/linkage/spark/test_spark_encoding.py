"""The vocabularies, TF tables and joint-name table built from Spark aggregates equal those
:meth:`PreparedRecords.build` computes from the records on the driver, exactly."""

from __future__ import annotations

import dataclasses

import numpy as np
import polars as pl
import pytest

from recapture.linkage import LinkageSettings
from recapture.linkage.comparisons import PreparedRecords
from recapture.linkage.engine import _tf_tables
from recapture.linkage.febrl import febrl_settings, load_febrl
from recapture.linkage.spark.encoding import prepare_spark

from .test_spark_engine import world_records


def assert_same_tables(local: PreparedRecords, spark_prep: PreparedRecords) -> None:
    assert spark_prep.n == local.n
    assert spark_prep.encoding == local.encoding
    assert spark_prep.vocab_of.keys() == local.vocab_of.keys()
    for col, vocab in local.vocab_of.items():
        got = spark_prep.vocab_of[col]
        for name in ("values", "compact", "sorted_tokens", "sorted_values", "prefix3"):
            assert np.array_equal(getattr(got, name), getattr(vocab, name)), (col, name)
    assert list(spark_prep.tf) == list(local.tf)
    for col, freq in local.tf.items():
        assert np.array_equal(spark_prep.tf[col], freq), col  # exactly, not to rounding
        assert spark_prep.tf_sq[col] == local.tf_sq[col], col
    if local.joint_codes is None:
        assert spark_prep.joint_codes is None
    else:
        assert np.array_equal(spark_prep.joint_codes, local.joint_codes)
        assert np.array_equal(spark_prep.joint_bits, local.joint_bits)
    assert spark_prep.tf_sources == local.tf_sources
    assert spark_prep.tf_source_bits.keys() == local.tf_source_bits.keys()
    for col, bits in local.tf_source_bits.items():
        np.testing.assert_allclose(spark_prep.tf_source_bits[col], bits, rtol=0, atol=1e-12)


def _check(spark, records: pl.DataFrame, settings: LinkageSettings) -> PreparedRecords:
    ordered = records.sort(settings.record_id)
    local = PreparedRecords.build(ordered, settings)
    # shuffled rows in Spark: the person's first record is found by record id, not by order
    shuffled = records.sample(fraction=1.0, shuffle=True, seed=3)
    prep, counts = prepare_spark(spark.createDataFrame(shuffled.to_arrow()), settings)
    assert_same_tables(local, prep)
    assert _tf_tables(prep, settings, counts) == _tf_tables(local, settings)
    # the records encoded with the Spark-built vocabularies: the local per-record arrays
    encoded = prep.with_records(ordered)
    for col, codes in local.codes.items():
        assert np.array_equal(encoded.codes[col], codes), col
    for col, ints in local.ints.items():
        assert np.array_equal(encoded.ints[col], ints, equal_nan=True), col
    if local.record_joint_bits is not None:
        assert np.array_equal(encoded.record_joint_bits, local.record_joint_bits)
    return local


@pytest.mark.parametrize("name", ["febrl3", "febrl4"])
def test_febrl_tables_from_spark_aggregates_equal_local(spark, name):
    records, _ = load_febrl(name)
    settings = febrl_settings(link_only=(name == "febrl4"))
    local = _check(spark, records, settings)
    assert local.tf, "FEBRL settings weight names by term frequency"


def test_world_tables_from_spark_aggregates_equal_local(spark, tmp_path):
    """The registration settings: names swapped, keys, people counted once, pseudo-people,
    the joint-name table."""
    records = world_records(22_000, 11, tmp_path)
    settings = LinkageSettings.default()
    assert settings.name_swap and settings.joint_name_tf and settings.tf_pseudo_people > 0
    local = _check(spark, records, settings)
    assert local.joint_codes is not None and local.joint_codes.size > 0
    assert (local.joint_bits < 0).any()
    assert local.tf_sources == ["iom", "police"] and local.tf_source_bits
    assert all((b[0, 1] > 0) and b[0, 0] == 0 for b in local.tf_source_bits.values())
    # without the person columns in the records every record counts
    plain = dataclasses.replace(settings, tf_person_columns=[])
    _check(spark, records, plain)


@pytest.mark.slow
def test_20k_world_tables_from_spark_aggregates_equal_local(spark, tmp_path):
    records = world_records(90_000, 5, tmp_path)
    assert records.height >= 18_000
    _check(spark, records, LinkageSettings.default())


def test_records_numbered_keyed_and_encoded_in_spark_as_on_the_driver(spark, tmp_path):
    """Row i is the i-th smallest record id, each record's codes are the local ones, and the
    blocking keys counted in Spark give the driver's candidate pairs and statistics (blocks
    refined and skipped)."""
    from recapture.linkage.blocking import block
    from recapture.linkage.spark.blocking import block_spark, collect_blocks
    from recapture.linkage.spark.encoding import encode_records_spark, encoded_columns
    from recapture.linkage.spark.records import driver_records, spark_records

    records = world_records(22_000, 11, tmp_path)
    settings = dataclasses.replace(LinkageSettings.default(), max_block_size=5)
    ordered = records.sort(settings.record_id)
    local = PreparedRecords.build(ordered, settings)
    shuffled = records.sample(fraction=1.0, shuffle=True, seed=5)
    frame = spark.createDataFrame(shuffled.to_arrow()).repartition(3)
    recs, numbered = spark_records(spark, frame, settings)
    on_driver = driver_records(spark, records, settings)
    assert recs.frame["_row"].to_list() == list(range(records.height))
    assert np.array_equal(recs.record_ids, on_driver.record_ids)
    assert np.array_equal(recs.sources, on_driver.sources)
    assert np.array_equal(recs.source_codes, on_driver.source_codes)
    src = pl.from_arrow(numbered.select("_row", "_src").toArrow()).sort("_row")
    assert np.array_equal(src["_src"].to_numpy(), on_driver.source_codes)

    tables, _ = prepare_spark(frame, settings)
    got = pl.from_arrow(
        encode_records_spark(spark, numbered, tables, settings.record_id).toArrow()
    ).sort("_row")
    assert got["_row"].to_list() == list(range(records.height))
    for col in encoded_columns(tables):
        want = local.codes[col] if col in local.codes else local.ints[col]
        assert np.array_equal(got[col].to_numpy(), want, equal_nan=True), col

    rules = settings.blocking_rules
    want = block(on_driver.frame, rules, settings.max_block_size)
    assert any(s["blocks_refined"] for s in want.stats)
    assert any(s["blocks_skipped"] for s in want.stats)
    cands, stats = block_spark(spark, numbered, rules, settings.max_block_size)
    got = collect_blocks(cands, stats, rules, records.height)
    assert np.array_equal(got.i, want.i) and np.array_equal(got.j, want.j)
    assert np.array_equal(got.rule, want.rule)
    assert got.stats == want.stats


def test_encoding_on_executors_equals_driver_and_local(spark, tmp_path):
    """Records numbered, keyed and encoded on the executors (codes joined onto the pairs) give
    the driver mode's pairs, levels and weights bit for bit, which are the local engine's
    (the registration settings: sessions blocked and compared in Spark, random pairs of u,
    a prior per pair of sources, refined and skipped blocks, labelled pairs)."""
    from recapture.linkage import link_records
    from recapture.linkage.spark.engine import link_records_spark

    from .test_spark_engine import assert_same_linkage

    records = world_records(22_000, 11, tmp_path)
    settings = dataclasses.replace(LinkageSettings.default(), workers=1, max_block_size=5)
    first = link_records(records, settings).pairs.sort("match_weight", "record_id_l")
    labelled = pl.concat([first.head(150), first.tail(150)]).select(
        "record_id_l", "record_id_r", pl.col("linked").alias("is_match")
    )
    local = link_records(records, settings, labelled_pairs=labelled)
    on_executors = link_records_spark(
        spark, records, settings, labelled_pairs=labelled, encode_on="executors"
    )
    assert_same_linkage(local, on_executors)
    on_driver = link_records_spark(
        spark, records, settings, labelled_pairs=labelled, encode_on="driver"
    )
    assert on_executors.pairs_frame().equals(on_driver.pairs_frame())  # weights bit for bit


def test_encode_mode_from_argument_session_conf_and_record_count(spark):
    from recapture.errors import ConfigError
    from recapture.linkage.spark.engine import (
        CONF_ENCODE_ON,
        CONF_EXECUTORS_FROM,
        encode_mode,
    )

    small = pl.DataFrame({"record_id": [1, 2, 3]})
    assert encode_mode(spark, small, None) == "driver"  # below 5M records
    assert encode_mode(spark, small, "executors") == "executors"
    try:
        spark.conf.set(CONF_EXECUTORS_FROM, "3")
        assert encode_mode(spark, small, None) == "executors"
        assert encode_mode(spark, spark.createDataFrame(small.to_arrow()), "auto") == "executors"
        spark.conf.set(CONF_ENCODE_ON, "driver")
        assert encode_mode(spark, small, None) == "driver"
        spark.conf.set(CONF_ENCODE_ON, "everywhere")
        with pytest.raises(ConfigError, match="everywhere"):
            encode_mode(spark, small, None)
        spark.conf.set(CONF_ENCODE_ON, "auto")
        spark.conf.set(CONF_EXECUTORS_FROM, "many")
        with pytest.raises(ConfigError, match="many"):
            encode_mode(spark, small, None)
    finally:
        spark.conf.unset(CONF_ENCODE_ON)
        spark.conf.unset(CONF_EXECUTORS_FROM)
