"""Comparison levels of record pairs, computed vectorised over batches of pairs.

Records are encoded once (:class:`PreparedRecords`): every string column a comparison
reads becomes integer codes into a vocabulary, with term-frequency tables, so a comparison
of millions of pairs gathers codes with numpy and calls the C string-similarity kernels of
rapidfuzz (``process.cpdist``) only on the *distinct* pairs of values, which are far fewer
than the pairs of records (namesakes, repeated registrations of one person).

What each comparison does is its kind's business (:mod:`recapture.linkage.kinds`); this
module only prepares the columns the kinds ask for, detects swapped given and family names,
and runs the kinds over a batch of pairs. :func:`compare_batch` is the one entry point, for
the local engine and for any engine that ships batches of pairs elsewhere (Arrow in, Arrow
out): a pure function of the settings, the prepared vocabularies/TF tables and the batch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import polars as pl
import pyarrow as pa
from rapidfuzz.distance import JaroWinkler

from recapture.errors import InputError
from recapture.linkage.kinds import (  # noqa: F401  (re-exported kernels)
    MISSING,
    QUALITY_CODES,
    kind_of,
    multi_pair_scores,
    pair_scores,
)
from recapture.linkage.settings import Comparison, LinkageSettings

#: Names whose alignment is clearly better swapped (sum of two Jaro–Winkler scores).
SWAP_MARGIN = 0.15
#: Batch columns that hold record positions into the prepared records (local engine).
ROW_L, ROW_R = "row_l", "row_r"
#: Pseudo-column of a PairBatch: the joint-name correction of each side's own names.
JOINT = "\0joint_name_bits"


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

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("_enum_dtype", None)  # rebuilt where needed, not shipped to workers
        return state

    def _enum(self) -> pl.Enum:
        """The values as a polars Enum, made once per vocabulary object (a worker encoding
        many batches with one vocabulary builds it once)."""
        dtype = self.__dict__.get("_enum_dtype")
        if dtype is None:
            dtype = self.__dict__["_enum_dtype"] = pl.Enum(self.values.tolist())
        return dtype

    def encode(self, s: pl.Series, strict: bool = True) -> np.ndarray:
        """int32 codes of a column (-1 for missing or empty, and for unknown values when
        not ``strict``)."""
        s = s.cast(pl.String)
        s = pl.select(pl.when(s.str.len_chars() > 0).then(s).otherwise(None)).to_series()
        codes = s.cast(self._enum(), strict=strict).to_physical().cast(pl.Int32)
        return codes.fill_null(-1).to_numpy()


@dataclass
class PreparedRecords:
    """Records encoded once for comparing any set of pairs.

    ``vocab_of``, ``tf``, ``tf_sq`` and the joint-name table are all a batch of value pairs
    needs (:meth:`for_batches` keeps only those); ``codes``/``ints`` (per record) let the
    local engine pass record positions instead of values.
    """

    n: int
    settings: LinkageSettings
    frame: pl.DataFrame | None = None  # the records (with row positions), for training blocks
    codes: dict[str, np.ndarray] = field(default_factory=dict)  # string column → code per record
    vocab_of: dict[str, Vocabulary] = field(default_factory=dict)
    ints: dict[str, np.ndarray] = field(default_factory=dict)  # int/float/quality per record
    encoding: dict[str, str] = field(default_factory=dict)  # column → encoding (kinds.ENCODINGS)
    tf: dict[str, np.ndarray] = field(default_factory=dict)  # column → frequency per code
    tf_sq: dict[str, float] = field(default_factory=dict)  # column → Σ frequency²
    #: log2(f(given)·f(family) / f(given, family)) ≤ 0 over distinct people, per distinct
    #: (given key, family key) code pair (sorted ``joint_codes``, aligned ``joint_bits``)
    joint_codes: np.ndarray | None = None
    joint_bits: np.ndarray | None = None
    #: the same correction per record (a gather instead of a search for record positions)
    record_joint_bits: np.ndarray | None = None
    #: ``tf_across_sources``: the sources (sorted, as their codes number them) and, per TF
    #: column, the S × S bits a pair of those two sources adds when it agrees on the
    #: column's value (:func:`_overlap_bits`; 0 within a source)
    tf_sources: list[str] = field(default_factory=list)
    tf_source_bits: dict[str, np.ndarray] = field(default_factory=dict)
    #: per string column, the key code of each value code (:meth:`value_keys`)
    key_of_value: dict[str, np.ndarray | None] = field(default_factory=dict)

    @classmethod
    def build(cls, records: pl.DataFrame, settings: LinkageSettings) -> PreparedRecords:
        prep = cls(n=records.height, settings=settings, frame=records)
        string_cols, swap_keys = prep._plan()
        person_cols = [c for c in settings.tf_person_columns if c in records.columns]
        person_first = _person_first(records, settings.name_swap or [], person_cols)
        for group in string_cols:
            vocab = Vocabulary.build([records[c] for c in group])
            for col in group:
                prep.vocab_of[col] = vocab
        prep._encode_records(records)
        for col in _tf_columns(settings, string_cols, swap_keys):
            prep.tf[col], prep.tf_sq[col] = _frequencies(
                prep.codes[col],
                len(prep.vocab_of[col].values),
                person_first,
                settings.tf_pseudo_people,
            )
        if swap_keys and settings.joint_name_tf:
            people = _joint_people(records, swap_keys, person_cols)
            combos = records.select(swap_keys).drop_nulls().unique()
            prep.joint_codes, prep.joint_bits = _joint_name_table(
                _joint_counts(people, swap_keys), combos, swap_keys, prep, settings
            )
            prep.record_joint_bits = _joint_lookup(
                prep, prep.codes[swap_keys[0]], prep.codes[swap_keys[1]]
            )
        if uses_source_frequencies(settings, records.columns):
            prep._source_frequencies(records, person_first, person_cols)
        return prep

    def _source_frequencies(
        self, records: pl.DataFrame, person_first: np.ndarray | None, person_cols: list[str]
    ) -> None:
        """:attr:`tf_source_bits` from the records: people counted once per source."""
        src = self.settings.source
        self.tf_sources, codes = np.unique(
            records[src].cast(pl.Utf8).to_numpy(), return_inverse=True
        )
        self.tf_sources = [str(x) for x in self.tf_sources]
        first_in_source = _person_first(records, self.settings.name_swap or [], person_cols + [src])
        n_src = len(self.tf_sources)
        for col in self.tf:
            size = len(self.vocab_of[col].values)
            vals = self.codes[col]
            ok = vals >= 0
            pooled = np.bincount(vals[ok & _mask(person_first)], minlength=size)
            ok &= _mask(first_in_source)
            by_source = np.bincount(codes[ok] * size + vals[ok], minlength=n_src * size)
            self.tf_source_bits[col] = _overlap_bits(
                by_source.reshape(n_src, size).astype(np.float64),
                pooled.astype(np.float64),
                self.settings.tf_max_bits,
            )

    def _encode_records(self, records: pl.DataFrame) -> None:
        """Codes (string columns) and numbers (the others) per record, with the vocabularies."""
        for col, vocab in self.vocab_of.items():
            self.codes[col] = vocab.encode(records[col])
        for col, enc in self.encoding.items():
            if enc != "string":
                self.ints[col] = _encode_numeric(records[col], enc)

    def with_records(self, records: pl.DataFrame) -> PreparedRecords:
        """A copy holding ``records`` encoded with these vocabularies (codes, numbers and
        joint-name bits per record), as :meth:`build` would encode them."""
        prep = replace(self, n=records.height, frame=records, codes={}, ints={}, key_of_value={})
        prep._encode_records(records)
        keys = _swap_key_columns(self.settings)
        if prep.joint_codes is not None and keys:
            prep.record_joint_bits = _joint_lookup(prep, prep.codes[keys[0]], prep.codes[keys[1]])
        return prep

    @classmethod
    def from_aggregates(cls, agg: RecordAggregates, settings: LinkageSettings) -> PreparedRecords:
        """The vocabularies, TF tables and joint-name table from the records' aggregates (what
        :meth:`build` computes from the records themselves), without per-record arrays: the
        shape of :meth:`for_batches`. An engine that keeps its records elsewhere (Spark)
        counts there and sends only these small tables to the driver."""
        prep = cls(n=agg.n, settings=settings)
        string_cols, swap_keys = prep._plan()
        for k, group in enumerate(string_cols):
            vocab = Vocabulary.build(agg.values[k])
            for col in group:
                prep.vocab_of[col] = vocab
        for col in _tf_columns(settings, string_cols, swap_keys):
            vocab = prep.vocab_of[col]
            prep.tf[col], prep.tf_sq[col] = _frequencies_of_counts(
                value_counts(vocab, agg.person_counts[col]), settings.tf_pseudo_people
            )
        if swap_keys and settings.joint_name_tf:
            kj = agg.joint["kj"]
            prep.joint_codes, prep.joint_bits = _joint_name_table(
                agg.joint, kj.select(swap_keys), swap_keys, prep, settings
            )
        if agg.source_person_counts:
            prep.tf_sources = list(agg.sources)
            for col, counts in agg.source_person_counts.items():
                vocab = prep.vocab_of[col]
                by_source = np.stack(
                    [
                        value_counts(vocab, counts.filter(pl.col("source") == name))
                        for name in prep.tf_sources
                    ]
                )
                pooled = value_counts(vocab, agg.person_counts[col])
                prep.tf_source_bits[col] = _overlap_bits(by_source, pooled, settings.tf_max_bits)
        return prep

    def _plan(self) -> tuple[list[list[str]], list[str] | None]:
        """The string columns grouped by shared vocabulary (the swappable names, then their
        keys, then one group per other string column), and the swap key columns; sets
        :attr:`encoding`."""
        settings = self.settings
        string_cols: list[list[str]] = []
        swap = settings.name_swap or []
        swap_keys = _swap_key_columns(settings)
        if swap:
            string_cols.append(list(swap))
            if swap_keys:
                string_cols.append(list(swap_keys))
        grouped = {c for group in string_cols for c in group}
        for col in grouped:
            self.encoding[col] = "string"
        for comp in settings.comparisons:
            for col, enc in kind_of(comp.kind).columns(comp).items():
                self.encoding.setdefault(col, enc)
                if enc == "string" and col not in grouped:
                    string_cols.append([col])
                    grouped.add(col)
        return string_cols, swap_keys

    def value_keys(self, col: str, key_col: str) -> np.ndarray | None:
        """The ``key_col`` code of each ``col`` value code, from the records, when they give
        every value one key (a key computed from the value); None when they do not, or in a
        copy for value batches made before the map (no records to make it from). Lets a
        kind compare keys once per pair of values instead of once per pair of records."""
        if col not in self.key_of_value:
            if col not in self.codes or key_col not in self.codes:
                return None
            vals, keys = self.codes[col], self.codes[key_col]
            seen = vals >= 0
            key_of = np.full(len(self.vocab_of[col].values), -1, dtype=np.int64)
            key_of[vals[seen]] = keys[seen]
            one_key = np.array_equal(key_of[vals[seen]], keys[seen])
            self.key_of_value[col] = key_of if one_key else None
        return self.key_of_value[col]

    def for_batches(self) -> PreparedRecords:
        """A copy without the per-record arrays: what a worker comparing value batches needs."""
        return replace(
            self,
            frame=None,
            codes={},
            ints={},
            record_joint_bits=None,
            key_of_value=dict(self.key_of_value),
        )

    def encode(self, col: str, values: pl.Series) -> np.ndarray:
        """Encode a batch column of values as this column is encoded for the records."""
        enc = self.encoding[col]
        if enc != "string":
            return _encode_numeric(values, enc)
        codes = self.vocab_of[col].encode(values, strict=False)
        unknown = (codes < 0) & (values.cast(pl.String).str.len_chars().fill_null(0) > 0).to_numpy()
        if unknown.any():
            k = int(np.flatnonzero(unknown)[0])
            raise InputError(
                f"value {values[k]!r} is not in the prepared vocabulary (prepare from all records)",
                row=k,
                column=col,
            )
        return codes


def encoding_plan(settings: LinkageSettings) -> tuple[list[list[str]], list[str] | None, list[str]]:
    """The string columns grouped by shared vocabulary, the swap key columns and the TF
    columns: what an engine has to aggregate for :meth:`PreparedRecords.from_aggregates`."""
    string_cols, swap_keys = PreparedRecords(n=0, settings=settings)._plan()
    return string_cols, swap_keys, _tf_columns(settings, string_cols, swap_keys)


def _encode_numeric(s: pl.Series, enc: str) -> np.ndarray:
    if enc == "int":
        return s.cast(pl.Int32).fill_null(-1).to_numpy()
    if enc == "float":
        return s.cast(pl.Float64).fill_null(float("nan")).to_numpy()
    return (
        s.cast(pl.String)
        .replace_strict(QUALITY_CODES, default=QUALITY_CODES["missing"], return_dtype=pl.Int8)
        .to_numpy()
    )


def _person_first(
    records: pl.DataFrame, names: list[str], person_cols: list[str]
) -> np.ndarray | None:
    """Per record: is it the first with its names and ``tf_person_columns`` (by default
    birth year and sex)? None without names.

    Term frequencies count people, not records: a man registered five times would make
    his own name look five times as common and the pairs of his own registrations — the
    duplicates deduplication is after — about two bits less likely per name. Records are
    counted once per distinct (given, family, birth year, sex), as in _joint_name_bits.
    """
    if not names or any(c not in records.columns for c in names):
        return None
    cols = list(names) + person_cols
    return records.select(pl.struct(cols).is_first_distinct()).to_series().to_numpy()


def _tf_columns(
    settings: LinkageSettings, string_cols: list[list[str]], swap_keys: list[str] | None
) -> list[str]:
    """The columns that get a TF table: those the comparisons weight by term frequency,
    then the swappable names (and their keys) — a shared vocabulary, for swapped pairs."""
    cols: list[str] = []
    for comp in settings.comparisons:
        for col in kind_of(comp.kind).tf_columns(comp):
            if col not in cols:
                cols.append(col)
    for group in string_cols[: 2 if swap_keys else 1] if settings.name_swap else []:
        for col in group:
            if col not in cols:
                cols.append(col)
    return cols


def _frequencies(
    codes: np.ndarray, size: int, keep: np.ndarray | None = None, pseudo: float = 0.0
) -> tuple[np.ndarray, float]:
    """Frequency of each code (over the ``keep`` records) and Σ frequency² (the counts by
    :func:`_frequencies_of_counts`)."""
    valid = codes[(codes >= 0) & (True if keep is None else keep)]
    return _frequencies_of_counts(np.bincount(valid, minlength=size).astype(np.float64), pseudo)


def _frequencies_of_counts(counts: np.ndarray, pseudo: float = 0.0) -> tuple[np.ndarray, float]:
    """Frequency of each code from its count (float64, one per code) and Σ frequency².

    ``pseudo`` people are added to every value's count before the TF weight is taken:
    the count of a name held by one or two people of the extract is a noisy estimate of
    how common it is, and log2(Σf²/f) turns the noise into weight where the weight is
    largest. Regressing the truth on the weight parts of simulated registrations gave the
    given-name TF bits a coefficient of 0.4–0.6 (docs/linkage.md); three pseudo-people take
    two bits off a name seen once and almost nothing off a common one.
    """
    total = max(int(round(float(counts.sum()))), 1)
    freq = counts / total
    shrunk = np.clip((counts + pseudo) / total, 1.0 / total, 1.0)
    return shrunk, float(np.sum(freq**2))


def _mask(keep: np.ndarray | None) -> np.ndarray | bool:
    return True if keep is None else keep


def uses_source_frequencies(settings: LinkageSettings, columns) -> bool:
    """Whether a run gets :attr:`PreparedRecords.tf_source_bits`: ``tf_across_sources``
    and pairs scored per pair of sources (:meth:`LinkageSettings.scores_per_source_pair`)."""
    has_sources = bool(settings.source) and settings.source in columns
    return settings.tf_across_sources and settings.scores_per_source_pair(has_sources)


def _overlap_bits(by_source: np.ndarray, pooled: np.ndarray, limit: float = np.inf) -> np.ndarray:
    """S × S bits −log2 Z_ab, Z_ab = Σ_v f_a(v)·f_b(v) / f(v), 0 on the diagonal, from the
    people per value in each source (rows of ``by_source``) and over all sources (``pooled``).

    Two different people of sources a and b share value v with chance f_a(v)·f_b(v); a
    person in both lists carries v with the overlap's frequency, which under list membership
    that depends on the name's origin is ∝ f_a(v)·f_b(v) / f(v). Their ratio is
    1 / (f(v)·Z_ab): the pooled TF weight 1/f(v), which :meth:`PairBatch.tf_bits` gives, and
    the constant 1/Z_ab ≥ 1 (f is a mixture of the f_s, and Σ of a harmonic mean ≤ 1),
    which this adds. Within a source matches carry the source's own names, so nothing is
    added there. Raw frequencies: Z is a sum over all values, not a rare value's weight.
    Bounded by ``limit`` (``tf_max_bits``): a source of a handful of people whose names are
    rare in the other gives a tiny, noisy Z.
    """
    f = pooled / max(float(pooled.sum()), 1.0)
    fs = by_source / np.maximum(by_source.sum(axis=1, keepdims=True), 1.0)
    nz = f > 0
    z = (fs[:, nz] / f[nz]) @ fs[:, nz].T
    bits = np.clip(-np.log2(np.clip(z, 1e-12, None)), -limit, limit)
    np.fill_diagonal(bits, 0.0)
    return bits


def value_counts(vocab: Vocabulary, counts: pl.DataFrame) -> np.ndarray:
    """Counts per code (float64) from a frame of ``value`` and ``count`` (distinct values,
    in any order); missing and empty values are not counted."""
    codes = vocab.encode(counts["value"])
    ok = codes >= 0
    return np.bincount(
        codes[ok],
        weights=counts["count"].cast(pl.Float64).to_numpy()[ok],
        minlength=len(vocab.values),
    )


@dataclass
class RecordAggregates:
    """What :meth:`PreparedRecords.from_aggregates` needs of the records: small tables that
    grow with the distinct values, not with the records.

    ``values``: per vocabulary group (:meth:`PreparedRecords._plan`'s order), one series of
    distinct values per column of the group. ``person_counts``: per TF column, ``value`` and
    ``count`` over the records that are the first (smallest record id) of their person
    (names and ``tf_person_columns``, :func:`_person_first`). ``joint``: the joint-name
    counts of :func:`_joint_counts` (``n``, ``kg``, ``kf``, ``kj``), or None.
    ``source_person_counts`` (``tf_across_sources``): per TF column, ``value``, ``source``
    and ``count`` over the first record of each person within each source, with ``sources``
    the distinct sources sorted as strings.
    """

    n: int
    values: list[list[pl.Series]]
    person_counts: dict[str, pl.DataFrame]
    joint: dict | None = None
    source_person_counts: dict[str, pl.DataFrame] | None = None
    sources: list[str] = field(default_factory=list)


def _joint_people(records: pl.DataFrame, keys: list[str], person_cols: list[str]) -> pl.DataFrame:
    """The distinct people of the joint-name correction (:func:`_joint_name_table`): distinct
    (names, ``tf_person_columns``), an undated record only where no dated one has its names."""
    given, family = keys
    people = records.select(given, family, *person_cols).drop_nulls([given, family]).unique()
    if person_cols:
        first = person_cols[0]
        dated = people.filter(pl.col(first).is_not_null())
        undated = people.filter(pl.col(first).is_null()).join(dated, on=[given, family], how="anti")
        people = pl.concat([dated, undated.unique([given, family])])
    return people


def _joint_counts(people: pl.DataFrame, keys: list[str]) -> dict:
    """Number of people, and people per given name (``kg``), per family name (``kf``) and per
    (given, family) (``kj``)."""
    given, family = keys
    return {
        "n": people.height,
        "kg": people.group_by(given).len().rename({"len": "kg"}),
        "kf": people.group_by(family).len().rename({"len": "kf"}),
        "kj": people.group_by([given, family]).len().rename({"len": "kj"}),
    }


def _joint_name_table(
    counts: dict,
    combos: pl.DataFrame,
    keys: list[str],
    prep: PreparedRecords,
    settings: LinkageSettings,
) -> tuple[np.ndarray, np.ndarray]:
    """Correction for given and family names that go together (Mohamed with El Amrani).

    Separate TF weights treat agreement on the given and on the family name as independent
    evidence; among people of one culture they are not, and the full name is much more
    common than the product of its parts. Counted over distinct (names, birth year, sex)
    so that a person registered many times does not make his own name look common; a
    record without a birth year counts only where no dated record has its names, since
    it is most likely one of them, not a namesake (:func:`_joint_people`, counted by
    :func:`_joint_counts`). The counts leave the record's own
    person out (how many *others* share the names): a full name held by one person is
    no evidence that the names go together. Counted with the undated records and the
    person himself, pairs agreeing on both names were scored about twice too unlikely
    where the birth date could not confirm them (e.g. 11 expected matches vs 21 true
    among the pairs with a missing birth date on the default simulated world).
    Only a penalty (≤ 0): a rare combination of common names keeps its separate weights.
    People are told apart by ``tf_person_columns``; a record missing the first of them
    (the birth year by default) is the "undated" record above.

    The correction depends only on the two key values, so it is returned as a table over
    their distinct code pairs ``combos`` (``code(given)·size + code(family)``, sorted) and
    the bits.
    """
    given, family = keys
    n = max(counts["n"], 1)
    bits = (
        combos.join(counts["kg"], on=given, how="left")
        .join(counts["kf"], on=family, how="left")
        .join(counts["kj"], on=[given, family], how="left")
        .select(
            pl.when(pl.col("kj") > 1)
            .then(((pl.col("kg") - 1.0) * (pl.col("kf") - 1.0) / ((pl.col("kj") - 1.0) * n)).log(2))
            .otherwise(0.0)
            .clip(-settings.tf_max_bits, 0.0)
            .fill_null(0.0)
        )
        .to_series()
        .to_numpy()
        .astype(np.float32)
    )
    size = np.int64(len(prep.vocab_of[given].values) + 1)
    gc = prep.vocab_of[given].encode(combos[given]).astype(np.int64)
    fc = prep.vocab_of[family].encode(combos[family]).astype(np.int64)
    combined = gc * size + fc
    order = np.argsort(combined)
    return combined[order], bits[order]


def _swap_key_columns(settings: LinkageSettings) -> list[str] | None:
    """Key columns of the two swappable name comparisons, in the same (given, family) order."""
    if not settings.name_swap:
        return None
    keys = {c.column: c.key_column for c in settings.comparisons if c.key_column}
    given, family = settings.name_swap
    if keys.get(given) and keys.get(family):
        return [keys[given], keys[family]]
    return None


# ------------------------------------------------------------------ a batch of pairs
class PairBatch:
    """The encoded left and right values of a batch of pairs, fetched per column on demand.

    ``right(col)`` is the right value after the name swap (the partner column where the
    pair's given and family names are swapped); ``raw_right(col)`` ignores the swap.
    """

    def __init__(
        self,
        prep: PreparedRecords,
        size: int,
        fetch: Callable[[str, str], np.ndarray],
        cache: bool = True,
        fetch_rows: Callable[[str, str, np.ndarray], np.ndarray] | None = None,
    ):
        self.prep = prep
        self.size = size
        self._fetch = fetch
        #: the values of some pairs only, where the engine can fetch them without the rest
        self._fetch_rows = fetch_rows
        #: encoded values are kept per column when fetching is costly (values to encode);
        #: record positions are gathered afresh, so millions of pairs hold no copies
        self._cache: dict[tuple[str, str], np.ndarray] | None = {} if cache else None
        self.swap = np.zeros(size, dtype=bool)
        self.partner: dict[str, str] = _partners(prep.settings)

    @classmethod
    def from_positions(cls, prep: PreparedRecords, i: np.ndarray, j: np.ndarray) -> PairBatch:
        """Pairs of prepared records by position (the local engine)."""

        def column(col: str) -> np.ndarray:
            if col == JOINT:
                return prep.record_joint_bits
            return prep.codes[col] if col in prep.codes else prep.ints[col]

        def fetch(col: str, side: str) -> np.ndarray:
            return column(col)[i if side == "l" else j]

        def fetch_rows(col: str, side: str, rows: np.ndarray) -> np.ndarray:
            return column(col)[(i if side == "l" else j)[rows]]

        return cls(prep, len(i), fetch, cache=False, fetch_rows=fetch_rows)

    @classmethod
    def from_values(cls, prep: PreparedRecords, batch: pa.RecordBatch) -> PairBatch:
        """Pairs given by their values: columns ``<column>_l`` and ``<column>_r``."""
        frame = pl.from_arrow(batch)

        def fetch(col: str, side: str) -> np.ndarray:
            if col == JOINT:
                gk, fk = _swap_key_columns(prep.settings)
                return _joint_lookup(prep, fetch(gk, side), fetch(fk, side))
            name = f"{col}_{side}"
            if name not in frame.columns:
                raise InputError("the batch of pairs lacks this column", column=name)
            return prep.encode(col, frame[name])

        return cls(prep, batch.num_rows, fetch)

    @classmethod
    def from_codes(cls, prep: PreparedRecords, batch: pa.RecordBatch) -> PairBatch:
        """Pairs given by their records' encodings: columns ``<column>_l`` and ``<column>_r``
        holding what :meth:`PreparedRecords.with_records` holds per record (codes of the
        prepared vocabularies, numbers as encoded), e.g. joined onto the pairs by an engine
        that keeps the encoded records in a table."""

        def fetch(col: str, side: str) -> np.ndarray:
            if col == JOINT:
                gk, fk = _swap_key_columns(prep.settings)
                return _joint_lookup(prep, fetch(gk, side), fetch(fk, side))
            name = f"{col}_{side}"
            if name not in batch.schema.names:
                raise InputError("the batch of pairs lacks this column", column=name)
            return batch.column(name).to_numpy(zero_copy_only=False)

        return cls(prep, batch.num_rows, fetch)

    def _get(self, col: str, side: str) -> np.ndarray:
        if self._cache is None:
            return self._fetch(col, side)
        key = (col, side)
        if key not in self._cache:
            self._cache[key] = self._fetch(col, side)
        return self._cache[key]

    def left(self, col: str) -> np.ndarray:
        return self._get(col, "l")

    def raw_right(self, col: str) -> np.ndarray:
        return self._get(col, "r")

    def right(self, col: str) -> np.ndarray:
        codes = self.raw_right(col)
        other = self.partner.get(col)
        swapped = np.flatnonzero(self.swap) if other is not None else ()
        if len(swapped):
            if self._cache is not None:  # the cached column stays as fetched
                codes = codes.copy()
            codes[swapped] = self._rows(other, "r", swapped)
        return codes

    def _rows(self, col: str, side: str, rows: np.ndarray) -> np.ndarray:
        if self._fetch_rows is None:
            return self._get(col, side)[rows]
        return self._fetch_rows(col, side, rows)

    def left_at(self, col: str, rows: np.ndarray) -> np.ndarray:
        """``left(col)[rows]``, without fetching the other pairs where the engine can."""
        return self._rows(col, "l", rows)

    def right_at(self, col: str, rows: np.ndarray) -> np.ndarray:
        """``right(col)[rows]``, without fetching the other pairs where the engine can."""
        codes = self._rows(col, "r", rows)
        other = self.partner.get(col)
        if other is not None:
            swapped = np.flatnonzero(self.swap[rows])
            if swapped.size:
                codes[swapped] = self._rows(other, "r", rows[swapped])
        return codes

    def tf_bits(self, col: str, cl: np.ndarray, cr: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """log2(Σf² / f(value)) of pairs ``idx`` agreeing on codes (cl, cr): positive for a
        rare value, negative for a common one.

        On a swapped pair a family name sits in the given-name comparison: its frequency is
        the larger of its frequencies in the two columns, so "el amrani" is not taken for a
        rare given name.
        """
        prep = self.prep
        swapped = self.swap[idx]
        partner = self.partner.get(col)
        freq = np.maximum(prep.tf[col][cl], prep.tf[col][cr])
        if partner is not None and partner in prep.tf and swapped.any():
            other = np.maximum(prep.tf[partner][cl], prep.tf[partner][cr])
            freq = np.where(swapped, np.maximum(freq, other), freq)
        bits = np.log2(prep.tf_sq[col] / freq)
        limit = prep.settings.tf_max_bits
        return np.clip(bits, -limit, limit).astype(np.float32)


def _partners(settings: LinkageSettings) -> dict[str, str]:
    if not settings.name_swap:
        return {}
    g, f = settings.name_swap
    partner = {g: f, f: g}
    keys = _swap_key_columns(settings)
    if keys:
        partner.update({keys[0]: keys[1], keys[1]: keys[0]})
    return partner


def name_swap_mask(pairs: PairBatch) -> np.ndarray:
    """Pairs whose given and family names agree clearly better when one side is swapped.

    Only pairs whose names share a 3-letter prefix crosswise are scored: a swap without
    that is not recognisable anyway, and it spares the similarity kernels most pairs.
    """
    settings = pairs.prep.settings
    if not settings.name_swap:
        return np.zeros(pairs.size, dtype=bool)
    given, family = settings.name_swap
    vocab = pairs.prep.vocab_of[given]
    forms = vocab.values
    gl, gr = pairs.left(given), pairs.raw_right(given)
    fl, fr = pairs.left(family), pairs.raw_right(family)
    full = (gl >= 0) & (gr >= 0) & (fl >= 0) & (fr >= 0)
    pre = vocab.prefix3
    cross = (pre[np.maximum(gl, 0)] == pre[np.maximum(fr, 0)]) | (
        pre[np.maximum(fl, 0)] == pre[np.maximum(gr, 0)]
    )
    idx = np.flatnonzero(full & ((gl != gr) | (fl != fr)) & cross)
    swap = np.zeros(pairs.size, dtype=bool)
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


def _joint_comparisons(settings: LinkageSettings) -> tuple[Comparison, Comparison] | None:
    """The (given, family) name comparisons whose top two levels (exact, key) the joint-name
    correction applies to."""
    keys = _swap_key_columns(settings)
    if not keys:
        return None
    comp_of = {c.column: c for c in settings.comparisons if c.key_column}
    given, family = settings.name_swap
    return comp_of[given], comp_of[family]


def _joint_lookup(prep: PreparedRecords, gk: np.ndarray, fk: np.ndarray) -> np.ndarray:
    size = np.int64(len(prep.vocab_of[_swap_key_columns(prep.settings)[0]].values) + 1)
    code = gk.astype(np.int64) * size + fk.astype(np.int64)
    table = prep.joint_codes
    out = np.zeros(code.shape, dtype=np.float32)
    if table.size == 0:
        return out
    pos = np.minimum(np.searchsorted(table, code), table.size - 1)
    hit = (table[pos] == code) & (gk >= 0) & (fk >= 0)
    out[hit] = prep.joint_bits[pos[hit]]
    return out


# ------------------------------------------------------------------ the entry point
def compare_batch(
    settings: LinkageSettings,
    prepared: PreparedRecords,
    batch: pa.RecordBatch,
    *,
    encoded: bool = False,
) -> pa.RecordBatch:
    """Comparison levels of a batch of record pairs: Arrow in, Arrow out.

    ``batch`` holds either ``row_l``/``row_r`` (positions into the records ``prepared``
    was built from) or, for every column the comparisons read, ``<column>_l`` and
    ``<column>_r`` values (what a distributed engine ships to its workers; ``prepared``
    can then be :meth:`PreparedRecords.for_batches` of all records). With ``encoded`` the
    ``<column>_l``/``<column>_r`` columns hold the records' codes and numbers instead of
    their values (:meth:`PairBatch.from_codes`). ``settings`` may also be a fitted model
    (its settings are used).

    Returns, per pair: ``gamma_<comparison>`` (int8 level, -1 missing), ``tf_<comparison>``
    (float32 term-frequency bits) for comparisons that have them, ``tf_names_joint`` when
    the joint-name correction is on, and ``names_swapped`` (bool). A pure function of its
    arguments: the same pairs give the same levels wherever it runs.
    """
    settings = getattr(settings, "settings", settings)
    if ROW_L in batch.schema.names:
        i = batch.column(ROW_L).to_numpy(zero_copy_only=False)
        j = batch.column(ROW_R).to_numpy(zero_copy_only=False)
        pairs = PairBatch.from_positions(prepared, i, j)
    elif encoded:
        pairs = PairBatch.from_codes(prepared, batch)
    else:
        pairs = PairBatch.from_values(prepared, batch)
    gammas, tfs = _compare(settings, pairs)
    cols = {f"gamma_{k}": pa.array(v, type=pa.int8()) for k, v in gammas.items()}
    cols |= {f"tf_{k}": pa.array(v, type=pa.float32()) for k, v in tfs.items()}
    cols["names_swapped"] = pa.array(pairs.swap, type=pa.bool_())
    return pa.RecordBatch.from_pydict(cols)


def _compare(
    settings: LinkageSettings, pairs: PairBatch
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    prep = pairs.prep
    pairs.swap = name_swap_mask(pairs)
    gammas: dict[str, np.ndarray] = {}
    tfs: dict[str, np.ndarray] = {}
    for comp in settings.comparisons:
        out = kind_of(comp.kind).compare(comp, pairs)
        gamma, tf_bits = out if isinstance(out, tuple) else (out, None)
        gammas[comp.name] = np.asarray(gamma, dtype=np.int8)
        if tf_bits is not None:
            tfs[comp.name] = np.asarray(tf_bits, dtype=np.float32)
    joint = _joint_comparisons(settings) if prep.joint_codes is not None else None
    if joint is not None:
        g, f = joint
        both = (gammas[g.name] >= g.n_levels - 2) & (gammas[f.name] >= f.n_levels - 2)
        bl, br = pairs.left(JOINT), pairs.raw_right(JOINT)
        tfs["names_joint"] = np.where(both, np.minimum(bl, br), 0.0).astype(np.float32)
    for name, factor in settings.tf_scale_missing.items():
        missing = gammas[name] < 0
        if factor != 1.0 and missing.any():
            for key, bits in tfs.items():
                tfs[key] = np.where(missing, bits * np.float32(factor), bits).astype(np.float32)
    return gammas, tfs


def compare_pairs(
    prep: PreparedRecords, i: np.ndarray, j: np.ndarray
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray]:
    """Gamma per comparison, TF bits per TF comparison, and the name-swap flag, for pairs
    (i, j) of prepared records: :func:`compare_batch` on their positions, as arrays."""
    batch = pa.RecordBatch.from_pydict(
        {
            ROW_L: pa.array(np.asarray(i, dtype=np.int32)),
            ROW_R: pa.array(np.asarray(j, dtype=np.int32)),
        }
    )
    out = compare_batch(prep.settings, prep, batch)
    gammas, tfs = {}, {}
    for name in out.schema.names:
        col = out.column(name).to_numpy(zero_copy_only=False)
        if name.startswith("gamma_"):
            gammas[name[len("gamma_") :]] = col
        elif name.startswith("tf_"):
            tfs[name[len("tf_") :]] = col
    return gammas, tfs, out.column("names_swapped").to_numpy(zero_copy_only=False)
