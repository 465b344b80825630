"""Notifications under load and failure, end to end through a desk and every channel:

- a burst of 1,000 alerts through the webhook (a real receiver), Telegram (the Bot API
  faked at the edge, enforcing its limits and answering some requests 429), email (a
  real SMTP server) and the console: none dropped, none duplicated, the limits held;
- the channels down for half an hour: everything is delivered once they are back;
- the personal-data canary: monitors' names, phones and national IDs, planted in the
  deployment and in incident texts, and unreleased figures, are looked for in every
  channel's output, in the logs and in the queue.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from sipantau_core import (
    Candidate,
    Contest,
    Deployment,
    Desk,
    Incident,
    Monitor,
    PersonalData,
    PollingStation,
    Principal,
    RegionCode,
    RiskProfile,
    Role,
    SecurityStatus,
    SituationReport,
    Stage,
    StationCode,
    TallyReport,
    hookimpl,
)
from sipantau_core.notify import Channel
from sipantau_core.ports import NotificationStatus
from test_notify_channels import (
    SECRET,
    TOKEN,
    FakeTelegram,
    FakeTime,
    SmtpSink,
    WebhookReceiver,
    telegram,
)

SYSTEM = Principal(id="import", role=Role.SYSTEM)
T0 = datetime(2024, 11, 27, 3, 0, tzinfo=UTC)  # 10:00 WIB
VILLAGES = ("Air Kuti", "Majapahit", "Taba Jemekeh", "Nikan Jaya", "Taba Lestari",
            "Kayu Ara", "Lubuk Tanjung", "Tanjung Indah", "Bandung Ujung", "Sukajadi")  # fmt: skip


def name_of(i: int) -> str:
    return f"Kanaria Wirapranata {i:04d}"


def phone_of(i: int) -> str:
    return f"0812{7700000 + i:07d}"


def nik_of(i: int) -> str:
    return f"16730199999{i:05d}"


def deployment(n: int, notifications: dict[str, Any], registered: int = 300) -> Deployment:
    """``n`` TPS in ten villages of two districts of Kota Lubuklinggau, every seventh
    mapped as high-risk, each with a monitor whose personal data is a canary."""
    stations, monitors, names = [], [], {RegionCode("16.73"): "Kota Lubuklinggau"}
    per_village = max(1, n // 10)
    for i in range(n):
        v = min(i // per_village, 9)
        village = RegionCode(f"16.73.0{1 + v // 5}.{1001 + v % 5}")
        names[village] = VILLAGES[v]
        code = StationCode(village, i - v * per_village + 1)
        stations.append(
            PollingStation(
                code=code,
                registered_voters=registered,
                name=f"TPS {code.number:03d} Kel. {VILLAGES[v]}",
                risk=RiskProfile("high" if i % 7 == 0 else "low", "keamanan"),
            )
        )
        personal = PersonalData(name=name_of(i), phone=phone_of(i), national_id=nik_of(i))
        monitors.append(Monitor(id=f"LLG-{i + 1:04d}", station=code, personal=personal))
    contest = Contest(id="walikota", region="16.73", name="Pilwalkot Lubuklinggau",
                      candidates=[Candidate(1, "Paslon 1"), Candidate(2, "Paslon 2")])  # fmt: skip
    return Deployment(
        id="kanari",
        name="Desk Pilkada Kanari",
        region=RegionCode("16.73"),
        election_day=date(2024, 11, 27),
        stations={s.code: s for s in stations},
        contests={contest.id: contest},
        monitors={m.id: m for m in monitors},
        region_names=names,
        settings={"notifications": notifications},
    )


def incident(dep: Deployment, i: int, severity: int = 3) -> SituationReport:
    monitor = dep.monitors[f"LLG-{i + 1:04d}"]
    text = f"Saksi {name_of(i)} ({phone_of(i)}, NIK {nik_of(i)}) diancam orang tak dikenal"
    return SituationReport(
        report_id=uuid.uuid4(),
        monitor=monitor.id,
        station=monitor.station,
        observed_at=T0,
        stage=Stage.VOTING,
        status=SecurityStatus.DISTURBED,
        incidents=[Incident("intimidasi", severity, text)],
    )


class Wiring:
    """The channels as a plugin makes them: Telegram with the fake API; the others are
    left to the built-in plugin (real webhook, email and console channels)."""

    def __init__(self, api: FakeTelegram, clock: FakeTime) -> None:
        self.api, self.clock = api, clock

    @hookimpl
    def sipantau_notification_channel(self, name: str, kind: str, settings: Any) -> Channel | None:
        if kind != "telegram":
            return None
        return telegram(
            self.api, self.clock, name=name, clearance=settings["clearance"],
            max_items=settings.get("max_items", 20),
        )  # fmt: skip


class World:
    """A receiver, an SMTP server and the fake Telegram API, with the environment the
    built-in channels read their secrets from."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, flood_every: int = 0) -> None:
        self.receiver = WebhookReceiver().start()
        self.smtp = SmtpSink().start()
        self.clock = FakeTime()
        self.api = FakeTelegram(self.clock, flood_every=flood_every, flood_seconds=3)
        monkeypatch.setenv("KANARI_WEBHOOK_SECRET", SECRET)

    def channels(self, **max_items: int) -> dict[str, Any]:
        return {
            "posko": {"kind": "webhook", "clearance": "internal", "url": self.receiver.url,
                      "secret_env": "KANARI_WEBHOOK_SECRET",
                      "max_items": max_items.get("posko", 25)},
            "tg": {"kind": "telegram", "clearance": "restricted", "token_env": "UNUSED",
                   "max_items": max_items.get("tg", 25)},
            "surel": {"kind": "email", "clearance": "secret", "host": "127.0.0.1",
                      "port": self.smtp.port, "sender": "desk@lubuklinggaukota.go.id",
                      "timeout": 5, "max_items": max_items.get("surel", 100)},
            "konsol": {"kind": "console", "clearance": "internal", "to": "log",
                       "max_items": max_items.get("konsol", 50)},
        }  # fmt: skip

    def open(self, dep: Deployment, storage: str = "memory://") -> Desk:
        return Desk.open(
            dep, storage=storage, plugins=[Wiring(self.api, self.clock)], autoload=False,
            clock=lambda: T0,
        )  # fmt: skip

    def close(self) -> None:
        self.receiver.stop()
        self.smtp.stop()


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    w = World(monkeypatch, flood_every=97)
    yield w
    w.close()


def alert_lines(text: str) -> list[str]:
    """The alerts' lines of a message: the bullets of a digest, or the one line."""
    lines = text.splitlines()
    if len(lines) == 1:
        return [lines[0].removesuffix(" — buka desk")]
    return [line[2:] for line in lines if line.startswith("• ")]


def console_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    out = []
    for record in caplog.records:
        if record.name == "sipantau.notify.console":
            out.extend(alert_lines(record.getMessage().split("\n", 1)[1]))
    return out


def delivered(world: World, caplog: pytest.LogCaptureFixture) -> dict[str, Counter[str]]:
    """Every line each recipient received, counted."""
    out: dict[str, Counter[str]] = {"posko": Counter(i["text"] for i in world.receiver.items())}
    for chat, texts in world.api.per_chat().items():
        out[f"tg:{chat}"] = Counter(line for t in texts for line in alert_lines(t))
    for mail, (_, to) in zip(world.smtp.bodies(), world.smtp.envelopes, strict=True):
        counter = out.setdefault(f"surel:{to[0]}", Counter())
        counter.update(alert_lines(mail.strip()))
    out["konsol"] = Counter(console_lines(caplog))
    return out


CHATS = [f"-100{n:04d}" for n in range(32)]
MAILS = ["kaban@lubuklinggaukota.go.id", "kabid@lubuklinggaukota.go.id"]
TARGETS = ["posko", *[f"tg:{c}" for c in CHATS], *[f"surel:{m}" for m in MAILS], "konsol"]


def burst_settings(world: World, **max_items: int) -> dict[str, Any]:
    return {
        "digest_seconds": 60,
        "max_messages_per_tick": 100,
        "channels": world.channels(**max_items),
        "rules": [{"id": "semua", "on": "incident", "to": TARGETS}],
    }


def expected_lines(dep: Deployment, n: int) -> set[str]:
    out = set()
    for i, station in enumerate(sorted(dep.stations.values(), key=lambda s: s.code)[:n]):
        raised = i % 7 == 0
        out.add(
            f"Kejadian baru tingkat {4 if raised else 3} di {station.name}"
            f"{' (TPS rawan)' if raised else ''}: Intimidasi"
        )
    return out


@pytest.mark.parametrize("storage", ["memory", "sqlite"])
def test_a_burst_of_1000_alerts_through_every_channel(
    world: World, caplog: pytest.LogCaptureFixture, storage: str, tmp_path: Any
) -> None:
    caplog.set_level(logging.INFO)
    url = "memory://" if storage == "memory" else f"sqlite:///{tmp_path / 'desk.db'}"
    dep = deployment(1000, burst_settings(world))
    start = world.clock.now
    with world.open(dep, url) as desk:
        result = desk.submit_many([incident(dep, i) for i in range(1000)], principal=SYSTEM)
        assert result.count("accepted") == 1000
        assert desk.tick(T0 + timedelta(seconds=30)).messages == 0  # the digest window
        tick = desk.tick(T0 + timedelta(seconds=61))
        assert desk.tick(T0 + timedelta(seconds=120)).messages == 0
        with desk.storage.transaction() as tx:
            records = tx.notifications()
    expected = expected_lines(dep, 1000)
    got = delivered(world, caplog)
    assert set(got) == {t.replace("konsol", "konsol") for t in TARGETS}
    for target, lines in got.items():
        assert set(lines) == expected, f"{target}: dropped {len(expected - set(lines))}"
        assert max(lines.values()) == 1, f"{target}: duplicated"
    assert len(records) == 1000 * len(TARGETS) == tick.sent
    assert {r.status for r in records} == {NotificationStatus.SENT}
    assert len({r.dedupe_key for r in records}) == len(records)
    # the receiver's view: each alert's id once
    ids = Counter(i["id"] for i in world.receiver.items())
    assert len(ids) == 1000 and max(ids.values()) == 1
    assert world.receiver.replays == 0 and world.receiver.refused == []
    # Telegram's limits held, its 429s honoured, the digests as large as allowed
    assert world.api.violations == []
    assert world.api.floods > 0
    assert len(world.api.accepted) == len(CHATS) * 40
    seconds = world.clock.now - start
    assert seconds >= len(world.api.accepted) / 30
    assert tick.messages == 40 + len(CHATS) * 40 + 2 * 10 + 20
    print(
        f"\nburst ({storage}): {tick.sent} records in {tick.messages} messages; Telegram "
        f"{len(world.api.accepted)} messages to {len(CHATS)} chats in {seconds:.1f} s "
        f"(fake clock), {world.api.floods} answered 429, {len(world.api.violations)} "
        "limit violations"
    )


def test_channels_down_for_half_an_hour_deliver_everything_once_back(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    dep = deployment(200, burst_settings(world, tg=10, posko=10, surel=20))
    with world.open(dep) as desk:
        world.receiver.stop()
        world.smtp.stop()
        world.api.down = True
        desk.submit_many([incident(dep, i) for i in range(100)], principal=SYSTEM)
        at = T0 + timedelta(seconds=61)
        for minute in range(30):
            if minute == 10:  # more alerts while the channels are down
                desk.submit_many([incident(dep, i) for i in range(100, 200)], principal=SYSTEM)
            desk.tick(at + timedelta(minutes=minute))
        with desk.storage.transaction() as tx:
            waiting = tx.notifications()
        assert world.receiver.items() == [] and world.smtp.raw == []
        assert world.api.accepted == []
        delivered_to_console = len(console_lines(caplog))
        assert delivered_to_console == 200  # the console never went down
        down = [r for r in waiting if r.channel != "konsol"]
        assert {r.status for r in down} == {NotificationStatus.PENDING}
        assert max(r.attempts for r in down) >= 4
        assert all(r.last_error for r in down)
        # back, on the same addresses
        world.receiver.start()
        world.smtp.start()
        world.api.down = False
        at += timedelta(minutes=30)
        for minute in range(0, 60, 5):
            desk.tick(at + timedelta(minutes=minute))
        with desk.storage.transaction() as tx:
            final = tx.notifications()
    assert {r.status for r in final} == {NotificationStatus.SENT}
    expected = expected_lines(dep, 200)
    for target, lines in delivered(world, caplog).items():
        assert set(lines) == expected, target
        assert max(lines.values()) == 1, target
    assert world.api.violations == []


# ---------------------------------------------------------------------------------------
# The canary
# ---------------------------------------------------------------------------------------

#: distinctive tally figures: votes, their sum and the flagged tally's valid count
FIGURES = ("7919", "1187", "9106", "9107", "2719", "4409", "1583", "4153", "7128", "5736")


def figure_pattern(figure: str) -> re.Pattern[str]:
    """A figure as a number on its own, also written with a thousands separator."""
    spelled = (figure, f"{int(figure):,}".replace(",", "."))
    alternatives = "|".join(re.escape(s) for s in spelled)
    return re.compile(rf"(?<![0-9A-Za-z])(?:{alternatives})(?![0-9A-Za-z])")


def personal_data(n: int) -> list[str]:
    out = []
    for i in range(n):
        out += [name_of(i), nik_of(i), phone_of(i)[1:], f"+62{phone_of(i)[1:]}", "Kanaria"]
    return out


def tally(dep: Deployment, i: int, votes: tuple[int, int], valid: int) -> TallyReport:
    monitor = dep.monitors[f"LLG-{i + 1:04d}"]
    return TallyReport(
        report_id=uuid.uuid4(), monitor=monitor.id, station=monitor.station, contest="walikota",
        observed_at=T0, votes={1: votes[0], 2: votes[1]}, valid=valid, invalid=5,
        total=valid + 5,
    )  # fmt: skip


def test_the_canary_finds_no_personal_data_and_no_unreleased_figures_in_any_channel(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    notifications = {
        "digest_seconds": 30,
        "channels": world.channels(),
        "rules": [
            {"on": "incident", "to": TARGETS[:3] + TARGETS[-3:]},
            {"on": "tally_flagged", "to": TARGETS[:3] + TARGETS[-3:]},
            {"on": "station_silent", "stages": ["pembukaan"], "to": TARGETS[:3] + TARGETS[-3:]},
            {"on": "milestone", "thresholds": [0.3], "to": TARGETS[:3] + TARGETS[-3:]},
            {"on": "quickcount_callable", "to": TARGETS[:3] + TARGETS[-3:]},
        ],
    }
    dep = deployment(20, notifications, registered=9999)
    with world.open(dep, "memory://") as desk:
        desk.submit_many([incident(dep, i) for i in range(10)], principal=SYSTEM)
        flagged = desk.submit(tally(dep, 10, (7919, 1187), 9107), principal=SYSTEM)
        assert flagged.status == "flagged"
        for i, (a, b) in enumerate([(2719, 4409), (1583, 4153)] * 3):
            assert desk.submit(tally(dep, i * 3, (a, b), a + b), principal=SYSTEM).counted
        for minute in range(1, 6):
            desk.tick(T0 + timedelta(minutes=minute))
        with desk.storage.transaction() as tx:
            records = tx.notifications()
    kinds = Counter(json.loads(r.payload)["kind"] for r in records)
    assert set(kinds) == {"incident", "tally_flagged", "station_silent", "milestone",
                          "quickcount_callable"}  # fmt: skip
    assert {r.status for r in records} == {NotificationStatus.SENT}

    webhook = [body.decode() for body in world.receiver.raw]
    telegram_out = [body.decode() for body in world.api.bodies]
    mail_raw = [raw.decode("utf-8", "replace") for raw in world.smtp.raw]
    mails = zip(world.smtp.messages(), world.smtp.bodies(), strict=True)
    mail_text = [f"{m['Subject']}\n{body}" for m, body in mails]
    console = [r.getMessage() for r in caplog.records if r.name == "sipantau.notify.console"]
    # every log record of the sending side (aiosmtpd's own log shows what it received)
    logs = "\n".join(
        f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records if r.name != "mail.log"
    )
    queue = [r.payload + r.last_error for r in records]
    outputs = {
        "webhook": webhook, "telegram": telegram_out, "email": mail_raw + mail_text,
        "console": console, "logs": [logs], "queue": queue,
    }  # fmt: skip
    assert all(outputs.values())
    for where, texts in outputs.items():
        for text in texts:
            for secret in personal_data(20):
                assert secret not in text, f"{where}: personal data"
            assert "diancam" not in text, f"{where}: an incident's free text"
            assert TOKEN not in text and SECRET not in text, f"{where}: a channel secret"
    # figures: never below SECRET (nothing was released); the officers' email has them
    for where in ("webhook", "telegram", "console", "logs"):
        for text in outputs[where]:
            for figure in FIGURES:
                assert not figure_pattern(figure).search(text), f"{where}: figure {figure}"
            assert " unggul " not in text, f"{where}: the quick count's leader"
    secret_mail = "\n".join(mail_text)
    assert figure_pattern("9107").search(secret_mail)  # the flagged tally's own numbers
    assert " unggul " in secret_mail
    assert "Kejadian baru tingkat 4 di TPS 001 Kel. Air Kuti (TPS rawan): Intimidasi" in (
        secret_mail
    )
