"""The artifact registry and the one table reader."""

from __future__ import annotations

import json
import os

import polars as pl
import pytest

from recapture.errors import InputError
from recapture.io import (
    ARTIFACTS,
    artifact_path,
    read_table,
    to_json_text,
    world_path,
    write_json,
)


def test_registry_names_every_run_file_once():
    files = [a.file for a in ARTIFACTS.values()]
    assert len(files) == len(set(files))
    for artifact in ARTIFACTS.values():
        if artifact.kind == "parquet":
            assert artifact.schema is not None and artifact.schema_version
    assert artifact_path("run", "persons").as_posix() == "run/persons.parquet"
    assert world_path("w", "truth_records").as_posix() == "w/truth/records.parquet"


def test_registry_round_trips_parquet_and_json(tmp_path):
    frame = pl.DataFrame({"a": [1, 2]})
    path = ARTIFACTS["pairs"].write(frame, tmp_path, run_id="r1")
    assert path == tmp_path / "pairs.parquet"
    assert ARTIFACTS["pairs"].read(tmp_path).equals(frame)
    ARTIFACTS["estimates"].write([{"x": 1}], tmp_path)
    assert ARTIFACTS["estimates"].read(tmp_path) == [{"x": 1}]


def test_read_table_passes_frames_and_reads_files(tmp_path):
    frame = pl.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    assert read_table(frame) is frame
    assert read_table(frame.to_pandas()).equals(frame)
    frame.write_parquet(tmp_path / "t.parquet")
    frame.write_csv(tmp_path / "t.csv")
    assert read_table(tmp_path / "t.parquet").equals(frame)
    assert read_table(str(tmp_path / "t.csv")).equals(frame)


def test_read_table_reads_a_parquet_dataset_folder_as_one_table(tmp_path):
    """A folder of part files (as Spark writes pairs.parquet) is one table, in file-name
    order; Hadoop's marker and checksum files beside them are not read."""
    folder = tmp_path / "pairs.parquet"
    folder.mkdir()
    pl.DataFrame({"a": [3, 4], "b": ["z", "w"]}).write_parquet(folder / "part-00001.parquet")
    pl.DataFrame({"a": [1, 2], "b": ["x", "y"]}).write_parquet(folder / "part-00000.parquet")
    (folder / "_SUCCESS").write_text("")
    (folder / ".part-00000.parquet.crc").write_bytes(b"crc")
    out = read_table(folder)
    assert out.equals(pl.DataFrame({"a": [1, 2, 3, 4], "b": ["x", "y", "z", "w"]}))
    assert read_table(folder, columns=["b"]).columns == ["b"]
    with pytest.raises(InputError, match="over the limit") as exc:
        read_table(folder, max_bytes=1000)
    assert exc.value.file == str(folder)


@pytest.mark.parametrize("case", ["missing", "folder", "fifo", "too_big", "not_parquet", "type"])
def test_read_table_refuses_with_the_file_named(tmp_path, case):
    target = tmp_path / "t.parquet"
    limit = {}
    if case == "folder":
        target.mkdir()
    elif case == "fifo":
        os.mkfifo(target)
    elif case == "too_big":
        pl.DataFrame({"a": range(1000)}).write_parquet(target)
        limit = {"max_bytes": 100}
    elif case == "not_parquet":
        target.write_text("a,b\n1,2\n")
    with pytest.raises(InputError) as exc:
        read_table(42 if case == "type" else target, **limit)
    if case != "type":
        assert exc.value.file == str(target)


def test_json_is_strict_nan_becomes_null(tmp_path):
    data = {"x": float("nan"), "y": [float("inf"), 1.5], "z": {"w": -float("inf")}}
    assert json.loads(to_json_text(data)) == {"x": None, "y": [None, 1.5], "z": {"w": None}}
    write_json({"b": 1, "a": 2}, tmp_path / "s.json", sort_keys=True)
    assert list(json.loads((tmp_path / "s.json").read_text())) == ["a", "b"]
