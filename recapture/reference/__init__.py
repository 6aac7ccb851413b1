"""Reference tables shared by the stages: countries, their names and region groups.

``countries.csv`` holds one row per country (ISO 3166-1) that matters for irregular
migration to the Netherlands, plus enough others to recognise what extracts contain:
English and Dutch names, the adjectives used on forms (``Marokkaanse``, ``Moroccan``),
extra spellings (``aliases``, ``|``-separated) and the region group used in the estimates
(one of :data:`recapture.schemas.REGIONS`). Former states (Soviet Union, Yugoslavia, Serbia
and Montenegro, Czechoslovakia) keep their ISO 3166-3 code and list their ``successors``:
a recorded ``Sovjet-Unie`` is not silently turned into Russia. Kosovo uses the code ``XKX``
and stateless persons ``XXA`` (both as in EU and ICAO travel documents).
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache
from importlib import resources

import polars as pl

from recapture.schemas import REGIONS

__all__ = [
    "countries",
    "region_of",
    "successors_of",
    "nationality_lookup",
    "normalise_lookup_text",
    "UNKNOWN_NATIONALITY_TEXTS",
]

#: Texts that mean "nationality not known": recognised, mapped to null, not reported as unknown text.
UNKNOWN_NATIONALITY_TEXTS: frozenset[str] = frozenset(
    {
        "onbekend",
        "onb",
        "unknown",
        "unk",
        "xxx",
        "xx",
        "nvt",
        "n v t",
        "na",
        "n a",
        "none",
        "niet bekend",
        "not known",
        "unbekannt",
        "inconnu",
        "inconnue",
        "onbekende nationaliteit",
        "unknown nationality",
        "nationaliteit onbekend",
        "nationality unknown",
        "zzz",
        "0",
    }
)

_SPECIAL_LETTERS = str.maketrans(
    {
        "ß": "ss",
        "ø": "o",
        "Ø": "o",
        "æ": "ae",
        "Æ": "ae",
        "œ": "oe",
        "Œ": "oe",
        "ı": "i",
        "đ": "d",
        "Đ": "d",
        "ł": "l",
        "Ł": "l",
        "þ": "th",
        "ð": "d",
        "ħ": "h",
    }
)
_NON_ALNUM = re.compile(r"[^0-9a-z]+")


def normalise_lookup_text(text: str) -> str:
    """Fold a country name/adjective/code to the form lookups use: ASCII lower case, words
    separated by one space (``"Côte d'Ivoire"`` → ``"cote d ivoire"``)."""
    text = unicodedata.normalize("NFKD", text.translate(_SPECIAL_LETTERS))
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).casefold()
    return _NON_ALNUM.sub(" ", text).strip()


@cache
def _table() -> pl.DataFrame:
    source = resources.files(__package__).joinpath("countries.csv")
    with source.open("rb") as handle:
        df = pl.read_csv(handle.read(), infer_schema=False, encoding="utf8")
    df = df.with_columns(pl.col(c).fill_null("") for c in df.columns)
    bad = df.filter(~pl.col("region").is_in(list(REGIONS)))
    if bad.height:  # pragma: no cover - guards the shipped table
        raise ValueError(f"countries.csv: unknown regions {bad['region'].unique().to_list()}")
    return df.with_columns(historical=pl.col("successors") != "")


def countries(include_historical: bool = False) -> pl.DataFrame:
    """The country table: iso3, iso2, name_en, name_nl, adjective_en, adjective_nl, region,
    aliases, successors, historical.

    Former states are left out unless ``include_historical``: a simulator drawing
    nationalities should not draw the Soviet Union.
    """
    df = _table()
    return df if include_historical else df.filter(~pl.col("historical"))


@cache
def _regions() -> dict[str, str]:
    df = _table()
    return dict(zip(df["iso3"].to_list(), df["region"].to_list(), strict=True))


def region_of(iso3: str | None) -> str | None:
    """Region group of an ISO 3166-1 alpha-3 code; None when the code is unknown."""
    if iso3 is None:
        return None
    return _regions().get(iso3.upper())


def successors_of(iso3: str) -> list[str]:
    """ISO3 codes of the successor states of a former state (empty for current states)."""
    row = _table().filter(pl.col("iso3") == iso3.upper())
    if row.height == 0 or not row["successors"][0]:
        return []
    return row["successors"][0].split("|")


@cache
def _lookup() -> dict[str, str]:
    """Normalised text → iso3. Codes and names take precedence over adjectives, adjectives
    over aliases; within a kind the first row in the file wins (so ``Congolese`` → COD)."""
    df = _table()
    mapping: dict[str, str] = {}
    kinds = (
        ("iso3",),
        ("iso2",),
        ("name_en", "name_nl"),
        ("adjective_en", "adjective_nl"),
        ("adjective_nl_short",),
        ("aliases",),
    )
    rows = df.to_dicts()
    for kind in kinds:
        for row in rows:
            for column in kind:
                if column == "aliases":
                    values = row["aliases"].split("|")
                elif column == "adjective_nl_short":
                    # Forms often drop the inflection: "Marokkaans" for "Marokkaanse".
                    adjective = row["adjective_nl"]
                    values = [adjective[:-1]] if adjective.endswith("e") else []
                else:
                    values = [row[column]]
                for value in values:
                    key = normalise_lookup_text(value)
                    if key and key not in mapping:
                        mapping[key] = row["iso3"]
    return mapping


def nationality_lookup() -> dict[str, str]:
    """Normalised nationality text (see :func:`normalise_lookup_text`) → ISO3 code, built from
    codes, English and Dutch names, adjectives and aliases. Returns a copy."""
    return dict(_lookup())
