"""Shared plumbing: fitting any estimator on a clustering, and a light process pool."""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import polars as pl

from recapture import progress
from recapture.estimators.result import PopulationEstimate
from recapture.persons import CaptureHistoryRules, Period, build_persons

Estimator = Any  # an object with .fit(persons, **kw) -> PopulationEstimate, or a callable


def fit_estimator(
    estimator: Estimator, persons: pl.DataFrame, fit_kwargs: Mapping[str, Any] | None
) -> PopulationEstimate:
    """Call ``estimator.fit(persons, **fit_kwargs)`` or ``estimator(persons, **fit_kwargs)``."""
    kwargs = dict(fit_kwargs or {})
    fit = getattr(estimator, "fit", None)
    result = fit(persons, **kwargs) if callable(fit) else estimator(persons, **kwargs)
    if not isinstance(result, PopulationEstimate):
        raise TypeError(f"estimator returned {type(result).__name__}, not a PopulationEstimate")
    return result


def estimator_name(estimator: Estimator) -> str:
    name = getattr(estimator, "name", None)
    if isinstance(name, str) and name:
        return name
    return getattr(estimator, "__name__", None) or type(estimator).__name__


#: The record columns build_persons reads; the others (names, raw values) are dropped
#: before the refits so that its joins do not copy them M times.
PERSON_INPUT_COLUMNS = (
    "record_id",
    "source",
    "event_date",
    "in_target",
    "sex",
    "birth_year",
    "birth_month",
    "birth_day",
    "birth_date_quality",
    "nationality_iso3",
    "nationality_region",
    "reason",
    "police_unit",
)


def period_records(
    records: pl.DataFrame, period: Period, rules: CaptureHistoryRules
) -> pl.DataFrame:
    """The records build_persons would keep, with only the columns it reads; filtering
    once saves it on every refit (clustering still uses every record, so chains through
    other periods are kept)."""
    kept = records.filter(pl.col("event_date").is_between(period.start, period.end, closed="both"))
    if rules.exclude_out_of_target:
        kept = kept.filter(pl.col("in_target"))
    return kept.select([c for c in records.columns if c in PERSON_INPUT_COLUMNS])


def persons_for(
    records: pl.DataFrame, clusters: pl.DataFrame, period: Period, sources, rules
) -> pl.DataFrame:
    return build_persons(records, clusters, period, sources=sources, rules=rules)[0]


def summary_row(est: PopulationEstimate, level: float, interval: str | None) -> dict[str, float]:
    try:
        lo, hi = est.confint(interval, level)
    except Exception:  # an interval that cannot be computed is reported as NaN
        lo, hi = math.nan, math.nan
    return {
        "population_size": float(est.population_size),
        "se": float(est.se),
        "lower": float(lo),
        "upper": float(hi),
        "n_observed": int(est.n_observed),
    }


_SINGLE_THREAD_ENV = (
    "POLARS_MAX_THREADS",
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
)


@contextlib.contextmanager
def single_threaded_children() -> Iterator[None]:
    """Worker processes inherit the environment at start: one thread each, so that
    W workers use W cores rather than W × cores threads fighting for them."""
    saved = {k: os.environ.get(k) for k in _SINGLE_THREAD_ENV}
    try:
        for k in _SINGLE_THREAD_ENV:
            os.environ[k] = "1"
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def resolve_workers(workers: int | None, tasks: int) -> int:
    if workers is None or workers <= 0:
        workers = os.cpu_count() or 1
    return max(1, min(int(workers), tasks))


def run_tasks(
    task: Callable[[int], Any],
    n: int,
    workers: int,
    init: Callable[..., None],
    init_args: tuple,
    label: str = "refits",
) -> list[Any]:
    """Run ``task(k)`` for k < n, inline or in a spawn process pool (fork is unsafe with
    polars' thread pool). Results come back in task order; ``label`` names the bar."""
    if workers <= 1:
        init(*init_args)
        return [task(k) for k in progress.bar(range(n), label=label)]
    import multiprocessing as mp

    from recapture.workers import worker_pool

    with (
        single_threaded_children(),
        worker_pool(
            workers, mp_context=mp.get_context("spawn"), initializer=init, initargs=init_args
        ) as pool,
    ):
        done = pool.map(task, range(n), chunksize=max(1, n // (4 * workers)))
        return list(progress.bar(done, total=n, label=f"{label} ({workers} processes)"))


def as_float_array(values) -> np.ndarray:
    return np.asarray(list(values), dtype=float)
