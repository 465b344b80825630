"""The national day over HTTP, run by hand (never by the tests):

    .venv/bin/python benchmarks/bench_national.py [--region ID] [--tps 823236]
        [--villages 83000] [--share 0.02] [--workers 2] [--clients 128]
        [--scaling 1,2,3] [--repeat 3] [--outbox-devices 2] [--outbox-monitors 8]
        [--no-fill] [--tally-calls 50] [--pg URL]

The deployment is the synthetic national layout of ``sipantau_core.testing.national``:
by default the whole country (823,236 TPS and monitors; ``--region 32`` for a province),
written as a deployment directory and served by ``sipantau serve --workers N`` (the
command line, as deployed: each worker loads the whole deployment) on the PostgreSQL
server at 127.0.0.1:5432, in a fresh schema dropped afterwards.

1. **The day over HTTP**, for ``--share`` of the TPS (every k-th TPS, all provinces):
   each TPS's situation report of every stage (persiapan … penyerahan), stage after
   stage, then each TPS's tally, all signed by the monitor's device key (keys enrolled
   first, reports signed before the clock starts). The load generator is a process of
   ``--clients`` keep-alive HTTP/1.1 connections on plain asyncio streams (cheap: ~40 us
   of CPU a report), honouring ``429``/``503`` ``Retry-After``. At the same time
   ``--outbox-devices`` device processes run real ``MonitorClient``s, each monitor with
   its device key and its own outbox file (``tests/faultlab.py``), for
   ``--outbox-monitors`` other TPS each. Printed per phase: reports/s end to end, p50 and
   p99 acknowledgement latency, the answers; the workers' memory (RSS and peak, from
   ``/proc``).
2. **In process**: the same kind of signed tallies, for as many other TPS, through
   ``desk.submit_many`` (chunks of 256, a principal per report, as the server's group
   commit calls it) in this process on the same database, ``--repeat`` runs.
3. **Scaling**: the tally phase again with 1, 2, … workers (``--scaling``),
   ``--repeat`` runs each on fresh TPS: median and range, the speed-up, and HTTP / in
   process. Then the progress count of the country as it stands (a few percent counted).
4. **Fill** (unless ``--no-fill``): every other TPS's tally, in process through the bulk
   path (``submit_many(workers=2)``), so that the whole country is counted; its rate.
5. **Reads once loaded**: ``desk.tally()`` of the nation and of the largest province
   (median and range of ``--tally-calls`` calls; each also writes its audit entry), and
   ``desk.progress()`` of both with the projection.

Asserts nothing but correctness: every report acknowledged, the counts equal what was
sent. The machine's cores are shared: repeat runs and compare within a run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing as mp
import multiprocessing.connection
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]

from faultlab import (  # noqa: E402
    Server,
    cpu_seconds,
    device_key,
    env_with_src,
    read_outbox,
    reports_of,
    rss_mb,
    votes_of,
)
from sipantau_core import Deployment, Desk, Principal, Role  # noqa: E402
from sipantau_core.ports import DeviceKeyRecord, WriteBatch  # noqa: E402
from sipantau_core.signing import sign_report  # noqa: E402
from sipantau_core.testing import national_deployment, national_tallies  # noqa: E402
from sipantau_core.testing.national import write_deployment  # noqa: E402

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
SYSTEM = Principal(id="bench", role=Role.SYSTEM)


def say(text: str) -> None:
    print(text, flush=True)


# ---------------------------------------------------------------------------------------
# Reports, signed before the clock starts
# ---------------------------------------------------------------------------------------


def signed_bodies(
    monitors: Sequence[str], index: int, observed: datetime, *, tally: bool
) -> list[bytes]:
    """Each monitor's situation report of stage ``index`` (or its tally), signed."""
    out = []
    for m in monitors:
        report = reports_of(m, f"stage{index}", index, 0 if tally else 1, tally, observed)[0]
        out.append(sign_report(report, device_key(m)).to_json())
    return out


def enrol(desk: Desk, monitors: Sequence[str]) -> None:
    now = datetime.now(UTC)
    for i in range(0, len(monitors), 20_000):
        keys = [
            DeviceKeyRecord(device_key(m).public_key.key_id, m, device_key(m).public_key.raw,
                            "bench", now)
            for m in monitors[i : i + 20_000]
        ]  # fmt: skip
        with desk.storage.transaction() as tx:
            tx.write(WriteBatch(device_keys=keys))


# ---------------------------------------------------------------------------------------
# The load generator: plain asyncio streams, HTTP/1.1 keep-alive
# ---------------------------------------------------------------------------------------


async def _connection(
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
            while True:
                writer.write(head + body)
                status_line = await reader.readline()
                length, retry_after = 0, 1.0
                while True:
                    line = await reader.readline()
                    if line in (b"\r\n", b""):
                        break
                    name, _, value = line.partition(b":")
                    name = name.strip().lower()
                    if name == b"content-length":
                        length = int(value)
                    elif name == b"retry-after":
                        retry_after = float(value)
                await reader.readexactly(length)
                status = int(status_line.split()[1])
                statuses[status] += 1
                if status not in (429, 503):
                    break
                await asyncio.sleep(retry_after)  # the server asked for a pause
            latencies.append(time.perf_counter() - t0)
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
            *(_connection(host, int(port), s, statuses, latencies) for s in shares if s)
        )
        return time.perf_counter() - t0

    cpu = time.process_time()
    seconds = asyncio.run(go())
    conn.send((seconds, dict(statuses), sorted(latencies), time.process_time() - cpu))


class Cpu:
    """CPU seconds of the server's workers and of their PostgreSQL backends."""

    def __init__(self, server: Server, pg_url: str):
        self.server = server
        self.pg_url = pg_url.split("?", 1)[0]
        self.pg_port = int(self.pg_url.rsplit(":", 1)[1].split("/", 1)[0])

    def sample(self) -> dict[str, dict[int, float]]:
        return {
            "server": {p: cpu_seconds(p) for p in self.server.worker_pids()},
            "db": {p: cpu_seconds(p) for p in self.server.backends(self.pg_url, self.pg_port)},
        }

    @staticmethod
    def spent(before: dict[int, float], after: dict[int, float]) -> float:
        return sum(v - before.get(p, 0.0) for p, v in after.items())


def http_phase(
    label: str, url: str, bodies: list[bytes], clients: int, cpu: Cpu | None = None
) -> float:
    ctx = mp.get_context("spawn")
    here, there = ctx.Pipe()
    loader = ctx.Process(target=load_main, args=(there, url, bodies, clients))
    before = cpu.sample() if cpu is not None else None
    loader.start()
    seconds, statuses, latencies, load_cpu = here.recv()
    loader.join()
    rate = len(bodies) / seconds
    p50 = latencies[len(latencies) // 2]
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    spent = ""
    if cpu is not None and before is not None:
        after = cpu.sample()
        per = 1e6 / len(bodies)
        app = Cpu.spent(before["server"], after["server"]) * per
        db = Cpu.spent(before["db"], after["db"]) * per
        spent = (
            f"\n{'':<36}CPU a report: server {app:,.0f} us, PostgreSQL {db:,.0f} us, "
            f"load generator {load_cpu * per:,.0f} us"
        )
    say(
        f"  {label:<34}{len(bodies):>8,} in {seconds:7.1f} s = {rate:>6,.0f} /s   "
        f"ack p50 {p50 * 1000:6.1f} ms  p99 {p99 * 1000:7.1f} ms   answers {statuses}{spent}"
    )
    if set(statuses) - {201, 429, 503}:
        raise SystemExit(f"{label}: answers other than 201 (and 429/503 retried): {statuses}")
    return rate


# ---------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def pg_schema(url: str) -> Iterator[str]:
    name = "sipantau_bench_" + secrets.token_hex(4)
    try:
        yield f"{url}{'&' if '?' in url else '?'}schema={name}"
    finally:
        with psycopg.connect(url.split("?", 1)[0], autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def workers_memory(server: Server) -> str:
    found = [rss_mb(p) for p in server.worker_pids()]
    return ", ".join(f"{now:,.0f} MB (peak {peak:,.0f})" for now, peak in found)


def timed(fn: Any, calls: int) -> tuple[float, float, float]:
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000, min(times) * 1000, max(times) * 1000


def samples(dep: Deployment, share: float, parts: int) -> list[list[str]]:
    """``parts`` disjoint samples of the monitors, each about ``share`` of the TPS, spread
    over the whole country (every k-th TPS by code)."""
    monitors = [f"M{s.code.compact}" for s in dep.stations_in(dep.region)]
    per = max(1, int(len(monitors) * share))
    step = max(1, len(monitors) // (per * parts))
    spread = monitors[::step]
    return [spread[i * per : (i + 1) * per] for i in range(parts)]


def spread(values: Sequence[float]) -> str:
    """Median and range of a run's repeats."""
    if len(values) == 1:
        return f"{values[0]:,.0f}"
    return f"{statistics.median(values):,.0f} (range {min(values):,.0f}–{max(values):,.0f})"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--region", default="ID", help="ID (the country), a province or city")
    parser.add_argument("--tps", type=int, default=823_236)
    parser.add_argument("--villages", type=int, default=83_000)
    parser.add_argument("--share", type=float, default=0.02, help="of the TPS, over HTTP")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--clients", type=int, default=128, help="HTTP connections")
    parser.add_argument("--scaling", default="1,2,3", help="worker counts; empty: none")
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs of each tally phase (scaling, in process)"
    )
    parser.add_argument("--outbox-devices", type=int, default=2)
    parser.add_argument("--outbox-monitors", type=int, default=8, help="per device")
    parser.add_argument("--no-fill", action="store_true")
    parser.add_argument("--tally-calls", type=int, default=50)
    parser.add_argument("--pg", default=PG_URL)
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="sipantau-national-"))
    try:
        run(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(args: argparse.Namespace, tmp: Path) -> None:
    scaling = [int(w) for w in args.scaling.split(",") if w.strip()]
    started = time.perf_counter()
    t0 = time.perf_counter()
    region = None if args.region.upper() == "ID" else args.region
    dep = national_deployment(tps=args.tps, villages=args.villages, region=region)
    path = write_deployment(dep, tmp / "deployment")
    say(
        f"deployment {dep.id} ({dep.region}): {len(dep.stations):,} TPS and monitors, "
        f"{dep.registered_voters:,} voters; built and written in {time.perf_counter() - t0:.0f} s"
    )
    repeat = args.repeat
    parts = samples(dep, args.share, 2 + repeat * (1 + len(scaling)))
    outbox_monitors = parts.pop()[: args.outbox_devices * args.outbox_monitors]
    http_sample = parts.pop(0)
    local_samples = [parts.pop(0) for _ in range(repeat)]
    scaling_samples = {w: [parts.pop(0) for _ in range(repeat)] for w in scaling}
    observed = datetime.now(UTC)
    with pg_schema(args.pg) as url:
        t0 = time.perf_counter()
        desk = Desk.open(dep, storage=url)
        say(f"  first Desk.open (schema, {len(dep.monitors):,} monitors written): "
            f"{time.perf_counter() - t0:.0f} s")  # fmt: skip
        t0 = time.perf_counter()
        every = [
            *http_sample,
            *outbox_monitors,
            *(m for sample in local_samples for m in sample),
            *(m for runs in scaling_samples.values() for sample in runs for m in sample),
        ]
        enrol(desk, every)
        say(f"  {len(every):,} device keys enrolled: {time.perf_counter() - t0:.0f} s")
        try:
            day(args, dep, desk, url, path, tmp, observed, http_sample, outbox_monitors)
            local_rates = in_process(desk, local_samples, observed)
            scale(args, url, path, observed, scaling_samples, local_rates)
            progress_now(desk, dep, "before the fill")
            if not args.no_fill:
                fill(desk, dep)
            reads(args, desk, dep)
            say(f"  {sizes(url)}")
        finally:
            desk.close()
    say(f"\n{time.perf_counter() - started:.0f} s in all")


def day(
    args: argparse.Namespace,
    dep: Deployment,
    desk: Desk,
    url: str,
    path: Path,
    tmp: Path,
    observed: datetime,
    sample: Sequence[str],
    outbox_monitors: Sequence[str],
) -> None:
    """1. The day over HTTP: stages, then tallies; real outbox clients beside."""
    t0 = time.perf_counter()
    stages = [signed_bodies(sample, i, observed, tally=False) for i in range(5)]
    tallies = signed_bodies(sample, 0, observed, tally=True)
    say(f"  {len(sample) * 6:,} reports signed: {time.perf_counter() - t0:.0f} s")
    server = Server(
        path, url, workers=args.workers, options=["--max-queue", "1024", "--max-wait", "10"]
    )
    t0 = time.perf_counter()
    server.start()
    try:
        say(
            f"\n1. sipantau serve --workers {args.workers}: ready in "
            f"{time.perf_counter() - t0:.0f} s; workers' RSS {workers_memory(server)}"
        )
        cpu = Cpu(server, url)
        for i, bodies in enumerate(stages):
            http_phase(
                f"stage {i + 1} of 5 (situation reports)", server.url, bodies, args.clients, cpu
            )
        devices = start_outbox_devices(server.url, tmp, outbox_monitors, args, observed)
        http_phase("tallies", server.url, tallies, args.clients, cpu)
        outbox_report(devices, tmp, outbox_monitors)
        say(f"  workers' memory after the day: {workers_memory(server)}")
    finally:
        server.stop()
    expected = sum(sum(votes_of(m)) + 1 for m in [*sample, *outbox_monitors])
    counted = desk.tally(dep.region, principal=SYSTEM)
    if counted.total != expected:
        raise SystemExit(f"the desk counts {counted.total:,} votes, the clients sent {expected:,}")
    say(f"  the desk counts what the clients sent: {counted.total:,} votes")


def in_process(desk: Desk, samples_: Sequence[Sequence[str]], observed: datetime) -> list[float]:
    """2. The same kind of signed tallies through submit_many in this process."""
    from sipantau_core.signing import parse_signed

    rates = []
    for sample in samples_:
        items = [parse_signed(b) for b in signed_bodies(sample, 0, observed, tally=True)]
        principals = [
            Principal(id=s.report.monitor, role=Role.MONITOR, scope=s.report.station) for s in items
        ]
        t0 = time.perf_counter()
        for i in range(0, len(items), 256):
            desk.submit_many(items[i : i + 256], principal=principals[i : i + 256])
        rates.append(len(items) / (time.perf_counter() - t0))
    say(
        f"\n2. in process, desk.submit_many (chunks of 256, signed, a principal each), "
        f"{len(samples_)} runs of {len(samples_[0]):,} tallies: {spread(rates)} /s"
    )
    return rates


def scale(
    args: argparse.Namespace,
    url: str,
    path: Path,
    observed: datetime,
    samples_: dict[int, list[list[str]]],
    local_rates: Sequence[float],
) -> None:
    """3. The tally phase with 1, 2, … workers, ``--repeat`` runs each on fresh TPS."""
    if not samples_:
        return
    say("\n3. scaling: the tally phase with 1, 2, … workers (fresh TPS each run)")
    rates: dict[int, list[float]] = {}
    for workers, runs in samples_.items():
        server = Server(path, url, workers=workers, options=["--max-queue", "1024"])
        server.start()
        try:
            rates[workers] = []
            for n, sample in enumerate(runs, 1):
                bodies = signed_bodies(sample, 0, observed, tally=True)
                rates[workers].append(
                    http_phase(
                        f"{workers} worker(s), run {n}", server.url, bodies, args.clients,
                        Cpu(server, url),
                    )
                )  # fmt: skip
            say(f"    workers' memory: {workers_memory(server)}")
        finally:
            server.stop()
    local = statistics.median(local_rates)
    first = statistics.median(rates[min(rates)])
    say("   median reports/s, speed-up over 1 worker, HTTP / in process (median):")
    for workers, found in sorted(rates.items()):
        med = statistics.median(found)
        say(
            f"     {workers} worker(s): {spread(found)} /s, {med / first:.2f}x, "
            f"{med / local:.2f} of {local:,.0f} /s in process (target >= 0.5)"
        )


def progress_now(desk: Desk, dep: Deployment, when: str) -> None:
    for where in (dep.region.value,):
        t0 = time.perf_counter()
        count = desk.progress(where, principal=SYSTEM)
        seconds = time.perf_counter() - t0
        overall = count.overall
        say(
            f"\n   desk.progress({where!r}) {when}: {seconds:.1f} s; {overall.tps_counted:,}/"
            f"{overall.tps_expected:,} TPS, projection {_projection(count)}"
        )


def fill(desk: Desk, dep: Deployment) -> None:
    """4. Every TPS not counted yet, through the bulk path in this process."""
    system = SYSTEM
    t0 = time.perf_counter()
    counted = _counted(desk, dep)
    filled = 0
    chunk: list[Any] = []
    for report in national_tallies(dep, ocr_errors=0.0):
        if report.station.compact in counted:
            continue
        chunk.append(report)
        if len(chunk) == 20_000:
            desk.submit_many(chunk, principal=system, workers=2)
            filled += len(chunk)
            chunk = []
    if chunk:
        desk.submit_many(chunk, principal=system, workers=2)
        filled += len(chunk)
    seconds = time.perf_counter() - t0
    say(
        f"\n4. fill: {filled:,} more tallies in process (bulk path, 2 workers) in "
        f"{seconds:.0f} s = {filled / seconds:,.0f} /s"
    )


def _counted(desk: Desk, dep: Deployment) -> set[str]:
    contest = next(iter(dep.contests))
    keys = [(contest, s.code.compact) for s in dep.stations_in(dep.region)]
    with desk.storage.transaction() as tx:
        states = tx.station_states(keys)
    return {station for (_, station), state in states.items() if state.counted is not None}


def sizes(url: str) -> str:
    """The schema's size on disk and the reports' share of it."""
    schema = url.rsplit("schema=", 1)[1]
    with psycopg.connect(url.split("?", 1)[0], autocommit=True) as conn:
        total, reports, count = conn.execute(
            "SELECT (SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c JOIN"
            " pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND"
            " c.relkind = 'r'), pg_total_relation_size(%s), (SELECT count(*) FROM"
            f' "{schema}".reports)',
            (schema, f'"{schema}".reports'),
        ).fetchone()
    return (
        f"the database: {total / 2**30:.2f} GiB in all; {count:,} reports in "
        f"{reports / 2**30:.2f} GiB with their indexes ({reports / count:,.0f} bytes a report)"
    )


def reads(args: argparse.Namespace, desk: Desk, dep: Deployment) -> None:
    """5. tally() and progress() once loaded."""
    nation = desk.tally(dep.region, principal=SYSTEM)
    biggest = max(
        {s.code.compact[:2] for s in dep.stations_in(dep.region)},
        key=lambda p: sum(1 for _ in dep.stations_in(p)),
    )
    say(
        f"\n5. once loaded: {nation.stations_counted:,} of {nation.stations_expected:,} "
        f"TPS counted, {nation.total:,} votes"
    )
    for where in (dep.region.value, biggest):
        med, lo, hi = timed(lambda w=where: desk.tally(w, principal=SYSTEM), args.tally_calls)
        target = 50 if where == dep.region.value else 5
        say(
            f"  desk.tally({where!r}): median {med:.1f} ms (range {lo:.1f}–{hi:.1f}) over "
            f"{args.tally_calls} calls; target < {target} ms"
        )
    for where in (biggest, dep.region.value):
        t0 = time.perf_counter()
        count = desk.progress(where, principal=SYSTEM)
        seconds = time.perf_counter() - t0
        overall = count.overall
        say(
            f"  desk.progress({where!r}): {seconds:.1f} s; {overall.tps_counted:,}/"
            f"{overall.tps_expected:,} TPS, projection {_projection(count)}"
        )


def _projection(count: Any) -> str:
    est = count.projection
    if est is None:
        return f"none ({count.projection_note})"
    shares = ", ".join(
        f"paslon {c} {est.share[c]:.2%} ± {est.margin[c]:.2%}" for c in est.candidates
    )
    return f"{shares} (coverage {count.coverage:.0%}, callable: {est.callable})"


def start_outbox_devices(
    url: str, tmp: Path, monitors: Sequence[str], args: argparse.Namespace, observed: datetime
) -> list[Any]:
    """Device processes of real MonitorClients (one outbox file per monitor): each sends
    its monitors' five stage reports and tally, then flushes."""
    import json
    import subprocess

    outboxes = tmp / "outboxes"
    outboxes.mkdir(exist_ok=True)
    per = args.outbox_monitors
    started = []
    for n in range(args.outbox_devices):
        mine = monitors[n * per : (n + 1) * per]
        process = subprocess.Popen(
            [
                sys.executable, str(ROOT / "tests" / "faultlab.py"), "device", "--url", url,
                "--outboxes", str(outboxes), "--observed", observed.isoformat(),
                "--monitors", ",".join(mine), "--per-round", "5",
            ],
            env=env_with_src(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert process.stdin is not None
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
        process.stdin.write(json.dumps({"round": "day", "index": 0, "tallies": mine}) + "\n")
        process.stdin.flush()
        started.append((process, time.perf_counter()))
    return started


def outbox_report(devices: list[Any], tmp: Path, monitors: Sequence[str]) -> None:
    times = []
    for process, t0 in devices:
        line = process.stdout.readline().strip()
        times.append(time.perf_counter() - t0)
        process.stdin.close()
        process.wait(60)
        assert line == "done 0", line
    rows = [r for m in monitors for r in read_outbox(tmp / "outboxes" / f"{m}.db")]
    delivered = sum(1 for r in rows if r["state"] == "delivered")
    say(
        f"  beside it, {len(devices)} device processes of real MonitorClients ({len(monitors)} "
        f"monitors, an outbox each): {len(rows)} reports, {delivered} delivered, "
        f"{len(rows) - delivered} pending; {max(times):.1f} s for their day"
    )


if __name__ == "__main__":
    main()
