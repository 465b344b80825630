"""The parallel bulk path: a large ``submit_many(workers=N)`` shared out by TPS among
forked workers, each storing its share through connections of its own.

The desk's :meth:`~sipantau_core.desk.Desk.submit_many` decides with :func:`plan_shares`
whether the reports can be shared out so that the receipts are those of the serial path,
and runs the shares with :func:`fork_shares`: share 0 in the calling process, the others
in workers forked from it. The worker receives its job by inheritance (``_FORK_JOB``) and
sends back plain values (pickling thousands of attrs objects costs more than the work).
"""

from __future__ import annotations

import gc
import multiprocessing
import threading
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime
from uuid import UUID

from sipantau_core.access import Principal
from sipantau_core.desk._records import _violations_from, _violations_json
from sipantau_core.domain import Report
from sipantau_core.errors import SipantauError
from sipantau_core.events import ReportEvent
from sipantau_core.ports import Storage
from sipantau_core.results import Receipt
from sipantau_core.rules import Verdict
from sipantau_core.signing import SignedReport

__all__ = ["fork_shares", "plan_shares"]

Item = Report | SignedReport | SipantauError
Outcome = tuple[list[Receipt | SipantauError], list[tuple[int, ReportEvent]]]
#: The desk's ``_run_batch``: check, store and count reports in one transaction.
RunBatch = Callable[[Sequence[Item], Sequence[Principal]], Outcome]

#: The parallel bulk path gives each forked worker at least this many reports.
_MIN_SHARE = 500
#: A share is stored in rounds (transactions) of at most this many reports.
_ROUND = 2000
#: One parallel bulk call at a time in a process (they share ``_FORK_JOB``).
_FORK_LOCK = threading.Lock()
#: What forked workers inherit: how to store a batch, the storage, the reports read,
#: their principals and the shares (set by the parent just before it forks).
_FORK_JOB: tuple[RunBatch, Storage, Sequence[Item], Sequence[Principal], list[list[int]]] | None = (
    None
)


def plan_shares(
    submissions: Sequence[Item], workers: int, storage: Storage
) -> list[list[int]] | None:
    """The positions of ``submissions`` in ``workers`` shares by TPS, or ``None`` for
    the serial path (one worker, too few reports, storage in memory, no ``fork``, or a
    report id — its own or the one it amends — in two shares)."""
    if (
        workers < 2
        or len(submissions) < 2 * _MIN_SHARE
        or not storage.multi_process
        or "fork" not in multiprocessing.get_all_start_methods()
    ):
        return None
    n = min(workers, len(submissions) // _MIN_SHARE)
    shares: list[list[int]] = [[] for _ in range(n)]
    owner: dict[UUID, int] = {}
    for i, item in enumerate(submissions):
        report = item.report if isinstance(item, SignedReport) else item
        if isinstance(report, SipantauError):
            shares[i % n].append(i)
            continue
        share = zlib.crc32(report.station.compact.encode()) % n
        ids = [report.report_id]
        if report.amends is not None:
            ids.append(report.amends.report_id)
        for report_id in ids:
            if owner.setdefault(report_id, share) != share:
                return None
        shares[share].append(i)
    return [share for share in shares if share]


def fork_shares(
    run_batch: RunBatch,
    storage: Storage,
    submissions: Sequence[Item],
    principals: Sequence[Principal],
    shares: list[list[int]],
) -> tuple[list[Receipt | SipantauError], list[tuple[int, ReportEvent]], BaseException | None]:
    """Store share 0 here and the others in forked workers, each share in rounds of at
    most ``_ROUND`` reports (one transaction each, in order); the items in order, the
    events sorted by position, and the first failure (raised by the caller once what was
    committed is announced). Parallel calls from several threads take turns.

    Rounds keep every worker busy to the end: a transaction's last step (numbering its
    reports in the log's tree) holds the log's head, so the workers' last steps queue;
    the smaller the last round, the shorter the queue."""
    global _FORK_JOB  # what the forked workers inherit, set just before they fork
    with _FORK_LOCK:
        _FORK_JOB = (run_batch, storage, submissions, principals, shares)
        context = multiprocessing.get_context("fork")
        items: list[Receipt | SipantauError | None] = [None] * len(submissions)
        events: list[tuple[int, ReportEvent]] = []
        failure: BaseException | None = None
        try:
            # Share 0 is stored here, while forked workers store the others.
            with ProcessPoolExecutor(len(shares) - 1, mp_context=context) as pool:
                futures = [pool.submit(_run_share, n) for n in range(1, len(shares))]
                mine, announced, failure = _run_rounds(
                    run_batch, submissions, principals, shares[0]
                )
                for position, item in zip(shares[0], mine, strict=False):
                    items[position] = item
                events.extend((shares[0][k], event) for k, event in announced)
                for share, future in zip(shares[1:], futures, strict=True):
                    try:
                        done, sent, failed = future.result()
                    except BaseException as e:  # noqa: BLE001 - raised once all are done
                        failure = failure or e
                        continue
                    failure = failure or failed
                    for position, got in zip(share, done, strict=False):
                        items[position] = (
                            got
                            if isinstance(got, SipantauError)
                            else _receive_receipt(got, _report_of(submissions[position]))
                        )
                    for k, kind, at in sent:
                        position = share[k]
                        receipt = items[position]
                        assert isinstance(receipt, Receipt)
                        report = _report_of(submissions[position])
                        event = ReportEvent(kind, report, receipt, principals[position], at)
                        events.append((position, event))
        finally:
            _FORK_JOB = None
    events.sort(key=lambda pair: pair[0])
    return [item for item in items if item is not None], events, failure


def _report_of(item: Item) -> Report:
    assert not isinstance(item, SipantauError)  # an error has no receipt or event
    return item.report if isinstance(item, SignedReport) else item


def _rounds(positions: list[int]) -> list[list[int]]:
    """``positions`` in order, in rounds of at most ``_ROUND`` (of equal size)."""
    n = max(1, -(-len(positions) // _ROUND))
    size = -(-len(positions) // n)
    return [positions[i : i + size] for i in range(0, len(positions), size)]


def _run_rounds(
    run_batch: RunBatch,
    submissions: Sequence[Item],
    principals: Sequence[Principal],
    positions: list[int],
) -> tuple[list[Receipt | SipantauError], list[tuple[int, ReportEvent]], BaseException | None]:
    """Store the reports at ``positions`` round by round; what the rounds committed
    (items and events, by place in ``positions``) and the failure that stopped them."""
    items: list[Receipt | SipantauError] = []
    events: list[tuple[int, ReportEvent]] = []
    for part in _rounds(positions):
        try:
            done, announced = run_batch(
                [submissions[i] for i in part], [principals[i] for i in part]
            )
        except BaseException as e:  # noqa: BLE001 - the caller raises it, after announcing
            return items, events, e
        base = len(items)
        items.extend(done)
        events.extend((base + k, event) for k, event in announced)
    return items, events, None


_SentReceipt = tuple[
    bytes | None, str, int, bytes | None, str | None, datetime, str, str | None, int | None,
    str, int | None, str,
]  # fmt: skip


def _send_receipt(r: Receipt, report: Report) -> _SentReceipt:
    """A receipt as plain values: what crosses from a worker to the parent (pickling
    thousands of attrs objects with UUIDs costs more than the work). What the report
    that the parent holds already says (its id, its chain when it is the first version,
    its TPS) is left out (``None``)."""
    violations = _violations_json(Verdict(r.violations)) if r.violations else "[]"
    report_id = None if r.report_id == report.report_id else r.report_id.bytes
    chain_id = None if r.chain_id == r.report_id else r.chain_id.bytes
    station = None if r.station == report.station.compact else r.station
    fields = (report_id, r.status, r.version, chain_id, station)
    leaf = (r.leaf_index, r.leaf_hash, r.tree_size, r.tree_root)
    return (*fields, r.received_at, violations, r.first_status, *leaf)


def _receive_receipt(sent: _SentReceipt, report: Report) -> Receipt:
    sent_id, status, version, sent_chain, station, received_at, violations, first = sent[:8]
    leaf_index, leaf_hash, tree_size, tree_root = sent[8:]
    report_id = report.report_id if sent_id is None else UUID(bytes=sent_id)
    return Receipt(
        report_id=report_id,
        status=status,  # type: ignore[arg-type]
        version=version,
        chain_id=report_id if sent_chain is None else UUID(bytes=sent_chain),
        station=report.station.compact if station is None else station,
        received_at=received_at,
        violations=_violations_from(violations),
        first_status=first,
        leaf_index=leaf_index,
        leaf_hash=leaf_hash,
        tree_size=tree_size,
        tree_root=tree_root,
    )


_Share = tuple[
    list[_SentReceipt | SipantauError], list[tuple[int, str, datetime]], BaseException | None
]


def _run_share(n: int) -> _Share:
    """In a forked worker: store share ``n`` of the job, round by round, through
    connections of its own; the receipts as plain values, the events as (position in the
    share, kind, time), and the failure that stopped it."""
    assert _FORK_JOB is not None, "a worker of the parallel bulk path runs in a fork"
    run_batch, storage, submissions, principals, shares = _FORK_JOB
    positions = shares[n]
    storage.after_fork()
    try:
        gc.disable()  # as in the parent's batch (the fork inherits the setting anyway)
        items, events, failure = _run_rounds(run_batch, submissions, principals, positions)
    finally:
        storage.close()
    sent = [
        _send_receipt(x, _report_of(submissions[positions[k]])) if isinstance(x, Receipt) else x
        for k, x in enumerate(items)
    ]
    return sent, [(k, event.kind, event.at) for k, event in events], failure
