"""Clients of the desk's HTTP API v1: the monitor's offline-first client and a staff client.

:class:`MonitorClient` signs each report with the device key and commits it to a local
outbox (SQLite, WAL, ``synchronous=FULL``) before any network I/O; then it delivers,
retrying connection errors, timeouts, 5xx and 429 with exponential backoff and jitter.
Report ids make a resend idempotent (the desk answers ``duplicate``), so a report reaches
the desk once whatever the network or the process does. :class:`AsyncMonitorClient` is
the same on ``httpx.AsyncClient``. The photos a report names (its tally sheet's, its
incidents') are queued in the outbox with it and uploaded once the desk holds the report
(:mod:`._media`). :class:`StaffClient` reads tallies, station status, incidents and
photos and enrols device keys with a bearer token.

See ``docs/client.md``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import threading
import time
from collections.abc import Awaitable, Callable, Generator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self, TypeVar
from uuid import UUID

import httpx

from sipantau_core.desk import IncidentView, StageState, StationStatus, Tally
from sipantau_core.domain import Report, SecurityStatus, Stage
from sipantau_core.errors import SipantauError
from sipantau_core.media import media_references
from sipantau_core.signing import DeviceKey, PublicKey, sign_media, sign_report
from sipantau_core.wire import MAX_PAYLOAD_BYTES, canonical_bytes, parse_report

from ._media import (
    MediaDelivery,
    MediaEntry,
    MediaQueue,
    Step,
    Upload,
    classify_upload,
    deliver_flow,
    flush_flow,
    media_flow,
)
from ._outbox import (
    Delivery,
    Engine,
    EntryState,
    FlushResult,
    Outbox,
    OutboxEntry,
    OutboxError,
    Outcome,
    RetryPolicy,
    Send,
    ServerMessage,
    classify_response,
    server_message,
    transport_failure,
)

__all__ = [
    "ApiError",
    "AsyncMonitorClient",
    "Delivery",
    "DeskUnreachable",
    "FlushResult",
    "MediaDelivery",
    "MediaEntry",
    "MonitorClient",
    "OutboxEntry",
    "OutboxError",
    "RetryPolicy",
    "ServerMessage",
    "StaffClient",
]

#: Per phase (connect, read, write, pool): a TPS on 2G needs patience, not forever.
DEFAULT_TIMEOUT: Final = httpx.Timeout(15.0, connect=10.0)
REPORTS_PATH: Final = "/v1/reports"
MEDIA_PATH: Final = "/v1/media/"
_JSON: Final = {"content-type": "application/json", "accept": "application/json"}

T = TypeVar("T")


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _timeout(value: float | httpx.Timeout) -> httpx.Timeout:
    return value if isinstance(value, httpx.Timeout) else httpx.Timeout(value)


class _MonitorBase:
    """What the sync and async monitor clients share: the key, the outbox, the policy."""

    def __init__(
        self,
        *,
        key: DeviceKey,
        outbox: str | Path,
        monitor_id: str,
        retry: RetryPolicy | None,
        clock: Callable[[], datetime] | None,
        rng: random.Random | None,
    ):
        self.key = key
        self.monitor_id = monitor_id
        self.retry = retry or RetryPolicy()
        self._clock = clock or _utcnow
        self.outbox = Outbox(outbox, clock=self._clock)
        #: the photos, in the outbox file's table of their own
        self.media_queue = MediaQueue(self.outbox)
        self._engine = Engine(self.outbox, self.retry, self._clock, rng or random.Random())

    def _store(self, report: Report, media: Sequence[bytes] = ()) -> OutboxEntry:
        """Sign ``report`` and commit it to the outbox (before any network I/O), after
        the photos ``media`` it names (so that the report is never queued without
        them)."""
        if report.monitor != self.monitor_id:
            raise OutboxError(
                f"the report names monitor {report.monitor!r}, this client is {self.monitor_id!r}",
                code="outbox.wrong_monitor",
                message_id=(
                    f"laporan atas nama {report.monitor}, perangkat ini milik {self.monitor_id}"
                ),
            )
        payload = sign_report(report, self.key).to_json()
        if len(payload) > MAX_PAYLOAD_BYTES:
            raise OutboxError(
                f"the signed report has {len(payload)} bytes, the desk takes at most "
                f"{MAX_PAYLOAD_BYTES}",
                code="payload.too_large",
                message_id="laporan terlalu besar untuk dikirim; persingkat teksnya",
            )
        digest = hashlib.sha256(canonical_bytes(report)).hexdigest()
        if media:
            named = set(media_references(report))
            for data in media:
                if hashlib.sha256(data).hexdigest() not in named:
                    raise OutboxError(
                        "a photo given with the report is not the one it names (its "
                        "SHA-256 is not the tally's sheet_sha256 nor an incident's "
                        "media_sha256)",
                        code="outbox.media_unreferenced",
                        message_id="foto yang dilampirkan tidak disebut dalam laporan",
                    )
            queued = self.outbox.get(report.report_id)
            if queued is None or queued.digest == digest:  # else: outbox.conflict below
                self.media_queue.add(media, report_id=report.report_id)
        return self.outbox.add(
            report_id=report.report_id,
            monitor=report.monitor,
            kind=report.kind,
            digest=digest,
            payload=payload,
        )

    def _upload_request(self, entry: MediaEntry) -> tuple[str, dict[str, str]]:
        """The path and the signed headers of a photo's upload."""
        signature = sign_media(entry.sha256, self.key).to_wire()
        headers = {
            "content-type": entry.content_type,
            "accept": "application/json",
            "x-sipantau-key-id": signature["key_id"],
            "x-sipantau-signature": signature["value"],
        }
        return MEDIA_PATH + entry.sha256, headers

    def _queue_photo(self, data: bytes) -> MediaEntry:
        [entry] = self.media_queue.add([data], report_id=None)
        return entry

    def media_status(self, sha256: str) -> MediaDelivery:
        """A photo's state in the outbox (no network)."""
        entry = self.media_queue.get(sha256)
        if entry is None:
            raise OutboxError(f"no photo {sha256} in the outbox", code="outbox.not_found")
        return entry.delivery()

    def media_entries(self, state: EntryState | None = None) -> list[MediaEntry]:
        """The photos in the outbox, oldest first; ``state``: ``pending``, ``delivered``
        or ``refused``."""
        return self.media_queue.entries(state)

    def _key_header(self) -> dict[str, str]:
        return {"x-sipantau-key-id": self.key.public_key.key_id, "accept": "application/json"}

    def status(self, report_id: UUID) -> Delivery:
        """A report's state in the outbox (no network)."""
        entry = self.outbox.get(report_id)
        if entry is None:
            raise OutboxError(f"no report {report_id} in the outbox", code="outbox.not_found")
        return entry.delivery()

    def entries(self, state: EntryState | None = None) -> list[OutboxEntry]:
        """The outbox, oldest first; ``state``: ``pending``, ``delivered`` or ``refused``."""
        return self.outbox.entries(state)

    def requeue(self, report_id: UUID, *, resign: bool = False) -> Delivery:
        """Send a refused report again on the next delivery (after the cause was fixed,
        e.g. the device key has been enrolled); ``resign``: sign it anew with this
        client's key (after a key rotation)."""
        payload = None
        if resign:
            entry = self.outbox.get(report_id)
            if entry is None:
                raise OutboxError(f"no report {report_id} in the outbox", code="outbox.not_found")
            report = parse_report(_report_part(entry.payload))
            payload = sign_report(report, self.key).to_json()
        return self.outbox.requeue(report_id, payload=payload).delivery()


def _unreachable(exc: httpx.RequestError) -> DeskUnreachable:
    return DeskUnreachable(
        f"no answer from the desk ({type(exc).__name__})",
        message_id="desk tidak dapat dihubungi",
    )


def _answer(response: httpx.Response) -> Any:
    """The JSON of a successful answer; :class:`ApiError` for an error answer."""
    try:
        data = response.json()
    except ValueError:
        data = None
    if response.is_success:
        return data
    raise ApiError(server_message(response.status_code, data if isinstance(data, dict) else None))


def _receipt_of(response: httpx.Response) -> Mapping[str, Any]:
    data = _answer(response)
    found = data.get("receipt") if isinstance(data, Mapping) else None
    if not isinstance(found, Mapping):
        raise ApiError(server_message(response.status_code, None))
    return found


def _report_part(payload: bytes) -> Mapping[str, Any]:
    data = json.loads(payload)
    report: Mapping[str, Any] = data["report"]
    return report


class MonitorClient(_MonitorBase):
    """A monitor's device talking to the desk: offline first.

    ``submit`` signs the report with ``key``, commits it to the ``outbox`` file, then
    delivers it (and anything older still pending) and answers a :class:`Delivery`:
    ``delivered`` with the desk's receipt, ``queued`` when the desk could not be reached
    (sent later by :meth:`deliver_pending` / :meth:`flush`, also by another process on the
    same outbox file), or ``refused`` with the server's message. ``timeout`` is per phase
    (connect, read, write); ``transport``, ``clock``, ``sleep`` and ``rng`` are for tests.
    """

    def __init__(
        self,
        base_url: str,
        *,
        key: DeviceKey,
        outbox: str | Path,
        monitor_id: str,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], datetime] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ):
        super().__init__(
            key=key, outbox=outbox, monitor_id=monitor_id, retry=retry, clock=clock, rng=rng
        )
        self._sleep = sleep
        self._lock = threading.Lock()
        self._http = httpx.Client(base_url=base_url, timeout=_timeout(timeout), transport=transport)

    def close(self) -> None:
        self._http.close()
        self.outbox.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        self.close()

    def submit(self, report: Report, *, media: Sequence[bytes] = ()) -> Delivery:
        """Sign, store durably, deliver; then upload the photos ``media`` the report
        names (queued with it, sent once the desk holds the report: their state is in
        :meth:`media_entries`). Raises only :class:`OutboxError` (the report could not
        be stored); every network or server problem is in the :class:`Delivery`."""
        entry = self._store(report, media)
        delivery = entry.delivery()
        if entry.state == "pending":
            delivery = self._run(self._engine.submit_flow(entry.report_id))
        if delivery.delivered:
            self._run(media_flow(self._engine, self.media_queue, report_id=entry.report_id))
        return delivery

    def upload_media(self, data: bytes) -> MediaDelivery:
        """Queue the photo ``data`` (JPEG, PNG or WebP) and upload it now, with the
        retries of a submission; a report of this monitor at the desk must name it (else
        ``refused`` with ``media.not_referenced``). Kept and sent later when the desk
        cannot be reached."""
        entry = self._queue_photo(data)
        self._run(media_flow(self._engine, self.media_queue, only=entry.sha256))
        return self.media_status(entry.sha256)

    def deliver_pending(self, *, force: bool = False) -> list[Delivery]:
        """One pass over the outbox, oldest first: send what is due (everything pending
        if ``force``), then the photos that became due; stop at the first failure. The
        results of the reports' attempts made."""
        return self._run(deliver_flow(self._engine, self.media_queue, force=force))

    def flush(self, timeout: float | None = 60.0) -> FlushResult:
        """Send everything pending (reports, then their photos) now, then again as
        backoffs end, until the outbox is empty or ``timeout`` seconds have passed
        (``None``: until empty)."""
        return self._run(flush_flow(self._engine, self.media_queue, timeout))

    def health(self) -> bool:
        """Whether the desk answers ``GET /v1/health`` with ok."""
        try:
            response = self._http.get("/v1/health")
        except httpx.RequestError:
            return False
        return response.status_code == 200

    def receipt(self, report_id: UUID) -> Mapping[str, Any]:
        """The desk's receipt of one of this monitor's reports as it stands now
        (``GET /v1/reports/{id}`` with the device's key id); it may have moved on since
        delivery (overridden, rejected, superseded by a correction). Raises
        :class:`ApiError` or :class:`DeskUnreachable`."""
        try:
            response = self._http.get(f"/v1/reports/{report_id}", headers=self._key_header())
        except httpx.RequestError as e:
            raise _unreachable(e) from e
        return _receipt_of(response)

    def _send(self, entry: OutboxEntry) -> Outcome:
        try:
            response = self._http.post(REPORTS_PATH, content=entry.payload, headers=_JSON)
        except httpx.RequestError as e:
            return transport_failure(e)
        return classify_response(
            response.status_code, response.headers, response.content, self._clock()
        )

    def _upload(self, entry: MediaEntry) -> Outcome:
        path, headers = self._upload_request(entry)
        try:
            response = self._http.put(path, content=entry.data, headers=headers)
        except httpx.RequestError as e:
            return transport_failure(e)
        return classify_upload(
            response.status_code, response.headers, response.content, self._clock(), entry.sha256
        )

    def _run(self, flow: Generator[Step, Outcome | None, T]) -> T:
        with self._lock:
            try:
                step = next(flow)
                while True:
                    if isinstance(step, Send):
                        step = flow.send(self._send(step.entry))
                    elif isinstance(step, Upload):
                        step = flow.send(self._upload(step.entry))
                    else:
                        self._sleep(step.seconds)
                        step = flow.send(None)
            except StopIteration as stop:
                result: T = stop.value
                return result


class AsyncMonitorClient(_MonitorBase):
    """:class:`MonitorClient` on ``httpx.AsyncClient``: the same outbox (file format and
    all), the same policy; ``submit``, ``deliver_pending``, ``flush`` and ``health`` are
    coroutines. The outbox's SQLite writes are short and run inline."""

    def __init__(
        self,
        base_url: str,
        *,
        key: DeviceKey,
        outbox: str | Path,
        monitor_id: str,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], datetime] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ):
        super().__init__(
            key=key, outbox=outbox, monitor_id=monitor_id, retry=retry, clock=clock, rng=rng
        )
        self._sleep = sleep
        self._lock: asyncio.Lock | None = None
        self._http = httpx.AsyncClient(
            base_url=base_url, timeout=_timeout(timeout), transport=transport
        )

    async def aclose(self) -> None:
        await self._http.aclose()
        self.outbox.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def submit(self, report: Report, *, media: Sequence[bytes] = ()) -> Delivery:
        """See :meth:`MonitorClient.submit`."""
        entry = self._store(report, media)
        delivery = entry.delivery()
        if entry.state == "pending":
            delivery = await self._run(self._engine.submit_flow(entry.report_id))
        if delivery.delivered:
            flow = media_flow(self._engine, self.media_queue, report_id=entry.report_id)
            await self._run(flow)
        return delivery

    async def upload_media(self, data: bytes) -> MediaDelivery:
        """See :meth:`MonitorClient.upload_media`."""
        entry = self._queue_photo(data)
        await self._run(media_flow(self._engine, self.media_queue, only=entry.sha256))
        return self.media_status(entry.sha256)

    async def deliver_pending(self, *, force: bool = False) -> list[Delivery]:
        """See :meth:`MonitorClient.deliver_pending`."""
        return await self._run(deliver_flow(self._engine, self.media_queue, force=force))

    async def flush(self, timeout: float | None = 60.0) -> FlushResult:
        """See :meth:`MonitorClient.flush`."""
        return await self._run(flush_flow(self._engine, self.media_queue, timeout))

    async def health(self) -> bool:
        try:
            response = await self._http.get("/v1/health")
        except httpx.RequestError:
            return False
        return response.status_code == 200

    async def receipt(self, report_id: UUID) -> Mapping[str, Any]:
        """See :meth:`MonitorClient.receipt`."""
        try:
            response = await self._http.get(f"/v1/reports/{report_id}", headers=self._key_header())
        except httpx.RequestError as e:
            raise _unreachable(e) from e
        return _receipt_of(response)

    async def _send(self, entry: OutboxEntry) -> Outcome:
        try:
            response = await self._http.post(REPORTS_PATH, content=entry.payload, headers=_JSON)
        except httpx.RequestError as e:
            return transport_failure(e)
        return classify_response(
            response.status_code, response.headers, response.content, self._clock()
        )

    async def _upload(self, entry: MediaEntry) -> Outcome:
        path, headers = self._upload_request(entry)
        try:
            response = await self._http.put(path, content=entry.data, headers=headers)
        except httpx.RequestError as e:
            return transport_failure(e)
        return classify_upload(
            response.status_code, response.headers, response.content, self._clock(), entry.sha256
        )

    async def _run(self, flow: Generator[Step, Outcome | None, T]) -> T:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            try:
                step = next(flow)
                while True:
                    if isinstance(step, Send):
                        step = flow.send(await self._send(step.entry))
                    elif isinstance(step, Upload):
                        step = flow.send(await self._upload(step.entry))
                    else:
                        await self._sleep(step.seconds)
                        step = flow.send(None)
            except StopIteration as stop:
                result: T = stop.value
                return result


# ---------------------------------------------------------------------------------------
# Desk staff
# ---------------------------------------------------------------------------------------


class ApiError(SipantauError):
    """The desk answered with an error: ``status_code``, its stable ``code``, the English
    ``message``, the Indonesian ``message_id`` and ``violations``."""

    code = "http.error"

    def __init__(self, problem: ServerMessage):
        super().__init__(problem.message, code=problem.code, message_id=problem.message_id)
        self.status_code = problem.status_code
        self.violations = problem.violations


class DeskUnreachable(SipantauError):
    """No answer from the desk (connection refused or reset, timeout)."""

    code = "client.unreachable"


def _dt(value: Any) -> datetime:
    if not isinstance(value, str):
        raise ValueError(f"expected an ISO 8601 time, got {value!r}")
    return datetime.fromisoformat(value)


def _opt_dt(value: Any) -> datetime | None:
    return None if value is None else _dt(value)


def tally_from_json(data: Mapping[str, Any]) -> Tally:
    """A :class:`~sipantau_core.desk.Tally` from its JSON (votes keyed by ballot number)."""
    return Tally(
        region=str(data["region"]),
        contest=str(data["contest"]),
        votes={int(k): int(v) for k, v in data["votes"].items()},
        valid=int(data["valid"]),
        invalid=int(data["invalid"]),
        total=int(data["total"]),
        stations_counted=int(data["stations_counted"]),
        stations_expected=int(data["stations_expected"]),
        registered_covered=int(data["registered_covered"]),
        registered_expected=int(data["registered_expected"]),
    )


def station_status_from_json(data: Mapping[str, Any]) -> StationStatus:
    stages = tuple(
        StageState(
            stage=Stage(s["stage"]),
            state=s["state"],
            deadline=_dt(s["deadline"]),
            reported_at=_opt_dt(s.get("reported_at")),
            security=SecurityStatus(s["security"]) if s.get("security") is not None else None,
        )
        for s in data["stages"]
    )
    tally = data.get("tally")
    return StationStatus(str(data["station"]), stages, tally if isinstance(tally, str) else None)


def incident_from_json(data: Mapping[str, Any]) -> IncidentView:
    return IncidentView(
        station=str(data["station"]),
        report_id=UUID(str(data["report_id"])),
        stage=Stage(data["stage"]),
        observed_at=_dt(data["observed_at"]),
        category=str(data["category"]),
        severity=int(data["severity"]),
        text=str(data.get("text", "")),
        media_sha256=data.get("media_sha256"),
    )


def _items(data: Any, *keys: str) -> list[Mapping[str, Any]]:
    """A JSON list, bare or under one of ``keys`` of an object."""
    if isinstance(data, Mapping):
        for key in keys:
            if isinstance(data.get(key), list):
                data = data[key]
                break
    if not isinstance(data, list):
        raise ValueError("expected a JSON array")
    return [x for x in data if isinstance(x, Mapping)]


class StaffClient:
    """Desk staff's reads and device enrolment, with a bearer token. Raises
    :class:`ApiError` for an error answer and :class:`DeskUnreachable` for no answer."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ):
        self._http = httpx.Client(
            base_url=base_url,
            timeout=_timeout(timeout),
            transport=transport,
            headers={"authorization": f"Bearer {token}", "accept": "application/json"},
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        self.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.RequestError as e:
            raise _unreachable(e) from e
        return _answer(response)

    def tally(self, region: str, *, contest: str | None = None) -> Tally:
        """``GET /v1/tally/{region}``."""
        params = {"contest": contest} if contest is not None else {}
        data = self._request("GET", f"/v1/tally/{region}", params=params)
        return tally_from_json(data.get("tally", data))

    def status(self, region: str, *, contest: str | None = None) -> list[StationStatus]:
        """``GET /v1/status/{region}``: each TPS's stages and tally status (of
        ``contest``'s tally when one is named)."""
        params = {"contest": contest} if contest is not None else {}
        data = self._request("GET", f"/v1/status/{region}", params=params)
        return [station_status_from_json(x) for x in _items(data, "stations", "status")]

    def incidents(
        self,
        region: str,
        *,
        stage: Stage | str | None = None,
        category: str | None = None,
        min_severity: int | None = None,
    ) -> list[IncidentView]:
        """``GET /v1/incidents/{region}``, most severe first."""
        params: dict[str, str | int] = {}
        if stage is not None:
            params["stage"] = stage.value if isinstance(stage, Stage) else stage
        if category is not None:
            params["category"] = category
        if min_severity is not None:
            params["min_severity"] = min_severity
        data = self._request("GET", f"/v1/incidents/{region}", params=params)
        return [incident_from_json(x) for x in _items(data, "incidents")]

    def enrol_device(self, monitor: str, public_key: PublicKey | str) -> str:
        """``POST /v1/devices``: enrol a monitor's device key; its ``key_id``."""
        text = public_key.to_text() if isinstance(public_key, PublicKey) else public_key
        data = self._request("POST", "/v1/devices", json={"monitor": monitor, "public_key": text})
        return str(data["key_id"])

    def media(self, sha256: str, *, station: str) -> tuple[str, bytes]:
        """``GET /v1/media/{sha256}?station=``: the content type and the bytes of a photo
        a report of TPS ``station`` names."""
        try:
            response = self._http.get(MEDIA_PATH + sha256, params={"station": station})
        except httpx.RequestError as e:
            raise _unreachable(e) from e
        if not response.is_success:
            _answer(response)  # raises the desk's error
        return response.headers.get("content-type", ""), response.content

    def receipt(self, report_id: UUID | str) -> Mapping[str, Any]:
        """``GET /v1/reports/{report_id}``: the receipt of a stored report as it stands."""
        try:
            response = self._http.get(f"/v1/reports/{report_id}")
        except httpx.RequestError as e:
            raise _unreachable(e) from e
        return _receipt_of(response)

    def health(self) -> bool:
        try:
            response = self._http.get("/v1/health")
        except httpx.RequestError:
            return False
        return response.status_code == 200
