"""Pandera models of every artifact: the one source of truth for their schemas.

Each model validates its artifact when it is written and when it is read, and
``docs/artifacts.md`` is checked against these models by a test. Field descriptions
here are the documentation a downstream analyst reads.

Bump an artifact's ``SCHEMA_VERSIONS`` entry when its columns change incompatibly.
"""

from __future__ import annotations

import datetime as dt

import pandera.polars as pa
import polars as pl

#: Version of each artifact's schema, written into its Parquet metadata.
SCHEMA_VERSIONS: dict[str, str] = {
    "records": "1",
    "quarantine": "1",
    "pairs": "1",
    "clusters": "1",
    "persons": "1",
}

#: Region groups of nationality (ISO 3166-1 alpha-3 → region in ``recapture.reference``).
REGIONS: tuple[str, ...] = (
    "North Africa",
    "Sub-Saharan Africa",
    "Middle East",
    "Turkey",
    "Eastern Europe",
    "Asia",
    "Latin America and Caribbean",
    "Other",
)

#: Canonical sex codes.
SEX_CODES: tuple[str, ...] = ("M", "F")

#: Canonical quality classes of a recorded birth date.
BIRTH_DATE_QUALITY: tuple[str, ...] = ("full", "default", "month_year", "year_only", "missing")

#: Canonical reasons of a police apprehension.
APPREHENSION_REASONS: tuple[str, ...] = ("immigration_check", "criminal_offence", "other")


# --------------------------------------------------------------------------------------
# records.parquet — one row per accepted registration, all sources stacked
# --------------------------------------------------------------------------------------
class RecordSchema(pa.DataFrameModel):
    """records.parquet: one accepted, standardised registration per row (all sources)."""

    record_id: int = pa.Field(
        ge=0, unique=True, description="Unique id of the registration across all sources."
    )
    source: str = pa.Field(
        description="Source name from the source definition, e.g. 'police' or 'iom'."
    )
    source_file: str = pa.Field(description="Path of the extract the row was read from.")
    source_row: int = pa.Field(
        ge=1, description="1-based data row number in that extract (header not counted)."
    )
    source_key: str | None = pa.Field(
        nullable=True, description="The extract's own registration id, if any."
    )
    event_date: dt.date = pa.Field(
        description="Date of the registration: apprehension date (police) or departure date (IOM)."
    )
    family_name_raw: str | None = pa.Field(nullable=True, description="Family name as recorded.")
    given_name_raw: str | None = pa.Field(nullable=True, description="Given names as recorded.")
    family_name: str | None = pa.Field(
        nullable=True,
        description="Standardised family name: ASCII lower case, tokens separated by one space.",
    )
    given_name: str | None = pa.Field(
        nullable=True,
        description="Standardised given names: ASCII lower case, tokens separated by one space.",
    )
    family_name_key: str | None = pa.Field(
        nullable=True,
        description="Transliteration-aware key of the family name (variants of one name coincide).",
    )
    given_name_key: str | None = pa.Field(
        nullable=True, description="Transliteration-aware key of the first given name."
    )
    birth_date: dt.date | None = pa.Field(
        nullable=True,
        description="Birth date when day, month and year are known and valid (default 1 January dates included).",
    )
    birth_year: int | None = pa.Field(
        nullable=True,
        ge=1800,
        le=2100,
        description="Birth year when known (also for partial dates).",
    )
    birth_month: int | None = pa.Field(
        nullable=True, ge=1, le=12, description="Birth month when known."
    )
    birth_day: int | None = pa.Field(
        nullable=True, ge=1, le=31, description="Birth day when known."
    )
    birth_date_raw: str | None = pa.Field(nullable=True, description="Birth date as recorded.")
    birth_date_quality: str = pa.Field(
        isin=list(BIRTH_DATE_QUALITY),
        description="full, default (1 January), month_year, year_only or missing.",
    )
    sex: str | None = pa.Field(
        nullable=True, isin=list(SEX_CODES), description="M or F; null when unknown."
    )
    sex_raw: str | None = pa.Field(nullable=True, description="Sex as recorded.")
    nationality_iso3: str | None = pa.Field(
        nullable=True,
        str_length={"min_value": 3, "max_value": 3},
        description="ISO 3166-1 alpha-3 code; null when unknown or unrecognised.",
    )
    nationality_region: str | None = pa.Field(
        nullable=True,
        isin=list(REGIONS),
        description="Region group of the nationality; null when unknown.",
    )
    nationality_raw: str | None = pa.Field(nullable=True, description="Nationality as recorded.")
    v_number: str | None = pa.Field(
        nullable=True,
        str_matches=r"^\d{10}$",
        description="V-number (vreemdelingennummer) as 10 digits, when present and well-formed.",
    )
    v_number_raw: str | None = pa.Field(nullable=True, description="V-number as recorded.")
    police_unit: str | None = pa.Field(
        nullable=True, description="Police unit of the apprehension (police only)."
    )
    reason: str | None = pa.Field(
        nullable=True,
        isin=list(APPREHENSION_REASONS),
        description="Reason of the apprehension (police only).",
    )
    client_category: str | None = pa.Field(
        nullable=True, description="IOM client category (IOM only)."
    )
    in_target: bool = pa.Field(
        description="False for registrations of people outside the target population (e.g. IOM clients with a pending procedure)."
    )
    warnings: list[str] | None = pa.Field(
        nullable=True,
        description="Codes of the checks that flagged this row with a 'warning' policy (empty list when none); see docs/validation.md.",
    )

    class Config:
        strict = False  # source definitions may carry extra passthrough columns
        coerce = False


# --------------------------------------------------------------------------------------
# quarantine.parquet — every input row that was not accepted, with all its reasons
# --------------------------------------------------------------------------------------
class QuarantineSchema(pa.DataFrameModel):
    """quarantine.parquet: one rejected input row per row, with every reason."""

    source: str = pa.Field(description="Source name from the source definition.")
    source_file: str = pa.Field(description="Path of the extract the row was read from.")
    source_row: int = pa.Field(
        ge=1, description="1-based data row number in that extract (header not counted)."
    )
    source_key: str | None = pa.Field(
        nullable=True, description="The extract's own registration id, if readable."
    )
    original: str = pa.Field(
        description="The row's original values as a JSON object (column → text as read)."
    )
    reasons: list[str] = pa.Field(
        description="Codes of every error found on the row (e.g. 'birth_date.impossible')."
    )
    columns: list[str] = pa.Field(
        description="Canonical column each reason refers to, aligned with 'reasons'."
    )
    messages: list[str] = pa.Field(
        description="Human-readable message per reason, aligned with 'reasons'."
    )

    class Config:
        strict = True
        coerce = False


# --------------------------------------------------------------------------------------
# Raw extracts after column mapping (input of the validation stage, not artifacts):
# text per canonical field, before standardising. Optional columns may be absent from a
# layout; a failure of a check here quarantines the row ("<column>.missing" for
# not_nullable, "source_key.format" for the definition's registration-id pattern).
# --------------------------------------------------------------------------------------
class _ExtractIdentitySchema(pa.DataFrameModel):
    """Who the registration is about: the fields every source records, as text."""

    family_name: str | None = pa.Field(nullable=True, description="Family name as recorded.")
    given_name: str | None = pa.Field(nullable=True, description="Given names as recorded.")
    birth_date: str | None = pa.Field(
        nullable=True, description="Birth date text in one of the definition's formats."
    )
    sex: str | None = pa.Field(nullable=True, description="Sex code of the definition's code list.")
    nationality: str | None = pa.Field(
        nullable=True, description="Nationality as a name, adjective or ISO code."
    )
    v_number: str | None = pa.Field(nullable=True, description="V-number as recorded.")

    class Config:
        strict = False
        coerce = False


class PoliceExtractSchema(_ExtractIdentitySchema):
    """A police (PSH-v) extract mapped to canonical field names, values as text."""

    source_key: str | None = pa.Field(
        nullable=False,
        description="Registration id (registratienummer); must be present when the layout has one.",
    )
    event_date: str = pa.Field(nullable=False, description="Apprehension date; required.")
    police_unit: str | None = pa.Field(nullable=True, description="Police unit.")
    reason: str | None = pa.Field(
        nullable=True, description="Reason code of the definition's code list."
    )


class IomExtractSchema(_ExtractIdentitySchema):
    """An IOM assisted-return extract mapped to canonical field names, values as text."""

    source_key: str | None = pa.Field(
        nullable=False, description="IOM case number; must be present when the layout has one."
    )
    event_date: str = pa.Field(nullable=False, description="Departure date; required.")
    client_category: str = pa.Field(
        nullable=False, description="IOM client category; required (decides in_target)."
    )


#: The mapped-extract model of each kind of source definition.
EXTRACT_MODELS: dict[str, type[pa.DataFrameModel]] = {
    "police": PoliceExtractSchema,
    "iom": IomExtractSchema,
}


# --------------------------------------------------------------------------------------
# pairs.parquet — every scored candidate pair
# --------------------------------------------------------------------------------------
class PairsSchema(pa.DataFrameModel):
    """pairs.parquet: one scored candidate record pair per row (record_id_l < record_id_r)."""

    record_id_l: int = pa.Field(ge=0, description="record_id of the first record (the smaller id).")
    record_id_r: int = pa.Field(ge=0, description="record_id of the second record.")
    blocking_rule: str = pa.Field(
        description="Name of the first blocking rule (in configured order) that produced the pair."
    )
    gamma: pl.Int8 = pa.Field(
        alias="gamma_.+",
        regex=True,
        ge=-1,
        description="gamma_<comparison>: comparison level per field (0 = lowest agreement level, highest = exact; -1 = a value missing, neutral). Level names per comparison are in linkage_model.json.",
    )
    names_swapped: bool = pa.Field(
        description="True when given and family names were compared swapped (they agree clearly better that way)."
    )
    match_weight: float = pa.Field(
        description="log2 posterior odds of a match: log2(λ/(1−λ)) + Σ log2(m/u), with term-frequency adjustment."
    )
    match_probability: float = pa.Field(
        ge=0.0, le=1.0, description="Posterior probability that the pair is a match."
    )
    linked: bool = pa.Field(
        description="True when the pair is a link used by the clustering (at or above the threshold, kept by the chaining guard and the one-to-one constraint)."
    )

    class Config:
        strict = False
        coerce = False


# --------------------------------------------------------------------------------------
# clusters.parquet — record → person
# --------------------------------------------------------------------------------------
class ClusterSchema(pa.DataFrameModel):
    """clusters.parquet: the person (cluster) each record was assigned to."""

    record_id: int = pa.Field(ge=0, unique=True, description="record_id from records.parquet.")
    source: str = pa.Field(description="Source of the record.")
    person_id: int = pa.Field(
        ge=0, description="Pseudonymous person id (cluster id); stable within a run only."
    )
    cluster_size: int = pa.Field(ge=1, description="Number of records in the person's cluster.")

    class Config:
        strict = False
        coerce = False


# --------------------------------------------------------------------------------------
# persons.parquet — capture histories, the contract estimators read
# --------------------------------------------------------------------------------------
class PersonSchema(pa.DataFrameModel):
    """persons.parquet: one row per person and period; no names, birth dates or V-numbers.

    The capture columns come in pairs per source named in the run (``n_police``,
    ``in_police``, ``n_iom``, ``in_iom`` …); the Parquet metadata key ``recapture.sources``
    lists the sources in order.
    """

    person_id: pl.Int64 = pa.Field(
        ge=0, description="Pseudonymous person id (the cluster id of clusters.parquet)."
    )
    period: pl.String = pa.Field(description="Label of the reference period, e.g. '2017/18'.")
    n_source: pl.Int32 = pa.Field(
        ge=0,
        alias="n_.+",
        regex=True,
        description="n_<source>: number of the person's registrations in that source within the period.",
    )
    in_source: pl.Int8 = pa.Field(
        isin=[0, 1],
        alias="in_.+",
        regex=True,
        description="in_<source>: capture indicator, 1 if n_<source> > 0.",
    )
    record_count: pl.Int32 = pa.Field(
        ge=1, description="Number of the person's registrations in the period, all sources."
    )
    first_date: pl.Date = pa.Field(
        description="Date of the person's first registration in the period."
    )
    last_date: pl.Date = pa.Field(
        description="Date of the person's last registration in the period."
    )
    days_at_risk: pl.Int32 = pa.Field(
        ge=1,
        description="Days from the period's start to its end, or to the person's first assisted departure (IOM) in the period.",
    )
    sex: pl.String = pa.Field(
        isin=["M", "F", "unknown"],
        description="Most frequent recorded sex (ties: earliest registration); 'unknown' if never recorded.",
    )
    age: pl.Int32 | None = pa.Field(
        nullable=True,
        ge=0,
        description="Age in whole years at the period's start, from the best-quality birth dates; null if no birth year.",
    )
    age_class: pl.String = pa.Field(
        description="Age class from the configured age breaks (e.g. '<40', '40+'); 'unknown' if age is null."
    )
    nationality_iso3: pl.String | None = pa.Field(
        nullable=True,
        description="Most frequent recognised nationality (ISO 3166-1 alpha-3); null if none.",
    )
    region: pl.String = pa.Field(
        isin=[*REGIONS, "Unknown"],
        description="Region group of that nationality; 'Unknown' if none.",
    )
    reason: pl.String | None = pa.Field(
        nullable=True,
        description="Reason of the person's first police apprehension in the period; null if not apprehended.",
    )
    police_unit: pl.String | None = pa.Field(
        nullable=True,
        description="Police unit of the first apprehension in the period; null if not apprehended.",
    )
    conflicts_sex: pl.Int32 = pa.Field(
        ge=0,
        description="Number of the person's records whose sex differs from the resolved value.",
    )
    conflicts_birth_year: pl.Int32 = pa.Field(
        ge=0,
        description="Number of best-quality birth dates whose year differs from the resolved birth year.",
    )
    conflicts_nationality: pl.Int32 = pa.Field(
        ge=0,
        description="Number of records whose recognised nationality differs from the resolved value.",
    )
    min_link_probability: pl.Float64 | None = pa.Field(
        nullable=True,
        ge=0.0,
        le=1.0,
        description="Weakest link: the lowest, over the person's records, of each record's best link probability (links the clustering used); null for a single record.",
    )

    class Config:
        strict = True
        coerce = False


def validate(df: pl.DataFrame, model: type[pa.DataFrameModel]) -> pl.DataFrame:
    """Validate a polars frame lazily (collect every failure) and return it unchanged."""
    return model.validate(df, lazy=True)
