"""Benchmark of HTTP ingestion, run by hand (never by the tests):

    .venv/bin/python benchmarks/bench_http.py [--reports 12000] [--clients 64]
        [--pg URL] [--sqlite-dir DIR] [--skip-pg] [--skip-sqlite] [--one-by-one 2000]
        [--window-ms 5] [--max-batch 256] [--runs per-principal,noop]
        [--processes 1] [--switch-interval S] [--profile]

SIGNED tally reports (one per TPS of a synthetic deployment of ``--reports`` TPS in Kota
Lubuklinggau's region code, one monitor per TPS, a two-pair contest) are enrolled (device
keys written first) and signed before any timing. Then, per backend (an SQLite file with
``synchronous=full``, and PostgreSQL in a fresh schema, dropped afterwards):

* **HTTP**: ``--processes`` server processes (uvicorn + ``create_app``, the desk in each)
  on one listening socket on loopback, and a load generator process with ``--clients``
  concurrent keep-alive connections (plain asyncio streams speaking HTTP/1.1, so that the
  generator costs little of the two cores: about 40 us a report). Every report is
  acknowledged ``201`` only after its transaction committed; the run checks every status
  and the city's tally afterwards. The runs (``--runs``):

  - ``per-principal``: the server as shipped: the group commit writes each window of
    submissions, from many monitors, in one ``desk.submit_many`` call with a principal
    per report (one transaction);
  - ``noop``: a batch function that stores nothing (the HTTP side's own ceiling).

* **in process**: the same kind of reports through ``desk.submit()`` one by one (each its
  monitor's principal), and through ``desk.submit_many`` in chunks of ``--max-batch``
  (one system principal), on a fresh store, in the same run.

Prints reports/s, latency, batch sizes, the CPU time each side spends per report, and
the ratios. Asserts nothing but correctness. ``--profile`` prints a cProfile of the
event loop thread of the (first) server process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import multiprocessing as mp
import multiprocessing.connection
import pstats
import random
import secrets
import socket
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from sipantau_core import (
    Candidate,
    Contest,
    Deployment,
    PollingStation,
    RegionCode,
    TallyReport,
    VoterCounts,
)
from sipantau_core.access import Principal, Role
from sipantau_core.desk import Desk
from sipantau_core.domain import Monitor
from sipantau_core.ports import DeviceKeyRecord, WriteBatch
from sipantau_core.signing import DeviceKey, SignedReport, sign_report

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
SYSTEM = Principal(id="bench", role=Role.SYSTEM)
PER_VILLAGE = 500


# ---------------------------------------------------------------------------------------
# The data
# ---------------------------------------------------------------------------------------


def deployment(n: int) -> Deployment:
    """``n`` TPS of 300 voters, 500 per village, villages spread over 8 districts."""
    stations = []
    for i in range(n):
        village, number = divmod(i, PER_VILLAGE)
        district = village % 8 + 1
        code = f"1673{district:02d}{1001 + village:04d}{number + 1:03d}"
        stations.append(PollingStation(code=code, registered_voters=300))
    monitors = [Monitor(id=f"LLG-{i:05d}", station=s.code) for i, s in enumerate(stations)]
    contest = Contest(
        id="walikota",
        region="16.73",
        candidates=[Candidate(1, "Paslon 1"), Candidate(2, "Paslon 2")],
    )
    return Deployment(
        id="bench-http",
        name="Benchmark HTTP",
        region=RegionCode("16.73"),
        election_day=date(2024, 11, 27),
        stations={s.code: s for s in stations},
        contests={contest.id: contest},
        monitors={m.id: m for m in monitors},
    )


def make_reports(dep: Deployment, seed: int = 7) -> tuple[list[TallyReport], list[DeviceKey]]:
    rng = random.Random(seed)
    now = datetime.now(UTC)
    reports, keys = [], []
    for monitor in dep.monitors.values():
        a, b, invalid = rng.randint(50, 140), rng.randint(50, 140), rng.randint(0, 9)
        total = a + b + invalid
        reports.append(
            TallyReport(
                report_id=uuid.UUID(int=rng.getrandbits(128), version=4),
                monitor=monitor.id,
                station=monitor.station,
                contest="walikota",
                observed_at=now,
                votes={1: a, 2: b},
                valid=a + b,
                invalid=invalid,
                total=total,
                voted=VoterCounts(total, 0, 0),
            )
        )
        keys.append(DeviceKey.from_seed(rng.randbytes(32)))
    return reports, keys


def enrol(desk: Desk, reports: Sequence[TallyReport], keys: Sequence[DeviceKey]) -> None:
    """Write every device key in one transaction (``desk.enrol_device`` does one each)."""
    now = datetime.now(UTC)
    records = [
        DeviceKeyRecord(k.public_key.key_id, r.monitor, k.public_key.raw, "bench", now)
        for r, k in zip(reports, keys, strict=True)
    ]
    with desk.storage.transaction() as tx:
        tx.write(WriteBatch(device_keys=records))


def noop(desk: Desk) -> Any:
    """A batch function that stores nothing (the HTTP side's own ceiling)."""
    from sipantau_core.desk import Receipt

    def run(items: Sequence[tuple[Any, Principal]]) -> list[Any]:
        now = datetime.now(UTC)
        return [
            Receipt(
                r.report.report_id, "accepted", 1, r.report.report_id, r.report.station.compact, now
            )
            for r, _ in items
        ]

    return run


# ---------------------------------------------------------------------------------------
# The server process
# ---------------------------------------------------------------------------------------


def server_main(
    conn: multiprocessing.connection.Connection,
    sock: socket.socket,
    n: int,
    url: str,
    batch: str,
    window_ms: float,
    max_batch: int,
    profile: bool,
    switch_interval: float | None,
) -> None:
    """One server process: uvicorn on the shared listening socket ``sock``, in this
    process's main thread (profiled with ``--profile``)."""
    import threading

    import uvicorn

    from sipantau_adapters.http.server import create_app

    if switch_interval is not None:
        sys.setswitchinterval(switch_interval)
    desk = Desk.open(deployment(n), storage=url)
    batch_function = {"noop": noop}.get(batch)
    app = create_app(
        desk,
        batch_window_ms=window_ms,
        max_batch=max_batch,
        max_queue=4096,
        batch=batch_function(desk) if batch_function is not None else None,
    )
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="on", proxy_headers=False
    )
    server = uvicorn.Server(config)
    started_cpu = [0.0]

    def control() -> None:
        while not server.started:
            time.sleep(0.01)
        started_cpu[0] = time.process_time()
        conn.send("started")
        conn.recv()  # stop
        server.should_exit = True

    threading.Thread(target=control, daemon=True).start()
    profiler = cProfile.Profile() if profile else None
    if profiler is not None:
        profiler.runcall(server.run, [sock])
    else:
        server.run([sock])
    stats = app.state.committer.stats
    text = ""
    if profiler is not None:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(30)
        text = out.getvalue()
    cpu = time.process_time() - started_cpu[0]
    conn.send((stats.batches, stats.items, stats.largest, stats.busy_seconds, text, cpu))
    desk.close()


# ---------------------------------------------------------------------------------------
# The load generator: plain asyncio streams, HTTP/1.1 keep-alive
# ---------------------------------------------------------------------------------------


async def _client(
    host: str, port: int, bodies: list[bytes], statuses: Counter[int], latencies: list[float]
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        for body in bodies:
            head = (
                f"POST /v1/reports HTTP/1.1\r\nHost: {host}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode("ascii")
            t0 = time.perf_counter()
            writer.write(head + body)
            status_line = await reader.readline()
            length = 0
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - t0)
            statuses[int(status_line.split()[1])] += 1
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


def load_main(
    conn: multiprocessing.connection.Connection, base: str, bodies: list[bytes], clients: int
) -> None:
    host, port = base.removeprefix("http://").split(":")
    shares = [bodies[i::clients] for i in range(clients)]
    statuses: Counter[int] = Counter()
    latencies: list[float] = []

    async def go() -> float:
        t0 = time.perf_counter()
        await asyncio.gather(
            *(_client(host, int(port), share, statuses, latencies) for share in shares)
        )
        return time.perf_counter() - t0

    cpu0 = time.process_time()
    seconds = asyncio.run(go())
    cpu = time.process_time() - cpu0
    latencies.sort()
    conn.send((seconds, dict(statuses), latencies[len(latencies) // 2], latencies[-1], cpu))


def http_run(
    label: str, url: str, n: int, bodies: list[bytes], args: argparse.Namespace, batch: str
) -> float:
    ctx = mp.get_context("spawn")
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets whose proto says
    # TCP, and the accepted connections inherit it (without it, Nagle's algorithm and
    # delayed ACKs hold each response's second write back for ~40 ms).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    servers = []
    for i in range(args.processes):
        server_end, here = ctx.Pipe()
        profile = args.profile and i == 0
        process = ctx.Process(
            target=server_main,
            args=(
                server_end,
                sock,
                n,
                url,
                batch,
                args.window_ms,
                args.max_batch,
                profile,
                args.switch_interval,
            ),
        )
        process.start()
        servers.append((process, here))
    for _, here in servers:
        here.recv()  # started
    load_end, load_here = ctx.Pipe()
    loader = ctx.Process(target=load_main, args=(load_end, base, bodies, args.clients))
    loader.start()
    seconds, statuses, p50, worst, load_cpu = load_here.recv()
    loader.join()
    batches = items = largest = 0
    busy = server_cpu = 0.0
    profiles = []
    for process, here in servers:
        here.send("stop")
        got = here.recv()
        process.join()
        batches += got[0]
        items += got[1]
        largest = max(largest, got[2])
        busy += got[3]
        profiles.append(got[4])
        server_cpu += got[5]
    sock.close()
    rate = len(bodies) / seconds
    print(
        f"  {label:<56}{len(bodies):>7,} in {seconds:6.2f} s = {rate:>7,.0f} /s  "
        f"statuses {statuses}  p50 {p50 * 1000:.1f} ms, max {worst * 1000:.0f} ms; "
        f"{batches:,} batches (mean {items / max(batches, 1):.1f}, largest {largest}), "
        f"writers busy {busy / seconds / len(servers):.0%}; CPU per report: server "
        f"{server_cpu / len(bodies) * 1e6:.0f} us, load generator "
        f"{load_cpu / len(bodies) * 1e6:.0f} us"
    )
    if statuses != {201: len(bodies)}:
        raise SystemExit(f"{label}: not every report was accepted: {statuses}")
    for text in profiles:
        if text:
            print(text)
    return rate


def check_tally(url: str, n: int, reports: Sequence[TallyReport]) -> None:
    desk = Desk.open(deployment(n), storage=url)
    try:
        tally = desk.tally("16.73", principal=SYSTEM)
    finally:
        desk.close()
    expected = sum(r.total for r in reports)
    if (tally.total, tally.stations_counted) != (expected, len(reports)):
        raise SystemExit(f"tally {tally.total}/{tally.stations_counted}, expected {expected}")


# ---------------------------------------------------------------------------------------
# Backends
# ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def pg_schema(url: str) -> Iterator[str]:
    name = "sipantau_bench_" + secrets.token_hex(4)
    try:
        yield f"{url}{'&' if '?' in url else '?'}schema={name}"
    finally:
        with psycopg.connect(url.split("?", 1)[0], autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@contextlib.contextmanager
def fresh_store(kind: str, args: argparse.Namespace) -> Iterator[str]:
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(dir=args.sqlite_dir) as tmp:
            yield f"sqlite:///{tmp}/desk.db?synchronous=full"
    else:
        with pg_schema(args.pg) as url:
            yield url


def backend(
    kind: str,
    n: int,
    reports: list[TallyReport],
    keys: list[DeviceKey],
    signed: list[SignedReport],
    args: argparse.Namespace,
) -> None:
    label = "SQLite file, synchronous=full" if kind == "sqlite" else "PostgreSQL"
    print(f"\n{label}")
    bodies = [s.to_json() for s in signed]
    rates: dict[str, float] = {}
    runs = (
        ("noop", "HTTP, a batch function that stores nothing"),
        ("per-principal", "HTTP, the server as shipped (group commit)"),
    )
    for batch, what in runs:
        if batch not in args.runs:
            continue
        with fresh_store(kind, args) as url:
            desk = Desk.open(deployment(n), storage=url)
            enrol(desk, reports, keys)
            desk.close()
            rates[batch] = http_run(what, url, n, bodies, args, batch)
            if batch != "noop":
                check_tally(url, n, reports)
    few = args.one_by_one
    with fresh_store(kind, args) as url:
        desk = Desk.open(deployment(n), storage=url)
        enrol(desk, reports, keys)
        t0 = time.perf_counter()
        for s in signed[:few]:
            desk.submit(s, principal=Principal(s.report.monitor, Role.MONITOR, s.report.station))
        seconds = time.perf_counter() - t0
        rates["submit"] = few / seconds
        label = "in process: desk.submit() one by one, signed"
        print(f"  {label:<56}{few:>7,} in {seconds:6.2f} s = {rates['submit']:>7,.0f} /s")
        rest = signed[few:]
        t0 = time.perf_counter()
        for i in range(0, len(rest), args.max_batch):
            desk.submit_many(rest[i : i + args.max_batch], principal=SYSTEM)
        seconds = time.perf_counter() - t0
        rates["bulk"] = len(rest) / seconds
        print(
            f"  {f'in process: desk.submit_many, chunks of {args.max_batch}, signed':<56}"
            f"{len(rest):>7,} in {seconds:6.2f} s = {rates['bulk']:>7,.0f} /s"
        )
        desk.close()
    if "per-principal" not in args.runs:
        return
    http = rates["per-principal"]
    print(
        f"  ratios: HTTP / desk.submit() = {http / rates['submit']:.2f}; "
        f"HTTP / in-process submit_many = {http / rates['bulk']:.2f}; "
        f"HTTP / target 2,000 /s = {http / 2000:.2f}"
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reports", type=int, default=12000)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--pg", default=PG_URL)
    parser.add_argument("--sqlite-dir", default=None)
    parser.add_argument("--skip-pg", action="store_true")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--one-by-one", type=int, default=2000)
    parser.add_argument("--window-ms", type=float, default=5)
    parser.add_argument("--max-batch", type=int, default=256)
    parser.add_argument("--processes", type=int, default=1, help="server processes")
    parser.add_argument(
        "--switch-interval", type=float, default=None, help="sys.setswitchinterval in servers"
    )
    parser.add_argument("--profile", action="store_true")
    parser.add_argument(
        "--runs",
        default="per-principal,noop",
        help="which HTTP runs: per-principal (the server), noop (a server that stores nothing)",
    )
    args = parser.parse_args(argv)
    args.runs = set(args.runs.split(","))
    n = args.reports
    t0 = time.perf_counter()
    reports, keys = make_reports(deployment(n))
    signed = [sign_report(r, k) for r, k in zip(reports, keys, strict=True)]
    print(
        f"{n:,} TPS, {n:,} signed tally reports, {args.clients} concurrent connections; "
        f"prepared in {time.perf_counter() - t0:.1f} s"
    )
    if not args.skip_sqlite:
        backend("sqlite", n, reports, keys, signed, args)
    if not args.skip_pg:
        backend("pg", n, reports, keys, signed, args)


if __name__ == "__main__":
    main()
