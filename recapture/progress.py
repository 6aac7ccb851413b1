"""Progress of long steps, on stderr so stdout stays machine-readable.

The one place the package reports progress:

* :func:`step` announces a step and, when it ends, how long it took (a line each, kept in
  logs);
* :func:`bar` wraps the loop inside a long step (EM iterations, scored chunks, imputations,
  bootstrap replicates, reports) in a progress bar drawn by tqdm, which is small, has no
  dependencies and imports in milliseconds, so commands that never loop do not pay for it.

Everything is silent under ``--quiet`` (:func:`set_quiet`); bars are drawn only when
stderr is a terminal, so logs and captured output hold the step lines only.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")

_quiet = False


def set_quiet(quiet: bool) -> None:
    global _quiet
    _quiet = quiet


def is_quiet() -> bool:
    return _quiet


def info(message: str) -> None:
    if not _quiet:
        print(message, file=sys.stderr, flush=True)


def bars_enabled() -> bool:
    """Bars only for a person watching: not quiet and stderr is a terminal."""
    if _quiet:
        return False
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stream
        return False


class _NoBar:
    """Stands in for a tqdm bar when bars are off: same calls, does nothing."""

    def __init__(self, iterable: Iterable | None = None) -> None:
        self._iterable = iterable

    def __iter__(self) -> Iterator:
        return iter(self._iterable if self._iterable is not None else ())

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def bar(
    iterable: Iterable[T] | None = None,
    *,
    total: int | None = None,
    label: str = "",
    unit: str = "it",
) -> Any:
    """A progress bar over ``iterable`` (or updated by hand with ``total``).

    Use as ``for x in bar(xs, label="imputations")`` or
    ``with bar(total=n, label="replicates") as b: ... b.update(k)``. The bar is removed
    when done (the step's own line stays); when bars are off the iterable is returned
    wrapped in a no-op, so loops cost nothing extra.
    """
    if not bars_enabled():
        return _NoBar(iterable)
    from tqdm import tqdm

    return tqdm(
        iterable,
        total=total,
        desc=f"  {label}" if label else None,
        unit=unit,
        leave=False,
        file=sys.stderr,
        dynamic_ncols=True,
        mininterval=0.2,
    )


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
