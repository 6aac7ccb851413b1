"""Reference lookups the simulator indexes with numpy: countries, the nationality mix,
and helpers shared by drawing people (``simulate.py``) and writing their registrations
(``noise.py``)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import polars as pl

from recapture.errors import ConfigError
from recapture.reference import countries
from recapture.schemas import REGIONS
from recapture.synthetic import names as name_pools
from recapture.synthetic.config import SimulationConfig


# --------------------------------------------------------------------------------------
# Reference lookups
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Countries:
    iso3: np.ndarray
    index: dict[str, int]
    region_code: np.ndarray  # index into REGIONS
    columns: dict[str, pl.Series]  # iso2, name_en, name_nl, adjective_en, adjective_nl


@cache
def _country_table() -> _Countries:
    df = countries()
    iso3 = df["iso3"].to_numpy().astype(str)
    region_index = {r: i for i, r in enumerate(REGIONS)}
    return _Countries(
        iso3=iso3,
        index={c: i for i, c in enumerate(iso3)},
        region_code=np.asarray([region_index[r] for r in df["region"].to_list()], dtype=np.int8),
        columns={
            c: df[c] for c in ("iso3", "iso2", "name_en", "name_nl", "adjective_en", "adjective_nl")
        },
    )


def nationality_mix(config: SimulationConfig) -> tuple[np.ndarray, np.ndarray]:
    """Country-table indices and probabilities of the nationalities in the population."""
    table = _country_table()
    weights = config.population.nationality_weights or name_pools.DEFAULT_NATIONALITY_WEIGHTS
    idx, probs = [], []
    for iso3, weight in weights.items():
        if iso3 not in table.index:
            raise ConfigError(
                "not an ISO3 code in the country table",
                key=f"population.nationality_weights.{iso3}",
            )
        idx.append(table.index[iso3])
        probs.append(weight)
    p = np.asarray(probs, dtype=np.float64)
    return np.asarray(idx, dtype=np.int64), p / p.sum()


def _other_in_region(
    rng: np.random.Generator, country_idx: np.ndarray, config: SimulationConfig
) -> np.ndarray:
    """Another nationality of the same region, drawn from the mix (unchanged if it is alone)."""
    table = _country_table()
    mix_idx, mix_p = nationality_mix(config)
    mix_region = table.region_code[mix_idx]
    out = country_idx.copy()
    region = table.region_code[country_idx]
    for r in np.unique(region):
        in_region = mix_region == r
        cand = mix_idx[in_region]
        if len(cand) < 2:
            continue
        cdf = np.cumsum(mix_p[in_region]) / mix_p[in_region].sum()
        rows = np.flatnonzero(region == r)
        todo = rows
        for _ in range(50):  # redraw those that drew their own nationality
            draw = cand[
                np.minimum(np.searchsorted(cdf, rng.random(len(todo)), side="right"), len(cand) - 1)
            ]
            ok = draw != country_idx[todo]
            out[todo[ok]] = draw[ok]
            todo = todo[~ok]
            if len(todo) == 0:
                break
        if len(todo):  # a dominant nationality: take the next candidate
            out[todo] = np.where(cand[0] != country_idx[todo], cand[0], cand[1])
    return out


def _join_given(g1: pl.Series, g2: pl.Series) -> pl.Series:
    return pl.select(
        pl.when(pl.lit(g2).is_null()).then(pl.lit(g1)).otherwise(pl.lit(g1) + " " + pl.lit(g2))
    ).to_series()
