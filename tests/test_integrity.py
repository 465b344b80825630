"""Integrity through the desk, on memory://, SQLite and PostgreSQL: device keys (enrol,
revoke, rotate), signed reports and every way a signature is refused (nothing stored, the
refusal audited), the replay window, staff tokens kept only as hashes, and monitors'
personal data sealed at rest and bound to its row."""

from __future__ import annotations

import base64
import json
import secrets
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import psycopg
import pytest

from pg import fresh_schema, libpq_url
from sipantau_adapters.storage.memory import MemoryStorage
from sipantau_core import (
    Amends,
    ConflictError,
    Deployment,
    Desk,
    Monitor,
    PermissionDenied,
    PersonalData,
    Principal,
    Role,
    TallyReport,
    dump_report,
)
from sipantau_core.audit import verify_chain
from sipantau_core.ports import AuditRecord, ReportFilter, Storage
from sipantau_core.sealing import SealError
from sipantau_core.signing import (
    DeviceKey,
    SignatureError,
    SignedReport,
    hash_token,
    sign_report,
)
from sipantau_core.testing.contracts import small_deployment

#: The desk's clock in these tests: the afternoon of election day (14:00 WIB).
NOW = datetime(2024, 11, 27, 7, 0, tzinfo=UTC)
TPS = {1: "1673011001001", 2: "1673011001002", 3: "1673021002001"}

SYSTEM = Principal(id="import", role=Role.SYSTEM)
COORDINATOR = Principal(id="coord", role=Role.COORDINATOR, scope="16.73")
OFFICER_01 = Principal(id="officer-01", role=Role.OFFICER, scope="16.73.01")
AUDITOR = Principal(id="auditor", role=Role.AUDITOR, scope="16.73")


def monitor(n: int) -> Principal:
    return Principal(id=f"LLG-000{n}", role=Role.MONITOR, scope=TPS[n])


def device(n: int) -> DeviceKey:
    """A deterministic device key (seed n, n, n, …)."""
    return DeviceKey.from_seed(bytes([n]) * 32)


def tally(
    n: int,
    votes: tuple[int, int] = (120, 180),
    *,
    observed_at: datetime | None = None,
    report_id: uuid.UUID | None = None,
) -> TallyReport:
    valid = sum(votes)
    return TallyReport(
        report_id=report_id or uuid.uuid4(),
        monitor=f"LLG-000{n}",
        station=TPS[n],
        contest="walikota",
        observed_at=observed_at or NOW - timedelta(minutes=5),
        votes={1: votes[0], 2: votes[1]},
        valid=valid,
        invalid=4,
        total=valid + 4,
    )


class Clock:
    """A desk clock the test moves by hand."""

    def __init__(self, at: datetime = NOW):
        self.at = at

    def __call__(self) -> datetime:
        return self.at


# ---------------------------------------------------------------------------------------
# Backends
# ---------------------------------------------------------------------------------------


@attrs.define
class Backend:
    """One storage for a test: open desks on it, dump everything it holds (raw), and run
    plain SQL on it behind the desk's back."""

    kind: str
    url: str
    path: Path | None = None
    memory: MemoryStorage | None = None
    desks: list[Desk] = attrs.field(factory=list)

    def open(self, deployment: Deployment, **kw: Any) -> Desk:
        store: str | Storage = self.memory if self.memory is not None else self.url
        desk = Desk.open(deployment, storage=store, **kw)
        self.desks.append(desk)
        return desk

    def dump(self) -> bytes:
        """Every byte the storage holds: the SQLite files, every PostgreSQL row, or the
        memory backend's whole state."""
        if self.memory is not None:
            return repr(vars(self.memory._state)).encode()
        if self.path is not None:
            return b"".join(
                Path(f"{self.path}{suffix}").read_bytes()
                for suffix in ("", "-wal", "-shm", "-journal")
                if Path(f"{self.path}{suffix}").exists()
            )
        out = []
        with self._pg() as conn:
            tables = conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = "
                "current_schema() ORDER BY table_name"
            ).fetchall()
            for (table,) in tables:
                out.append(repr(conn.execute(f'SELECT * FROM "{table}"').fetchall()))
        return "\n".join(out).encode()

    def sql(self, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Run one statement (``?`` placeholders) directly on the database, committed."""
        if self.path is not None:
            conn = sqlite3.connect(self.path)
            try:
                rows = conn.execute(statement, params).fetchall()
                conn.commit()
            finally:
                conn.close()
            return rows
        assert self.kind == "postgresql"
        with self._pg() as conn:
            cur = conn.execute(statement.replace("?", "%s"), params)
            return cur.fetchall() if cur.description else []

    def _pg(self) -> psycopg.Connection[Any]:
        schema = self.url.rsplit("schema=", 1)[1]
        return psycopg.connect(libpq_url(self.url), options=f"-c search_path={schema}")


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "memory":
        b = Backend("memory", "memory://", memory=MemoryStorage())
        yield b
    elif request.param == "sqlite":
        path = tmp_path / "desk.db"
        b = Backend("sqlite", f"sqlite:///{path}", path=path)
        yield b
    else:
        with fresh_schema() as url:
            b = Backend("postgresql", url)
            yield b
            for desk in b.desks:
                desk.close()
        return
    for desk in b.desks:
        desk.close()


def with_settings(**settings: Any) -> Deployment:
    return attrs.evolve(small_deployment(), settings=settings)


def stored(desk: Desk) -> dict[uuid.UUID, Any]:
    with desk.storage.transaction() as tx:
        return {r.report_id: r for r in tx.reports(ReportFilter(heads_only=False))}


def counts(desk: Desk) -> tuple[dict[str, int], ...]:
    with desk.storage.transaction() as tx:
        return tuple(tx.aggregates("walikota", r) for r in ("16.73", "16.73.01", "16.73.02"))


def entries(desk: Desk) -> list[AuditRecord]:
    """The log as a reader sees it: a report's ``submit`` record follows its batch."""
    return desk.audit.records()


def new_entries(desk: Desk, before: int) -> list[AuditRecord]:
    return entries(desk)[before:]


def only(found: list[AuditRecord]) -> AuditRecord:
    assert len(found) == 1, found
    return found[0]


# ---------------------------------------------------------------------------------------
# Enrolment, revocation and rotation of device keys
# ---------------------------------------------------------------------------------------


def test_enrolment_by_an_officer_in_scope_is_stored_and_audited(backend: Backend) -> None:
    desk = backend.open(small_deployment(), clock=Clock())
    before = len(entries(desk))
    record = desk.enrol_device("LLG-0001", device(1).public_key, principal=OFFICER_01)
    assert (record.monitor, record.public_key, record.enrolled_by) == (
        "LLG-0001",
        device(1).public_key.raw,
        "officer-01",
    )
    assert record.revoked_at is None
    with desk.storage.transaction() as tx:
        assert tx.device_keys(monitor="LLG-0001") == [record]
    entry = only(new_entries(desk, before))
    assert (entry.principal, entry.role, entry.action, entry.object, entry.outcome) == (
        "officer-01",
        "officer",
        "enrol_device",
        f"key:{device(1).public_key.key_id}",
        "ok",
    )
    assert entry.region == TPS[1]
    # the auditor of the region sees it
    assert entry in desk.history(principal=AUDITOR)


@pytest.mark.parametrize(
    ("who", "monitor_id", "code"),
    [
        (OFFICER_01, "LLG-0003", "access.out_of_scope"),  # TPS 3 lies in 16.73.02
        (
            Principal(id="o2", role=Role.OFFICER, scope="16.73.02"),
            "LLG-0001",
            "access.out_of_scope",
        ),
        (Principal(id="LLG-0001", role=Role.MONITOR, scope=TPS[1]), "LLG-0001", "access.role"),
        (AUDITOR, "LLG-0001", "access.role"),
        (Principal(id="walikota", role=Role.VIEWER, scope="16.73"), "LLG-0001", "access.role"),
    ],
    ids=["officer-other-district", "officer-other-district-2", "monitor", "auditor", "viewer"],
)
def test_enrolment_out_of_scope_or_role_is_refused_and_audited(
    backend: Backend, who: Principal, monitor_id: str, code: str
) -> None:
    desk = backend.open(small_deployment(), clock=Clock())
    before = len(entries(desk))
    with pytest.raises(PermissionDenied) as info:
        desk.enrol_device(monitor_id, device(9).public_key, principal=who)
    assert info.value.code == code
    with desk.storage.transaction() as tx:
        assert tx.device_keys() == []
    entry = only(new_entries(desk, before))
    assert (entry.principal, entry.action, entry.object, entry.outcome) == (
        who.id,
        "enrol",
        f"monitor:{monitor_id}",
        f"denied:{code}",
    )
    assert entry.region == desk.deployment.monitors[monitor_id].station.compact


def test_a_key_enrolled_for_one_monitor_cannot_be_enrolled_for_another(backend: Backend) -> None:
    desk = backend.open(small_deployment(), clock=Clock())
    desk.enrol_device("LLG-0001", device(1).public_key, principal=COORDINATOR)
    with pytest.raises(ConflictError) as info:
        desk.enrol_device("LLG-0002", device(1).public_key, principal=COORDINATOR)
    assert info.value.code == "key.taken"
    with desk.storage.transaction() as tx:
        assert [k.monitor for k in tx.device_keys()] == ["LLG-0001"]


def test_revocation_out_of_scope_is_refused_and_the_key_stays(backend: Backend) -> None:
    desk = backend.open(small_deployment(), clock=Clock())
    key_id = desk.enrol_device("LLG-0003", device(3).public_key, principal=COORDINATOR).key_id
    before = len(entries(desk))
    with pytest.raises(PermissionDenied) as info:
        desk.revoke_device(key_id, principal=OFFICER_01)
    assert info.value.code == "access.out_of_scope"
    assert only(new_entries(desk, before)).outcome == "denied:access.out_of_scope"
    with desk.storage.transaction() as tx:
        assert tx.device_keys(key_ids=[key_id])[0].revoked_at is None
    assert desk.submit(sign_report(tally(3), device(3)), principal=monitor(3)).status == "accepted"


def test_rotation_refuses_the_old_key_and_accepts_the_new_one(backend: Backend) -> None:
    clock = Clock()
    desk = backend.open(small_deployment(), clock=clock)
    old, new = device(1), device(11)
    desk.enrol_device("LLG-0001", old.public_key, principal=OFFICER_01)
    first = desk.submit(sign_report(tally(1), old), principal=monitor(1))
    assert first.status == "accepted"
    clock.at += timedelta(minutes=10)
    before = len(entries(desk))
    record = desk.rotate_device("LLG-0001", new.public_key, principal=OFFICER_01)
    assert record.key_id == new.public_key.key_id
    entry = only(new_entries(desk, before))
    assert (entry.action, entry.object, entry.outcome, entry.region) == (
        "rotate_device",
        f"key:{new.public_key.key_id}",
        "revoked:1",
        TPS[1],
    )
    with desk.storage.transaction() as tx:
        keys = {k.key_id: k for k in tx.device_keys(monitor="LLG-0001")}
    assert keys[old.public_key.key_id].revoked_at == clock.at
    assert keys[old.public_key.key_id].revoked_by == "officer-01"
    assert keys[new.public_key.key_id].revoked_at is None

    # a correction signed with the old key: refused; with the new key: accepted
    correction = attrs.evolve(tally(1, (121, 180)), amends=Amends(first.report_id, 1))
    with pytest.raises(SignatureError) as info:
        desk.submit(sign_report(correction, old), principal=monitor(1))
    assert info.value.code == "signature.revoked_key"
    receipt = desk.submit(sign_report(correction, new), principal=monitor(1))
    assert (receipt.status, receipt.version) == ("accepted", 2)
    # rotating to the key already current revokes nothing
    assert desk.rotate_device("LLG-0001", new.public_key, principal=OFFICER_01).revoked_at is None
    assert entries(desk)[-1].outcome == "revoked:0"


def test_rotation_out_of_scope_is_refused(backend: Backend) -> None:
    desk = backend.open(small_deployment(), clock=Clock())
    desk.enrol_device("LLG-0003", device(3).public_key, principal=COORDINATOR)
    with pytest.raises(PermissionDenied) as info:
        desk.rotate_device("LLG-0003", device(13).public_key, principal=OFFICER_01)
    assert info.value.code == "access.out_of_scope"
    assert entries(desk)[-1].outcome == "denied:access.out_of_scope"
    with desk.storage.transaction() as tx:
        assert [k.key_id for k in tx.device_keys(monitor="LLG-0003")] == [
            device(3).public_key.key_id
        ]


# ---------------------------------------------------------------------------------------
# Signed reports
# ---------------------------------------------------------------------------------------


def test_signed_reports_are_accepted_as_objects_json_bytes_text_and_mappings(
    backend: Backend,
) -> None:
    desk = backend.open(with_settings(require_signatures=True), clock=Clock())
    key = device(1)
    desk.enrol_device("LLG-0001", key.public_key, principal=OFFICER_01)
    desk.enrol_device("LLG-0002", device(2).public_key, principal=OFFICER_01)
    desk.enrol_device("LLG-0003", device(3).public_key, principal=COORDINATOR)
    as_object = sign_report(tally(1), key)
    as_bytes = sign_report(tally(2, (50, 60)), device(2))
    as_text = sign_report(tally(3, (70, 80)), device(3))
    assert desk.submit(as_object, principal=monitor(1)).status == "accepted"
    assert desk.submit(as_bytes.to_json(), principal=monitor(2)).status == "accepted"
    assert desk.submit(as_text.to_json().decode(), principal=monitor(3)).status == "accepted"
    # the same signed bytes again: a duplicate, nothing changes
    again = desk.submit(as_bytes.to_json(), principal=monitor(2))
    assert (again.status, again.first_status) == ("duplicate", "accepted")
    # a mapping (the parsed JSON) is read like the bytes
    assert desk.submit(as_text.to_wire(), principal=monitor(3)).status == "duplicate"
    got = stored(desk)
    assert set(got) == {r.report.report_id for r in (as_object, as_bytes, as_text)}
    assert desk.tally("16.73", principal=COORDINATOR).valid == 300 + 110 + 150
    assert verify_chain(desk.audit.entries()).ok


def test_a_signed_batch_keeps_the_good_reports_and_audits_the_bad_one(backend: Backend) -> None:
    desk = backend.open(small_deployment(), clock=Clock())
    desk.enrol_device("LLG-0001", device(1).public_key, principal=OFFICER_01)
    good = sign_report(tally(1), device(1))
    bad = sign_report(tally(1, report_id=uuid.uuid4()), device(7))  # not enrolled
    before = len(entries(desk))
    result = desk.submit_many([good, bad], principal=monitor(1))
    assert result.items[0].status == "accepted"  # type: ignore[union-attr]
    assert isinstance(result.items[1], SignatureError)
    assert result.items[1].code == "signature.unknown_key"
    assert set(stored(desk)) == {good.report.report_id}
    new = new_entries(desk, before)
    assert sorted(e.outcome for e in new if e.action != "submit_batch") == [
        "accepted",
        "denied:signature.unknown_key",
    ]
    # the good report is a leaf of the batch's one chained entry
    assert [e.object for e in new if e.action == "submit_batch"] == ["leaves:0-0"]


@attrs.frozen
class Case:
    """A refused submission: what is sent, by whom, and the code expected."""

    submission: Any
    principal: Principal
    code: str
    station: str


def _altered(ctx: dict[str, Any]) -> Case:
    """A vote changed after signing, in the JSON the device sends."""
    signed = sign_report(tally(1), device(1))
    wire = signed.to_wire()
    wire["report"]["votes"]["1"] += 1
    wire["report"]["valid"] += 1
    wire["report"]["total"] += 1
    return Case(json.dumps(wire).encode(), monitor(1), "signature.invalid", TPS[1])


def _altered_object(ctx: dict[str, Any]) -> Case:
    signed = sign_report(tally(1), device(1))
    forged = SignedReport(attrs.evolve(signed.report, invalid=5, total=305), signed.signature)
    return Case(forged, monitor(1), "signature.invalid", TPS[1])


def _moved(ctx: dict[str, Any]) -> Case:
    """A signed payload sent again under another report id."""
    signed = ctx["accepted"]
    wire = signed.to_wire()
    wire["report"]["report_id"] = str(uuid.uuid4())
    return Case(wire, monitor(2), "signature.invalid", TPS[2])


def _unknown(ctx: dict[str, Any]) -> Case:
    return Case(sign_report(tally(1), device(42)), monitor(1), "signature.unknown_key", TPS[1])


def _revoked(ctx: dict[str, Any]) -> Case:
    desk: Desk = ctx["desk"]
    desk.revoke_device(device(1).public_key.key_id, principal=OFFICER_01)
    return Case(sign_report(tally(1), device(1)), monitor(1), "signature.revoked_key", TPS[1])


def _wrong_monitor(ctx: dict[str, Any]) -> Case:
    """LLG-0001's report signed with LLG-0002's (enrolled) key."""
    return Case(sign_report(tally(1), device(2)), monitor(1), "signature.wrong_monitor", TPS[1])


def _stale(ctx: dict[str, Any]) -> Case:
    report = tally(1, observed_at=NOW - timedelta(hours=2, minutes=1))
    return Case(sign_report(report, device(1)), monitor(1), "signature.replay", TPS[1])


def _future(ctx: dict[str, Any]) -> Case:
    report = tally(1, observed_at=NOW + timedelta(hours=2, minutes=1))
    return Case(sign_report(report, device(1)), monitor(1), "signature.replay", TPS[1])


def _resent_later(ctx: dict[str, Any]) -> Case:
    """The accepted signed payload replayed three hours later."""
    ctx["clock"].at = NOW + timedelta(hours=3)
    return Case(ctx["accepted"].to_json(), monitor(2), "signature.replay", TPS[2])


def _missing(ctx: dict[str, Any]) -> Case:
    return Case(tally(1), monitor(1), "signature.missing", TPS[1])


def _missing_json(ctx: dict[str, Any]) -> Case:
    return Case(json.dumps(dump_report(tally(1))), monitor(1), "signature.missing", TPS[1])


def _malformed(ctx: dict[str, Any]) -> Case:
    wire = sign_report(tally(1), device(1)).to_wire()
    wire["signature"]["value"] = "!" * 86
    return Case(wire, monitor(1), "signature.malformed", "")


REFUSALS: dict[str, Callable[[dict[str, Any]], Case]] = {
    "altered-json": _altered,
    "altered-object": _altered_object,
    "moved-to-another-report-id": _moved,
    "unknown-key": _unknown,
    "revoked-key": _revoked,
    "key-of-another-monitor": _wrong_monitor,
    "observed-before-the-window": _stale,
    "observed-after-the-window": _future,
    "resent-after-the-window": _resent_later,
    "unsigned-when-required": _missing,
    "unsigned-json-when-required": _missing_json,
    "malformed-signature": _malformed,
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_a_refused_signature_stores_nothing_and_is_audited(backend: Backend, case: str) -> None:
    clock = Clock()
    desk = backend.open(
        with_settings(require_signatures=True, signature_window_hours=2), clock=clock
    )
    for n in (1, 2):
        desk.enrol_device(f"LLG-000{n}", device(n).public_key, principal=OFFICER_01)
    accepted = sign_report(tally(2, (50, 60)), device(2))
    assert desk.submit(accepted, principal=monitor(2)).status == "accepted"
    ctx = {"desk": desk, "clock": clock, "accepted": accepted}
    refused = REFUSALS[case](ctx)
    reports, aggregates = stored(desk), counts(desk)
    before = len(entries(desk))

    with pytest.raises(SignatureError) as info:
        desk.submit(refused.submission, principal=refused.principal)

    assert info.value.code == refused.code
    assert stored(desk) == reports  # nothing stored, no status changed
    assert counts(desk) == aggregates
    entry = only(new_entries(desk, before))
    assert (entry.principal, entry.role, entry.action, entry.object, entry.outcome) == (
        refused.principal.id,
        "monitor",
        "submit",
        "report",
        f"denied:{refused.code}",
    )
    assert entry.region == refused.station
    assert verify_chain(desk.audit.entries()).ok


@pytest.mark.parametrize(
    "offset",
    [timedelta(hours=-1, minutes=-59), timedelta(hours=1, minutes=59), timedelta(0)],
    ids=["1h59-before", "1h59-after", "now"],
)
def test_within_the_window_a_signed_report_is_accepted(backend: Backend, offset: timedelta) -> None:
    desk = backend.open(with_settings(signature_window_hours=2), clock=Clock())
    desk.enrol_device("LLG-0001", device(1).public_key, principal=OFFICER_01)
    report = tally(1, observed_at=NOW + offset)
    assert desk.submit(sign_report(report, device(1)), principal=monitor(1)).status == "accepted"


def test_the_window_defaults_to_a_day(backend: Backend) -> None:
    desk = backend.open(small_deployment(), clock=Clock())
    assert desk.signature_window == timedelta(hours=24)
    desk.enrol_device("LLG-0001", device(1).public_key, principal=OFFICER_01)
    old = tally(1, observed_at=NOW - timedelta(hours=23))
    assert desk.submit(sign_report(old, device(1)), principal=monitor(1)).status == "accepted"
    older = tally(2, observed_at=NOW - timedelta(hours=25))
    desk.enrol_device("LLG-0002", device(2).public_key, principal=OFFICER_01)
    with pytest.raises(SignatureError) as info:
        desk.submit(sign_report(older, device(2)), principal=monitor(2))
    assert info.value.code == "signature.replay"


def test_when_signatures_are_required_the_desk_staff_may_still_submit_unsigned(
    backend: Backend,
) -> None:
    desk = backend.open(with_settings(require_signatures=True), clock=Clock())
    assert desk.require_signatures
    assert desk.submit(tally(1), principal=SYSTEM).status == "accepted"
    assert desk.submit(tally(2), principal=OFFICER_01).status == "accepted"
    with pytest.raises(SignatureError) as info:
        desk.submit(tally(3), principal=monitor(3))
    assert info.value.code == "signature.missing"


def test_unsigned_monitor_reports_are_accepted_when_not_required() -> None:
    desk = Desk.open(small_deployment(), clock=Clock())
    assert not desk.require_signatures
    assert desk.submit(tally(1), principal=monitor(1)).status == "accepted"


# ---------------------------------------------------------------------------------------
# Staff tokens
# ---------------------------------------------------------------------------------------


def test_tokens_are_issued_within_scope_authenticate_and_are_stored_as_hashes(
    backend: Backend,
) -> None:
    desk = backend.open(small_deployment(), clock=Clock())
    holder = Principal(id="officer-01", role=Role.OFFICER, scope="16.73.01")
    before = len(entries(desk))
    token = desk.issue_token(holder, principal=COORDINATOR)
    assert len(token) >= 40
    assert desk.authenticate(token) == holder
    entry = only(new_entries(desk, before))
    assert (entry.principal, entry.action, entry.object, entry.outcome, entry.region) == (
        "coord",
        "issue_token",
        "principal:officer-01",
        "ok",
        "16.73.01",
    )
    raw = backend.dump()
    assert token.encode() not in raw
    assert hash_token(token).encode() in raw  # the dump does hold the token table
    with desk.storage.transaction() as tx:
        record = tx.token(hash_token(token))
    assert record is not None
    assert token not in repr(record)
    assert all(token not in repr(e) for e in entries(desk))

    # a coordinator's token; the system's own token (no scope)
    second = desk.issue_token(COORDINATOR, principal=SYSTEM)
    assert desk.authenticate(second) == COORDINATOR
    assert desk.authenticate(desk.issue_token(SYSTEM, principal=SYSTEM)) == SYSTEM

    desk.revoke_token(token, principal=COORDINATOR)
    assert entries(desk)[-1].action == "revoke_token"
    with pytest.raises(PermissionDenied) as info:
        desk.authenticate(token)
    assert info.value.code == "access.bad_token"
    assert desk.authenticate(second) == COORDINATOR  # the others still work
    assert token.encode() not in backend.dump()


def test_unknown_tokens_are_refused(backend: Backend) -> None:
    desk = backend.open(small_deployment(), clock=Clock())
    for token in ("", "x", secrets.token_urlsafe(32), hash_token("x")):
        with pytest.raises(PermissionDenied) as info:
            desk.authenticate(token)
        assert info.value.code == "access.bad_token"


@pytest.mark.parametrize(
    ("issuer", "holder", "code"),
    [
        (OFFICER_01, Principal(id="o-x", role=Role.OFFICER, scope="16.73.01"), "access.role"),
        (AUDITOR, Principal(id="o-x", role=Role.OFFICER, scope="16.73"), "access.role"),
        (monitor(1), Principal(id="o-x", role=Role.OFFICER, scope="16.73.01"), "access.role"),
        (COORDINATOR, monitor(1), "access.role"),
        (
            Principal(id="coord-01", role=Role.COORDINATOR, scope="16.73.01"),
            Principal(id="o-x", role=Role.OFFICER, scope="16.73.02"),
            "access.out_of_scope",
        ),
        (
            Principal(id="coord-01", role=Role.COORDINATOR, scope="16.73.01"),
            Principal(id="c-x", role=Role.COORDINATOR, scope="16.73"),
            "access.out_of_scope",
        ),
        (COORDINATOR, Principal(id="root", role=Role.SYSTEM), "access.out_of_scope"),
    ],
    ids=[
        "officer-issues",
        "auditor-issues",
        "monitor-issues",
        "token-for-a-monitor",
        "holder-beside-the-scope",
        "holder-above-the-scope",
        "holder-without-scope",
    ],
)
def test_tokens_outside_the_issuers_power_are_refused_and_audited(
    backend: Backend, issuer: Principal, holder: Principal, code: str
) -> None:
    desk = backend.open(small_deployment(), clock=Clock())
    before = len(entries(desk))
    with pytest.raises(PermissionDenied) as info:
        desk.issue_token(holder, principal=issuer)
    assert info.value.code == code
    entry = only(new_entries(desk, before))
    assert (entry.principal, entry.outcome) == (issuer.id, f"denied:{code}")
    assert entry.action in ("issue_token", "enrol")
    assert entry.object == f"principal:{holder.id}"
    if backend.memory is not None:
        assert backend.memory._state.tokens == {}
    elif backend.kind == "sqlite" or backend.kind == "postgresql":
        assert backend.sql("SELECT count(*) FROM staff_tokens") == [(0,)]


# ---------------------------------------------------------------------------------------
# Sealed personal data
# ---------------------------------------------------------------------------------------

PEOPLE = {
    "LLG-0001": ("Sri Wahyuningsih Lestari", "081277770001", "1673015501770001"),
    "LLG-0002": ("Bambang Hadi Susanto", "081277770002", "1673014404770002"),
    "LLG-0003": ("Yohanes Marpaung", "081277770003", "1673020303770003"),
}
KEY_ENV = "SIPANTAU_TEST_PD_KEY"


def people_deployment(**settings: Any) -> Deployment:
    base = small_deployment()
    monitors = {
        m.id: Monitor(
            id=m.id,
            station=m.station,
            personal=PersonalData(
                name=PEOPLE[m.id][0], phone=PEOPLE[m.id][1], national_id=PEOPLE[m.id][2]
            ),
        )
        for m in base.monitors.values()
    }
    return attrs.evolve(
        base, monitors=monitors, settings={"personal_data_key_env": KEY_ENV, **settings}
    )


def b64key(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.fixture
def pd_key(monkeypatch: pytest.MonkeyPatch) -> bytes:
    raw = secrets.token_bytes(32)
    monkeypatch.setenv(KEY_ENV, b64key(raw))
    return raw


def plaintexts() -> list[bytes]:
    return [value.encode() for person in PEOPLE.values() for value in person]


def test_a_coordinator_reads_the_real_personal_data(backend: Backend, pd_key: bytes) -> None:
    desk = backend.open(people_deployment(), clock=Clock())
    for monitor_id, (name, phone, nik) in PEOPLE.items():
        before = len(entries(desk))
        data = desk.personal_data(monitor_id, principal=COORDINATOR)
        assert data is not None
        assert (data.name.reveal(), data.phone.reveal(), data.national_id.reveal()) == (
            name,
            phone,
            nik,
        )
        entry = only(new_entries(desk, before))
        assert (entry.action, entry.object, entry.outcome) == (
            "read_personal",
            f"monitor:{monitor_id}",
            "ok",
        )
        assert nik not in repr(data) and phone not in str(data)
    # what the desk read came from the sealed rows, not the deployment in memory
    with desk.storage.transaction() as tx:
        records = tx.monitors()
    assert set(records) == set(PEOPLE)
    assert all(r.national_id is not None and r.name is not None for r in records.values())


@pytest.mark.parametrize(
    ("who", "code"),
    [
        (OFFICER_01, "access.role"),
        (AUDITOR, "access.role"),
        (monitor(1), "access.role"),
        (Principal(id="c2", role=Role.COORDINATOR, scope="16.73.02"), "access.out_of_scope"),
    ],
    ids=["officer", "auditor", "the-monitor-itself", "coordinator-elsewhere"],
)
def test_personal_data_is_refused_to_others_and_audited(
    backend: Backend, pd_key: bytes, who: Principal, code: str
) -> None:
    desk = backend.open(people_deployment(), clock=Clock())
    before = len(entries(desk))
    with pytest.raises(PermissionDenied) as info:
        desk.personal_data("LLG-0001", principal=who)
    assert info.value.code == code
    entry = only(new_entries(desk, before))
    assert (entry.action, entry.outcome, entry.region) == (
        "read_personal",
        f"denied:{code}",
        TPS[1],
    )
    for value in PEOPLE["LLG-0001"]:
        assert value not in str(info.value) and value not in repr(info.value)


def test_the_storage_never_holds_personal_data_in_clear(backend: Backend, pd_key: bytes) -> None:
    desk = backend.open(people_deployment(), clock=Clock())
    desk.submit(tally(1), principal=monitor(1))
    desk.personal_data("LLG-0002", principal=COORDINATOR)
    raw = backend.dump()
    assert b"monitors" in raw or backend.kind == "memory"
    for value in plaintexts():
        assert value not in raw, value
    assert pd_key not in raw
    assert b64key(pd_key).encode() not in raw
    assert pd_key.hex().encode() not in raw


def test_without_a_key_no_personal_data_is_stored(backend: Backend) -> None:
    deployment = attrs.evolve(people_deployment(), settings={})
    desk = backend.open(deployment, clock=Clock())
    with desk.storage.transaction() as tx:
        records = tx.monitors()
    assert set(records) == set(PEOPLE)
    assert all(r.name is r.phone is r.national_id is None for r in records.values())
    for value in plaintexts():
        assert value not in backend.dump()


def _swap_national_ids(backend: Backend, desk: Desk, a: str, b: str) -> None:
    """Swap two monitors' sealed national IDs behind the desk's back."""
    if backend.memory is not None:
        monitors = backend.memory._state.monitors
        ra, rb = monitors[a], monitors[b]
        monitors[a] = attrs.evolve(ra, national_id=rb.national_id)
        monitors[b] = attrs.evolve(rb, national_id=ra.national_id)
        return
    rows = dict(backend.sql("SELECT id, national_id FROM monitors WHERE id IN (?, ?)", (a, b)))
    assert rows[a] != rows[b]
    backend.sql("UPDATE monitors SET national_id = ? WHERE id = ?", (bytes(rows[b]), a))
    backend.sql("UPDATE monitors SET national_id = ? WHERE id = ?", (bytes(rows[a]), b))


def test_a_sealed_value_moved_to_another_row_does_not_open(backend: Backend, pd_key: bytes) -> None:
    desk = backend.open(people_deployment(), clock=Clock())
    assert desk.personal_data("LLG-0001", principal=COORDINATOR) is not None
    _swap_national_ids(backend, desk, "LLG-0001", "LLG-0002")
    for monitor_id in ("LLG-0001", "LLG-0002"):
        with pytest.raises(SealError) as info:
            desk.personal_data(monitor_id, principal=COORDINATOR)
        assert info.value.code == "seal.tampered"
        text = f"{info.value} {info.value!r} {info.value.message_id}"
        assert all(v.decode() not in text for v in plaintexts())
    # the untouched row still opens
    data = desk.personal_data("LLG-0003", principal=COORDINATOR)
    assert data is not None and data.national_id.reveal() == PEOPLE["LLG-0003"][2]


def test_a_wrong_key_does_not_open_the_sealed_rows(
    backend: Backend, pd_key: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = backend.open(people_deployment(), clock=Clock())
    assert first.personal_data("LLG-0001", principal=COORDINATOR) is not None
    monkeypatch.setenv(KEY_ENV, b64key(secrets.token_bytes(32)))
    second = backend.open(people_deployment(), clock=Clock())
    with pytest.raises(SealError) as info:
        second.personal_data("LLG-0001", principal=COORDINATOR)
    assert info.value.code == "seal.tampered"


def test_a_missing_key_variable_stops_the_desk_from_opening(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    with pytest.raises(SealError) as info:
        backend.open(people_deployment(), clock=Clock())
    assert info.value.code == "seal.key_missing"
    assert KEY_ENV in str(info.value)


def test_a_malformed_key_stops_the_desk_from_opening(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, b64key(b"short"))
    with pytest.raises(SealError) as info:
        backend.open(people_deployment(), clock=Clock())
    assert info.value.code == "seal.key_invalid"
