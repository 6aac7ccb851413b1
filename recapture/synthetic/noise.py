"""Recording noise: how a registration is written, and how it goes wrong.

Every registration of a simulated world passes through here on its way into an extract:
spelling variants and compound writings, diacritics, typos, swapped names, aliases,
partial or wrong birth dates, nationality forms and V-number errors, each process with its
own rate (``NoiseConfig``), and the truth keeps what was applied. Split from
``simulate.py``, which draws the people and their registrations.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from recapture.errors import ConfigError
from recapture.synthetic import names as name_pools
from recapture.synthetic.config import SimulationConfig
from recapture.synthetic.lookups import _country_table, _join_given, _other_in_region

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
