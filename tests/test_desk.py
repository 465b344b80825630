"""Example tests of the desk on ``memory://``: what the contract suite does not cover.

Opening (a deployment directory, plugins with a rule pack and an incident category, an
unknown storage scheme), the lifecycle hooks (once per event, the right kind, only after
commit, a failing plugin logged), the station status against each station's own time
zone, incidents, decisions, the receipt and bulk-result helpers, and the counts of the
Lubuklinggau reference deployment after its sample tallies.
"""

from __future__ import annotations

import csv
import json
import logging
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import attrs
import pytest

from sipantau_adapters.storage.memory import MemoryStorage
from sipantau_core import (
    Amends,
    Candidate,
    ConflictError,
    Contest,
    Deployment,
    Desk,
    Incident,
    IncidentCategory,
    Monitor,
    PayloadError,
    PermissionDenied,
    PollingStation,
    Principal,
    Receipt,
    RegionCode,
    Role,
    SecurityStatus,
    SipantauError,
    SituationReport,
    Stage,
    StorageError,
    TallyReport,
    TimeZone,
    UnknownEntityError,
    VoterCounts,
    hookimpl,
)
from sipantau_core.desk import BulkResult, RegionEvent, ReportEvent
from sipantau_core.ports import (
    AuditRecord,
    Decision,
    DeviceKeyRecord,
    LogTree,
    MonitorRecord,
    ReleaseRecord,
    ReportFilter,
    StationKey,
    StationState,
    Storage,
    StorageTx,
    StoredReport,
    TokenRecord,
    WriteBatch,
)
from sipantau_core.rules import HARD, RuleContext, Violation
from sipantau_core.testing.contracts import small_deployment

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "lubuklinggau"

T0 = datetime(2024, 11, 27, 6, 0, tzinfo=TimeZone.WIB.tzinfo)
WIT = TimeZone.WIT.tzinfo

SYSTEM = Principal(id="import", role=Role.SYSTEM)
COORDINATOR = Principal(id="coord", role=Role.COORDINATOR, scope="16.73")
OFFICER = Principal(id="officer-1", role=Role.OFFICER, scope="16.73")

#: small_deployment(): TPS 1 and 2 in 16.73.01.1001, TPS 3 in 16.73.02.1002.
TPS = {1: "1673011001001", 2: "1673011001002", 3: "1673021002001"}

SOFT_CODES = frozenset({"ballots.reserve_unexpected", "turnout.outside_band", "votes.unanimous"})


def monitor(n: int) -> Principal:
    return Principal(id=f"LLG-000{n}", role=Role.MONITOR, scope=TPS[n])


def tally(
    n: int,
    votes: tuple[int, int] = (100, 200),
    invalid: int = 5,
    *,
    total: int | None = None,
    amends: TallyReport | None = None,
    version: int = 1,
    at: datetime | None = None,
) -> TallyReport:
    """A tally for TPS ``n`` of small_deployment(); ``total`` other than valid + invalid
    breaks total.sum_mismatch (a hard rule)."""
    valid = sum(votes)
    return TallyReport(
        report_id=uuid.uuid4(),
        monitor=f"LLG-000{n}",
        station=TPS[n],
        contest="walikota",
        observed_at=at or T0 + timedelta(hours=8),
        votes={1: votes[0], 2: votes[1]},
        valid=valid,
        invalid=invalid,
        total=valid + invalid if total is None else total,
        voted=VoterCounts(valid + invalid, 0, 0) if total is None else None,
        amends=Amends(amends.report_id, version) if amends is not None else None,
    )


def situation(
    n: int,
    stage: Stage,
    incidents: Iterable[Incident] = (),
    *,
    status: SecurityStatus = SecurityStatus.ALERT,
    at: datetime | None = None,
    amends: SituationReport | None = None,
    station: str | None = None,
    monitor_id: str | None = None,
) -> SituationReport:
    return SituationReport(
        report_id=uuid.uuid4(),
        monitor=monitor_id or f"LLG-000{n}",
        station=station or TPS[n],
        observed_at=at or T0 + timedelta(hours=1),
        stage=stage,
        status=status,
        incidents=list(incidents),
        amends=Amends(amends.report_id, 1) if amends is not None else None,
    )


class Clock:
    """An injectable clock: ``desk.clock()`` returns ``clock.now``."""

    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def desk() -> Iterator[Desk]:
    with Desk.open(small_deployment(), storage="memory://", autoload=False) as d:
        yield d


# ---------------------------------------------------------------------------------------
# Opening a desk
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("where", [EXAMPLE, str(EXAMPLE)], ids=["Path", "str"])
def test_open_a_deployment_directory(where: Path | str) -> None:
    with Desk.open(where) as desk:
        assert desk.deployment.id == "lubuklinggau"
        assert desk.deployment.path == EXAMPLE
        assert len(desk.deployment.stations) == 326
        assert desk.storage.url == "memory://"
        city = desk.tally("16.73", principal=COORDINATOR)
        assert (city.stations_counted, city.stations_expected) == (0, 326)
        assert city.registered_expected == 168_391
        assert city.votes == {1: 0, 2: 0}


@pytest.mark.parametrize("url", ["mongodb://localhost/desk", "nosuchscheme:///x", "desk.db"])
def test_a_storage_url_of_unknown_scheme(url: str) -> None:
    with pytest.raises(StorageError) as info:
        Desk.open(small_deployment(), storage=url, autoload=False)
    assert info.value.code == "storage.unknown_scheme"
    assert "memory" in info.value.message  # names the schemes that are served


def test_a_ready_storage_object_is_used_as_it_is() -> None:
    store = MemoryStorage()
    first = Desk.open(small_deployment(), storage=store, autoload=False)
    second = Desk.open(small_deployment(), storage=store, autoload=False)
    assert first.storage is store and second.storage is store
    first.submit(tally(1), principal=SYSTEM)
    assert second.tally("16.73", principal=COORDINATOR).total == 305


# -- plugins: a rule pack and an incident category ------------------------------------------


@attrs.frozen
class InvalidShareRule:
    """A regency's own hard rule: more than 10 % invalid votes."""

    codes: tuple[str, ...] = ("lokal.invalid_share",)
    needs: frozenset[str] = frozenset()

    def check(self, report: TallyReport, ctx: RuleContext) -> Iterator[Violation]:
        if report.total and report.invalid * 10 > report.total:
            yield Violation(
                "lokal.invalid_share",
                HARD,
                ("invalid",),
                "suara tidak sah lebih dari 10 %",
                "more than 10 % invalid votes",
            )


SMEAR = IncidentCategory("kampanye_hitam", "Kampanye hitam", "Smear campaign", 2)


class LocalPack:
    def __init__(self) -> None:
        self.asked: list[str] = []

    @hookimpl
    def sipantau_rule_packs(self, deployment: Deployment) -> Iterable[InvalidShareRule]:
        self.asked.append(f"rules:{deployment.id}")
        return [InvalidShareRule()]

    @hookimpl
    def sipantau_incident_categories(self, deployment: Deployment) -> Iterable[IncidentCategory]:
        self.asked.append(f"categories:{deployment.id}")
        return [SMEAR]


def test_a_plugin_adds_a_rule_pack_and_an_incident_category() -> None:
    pack = LocalPack()
    with Desk.open(small_deployment(), plugins=[pack], autoload=False) as desk:
        assert sorted(pack.asked) == ["categories:kecil", "rules:kecil"]
        assert "lokal.invalid_share" in desk.rules.codes
        assert desk.incident_categories["kampanye_hitam"] == SMEAR
        assert "intimidasi" in desk.incident_categories  # the defaults stay
        receipt = desk.submit(tally(1, (100, 200), invalid=40), principal=monitor(1))
        assert receipt.status == "flagged"
        assert [v.code for v in receipt.violations] == ["lokal.invalid_share"]
        assert desk.submit(tally(2, (100, 200), invalid=5), principal=monitor(2)).counted
        smear = situation(1, Stage.VOTING, [Incident("kampanye_hitam", 2, "selebaran")])
        assert desk.submit(smear, principal=monitor(1)).status == "accepted"
        assert [i.category for i in desk.incidents("16.73", principal=OFFICER)] == [
            "kampanye_hitam"
        ]


def test_without_the_plugin_its_rule_and_category_are_unknown(desk: Desk) -> None:
    assert "lokal.invalid_share" not in desk.rules.codes
    assert desk.submit(tally(1, (100, 200), invalid=40), principal=monitor(1)).status == (
        "accepted"
    )
    smear = situation(1, Stage.VOTING, [Incident("kampanye_hitam", 2)])
    with pytest.raises(UnknownEntityError) as info:
        desk.submit(smear, principal=monitor(1))
    assert info.value.code == "report.unknown_incident_category"
    assert desk.reports("16.73", principal=COORDINATOR, kind="situation") == []


# ---------------------------------------------------------------------------------------
# Lifecycle hooks
# ---------------------------------------------------------------------------------------


class TrackedTx(StorageTx):
    """Delegates to a memory transaction; ``fail_writes`` makes the write fail."""

    def __init__(self, inner: StorageTx, owner: TrackedStorage):
        self.inner = inner
        self.owner = owner

    def get_reports(self, report_ids: Iterable[UUID]) -> dict[UUID, StoredReport]:
        return self.inner.get_reports(report_ids)

    def chain_heads(self, chain_ids: Iterable[UUID]) -> dict[UUID, StoredReport]:
        return self.inner.chain_heads(chain_ids)

    def station_states(
        self, keys: Iterable[StationKey], *, lock: bool = False
    ) -> dict[StationKey, StationState]:
        return self.inner.station_states(keys, lock=lock)

    def aggregates(self, contest: str, region: str) -> dict[str, int]:
        return self.inner.aggregates(contest, region)

    def reports(self, query: ReportFilter) -> list[StoredReport]:
        return self.inner.reports(query)

    def decisions(self, report_id: UUID | None = None) -> list[Decision]:
        return self.inner.decisions(report_id)

    def releases(self) -> list[ReleaseRecord]:
        return self.inner.releases()

    def audit(self, *, after: int = 0, limit: int | None = None) -> list[AuditRecord]:
        return self.inner.audit(after=after, limit=limit)

    def notifications(self, **kwargs: Any) -> Any:
        return self.inner.notifications(**kwargs)

    def audit_head(self, *, lock: bool = False) -> tuple[int, str]:
        return self.inner.audit_head(lock=lock)

    def log_tree(self) -> LogTree:
        return self.inner.log_tree()

    def device_keys(
        self, *, key_ids: Iterable[str] | None = None, monitor: str | None = None
    ) -> list[DeviceKeyRecord]:
        return self.inner.device_keys(key_ids=key_ids, monitor=monitor)

    def token(self, token_hash: str) -> TokenRecord | None:
        return self.inner.token(token_hash)

    def monitors(self, ids: Iterable[str] | None = None) -> dict[str, MonitorRecord]:
        return self.inner.monitors(ids)

    def media(self, sha256s: Any, *, data: bool = True) -> Any:
        return self.inner.media(sha256s, data=data)

    def write(self, batch: WriteBatch) -> None:
        if self.owner.fail_writes and (batch.reports or batch.statuses or batch.releases):
            raise StorageError("the disk is full (test)", code="storage.unavailable")
        self.inner.write(batch)


class TrackedStorage(Storage):
    """A memory store that knows whether a transaction is open (``open`` > 0): the
    desk's hooks must run only once the transaction has committed."""

    def __init__(self) -> None:
        self.inner = MemoryStorage()
        self.url = "memory://tracked"
        self.open = 0
        self.fail_writes = False

    @contextmanager
    def transaction(self) -> Iterator[StorageTx]:
        self.open += 1
        try:
            with self.inner.transaction() as tx:
                yield TrackedTx(tx, self)
        finally:
            self.open -= 1


@attrs.frozen
class Seen:
    kind: str
    report_id: UUID | None = None
    status: str | None = None  # the receipt's
    stored: str | None = None  # what a new transaction reads right then
    principal: str | None = None
    reason: str = ""


class Recorder:
    """Records every lifecycle event, with what the store holds at that moment."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.in_transaction: list[str] = []

    def _report(self, kind: str, desk: Desk, event: ReportEvent) -> None:
        storage = desk.storage
        if isinstance(storage, TrackedStorage) and storage.open:
            self.in_transaction.append(kind)
        with desk.storage.transaction() as tx:
            stored = tx.get_reports([event.receipt.report_id]).get(event.receipt.report_id)
        self.seen.append(
            Seen(
                kind,
                event.receipt.report_id,
                event.receipt.status,
                stored.status.value if stored else None,
                event.principal.id,
                event.reason,
            )
        )

    @hookimpl
    def sipantau_desk_opened(self, desk: Desk) -> None:
        self.seen.append(Seen("desk_opened"))

    @hookimpl
    def sipantau_report_accepted(self, desk: Desk, event: ReportEvent) -> None:
        self._report("accepted", desk, event)

    @hookimpl
    def sipantau_report_flagged(self, desk: Desk, event: ReportEvent) -> None:
        self._report("flagged", desk, event)

    @hookimpl
    def sipantau_report_corrected(self, desk: Desk, event: ReportEvent) -> None:
        self._report("corrected", desk, event)

    @hookimpl
    def sipantau_report_overridden(self, desk: Desk, event: ReportEvent) -> None:
        self._report("overridden", desk, event)

    @hookimpl
    def sipantau_report_rejected(self, desk: Desk, event: ReportEvent) -> None:
        self._report("rejected", desk, event)

    @hookimpl
    def sipantau_region_released(self, desk: Desk, event: RegionEvent) -> None:
        with desk.storage.transaction() as tx:
            released = [(r.region, r.contest) for r in tx.releases()]
        assert (event.region, event.contest) in released
        self.seen.append(Seen("region_released", None, event.region, None, event.principal.id))


class Boom:
    """Raises in every lifecycle hook."""

    @hookimpl
    def sipantau_desk_opened(self, desk: Desk) -> None:
        raise RuntimeError("boom: desk_opened")

    @hookimpl
    def sipantau_report_accepted(self, event: ReportEvent) -> None:  # a subset of the args
        raise RuntimeError("boom: accepted")

    @hookimpl
    def sipantau_report_rejected(self, desk: Desk, event: ReportEvent) -> None:
        raise RuntimeError("boom: rejected")

    @hookimpl
    def sipantau_region_released(self, desk: Desk, event: RegionEvent) -> None:
        raise RuntimeError("boom: released")


def test_each_lifecycle_event_fires_once_with_its_kind_after_the_commit() -> None:
    rec, store = Recorder(), TrackedStorage()
    clock = Clock(T0 + timedelta(hours=8))
    desk = Desk.open(small_deployment(), storage=store, plugins=[rec], autoload=False, clock=clock)
    assert rec.seen == [Seen("desk_opened")]

    first = tally(1)
    desk.submit(first, principal=monitor(1))
    desk.submit(first, principal=monitor(1))  # a duplicate: no event
    bad = tally(2, total=999)
    desk.submit(bad, principal=monitor(2))
    fix = tally(1, (101, 199), amends=first)
    desk.submit(fix, principal=SYSTEM)
    with pytest.raises(ConflictError):  # refused: no event
        desk.submit(attrs.evolve(first, invalid=6), principal=monitor(1))
    with pytest.raises(PermissionDenied):
        desk.submit(tally(3), principal=monitor(1))
    desk.override(bad.report_id, principal=OFFICER, reason="dicek dengan foto C1")
    with pytest.raises(ConflictError):
        desk.override(bad.report_id, principal=OFFICER, reason="lagi")
    desk.reject(fix.report_id, principal=OFFICER, reason="salah TPS")
    desk.release("16.73", principal=COORDINATOR)
    third = tally(3)
    result = desk.submit_many([third, third, tally(3, (1, 2))], principal=SYSTEM)
    again = result.items[1]
    assert isinstance(again, Receipt) and again.status == "duplicate"

    assert rec.seen == [
        Seen("desk_opened"),
        Seen("accepted", first.report_id, "accepted", "accepted", "LLG-0001"),
        Seen("flagged", bad.report_id, "flagged", "flagged", "LLG-0002"),
        Seen("corrected", fix.report_id, "accepted", "accepted", "import"),
        Seen(
            "overridden",
            bad.report_id,
            "overridden",
            "overridden",
            "officer-1",
            "dicek dengan foto C1",
        ),
        Seen("rejected", fix.report_id, "rejected", "rejected", "officer-1", "salah TPS"),
        Seen("region_released", None, "16.73", None, "coord"),
        Seen("accepted", third.report_id, "accepted", "accepted", "import"),
    ]
    assert rec.in_transaction == []  # every hook ran after its transaction had closed


def test_events_carry_the_report_the_receipt_and_the_time() -> None:
    events: list[ReportEvent | RegionEvent] = []

    class Keep:
        @hookimpl
        def sipantau_report_corrected(self, event: ReportEvent) -> None:
            events.append(event)

        @hookimpl
        def sipantau_region_released(self, event: RegionEvent) -> None:
            events.append(event)

    clock = Clock(T0 + timedelta(hours=9))
    desk = Desk.open(small_deployment(), plugins=[Keep()], autoload=False, clock=clock)
    first = tally(1)
    desk.submit(first, principal=monitor(1))
    clock.now += timedelta(minutes=7)
    fix = tally(1, (90, 210), amends=first)
    receipt = desk.submit(fix, principal=monitor(1))
    desk.release("16.73.01", principal=COORDINATOR, contest="walikota")
    corrected, released = events
    assert isinstance(corrected, ReportEvent) and isinstance(released, RegionEvent)
    assert (corrected.kind, corrected.report, corrected.receipt) == ("corrected", fix, receipt)
    assert corrected.receipt.version == 2
    assert corrected.at == clock.now == receipt.received_at
    assert corrected.principal == monitor(1)
    assert (released.region, released.contest, released.principal, released.at) == (
        "16.73.01",
        "walikota",
        COORDINATOR,
        clock.now,
    )


def test_the_bulk_path_announces_each_kind_to_its_listeners_in_order() -> None:
    # Events of a kind that no plugin listens to are skipped; a plugin registered after
    # the desk opened hears the next call's events.
    heard: list[tuple[str, UUID]] = []

    class Flags:
        @hookimpl
        def sipantau_report_flagged(self, event: ReportEvent) -> None:
            heard.append((event.kind, event.report.report_id))

    class Corrections:
        @hookimpl
        def sipantau_report_corrected(self, event: ReportEvent) -> None:
            heard.append((event.kind, event.report.report_id))

    desk = Desk.open(small_deployment(), plugins=[Flags()], autoload=False)
    first, bad = tally(1), tally(2, total=999)
    desk.submit_many([bad, first], principal=SYSTEM)
    assert heard == [("flagged", bad.report_id)]

    heard.clear()
    desk.plugins.manager.register(Corrections())
    fix = tally(1, (101, 199), amends=first)
    worse = tally(3, total=997)
    desk.submit_many([worse, fix], principal=SYSTEM)
    assert heard == [("flagged", worse.report_id), ("corrected", fix.report_id)]


def test_no_event_when_the_transaction_fails() -> None:
    rec, store = Recorder(), TrackedStorage()
    desk = Desk.open(small_deployment(), storage=store, plugins=[rec], autoload=False)
    flagged = tally(1, total=999)
    desk.submit(flagged, principal=SYSTEM)
    store.fail_writes = True
    with pytest.raises(StorageError):
        desk.submit(tally(2), principal=SYSTEM)
    with pytest.raises(StorageError):
        desk.override(flagged.report_id, principal=OFFICER, reason="cek")
    with pytest.raises(StorageError):
        desk.release("16.73", principal=COORDINATOR)
    store.fail_writes = False
    assert [s.kind for s in rec.seen] == ["desk_opened", "flagged"]
    assert desk.tally("16.73", principal=COORDINATOR).stations_counted == 0


@pytest.mark.parametrize("boom_first", [True, False])
def test_a_failing_plugin_is_logged_and_fails_nothing(
    boom_first: bool, caplog: pytest.LogCaptureFixture
) -> None:
    rec = Recorder()
    plugins = [Boom(), rec] if boom_first else [rec, Boom()]
    with caplog.at_level(logging.ERROR, logger="sipantau_core.plugins"):
        desk = Desk.open(small_deployment(), plugins=plugins, autoload=False)
        report = tally(1)
        receipt = desk.submit(report, principal=monitor(1))
        desk.reject(report.report_id, principal=OFFICER, reason="foto C1 tidak jelas")
        desk.release("16.73", principal=COORDINATOR)
    assert receipt.status == "accepted"
    # The other plugin saw every event; the changes stand.
    assert [s.kind for s in rec.seen] == ["desk_opened", "accepted", "rejected", "region_released"]
    assert desk.tally("16.73", principal=COORDINATOR).stations_counted == 0
    assert desk.is_released("16.73", "walikota")
    failed = [r for r in caplog.records if r.levelno == logging.ERROR]
    hooks = [
        "sipantau_desk_opened",
        "sipantau_report_accepted",
        "sipantau_report_rejected",
        "sipantau_region_released",
    ]
    assert len(failed) == len(hooks)
    for record, hook in zip(failed, hooks, strict=True):
        assert hook in record.getMessage()
        assert record.exc_info is not None and isinstance(record.exc_info[1], RuntimeError)


# ---------------------------------------------------------------------------------------
# Station status: in, late, missing, pending in each station's own time zone
# ---------------------------------------------------------------------------------------

JAYAPURA = ("9171011001001", "9171011001002")  # Kota Jayapura, Papua: WIT (UTC+9)


def jayapura_deployment() -> Deployment:
    stations = [PollingStation(code=c, registered_voters=300) for c in JAYAPURA]
    monitors = [Monitor(id=f"JPR-000{i}", station=c) for i, c in enumerate(JAYAPURA, start=1)]
    contest = Contest(
        id="walikota",
        region="91.71",
        candidates=[Candidate(1, "Paslon 1"), Candidate(2, "Paslon 2")],
    )
    return Deployment(
        id="jayapura",
        name="Desk Jayapura",
        region=RegionCode("91.71"),
        election_day=date(2024, 11, 27),
        stations={s.code: s for s in stations},
        contests={contest.id: contest},
        monitors={m.id: m for m in monitors},
    )


def wit(hour: int, minute: int = 0) -> datetime:
    return datetime(2024, 11, 27, hour, minute, tzinfo=WIT)


def jayapura_situation(i: int, stage: Stage, **kw: Any) -> SituationReport:
    return situation(
        0, stage, station=JAYAPURA[i - 1], monitor_id=f"JPR-000{i}", at=kw.pop("at", None), **kw
    )


def test_station_status_follows_the_stations_own_time_zone() -> None:
    clock = Clock(wit(7, 20))
    desk = Desk.open(jayapura_deployment(), clock=clock, autoload=False)
    papua = Principal(id="coord-papua", role=Role.COORDINATOR, scope="91.71")
    # TPS 1 reports the opening at 07:20 WIT (in time), TPS 2 at 07:45 WIT (late: the
    # deadline is 07:30 WIT = 22:30 UTC the day before, long before 07:30 WIB or UTC).
    desk.submit(jayapura_situation(1, Stage.OPENING, at=wit(7, 15)), principal=SYSTEM)
    clock.now = wit(7, 45)
    desk.submit(
        jayapura_situation(2, Stage.OPENING, status=SecurityStatus.SAFE, at=wit(7, 40)),
        principal=SYSTEM,
    )
    clock.now = wit(7, 50)  # = 05:50 WIB = 22:50 UTC on the 26th
    one, two = desk.station_status("91.71", principal=papua)  # now from the clock
    assert (one.station, two.station) == JAYAPURA
    opening = one.stage(Stage.OPENING)
    assert (opening.state, opening.reported_at, opening.security) == (
        "in",
        wit(7, 20),
        SecurityStatus.ALERT,
    )
    assert opening.deadline == wit(7, 30) == datetime(2024, 11, 26, 22, 30, tzinfo=UTC)
    assert two.stage(Stage.OPENING).state == "late"
    assert two.stage(Stage.OPENING).security is SecurityStatus.SAFE
    for s in (one, two):
        assert s.stage(Stage.PREPARATION).state == "missing"  # due 07:00 WIT
        assert s.stage(Stage.VOTING).state == "pending"  # due 13:15 WIT
        assert s.stage(Stage.COUNTING).state == "pending"
        assert s.stage(Stage.COUNTING).deadline == wit(17, 0)
        assert s.tally is None
    # An explicit time wins over the clock.
    early = desk.station_status(JAYAPURA[1], principal=papua, now=wit(6, 59))
    assert [s.stage(Stage.PREPARATION).state for s in early] == ["pending"]


def preparation(desk: Desk, region: str, who: Principal, now: datetime | None = None) -> set[str]:
    return {
        s.stage(Stage.PREPARATION).state
        for s in desk.station_status(region, principal=who, now=now)
    }


def test_the_same_instant_in_wib_and_wit() -> None:
    """At 07:50 WIT (05:50 WIB) the preparation report is overdue in Jayapura and not
    yet due in Lubuklinggau."""
    instant = wit(7, 50)
    papua = Principal(id="coord-papua", role=Role.COORDINATOR, scope="91.71")
    east = Desk.open(jayapura_deployment(), clock=Clock(instant), autoload=False)
    west = Desk.open(small_deployment(), clock=Clock(instant), autoload=False)
    assert preparation(east, "91.71", papua) == {"missing"}
    assert preparation(west, "16.73", COORDINATOR) == {"pending"}
    later = instant + timedelta(hours=1, minutes=11)  # 07:01 WIB
    assert preparation(west, "16.73", COORDINATOR, later) == {"missing"}
    [first, *_] = west.station_status("16.73", principal=COORDINATOR)
    assert first.stage(Stage.PREPARATION).deadline == datetime(
        2024, 11, 27, 7, 0, tzinfo=TimeZone.WIB.tzinfo
    )


def test_station_status_counting_stage_and_tally_status() -> None:
    clock = Clock(datetime(2024, 11, 27, 16, 30, tzinfo=TimeZone.WIB.tzinfo))
    desk = Desk.open(small_deployment(), clock=clock, autoload=False)
    desk.submit(tally(1), principal=monitor(1))  # 16:30 WIB: in time (due 17:00)
    clock.now += timedelta(hours=1)
    bad = tally(2, total=999)
    desk.submit(bad, principal=monitor(2))  # 17:30 WIB: late
    one, two, three = desk.station_status("16.73", principal=COORDINATOR)
    assert (one.stage(Stage.COUNTING).state, one.tally) == ("in", "accepted")
    assert (two.stage(Stage.COUNTING).state, two.tally) == ("late", "flagged")
    assert (three.stage(Stage.COUNTING).state, three.tally) == ("missing", None)
    desk.override(bad.report_id, principal=OFFICER, reason="dicek")
    assert desk.station_status(TPS[2], principal=COORDINATOR)[0].tally == "overridden"
    # Only the TPS within the region asked for, in code order.
    assert [s.station for s in desk.station_status("16.73.01", principal=OFFICER)] == [
        TPS[1],
        TPS[2],
    ]


def test_a_rejected_stage_report_is_missing_again() -> None:
    clock = Clock(datetime(2024, 11, 27, 7, 10, tzinfo=TimeZone.WIB.tzinfo))
    desk = Desk.open(small_deployment(), clock=clock, autoload=False)
    report = situation(1, Stage.OPENING)
    desk.submit(report, principal=monitor(1))
    at = clock.now + timedelta(hours=1)
    assert (
        desk.station_status(TPS[1], principal=OFFICER, now=at)[0].stage(Stage.OPENING).state == "in"
    )
    desk.reject(report.report_id, principal=OFFICER, reason="foto dari TPS lain")
    assert (
        desk.station_status(TPS[1], principal=OFFICER, now=at)[0].stage(Stage.OPENING).state
        == "missing"
    )


def test_station_status_shows_a_rejected_newest_tally(desk: Desk) -> None:
    v1 = tally(1)
    desk.submit(v1, principal=SYSTEM)
    v2 = tally(1, (101, 199), amends=v1)
    desk.submit(v2, principal=SYSTEM)
    only = tally(2)
    desk.submit(only, principal=SYSTEM)
    desk.reject(v2.report_id, principal=OFFICER, reason="salah")
    desk.reject(only.report_id, principal=OFFICER, reason="salah")
    one, two, _ = desk.station_status("16.73", principal=COORDINATOR)
    assert (one.tally, two.tally) == ("rejected", "rejected")


# ---------------------------------------------------------------------------------------
# Incidents
# ---------------------------------------------------------------------------------------


@pytest.fixture
def incidents_desk(desk: Desk) -> tuple[Desk, dict[str, SituationReport]]:
    reports = {
        "r1": situation(
            1,
            Stage.OPENING,
            [Incident("intimidasi", 3, "kerumunan"), Incident("logistik", 1, "tinta kurang")],
            at=T0 + timedelta(hours=1, minutes=10),
        ),
        "r2": situation(
            2,
            Stage.VOTING,
            [
                Incident("politik_uang", 4, "amplop", media_sha256="ab" * 32),
                Incident("intimidasi", 2),
            ],
            status=SecurityStatus.DISTURBED,
            at=T0 + timedelta(hours=3),
        ),
        "r3": situation(3, Stage.VOTING, [Incident("intimidasi", 3)], at=T0 + timedelta(hours=2)),
        "safe": situation(3, Stage.OPENING, status=SecurityStatus.SAFE),
    }
    for r in reports.values():
        desk.submit(r, principal=SYSTEM)
    return desk, reports


def test_incidents_most_severe_first_then_by_time(
    incidents_desk: tuple[Desk, dict[str, SituationReport]],
) -> None:
    desk, r = incidents_desk
    found = desk.incidents("16.73", principal=OFFICER)
    assert [(i.report_id, i.category, i.severity) for i in found] == [
        (r["r2"].report_id, "politik_uang", 4),
        (r["r1"].report_id, "intimidasi", 3),  # 07:10 before r3's 08:00
        (r["r3"].report_id, "intimidasi", 3),
        (r["r2"].report_id, "intimidasi", 2),
        (r["r1"].report_id, "logistik", 1),
    ]
    top = found[0]
    assert (top.station, top.stage, top.observed_at, top.text, top.media_sha256) == (
        TPS[2],
        Stage.VOTING,
        r["r2"].observed_at,
        "amplop",
        "ab" * 32,
    )


@pytest.mark.parametrize(
    ("where", "filters", "expected"),
    [
        ("16.73", {"stage": Stage.VOTING}, [("r2", 4), ("r3", 3), ("r2", 2)]),
        ("16.73", {"stage": "pemungutan"}, [("r2", 4), ("r3", 3), ("r2", 2)]),
        ("16.73", {"stage": Stage.HANDOVER}, []),
        ("16.73", {"category": "intimidasi"}, [("r1", 3), ("r3", 3), ("r2", 2)]),
        ("16.73", {"min_severity": 3}, [("r2", 4), ("r1", 3), ("r3", 3)]),
        ("16.73", {"min_severity": 4, "category": "intimidasi"}, []),
        ("16.73", {"stage": "pemungutan", "min_severity": 3}, [("r2", 4), ("r3", 3)]),
        ("16.73.01", {}, [("r2", 4), ("r1", 3), ("r2", 2), ("r1", 1)]),
        ("16.73.02.1002", {}, [("r3", 3)]),
        (TPS[1], {}, [("r1", 3), ("r1", 1)]),
        (TPS[1], {"category": "politik_uang"}, []),
    ],
)
def test_incident_filters(
    incidents_desk: tuple[Desk, dict[str, SituationReport]],
    where: str,
    filters: dict[str, Any],
    expected: list[tuple[str, int]],
) -> None:
    desk, r = incidents_desk
    names = {rep.report_id: name for name, rep in r.items()}
    found = desk.incidents(where, principal=COORDINATOR, **filters)
    assert [(names[i.report_id], i.severity) for i in found] == expected


def test_incidents_of_the_newest_version_and_not_of_rejected_reports(
    incidents_desk: tuple[Desk, dict[str, SituationReport]],
) -> None:
    desk, r = incidents_desk
    fixed = situation(
        1, Stage.OPENING, [Incident("logistik", 2, "kotak suara terlambat")], amends=r["r1"]
    )
    assert desk.submit(fixed, principal=monitor(1)).version == 2
    desk.reject(r["r3"].report_id, principal=OFFICER, reason="laporan palsu")
    found = desk.incidents("16.73", principal=OFFICER)
    assert [(i.report_id, i.category, i.severity) for i in found] == [
        (r["r2"].report_id, "politik_uang", 4),
        (fixed.report_id, "logistik", 2),  # observed 07:00, before r2's 09:00
        (r["r2"].report_id, "intimidasi", 2),
    ]


def test_an_unknown_incident_category_is_refused(desk: Desk) -> None:
    report = situation(1, Stage.VOTING, [Incident("intimidasi", 2), Incident("ufo", 1)])
    with pytest.raises(UnknownEntityError) as info:
        desk.submit(report, principal=monitor(1))
    assert info.value.code == "report.unknown_incident_category"
    assert "ufo" in info.value.message
    result = desk.submit_many([report], principal=SYSTEM)
    assert [e.code for _, e in result.errors] == ["report.unknown_incident_category"]
    assert desk.reports("16.73", principal=COORDINATOR, heads_only=False) == []


# ---------------------------------------------------------------------------------------
# Decisions
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("reason", ["", "   ", "\n\t"])
@pytest.mark.parametrize("action", ["override", "reject"])
def test_a_decision_needs_a_reason(desk: Desk, action: str, reason: str) -> None:
    bad = tally(1, total=999)
    desk.submit(bad, principal=SYSTEM)
    decide = getattr(desk, action)
    for report_id in (bad.report_id, uuid.uuid4()):  # checked before the report is looked up
        with pytest.raises(SipantauError) as info:
            decide(report_id, principal=OFFICER, reason=reason)
        assert info.value.code == "decision.reason_missing"
    assert desk.decisions(bad.report_id, principal=COORDINATOR) == []
    [(stored, _)] = desk.reports(TPS[1], principal=COORDINATOR)
    assert stored.status.value == "flagged"


def test_decisions_on_a_version_that_is_not_the_newest(desk: Desk) -> None:
    v1 = tally(1, total=999)
    desk.submit(v1, principal=SYSTEM)
    v2 = tally(1, (110, 190), total=777, amends=v1)
    assert desk.submit(v2, principal=SYSTEM).status == "flagged"
    for decide in (desk.override, desk.reject):
        with pytest.raises(ConflictError) as info:
            decide(v1.report_id, principal=OFFICER, reason="versi lama")
        assert info.value.code == "report.not_head"
    assert desk.tally("16.73", principal=COORDINATOR).stations_counted == 0
    over = desk.override(v2.report_id, principal=OFFICER, reason="cek C1")
    assert (over.status, over.version, over.counted) == ("overridden", 2, True)
    city = desk.tally("16.73", principal=COORDINATOR)
    assert (city.votes, city.total, city.stations_counted) == ({1: 110, 2: 190}, 777, 1)
    assert [d.report_id for d in desk.decisions(v2.report_id, principal=OFFICER)] == [v2.report_id]


def test_decisions_on_unknown_reports_and_twice(desk: Desk) -> None:
    with pytest.raises(UnknownEntityError) as info:
        desk.override(uuid.uuid4(), principal=OFFICER, reason="x")
    assert info.value.code == "report.not_found"
    good = tally(1)
    desk.submit(good, principal=SYSTEM)
    with pytest.raises(ConflictError) as conflict:
        desk.override(good.report_id, principal=OFFICER, reason="sudah sah")
    assert conflict.value.code == "report.not_flagged"
    desk.reject(good.report_id, principal=OFFICER, reason="salah")
    with pytest.raises(ConflictError) as twice:
        desk.reject(good.report_id, principal=OFFICER, reason="lagi")
    assert twice.value.code == "report.already_rejected"


# ---------------------------------------------------------------------------------------
# Receipt and BulkResult
# ---------------------------------------------------------------------------------------


def receipt(status: str, first_status: str | None = None) -> Receipt:
    rid = uuid.uuid4()
    return Receipt(rid, status, 1, rid, TPS[1], T0, (), first_status)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("status", "first_status", "counted"),
    [
        ("accepted", None, True),
        ("overridden", None, True),
        ("flagged", None, False),
        ("rejected", None, False),
        ("duplicate", "accepted", True),
        ("duplicate", "overridden", True),
        ("duplicate", "flagged", False),
        ("duplicate", "rejected", False),
        ("duplicate", "superseded", False),
        ("duplicate", None, False),
    ],
)
def test_receipt_counted(status: str, first_status: str | None, counted: bool) -> None:
    assert receipt(status, first_status).counted is counted


def test_receipt_counted_follows_the_desk(desk: Desk) -> None:
    good, bad = tally(1), tally(2, total=999)
    assert desk.submit(good, principal=SYSTEM).counted
    assert not desk.submit(bad, principal=SYSTEM).counted
    assert desk.submit(good, principal=SYSTEM).counted  # duplicate of a counted one
    assert not desk.submit(bad, principal=SYSTEM).counted
    assert desk.override(bad.report_id, principal=OFFICER, reason="cek").counted
    assert desk.submit(bad, principal=SYSTEM).counted  # now overridden
    fix = tally(1, (101, 199), amends=good)
    assert desk.submit(fix, principal=SYSTEM).counted
    again = desk.submit(good, principal=SYSTEM)
    assert (again.first_status, again.counted) == ("superseded", False)
    assert not desk.reject(fix.report_id, principal=OFFICER, reason="salah").counted


def test_bulk_result_helpers(desk: Desk) -> None:
    good, bad = tally(1), tally(2, total=999)
    items: list[Any] = [
        good,
        bad,
        good,
        attrs.evolve(good, invalid=6),
        attrs.evolve(tally(3), station="1673021002009"),
        b'{"schema": "sipantau.tally/1"}',
        tally(3),
    ]
    result = desk.submit_many(items, principal=SYSTEM)
    assert len(result) == len(items) == 7
    assert [r.report_id for r in result.receipts] == [
        good.report_id,
        bad.report_id,
        good.report_id,
        items[6].report_id,
    ]
    assert [(i, type(e), e.code) for i, e in result.errors] == [
        (3, ConflictError, "report.conflict"),
        (4, UnknownEntityError, "report.unknown_station"),
        (5, PayloadError, "payload.invalid"),
    ]
    assert (result.count("accepted"), result.count("flagged"), result.count("duplicate")) == (
        2,
        1,
        1,
    )
    assert result.count("rejected") == 0
    assert desk.tally("16.73", principal=COORDINATOR).stations_counted == 2


def test_bulk_result_built_by_hand() -> None:
    a, b = receipt("accepted"), receipt("duplicate", "flagged")
    error = ConflictError("x", code="report.stale_version")
    result = BulkResult((a, error, b))
    assert len(result) == 3
    assert result.receipts == [a, b]
    assert result.errors == [(1, error)]
    assert (result.count("accepted"), result.count("duplicate"), result.count("flagged")) == (
        1,
        1,
        0,
    )
    empty = BulkResult(())
    assert (len(empty), empty.receipts, empty.errors, empty.count("accepted")) == (0, [], [], 0)


# ---------------------------------------------------------------------------------------
# The Lubuklinggau reference deployment after its sample tallies
# ---------------------------------------------------------------------------------------


def regions_of(code: str) -> list[str]:
    """The province, city, district, village of a 13-digit TPS code, and the TPS."""
    return [
        code[:2],
        f"{code[:2]}.{code[2:4]}",
        f"{code[:2]}.{code[2:4]}.{code[4:6]}",
        f"{code[:2]}.{code[2:4]}.{code[4:6]}.{code[6:10]}",
        code,
    ]


def test_lubuklinggau_sample_tallies_counted_at_every_level() -> None:
    lines = (EXAMPLE / "sample_tallies.jsonl").read_bytes().splitlines()
    expected_codes: dict[str, list[str]] = json.loads(
        (EXAMPLE / "sample_tallies.expected.json").read_text(encoding="utf-8")
    )
    with (EXAMPLE / "stations.csv").open(newline="", encoding="utf-8") as f:
        dpt = {row["code"]: int(row["registered_voters"]) for row in csv.DictReader(f)}

    # The expected counts, from the files alone.
    counted: dict[str, dict[str, Any]] = defaultdict(
        lambda: {
            "votes": {1: 0, 2: 0},
            "valid": 0,
            "invalid": 0,
            "total": 0,
            "stations_counted": 0,
            "registered_covered": 0,
        }
    )
    expected_tps: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for code, voters in dpt.items():
        for region in regions_of(code):
            expected_tps[region][0] += 1
            expected_tps[region][1] += voters
    status: dict[str, str] = {}
    for line in lines:
        raw = json.loads(line)
        codes = expected_codes[raw["report_id"]]
        hard = [c for c in codes if c not in SOFT_CODES]
        status[raw["report_id"]] = "flagged" if hard else "accepted"
        if hard:
            continue
        for region in regions_of(raw["station"]):
            c = counted[region]
            for n, v in raw["votes"].items():
                c["votes"][int(n)] += v
            for key in ("valid", "invalid", "total"):
                c[key] += raw[key]
            c["stations_counted"] += 1
            c["registered_covered"] += dpt[raw["station"]]
    assert sorted(status.values()).count("flagged") == 6  # the README's special reports

    desk = Desk.open(EXAMPLE, autoload=False)
    result = desk.submit_many(lines, principal=SYSTEM)
    assert result.errors == []
    assert len(result) == len(lines) == 40
    for r in result.receipts:
        assert r.status == status[str(r.report_id)], r.report_id
        assert sorted(v.code for v in r.violations) == sorted(expected_codes[str(r.report_id)])

    reported = {json.loads(line)["station"] for line in lines}
    quiet = sorted(set(dpt) - reported)[:5]
    regions = sorted({r for code in dpt for r in regions_of(code)[:4]} | reported | set(quiet))
    assert len([r for r in regions if r.count(".") == 2]) == 8  # the 8 kecamatan
    for region in regions:
        t = desk.tally(region, principal=SYSTEM)
        want = counted[region]
        got = {
            "votes": dict(t.votes),
            "valid": t.valid,
            "invalid": t.invalid,
            "total": t.total,
            "stations_counted": t.stations_counted,
            "registered_covered": t.registered_covered,
        }
        assert got == want, region
        assert (t.stations_expected, t.registered_expected) == tuple(expected_tps[region])
        assert t.region == region and t.contest == "walikota"
    city = desk.tally("16.73", principal=COORDINATOR)
    assert city.stations_counted == 34 and city.stations_expected == 326
    assert city.progress == pytest.approx(34 / 326)
    assert city.share == pytest.approx({n: v / city.valid for n, v in city.votes.items()})
    # Submitting the file again changes nothing.
    again = desk.submit_many(lines, principal=SYSTEM)
    assert again.count("duplicate") == 40
    assert desk.tally("16.73", principal=COORDINATOR) == city


def test_submit_many_with_a_principal_per_report_equals_one_by_one() -> None:
    """A server batches many monitors' reports into one transaction: each report keeps
    its own principal, with the same checks and results as submitting them one by one."""
    from sipantau_core.testing.contracts import _monitor, _tally, small_deployment

    reports = [_tally(1, (100, 200)), _tally(2, (50, 60)), _tally(3, (5, 5))]
    principals = [_monitor(1), _monitor(1), _monitor(3)]  # the second is for another TPS
    bulk = Desk.open(small_deployment()).submit_many(reports, principal=principals)
    single = Desk.open(small_deployment())
    one_by_one: list[str] = []
    for report, principal in zip(reports, principals, strict=True):
        try:
            one_by_one.append(single.submit(report, principal=principal).status)
        except SipantauError as e:
            one_by_one.append(e.code)
    got = [x.status if isinstance(x, Receipt) else x.code for x in bulk.items]
    assert got == one_by_one == ["accepted", "access.out_of_scope", "accepted"]
    with pytest.raises(SipantauError) as info:
        Desk.open(small_deployment()).submit_many(reports, principal=principals[:2])
    assert info.value.code == "desk.bad_call"


def test_the_bulk_path_leaves_the_garbage_collector_as_it_found_it() -> None:
    import gc

    from sipantau_core.testing.contracts import _tally, small_deployment

    desk = Desk.open(small_deployment())
    assert gc.isenabled()
    desk.submit_many([_tally(1, (1, 2))], principal=SYSTEM_PRINCIPAL)
    assert gc.isenabled()
    gc.disable()
    try:
        desk.submit_many([_tally(2, (1, 2))], principal=SYSTEM_PRINCIPAL)
        assert not gc.isenabled()
    finally:
        gc.enable()
    with pytest.raises(SipantauError):
        desk.submit_many([_tally(3, (1, 2))], principal=[])
    assert gc.isenabled()


SYSTEM_PRINCIPAL = Principal(id="import", role=Role.SYSTEM)
