"""The HTTP API v1 of a desk: a Starlette application around a :class:`Desk`.

``create_app(desk)`` serves (base path ``/v1``, JSON, see ``docs/http.md``):

- ``POST /v1/reports``: a signed envelope (the monitor's device signature authenticates
  it) or a plain wire report with a staff bearer token; answered after the report's
  transaction committed (group commit, see :mod:`sipantau_adapters.http._batch`);
- ``GET /v1/reports/{report_id}``: the receipt of a stored report;
- ``POST /v1/devices``: enrol a monitor's device key;
- ``PUT /v1/media/{sha256}``: the photo a report references (signed by the device, see
  :mod:`sipantau_adapters.http.media`); ``GET`` for desk staff;
- ``GET /v1/tally/{region}``, ``GET /v1/status/{region}``, ``GET /v1/incidents/{region}``:
  reads for desk staff, under the desk's access rules;
- ``GET /v1/health`` and ``GET /openapi.json``.

The desk decides everything (access, checks, storage); this module reads HTTP, derives
the principal, and maps outcomes and errors to statuses. No traceback ever reaches a
client: an unexpected exception is logged (type and frames only) and answered with a
generic 500 body. ``serve(desk, host, port)`` runs it with uvicorn.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from typing import Any, Final, TypeVar

import anyio
import anyio.to_thread
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from sipantau_adapters.http._batch import (
    BatchFunction,
    Busy,
    Closed,
    GroupCommitter,
    TimedOut,
    per_principal,
)
from sipantau_adapters.http._errors import (
    ApiError,
    Context,
    api_error,
    internal_error,
    json_response,
    log_unexpected,
)
from sipantau_adapters.http._json import (
    _stored_receipt_json,
    incident_json,
    receipt_json,
    status_json,
    tally_json,
)
from sipantau_adapters.http.media import media_routes
from sipantau_adapters.http.openapi import openapi_document
from sipantau_core.access import Principal, Role
from sipantau_core.desk import Desk, Receipt
from sipantau_core.domain import RegionCode, Report, Stage, StationCode
from sipantau_core.errors import PayloadError, Problem, SipantauError, UnknownEntityError
from sipantau_core.ports import DeviceKeyRecord
from sipantau_core.signing import PublicKey, SignatureError, SignedReport, parse_signed
from sipantau_core.wire import parse_report

__all__ = ["MAX_BODY_BYTES", "create_app", "running", "serve"]

#: Request bodies larger than this are refused (413) before they are read further.
MAX_BODY_BYTES: Final = 64 * 1024
#: The header by which a monitor's device asks for the receipt of its own report.
KEY_ID_HEADER: Final = "x-sipantau-key-id"

T = TypeVar("T")


# ---------------------------------------------------------------------------------------
# Request helpers
# ---------------------------------------------------------------------------------------


def _bad(path: str, code: str, message: str) -> ApiError:
    return ApiError.payload([Problem(path, code, message)])


def _too_large() -> ApiError:
    return ApiError(
        413,
        "payload.too_large",
        f"the request body is larger than {MAX_BODY_BYTES} bytes",
        f"isi permintaan lebih dari {MAX_BODY_BYTES} byte",
    )


def _check_content_type(request: Request) -> None:
    value = request.headers.get("content-type")
    if value is None:
        return  # taken as JSON
    media, _, params = value.partition(";")
    media = media.strip().lower()
    ok = media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )
    for param in params.split(";"):
        name, _, arg = param.partition("=")
        if name.strip().lower() == "charset" and arg.strip().strip('"').lower() not in (
            "utf-8",
            "utf8",
        ):
            ok = False
    if not ok:
        raise ApiError(
            415,
            "payload.unsupported_media_type",
            "send the body as application/json in UTF-8",
            "kirim isi sebagai application/json (UTF-8)",
        )


async def _read_json(request: Request) -> Any:
    """The request body as JSON: 413 past the limit (by Content-Length or while reading),
    415 for another media type, 400 for malformed JSON."""
    length = request.headers.get("content-length")
    if length is not None and length.strip().isdigit() and int(length) > MAX_BODY_BYTES:
        raise _too_large()
    _check_content_type(request)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _too_large()
        chunks.append(chunk)
    body = b"".join(chunks)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _bad("$", "json.invalid", f"not UTF-8 text ({e.reason})") from None
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as e:
        raise _bad("$", "json.invalid", f"not valid JSON ({e})") from None


def _where(request: Request) -> str:
    """The ``{region}`` path parameter as the desk reads it: a dotted region code or a
    13-digit TPS code (``16.73.01.1001 TPS 001`` is read too)."""
    text = str(request.path_params["region"]).strip()
    try:
        if (text.isdigit() and len(text) == 13) or " " in text or "/" in text:
            return StationCode.parse(text).compact
        return RegionCode.parse(text).value
    except ValueError as e:
        raise _bad("path.region", "code.invalid", str(e)) from None


def _report_id(request: Request) -> uuid.UUID:
    text = str(request.path_params["report_id"])
    try:
        return uuid.UUID(text)
    except ValueError:
        raise _bad("path.report_id", "uuid.invalid", f"{text!r} is not a UUID") from None


def _unauthenticated(message: str) -> ApiError:
    return ApiError(
        401,
        "access.unauthenticated",
        message,
        "permintaan ini memerlukan token (Authorization: Bearer …)",
        headers={"WWW-Authenticate": "Bearer"},
    )


# ---------------------------------------------------------------------------------------
# The application
# ---------------------------------------------------------------------------------------


class _Api:
    def __init__(
        self,
        desk: Desk,
        committer: GroupCommitter,
        *,
        retry_after: float,
        read_threads: int,
    ):
        self.desk = desk
        self.committer = committer
        self.retry_after = retry_after
        self.read_limiter = anyio.CapacityLimiter(read_threads)
        self.document = openapi_document()

    async def call(self, context: Context, fn: Callable[..., T], *args: Any, **kw: Any) -> T:
        """Run a blocking desk call in a worker thread; its errors become API errors."""
        try:
            return await anyio.to_thread.run_sync(
                functools.partial(fn, *args, **kw), limiter=self.read_limiter
            )
        except SipantauError as e:
            raise api_error(e, context, retry_after=self.retry_after) from None

    async def staff(self, request: Request, context: Context = "read") -> Principal:
        """The principal of the request's bearer token (401 without one or for a bad one)."""
        header = request.headers.get("authorization")
        if header is None:
            raise _unauthenticated("this request needs a bearer token (Authorization: Bearer …)")
        scheme, _, token = header.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise _unauthenticated("the Authorization header must be 'Bearer <token>'")
        return await self.call(context, self.desk.authenticate, token)

    # -- submissions -----------------------------------------------------------------

    async def post_report(self, request: Request) -> Response:
        data = await _read_json(request)
        item: Report | SignedReport
        if isinstance(data, dict) and "signature" in data:
            try:
                item = parse_signed(data)
            except SipantauError as e:
                raise api_error(e, "submit") from None
            if request.headers.get("authorization") is not None:
                # A relay (an SMS gateway, an officer) sends a monitor's signed report
                # under its own token; the desk still checks the signature.
                principal = await self.staff(request, "submit")
            else:
                report = item.report
                principal = Principal(id=report.monitor, role=Role.MONITOR, scope=report.station)
        else:
            principal = await self.staff(request, "submit")
            try:
                item = parse_report(data)
            except PayloadError as e:
                raise api_error(e, "submit") from None
        try:
            outcome = await self.committer.submit(item, principal)
        except Busy:
            raise ApiError(
                429,
                "server.busy",
                "too many submissions are waiting; send again after Retry-After seconds",
                "server sedang sibuk; kirim ulang setelah beberapa detik",
                headers={"Retry-After": str(max(1, round(self.retry_after)))},
            ) from None
        except TimedOut:
            raise ApiError(
                503,
                "server.timeout",
                "the report was not written within the server's bound on waiting; it may "
                "still be written: send it again after Retry-After seconds (a resend of a "
                "stored report is answered duplicate)",
                "server terlalu lama menyimpan laporan; kirim ulang setelah beberapa detik",
                headers={"Retry-After": str(max(1, round(self.retry_after)))},
            ) from None
        except Closed:
            raise ApiError(
                503,
                "server.shutting_down",
                "the server is shutting down; send again later",
                "server sedang berhenti; kirim ulang nanti",
                headers={"Retry-After": str(max(1, round(self.retry_after)))},
            ) from None
        if isinstance(outcome, Receipt):
            return self._receipt_response(outcome)
        if isinstance(outcome, SipantauError):
            raise api_error(outcome, "submit", retry_after=self.retry_after)
        log_unexpected(outcome, "POST /v1/reports")
        raise internal_error()

    @staticmethod
    def _receipt_response(receipt: Receipt) -> Response:
        body = receipt_json(receipt)
        if receipt.status == "duplicate":
            return json_response({"receipt": body}, 200)
        if receipt.status == "flagged":
            error = ApiError(
                422,
                "report.flagged",
                "the tally breaks a hard rule: it is stored and flagged, and not counted "
                "until it is corrected or a desk officer overrides it; do not send it again",
                "laporan disimpan tetapi DITANDAI (melanggar aturan) dan tidak dihitung; "
                "periksa lalu kirim koreksi",
                violations=body["violations"],
                extra={"receipt": body},
            )
            return error.response()
        return json_response(
            {"receipt": body}, 201, {"Location": f"/v1/reports/{receipt.report_id}"}
        )

    async def get_report(self, request: Request) -> Response:
        report_id = _report_id(request)
        desk = self.desk
        if request.headers.get("authorization") is None and KEY_ID_HEADER in request.headers:
            key_id = request.headers[KEY_ID_HEADER].strip()
            if len(key_id) != 32 or any(c not in "0123456789abcdef" for c in key_id):
                raise api_error(
                    SignatureError(
                        f"{KEY_ID_HEADER}: a key id is 32 hex digits", code="signature.malformed"
                    ),
                    "read",
                )
            principal = None
        else:
            principal = await self.staff(request)
            key_id = ""

        def work() -> dict[str, Any]:
            with desk.storage.transaction() as tx:
                stored = tx.get_reports([report_id]).get(report_id)
                keys = tx.device_keys(key_ids=[key_id]) if principal is None else []
            who = principal
            if who is None:
                who = self._key_principal(keys, key_id)
                if stored is not None and stored.monitor != who.id:
                    stored = None  # another monitor's report: as if it did not exist
            if stored is None:
                raise UnknownEntityError(
                    f"no report {report_id} at this desk",
                    code="report.not_found",
                    message_id=f"laporan {report_id} tidak ditemukan",
                )
            # Through the desk, so that the read is authorized and audited.
            rows = desk.reports(stored.station, principal=who, heads_only=False)
            now = next((s for s, _ in rows if s.report_id == report_id), stored)
            return {"receipt": _stored_receipt_json(now)}

        return json_response(await self.call("read", work))

    def _key_principal(self, keys: list[DeviceKeyRecord], key_id: str) -> Principal:
        record = keys[0] if keys else None
        if record is None:
            raise SignatureError(
                f"the key {key_id} is not enrolled at this desk",
                code="signature.unknown_key",
                message_id="kunci perangkat belum terdaftar di desk",
            )
        if record.revoked_at is not None:
            raise SignatureError(
                f"the key {key_id} was revoked",
                code="signature.revoked_key",
                message_id="kunci perangkat sudah dicabut",
            )
        monitor = self.desk.deployment.monitors.get(record.monitor)
        if monitor is None:
            raise SignatureError(
                f"the key {key_id} belongs to no monitor of this deployment",
                code="signature.unknown_key",
                message_id="kunci perangkat belum terdaftar di desk",
            )
        return Principal(id=monitor.id, role=Role.MONITOR, scope=monitor.station)

    async def post_device(self, request: Request) -> Response:
        data = await _read_json(request)
        principal = await self.staff(request, "submit")
        if not isinstance(data, dict):
            raise _bad("$", "type.object", "expected an object")
        problems = [
            Problem(f"$.{k}", "field.unknown", "unknown field")
            for k in sorted(map(str, data))
            if k not in ("monitor", "public_key")
        ]
        for name in ("monitor", "public_key"):
            if name not in data:
                problems.append(Problem(f"$.{name}", "field.missing", "missing field"))
            elif not isinstance(data[name], str):
                problems.append(Problem(f"$.{name}", "type.string", "expected a string"))
        key: PublicKey | None = None
        if not problems:
            try:
                key = PublicKey.from_text(data["public_key"])
            except (SignatureError, ValueError) as e:
                message = e.message if isinstance(e, SignatureError) else str(e)
                problems.append(Problem("$.public_key", "key.invalid", message))
        if problems or key is None:
            raise ApiError.payload(problems)
        record = await self.call(
            "submit", self.desk.enrol_device, data["monitor"], key, principal=principal
        )
        return json_response(
            {
                "key_id": record.key_id,
                "monitor": record.monitor,
                "enrolled_at": record.enrolled_at.isoformat(),
            },
            201,
        )

    # -- reads -----------------------------------------------------------------------

    async def get_tally(self, request: Request) -> Response:
        where = _where(request)
        principal = await self.staff(request)
        contest = request.query_params.get("contest") or None
        tally = await self.call(
            "read", self.desk.tally, where, principal=principal, contest=contest
        )
        return json_response(tally_json(tally))

    async def get_status(self, request: Request) -> Response:
        where = _where(request)
        principal = await self.staff(request)
        contest = request.query_params.get("contest") or None
        found = await self.call(
            "read", self.desk.station_status, where, principal=principal, contest=contest
        )
        return json_response({"region": where, "stations": [status_json(s) for s in found]})

    async def get_incidents(self, request: Request) -> Response:
        where = _where(request)
        query = request.query_params
        stage = query.get("stage") or None
        if stage is not None and stage not in {s.value for s in Stage}:
            raise _bad(
                "query.stage", "enum.invalid", f"{stage!r} is not one of {[s.value for s in Stage]}"
            )
        severity_text = query.get("min_severity") or "1"
        if not (severity_text.isascii() and severity_text.isdigit() and len(severity_text) <= 2):
            raise _bad("query.min_severity", "type.integer", "expected a whole number 1..4")
        category = query.get("category") or None
        principal = await self.staff(request)
        found = await self.call(
            "read",
            self.desk.incidents,
            where,
            principal=principal,
            stage=stage,
            category=category,
            min_severity=int(severity_text),
        )
        return json_response({"region": where, "incidents": [incident_json(i) for i in found]})

    async def health(self, request: Request) -> Response:
        def probe() -> None:
            with self.desk.storage.transaction() as tx:
                tx.audit_head()

        await self.call("read", probe)
        return json_response({"status": "ok"})

    async def openapi(self, request: Request) -> Response:
        return json_response(self.document)


def _guarded(
    handler: Callable[[Request], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    """Answer an :class:`ApiError` raised by ``handler`` with its JSON body, and any
    other exception with the generic 500 body (logged here, type and frames only, so that
    no traceback with its message reaches the server's log either)."""

    @functools.wraps(handler)
    async def run(request: Request) -> Response:
        try:
            response: Response = await handler(request)
        except ApiError as e:
            return e.response()
        except Exception as e:  # noqa: BLE001 - never a traceback to the client
            log_unexpected(e, f"{request.method} {handler.__name__}")
            return internal_error().response()
        return response

    return run


class _SubmitFastPath:
    """``POST /v1/reports`` straight to its handler, past the router and the exception
    middleware (the hot path of ingestion). Everything else goes on to the app."""

    def __init__(self, app: ASGIApp, handler: Callable[[Request], Awaitable[Response]]):
        self.app = app
        self.handler = handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/v1/reports" and scope["method"] == "POST":
            response = await self.handler(Request(scope, receive))
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        return ApiError(
            405,
            "http.method_not_allowed",
            "this method is not allowed here",
            "metode ini tidak diizinkan di sini",
            headers=exc.headers,
        ).response()
    if exc.status_code == 404:
        return ApiError(
            404, "http.not_found", "no such endpoint", "alamat tidak ditemukan"
        ).response()
    return ApiError(exc.status_code, "http.error", str(exc.detail)).response()


def _server_error(request: Request, exc: Exception) -> Response:
    log_unexpected(exc, request.method)
    return internal_error().response()


def create_app(
    desk: Desk,
    *,
    batch_window_ms: float = 5,
    max_batch: int = 256,
    max_queue: int = 1024,
    max_wait: float | None = 10,
    retry_after: float = 1,
    read_threads: int = 8,
    batch: BatchFunction | None = None,
    web: bool = True,
) -> Starlette:
    """The HTTP API v1 of ``desk`` (see ``docs/http.md``).

    Submissions are group-committed: a single writer collects them for up to
    ``batch_window_ms`` (or ``max_batch`` of them) and writes them with ``batch`` (by
    default ``desk.submit_many`` once per principal) in a worker thread; each request is
    answered after its own transaction committed. More than ``max_queue`` waiting
    submissions: 429 with ``Retry-After: retry_after``; a submission whose outcome has
    not come after ``max_wait`` seconds (``None``: no bound): 503 ``server.timeout``
    with the same ``Retry-After``. Reads run in up to
    ``read_threads`` worker threads. The committer is ``app.state.committer``.

    With ``web`` (the default) the desk's web page is served beside the API (``/``, see
    ``docs/web.md``; :func:`sipantau_adapters.web.add_web`).
    """
    committer = GroupCommitter(
        batch if batch is not None else per_principal(desk),
        window_ms=batch_window_ms,
        max_batch=max_batch,
        max_queue=max_queue,
        max_wait=max_wait,
    )
    api = _Api(desk, committer, retry_after=retry_after, read_threads=read_threads)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        committer.start()
        try:
            yield
        finally:
            await committer.close()

    submit = _guarded(api.post_report)
    routes = [
        Route("/v1/reports", submit, methods=["POST"]),
        Route("/v1/reports/{report_id}", _guarded(api.get_report), methods=["GET"]),
        Route("/v1/devices", _guarded(api.post_device), methods=["POST"]),
        Route("/v1/tally/{region}", _guarded(api.get_tally), methods=["GET"]),
        Route("/v1/status/{region}", _guarded(api.get_status), methods=["GET"]),
        Route("/v1/incidents/{region}", _guarded(api.get_incidents), methods=["GET"]),
        *media_routes(api, _guarded),
        Route("/v1/health", _guarded(api.health), methods=["GET"]),
        Route("/openapi.json", api.openapi, methods=["GET"]),
    ]
    handlers: Mapping[Any, Any] = {HTTPException: _http_error, Exception: _server_error}
    app = Starlette(
        routes=routes,
        exception_handlers=handlers,
        lifespan=lifespan,
        middleware=[Middleware(_SubmitFastPath, handler=submit)],
    )
    app.router.redirect_slashes = False  # a trailing slash is a 404, not a redirect
    app.state.committer = committer
    app.state.desk = desk
    if web:
        from sipantau_adapters.web import add_web

        add_web(app, desk)
    return app


def serve(desk: Desk, host: str = "127.0.0.1", port: int = 8080, **options: Any) -> None:
    """Serve ``desk``'s HTTP API with uvicorn until interrupted (``options`` go to
    :func:`create_app`). Blocks; the caller closes the desk afterwards."""
    import uvicorn

    uvicorn.run(
        create_app(desk, **options),
        host=host,
        port=port,
        log_level="info",
        access_log=False,  # paths carry report ids and TPS codes; keep them out of logs
        server_header=False,
        proxy_headers=False,  # the client's address is never used
    )


DEPLOYMENT_ENV = "SIPANTAU_DEPLOYMENT"
STORAGE_ENV = "SIPANTAU_STORAGE"
#: :func:`create_app`'s options for each worker of :func:`serve_workers` (JSON)
OPTIONS_ENV = "SIPANTAU_APP_OPTIONS"
#: the options of :func:`create_app` that a worker process can be given (plain values)
WORKER_OPTIONS = frozenset(
    {"batch_window_ms", "max_batch", "max_queue", "max_wait", "retry_after", "read_threads"}
)


def app_from_environment() -> Starlette:
    """The app of a desk opened from ``SIPANTAU_DEPLOYMENT`` (a deployment directory) and
    ``SIPANTAU_STORAGE`` (a storage URL), with :func:`create_app`'s options from
    ``SIPANTAU_APP_OPTIONS`` (JSON): the factory each uvicorn worker process calls
    (``sipantau serve --workers N``). The desk closes when the app shuts down."""
    options = json.loads(os.environ.get(OPTIONS_ENV) or "{}")
    desk = Desk.open(os.environ[DEPLOYMENT_ENV], storage=os.environ[STORAGE_ENV])
    app = create_app(desk, **{k: v for k, v in options.items() if k in WORKER_OPTIONS})
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            async with inner(app):
                yield
        finally:
            desk.close()

    app.router.lifespan_context = lifespan
    return app


def serve_workers(
    deployment: str,
    storage: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    workers: int = 2,
    **options: Any,
) -> None:
    """Serve with ``workers`` processes on one socket, each with its own desk on the same
    storage (SQLite or PostgreSQL: the database keeps them consistent). ``options`` go to
    each worker's :func:`create_app` (those of :data:`WORKER_OPTIONS`). A worker that
    dies is started again by uvicorn's supervisor. Blocks."""
    import uvicorn

    unknown = sorted(set(options) - WORKER_OPTIONS)
    if unknown:
        raise SipantauError(
            f"not an option of a worker: {unknown} (those are {sorted(WORKER_OPTIONS)})",
            code="server.bad_config",
        )

    if storage.startswith("memory:"):
        raise SipantauError(
            "several workers need a shared storage (sqlite:/// or postgresql://), not memory://",
            code="server.bad_config",
        )
    os.environ[DEPLOYMENT_ENV] = deployment
    os.environ[STORAGE_ENV] = storage
    os.environ[OPTIONS_ENV] = json.dumps(options)
    # the workers share one session key, so a page signed in on one works on all
    from sipantau_adapters.web.session import SECRET_ENV, new_secret

    os.environ.setdefault(SECRET_ENV, new_secret())
    uvicorn.run(
        "sipantau_adapters.http.server:app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
        access_log=False,
        server_header=False,
    )


@contextlib.contextmanager
def running(app: Starlette, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Run ``app`` with uvicorn in a background thread (tests, demos, benchmarks) and yield
    its base URL; ``port=0`` takes a free port. Stops the server (draining the group
    commit) on exit."""
    import uvicorn

    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        proxy_headers=False,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="sipantau-http", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the HTTP server did not start on {host}:{port}")
        time.sleep(0.005)
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{bound}"
    finally:
        server.should_exit = True
        thread.join(30)
