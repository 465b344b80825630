"""Notifications, the core side: escalation settings, alerts from events, redaction,
digests, the durable queue (once per event, written with the report, retried with
backoff, given up with a record, claimed by one sender), silent stations in their own
time zone, milestones and a callable quick count. Channels here are fakes that subclass
the port (``Recorder``); the real ones are in test_notify_channels.py."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest
import sqlalchemy as sa
from alembic import command

from pg import pg_url  # noqa: F401 - a fixture
from sipantau_adapters.storage.memory import MemoryStorage
from sipantau_adapters.storage.sql import SQLStorage, alembic_config, migration_connection
from sipantau_core import (
    Amends,
    Candidate,
    Contest,
    Deployment,
    DeploymentError,
    Desk,
    Incident,
    Monitor,
    PollingStation,
    Principal,
    RegionCode,
    Role,
    SecurityStatus,
    SituationReport,
    Stage,
    StorageError,
    TallyReport,
    hookimpl,
)
from sipantau_core.access import Classification
from sipantau_core.notify import (
    NOTIFIER,
    Alert,
    Channel,
    DeliveryError,
    Message,
    NotificationSettings,
    Notifier,
    TickResult,
    figures_allowed,
    render_line,
)
from sipantau_core.ports import NotificationRecord, NotificationStatus, StorageTx, WriteBatch
from sipantau_core.testing.contracts import small_deployment

ROOT = Path(__file__).resolve().parents[1]
SYSTEM = Principal(id="import", role=Role.SYSTEM)
COORDINATOR = Principal(id="coord", role=Role.COORDINATOR, scope="16.73")
T0 = datetime(2024, 11, 27, 3, 0, tzinfo=UTC)  # 10:00 WIB
PENDING = NotificationStatus.PENDING


# ---------------------------------------------------------------------------------------
# A fake channel (it subclasses the port) and a desk with it
# ---------------------------------------------------------------------------------------


class Recorder(Channel):
    """Records every message; ``failures`` are raised, one per send, before it succeeds."""

    kind = "fake"

    def __init__(
        self,
        name: str,
        clearance: Classification | str = "internal",
        *,
        max_items: int = 20,
        max_chars: int = 4000,
    ) -> None:
        super().__init__(name, clearance=clearance, max_items=max_items, max_chars=max_chars)
        self.messages: list[Message] = []
        self.failures: list[BaseException] = []
        self.on_send: Callable[[Message], None] | None = None
        self.closed = False

    def send(self, message: Message) -> None:
        if self.on_send is not None:
            self.on_send(message)
        if self.failures:
            raise self.failures.pop(0)
        self.messages.append(message)

    def close(self) -> None:
        self.closed = True

    def lines(self) -> list[str]:
        return [i.text for m in self.messages for i in m.items]


class Channels:
    """Makes the channels of kind ``fake`` from ``made`` (by name)."""

    def __init__(self, *channels: Channel) -> None:
        self.made = {c.name: c for c in channels}

    @hookimpl
    def sipantau_notification_channel(self, name: str, kind: str) -> Channel | None:
        return self.made.get(name) if kind == "fake" else None


def fake(clearance: str = "internal") -> dict[str, Any]:
    return {"kind": "fake", "clearance": clearance}


def with_settings(deployment: Deployment, notifications: Mapping[str, Any]) -> Deployment:
    return attrs.evolve(
        deployment, settings={**deployment.settings, "notifications": notifications}
    )


def open_desk(
    notifications: Mapping[str, Any],
    *channels: Channel,
    deployment: Deployment | None = None,
    storage: str | Any = "memory://",
    clock: Callable[[], datetime] | None = None,
) -> Desk:
    dep = with_settings(deployment or small_deployment(), notifications)
    return Desk.open(
        dep,
        storage=storage,
        plugins=[Channels(*channels)],
        autoload=False,
        clock=clock or (lambda: T0),
    )


def incident_report(
    station: str = "1673011001001",
    *incidents: Incident,
    amends: SituationReport | None = None,
    version: int = 1,
    stage: Stage = Stage.VOTING,
) -> SituationReport:
    monitors = {"1673011001001": "LLG-0001", "1673011001002": "LLG-0002",
                "1673021002001": "LLG-0003"}  # fmt: skip
    return SituationReport(
        report_id=uuid.uuid4(),
        monitor=monitors[station],
        station=station,
        observed_at=T0,
        stage=stage,
        status=SecurityStatus.DISTURBED,
        incidents=list(incidents) or [Incident("intimidasi", 3, "diancam")],
        amends=Amends(amends.report_id, version) if amends is not None else None,
    )


def queued(desk: Desk, **kwargs: Any) -> list[NotificationRecord]:
    with desk.storage.transaction() as tx:
        return tx.notifications(**kwargs)


INCIDENTS = {
    "channels": {"ops": fake("internal")},
    "rules": [{"id": "berat", "on": "incident", "min_severity": 3, "to": ["ops:piket"]}],
}


# ---------------------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------------------

REGENCY = {
    "digest_seconds": 60,
    "backoff_seconds": [15, 30, 60, 120, 300, 600],
    "give_up_after_hours": 12,
    "high_risk_raise": 1,
    "channels": {
        "telegram": {"kind": "telegram", "clearance": "restricted", "token_env": "X"},
        "posko": {"kind": "webhook", "clearance": "internal", "url": "https://x",
                  "secret_env": "Y"},
        "surel": {"kind": "email", "clearance": "secret", "host": "mail", "sender": "d@x"},
    },
    "recipients": {
        "polres": "telegram:-1001111111111",
        "kodim": "telegram:-1002222222222",
        "pimpinan": ["surel:kaban@example.go.id", "surel:kabid@example.go.id"],
    },
    "rules": [
        {"id": "kejadian-berat", "on": "incident", "min_severity": 3,
         "categories": ["intimidasi", "kekerasan", "politik_uang"],
         "to": ["polres", "kodim", "posko", "pimpinan"]},
        {"id": "tps-diam", "on": "station_silent", "stages": ["pembukaan", "penghitungan"],
         "grace_minutes": 15, "to": ["posko"]},
        {"id": "ditandai", "on": "tally_flagged", "to": ["posko", "pimpinan"]},
        {"id": "progres", "on": "milestone", "thresholds": [0.5, 0.25, 1], "to": ["posko"]},
        {"id": "hitung-cepat", "on": "quickcount_callable", "regions": ["16.73"],
         "digest_seconds": 0, "to": ["pimpinan"]},
    ],
}  # fmt: skip


def test_the_settings_of_a_regency_are_read() -> None:
    dep = small_deployment()
    settings = NotificationSettings.parse(REGENCY, dep, categories=["intimidasi", "kekerasan",
                                                                   "politik_uang"])  # fmt: skip
    assert [r.id for r in settings.rules] == [
        "kejadian-berat", "tps-diam", "ditandai", "progres", "hitung-cepat"
    ]  # fmt: skip
    severe = settings.rules[0]
    assert [str(t) for t in severe.to] == [
        "telegram:-1001111111111",
        "telegram:-1002222222222",
        "posko",
        "surel:kaban@example.go.id",
        "surel:kabid@example.go.id",
    ]
    assert severe.min_severity == 3
    assert severe.categories == {"intimidasi", "kekerasan", "politik_uang"}
    silent = settings.rules[1]
    assert silent.stages == (Stage.OPENING, Stage.COUNTING)
    assert silent.grace == timedelta(minutes=15)
    assert settings.rules[3].thresholds == (0.25, 0.5, 1.0)
    assert settings.rules[3].regions == (RegionCode("16.73"),)  # the desk's, by default
    assert settings.rules[4].digest == timedelta(0)
    assert settings.clearance("surel") is Classification.SECRET
    assert settings.retry_delay(1) == timedelta(seconds=15)
    assert settings.retry_delay(40) == timedelta(minutes=10)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"rules": [{"on": "incident", "to": ["nowhere"]}]}, "rules[0].to[0]"),
        ({"rules": [{"on": "insiden", "to": ["ops"]}]}, "rules[0].on"),
        ({"rules": [{"on": "incident", "to": ["ops"], "stages": ["x"]}]}, "rules[0].stages"),
        ({"rules": [{"on": "incident", "to": []}]}, "rules[0].to"),
        ({"rules": [{"on": "incident", "to": ["ops"], "categories": ["xyz"]}]},
         "rules[0].categories"),
        ({"rules": [{"on": "incident", "to": ["ops"], "min_severity": 5}]},
         "rules[0].min_severity"),
        ({"rules": [{"on": "station_silent", "to": ["ops"], "stages": ["pagi"]}]},
         "rules[0].stages"),
        ({"rules": [{"on": "milestone", "to": ["ops"]}]}, "rules[0].thresholds"),
        ({"rules": [{"on": "milestone", "to": ["ops"], "thresholds": [1.5]}]},
         "rules[0].thresholds"),
        ({"rules": [{"on": "milestone", "to": ["ops"], "thresholds": [0.5],
                     "regions": ["16.71"]}]}, "rules[0].regions"),
        ({"rules": [{"on": "quickcount_callable", "to": ["ops"], "contests": ["bupati"]}]},
         "rules[0].contests"),
        ({"rules": [{"on": "incident", "to": ["ops"]}, {"on": "incident", "id": "incident-1",
                                                       "to": ["ops"]}]}, "rules"),
        ({"channels": {"ops": {"kind": "fake"}}}, "channels.ops.clearance"),
        ({"channels": {"ops": {"kind": "fake", "clearance": "top"}}}, "channels.ops.clearance"),
        ({"channels": {}}, "channels"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"digest": 60}, "digest"),
    ],
)  # fmt: skip
def test_a_mistake_in_the_settings_names_its_field(change: dict[str, Any], field: str) -> None:
    raw = {**INCIDENTS, **change}
    with pytest.raises(DeploymentError) as info:
        NotificationSettings.parse(raw, small_deployment(), categories=["intimidasi"])
    assert info.value.code == "notify.config"
    assert info.value.field == f"settings.notifications.{field}"


def test_a_desk_without_notifications_has_no_notifier() -> None:
    with Desk.open(small_deployment(), autoload=False) as desk:
        assert desk.notifier is None
        assert desk.tick() == TickResult()


# ---------------------------------------------------------------------------------------
# Alerts from report events, queued in the report's own transaction
# ---------------------------------------------------------------------------------------


def risky_deployment() -> Deployment:
    """The small deployment with TPS 001 of Kayu Ara mapped as high-risk."""
    dep = small_deployment()
    code = next(iter(dep.stations))
    stations = dict(dep.stations)
    stations[code] = attrs.evolve(
        stations[code], risk=attrs.evolve(stations[code].risk, level="high")
    )
    return attrs.evolve(
        dep,
        stations=stations,
        region_names={RegionCode("16.73.01.1001"): "Kayu Ara", RegionCode("16.73"): "Lubuklinggau"},
    )


def test_an_incident_is_raised_one_level_at_a_high_risk_tps() -> None:
    ops = Recorder("ops")
    with open_desk(INCIDENTS, ops, deployment=risky_deployment()) as desk:
        desk.submit(incident_report("1673011001001", Incident("intimidasi", 2, "x")),
                    principal=SYSTEM)  # fmt: skip
        desk.submit(
            incident_report("1673011001002", Incident("intimidasi", 2, "y")), principal=SYSTEM
        )  # fmt: skip  low risk: stays at 2, below the rule
        assert len(queued(desk)) == 1  # queued with the report, before any tick
        desk.tick(T0 + timedelta(minutes=2))
    [message] = ops.messages
    assert message.text == (
        "Kejadian baru tingkat 3 di TPS 001 Kayu Ara (TPS rawan): Intimidasi — buka desk"
    )
    assert message.recipient == "piket"
    assert ops.closed  # desk.close() closes its channels


class FailingWrites(MemoryStorage):
    """A write that fails after it wrote: the transaction must undo all of it."""

    fail = False

    @contextmanager
    def transaction(self) -> Iterator[StorageTx]:
        with super().transaction() as tx:
            if self.fail:
                write = tx.write

                def failing(batch: Any) -> None:
                    write(batch)
                    raise StorageError("the disk is full (test)")

                tx.write = failing  # type: ignore[method-assign]
            yield tx


def test_alerts_are_written_in_the_transaction_of_their_report() -> None:
    storage = FailingWrites()
    with open_desk(INCIDENTS, Recorder("ops"), storage=storage) as desk:
        storage.fail = True
        with pytest.raises(StorageError):
            desk.submit(incident_report(), principal=SYSTEM)
        storage.fail = False
        assert queued(desk) == []
        report = incident_report()
        desk.submit(report, principal=SYSTEM)
        [record] = queued(desk)
        assert record.status is PENDING
        assert record.created_at == T0
        assert record.next_attempt_at == T0 + timedelta(seconds=60)  # the digest window
        assert record.event.startswith("incident:")
        assert (record.rule, record.channel, record.recipient) == ("berat", "ops", "piket")
        assert "diancam" not in record.payload  # an incident's free text is never kept
        assert "LLG-0001" not in record.payload


def test_the_same_event_is_queued_and_sent_once() -> None:
    settings = {
        "channels": {"ops": fake()},
        "rules": [
            {"id": "semua", "on": "incident", "to": ["ops:piket"]},
            {"id": "berat", "on": "incident", "min_severity": 3, "to": ["ops:piket"]},
        ],
    }
    ops = Recorder("ops")
    with open_desk(settings, ops) as desk:
        first = incident_report(
            "1673011001001", Incident("intimidasi", 3, "a"), Incident("logistik", 1, "b")
        )
        desk.submit(first, principal=SYSTEM)
        assert desk.submit(first, principal=SYSTEM).status == "duplicate"
        # a correction that keeps its incidents (new text): the same events
        same = incident_report(
            "1673011001001",
            Incident("intimidasi", 3, "a, diralat"),
            Incident("logistik", 1, "b"),
            amends=first,
        )
        desk.submit(same, principal=SYSTEM)
        assert {r.rule for r in queued(desk)} == {"semua", "berat"}
        assert len(queued(desk)) == 3  # intimidasi by two rules, logistik by one
        desk.tick(T0 + timedelta(minutes=2))
        desk.tick(T0 + timedelta(minutes=4))
        # a correction that raises the severity: a new event
        worse = incident_report(
            "1673011001001",
            Incident("intimidasi", 4, "a"),
            Incident("logistik", 1, "b"),
            amends=same,
            version=2,
        )
        desk.submit(worse, principal=SYSTEM)
        desk.tick(T0 + timedelta(minutes=6))
    assert [len(m.items) for m in ops.messages] == [2, 1]  # the two rules' line once
    assert ops.lines() == [
        "Kejadian baru tingkat 3 di TPS 001 16.73.01.1001: Intimidasi",
        "Kejadian baru tingkat 1 di TPS 001 16.73.01.1001: Masalah logistik",
        "Kejadian baru tingkat 4 di TPS 001 16.73.01.1001: Intimidasi",
    ]
    assert all(r.status is NotificationStatus.SENT for r in queued(desk))


def test_a_tally_flagged_by_a_hard_rule() -> None:
    settings = {
        "channels": {"ops": fake("restricted"), "mail": fake("secret")},
        "rules": [{"on": "tally_flagged", "to": ["ops:grup", "mail:kaban@example.go.id"]}],
    }
    ops, mail = Recorder("ops", "restricted"), Recorder("mail", "secret")
    with open_desk(settings, ops, mail) as desk:
        bad = TallyReport(
            report_id=uuid.uuid4(), monitor="LLG-0002", station="1673011001002",
            contest="walikota", observed_at=T0, votes={1: 7919, 2: 1187}, valid=9107,
            invalid=5, total=9112,
        )  # fmt: skip
        assert desk.submit(bad, principal=SYSTEM).status == "flagged"
        desk.tick(T0 + timedelta(minutes=2))
    [restricted] = ops.messages
    [secret] = mail.messages
    assert restricted.text.startswith("Hasil TPS 002 16.73.01.1001 ditandai: ")
    assert "votes.sum_mismatch" in restricted.text
    assert not any(figure in restricted.text for figure in ("7919", "1187", "9107", "9106"))
    assert "9107" in secret.text and "9106" in secret.text  # the rule's own message


# ---------------------------------------------------------------------------------------
# Redaction
# ---------------------------------------------------------------------------------------

CALLABLE = Alert(
    kind="quickcount_callable",
    event="quickcount_callable:walikota:16.73:0.95",
    at=T0,
    region="16.73",
    contest="walikota",
    facts={"leader": 2, "runner_up": 1, "share": 0.7054, "margin": 0.0312,
           "confidence": 0.95, "counted": 34, "expected": 326},
)  # fmt: skip


@pytest.mark.parametrize(
    ("clearance", "released", "figures"),
    [
        (Classification.PUBLIC, True, False),
        (Classification.INTERNAL, True, False),
        (Classification.RESTRICTED, False, False),
        (Classification.RESTRICTED, True, True),
        (Classification.SECRET, False, True),
    ],
)
def test_figures_only_where_the_clearance_allows(
    clearance: Classification, released: bool, figures: bool
) -> None:
    dep = risky_deployment()
    assert figures_allowed(clearance, released=released) is figures
    line = render_line(CALLABLE, clearance, deployment=dep, released=released)
    assert ("70,54%" in line) is figures
    assert ("Paslon 2 unggul" in line) is figures
    if clearance is Classification.PUBLIC:
        assert line == "Pemberitahuan baru"
    else:
        assert line.startswith(
            "Hitung cepat walikota di Lubuklinggau sudah dapat ditetapkan (34/326 TPS)"
        )


def test_a_public_channel_hears_only_that_there_is_news() -> None:
    settings = {
        "channels": {"papan": fake("public")},
        "rules": [{"on": "incident", "to": ["papan"]}],
    }
    board = Recorder("papan", "public")
    with open_desk(settings, board) as desk:
        for station in ("1673011001001", "1673011001002", "1673021002001"):
            desk.submit(incident_report(station), principal=SYSTEM)
        desk.tick(T0 + timedelta(minutes=2))
    [message] = board.messages
    assert message.text == "Desk kecil: 3 pemberitahuan baru — buka desk"
    assert len(message.items) == 3
    assert all(i.text == "Pemberitahuan baru" for i in message.items)


def test_the_channels_own_clearance_caps_the_configured_one() -> None:
    settings = {"channels": {"ops": fake("secret")},
                "rules": [{"on": "incident", "to": ["ops"]}]}  # fmt: skip
    ops = Recorder("ops", "public")  # the object says public: public it is
    with open_desk(settings, ops) as desk:
        assert desk.notifier is not None
        assert desk.notifier.clearance("ops") is Classification.PUBLIC


# ---------------------------------------------------------------------------------------
# Digests
# ---------------------------------------------------------------------------------------


def test_a_burst_is_one_digest_per_recipient_split_by_the_channels_limits() -> None:
    settings = {
        "digest_seconds": 120,
        "channels": {"ops": fake(), "log": fake()},
        "rules": [{"on": "incident", "to": ["ops:a", "ops:b", "log"]}],
    }
    ops, log = Recorder("ops", max_items=20), Recorder("log", max_items=1000, max_chars=1000)
    with open_desk(settings, ops, log) as desk:
        reports = [
            incident_report("1673011001001", *(Incident("lainnya", 1, str(i)) for i in range(15)))
            for _ in range(3)
        ]
        for i, report in enumerate(reports):
            desk.submit(report, principal=SYSTEM)
            assert desk.tick(T0 + timedelta(seconds=30 * i)).messages == 0  # the window
        result = desk.tick(T0 + timedelta(seconds=121))
    by_recipient: dict[str, list[int]] = {}
    for m in ops.messages:
        by_recipient.setdefault(m.recipient, []).append(len(m.items))
    assert by_recipient == {"a": [20, 20, 5], "b": [20, 20, 5]}
    assert sum(len(m.items) for m in log.messages) == 45
    assert all(len(m.text) <= 1000 for m in log.messages)
    assert len(log.messages) > 1  # split by characters
    assert result.sent == 135
    assert result.messages == len(ops.messages) + len(log.messages)
    digest = ops.messages[0]
    assert digest.subject == "[Desk kecil] 20 pemberitahuan baru"
    assert digest.text.splitlines()[0] == "Desk kecil: 20 pemberitahuan baru"
    assert digest.text.endswith("\n— buka desk")
    assert len({m.id for m in ops.messages}) == 6


def test_at_most_max_messages_per_tick_for_one_recipient() -> None:
    settings = {"max_messages_per_tick": 2, "channels": {"ops": fake()},
                "rules": [{"on": "incident", "to": ["ops"]}]}  # fmt: skip
    ops = Recorder("ops", max_items=1)
    with open_desk(settings, ops) as desk:
        desk.submit(incident_report("1673011001001", *[Incident("lainnya", 1)] * 5),
                    principal=SYSTEM)  # fmt: skip
        counts = [desk.tick(T0 + timedelta(minutes=2 + i)).messages for i in range(4)]
    assert counts == [2, 2, 1, 0]


# ---------------------------------------------------------------------------------------
# Retries, giving up, claims
# ---------------------------------------------------------------------------------------


def test_a_failed_delivery_is_retried_with_backoff_until_it_is_sent() -> None:
    settings = {**INCIDENTS, "backoff_seconds": [10, 20, 40]}
    ops = Recorder("ops")
    ops.failures = [DeliveryError("ops: down")] * 4
    with open_desk(settings, ops) as desk:
        desk.submit(incident_report(), principal=SYSTEM)
        at = T0 + timedelta(seconds=60)
        waits = []
        for _ in range(5):
            result = desk.tick(at)
            [record] = queued(desk)
            if record.status is NotificationStatus.SENT:
                break
            assert result.failed == 1
            assert record.last_error == "ops: down"
            waits.append(record.next_attempt_at - at)
            assert desk.tick(record.next_attempt_at - timedelta(seconds=1)).messages == 0
            at = record.next_attempt_at
    assert waits == [timedelta(seconds=s) for s in (10, 20, 40, 40)]
    assert (record.attempts, record.sent_at, record.last_error) == (5, at, "")
    assert record.message_id == ops.messages[0].id
    assert len(ops.messages) == 1


def test_retry_after_is_honoured() -> None:
    ops = Recorder("ops")
    ops.failures = [DeliveryError("ops: flood", retry_after=300)]
    with open_desk(INCIDENTS, ops) as desk:
        desk.submit(incident_report(), principal=SYSTEM)
        desk.tick(T0 + timedelta(minutes=1))
        [record] = queued(desk)
    assert record.next_attempt_at == T0 + timedelta(minutes=6)


@pytest.mark.parametrize(
    ("settings", "failure", "ticks", "reason"),
    [
        ({}, DeliveryError("ops: no such chat", permanent=True), 1, "permanent failure"),
        ({"max_attempts": 3, "backoff_seconds": [1]}, DeliveryError("ops: down"), 3,
         "not delivered in 3 attempts"),
        ({"give_up_after_hours": 1, "backoff_seconds": [1800]}, DeliveryError("ops: down"), 3,
         "not delivered within 1:00:00"),
    ],
)  # fmt: skip
def test_a_delivery_is_given_up_with_a_record(
    settings: dict[str, Any], failure: DeliveryError, ticks: int, reason: str
) -> None:
    ops = Recorder("ops")
    ops.failures = [failure] * 10
    with open_desk({**INCIDENTS, **settings}, ops) as desk:
        desk.submit(incident_report(), principal=SYSTEM)
        at = T0 + timedelta(minutes=1)
        results = []
        for _ in range(ticks):
            results.append(desk.tick(at))
            at = max(at, queued(desk)[0].next_attempt_at)
        [record] = queued(desk)
        assert desk.tick(at + timedelta(days=1)).messages == 0  # never tried again
    assert record.status is NotificationStatus.GIVEN_UP
    assert record.given_up_reason.startswith(reason)
    assert failure.message in record.given_up_reason
    assert results[-1].given_up == 1
    assert ops.messages == []


def test_a_channel_that_fails_is_not_tried_again_in_the_same_tick() -> None:
    settings = {"channels": {"ops": fake()},
                "rules": [{"on": "incident", "to": ["ops:a", "ops:b", "ops:c"]}]}  # fmt: skip
    ops = Recorder("ops")
    ops.failures = [DeliveryError("ops: connection refused")]
    tried: list[str] = []
    ops.on_send = lambda m: tried.append(m.recipient)
    with open_desk(settings, ops) as desk:
        desk.submit(incident_report(), principal=SYSTEM)
        result = desk.tick(T0 + timedelta(minutes=1))
        records = queued(desk)
    assert tried == ["a"]
    assert result.failed == 3
    assert [r.attempts for r in records] == [1, 0, 0]  # the skipped ones lose no attempt
    assert {r.next_attempt_at for r in records} == {T0 + timedelta(minutes=1, seconds=15)}


def test_records_of_a_channel_no_longer_configured_are_given_up() -> None:
    storage = MemoryStorage()
    with open_desk(INCIDENTS, Recorder("ops"), storage=storage) as desk:
        desk.submit(incident_report(), principal=SYSTEM)
    other = {"channels": {"mail": fake()}, "rules": [{"on": "incident", "to": ["mail"]}]}
    with open_desk(other, Recorder("mail"), storage=storage) as desk:
        desk.submit(incident_report("1673011001002"), principal=SYSTEM)
        result = desk.tick(T0 + timedelta(minutes=5))
        [old, new] = queued(desk)
    assert result.given_up == 1
    assert old.status is NotificationStatus.GIVEN_UP
    assert "no channel 'ops'" in old.given_up_reason
    assert new.status is NotificationStatus.SENT


def test_one_sender_claims_a_delivery_and_a_lost_claim_is_sent_later(tmp_path: Path) -> None:
    """Two desks on one SQLite file (two processes): while one sends, the other finds
    nothing to send; one that dies while sending leaves a claim that runs out."""
    url = f"sqlite:///{tmp_path / 'desk.db'}"
    settings = {**INCIDENTS, "claim_seconds": 600}
    a, b = Recorder("ops"), Recorder("ops")
    other_results: list[TickResult] = []
    with (
        open_desk(settings, a, storage=url) as desk_a,
        open_desk(settings, b, storage=url) as desk_b,
    ):
        a.on_send = lambda m: other_results.append(desk_b.tick(T0 + timedelta(minutes=2)))
        desk_a.submit(incident_report(), principal=SYSTEM)
        desk_a.tick(T0 + timedelta(minutes=2))
        assert other_results == [TickResult()]
        assert len(a.messages) == 1 and b.messages == []

        class Died(BaseException):
            pass

        a.on_send = None
        a.failures = [Died()]
        desk_a.submit(incident_report("1673011001002"), principal=SYSTEM)
        with pytest.raises(Died):
            desk_a.tick(T0 + timedelta(minutes=4))
        assert desk_b.tick(T0 + timedelta(minutes=13)).messages == 0  # still claimed
        assert desk_b.tick(T0 + timedelta(minutes=14, seconds=1)).sent == 1
    assert [m.items[0].text for m in b.messages] == [
        "Kejadian baru tingkat 3 di TPS 002 16.73.01.1001: Intimidasi"
    ]


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def test_the_queue_survives_a_restart(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = (
        f"sqlite:///{tmp_path / 'desk.db'}"
        if backend == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    with open_desk(INCIDENTS, Recorder("ops"), storage=url) as desk:
        desk.submit(incident_report(), principal=SYSTEM)
    ops = Recorder("ops")  # the next process
    with open_desk(INCIDENTS, ops, storage=url) as desk:
        assert desk.tick(T0 + timedelta(minutes=2)).sent == 1
        assert desk.tick(T0 + timedelta(minutes=4)).sent == 0
        [record] = queued(desk)
    assert record.status is NotificationStatus.SENT
    assert [m.items[0].text for m in ops.messages] == [
        "Kejadian baru tingkat 3 di TPS 001 16.73.01.1001: Intimidasi"
    ]


# ---------------------------------------------------------------------------------------
# What tick finds: silent stations, milestones, a callable quick count
# ---------------------------------------------------------------------------------------

SILENT = {
    "channels": {"ops": fake()},
    "rules": [{"id": "diam", "on": "station_silent", "stages": ["pembukaan"], "to": ["ops"]},
              {"id": "diam-rawan", "on": "station_silent", "stages": ["pemungutan"],
               "grace_minutes": 30, "high_risk_only": True, "to": ["ops:polres"]}],
}  # fmt: skip


def mataram() -> Deployment:
    """A desk in Kota Mataram (NTB, WITA: UTC+8)."""
    stations = [PollingStation(code="5271011001001", registered_voters=300),
                PollingStation(code="5271011001002", registered_voters=300)]  # fmt: skip
    contest = Contest(id="walikota", region="52.71", candidates=[Candidate(1, "A"),
                                                                 Candidate(2, "B")])  # fmt: skip
    return Deployment(
        id="mataram",
        name="Desk Mataram",
        region=RegionCode("52.71"),
        election_day=date(2024, 11, 27),
        stations={s.code: s for s in stations},
        contests={contest.id: contest},
        monitors={"MTR-0001": Monitor(id="MTR-0001", station="5271011001001")},
    )


def test_silent_stations_are_found_in_their_own_time_zone() -> None:
    wib, wita = Recorder("ops"), Recorder("ops")
    at = datetime(2024, 11, 26, 23, 45, tzinfo=UTC)  # 07:45 WITA, 06:45 WIB
    with (
        open_desk(SILENT, wib, deployment=risky_deployment()) as lubuklinggau,
        open_desk(SILENT, wita, deployment=mataram()) as mtr,
    ):
        assert lubuklinggau.tick(at).found == 0
        assert mtr.tick(at).found == 2
        assert mtr.tick(at + timedelta(minutes=2)).sent == 2
        # 07:31 WIB: TPS 001 reported its opening, late but before the tick
        lubuklinggau.submit(incident_report("1673011001001", stage=Stage.OPENING),
                            principal=SYSTEM)  # fmt: skip
        result = lubuklinggau.tick(datetime(2024, 11, 27, 0, 31, tzinfo=UTC))
        assert (result.found, result.queued) == (2, 2)
        assert lubuklinggau.tick(datetime(2024, 11, 27, 0, 45, tzinfo=UTC)).found == 0
        # 13:15 WIB is the voting deadline; the high-risk rule waits 30 minutes more
        assert lubuklinggau.tick(datetime(2024, 11, 27, 6, 30, tzinfo=UTC)).found == 0
        lubuklinggau.submit(incident_report("1673011001001"), principal=SYSTEM)  # voting: in
        assert lubuklinggau.tick(datetime(2024, 11, 27, 6, 46, tzinfo=UTC)).found == 0
        lubuklinggau.tick(datetime(2024, 11, 27, 7, 0, tzinfo=UTC))
        notifier_reads = [e for e in lubuklinggau.audit.entries() if e.principal == NOTIFIER.id]
    assert [i.text for m in wita.messages for i in m.items] == [
        "TPS 001 52.71.01.1001 belum melapor tahap pembukaan (batas 07:30 WITA)",
        "TPS 002 52.71.01.1001 belum melapor tahap pembukaan (batas 07:30 WITA)",
    ]
    assert [i.text for m in wib.messages for i in m.items] == [
        "TPS 002 Kayu Ara belum melapor tahap pembukaan (batas 07:30 WIB)",
        "TPS 001 16.73.02.1002 belum melapor tahap pembukaan (batas 07:30 WIB)",
    ]
    # the notifier's reads of the stations' status are audited, once per deadline passed
    assert [e.action for e in notifier_reads] == ["read_status", "read_status"]


def test_a_silent_high_risk_station_after_the_grace() -> None:
    ops = Recorder("ops")
    with open_desk(SILENT, ops, deployment=risky_deployment()) as desk:
        desk.tick(datetime(2024, 11, 27, 6, 46, tzinfo=UTC))  # 13:46 WIB
        desk.tick(datetime(2024, 11, 27, 6, 48, tzinfo=UTC))
    assert [
        (m.recipient, i.text) for m in ops.messages for i in m.items if "pemungutan" in i.text
    ] == [("polres", "TPS 001 Kayu Ara belum melapor tahap pemungutan (batas 13:15 WIB)")]


def test_each_rule_finds_silent_stations_with_its_own_grace() -> None:
    settings = {
        "channels": {"ops": fake()},
        "rules": [
            {"id": "posko", "on": "station_silent", "stages": ["pembukaan"], "to": ["ops:posko"]},
            {"id": "polres", "on": "station_silent", "stages": ["pembukaan"], "grace_minutes": 15,
             "high_risk_only": True, "to": ["ops:polres"]},
        ],
    }  # fmt: skip
    ops = Recorder("ops")
    with open_desk(settings, ops, deployment=risky_deployment()) as desk:
        desk.tick(datetime(2024, 11, 27, 0, 31, tzinfo=UTC))  # 07:31 WIB
        desk.tick(datetime(2024, 11, 27, 0, 33, tzinfo=UTC))
        assert {m.recipient for m in ops.messages} == {"posko"}  # not yet the police
        desk.tick(datetime(2024, 11, 27, 0, 46, tzinfo=UTC))  # 07:46 WIB
        desk.tick(datetime(2024, 11, 27, 0, 48, tzinfo=UTC))
    polres = [i.text for m in ops.messages if m.recipient == "polres" for i in m.items]
    assert polres == ["TPS 001 Kayu Ara belum melapor tahap pembukaan (batas 07:30 WIB)"]
    assert len([i for m in ops.messages if m.recipient == "posko" for i in m.items]) == 3


@pytest.fixture(scope="module")
def lubuklinggau() -> Deployment:
    return Deployment.load(ROOT / "examples" / "lubuklinggau")


def sample_tallies() -> list[str]:
    path = ROOT / "examples" / "lubuklinggau" / "sample_tallies.jsonl"
    return path.read_text(encoding="utf-8").splitlines()


PROGRESS = {
    "channels": {"tg": fake("restricted"), "mail": fake("secret")},
    "rules": [
        {"on": "milestone", "thresholds": [0.05, 0.1, 0.5], "to": ["tg:grup"]},
        {"on": "milestone", "thresholds": [0.5], "regions": ["16.73.01"], "to": ["tg:grup"]},
        {"on": "quickcount_callable", "to": ["tg:grup", "mail:kaban@example.go.id"]},
    ],
}


@pytest.mark.parametrize("released", [False, True])
def test_milestones_and_a_quick_count_that_becomes_callable(
    lubuklinggau: Deployment, released: bool
) -> None:
    tg, mail = Recorder("tg", "restricted"), Recorder("mail", "secret")
    with open_desk(PROGRESS, tg, mail, deployment=lubuklinggau) as desk:
        if released:
            desk.release("16.73", principal=COORDINATOR, contest="walikota")
        lines = sample_tallies()
        desk.submit_many(lines[:10], principal=SYSTEM)
        first = desk.tick(T0)
        desk.submit_many(lines[10:], principal=SYSTEM)
        second = desk.tick(T0 + timedelta(minutes=1))
        third = desk.tick(T0 + timedelta(minutes=2))
        again = desk.tick(T0 + timedelta(minutes=10))
        district = desk.tally("16.73.01", principal=COORDINATOR)
    assert (first.found, second.found) == (0, 3)  # 10 TPS: too few; then 5 %, 10 %, callable
    assert third.sent == 4 and again == TickResult()
    tg_lines = [i.text for m in tg.messages for i in m.items]
    assert tg_lines[:2] == [
        "Progres Pemilihan Wali Kota dan Wakil Wali Kota Lubuklinggau 2024: 5% TPS di Kota "
        "Lubuklinggau sudah masuk (34/326)",
        "Progres Pemilihan Wali Kota dan Wakil Wali Kota Lubuklinggau 2024: 10% TPS di Kota "
        "Lubuklinggau sudah masuk (34/326)",
    ]
    assert district.progress < 0.5  # no district milestone
    callable_tg = tg_lines[2]
    [callable_mail] = [i.text for m in mail.messages for i in m.items]
    assert callable_tg.startswith("Hitung cepat Pemilihan Wali Kota")
    assert "sudah dapat ditetapkan (34/326 TPS)" in callable_tg
    assert "Paslon 2 unggul 70,55%" in callable_mail
    assert ("Paslon 2 unggul 70,55%" in callable_tg) is released


def test_each_milestone_rule_hears_its_own_thresholds(lubuklinggau: Deployment) -> None:
    settings = {
        "channels": {"tg": fake("restricted")},
        "rules": [
            {"on": "milestone", "thresholds": [0.05], "to": ["tg:a"]},
            {"on": "milestone", "thresholds": [0.05, 0.1], "to": ["tg:b"]},
        ],
    }
    tg = Recorder("tg", "restricted")
    with open_desk(settings, tg, deployment=lubuklinggau) as desk:
        desk.submit_many(sample_tallies(), principal=SYSTEM)
        assert desk.tick(T0).found == 2
        desk.tick(T0 + timedelta(minutes=2))
        assert desk.tick(T0 + timedelta(minutes=4)) == TickResult()
    got = {(m.recipient, i.text.split(": ")[1][:3]) for m in tg.messages for i in m.items}
    assert got == {("a", "5% "), ("b", "5% "), ("b", "10%")}


def test_the_notifier_is_one_per_desk_and_its_ticks_do_not_overlap() -> None:
    ops = Recorder("ops")
    started, release = threading.Event(), threading.Event()

    def slow(message: Message) -> None:
        started.set()
        release.wait(5)

    ops.on_send = slow
    with open_desk(INCIDENTS, ops) as desk:
        desk.submit(incident_report(), principal=SYSTEM)
        results: list[TickResult] = []
        worker = threading.Thread(
            target=lambda: results.append(desk.tick(T0 + timedelta(minutes=2)))
        )
        worker.start()
        assert started.wait(5)
        second = threading.Thread(
            target=lambda: results.append(desk.tick(T0 + timedelta(minutes=2)))
        )
        second.start()
        release.set()
        worker.join()
        second.join()
    assert sorted(r.sent for r in results) == [0, 1]
    assert isinstance(desk.notifier, Notifier)


def test_a_tick_loop_runs_the_desks_ticks_in_the_background(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from sipantau_adapters.notify import TickLoop

    ops = Recorder("ops")
    clock = [T0]
    sent = threading.Event()
    ops.on_send = lambda m: sent.set()
    with open_desk({**INCIDENTS, "digest_seconds": 0}, ops, clock=lambda: clock[0]) as desk:
        desk.submit(incident_report(), principal=SYSTEM)
        with TickLoop(desk, interval=0.01):
            assert sent.wait(5)
        ticks = 0

        def failing(now: datetime | None = None) -> TickResult:
            nonlocal ticks
            ticks += 1
            raise StorageError("the database is down (test)")

        desk.tick = failing  # type: ignore[method-assign]
        loop = TickLoop(desk, interval=0.01).start()
        while ticks < 3:
            threading.Event().wait(0.01)
        loop.stop()
    assert len(ops.messages) == 1
    assert "desk.tick() failed" in caplog.text  # logged, and the loop went on


# ---------------------------------------------------------------------------------------
# The migration
# ---------------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'desk.db'}"
    else:
        yield request.getfixturevalue("pg_url")


def _tables(url: str) -> set[str]:
    with migration_connection(url) as (conn, _):
        return set(sa.inspect(conn).get_table_names())


def test_0004_adds_the_queue_and_downgrades_to_0003(db_url: str) -> None:
    store = SQLStorage(db_url)
    try:
        with store.transaction() as tx:
            record = NotificationRecord("k" * 64, "e", "r", "c", "x", "incident", "{}", T0, T0)
            tx.write(WriteBatch(notifications=[record]))
    finally:
        store.close()
    assert "notifications" in _tables(db_url)
    with migration_connection(db_url) as (conn, schema):
        command.downgrade(alembic_config(conn, schema), "0003")
    assert "notifications" not in _tables(db_url)
    store = SQLStorage(db_url)  # and up again, empty
    try:
        with store.transaction() as tx:
            assert tx.notifications() == []
    finally:
        store.close()
