"""Comparison levels of record pairs, computed vectorised over arrays of pairs.

Records are encoded once: every string column becomes integer codes into a vocabulary, so a
comparison of millions of pairs gathers codes with numpy and calls the C string-similarity
kernels of rapidfuzz (``process.cpdist``) only on the *distinct* pairs of values, which are
far fewer than the pairs of records (namesakes, repeated registrations of one person).

A comparison returns ``gamma`` (int8): the level index, 0 = least agreement, the highest
index = exact agreement, and -1 when a value is missing on either side (neutral in the
model). String comparisons with ``tf`` also return the term-frequency adjustment in bits
for pairs at the ``exact`` and ``key`` levels (see :mod:`recapture.linkage.model`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import polars as pl
from rapidfuzz import fuzz, process
from rapidfuzz.distance import OSA, JaroWinkler

from recapture import progress
from recapture.linkage.settings import Comparison, LinkageSettings

MISSING = np.int8(-1)
QUALITY_CODES = {"full": 0, "default": 1, "month_year": 2, "year_only": 3, "missing": 4}
#: Names whose alignment is clearly better swapped (sum of two Jaro–Winkler scores).
SWAP_MARGIN = 0.15


@dataclass
class Vocabulary:
    """Distinct strings of one or more columns and derived forms, indexed by code."""

    values: np.ndarray  # object array of str
    compact: np.ndarray  # int32 code of the value without spaces/hyphens/apostrophes
    sorted_tokens: np.ndarray  # int32 code of the value with its tokens sorted
    sorted_values: np.ndarray  # object array: value with tokens sorted
    prefix3: np.ndarray  # int32 code of the first three letters

    @classmethod
    def build(cls, series: list[pl.Series]) -> Vocabulary:
        values = pl.concat([s.cast(pl.String) for s in series]).drop_nulls().unique().sort()
        frame = pl.DataFrame({"v": values}).with_columns(
            pl.col("v").str.replace_all(r"[\s\-']", "").alias("compact"),
            pl.col("v").str.split(" ").list.sort().list.join(" ").alias("sorted"),
            pl.col("v").str.slice(0, 3).alias("prefix3"),
        )
        # one sentinel entry at the end keeps gathers at code 0 valid for an empty vocabulary
        compact = np.append(
            frame["compact"].cast(pl.Categorical).to_physical().to_numpy().astype(np.int32), -1
        )
        sorted_codes = np.append(
            frame["sorted"].cast(pl.Categorical).to_physical().to_numpy().astype(np.int32), -1
        )
        return cls(
            values=np.asarray(frame["v"].to_list(), dtype=object),
            compact=compact,
            sorted_tokens=sorted_codes,
            sorted_values=np.asarray(frame["sorted"].to_list(), dtype=object),
            prefix3=np.append(
                frame["prefix3"].cast(pl.Categorical).to_physical().to_numpy().astype(np.int32), -2
            ),
        )

    def encode(self, s: pl.Series) -> np.ndarray:
        """int32 codes of a column (-1 for missing or empty)."""
        s = s.cast(pl.String)
        s = pl.select(pl.when(s.str.len_chars() > 0).then(s).otherwise(None)).to_series()
        codes = s.cast(pl.Enum(self.values.tolist())).to_physical().cast(pl.Int32)
        return codes.fill_null(-1).to_numpy()


@dataclass
class PreparedRecords:
    """Records encoded once for comparing any set of pairs."""

    n: int
    settings: LinkageSettings
    frame: pl.DataFrame | None = None  # the records (with row positions), for training blocks
    codes: dict[str, np.ndarray] = field(default_factory=dict)
    vocab_of: dict[str, Vocabulary] = field(default_factory=dict)
    ints: dict[str, np.ndarray] = field(default_factory=dict)
    tf: dict[str, np.ndarray] = field(default_factory=dict)  # column → frequency per code
    tf_sq: dict[str, float] = field(default_factory=dict)  # column → Σ frequency²
    #: per record: log2(f(given)·f(family) / f(given, family)) ≤ 0 over distinct people
    joint_name_bits: np.ndarray | None = None

    @classmethod
    def build(cls, records: pl.DataFrame, settings: LinkageSettings) -> PreparedRecords:
        prep = cls(n=records.height, settings=settings, frame=records)
        string_cols: list[list[str]] = []
        swap = settings.name_swap or []
        swap_keys = _swap_key_columns(settings)
        if swap:
            string_cols.append(list(swap))
            if swap_keys:
                string_cols.append(list(swap_keys))
        grouped = {c for group in string_cols for c in group}
        person_first = _person_first(records, swap)
        for comp in settings.comparisons:
            if comp.kind == "date":
                continue
            for col in (comp.column, comp.key_column, comp.group_column):
                if col and col not in grouped:
                    string_cols.append([col])
                    grouped.add(col)
        for group in string_cols:
            vocab = Vocabulary.build([records[c] for c in group])
            for col in group:
                prep.vocab_of[col] = vocab
                prep.codes[col] = vocab.encode(records[col])
        for comp in settings.comparisons:
            if comp.kind == "date":
                for col in (comp.year, comp.month, comp.day):
                    if col and col not in prep.ints:
                        prep.ints[col] = records[col].cast(pl.Int32).fill_null(-1).to_numpy()
                if comp.quality:
                    q = (
                        records[comp.quality]
                        .cast(pl.String)
                        .replace_strict(
                            QUALITY_CODES, default=QUALITY_CODES["missing"], return_dtype=pl.Int8
                        )
                    )
                    prep.ints[comp.quality] = q.to_numpy()
            if comp.tf:
                for col in (comp.column, comp.key_column):
                    if col and col not in prep.tf:
                        prep.tf[col], prep.tf_sq[col] = _frequencies(
                            prep.codes[col], len(prep.vocab_of[col].values), person_first
                        )
        if swap_keys and settings.joint_name_tf:
            prep.joint_name_bits = _joint_name_bits(records, swap_keys, settings)
        # frequencies of the swap partners too (shared vocabulary), for swapped pairs
        for group in string_cols[: 2 if swap_keys else 1] if swap else []:
            for col in group:
                if col not in prep.tf:
                    prep.tf[col], prep.tf_sq[col] = _frequencies(
                        prep.codes[col], len(prep.vocab_of[col].values), person_first
                    )
        return prep


def _person_first(records: pl.DataFrame, names: list[str]) -> np.ndarray | None:
    """Per record: is it the first with its (names, birth year, sex)? None without names.

    Term frequencies count people, not records: a man registered five times would make
    his own name look five times as common and the pairs of his own registrations — the
    duplicates deduplication is after — about two bits less likely per name. Records are
    counted once per distinct (given, family, birth year, sex), as in _joint_name_bits.
    """
    if not names or any(c not in records.columns for c in names):
        return None
    cols = list(names) + [c for c in ("birth_year", "sex") if c in records.columns]
    return records.select(pl.struct(cols).is_first_distinct()).to_series().to_numpy()


def _frequencies(
    codes: np.ndarray, size: int, keep: np.ndarray | None = None
) -> tuple[np.ndarray, float]:
    """Relative frequency of each code (over the ``keep`` records) and Σ frequency²."""
    valid = codes[(codes >= 0) & (True if keep is None else keep)]
    counts = np.bincount(valid, minlength=size).astype(np.float64)
    total = max(valid.size, 1)
    freq = counts / total
    return np.maximum(freq, 1.0 / total), float(np.sum(freq**2))


def _joint_name_bits(
    records: pl.DataFrame, keys: list[str], settings: LinkageSettings
) -> np.ndarray:
    """Correction for given and family names that go together (Mohamed with El Amrani).

    Separate TF weights treat agreement on the given and on the family name as independent
    evidence; among people of one culture they are not, and the full name is much more
    common than the product of its parts. Counted over distinct (names, birth year, sex)
    so that a person registered many times does not make his own name look common; a
    record without a birth year counts only where no dated record has its names, since
    it is most likely one of them, not a namesake. The counts leave the record's own
    person out (how many *others* share the names): a full name held by one person is
    no evidence that the names go together. Counted with the undated records and the
    person himself, pairs agreeing on both names were scored about twice too unlikely
    where the birth date could not confirm them (e.g. 11 expected matches vs 21 true
    among the pairs with a missing birth date on the default simulated world).
    Only a penalty (≤ 0): a rare combination of common names keeps its separate weights.
    """
    given, family = keys
    people = (
        records.select(given, family, *[c for c in ("birth_year", "sex") if c in records.columns])
        .drop_nulls([given, family])
        .unique()
    )
    if "birth_year" in people.columns:
        dated = people.filter(pl.col("birth_year").is_not_null())
        undated = people.filter(pl.col("birth_year").is_null()).join(
            dated, on=[given, family], how="anti"
        )
        people = pl.concat([dated, undated.unique([given, family])])
    n = max(people.height, 1)
    kg = people.group_by(given).len().rename({"len": "kg"})
    kf = people.group_by(family).len().rename({"len": "kf"})
    kj = people.group_by([given, family]).len().rename({"len": "kj"})
    bits = (
        records.select(given, family)
        .join(kg, on=given, how="left")
        .join(kf, on=family, how="left")
        .join(kj, on=[given, family], how="left")
        .select(
            pl.when(pl.col("kj") > 1)
            .then(((pl.col("kg") - 1) * (pl.col("kf") - 1) / ((pl.col("kj") - 1) * n)).log(2))
            .otherwise(0.0)
            .clip(-settings.tf_max_bits, 0.0)
            .fill_null(0.0)
        )
        .to_series()
        .to_numpy()
    )
    return bits.astype(np.float32)


def _swap_key_columns(settings: LinkageSettings) -> list[str] | None:
    """Key columns of the two swappable name comparisons, in the same (given, family) order."""
    if not settings.name_swap:
        return None
    keys = {c.column: c.key_column for c in settings.comparisons if c.kind == "string"}
    given, family = settings.name_swap
    if keys.get(given) and keys.get(family):
        return [keys[given], keys[family]]
    return None


# ------------------------------------------------------------------ string kernels
def pair_scores(
    cl: np.ndarray, cr: np.ndarray, forms: np.ndarray, scorer, workers: int = -1, fill: float = 0.0
) -> np.ndarray:
    """scorer(forms[cl], forms[cr]) for aligned code arrays, computed once per distinct pair."""
    return multi_pair_scores(cl, cr, [(forms, scorer)], workers, fill)[0]


def multi_pair_scores(
    cl: np.ndarray, cr: np.ndarray, scorers: list, workers: int = -1, fill: float = 0.0
) -> list[np.ndarray]:
    """Several (forms, scorer) similarities of aligned code pairs; the distinct (unordered)
    code pairs are found once (hash factorisation) and each scorer runs on them in C."""
    outs = [np.full(cl.shape, fill, dtype=np.float32) for _ in scorers]
    valid = (cl >= 0) & (cr >= 0)
    if not valid.any():
        return outs
    lo = np.minimum(cl[valid], cr[valid]).astype(np.int64)
    hi = np.maximum(cl[valid], cr[valid]).astype(np.int64)
    size = np.int64(max(len(f) for f, _ in scorers) + 1)
    inverse, uniq = pd.factorize(lo * size + hi)
    ua, ub = uniq // size, uniq % size
    for out, (forms, scorer) in zip(outs, scorers, strict=True):
        scores = process.cpdist(
            forms[ua], forms[ub], scorer=scorer, workers=workers, dtype=np.float32
        )
        out[valid] = scores[inverse]
    return outs


def name_swap_mask(prep: PreparedRecords, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Pairs whose given and family names agree clearly better when one side is swapped.

    Only pairs whose names share a 3-letter prefix crosswise are scored: a swap without
    that is not recognisable anyway, and it spares the similarity kernels most pairs.
    """
    settings = prep.settings
    if not settings.name_swap:
        return np.zeros(i.shape, dtype=bool)
    given, family = settings.name_swap
    vocab = prep.vocab_of[given]
    forms = vocab.values
    g, f = prep.codes[given], prep.codes[family]
    gl, gr, fl, fr = g[i], g[j], f[i], f[j]
    full = (gl >= 0) & (gr >= 0) & (fl >= 0) & (fr >= 0)
    pre = vocab.prefix3
    cross = (pre[np.maximum(gl, 0)] == pre[np.maximum(fr, 0)]) | (
        pre[np.maximum(fl, 0)] == pre[np.maximum(gr, 0)]
    )
    idx = np.flatnonzero(full & ((gl != gr) | (fl != fr)) & cross)
    swap = np.zeros(i.shape, dtype=bool)
    if idx.size == 0:
        return swap
    jw = JaroWinkler.normalized_similarity
    w = settings.workers
    straight = pair_scores(gl[idx], gr[idx], forms, jw, w) + pair_scores(
        fl[idx], fr[idx], forms, jw, w
    )
    crossed = pair_scores(gl[idx], fr[idx], forms, jw, w) + pair_scores(
        fl[idx], gr[idx], forms, jw, w
    )
    swap[idx] = crossed > straight + SWAP_MARGIN
    return swap


# ------------------------------------------------------------------ comparisons
def compare_string(comp: Comparison, prep: PreparedRecords, i, j, swap, partner: dict[str, str]):
    """Levels exact / key / Jaro–Winkler bands / else, and TF bits at exact and key levels.

    Everything but the key level depends only on the two values, so it is computed once per
    distinct (unordered) pair of values and gathered back to the record pairs.
    """
    col = comp.column
    vocab = prep.vocab_of[col]
    cl = prep.codes[col][i]
    cr = _right_codes(prep, col, j, swap, partner)
    n_levels = comp.n_levels
    top = n_levels - 1
    gamma = np.full(i.shape, MISSING, dtype=np.int8)
    valid = np.flatnonzero((cl >= 0) & (cr >= 0))
    tf_bits = np.zeros(i.shape, dtype=np.float32) if comp.tf else None
    if valid.size == 0:
        return gamma, tf_bits
    a, b = cl[valid], cr[valid]
    size = np.int64(len(vocab.values) + 1)
    inverse, uniq = pd.factorize(np.minimum(a, b).astype(np.int64) * size + np.maximum(a, b))
    ua, ub = uniq // size, uniq % size
    exact_u = (
        (ua == ub)
        | (vocab.compact[ua] == vocab.compact[ub])
        | (vocab.sorted_tokens[ua] == vocab.sorted_tokens[ub])
    )
    band_u = np.full(uniq.size, top, dtype=np.int8)
    rest = np.flatnonzero(~exact_u)
    if rest.size:
        w = prep.settings.workers
        jw = JaroWinkler.normalized_similarity
        ra, rb = ua[rest], ub[rest]
        sim = np.maximum(
            process.cpdist(
                vocab.values[ra], vocab.values[rb], scorer=jw, workers=w, dtype=np.float32
            ),
            process.cpdist(
                vocab.sorted_values[ra],
                vocab.sorted_values[rb],
                scorer=jw,
                workers=w,
                dtype=np.float32,
            ),
        )
        subset = (
            process.cpdist(
                vocab.values[ra],
                vocab.values[rb],
                scorer=fuzz.token_set_ratio,
                workers=w,
                dtype=np.float32,
            )
            >= 99.999
        )
        sim[subset] = np.maximum(sim[subset], comp.thresholds[0])
        sub = np.zeros(rest.size, dtype=np.int8)
        for k, t in enumerate(comp.thresholds[::-1]):
            sub[sim >= t] = k + 1
        band_u[rest] = sub
    g = band_u[inverse]
    exact = g == top
    if comp.tf:
        ev = valid[exact]
        tf_bits[ev] = _tf_bits(prep, col, cl[ev], cr[ev], swap[ev], partner.get(col))
    if comp.key_column:
        below = np.flatnonzero(~exact)
        kv = valid[below]
        kl = prep.codes[comp.key_column][i[kv]]
        kr = _right_codes(prep, comp.key_column, j[kv], swap[kv], partner)
        key_eq = (kl >= 0) & (kl == kr)
        g[below[key_eq]] = top - 1
        if comp.tf:
            kv2 = kv[key_eq]
            tf_bits[kv2] = _tf_bits(
                prep,
                comp.key_column,
                kl[key_eq],
                kr[key_eq],
                swap[kv2],
                partner.get(comp.key_column),
            )
    gamma[valid] = g
    return gamma, tf_bits


def _right_codes(prep, col, j, swap, partner):
    codes = prep.codes[col][j]
    other = partner.get(col)
    if other is not None and swap.any():
        codes = np.where(swap, prep.codes[other][j], codes)
    return codes


def _tf_bits(
    prep: PreparedRecords,
    col: str,
    cl: np.ndarray,
    cr: np.ndarray,
    swapped: np.ndarray,
    partner: str | None,
) -> np.ndarray:
    """log2(Σf² / f(value)): positive for a rare value, negative for a common one.

    On a swapped pair a family name sits in the given-name comparison: its frequency is
    the larger of its frequencies in the two columns, so "el amrani" is not taken for a
    rare given name.
    """
    freq = np.maximum(prep.tf[col][cl], prep.tf[col][cr])
    if partner is not None and partner in prep.tf and swapped.any():
        other = np.maximum(prep.tf[partner][cl], prep.tf[partner][cr])
        freq = np.where(swapped, np.maximum(freq, other), freq)
    bits = np.log2(prep.tf_sq[col] / freq)
    limit = prep.settings.tf_max_bits
    return np.clip(bits, -limit, limit).astype(np.float32)


def compare_date(comp: Comparison, prep: PreparedRecords, i, j):
    """exact / day–month swapped / one component off / partial same year / same year / ±1 year / else."""
    y, m, d = (
        prep.ints[c] if c else np.full(prep.n, -1, np.int32)
        for c in (comp.year, comp.month, comp.day)
    )
    if comp.quality:
        q = prep.ints[comp.quality]
    else:
        q = np.where(d >= 0, 0, np.where(m >= 0, 2, np.where(y >= 0, 3, 4))).astype(np.int8)
    yl, yr, ml, mr, dl, dr = y[i], y[j], m[i], m[j], d[i], d[j]
    full = (q[i] == 0) & (q[j] == 0) & (dl >= 0) & (dr >= 0) & (ml >= 0) & (mr >= 0)
    names = comp.level_names()
    lv = {name: np.int8(k) for k, name in enumerate(names)}
    gamma = np.full(i.shape, lv["else"], dtype=np.int8)
    same_y = yl == yr
    year_near = np.abs(yl - yr) == 1
    gamma[year_near] = lv["year_off_by_one"]
    gamma[same_y] = lv["same_year"]
    partial = ~full & same_y & ((ml < 0) | (mr < 0) | (ml == mr) | (q[i] == 1) | (q[j] == 1))
    gamma[partial] = lv["partial_same_year"]
    n_equal = same_y.astype(np.int8) + (ml == mr) + (dl == dr)
    gamma[full & (n_equal == 2)] = lv["one_component_off"]
    gamma[full & same_y & (ml == dr) & (dl == mr) & (ml != dl)] = lv["day_month_swapped"]
    gamma[full & (n_equal == 3)] = lv["exact"]
    gamma[(yl < 0) | (yr < 0)] = MISSING
    return gamma


def compare_exact(comp: Comparison, prep: PreparedRecords, i, j):
    c = prep.codes[comp.column]
    cl, cr = c[i], c[j]
    names = comp.level_names()
    gamma = np.full(i.shape, names.index("else"), dtype=np.int8)
    if comp.group_column:
        g = prep.codes[comp.group_column]
        gl, gr = g[i], g[j]
        gamma[(gl >= 0) & (gl == gr)] = names.index("same_group")
    gamma[cl == cr] = names.index("exact")
    gamma[(cl < 0) | (cr < 0)] = MISSING
    return gamma


def compare_id(comp: Comparison, prep: PreparedRecords, i, j):
    """Identifiers: exact, one edit (typing error), else."""
    c = prep.codes[comp.column]
    cl, cr = c[i], c[j]
    names = comp.level_names()
    gamma = np.full(i.shape, names.index("else"), dtype=np.int8)
    both = (cl >= 0) & (cr >= 0)
    rest = np.flatnonzero(both & (cl != cr))
    if rest.size:
        dist = pair_scores(
            cl[rest],
            cr[rest],
            prep.vocab_of[comp.column].values,
            OSA.distance,
            prep.settings.workers,
        )
        gamma[rest[dist <= 1]] = names.index("one_edit")
    gamma[both & (cl == cr)] = names.index("exact")
    gamma[~both] = MISSING
    if comp.one_side_level:
        gamma[(cl >= 0) != (cr >= 0)] = names.index("one_side_only")
    return gamma


def compare_pairs(
    prep: PreparedRecords, i: np.ndarray, j: np.ndarray
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray]:
    """Gamma per comparison, TF bits per TF comparison, and the name-swap flag, for pairs (i, j)."""
    settings = prep.settings
    swap = name_swap_mask(prep, i, j)
    partner: dict[str, str] = {}
    if settings.name_swap:
        g, f = settings.name_swap
        partner = {g: f, f: g}
        keys = _swap_key_columns(settings)
        if keys:
            partner.update({keys[0]: keys[1], keys[1]: keys[0]})
    gammas: dict[str, np.ndarray] = {}
    tfs: dict[str, np.ndarray] = {}
    for comp in progress.bar(settings.comparisons, label="comparing fields", unit="field"):
        if comp.kind == "string":
            gamma, tf_bits = compare_string(comp, prep, i, j, swap, partner)
            if tf_bits is not None:
                tfs[comp.name] = tf_bits
        elif comp.kind == "date":
            gamma = compare_date(comp, prep, i, j)
        elif comp.kind == "exact":
            gamma = compare_exact(comp, prep, i, j)
        else:
            gamma = compare_id(comp, prep, i, j)
        gammas[comp.name] = gamma
    if prep.joint_name_bits is not None:
        given, family = settings.name_swap
        comp_of = {c.column: c for c in settings.comparisons if c.kind == "string"}
        g, f = comp_of[given], comp_of[family]
        both = (gammas[g.name] >= g.n_levels - 2) & (gammas[f.name] >= f.n_levels - 2)
        tfs["names_joint"] = np.where(
            both, np.minimum(prep.joint_name_bits[i], prep.joint_name_bits[j]), 0.0
        ).astype(np.float32)
    return gammas, tfs, swap
