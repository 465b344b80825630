"""The photos reports reference, over HTTP: ``PUT /v1/media/{sha256}`` (a monitor's device
uploads the photo of its tally sheet or of an incident) and ``GET /v1/media/{sha256}``
(desk staff read it back), both through the desk (checks, access policy, audit log).

An upload is authenticated like a report: by the device. Its headers name the device key
(``X-Sipantau-Key-Id``) and carry the key's Ed25519 signature over
:func:`~sipantau_core.signing.media_signing_bytes` of the hash (``X-Sipantau-Signature``,
unpadded base64url); the desk finds the enrolled, unrevoked key and so the monitor, and
takes the photo only if a report of that monitor at its TPS names the hash. Desk staff may
upload with their bearer token instead, naming the TPS (``?station=``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sipantau_adapters.http._errors import ApiError, Context, api_error, json_response
from sipantau_core.access import Principal
from sipantau_core.desk import Desk
from sipantau_core.errors import MediaError, Problem
from sipantau_core.media import is_sha256, media_too_large
from sipantau_core.results import MediaReceipt
from sipantau_core.signing import Signature, SignatureError, media_signing_bytes

__all__ = ["KEY_ID_HEADER", "SIGNATURE_HEADER", "media_json", "media_routes"]

KEY_ID_HEADER = "x-sipantau-key-id"
SIGNATURE_HEADER = "x-sipantau-signature"

T = TypeVar("T")
Handler = Callable[[Request], Awaitable[Response]]


class _Api(Protocol):
    """What the handlers use of the API (:class:`sipantau_adapters.http.server._Api`)."""

    desk: Desk

    async def call(self, context: Context, fn: Callable[..., T], *args: Any, **kw: Any) -> T: ...

    async def staff(self, request: Request, context: Context = "read") -> Principal: ...


def media_json(receipt: MediaReceipt) -> dict[str, Any]:
    return {
        "sha256": receipt.sha256,
        "status": receipt.status,
        "content_type": receipt.content_type,
        "size": receipt.size,
        "station": receipt.station,
        "uploaded_at": receipt.uploaded_at.isoformat(),
    }


def _sha256(request: Request) -> str:
    text = str(request.path_params["sha256"])
    if not is_sha256(text):
        raise api_error(
            MediaError(
                "the path names no SHA-256: 64 lowercase hex digits",
                code="media.invalid_hash",
                message_id="kode hash foto tidak sah (harus SHA-256, 64 digit heksadesimal)",
            ),
            "submit",
        )
    return text


def _unauthenticated() -> ApiError:
    return ApiError(
        401,
        "access.unauthenticated",
        f"sign the upload with the device key ({KEY_ID_HEADER} and {SIGNATURE_HEADER}) "
        "or send a bearer token",
        "unggahan foto harus ditandatangani kunci perangkat (atau memakai token)",
        headers={"WWW-Authenticate": "Bearer"},
    )


class _Media:
    def __init__(self, api: _Api):
        self.api = api

    async def _uploader(self, request: Request, sha256: str) -> Principal:
        api = self.api
        if request.headers.get("authorization") is not None:
            return await api.staff(request, "submit")
        key_id = request.headers.get(KEY_ID_HEADER)
        value = request.headers.get(SIGNATURE_HEADER)
        if key_id is None or value is None:
            raise _unauthenticated()
        try:
            signature = Signature.from_wire(
                {"alg": "ed25519", "key_id": key_id.strip(), "value": value.strip()}
            )
        except SignatureError as e:
            raise api_error(e, "submit") from None
        return await api.call(
            "submit", api.desk.device_principal, signature, media_signing_bytes(sha256)
        )

    async def _body(self, request: Request) -> bytes:
        """The request's bytes, refused (413) as soon as they pass the desk's limit."""
        limit = self.api.desk.max_media_bytes
        length = request.headers.get("content-length")
        if length is not None and length.strip().isdigit() and int(length) > limit:
            raise api_error(media_too_large(limit), "submit")
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise api_error(media_too_large(limit), "submit")
            chunks.append(chunk)
        return b"".join(chunks)

    async def put(self, request: Request) -> Response:
        sha256 = _sha256(request)
        principal = await self._uploader(request, sha256)
        data = await self._body(request)
        receipt = await self.api.call(
            "submit",
            self.api.desk.upload_media,
            data,
            sha256=sha256,
            principal=principal,
            station=request.query_params.get("station") or None,
            content_type=request.headers.get("content-type"),
        )
        status = 201 if receipt.status == "stored" else 200
        return json_response({"media": media_json(receipt)}, status)

    async def get(self, request: Request) -> Response:
        sha256 = _sha256(request)
        principal = await self.api.staff(request)
        station = request.query_params.get("station")
        if not station:
            raise ApiError.payload(
                [Problem("query.station", "field.missing", "name the TPS (?station=…)")]
            )
        record = await self.api.call(
            "read", self.api.desk.media, sha256, station=station, principal=principal
        )
        return Response(
            record.data,
            media_type=record.content_type,
            headers={"x-content-type-options": "nosniff", "cache-control": "no-store"},
        )


def media_routes(api: _Api, guarded: Callable[[Handler], Handler]) -> list[Route]:
    """The routes of ``/v1/media/{sha256}`` (each handler wrapped by ``guarded``)."""
    media = _Media(api)
    return [
        Route("/v1/media/{sha256}", guarded(media.put), methods=["PUT"]),
        Route("/v1/media/{sha256}", guarded(media.get), methods=["GET"]),
    ]
