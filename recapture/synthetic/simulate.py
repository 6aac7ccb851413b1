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
from typing import Any

import numpy as np
import polars as pl

from recapture import progress
from recapture.schemas import REGIONS
from recapture.synthetic import names as name_pools
from recapture.synthetic.config import (
    IOM_CATEGORIES_IN_TARGET,
    IOM_CATEGORIES_OUT_OF_TARGET,
    POLICE_REASONS,
    POLICE_UNITS,
    SimulationConfig,
)
from recapture.synthetic.lookups import (
    _country_table,
    _join_given,
    _other_in_region,
    nationality_mix,
)
from recapture.synthetic.noise import (
    _labels,
    _null_unless,
    _record_noise,
    _sequential_keys,
    _write_iom_fields,
    _write_police_fields,
)

EPOCH = dt.date(1970, 1, 1)
IOM_CATEGORIES = IOM_CATEGORIES_IN_TARGET + IOM_CATEGORIES_OUT_OF_TARGET

# Independent random streams: changing one part of the config leaves the others' draws alone.
_STREAMS = ("population", "police", "iom", "extra", "names", "noise_police", "noise_iom", "keys")

#: Characters whose diacritics a keyboard without them drops (per registration noise).


@dataclass
class World:
    """A simulated world: the two extracts as written, and the truth behind them."""

    config: SimulationConfig
    people: pl.DataFrame  # truth: one row per person (target population and extra IOM clients)
    police: pl.DataFrame  # the police extract, string columns in file order
    iom: pl.DataFrame  # the IOM extract, string columns in file order
    records: pl.DataFrame  # truth: one row per extract row → person and noise applied
    summary: dict[str, Any] = field(default_factory=dict)


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
