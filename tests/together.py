"""Threads that act at the same moment, for the tests of concurrent writers: run a call in
several threads at once, and hold the first call of a method in each thread at a barrier
until every thread has made it (so that all have read before any writes). And what a
read a part at a time asked the desk for (:func:`regions_read`)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

_T = TypeVar("_T")


def run_together(target: Callable[[], _T], n: int) -> tuple[list[_T], list[BaseException]]:
    """``target()`` in ``n`` threads at once; what they returned, and what they raised."""
    results: list[_T] = []
    errors: list[BaseException] = []

    def one() -> None:
        try:
            results.append(target())
        except BaseException as e:  # noqa: BLE001 - handed back to the test
            errors.append(e)

    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, errors


def meet_at_first_call(
    monkeypatch: pytest.MonkeyPatch, cls: type, name: str, parties: int, timeout: float = 20
) -> None:
    """Make ``cls.name`` wait, after its first call in each thread, until ``parties``
    threads have made theirs (later calls, a retry among them, go straight through)."""
    barrier = threading.Barrier(parties, timeout=timeout)
    met: set[int] = set()
    original = getattr(cls, name)

    def meet(self: Any, *args: Any, **kwargs: Any) -> Any:
        found = original(self, *args, **kwargs)
        if threading.get_ident() not in met:
            met.add(threading.get_ident())
            barrier.wait()
        return found

    monkeypatch.setattr(cls, name, meet)


def regions_read(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The regions (or TPS) that ``Desk.station_status`` is asked for from now on, in
    order: what a read a part at a time reads."""
    from sipantau_core import Desk

    read: list[str] = []
    real = Desk.station_status

    def station_status(self: Desk, where: Any, **kwargs: Any) -> Any:
        read.append(str(where))
        return real(self, where, **kwargs)

    monkeypatch.setattr(Desk, "station_status", station_status)
    return read
