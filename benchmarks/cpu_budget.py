"""What a benchmark step costs in CPU, not only in wall time: this process, the workers it
forked (once reaped) and every PostgreSQL server process of this machine (the backends of
its connections, and the writer and WAL processes), read from ``/proc``. Used by
``bench_storage.py`` to set the bulk path's speed against what the machine's cores can
give: at a given rate, ``cores`` seconds of CPU a second is all there is, so

* one process cannot report faster than its own CPU a report, however well its waits on
  the database overlap its work: the ratio to the floor is at most floor / own CPU;
* N processes and the server cannot go faster than their total CPU a report shared
  evenly over the cores: at most floor / (total / cores).
"""

from __future__ import annotations

import os
import resource
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import attrs

_TICK = os.sysconf("SC_CLK_TCK")


def _postgres() -> dict[int, float]:
    """CPU seconds (user and system) of each running PostgreSQL process, by pid."""
    out: dict[int, float] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", encoding="ascii", errors="replace") as f:
                stat = f.read()
        except OSError:
            continue  # gone meanwhile
        if not stat[stat.index("(") + 1 : stat.rindex(")")].startswith("postgres"):
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        out[int(name)] = (int(fields[11]) + int(fields[12])) / _TICK
    return out


@attrs.define
class Cpu:
    """Seconds of wall time and of CPU over a step."""

    wall: float = 0.0
    own: float = 0.0  # this process
    workers: float = 0.0  # its children, once reaped
    server: float = 0.0  # PostgreSQL's processes

    @property
    def total(self) -> float:
        return self.own + self.workers + self.server


def _rusage() -> tuple[float, float]:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


@contextmanager
def measured(every: float = 0.02) -> Iterator[Cpu]:
    """Measure the ``with`` block. The server's processes are sampled every ``every``
    seconds, by a thread whose own CPU is not counted (a backend that exits between two
    samples loses at most that much)."""
    out = Cpu()
    start = _postgres()
    last = dict(start)
    stop = threading.Event()

    spent: list[float] = []

    def sample() -> None:
        while not stop.wait(every):
            last.update(_postgres())
        spent.append(time.thread_time())  # the sampler's own CPU, not the step's

    sampler = threading.Thread(target=sample, daemon=True)
    own0, kids0 = _rusage()
    t0 = time.perf_counter()
    sampler.start()
    try:
        yield out
    finally:
        out.wall = time.perf_counter() - t0
        stop.set()
        sampler.join()
        last.update(_postgres())
        own1, kids1 = _rusage()
        out.own, out.workers = own1 - own0 - sum(spent), kids1 - kids0
        out.server = sum(seconds - start.get(pid, 0.0) for pid, seconds in last.items())


def table(rows: list[tuple[str, Cpu]], n: int, floor_wall: float) -> None:
    """Print µs a report of each step, and the most each way of running can reach."""
    cores = os.cpu_count() or 1
    print(f"\nCPU a report (µs), {cores} cores: wall, this process, its workers, PostgreSQL, all")
    for label, c in rows:
        print(
            f"  {label:<44}{c.wall / n * 1e6:7.1f}{c.own / n * 1e6:8.1f}"
            f"{c.workers / n * 1e6:8.1f}{c.server / n * 1e6:8.1f}{c.total / n * 1e6:8.1f}"
        )
    budget = 2 * floor_wall * cores / n * 1e6
    print(
        f"  at 0.5 of the floor the {cores} cores give {budget:.1f} µs of CPU a report in all; "
        "at best (all cores busy all the time, waits fully overlapped):"
    )
    for label, c in rows[1:]:
        one = floor_wall / max(c.own + c.workers, 1e-9)  # one process: its own CPU
        shared = floor_wall / max(c.total / cores, 1e-9)
        bound = min(one, shared) if c.workers == 0 else shared
        print(f"  {label:<44}bulk / floor <= {bound:.3f} (now {floor_wall / c.wall:.3f})")
