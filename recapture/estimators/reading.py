"""The estimators' entry to :func:`recapture.io.read_table`, the project's one table reader.

Frames pass through; a path names a regular Parquet or CSV file within the size limit; anything
else is an :class:`~recapture.errors.InputError` naming the file.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from recapture.io import read_table

__all__ = ["read_frame"]


def read_frame(data: Any) -> pl.DataFrame:
    """``data`` as a polars DataFrame, read by the I/O layer's one table reader."""
    return read_table(data)
