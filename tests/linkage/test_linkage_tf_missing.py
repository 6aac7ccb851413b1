"""Name frequency bits on pairs without a birth date (``tf_scale_missing``)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pytest
from test_linkage import canonical

from recapture.errors import ConfigError
from recapture.linkage import LinkageSettings, PreparedRecords, compare_batch
from recapture.linkage.blocking import ROW
from recapture.linkage.febrl import febrl_settings

D = dt.date


def _person(family, given, birth, sex="M", nat="MAR"):
    return {
        "family_name": family,
        "family_name_key": family.upper().replace(" ", ""),
        "given_name": given,
        "given_name_key": given.upper(),
        "birth_date": birth,
        "sex": sex,
        "nationality_iso3": nat,
        "nationality_region": "North Africa",
    }


def _levels(settings):
    people = [
        _person("tadlaoui", "mohamed", D(1973, 12, 30)),
        _person("tadlaoui", "mohamed", None),  # the same man, date not recorded
        _person("tadlaoui", "mohamed", D(1988, 2, 1)),
        _person("bennani", "mohamed", D(1990, 5, 5)),
        _person("bennani", "karim", None),
        _person("el idrissi", "mohamed", D(1979, 4, 4)),
        _person("el idrissi", "youssef", D(1981, 6, 6)),
    ]
    recs = canonical(people).sort("record_id").with_row_index(ROW)
    prep = PreparedRecords.build(recs, settings)
    i, j = np.triu_indices(recs.height, k=1)
    return compare_batch(settings, prep, pa.RecordBatch.from_pydict({"row_l": i, "row_r": j}))


def test_tf_bits_are_scaled_only_where_the_birth_date_is_missing():
    scaled = _levels(LinkageSettings.from_dict({"tf_scale_missing": {"birth_date": 0.5}}))
    plain = _levels(LinkageSettings.default())
    missing = scaled.column("gamma_birth_date").to_numpy() < 0
    assert missing.any() and (~missing).any()
    tf_columns = [n for n in scaled.schema.names if n.startswith("tf_")]
    assert "tf_given_name" in tf_columns and "tf_names_joint" in tf_columns
    moved = False
    for name in tf_columns:
        a = scaled.column(name).to_numpy()
        b = plain.column(name).to_numpy()
        np.testing.assert_allclose(a[~missing], b[~missing])
        np.testing.assert_allclose(a[missing], 0.5 * b[missing], rtol=1e-6)
        moved |= bool(np.any(b[missing] != 0))
    assert moved  # some pair without a date had frequency bits to scale
    for name in scaled.schema.names:  # the levels themselves do not change
        if name.startswith("gamma_"):
            assert scaled.column(name).equals(plain.column(name))


def test_tf_scale_missing_settings_are_checked():
    assert LinkageSettings.default().tf_scale_missing == {}  # opt-in
    assert febrl_settings().tf_scale_missing == {}
    with pytest.raises(ConfigError, match="unknown comparison") as err:
        LinkageSettings.from_dict({"tf_scale_missing": {"date_of_birth": 0.5}})
    assert err.value.key == "tf_scale_missing.date_of_birth"
    with pytest.raises(ConfigError, match="between 0 and 1"):
        LinkageSettings.from_dict({"tf_scale_missing": {"birth_date": 1.5}})
