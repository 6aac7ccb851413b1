"""Shared plumbing of the linkage benchmarks: machine facts, isolated tool runs, docs sections.

Each tool (recapture, Splink, recordlinkage) runs in its own subprocess so that its
peak memory (``ru_maxrss`` of that process) and wall time are its own and a crash or
timeout of one peer does not lose the others. Peers can run under another interpreter
(``--peer-python`` or ``RECAPTURE_BENCH_PEER_PYTHON``), e.g. a separate venv, if
installing them next to recapture ever conflicts with its pins. This module uses the
standard library only, because peer workers import it too.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import BENCHMARKS_MD, ROOT, machine, write_section  # noqa: E402,F401


def machine_line(info: dict | None = None, shared: bool = True) -> str:
    info = info or machine()
    note = " The machine was shared with other work during the run." if shared else ""
    return (
        f"Machine: {info['cpu']}, {info['cores']} cores, {info['ram_gib']} GiB RAM, "
        f"{info['os']}, Python {info['python']}. Date: {info['date']}.{note}"
    )


def peak_rss_gib() -> float:
    """Peak resident memory of this process so far (Linux ru_maxrss is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def peer_python(cli_value: str | None) -> str:
    return cli_value or os.environ.get("RECAPTURE_BENCH_PEER_PYTHON") or sys.executable


def _tree_sample(proc, cpu: dict[int, float]) -> tuple[int, list]:
    """Resident bytes of a process and its children (psutil.Process), 0 once gone; the CPU
    seconds of each are recorded in ``cpu`` (last value seen per pid, so that a child that
    exits keeps what it used). Returns (bytes, the processes of the tree)."""
    import psutil

    try:
        tree = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0, []
    total = 0
    for p in tree:
        try:
            t = p.cpu_times()
            cpu[p.pid] = t.user + t.system
            total += p.memory_info().rss
        except psutil.Error:  # exited between listing and reading
            pass
    return total, tree


def run_worker(
    python: str,
    script: Path,
    args: list[str],
    timeout: float | None = None,
    max_rss_gib: float | None = None,
) -> dict:
    """Run ``python script --worker ...`` and return the JSON it wrote (plus status).

    The worker's process tree (a JVM and its Python workers included) is watched five
    times a second: it is stopped when it exceeds ``timeout`` seconds or ``max_rss_gib``
    resident memory (so that a runaway tool cannot take a shared machine down); the sampled
    peak (``sampled_peak_gib``), the tree's CPU seconds (``tree_cpu_s``) and the machine's
    load average before and after are kept beside the worker's own figures.
    """
    import psutil

    fd, out = tempfile.mkstemp(suffix=".json", prefix="bench_worker_")
    os.close(fd)
    log = tempfile.TemporaryFile(mode="w+")
    cmd = [python, str(script), "--worker", *args, "--result", out]
    load_before = os.getloadavg()
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, text=True)
    watched = psutil.Process(proc.pid)
    cpu: dict[int, float] = {}
    sampled_peak, status = 0, None
    while proc.poll() is None:
        rss, tree = _tree_sample(watched, cpu)
        sampled_peak = max(sampled_peak, rss)
        if timeout is not None and time.perf_counter() - start > timeout:
            status = "timeout"
        elif max_rss_gib is not None and sampled_peak > max_rss_gib * 2**30:
            status = f"stopped above {max_rss_gib:g} GiB"
        if status:
            for p in reversed(tree):
                try:
                    p.kill()
                except psutil.Error:
                    pass
            proc.wait()
            break
        time.sleep(0.2)
    wall = time.perf_counter() - start
    log.seek(0)
    output = log.read()
    log.close()
    try:
        result = json.loads(Path(out).read_text()) if Path(out).stat().st_size else {}
    finally:
        Path(out).unlink(missing_ok=True)
    extra = {
        "process_wall_s": wall,
        "sampled_peak_gib": sampled_peak / 2**30,
        "tree_cpu_s": sum(cpu.values()),
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
    }
    if status:
        return {
            "status": status,
            **extra,
            "error": output.strip().splitlines()[-1:] and output.strip().splitlines()[-1] or "",
        }
    if proc.returncode != 0 or not result:
        tail = output.strip().splitlines()[-15:]
        return {
            "status": "failed",
            "returncode": proc.returncode,
            "error": "\n".join(tail),
            **extra,
        }
    result.setdefault("status", "ok")
    result.update(extra)
    return result


def finish_worker(result_path: str, payload: dict) -> None:
    """Called by a worker at its end: add its own peak memory and write the JSON."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    payload["peak_rss_gib"] = peak_rss_gib()
    # CPU seconds of all the worker's threads: the fairer yardstick when the machine is busy
    payload["cpu_s"] = usage.ru_utime + usage.ru_stime
    Path(result_path).write_text(json.dumps(payload, default=float))


def add_worker_arguments(ap) -> None:
    """The hidden options a benchmark passes to itself to run one tool as a worker."""
    import argparse

    for option in ("--worker", "--task", "--inputs", "--out", "--result"):
        ap.add_argument(option, default=None, help=argparse.SUPPRESS)


def run_as_worker(args, workers: dict, with_task: bool = True) -> bool:
    """If this process is a worker, run its tool, write the result and return True."""
    if not args.worker:
        return False
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    inputs = args.inputs.split(",")
    call = workers[args.worker]
    finish_worker(args.result, call(args.task, inputs, out) if with_task else call(inputs, out))
    return True


def fmt(value, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        if value != value:  # NaN
            return "–"
        return f"{value:.{digits}f}"
    return str(value)


def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += [
        "| " + " | ".join(fmt(v) if not isinstance(v, str) else v for v in row) + " |"
        for row in rows
    ]
    return "\n".join(lines)
