"""Benchmark of the desk's web page, run by hand (never by the tests):

    .venv/bin/python benchmarks/bench_web.py [--storage URL] [--viewers 200]
        [--rate 1000] [--seconds 20] [--renders 20]

The real DKI Jakarta tallies of the 2024 presidential election (30,766 TPS, loaded as in
``bench_storage.py``) go into a desk (``memory://`` by default; ``--storage`` takes a
PostgreSQL or SQLite URL). Then, next to ``desk.tally("31")`` measured in the same run:

* **the whole-province view**: the overview's panels of province 31 rendered server-side
  for its coordinator (median of ``--renders``), and the whole page over HTTP;
* **live updates under load**: ``--viewers`` signed-in browsers (coordinators of the
  province and of each city, officers of each kecamatan) hold the live stream open while
  ``--rate`` reports a second arrive (stage reports of every TPS, in batches of what is
  due every tenth of a second). Once a second the run notes the audit log's head after a
  batch committed; each viewer whose region holds a TPS of that batch is owed an update,
  and its latency is the time from that commit to the first update it receives that
  reflects it. Prints
  p50 / p99 / max and how many owed updates were missed (none arrived within 5 s).

Prints figures and ratios; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_storage import OBSERVED_AT, load

from sipantau_adapters.http.server import create_app, running
from sipantau_core.access import Principal, Role
from sipantau_core.desk import Desk
from sipantau_core.domain import SecurityStatus, SituationReport, Stage, TallyReport

SYSTEM = Principal(id="bench", role=Role.SYSTEM)


def median_ms(fn: Callable[[], Any], n: int) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def sign_in(url: str, token: str) -> httpx.Client:
    client = httpx.Client(base_url=url, timeout=60)
    form = client.get("/sign-in").text
    marker = 'name="csrf" value="'
    start = form.index(marker) + len(marker)
    csrf = form[start : form.index('"', start)]
    answer = client.post("/sign-in", data={"csrf": csrf, "token": token, "next": "/"})
    assert answer.status_code == 303, answer.text
    return client


async def _watch(
    url: str,
    token: str,
    region: str,
    until: float,
    got: list[tuple[int, float]],
    ready: asyncio.Event,
) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=None) as client:
        form = (await client.get("/sign-in")).text
        marker = 'name="csrf" value="'
        start = form.index(marker) + len(marker)
        csrf = form[start : form.index('"', start)]
        await client.post("/sign-in", data={"csrf": csrf, "token": token, "next": "/"})
        async with client.stream("GET", f"/live?region={region}") as response:
            seq = None
            lines = response.aiter_lines()
            while time.monotonic() < until:
                try:
                    line = await asyncio.wait_for(lines.__anext__(), until - time.monotonic())
                except (TimeoutError, StopAsyncIteration):
                    break
                if line.startswith("id: "):
                    seq = int(line[4:])
                elif line.startswith("data: ") and seq is not None:
                    got.append((seq, time.monotonic()))
                    ready.set()


def viewers_process(url: str, specs: list[tuple[str, str]], seconds: float, conn: Any) -> None:
    """In a process of its own: hold ``specs`` (token, region) streams open for
    ``seconds`` after all are connected; send back each one's (seq, time) updates."""

    async def run() -> list[list[tuple[int, float]]]:
        got: list[list[tuple[int, float]]] = [[] for _ in specs]
        readies = [asyncio.Event() for _ in specs]
        until = time.monotonic() + 120 + seconds
        tasks = [
            asyncio.create_task(_watch(url, token, region, until, got[i], readies[i]))
            for i, (token, region) in enumerate(specs)
        ]
        await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 120)
        conn.send("ready")
        await asyncio.sleep(seconds)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return got

    conn.send(asyncio.run(run()))


def viewers_of(desk: Desk, n: int) -> list[tuple[Principal, str]]:
    """Coordinators of the province and of each city, officers of each kecamatan, in
    turn, ``n`` in all."""
    dep = desk.deployment
    cities = sorted({s.code.village.value[:5] for s in dep.stations.values()})
    districts = sorted({s.code.village.value[:8] for s in dep.stations.values()})
    kinds: list[tuple[Principal, str]] = [
        (Principal(id="koord-31", role=Role.COORDINATOR, scope="31"), "31")
    ]
    kinds += [(Principal(id=f"koord-{c}", role=Role.COORDINATOR, scope=c), c) for c in cities]
    kinds += [(Principal(id=f"petugas-{d}", role=Role.OFFICER, scope=d), d) for d in districts]
    return [kinds[i % len(kinds)] for i in range(n)]


def stage_reports(desk: Desk) -> list[tuple[SituationReport, Principal]]:
    out = []
    for monitor in desk.deployment.monitors.values():
        report = SituationReport(
            report_id=uuid.uuid4(),
            monitor=monitor.id,
            station=monitor.station,
            observed_at=OBSERVED_AT - timedelta(hours=9),
            stage=Stage.OPENING,
            status=SecurityStatus.SAFE,
        )
        out.append((report, Principal(id=monitor.id, role=Role.MONITOR, scope=monitor.station)))
    return out


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storage", default="memory://")
    parser.add_argument("--viewers", type=int, default=200)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--renders", type=int, default=20)
    args = parser.parse_args(argv)

    dep, tallies, facts = load()
    desk = Desk.open(dep, storage=args.storage, clock=lambda: OBSERVED_AT)
    t0 = time.perf_counter()
    for i in range(0, len(tallies), 5000):
        desk.submit_many(
            tallies[i : i + 5000],
            principal=[
                Principal(id=r.monitor, role=Role.MONITOR, scope=r.station)
                for r in tallies[i : i + 5000]
            ],
        )
    print(
        f"DKI Jakarta: {facts['stations']:,} TPS, {len(tallies):,} tallies loaded into "
        f"{args.storage} in {time.perf_counter() - t0:.1f} s"
    )
    coordinator = Principal(id="koord-31", role=Role.COORDINATOR, scope="31")
    app = create_app(desk)
    web = app.state.web

    tally_ms = median_ms(lambda: desk.tally("31", principal=coordinator), args.renders)
    render_ms = median_ms(
        lambda: web.live.render_panels(coordinator, "31", None, "id"), args.renders
    )
    print(f"\n  desk.tally('31'), median of {args.renders}:        {tally_ms:8.2f} ms")
    print(
        f"  province 31 panels rendered server-side:     {render_ms:8.2f} ms   "
        f"({render_ms / tally_ms:.0f}x tally; target < 300 ms)"
    )
    # The desk keeps a region's progress count while no tally there changes (its counter
    # of changes): the render above reuses it, as renders do while stage reports arrive.
    # The first render after a tally changed the province computes it again:
    cold = []
    counted = {t.station for t in tallies}
    silent = [
        c
        for c in sorted(dep.stations, key=lambda c: c.compact)
        if c not in counted and dep.stations[c].registered_voters >= 100
    ]
    for code in silent[: max(3, args.renders // 4)]:
        votes = dict.fromkeys(dep.contests["presiden"].options, 10)
        report = TallyReport(
            report_id=uuid.uuid4(),
            monitor=next(m.id for m in dep.monitors.values() if m.station == code),
            station=code,
            contest="presiden",
            observed_at=OBSERVED_AT,
            votes=votes,
            valid=sum(votes.values()),
            invalid=0,
            total=sum(votes.values()),
        )
        receipt = desk.submit(
            report, principal=Principal(id=report.monitor, role=Role.MONITOR, scope=code)
        )
        assert receipt.status == "accepted", receipt
        t0 = time.perf_counter()
        web.live.render_panels(coordinator, "31", None, "id")
        cold.append(time.perf_counter() - t0)
    print(
        f"  the same, first render after a tally there:  {1e3 * statistics.median(cold):8.2f} ms   "
        f"(median of {len(cold)}: the progress count computed again)"
    )

    tokens = {}
    with running(app) as url:
        token = desk.issue_token(coordinator, principal=SYSTEM)
        client = sign_in(url, token)
        page_ms = median_ms(lambda: client.get("/?region=31"), max(3, args.renders // 4))
        client.close()
        print(f"  province 31 page over HTTP (GET /):          {page_ms:8.2f} ms")

        specs: list[tuple[str, str]] = []
        for principal, region in viewers_of(desk, args.viewers):
            if principal.id not in tokens:
                tokens[principal.id] = desk.issue_token(principal, principal=SYSTEM)
            specs.append((tokens[principal.id], region))
        parent, child = multiprocessing.Pipe()
        context = multiprocessing.get_context("spawn")
        process = context.Process(
            target=viewers_process, args=(url, specs, args.seconds + 6, child), daemon=True
        )
        process.start()
        assert parent.recv() == "ready"
        print(f"\n  {len(specs)} viewers connected ({len(tokens)} distinct principals)")

        work = stage_reports(desk)
        probes: list[tuple[int, float, set[str]]] = []
        sent = 0
        start = time.monotonic()
        next_probe = start + 1
        while time.monotonic() - start < args.seconds and sent < len(work):
            tick = time.monotonic()
            # every tenth of a second, what is due by then at --rate (a late tick catches up)
            due = min(len(work), int(args.rate * (tick - start + 0.1)))
            chunk = work[sent:due]
            if not chunk:
                time.sleep(0.01)
                continue
            desk.submit_many([r for r, _ in chunk], principal=[p for _, p in chunk])
            sent += len(chunk)
            if time.monotonic() >= next_probe:
                with desk.storage.transaction() as tx:
                    head = tx.audit_head()[0]
                # the TPS of the batch just stored: the viewers whose region holds one of
                # them are owed an update
                stations = {r.station.compact for r, _ in chunk}
                probes.append((head, time.monotonic(), stations))
                next_probe += 1
            time.sleep(max(0.0, 0.1 - (time.monotonic() - tick)))
        elapsed = time.monotonic() - start
        updates: list[list[tuple[int, float]]] = parent.recv()
        process.join(30)

    latencies: list[float] = []
    missed = 0
    regions = [region.replace(".", "") for _, region in specs]
    owed = 0
    for seq, at, stations in probes:
        for mine, digits in zip(updates, regions, strict=True):
            if not any(code.startswith(digits) for code in stations):
                continue  # nothing changed where this viewer looks
            owed += 1
            got = next((t for s, t in mine if s >= seq and t >= at - 0.001), None)
            if got is None or got - at > 5:
                missed += 1
            else:
                latencies.append(got - at)
    print(
        f"  {sent:,} reports in {elapsed:.1f} s = {sent / elapsed:,.0f} reports/s; "
        f"{len(probes)} probes, {owed} updates owed to the viewers whose region they touched"
    )
    if latencies:
        print(
            f"  update latency: p50 {1e3 * percentile(latencies, 0.5):.0f} ms, "
            f"p99 {1e3 * percentile(latencies, 0.99):.0f} ms, "
            f"max {1e3 * max(latencies):.0f} ms (target: within 1 s); "
            f"missed {missed}"
        )
    received = sum(len(mine) for mine in updates)
    print(
        f"  updates received: {received:,}, {received / len(updates) / elapsed:.2f} a second "
        "per viewer"
    )
    desk.close()


if __name__ == "__main__":
    main()
