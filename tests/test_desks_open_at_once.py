"""Desks opening one PostgreSQL storage at the same moment (the workers of ``sipantau serve
--workers N`` on a fresh database): the deployment's monitors are enrolled once, with one
audit entry, whichever desk gets there first."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from pg import fresh_schema
from sipantau_adapters.storage.sql.reads import _Reads
from sipantau_core import Desk
from sipantau_core.testing.contracts import small_deployment

pytestmark = pytest.mark.postgres


def test_two_desks_opening_a_fresh_storage_enrol_each_monitor_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    barrier = threading.Barrier(2, timeout=20)
    met: set[int] = set()
    monitors = _Reads.monitors

    def meet(self: Any, ids: Any = None) -> Any:
        found = monitors(self, ids)
        if threading.get_ident() not in met:  # both have looked before either writes
            met.add(threading.get_ident())
            barrier.wait()
        return found

    monkeypatch.setattr(_Reads, "monitors", meet)
    with fresh_schema() as url:
        desks: list[Desk] = []
        failures: list[BaseException] = []

        def open_one() -> None:
            try:
                desks.append(Desk.open(small_deployment(), storage=url))
            except BaseException as e:  # noqa: BLE001 - reported below
                failures.append(e)

        workers = [threading.Thread(target=open_one) for _ in range(2)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        monkeypatch.undo()
        try:
            assert failures == []
            entries = [e for e in desks[0].audit.entries() if e.action == "enrol_monitors"]
            assert [e.object for e in entries] == ["monitors:3"]
            with desks[0].storage.transaction() as tx:
                assert set(tx.monitors()) == set(small_deployment().monitors)
            assert desks[0].audit.verify().ok
        finally:
            for desk in desks:
                desk.close()
