"""The data of a single-source fit: validation and aggregation into a :class:`CountProblem`.

The likelihood of a truncated count regression depends on the data only through the
distinct (covariate pattern, offset, count) cells and their frequencies, so every input —
one row per person or pre-aggregated rows with frequency weights — is first reduced to
those cells. Design matrices are built on the distinct covariate patterns. This is what
makes a million-person fit and a thousand bootstrap refits cheap, and it makes individual
and aggregated input give the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

from recapture.errors import ConfigError, InputError
from recapture.estimators.count.families import CountFamily
from recapture.estimators.formula import check_names, parse_formula
from recapture.estimators.reading import read_frame

#: Largest plausible number of captures of one person in one period. Even a person
#: apprehended every day of a year has 366; a count in the thousands is a data error (an id,
#: a sum or a date read as a count). The fitted-frequency table, the expected information and
#: the parametric bootstrap grow with the largest count, so an absurd one (30 million, 1e15)
#: would cost minutes and gigabytes or crash: it is refused as an input error instead.
#: Raise it with ``max_count`` for sources that really count more often (e.g. daily visits
#: over several years).
DEFAULT_MAX_COUNT = 1_000

WEIGHT = "__weight__"
OFFSET = "__offset__"
COUNT = "__count__"


# ------------------------------------------------------------------------------ problem
@dataclass
class CountProblem:
    """The aggregated data and design of one fit (picklable: it travels to bootstrap workers)."""

    family: CountFamily
    X: list[np.ndarray]  # per predictor: patterns × q_j
    offset: np.ndarray  # per pattern, on the λ linear predictor
    pattern: np.ndarray  # per cell: pattern index
    y: np.ndarray  # per cell: count ≥ 1
    w: np.ndarray  # per cell: frequency
    names: list[str]
    predictor_of: list[str]
    patterns: pd.DataFrame  # per pattern: the variables (for strata and diagnostics)
    formula: str
    strata_columns: list[str] = field(default_factory=list)

    @property
    def n_patterns(self) -> int:
        return self.X[0].shape[0]

    @property
    def sizes(self) -> list[int]:
        return [x.shape[1] for x in self.X]

    def eta_patterns(self, beta: np.ndarray) -> np.ndarray:
        out = np.empty((self.n_patterns, len(self.X)))
        start = 0
        for j, x in enumerate(self.X):
            q = x.shape[1]
            out[:, j] = x @ beta[start : start + q]
            start += q
        out[:, 0] += self.offset
        return out

    def with_cells(self, pattern: np.ndarray, y: np.ndarray, w: np.ndarray) -> CountProblem:
        return CountProblem(
            family=self.family,
            X=self.X,
            offset=self.offset,
            pattern=pattern,
            y=y,
            w=w,
            names=self.names,
            predictor_of=self.predictor_of,
            patterns=self.patterns,
            formula=self.formula,
            strata_columns=self.strata_columns,
        )


def check_max_count(value: Any, key: str = "max_count") -> int:
    """``max_count`` must be a positive whole number."""
    try:
        out = int(value)
        whole = not isinstance(value, bool) and float(value) == out
    except (TypeError, ValueError, OverflowError):
        whole, out = False, 0
    if not whole or out < 1:
        raise ConfigError(f"max_count must be a positive integer, got {value!r}", key=key)
    return out


def required_variables(formula: str, key: str = "formula") -> list[str]:
    """The columns a formula names (parsed by the closed grammar, never evaluated)."""
    return sorted(parse_formula(formula, key).variables)


def check_counts(
    frame: pl.DataFrame, count: str, weights: str | None, max_count: int = DEFAULT_MAX_COUNT
) -> pl.DataFrame:
    """Counts must be non-negative integers up to ``max_count`` and weights finite and ≥ 0;
    anything else is an :class:`InputError` naming the column and the first bad row. Every
    fit of a count model (plain or EM) goes through here, so counts never size arrays."""
    frame = frame.with_row_index("__row__", offset=1)
    y = frame[count]
    if not y.dtype.is_numeric():
        raise InputError("counts must be numeric", column=count)
    bad = frame.filter(y.is_null() | (y < 0) | (y.cast(pl.Float64) != y.cast(pl.Float64).round(0)))
    if bad.height:
        raise InputError(
            f"count must be a non-negative integer (found {bad[count][0]!r})",
            row=int(bad["__row__"][0]),
            column=count,
        )
    too_big = frame.filter(y > max_count)
    if too_big.height:
        raise InputError(
            f"implausible count {too_big[count][0]!r}: more than max_count = {max_count:,} "
            f"captures in the period ({too_big.height:,} such row"
            f"{'s' if too_big.height > 1 else ''}); a data error, or raise max_count",
            row=int(too_big["__row__"][0]),
            column=count,
        )
    if weights:
        wcol = frame[weights]
        if not wcol.dtype.is_numeric():
            raise InputError("weights must be numeric", column=weights)
        bad = frame.filter(wcol.is_null() | ~wcol.cast(pl.Float64).is_finite() | (wcol < 0))
        if bad.height:
            raise InputError(
                "weights must be finite and ≥ 0", row=int(bad["__row__"][0]), column=weights
            )
    return frame.drop("__row__")


def prepare(
    data: Any,
    *,
    family: CountFamily,
    formula: str,
    count: str,
    weights: str | None,
    offset: str | None,
    reference: dict[str, str] | None,
    extra_formulas: dict[str, str] | None = None,
    strata: list[str] | None = None,
    max_count: int = DEFAULT_MAX_COUNT,
) -> tuple[CountProblem, dict[str, Any]]:
    """Validate and aggregate the input into a :class:`CountProblem`.

    Rows with count 0 are not observed by this source (persons.parquet holds every person
    of every source) and are left out, and counted in the returned notes. Anything else
    wrong — a missing column, a negative or fractional count, a null covariate, a bad
    weight — is an :class:`InputError` naming the column and the first offending row.
    """
    frame = read_frame(data)
    formulas = {
        name: parse_formula(f, "formula" if name == "lambda" else f"{name}_formula")
        for name, f in {"lambda": formula, **(extra_formulas or {})}.items()
    }
    variables: list[str] = []
    for f in formulas.values():
        for v in sorted(f.variables):
            if v not in variables:
                variables.append(v)
    strata = check_names(strata, "strata") if strata is not None else None
    for col in [count, *(c for c in [weights, offset] if c), *variables, *(strata or [])]:
        if col not in frame.columns:
            raise InputError(f"column not found (columns: {', '.join(frame.columns)})", column=col)
    for var in reference or {}:
        if var not in variables:
            raise ConfigError(
                f"reference level given for {var!r}, which is not in the formula", key="reference"
            )

    frame = check_counts(frame, count, weights, max_count).with_row_index("__row__", offset=1)
    if offset:
        ocol = frame[offset]
        if not ocol.dtype.is_numeric():
            raise InputError(
                "offset must be numeric (on the log scale, e.g. log days at risk)", column=offset
            )
        bad = frame.filter(ocol.is_null() | ~ocol.cast(pl.Float64).is_finite())
        if bad.height:
            raise InputError(
                "offset must be finite (log of a positive exposure)",
                row=int(bad["__row__"][0]),
                column=offset,
            )
    for var in [*variables, *(strata or [])]:
        nulls = frame.filter(frame[var].is_null())
        if nulls.height:
            raise InputError(
                "missing covariate value (recode missing values as an explicit level, e.g. 'unknown')",
                row=int(nulls["__row__"][0]),
                column=var,
            )

    zero_rows = int(frame.filter(pl.col(count) == 0).height)
    frame = frame.filter(pl.col(count) > 0)
    if weights:
        frame = frame.filter(pl.col(weights) > 0)
    if frame.height == 0:
        raise InputError("no persons with a count ≥ 1", column=count)

    keys = list(dict.fromkeys([*variables, *(strata or [])]))
    pattern_keys = [*keys, OFFSET]
    # one pass: distinct covariate patterns (in order of first appearance, so the result
    # is reproducible) with the counts and weights of their persons as lists
    patterns = (
        frame.select(
            *[pl.col(k) for k in keys],
            (pl.col(offset).cast(pl.Float64) if offset else pl.lit(0.0)).alias(OFFSET),
            pl.col(count).cast(pl.Int64).alias(COUNT),
            (pl.col(weights).cast(pl.Float64) if weights else pl.lit(1.0)).alias(WEIGHT),
        )
        .group_by(pattern_keys, maintain_order=True)
        .agg(pl.col(COUNT), pl.col(WEIGHT))
    )
    lengths = patterns[COUNT].list.len().to_numpy()
    row_pattern = np.repeat(np.arange(patterns.height, dtype=np.int64), lengths)
    row_y = patterns[COUNT].explode().to_numpy().astype(np.int64)
    row_w = patterns[WEIGHT].explode().to_numpy().astype(float)
    y_span = int(row_y.max()) + 1
    cell_key, cell_of_row = np.unique(row_pattern * y_span + row_y, return_inverse=True)
    cell_w = np.bincount(cell_of_row, weights=row_w, minlength=len(cell_key))
    patterns = patterns.drop(COUNT, WEIGHT).with_row_index("__pattern__")

    pdf = patterns.drop("__pattern__").to_pandas()
    for var, level in (reference or {}).items():
        values = pdf[var]
        levels = (
            sorted(values.astype(str).unique())
            if values.dtype == object
            else sorted(values.unique())
        )
        if str(level) not in [str(v) for v in levels]:
            raise ConfigError(
                f"reference level {level!r} not found in {var!r} (levels: {', '.join(map(str, levels))})",
                key="reference",
            )
        match = [v for v in levels if str(v) == str(level)][0]
        pdf[var] = pd.Categorical(values, categories=[match] + [v for v in levels if v != match])

    X, names, predictor_of = [], [], []
    for predictor, f in formulas.items():
        # only the canonical text of the validated formula reaches formulaic, and every
        # name in it has been checked to be a column above
        mat, cols = _design(f.text, pdf)
        X.append(mat)
        prefix = "" if predictor == "lambda" else f"{predictor}:"
        names.extend(prefix + c for c in cols)
        predictor_of.extend([predictor] * len(cols))

    if strata is None:
        strata = [v for v in variables if not patterns.schema[v].is_numeric()]
    problem = CountProblem(
        family=family,
        X=X,
        offset=patterns[OFFSET].to_numpy().astype(float),
        pattern=(cell_key // y_span).astype(np.int64),
        y=(cell_key % y_span).astype(float),
        w=cell_w,
        names=names,
        predictor_of=predictor_of,
        patterns=pdf,
        formula=formula,
        strata_columns=strata,
    )
    notes = {
        "rows_with_zero_count_excluded": zero_rows,
        "n_cells": len(cell_key),
        "n_patterns": int(patterns.height),
    }
    return problem, notes


def _design(formula: str, frame: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    from formulaic import model_matrix

    try:
        mm = model_matrix(formula, frame, na_action="raise", output="numpy")
    except Exception as exc:
        raise ConfigError(
            f"cannot build the design matrix for {formula!r}: {exc}", key="formula"
        ) from exc
    mat = np.ascontiguousarray(np.asarray(mm, dtype=float))
    if mat.ndim == 1:
        mat = mat[:, None]
    if mat.shape[1] == 0:
        raise ConfigError(
            f"formula {formula!r} has no terms (use '~ 1' for intercept only)", key="formula"
        )
    return mat, [str(c) for c in mm.model_spec.column_names]
