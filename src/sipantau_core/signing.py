"""Signed reports, device keys and staff tokens.

Each monitor's device holds an Ed25519 key. A submission carries a signature over
:func:`signing_bytes` of the report: a fixed context string followed by the report's
canonical bytes (:func:`sipantau_core.wire.canonical_bytes`), so a signature can neither
be moved to another report (the report id is covered) nor to another protocol. The
upload of a photo a report references is signed over :func:`media_signing_bytes` (another
context string and the photo's SHA-256). Desk staff authenticate with random tokens that
the desk stores only as hashes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping
from typing import Any, Final

import attrs
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from sipantau_core.domain import Report
from sipantau_core.errors import PayloadError, Problem, SipantauError
from sipantau_core.wire import canonical_bytes, dump_report, parse_report

__all__ = [
    "MEDIA_SIGNATURE_CONTEXT",
    "SIGNATURE_CONTEXT",
    "DeviceKey",
    "PublicKey",
    "Signature",
    "SignatureError",
    "SignedReport",
    "hash_token",
    "media_signing_bytes",
    "new_token",
    "parse_signed",
    "sign_media",
    "sign_report",
    "signing_bytes",
    "token_matches",
    "verify_report",
]

#: Domain separation: what a report signature covers starts with these bytes.
SIGNATURE_CONTEXT: Final = b"sipantau/report-signature/v1\x00"
#: What the signature of a photo's upload covers starts with these bytes.
MEDIA_SIGNATURE_CONTEXT: Final = b"sipantau/media-upload/v1\x00"
_TOKEN_CONTEXT: Final = b"sipantau/staff-token/v1\x00"
ALGORITHM: Final = "ed25519"


class SignatureError(SipantauError):
    """A signature could not be accepted. Codes: ``signature.missing``,
    ``signature.malformed``, ``signature.invalid``, ``signature.unknown_key``,
    ``signature.revoked_key``, ``signature.wrong_monitor``, ``signature.replay``."""

    code = "signature.invalid"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str, *, what: str, size: int) -> bytes:
    if not isinstance(text, str):
        raise SignatureError(f"{what}: expected base64url text", code="signature.malformed")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise SignatureError(f"{what}: not base64url", code="signature.malformed") from None
    if len(raw) != size or _b64(raw) != text:
        raise SignatureError(
            f"{what}: expected {size} bytes in canonical base64url", code="signature.malformed"
        )
    return raw


@attrs.frozen
class PublicKey:
    """A device's Ed25519 public key; ``key_id`` is derived from it."""

    raw: bytes = attrs.field(validator=attrs.validators.instance_of(bytes))

    @raw.validator
    def _check(self, attribute: attrs.Attribute[bytes], value: bytes) -> None:
        if len(value) != 32:
            raise ValueError("public key: an Ed25519 public key has 32 bytes")

    @property
    def key_id(self) -> str:
        """The first 16 bytes of SHA-256 over the key, hex."""
        return hashlib.sha256(b"sipantau/key-id/v1\x00" + self.raw).hexdigest()[:32]

    def to_text(self) -> str:
        return _b64(self.raw)

    @classmethod
    def from_text(cls, text: str) -> PublicKey:
        return cls(_unb64(text, what="public key", size=32))

    def verify(self, signature: bytes, message: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.raw).verify(signature, message)
        except InvalidSignature:
            return False
        return True


class DeviceKey:
    """A device's Ed25519 private key. Its bytes never appear in ``repr``."""

    __slots__ = ("_key",)

    def __init__(self, key: Ed25519PrivateKey):
        self._key = key

    @classmethod
    def generate(cls) -> DeviceKey:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> DeviceKey:
        """The key for a 32-byte seed (the RFC 8032 secret key)."""
        if len(seed) != 32:
            raise ValueError("device key: an Ed25519 seed has 32 bytes")
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    def seed(self) -> bytes:
        """The 32-byte seed, for storing the key on the device."""
        return self._key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())

    @property
    def public_key(self) -> PublicKey:
        return PublicKey(self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)

    def __repr__(self) -> str:
        return f"DeviceKey(key_id={self.public_key.key_id!r})"


@attrs.frozen
class Signature:
    """A signature of a report by the key ``key_id``."""

    key_id: str
    value: bytes

    def to_wire(self) -> dict[str, str]:
        return {"alg": ALGORITHM, "key_id": self.key_id, "value": _b64(self.value)}

    @classmethod
    def from_wire(cls, data: Any) -> Signature:
        if not isinstance(data, Mapping):
            raise SignatureError("signature: expected an object", code="signature.malformed")
        if set(data) != {"alg", "key_id", "value"}:
            raise SignatureError(
                "signature: expected exactly the keys alg, key_id and value",
                code="signature.malformed",
            )
        if data["alg"] != ALGORITHM:
            raise SignatureError(
                f"signature: unsupported algorithm {data['alg']!r}", code="signature.malformed"
            )
        key_id = data["key_id"]
        if (
            not isinstance(key_id, str)
            or len(key_id) != 32
            or not all(c in "0123456789abcdef" for c in key_id)
        ):
            raise SignatureError(
                "signature: key_id must be 32 hex digits", code="signature.malformed"
            )
        return cls(key_id, _unb64(data["value"], what="signature value", size=64))


@attrs.frozen
class SignedReport:
    """A report and the signature over its :func:`signing_bytes`."""

    report: Report
    signature: Signature

    def to_wire(self) -> dict[str, Any]:
        return {"report": dump_report(self.report), "signature": self.signature.to_wire()}

    def to_json(self) -> bytes:
        return json.dumps(self.to_wire(), separators=(",", ":"), ensure_ascii=False).encode()


def signing_bytes(report: Report) -> bytes:
    """What a report signature covers: the context string and the canonical bytes."""
    return SIGNATURE_CONTEXT + canonical_bytes(report)


def sign_report(report: Report, key: DeviceKey) -> SignedReport:
    """Sign ``report`` with a device key."""
    return SignedReport(report, Signature(key.public_key.key_id, key.sign(signing_bytes(report))))


def verify_report(signed: SignedReport, key: PublicKey) -> None:
    """Raise :class:`SignatureError` unless ``signed`` carries a valid signature by ``key``."""
    if signed.signature.key_id != key.key_id:
        raise SignatureError(
            "the signature names another key than the one given", code="signature.unknown_key"
        )
    if not key.verify(signed.signature.value, signing_bytes(signed.report)):
        raise SignatureError(
            "the signature does not match the report (altered, or signed by another key)",
            code="signature.invalid",
            message_id="tanda tangan laporan tidak sah",
        )


def media_signing_bytes(sha256: str) -> bytes:
    """What the signature of a photo's upload covers: the context string and the photo's
    SHA-256 (lowercase hex, as the report names it). The hash binds the bytes: a replay
    can only upload the same photo again (a harmless duplicate)."""
    return MEDIA_SIGNATURE_CONTEXT + sha256.encode("ascii")


def sign_media(sha256: str, key: DeviceKey) -> Signature:
    """The device's signature for uploading the photo whose SHA-256 is ``sha256``."""
    return Signature(key.public_key.key_id, key.sign(media_signing_bytes(sha256)))


def parse_signed(data: bytes | str | Mapping[str, Any]) -> SignedReport:
    """Read ``{"report": {...}, "signature": {...}}``. A bad report raises
    :class:`PayloadError` (paths under ``$.report``); a bad signature object raises
    :class:`SignatureError`; a payload without a signature: ``signature.missing``."""
    if isinstance(data, bytes | bytearray | str):
        try:
            data = json.loads(data)
        except (ValueError, RecursionError) as e:
            raise PayloadError([Problem("$", "json.invalid", f"not valid JSON ({e})")]) from None
    if not isinstance(data, Mapping):
        raise PayloadError([Problem("$", "type.object", "expected an object")])
    if "signature" not in data:
        raise SignatureError(
            "the submission carries no signature",
            code="signature.missing",
            message_id="laporan tidak ditandatangani",
        )
    extra = set(data) - {"report", "signature"}
    if extra or "report" not in data:
        problems = [Problem(f"$.{k}", "field.unknown", "unknown field") for k in sorted(extra)]
        if "report" not in data:
            problems.append(Problem("$.report", "field.missing", "missing field"))
        raise PayloadError(problems)
    try:
        report = parse_report(data["report"])
    except PayloadError as e:
        raise PayloadError(
            [Problem("$.report" + p.path[1:], p.code, p.message) for p in e.problems]
        ) from None
    return SignedReport(report, Signature.from_wire(data["signature"]))


def new_token() -> str:
    """A new random staff token (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """The hash under which a staff token is stored (SHA-256, domain-separated, hex)."""
    return hashlib.sha256(_TOKEN_CONTEXT + token.encode("utf-8")).hexdigest()


def token_matches(token: str, stored_hash: str) -> bool:
    """Whether ``token`` is the one stored as ``stored_hash`` (constant time)."""
    return hmac.compare_digest(hash_token(token), stored_hash)
