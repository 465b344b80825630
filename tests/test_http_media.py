"""``PUT`` and ``GET /v1/media/{sha256}`` on a real server on loopback: a monitor's device
uploads the photo its signed tally names (signed by the device key), desk staff read it
back under the access policy, and every refusal is answered with its documented status and
code (issue #12)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import attrs
import httpx
import pytest

from media_helpers import GIF, JPEG, png, sha
from sipantau_adapters.http.media import KEY_ID_HEADER, SIGNATURE_HEADER
from sipantau_adapters.http.openapi import ERROR_STATUSES
from sipantau_adapters.http.server import create_app, running
from sipantau_adapters.storage.sql import SQLStorage
from sipantau_core.access import Principal, Role
from sipantau_core.deployment import Deployment
from sipantau_core.desk import Desk
from sipantau_core.domain import PollingStation, TallyReport
from sipantau_core.signing import DeviceKey, sign_media, sign_report
from sipantau_core.testing.contracts import build_deployment

SYSTEM = Principal(id="system", role=Role.SYSTEM)
#: The desk's size limit in these tests (the default is 8 MiB).
LIMIT = 64 * 1024
TPS = [f"1673011001{n:03d}" for n in range(1, 13)] + ["1673021002001"]  # the last: 16.73.02


def deployment() -> Deployment:
    stations = [PollingStation(code=code, registered_voters=400) for code in TPS]
    base = build_deployment(stations, id="foto", name="Desk foto")
    return attrs.evolve(base, settings={"max_media_bytes": LIMIT})


@attrs.define
class Env:
    url: str
    desk: Desk
    tokens: dict[str, str]
    keys: dict[str, DeviceKey] = attrs.field(factory=dict)
    next_tps: int = 0

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {} if token is None else {"authorization": f"Bearer {self.tokens[token]}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def monitor(self, station: str | None = None) -> tuple[str, str, DeviceKey]:
        """A TPS (of 16.73.01 unless named) no test used, its monitor, its enrolled key."""
        if station is None:
            station = TPS[self.next_tps]
            self.next_tps += 1
        monitor = next(
            m.id for m in self.desk.deployment.monitors.values() if m.station.compact == station
        )
        if monitor not in self.keys:
            self.keys[monitor] = DeviceKey.generate()
            self.desk.enrol_device(monitor, self.keys[monitor].public_key, principal=SYSTEM)
        return station, monitor, self.keys[monitor]


@pytest.fixture(scope="module", params=["memory", "sqlite"])
def env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    storage: Any = "memory://"
    if request.param == "sqlite":
        storage = SQLStorage(f"sqlite:///{tmp_path_factory.mktemp('foto')}/desk.db")
    desk = Desk.open(deployment(), storage=storage)
    holders = {
        "officer": Principal(id="petugas-01", role=Role.OFFICER, scope="16.73.01"),
        "other_officer": Principal(id="petugas-02", role=Role.OFFICER, scope="16.73.02"),
        "viewer": Principal(id="kantor-walikota", role=Role.VIEWER, scope="16.73"),
    }
    tokens = {name: desk.issue_token(p, principal=SYSTEM) for name, p in holders.items()}
    with running(create_app(desk)) as url:
        yield Env(url, desk, tokens)
    desk.close()


def tally(station: str, monitor: str, photo: bytes | None) -> TallyReport:
    return TallyReport(
        report_id=uuid.uuid4(),
        monitor=monitor,
        station=station,
        contest="walikota",
        observed_at=datetime.now(UTC),
        votes={1: 100, 2: 200},
        valid=300,
        invalid=5,
        total=305,
        sheet_sha256=sha(photo) if photo is not None else None,
    )


def send_tally(env: Env, station: str, monitor: str, key: DeviceKey, photo: bytes) -> None:
    body = sign_report(tally(station, monitor, photo), key).to_json()
    with env.client() as c:
        answer = c.post("/v1/reports", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 201, answer.text


def signed_headers(key: DeviceKey, sha256: str, content_type: str = "image/png") -> dict[str, str]:
    signature = sign_media(sha256, key).to_wire()
    return {
        KEY_ID_HEADER: signature["key_id"],
        SIGNATURE_HEADER: signature["value"],
        "content-type": content_type,
    }


def put(
    client: httpx.Client, sha256: str, data: Any, headers: dict[str, str], **params: str
) -> httpx.Response:
    return client.put(f"/v1/media/{sha256}", content=data, headers=headers, params=params)


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text)
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    assert code in ERROR_STATUSES[status], f"{code} is not documented under {status}"
    assert body["message"] and body["message_id"] and isinstance(body["violations"], list)
    return body


# ---------------------------------------------------------------------------------------


def test_a_device_uploads_the_photo_of_its_sheet_once(env: Env) -> None:
    station, monitor, key = env.monitor()
    photo = png(seed=1)
    send_tally(env, station, monitor, key, photo)
    with env.client() as c:
        first = put(c, sha(photo), photo, signed_headers(key, sha(photo)))
        assert first.status_code == 201, first.text
        media = first.json()["media"]
        assert media == {
            "sha256": sha(photo),
            "status": "stored",
            "content_type": "image/png",
            "size": len(photo),
            "station": station,
            "uploaded_at": media["uploaded_at"],
        }
        again = put(c, sha(photo), photo, signed_headers(key, sha(photo)))
        assert again.status_code == 200
        assert again.json()["media"]["status"] == "duplicate"
        assert again.json()["media"]["uploaded_at"] == media["uploaded_at"]
    entries = [e for e in env.desk.audit.entries() if e.object == f"media:{sha(photo)}"]
    assert [(e.principal, e.action, e.outcome) for e in entries] == [
        (monitor, "upload_media", "stored"),
        (monitor, "upload_media", "duplicate"),
    ]


def test_desk_staff_read_it_back_under_the_access_policy(env: Env) -> None:
    station, monitor, key = env.monitor()
    photo = png(seed=2)
    send_tally(env, station, monitor, key, photo)
    with env.client() as c:
        assert put(c, sha(photo), photo, signed_headers(key, sha(photo))).status_code == 201
        assert_error(c.get(f"/v1/media/{sha(photo)}", params={"station": station}), 401,
                     "access.unauthenticated")  # fmt: skip
    with env.client("officer") as c:
        answer = c.get(f"/v1/media/{sha(photo)}", params={"station": station})
        assert answer.status_code == 200
        assert answer.content == photo
        assert answer.headers["content-type"] == "image/png"
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["cache-control"] == "no-store"
        body = assert_error(c.get(f"/v1/media/{sha(photo)}"), 400, "payload.invalid")
        assert body["violations"][0]["path"] == "query.station"
        other = png(seed=99)
        assert_error(
            c.get(f"/v1/media/{sha(other)}", params={"station": station}), 404, "media.not_found"
        )
        assert_error(c.get("/v1/media/ABC", params={"station": station}), 400, "media.invalid_hash")
    with env.client("other_officer") as c:
        response = c.get(f"/v1/media/{sha(photo)}", params={"station": station})
        assert_error(response, 403, "access.out_of_scope")
    with env.client("viewer") as c:
        response = c.get(f"/v1/media/{sha(photo)}", params={"station": station})
        assert_error(response, 403, "access.role")
        assert photo not in response.content


def test_staff_upload_with_a_token_naming_the_tps(env: Env) -> None:
    station, monitor, key = env.monitor()
    photo = JPEG
    send_tally(env, station, monitor, key, photo)
    with env.client("officer") as c:
        plain = {"content-type": "application/octet-stream"}
        assert_error(put(c, sha(photo), photo, plain), 422, "report.unknown_station")
        answer = put(c, sha(photo), photo, plain, station=station)
        assert answer.status_code == 201, answer.text
        assert answer.json()["media"]["content_type"] == "image/jpeg"
    with env.client("other_officer") as c:
        plain = {"content-type": "image/jpeg"}
        assert_error(put(c, sha(photo), photo, plain, station=station), 403, "access.out_of_scope")


def test_every_refusal_of_an_upload_has_its_status_and_code(env: Env) -> None:
    station, monitor, key = env.monitor()
    photo = png(seed=3)
    send_tally(env, station, monitor, key, photo)
    h = sha(photo)
    stranger = DeviceKey.generate()
    with env.client() as c:
        assert_error(put(c, h, photo, {"content-type": "image/png"}), 401, "access.unauthenticated")
        wrong = signed_headers(key, sha(b"another photo"))
        assert_error(put(c, h, photo, wrong), 401, "signature.invalid")
        assert_error(put(c, h, photo, signed_headers(stranger, h)), 401, "signature.unknown_key")
        bad = {**signed_headers(key, h), SIGNATURE_HEADER: "not base64!"}
        assert_error(put(c, h, photo, bad), 400, "signature.malformed")
        assert_error(put(c, h.upper(), photo, signed_headers(key, h)), 400, "media.invalid_hash")
        assert_error(put(c, h, photo[:-3], signed_headers(key, h)), 422, "media.digest_mismatch")
        assert_error(
            put(c, sha(GIF), GIF, signed_headers(key, sha(GIF), "image/gif")),
            415,
            "media.unsupported_type",
        )
        declared = signed_headers(key, h, "image/jpeg")
        assert_error(put(c, h, photo, declared), 415, "media.unsupported_type")
        unnamed = png(seed=4)
        assert_error(
            put(c, sha(unnamed), unnamed, signed_headers(key, sha(unnamed))),
            409,
            "media.not_referenced",
        )
        big = png(200, 200, seed=5) + bytes(LIMIT)
        # by Content-Length, before the body is read; and while reading a chunked body
        assert_error(put(c, sha(big), big, signed_headers(key, sha(big))), 413, "media.too_large")
        chunks = (big[i : i + 8192] for i in range(0, len(big), 8192))
        assert_error(
            put(c, sha(big), chunks, signed_headers(key, sha(big))), 413, "media.too_large"
        )
    with env.desk.storage.transaction() as tx:
        assert tx.media([h, sha(unnamed), sha(big), sha(GIF)]) == {}


def test_a_revoked_key_uploads_nothing(env: Env) -> None:
    station, monitor, key = env.monitor()
    photo = png(seed=6)
    send_tally(env, station, monitor, key, photo)
    env.desk.revoke_device(key.public_key.key_id, principal=SYSTEM)
    try:
        with env.client() as c:
            answer = put(c, sha(photo), photo, signed_headers(key, sha(photo)))
        assert_error(answer, 401, "signature.revoked_key")
    finally:
        env.keys.pop(monitor)


def test_the_openapi_document_describes_the_upload(env: Env) -> None:
    with env.client() as c:
        document = c.get("/openapi.json").json()
    operations = document["paths"]["/v1/media/{sha256}"]
    assert set(operations) == {"put", "get"}
    put_op = operations["put"]
    assert {"deviceKey": [], "deviceSignature": []} in put_op["security"]
    assert set(put_op["responses"]) >= {"200", "201", "401", "409", "413", "415", "422"}
    assert "image/png" in put_op["requestBody"]["content"]
    assert json.dumps(document).count("media.not_referenced") >= 1


def test_a_monitor_cannot_upload_for_another_monitors_report(env: Env) -> None:
    _, _, key = env.monitor()
    other_station, other_monitor, other_key = env.monitor(TPS[-1])
    photo = png(seed=7)
    send_tally(env, other_station, other_monitor, other_key, photo)
    with env.client() as c:
        # signed by the first monitor's key: its own TPS has no report naming the photo
        answer = put(c, sha(photo), photo, signed_headers(key, sha(photo)))
        assert_error(answer, 409, "media.not_referenced")
        answer = put(c, sha(photo), photo, signed_headers(key, sha(photo)), station=other_station)
        assert_error(answer, 403, "access.out_of_scope")
