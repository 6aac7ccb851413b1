"""Comparison kinds: registered objects that turn a batch of record pairs into levels.

A kind says which agreement levels it has, which record columns it reads and how they are
encoded, which settings it takes, and how to compare a batch of pairs — left and right
values side by side — vectorised, returning one level code per pair (``gamma``, int8:
0 = least agreement, the highest index = exact agreement, -1 = missing, neutral in the
model) and, where it has them, term-frequency bits.

The engine knows no kind and no field name: it asks the registry. A new field is a new
entry under ``comparisons`` in the settings; a new kind is a small subclass::

    from recapture.linkage.kinds import ComparisonKind, register_kind

    @register_kind
    class AbsoluteDifference(ComparisonKind):
        name = "abs_diff"
        options = {"within": (float, 1.0)}

        def level_names(self, comp):
            return ["else", "close", "exact"]

        def columns(self, comp):
            return {comp.column: "float"}

        def compare(self, comp, pairs):
            a, b = pairs.left(comp.column), pairs.right(comp.column)
            gamma = np.where(a == b, 2, np.where(abs(a - b) <= comp.option("within"), 1, 0))
            return np.where(np.isnan(a) | np.isnan(b), -1, gamma).astype(np.int8)

``compare`` must be a pure function of the comparison settings, the prepared
vocabularies/term-frequency tables and the batch, so that it runs unchanged on a batch of
pairs anywhere (see :func:`recapture.linkage.comparisons.compare_batch`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd
from rapidfuzz import fuzz, process
from rapidfuzz.distance import OSA, JaroWinkler

from recapture.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from recapture.linkage.comparisons import PairBatch
    from recapture.linkage.settings import Comparison

MISSING = np.int8(-1)
#: Encodings a kind may ask for its columns: vocabulary codes (-1 missing), integers
#: (-1 missing), floats (NaN missing), or birth-date quality codes (:data:`QUALITY_CODES`).
ENCODINGS = ("string", "int", "float", "quality")
QUALITY_CODES = {"full": 0, "default": 1, "month_year": 2, "year_only": 3, "missing": 4}

#: kind name → kind object
KINDS: dict[str, ComparisonKind] = {}


class ComparisonKind:
    """Base class of comparison kinds; subclass and decorate with :func:`register_kind`."""

    #: The ``kind`` value in the settings.
    name: ClassVar[str] = ""
    #: Kind-specific settings read from the comparison's ``options`` table:
    #: option name → (type, default). Unknown options are a ConfigError.
    options: ClassVar[dict[str, tuple[type, Any]]] = {}

    def level_names(self, comp: Comparison) -> list[str]:
        """Names of levels 0..L-1, lowest agreement first (level index = gamma value)."""
        raise NotImplementedError

    def columns(self, comp: Comparison) -> dict[str, str]:
        """Record columns read, each with its encoding (one of :data:`ENCODINGS`)."""
        raise NotImplementedError

    def tf_columns(self, comp: Comparison) -> list[str]:
        """String columns whose term frequencies the compare uses (prepared once)."""
        return []

    def tf_levels(self, comp: Comparison) -> dict[int, str]:
        """Level → the column whose term frequency weighs a pair at that level."""
        return {}

    def check(self, comp: Comparison, where: str) -> None:
        """Raise ConfigError (key under ``where``) for settings this kind cannot use."""

    def compare(
        self, comp: Comparison, pairs: PairBatch
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray | None]:
        """Level codes (int8, -1 missing) of each pair, optionally with TF bits (float32)."""
        raise NotImplementedError


def register_kind(cls: type[ComparisonKind]) -> type[ComparisonKind]:
    """Class decorator: make ``cls`` available as ``kind = cls.name`` in the settings."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} needs a non-empty 'name'")
    KINDS[cls.name] = cls()
    return cls


def kind_of(name: str, where: str | None = None) -> ComparisonKind:
    try:
        return KINDS[name]
    except KeyError:
        raise ConfigError(f"kind must be one of {sorted(KINDS)}", key=where) from None


def _need(comp: Comparison, attr: str, where: str, what: str) -> None:
    if not getattr(comp, attr):
        raise ConfigError(what, key=f"{where}.{attr}")


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


# ------------------------------------------------------------------ built-in kinds
@register_kind
class StringKind(ComparisonKind):
    """Names: ``exact`` (also equal without spaces or with tokens sorted), ``key`` (equal
    ``key_column``, e.g. the transliteration key), one level per Jaro–Winkler threshold (best
    of plain, token-sorted and token-subset forms), ``else``; TF bits at exact and key.

    With ``options.key_similarity`` the Jaro–Winkler levels also take the similarity of the
    two keys: one name written down by ear in two alphabets differs in letters that the key
    folds together (Yowusu / Owousou 0.85 → keys jufs / ufs 0.92, Huseynov / Guseinov 0.83
    → 0.87), so its spellings can be far apart while its sounds are close."""

    name = "string"
    options = {"key_similarity": (bool, False)}

    def level_names(self, comp):
        names = ["exact"] + (["key"] if comp.key_column else [])
        names += [f"jw_{t:g}" for t in comp.thresholds] + ["else"]
        return names[::-1]

    def columns(self, comp):
        return {c: "string" for c in (comp.column, comp.key_column) if c}

    def tf_columns(self, comp):
        return [c for c in (comp.column, comp.key_column) if c] if comp.tf else []

    def tf_levels(self, comp):
        if not comp.tf:
            return {}
        top = len(self.level_names(comp)) - 1
        return {top: comp.column} | ({top - 1: comp.key_column} if comp.key_column else {})

    def check(self, comp, where):
        _need(comp, "column", where, "this comparison needs 'column'")
        if sorted(comp.thresholds, reverse=True) != list(comp.thresholds):
            raise ConfigError("thresholds must be in decreasing order", key=f"{where}.thresholds")
        if comp.option("key_similarity") and not comp.key_column:
            raise ConfigError(
                "key_similarity compares keys: set 'key_column'",
                key=f"{where}.options.key_similarity",
            )

    def compare(self, comp, pairs):
        """Everything but the key level depends only on the two values, so it is computed
        once per distinct (unordered) pair of values and gathered back to the pairs."""
        col = comp.column
        prep = pairs.prep
        vocab = prep.vocab_of[col]
        cl, cr = pairs.left(col), pairs.right(col)
        top = len(self.level_names(comp)) - 1
        gamma = np.full(cl.shape, MISSING, dtype=np.int8)
        valid = np.flatnonzero((cl >= 0) & (cr >= 0))
        tf_bits = np.zeros(cl.shape, dtype=np.float32) if comp.tf else None
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
        w = prep.settings.workers
        if rest.size:
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
            band_u[rest] = _band(sim, comp.thresholds)
        key_sim = comp.key_column is not None and comp.option("key_similarity")
        key_of = prep.value_keys(col, comp.key_column) if key_sim else None
        band_values = band_u
        if key_of is not None and rest.size:
            band_values = band_u.copy()
            # keys follow values: compared once per pair of values (the right value of a
            # pair with swapped names is the other column's, with that column's key: below)
            ka, kb = key_of[ua[rest]], key_of[ub[rest]]
            differ = np.flatnonzero((ka >= 0) & (kb >= 0) & (ka != kb))
            if differ.size:
                keys = prep.vocab_of[comp.key_column].values
                sim = process.cpdist(
                    keys[ka[differ]],
                    keys[kb[differ]],
                    scorer=JaroWinkler.normalized_similarity,
                    workers=w,
                    dtype=np.float32,
                )
                lifted = rest[differ]
                band_u[lifted] = np.maximum(band_u[lifted], _band(sim, comp.thresholds))
        g = band_u[inverse]
        exact = g == top
        if comp.tf:
            ev = valid[exact]
            tf_bits[ev] = pairs.tf_bits(col, cl[ev], cr[ev], ev)
        if comp.key_column:
            below = np.flatnonzero(~exact)
            kv = valid[below]
            kl = pairs.left_at(comp.key_column, kv)
            kr = pairs.right_at(comp.key_column, kv)
            key_eq = (kl >= 0) & (kl == kr)
            if key_sim:
                # pair by pair: every pair without a value-to-key map, else the swapped ones
                # (their value band came from the values alone; recomputed in full here)
                one = ~key_eq if key_of is None else ~key_eq & pairs.swap[kv]
                one = np.flatnonzero(one)
                rows = below[one]
                g[rows] = np.maximum(
                    band_values[inverse[rows]], _pair_key_band(comp, prep, kl[one], kr[one], w)
                )
            g[below[key_eq]] = top - 1
            if comp.tf:
                kv2 = kv[key_eq]
                tf_bits[kv2] = pairs.tf_bits(comp.key_column, kl[key_eq], kr[key_eq], kv2)
        gamma[valid] = g
        return gamma, tf_bits


def _pair_key_band(comp, prep, kl: np.ndarray, kr: np.ndarray, workers: int) -> np.ndarray:
    """The Jaro–Winkler level of pairs of key codes, pair by pair (a missing key: 0)."""
    keys = prep.vocab_of[comp.key_column].values
    sim = pair_scores(kl, kr, keys, JaroWinkler.normalized_similarity, workers=workers)
    return _band(sim, comp.thresholds)


def _band(sim: np.ndarray, thresholds: list[float]) -> np.ndarray:
    """Index of the lowest threshold met (1 = the last of ``thresholds``), 0 for none."""
    band = np.zeros(sim.shape, dtype=np.int8)
    for k, t in enumerate(thresholds[::-1]):
        band[sim >= t] = k + 1
    return band


@register_kind
class DateKind(ComparisonKind):
    """Birth dates from year/month/day columns and an optional quality column."""

    name = "date"
    LEVELS = (
        "exact",
        "day_month_swapped",
        "year_off_same_day_month",
        "one_component_off",
        "partial_same_year",
        "same_year",
        "year_off_by_one",
        "else",
    )

    def level_names(self, comp):
        return list(self.LEVELS[::-1])

    def columns(self, comp):
        cols = {c: "int" for c in (comp.year, comp.month, comp.day) if c}
        if comp.quality:
            cols[comp.quality] = "quality"
        return cols

    def check(self, comp, where):
        _need(comp, "year", where, "a date comparison needs 'year' (and month, day)")

    def compare(self, comp, pairs):
        """exact / day–month swapped / year ±1 with day and month kept / one component off /
        partial same year / same year / ±1 year / else."""
        n = pairs.size

        def side(col, left):
            if not col:
                return np.full(n, -1, np.int32)
            return pairs.left(col) if left else pairs.raw_right(col)

        yl, ml, dl = (side(c, True) for c in (comp.year, comp.month, comp.day))
        yr, mr, dr = (side(c, False) for c in (comp.year, comp.month, comp.day))
        if comp.quality:
            ql, qr = pairs.left(comp.quality), pairs.raw_right(comp.quality)
        else:
            ql, qr = (
                np.where(d >= 0, 0, np.where(m >= 0, 2, np.where(y >= 0, 3, 4))).astype(np.int8)
                for y, m, d in ((yl, ml, dl), (yr, mr, dr))
            )
        full = (ql == 0) & (qr == 0) & (dl >= 0) & (dr >= 0) & (ml >= 0) & (mr >= 0)
        lv = {name: np.int8(k) for k, name in enumerate(self.level_names(comp))}
        gamma = np.full(n, lv["else"], dtype=np.int8)
        same_y = yl == yr
        year_near = np.abs(yl - yr) == 1
        gamma[year_near] = lv["year_off_by_one"]
        gamma[same_y] = lv["same_year"]
        partial = ~full & same_y & ((ml < 0) | (mr < 0) | (ml == mr) | (ql == 1) | (qr == 1))
        gamma[partial] = lv["partial_same_year"]
        n_equal = same_y.astype(np.int8) + (ml == mr) + (dl == dr)
        gamma[full & (n_equal == 2)] = lv["one_component_off"]
        # a year mistyped by one with day and month kept: far rarer among different people
        # (about 2 in 365 × the years' spread) than another day in the same month and year
        gamma[full & year_near & (ml == mr) & (dl == dr)] = lv["year_off_same_day_month"]
        gamma[full & same_y & (ml == dr) & (dl == mr) & (ml != dl)] = lv["day_month_swapped"]
        gamma[full & (n_equal == 3)] = lv["exact"]
        gamma[(yl < 0) | (yr < 0)] = MISSING
        return gamma


@register_kind
class ExactKind(ComparisonKind):
    """``exact``, optionally ``same_group`` (equal ``group_column``), ``else``."""

    name = "exact"

    def level_names(self, comp):
        return (["exact"] + (["same_group"] if comp.group_column else []) + ["else"])[::-1]

    def columns(self, comp):
        return {c: "string" for c in (comp.column, comp.group_column) if c}

    def check(self, comp, where):
        _need(comp, "column", where, "this comparison needs 'column'")

    def compare(self, comp, pairs):
        cl, cr = pairs.left(comp.column), pairs.raw_right(comp.column)
        names = self.level_names(comp)
        gamma = np.full(cl.shape, names.index("else"), dtype=np.int8)
        if comp.group_column:
            gl, gr = pairs.left(comp.group_column), pairs.raw_right(comp.group_column)
            gamma[(gl >= 0) & (gl == gr)] = names.index("same_group")
        gamma[cl == cr] = names.index("exact")
        gamma[(cl < 0) | (cr < 0)] = MISSING
        return gamma


@register_kind
class IdKind(ComparisonKind):
    """Identifiers: ``exact``, ``one_edit`` (one substitution, insertion, deletion or
    adjacent transposition), optionally ``one_side_only`` and ``both_missing``, ``else``."""

    name = "id"

    def level_names(self, comp):
        names = ["exact", "one_edit"] + (["one_side_only"] if comp.one_side_level else [])
        names += ["both_missing"] if comp.both_missing_level else []
        return (names + ["else"])[::-1]

    def columns(self, comp):
        return {comp.column: "string"}

    def check(self, comp, where):
        _need(comp, "column", where, "this comparison needs 'column'")

    def compare(self, comp, pairs):
        cl, cr = pairs.left(comp.column), pairs.raw_right(comp.column)
        names = self.level_names(comp)
        gamma = np.full(cl.shape, names.index("else"), dtype=np.int8)
        both = (cl >= 0) & (cr >= 0)
        rest = np.flatnonzero(both & (cl != cr))
        if rest.size:
            dist = pair_scores(
                cl[rest],
                cr[rest],
                pairs.prep.vocab_of[comp.column].values,
                OSA.distance,
                pairs.prep.settings.workers,
            )
            gamma[rest[dist <= 1]] = names.index("one_edit")
        gamma[both & (cl == cr)] = names.index("exact")
        gamma[~both] = MISSING
        if comp.one_side_level:
            gamma[(cl >= 0) != (cr >= 0)] = names.index("one_side_only")
        if comp.both_missing_level:
            gamma[(cl < 0) & (cr < 0)] = names.index("both_missing")
        return gamma


@register_kind
class EventOrderKind(ComparisonKind):
    """Registrations of a source whose event ends the stay (an assisted return): another
    source's registration dated after it is ``after_end``, on or before it ``in_order``.
    Pairs in which neither or both records are of that source are missing (neutral).

    A person who has left is not apprehended afterwards unless they came back, while two
    different people's dates fall in either order; the EM weighs how strongly from the
    data (no weight where the order says nothing). Dates are read as days since 1970 (the
    ``int`` encoding, -1 missing): registrations, not birth dates."""

    name = "event_order"
    options = {"ending_source": (str, ""), "source_column": (str, "source")}

    def level_names(self, comp):
        return ["after_end", "in_order"]

    def columns(self, comp):
        return {comp.column: "int", comp.option("source_column"): "string"}

    def check(self, comp, where):
        _need(comp, "column", where, "an event-order comparison needs 'column' (the event date)")
        if not comp.option("ending_source"):
            raise ConfigError(
                "name the source whose registration ends the stay",
                key=f"{where}.options.ending_source",
            )

    def compare(self, comp, pairs):
        src = comp.option("source_column")
        values = pairs.prep.vocab_of[src].values
        hit = np.flatnonzero(values == comp.option("ending_source"))
        if hit.size == 0:  # e.g. police records only: no departure to order against
            return np.full(pairs.size, MISSING, dtype=np.int8)
        sl, sr = pairs.left(src), pairs.raw_right(src)
        gamma = np.full(sl.shape, MISSING, dtype=np.int8)
        end = hit[0]
        left_ends = sl == end
        one = left_ends != (sr == end)
        dl, dr = pairs.left(comp.column), pairs.raw_right(comp.column)
        end_day = np.where(left_ends, dl, dr)
        other_day = np.where(left_ends, dr, dl)
        ok = one & (dl >= 0) & (dr >= 0) & (sl >= 0) & (sr >= 0)
        gamma[ok] = np.where(other_day[ok] <= end_day[ok], 1, 0)
        return gamma
