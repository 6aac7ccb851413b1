"""Stage bookkeeping: fingerprints, reuse of finished stages, and the run manifest.

A stage is redone only when something it depends on changed: its own settings, the
checksums of the files it reads, an upstream stage's fingerprint, or recapture's version.
Otherwise its finished outputs are reused. The manifest is rewritten atomically after
every stage, so a failure leaves a manifest that says which stages finished and which
one failed, and earlier artifacts stay intact.
"""

from __future__ import annotations

import hashlib
import json
import platform
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from recapture import __version__, progress
from recapture.errors import Interrupted, RecaptureError, StageError
from recapture.io import ARTIFACTS, file_sha256, read_json, to_json_text, write_json

MANIFEST = ARTIFACTS["manifest"].file
_PACKAGES = (
    "numpy",
    "scipy",
    "pandas",
    "polars",
    "pyarrow",
    "pandera",
    "recordlinkage",
    "rapidfuzz",
    "formulaic",
    "jinja2",
    "matplotlib",
)


def package_versions() -> dict[str, str]:
    out = {
        "python": sys.version.split()[0],
        "recapture": __version__,
        "platform": platform.platform(),
    }
    for name in _PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def fingerprint(payload: Any) -> str:
    text = to_json_text(payload)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class Stage:
    """One step of the run: what it depends on, what it writes, and how to run it."""

    name: str
    outputs: list[str]
    run: Callable[[], dict[str, Any]]
    settings: Any = None
    input_files: list[Path] = field(default_factory=list)
    upstream: list[str] = field(default_factory=list)


class Manifest:
    """The run manifest, kept on disk after every stage."""

    def __init__(self, run_dir: Path, config: dict[str, Any], seed: int):
        self.run_dir = run_dir
        self.path = run_dir / MANIFEST
        try:
            previous = read_json(self.path) if self.path.is_file() else {}
        except ValueError:  # a damaged manifest: nothing to reuse
            previous = {}
        if not isinstance(previous, dict):
            previous = {}
        self.previous_stages: dict[str, Any] = previous.get("stages", {})
        self.data: dict[str, Any] = {
            "recapture_version": __version__,
            "run_id": None,
            "config": config,
            "seed": seed,
            "packages": package_versions(),
            "inputs": {},
            "stages": {},
            "reconciliation": {},
            "status": "running",
        }

    def save(self) -> None:
        write_json(self.data, self.path)


def run_stages(stages: list[Stage], manifest: Manifest, *, force: bool = False) -> dict[str, Any]:
    """Run or reuse each stage in order; return the manifest data."""
    fingerprints: dict[str, str] = {}
    checksums: dict[str, str] = {}
    for stage in stages:
        for path in stage.input_files:
            if str(path) not in checksums:
                if not path.exists():
                    raise StageError(stage.name, f"input file not found: {path}")
                checksums[str(path)] = file_sha256(path)
        manifest.data["inputs"].update({p: {"sha256": c} for p, c in checksums.items()})
        fp = fingerprint(
            {
                "stage": stage.name,
                "version": __version__,
                "settings": stage.settings,
                "inputs": {str(p): checksums[str(p)] for p in stage.input_files},
                "upstream": {u: fingerprints[u] for u in stage.upstream},
            }
        )
        fingerprints[stage.name] = fp
        previous = manifest.previous_stages.get(stage.name, {})
        outputs_present = all((manifest.run_dir / o).exists() for o in stage.outputs)
        if (
            not force
            and previous.get("fingerprint") == fp
            and previous.get("status") == "done"
            and outputs_present
        ):
            progress.info(f"· {stage.name}: unchanged, reusing {', '.join(stage.outputs)}")
            manifest.data["stages"][stage.name] = {**previous, "reused": True}
            manifest.save()
            continue
        progress.info(f"· {stage.name} …")
        started = time.perf_counter()
        try:
            with PeakMemory() as memory:
                counts = stage.run() or {}
        except KeyboardInterrupt as exc:
            signal_name = exc.signal_name if isinstance(exc, Interrupted) else "SIGINT"
            _record_interruption(manifest, stage, fp, started, signal_name)
            raise Interrupted(signal_name, stage.name) from None
        except RecaptureError as exc:
            _record_failure(manifest, stage, fp, started, exc)
            raise StageError(stage.name, exc) from exc
        except Exception as exc:
            _record_failure(manifest, stage, fp, started, exc)
            raise StageError(stage.name, f"{type(exc).__name__}: {exc}") from exc
        seconds = time.perf_counter() - started
        manifest.data["stages"][stage.name] = {
            "status": "done",
            "fingerprint": fp,
            "reused": False,
            "seconds": round(seconds, 3),
            "peak_rss_mib": memory.peak_mib,
            "rss_start_mib": memory.start_mib,
            "outputs": stage.outputs,
            "counts": counts,
        }
        manifest.save()
        progress.info(f"  {stage.name} done in {seconds:.1f} s")
    return manifest.data


def _record_interruption(
    manifest: Manifest, stage: Stage, fp: str, started: float, signal_name: str
) -> None:
    manifest.data["stages"][stage.name] = {
        "status": "interrupted",
        "fingerprint": fp,
        "seconds": round(time.perf_counter() - started, 3),
        "signal": signal_name,
    }
    manifest.data["status"] = "interrupted"
    manifest.data["interrupted_stage"] = stage.name
    manifest.save()


@contextmanager
def interrupt_on_sigterm() -> Iterator[None]:
    """Turn SIGTERM into :class:`~recapture.errors.Interrupted` while the block runs, so a
    terminated run records where it stopped and stops its workers (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise Interrupted(signal.Signals(signum).name)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _record_failure(
    manifest: Manifest, stage: Stage, fp: str, started: float, exc: BaseException
) -> None:
    manifest.data["stages"][stage.name] = {
        "status": "failed",
        "fingerprint": fp,
        "seconds": round(time.perf_counter() - started, 3),
        "error": f"{type(exc).__name__}: {exc}",
    }
    manifest.data["status"] = "failed"
    manifest.save()


class PeakMemory:
    """The peak resident memory of this process and its children while a block runs.

    ru_maxrss is the process's peak since it started, so a stage after a hungry one would
    inherit its peak. Instead a thread samples the RSS of the process tree every
    ``interval`` seconds (worker processes count too; the list of workers is refreshed
    every ``children_every`` samples); when the process's own high-water
    mark rose during the block, that new mark is a peak of the block as well, which
    catches spikes between two samples.
    """

    def __init__(self, interval: float = 0.05, children_every: int = 20):
        import psutil

        self.interval = interval
        self.children_every = children_every
        self._process = psutil.Process()
        self._children: list = []
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._sample_until_stopped, name="peak-memory", daemon=True
        )
        self._peak = 0
        self.start_mib: float | None = None
        self.peak_mib: float | None = None

    def _tree_rss(self, refresh_children: bool = True) -> int:
        import psutil

        if (
            refresh_children
        ):  # finding children scans every process on the machine: not every sample
            self._children = self._process.children(recursive=True)
        total = self._process.memory_info().rss
        for child in self._children:
            try:
                total += child.memory_info().rss
            except psutil.Error:  # a worker that has exited
                pass
        return total

    def _sample_until_stopped(self) -> None:
        sample = 0
        while not self._stop.wait(self.interval):
            sample += 1
            self._peak = max(
                self._peak, self._tree_rss(refresh_children=sample % self.children_every == 1)
            )

    def __enter__(self) -> PeakMemory:
        self._maxrss_before = _maxrss_bytes()
        start = self._tree_rss()
        self._peak = start
        self.start_mib = _mib(start)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        peak = max(self._peak, self._tree_rss())
        maxrss_after = _maxrss_bytes()
        if maxrss_after > self._maxrss_before:
            peak = max(peak, maxrss_after)
        self.peak_mib = _mib(peak)


def _maxrss_bytes() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def _mib(n_bytes: int) -> float:
    return round(n_bytes / 2**20, 1)


def stable_json(data: Any) -> str:
    return json.dumps(data, sort_keys=True, default=str)
