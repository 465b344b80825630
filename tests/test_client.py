"""The monitor client and the staff client against the real HTTP server on loopback.

The server (``create_app(desk)``) runs under uvicorn in a background thread on
127.0.0.1 with a desk on ``memory://``. ``httpx.MockTransport`` stands in only where a
test needs answers our server never gives on demand (a captive portal, a 429 with a
date in ``Retry-After``). The helpers here are also used by ``test_client_faults.py``.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from sipantau_adapters.http.client import (
    ApiError,
    AsyncMonitorClient,
    DeskUnreachable,
    MonitorClient,
    OutboxError,
    RetryPolicy,
    StaffClient,
)
from sipantau_core.access import Principal, Role
from sipantau_core.desk import Desk
from sipantau_core.domain import (
    Amends,
    Incident,
    SecurityStatus,
    SituationReport,
    Stage,
    TallyReport,
    VoterCounts,
)
from sipantau_core.signing import DeviceKey
from sipantau_core.testing.contracts import small_deployment
from sqlite_locks import new_file_being_written

STATIONS = {
    "LLG-0001": "1673011001001",
    "LLG-0002": "1673011001002",
    "LLG-0003": "1673021002001",
}
SYSTEM = Principal(id="import", role=Role.SYSTEM)
COORDINATOR = Principal(id="coord", role=Role.COORDINATOR, scope="16.73")
#: Short waits: the tests run against loopback.
FAST = RetryPolicy(base_delay=0.01, max_delay=0.05, attempts_per_call=3, max_call_wait=1.0)


def device_key(monitor: str) -> DeviceKey:
    """A fixed key per monitor (subprocesses rebuild it from the monitor id)."""
    return DeviceKey.from_seed(monitor.encode().ljust(32, b"\0"))


# ---------------------------------------------------------------------------------------
# Reports
# ---------------------------------------------------------------------------------------


def tally(
    monitor: str = "LLG-0001",
    votes: tuple[int, int] = (120, 80),
    *,
    invalid: int = 5,
    valid: int | None = None,
    amends: tuple[uuid.UUID, int] | None = None,
    report_id: uuid.UUID | None = None,
) -> TallyReport:
    """A tally for the monitor's TPS that breaks no rule (unless ``valid`` is forced)."""
    total = sum(votes) + invalid
    return TallyReport(
        report_id=report_id or uuid.uuid4(),
        monitor=monitor,
        station=STATIONS[monitor],
        contest="walikota",
        observed_at=datetime.now(UTC) - timedelta(minutes=1),
        votes={1: votes[0], 2: votes[1]},
        valid=sum(votes) if valid is None else valid,
        invalid=invalid,
        total=total,
        voted=VoterCounts(total, 0, 0),
        amends=Amends(*amends) if amends is not None else None,
    )


def situation(
    monitor: str = "LLG-0001",
    stage: Stage = Stage.OPENING,
    *,
    severity: int | None = None,
    station: str | None = None,
) -> SituationReport:
    incidents = () if severity is None else (Incident("logistik", severity, "kotak suara"),)
    return SituationReport(
        report_id=uuid.uuid4(),
        monitor=monitor,
        station=station or STATIONS[monitor],
        observed_at=datetime.now(UTC) - timedelta(minutes=1),
        stage=stage,
        status=SecurityStatus.SAFE if severity is None else SecurityStatus.ALERT,
        incidents=incidents,
    )


# ---------------------------------------------------------------------------------------
# The desk and its server on loopback
# ---------------------------------------------------------------------------------------


def open_desk(*monitors: str) -> Desk:
    """A desk on memory:// with the small deployment and the monitors' keys enrolled."""
    desk = Desk.open(small_deployment(), "memory://")
    for monitor in monitors:
        desk.enrol_device(monitor, device_key(monitor).public_key, principal=COORDINATOR)
    return desk


def counted_ids(desk: Desk) -> list[uuid.UUID]:
    """Every report id the desk stores (all versions), with repeats if any."""
    found = desk.reports("16.73", principal=SYSTEM, heads_only=False)
    return [stored.report_id for stored, _ in found]


def _create_app(desk: Desk) -> Any:
    from sipantau_adapters.http.server import create_app

    return create_app(desk)


class LiveServer:
    """``create_app(desk)`` under uvicorn in a thread on 127.0.0.1 (port 0: any free one)."""

    def __init__(self, desk: Desk, port: int = 0):
        self.desk = desk
        config = uvicorn.Config(
            _create_app(desk), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.port = port

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.01)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        assert not self.thread.is_alive(), "the server did not stop"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def free_port() -> int:
    """A port nothing listens on (connections to it are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.fixture
def desk() -> Iterator[Desk]:
    d = open_desk(*STATIONS)
    yield d
    d.close()


@pytest.fixture
def server(desk: Desk) -> Iterator[LiveServer]:
    live = LiveServer(desk).start()
    yield live
    live.stop()


@pytest.fixture
def client(server: LiveServer, tmp_path: Path) -> Iterator[MonitorClient]:
    c = MonitorClient(
        server.url,
        key=device_key("LLG-0001"),
        outbox=tmp_path / "outbox.db",
        monitor_id="LLG-0001",
        retry=FAST,
        timeout=5.0,
    )
    yield c
    c.close()


@pytest.fixture
def officer_token(desk: Desk) -> str:
    return desk.issue_token(Principal("officer-1", Role.OFFICER, scope="16.73"), principal=SYSTEM)


# ---------------------------------------------------------------------------------------
# Submitting
# ---------------------------------------------------------------------------------------


def test_submit_is_accepted_with_a_receipt(client: MonitorClient, desk: Desk) -> None:
    report = tally()
    result = client.submit(report)
    assert result.delivered and not result.duplicate
    assert result.status_code == 201
    assert result.receipt_status == "accepted"
    assert result.receipt is not None
    assert result.receipt["report_id"] == str(report.report_id)
    assert result.message_id == "Laporan diterima desk."
    entry = client.outbox.get(report.report_id)
    assert entry is not None
    assert (entry.state, entry.attempts, entry.last_error) == ("delivered", 1, None)
    assert desk.tally("16.73", principal=SYSTEM).votes == {1: 120, 2: 80}
    # The device may ask for the receipt of its own report later.
    assert client.receipt(report.report_id)["status"] == "accepted"
    with pytest.raises(ApiError) as info:
        client.receipt(uuid.uuid4())
    assert info.value.status_code == 404


def test_the_outbox_holds_the_signed_report_before_any_network_io(tmp_path: Path) -> None:
    """The transport looks into the outbox file (with its own connection) when the
    request arrives: the report is there, committed, already."""
    seen: list[str] = []
    outbox = tmp_path / "outbox.db"

    def handler(request: httpx.Request) -> httpx.Response:
        import sqlite3

        with sqlite3.connect(outbox) as db:
            seen.extend(r[0] for r in db.execute("SELECT state FROM outbox"))
        body = json.loads(request.content)
        assert set(body) == {"report", "signature"}
        return httpx.Response(503, json={"code": "storage.unavailable"})

    with MonitorClient(
        "http://desk.test",
        key=device_key("LLG-0001"),
        outbox=outbox,
        monitor_id="LLG-0001",
        retry=RetryPolicy(attempts_per_call=1),
        transport=httpx.MockTransport(handler),
    ) as c:
        result = c.submit(tally())
    assert result.queued
    assert seen == ["pending"]


def test_a_resend_is_a_duplicate_and_counted_once(
    client: MonitorClient, server: LiveServer, desk: Desk, tmp_path: Path
) -> None:
    report = tally()
    assert client.submit(report).receipt_status == "accepted"
    # The same client answers from its outbox: no second request.
    again = client.submit(report)
    assert again.delivered and again.attempts == 1
    # Another outbox (a reinstalled app) sends it again: the desk says duplicate.
    with MonitorClient(
        server.url,
        key=device_key("LLG-0001"),
        outbox=tmp_path / "other.db",
        monitor_id="LLG-0001",
        retry=FAST,
    ) as other:
        resent = other.submit(report)
    assert resent.delivered and resent.duplicate
    assert resent.status_code == 200
    assert resent.receipt is not None and resent.receipt["first_status"] == "accepted"
    assert resent.message_id == "Laporan ini sudah diterima desk sebelumnya."
    assert counted_ids(desk) == [report.report_id]
    assert desk.tally("16.73", principal=SYSTEM).votes == {1: 120, 2: 80}


def test_a_flagged_report_is_delivered_and_its_violations_surfaced(
    client: MonitorClient, desk: Desk
) -> None:
    report = tally(valid=150)  # 120 + 80 ≠ 150: votes.sum_mismatch, a hard rule
    result = client.submit(report)
    assert result.delivered and result.flagged
    assert result.status_code == 422
    assert result.attempts == 1  # never retried
    assert result.error is not None and result.error.code == "report.flagged"
    codes = [v["code"] for v in result.violations]
    assert "votes.sum_mismatch" in codes
    assert "Jumlah suara sah 150" in result.message_id
    assert result.message_id.startswith("Laporan diterima tetapi ditandai")
    assert client.status(report.report_id).flagged
    # Stored, not counted.
    assert counted_ids(desk) == [report.report_id]
    assert desk.tally("16.73", principal=SYSTEM).stations_counted == 0


def test_a_conflict_is_refused_not_retried_and_kept(client: MonitorClient, desk: Desk) -> None:
    assert client.submit(tally()).delivered
    second = tally(votes=(1, 2))  # a second tally chain for the TPS: 409
    result = client.submit(second)
    assert result.refused
    assert result.status_code == 409
    assert result.attempts == 1
    assert result.error is not None
    assert result.error.code == "report.station_already_reported"
    assert "kirim koreksi" in result.error.message_id
    assert result.message_id.startswith("Laporan ditolak desk: ")
    entry = client.outbox.get(second.report_id)
    assert entry is not None and entry.state == "refused"
    assert entry.response is not None and entry.response["code"] == entry_code(entry)
    # Kept for inspection, never resent.
    assert client.flush(timeout=1).results == ()
    assert client.deliver_pending(force=True) == []
    assert client.status(second.report_id).attempts == 1
    assert len(counted_ids(desk)) == 1


def entry_code(entry: Any) -> str:
    return str(entry.response["code"])


def test_permission_denied_is_refused_with_the_servers_message(
    client: MonitorClient, desk: Desk
) -> None:
    # LLG-0001 is assigned to TPS …001; a report for …002 is out of its scope: 403.
    result = client.submit(situation(station=STATIONS["LLG-0002"]))
    assert result.refused
    assert result.status_code == 403
    assert result.attempts == 1
    assert result.error is not None and result.error.code.startswith("access.")
    assert "pemantau LLG-0001" in result.error.message_id
    assert counted_ids(desk) == []


def test_an_unenrolled_device_is_refused_then_requeued_after_enrolment(
    server: LiveServer, desk: Desk, tmp_path: Path
) -> None:
    key = DeviceKey.generate()  # not enrolled: 401 signature.unknown_key
    with MonitorClient(
        server.url, key=key, outbox=tmp_path / "o.db", monitor_id="LLG-0002", retry=FAST
    ) as c:
        report = situation("LLG-0002")
        result = c.submit(report)
        assert result.refused and result.status_code == 401
        assert result.error is not None and result.error.code == "signature.unknown_key"
        assert result.error.message_id == "kunci perangkat belum terdaftar di desk"
        desk.enrol_device("LLG-0002", key.public_key, principal=COORDINATOR)
        assert c.requeue(report.report_id).queued
        flushed = c.flush(timeout=5)
        assert flushed.done and [d.receipt_status for d in flushed.results] == ["accepted"]
        other = situation("LLG-0002", Stage.VOTING)
        desk.revoke_device(key.public_key.key_id, principal=COORDINATOR)
        assert c.submit(other).error.code == "signature.revoked_key"  # type: ignore[union-attr]
    # After a key rotation the device signs its refused reports anew with the new key.
    with MonitorClient(
        server.url,
        key=device_key("LLG-0002"),
        outbox=tmp_path / "o.db",
        monitor_id="LLG-0002",
        retry=FAST,
    ) as rotated:
        assert rotated.requeue(other.report_id, resign=True).queued
        assert rotated.flush(timeout=5).done
        assert rotated.status(other.report_id).receipt_status == "accepted"
    assert sorted(counted_ids(desk)) == sorted([report.report_id, other.report_id])


def test_a_report_of_another_monitor_is_not_stored(client: MonitorClient) -> None:
    with pytest.raises(OutboxError) as info:
        client.submit(tally("LLG-0002"))
    assert info.value.code == "outbox.wrong_monitor"
    assert client.entries() == []


def test_another_report_under_a_stored_id_is_refused_locally(client: MonitorClient) -> None:
    first = tally()
    client.submit(first)
    with pytest.raises(OutboxError) as info:
        client.submit(tally(votes=(1, 1), report_id=first.report_id))
    assert info.value.code == "outbox.conflict"


def test_a_payload_the_desk_would_refuse_as_too_large_is_not_stored(
    client: MonitorClient,
) -> None:
    big = situation()
    big = SituationReport(
        report_id=big.report_id,
        monitor=big.monitor,
        station=big.station,
        observed_at=big.observed_at,
        stage=big.stage,
        status=SecurityStatus.ALERT,
        incidents=[Incident("lainnya", 1, "x" * 2000)] * 40,
    )
    with pytest.raises(OutboxError) as info:
        client.submit(big)
    assert info.value.code == "payload.too_large"
    assert client.entries() == []


# ---------------------------------------------------------------------------------------
# Offline first
# ---------------------------------------------------------------------------------------


def outbox_client(path: Path) -> MonitorClient:
    """A client of LLG-0001 with its outbox at ``path`` and no desk behind it."""
    return MonitorClient(
        "http://127.0.0.1:9", key=device_key("LLG-0001"), outbox=path, monitor_id="LLG-0001"
    )


def test_a_new_outbox_being_written_by_another_connection_still_opens(tmp_path: Path) -> None:
    """SQLite refuses the switch to WAL at once ("database is locked", no busy wait) while
    another connection writes a new file still in rollback mode: what a device's threads
    opening a new outbox together met (the demo's offline monitor sending and catching up
    at once). The outbox waits it out."""
    path = tmp_path / "outbox.db"
    with new_file_being_written(path), outbox_client(path) as c:
        assert c.entries() == []


def test_an_outbox_that_cannot_be_opened_is_a_typed_error(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    path.write_bytes(b"not a database, but sixteen bytes or more of something else")
    with pytest.raises(OutboxError) as caught:
        outbox_client(path)
    assert caught.value.code == "outbox.unavailable"
    assert caught.value.message_id


def test_the_outbox_survives_a_new_client(desk: Desk, tmp_path: Path) -> None:
    port = free_port()
    outbox = tmp_path / "outbox.db"
    first, correction = tally(), None
    with MonitorClient(
        f"http://127.0.0.1:{port}",
        key=device_key("LLG-0001"),
        outbox=outbox,
        monitor_id="LLG-0001",
        retry=FAST,
        timeout=2.0,
    ) as offline:
        result = offline.submit(first)
        assert result.queued
        assert result.attempts == FAST.attempts_per_call
        assert result.last_error is not None and "ConnectError" in result.last_error
        assert result.next_attempt_at is not None
        assert "akan dikirim otomatis" in result.message_id
        # A correction made offline waits behind the report it amends.
        correction = tally(votes=(121, 80), amends=(first.report_id, 1))
        assert offline.submit(correction).queued
        assert offline.deliver_pending(force=True)[0].queued
    live = LiveServer(desk, port).start()
    try:
        with MonitorClient(
            live.url,
            key=device_key("LLG-0001"),
            outbox=outbox,
            monitor_id="LLG-0001",
            retry=FAST,
        ) as later:
            assert [e.report_id for e in later.entries("pending")] == [
                first.report_id,
                correction.report_id,
            ]
            flushed = later.flush(timeout=10)
            assert flushed.done
            assert [d.report_id for d in flushed.delivered] == [
                first.report_id,
                correction.report_id,
            ]
            assert all(e.state == "delivered" for e in later.entries())
    finally:
        live.stop()
    assert sorted(counted_ids(desk)) == sorted([first.report_id, correction.report_id])
    assert desk.tally("16.73", principal=SYSTEM).votes == {1: 121, 2: 80}


def test_deliver_pending_waits_for_the_backoff_unless_forced(desk: Desk, tmp_path: Path) -> None:
    now = [datetime(2024, 11, 27, 8, 0, tzinfo=UTC)]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += timedelta(seconds=seconds)

    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        raise httpx.ConnectError("no route to host", request=request)

    policy = RetryPolicy(base_delay=10, multiplier=2, jitter=0, attempts_per_call=2)
    with MonitorClient(
        "http://desk.test",
        key=device_key("LLG-0001"),
        outbox=tmp_path / "o.db",
        monitor_id="LLG-0001",
        retry=policy,
        transport=httpx.MockTransport(handler),
        clock=lambda: now[0],
        sleep=sleep,
    ) as c:
        result = c.submit(tally())
        assert result.queued and result.attempts == 1
        assert slept == []  # 10 s is more than max_call_wait: no sleeping in submit
        assert len(calls) == 1  # … and no second attempt within the call
        entry = c.entries("pending")[0]
        assert entry.next_attempt_at == now[0] + timedelta(seconds=10)
        assert c.deliver_pending() == []  # not due
        now[0] += timedelta(seconds=10)
        assert [d.attempts for d in c.deliver_pending()] == [2]
        assert c.entries("pending")[0].next_attempt_at == now[0] + timedelta(seconds=20)
        assert [d.attempts for d in c.deliver_pending(force=True)] == [3]
        flushed = c.flush(timeout=100)
        assert not flushed.done and flushed.pending == 1
        assert slept == [80.0]  # then the next wait (160 s) would end after the deadline


def test_retry_after_is_honoured_and_other_answers_are_sorted(tmp_path: Path) -> None:
    """Scripted answers a real desk gives only under load or behind a captive portal."""
    now = datetime(2024, 11, 27, 8, 0, tzinfo=UTC)
    answers: list[httpx.Response] = [
        httpx.Response(200, html="<html>Wi-Fi login</html>"),  # a captive portal
        httpx.Response(429, headers={"Retry-After": "2"}, json={"code": "server.busy"}),
        httpx.Response(
            503,
            headers={"Retry-After": format_datetime(now + timedelta(seconds=3), usegmt=True)},
            json={"code": "storage.unavailable"},
        ),
        httpx.Response(502, text="bad gateway"),
        # A receipt, but for another report (a cache or a confused proxy): not ours.
        httpx.Response(201, json={"receipt": {"report_id": str(uuid.uuid4())}}),
    ]
    slept: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if answers:
            return answers.pop(0)
        report = json.loads(request.content)["report"]
        return httpx.Response(
            201, json={"receipt": {"report_id": report["report_id"], "status": "accepted"}}
        )

    policy = RetryPolicy(base_delay=0.1, jitter=0, attempts_per_call=6, max_call_wait=5)
    with MonitorClient(
        "http://desk.test",
        key=device_key("LLG-0001"),
        outbox=tmp_path / "o.db",
        monitor_id="LLG-0001",
        retry=policy,
        transport=httpx.MockTransport(handler),
        clock=lambda: now,
        sleep=slept.append,
    ) as c:
        result = c.submit(tally())
    assert result.delivered and result.attempts == 6
    assert slept == [0.1, 2.0, 3.0, 0.8, 1.6]


def test_a_retry_after_beyond_the_call_budget_queues_at_once(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, headers={"Retry-After": "120"}, json={"code": "server.busy"})

    slept: list[float] = []
    with MonitorClient(
        "http://desk.test",
        key=device_key("LLG-0001"),
        outbox=tmp_path / "o.db",
        monitor_id="LLG-0001",
        transport=httpx.MockTransport(handler),
        sleep=slept.append,
    ) as c:
        result = c.submit(tally())
    assert result.queued and result.attempts == 1 and slept == []
    assert result.last_error == "HTTP 429 server.busy"
    assert result.next_attempt_at is not None
    assert result.next_attempt_at - datetime.now(UTC) > timedelta(seconds=110)


def test_backoff_grows_is_capped_and_jittered() -> None:
    policy = RetryPolicy(base_delay=1, multiplier=2, max_delay=30, jitter=0.5)
    rng = random.Random(7)
    for retry, ceiling in [(1, 1), (2, 2), (3, 4), (6, 30), (50, 30), (10_000, 30)]:
        waits = [policy.backoff(retry, rng) for _ in range(200)]
        assert all(ceiling / 2 <= w <= ceiling for w in waits)
        assert len(set(waits)) > 100  # jittered
    assert policy.delay(1, rng, retry_after=20) == 20
    assert RetryPolicy(max_retry_after=60).delay(1, rng, retry_after=10_000) == 60


# ---------------------------------------------------------------------------------------
# The async twin
# ---------------------------------------------------------------------------------------


def test_the_async_client_submits_queues_and_flushes(desk: Desk, tmp_path: Path) -> None:
    port = free_port()
    outbox = tmp_path / "outbox.db"
    first, second = tally("LLG-0003"), situation("LLG-0003", severity=3)

    async def offline() -> None:
        async with AsyncMonitorClient(
            f"http://127.0.0.1:{port}",
            key=device_key("LLG-0003"),
            outbox=outbox,
            monitor_id="LLG-0003",
            retry=FAST,
        ) as c:
            assert (await c.submit(first)).queued
            assert not await c.health()

    async def online(url: str) -> None:
        async with AsyncMonitorClient(
            url, key=device_key("LLG-0003"), outbox=outbox, monitor_id="LLG-0003", retry=FAST
        ) as c:
            assert await c.health()
            flushed = await c.flush(timeout=10)
            assert flushed.done and flushed.delivered[0].report_id == first.report_id
            result = await c.submit(second)
            assert result.delivered and result.receipt_status == "accepted"
            assert (await c.submit(second)).attempts == 1
            assert await c.deliver_pending() == []

    asyncio.run(offline())
    live = LiveServer(desk, port).start()
    try:
        asyncio.run(online(live.url))
    finally:
        live.stop()
    assert sorted(counted_ids(desk)) == sorted([first.report_id, second.report_id])


# ---------------------------------------------------------------------------------------
# Desk staff
# ---------------------------------------------------------------------------------------


def test_staff_client_reads_and_enrols(
    client: MonitorClient, server: LiveServer, desk: Desk, officer_token: str, tmp_path: Path
) -> None:
    assert client.submit(tally()).delivered
    assert client.submit(situation(stage=Stage.VOTING, severity=3)).delivered
    with StaffClient(server.url, officer_token) as staff:
        assert staff.health()
        result = staff.tally("16.73", contest="walikota")
        assert (result.votes, result.valid, result.stations_counted) == ({1: 120, 2: 80}, 200, 1)
        stations = staff.status("16.73")
        assert [s.station for s in stations] == sorted(STATIONS.values())
        assert staff.status("16.73", contest="walikota") == stations  # the only contest
        first = stations[0]
        assert first.tally == "accepted"
        assert first.stage(Stage.VOTING).state in ("in", "late")
        incidents = staff.incidents("16.73", min_severity=2)
        assert [(i.category, i.severity, i.stage) for i in incidents] == [
            ("logistik", 3, Stage.VOTING)
        ]
        assert staff.incidents("16.73", stage=Stage.OPENING) == []
        assert staff.receipt(incidents[0].report_id)["status"] == "accepted"
        key = DeviceKey.generate()
        key_id = staff.enrol_device("LLG-0002", key.public_key)
        assert key_id == key.public_key.key_id
    with MonitorClient(
        server.url, key=key, outbox=tmp_path / "2.db", monitor_id="LLG-0002", retry=FAST
    ) as second:
        assert second.submit(situation("LLG-0002")).receipt_status == "accepted"


def test_staff_client_errors(server: LiveServer, officer_token: str) -> None:
    with StaffClient(server.url, "not-a-token") as bad:
        with pytest.raises(ApiError) as info:
            bad.tally("16.73")
        assert info.value.status_code == 401
        assert info.value.code == "access.bad_token"
        assert info.value.message_id == "token tidak dikenal atau sudah dicabut"
    with StaffClient(server.url, officer_token) as staff, pytest.raises(ApiError) as info:
        staff.enrol_device("LLG-9999", DeviceKey.generate().public_key)
    assert info.value.status_code in (404, 422)
    with (
        StaffClient(f"http://127.0.0.1:{free_port()}", officer_token) as gone,
        pytest.raises(DeskUnreachable),
    ):
        gone.tally("16.73")
