"""Standardisers: raw registration values → canonical, comparable values.

Every function works on whole columns (polars expressions, or a function applied to the
distinct values of a column and joined back, where the number of distinct values is far
below the number of rows). None guesses silently: a value that cannot be read becomes null
and raises a flag the caller turns into an error or a warning by policy, and the recorded
value is always kept beside the standard one.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence

import polars as pl

from recapture.reference import (
    UNKNOWN_NATIONALITY_TEXTS,
    nationality_lookup,
    normalise_lookup_text,
    region_of,
)

__all__ = [
    "standardise_name",
    "name_key",
    "name_keys",
    "first_given_name",
    "standardise_names",
    "parse_date_parts",
    "date_parts",
    "classify_birth_dates",
    "standardise_sex",
    "standardise_nationality",
    "standardise_v_number",
    "DEFAULT_SEX_CODES",
]

# ------------------------------------------------------------------------------- names
#: Letters NFKD does not decompose, spelled as ASCII the way they are usually transliterated.
SPECIAL_LETTERS: dict[str, str] = {
    "ß": "ss",
    "ẞ": "ss",
    "ø": "o",
    "Ø": "o",
    "æ": "ae",
    "Æ": "ae",
    "œ": "oe",
    "Œ": "oe",
    "ı": "i",
    "İ": "i",
    "đ": "d",
    "Đ": "d",
    "ð": "d",
    "Ð": "d",
    "ł": "l",
    "Ł": "l",
    "þ": "th",
    "Þ": "th",
    "ħ": "h",
    "Ħ": "h",
    "ŋ": "ng",
    "ĸ": "k",
    "ſ": "s",
    "ĳ": "ij",
    "Ĳ": "ij",
}
#: Apostrophe-like marks are dropped inside a word (N'Diaye → ndiaye, O'Brien → obrien).
_APOSTROPHES = r"['’‘`´ʼʻʹ]"

#: Particles dropped from the key when other tokens remain (they come and go between records).
DROPPED_PARTICLES: tuple[str, ...] = (
    "van",
    "von",
    "de",
    "der",
    "den",
    "ter",
    "ten",
    "da",
    "di",
    "du",
    "la",
    "le",
    "del",
    "della",
    "dos",
    "das",
    "do",
)
#: Arabic articles and name prefixes: kept, glued to the next token, because they are
#: written apart or together at random (El Amrani / Elamrani, Abdel Kader / Abdelkader).
GLUED_PREFIXES: tuple[str, ...] = (
    "el",
    "al",
    "ul",
    "el",
    "abd",
    "abdel",
    "abdal",
    "abdul",
    "abdoul",
    "abdou",
    "abu",
    "abou",
    "ben",
    "bin",
    "ibn",
    "ould",
    "bou",
)

#: Ordered letter-cluster folds for the key. Upper-case S and J are the fold classes of
#: the hushing sibilants (sh/sch/sj/ch, tsh/tch/tsj/tsch) and of the dj-sounds
#: (j/dj/dzj/zh/zj, and an initial y), so Dutch, English, French and German
#: transliterations of one Cyrillic, Arabic or Albanian (xh) name coincide.
KEY_FOLDS: tuple[tuple[str, str], ...] = (
    ("tsch", "S"),
    ("dsch", "J"),
    ("dzh", "J"),
    ("dzj", "J"),
    ("tsj", "S"),
    ("tch", "S"),
    ("sch", "S"),
    ("sj", "S"),
    ("sh", "S"),
    ("ch", "S"),
    ("zh", "J"),
    ("zj", "J"),
    ("dj", "J"),
    ("xh", "J"),
    ("kh", "h"),
    ("gh", "g"),
    ("ph", "f"),
    ("th", "t"),
    ("dh", "d"),
    ("ck", "k"),
    ("ij", "i"),
    ("q", "k"),
    ("c", "k"),
    ("x", "ks"),
    ("w", "v"),
    ("v", "f"),
    ("z", "s"),
    ("j", "J"),
)


#: Spellings of one sound rewritten before the article rule and the folds. A j after a
#: consonant or between a vowel and a consonant is the glide of Cyrillic я/ю/ё/й as Dutch
#: and German write it (Tatjana/Tatyana/Tatiana, Ljudmila, Bojko/Boyko, Gusejnov), read as
#: i; French dj after a consonant is that j; the Armenian -jan is -ian; -ej/-oj/-uj end in
#: the glide (Sergej/Sergey) — -aj not, as Arabic Faraj/Belhaj end in a consonant. x is ks
#: (Alexei/Aleksej) except in Albanian xh; c before e/i/y is s (Yacine/Yassine,
#: Hacene/Hassan, Youcef/Youssef); ts and tz are the German z of Cyrillic ц
#: (Kuznetsov/Kusnezow, Gritsenko/Grizenko).
GLIDES: tuple[tuple[str, str], ...] = (
    (r"([^aeiou ])dj", "${1}j"),
    (r"([^aeiou ])jan\b", "${1}ian"),
    (r"([bfklmnprtvw])j([aeiou])", "${1}i${2}"),
    (r"([aeiou])j([bcdfgklmnpqrstvxz])", "${1}i${2}"),
    (r"([eou])j\b", "${1}i"),
    (r"x([^h]|$)", "ks${1}"),
    (r"c([eiy])", "s${1}"),
    (r"t[sz]", "s"),
)


#: Letters of any script but Latin: names holding them are transliterated first.
_NON_LATIN = r"[\p{L}--\p{Latin}]"


def transliterate(raw: pl.Series) -> pl.Series:
    """Names in other scripts (Cyrillic, Arabic, Greek, CJK, …) spelled in ASCII by anyascii
    (Иванов → Ivanov, محمد → mhmd, 王伟 → WangWei). Only values holding a non-Latin letter
    are touched, one call per such value; Latin names pass through unchanged."""
    mask = raw.str.contains(_NON_LATIN).fill_null(False)
    if not mask.any():
        return raw
    from anyascii import anyascii

    done = raw.filter(mask).map_elements(anyascii, return_dtype=pl.String)
    return raw.clone().scatter(mask.arg_true(), done)


def _clean_text(expr: pl.Expr) -> pl.Expr:
    """Other scripts transliterated, NFKD, special letters, diacritics dropped, lower case,
    punctuation → space."""
    out = expr.map_batches(transliterate, return_dtype=pl.String)
    out = out.str.replace_many(list(SPECIAL_LETTERS), list(SPECIAL_LETTERS.values()))
    out = out.str.normalize("NFKD").str.replace_all(r"\p{M}", "")
    out = out.str.to_lowercase().str.replace_all(_APOSTROPHES, "")
    out = out.str.replace_all(r"[^a-z]+", " ").str.strip_chars()
    return pl.when(out == "").then(None).otherwise(out)


def standardise_name(expr: pl.Expr) -> pl.Expr:
    """Standard form of a name: ASCII lower case, other scripts transliterated (anyascii:
    Иванов → ivanov), diacritics and special letters
    transliterated (ß→ss, ø→o, ı→i, ş→s, æ→ae, đ→d, ł→l), apostrophes dropped, hyphens and
    other punctuation turned into token breaks, tokens separated by one space; null when
    nothing is left. Particles stay, so the standard form still reads as the name."""
    return _clean_text(expr)


def first_given_name(standard: pl.Expr) -> pl.Expr:
    """The first given name of a standardised given-names string, with a leading Arabic
    prefix glued to the token after it (``abdel kader mohamed`` → ``abdel kader``)."""
    prefixes = "|".join(sorted(set(GLUED_PREFIXES), key=len, reverse=True))
    two = standard.str.extract(rf"^((?:{prefixes}) [a-z]+)", 1)
    return pl.coalesce(two, standard.str.extract(r"^([a-z]+)", 1))


def name_key(standard: pl.Expr) -> pl.Expr:
    """Transliteration-aware blocking key of a standardised name.

    Rules, in order: particles of :data:`DROPPED_PARTICLES` dropped (when another token
    remains); spellings of one sound rewritten (:data:`GLIDES`: the j glide read as i,
    consonant+dj as j, -jan as -ian, x as ks, soft c as s, ts/tz as s); a leading article
    al/el/ul dropped when a name of 4+ letters with 2+ consonants (y is a vowel) follows; a
    word-final h after a vowel dropped; tokens glued together; letter clusters folded
    (:data:`KEY_FOLDS`: sh/sch/sj/ch/tch/tsj/tsch → one class, dj/dzj/zh/zj/j → one class,
    kh→h, ph→f, w→v→f, z→s, c/q→k);
    an initial y counts as j; the first vowel group reduced to its class (a; e/i/y → i;
    o/u → u, so ou/oe/oo → u and ee/ie/ei → i) and every later vowel dropped; doubled
    letters collapsed. Mohamed/Muhammad/Mouhamed/Mohammad coincide (``muhmd``), as do
    Youssef/Yusuf/Youssouf, Sjevtsjenko/Shevchenko/Chevtchenko/Schewtschenko,
    Abdelkader/Abdel Kader, El Amrani/Elamrani and Öztürk/Ozturk/Oeztuerk, while Mahmoud
    (``mahmd``), Ahmed, Hassan/Hussein stay apart. A blocking key: it may join a few
    different names, which the comparison stage then tells apart.
    """
    return standard.map_batches(name_keys, return_dtype=pl.String)


def name_keys(standard: pl.Series) -> pl.Series:
    """:func:`name_key` over a Series of standardised names. Each rule is one pass over the
    whole column, materialised before the next, so the rule chain is never re-evaluated."""
    frame = pl.DataFrame({"k": standard}, schema={"k": pl.String})
    k = pl.col("k")

    def step(expr: pl.Expr) -> None:
        nonlocal frame
        frame = frame.with_columns(expr.alias("k"))

    dropped = "|".join(DROPPED_PARTICLES)
    frame = frame.with_columns(k.alias("orig"))
    for _ in range(2):  # "van der berg": consecutive particles share a space
        step(k.str.replace_all(rf"(^| )(?:{dropped})( |$)", " "))
    step(k.str.strip_chars())
    step(pl.when(k == "").then(pl.col("orig")).otherwise(k))
    for pattern, replacement in GLIDES:
        step(k.str.replace_all(pattern, replacement))
    # A leading Arabic article comes and goes and changes vowel (El Amrani, Al Amrani,
    # Elamrani, Amrani): dropped when a real name (4+ letters, 2+ consonants) follows;
    # y counts as a vowel, so Alyona/Aliona keep their al.
    frame = frame.with_columns(k.str.extract_groups(r"^(?:al|el|ul) ?([a-z]+)(.*)$").alias("g"))
    stem = pl.col("g").struct.field("1")
    strip = (stem.str.len_chars() >= 4) & (stem.str.count_matches("[^aeiouy]") >= 2)
    step(
        pl.when(strip.fill_null(False))
        .then(pl.concat_str(stem, pl.col("g").struct.field("2")))
        .otherwise(k)
    )
    # A word-final h after a vowel is silent and comes and goes (Abdullah/Abdulla).
    folded = k.str.replace_all(r"([aeiou])h( |$)", "${1}${2}").str.replace_all(
        " ", "", literal=True
    )
    for pattern, replacement in KEY_FOLDS:
        folded = folded.str.replace_all(pattern, replacement, literal=True)
    step(folded.str.replace(r"^y", "J").str.replace_all("y", "i", literal=True))
    frame = frame.with_columns(k.str.extract_groups(r"^([^aeiou]*)([aeiou]+)(.*)$").alias("g"))
    g = pl.col("g").struct
    vowel = (
        g.field("2")
        .str.slice(0, 1)
        .replace_strict(
            {"a": "a", "e": "i", "i": "i", "o": "u", "u": "u"}, default=None, return_dtype=pl.String
        )
    )
    rest = g.field("3").str.replace_all("[aeiou]", "")
    step(
        pl.when(g.field("2").is_null()).then(k).otherwise(pl.concat_str(g.field("1"), vowel, rest))
    )
    collapsed = k
    for letter in "abcdefghijklmnopqrstuvwxyzSJ":
        collapsed = collapsed.str.replace_all(f"{letter}{{2,}}", letter)
    step(collapsed.str.replace_all("S", "x", literal=True).str.replace_all("J", "j", literal=True))
    step(pl.when(k == "").then(None).otherwise(k))
    return frame["k"].alias(standard.name)


def standardise_names(raw: pl.Series, *, first_only: bool = False) -> pl.DataFrame:
    """Standard form and key of a column of recorded names, computed once per distinct
    value and joined back. Returns columns ``standard`` and ``key`` aligned with ``raw``;
    with ``first_only`` the key is of the first given name only."""
    distinct = pl.DataFrame({"raw": raw.unique()}, schema={"raw": pl.String})
    std = pl.col("raw").pipe(standardise_name)
    key_source = first_given_name(pl.col("standard")) if first_only else pl.col("standard")
    distinct = distinct.with_columns(standard=std).with_columns(key_source=key_source)
    distinct = distinct.with_columns(key=name_keys(distinct["key_source"]))
    frame = pl.DataFrame({"raw": raw}, schema={"raw": pl.String})
    joined = frame.join(distinct, on="raw", how="left", nulls_equal=True, maintain_order="left")
    return joined.select("standard", "key")


# ------------------------------------------------------------------------------- dates
_DIRECTIVES = {"%d": "d", "%m": "m", "%Y": "Y", "%y": "y"}


def _format_regex(fmt: str) -> str:
    """A strftime-style format (``%d``, ``%m``, ``%Y``, ``%y`` and literal characters) as an
    anchored regex with one group per component. With separators, day and month may have one
    or two digits; compact formats (``%Y%m%d``) need fixed widths."""
    tokens = re.split(r"(%[dmYy])", fmt)
    compact = all(t == "" or t in _DIRECTIVES for t in tokens)
    out = []
    for token in tokens:
        if token in ("%d", "%m"):
            out.append(r"([0-9]{2})" if compact else r"([0-9]{1,2})")
        elif token == "%Y":
            out.append(r"([0-9]{4})")
        elif token == "%y":
            out.append(r"([0-9]{2})")
        elif token:
            if "%" in token:
                raise ValueError(f"unsupported directive in date format {fmt!r}: {token!r}")
            out.append(re.escape(token))
    return "^" + "".join(out) + "$"


def _format_components(fmt: str) -> list[str]:
    return [_DIRECTIVES[t] for t in re.findall(r"%[dmYy]", fmt)]


def check_date_format(fmt: str) -> None:
    """Raise ValueError unless ``fmt`` is a supported date format (with a year)."""
    comps = _format_components(fmt)
    _format_regex(fmt)
    if ("Y" in comps) == ("y" in comps):
        raise ValueError(f"date format {fmt!r} needs exactly one of %Y or %y")
    if len(set(comps)) != len(comps):
        raise ValueError(f"date format {fmt!r} repeats a directive")
    if "d" in comps and "m" not in comps:
        raise ValueError(f"date format {fmt!r} has a day but no month")


_PARTS_DTYPE = pl.Struct(
    {
        "year": pl.Int32,
        "month": pl.Int32,
        "day": pl.Int32,
        "matched": pl.Boolean,
        "two_digit_year": pl.Boolean,
    }
)


def parse_date_parts(raw: pl.Expr, formats: Sequence[str], *, pivot_year: int) -> pl.Expr:
    """Split date text into components by the first format that matches.

    Returns a struct ``{year, month, day, matched, two_digit_year}``: month and day are 0
    when the text says 00 and null when the format has no such component; ``matched`` is
    false when no format fits. A two-digit year ``yy`` is read as 20yy when that is not after
    ``pivot_year`` and as 19yy otherwise; ``two_digit_year`` flags it, so the caller can
    warn. Parsed once per distinct text (dates repeat a lot) and joined back.
    """
    formats = list(formats)
    if not formats:
        raise ValueError("no date formats given")
    for fmt in formats:
        check_date_format(fmt)
    return raw.map_batches(
        lambda s: date_parts(s, formats, pivot_year=pivot_year), return_dtype=_PARTS_DTYPE
    )


def ascii_digits(text: str) -> str:
    """Text with compatibility forms folded (NFKC: full-width digits and dashes) and every
    decimal digit of any script written as its ASCII digit (Arabic-Indic ٣ → 3)."""
    text = unicodedata.normalize("NFKC", text)
    return "".join(
        str(unicodedata.decimal(ch)) if not ch.isascii() and ch.isdecimal() else ch for ch in text
    )


def _ascii_date_text(distinct: pl.Series) -> pl.Series:
    """Distinct date texts with non-ASCII digits and separators folded to ASCII; ASCII texts
    (nearly all) pass untouched, the rest are folded one by one."""
    mask = distinct.str.contains(r"[^\x00-\x7f]").fill_null(False)
    if not mask.any():
        return distinct
    folded = distinct.filter(mask).map_elements(ascii_digits, return_dtype=pl.String)
    return distinct.scatter(mask.arg_true(), folded)


def date_parts(raw: pl.Series, formats: Sequence[str], *, pivot_year: int) -> pl.Series:
    """:func:`parse_date_parts` on a Series. Digits of other scripts (Arabic-Indic,
    full-width) are read as the digits they are."""
    distinct = pl.DataFrame({"raw": raw.unique()}, schema={"raw": pl.String})
    distinct = distinct.with_columns(_text=_ascii_date_text(distinct["raw"].clone()))
    year = month = day = two = None
    matched = pl.lit(False)
    for i, fmt in enumerate(formats):
        comps = _format_components(fmt)
        name = f"g{i}"
        distinct = distinct.with_columns(
            pl.col("_text").str.extract_groups(_format_regex(fmt)).alias(name)
        )
        groups = pl.col(name).struct
        hit = groups.field("1").is_not_null()

        def field(component: str, groups=groups, comps=comps) -> pl.Expr:
            if component not in comps:
                return pl.lit(None, dtype=pl.Int32)
            return groups.field(str(comps.index(component) + 1)).cast(pl.Int32)

        if "Y" in comps:
            y, is_two = field("Y"), pl.lit(False)
        else:
            yy = field("y")
            y, is_two = (
                pl.when(yy + 2000 <= pivot_year).then(yy + 2000).otherwise(yy + 1900),
                pl.lit(True),
            )
        year = pl.when(hit).then(y) if year is None else year.when(hit).then(y)
        month = pl.when(hit).then(field("m")) if month is None else month.when(hit).then(field("m"))
        day = pl.when(hit).then(field("d")) if day is None else day.when(hit).then(field("d"))
        two = pl.when(hit).then(is_two) if two is None else two.when(hit).then(is_two)
        matched = matched | hit
    distinct = distinct.select(
        "raw",
        pl.struct(
            year.otherwise(None).cast(pl.Int32).alias("year"),
            month.otherwise(None).cast(pl.Int32).alias("month"),
            day.otherwise(None).cast(pl.Int32).alias("day"),
            matched.alias("matched"),
            two.otherwise(False).alias("two_digit_year"),
        ).alias("parts"),
    )
    frame = pl.DataFrame({"raw": raw}, schema={"raw": pl.String})
    joined = frame.join(distinct, on="raw", how="left", nulls_equal=True, maintain_order="left")
    return joined["parts"].alias(raw.name)


def _days_in_month(year: pl.Expr, month: pl.Expr) -> pl.Expr:
    leap = ((year % 4 == 0) & (year % 100 != 0)) | (year % 400 == 0)
    return (
        pl.when(month == 2)
        .then(pl.when(leap).then(29).otherwise(28))
        .when(month.is_in([4, 6, 9, 11]))
        .then(30)
        .otherwise(31)
    )


def classify_birth_dates(parts: pl.Expr, raw: pl.Expr) -> pl.Expr:
    """Quality class and validity of parsed birth-date components.

    Returns a struct ``{year, month, day, date, quality, unparseable, impossible}``:
    quality is ``full`` (day, month and year valid), ``default`` (a full date on 1 January,
    the usual stand-in for an unknown date), ``month_year`` (day 00 or absent),
    ``year_only`` (month and day 00 or absent) or ``missing`` (empty, unreadable or
    impossible). ``impossible`` marks text that parses but is no calendar date (31-02-1990,
    month 13, day without month, year outside 1800–2100); nothing impossible is repaired.
    Pass ``parts`` as a column (``pl.col``): it is referenced many times.
    """
    y = parts.struct.field("year")
    m = parts.struct.field("month")
    d = parts.struct.field("day")
    matched = parts.struct.field("matched")
    present = raw.is_not_null()
    known_m = m.is_not_null() & (m != 0)
    known_d = d.is_not_null() & (d != 0)
    impossible = matched & (
        (y < 1800)
        | (y > 2100)
        | (known_m & (m > 12))
        | (known_d & ~known_m)
        | (known_d & known_m & (m <= 12) & (d > _days_in_month(y, m)))
    )
    ok = matched & ~impossible
    quality = (
        pl.when(~ok)
        .then(pl.lit("missing"))
        .when(known_d & known_m & (d == 1) & (m == 1))
        .then(pl.lit("default"))
        .when(known_d & known_m)
        .then(pl.lit("full"))
        .when(known_m)
        .then(pl.lit("month_year"))
        .otherwise(pl.lit("year_only"))
    )
    full = ok & known_d & known_m
    return pl.struct(
        pl.when(ok).then(y).alias("year"),
        pl.when(ok & known_m).then(m).alias("month"),
        pl.when(full).then(d).alias("day"),
        # components of rows that are no full valid date are replaced before pl.date,
        # which raises on impossible components even in a branch that is not taken
        pl.when(full)
        .then(
            pl.date(
                pl.when(full).then(y).otherwise(2000),
                pl.when(full).then(m).otherwise(1),
                pl.when(full).then(d).otherwise(1),
            )
        )
        .alias("date"),
        quality.alias("quality"),
        (present & ~matched).alias("unparseable"),
        (present & impossible).fill_null(False).alias("impossible"),
    )


def parse_full_dates(raw: pl.Expr, formats: Sequence[str], *, pivot_year: int) -> pl.Expr:
    """Parse text that must be a complete calendar date (an event date).

    Returns a struct ``{date, unparseable, partial}``: ``partial`` when the text has 00 for
    day or month or lacks them, ``unparseable`` when no format fits or the date does not
    exist; ``two_digit_year`` as in :func:`parse_date_parts`. Never repaired.
    """
    formats = list(formats)

    def parse(series: pl.Series) -> pl.Series:
        frame = pl.DataFrame(
            {"raw": series, "parts": date_parts(series, formats, pivot_year=pivot_year)}
        )
        return frame.select(
            full_date_from_parts(pl.col("parts"), pl.col("raw")).alias(series.name)
        ).to_series()

    return raw.map_batches(
        parse,
        return_dtype=pl.Struct(
            {
                "date": pl.Date,
                "unparseable": pl.Boolean,
                "partial": pl.Boolean,
                "two_digit_year": pl.Boolean,
            }
        ),
    )


def full_date_from_parts(parts: pl.Expr, raw: pl.Expr) -> pl.Expr:
    """:func:`parse_full_dates` on components already split by :func:`parse_date_parts`
    (pass a column: the expression is referenced several times)."""
    cls = classify_birth_dates(parts, raw)
    quality = cls.struct.field("quality")
    partial = quality.is_in(["month_year", "year_only"])
    bad = raw.is_not_null() & (cls.struct.field("unparseable") | cls.struct.field("impossible"))
    return pl.struct(
        cls.struct.field("date").alias("date"),
        bad.alias("unparseable"),
        partial.fill_null(False).alias("partial"),
        parts.struct.field("two_digit_year").alias("two_digit_year"),
    )


# ------------------------------------------------------------------------------- sex
#: Default sex code list: canonical code → recorded values (compared case-insensitively).
#: ``unknown`` values mean "not known" and map to null without a warning.
DEFAULT_SEX_CODES: dict[str, list[str]] = {
    "M": ["m", "man", "male", "mannelijk", "masculin", "h", "homme", "1"],
    "F": ["v", "f", "vrouw", "female", "vrouwelijk", "w", "feminin", "féminin", "femme", "2"],
    "unknown": ["o", "onbekend", "unknown", "u", "x", "onb", "?", "0", "9", "nvt", "n/a"],
}


def _code_map(codes: Mapping[str, Iterable[str]]) -> dict[str, str | None]:
    mapping: dict[str, str | None] = {}
    for canonical, values in codes.items():
        for value in values:
            mapping[str(value).strip().casefold()] = None if canonical == "unknown" else canonical
    return mapping


def map_codes(raw: pl.Expr, codes: Mapping[str, Iterable[str]]) -> pl.Expr:
    """Map recorded codes through a code list (case-insensitive, surrounding space ignored).

    Returns a struct ``{value, unrecognised}``; values listed under ``unknown`` give null
    without being unrecognised.
    """
    mapping = _code_map(codes)
    folded = raw.str.strip_chars().str.to_lowercase()
    known = folded.is_in(list(mapping))
    value = folded.replace_strict(
        {k: v for k, v in mapping.items() if v is not None}, default=None, return_dtype=pl.String
    )
    return pl.struct(
        value.alias("value"),
        (raw.is_not_null() & ~known).alias("unrecognised"),
    )


def standardise_sex(raw: pl.Expr, codes: Mapping[str, Iterable[str]] | None = None) -> pl.Expr:
    """Sex code → ``M``/``F``/null as struct ``{value, unrecognised}`` (M/V/F/man/vrouw/
    male/female → M or F; O/onbekend/unknown → null; anything else → null, unrecognised)."""
    return map_codes(raw, codes or DEFAULT_SEX_CODES)


# ------------------------------------------------------------------------------- nationality
def standardise_nationality(raw: pl.Series, extra: Mapping[str, str] | None = None) -> pl.DataFrame:
    """Recorded nationality → ISO 3166-1 alpha-3 and region group.

    Dutch and English country names, adjectives (``Marokkaanse``, ``Moroccan``), ISO alpha-2
    and alpha-3 codes and the aliases of ``recapture.reference`` are recognised, after
    folding case, diacritics and punctuation. "Unknown" texts (``onbekend``, ``XXX``…) give
    null quietly; any other text gives null with ``unrecognised`` true, and the recorded
    text stays in ``raw``. ``extra`` adds source-specific text → ISO3 entries. Mapped once
    per distinct text. Returns columns ``iso3``, ``region``, ``unrecognised``.
    """
    lookup = nationality_lookup()
    for text, iso3 in (extra or {}).items():
        lookup[normalise_lookup_text(text)] = iso3.upper()
    distinct = raw.unique().drop_nulls().to_list()
    iso3s, regions, unrecognised = [], [], []
    for text in distinct:
        key = normalise_lookup_text(text)
        code = lookup.get(key)
        iso3s.append(code)
        regions.append(region_of(code))
        unrecognised.append(code is None and key not in UNKNOWN_NATIONALITY_TEXTS and key != "")
    table = pl.DataFrame(
        {"raw": distinct, "iso3": iso3s, "region": regions, "unrecognised": unrecognised},
        schema={
            "raw": pl.String,
            "iso3": pl.String,
            "region": pl.String,
            "unrecognised": pl.Boolean,
        },
    )
    frame = pl.DataFrame({"raw": raw}, schema={"raw": pl.String})
    joined = frame.join(table, on="raw", how="left", maintain_order="left")
    return joined.select("iso3", "region", pl.col("unrecognised").fill_null(False))


# ------------------------------------------------------------------------------- V-number
def standardise_v_number(raw: pl.Expr) -> pl.Expr:
    """V-number → 10 digits (dots, spaces, hyphens and slashes removed) as struct
    ``{value, invalid}``; anything else (wrong length, letters, all zeros) → null, invalid."""
    digits = raw.str.replace_all(r"[\s./\-]", "")
    ok = digits.str.contains(r"^\d{10}$") & (digits != "0000000000")
    return pl.struct(
        pl.when(ok).then(digits).alias("value"),
        (raw.is_not_null() & ~ok.fill_null(False)).alias("invalid"),
    )


def as_of_default() -> dt.date:
    """Reference date for "future" checks when none is given: today."""
    return dt.date.today()
