"""Linkage settings: blocking rules, comparisons, model and clustering options.

Settings are plain dataclasses so that a run can be reproduced from the copy written into
``linkage_model.json``; they load from a dict or a TOML file and are checked on load, so a
typo in a key is a :class:`~recapture.errors.ConfigError` naming the key, not a crash later.
The defaults are tuned for the canonical registration records of ``records.parquet``;
:func:`recapture.linkage.febrl.febrl_settings` shows the same engine on other field names.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recapture.errors import ConfigError
from recapture.linkage.kinds import kind_of
from recapture.loader import build, convert, read_toml

#: Blocking-key transforms: ``first3(family_name)``, ``last2(x)``, ``token1(x)``, ``compact(x)``,
#: ``plus1(birth_year)`` (a number plus n: as a right key, pairs a year with the next one).
KEY_TRANSFORM = re.compile(
    r"^(?P<fn>first|last|plus)(?P<n>\d+)\((?P<col>\w+)\)$|^(?P<fn2>token1|compact|sorted)\((?P<col2>\w+)\)$"
)


@dataclass
class BlockingRule:
    """Candidate pairs are record pairs equal on every key (left keys vs right keys).

    ``right_keys`` lets a rule compare different columns, e.g. given/family swapped.
    """

    name: str
    keys: list[str]
    right_keys: list[str] | None = None
    #: Keys added (on both sides) inside blocks larger than ``max_block_size``.
    refine: list[str] = field(default_factory=list)

    def key_columns(self) -> set[str]:
        cols = set()
        for key in self.keys + (self.right_keys or []) + self.refine:
            cols.add(parse_key(key)[1])
        return cols


@dataclass
class TrainingSession:
    """Pairs equal on ``keys`` on which EM estimates m of every comparison except ``fixes``.

    Blocking on a field makes its agreement uninformative among the pairs of the block, so
    the comparisons of the blocked fields are left out of that session; the m of a
    comparison comes from the sessions that do not fix it.
    """

    name: str
    keys: list[str]
    fixes: list[str]


@dataclass
class Comparison:
    """One field comparison; its ``kind`` (a registered :mod:`recapture.linkage.kinds`
    object) decides the levels, the columns read and how pairs are compared.

    Built-in kinds:
      * ``string``: levels ``exact`` (also equal after removing spaces or sorting tokens),
        ``key`` (equal ``key_column``, e.g. the transliteration key), then one level per
        Jaro–Winkler threshold (on the best of the plain, token-sorted and token-subset
        forms; with ``options.key_similarity`` also of the two keys), then ``else``.
        Term-frequency adjustment on ``exact`` and ``key`` when ``tf``.
      * ``date``: ``exact``, ``day_month_swapped``, ``year_off_same_day_month``,
        ``one_component_off``,
        ``partial_same_year`` (a default/partial date of the same year), ``same_year``,
        ``year_off_by_one``, ``else``; columns ``year``/``month``/``day``/``quality``.
      * ``exact``: ``exact``, optionally ``same_group`` (equal ``group_column``), ``else``.
      * ``id``: ``exact``, ``one_edit`` (one substitution, insertion, deletion or adjacent
        transposition), ``else``.
      * ``event_order``: ``in_order`` / ``after_end``: another source's registration dated
        on or before / after the registration of ``options.ending_source`` (a departure).
    A missing value on either side gives level -1, which is neutral in the model.
    Kinds added in code read their own settings from ``options``.
    """

    name: str
    kind: str
    column: str | None = None
    key_column: str | None = None
    thresholds: list[float] = field(default_factory=lambda: [0.92, 0.85])
    tf: bool = False
    group_column: str | None = None
    year: str | None = None
    month: str | None = None
    day: str | None = None
    quality: str | None = None
    #: ``id``: a level ``one_side_only`` for a value present on one record only (instead
    #: of neutral), for identifiers that a person's records tend to carry all or none.
    one_side_level: bool = False
    #: ``id``: a level ``both_missing`` (instead of neutral) for an identifier absent on both
    #: records: a person without one lacks it in every registration, so two records both
    #: without it are more often one person than two random records are.
    both_missing_level: bool = False
    #: Settings of a kind defined in code (declared by the kind's ``options``).
    options: dict[str, Any] = field(default_factory=dict)
    #: Left out (not an error) when the records lack its columns: a default comparison
    #: on a field that only some extracts have, such as the registering police unit.
    optional: bool = False

    @property
    def kind_object(self):
        return kind_of(self.kind)

    def level_names(self) -> list[str]:
        """Names of levels 0..L-1, lowest agreement first (level index = gamma value)."""
        return self.kind_object.level_names(self)

    @property
    def n_levels(self) -> int:
        return len(self.level_names())

    def columns(self) -> list[str]:
        return list(self.kind_object.columns(self))

    def option(self, name: str) -> Any:
        """A kind option: the value set in ``options`` or the kind's default."""
        return self.options.get(name, self.kind_object.options[name][1])


@dataclass
class LinkageSettings:
    """Everything that determines a linkage run (see docs/linkage.md, settings reference)."""

    blocking_rules: list[BlockingRule]
    comparisons: list[Comparison]
    #: Sessions of the ``sessions`` EM mode (see :class:`TrainingSession`).
    training_sessions: list[TrainingSession] = field(default_factory=list)
    #: ``sessions`` mode: comparisons whose u is taken from the training sessions (u among
    #: the non-matches of a session's block, e.g. namesakes) instead of from random pairs,
    #: because their agreement depends on the blocked fields (sex and nationality on names).
    #: When set, λ is the match rate among all record pairs and u stays fixed; when empty,
    #: u and λ are re-estimated among the candidate pairs.
    session_u: list[str] = field(default_factory=list)
    #: (given, family) name columns whose values are swapped on a pair before comparing,
    #: when the swapped alignment is clearly more similar; None to disable.
    name_swap: list[str] | None = None
    #: A blocking-key value held by more records than this is skipped for that rule (reported).
    max_block_size: int = 100
    #: Random record pairs drawn to estimate u probabilities.
    u_sample_pairs: int = 1_000_000
    #: "sessions": u from random pairs; m by EM within each training session; then λ among
    #: all record pairs by EM on the candidate pairs. "fixed_u": u from random pairs, m and λ
    #: by one EM on the candidate pairs. "candidates": m, u and λ all by EM among candidates.
    em_mode: str = "sessions"
    #: Re-estimate u from the random pairs weighted by their non-match probability under
    #: the first fit (``fixed_u`` and ``sessions`` with ``session_u``), then refit λ.
    u_without_matches: bool = True
    #: At most this many rounds of re-estimating u and refitting (stops when u settles).
    u_refits: int = 5
    #: Prior λ per pair of sources (within each source, across sources) instead of one λ.
    prior_by_source_pair: bool = True
    #: Comparisons that still agree when a person gives another identity (an alias): an
    #: identifier tied to the person (a V-number found by fingerprints), sex. The match
    #: class becomes a mixture with an alias component in which the other comparisons
    #: behave as in a random pair (recapture.linkage.model); empty for the classic model.
    alias_comparisons: list[str] = field(default_factory=list)
    #: Alias share π: the share of a person's pairs of registrations made under different
    #: identities. Fixed by default: the aliases that share nothing are invisible to EM, so
    #: the data identify π only through the few pairs with an agreeing V-number, and EM
    #: then drives it to zero by calling those pairs non-matches (docs/linkage.md).
    alias_share: float = 0.05
    #: Estimate π by EM, starting from ``alias_share``.
    estimate_alias_share: bool = False
    em_max_iter: int = 200
    em_tol: float = 1e-6
    #: Pseudo-count added to every level when estimating probabilities (avoids 0 and 1).
    smoothing: float = 0.5
    #: Upper bound (bits) of the term-frequency adjustment of one comparison.
    tf_max_bits: float = 8.0
    #: Penalise agreement on a full name more common than its parts predict (needs
    #: ``name_swap`` and key columns; see comparisons._joint_name_table).
    joint_name_tf: bool = True
    #: Columns that, with the names, tell people apart when name frequencies are counted
    #: (a person registered many times counts once); a record missing the first of them
    #: counts only where no record with it has the same names. Absent columns are skipped.
    tf_person_columns: list[str] = field(default_factory=lambda: ["birth_year", "sex"])
    #: People added to the count of every value before its term frequency is taken
    #: (shrinks the weight of names seen once or twice; 0 = raw frequencies).
    tf_pseudo_people: float = 0.0
    #: Cross-source pairs (with ``prior_by_source_pair``): add to agreement on a name the
    #: bits −log2 Σ_v f_a(v)·f_b(v)/f(v) of its two sources' name frequencies. The persons
    #: in both lists carry names common in both, not the pooled names the TF bits assume
    #: for matches (comparisons._overlap_bits, docs/linkage.md).
    tf_across_sources: bool = False
    #: Comparison name → factor (0–1) applied to the term-frequency bits (the names' and the
    #: joint-name penalty) of a pair on which that comparison is missing on either record.
    #: Off by default: {birth_date = 0.5} calibrates the unlinked cross-list persons but
    #: overshoots at the pair level (docs/linkage.md, "Persons in both lists").
    tf_scale_missing: dict[str, float] = field(default_factory=dict)
    #: Match-probability threshold for clustering, or "auto": the one maximising the
    #: model-expected F1 (chosen without truth).
    threshold: float | str = 0.5
    #: Chaining guard: a cluster holding a scored pair below this probability is split by
    #: raising the threshold inside it (see ``chaining_steps``); "report" only reports.
    conflict_probability: float = 0.01
    chaining_action: str = "split"
    chaining_steps: list[float] = field(default_factory=lambda: [0.8, 0.9, 0.95, 0.99, 0.999])
    #: Keep only mutual-best links between records of different sources.
    one_to_one: bool = False
    #: Compare only pairs of records from different sources (no deduplication within a source).
    link_only: bool = False
    record_id: str = "record_id"
    source: str | None = "source"
    seed: int = 20240501
    #: Threads for the string-similarity kernels (-1 = all cores).
    workers: int = -1

    # ------------------------------------------------------------------ loading
    @classmethod
    def default(cls) -> LinkageSettings:
        """Settings for canonical registration records (records.parquet)."""
        return cls.from_dict(DEFAULT_SETTINGS)

    @classmethod
    def from_toml(cls, path: str | Path) -> LinkageSettings:
        """Settings from a TOML file, read by the strict loader (:mod:`recapture.loader`)."""
        try:
            return cls.from_dict(read_toml(path))
        except ConfigError as exc:
            exc.file = str(path)
            raise

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LinkageSettings:
        """Build settings from a dict; keys absent fall back to :data:`DEFAULT_SETTINGS`.

        Strict as every config (:func:`recapture.loader.build`): an unknown key or a value
        of the wrong type is a ConfigError naming the dotted key.
        """
        if not isinstance(data, dict):
            raise ConfigError("linkage settings must be a table")
        merged = dict(DEFAULT_SETTINGS)
        merged.update(data)
        settings = build(cls, merged)
        settings.check()
        return settings

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def check(self) -> None:
        if not self.blocking_rules:
            raise ConfigError("at least one blocking rule is needed", key="blocking_rules")
        if not self.comparisons:
            raise ConfigError("at least one comparison is needed", key="comparisons")
        names = [r.name for r in self.blocking_rules]
        if len(set(names)) != len(names):
            raise ConfigError("blocking rule names must be unique", key="blocking_rules")
        for i, rule in enumerate(self.blocking_rules):
            if not rule.keys:
                raise ConfigError("a rule needs at least one key", key=f"blocking_rules[{i}].keys")
            if rule.right_keys is not None and len(rule.right_keys) != len(rule.keys):
                raise ConfigError(
                    "right_keys must have as many entries as keys",
                    key=f"blocking_rules[{i}].right_keys",
                )
            for k in rule.keys + (rule.right_keys or []) + rule.refine:
                parse_key(k, f"blocking_rules[{i}]")
        cnames = [c.name for c in self.comparisons]
        if len(set(cnames)) != len(cnames):
            raise ConfigError("comparison names must be unique", key="comparisons")
        for i, comp in enumerate(self.comparisons):
            where = f"comparisons[{i}]"
            kind = kind_of(comp.kind, f"{where}.kind")
            for opt, value in comp.options.items():
                if opt not in kind.options:
                    known = ", ".join(sorted(kind.options)) or "none"
                    raise ConfigError(
                        f"unknown option of kind {comp.kind!r} (known: {known})",
                        key=f"{where}.options.{opt}",
                    )
                convert(kind.options[opt][0], value, key=f"{where}.options.{opt}")
            kind.check(comp, where)
        if self.name_swap is not None and len(self.name_swap) != 2:
            raise ConfigError("name_swap is [given_column, family_column]", key="name_swap")
        if self.em_mode not in ("sessions", "candidates", "fixed_u"):
            raise ConfigError(
                "em_mode must be 'sessions', 'fixed_u' or 'candidates'", key="em_mode"
            )
        if self.em_mode == "sessions":
            if not self.training_sessions:
                raise ConfigError(
                    "em_mode 'sessions' needs training_sessions", key="training_sessions"
                )
            estimated = set()
            for i, sess in enumerate(self.training_sessions):
                for k in sess.keys:
                    parse_key(k, f"training_sessions[{i}].keys")
                unknown = set(sess.fixes) - set(cnames)
                if unknown:
                    raise ConfigError(
                        f"unknown comparison(s) {sorted(unknown)}",
                        key=f"training_sessions[{i}].fixes",
                    )
                estimated |= set(cnames) - set(sess.fixes)
            left = set(cnames) - estimated
            if left:
                raise ConfigError(
                    f"no training session estimates m of {sorted(left)}", key="training_sessions"
                )
        unknown = set(self.alias_comparisons) - set(cnames)
        if unknown:
            raise ConfigError(f"unknown comparison(s) {sorted(unknown)}", key="alias_comparisons")
        if not 0.0 < self.alias_share < 0.5:
            raise ConfigError("must be strictly between 0 and 0.5", key="alias_share")
        if self.chaining_action not in ("split", "report"):
            raise ConfigError("chaining_action must be 'split' or 'report'", key="chaining_action")
        if isinstance(self.threshold, str):
            if self.threshold != "auto":
                raise ConfigError("threshold must be a probability or 'auto'", key="threshold")
        elif not 0.0 < float(self.threshold) < 1.0:
            raise ConfigError("threshold must be strictly between 0 and 1", key="threshold")
        if not 0.0 <= self.tf_pseudo_people <= 1000.0:
            raise ConfigError("must be between 0 and 1000", key="tf_pseudo_people")
        for name, factor in self.tf_scale_missing.items():
            if name not in cnames:
                raise ConfigError(f"unknown comparison {name!r}", key=f"tf_scale_missing.{name}")
            if not 0.0 <= float(factor) <= 1.0:
                raise ConfigError("must be between 0 and 1", key=f"tf_scale_missing.{name}")
        if self.max_block_size < 2:
            raise ConfigError("max_block_size must be at least 2", key="max_block_size")

    def for_columns(self, columns: list[str] | set[str]) -> LinkageSettings:
        """These settings without the optional comparisons whose columns the records lack
        (and without those comparisons' names in the lists that refer to them)."""
        have = set(columns)
        dropped = {c.name for c in self.comparisons if c.optional and not set(c.columns()) <= have}
        if not dropped:
            return self
        return dataclasses.replace(
            self,
            comparisons=[c for c in self.comparisons if c.name not in dropped],
            training_sessions=[
                dataclasses.replace(t, fixes=[f for f in t.fixes if f not in dropped])
                for t in self.training_sessions
            ],
            session_u=[c for c in self.session_u if c not in dropped],
            alias_comparisons=[c for c in self.alias_comparisons if c not in dropped],
        )

    def scores_per_source_pair(self, has_sources: bool) -> bool:
        """Whether pairs get a prior (and cross-source TF bits) per pair of sources: the
        records carry a source, ``prior_by_source_pair`` is on, and pairs within a source
        are compared (not ``link_only``)."""
        return bool(has_sources and self.prior_by_source_pair and not self.link_only)

    def required_columns(self) -> set[str]:
        cols = {self.record_id}
        if self.source:
            cols.add(self.source)
        for rule in self.blocking_rules:
            cols |= rule.key_columns()
        for comp in self.comparisons:
            cols |= set(comp.columns())
        for sess in self.training_sessions:
            cols |= {parse_key(k)[1] for k in sess.keys}
        if self.name_swap:
            cols |= set(self.name_swap)
        return cols


def parse_key(key: str, where: str | None = None) -> tuple[str | None, str, int]:
    """Split a blocking key into (transform, column, n)."""
    m = KEY_TRANSFORM.match(key)
    if m is None:
        if not re.fullmatch(r"\w+", key):
            raise ConfigError(
                f"bad blocking key {key!r}: a column, firstN(col), lastN(col), plusN(col), token1(col), compact(col) or sorted(col)",
                key=where,
            )
        return None, key, 0
    if m.group("fn"):
        return m.group("fn"), m.group("col"), int(m.group("n"))
    return m.group("fn2"), m.group("col2"), 0


#: Defaults for records.parquet (RecordSchema). Every key may be overridden.
DEFAULT_SETTINGS: dict[str, Any] = {
    "blocking_rules": [
        {"name": "v_number", "keys": ["v_number"]},
        {
            "name": "family_key_birth_year",
            "keys": ["family_name_key", "birth_year"],
            "refine": ["first1(given_name_key)"],
        },
        {"name": "given_key_birth_date", "keys": ["given_name_key", "birth_date"]},
        {
            "name": "family_key_given_key",
            "keys": ["family_name_key", "given_name_key"],
            "refine": ["birth_year"],
        },
        {
            "name": "names_swapped",
            "keys": ["given_name_key", "family_name_key"],
            "right_keys": ["family_name_key", "given_name_key"],
            "refine": ["birth_year"],
        },
        {
            "name": "names_swapped_birth_date",
            "keys": ["given_name_key", "birth_date"],
            "right_keys": ["family_name_key", "birth_date"],
        },
        {
            "name": "family_key_as_given_key_birth_year",
            "keys": ["family_name_key", "birth_year", "first1(given_name_key)"],
            "right_keys": ["given_name_key", "birth_year", "first1(family_name_key)"],
            "refine": ["sex"],
        },
        {"name": "family_key_end_birth_date", "keys": ["last4(family_name_key)", "birth_date"]},
        {
            "name": "given_key_birth_year_nationality",
            "keys": ["given_name_key", "birth_year", "nationality_iso3"],
            "refine": ["first1(family_name_key)"],
        },
        {
            "name": "given_key_nat_month_year_pm1",
            "keys": ["given_name_key", "nationality_iso3", "birth_month", "birth_year"],
            "right_keys": [
                "given_name_key",
                "nationality_iso3",
                "birth_month",
                "plus1(birth_year)",
            ],
            "refine": ["sex"],
        },
        {
            "name": "name_prefixes_birth_year",
            "keys": ["first2(family_name)", "first2(given_name)", "birth_year"],
            "refine": ["sex", "nationality_iso3"],
        },
        {
            "name": "birth_date_sex_nationality",
            "keys": ["birth_date", "sex", "nationality_iso3"],
            "refine": ["first1(family_name_key)"],
        },
    ],
    "comparisons": [
        {
            "name": "family_name",
            "kind": "string",
            "column": "family_name",
            "key_column": "family_name_key",
            "thresholds": [0.92, 0.85],
            "tf": True,
            "options": {"key_similarity": True},
        },
        {
            "name": "given_name",
            "kind": "string",
            "column": "given_name",
            "key_column": "given_name_key",
            "thresholds": [0.92, 0.85],
            "tf": True,
            "options": {"key_similarity": True},
        },
        {
            "name": "birth_date",
            "kind": "date",
            "year": "birth_year",
            "month": "birth_month",
            "day": "birth_day",
            "quality": "birth_date_quality",
        },
        {"name": "sex", "kind": "exact", "column": "sex"},
        {
            "name": "nationality",
            "kind": "exact",
            "column": "nationality_iso3",
            "group_column": "nationality_region",
        },
        {
            "name": "v_number",
            "kind": "id",
            "column": "v_number",
            "one_side_level": True,
            "both_missing_level": True,
        },
        # Apprehensions of one person happen mostly in the unit where they live, so a
        # shared unit is evidence and a different one is some evidence against; the EM
        # weighs it from the data (m ≈ u, no weight, where units are unrelated to persons).
        # IOM registrations have no unit: missing on one side adds no weight.
        {"name": "police_unit", "kind": "exact", "column": "police_unit", "optional": True},
        # An assisted return ends the stay: a police registration dated after a person's
        # IOM departure is rare for one person, common for two (docs/linkage.md).
        {
            "name": "event_order",
            "kind": "event_order",
            "column": "event_date",
            "options": {"ending_source": "iom"},
            "optional": True,
        },
    ],
    "name_swap": ["given_name", "family_name"],
    "training_sessions": [
        {
            "name": "same_name_keys",
            "keys": ["family_name_key", "given_name_key"],
            "fixes": ["family_name", "given_name"],
        },
        {
            "name": "same_birth_date_and_sex",
            "keys": ["birth_date", "sex"],
            "fixes": ["birth_date", "sex"],
        },
    ],
    "session_u": ["sex", "nationality"],
    "tf_pseudo_people": 3.0,
    "tf_across_sources": True,
    "alias_comparisons": ["v_number", "sex", "event_order"],
}
