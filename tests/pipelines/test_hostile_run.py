"""A run owns its files: regression tests of the run-safety issue, one group per item.

2  temporaries: only this tool's, of its own artifact names, never recursively; a run
   directory with files it did not write is refused unless asked.
13 interrupted runs: workers die with their parent; the manifest records the stage; the
   CLI prints one line and exits 130.
14 one run per directory (a lock naming the holder); outputs an earlier run wrote and
   this one does not are removed.
16 seeds are validated naming the key; persons_summary.json is byte-identical on reruns.
Also: every JSON artifact is strict JSON; ``--until persons``; a failing estimator or
linkage-aware interval does not take the others down.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest
from conftest import pipeline_toml

from recapture.cli import main
from recapture.errors import ConfigError
from recapture.io import ARTIFACTS
from recapture.pipelines.run import run_pipeline
from recapture.pipelines.rundir import LOCK_FILE, RunDirectory, RunDirectoryError

REPO = Path(__file__).resolve().parents[2]

PIPELINE = pipeline_toml(
    """
[[estimators]]
name = "ztp"
model = "ztpoisson"
formula = "~ sex"
count = "n_police"

[[estimators]]
name = "dse"
model = "loglinear"
lists = ["police", "iom"]

[reports]
enabled = false
""",
    seed=11,
)


@pytest.fixture()
def project(simulated_world, make_project) -> Path:
    return make_project(simulated_world(1_500, 3), PIPELINE)


def _config(project: Path, text: str) -> Path:
    path = project / "pipeline.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _manifest(run: Path) -> dict:
    return json.loads((run / "manifest.json").read_text())


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


# ------------------------------------------------------------------- 2: temporaries
def test_only_this_tools_temporaries_are_removed(project: Path):
    run_pipeline(project / "pipeline.toml", until="persons")
    run = project / "run"
    tag = json.loads((run / LOCK_FILE).read_text())["temporary_tag"]
    ours = run / f".records.parquet.{tag}.x1y2.tmp"
    ours.write_bytes(b"half")
    users = [run / ".important.tmp", project / ".important.tmp", run / "sub" / ".notes.tmp"]
    other_tag = run / ".records.parquet.someoneelse.tmp"
    users[2].parent.mkdir()
    for path in [*users, other_tag]:
        path.write_text("keep me")

    run_pipeline(project / "pipeline.toml", until="persons", allow_other_files=True)
    assert not ours.exists()
    for path in [*users, other_tag]:
        assert path.read_text() == "keep me"


def test_a_directory_with_other_files_is_refused_unless_asked(project: Path, capsys):
    run = project / "run"
    run.mkdir()
    (run / "notes.txt").write_text("mine")
    with pytest.raises(RunDirectoryError, match=r"notes\.txt.*--allow-other-files"):
        run_pipeline(project / "pipeline.toml", until="validate")
    assert main(["--quiet", "run", str(project / "pipeline.toml"), "--until", "validate"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--allow-other-files" in err[0]
    assert not (run / "records.parquet").exists()

    run_pipeline(project / "pipeline.toml", until="validate", allow_other_files=True)
    assert (run / "notes.txt").read_text() == "mine"
    assert (run / "records.parquet").exists()


def test_run_dir_pointing_at_a_users_folder_is_refused(project: Path):
    config = _config(project, PIPELINE.replace('dir = "run"', 'dir = ".."'))
    with pytest.raises(RunDirectoryError, match="did not write"):
        run_pipeline(config)
    assert not (project.parent / "manifest.json").exists()


# ------------------------------------------------------------------- 13: interrupts
_ORPHANS = textwrap.dedent("""
    import multiprocessing, os, sys, time
    from recapture.workers import worker_pool

    def pid(_):
        time.sleep(0.2)
        return os.getpid()

    def sleep(_):
        time.sleep(600)

    if __name__ == "__main__":
        with worker_pool(2, mp_context=multiprocessing.get_context(sys.argv[1])) as pool:
            pids = sorted(set(pool.map(pid, range(4))))
            futures = [pool.submit(sleep, i) for i in range(2)]
            print(" ".join(map(str, pids)), flush=True)
            time.sleep(600)
""")


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _wait_gone(pids, seconds: float = 20.0) -> list[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.1)
    return [p for p in pids if _alive(p)]


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_workers_die_with_a_killed_parent(tmp_path: Path, context: str):
    script = tmp_path / "orphans.py"
    script.write_text(_ORPHANS)
    proc = subprocess.Popen(
        [sys.executable, str(script), context], stdout=subprocess.PIPE, env=_env(), cwd=tmp_path
    )
    try:
        pids = [int(p) for p in proc.stdout.readline().split()]
        assert pids and all(_alive(p) for p in pids)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert _wait_gone(pids) == []
    finally:
        proc.kill()


INTERRUPTIBLE = PIPELINE.replace(
    "[reports]",
    "[uncertainty]\nimputations = 400\nworkers = 2\n\n[reports]",
)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_run_records_the_stage_and_stops_its_workers(project: Path, signum):
    _config(project, INTERRUPTIBLE)
    proc = subprocess.Popen(
        [sys.executable, "-m", "recapture", "run", str(project / "pipeline.toml")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(),
        cwd=project,
    )
    try:
        workers: list[int] = []
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not workers:
            time.sleep(0.2)
            workers = [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
        assert workers, "the run started no workers"
        time.sleep(0.5)
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130
    lines = [line for line in err.decode().splitlines() if line.startswith("recapture run:")]
    assert lines == [
        "recapture run: interrupted during stage 'estimate' (recorded in the manifest)"
    ]
    assert "Traceback" not in err.decode(), err.decode()
    manifest = _manifest(project / "run")
    assert manifest["status"] == "interrupted"
    assert manifest["interrupted_stage"] == "estimate"
    assert manifest["stages"]["estimate"]["status"] == "interrupted"
    assert _wait_gone(workers) == []


# ------------------------------------------------------------------- 14: one run per dir
def test_a_second_run_into_a_held_directory_fails_naming_the_holder(project: Path, capsys):
    with RunDirectory(project / "run"):
        with pytest.raises(RunDirectoryError, match=f"pid {os.getpid()}"):
            run_pipeline(project / "pipeline.toml")
        assert main(["--quiet", "run", str(project / "pipeline.toml")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"pid {os.getpid()}" in err[0]
    run_pipeline(project / "pipeline.toml", until="validate")  # released afterwards


def test_outputs_this_run_no_longer_writes_are_removed(project: Path):
    run = project / "run"
    run_pipeline(project / "pipeline.toml")
    assert (run / "estimates.json").exists()
    result = run_pipeline(project / "pipeline.toml", until="persons")
    assert not (run / "estimates.json").exists()
    assert result.manifest["removed_stale"] == [ARTIFACTS["estimates"].file]
    assert "estimate" not in _manifest(run)["stages"]
    assert (run / "persons.parquet").exists()


# ------------------------------------------------------------------- 16: seeds, reruns
@pytest.mark.parametrize("seed", ["-1", str(2**32), "1.5", "true"])
def test_a_bad_seed_names_its_key(project: Path, seed: str):
    config = _config(project, PIPELINE.replace("seed = 11", f"seed = {seed}"))
    with pytest.raises(ConfigError) as exc:
        run_pipeline(config)
    assert exc.value.key == "run.seed"
    assert not (project / "run").exists()


def test_reruns_write_byte_identical_summaries(project: Path, tmp_path_factory):
    other = tmp_path_factory.mktemp("again")
    (other / "world").symlink_to(project / "world")
    _config(other, PIPELINE)
    a = run_pipeline(project / "pipeline.toml", until="persons").path("persons_summary")
    b = run_pipeline(other / "pipeline.toml", until="persons").path("persons_summary")
    assert a.read_bytes() == b.read_bytes()
    summary = json.loads(a.read_text())
    period = summary["2017/18"]
    assert list(period) == sorted(period)


# ------------------------------------------------------------------- strict JSON
def _strict(text: str):
    def refuse(name: str):
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def test_every_json_artifact_is_strict_json(project: Path):
    result = run_pipeline(project / "pipeline.toml")
    files = sorted(result.run_dir.rglob("*.json"))
    assert {f.name for f in files} >= {
        a.file for a in ARTIFACTS.values() if a.kind == "json" and "/" not in a.file
    }
    for path in files:
        _strict(path.read_text())


# ------------------------------------------------------------------- --until persons
def test_until_persons_writes_the_contract_without_estimators(project: Path, capsys):
    code = main(["--quiet", "run", str(project / "pipeline.toml"), "--until", "persons"])
    assert code == 0
    run = project / "run"
    assert (run / "persons.parquet").exists() and not (run / "estimates.json").exists()
    manifest = _manifest(run)
    assert set(manifest["stages"]) == {"validate", "link", "persons"}
    assert manifest["until"] == "persons" and manifest["status"] == "done"
    assert "stopped after 'persons'" in capsys.readouterr().out


# ------------------------------------------------------------------- failures isolated
FAILING = PIPELINE.replace(
    "[reports]",
    textwrap.dedent("""
        [[estimators]]
        name = "doomed"
        model = "ztpoisson"
        formula = "~ sex"
        count = "n_police"
        merge_sparse_levels = 5
        linkage_uncertainty = false

        [reports]"""),
)


def test_a_failing_estimator_does_not_take_the_others_down(project: Path, monkeypatch, capsys):
    from recapture.pipelines import run as run_module

    real = run_module._fit_one

    def fit_or_fail(persons, model, options, missing_rule):
        if options.get("merge_sparse_levels"):
            raise FloatingPointError("overflow in the Hessian")
        return real(persons, model, options, missing_rule)

    monkeypatch.setattr(run_module, "_fit_one", fit_or_fail)
    _config(project, FAILING)
    result = run_pipeline(project / "pipeline.toml")
    by_name = {e["name"]: e for e in result.estimates}
    assert by_name["ztp"]["population_size"] > 0 and by_name["dse"]["population_size"] > 0
    doomed = by_name["doomed"]
    assert doomed["error"] == "FloatingPointError: overflow in the Hessian"
    assert doomed["suggestion"] and doomed["config_key"] == "estimators[2]"
    assert result.manifest["failed_estimates"] == ["doomed [2017/18]"]
    assert result.manifest["stages"]["estimate"]["status"] == "done"

    capsys.readouterr()
    assert main(["--quiet", "run", str(project / "pipeline.toml"), "--force"]) == 0
    out = capsys.readouterr().out
    assert "failed: FloatingPointError" in out and "try:" in out
    assert main(["--quiet", "run", str(project / "pipeline.toml"), "--strict"]) == 1


def test_a_failing_linkage_aware_interval_keeps_the_estimate(project: Path, monkeypatch):
    from recapture.pipelines import run as run_module

    def fail(*args, **kwargs):
        raise ValueError("20 of 20 imputation fits failed: singular design")

    monkeypatch.setattr(run_module, "linkage_aware_estimate", fail)
    _config(project, PIPELINE.replace("[reports]", "[uncertainty]\nimputations = 2\n\n[reports]"))
    result = run_pipeline(project / "pipeline.toml")
    for entry in result.estimates:
        assert entry["population_size"] > 0
        aware = entry["extra"]["linkage_aware"]
        assert "imputation fits failed" in aware["error"] and aware["suggestion"]
        assert any("linkage-aware interval failed" in w for w in entry["warnings"])
    assert len(result.manifest["failed_estimates"]) == 2

    from recapture.reports import write_reports

    page = write_reports(result.run_dir)["estimates"].read_text(encoding="utf-8")
    assert "linkage-aware interval failed" in page


def test_review_labels_beside_a_run_are_not_foreign(project: Path):
    run = project / "run"
    (run / "review").mkdir(parents=True)
    (run / "review" / "review_labels.csv").write_text("record_id_l,record_id_r,label\n")
    (run / "review_labels.csv").write_text("record_id_l,record_id_r,label\n")
    run_pipeline(project / "pipeline.toml", until="validate")
    assert (run / "review_labels.csv").exists() and (run / "review" / "review_labels.csv").exists()
