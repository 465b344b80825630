"""A load run with faults, for ``tests/test_national_faults.py`` and
``benchmarks/campaign_faults.py``: real monitor clients with their outboxes, in device
processes, against ``sipantau serve --workers N`` on a private PostgreSQL cluster, through
a proxy that can cut the network.

The pieces:

- :class:`PrivateCluster`: a PostgreSQL cluster of its own (``initdb`` in a temporary
  directory, a free port, trust authentication), so that it can be restarted without
  touching the shared server on 5432 that the test suite and others use. As root it runs
  the binaries as the ``postgres`` user (``initdb`` refuses root).
- :class:`Server`: ``sipantau serve --workers N`` in a process group of its own; it knows
  its workers and kills one with SIGKILL while it is inside a write transaction (seen in
  ``pg_stat_activity`` by the worker's own connections: mid-batch).
- :func:`device_main`: a monitor's phone, or several: one ``MonitorClient`` per monitor,
  each with its own outbox file, submitting the round's reports (deterministic ids, so a
  device started again after a kill re-submits the same reports), then flushing.
- :class:`Lab`: puts them together, runs a round with a fault, and :meth:`Lab.check` reads
  the outboxes and the desk: what was sent, acknowledged, stored, detected as duplicate,
  lost, counted twice, and whether the audit log verifies.

Run a device by hand: ``python tests/faultlab.py device --help``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PG_BIN = Path(os.environ.get("SIPANTAU_PG_BIN", "/usr/lib/postgresql/15/bin"))
_NS = uuid.UUID("6a1f0c1e-6f2c-4c53-9f0e-2b7d1c0de113")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def env_with_src() -> dict[str, str]:
    """The environment of a child process: this tree's ``src`` and ``tests`` first on the
    path (then whatever ``PYTHONPATH`` held)."""
    paths = [str(SRC), str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}


# ---------------------------------------------------------------------------------------
# A PostgreSQL cluster of our own
# ---------------------------------------------------------------------------------------


class PrivateCluster:
    """``initdb`` + ``pg_ctl`` in a temporary directory on a free port (trust auth); a
    context manager that removes everything on exit."""

    def __init__(self) -> None:
        if not (PG_BIN / "initdb").exists():
            raise RuntimeError(
                f"PostgreSQL's server binaries are not in {PG_BIN} (set SIPANTAU_PG_BIN)"
            )
        self.dir = Path(tempfile.mkdtemp(prefix="sipantau-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.restarts = 0
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")

    def _run(self, *args: str) -> None:
        command = [str(PG_BIN / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def _options(self) -> str:
        return (
            f"-p {self.port} -c listen_addresses=127.0.0.1 "
            f"-c unix_socket_directories={self.dir} -c max_connections=100"
        )

    def start(self) -> PrivateCluster:
        if not self.data.exists():
            self._run(
                "initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres",
                "-E", "UTF8", "--no-sync",
            )  # fmt: skip
        self._run(
            "pg_ctl", "-D", str(self.data), "-o", self._options(), "-l",
            str(self.dir / "log"), "-w", "start",
        )  # fmt: skip
        return self

    def restart(self, mode: str = "immediate") -> None:
        """Stop (``immediate``: as if it crashed; recovery replays the WAL) and start."""
        self._run(
            "pg_ctl", "-D", str(self.data), "-m", mode, "-o", self._options(), "-l",
            str(self.dir / "log"), "-w", "restart",
        )  # fmt: skip
        self.restarts += 1

    def stop(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def __enter__(self) -> PrivateCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------------------------------
# sipantau serve --workers N
# ---------------------------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def local_ports(pid: int, remote_port: int) -> set[int]:
    """The local ports of ``pid``'s TCP connections to ``remote_port`` on loopback."""
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    ports = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, inode = fields[1], fields[2], fields[9]
        if inode in inodes and int(remote.split(":")[1], 16) == remote_port:
            ports.add(int(local.split(":")[1], 16))
    return ports


def rss_mb(pid: int) -> tuple[float, float]:
    """(RSS, peak RSS) of a process in MB, from ``/proc``."""
    found = {"VmRSS": 0.0, "VmHWM": 0.0}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in found:
                found[name] = int(value.split()[0]) / 1024
    return found["VmRSS"], found["VmHWM"]


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a process used so far, from ``/proc/<pid>/stat``."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Server:
    """``python -m sipantau_adapters.cli serve DEPLOYMENT --workers N`` on a free port."""

    def __init__(
        self, deployment: Path, storage: str, *, workers: int = 2, options: Sequence[str] = ()
    ):
        self.deployment = deployment
        self.storage = storage
        self.workers = workers
        self.options = list(options)
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.killed: list[int] = []
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 600, *, wait: bool = True) -> Server:
        command = [
            sys.executable, "-m", "sipantau_adapters.cli", "serve", str(self.deployment),
            "--storage", self.storage, "--port", str(self.port), "--workers",
            str(self.workers), *self.options,
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command, env=env_with_src(), stdout=self.log, stderr=self.log, start_new_session=True
        )
        if wait:
            self.wait_ready(timeout)
        return self

    def worker_pids(self) -> list[int]:
        """The processes that serve: the workers, or with one worker the server itself."""
        assert self.process is not None
        if self.workers == 1:
            return [self.process.pid]
        return [p for p in _children(self.process.pid) if "spawn_main" in _cmdline(p)]

    def wait_ready(self, timeout: float = 600) -> None:
        """Until every worker runs and answers ``/v1/health``."""
        deadline = time.monotonic() + timeout
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"sipantau serve exited: {self.output()[-3000:]}")
            ok = 0
            with contextlib.suppress(httpx.HTTPError):
                for _ in range(4 * self.workers):
                    ok += httpx.get(f"{self.url}/v1/health", timeout=2).status_code == 200
            if ok == 4 * self.workers and len(self.worker_pids()) == self.workers:
                # a worker just started may not listen yet: each answers within a few tries
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"sipantau serve did not get ready: {self.output()[-3000:]}")
            time.sleep(0.2)

    def kill_worker_mid_batch(self, pg_url: str, pg_port: int, timeout: float = 20) -> bool:
        """SIGKILL a worker while one of its connections is inside a write transaction
        (``backend_xid`` set in ``pg_stat_activity``); after ``timeout`` seconds without
        one, any worker. True when it was mid-batch."""
        deadline = time.monotonic() + timeout
        with psycopg.connect(pg_url, autocommit=True) as conn:
            while time.monotonic() < deadline:
                ports = {p: port for p in self.worker_pids() for port in local_ports(p, pg_port)}
                if ports:
                    busy = conn.execute(
                        "SELECT client_port FROM pg_stat_activity WHERE backend_xid IS NOT NULL"
                        " AND client_port = ANY(%s)",
                        (list(ports.values()),),
                    ).fetchall()
                    if busy:
                        port = busy[0][0]
                        pid = next(p for p, q in ports.items() if q == port)
                        os.kill(pid, signal.SIGKILL)
                        self.killed.append(pid)
                        return True
                time.sleep(0.001)
        pid = self.worker_pids()[0]
        os.kill(pid, signal.SIGKILL)
        self.killed.append(pid)
        return False

    def backends(self, pg_url: str, pg_port: int) -> list[int]:
        """The PostgreSQL backends (pids) of the workers' connections now."""
        ports = [port for p in self.worker_pids() for port in local_ports(p, pg_port)]
        with psycopg.connect(pg_url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE client_port = ANY(%s)", (ports,)
            ).fetchall()
        return [int(r[0]) for r in rows]

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def stop(self) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        self.process = None
        self.log.close()


# ---------------------------------------------------------------------------------------
# The devices: monitors' phones
# ---------------------------------------------------------------------------------------


def device_key(monitor: str) -> Any:
    from sipantau_core.signing import DeviceKey

    return DeviceKey.from_seed(hashlib.sha256(monitor.encode()).digest())


def report_id(monitor: str, round_: str, n: int) -> uuid.UUID:
    return uuid.uuid5(_NS, f"{monitor}/{round_}/{n}")


def tally_id(monitor: str) -> uuid.UUID:
    return uuid.uuid5(_NS, f"{monitor}/tally")


def votes_of(monitor: str) -> tuple[int, int, int]:
    digest = hashlib.sha256(f"votes/{monitor}".encode()).digest()
    return (5 + digest[0] % 20, 5 + digest[1] % 20, 5 + digest[2] % 20)


def reports_of(
    monitor: str, round_: str, index: int, per_round: int, tally: bool, observed: datetime
) -> list[Any]:
    """The round's reports of one monitor (the same every time they are made)."""
    from sipantau_core.domain import (
        SecurityStatus,
        SituationReport,
        Stage,
        TallyReport,
        VoterCounts,
    )

    station = monitor[1:]  # the synthetic deployment's monitors are M + the TPS's 13 digits
    stages = list(Stage)
    out: list[Any] = [
        SituationReport(
            report_id=report_id(monitor, round_, n),
            monitor=monitor,
            station=station,
            observed_at=observed,
            stage=stages[index % len(stages)],
            status=SecurityStatus.SAFE,
        )
        for n in range(per_round)
    ]
    if tally:
        a, b, c = votes_of(monitor)
        total = a + b + c + 1
        out.append(
            TallyReport(
                report_id=tally_id(monitor),
                monitor=monitor,
                station=station,
                contest="nasional",
                observed_at=observed,
                votes={1: a, 2: b, 3: c},
                valid=a + b + c,
                invalid=1,
                total=total,
                voted=VoterCounts(total, 0, 0),
            )
        )
    return out


def device_main(argv: Sequence[str]) -> int:
    """A device process: one ``MonitorClient`` per monitor; for each round named on stdin
    (a JSON line ``{"round", "index", "tallies"}``) it submits the round's reports of its
    monitors, flushes, and answers ``done <reports still pending>``."""
    from sipantau_adapters.http.client import MonitorClient, RetryPolicy

    parser = argparse.ArgumentParser(prog="faultlab device")
    parser.add_argument("--url", required=True)
    parser.add_argument("--outboxes", required=True, type=Path)
    parser.add_argument("--observed", required=True)
    parser.add_argument("--monitors", required=True)
    parser.add_argument("--per-round", type=int, default=3)
    parser.add_argument("--pace", type=float, default=0.0, help="seconds between submits")
    parser.add_argument("--flush-timeout", type=float, default=120)
    args = parser.parse_args(argv)
    observed = datetime.fromisoformat(args.observed)
    monitors = args.monitors.split(",")
    policy = RetryPolicy(
        base_delay=0.05, max_delay=1.0, attempts_per_call=2, max_call_wait=1.5, jitter=0.5
    )
    clients = {
        m: MonitorClient(
            args.url,
            key=device_key(m),
            outbox=args.outboxes / f"{m}.db",
            monitor_id=m,
            retry=policy,
            timeout=3.0,
        )
        for m in monitors
    }
    print("ready", flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        tallies = set(command["tallies"])
        plans = {
            m: reports_of(
                m, command["round"], command["index"], args.per_round, m in tallies, observed
            )
            for m in monitors
        }
        for n in range(max(len(p) for p in plans.values())):
            for m in monitors:
                if n < len(plans[m]):
                    clients[m].submit(plans[m][n])
                    if args.pace:
                        time.sleep(args.pace)
        left = sum(c.flush(timeout=args.flush_timeout).pending for c in clients.values())
        print(f"done {left}", flush=True)
    for client in clients.values():
        client.close()
    return 0


# ---------------------------------------------------------------------------------------
# The lab
# ---------------------------------------------------------------------------------------


@attrs.define
class Row:
    """One round: what the clients sent and what the desk holds (``check``)."""

    fault: str
    injected: str = ""
    sent: int = 0
    in_outbox_after_fault: int = 0
    acknowledged: int = 0
    stored: int = 0
    duplicates: int = 0
    lost: int = 0
    double_counted: int = 0
    phantom: int = 0
    pending_after_recovery: int = 0
    count_matches: bool = False
    audit_ok: bool = False
    seconds: float = 0.0


def read_outbox(path: Path) -> list[dict[str, Any]]:
    """The rows of an outbox file (read only; its device may be running)."""
    if not path.exists():
        return []
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)) as db:
        db.row_factory = sqlite3.Row
        rows = db.execute("SELECT report_id, kind, state, payload, response FROM outbox").fetchall()
    return [dict(r) for r in rows]


class Lab:
    """A national-layout deployment (or a region of it) served by ``sipantau serve
    --workers N`` on a :class:`PrivateCluster`, with ``devices`` device processes of
    ``per_device`` monitors each sending through a :class:`FaultProxy`."""

    def __init__(
        self,
        workdir: Path,
        cluster: PrivateCluster,
        *,
        region: str | None = "32",
        tps: int = 2_000,
        villages: int = 600,
        devices: int = 3,
        per_device: int = 6,
        per_round: int = 3,
        pace: float = 0.01,
        workers: int = 2,
        server_options: Sequence[str] = ("--retry-after", "1", "--max-wait", "10"),
    ):
        from sipantau_core.testing import national_deployment

        self.workdir = workdir
        self.cluster = cluster
        self.deployment = national_deployment(tps=tps, villages=villages, region=region)
        self.region = self.deployment.region.value
        monitors = sorted(self.deployment.monitors)
        if len(monitors) < devices * per_device:
            raise ValueError(f"the deployment has {len(monitors)} monitors, fewer than asked")
        step = len(monitors) // (devices * per_device)
        chosen = monitors[:: max(1, step)][: devices * per_device]
        self.devices = [chosen[i::devices] for i in range(devices)]
        self.per_round = per_round
        self.pace = pace
        self.observed = datetime.now(UTC)
        self.outboxes = workdir / "outboxes"
        self.outboxes.mkdir(parents=True, exist_ok=True)
        self.rounds = 0
        self.tallied: set[str] = set()
        self.workers = workers
        self.server_options = list(server_options)
        self.server: Server | None = None
        self.proxy: Any = None
        self.desk: Any = None
        self.processes: dict[int, subprocess.Popen[str]] = {}
        self.device_log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()

    # -- setting up ------------------------------------------------------------------------

    def setup(self) -> Lab:
        from sipantau_core import Desk
        from sipantau_core.ports import DeviceKeyRecord, WriteBatch
        from sipantau_core.testing.national import write_deployment
        from test_client_faults import FaultProxy

        path = write_deployment(self.deployment, self.workdir / "deployment")
        self.desk = Desk.open(self.deployment, storage=self.cluster.url)
        now = datetime.now(UTC)
        keys = [
            DeviceKeyRecord(device_key(m).public_key.key_id, m, device_key(m).public_key.raw,
                            "faultlab", now)
            for device in self.devices
            for m in device
        ]  # fmt: skip
        with self.desk.storage.transaction() as tx:
            tx.write(WriteBatch(device_keys=keys))
        self.server = Server(
            path, self.cluster.url, workers=self.workers, options=self.server_options
        )
        self.proxy = FaultProxy(self.server.port)
        # the devices start (and import) while the server's workers load the deployment
        for n in range(len(self.devices)):
            self.start_device(n)
        self.server.start(wait=False)
        for n in range(len(self.devices)):
            self.wait_ready(n)
        self.server.wait_ready()
        return self

    def close(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                assert process.stdin is not None
                process.stdin.close()
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(10)
        self.device_log.close()
        if self.proxy is not None:
            self.proxy.close()
        if self.server is not None:
            self.server.stop()
        if self.desk is not None:
            self.desk.close()

    def __enter__(self) -> Lab:
        return self.setup()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- running ---------------------------------------------------------------------------

    def start_device(self, n: int) -> subprocess.Popen[str]:
        """Device ``n``'s process, ready for a round."""
        command = [
            sys.executable, str(Path(__file__)), "device", "--url", self.proxy.url,
            "--outboxes", str(self.outboxes), "--observed", self.observed.isoformat(),
            "--monitors", ",".join(self.devices[n]), "--per-round", str(self.per_round),
            "--pace", str(self.pace),
        ]  # fmt: skip
        process = subprocess.Popen(
            command,
            env=env_with_src(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.device_log,
            text=True,
        )
        self.processes[n] = process
        return process

    def wait_ready(self, n: int) -> None:
        process = self.processes[n]
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        if line != "ready":
            raise RuntimeError(f"device {n} did not start: {line!r}")

    def command(self, n: int, state: RoundState) -> None:
        """Tell device ``n`` to run the round."""
        process = self.processes[n]
        assert process.stdin is not None
        theirs = sorted(state.tallies & set(self.devices[n]))
        line = {"round": state.name, "index": state.index, "tallies": theirs}
        process.stdin.write(json.dumps(line) + "\n")
        process.stdin.flush()

    def finish(self, n: int) -> int:
        """Wait for device ``n`` to end the round: the reports it left pending."""
        process = self.processes[n]
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        if not line.startswith("done "):
            raise RuntimeError(f"device {n} failed (answered {line!r}); see its log")
        return int(line.split()[1])

    def round_ids(self, round_: str, tallies: set[str]) -> set[str]:
        ids = {
            str(report_id(m, round_, n))
            for device in self.devices
            for m in device
            for n in range(self.per_round)
        }
        return ids | {str(tally_id(m)) for m in tallies}

    def stored_count(self) -> int:
        with psycopg.connect(self.cluster.url, autocommit=True, connect_timeout=5) as conn:
            row = conn.execute("SELECT count(*) FROM reports").fetchone()
        return int(row[0]) if row else 0

    def wait_stored(self, at_least: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.stored_count() < at_least:
            if time.monotonic() > deadline:
                raise RuntimeError(f"fewer than {at_least} reports stored after {timeout} s")
            time.sleep(0.01)

    def outbox_rows(self, monitors: Sequence[str] | None = None) -> list[dict[str, Any]]:
        every = [m for device in self.devices for m in device]
        rows = []
        for m in monitors if monitors is not None else every:
            rows.extend(read_outbox(self.outboxes / f"{m}.db"))
        return rows

    def run_round(self, fault: str, inject: Callable[[Lab, RoundState], str] | None) -> Row:
        """Every device sends the round's reports (a share of the monitors their tally)
        while ``inject`` puts in a fault; then the devices flush, and the round is checked."""
        round_ = f"r{self.rounds}-{fault}"
        every = [m for device in self.devices for m in device]
        rng = random.Random(self.rounds)
        rest = sorted(set(every) - self.tallied)
        tallies = set(rng.sample(rest, k=min(len(rest), max(1, len(every) // 4))))
        state = RoundState(
            name=round_,
            index=self.rounds,
            tallies=tallies,
            ids=self.round_ids(round_, tallies),
            before=self.stored_count(),
        )
        started = time.monotonic()
        for n in range(len(self.devices)):
            self.command(n, state)
        row = Row(fault=fault)
        if inject is not None:
            row.injected = inject(self, state)
        row.in_outbox_after_fault = sum(
            1 for r in self.outbox_rows() if r["state"] == "pending" and r["report_id"] in state.ids
        )
        for n in range(len(self.devices)):
            self.finish(n)
        self.tallied |= tallies
        self.rounds += 1
        self.recover()
        row.seconds = time.monotonic() - started
        self.check(row, state.ids)
        return row

    def recover(self) -> None:
        """What a phone does when the network is back: every outbox flushed, directly."""
        from sipantau_adapters.http.client import MonitorClient, RetryPolicy

        assert self.server is not None
        for device in self.devices:
            for m in device:
                rows = read_outbox(self.outboxes / f"{m}.db")
                if not any(r["state"] == "pending" for r in rows):
                    continue
                with MonitorClient(
                    self.server.url,
                    key=device_key(m),
                    outbox=self.outboxes / f"{m}.db",
                    monitor_id=m,
                    retry=RetryPolicy(base_delay=0.1, max_delay=1.0),
                ) as client:
                    client.flush(timeout=60)

    def check(self, row: Row, ids: set[str]) -> Row:
        """Fill ``row`` from the outboxes and the desk."""
        from sipantau_core import Principal, Role

        system = Principal(id="faultlab", role=Role.SYSTEM)
        rows = self.outbox_rows()
        mine = [r for r in rows if r["report_id"] in ids]
        row.sent = len(mine)
        row.pending_after_recovery = sum(1 for r in mine if r["state"] == "pending")
        receipts = []
        for r in mine:
            if r["state"] == "delivered" and r["response"]:
                receipt = json.loads(r["response"]).get("receipt") or {}
                receipts.append(receipt)
        row.acknowledged = len(receipts)
        row.duplicates = sum(1 for receipt in receipts if receipt.get("status") == "duplicate")
        stored = [
            str(s.report_id)
            for s, _ in self.desk.reports(self.region, principal=system, heads_only=False)
        ]
        every_sent = {r["report_id"] for r in rows}
        row.stored = sum(1 for i in stored if i in ids)
        row.lost = len(ids - set(stored))
        row.phantom = len(set(stored) - every_sent)
        # counted: the tallies the outboxes hold, each TPS once
        tallies = [json.loads(r["payload"])["report"] for r in rows if r["kind"] == "tally"]
        tally = self.desk.tally(self.region, principal=system)
        expected = {n: sum(t["votes"].get(str(n), 0) for t in tallies) for n in (1, 2, 3)}
        row.double_counted = (len(stored) - len(set(stored))) + max(
            0, tally.stations_counted - len(tallies)
        )
        row.count_matches = dict(tally.votes) == expected and tally.stations_counted == len(tallies)
        row.audit_ok = bool(self.desk.audit.verify().ok)
        return row


@attrs.define
class RoundState:
    """A round in progress, for a fault to act on."""

    name: str
    index: int
    tallies: set[str]
    ids: set[str]
    before: int

    def share_stored(self, lab: Lab, share: float) -> None:
        """Wait until ``share`` of the round's reports are stored."""
        lab.wait_stored(self.before + max(1, int(share * len(self.ids))))


# ---------------------------------------------------------------------------------------
# The faults
# ---------------------------------------------------------------------------------------


def kill_worker(lab: Lab, state: RoundState) -> str:
    """SIGKILL a server worker inside a write transaction; uvicorn starts another."""
    assert lab.server is not None
    state.share_stored(lab, 0.15)
    mid_batch = lab.server.kill_worker_mid_batch(lab.cluster.url, lab.cluster.port)
    lab.server.wait_ready()
    return "worker SIGKILLed mid-batch" if mid_batch else "worker SIGKILLed (not seen mid-batch)"


def restart_postgres(lab: Lab, state: RoundState) -> str:
    """PostgreSQL stopped as if it crashed (``-m immediate``), then started again."""
    state.share_stored(lab, 0.15)
    t0 = time.monotonic()
    lab.cluster.restart("immediate")
    return f"PostgreSQL restarted (-m immediate, {time.monotonic() - t0:.1f} s down)"


def cut_network(lab: Lab, state: RoundState, seconds: float = 1.5) -> str:
    """For ``seconds``, every request is reset before the desk sees it or after it
    answered (the desk committed, the client never heard) or cut half-way."""
    state.share_stored(lab, 0.15)
    rng = random.Random(len(state.ids))
    modes = ["reset_before", "reset_after", "truncate"]
    start = len(lab.proxy.log)
    lab.proxy.plan = lambda n, rid: rng.choice(modes)
    time.sleep(seconds)
    lab.proxy.plan = lambda n, rid: "pass"
    cut = lab.proxy.log[start:]
    after = sum(1 for mode, _ in cut if mode in ("reset_after", "truncate"))
    return f"network cut {seconds:g} s: {len(cut)} requests reset ({after} after the desk answered)"


def kill_device(lab: Lab, state: RoundState) -> str:
    """A device's network is down while it submits (its reports wait in its outboxes);
    it is SIGKILLed, and started again once the network is back."""
    victim = 0
    monitors = set(lab.devices[victim])
    theirs = {str(report_id(m, state.name, n)) for m in monitors for n in range(lab.per_round)}
    theirs |= {str(tally_id(m)) for m in state.tallies & monitors}
    down = threading.Event()
    down.set()
    lab.proxy.plan = lambda n, rid: "reset_before" if down.is_set() and rid in theirs else "pass"
    deadline = time.monotonic() + 60
    waiting = 0
    while time.monotonic() < deadline:
        rows = lab.outbox_rows(lab.devices[victim])
        waiting = sum(1 for r in rows if r["state"] == "pending" and r["report_id"] in theirs)
        if waiting >= min(3, len(theirs)):
            break
        time.sleep(0.02)
    process = lab.processes[victim]
    process.send_signal(signal.SIGKILL)
    process.wait(30)
    killed_with = sum(
        1
        for r in lab.outbox_rows(lab.devices[victim])
        if r["state"] == "pending" and r["report_id"] in theirs
    )
    down.clear()
    lab.proxy.plan = lambda n, rid: "pass"
    lab.start_device(victim)
    lab.wait_ready(victim)
    lab.command(victim, state)
    return f"device SIGKILLed with {killed_with} reports pending in its outboxes, started again"


FAULTS: dict[str, Callable[[Lab, RoundState], str]] = {
    "kill -9 server worker": kill_worker,
    "restart PostgreSQL": restart_postgres,
    "network cut (proxy)": cut_network,
    "kill -9 client device": kill_device,
}


def table(rows: Sequence[Row]) -> str:
    """The campaign's table."""
    head = (
        f"{'fault':<24}{'sent':>7}{'acked':>7}{'stored':>8}{'dupl.':>7}{'lost':>6}"
        f"{'2x':>4}{'waited':>8}{'audit':>7}  what happened"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r.fault:<24}{r.sent:>7}{r.acknowledged:>7}{r.stored:>8}{r.duplicates:>7}"
            f"{r.lost:>6}{r.double_counted:>4}{r.in_outbox_after_fault:>8}"
            f"{'ok' if r.audit_ok else 'BAD':>7}  {r.injected}"
        )
    total = Row(fault="all", injected=f"{sum(1 for r in rows if r.injected)} faults injected")
    for name in ("sent", "acknowledged", "stored", "duplicates", "lost", "double_counted"):
        setattr(total, name, sum(getattr(r, name) for r in rows))
    total.in_outbox_after_fault = sum(r.in_outbox_after_fault for r in rows)
    total.audit_ok = all(r.audit_ok for r in rows)
    lines.append("-" * len(head))
    lines.append(
        f"{total.fault:<24}{total.sent:>7}{total.acknowledged:>7}{total.stored:>8}"
        f"{total.duplicates:>7}{total.lost:>6}{total.double_counted:>4}"
        f"{total.in_outbox_after_fault:>8}{'ok' if total.audit_ok else 'BAD':>7}  {total.injected}"
    )
    return "\n".join(lines)


@contextlib.contextmanager
def lab(workdir: Path, **options: Any) -> Iterator[Lab]:
    """A private cluster and a :class:`Lab` on it, both removed afterwards."""
    with PrivateCluster() as cluster, Lab(workdir, cluster, **options) as running:
        yield running


if __name__ == "__main__":
    if sys.argv[1:2] == ["device"]:
        sys.path.insert(0, str(SRC))
        raise SystemExit(device_main(sys.argv[2:]))
    raise SystemExit("usage: faultlab.py device --help")
