"""Errors as HTTP responses: every error body is
``{"code", "message", "message_id", "violations"}`` with the status of ``docs/http.md``."""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal

from starlette.responses import Response

from sipantau_core.errors import (
    ConflictError,
    MediaError,
    PayloadError,
    PermissionDenied,
    Problem,
    SipantauError,
    StorageError,
    UnknownEntityError,
)
from sipantau_core.signing import SignatureError

__all__ = [
    "ApiError",
    "Context",
    "api_error",
    "dumps",
    "internal_error",
    "json_response",
    "log_unexpected",
    "problems_json",
]

log = logging.getLogger("sipantau_adapters.http")

#: Where an error happened: a submission (``POST``) or a read (``GET``). An unknown entity
#: is a 422 in a submission (the report is not stored and must not be retried) and a 404
#: in a read.
Context = Literal["submit", "read"]

JSON_TYPE: Final = "application/json"


def dumps(data: Any) -> bytes:
    """Compact UTF-8 JSON (Indonesian text stays readable)."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def json_response(
    data: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(dumps(data), status_code=status, headers=headers, media_type=JSON_TYPE)


def problems_json(problems: Sequence[Problem]) -> list[dict[str, str]]:
    return [{"path": p.path, "code": p.code, "message": p.message} for p in problems]


class ApiError(Exception):
    """An error the API answers with: a status, the body's fields and extra headers."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        message_id: str | None = None,
        *,
        violations: Sequence[Mapping[str, Any]] = (),
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ):
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.message_id = message_id if message_id is not None else message
        self.violations = list(violations)
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})

    def body(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "message_id": self.message_id,
            "violations": self.violations,
            **self.extra,
        }

    def response(self) -> Response:
        return json_response(self.body(), self.status, self.headers)

    @classmethod
    def payload(cls, problems: Sequence[Problem]) -> ApiError:
        """A 400 ``payload.invalid`` listing ``problems``."""
        return api_error(PayloadError(problems), "submit")


#: The status of each refusal of a photo (``media.invalid_hash`` and others: 400).
_MEDIA_STATUS: Final = {
    "media.too_large": 413,
    "media.unsupported_type": 415,
    "media.not_referenced": 409,
    "media.digest_mismatch": 422,
}


def _retry_after(seconds: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, round(seconds)))}


def api_error(exc: SipantauError, context: Context, *, retry_after: float = 1) -> ApiError:
    """The response for one of the library's errors (see the table in ``docs/http.md``)."""
    code = exc.code
    message, message_id = exc.message, exc.message_id
    if isinstance(exc, PayloadError):
        if "payload.too_large" in exc.codes:
            return ApiError(413, "payload.too_large", message, message_id)
        return ApiError(400, exc.code, message, message_id, violations=problems_json(exc.problems))
    if isinstance(exc, MediaError):
        return ApiError(_MEDIA_STATUS.get(code, 400), code, message, message_id)
    if isinstance(exc, SignatureError):
        return ApiError(400 if code == "signature.malformed" else 401, code, message, message_id)
    if isinstance(exc, PermissionDenied):
        if code in ("access.bad_token", "access.unauthenticated"):
            return ApiError(401, code, message, message_id, headers={"WWW-Authenticate": "Bearer"})
        return ApiError(403, code, message, message_id)
    if isinstance(exc, UnknownEntityError):
        status = 404 if context == "read" or code in ("report.not_found", "key.not_found") else 422
        return ApiError(status, code, message, message_id)
    if isinstance(exc, ConflictError):
        if code == "storage.race":
            # A transaction lost a race more often than the desk retries: transient.
            return ApiError(503, code, message, message_id, headers=_retry_after(retry_after))
        return ApiError(409, code, message, message_id)
    if isinstance(exc, StorageError):
        # Never the error's own message: it may name the database.
        return ApiError(
            503,
            "storage.unavailable",
            "the desk's storage is unavailable; try again later",
            "penyimpanan desk tidak dapat dijangkau; coba lagi nanti",
            headers=_retry_after(retry_after),
        )
    if code == "contest.ambiguous":
        return ApiError(400, code, message, message_id)
    # Anything else the library raised is not part of the contract: a plain 500.
    log_unexpected(exc, "a library error without an HTTP mapping")
    return internal_error()


def internal_error() -> ApiError:
    return ApiError(500, "server.error", "internal error", "kesalahan internal server")


def log_unexpected(exc: BaseException, where: str) -> None:
    """Log an unexpected exception: its type and the frames it passed through, never its
    message or local values (they may carry personal data or figures)."""
    frames = traceback.extract_tb(exc.__traceback__)
    trail = " <- ".join(f"{f.filename}:{f.lineno}:{f.name}" for f in reversed(frames))
    log.error("unexpected %s in %s at %s", type(exc).__name__, where, trail or "?")
