"""Backpressure end to end: the server's bounded queue and its bound on waiting, and real
monitor clients with their outboxes under overload.

- Past the bounded queue the server answers ``429 server.busy`` with ``Retry-After``
  (``test_http_server`` checks the answer itself); here many real ``MonitorClient``s, each
  with its own outbox file, overload a server whose writes are slow: every client waits
  at least ``Retry-After`` before it sends a refused report again (seen from the server's
  side of the wire), and in the end every report is delivered and stored exactly once,
  none dropped, none counted twice.
- No submission waits unboundedly: when the write hangs (a database that stopped
  answering), each waiting request is answered ``503 server.timeout`` with
  ``Retry-After`` after ``max_wait`` — while the write still hangs. One that was still
  queued is dropped from the queue (never written); one that was being written commits
  when the write resumes; the client's resend learns which (``201`` or ``200 duplicate``).
"""

from __future__ import annotations

import itertools
import json
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from sipantau_adapters.http._batch import GroupCommitter
from sipantau_adapters.http.client import MonitorClient, RetryPolicy
from sipantau_adapters.http.server import create_app, running
from sipantau_core import (
    Deployment,
    Desk,
    PollingStation,
    Principal,
    Role,
    Stage,
    TallyReport,
    VoterCounts,
)
from sipantau_core.signing import sign_report
from sipantau_core.testing.contracts import build_deployment
from test_client import device_key, situation

SYSTEM = Principal(id="import", role=Role.SYSTEM)
MONITORS = 12


def deployment_of(n: int) -> Deployment:
    """``n`` TPS in two districts of Kota Lubuklinggau, one monitor each."""
    return build_deployment(
        PollingStation(code=f"16730{1 + i % 2}1001{i + 1:03d}", registered_voters=400)
        for i in range(n)
    )


def open_desk(n: int) -> Desk:
    desk = Desk.open(deployment_of(n), storage="memory://")
    for monitor in desk.deployment.monitors.values():
        desk.enrol_device(monitor.id, device_key(monitor.id).public_key, principal=SYSTEM)
    return desk


def station_of(desk: Desk, monitor: str) -> str:
    return desk.deployment.monitors[monitor].station.compact


class SlowWrites:
    """A desk whose batch writes take ``delay`` seconds (the rest passes through)."""

    def __init__(self, desk: Desk, delay: float):
        self._desk = desk
        self._delay = delay

    def submit_many(self, *args: Any, **kwargs: Any) -> Any:
        time.sleep(self._delay)
        return self._desk.submit_many(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._desk, name)


class HungWrites(SlowWrites):
    """A desk whose batch writes wait until ``resume`` is set (a database that hangs)."""

    def __init__(self, desk: Desk):
        super().__init__(desk, 0)
        self.resume = threading.Event()
        self.entered = threading.Event()

    def submit_many(self, *args: Any, **kwargs: Any) -> Any:
        self.entered.set()
        assert self.resume.wait(30), "the test never resumed the writes"
        return super().submit_many(*args, **kwargs)


class Wiretap:
    """An ASGI wrapper that records each ``POST /v1/reports``: (arrived, report id,
    status, Retry-After, answered), times on the monotonic clock."""

    def __init__(self, app: Any):
        self.app = app
        self.state = app.state
        self.log: list[tuple[float, str, int, float | None, float]] = []
        self._lock = threading.Lock()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != "/v1/reports":
            await self.app(scope, receive, send)
            return
        arrived = time.monotonic()
        chunks: list[bytes] = []
        answer: dict[str, Any] = {}

        async def tapped_receive() -> Any:
            message = await receive()
            if message["type"] == "http.request":
                chunks.append(message.get("body", b""))
            return message

        async def tapped_send(message: Any) -> None:
            if message["type"] == "http.response.start":
                answer["status"] = message["status"]
                headers = dict(message.get("headers") or [])
                value = headers.get(b"retry-after")
                answer["retry_after"] = float(value) if value is not None else None
                answer["at"] = time.monotonic()
            await send(message)

        await self.app(scope, tapped_receive, tapped_send)
        report_id = json.loads(b"".join(chunks))["report"]["report_id"]
        with self._lock:
            self.log.append(
                (arrived, report_id, answer["status"], answer["retry_after"], answer["at"])
            )


@pytest.fixture
def desk() -> Iterator[Desk]:
    d = open_desk(MONITORS)
    yield d
    d.close()


def test_overloaded_clients_wait_out_retry_after_and_deliver_every_report_once(
    desk: Desk, tmp_path: Path
) -> None:
    # Each batch takes 0.2 s to write and two submissions may wait: twelve monitors
    # sending at once overflow the queue.
    app = create_app(
        SlowWrites(desk, 0.2),  # type: ignore[arg-type]
        max_queue=2,
        max_batch=2,
        batch_window_ms=0,
        retry_after=1,
        web=False,
    )
    tap = Wiretap(app)
    policy = RetryPolicy(base_delay=0.01, jitter=0, attempts_per_call=3, max_call_wait=1.5)
    monitors = sorted(desk.deployment.monitors)
    sent: dict[str, list[Any]] = {m: [] for m in monitors}
    results: dict[str, list[Any]] = {m: [] for m in monitors}
    start = threading.Barrier(len(monitors))
    with running(tap) as url:  # type: ignore[arg-type]

        def monitor_day(monitor: str) -> None:
            station = station_of(desk, monitor)
            with MonitorClient(
                url,
                key=device_key(monitor),
                outbox=tmp_path / f"{monitor}.db",
                monitor_id=monitor,
                retry=policy,
            ) as client:
                start.wait()
                for report in (
                    situation(monitor, Stage.OPENING, station=station),
                    tally_at(monitor, station, votes=(100 + len(monitor), 50)),
                ):
                    sent[monitor].append(report)
                    results[monitor].append(client.submit(report))

        threads = [threading.Thread(target=monitor_day, args=(m,)) for m in monitors]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        # what the calls left queued in the outboxes goes out now (honouring the waits)
        for monitor in monitors:
            with MonitorClient(
                url,
                key=device_key(monitor),
                outbox=tmp_path / f"{monitor}.db",
                monitor_id=monitor,
                retry=policy,
            ) as client:
                assert client.flush(timeout=60).done
                assert {e.state for e in client.entries()} == {"delivered"}
                assert sorted(e.report_id for e in client.entries()) == sorted(
                    r.report_id for r in sent[monitor]
                )
    stats = app.state.committer.stats
    busy = [entry for entry in tap.log if entry[2] == 429]
    assert busy and stats.refused == len(busy)  # the queue did overflow
    assert all(retry_after == 1 for _, _, _, retry_after, _ in busy)
    # Every call answered: delivered, or queued with its report in the outbox (never
    # refused, never lost); a 429 is never the end of a report.
    for monitor in monitors:
        assert all(r.delivered or r.queued for r in results[monitor])
    # After a 429, the same report came back no sooner than Retry-After later.
    by_report: dict[str, list[tuple[float, str, int, float | None, float]]] = {}
    for entry in sorted(tap.log):
        by_report.setdefault(entry[1], []).append(entry)
    waits = []
    for attempts in by_report.values():
        for before, after in itertools.pairwise(attempts):
            if before[2] == 429:
                assert before[3] is not None
                waits.append(after[0] - before[4])
                assert after[0] - before[4] >= before[3], attempts
    assert waits
    # Each report stored once, the count that of the tallies sent.
    stored = desk.reports("16.73", principal=SYSTEM, heads_only=False)
    ids = [s.report_id for s, _ in stored]
    assert len(ids) == len(set(ids)) == 2 * len(monitors)
    assert sorted(ids) == sorted(r.report_id for rs in sent.values() for r in rs)
    expected = sum(r.votes[1] for rs in sent.values() for r in rs if r.kind == "tally")
    assert desk.tally("16.73", principal=SYSTEM).votes[1] == expected


def tally_at(monitor: str, station: str, votes: tuple[int, int]) -> TallyReport:
    """A tally of ``monitor`` at ``station`` that breaks no rule."""
    total = sum(votes) + 5
    return TallyReport(
        report_id=uuid.uuid4(),
        monitor=monitor,
        station=station,
        contest="walikota",
        observed_at=datetime.now(UTC) - timedelta(minutes=1),
        votes={1: votes[0], 2: votes[1]},
        valid=sum(votes),
        invalid=5,
        total=total,
        voted=VoterCounts(total, 0, 0),
    )


def test_a_submission_waits_no_longer_than_max_wait(desk: Desk) -> None:
    hung = HungWrites(desk)
    app = create_app(hung, max_wait=0.3, retry_after=2, batch_window_ms=0, web=False)  # type: ignore[arg-type]
    first, second = (
        sign_report(tally_at(m, station_of(desk, m), votes=(100, 50)), device_key(m)).to_json()
        for m in ("LLG-0001", "LLG-0002")
    )
    headers = {"Content-Type": "application/json"}
    answers: dict[str, httpx.Response] = {}
    with running(app) as url:

        def post(name: str, body: bytes) -> None:
            with httpx.Client(base_url=url, timeout=30) as http:
                answers[name] = http.post("/v1/reports", content=body, headers=headers)

        t1 = threading.Thread(target=post, args=("first", first))
        t1.start()
        assert hung.entered.wait(10)  # the writer took the first: its write hangs
        t2 = threading.Thread(target=post, args=("second", second))
        t2.start()  # the second waits in the queue behind it
        t1.join(20)
        t2.join(20)
        # Both answered while the write still hangs: the bound held.
        assert not hung.resume.is_set()
        for name in ("first", "second"):
            answer = answers[name]
            assert answer.status_code == 503, answer.text
            assert answer.json()["code"] == "server.timeout"
            assert answer.headers["retry-after"] == "2"
            assert "traceback" not in answer.text.lower()
        stats = app.state.committer.stats
        assert stats.timed_out == 2
        hung.resume.set()  # the database answers again
        with httpx.Client(base_url=url, timeout=30) as http:
            again = {
                name: http.post("/v1/reports", content=body, headers=headers)
                for name, body in (("first", first), ("second", second))
            }
        # the first was being written: it committed, its resend is a duplicate; the
        # second was dropped from the queue unwritten: its resend is accepted
        assert again["first"].status_code == 200
        assert again["first"].json()["receipt"]["status"] == "duplicate"
        assert again["second"].status_code == 201
        assert stats.dropped == 1
    ids = [s.report_id for s, _ in desk.reports("16.73", principal=SYSTEM, heads_only=False)]
    assert len(ids) == len(set(ids)) == 2


def test_the_wait_bound_is_checked() -> None:
    with pytest.raises(ValueError, match="max_wait"):
        GroupCommitter(lambda items: [], max_wait=0)
    assert GroupCommitter(lambda items: [], max_wait=None).pending == 0  # no bound


# ---------------------------------------------------------------------------------------
# The client's side: a Retry-After holds every report of the outbox, not only the one
# it answered (scripted answers, a clock and sleep the test drives)
# ---------------------------------------------------------------------------------------


class Script:
    """A server that answers 429 with ``Retry-After`` while ``busy``, else a receipt."""

    def __init__(self, retry_after: int):
        self.retry_after = retry_after
        self.busy = True
        self.seen: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        report_id = json.loads(request.content)["report"]["report_id"]
        self.seen.append(report_id)
        if self.busy:
            return httpx.Response(
                429,
                headers={"Retry-After": str(self.retry_after)},
                json={"code": "server.busy", "message": "busy", "message_id": "sibuk"},
            )
        return httpx.Response(201, json={"receipt": {"report_id": report_id, "status": "accepted"}})


def scripted_client(
    tmp_path: Path, script: Script, now: list[datetime], slept: list[float]
) -> MonitorClient:
    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += timedelta(seconds=seconds)

    return MonitorClient(
        "http://desk.test",
        key=device_key("LLG-0001"),
        outbox=tmp_path / "o.db",
        monitor_id="LLG-0001",
        retry=RetryPolicy(base_delay=0.5, jitter=0, attempts_per_call=2, max_call_wait=5),
        transport=httpx.MockTransport(script),
        clock=lambda: now[0],
        sleep=sleep,
    )


def test_a_new_report_does_not_break_the_servers_retry_after(tmp_path: Path) -> None:
    now = [datetime(2024, 11, 27, 8, 0, tzinfo=UTC)]
    slept: list[float] = []
    script = Script(retry_after=30)  # longer than the 5 s a submit may wait
    with scripted_client(tmp_path, script, now, slept) as client:
        first = client.submit(tally_at("LLG-0001", "1673011001001", (100, 50)))
        assert first.queued and first.attempts == 1 and len(script.seen) == 1
        # A new report now: nothing goes to the server before the 30 s are over.
        second = client.submit(situation("LLG-0001", Stage.VOTING))
        assert second.queued and second.attempts == 0
        assert client.deliver_pending(force=True) == []  # forcing skips backoffs only
        assert len(script.seen) == 1 and slept == []
        now[0] += timedelta(seconds=30)
        script.busy = False
        third = client.submit(situation("LLG-0001", Stage.COUNTING))
        assert third.delivered
        assert [e.state for e in client.entries()] == ["delivered"] * 3
        assert len(script.seen) == 4  # the first twice, then the others once each


def test_submit_and_flush_wait_out_a_short_retry_after(tmp_path: Path) -> None:
    now = [datetime(2024, 11, 27, 8, 0, tzinfo=UTC)]
    slept: list[float] = []
    script = Script(retry_after=3)
    with scripted_client(tmp_path, script, now, slept) as client:
        first = client.submit(tally_at("LLG-0001", "1673011001001", (100, 50)))
        assert first.queued and first.attempts == 2 and slept == [3.0]
        # the second 429 holds the outbox 3 s more: a new submit waits them out first
        script.busy = False
        second = client.submit(situation("LLG-0001", Stage.VOTING))
        assert second.delivered and slept == [3.0, 3.0]
        assert [e.state for e in client.entries()] == ["delivered"] * 2
    now2 = [datetime(2024, 11, 27, 9, 0, tzinfo=UTC)]
    slept2: list[float] = []
    script2 = Script(retry_after=4)
    with scripted_client(tmp_path / "other", script2, now2, slept2) as client:
        client.submit(tally_at("LLG-0001", "1673011001001", (100, 50)))
        script2.busy = False
        slept2.clear()
        flushed = client.flush(timeout=60)
        assert flushed.done and slept2 == [4.0]  # the flush waited out the hold first


def test_an_outbox_of_the_first_schema_is_carried_over(tmp_path: Path) -> None:
    """A device that updates its app keeps its pending reports."""
    import sqlite3

    now = [datetime(2024, 11, 27, 8, 0, tzinfo=UTC)]
    slept: list[float] = []
    script = Script(retry_after=1)
    script.busy = False
    path = tmp_path / "o.db"
    with scripted_client(tmp_path, script, now, slept) as client:
        client.submit(tally_at("LLG-0001", "1673011001001", (100, 50)))
    # the same file as the first schema wrote it: without not_before, user_version 1
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT report_id, monitor, kind, digest, payload FROM outbox").fetchall()
        db.execute("DROP TABLE outbox")
        db.execute(
            "CREATE TABLE outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, report_id TEXT NOT NULL"
            " UNIQUE, monitor TEXT NOT NULL, kind TEXT NOT NULL, digest TEXT NOT NULL, payload"
            " BLOB NOT NULL, state TEXT NOT NULL DEFAULT 'pending', created_at REAL NOT NULL,"
            " attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at REAL NOT NULL,"
            " last_attempt_at REAL, last_error TEXT, status_code INTEGER, response TEXT,"
            " finished_at REAL)"
        )
        db.executemany(
            "INSERT INTO outbox (report_id, monitor, kind, digest, payload, created_at,"
            " next_attempt_at) VALUES (?, ?, ?, ?, ?, 0, 0)",
            rows,
        )
        db.execute("PRAGMA user_version = 1")
    with scripted_client(tmp_path, script, now, slept) as client:
        assert [e.state for e in client.entries()] == ["pending"]
        assert client.flush(timeout=10).done
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 2
