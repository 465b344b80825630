"""``sipantau demo``: election day in Kota Lubuklinggau, compressed into about a minute.

A real uvicorn server on loopback serves the desk (SQLite storage by default). Every
monitor's device signs its reports and sends them over HTTP through its own offline-first
:class:`~sipantau_adapters.http.client.MonitorClient` (an outbox file each); two monitors
report by SMS through the gateway webhook (the SMS operator's API, a third party, is faked
with ``httpx.MockTransport``); one device is offline for part of the day and catches up.
Some tallies carry OCR-style digit errors (flagged by the rules; most are corrected), one
report is sent twice. The desk's view is redrawn in the terminal as the day goes, and the
demo ends with the final count, checked against what the monitors sent.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import random
import shutil
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

import httpx
from starlette.routing import Mount

from sipantau_adapters.demo_scenario import (
    DayEvent,
    Scenario,
    build_scenario,
    expected_totals,
    sim_clock_factor,
)
from sipantau_adapters.http.client import MonitorClient, RetryPolicy
from sipantau_adapters.http.server import create_app, running
from sipantau_adapters.sms.gateway import GatewayConfig, GenericHttpGateway
from sipantau_adapters.sms.pins import PinBook, hash_pin
from sipantau_adapters.sms.service import SmsService
from sipantau_adapters.sms.webhook import sms_routes
from sipantau_core import (
    Deployment,
    Desk,
    Principal,
    Role,
    SituationReport,
    Stage,
    TallyReport,
)
from sipantau_core.signing import DeviceKey

__all__ = ["add_parser", "run_demo"]

_STAGE_SMS = {
    Stage.PREPARATION: "SIAP",
    Stage.OPENING: "BUKA",
    Stage.VOTING: "PILIH",
    Stage.COUNTING: "HITUNG",
    Stage.HANDOVER: "SERAH",
}
_STATUS_SMS = {"aman": "AMAN", "waspada": "WASPADA", "gangguan": "GANGGUAN"}
_DEAD_URL = "http://127.0.0.1:9"  # nothing listens there: the offline device's view


class SimClock:
    """The simulated time of day: ``factor`` simulated seconds per real second from
    ``start`` (set when the day begins)."""

    def __init__(self, start: datetime, factor: float):
        self.start = start
        self.factor = factor
        self._t0 = time.monotonic()

    def begin(self) -> None:
        self._t0 = time.monotonic()

    def __call__(self) -> datetime:
        return self.start + timedelta(seconds=(time.monotonic() - self._t0) * self.factor)

    def real_seconds_until(self, at: datetime) -> float:
        return (at - self()).total_seconds() / self.factor


def _sms_text(event: DayEvent, pin: str) -> str:
    report = event.report
    if isinstance(report, TallyReport):
        keyword = "KOREKSI" if report.amends is not None else "HASIL"
        votes = " ".join(str(report.votes[n]) for n in sorted(report.votes))
        return (
            f"{keyword} {pin} {votes} SAH {report.valid} TS {report.invalid} TOTAL {report.total}"
        )
    assert isinstance(report, SituationReport)
    text = f"LAPOR {pin} {_STAGE_SMS[report.stage]} {_STATUS_SMS[report.status.value]}"
    if report.incidents:
        incident = report.incidents[0]
        text += f" {incident.category} {incident.severity} {incident.text}"
    return text


class _View:
    """What the terminal shows, redrawn in place on a terminal, a line now and then
    elsewhere."""

    def __init__(self, desk: Desk, out: TextIO, live: bool):
        self.desk = desk
        self.out = out
        self.live = live
        self.coordinator = Principal(
            id="koordinator", role=Role.COORDINATOR, scope=desk.deployment.region
        )
        self.sent: Counter[str] = Counter()
        self._lines = 0
        self._last_plain = -1

    def draw(self, now: datetime, final: bool = False) -> None:
        dep = self.desk.deployment
        contest = next(iter(dep.contests.values()))
        city = self.desk.tally(dep.region, principal=self.coordinator)
        if not self.live and not final:
            step = int(city.progress * 10)
            if step == self._last_plain:
                return
            self._last_plain = step
            self.out.write(
                f"{now:%H:%M} WIB  TPS masuk {city.stations_counted}/{city.stations_expected}"
                f"  laporan terkirim {sum(self.sent.values())}\n"
            )
            return
        lines = [f"Desk Pilkada — {dep.name} — pukul {now:%H:%M} {now.tzname() or ''}".rstrip()]
        width = 40
        done = round(city.progress * width)
        lines.append(
            f"Hasil masuk [{'#' * done}{'.' * (width - done)}] "
            f"{city.stations_counted}/{city.stations_expected} TPS "
            f"({city.registered_covered:,} dari {city.registered_expected:,} pemilih)"
        )
        header = f"  {'Kecamatan':<26}{'TPS':>9}" + "".join(
            f"{contest.label(n):>11}" for n in contest.options
        )
        lines.append(header)
        for district in dep.districts():
            t = self.desk.tally(district, principal=self.coordinator)
            share = "".join(
                f"{(t.votes[n] / t.valid * 100 if t.valid else 0):>10.1f}%" for n in contest.options
            )
            lines.append(
                f"  {dep.region_name(district)[:25]:<26}"
                f"{t.stations_counted:>4}/{t.stations_expected:<4}{share}"
            )
        flagged = [
            s
            for s, _ in self.desk.reports(dep.region, principal=self.coordinator, kind="tally")
            if s.status.value == "flagged"
        ]
        incidents = self.desk.incidents(dep.region, principal=self.coordinator, min_severity=3)
        lines.append(
            f"  Ditandai: {len(flagged)} TPS   Kejadian berat (tingkat ≥3): {len(incidents)}   "
            f"Terkirim: {dict(sorted(self.sent.items()))}"
        )
        for incident in incidents[:3]:
            lines.append(
                f"    ! {incident.observed_at:%H:%M} TPS {incident.station[-3:]} "
                f"{dep.region_name(incident.station[:10])[:20]}: {incident.category} "
                f"(tingkat {incident.severity})"
            )
        if self.live and self._lines:
            self.out.write(f"\x1b[{self._lines}F\x1b[J")
        self.out.write("\n".join(lines) + "\n")
        self.out.flush()
        self._lines = len(lines)


def run_demo(
    deployment_dir: str | Path,
    *,
    storage: str,
    seed: int,
    day_seconds: float,
    stations: int | None,
    workdir: Path,
    out: TextIO,
    live: bool | None = None,
    keep: bool = False,
    port: int = 0,
) -> int:
    """Run the demo; 0 when the desk's final count equals what the monitors sent. With
    ``keep`` the server (API and web page) goes on serving after the day until Ctrl-C,
    on ``port`` of 127.0.0.1 (0: any free port)."""
    deployment = Deployment.load(deployment_dir)
    scenario = build_scenario(deployment, seed=seed, stations=stations)
    if workdir.exists():
        shutil.rmtree(workdir)
    (workdir / "outbox").mkdir(parents=True)
    if storage.startswith("sqlite:///"):
        Path(storage.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-wal", "-shm"):
            Path(storage.removeprefix("sqlite:///") + suffix).unlink(missing_ok=True)
    first = scenario.events[0].at
    start = first.replace(hour=6, minute=0, second=0, microsecond=0)
    clock = SimClock(start, sim_clock_factor(day_seconds))
    rng = random.Random(seed)
    desk = Desk.open(
        deployment,
        storage=storage,
        clock=clock,
        desk_key=DeviceKey.from_seed(rng.randbytes(32)),
    )
    officer = Principal(id="petugas-desk", role=Role.OFFICER, scope=deployment.region)
    keys: dict[str, DeviceKey] = {}
    for monitor_id in sorted({e.monitor for e in scenario.events} - set(scenario.sms_monitors)):
        keys[monitor_id] = DeviceKey.from_seed(rng.randbytes(32))
        desk.enrol_device(monitor_id, keys[monitor_id].public_key, principal=officer)
    replies: list[tuple[str, str]] = []

    def operator_api(request: httpx.Request) -> httpx.Response:  # the SMS operator: faked
        import json

        body = json.loads(request.content)
        replies.append((body["to"], body["message"]))
        return httpx.Response(200, json={"status": "queued"})

    gateway = GenericHttpGateway(
        GatewayConfig(send_url="https://sms-operator.invalid/send", webhook_token="demo-token"),
        transport=httpx.MockTransport(operator_api),
    )
    pins = {m: f"{rng.randint(0, 9999):04d}" for m in scenario.sms_monitors}
    sms = SmsService(desk, gateway, PinBook({m: hash_pin(p) for m, p in pins.items()}))
    app = create_app(desk)
    app.router.routes.append(Mount("/sms", routes=sms_routes(sms), name="sms"))
    view = _View(desk, out, live if live is not None else out.isatty())
    phones = {
        m.id: m.personal.phone.reveal()
        for m in deployment.monitors.values()
        if m.personal is not None and m.id in pins
    }
    lock = threading.Lock()
    failures: list[str] = []

    def client(monitor_id: str, url: str) -> MonitorClient:
        return MonitorClient(
            url,
            key=keys[monitor_id],
            outbox=workdir / "outbox" / f"{monitor_id}.db",
            monitor_id=monitor_id,
            timeout=5.0,
            retry=RetryPolicy(base_delay=0.05, max_delay=0.5, attempts_per_call=3),
        )

    def send(event: DayEvent, base_url: str, offline: bool) -> None:
        try:
            if event.channel == "sms":
                text = _sms_text(event, pins[event.monitor])
                payload = {
                    "from": phones[event.monitor],
                    "text": text,
                    "id": f"sms-{event.report.report_id}",
                }
                r = httpx.post(f"{base_url}/sms/inbound?token=demo-token", json=payload, timeout=10)
                r.raise_for_status()
                kind = "sms"
            else:
                with client(event.monitor, _DEAD_URL if offline else base_url) as c:
                    delivery = c.submit(event.report, media=event.media)
                kind = "antre (offline)" if offline else delivery.state
        except Exception as e:  # noqa: BLE001 - reported at the end, the day goes on
            with lock:
                failures.append(f"{event.station}: {type(e).__name__}")
            return
        with lock:
            view.sent[kind] += 1

    with running(app, port=_free(port)) as base_url:
        token = desk.issue_token(
            view.coordinator, principal=Principal(id="sipantau-demo", role=Role.SYSTEM)
        )
        out.write(f"Halaman desk: {base_url}/  (masuk dengan token koordinator: {token})\n")
        out.write(
            f"sipantau demo — {deployment.name}: "
            f"{len({e.station for e in scenario.events})} TPS, "
            f"{len(scenario.events)} laporan, hari dipadatkan menjadi ~{day_seconds:.0f} detik "
            f"(seed {seed}); server {base_url}, penyimpanan {storage}\n"
        )
        clock.begin()
        caught_up = False
        with ThreadPoolExecutor(max_workers=8) as pool:
            last_draw = 0.0
            for event in scenario.events:
                offline = (
                    event.monitor == scenario.offline_monitor and event.at < scenario.offline_until
                )
                if not caught_up and clock() >= scenario.offline_until:
                    pool.submit(_catch_up, client, scenario, base_url, view, lock)
                    caught_up = True
                wait = clock.real_seconds_until(event.at)
                while wait > 0:
                    time.sleep(min(wait, 0.25))
                    if time.monotonic() - last_draw > 0.5:
                        view.draw(clock())
                        last_draw = time.monotonic()
                    wait = clock.real_seconds_until(event.at)
                pool.submit(send, event, base_url, offline)
            if not caught_up:
                pool.submit(_catch_up, client, scenario, base_url, view, lock)
        view.draw(clock(), final=True)
        ok = _final(desk, scenario, view, out, replies, failures)
        if keep:
            out.write(
                f"\nHalaman desk tetap dilayani di {base_url}/ (token koordinator: {token}); "
                "tekan Ctrl-C untuk berhenti.\n"
            )
            out.flush()
            with contextlib.suppress(KeyboardInterrupt):
                while True:
                    time.sleep(1)
    desk.close()
    gateway.close()
    return 0 if ok else 1


def _free(port: int) -> int:
    """``port`` when it can be bound on 127.0.0.1, else 0 (any free port)."""
    if port == 0:
        return 0
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return 0
    return port


def _catch_up(
    make: Callable[[str, str], MonitorClient],
    scenario: Scenario,
    base_url: str,
    view: _View,
    lock: threading.Lock,
) -> None:
    """The offline device is back: it delivers what its outbox kept."""
    with make(scenario.offline_monitor, base_url) as c:
        result = c.flush(timeout=30)
    with lock:
        view.sent["terkejar (outbox)"] += sum(1 for d in result.results if d.state == "delivered")


def _final(
    desk: Desk,
    scenario: Scenario,
    view: _View,
    out: TextIO,
    replies: list[tuple[str, str]],
    failures: list[str],
) -> bool:
    dep = desk.deployment
    contest = next(iter(dep.contests.values()))
    coordinator = view.coordinator
    city = desk.tally(dep.region, principal=coordinator)
    out.write("\nHasil akhir (hitung cepat desk, belum resmi):\n")
    for n in contest.options:
        share = city.votes[n] / city.valid * 100 if city.valid else 0.0
        out.write(f"  {contest.label(n):<12} {city.votes[n]:>9,}  {share:5.1f}%\n")
    out.write(
        f"  suara sah {city.valid:,}, tidak sah {city.invalid:,}, total {city.total:,}; "
        f"{city.stations_counted} dari {city.stations_expected} TPS\n"
    )
    flagged = [
        (s, r)
        for s, r in desk.reports(dep.region, principal=coordinator, kind="tally")
        if s.status.value == "flagged"
    ]
    out.write(f"\nDitandai dan tidak dihitung ({len(flagged)}):\n")
    import json

    for stored, _ in flagged:
        for v in json.loads(stored.verdict):
            if v["severity"] == "hard":
                out.write(f"  TPS {stored.station}: [{v['code']}] {v['message_id']}\n")
    incidents = desk.incidents(dep.region, principal=coordinator)
    by_category = Counter(i.category for i in incidents)
    out.write(f"\nKejadian: {len(incidents)} ({dict(by_category.most_common())})\n")
    out.write(f"Balasan SMS terkirim: {len(replies)}\n")
    photos = {hashlib.sha256(data).hexdigest() for e in scenario.events for data in e.media}
    with desk.storage.transaction() as tx:
        received = len(tx.media(photos, data=False))
    out.write(f"Foto lembar C.Hasil diterima desk: {received} dari {len(photos)}\n")
    expected = expected_totals(scenario, contest.options)
    got = {f"votes.{n}": city.votes[n] for n in contest.options}
    got.update(
        valid=city.valid, invalid=city.invalid, total=city.total, stations=city.stations_counted
    )
    audit = desk.audit.verify()
    ok = got == expected and not failures and audit.ok
    if failures:
        out.write(f"Gagal terkirim: {failures[:5]}\n")
    out.write(
        f"\nPemeriksaan: hitungan desk {'SAMA' if got == expected else 'BERBEDA'} dengan "
        f"laporan yang dikirim pemantau; log audit {audit.entries} entri, rantai hash "
        f"{'utuh' if audit.ok else 'RUSAK: ' + audit.reason}.\n"
    )
    if got != expected:
        out.write(f"  diharapkan {expected}\n  dihitung   {got}\n")
    return ok


def add_parser(sub: Any) -> None:
    demo = sub.add_parser("demo", help="election day in Lubuklinggau, over HTTP and SMS")
    demo.add_argument("deployment", nargs="?", default="examples/lubuklinggau")
    demo.add_argument("--storage", default="sqlite:///.sipantau/demo.db", help="storage URL")
    demo.add_argument("--seed", type=int, default=2024, help="the day is the same for a seed")
    demo.add_argument("--day-seconds", type=float, default=60.0, help="how long the day takes")
    demo.add_argument("--stations", type=int, default=None, help="only this many TPS")
    demo.add_argument("--workdir", default=".sipantau/demo", help="where devices keep outboxes")
    demo.add_argument("--plain", action="store_true", help="no live redraw")
    demo.add_argument(
        "--no-keep",
        dest="keep",
        action="store_false",
        help="stop when the day ends (by default the web page is served until Ctrl-C)",
    )
    demo.add_argument("--port", type=int, default=8765, help="port of the server and page")
    demo.set_defaults(run=_run_from_args)


def _run_from_args(args: argparse.Namespace, out: TextIO) -> int:
    return run_demo(
        args.deployment,
        storage=args.storage,
        seed=args.seed,
        day_seconds=args.day_seconds,
        stations=args.stations,
        workdir=Path(args.workdir),
        out=out,
        live=False if args.plain else None,
        keep=args.keep,
        port=args.port,
    )
