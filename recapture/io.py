"""Reading and writing artifacts: atomic, with schema metadata.

Every artifact is written to a temporary file in the target directory and renamed into
place, so a crash leaves the previous artifact or none, never half of one. Parquet files
carry key-value metadata: the artifact name, its schema version and the run id, so a
reader can tell what a file is without our code.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

META_PREFIX = "recapture."


def atomic_write(path: str | os.PathLike, writer: Callable[[Path], None]) -> Path:
    """Call ``writer(tmp_path)`` and rename the result onto ``path`` atomically."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        writer(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the usual permissions
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete temporary files left by writes that were killed before their rename."""
    removed = []
    for path in Path(folder).rglob(".*.tmp"):
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def _to_arrow(table: Any) -> pa.Table:
    if isinstance(table, pa.Table):
        return table
    try:
        import polars as pl

        if isinstance(table, pl.DataFrame):
            return table.to_arrow()
    except ImportError:  # pragma: no cover
        pass
    import pandas as pd

    if isinstance(table, pd.DataFrame):
        return pa.Table.from_pandas(table, preserve_index=False)
    raise TypeError(f"cannot write {type(table).__name__} as Parquet")


def write_parquet(
    table: Any,
    path: str | os.PathLike,
    *,
    artifact: str,
    schema_version: str,
    run_id: str | None = None,
    extra_metadata: Mapping[str, str] | None = None,
) -> Path:
    """Write a polars/pandas/arrow table atomically with recapture metadata."""
    arrow = _to_arrow(table)
    meta = dict(arrow.schema.metadata or {})
    meta.pop(b"pandas", None)
    entries = {"artifact": artifact, "schema_version": schema_version}
    if run_id is not None:
        entries["run_id"] = run_id
    entries.update(extra_metadata or {})
    for key, value in entries.items():
        meta[(META_PREFIX + key).encode()] = str(value).encode()
    arrow = arrow.replace_schema_metadata(meta)
    return atomic_write(path, lambda tmp: pq.write_table(arrow, tmp, compression="zstd"))


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The recapture key-value metadata of a Parquet file (artifact, schema_version, run_id…)."""
    meta = pq.read_schema(path).metadata or {}
    out = {}
    for key, value in meta.items():
        k = key.decode()
        if k.startswith(META_PREFIX):
            out[k[len(META_PREFIX) :]] = value.decode()
    return out


def _json_default(obj: Any) -> Any:
    import datetime as dt

    import numpy as np

    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (dt.date, dt.datetime)):
        return obj.isoformat()
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def to_json_text(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False, default=_json_default, allow_nan=True)


def write_json(data: Any, path: str | os.PathLike) -> Path:
    """Write JSON atomically (numpy scalars, dates and paths are converted)."""
    text = to_json_text(data) + "\n"
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def read_json(path: str | os.PathLike) -> Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()
