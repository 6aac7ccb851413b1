"""The one table reader of the estimators.

Frames pass through (polars as is, a LazyFrame collected, pandas converted); a path names a
regular Parquet or CSV file (``.csv``/``.txt`` read as CSV, anything else as Parquet). A
missing path, a directory or a device, or a file that cannot be parsed is an
:class:`~recapture.errors.InputError` naming the file — never a traceback from the reader.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from recapture.errors import InputError

__all__ = ["read_frame"]


def read_frame(data: Any) -> pl.DataFrame:
    """``data`` as a polars DataFrame (see the module docstring for what is accepted)."""
    if isinstance(data, pl.DataFrame):
        return data
    if isinstance(data, pl.LazyFrame):
        return data.collect()
    if isinstance(data, str | Path):
        path = Path(data)
        if not path.exists():
            raise InputError("file not found", file=str(path))
        if not path.is_file():
            raise InputError("not a regular file (expected a Parquet or CSV table)", file=str(path))
        try:
            if path.suffix.lower() in (".csv", ".txt"):
                return pl.read_csv(path)
            return pl.read_parquet(path)
        except Exception as exc:  # any parser failure is the file's fault, said in one line
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InputError(f"cannot read the table ({reason})", file=str(path)) from None
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover
        pd = None
    if pd is not None and isinstance(data, pd.DataFrame):
        return pl.from_pandas(data)
    raise InputError(
        f"expected a polars or pandas DataFrame or a path to a table, got {type(data).__name__}"
    )
