"""Worker processes that die with their parent and stay quiet on Ctrl-C.

A killed run used to leave its imputation workers running for minutes, and Ctrl-C printed
a traceback from every worker. Workers made by :func:`worker_pool` ignore SIGINT (the
parent handles it and stops them), ask Linux to send them SIGTERM when the parent dies
(``PR_SET_PDEATHSIG``), and as a fallback elsewhere watch their parent's pid and exit
when it changes. Leaving the pool by an exception (an interrupt included) cancels the
queued tasks and terminates the workers instead of waiting for them.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from typing import Any

_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> None:
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        except (OSError, AttributeError):  # pragma: no cover - no prctl: the watchdog remains
            pass

    def watch() -> None:
        while True:
            if os.getppid() != parent:
                os._exit(1)
            threading.Event().wait(1.0)

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _init_worker(parent: int, initializer: Callable[..., None] | None, initargs: tuple) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # a forked worker inherits the parent's Python handlers: SIGTERM must simply end it
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _die_with_parent(parent)
    if initializer is not None:
        initializer(*initargs)


@contextmanager
def worker_pool(
    max_workers: int,
    *,
    initializer: Callable[..., None] | None = None,
    initargs: tuple = (),
    mp_context: Any = None,
) -> Iterator[ProcessPoolExecutor]:
    """A process pool whose workers die with this process (see the module docstring)."""
    pool = ProcessPoolExecutor(
        max_workers=max_workers,
        mp_context=mp_context,
        initializer=_init_worker,
        initargs=(os.getpid(), initializer, initargs),
    )
    try:
        # start every worker now, with Ctrl-C held back: a signal in the middle of sending
        # a spawned worker its start-up data leaves it a truncated pickle and a traceback
        launch = getattr(pool, "_launch_processes", None)
        if launch is not None:
            with _signals_deferred():
                launch()
        yield pool
    except BaseException:
        terminate(pool)
        raise
    else:
        pool.shutdown(wait=True)


@contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM until the block ends, then act on the first that came."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    held = (signal.SIGINT, signal.SIGTERM)
    previous = {s: signal.signal(s, lambda signum, frame: pending.append(signum)) for s in held}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if pending:
            handler = previous[pending[0]]
            if callable(handler):
                handler(pending[0], None)
            elif handler == signal.SIG_DFL:
                signal.raise_signal(pending[0])


def terminate(pool: ProcessPoolExecutor) -> None:
    """Cancel queued tasks and stop the pool's workers now, without waiting for them."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(timeout=5)
        if process.is_alive():  # pragma: no cover - ignored SIGTERM
            process.kill()
