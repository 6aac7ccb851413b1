"""Reading and writing artifacts: atomic, with schema metadata, from one registry.

:data:`ARTIFACTS` names every file a run writes (its file name, pandera schema, schema
version, and how it is read and written), so no stage, report or command spells a file
name of its own. :func:`read_table` is the one reader of a user-supplied table. Every
artifact is written to a temporary file in the target directory and renamed into
place, so a crash leaves the previous artifact or none, never half of one. Parquet files
carry key-value metadata: the artifact name, its schema version and the run id, so a
reader can tell what a file is without our code.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from recapture.errors import InputError

META_PREFIX = "recapture."
#: Largest table :func:`read_table` reads from a path (override with ``max_bytes``).
MAX_TABLE_BYTES = 8 * 2**30


@dataclass(frozen=True)
class Artifact:
    """One file of a run: what it is called, what it holds and how it is read and written."""

    name: str
    file: str
    kind: str  # "parquet", "json" or "html"
    stage: str
    #: Name of its pandera model in :mod:`recapture.schemas` (Parquet artifacts only).
    schema_name: str | None = None
    #: JSON written with sorted keys (where the key order would come from the data).
    sort_keys: bool = False

    @property
    def schema(self):
        """The pandera model that validates this artifact (None for JSON and HTML)."""
        if self.schema_name is None:
            return None
        from recapture import schemas

        return getattr(schemas, self.schema_name)

    @property
    def schema_version(self) -> str | None:
        from recapture.schemas import SCHEMA_VERSIONS

        return SCHEMA_VERSIONS.get(self.name)

    def path(self, run_dir: str | os.PathLike) -> Path:
        return Path(run_dir) / self.file

    def write(
        self,
        data: Any,
        run_dir: str | os.PathLike,
        *,
        run_id: str | None = None,
        extra_metadata: Mapping[str, str] | None = None,
    ) -> Path:
        """Write ``data`` as this artifact into ``run_dir`` (atomically, with metadata)."""
        if self.kind == "parquet":
            return write_parquet(
                data,
                self.path(run_dir),
                artifact=self.name,
                schema_version=self.schema_version or "1",
                run_id=run_id,
                extra_metadata=extra_metadata,
            )
        if self.kind == "json":
            return write_json(data, self.path(run_dir), sort_keys=self.sort_keys)
        if self.kind == "csv":
            return atomic_write(self.path(run_dir), lambda tmp: data.write_csv(tmp))
        raise TypeError(f"{self.name} is written by its own stage, not by the registry")

    def read(self, run_dir: str | os.PathLike, **options: Any) -> Any:
        """Read this artifact from ``run_dir``: a polars frame (Parquet, CSV) or parsed JSON."""
        path = self.path(run_dir)
        if self.kind in ("parquet", "csv"):
            return read_table(path, **options)
        if self.kind == "json":
            if not path.is_file():
                raise InputError(f"{self.file} not found", file=str(path))
            return read_json(path)
        raise TypeError(f"{self.name} is a report, not data")


ARTIFACTS: dict[str, Artifact] = {
    a.name: a
    for a in (
        Artifact("records", "records.parquet", "parquet", "validate", "RecordSchema"),
        Artifact("quarantine", "quarantine.parquet", "parquet", "validate", "QuarantineSchema"),
        Artifact("validation_summary", "validation_summary.json", "json", "validate"),
        Artifact("pairs", "pairs.parquet", "parquet", "link", "PairsSchema"),
        Artifact("clusters", "clusters.parquet", "parquet", "link", "ClusterSchema"),
        Artifact("linkage_model", "linkage_model.json", "json", "link"),
        Artifact("linkage_metrics", "linkage_metrics.json", "json", "link"),
        Artifact("persons", "persons.parquet", "parquet", "persons", "PersonSchema"),
        Artifact("persons_summary", "persons_summary.json", "json", "persons", sort_keys=True),
        Artifact("estimates", "estimates.json", "json", "estimate"),
        Artifact("validation_report", "reports/validation.html", "html", "report"),
        Artifact("linkage_report", "reports/linkage.html", "html", "report"),
        Artifact("explorer_report", "reports/explorer.html", "html", "report"),
        Artifact("estimates_report", "reports/estimates.html", "html", "report"),
        Artifact("manifest", "manifest.json", "json", "run"),
        Artifact("review_sample", "review_sample.csv", "csv", "review"),
        # filled in by a clerical reviewer (here or in review/); read by the linkage report
        Artifact("review_labels", "review_labels.csv", "csv", "review"),
    )
}


#: Files of a simulated world (``recapture simulate``): name → path inside its folder.
WORLD_FILES: dict[str, str] = {
    "police": "police.csv",
    "iom": "iom.csv",
    "truth_people": "truth/people.parquet",
    "truth_records": "truth/records.parquet",
    "manifest": "manifest.json",
}


def world_path(world_dir: str | os.PathLike, name: str) -> Path:
    """Where file ``name`` (a key of :data:`WORLD_FILES`) of a simulated world lives."""
    return Path(world_dir) / WORLD_FILES[name]


#: Folder of a run directory where a reviewer may keep review files (review_labels.csv).
REVIEW_FOLDER = "review"


def artifact_path(run_dir: str | os.PathLike, name: str) -> Path:
    """Where artifact ``name`` (a key of :data:`ARTIFACTS`) lives in ``run_dir``."""
    return ARTIFACTS[name].path(run_dir)


def check_regular_file(source: str | os.PathLike, *, max_bytes: int = MAX_TABLE_BYTES) -> Path:
    """``source`` as a Path if it is a regular file of at most ``max_bytes``; a missing file,
    a folder, a FIFO or device (which would block or never end) or a huge file is an
    :class:`~recapture.errors.InputError` naming the file, before anything is read."""
    path = Path(source)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise InputError("file not found", file=str(path)) from None
    except OSError as exc:
        raise InputError(f"cannot open: {exc.strerror}", file=str(path)) from None
    if not stat.S_ISREG(info.st_mode):
        raise InputError("not a regular file", file=str(path))
    if info.st_size > max_bytes:
        raise InputError(
            f"file is {info.st_size:,} bytes, over the limit of {max_bytes:,}", file=str(path)
        )
    return path


def read_table(source: Any, *, max_bytes: int = MAX_TABLE_BYTES, columns: list[str] | None = None):
    """The one table reader: a polars/pandas frame passes through (as polars), a path to
    a Parquet or CSV regular file is read, and so is a Parquet dataset folder (the
    ``*.parquet`` files directly in it, in name order, as one table: what Spark writes).
    Anything else -- a missing file, a folder without Parquet files, a FIFO or device, a
    file over ``max_bytes``, unreadable content -- is an
    :class:`~recapture.errors.InputError` naming the file."""
    import polars as pl

    if isinstance(source, pl.DataFrame):
        return source.select(columns) if columns else source
    if isinstance(source, pl.LazyFrame):
        return (source.select(columns) if columns else source).collect()
    if not isinstance(source, str | os.PathLike):
        try:
            import pandas as pd
        except ImportError:  # pragma: no cover
            pd = None
        if pd is not None and isinstance(source, pd.DataFrame):
            frame = pl.from_pandas(source)
            return frame.select(columns) if columns else frame
        raise InputError(f"expected a table or a path to one, got {type(source).__name__}")
    if Path(source).is_dir():
        return _read_parquet_dataset(Path(source), max_bytes=max_bytes, columns=columns)
    path = check_regular_file(source, max_bytes=max_bytes)
    with open(path, "rb") as handle:
        parquet = handle.read(4) == b"PAR1"
    try:
        if parquet:
            return pl.read_parquet(path, columns=columns)
        if path.suffix.lower() == ".parquet":
            raise InputError("not a Parquet file (no PAR1 header)", file=str(path))
        frame = pl.read_csv(path, infer_schema_length=10_000)
        return frame.select(columns) if columns else frame
    except (pl.exceptions.PolarsError, OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the table: {exc}", file=str(path)) from None


def _read_parquet_dataset(folder: Path, *, max_bytes: int, columns: list[str] | None):
    """The Parquet files of a dataset folder as one polars frame."""
    import polars as pl

    files = sorted(p for p in folder.glob("*.parquet") if not p.name.startswith((".", "_")))
    if not files:
        raise InputError(
            "not a regular file, nor a folder of Parquet files (*.parquet)", file=str(folder)
        )
    for file in files:
        check_regular_file(file, max_bytes=max_bytes)
    total = sum(f.stat().st_size for f in files)
    if total > max_bytes:
        raise InputError(
            f"dataset is {total:,} bytes, over the limit of {max_bytes:,}", file=str(folder)
        )
    try:
        return pl.read_parquet([str(f) for f in files], columns=columns)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise InputError(f"cannot read the Parquet dataset: {exc}", file=str(folder)) from None


#: Tag in the names of temporary files; a run sets its own (see :func:`temporary_tag`)
#: and records it, so the next run removes exactly the temporaries that run left.
_TMP_TAG: ContextVar[str] = ContextVar("recapture_tmp_tag", default="recapture")
TMP_SUFFIX = ".tmp"


@contextmanager
def temporary_tag(tag: str) -> Iterator[None]:
    """Name the temporaries of writes in this block ``.<file>.<tag>.<random>.tmp``."""
    if not tag.isalnum():
        raise ValueError(f"temporary tag must be alphanumeric, got {tag!r}")
    token = _TMP_TAG.set(tag)
    try:
        yield
    finally:
        _TMP_TAG.reset(token)


def temporary_prefix(file_name: str, tag: str) -> str:
    """The name prefix of a temporary for ``file_name`` written under ``tag``."""
    return f".{file_name}.{tag}."


def temporary_folder(path: str | os.PathLike) -> Path:
    """Where a dataset folder for ``path`` is written before it is renamed onto ``path``
    (named like the temporaries :func:`remove_temporaries` removes after a killed run)."""
    path = Path(path)
    return path.with_name(f"{temporary_prefix(path.name, _TMP_TAG.get())}dataset{TMP_SUFFIX}")


def atomic_write(path: str | os.PathLike, writer: Callable[[Path], None]) -> Path:
    """Call ``writer(tmp_path)`` and rename the result onto ``path`` atomically."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=temporary_prefix(target.name, _TMP_TAG.get()), suffix=TMP_SUFFIX, dir=target.parent
    )
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


def remove_temporaries(
    folder: str | os.PathLike, file_names: Iterable[str], tag: str
) -> list[Path]:
    """Delete the temporaries a killed write under ``tag`` left for ``file_names`` in
    ``folder`` -- only those: not other files, not other tags (a temporary dataset folder,
    see :func:`temporary_folder`, goes with its contents)."""
    removed = []
    base = Path(folder)
    if not tag.isalnum() or not base.is_dir():
        return removed
    prefixes = tuple(temporary_prefix(name, tag) for name in file_names)
    for entry in os.scandir(base):
        if not (entry.name.startswith(prefixes) and entry.name.endswith(TMP_SUFFIX)):
            continue
        if entry.is_file(follow_symlinks=False):
            Path(entry.path).unlink(missing_ok=True)
            removed.append(Path(entry.path))
        elif entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(Path(entry.path))
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


def _finite(data: Any) -> Any:
    """``data`` with every NaN or infinity replaced by None (JSON has no such numbers)."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {k: _finite(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [_finite(v) for v in data]
    return data


def to_json_text(data: Any, *, sort_keys: bool = False) -> str:
    """Strict JSON: NaN and infinities become null, so any JSON parser reads the file."""
    plain = json.loads(json.dumps(data, default=_json_default, allow_nan=True))
    return json.dumps(
        _finite(plain), indent=2, ensure_ascii=False, allow_nan=False, sort_keys=sort_keys
    )


def write_json(data: Any, path: str | os.PathLike, *, sort_keys: bool = False) -> Path:
    """Write strict JSON atomically (numpy scalars, dates and paths are converted; NaN and
    infinities become null)."""
    text = to_json_text(data, sort_keys=sort_keys) + "\n"
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
