"""A run directory the run owns: a lock, only its own files, only its own temporaries.

A run takes an exclusive lock (``fcntl.flock`` on ``.recapture.lock``, which records the
holder's pid), so a second run into the same directory stops with one line naming that
pid instead of mixing its outputs with the first. It refuses a directory holding files it
did not write, unless asked (``allow_other_files``), and even then never touches them. Its
temporary files carry a tag recorded in the lock file, so the next run removes exactly the
temporaries a killed run left -- of the artifacts' own names, in the run directory and its
``reports/`` folder, never recursively and never elsewhere.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import json
import os
import secrets
from pathlib import Path
from typing import Any

from recapture import progress
from recapture.errors import RecaptureError
from recapture.io import ARTIFACTS, REVIEW_FOLDER, remove_temporaries, temporary_tag

LOCK_FILE = ".recapture.lock"


class RunDirectoryError(RecaptureError):
    """The run directory is in use by another run, or holds files this tool did not write."""


def owned_names() -> set[str]:
    """Top-level entries a run directory may hold: what recapture writes (files and
    folders) and the review files a reviewer keeps there for the linkage report."""
    return {Path(a.file).parts[0] for a in ARTIFACTS.values()} | {LOCK_FILE, REVIEW_FOLDER}


def _artifact_folders(run_dir: Path) -> dict[Path, list[str]]:
    """Each folder the run writes into, with the artifact file names it writes there."""
    folders: dict[Path, list[str]] = {}
    for artifact in ARTIFACTS.values():
        rel = Path(artifact.file)
        folders.setdefault(run_dir / rel.parent, []).append(rel.name)
    return folders


class RunDirectory:
    """Hold a run directory for the duration of a run (a context manager).

    On entry: create the folder, take the lock (or fail naming the holder), remove the
    temporaries of the previous run, refuse files the tool does not own (unless
    ``allow_other_files``), and tag this run's temporaries. On exit: release the lock.
    """

    def __init__(self, path: str | os.PathLike, *, allow_other_files: bool = False):
        self.path = Path(path)
        self.allow_other_files = allow_other_files
        self.tag = secrets.token_hex(6)
        self.previous: dict[str, Any] = {}
        self.removed_temporaries: list[Path] = []
        self._fd: int | None = None
        self._stack = contextlib.ExitStack()

    @property
    def lock_path(self) -> Path:
        return self.path / LOCK_FILE

    def __enter__(self) -> RunDirectory:
        if self.path.exists() and not self.path.is_dir():
            raise RunDirectoryError(f"{self.path}: run directory is not a folder")
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock()
        try:
            self._clean_temporaries()
            if not self.allow_other_files:
                self._refuse_foreign_files()
            self._write_lock_record()
            self._stack.enter_context(temporary_tag(self.tag))
        except BaseException:
            self._unlock()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stack.close()
        self._unlock()

    def _lock(self) -> None:
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(self.lock_path, flags, 0o644)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise RunDirectoryError(
                    f"{self.lock_path}: is a symbolic link; recapture did not write it"
                ) from None
            raise RunDirectoryError(f"{self.lock_path}: cannot open: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_record(fd).get("pid", "unknown")
            os.close(fd)
            raise RunDirectoryError(
                f"{self.path}: run directory is in use by another recapture run (pid {holder})"
            ) from None
        self._fd = fd
        self.previous = _read_record(fd)

    def _unlock(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def _write_lock_record(self) -> None:
        record = {
            "pid": os.getpid(),
            "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "temporary_tag": self.tag,
        }
        data = (json.dumps(record) + "\n").encode()
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, data, 0)

    def _clean_temporaries(self) -> None:
        tag = str(self.previous.get("temporary_tag", ""))
        if not tag:
            return
        for folder, names in _artifact_folders(self.path).items():
            for path in remove_temporaries(folder, names, tag):
                self.removed_temporaries.append(path)
                progress.info(f"· removed {path.name}, left by an interrupted write")

    def _refuse_foreign_files(self) -> None:
        owned = owned_names()
        foreign = sorted(e.name for e in os.scandir(self.path) if e.name not in owned)
        if foreign:
            shown = ", ".join(foreign[:5]) + (
                f" and {len(foreign) - 5} more" if len(foreign) > 5 else ""
            )
            raise RunDirectoryError(
                f"{self.path}: run directory holds files recapture did not write ({shown}); "
                "use an empty or new run directory, or pass --allow-other-files "
                "(allow_other_files=True) to run beside them without touching them"
            )


def _read_record(fd: int) -> dict[str, Any]:
    try:
        text = os.pread(fd, 4096, 0).decode("utf-8", errors="replace").strip()
        record = json.loads(text) if text else {}
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}
