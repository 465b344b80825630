"""Sessions of the web page: a staff token kept in a sealed cookie, and CSRF tokens.

Signing in with a staff token (``sipantau token …``) sets the cookie ``sipantau_session``
(HttpOnly, SameSite=Strict, Path=/): the token, the deployment's id, an expiry and a
nonce, sealed with AES-GCM under the server's session key (the deployment id is the
associated data, so a cookie of another desk does not open here). Every request opens it
and asks the desk who the token stands for (``desk.authenticate``), so a revoked token
ends its sessions at once. A form that changes something carries the session's CSRF token
(an HMAC of its nonce); a request without it, or from another origin, is refused.

The key comes from ``SIPANTAU_SESSION_SECRET`` (base64url, at least 32 bytes) or is made
at random when the app starts (sessions then end with the process; ``sipantau serve
--workers N`` makes one for all its workers).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
import time
from collections.abc import Callable

import attrs
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sipantau_core.errors import PermissionDenied

__all__ = [
    "COOKIE",
    "SECRET_ENV",
    "Session",
    "SessionError",
    "Sessions",
    "new_secret",
]

COOKIE = "sipantau_session"
SECRET_ENV = "SIPANTAU_SESSION_SECRET"
#: How long a session lasts after sign-in (election day and the night after).
DEFAULT_LIFETIME_S = 16 * 3600


class SessionError(PermissionDenied):
    """No usable session: ``access.unauthenticated`` (none, or a cookie that does not
    open here: forged, damaged, another desk's) or ``access.session_expired``."""

    code = "access.unauthenticated"


@attrs.frozen
class Session:
    token: str = attrs.field(repr=False)
    deployment: str
    expires: int
    nonce: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def new_secret() -> str:
    """A fresh session key in the form ``SIPANTAU_SESSION_SECRET`` takes."""
    return _b64(secrets.token_bytes(32))


class Sessions:
    """Issues and opens session cookies of one deployment."""

    def __init__(
        self,
        deployment: str,
        secret: str | bytes | None = None,
        *,
        lifetime_s: int = DEFAULT_LIFETIME_S,
        clock: Callable[[], float] = time.time,
    ):
        if secret is None:
            secret = os.environ.get(SECRET_ENV) or new_secret()
        key = _unb64(secret) if isinstance(secret, str) else secret
        if len(key) < 32:
            raise ValueError(f"{SECRET_ENV} must hold at least 32 bytes (base64url)")
        self.deployment = deployment
        self.lifetime_s = lifetime_s
        self._clock = clock
        self._seal = AESGCM(hashlib.sha256(b"sipantau-session-seal\0" + key).digest())
        self._mac = hashlib.sha256(b"sipantau-session-csrf\0" + key).digest()
        self._aad = f"sipantau-session:{deployment}".encode()

    def issue(self, token: str) -> tuple[str, Session]:
        """A new session for ``token``: the cookie's value and the session."""
        session = Session(
            token=token,
            deployment=self.deployment,
            expires=int(self._clock()) + self.lifetime_s,
            nonce=_b64(secrets.token_bytes(16)),
        )
        payload = json.dumps(
            {"t": session.token, "d": session.deployment, "e": session.expires, "n": session.nonce},
            separators=(",", ":"),
        ).encode()
        iv = secrets.token_bytes(12)
        return _b64(iv + self._seal.encrypt(iv, payload, self._aad)), session

    def open(self, value: str | None) -> Session:
        """The session of a cookie's value; :class:`SessionError` when there is none."""
        if not value:
            raise SessionError("sign in first", message_id="silakan masuk terlebih dahulu")
        try:
            raw = _unb64(value)
            data = json.loads(self._seal.decrypt(raw[:12], raw[12:], self._aad))
            session = Session(
                token=str(data["t"]),
                deployment=str(data["d"]),
                expires=int(data["e"]),
                nonce=str(data["n"]),
            )
        except (binascii.Error, ValueError, KeyError, TypeError, InvalidTag):
            raise SessionError(
                "the session cookie does not open at this desk; sign in again",
                message_id="sesi tidak sah; silakan masuk kembali",
            ) from None
        if session.deployment != self.deployment:
            raise SessionError(
                "the session belongs to another desk", message_id="sesi milik desk lain"
            )
        if session.expires <= self._clock():
            raise SessionError(
                "the session has expired; sign in again",
                code="access.session_expired",
                message_id="sesi telah berakhir; silakan masuk kembali",
            )
        return session

    def csrf(self, session: Session) -> str:
        """The CSRF token of ``session`` (for the forms of its pages)."""
        return _b64(hmac.new(self._mac, session.nonce.encode(), hashlib.sha256).digest())

    def check_csrf(self, session: Session, sent: str | None) -> None:
        """Refuse (``access.csrf``) a change whose form did not carry the session's token."""
        if not sent or not hmac.compare_digest(sent, self.csrf(session)):
            raise PermissionDenied(
                "the form's CSRF token is missing or wrong; reload the page and try again",
                code="access.csrf",
                message_id="token formulir tidak sah; muat ulang halaman lalu coba lagi",
            )
