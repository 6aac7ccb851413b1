"""Parameters of a simulated registration world, with realistic defaults.

Every number that shapes a simulated world lives here, so that a manifest can record all
of them and a TOML file can change any of them. Why each default is what it is:
``docs/simulator.md``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recapture.errors import ConfigError
from recapture.loader import build, read_toml
from recapture.reference import countries
from recapture.schemas import REGIONS

#: Police units of the extract (the ten regional units of the Dutch national police).
POLICE_UNITS: tuple[str, ...] = (
    "Amsterdam",
    "Rotterdam",
    "Den Haag",
    "Midden-Nederland",
    "Noord-Holland",
    "Noord-Nederland",
    "Oost-Nederland",
    "Oost-Brabant",
    "Zeeland-West-Brabant",
    "Limburg",
)

#: Reasons of apprehension as written in the police extract.
POLICE_REASONS: tuple[str, ...] = ("vreemdelingencontrole", "strafbaar feit", "overig")

#: IOM client categories; the last two are outside the target population.
IOM_CATEGORIES_IN_TARGET: tuple[str, ...] = ("irregular", "rejected_asylum")
IOM_CATEGORIES_OUT_OF_TARGET: tuple[str, ...] = ("pending_procedure", "dublin")


@dataclass
class PopulationConfig:
    """Who is in the hidden population."""

    #: Shares of nationalities (ISO 3166-1 alpha-3 → weight; normalised). Empty = built-in mix.
    nationality_weights: dict[str, float] = field(default_factory=dict)
    #: Share of men (irregular migrants apprehended by the police are mostly men).
    male_share: float = 0.78
    #: Age at the start of the period: ``age_min + Gamma(age_shape, age_scale)`` years.
    age_min: float = 17.0
    age_shape: float = 2.2
    age_scale: float = 7.0
    age_max: float = 85.0
    #: Share of people who have a V-number (have been in an asylum or other procedure).
    v_number_share: float = 0.55
    #: Share of people who arrive during the period (time at risk starts later).
    arrive_share: float = 0.15
    #: Share of people who leave during the period (time at risk ends earlier).
    leave_share: float = 0.15


@dataclass
class PoliceConfig:
    """Apprehensions: count ~ Poisson(t_i · u_i · exp(x_i'β)), optionally one-inflated."""

    intercept: float = -1.38
    male: float = 0.40
    #: Age-class breakpoints in years: ``[40]`` gives classes <40 and 40+.
    age_breaks: list[float] = field(default_factory=lambda: [40.0])
    #: Coefficients of the age classes above each breakpoint (same length as age_breaks).
    age_coefficients: list[float] = field(default_factory=lambda: [-0.95])
    #: Coefficients by region; a region not named has coefficient 0 (the reference).
    region_coefficients: dict[str, float] = field(
        default_factory=lambda: {
            "North Africa": 0.20,
            "Sub-Saharan Africa": -0.70,
            "Middle East": -0.50,
            "Turkey": -1.50,
            "Eastern Europe": -0.30,
            "Asia": -1.00,
            "Latin America and Caribbean": -1.20,
            "Other": 0.0,
        }
    )
    #: Shape k of a mean-one gamma frailty u_i (variance 1/k); 0 switches frailty off.
    frailty_shape: float = 1.0
    #: Probability that a person apprehended at least once is never apprehended again
    #: (behavioural response); ω of the one-inflated model. 0 switches it off.
    one_inflation: float = 0.35
    #: Scale λ by the share of the period the person was in the country.
    time_at_risk: bool = True
    #: Relative size of the units (normalised); a person's home unit is drawn from it.
    unit_weights: list[float] = field(
        default_factory=lambda: [0.22, 0.16, 0.14, 0.09, 0.06, 0.06, 0.08, 0.06, 0.07, 0.06]
    )
    #: Probability that an apprehension happens in the person's home unit.
    home_unit_share: float = 0.8
    #: Probabilities of the reasons vreemdelingencontrole, strafbaar feit, overig.
    reason_probabilities: list[float] = field(default_factory=lambda: [0.5, 0.4, 0.1])


@dataclass
class IomConfig:
    """Assisted returns: logit P(IOM) = x_i'α + log(θ)·[apprehended]."""

    intercept: float = -3.6
    female: float = 0.60
    #: Coefficients of the same age classes as the police model.
    age_coefficients: list[float] = field(default_factory=lambda: [0.70])
    region_coefficients: dict[str, float] = field(
        default_factory=lambda: {
            "North Africa": -0.60,
            "Sub-Saharan Africa": -0.20,
            "Middle East": 0.20,
            "Turkey": 0.0,
            "Eastern Europe": 0.50,
            "Asia": 0.80,
            "Latin America and Caribbean": 0.40,
            "Other": 0.0,
        }
    )
    #: Odds ratio θ of an IOM registration for people apprehended by the police
    #: (1 = the two sources are independent given the covariates).
    apprehended_odds_ratio: float = 1.0
    #: Share of IOM clients who are outside the target population (extra people, not in N).
    out_of_target_share: float = 0.25
    #: Among out-of-target clients, share 'pending_procedure' (the rest 'dublin').
    pending_procedure_share: float = 0.6
    #: Probability that a registered client has a second registration (a cancelled and
    #: re-booked departure).
    duplicate_rate: float = 0.03
    #: Share of recorded V-numbers written with dots (1234.567.890).
    dotted_v_number_share: float = 0.6


@dataclass
class NationalityForms:
    """How nationality is written: shares of each form (normalised)."""

    country_name: float = 0.55
    adjective: float = 0.25
    iso3: float = 0.07
    iso2: float = 0.05
    unknown: float = 0.08


@dataclass
class NoiseConfig:
    """Recording noise, each process with its own rate, applied per registration."""

    #: Per name part (given/family), when the name has spelling variants.
    transliteration: float = 0.12
    #: Per name part, when the name is a compound (Abdel Kader ↔ Abdelkader).
    compound: float = 0.20
    #: Per registration, when a name carries diacritics (Öztürk → Ozturk).
    diacritics_dropped: float = 0.35
    #: Per name field: one typing error (substitution, deletion, insertion, transposition).
    typo: float = 0.02
    #: Per registration: given and family name swapped.
    name_swap: float = 0.03
    #: Share of people with an alias identity …
    alias_person_share: float = 0.08
    #: … and the probability that such a person uses it in a registration.
    alias_use: float = 0.40
    #: Probability that an alias registration still carries the person's V-number
    #: (fingerprints matched to the person's file).
    alias_keeps_v_number: float = 0.5
    #: Birth date recorded as 1 January of the year.
    birth_default: float = 0.04
    #: Birth date missing.
    birth_missing: float = 0.02
    #: Birth date recorded as the year only.
    birth_year_only: float = 0.02
    #: Birth date recorded as month and year (police only).
    birth_month_year: float = 0.01
    #: Day and month swapped, when both are ≤ 12 and differ.
    birth_day_month_swap: float = 0.03
    #: Another nationality of the same region recorded.
    nationality_wrong: float = 0.02
    #: Sex recorded as unknown.
    sex_unknown: float = 0.01
    #: V-number not recorded although the person has one (police / IOM).
    v_number_missing_police: float = 0.25
    v_number_missing_iom: float = 0.15
    #: V-number recorded with one digit wrong or two adjacent digits transposed.
    v_number_mistyped: float = 0.01
    police_nationality: NationalityForms = field(default_factory=NationalityForms)
    iom_nationality: NationalityForms = field(
        default_factory=lambda: NationalityForms(
            country_name=0.6, adjective=0.2, iso3=0.1, iso2=0.05, unknown=0.05
        )
    )


@dataclass
class SimulationConfig:
    """A whole simulated world. ``SimulationConfig()`` is the realistic default."""

    #: True population size N (people in the target population).
    size: int = 23_000
    seed: int = 20180630
    period_start: dt.date = dt.date(2017, 7, 1)
    period_end: dt.date = dt.date(2018, 6, 30)
    population: PopulationConfig = field(default_factory=PopulationConfig)
    police: PoliceConfig = field(default_factory=PoliceConfig)
    iom: IomConfig = field(default_factory=IomConfig)
    noise: NoiseConfig = field(default_factory=NoiseConfig)

    def __post_init__(self) -> None:
        check_config(self)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["period_start"] = self.period_start.isoformat()
        out["period_end"] = self.period_end.isoformat()
        return out

    @property
    def period_days(self) -> int:
        return (self.period_end - self.period_start).days + 1


# --------------------------------------------------------------------------------------
# Loading from TOML / dicts with strict key checking
# --------------------------------------------------------------------------------------
def load_config(path: str | Path | None = None, **overrides: Any) -> SimulationConfig:
    """Read a simulation TOML (every key optional); ``overrides`` (e.g. size, seed) win."""
    data: dict[str, Any] = {}
    file = None
    if path is not None:
        file = str(path)
        data = read_toml(path)
    data = {**data, **{k: v for k, v in overrides.items() if v is not None}}
    return config_from_dict(data, file=file)


def config_from_dict(data: dict[str, Any], *, file: str | None = None) -> SimulationConfig:
    """Build a config from nested dicts; an unknown key or a bad value raises ConfigError."""
    return build(SimulationConfig, data, file=file)


def _rate(value: float, key: str) -> None:
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"must be between 0 and 1, got {value}", key=key)


def check_config(cfg: SimulationConfig) -> None:
    """Reject values that cannot make a world, naming the key."""
    if cfg.size < 1:
        raise ConfigError(f"must be at least 1, got {cfg.size}", key="size")
    if not 0 <= cfg.seed < 2**32:
        raise ConfigError(f"must be an integer in [0, 2**32), got {cfg.seed}", key="seed")
    if cfg.period_end < cfg.period_start:
        raise ConfigError("period_end is before period_start", key="period_end")
    pop, pol, iom, noise = cfg.population, cfg.police, cfg.iom, cfg.noise
    for name in ("male_share", "v_number_share", "arrive_share", "leave_share"):
        _rate(getattr(pop, name), f"population.{name}")
    if pop.age_shape <= 0 or pop.age_scale <= 0:
        raise ConfigError("must be positive", key="population.age_shape")
    if pop.age_max <= pop.age_min:
        raise ConfigError("age_max must exceed age_min", key="population.age_max")
    known = set(countries()["iso3"].to_list()) if pop.nationality_weights else set()
    for iso3, weight in pop.nationality_weights.items():
        if iso3 not in known:
            raise ConfigError(
                "not an ISO 3166-1 alpha-3 code of the country table",
                key=f"population.nationality_weights.{iso3}",
            )
        if weight < 0:
            raise ConfigError(
                "weights must be non-negative", key=f"population.nationality_weights.{iso3}"
            )
    if pop.nationality_weights and sum(pop.nationality_weights.values()) <= 0:
        raise ConfigError("weights sum to zero", key="population.nationality_weights")
    if len(pol.age_coefficients) != len(pol.age_breaks):
        raise ConfigError("needs one coefficient per age break", key="police.age_coefficients")
    if len(iom.age_coefficients) != len(pol.age_breaks):
        raise ConfigError(
            "needs one coefficient per police.age_breaks entry", key="iom.age_coefficients"
        )
    if sorted(pol.age_breaks) != pol.age_breaks:
        raise ConfigError("must be increasing", key="police.age_breaks")
    for section, coefs in (("police", pol.region_coefficients), ("iom", iom.region_coefficients)):
        for region in coefs:
            if region not in REGIONS:
                raise ConfigError(
                    f"unknown region (allowed: {', '.join(REGIONS)})",
                    key=f"{section}.region_coefficients.{region}",
                )
    if pol.frailty_shape < 0:
        raise ConfigError("must be ≥ 0 (0 = no frailty)", key="police.frailty_shape")
    _rate(pol.one_inflation, "police.one_inflation")
    _rate(pol.home_unit_share, "police.home_unit_share")
    if (
        len(pol.unit_weights) != len(POLICE_UNITS)
        or min(pol.unit_weights) < 0
        or sum(pol.unit_weights) <= 0
    ):
        raise ConfigError(
            f"needs {len(POLICE_UNITS)} non-negative weights", key="police.unit_weights"
        )
    if (
        len(pol.reason_probabilities) != len(POLICE_REASONS)
        or min(pol.reason_probabilities) < 0
        or sum(pol.reason_probabilities) <= 0
    ):
        raise ConfigError(
            f"needs {len(POLICE_REASONS)} non-negative weights", key="police.reason_probabilities"
        )
    if iom.apprehended_odds_ratio <= 0:
        raise ConfigError("must be positive", key="iom.apprehended_odds_ratio")
    for name in (
        "out_of_target_share",
        "pending_procedure_share",
        "duplicate_rate",
        "dotted_v_number_share",
    ):
        _rate(getattr(iom, name), f"iom.{name}")
    if iom.out_of_target_share >= 1:
        raise ConfigError("must be below 1", key="iom.out_of_target_share")
    for f in dataclasses.fields(NoiseConfig):
        value = getattr(noise, f.name)
        if isinstance(value, float):
            _rate(value, f"noise.{f.name}")
    for name in ("police_nationality", "iom_nationality"):
        forms = getattr(noise, name)
        values = [getattr(forms, f.name) for f in dataclasses.fields(NationalityForms)]
        if min(values) < 0 or sum(values) <= 0:
            raise ConfigError("shares must be non-negative and not all zero", key=f"noise.{name}")
    birth = (
        noise.birth_default + noise.birth_missing + noise.birth_year_only + noise.birth_month_year
    )
    if birth > 1:
        raise ConfigError(
            "birth_default + birth_missing + birth_year_only + birth_month_year exceeds 1",
            key="noise.birth_default",
        )
