"""Clerical review: a labelled sample of pairs tells how wrong the linkage is without truth.

:func:`export_review_sample` draws a stratified random sample of scored pairs, with
more weight near the threshold than the raw distribution would give (most candidate
pairs are near-certain non-matches), and writes it to CSV with everything a reviewer
needs to judge the pair side by side and an empty ``label`` column. The reviewer fills
``match``, ``non-match`` or ``unsure``. :func:`read_review_labels` reads the file back
and refuses anything malformed, and :func:`estimate_error_rates` turns the labels into
design-weighted estimates of precision above the threshold, the false-link rate and the
missed-link rate, with Wilson intervals.

Text cells that a spreadsheet would run as a formula (starting with ``= + - @``, a tab or a
carriage return) are written with a leading single quote (:func:`neutralise_formula`).

The export holds names, birth dates, nationality and V-numbers in clear — nothing is
pseudonymised, because a reviewer cannot judge a pair otherwise. It is meant for the
secure workstation where the registrations themselves are processed and must not leave
it. The file is self-describing: each row carries its stratum, the stratum's population
and sample size and the threshold, so the estimate needs no other file.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import polars as pl
from scipy import stats

from recapture.errors import InputError
from recapture.io import atomic_write, check_regular_file

LABELS: tuple[str, ...] = ("match", "non-match", "unsure")

#: Default probability band edges; the threshold is inserted as an extra edge.
DEFAULT_BANDS: tuple[float, ...] = (0.0, 0.01, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99, 1.0)

#: Record fields shown to the reviewer for each side of a pair, when present in records.
REVIEW_FIELDS: tuple[str, ...] = (
    "source",
    "source_key",
    "family_name_raw",
    "given_name_raw",
    "family_name",
    "given_name",
    "birth_date_raw",
    "birth_date_quality",
    "sex",
    "nationality_raw",
    "nationality_iso3",
    "v_number",
    "event_date",
)

#: Columns the estimator needs back from a labelled file.
DESIGN_COLUMNS: tuple[str, ...] = (
    "review_id",
    "stratum",
    "band_lower",
    "band_upper",
    "stratum_pairs",
    "stratum_sample",
    "threshold",
    "record_id_l",
    "record_id_r",
    "match_probability",
    "label",
)


def _band_edges(threshold: float, bands: Sequence[float] | None) -> np.ndarray:
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must lie strictly between 0 and 1, got {threshold}")
    edges = np.array(DEFAULT_BANDS if bands is None else bands, dtype=float)
    if edges.min() < 0 or edges.max() > 1:
        raise ValueError("band edges must lie in [0, 1]")
    return np.unique(np.concatenate([edges, [0.0, 1.0, threshold]]))


def _allocate(alloc: np.ndarray, sizes: np.ndarray, score: np.ndarray, total: int) -> np.ndarray:
    """Hand out the rest of the sample ∝ score, capped by band size, refilling from the rest."""
    alloc = alloc.astype(np.int64).copy()
    while (remaining := total - int(alloc.sum())) > 0:
        room = sizes - alloc
        weight = np.where(room > 0, score, 0.0)
        if weight.sum() <= 0:
            weight = (room > 0).astype(float)
        share = np.minimum(np.floor(remaining * weight / weight.sum()).astype(np.int64), room)
        if share.sum() == 0:  # rounding left nothing: one each to the highest-weight bands
            order = np.argsort(-weight, kind="stable")[:remaining]
            share = np.zeros_like(alloc)
            share[order[room[order] > 0]] = 1
        alloc += share
    return alloc


def export_review_sample(
    pairs: pl.DataFrame,
    records: pl.DataFrame,
    path: str | os.PathLike,
    *,
    threshold: float,
    sample_size: int = 300,
    bands: Sequence[float] | None = None,
    allocation: str = "neyman",
    min_per_band: int = 10,
    seed: int = 0,
) -> pl.DataFrame:
    """Write a stratified sample of scored pairs to CSV for clerical review; return it.

    The pairs are split into match-probability bands (``bands`` plus the threshold as an
    edge, so every band lies wholly above or below it) and drawn without replacement.
    ``allocation="neyman"`` gives band h a share ∝ N_h·√(p̄_h(1−p̄_h)) with p̄_h the
    model's mean probability there — the allocation that best estimates the number of
    matches, which puts many draws into the huge low band where missed links hide —
    after every band has got ``min_per_band`` pairs (or all it has), so pairs around the
    threshold are always seen. ``allocation="equal"`` draws the same number per band.
    The output contains personal data in clear.
    """
    for col in ("record_id_l", "record_id_r", "match_probability"):
        if col not in pairs.columns:
            raise InputError(f"pairs lack column '{col}'", column=col)
    if "record_id" not in records.columns:
        raise InputError("records lack column 'record_id'", column="record_id")
    if sample_size < 1:
        raise ValueError("sample_size must be at least 1")
    edges = _band_edges(threshold, bands)
    k = len(edges) - 1
    p = pairs["match_probability"].to_numpy()
    stratum = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, k - 1)
    sizes = np.bincount(stratum, minlength=k)

    if allocation not in ("neyman", "equal"):
        raise ValueError(f"allocation must be 'neyman' or 'equal', got {allocation!r}")
    total = min(sample_size, int(sizes.sum()))
    alloc = np.minimum(sizes, min(min_per_band, total // max(int((sizes > 0).sum()), 1)))
    if allocation == "neyman":
        mean_p = np.bincount(stratum, weights=p, minlength=k) / np.maximum(sizes, 1)
        score = sizes * np.sqrt(np.clip(mean_p * (1 - mean_p), 1e-6, None))
    else:
        score = (sizes > 0).astype(float)
    alloc = _allocate(alloc, sizes, score, total)

    rng = np.random.default_rng(seed)
    order = np.argsort(stratum, kind="stable")
    starts = np.concatenate([[0], np.cumsum(sizes)])
    chosen = np.concatenate(
        [
            rng.choice(order[starts[h] : starts[h + 1]], size=alloc[h], replace=False)
            for h in range(k)
        ]
    ).astype(np.int64)
    chosen.sort()

    optional = [c for c in ("match_weight", "blocking_rule") if c in pairs.columns]
    sample = (
        pairs.select("record_id_l", "record_id_r", "match_probability", *optional)[chosen]
        .with_columns(stratum=pl.Series(stratum[chosen], dtype=pl.Int64))
        .with_columns(
            band_lower=pl.Series(edges[stratum[chosen]]),
            band_upper=pl.Series(edges[stratum[chosen] + 1]),
            stratum_pairs=pl.Series(sizes[stratum[chosen]], dtype=pl.Int64),
            stratum_sample=pl.Series(alloc[stratum[chosen]], dtype=pl.Int64),
            threshold=pl.lit(float(threshold)),
        )
        .sort("stratum", "match_probability", "record_id_l", "record_id_r")
        .with_row_index("review_id", offset=1)
        .with_columns(pl.col("review_id").cast(pl.Int64))
    )
    fields = [c for c in REVIEW_FIELDS if c in records.columns]
    side = records.select("record_id", *fields)
    for suffix, key in (("_l", "record_id_l"), ("_r", "record_id_r")):
        sample = sample.join(
            side.rename({c: c + suffix for c in fields} | {"record_id": key}), on=key, how="left"
        )
    paired_fields = [c + s for c in fields for s in ("_l", "_r")]
    out = sample.select(
        *(c for c in DESIGN_COLUMNS if c != "label"),
        *optional,
        *paired_fields,
        pl.lit(None, dtype=pl.String).alias("label"),
    ).sort("review_id")
    safe = out.with_columns(
        neutralise_formula(pl.col(c)).alias(c) for c, t in out.schema.items() if t == pl.String
    )
    atomic_write(path, lambda tmp: safe.write_csv(tmp))
    return out


#: First characters that make a spreadsheet read a cell as a formula (OWASP CSV injection).
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_FORMULA_START = r"^[=+\-@\t\r]"


def neutralise_formula(text: pl.Expr) -> pl.Expr:
    """Text cells a spreadsheet would run as a formula (``=HYPERLINK(…)``, ``@SUM(…)``,
    ``+1``, ``-1``, a leading tab or carriage return) prefixed with a single quote, which
    spreadsheets show as text; the OWASP rule for CSV exports. Numbers are written as
    numbers, so a negative match weight stays a number."""
    risky = text.str.contains(_FORMULA_START).fill_null(False)
    return pl.when(risky).then(pl.concat_str(pl.lit("'"), text)).otherwise(text)


def read_review_labels(path: str | os.PathLike, *, allow_unlabelled: bool = False) -> pl.DataFrame:
    """Read a labelled review file back, checking it is complete and well-formed.

    Labels are case- and space-insensitive (``match``, ``non-match``, ``unsure``). Rows
    deleted from the file, unknown labels and (unless ``allow_unlabelled``) empty labels
    raise :class:`InputError` naming the file, data row (1-based, header not counted) and
    column. With ``allow_unlabelled`` empty labels are kept as null and left out of the
    estimate.
    """
    path = check_regular_file(path)
    try:
        raw = pl.read_csv(path, infer_schema=False)
    except pl.exceptions.PolarsError as exc:
        raise InputError(f"not a readable CSV: {exc}", file=str(path)) from None
    missing = [c for c in DESIGN_COLUMNS if c not in raw.columns]
    if missing:
        raise InputError(
            f"missing column(s) {missing} of the exported review file",
            file=str(path),
            column=missing[0],
        )

    numeric = {
        "review_id": pl.Int64,
        "stratum": pl.Int64,
        "stratum_pairs": pl.Int64,
        "stratum_sample": pl.Int64,
        "record_id_l": pl.Int64,
        "record_id_r": pl.Int64,
        "band_lower": pl.Float64,
        "band_upper": pl.Float64,
        "threshold": pl.Float64,
        "match_probability": pl.Float64,
    }
    if raw.height == 0:
        raise InputError("the review file has no rows", file=str(path))
    df = raw.with_row_index("_row", offset=1)
    for col, dtype in numeric.items():
        cast = df[col].str.strip_chars().cast(dtype, strict=False)
        bad = cast.is_null()
        if bad.any():
            row = int(df["_row"].filter(bad)[0])
            raise InputError(
                f"expected a number, got {df[col][row - 1]!r}", file=str(path), row=row, column=col
            )
        df = df.with_columns(cast.alias(col))

    label = df["label"].str.strip_chars().str.to_lowercase()
    label = pl.when(label == "").then(None).otherwise(label)
    df = df.with_columns(label=pl.select(label).to_series())
    unknown = df.filter(pl.col("label").is_not_null() & ~pl.col("label").is_in(list(LABELS)))
    if unknown.height:
        row = unknown.row(0, named=True)
        raise InputError(
            f"unknown label {raw['label'][row['_row'] - 1]!r}; use one of {', '.join(LABELS)}",
            file=str(path),
            row=row["_row"],
            column="label",
        )
    if not allow_unlabelled:
        empty = df.filter(pl.col("label").is_null())
        if empty.height:
            raise InputError(
                f"{empty.height} pair(s) without a label (review_id {empty['review_id'][0]} first)",
                file=str(path),
                row=int(empty["_row"][0]),
                column="label",
            )

    dup = df.filter(pl.col("review_id").is_duplicated())
    if dup.height:
        raise InputError(
            f"review_id {dup['review_id'][0]} appears more than once",
            file=str(path),
            row=int(dup["_row"][0]),
            column="review_id",
        )
    per_stratum = df.group_by("stratum").agg(
        pl.max_horizontal(
            pl.col(c).n_unique()
            for c in ("stratum_pairs", "stratum_sample", "band_lower", "band_upper")
        ).alias("k"),
        pl.col("stratum_sample").first(),
        pl.len().alias("rows"),
    )
    if (per_stratum["k"] > 1).any() or df["threshold"].n_unique() != 1:
        raise InputError(
            "the stratum design columns were edited; export the sample again",
            file=str(path),
            column="stratum",
        )
    expected = int(per_stratum["stratum_sample"].sum())
    ids = df["review_id"].to_numpy()
    gone = np.setdiff1d(np.arange(1, max(expected, int(ids.max())) + 1), ids)
    if gone.size or (per_stratum["rows"] != per_stratum["stratum_sample"]).any():
        raise InputError(
            f"the file has {df.height} of the {expected} exported pairs; "
            f"missing review_id {gone[:5].tolist()}",
            file=str(path),
            column="review_id",
        )
    return df.drop("_row")


# ------------------------------------------------------------------------------ estimates
def wilson_interval(successes: float, n: float, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (n may be an effective size)."""
    if n <= 0:
        return (float("nan"), float("nan"))
    z = float(stats.norm.ppf(0.5 + level / 2))
    phat = successes / n
    den = 1 + z * z / n
    centre = (phat + z * z / (2 * n)) / den
    half = z * math.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n)) / den
    return (float(max(0.0, centre - half)), float(min(1.0, centre + half)))


def _design_interval(
    estimate: float, variance: float, n_labelled: int, level: float
) -> tuple[float, float]:
    """Wilson interval at the Kish effective sample size p(1−p)/Var (n when Var is 0)."""
    if math.isnan(estimate):
        return (float("nan"), float("nan"))
    if variance > 0 and 0 < estimate < 1:
        n_eff = estimate * (1 - estimate) / variance
    else:
        n_eff = float(n_labelled)
    return wilson_interval(estimate * n_eff, n_eff, level)


@dataclass(frozen=True)
class ReviewEstimate:
    """Error rates estimated from a labelled review sample (design-weighted).

    ``precision``: share of true matches among candidate pairs at or above the
    threshold; ``false_link_rate`` = 1 − precision. ``missed_link_rate``: share of the
    true matches among candidate pairs that fall below the threshold (1 − recall).
    Pairs that blocking never generated are not covered. ``unsure`` labels are left out
    of both numerator and denominator of their stratum.
    """

    threshold: float
    n_labelled: int
    n_unsure: int
    precision: float
    precision_ci: tuple[float, float]
    false_link_rate: float
    false_link_rate_ci: tuple[float, float]
    missed_link_rate: float
    missed_link_rate_ci: tuple[float, float]
    estimated_links: float
    estimated_false_links: float
    estimated_missed_links: float
    level: float
    strata: pl.DataFrame = field(repr=False, compare=False)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["strata"] = self.strata.to_dicts()
        return out


def estimate_error_rates(labels: pl.DataFrame, *, level: float = 0.95) -> ReviewEstimate:
    """Stratified estimates of precision, false-link and missed-link rates from labels.

    In stratum h with N_h pairs and n_h decided labels of which x_h are matches the
    match rate is x_h/n_h, so the stratum holds N_h·x_h/n_h matches. The variance of a
    band's rate uses the add-half rate (x_h+½)/(n_h+1), so a band whose sample is all
    matches or all non-matches is not taken as certain, and the finite-population
    correction; intervals are Wilson at the Kish effective sample size. The missed-link
    rate is dominated by the large low-probability band: review enough pairs there.
    """
    threshold = float(labels["threshold"][0])
    strata = (
        labels.group_by("stratum")
        .agg(
            pl.col("band_lower").first(),
            pl.col("band_upper").first(),
            pl.col("stratum_pairs").first().alias("pairs"),
            pl.len().alias("sampled"),
            (pl.col("label") == "match").sum().alias("match"),
            (pl.col("label") == "non-match").sum().alias("non_match"),
            (pl.col("label") == "unsure").sum().alias("unsure"),
            pl.col("match_probability").mean().alias("mean_probability"),
        )
        .sort("stratum")
        .with_columns(decided=pl.col("match") + pl.col("non_match"))
        .with_columns(
            match_rate=pl.when(pl.col("decided") > 0).then(pl.col("match") / pl.col("decided")),
            above=pl.col("band_lower") >= threshold - 1e-12,
        )
    )
    n = strata["decided"].to_numpy().astype(float)
    big_n = strata["pairs"].to_numpy().astype(float)
    rate = strata["match_rate"].fill_null(np.nan).to_numpy()
    if np.isnan(rate).any():
        empty = strata.filter(pl.col("match_rate").is_null())["stratum"].to_list()
        raise InputError(f"no decided (match/non-match) label in stratum {empty}", column="label")
    fpc = np.where(big_n > 1, (big_n - n) / np.maximum(big_n - 1, 1), 0.0)
    # add-half rate in the variance only, so that a band with no (or only) matches in its
    # sample still carries the uncertainty of having seen none
    smooth = (strata["match"].to_numpy() + 0.5) / (n + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        var_rate = np.where(n > 0, smooth * (1 - smooth) / np.maximum(n, 1), 0.0) * fpc
    matches = big_n * rate
    var_matches = big_n**2 * var_rate
    above = strata["above"].to_numpy()
    lo_ci = [wilson_interval(x, d, level) for x, d in zip(strata["match"], n, strict=True)]
    strata = strata.with_columns(
        match_rate_lower=pl.Series([c[0] for c in lo_ci]),
        match_rate_upper=pl.Series([c[1] for c in lo_ci]),
        estimated_matches=pl.Series(matches),
    ).drop("decided")

    n_acc = big_n[above].sum()
    tp_above = matches[above].sum()
    var_above = var_matches[above].sum()
    m_below = matches[~above].sum()
    var_below = var_matches[~above].sum()
    n_above_labelled = int(n[above].sum())

    precision = tp_above / n_acc if n_acc else float("nan")
    var_precision = var_above / n_acc**2 if n_acc else float("nan")
    precision_ci = _design_interval(precision, var_precision, n_above_labelled, level)
    total = tp_above + m_below
    missed = m_below / total if total else float("nan")
    var_missed = (
        (tp_above**2 * var_below + m_below**2 * var_above) / total**4 if total else float("nan")
    )
    missed_ci = _design_interval(missed, var_missed, int(n.sum()), level)
    return ReviewEstimate(
        threshold=threshold,
        n_labelled=int(n.sum()),
        n_unsure=int(strata["unsure"].sum()),
        precision=float(precision),
        precision_ci=precision_ci,
        false_link_rate=float(1 - precision),
        false_link_rate_ci=(float(1 - precision_ci[1]), float(1 - precision_ci[0])),
        missed_link_rate=float(missed),
        missed_link_rate_ci=missed_ci,
        estimated_links=float(n_acc),
        estimated_false_links=float(n_acc - tp_above),
        estimated_missed_links=float(m_below),
        level=level,
        strata=strata,
    )


def review_error_rates(
    path: str | os.PathLike, *, allow_unlabelled: bool = False, level: float = 0.95
) -> ReviewEstimate:
    """Read a labelled review file and estimate the linkage error rates from it."""
    return estimate_error_rates(
        read_review_labels(path, allow_unlabelled=allow_unlabelled), level=level
    )
