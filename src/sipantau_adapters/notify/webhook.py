"""Webhook channel: signed deliveries in the style of the Standard Webhooks spec, and the
helper receivers use to verify them.

Every delivery is a ``POST`` of the message as JSON (:meth:`Message.as_json`) with

- ``webhook-id``: the message id (the same for a retry of the same alerts: receivers
  dedupe by it),
- ``webhook-timestamp``: when it was sent, integer Unix seconds,
- ``webhook-signature``: ``v1,<base64>`` of HMAC-SHA256 over ``{id}.{timestamp}.{body}``
  with the shared secret (``whsec_<base64>``, or the raw bytes).

A receiver calls :func:`verify` on the raw body and the headers: it checks the signature
(constant time, any of several space-separated signatures), that the timestamp is within
the tolerance window (5 minutes by default) and, with a :class:`ReplayGuard`, that the id
was not seen before. 2xx is delivered; 410 Gone gives the message up; anything else
(and no answer) is tried again, honouring ``Retry-After``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from sipantau_core.access import Classification
from sipantau_core.errors import SipantauError
from sipantau_core.notify import Channel, DeliveryError, Message

__all__ = [
    "DEFAULT_TOLERANCE",
    "ReplayGuard",
    "WebhookChannel",
    "WebhookReplayError",
    "WebhookVerificationError",
    "new_secret",
    "parse_secret",
    "sign",
    "verify",
]

#: How far a delivery's timestamp may be from the receiver's clock (seconds).
DEFAULT_TOLERANCE = 300.0
_PREFIX = "whsec_"


class WebhookVerificationError(SipantauError):
    """A delivery that does not verify: ``webhook.missing_header``,
    ``webhook.bad_timestamp``, ``webhook.stale`` (outside the tolerance window),
    ``webhook.bad_signature`` or ``webhook.bad_body`` (signed, but not JSON). Answer it
    with 400/401 and do not act on it."""

    code = "webhook.invalid"


class WebhookReplayError(WebhookVerificationError):
    """A delivery whose id was verified before (``webhook.replay``): a retry of one you
    processed, or a replay. Answer 2xx and do not act on it again."""

    code = "webhook.replay"


def parse_secret(secret: str | bytes) -> bytes:
    """The HMAC key: ``whsec_<base64>`` decoded, or the bytes (or UTF-8 text) as given."""
    if isinstance(secret, bytes):
        return secret
    if secret.startswith(_PREFIX):
        try:
            return base64.b64decode(secret[len(_PREFIX) :], validate=True)
        except binascii.Error:
            raise ValueError("a whsec_ secret must be base64 after the prefix") from None
    return secret.encode("utf-8")


def new_secret() -> str:
    """A new random secret as ``whsec_<base64>`` (32 bytes)."""
    return _PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def sign(secret: str | bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64>``: HMAC-SHA256 over ``{msg_id}.{timestamp}.{body}``."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    mac = hmac.new(parse_secret(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


class ReplayGuard:
    """The ids of verified deliveries, each kept until its timestamp leaves the tolerance
    window (after that, :func:`verify` refuses it as stale anyway)."""

    def __init__(self, tolerance: float = DEFAULT_TOLERANCE):
        self.tolerance = tolerance
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def remember(self, msg_id: str, timestamp: float, now: float) -> bool:
        """Remember ``msg_id``; ``False`` when it was remembered already."""
        with self._lock:
            for old, at in list(self._seen.items()):
                if at < now - self.tolerance:
                    del self._seen[old]
            if msg_id in self._seen:
                return False
            self._seen[msg_id] = timestamp
            return True


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if value is None:
        for key, found in headers.items():
            if key.lower() == name:
                value = found
                break
    if not value:
        raise WebhookVerificationError(
            f"the {name} header is missing", code="webhook.missing_header"
        )
    return str(value)


def verify(
    body: bytes,
    headers: Mapping[str, str],
    secret: str | bytes,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    now: float | None = None,
    replay: ReplayGuard | None = None,
) -> Any:
    """Check a delivery and return its JSON payload. ``body`` is the raw request body
    (before any parsing); ``headers`` the request's (any case); ``now`` the receiver's
    Unix time (default: the clock). Raises :class:`WebhookVerificationError`, or
    :class:`WebhookReplayError` when ``replay`` has seen the id."""
    msg_id = _header(headers, "webhook-id")
    stamp = _header(headers, "webhook-timestamp")
    signatures = _header(headers, "webhook-signature")
    try:
        timestamp = int(stamp)
    except ValueError:
        raise WebhookVerificationError(
            "webhook-timestamp is not Unix seconds", code="webhook.bad_timestamp"
        ) from None
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise WebhookVerificationError(
            f"the delivery's timestamp is {int(current - timestamp)} s from this clock "
            f"(tolerance {tolerance:g} s)",
            code="webhook.stale",
        )
    expected = sign(secret, msg_id, timestamp, body)
    offered = [s for s in signatures.split(" ") if s.startswith("v1,")]
    if not any(hmac.compare_digest(expected, s) for s in offered):
        raise WebhookVerificationError("no signature matches", code="webhook.bad_signature")
    if replay is not None and not replay.remember(msg_id, timestamp, current):
        raise WebhookReplayError(f"delivery {msg_id} was received before")
    try:
        return json.loads(body)
    except ValueError:
        raise WebhookVerificationError("the body is not JSON", code="webhook.bad_body") from None


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


class WebhookChannel(Channel):
    """Posts each message, signed, to one URL (``recipient`` is a label carried in the
    payload). ``client``: an ``httpx.Client`` to use (tests, proxies); ``clock``: Unix
    time for ``webhook-timestamp``."""

    kind = "webhook"

    def __init__(
        self,
        name: str,
        *,
        url: str,
        secret: str | bytes,
        clearance: Classification | str,
        client: httpx.Client | None = None,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
        max_items: int = 50,
        max_chars: int = 20000,
    ):
        super().__init__(name, clearance=clearance, max_items=max_items, max_chars=max_chars)
        self.url = url
        self._key = parse_secret(secret)
        self._own_client = client is None
        self._client = client if client is not None else httpx.Client(timeout=timeout)
        self._clock = clock

    def send(self, message: Message) -> None:
        body = json.dumps(message.as_json(), ensure_ascii=False, separators=(",", ":")).encode()
        timestamp = int(self._clock())
        headers = {
            "content-type": "application/json",
            "user-agent": "sipantau-notify",
            "webhook-id": message.id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(self._key, message.id, timestamp, body),
        }
        try:
            response = self._client.post(self.url, content=body, headers=headers)
        except httpx.HTTPError as e:
            # never the URL (it may carry a token): the kind of failure only
            raise DeliveryError(f"webhook {self.name}: {type(e).__name__}") from None
        status = response.status_code
        if 200 <= status < 300:
            return
        raise DeliveryError(
            f"webhook {self.name}: HTTP {status}",
            permanent=status == 410,
            retry_after=_retry_after(response) if status in (429, 503) else None,
        )

    def close(self) -> None:
        if self._own_client:
            self._client.close()
