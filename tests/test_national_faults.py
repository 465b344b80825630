"""Faults survived, nothing lost: real monitor clients with their outboxes, in device
processes, load ``sipantau serve --workers 2`` on PostgreSQL while a server worker is
SIGKILLed mid-batch, PostgreSQL is restarted (as if it crashed), the network between
clients and server is cut, and a device is SIGKILLed with reports in its outbox and
started again. After each: every report a client got a receipt for is stored exactly
once, every report still in an outbox arrives after recovery, the count equals the sum of
the tallies the clients sent, nothing is stored that no client sent, and the audit log
verifies.

PostgreSQL here is a private cluster this test starts (``initdb`` in a temporary
directory, a free port; see ``faultlab.PrivateCluster``): restarting the shared server
would break everyone else's tests. The same run, larger, is
``benchmarks/campaign_faults.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from faultlab import FAULTS, lab, table


@pytest.mark.slow
@pytest.mark.postgres
def test_faults_during_a_load_run_lose_nothing_and_count_nothing_twice(tmp_path: Path) -> None:
    rows = []
    with lab(tmp_path, devices=3, per_device=5, per_round=3, pace=0.01) as day:
        for name, inject in FAULTS.items():
            row = day.run_round(name, inject)
            rows.append(row)
            report = table(rows)
            assert row.injected, report
            assert row.sent == row.acknowledged == row.stored > 0, report
            assert (row.lost, row.double_counted, row.phantom) == (0, 0, 0), report
            assert row.pending_after_recovery == 0, report
            assert row.count_matches and row.audit_ok, report
        # a last round without a fault: the desk counts every TPS that sent its tally
        rows.append(day.run_round("none", None))
        assert rows[-1].count_matches
        assert day.server is not None and len(day.server.killed) == 1
        assert day.cluster.restarts == 1
    by_fault = {r.fault: r for r in rows}
    assert "mid-batch" in by_fault["kill -9 server worker"].injected
    assert by_fault["kill -9 client device"].in_outbox_after_fault > 0
    assert by_fault["network cut (proxy)"].duplicates > 0  # answers lost after the commit
    print("\n" + table(rows))
