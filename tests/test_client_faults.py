"""Network and process faults between the monitor client and the real server on loopback.

After every fault the outbox is flushed and the desk must hold each report exactly once:
the set of report ids in the outboxes equals the set the desk stores (nothing lost,
nothing extra), and the tally counts each TPS once. Faults: the server stopped mid-run;
connections reset before and after the desk answered (the nasty case: the desk committed,
the client never heard); answers slower than the client's timeout; and the client's
process SIGKILLed at random moments.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sipantau_adapters.http.client import Delivery, MonitorClient, RetryPolicy
from sipantau_core.desk import Desk
from sipantau_core.domain import Stage
from test_client import (
    STATIONS,
    SYSTEM,
    LiveServer,
    counted_ids,
    device_key,
    open_desk,
    situation,
    tally,
)

ROOT = Path(__file__).resolve().parents[1]
MONITORS = list(STATIONS)
QUICK = RetryPolicy(base_delay=0.01, max_delay=0.05, attempts_per_call=4, max_call_wait=0.5)

#: What the proxy does with one request:
#: ``pass``; ``reset_before`` (RST, the desk never sees it); ``reset_after`` (the desk
#: answers, the client gets an RST instead); ``truncate`` (half the answer, then RST);
#: ``slow_after`` (the desk answers, the proxy holds the answer past the client's
#: timeout); ``slow_before`` (the request reaches the desk only after the client gave up:
#: two copies in flight).
Mode = str
AFTER_COMMIT = {"reset_after", "truncate", "slow_after"}


# ---------------------------------------------------------------------------------------
# A fault-injecting HTTP/1.1 proxy on loopback
# ---------------------------------------------------------------------------------------


def _reset(conn: socket.socket) -> None:
    """Close with an RST (SO_LINGER 0) rather than a FIN."""
    with contextlib.suppress(OSError):
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def _read_request(conn: socket.socket) -> bytes | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        body += chunk
    lines = [line for line in head.split(b"\r\n") if not line.lower().startswith(b"connection:")]
    return b"\r\n".join([*lines, b"Connection: close"]) + b"\r\n\r\n" + body


class FaultProxy:
    """Relays each request on its own upstream connection (``Connection: close``) and
    applies ``plan(n, report_id)`` → :data:`Mode` to request ``n``. ``log`` records
    ``(mode, report_id, forwarded)`` per request."""

    def __init__(
        self,
        upstream_port: int,
        plan: Callable[[int, str | None], Mode] = lambda n, rid: "pass",
        *,
        hold: float = 1.0,
    ):
        self.upstream_port = upstream_port
        self.plan = plan
        self.hold = hold
        self.log: list[tuple[Mode, str | None]] = []
        self._lock = threading.Lock()
        self._workers: list[threading.Thread] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._closed = False
        self._acceptor = threading.Thread(target=self._accept, daemon=True)
        self._acceptor.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        self._listener.settimeout(0.05)
        while not self._closed:
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(None)
            worker = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            with self._lock:
                self._workers.append(worker)
            worker.start()

    def _forward(self, request: bytes) -> bytes:
        with socket.create_connection(("127.0.0.1", self.upstream_port), timeout=10) as up:
            up.sendall(request)
            chunks = []
            while chunk := up.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks)

    def _serve(self, conn: socket.socket) -> None:
        try:
            request = _read_request(conn)
            if request is None:
                conn.close()
                return
            report_id = None
            with contextlib.suppress(ValueError, KeyError, TypeError):
                report_id = json.loads(request.partition(b"\r\n\r\n")[2])["report"]["report_id"]
            with self._lock:
                mode = self.plan(len(self.log), report_id)
                self.log.append((mode, report_id))
            if mode == "reset_before":
                _reset(conn)
                return
            if mode == "slow_before":
                time.sleep(self.hold)
            answer = self._forward(request)
            if mode == "reset_after":
                _reset(conn)
                return
            if mode == "truncate":
                conn.sendall(answer[: len(answer) // 2])
                _reset(conn)
                return
            if mode == "slow_after":
                time.sleep(self.hold)
            conn.sendall(answer)
            conn.close()
        except OSError:
            _reset(conn)

    def close(self) -> None:
        """Stop accepting and wait for requests in flight (a held request still reaches
        the desk before the test looks at it)."""
        self._closed = True
        self._acceptor.join(5)
        self._listener.close()
        with self._lock:
            workers = list(self._workers)
        for worker in workers:
            worker.join(10)


# ---------------------------------------------------------------------------------------
# Fixtures and checks
# ---------------------------------------------------------------------------------------


@pytest.fixture
def desk() -> Iterator[Desk]:
    d = open_desk(*MONITORS)
    yield d
    d.close()


@pytest.fixture
def server(desk: Desk) -> Iterator[LiveServer]:
    live = LiveServer(desk).start()
    yield live
    live.stop()


def monitor_client(
    url: str, tmp_path: Path, monitor: str, *, timeout: float = 2.0
) -> MonitorClient:
    """The monitor's client; its outbox is ``<tmp_path>/<monitor>.db``."""
    return MonitorClient(
        url,
        key=device_key(monitor),
        outbox=tmp_path / f"{monitor}.db",
        monitor_id=monitor,
        retry=QUICK,
        timeout=timeout,
    )


def outbox_ids(clients: list[MonitorClient]) -> list[uuid.UUID]:
    return [e.report_id for c in clients for e in c.entries()]


def assert_counted_once(desk: Desk, clients: list[MonitorClient], votes: dict[int, int]) -> None:
    """Every outbox report is delivered and stored exactly once, nothing else is stored,
    and the tally counts each TPS once."""
    for c in clients:
        assert [e.state for e in c.entries() if e.state != "delivered"] == []
    in_desk = counted_ids(desk)
    assert len(in_desk) == len(set(in_desk))
    assert sorted(in_desk) == sorted(outbox_ids(clients))
    result = desk.tally("16.73", principal=SYSTEM)
    assert result.stations_counted == len({c.monitor_id for c in clients if _has_tally(c)})
    assert dict(result.votes) == votes


def _has_tally(client: MonitorClient) -> bool:
    return any(e.kind == "tally" for e in client.entries())


def run_day(clients: list[MonitorClient], rounds: int = 2) -> tuple[list[Delivery], dict[int, int]]:
    """Each monitor: a tally, situation reports, a correction of the tally. The votes
    the desk should count in the end."""
    results: list[Delivery] = []
    votes = {1: 0, 2: 0}
    for n, c in enumerate(clients):
        first = tally(c.monitor_id, votes=(100 + n, 50))
        results.append(c.submit(first))
        for stage in [Stage.OPENING, Stage.VOTING][:rounds]:
            results.append(c.submit(situation(c.monitor_id, stage)))
        fixed = tally(c.monitor_id, votes=(101 + n, 50), amends=(first.report_id, 1))
        results.append(c.submit(fixed))
        votes[1] += 101 + n
        votes[2] += 50
    return results, votes


# ---------------------------------------------------------------------------------------
# (1) The server stops mid-run
# ---------------------------------------------------------------------------------------


def test_server_stopped_mid_run(desk: Desk, tmp_path: Path) -> None:
    live = LiveServer(desk).start()
    port = live.port
    clients = [monitor_client(live.url, tmp_path, m) for m in MONITORS]
    try:
        first = tally("LLG-0001", votes=(100, 50))
        assert clients[0].submit(first).receipt_status == "accepted"
        live.stop()
        queued = [clients[0].submit(situation("LLG-0001", Stage.VOTING))]
        queued.append(
            clients[0].submit(tally("LLG-0001", votes=(110, 50), amends=(first.report_id, 1)))
        )
        for c in clients[1:]:
            queued.append(c.submit(tally(c.monitor_id, votes=(10, 20))))
            queued.append(c.submit(situation(c.monitor_id)))
        assert all(d.queued for d in queued)
        # Tried and failed, or (the correction) waiting behind an earlier report.
        assert all("ConnectError" in (d.last_error or "") for d in queued if d.attempts)
        assert queued[1].attempts == 0
        live = LiveServer(desk, port).start()
        for c in clients:
            flushed = c.flush(timeout=10)
            assert flushed.done
            assert all(d.receipt_status == "accepted" for d in flushed.results)
        assert_counted_once(desk, clients, {1: 110 + 10 + 10, 2: 50 + 20 + 20})
    finally:
        live.stop()
        for c in clients:
            c.close()


# ---------------------------------------------------------------------------------------
# (2) Connections reset before and after the desk answered
# ---------------------------------------------------------------------------------------


def _first_attempts(modes: list[Mode]) -> Callable[[int, str | None], Mode]:
    """A plan: the k-th attempt of each report gets ``modes[k]`` (then ``pass``)."""
    attempts: dict[str | None, int] = {}

    def plan(n: int, report_id: str | None) -> Mode:
        k = attempts.get(report_id, 0)
        attempts[report_id] = k + 1
        return modes[k] if k < len(modes) else "pass"

    return plan


def test_connection_resets_before_and_after_the_answer(
    desk: Desk, server: LiveServer, tmp_path: Path
) -> None:
    rng = random.Random(20241127)
    faults = ["reset_before", "reset_after", "truncate", "pass"]
    plans: dict[str | None, list[Mode]] = {}
    attempts: dict[str | None, int] = {}

    def plan(n: int, report_id: str | None) -> Mode:
        # Every report meets one to three faults before a clean attempt; the first
        # report of all meets the nasty case first.
        if report_id not in plans:
            plans[report_id] = (
                ["reset_after"] if not plans else [rng.choice(faults[:3]) for _ in range(3)]
            )
        k = attempts.get(report_id, 0)
        attempts[report_id] = k + 1
        modes = plans[report_id]
        return modes[k] if k < len(modes) else "pass"

    proxy = FaultProxy(server.port, plan)
    clients = [monitor_client(proxy.url, tmp_path, m) for m in MONITORS]
    try:
        results, votes = run_day(clients)
        for c in clients:
            assert c.flush(timeout=10).done
    finally:
        proxy.close()
    final = {str(e.report_id): e.delivery() for c in clients for e in c.entries()}
    # A report the desk had stored before an attempt failed comes back "duplicate".
    reached = {rid for mode, rid in proxy.log if mode in AFTER_COMMIT}
    reached_before_last = {
        rid for rid in reached if any(m in AFTER_COMMIT for m in plans[rid][: attempts[rid] - 1])
    }
    assert reached_before_last
    assert {rid for rid, d in final.items() if d.duplicate} == reached_before_last
    assert all(d.attempts == attempts[rid] for rid, d in final.items())
    assert {mode for mode, _ in proxy.log} >= {"reset_before", "reset_after", "truncate"}
    assert len(results) == len(final)
    assert_counted_once(desk, clients, votes)
    for c in clients:
        c.close()


# ---------------------------------------------------------------------------------------
# (3) Answers slower than the client's timeout
# ---------------------------------------------------------------------------------------


def test_slow_answers_are_retried_and_counted_once(
    desk: Desk, server: LiveServer, tmp_path: Path
) -> None:
    proxy = FaultProxy(server.port, _first_attempts(["slow_after"]), hold=0.6)
    clients = [monitor_client(proxy.url, tmp_path, m, timeout=0.25) for m in MONITORS[:2]]
    try:
        results, votes = run_day(clients, rounds=1)
        # The desk committed each first copy; the client timed out and sent it again.
        assert all(d.delivered and d.duplicate for d in results)
        assert all(d.attempts == 2 for d in results)
        # Now the request itself is late: it reaches the desk after the client gave up
        # and its second copy was answered.
        proxy.plan = _first_attempts(["slow_before"])
        late = situation("LLG-0001", Stage.COUNTING)
        result = clients[0].submit(late)
        assert result.delivered and result.receipt_status == "accepted"
    finally:
        proxy.close()  # waits for the late copy: the desk answered it "duplicate"
    assert [m for m, rid in proxy.log if rid == str(late.report_id)] == ["slow_before", "pass"]
    assert_counted_once(desk, clients, votes)
    for c in clients:
        c.close()


# ---------------------------------------------------------------------------------------
# (4) The client's process SIGKILLed at random moments
# ---------------------------------------------------------------------------------------

CHILD = """
import sys, uuid
from datetime import UTC, datetime, timedelta
from sipantau_adapters.http.client import MonitorClient, RetryPolicy
from sipantau_core.domain import SecurityStatus, SituationReport, Stage, TallyReport, VoterCounts
from sipantau_core.signing import DeviceKey

url, outbox, monitor, station = sys.argv[1:]
client = MonitorClient(
    url,
    key=DeviceKey.from_seed(monitor.encode().ljust(32, b"\\0")),
    outbox=outbox,
    monitor_id=monitor,
    retry=RetryPolicy(base_delay=0.01, max_delay=0.02, attempts_per_call=2, max_call_wait=0.1),
    timeout=1.0,
)
now = datetime.now(UTC) - timedelta(minutes=1)
print("ready", flush=True)
client.flush(timeout=0.2)
if not any(e.kind == "tally" for e in client.entries()):
    client.submit(TallyReport(
        report_id=uuid.uuid4(), monitor=monitor, station=station, contest="walikota",
        observed_at=now, votes={1: 7, 2: 3}, valid=10, invalid=0, total=10,
        voted=VoterCounts(10, 0, 0),
    ))
stages = list(Stage)
n = 0
while True:
    client.submit(SituationReport(
        report_id=uuid.uuid4(), monitor=monitor, station=station, observed_at=now,
        stage=stages[n % len(stages)], status=SecurityStatus.SAFE,
    ))
    n += 1
"""


@pytest.mark.slow
def test_a_killed_process_loses_nothing(desk: Desk, server: LiveServer, tmp_path: Path) -> None:
    rng = random.Random(1127)
    # Each answer is held a little (the window where the desk has committed and the
    # client has not yet recorded it), some connections are reset, and in some rounds
    # the network is down so that a backlog builds up for the next process.
    down = threading.Event()

    def plan(n: int, report_id: str | None) -> Mode:
        if down.is_set():
            return "reset_before"
        return rng.choice(["slow_after"] * 6 + ["reset_after", "reset_before", "pass"])

    proxy = FaultProxy(server.port, plan, hold=0.02)
    monitor = "LLG-0002"
    outbox = tmp_path / f"{monitor}.db"  # where monitor_client() looks
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    pending_at_kill: list[int] = []
    try:
        for round_ in range(8):
            if round_ % 3 == 1:
                down.set()
            else:
                down.clear()
            child = subprocess.Popen(
                [sys.executable, "-c", CHILD, proxy.url, str(outbox), monitor, STATIONS[monitor]],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                cwd=ROOT,
            )
            assert child.stdout is not None
            ready = child.stdout.readline().strip() == b"ready"
            if ready:
                time.sleep(rng.uniform(0.05, 0.7))  # submitting, delivering, flushing…
            alive = child.poll() is None
            child.send_signal(signal.SIGKILL)
            _, err = child.communicate(timeout=10)
            assert ready and alive, err.decode()
            assert child.returncode == -signal.SIGKILL
            with monitor_client(proxy.url, tmp_path, monitor) as peek:
                pending_at_kill.append(len(peek.entries("pending")))
        down.clear()
        with monitor_client(server.url, tmp_path, monitor) as fresh:
            assert fresh.flush(timeout=20).done
            entries = fresh.entries()
            assert len(entries) > 10
            assert sum(pending_at_kill) > 0  # some rounds did leave work behind
            assert_counted_once(desk, [fresh], {1: 7, 2: 3})
            assert all(e.state == "delivered" for e in entries)
    finally:
        proxy.close()
