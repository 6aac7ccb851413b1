"""Simulate a hidden population and the police and IOM registrations it leaves.

The generative model (details and defaults in ``docs/simulator.md``):

1. N people with sex, age, nationality (→ region, naming culture), a name drawn from the
   culture's pools, a V-number for some, an alias identity for some, and a time at risk
   inside the reference period.
2. Police apprehensions: y_i ~ Poisson(t_i · u_i · exp(x_i'β)), u_i a mean-one gamma
   frailty, t_i the share of the period at risk; optionally one-inflated. Each
   apprehension gets a date in the time at risk, a unit and a reason.
3. IOM: logit P(registered) = x_i'α + log θ · [y_i > 0]; a departure after the last
   apprehension; some duplicate registrations; extra clients outside the target
   population (pending procedure, Dublin).
4. Every registration is written through recording noise (spelling variants, compounds,
   diacritics, typos, swaps, aliases, partial or wrong birth dates, nationality forms,
   V-number errors), each process with its own rate, and the truth keeps what was applied.

All arrays are built with numpy and polars column operations; nothing loops over rows.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np
import polars as pl

from recapture import progress
from recapture.errors import ConfigError
from recapture.reference import countries
from recapture.schemas import REGIONS
from recapture.synthetic import names as name_pools
from recapture.synthetic.config import (
    IOM_CATEGORIES_IN_TARGET,
    IOM_CATEGORIES_OUT_OF_TARGET,
    POLICE_REASONS,
    POLICE_UNITS,
    SimulationConfig,
)

EPOCH = dt.date(1970, 1, 1)
IOM_CATEGORIES = IOM_CATEGORIES_IN_TARGET + IOM_CATEGORIES_OUT_OF_TARGET

# Independent random streams: changing one part of the config leaves the others' draws alone.
_STREAMS = ("population", "police", "iom", "extra", "names", "noise_police", "noise_iom", "keys")

#: Characters whose diacritics a keyboard without them drops (per registration noise).
DIACRITIC_MAP: dict[str, str] = {
    "á": "a",
    "à": "a",
    "â": "a",
    "ä": "a",
    "ã": "a",
    "å": "a",
    "Á": "A",
    "À": "A",
    "Â": "A",
    "Ä": "A",
    "é": "e",
    "è": "e",
    "ê": "e",
    "ë": "e",
    "É": "E",
    "È": "E",
    "Ë": "E",
    "í": "i",
    "ì": "i",
    "î": "i",
    "ï": "i",
    "ı": "i",
    "İ": "I",
    "Í": "I",
    "Î": "I",
    "ó": "o",
    "ò": "o",
    "ô": "o",
    "ö": "o",
    "õ": "o",
    "ø": "o",
    "Ó": "O",
    "Ö": "O",
    "Ø": "O",
    "ú": "u",
    "ù": "u",
    "û": "u",
    "ü": "u",
    "Ú": "U",
    "Ü": "U",
    "ñ": "n",
    "Ñ": "N",
    "ç": "c",
    "Ç": "C",
    "ş": "s",
    "Ş": "S",
    "ğ": "g",
    "Ğ": "G",
    "š": "s",
    "Š": "S",
    "ž": "z",
    "Ž": "Z",
    "č": "c",
    "Č": "C",
    "ć": "c",
    "Ć": "C",
    "đ": "d",
    "Đ": "D",
    "ō": "o",
    "ā": "a",
    "ū": "u",
    "ī": "i",
}
_DIACRITIC_CLASS = "[" + "".join(DIACRITIC_MAP) + "]"


@dataclass
class World:
    """A simulated world: the two extracts as written, and the truth behind them."""

    config: SimulationConfig
    people: pl.DataFrame  # truth: one row per person (target population and extra IOM clients)
    police: pl.DataFrame  # the police extract, string columns in file order
    iom: pl.DataFrame  # the IOM extract, string columns in file order
    records: pl.DataFrame  # truth: one row per extract row → person and noise applied
    summary: dict[str, Any] = field(default_factory=dict)


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


def _culture_codes(country_idx: np.ndarray) -> np.ndarray:
    """Naming culture (index into name tables' cultures) of each country index."""
    table = _country_table()
    cultures = name_pools.name_tables().cultures
    code_of = {c: i for i, c in enumerate(cultures)}
    lookup = np.empty(len(table.iso3), dtype=np.int16)
    for i, iso3 in enumerate(table.iso3):
        culture = name_pools.CULTURE_OF_NATIONALITY.get(
            iso3, name_pools.CULTURE_OF_REGION[REGIONS[table.region_code[i]]]
        )
        lookup[i] = code_of[culture]
    return lookup[country_idx]


# --------------------------------------------------------------------------------------
# People
# --------------------------------------------------------------------------------------
def _draw_entries(
    rng: np.random.Generator, culture: np.ndarray, kind_by_person: np.ndarray
) -> np.ndarray:
    """Pool entry id per person, Zipf-distributed within the person's culture and kind.

    ``kind_by_person``: 0 male given, 1 female given, 2 family. One search in the
    concatenated, group-shifted CDFs serves every culture and kind at once.
    """
    tables = name_pools.name_tables()
    group = culture.astype(np.int64) * len(name_pools.KINDS) + kind_by_person
    entry = np.searchsorted(tables.group_cdf, group + rng.random(len(culture)), side="right")
    return np.minimum(entry, tables.group_end[group] - 1)


def _draw_identity(
    rng: np.random.Generator, culture: np.ndarray, male: np.ndarray
) -> dict[str, np.ndarray]:
    """Given name(s) and family name entries for people of the given cultures and sexes."""
    n = len(culture)
    given_kind = np.where(male, 0, 1)
    given1 = _draw_entries(rng, culture, given_kind)
    second_share = np.asarray(
        [name_pools.SECOND_GIVEN_SHARE.get(c, 0.1) for c in name_pools.name_tables().cultures]
    )[culture]
    given2 = _draw_entries(rng, culture, given_kind)
    has_second = (rng.random(n) < second_share) & (given2 != given1)
    given2 = np.where(has_second, given2, -1)
    family = _draw_entries(rng, culture, np.full(n, 2))
    return {"given1": given1, "given2": given2, "family": family}


def _draw_nationalities(rng: np.random.Generator, n: int, config: SimulationConfig) -> np.ndarray:
    idx, p = nationality_mix(config)
    return idx.astype(np.int16)[rng.choice(len(idx), size=n, p=p)]


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


@dataclass(frozen=True)
class _VNumbers:
    """A random one-to-one map person id → 10-digit V-number: v = (a·id + b) mod M + 10⁹.

    With a coprime to M = 9·10⁹ distinct ids get distinct numbers, without a set of
    millions of drawn numbers to deduplicate.
    """

    a: int
    b: int
    M: int = 9_000_000_000

    @classmethod
    def draw(cls, rng: np.random.Generator) -> _VNumbers:
        while True:
            a = int(rng.integers(1_000_000_001, 8_999_999_999))
            if math.gcd(a, cls.M) == 1:
                return cls(a=a, b=int(rng.integers(0, cls.M)))

    def __call__(self, person_id: np.ndarray) -> np.ndarray:
        ids = person_id.astype(np.int64)
        # (a·id) mod M without overflow: split a into high and low parts
        hi, lo = divmod(self.a, 100_000)
        prod = ((hi * ids) % self.M * 100_000 + lo * ids) % self.M
        return (prod + self.b) % self.M + 1_000_000_000


def _draw_people(
    rng: np.random.Generator, n: int, config: SimulationConfig, first_id: int, v_numbers: _VNumbers
) -> dict[str, np.ndarray]:
    """Everything about a person the registrations depend on, except names (see
    :func:`_draw_names`)."""
    pop = config.population
    period_start = (config.period_start - EPOCH).days
    days = config.period_days
    country = _draw_nationalities(rng, n, config)
    male = rng.random(n) < pop.male_share
    age = np.minimum(pop.age_min + rng.gamma(pop.age_shape, pop.age_scale, n), pop.age_max)
    birth = period_start - np.floor(age * 365.2425).astype(np.int64)
    has_v = rng.random(n) < pop.v_number_share
    v_number = np.where(has_v, v_numbers(np.arange(first_id, first_id + n)), 0)
    # time at risk, as day offsets [entry, exit) within the period
    arrive = rng.random(n) < pop.arrive_share
    leave = rng.random(n) < pop.leave_share
    entry = np.where(arrive, rng.integers(0, days, n), 0)
    exit_ = np.where(
        leave, entry + 1 + np.floor(rng.random(n) * (days - entry)).astype(np.int64), days
    )
    return {
        "country": country,
        "male": male,
        "age": age,
        "birth": birth,
        "v_number": v_number,
        "has_v": has_v,
        "entry": entry,
        "exit": np.minimum(exit_, days),
        "has_alias": rng.random(n) < config.noise.alias_person_share,
    }


def _draw_names(
    rng: np.random.Generator,
    people: dict[str, np.ndarray],
    who: np.ndarray,
    config: SimulationConfig,
) -> None:
    """Add names and alias identities for the people ``who`` (indices) to ``people``.

    Only people who leave a registration need a name; drawing them for the others would
    make the million-record benchmark spend most of its time on names nobody writes.
    Entries of the others stay −1 (no name).
    """
    n = len(people["male"])
    people["culture"] = _culture_codes(people["country"])
    culture = people["culture"][who]
    male = people["male"][who]
    for prefix in ("", "alias_"):
        identity = _draw_identity(rng, culture, male)
        for key, values in identity.items():
            full = np.full(n, -1, dtype=np.int32)
            full[who] = values
            people[prefix + key] = full
    k = len(who)
    shift = np.where(rng.random(k) < 0.6, rng.choice([-1, 1], k) * rng.integers(365, 5 * 365, k), 0)
    people["alias_birth"] = people["birth"].copy()
    people["alias_birth"][who] += shift
    people["alias_country"] = people["country"].copy()
    other = rng.random(k) < 0.3
    people["alias_country"][who[other]] = _other_in_region(
        rng, people["country"][who[other]], config
    )


def _age_class(age: np.ndarray, breaks: list[float]) -> np.ndarray:
    return np.searchsorted(np.asarray(breaks, dtype=np.float64), age, side="right")


def _region_coefficients(coefs: dict[str, float]) -> np.ndarray:
    return np.asarray([coefs.get(r, 0.0) for r in REGIONS])


# --------------------------------------------------------------------------------------
# Police and IOM registrations
# --------------------------------------------------------------------------------------
def _police(
    rng: np.random.Generator, people: dict[str, np.ndarray], config: SimulationConfig
) -> dict[str, np.ndarray]:
    pol = config.police
    n = len(people["male"])
    table = _country_table()
    region = table.region_code[people["country"]]
    age_class = _age_class(people["age"], pol.age_breaks)
    age_coef = np.concatenate([[0.0], pol.age_coefficients])
    eta = (
        pol.intercept
        + pol.male * people["male"]
        + age_coef[age_class]
        + _region_coefficients(pol.region_coefficients)[region]
    )
    frailty = (
        rng.gamma(pol.frailty_shape, 1.0 / pol.frailty_shape, n)
        if pol.frailty_shape > 0
        else np.ones(n)
    )
    exposure = (
        (people["exit"] - people["entry"]) / config.period_days if pol.time_at_risk else np.ones(n)
    )
    lam = np.exp(eta) * frailty * exposure
    count = rng.poisson(lam)
    inflate = (count >= 2) & (rng.random(n) < pol.one_inflation)
    count = np.where(inflate, 1, count)
    # apprehension records
    person = np.repeat(np.arange(n, dtype=np.int64), count)
    entry, exit_ = people["entry"][person], people["exit"][person]
    day = entry + np.floor(rng.random(len(person)) * (exit_ - entry)).astype(np.int64)
    unit_p = np.asarray(pol.unit_weights) / np.sum(pol.unit_weights)
    home = rng.choice(len(POLICE_UNITS), size=n, p=unit_p)
    away = rng.random(len(person)) >= pol.home_unit_share
    unit = np.where(away, rng.choice(len(POLICE_UNITS), size=len(person), p=unit_p), home[person])
    reason_p = np.asarray(pol.reason_probabilities) / np.sum(pol.reason_probabilities)
    reason = rng.choice(len(POLICE_REASONS), size=len(person), p=reason_p)
    last_day = np.full(n, -1, dtype=np.int64)
    np.maximum.at(last_day, person, day)
    return {
        "eta": eta,
        "frailty": frailty,
        "exposure": exposure,
        "lambda": lam,
        "count": count,
        "one_inflated": inflate,
        "home_unit": home,
        "last_day": last_day,
        "rec_person": person,
        "rec_day": day,
        "rec_unit": unit,
        "rec_reason": reason,
    }


def _iom_probability(
    people: dict[str, np.ndarray], apprehended: np.ndarray, config: SimulationConfig
) -> np.ndarray:
    iom = config.iom
    table = _country_table()
    region = table.region_code[people["country"]]
    age_class = _age_class(people["age"], config.police.age_breaks)
    age_coef = np.concatenate([[0.0], iom.age_coefficients])
    logit = (
        iom.intercept
        + iom.female * (~people["male"])
        + age_coef[age_class]
        + _region_coefficients(iom.region_coefficients)[region]
        + np.log(iom.apprehended_odds_ratio) * apprehended
    )
    return 1.0 / (1.0 + np.exp(-logit))


def _iom_records(
    rng: np.random.Generator,
    registered: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    config: SimulationConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """Person index and day of each IOM registration (duplicates included), days in [lower, upper)."""
    n = len(registered)
    per_person = registered.astype(np.int64) * (1 + (rng.random(n) < config.iom.duplicate_rate))
    person = np.repeat(np.arange(n, dtype=np.int64), per_person)
    lo, hi = lower[person], upper[person]
    day = lo + np.floor(rng.random(len(person)) * (hi - lo)).astype(np.int64)
    return person, day


# --------------------------------------------------------------------------------------
# Recording noise
# --------------------------------------------------------------------------------------
def _choose_forms(
    rng: np.random.Generator, entry: np.ndarray, rate: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Written form per registration: canonical, or with probability ``rate`` a spelling
    variant (earlier variants likelier). Returns form id, changed flag, has-a-name flag."""
    tables = name_pools.name_tables()
    valid = entry >= 0
    safe = np.where(valid, entry, 0)
    n_forms = tables.n_forms[safe]
    eligible = valid & (n_forms > 1)
    flip = eligible & (rng.random(len(entry)) < rate)
    k = 1 + np.floor((n_forms - 1) * rng.random(len(entry)) ** 2).astype(np.int64)
    form = tables.form_offset[safe] + np.where(flip, k, 0)
    return form, flip, valid


def _form_text(form: np.ndarray, valid: np.ndarray, compound_flip: np.ndarray) -> pl.Series:
    tables = name_pools.name_tables()
    idx = pl.Series(np.where(valid, form, 0))
    text = tables.form_text.gather(idx)
    alt = tables.form_compound.gather(idx)
    out = pl.select(
        pl.when(pl.lit(pl.Series(valid)).not_())
        .then(None)
        .when(pl.lit(pl.Series(compound_flip)))
        .then(pl.lit(alt))
        .otherwise(pl.lit(text))
    ).to_series()
    return out


def _name_part(
    rng: np.random.Generator, entry: np.ndarray, config: SimulationConfig
) -> tuple[pl.Series, np.ndarray, np.ndarray]:
    tables = name_pools.name_tables()
    form, translit, valid = _choose_forms(rng, entry, config.noise.transliteration)
    compound = (
        valid
        & tables.form_has_compound[np.where(valid, form, 0)]
        & (rng.random(len(entry)) < config.noise.compound)
    )
    return _form_text(form, valid, compound), translit, compound


def _labels(
    labels: list[str] | tuple[str, ...], codes: np.ndarray, keep: np.ndarray | None = None
) -> pl.Series:
    """Strings from small integer codes (null where ``keep`` is False), built in polars:
    numpy string arrays of millions of rows are slow to convert and large."""
    idx = pl.Series(codes.astype(np.int64, copy=False))
    if keep is not None:
        idx = _null_unless(keep, idx)
    return pl.Series(list(labels), dtype=pl.String).gather(idx)


def _null_unless(keep: np.ndarray, values: pl.Series) -> pl.Series:
    return (
        pl.select(pl.when(pl.lit(pl.Series(keep))).then(pl.lit(values)))
        .to_series()
        .alias(values.name)
    )


def _pick(mask: np.ndarray, if_true: pl.Series, if_false: pl.Series) -> pl.Series:
    return pl.select(
        pl.when(pl.lit(pl.Series(mask))).then(pl.lit(if_true)).otherwise(pl.lit(if_false))
    ).to_series()


_LETTERS = pl.Series(list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"), dtype=pl.String)


def _typos(rng: np.random.Generator, text: pl.Series, rate: float) -> tuple[pl.Series, np.ndarray]:
    """One typing error in a share ``rate`` of the values of two or more characters."""
    n = len(text)
    length = text.str.len_chars().fill_null(0).to_numpy().astype(np.int64)
    flag = (rng.random(n) < rate) & (length >= 2)
    op = rng.integers(0, 4, n)  # 0 substitute, 1 delete, 2 insert, 3 transpose
    pos = np.floor(rng.random(n) * np.maximum(length - 1, 1)).astype(np.int64)  # 0 .. len-2
    pos = np.where(op == 2, np.floor(rng.random(n) * (length + 1)).astype(np.int64), pos)
    letter = rng.integers(0, 26, n) + np.where(pos == 0, 26, 0)  # capital at the start
    rows = np.flatnonzero(flag)
    if len(rows) == 0:
        return text, flag
    df = pl.DataFrame(
        {"s": text.gather(rows), "op": op[rows], "p": pos[rows], "c": _LETTERS.gather(letter[rows])}
    )
    s, p = pl.col("s"), pl.col("p")
    head = s.str.slice(0, p)
    typo = (
        pl.when(pl.col("op") == 0)
        .then(head + pl.col("c") + s.str.slice(p + 1))
        .when(pl.col("op") == 1)
        .then(head + s.str.slice(p + 1))
        .when(pl.col("op") == 2)
        .then(head + pl.col("c") + s.str.slice(p))
        .otherwise(head + s.str.slice(p + 1, 1) + s.str.slice(p, 1) + s.str.slice(p + 2))
    )
    changed = df.select(typo)
    out = text.clone().scatter(rows, changed.to_series())
    return out, flag


def _strip_diacritics(text: pl.Series) -> pl.Series:
    return text.str.replace_many(list(DIACRITIC_MAP), list(DIACRITIC_MAP.values()))


def _mistype_digits(rng: np.random.Generator, digits: np.ndarray) -> np.ndarray:
    """Change one digit or transpose two adjacent different digits in each row (n × 10)."""
    n = len(digits)
    out = digits.copy()
    pos = rng.integers(0, 9, n)
    rows = np.arange(n)
    a, b = out[rows, pos].copy(), out[rows, pos + 1].copy()
    transpose = (rng.random(n) < 0.5) & (a != b)
    out[rows[transpose], pos[transpose]] = b[transpose]
    out[rows[transpose], pos[transpose] + 1] = a[transpose]
    sub = ~transpose
    out[rows[sub], pos[sub]] = (out[rows[sub], pos[sub]] + rng.integers(1, 10, sub.sum())) % 10
    return out


def _v_number_text(
    number: np.ndarray,
    present: np.ndarray,
    mistyped: np.ndarray,
    rng: np.random.Generator,
    dotted: np.ndarray | None,
) -> pl.Series:
    number = number.copy()
    rows = np.flatnonzero(mistyped)
    if len(rows):
        powers = 10 ** np.arange(9, -1, -1, dtype=np.int64)
        digits = (number[rows, None] // powers[None, :]) % 10
        number[rows] = _mistype_digits(rng, digits) @ powers
    text = pl.Series(number).cast(pl.String).str.zfill(10)
    if dotted is not None:
        text = _pick(
            dotted,
            text.str.slice(0, 4) + "." + text.str.slice(4, 3) + "." + text.str.slice(7),
            text,
        )
    return _null_unless(present, text)


_BIRTH_KINDS = ("missing", "year_only", "month_year", "default", "full")
_NATIONALITY_FORMS = ("country_name", "adjective", "iso3", "iso2", "unknown")
_V_STATES = ("none", "alias_without", "missing", "mistyped", "recorded")


def _record_noise(
    rng: np.random.Generator,
    source: str,
    person: np.ndarray,
    people: dict[str, np.ndarray],
    config: SimulationConfig,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Written identity fields and the noise flags of every registration of ``source``."""
    noise = config.noise
    n = len(person)
    table = _country_table()
    alias = people["has_alias"][person] & (rng.random(n) < noise.alias_use)

    def pick(key: str) -> np.ndarray:
        return np.where(alias, people["alias_" + key][person], people[key][person])

    given1, t1, c1 = _name_part(rng, pick("given1"), config)
    given2, t2, c2 = _name_part(rng, pick("given2"), config)
    family, tf, cf = _name_part(rng, pick("family"), config)
    given = _join_given(given1, given2)
    # diacritics dropped (one draw per registration, both names)
    has_diacritics = (
        given.str.contains(_DIACRITIC_CLASS).fill_null(False)
        | family.str.contains(_DIACRITIC_CLASS).fill_null(False)
    ).to_numpy()
    drop = has_diacritics & (rng.random(n) < noise.diacritics_dropped)
    rows = np.flatnonzero(drop)
    if len(rows):
        given = given.clone().scatter(rows, _strip_diacritics(given.gather(rows)))
        family = family.clone().scatter(rows, _strip_diacritics(family.gather(rows)))
    given, typo_given = _typos(rng, given, noise.typo)
    family, typo_family = _typos(rng, family, noise.typo)
    swap = rng.random(n) < noise.name_swap
    given_out, family_out = _pick(swap, family, given), _pick(swap, given, family)

    # birth date: one exclusive category, then a day–month swap on full dates
    birth = pick("birth")
    month_year = noise.birth_month_year if source == "police" else 0.0
    edges = np.cumsum([noise.birth_missing, noise.birth_year_only, month_year, noise.birth_default])
    category = np.searchsorted(edges, rng.random(n), side="right")  # index into _BIRTH_KINDS
    birth_dates = pl.Series(birth.astype("datetime64[D]")).cast(pl.Date)
    y = birth_dates.dt.year().to_numpy()
    m = birth_dates.dt.month().to_numpy()
    d = birth_dates.dt.day().to_numpy()
    can_swap = (category == 4) & (d <= 12) & (d != m)
    swap_dm = can_swap & (rng.random(n) < noise.birth_day_month_swap)
    d_out = np.where(category == 3, 1, np.where(swap_dm, m, d))
    m_out = np.where(category == 3, 1, np.where(swap_dm, d, m))

    sex_unknown = rng.random(n) < noise.sex_unknown
    male = people["male"][person]

    # nationality
    country = pick("country")
    wrong = rng.random(n) < noise.nationality_wrong
    if wrong.any():
        country = country.copy()
        country[wrong] = _other_in_region(rng, country[wrong], config)
    forms_cfg = noise.police_nationality if source == "police" else noise.iom_nationality
    shares = np.asarray([getattr(forms_cfg, f) for f in _NATIONALITY_FORMS])
    form = rng.choice(len(shares), size=n, p=shares / shares.sum())

    # V-number
    has_v_person = people["has_v"][person]
    has_v = has_v_person & (~alias | (rng.random(n) < noise.alias_keeps_v_number))
    missing_rate = (
        noise.v_number_missing_police if source == "police" else noise.v_number_missing_iom
    )
    v_missing = has_v & (rng.random(n) < missing_rate)
    v_present = has_v & ~v_missing
    v_mistyped = v_present & (rng.random(n) < noise.v_number_mistyped)
    dotted = (rng.random(n) < config.iom.dotted_v_number_share) if source == "iom" else None
    v_text = _v_number_text(people["v_number"][person], v_present, v_mistyped, rng, dotted)
    v_state = np.select([~has_v_person, ~has_v, v_missing, v_mistyped], [0, 1, 2, 3], 4)

    lang = "nl" if source == "police" else "en"
    cidx = pl.Series(country)
    nat_text = (
        pl.DataFrame(
            {
                "form": form,
                "country_name": table.columns[f"name_{lang}"].gather(cidx),
                "adjective": table.columns[f"adjective_{lang}"].gather(cidx),
                "iso3": table.columns["iso3"].gather(cidx),
                "iso2": table.columns["iso2"].gather(cidx),
            }
        )
        .select(
            pl.when(pl.col("form") == 0)
            .then(pl.col("country_name"))
            .when(pl.col("form") == 1)
            .then(pl.col("adjective"))
            .when(pl.col("form") == 2)
            .then(pl.col("iso3"))
            .when(pl.col("form") == 3)
            .then(pl.col("iso2"))
            .otherwise(pl.lit("onbekend" if source == "police" else "Unknown"))
        )
        .to_series()
    )

    written = pl.DataFrame(
        {
            "family": family_out,
            "given": given_out,
            "birth_kind": category,
            "by": y,
            "bm": m_out,
            "bd": d_out,
            "male": male,
            "sex_unknown": sex_unknown,
            "nationality": nat_text,
            "v_number": v_text,
        }
    )
    flags = pl.DataFrame(
        {
            "identity": _labels(("primary", "alias"), alias.astype(np.int64)),
            "transliteration_given": t1 | t2,
            "transliteration_family": tf,
            "compound_given": c1 | c2,
            "compound_family": cf,
            "diacritics_dropped": drop,
            "typo_given": typo_given,
            "typo_family": typo_family,
            "name_swap": swap,
            "birth_date_recorded": _labels(_BIRTH_KINDS, category),
            "birth_day_month_swap": swap_dm,
            "sex_unknown": sex_unknown,
            "nationality_form": _labels(_NATIONALITY_FORMS, form),
            "nationality_wrong": wrong,
            "nationality_recorded_iso3": table.columns["iso3"].gather(cidx),
            "v_number_recorded": _labels(_V_STATES, v_state),
        }
    )
    return written, flags


def _write_police_fields(written: pl.DataFrame, rng: np.random.Generator) -> pl.DataFrame:
    unknown_blank = pl.Series(rng.random(written.height) < 0.5)
    bd = pl.col("bd").cast(pl.String).str.zfill(2)
    bm = pl.col("bm").cast(pl.String).str.zfill(2)
    by = pl.col("by").cast(pl.String)
    kind = pl.col("birth_kind")
    return written.select(
        achternaam=pl.col("family"),
        voornamen=pl.col("given"),
        geboortedatum=pl.when(kind == 0)
        .then(None)
        .when(kind == 1)
        .then(pl.lit("00-00-") + by)
        .when(kind == 2)
        .then(pl.lit("00-") + bm + pl.lit("-") + by)
        .otherwise(bd + pl.lit("-") + bm + pl.lit("-") + by),
        geslacht=pl.when(pl.col("sex_unknown") & pl.lit(unknown_blank))
        .then(None)
        .when(pl.col("sex_unknown"))
        .then(pl.lit("O"))
        .when(pl.col("male"))
        .then(pl.lit("M"))
        .otherwise(pl.lit("V")),
        nationaliteit=pl.col("nationality"),
        vnummer=pl.col("v_number"),
    )


def _write_iom_fields(written: pl.DataFrame) -> pl.DataFrame:
    bd = pl.col("bd").cast(pl.String).str.zfill(2)
    bm = pl.col("bm").cast(pl.String).str.zfill(2)
    by = pl.col("by").cast(pl.String)
    kind = pl.col("birth_kind")
    return written.select(
        last_name=pl.col("family"),
        first_name=pl.col("given"),
        dob=pl.when(kind == 0)
        .then(None)
        .when(kind.is_in([1, 2]))
        .then(by)
        .otherwise(by + pl.lit("-") + bm + pl.lit("-") + bd),
        sex=pl.when(pl.col("sex_unknown"))
        .then(pl.lit("Unknown"))
        .when(pl.col("male"))
        .then(pl.lit("Male"))
        .otherwise(pl.lit("Female")),
        nationality=pl.col("nationality"),
        v_number=pl.col("v_number"),
    )


def _sequential_keys(
    rng: np.random.Generator, n: int, start_low: int, start_high: int, max_gap: int, limit: int
) -> np.ndarray:
    """Increasing registration numbers with small random gaps, as a register issues them."""
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    gap = max_gap if start_high + n * max_gap < limit else 1
    keys = rng.integers(start_low, start_high) + np.cumsum(rng.integers(1, gap + 1, n))
    if keys[-1] >= limit:
        raise ConfigError(
            f"too many registrations ({n:,}) for the registration-number format", key="size"
        )
    return keys


def _dates(day_offsets: np.ndarray, config: SimulationConfig) -> pl.Series:
    start = (config.period_start - EPOCH).days
    return pl.Series((start + day_offsets).astype("datetime64[D]")).cast(pl.Date)


def _prefixed(prefix: str, keys: np.ndarray, width: int) -> pl.Series:
    return pl.select(
        pl.lit(prefix) + pl.lit(pl.Series(keys)).cast(pl.String).str.zfill(width)
    ).to_series()


# --------------------------------------------------------------------------------------
# The world
# --------------------------------------------------------------------------------------
def simulate_world(config: SimulationConfig | None = None) -> World:
    """Simulate people, their police and IOM registrations, and the truth behind them."""
    config = config or SimulationConfig()
    seeds = np.random.SeedSequence(config.seed).spawn(len(_STREAMS))
    streams = dict(zip(_STREAMS, (np.random.default_rng(s) for s in seeds), strict=True))
    n = config.size
    days = config.period_days

    with progress.step(f"simulate {n:,} people and their registrations") as state:
        v_numbers = _VNumbers.draw(streams["keys"])
        people = _draw_people(streams["population"], n, config, 0, v_numbers)
        police = _police(streams["police"], people, config)
        apprehended = police["count"] > 0
        p_iom = _iom_probability(people, apprehended, config)
        rng_iom = streams["iom"]
        iom_registered = rng_iom.random(n) < p_iom
        lower = np.maximum(people["entry"], police["last_day"])
        iom_person, iom_day = _iom_records(rng_iom, iom_registered, lower, people["exit"], config)
        # category codes: 0 irregular, 1 rejected_asylum, 2 pending_procedure, 3 dublin
        category_target = (people["has_v"] & (rng_iom.random(n) < 0.7)).astype(np.int8)

        # IOM clients outside the target population: extra people, always with a V-number
        n_target_clients = int(iom_registered.sum())
        share = config.iom.out_of_target_share
        n_extra = int(round(n_target_clients * share / (1.0 - share)))
        rng_extra = streams["extra"]
        extra = _draw_people(rng_extra, n_extra, config, n, v_numbers)
        extra["has_v"] = np.ones(n_extra, dtype=bool)
        extra["v_number"] = v_numbers(np.arange(n, n + n_extra))
        extra["entry"] = np.zeros(n_extra, dtype=np.int64)
        extra["exit"] = np.full(n_extra, days, dtype=np.int64)
        extra_category = np.where(
            rng_extra.random(n_extra) < config.iom.pending_procedure_share, 2, 3
        ).astype(np.int8)
        extra_person, extra_day = _iom_records(
            rng_extra, np.ones(n_extra, dtype=bool), extra["entry"], extra["exit"], config
        )

        everyone = {k: np.concatenate([people[k], extra[k]]) for k in people}
        del people, extra  # the concatenated copies replace them (memory at millions of people)
        registered = np.zeros(n + n_extra, dtype=bool)
        registered[police["rec_person"]] = True
        registered[iom_person] = True
        registered[n:] = True
        _draw_names(streams["names"], everyone, np.flatnonzero(registered), config)
        iom_person_all = np.concatenate([iom_person, n + extra_person])
        iom_day_all = np.concatenate([iom_day, extra_day])
        category_all = np.concatenate([category_target, extra_category])
        state["result"] = (
            f"{len(police['rec_person']):,} police and {len(iom_person_all):,} IOM registrations"
        )

    with progress.step("write the registrations through recording noise"):
        # police extract, in date order
        order = np.lexsort((streams["keys"].random(len(police["rec_person"])), police["rec_day"]))
        pol_person = police["rec_person"][order]
        pol_day = police["rec_day"][order]
        written, pol_flags = _record_noise(
            streams["noise_police"], "police", pol_person, everyone, config
        )
        pol_keys = _sequential_keys(
            streams["keys"], len(pol_person), 180_000_000, 200_000_000, 40, 1_000_000_000
        )
        police_df = pl.concat(
            [
                pl.DataFrame({"registratienummer": _prefixed("PSH", pol_keys, 9)}),
                _write_police_fields(written, streams["noise_police"]),
                pl.DataFrame(
                    {
                        "datum_staandehouding": _dates(pol_day, config).dt.strftime("%d-%m-%Y"),
                        "eenheid": _labels(POLICE_UNITS, police["rec_unit"][order]),
                        "reden": _labels(POLICE_REASONS, police["rec_reason"][order]),
                    }
                ),
            ],
            how="horizontal",
        )
        # IOM extract, in date order
        order_iom = np.lexsort((streams["keys"].random(len(iom_person_all)), iom_day_all))
        iom_p = iom_person_all[order_iom]
        iom_d = iom_day_all[order_iom]
        written_iom, iom_flags = _record_noise(streams["noise_iom"], "iom", iom_p, everyone, config)
        iom_keys = _sequential_keys(
            streams["keys"], len(iom_p), 1_000_000, 1_100_000, 3, 10_000_000
        )
        iom_df = pl.concat(
            [
                pl.DataFrame({"case_no": _prefixed("IOM-", iom_keys, 7)}),
                _write_iom_fields(written_iom),
                pl.DataFrame(
                    {
                        "departure_date": _dates(iom_d, config).dt.strftime("%Y-%m-%d"),
                        "client_category": _labels(IOM_CATEGORIES, category_all[iom_p]),
                    }
                ),
            ],
            how="horizontal",
        )

    with progress.step("assemble the truth"):
        n_all = n + n_extra
        iom_count = np.bincount(iom_person_all, minlength=n_all)
        records = pl.concat(
            [
                pl.DataFrame(
                    {
                        "source": pl.repeat("police", len(pol_person), eager=True, dtype=pl.String),
                        "source_key": police_df["registratienummer"],
                        "source_row": np.arange(1, len(pol_person) + 1, dtype=np.int64),
                        "person_id": pol_person,
                        "event_date": _dates(pol_day, config),
                    }
                ).hstack(pol_flags),
                pl.DataFrame(
                    {
                        "source": pl.repeat("iom", len(iom_p), eager=True, dtype=pl.String),
                        "source_key": iom_df["case_no"],
                        "source_row": np.arange(1, len(iom_p) + 1, dtype=np.int64),
                        "person_id": iom_p,
                        "event_date": _dates(iom_d, config),
                    }
                ).hstack(iom_flags),
            ]
        ).with_columns(in_target=pl.col("person_id") < n)
        truth_people = _people_frame(everyone, n, police, p_iom, iom_count, category_all, config)
    world = World(config=config, people=truth_people, police=police_df, iom=iom_df, records=records)
    world.summary = summarise(world)
    return world


def _entry_text(entry: np.ndarray) -> pl.Series:
    tables = name_pools.name_tables()
    valid = entry >= 0
    return _null_unless(
        valid, tables.form_text.gather(pl.Series(tables.form_offset[np.where(valid, entry, 0)]))
    )


def _join_given(g1: pl.Series, g2: pl.Series) -> pl.Series:
    return pl.select(
        pl.when(pl.lit(g2).is_null()).then(pl.lit(g1)).otherwise(pl.lit(g1) + " " + pl.lit(g2))
    ).to_series()


def _people_frame(
    people: dict[str, np.ndarray],
    n_target: int,
    police: dict[str, np.ndarray],
    p_iom: np.ndarray,
    iom_count: np.ndarray,
    category: np.ndarray,
    config: SimulationConfig,
) -> pl.DataFrame:
    table = _country_table()
    n_all = len(people["male"])
    n_extra = n_all - n_target
    start = (config.period_start - EPOCH).days
    in_target = np.arange(n_all) < n_target

    def pad(values: np.ndarray, fill: Any) -> np.ndarray:
        return np.concatenate([values, np.full(n_extra, fill, dtype=values.dtype)])

    has_alias = people["has_alias"]
    breaks = config.police.age_breaks
    iso3 = table.columns["iso3"]
    return pl.DataFrame(
        {
            "person_id": np.arange(n_all, dtype=np.int64),
            "in_target": in_target,
            "sex": _labels(("F", "M"), people["male"].astype(np.int64)),
            "birth_date": _dates(people["birth"] - start, config),
            "age": np.round(people["age"], 2),
            "age_class": _labels(_age_class_labels(breaks), _age_class(people["age"], breaks)),
            "nationality_iso3": iso3.gather(pl.Series(people["country"])),
            "region": _labels(REGIONS, table.region_code[people["country"]]),
            "naming_culture": _labels(name_pools.name_tables().cultures, people["culture"]),
            "given_name": _join_given(_entry_text(people["given1"]), _entry_text(people["given2"])),
            "family_name": _entry_text(people["family"]),
            "v_number": _null_unless(
                people["has_v"], pl.Series(people["v_number"]).cast(pl.String)
            ),
            "has_alias": has_alias,
            "alias_given_name": _null_unless(
                has_alias,
                _join_given(
                    _entry_text(people["alias_given1"]), _entry_text(people["alias_given2"])
                ),
            ),
            "alias_family_name": _null_unless(has_alias, _entry_text(people["alias_family"])),
            "alias_birth_date": _null_unless(
                has_alias, _dates(people["alias_birth"] - start, config)
            ),
            "alias_nationality_iso3": _null_unless(
                has_alias, iso3.gather(pl.Series(people["alias_country"]))
            ),
            "at_risk_from": _dates(people["entry"], config),
            "at_risk_to": _dates(people["exit"] - 1, config),
            "days_at_risk": (people["exit"] - people["entry"]).astype(np.int64),
            "linear_predictor": _null_unless(in_target, pl.Series(pad(police["eta"], 0.0))),
            "frailty": _null_unless(in_target, pl.Series(pad(police["frailty"], 0.0))),
            "police_lambda": pad(police["lambda"], 0.0),
            "police_count": pad(police["count"].astype(np.int64), 0),
            "one_inflated": pad(police["one_inflated"], False),
            "home_unit": _labels(POLICE_UNITS, pad(police["home_unit"], 0), in_target),
            "iom_probability": _null_unless(in_target, pl.Series(pad(p_iom, 0.0))),
            "iom_count": iom_count.astype(np.int64),
            "iom_category": _labels(IOM_CATEGORIES, category, iom_count > 0),
        }
    )


def _age_class_labels(breaks: list[float]) -> list[str]:
    edges = [f"{b:g}" for b in breaks]
    if not edges:
        return ["all"]
    labels = [f"<{edges[0]}"]
    labels += [f"{edges[i]}-{edges[i + 1]}" for i in range(len(edges) - 1)]
    labels.append(f"{edges[-1]}+")
    return labels


def summarise(world: World) -> dict[str, Any]:
    """Counts a user checks first: true N, who each source saw, f1..f5 of police counts."""
    people = world.people.filter(pl.col("in_target"))
    counts = people["police_count"].to_numpy()
    seen = counts[counts > 0]
    f = {str(k): int((seen == k).sum()) for k in range(1, 6)}
    f["6+"] = int((seen >= 6).sum())
    iom_target = people.filter(pl.col("iom_count") > 0).height
    both = people.filter((pl.col("iom_count") > 0) & (pl.col("police_count") > 0)).height
    return {
        "true_n": people.height,
        "police_persons": int(len(seen)),
        "police_records": world.police.height,
        "police_share_seen": round(len(seen) / max(people.height, 1), 4),
        "police_frequencies": f,
        "f1_over_f2": round(f["1"] / f["2"], 3) if f["2"] else None,
        "iom_persons_in_target": iom_target,
        "iom_persons_out_of_target": int(world.people.filter(~pl.col("in_target")).height),
        "iom_records": world.iom.height,
        "persons_in_both_sources": both,
        "persons_with_alias_used": int(
            world.records.filter(pl.col("identity") == "alias")["person_id"].n_unique()
        ),
    }
