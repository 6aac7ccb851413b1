"""Fixtures shared across the test folders (one folder per package of recapture)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from recapture.synthetic import SimulationConfig, run_simulation

#: Reference data sets (with their attribution in data/README.md).
DATA = Path(__file__).parent / "data"


def pipeline_toml(rest: str, *, seed: int) -> str:
    """A pipeline.toml for a :func:`make_project` folder: run dir ``run``, the world's police
    and IOM extracts, the period 2017/18, then ``rest`` (persons, estimators, reports).
    Import it with ``from conftest import pipeline_toml`` (pytest puts tests/ on sys.path)."""
    header = f"""
[run]
dir = "run"
seed = {seed}
as_of = "2019-01-01"

[[sources]]
path = "world/police.csv"
definition = "police"

[[sources]]
path = "world/iom.csv"
definition = "iom"

[[periods]]
start = 2017-07-01
end = 2018-06-30
label = "2017/18"
"""
    return header + "\n" + rest.lstrip("\n")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


@pytest.fixture(scope="session")
def simulated_world(tmp_path_factory) -> Callable[[int, int], Path]:
    """``simulated_world(size, seed)``: the folder of a simulated world's extracts and truth,
    simulated once per session for each (size, seed)."""
    made: dict[tuple[int, int], Path] = {}

    def make(size: int, seed: int) -> Path:
        if (size, seed) not in made:
            base = tmp_path_factory.mktemp(f"world-{size}-{seed}")
            run_simulation(SimulationConfig(size=size, seed=seed), base / "world")
            made[size, seed] = base / "world"
        return made[size, seed]

    return make


@pytest.fixture()
def make_project(tmp_path: Path) -> Callable[[Path, str], Path]:
    """``make_project(world, pipeline_toml)``: a fresh folder holding a copy of the world's
    extracts in ``world/`` (tests may change them) and ``pipeline.toml``."""

    def make(world: Path, pipeline: str) -> Path:
        (tmp_path / "world").mkdir()
        for name in ("police.csv", "iom.csv"):
            (tmp_path / "world" / name).write_bytes((world / name).read_bytes())
        (tmp_path / "pipeline.toml").write_text(pipeline, encoding="utf-8")
        return tmp_path

    return make
