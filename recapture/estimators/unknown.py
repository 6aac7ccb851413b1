"""What "unknown" means in a covariate column of persons.parquet.

A person's covariate is unknown when every one of their registrations left it empty; the
persons stage writes that as null or as the level ``unknown``. Every rule for unknown values
(:data:`recapture.estimators.covariates.MISSING_RULES`) and the EM of
:mod:`recapture.estimators.missing` recognise it by these expressions only.
"""

from __future__ import annotations

from collections.abc import Iterable

import polars as pl

#: Values that mean "unknown" in persons.parquet covariates.
UNKNOWN_VALUES = ("unknown", "Unknown")

_TEXT = (pl.String, pl.Categorical, pl.Enum)


def unknown_expr(column: str, dtype: pl.DataType | None = None) -> pl.Expr:
    """True where ``column`` is unknown: null, or an unknown level in a text column (a
    numeric column, when its ``dtype`` is given, is unknown only where null)."""
    expr = pl.col(column).is_null()
    if dtype is None or any(dtype == text for text in _TEXT):
        expr = expr | pl.col(column).cast(pl.String).is_in(list(UNKNOWN_VALUES))
    return expr


def is_unknown(columns: Iterable[str]) -> pl.Expr:
    """True where any of ``columns`` is unknown."""
    expr = pl.lit(False)
    for column in columns:
        expr = expr | unknown_expr(column)
    return expr
