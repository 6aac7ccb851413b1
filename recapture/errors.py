"""User-facing errors.

Every error a user can cause (a bad file, a bad option, a bad config key) is raised as a
:class:`RecaptureError` subclass carrying the place at fault, so the CLI can print one clear
line instead of a traceback from deep inside a library.
"""

from __future__ import annotations

from dataclasses import dataclass


class RecaptureError(Exception):
    """Base class of errors caused by input, configuration or usage (not by a bug)."""


@dataclass
class InputError(RecaptureError):
    """A problem with an input file, optionally pinned to a row and a column."""

    message: str
    file: str | None = None
    row: int | None = None
    column: str | None = None

    def __str__(self) -> str:
        where = []
        if self.file is not None:
            where.append(str(self.file))
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column is not None:
            where.append(f"column '{self.column}'")
        prefix = ", ".join(where)
        return f"{prefix}: {self.message}" if prefix else self.message


@dataclass
class ConfigError(RecaptureError):
    """A problem with a configuration file or option, naming the key at fault."""

    message: str
    file: str | None = None
    key: str | None = None

    def __str__(self) -> str:
        where = []
        if self.file is not None:
            where.append(str(self.file))
        if self.key is not None:
            where.append(f"key '{self.key}'")
        prefix = ", ".join(where)
        return f"{prefix}: {self.message}" if prefix else self.message


class StageError(RecaptureError):
    """A pipeline stage failed; names the stage and the cause."""

    def __init__(self, stage: str, cause: BaseException | str):
        self.stage = stage
        self.cause = cause
        super().__init__(f"stage '{stage}' failed: {cause}")


class Interrupted(KeyboardInterrupt):
    """A run stopped by SIGINT or SIGTERM; names the stage it stopped in, if any."""

    def __init__(self, signal_name: str = "SIGINT", stage: str | None = None):
        self.signal_name = signal_name
        self.stage = stage
        where = f" during stage '{stage}'" if stage else ""
        super().__init__(f"interrupted by {signal_name}{where}")
