"""Desks opening one PostgreSQL storage at the same moment (the workers of ``sipantau serve
--workers N`` on a fresh database): the deployment's monitors are enrolled once, with one
audit entry, whichever desk gets there first."""

from __future__ import annotations

import pytest

from pg import fresh_schema
from sipantau_adapters.storage.sql.reads import _Reads
from sipantau_core import Desk
from sipantau_core.testing.contracts import small_deployment
from together import meet_at_first_call, run_together

pytestmark = pytest.mark.postgres


def test_two_desks_opening_a_fresh_storage_enrol_each_monitor_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    meet_at_first_call(monkeypatch, _Reads, "monitors", 2)  # both look before either writes
    with fresh_schema() as url:
        desks, failures = run_together(lambda: Desk.open(small_deployment(), storage=url), 2)
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
