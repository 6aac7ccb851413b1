"""The artifacts of a Spark linkage run: those of :func:`recapture.linkage.write_linkage`.

``pairs.parquet`` is written by the executors as a Parquet *dataset folder* (one file per
partition, sorted by record ids across the files) with the columns and types of the local
file; :func:`recapture.io.read_table`, ``polars.read_parquet`` and ``pandas.read_parquet``
read the folder as one table. It is written beside its final place and renamed into it,
so a failed write leaves the previous artifact. Hadoop's ``_SUCCESS`` marker and ``.crc``
checksum files are removed from a local folder (polars refuses a folder of mixed files).
clusters.parquet, linkage_model.json and linkage_metrics.json are small and written by
the driver through :data:`recapture.io.ARTIFACTS`, as locally.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl
from pyspark.sql import DataFrame

from recapture.io import ARTIFACTS, temporary_folder
from recapture.linkage.engine import LinkageResult
from recapture.schemas import ClusterSchema, PairsSchema, validate

#: Rows of pairs.parquet checked against its schema on the driver before writing.
SCHEMA_SAMPLE_ROWS = 1000


def pairs_columns(result: LinkageResult) -> list[str]:
    """pairs.parquet's columns in the local engine's order."""
    gammas = [f"gamma_{c.name}" for c in result.settings.comparisons]
    return [
        "record_id_l",
        "record_id_r",
        "blocking_rule",
        *gammas,
        "names_swapped",
        "match_weight",
        "match_probability",
        "linked",
    ]


def write_pairs_dataset(pairs: DataFrame, path: str | Path) -> Path:
    """Write ``pairs`` as a Parquet dataset folder at ``path`` (replacing what is there)."""
    path = Path(path).absolute()
    tmp = temporary_folder(path)
    if tmp.exists():
        shutil.rmtree(tmp)
    pairs.orderBy("record_id_l", "record_id_r").write.option("compression", "zstd").parquet(
        tmp.as_uri()
    )
    for junk in [*tmp.glob(".*.crc"), *tmp.glob("_SUCCESS")]:
        junk.unlink()
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()
    tmp.rename(path)
    return path


def write_linkage_spark(
    result: LinkageResult, out_dir: str | Path, *, run_id: str | None = None
) -> dict[str, Path]:
    """Write pairs.parquet (a dataset folder), clusters.parquet, linkage_model.json and
    linkage_metrics.json; the same names, columns and types as the local engine's."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pairs = result.pairs.select(*pairs_columns(result))
    validate(pl.from_arrow(pairs.limit(SCHEMA_SAMPLE_ROWS).toArrow()), PairsSchema)
    validate(result.clusters, ClusterSchema)
    paths = {"pairs": write_pairs_dataset(pairs, ARTIFACTS["pairs"].path(out))}
    for name, data in (
        ("clusters", result.clusters),
        ("linkage_model", result.model_dict()),
        ("linkage_metrics", result.metrics),
    ):
        paths[name] = ARTIFACTS[name].write(data, out, run_id=run_id)
    return paths
