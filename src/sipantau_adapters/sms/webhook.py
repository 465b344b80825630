"""The inbound webhook: Starlette routes that any Starlette app can mount.

::

    from starlette.applications import Starlette
    from starlette.routing import Mount

    service = SmsService.from_desk(desk)
    app = Starlette(routes=[Mount("/sms", routes=sms_routes(service))])
    # the gateway posts to https://desk.example/sms/inbound

Answers: 200 with the outcome of each message (the reply goes out through the gateway's
API, not in this response), 401 without the gateway's webhook token, 413 for a body above
the limit, 400/415/422 for a body that cannot be read. Reports and replies are made in a
worker thread (the desk is synchronous).
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sipantau_adapters.sms.gateway import InboundError
from sipantau_adapters.sms.service import SmsService

__all__ = ["MAX_BODY", "sms_routes"]

#: The largest webhook body read (a batch of long messages fits easily).
MAX_BODY = 256 * 1024


class _TooLarge(Exception):
    pass


async def _read(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _error(code: str, status: int, message: str = "") -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status)


def sms_routes(
    gateway_service: SmsService, *, path: str = "/inbound", max_body: int = MAX_BODY
) -> list[Route]:
    """The webhook of ``gateway_service``: ``POST {path}`` (``/inbound``), named
    ``sms_inbound``. Mount the list under a prefix (``Mount("/sms", routes=...)``) or add
    it to an app's routes as it is."""
    service = gateway_service

    async def inbound(request: Request) -> Response:
        gateway = service.gateway
        if not gateway.check_webhook(request.headers, request.query_params):
            return _error("inbound.unauthorized", 401, "the webhook token is missing or wrong")
        try:
            body = await _read(request, max_body)
        except _TooLarge:
            return _error("inbound.too_large", 413, f"the body is above {max_body} bytes")
        except ClientDisconnect:
            return Response(status_code=400)
        try:
            messages = gateway.parse_inbound(request.headers.get("content-type", ""), body)
        except InboundError as e:
            return _error(e.code, e.status, e.message)
        outcomes = [await run_in_threadpool(service.receive, message) for message in messages]
        return JSONResponse(
            {
                "received": len(outcomes),
                "outcomes": [
                    {"kind": o.kind, "code": o.code, "reply_sent": o.reply_sent} for o in outcomes
                ],
            }
        )

    return [Route(path, inbound, methods=["POST"], name="sms_inbound")]
