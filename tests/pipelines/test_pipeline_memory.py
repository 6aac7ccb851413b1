"""Per-stage peak memory in the manifest: each stage's own peak, not the process's so far."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from recapture.pipelines.stages import Manifest, PeakMemory, Stage, run_stages

MIB = 2**20


def _hold(mib: int) -> dict:
    block = np.ones(mib * MIB // 8)  # ones, so every page is touched and resident
    return {"sum": float(block[:10].sum())}


def test_a_stage_after_a_hungry_one_reports_its_own_peak(tmp_path):
    stages = [
        Stage("hungry", [], lambda: _hold(300)),
        Stage("light", [], lambda: {"n": 1}),
    ]
    data = run_stages(stages, Manifest(tmp_path, {}, seed=1))
    hungry, light = data["stages"]["hungry"], data["stages"]["light"]
    assert hungry["peak_rss_mib"] - hungry["rss_start_mib"] > 250
    # ru_maxrss would give the light stage the hungry stage's peak
    assert light["peak_rss_mib"] < hungry["peak_rss_mib"] - 250
    assert light["rss_start_mib"] <= light["peak_rss_mib"]


def test_memory_of_worker_processes_counts():
    script = "import numpy, time; b = numpy.ones(200 * 2**20 // 8); time.sleep(2.5)"
    with PeakMemory() as memory:
        subprocess.run([sys.executable, "-c", script], check=True)
    assert memory.peak_mib - memory.start_mib > 180
