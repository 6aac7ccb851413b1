"""Clerical review: export → label → read back → design-weighted error rates."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from recapture.errors import InputError
from recapture.linkage.review import (
    estimate_error_rates,
    export_review_sample,
    read_review_labels,
    review_error_rates,
    wilson_interval,
)


@pytest.fixture()
def scored():
    """2,000 scored pairs over 400 records; truth drawn so that p is calibrated."""
    rng = np.random.default_rng(11)
    n_pairs = 2000
    records = pl.DataFrame(
        {
            "record_id": np.arange(400),
            "source": np.where(np.arange(400) < 300, "police", "iom"),
            "family_name_raw": [f"Name{i}" for i in range(400)],
            "given_name_raw": [f"Given{i % 37}" for i in range(400)],
            "birth_date_raw": [f"{1960 + i % 40}-01-01" for i in range(400)],
            "nationality_raw": ["Marokko"] * 400,
        }
    )
    left = rng.integers(0, 400, n_pairs)
    right = (left + rng.integers(1, 399, n_pairs)) % 400
    p = rng.beta(0.4, 0.4, n_pairs)
    pairs = pl.DataFrame(
        {
            "record_id_l": np.minimum(left, right),
            "record_id_r": np.maximum(left, right),
            "match_probability": p,
            "match_weight": np.log2(p / (1 - p)),
            "is_match": rng.uniform(size=n_pairs) < p,
        }
    )
    return pairs, records


def _label_from_truth(sample: pl.DataFrame, pairs: pl.DataFrame) -> pl.DataFrame:
    truth = pairs.select("record_id_l", "record_id_r", "match_probability", "is_match")
    return (
        sample.drop("label")
        .join(truth, on=["record_id_l", "record_id_r", "match_probability"], how="left")
        .with_columns(
            label=pl.when(pl.col("is_match")).then(pl.lit("Match ")).otherwise(pl.lit("non-match"))
        )
        .drop("is_match")
    )


def test_export_is_stratified_and_shows_both_records(scored, tmp_path):
    pairs, records = scored
    path = tmp_path / "review.csv"
    sample = export_review_sample(pairs, records, path, threshold=0.6, sample_size=180, seed=3)
    assert path.exists() and sample.height == 180
    assert sample["review_id"].to_list() == list(range(1, 181))
    assert sample["label"].null_count() == 180
    for col in (
        "family_name_raw_l",
        "family_name_raw_r",
        "birth_date_raw_l",
        "nationality_raw_r",
        "source_l",
    ):
        assert col in sample.columns
    # the threshold is a band edge: no band straddles it
    assert ((sample["band_upper"] <= 0.6) | (sample["band_lower"] >= 0.6)).all()
    per = sample.group_by("stratum").agg(
        pl.len(), pl.col("stratum_sample").first(), pl.col("stratum_pairs").first()
    )
    assert (per["len"] == per["stratum_sample"]).all()
    assert per["stratum_pairs"].sum() == pairs.height
    # every probability lies in its band
    assert (
        (sample["match_probability"] >= sample["band_lower"])
        & (sample["match_probability"] <= sample["band_upper"])
    ).all()
    # names belong to the right records
    row = sample.row(0, named=True)
    assert row["family_name_raw_l"] == f"Name{row['record_id_l']}"
    # deterministic given the seed
    again = export_review_sample(
        pairs, records, tmp_path / "again.csv", threshold=0.6, sample_size=180, seed=3
    )
    assert again.equals(sample)


def test_round_trip_estimates_cover_population_truth(scored, tmp_path):
    pairs, records = scored
    path = tmp_path / "review.csv"
    sample = export_review_sample(pairs, records, path, threshold=0.5, sample_size=400, seed=5)
    _label_from_truth(sample, pairs).write_csv(path)
    est = review_error_rates(path)
    accepted = pairs.filter(pl.col("match_probability") >= 0.5)
    true_precision = accepted["is_match"].mean()
    true_missed = (
        pairs.filter(pl.col("match_probability") < 0.5)["is_match"].sum() / pairs["is_match"].sum()
    )
    assert est.n_labelled == 400 and est.n_unsure == 0
    assert est.precision_ci[0] <= true_precision <= est.precision_ci[1]
    assert est.missed_link_rate_ci[0] <= true_missed <= est.missed_link_rate_ci[1]
    assert est.false_link_rate == pytest.approx(1 - est.precision)
    assert est.estimated_links == accepted.height


def test_estimates_by_hand():
    # below: N=100, labels 1 match + 3 non-match (+1 unsure); above: N=10, 4 match + 1 non-match
    rows = [
        (0, 0.0, 0.5, 100, 5, lab)
        for lab in ["match", "non-match", "non-match", "non-match", "unsure"]
    ]
    rows += [(1, 0.5, 1.0, 10, 5, lab) for lab in ["match"] * 4 + ["non-match"]]
    labels = pl.DataFrame(
        rows,
        schema=["stratum", "band_lower", "band_upper", "stratum_pairs", "stratum_sample", "label"],
        orient="row",
    ).with_columns(threshold=pl.lit(0.5), match_probability=pl.lit(0.5))
    est = estimate_error_rates(labels)
    assert est.precision == pytest.approx(0.8)
    assert est.estimated_false_links == pytest.approx(2.0)
    assert est.estimated_missed_links == pytest.approx(25.0)
    assert est.missed_link_rate == pytest.approx(25 / 33)
    assert est.n_unsure == 1 and est.n_labelled == 9
    # variance from the add-half rate 4.5/6 = 0.75: 0.75·0.25/5 · fpc (10−5)/9
    var = 0.75 * 0.25 / 5 * 5 / 9
    assert est.precision_ci == pytest.approx(wilson_interval(0.8 * (0.16 / var), 0.16 / var))
    assert est.strata["match_rate"].to_list() == pytest.approx([0.25, 0.8])


def test_neyman_allocation_is_proportional_to_band_size_times_sd(scored, tmp_path):
    pairs, records = scored
    kw = {"threshold": 0.5, "sample_size": 200, "bands": [0, 0.01, 0.5, 0.99, 1]}
    ney = export_review_sample(pairs, records, tmp_path / "n.csv", allocation="neyman", **kw)
    eq = export_review_sample(pairs, records, tmp_path / "e.csv", allocation="equal", **kw)
    assert ney.height == eq.height == 200
    assert sorted(eq.group_by("stratum").len()["len"].to_list()) == [50, 50, 50, 50]
    mp = pl.col("match_probability")
    band = (mp >= 0.01).cast(pl.Int64) + (mp >= 0.5).cast(pl.Int64) + (mp >= 0.99).cast(pl.Int64)
    stats = (
        pairs.group_by(band.alias("stratum"))
        .agg(pl.len().alias("n"), pl.col("match_probability").mean().alias("p"))
        .sort("stratum")
    )
    score = stats["n"] * (stats["p"] * (1 - stats["p"])).sqrt()
    expected = 10 + 160 * score / score.sum()  # 10 per band first, the rest ∝ N·sd
    got = ney.group_by("stratum").len().sort("stratum")["len"]
    assert (got - expected).abs().max() <= 1.0


def test_wilson_interval_reference_value():
    # Wilson 95% interval for 4 successes in 5 (Newcombe 1998, Table I style)
    assert wilson_interval(4, 5) == pytest.approx((0.3755, 0.9638), abs=1e-4)
    assert wilson_interval(0, 10)[0] == 0.0


def _labelled_file(scored, tmp_path):
    pairs, records = scored
    path = tmp_path / "review.csv"
    sample = export_review_sample(pairs, records, path, threshold=0.5, sample_size=40, seed=1)
    labelled = _label_from_truth(sample, pairs)
    labelled.write_csv(path)
    return path, labelled


def test_unknown_label_names_file_row_and_column(scored, tmp_path):
    path, labelled = _labelled_file(scored, tmp_path)
    labelled.with_columns(
        label=pl.when(pl.col("review_id") == 7).then(pl.lit("yes")).otherwise(pl.col("label"))
    ).write_csv(path)
    with pytest.raises(InputError) as err:
        read_review_labels(path)
    assert (err.value.row, err.value.column, err.value.file) == (7, "label", str(path))
    assert "'yes'" in str(err.value)


def test_deleted_row_and_empty_label_are_errors(scored, tmp_path):
    path, labelled = _labelled_file(scored, tmp_path)
    labelled.filter(pl.col("review_id") != 12).write_csv(path)
    with pytest.raises(InputError, match=r"missing review_id \[12\]"):
        read_review_labels(path)
    labelled.with_columns(
        label=pl.when(pl.col("review_id") == 3).then(pl.lit("")).otherwise(pl.col("label"))
    ).write_csv(path)
    with pytest.raises(InputError) as err:
        read_review_labels(path)
    assert (err.value.row, err.value.column) == (3, "label")
    assert read_review_labels(path, allow_unlabelled=True)["label"].null_count() == 1


def test_edited_design_column_is_an_error(scored, tmp_path):
    path, labelled = _labelled_file(scored, tmp_path)
    labelled.with_columns(
        stratum_pairs=pl.when(pl.col("review_id") == 1)
        .then(pl.lit(-5))
        .otherwise(pl.col("stratum_pairs"))
    ).write_csv(path)
    with pytest.raises(InputError, match="design columns"):
        read_review_labels(path)
    labelled.with_columns(
        record_id_l=pl.when(pl.col("review_id") == 4)
        .then(pl.lit("x"))
        .otherwise(pl.col("record_id_l").cast(pl.String))
    ).write_csv(path)
    with pytest.raises(InputError) as err:
        read_review_labels(path)
    assert (err.value.row, err.value.column) == (4, "record_id_l")
