"""Progress messages for long steps, on stderr so stdout stays machine-readable."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

_quiet = False


def set_quiet(quiet: bool) -> None:
    global _quiet
    _quiet = quiet


def info(message: str) -> None:
    if not _quiet:
        print(message, file=sys.stderr, flush=True)


@contextmanager
def step(label: str) -> Iterator[dict]:
    """Announce a step, time it, and report how long it took.

    Yields a dict in which the step may put a short result text under ``"result"``.
    """
    info(f"· {label} …")
    start = time.perf_counter()
    state: dict = {}
    yield state
    elapsed = time.perf_counter() - start
    result = f" — {state['result']}" if state.get("result") else ""
    info(f"  {label} done in {elapsed:.1f} s{result}")
