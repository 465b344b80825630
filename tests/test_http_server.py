"""The HTTP API v1 (``sipantau_adapters.http.server``), served for real by uvicorn on
loopback in a background thread, around a desk on ``memory://`` and one on an SQLite
file: every endpoint, every error status, and the group commit."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest

from sipantau_adapters.http.openapi import ERROR_STATUSES
from sipantau_adapters.http.server import create_app, running
from sipantau_adapters.storage.memory import MemoryStorage
from sipantau_adapters.storage.sql import SQLStorage
from sipantau_core.access import Principal, Role
from sipantau_core.deployment import Deployment
from sipantau_core.desk import Desk
from sipantau_core.domain import (
    Amends,
    Incident,
    PollingStation,
    SecurityStatus,
    SituationReport,
    Stage,
    TallyReport,
    VoterCounts,
)
from sipantau_core.errors import StorageError
from sipantau_core.ports import Storage, StorageTx, WriteBatch
from sipantau_core.signing import DeviceKey, sign_report
from sipantau_core.testing.contracts import build_deployment
from sipantau_core.wire import dump_report

ROOT = Path(__file__).resolve().parents[1]
SYSTEM = Principal(id="system", role=Role.SYSTEM)

#: Villages: A (16.73.01.1001) for most tests, B (16.73.02.1002) outside the officer's
#: district, C (16.73.03.1003) for the group commit (its tally must come out exact).
VILLAGES = {"A": ("1673011001", 40), "B": ("1673021002", 20), "C": ("1673031003", 60)}


def deployment() -> Deployment:
    stations = [
        PollingStation(code=f"{prefix}{number:03d}", registered_voters=400)
        for prefix, count in VILLAGES.values()
        for number in range(1, count + 1)
    ]
    return build_deployment(stations, id="http", name="Desk HTTP")


# ---------------------------------------------------------------------------------------
# Storage wrapper: counts write transactions, and can be switched "down"
# ---------------------------------------------------------------------------------------


class _CountingTx:
    def __init__(self, tx: StorageTx):
        self._tx = tx
        self.wrote = False

    def write(self, batch: WriteBatch) -> None:
        self.wrote = True
        self._tx.write(batch)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tx, name)


class CountingStorage(Storage):
    """Counts the transactions that wrote something; ``down = True`` makes every new
    transaction raise ``StorageError`` (the database cannot be reached)."""

    def __init__(self, inner: Storage):
        self.inner = inner
        self.url = inner.url
        self.write_transactions = 0
        self.down = False
        self._lock = threading.Lock()

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        if self.down:
            raise StorageError("cannot reach the database", code="storage.unavailable")
        with self.inner.transaction() as tx:
            counting = _CountingTx(tx)
            yield counting
        if counting.wrote:
            with self._lock:
                self.write_transactions += 1

    def close(self) -> None:
        self.inner.close()


# ---------------------------------------------------------------------------------------
# The server under test
# ---------------------------------------------------------------------------------------


@attrs.define
class Env:
    url: str
    desk: Desk
    storage: CountingStorage
    app: Any
    tokens: dict[str, str]
    keys: dict[str, DeviceKey] = attrs.field(factory=dict)
    used: dict[str, int] = attrs.field(factory=dict)

    def client(self, token: str | None = None, **headers: str) -> httpx.Client:
        if token is not None:
            headers["authorization"] = f"Bearer {self.tokens[token]}"
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def station(self, village: str = "A") -> tuple[str, str]:
        """A TPS of ``village`` that no test has used yet, and its monitor."""
        prefix, count = VILLAGES[village]
        number = self.used.get(village, 0) + 1
        assert number <= count, f"village {village} has no unused TPS left"
        self.used[village] = number
        code = f"{prefix}{number:03d}"
        monitor = next(
            m for m in self.desk.deployment.monitors.values() if m.station.compact == code
        )
        return code, monitor.id

    def key(self, monitor: str) -> DeviceKey:
        if monitor not in self.keys:
            key = DeviceKey.generate()
            self.desk.enrol_device(monitor, key.public_key, principal=SYSTEM)
            self.keys[monitor] = key
        return self.keys[monitor]


@pytest.fixture(scope="module", params=["memory", "sqlite"])
def env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    if request.param == "memory":
        inner: Storage = MemoryStorage()
    else:
        inner = SQLStorage(f"sqlite:///{tmp_path_factory.mktemp('http')}/desk.db")
    storage = CountingStorage(inner)
    desk = Desk.open(deployment(), storage=storage)
    holders = {
        "system": SYSTEM,
        "coordinator": Principal(id="koordinator", role=Role.COORDINATOR, scope="16.73"),
        "officer": Principal(id="petugas-01", role=Role.OFFICER, scope="16.73.01"),
        "viewer": Principal(id="kantor-walikota", role=Role.VIEWER, scope="16.73"),
        "auditor": Principal(id="auditor", role=Role.AUDITOR, scope="16.73"),
    }
    tokens = {name: desk.issue_token(p, principal=SYSTEM) for name, p in holders.items()}
    app = create_app(desk)
    with running(app) as url:
        yield Env(url, desk, storage, app, tokens)
    desk.close()


def tally(
    station: str,
    monitor: str,
    votes: tuple[int, int] = (100, 200),
    invalid: int = 5,
    *,
    total: int | None = None,
    amends: tuple[uuid.UUID, int] | None = None,
    observed_at: datetime | None = None,
    contest: str = "walikota",
) -> TallyReport:
    valid = sum(votes)
    return TallyReport(
        report_id=uuid.uuid4(),
        monitor=monitor,
        station=station,
        contest=contest,
        observed_at=observed_at or datetime.now(UTC),
        votes={1: votes[0], 2: votes[1]},
        valid=valid,
        invalid=invalid,
        total=valid + invalid if total is None else total,
        voted=VoterCounts(valid + invalid, 0, 0) if total is None else None,
        amends=Amends(*amends) if amends is not None else None,
    )


def situation(station: str, monitor: str, *incidents: Incident) -> SituationReport:
    return SituationReport(
        report_id=uuid.uuid4(),
        monitor=monitor,
        station=station,
        observed_at=datetime.now(UTC),
        stage=Stage.OPENING,
        status=SecurityStatus.ALERT if incidents else SecurityStatus.SAFE,
        incidents=list(incidents),
    )


def signed(env: Env, report: TallyReport | SituationReport) -> bytes:
    return sign_report(report, env.key(report.monitor)).to_json()


def plain(report: TallyReport | SituationReport) -> bytes:
    return json.dumps(dump_report(report)).encode()


def post(client: httpx.Client, body: bytes, **headers: str) -> httpx.Response:
    return client.post(
        "/v1/reports", content=body, headers={"content-type": "application/json", **headers}
    )


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert {"code", "message", "message_id", "violations"} <= set(body), body
    assert body["code"] == code, body
    assert code in ERROR_STATUSES[status], f"{code} is not documented under {status}"
    assert isinstance(body["violations"], list)
    return body


# ---------------------------------------------------------------------------------------
# Health and the OpenAPI document
# ---------------------------------------------------------------------------------------


def test_health(env: Env) -> None:
    with env.client() as c:
        response = c.get("/v1/health")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_the_served_openapi_document_is_the_one_in_docs(env: Env) -> None:
    with env.client() as c:
        served = c.get("/openapi.json").json()
    kept = json.loads((ROOT / "docs" / "openapi.json").read_text(encoding="utf-8"))
    assert served == kept, (
        "regenerate: python -m sipantau_adapters.http.openapi > docs/openapi.json"
    )
    assert served["openapi"].startswith("3.1")
    paths = {(m.upper(), p) for p, ops in served["paths"].items() for m in ops}
    assert paths == {
        ("POST", "/v1/reports"),
        ("GET", "/v1/reports/{report_id}"),
        ("POST", "/v1/devices"),
        ("PUT", "/v1/media/{sha256}"),
        ("GET", "/v1/media/{sha256}"),
        ("GET", "/v1/tally/{region}"),
        ("GET", "/v1/status/{region}"),
        ("GET", "/v1/incidents/{region}"),
        ("GET", "/v1/health"),
        ("GET", "/openapi.json"),
    }


# ---------------------------------------------------------------------------------------
# Submissions
# ---------------------------------------------------------------------------------------


def test_a_signed_tally_is_accepted_once_then_duplicate(env: Env) -> None:
    station, monitor = env.station()
    report = tally(station, monitor)
    body = signed(env, report)
    with env.client() as c:
        first = post(c, body)
        again = post(c, body)
    assert first.status_code == 201, first.text
    assert first.headers["location"] == f"/v1/reports/{report.report_id}"
    receipt = first.json()["receipt"]
    assert receipt["report_id"] == str(report.report_id)
    assert (receipt["status"], receipt["version"], receipt["station"]) == ("accepted", 1, station)
    assert (receipt["counted"], receipt["first_status"], receipt["violations"]) == (True, None, [])
    assert again.status_code == 200
    dup = again.json()["receipt"]
    assert (dup["status"], dup["first_status"], dup["received_at"]) == (
        "duplicate",
        "accepted",
        receipt["received_at"],
    )
    # what the monitor keeps to check later that its report is in the audit log (#13)
    assert isinstance(receipt["leaf_index"], int) and len(receipt["leaf_hash"]) == 64
    assert receipt["tree_size"] > receipt["leaf_index"] and len(receipt["tree_root"]) == 64
    assert (dup["leaf_index"], dup["leaf_hash"]) == (receipt["leaf_index"], receipt["leaf_hash"])


def test_a_plain_report_needs_a_bearer_token(env: Env) -> None:
    station, monitor = env.station()
    body = plain(tally(station, monitor))
    with env.client() as c:
        missing = post(c, body)
        assert_error(missing, 401, "access.unauthenticated")
        assert missing.headers["www-authenticate"] == "Bearer"
        assert_error(post(c, body, authorization="Bearer not-a-token"), 401, "access.bad_token")
        assert_error(
            post(c, body, authorization="Basic dXNlcjpwdw=="), 401, "access.unauthenticated"
        )
        assert_error(post(c, body, authorization="Bearer"), 401, "access.unauthenticated")
    with env.client("officer") as c:
        response = post(c, body)
    assert response.status_code == 201, response.text
    assert response.json()["receipt"]["status"] == "accepted"


def test_a_relay_may_send_a_signed_report_under_its_own_token(env: Env) -> None:
    station, monitor = env.station()
    body = signed(env, situation(station, monitor))
    with env.client(authorization="Bearer nope") as c:
        assert_error(post(c, body), 401, "access.bad_token")
    with env.client("system") as c:
        assert post(c, body).status_code == 201


def test_signatures_that_are_not_accepted(env: Env) -> None:
    station, monitor = env.station()
    other_station, other = env.station()
    report = tally(station, monitor)
    good = sign_report(report, env.key(monitor))
    with env.client() as c:
        tampered = attrs.evolve(good, report=attrs.evolve(report, invalid=6, total=306))
        assert_error(post(c, tampered.to_json()), 401, "signature.invalid")
        stranger = sign_report(report, DeviceKey.generate())
        assert_error(post(c, stranger.to_json()), 401, "signature.unknown_key")
        by_other = sign_report(report, env.key(other))
        assert_error(post(c, by_other.to_json()), 401, "signature.wrong_monitor")
        old = tally(station, monitor, observed_at=datetime.now(UTC) - timedelta(days=3))
        assert_error(post(c, signed(env, old)), 401, "signature.replay")
        envelope = good.to_wire()
        envelope["signature"]["value"] = "not base64!"
        assert_error(post(c, json.dumps(envelope).encode()), 400, "signature.malformed")
        envelope["signature"] = {"alg": "rsa", "key_id": "0" * 32, "value": ""}
        assert_error(post(c, json.dumps(envelope).encode()), 400, "signature.malformed")
        # Revoked: a key of its own, then revoked.
        key = DeviceKey.generate()
        env.desk.enrol_device(other, key.public_key, principal=SYSTEM)
        env.desk.revoke_device(key.public_key.key_id, principal=SYSTEM)
        late = sign_report(tally(other_station, other), key)
        assert_error(post(c, late.to_json()), 401, "signature.revoked_key")
        # Nothing of it was stored: the good one is still new.
        assert post(c, good.to_json()).status_code == 201


def test_malformed_json_and_bad_fields_name_each_problem(env: Env) -> None:
    station, monitor = env.station()
    with env.client("system") as c:
        body = assert_error(post(c, b'{"schema": '), 400, "payload.invalid")
        assert [(p["path"], p["code"]) for p in body["violations"]] == [("$", "json.invalid")]
        body = assert_error(post(c, b"\xff\xfe{}"), 400, "payload.invalid")
        assert body["violations"][0]["code"] == "json.invalid"
        assert_error(post(c, b"[1, 2]"), 400, "payload.invalid")
        wire = dump_report(tally(station, monitor))
        wire.update(valid="300", total=-1, surprise=True)
        del wire["report_id"]
        body = assert_error(post(c, json.dumps(wire).encode()), 400, "payload.invalid")
        found = {(p["path"], p["code"]) for p in body["violations"]}
        assert {
            ("$.valid", "type.integer"),
            ("$.total", "number.negative"),
            ("$.report_id", "field.missing"),
            ("$.surprise", "field.unknown"),
        } <= found
        assert all(set(p) == {"path", "code", "message"} for p in body["violations"])
    with env.client() as c:
        envelope = sign_report(tally(station, monitor), env.key(monitor)).to_wire()
        envelope["report"]["votes"] = {"1": "many"}
        envelope["extra"] = 1
        body = assert_error(post(c, json.dumps(envelope).encode()), 400, "payload.invalid")
        assert {p["path"] for p in body["violations"]} >= {"$.extra"}
        envelope.pop("extra")
        body = assert_error(post(c, json.dumps(envelope).encode()), 400, "payload.invalid")
        assert ("$.report.votes.1", "type.integer") in {
            (p["path"], p["code"]) for p in body["violations"]
        }


def test_out_of_scope_is_forbidden(env: Env) -> None:
    station, monitor = env.station("B")
    with env.client("officer") as c:
        assert_error(post(c, plain(tally(station, monitor))), 403, "access.out_of_scope")
        assert_error(c.get("/v1/tally/16.73.02"), 403, "access.out_of_scope")
        assert_error(c.get("/v1/status/16.73"), 403, "access.out_of_scope")
    with env.client("viewer") as c:
        assert_error(post(c, plain(tally(station, monitor))), 403, "access.role")
        assert_error(c.get("/v1/tally/16.73"), 403, "access.not_released")
    with env.client("auditor") as c:
        assert_error(c.get("/v1/incidents/16.73"), 403, "access.role")


def test_conflicts_and_corrections(env: Env) -> None:
    station, monitor = env.station()
    first = tally(station, monitor)
    with env.client() as c:
        assert post(c, signed(env, first)).status_code == 201
        changed = attrs.evolve(first, invalid=6, total=306, voted=VoterCounts(306, 0, 0))
        assert_error(post(c, signed(env, changed)), 409, "report.conflict")
        second_chain = tally(station, monitor, (1, 2))
        assert_error(post(c, signed(env, second_chain)), 409, "report.station_already_reported")
        v2 = tally(station, monitor, (110, 190), amends=(first.report_id, 1))
        response = post(c, signed(env, v2))
        assert response.status_code == 201, response.text
        receipt = response.json()["receipt"]
        assert (receipt["version"], receipt["chain_id"]) == (2, str(first.report_id))
        stale = tally(station, monitor, (120, 180), amends=(first.report_id, 1))
        assert_error(post(c, signed(env, stale)), 409, "report.stale_version")
        lost = tally(station, monitor, amends=(uuid.uuid4(), 1))
        assert_error(post(c, signed(env, lost)), 409, "report.amends_unknown")
    with env.client("coordinator") as c:
        old = c.get(f"/v1/reports/{first.report_id}").json()["receipt"]
    assert (old["status"], old["counted"]) == ("superseded", False)


def test_too_large_bodies_are_refused(env: Env) -> None:
    big = b'{"schema": "' + b"x" * (64 * 1024) + b'"}'
    with env.client("system") as c:
        body = assert_error(post(c, big), 413, "payload.too_large")
        assert "traceback" not in json.dumps(body).lower()

        def chunks() -> Iterator[bytes]:  # no Content-Length: Transfer-Encoding chunked
            for _ in range(20):
                yield b" " * 4096

        response = c.post("/v1/reports", content=chunks())
        assert_error(response, 413, "payload.too_large")
        assert_error(c.post("/v1/devices", content=big), 413, "payload.too_large")


def test_other_media_types_are_refused(env: Env) -> None:
    station, monitor = env.station()
    body = signed(env, situation(station, monitor))
    with env.client() as c:
        for media in (
            "text/plain",
            "application/x-www-form-urlencoded",
            "application/json; charset=latin-1",
        ):
            assert_error(
                c.post("/v1/reports", content=body, headers={"content-type": media}),
                415,
                "payload.unsupported_media_type",
            )
        ok = c.post(
            "/v1/reports",
            content=body,
            headers={"content-type": "application/json; charset=UTF-8"},
        )
        assert ok.status_code == 201


def test_a_flagged_tally_is_a_422_with_its_violations_and_receipt(env: Env) -> None:
    station, monitor = env.station()
    report = tally(station, monitor, total=999)
    body = signed(env, report)
    with env.client() as c:
        response = post(c, body)
        error = assert_error(response, 422, "report.flagged")
        again = post(c, body)
    assert error["receipt"]["status"] == "flagged"
    assert error["receipt"]["counted"] is False
    assert error["violations"] == error["receipt"]["violations"]
    codes = {v["code"] for v in error["violations"]}
    assert "total.sum_mismatch" in codes
    assert all(v["message_id"] and v["severity"] in ("hard", "soft") for v in error["violations"])
    assert again.status_code == 200
    assert (again.json()["receipt"]["status"], again.json()["receipt"]["first_status"]) == (
        "duplicate",
        "flagged",
    )


def test_what_the_deployment_lacks_is_a_422_and_not_stored(env: Env) -> None:
    station, monitor = env.station()
    _, other = env.station()
    with env.client("system") as c:
        unknown = tally("1673011001999", monitor)
        assert_error(post(c, plain(unknown)), 422, "report.unknown_station")
        assert_error(
            post(c, plain(tally(station, monitor, contest="gubernur"))),
            422,
            "report.unknown_contest",
        )
        assert_error(post(c, plain(tally(station, other))), 422, "report.monitor_mismatch")
        assert_error(post(c, plain(tally(station, "LLG-9999"))), 422, "report.unknown_monitor")
        odd = situation(station, monitor, Incident("hujan_es", 2))
        assert_error(post(c, plain(odd)), 422, "report.unknown_incident_category")
        # Nothing was stored: the TPS takes its first tally now.
        assert post(c, plain(tally(station, monitor))).status_code == 201


# ---------------------------------------------------------------------------------------
# Receipts
# ---------------------------------------------------------------------------------------


def test_receipts_for_staff_and_for_the_monitor_s_own_device(env: Env) -> None:
    station, monitor = env.station()
    _, other = env.station()
    report = tally(station, monitor)
    with env.client() as c:
        assert post(c, signed(env, report)).status_code == 201
        path = f"/v1/reports/{report.report_id}"
        assert_error(c.get(path), 401, "access.unauthenticated")
        own = c.get(path, headers={"x-sipantau-key-id": env.key(monitor).public_key.key_id})
        assert own.status_code == 200, own.text
        assert own.json()["receipt"]["status"] == "accepted"
        foreign = c.get(path, headers={"x-sipantau-key-id": env.key(other).public_key.key_id})
        assert_error(foreign, 404, "report.not_found")
        stranger = c.get(path, headers={"x-sipantau-key-id": "0" * 32})
        assert_error(stranger, 401, "signature.unknown_key")
        assert_error(c.get(path, headers={"x-sipantau-key-id": "xyz"}), 400, "signature.malformed")
    with env.client("coordinator") as c:
        staff = c.get(path)
        assert staff.status_code == 200
        assert staff.json()["receipt"]["report_id"] == str(report.report_id)
        assert_error(c.get(f"/v1/reports/{uuid.uuid4()}"), 404, "report.not_found")
        body = assert_error(c.get("/v1/reports/not-a-uuid"), 400, "payload.invalid")
        assert body["violations"][0]["path"] == "path.report_id"
    far_station, far_monitor = env.station("B")
    far = tally(far_station, far_monitor)
    with env.client() as c:
        assert post(c, signed(env, far)).status_code == 201
    with env.client("officer") as c:
        assert_error(c.get(f"/v1/reports/{far.report_id}"), 403, "access.out_of_scope")


# ---------------------------------------------------------------------------------------
# Devices
# ---------------------------------------------------------------------------------------


def test_enrol_a_device_key(env: Env) -> None:
    station, monitor = env.station()
    key = DeviceKey.generate()
    payload = {"monitor": monitor, "public_key": key.public_key.to_text()}
    with env.client() as c:
        assert_error(c.post("/v1/devices", json=payload), 401, "access.unauthenticated")
    with env.client("viewer") as c:
        assert_error(c.post("/v1/devices", json=payload), 403, "access.role")
    with env.client("officer") as c:
        response = c.post("/v1/devices", json=payload)
        assert response.status_code == 201, response.text
        assert response.json()["key_id"] == key.public_key.key_id
        assert response.json()["monitor"] == monitor
        _, b_monitor = env.station("B")
        far = {"monitor": b_monitor, "public_key": DeviceKey.generate().public_key.to_text()}
        assert_error(c.post("/v1/devices", json=far), 403, "access.out_of_scope")
        taken = {"monitor": b_monitor, "public_key": key.public_key.to_text()}
        with env.client("coordinator") as coordinator:
            assert_error(coordinator.post("/v1/devices", json=taken), 409, "key.taken")
        unknown = {"monitor": "LLG-9999", "public_key": key.public_key.to_text()}
        assert_error(c.post("/v1/devices", json=unknown), 422, "report.unknown_monitor")
        bad = assert_error(
            c.post("/v1/devices", json={"monitor": monitor, "public_key": "abc"}),
            400,
            "payload.invalid",
        )
        assert bad["violations"][0]["path"] == "$.public_key"
        bad = assert_error(
            c.post("/v1/devices", json={"monitor": 7, "x": 1}), 400, "payload.invalid"
        )
        assert {p["path"] for p in bad["violations"]} == {"$.monitor", "$.public_key", "$.x"}
        assert_error(c.post("/v1/devices", content=b"nope"), 400, "payload.invalid")
    # The enrolled key signs reports now.
    with env.client() as c:
        report = tally(station, monitor)
        assert post(c, sign_report(report, key).to_json()).status_code == 201


# ---------------------------------------------------------------------------------------
# Reads
# ---------------------------------------------------------------------------------------


def test_tally_status_and_incidents(env: Env) -> None:
    station, monitor = env.station()
    with env.client() as c:
        assert post(c, signed(env, tally(station, monitor, (30, 40), 2))).status_code == 201
        report = situation(
            station,
            monitor,
            Incident("intimidasi", 3, "kerumunan di depan TPS"),
            Incident("logistik", 1),
        )
        assert post(c, signed(env, report)).status_code == 201
    with env.client("coordinator") as c:
        one = c.get(f"/v1/tally/{station}")
        assert one.status_code == 200, one.text
        assert one.json() == {
            "region": station,
            "contest": "walikota",
            "votes": {"1": 30, "2": 40},
            "valid": 70,
            "invalid": 2,
            "total": 72,
            "stations_counted": 1,
            "stations_expected": 1,
            "registered_covered": 400,
            "registered_expected": 400,
            "progress": 1.0,
        }
        city = c.get("/v1/tally/16.73", params={"contest": "walikota"}).json()
        assert city["stations_expected"] == 120 and city["stations_counted"] >= 1
        assert c.get("/v1/tally/167301").json()["region"] == "16.73.01"
        status = c.get("/v1/status/16.73.01.1001")
        assert status.status_code == 200
        rows = {s["station"]: s for s in status.json()["stations"]}
        assert len(rows) == 40
        assert rows[station]["tally"] == "accepted"
        stages = {s["stage"]: s for s in rows[station]["stages"]}
        assert stages["pembukaan"]["state"] in ("in", "late")
        assert stages["pembukaan"]["security"] == "waspada"
        found = c.get("/v1/incidents/16.73.01", params={"min_severity": "2"}).json()["incidents"]
        mine = [i for i in found if i["report_id"] == str(report.report_id)]
        assert [(i["category"], i["severity"], i["text"]) for i in mine] == [
            ("intimidasi", 3, "kerumunan di depan TPS")
        ]
        by_category = c.get(f"/v1/incidents/{station}", params={"category": "logistik"})
        assert [i["category"] for i in by_category.json()["incidents"]] == ["logistik"]
        other_stage = c.get(f"/v1/incidents/{station}", params={"stage": "penyerahan"})
        assert other_stage.json()["incidents"] == []
        # Errors of reads
        body = assert_error(c.get("/v1/tally/abc"), 400, "payload.invalid")
        assert body["violations"][0]["path"] == "path.region"
        assert_error(c.get("/v1/tally/17"), 404, "region.unknown")
        assert_error(c.get("/v1/tally/1673011001999"), 404, "report.unknown_station")
        assert_error(c.get("/v1/status/1673011001999"), 404, "report.unknown_station")
        mayor = c.get(f"/v1/status/{station}", params={"contest": "walikota"}).json()
        assert mayor["stations"][0]["tally"] == "accepted"
        assert_error(
            c.get("/v1/status/16.73", params={"contest": "dpr"}), 404, "report.unknown_contest"
        )
        assert_error(
            c.get("/v1/tally/16.73", params={"contest": "dpr"}), 404, "report.unknown_contest"
        )
        body = assert_error(
            c.get("/v1/incidents/16.73", params={"stage": "x"}), 400, "payload.invalid"
        )
        assert body["violations"][0]["path"] == "query.stage"
        assert_error(
            c.get("/v1/incidents/16.73", params={"min_severity": "-1"}), 400, "payload.invalid"
        )
    with env.client() as c:
        assert_error(c.get("/v1/tally/16.73"), 401, "access.unauthenticated")
    with env.client("officer") as c:
        assert c.get("/v1/tally/16.73.01").status_code == 200


def test_unknown_endpoints_and_methods(env: Env) -> None:
    with env.client() as c:
        assert_error(c.get("/v2/reports"), 404, "http.not_found")
        assert_error(c.get("/nowhere"), 404, "http.not_found")
        # "/" is the desk's web page now (docs/web.md): without a session, to sign-in
        assert c.get("/").headers["location"].startswith("/sign-in")
        response = c.delete("/v1/reports")
        assert_error(response, 405, "http.method_not_allowed")
        assert response.headers["allow"] == "POST"
        assert_error(c.put("/v1/tally/16.73"), 405, "http.method_not_allowed")


# ---------------------------------------------------------------------------------------
# Storage down, busy, unexpected errors
# ---------------------------------------------------------------------------------------


def test_storage_down_is_a_503_with_retry_after(env: Env) -> None:
    station, monitor = env.station()
    body = signed(env, tally(station, monitor))
    env.storage.down = True
    try:
        with env.client() as c:
            response = post(c, body)
            error = assert_error(response, 503, "storage.unavailable")
            assert int(response.headers["retry-after"]) >= 1
            assert "database" not in error["message"]
            health = c.get("/v1/health")
            assert_error(health, 503, "storage.unavailable")
            assert "retry-after" in health.headers
        with env.client("coordinator") as c:
            assert_error(c.get("/v1/tally/16.73"), 503, "storage.unavailable")
    finally:
        env.storage.down = False
    with env.client() as c:
        assert post(c, body).status_code == 201  # nothing was stored: accepted now


class SlowDesk:
    """A desk whose bulk call takes ``delay`` seconds."""

    def __init__(self, desk: Desk, delay: float):
        self._desk = desk
        self._delay = delay

    def submit_many(self, *args: Any, **kwargs: Any) -> Any:
        time.sleep(self._delay)
        return self._desk.submit_many(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._desk, name)


def test_a_full_queue_is_a_429_with_retry_after() -> None:
    desk = Desk.open(deployment())
    keys = {}
    for n in (1, 2, 3):
        keys[n] = DeviceKey.generate()
        desk.enrol_device(f"LLG-{n:04d}", keys[n].public_key, principal=SYSTEM)
    bodies = {
        n: sign_report(tally(f"1673011001{n:03d}", f"LLG-{n:04d}"), keys[n]).to_json()
        for n in (1, 2, 3)
    }
    app = create_app(SlowDesk(desk, 1.5), max_queue=1, batch_window_ms=0, retry_after=3)  # type: ignore[arg-type]
    results: dict[int, httpx.Response] = {}
    with running(app) as url, httpx.Client(base_url=url, timeout=30) as c:

        def send(n: int) -> None:
            results[n] = post(httpx.Client(base_url=url, timeout=30), bodies[n])

        first = threading.Thread(target=send, args=(1,))
        first.start()
        time.sleep(0.4)  # the writer took it: it is committing (slowly)
        second = threading.Thread(target=send, args=(2,))
        second.start()
        time.sleep(0.4)  # waits in the queue, which is full now
        third = post(c, bodies[3])
        first.join()
        second.join()
    error = assert_error(third, 429, "server.busy")
    assert third.headers["retry-after"] == "3"
    assert "traceback" not in json.dumps(error).lower()
    assert (results[1].status_code, results[2].status_code) == (201, 201)
    desk.close()


class BoomDesk:
    """A desk whose reads fail with an unexpected exception carrying figures."""

    def __init__(self, desk: Desk):
        self._desk = desk

    def tally(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret: LLG-0001 counted 123 votes for Paslon 1")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._desk, name)


def test_an_unexpected_exception_is_a_generic_500(caplog: pytest.LogCaptureFixture) -> None:
    desk = Desk.open(deployment())
    token = desk.issue_token(
        Principal(id="koordinator", role=Role.COORDINATOR, scope="16.73"), principal=SYSTEM
    )
    key = DeviceKey.generate()
    desk.enrol_device("LLG-0001", key.public_key, principal=SYSTEM)

    def broken_batch(items: Any) -> Any:
        raise ZeroDivisionError("secret: 400 voters at 1673011001001")

    caplog.set_level(logging.ERROR, logger="sipantau_adapters.http")
    reads = create_app(BoomDesk(desk))  # type: ignore[arg-type]
    writes = create_app(desk, batch=broken_batch)
    with running(reads) as url, httpx.Client(base_url=url, timeout=30) as c:
        response = c.get("/v1/tally/16.73", headers={"authorization": f"Bearer {token}"})
    body = assert_error(response, 500, "server.error")
    assert body == {
        "code": "server.error",
        "message": "internal error",
        "message_id": "kesalahan internal server",
        "violations": [],
    }
    report = sign_report(tally("1673011001001", "LLG-0001"), key)
    with running(writes) as url, httpx.Client(base_url=url, timeout=30) as c:
        failed = post(c, report.to_json())
    assert failed.json() == body and failed.status_code == 500
    for text in (response.text, failed.text):
        assert "Traceback" not in text and "secret" not in text and "File " not in text
    logged = [r for r in caplog.records if r.name == "sipantau_adapters.http"]
    assert {r.getMessage().split(" in ")[0] for r in logged} >= {
        "unexpected RuntimeError",
        "unexpected ZeroDivisionError",
    }
    assert all("secret" not in r.getMessage() and r.exc_info is None for r in logged)
    desk.close()


# ---------------------------------------------------------------------------------------
# Group commit
# ---------------------------------------------------------------------------------------


def test_concurrent_submissions_are_group_committed(env: Env) -> None:
    """50 submissions at once: 30 plain tallies under one system token and 20 signed by
    their monitors; fewer transactions than submissions, each request its own receipt,
    a resend is a duplicate, and the village's tally is exact."""
    stations = [env.station("C") for _ in range(50)]
    reports = [
        tally(code, monitor, (10 + i, 20 + 2 * i), i % 3)
        for i, (code, monitor) in enumerate(stations)
    ]
    bodies: list[tuple[bytes, dict[str, str]]] = []
    for i, report in enumerate(reports):
        if i < 30:
            bodies.append((plain(report), {"authorization": f"Bearer {env.tokens['system']}"}))
        else:
            bodies.append((signed(env, report), {}))
    # A server of its own on the same desk, with a window wide enough that a slow
    # machine still gets the burst into few batches.
    app = create_app(env.desk, batch_window_ms=50)

    async def burst(url: str) -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
        async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as c:
            return await asyncio.gather(
                *(
                    c.post(
                        "/v1/reports",
                        content=body,
                        headers={"content-type": "application/json", **headers},
                    )
                    for body, headers in bodies
                )
            )

    before = env.storage.write_transactions
    with running(app) as url:
        responses = asyncio.run(burst(url))
    transactions = env.storage.write_transactions - before
    assert [r.status_code for r in responses] == [201] * 50, [
        r.text for r in responses if r.status_code != 201
    ]
    for report, response in zip(reports, responses, strict=True):
        receipt = response.json()["receipt"]
        assert receipt["report_id"] == str(report.report_id)
        assert receipt["station"] == report.station.compact
        assert receipt["status"] == "accepted"
    assert transactions < len(reports), transactions
    assert app.state.committer.stats.batches < len(reports)
    with env.client() as c:
        resend = post(c, bodies[40][0])
    assert resend.status_code == 200
    assert resend.json()["receipt"]["status"] == "duplicate"
    with env.client("coordinator") as c:
        village = c.get("/v1/tally/16.73.03.1003").json()
    assert village["stations_counted"] == 50
    assert village["total"] == sum(r.total for r in reports)
    assert village["votes"] == {
        "1": sum(r.votes[1] for r in reports),
        "2": sum(r.votes[2] for r in reports),
    }


def test_signed_reports_of_one_monitor_share_a_transaction(env: Env) -> None:
    station, monitor = env.station()
    reports = [situation(station, monitor) for _ in range(20)]
    bodies = [signed(env, r) for r in reports]
    before = env.storage.write_transactions

    async def burst(url: str) -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=url, timeout=60) as c:
            return await asyncio.gather(*(post_async(c, body) for body in bodies))

    with running(create_app(env.desk, batch_window_ms=50)) as url:
        responses = asyncio.run(burst(url))
    assert [r.status_code for r in responses] == [201] * 20
    assert [r.json()["receipt"]["report_id"] for r in responses] == [
        str(r.report_id) for r in reports
    ]
    assert env.storage.write_transactions - before < 20


async def post_async(c: httpx.AsyncClient, body: bytes) -> httpx.Response:
    return await c.post("/v1/reports", content=body, headers={"content-type": "application/json"})


def test_closing_drains_the_queue() -> None:
    """Submissions queued when the server stops are committed and answered."""
    desk = Desk.open(deployment())
    key = DeviceKey.generate()
    desk.enrol_device("LLG-0001", key.public_key, principal=SYSTEM)
    app = create_app(SlowDesk(desk, 0.3), batch_window_ms=50)  # type: ignore[arg-type]
    reports = [situation("1673011001001", "LLG-0001") for _ in range(5)]
    out: list[httpx.Response] = []
    with running(app) as url:

        def send(body: bytes) -> None:
            with httpx.Client(base_url=url, timeout=30) as c:
                out.append(post(c, body))

        threads = [
            threading.Thread(target=send, args=(sign_report(r, key).to_json(),)) for r in reports
        ]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 20
        while app.state.committer.pending < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert app.state.committer.pending == 5
    for t in threads:
        t.join()
    assert sorted(r.status_code for r in out) == [201] * 5
    with contextlib.closing(desk):
        found = desk.reports("1673011001001", principal=SYSTEM, kind="situation")
        assert len(found) == 5
