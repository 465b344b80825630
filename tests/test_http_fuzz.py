"""Fuzzing the HTTP API v1 with hypothesis, against a real server on loopback: random
JSON, mutated valid payloads, random bytes, wrong content types, odd paths, tokens and
query strings. Every answer has a documented status with a documented error body; never
a 500, never a traceback."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sipantau_adapters.http.openapi import ERROR_STATUSES
from sipantau_adapters.http.server import create_app, running
from sipantau_adapters.storage.sql import SQLStorage
from sipantau_core.access import Principal, Role
from sipantau_core.deployment import Deployment
from sipantau_core.desk import Desk
from sipantau_core.domain import (
    Candidate,
    Contest,
    Incident,
    PollingStation,
    SecurityStatus,
    SituationReport,
    Stage,
    TallyReport,
    VoterCounts,
)
from sipantau_core.signing import DeviceKey, sign_report
from sipantau_core.testing.contracts import build_deployment
from sipantau_core.wire import dump_report

SYSTEM = Principal(id="system", role=Role.SYSTEM)
STATIONS = [f"1673011001{n:03d}" for n in range(1, 31)]
SUCCESS = {200, 201}
FUZZ = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def deployment() -> Deployment:
    stations = [PollingStation(code=code, registered_voters=400) for code in STATIONS]
    contest = Contest(
        id="walikota", region="16.73", candidates=[Candidate(1, "A"), Candidate(2, "B")]
    )
    return build_deployment(stations, contest=contest, id="fuzz", name="Desk fuzz")


class Server:
    def __init__(self, url: str, token: str, keys: dict[str, DeviceKey]):
        self.url = url
        self.token = token
        self.keys = keys
        self.client = httpx.Client(base_url=url, timeout=30)


@pytest.fixture(scope="module", params=["memory", "sqlite"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    storage: Any = (
        "memory://"
        if request.param == "memory"
        else SQLStorage(f"sqlite:///{tmp_path_factory.mktemp('fuzz')}/desk.db")
    )
    desk = Desk.open(deployment(), storage=storage)
    token = desk.issue_token(SYSTEM, principal=SYSTEM)
    keys = {}
    for monitor in desk.deployment.monitors.values():
        keys[monitor.id] = DeviceKey.generate()
        desk.enrol_device(monitor.id, keys[monitor.id].public_key, principal=SYSTEM)
    with running(create_app(desk)) as url:
        srv = Server(url, token, keys)
        yield srv
        srv.client.close()
    desk.close()


def check(response: httpx.Response) -> None:
    """A documented status, a JSON body; an error body with a documented code."""
    status = response.status_code
    assert status != 500, response.text
    assert status in SUCCESS | set(ERROR_STATUSES), (status, response.text)
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert isinstance(body, dict)
    text = response.text
    assert "Traceback" not in text and 'File "' not in text
    if status in SUCCESS:
        return
    assert set(body) >= {"code", "message", "message_id", "violations"}, body
    assert body["code"] in ERROR_STATUSES[status], (status, body["code"])
    assert isinstance(body["message"], str) and isinstance(body["message_id"], str)
    assert isinstance(body["violations"], list)
    if status == 400 and body["code"] == "payload.invalid":
        assert body["violations"], body
        for p in body["violations"]:
            assert set(p) == {"path", "code", "message"}
    if status in (429, 503):
        assert int(response.headers["retry-after"]) >= 1
    if body["code"] == "report.flagged":
        assert body["receipt"]["status"] == "flagged"


# ---------------------------------------------------------------------------------------
# Strategies
# ---------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=15,
)
# Header values as a client can send them: printable ASCII, no surrounding white space.
header_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40).map(
    str.strip
)
content_types = st.sampled_from(
    [
        None,
        "application/json",
        "application/json; charset=utf-8",
        "application/json; charset=utf-16",
        "application/problem+json",
        "text/plain",
        "text/json",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=xyz",
        "",
        ";",
    ]
) | header_text.map(lambda t: t or None)


@st.composite
def valid_reports(draw: st.DrawFn) -> TallyReport | SituationReport:
    n = draw(st.integers(1, len(STATIONS)))
    station, monitor = STATIONS[n - 1], f"LLG-{n:04d}"
    if draw(st.booleans()):
        a, b, invalid = (draw(st.integers(0, 150)) for _ in range(3))
        total = a + b + invalid + draw(st.sampled_from([0, 0, 0, 1]))
        return TallyReport(
            report_id=uuid.uuid4(),
            monitor=monitor,
            station=station,
            contest="walikota",
            observed_at=datetime.now(UTC),
            votes={1: a, 2: b},
            valid=a + b,
            invalid=invalid,
            total=total,
            voted=VoterCounts(total, 0, 0),
        )
    incidents = draw(
        st.lists(
            st.builds(
                Incident,
                category=st.sampled_from(["intimidasi", "logistik", "politik_uang"]),
                severity=st.integers(1, 4),
                text=st.text(max_size=30),
            ),
            max_size=3,
        )
    )
    return SituationReport(
        report_id=uuid.uuid4(),
        monitor=monitor,
        station=station,
        observed_at=datetime.now(UTC),
        stage=draw(st.sampled_from(list(Stage))),
        status=draw(st.sampled_from(list(SecurityStatus))),
        incidents=incidents,
    )


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out.extend(_paths(v, (*prefix, k)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.extend(_paths(v, (*prefix, i)))
    return out


@st.composite
def mutated(draw: st.DrawFn, data: Any) -> Any:
    """``data`` with a few random changes: a value replaced, a key removed or added."""
    data = json.loads(json.dumps(data))
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(data)
        path = draw(st.sampled_from(paths))
        if not path:
            if draw(st.booleans()):
                return draw(json_values)
            continue
        parent = data
        for step in path[:-1]:
            parent = parent[step]
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        last = path[-1]
        if action == "replace":
            parent[last] = draw(json_values)
        elif action == "delete":
            del parent[last]
        elif isinstance(parent, dict):
            parent[draw(st.text(max_size=8))] = draw(json_values)
        else:
            parent.append(draw(json_values))
    return data


def _signed(server: Server, report: TallyReport | SituationReport) -> dict[str, Any]:
    return sign_report(report, server.keys[report.monitor]).to_wire()


# ---------------------------------------------------------------------------------------
# Submissions
# ---------------------------------------------------------------------------------------


def _post(
    server: Server, path: str, body: bytes, content_type: str | None, token: str | None
) -> httpx.Response:
    headers = {}
    if content_type is not None:
        headers["content-type"] = content_type
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    return server.client.post(path, content=body, headers=headers)


@FUZZ
@given(data=st.data(), value=json_values)
def test_random_json(server: Server, data: st.DataObject, value: Any) -> None:
    token = data.draw(st.sampled_from([None, server.token, "nope"]))
    path = data.draw(st.sampled_from(["/v1/reports", "/v1/devices"]))
    check(_post(server, path, json.dumps(value).encode(), "application/json", token))


@FUZZ
@given(data=st.data(), report=valid_reports())
def test_mutated_signed_envelopes(server: Server, data: st.DataObject, report: Any) -> None:
    envelope = data.draw(mutated(_signed(server, report)))
    check(_post(server, "/v1/reports", json.dumps(envelope).encode(), "application/json", None))


@FUZZ
@given(data=st.data(), report=valid_reports())
def test_mutated_plain_reports(server: Server, data: st.DataObject, report: Any) -> None:
    wire = data.draw(mutated(dump_report(report)))
    token = data.draw(st.sampled_from([server.token, server.token, None, "nope"]))
    check(_post(server, "/v1/reports", json.dumps(wire).encode(), "application/json", token))


@FUZZ
@given(
    data=st.data(),
    body=st.binary(max_size=3000),
    content_type=content_types,
)
def test_random_bytes_and_content_types(
    server: Server, data: st.DataObject, body: bytes, content_type: str | None
) -> None:
    token = data.draw(st.sampled_from([None, server.token]))
    path = data.draw(st.sampled_from(["/v1/reports", "/v1/devices"]))
    check(_post(server, path, body, content_type, token))


@FUZZ
@given(data=st.data(), report=valid_reports(), content_type=content_types)
def test_valid_payloads_with_any_content_type(
    server: Server, data: st.DataObject, report: Any, content_type: str | None
) -> None:
    body = json.dumps(_signed(server, report)).encode()
    if data.draw(st.booleans()):
        body = body[: data.draw(st.integers(0, len(body)))]
    check(_post(server, "/v1/reports", body, content_type, None))


@FUZZ
@given(
    monitor=json_values | st.sampled_from([f"LLG-{n:04d}" for n in (1, 2, 99)]),
    public_key=json_values | st.text(max_size=50),
    token=st.sampled_from([None, "nope", "system"]),
)
def test_device_enrolment(server: Server, monitor: Any, public_key: Any, token: str | None) -> None:
    body = json.dumps({"monitor": monitor, "public_key": public_key}).encode()
    real = server.token if token == "system" else token
    check(_post(server, "/v1/devices", body, "application/json", real))


# ---------------------------------------------------------------------------------------
# Reads
# ---------------------------------------------------------------------------------------

segments = st.text(max_size=30) | st.sampled_from(
    ["16.73", "16.73.01", "1673011001001", "167301", "16", "17", "16.73.01.1001 TPS 001"]
)


@FUZZ
@given(
    kind=st.sampled_from(["tally", "status", "incidents", "reports"]),
    segment=segments | st.uuids().map(str),
    query=st.dictionaries(
        st.sampled_from(["contest", "stage", "category", "min_severity", "x"]),
        st.text(max_size=12),
        max_size=4,
    ),
    auth=st.sampled_from(["token", "none", "bad", "key"]) | header_text,
)
def test_reads(server: Server, kind: str, segment: str, query: dict[str, str], auth: str) -> None:
    headers = {}
    if auth == "token":
        headers["authorization"] = f"Bearer {server.token}"
    elif auth == "bad":
        headers["authorization"] = "Bearer nope"
    elif auth == "key":
        headers["x-sipantau-key-id"] = server.keys["LLG-0001"].public_key.key_id
    elif auth not in ("none", ""):
        headers["authorization"] = auth
    path = f"/v1/{kind}/{quote(segment, safe='')}"
    check(server.client.get(path, params=query, headers=headers))
