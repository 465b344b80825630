"""Photos that reports reference, as pure functions: which hashes a report references, what
kind of image some bytes are (by their magic bytes), and the checks an upload passes.

A tally carries the SHA-256 of the photo of its sheet (``sheet_sha256``), an incident that
of its photo (``media_sha256``); the signature over the report covers the hash, so the
bytes are bound to the report without being in it. The bytes travel separately
(``Desk.upload_media``, ``PUT /v1/media/{sha256}``) and are stored once per hash.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any, Final

from sipantau_core.domain import Report, SituationReport, TallyReport
from sipantau_core.errors import DeploymentError, MediaError

__all__ = [
    "DEFAULT_MAX_MEDIA_BYTES",
    "MEDIA_TYPES",
    "check_media",
    "is_sha256",
    "max_media_bytes",
    "media_references",
    "media_too_large",
    "sniff_media_type",
]

#: The content types the desk stores, each recognised by the first bytes of the file.
MEDIA_TYPES: Final = ("image/jpeg", "image/png", "image/webp")
#: The largest photo the desk takes unless ``[settings] max_media_bytes`` says otherwise:
#: a phone's photo of a sheet, compressed, is 1 to 4 MiB.
DEFAULT_MAX_MEDIA_BYTES: Final = 8 * 1024 * 1024
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def media_references(report: Report) -> tuple[str, ...]:
    """The SHA-256 hashes of the photos ``report`` references, in order, each once: the
    sheet's (a tally) or the incidents' (a situation report)."""
    found: list[str] = []
    if isinstance(report, TallyReport):
        if report.sheet_sha256 is not None:
            found.append(report.sheet_sha256)
    elif isinstance(report, SituationReport):
        found.extend(i.media_sha256 for i in report.incidents if i.media_sha256 is not None)
    return tuple(dict.fromkeys(found))


def sniff_media_type(data: bytes) -> str | None:
    """``image/jpeg``, ``image/png`` or ``image/webp`` by the file's magic bytes, else
    ``None`` (whatever name or type the sender gave it)."""
    if data[:3] == b"\xff\xd8\xff":
        return "image/jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def is_sha256(text: object) -> bool:
    """Whether ``text`` is a SHA-256 as the wire carries it (64 lowercase hex digits)."""
    return isinstance(text, str) and _SHA256.match(text) is not None


def max_media_bytes(settings: Mapping[str, Any]) -> int:
    """``[settings] max_media_bytes`` of a deployment (a whole number of bytes, at least
    1), or :data:`DEFAULT_MAX_MEDIA_BYTES`."""
    value = settings.get("max_media_bytes", DEFAULT_MAX_MEDIA_BYTES)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise DeploymentError(
            f"must be a whole number of bytes of at least 1, not {value!r}",
            file="deployment.toml",
            field="settings.max_media_bytes",
        )
    return value


def check_media(data: bytes, *, sha256: str, limit: int, content_type: str | None = None) -> str:
    """Check an upload of ``data`` claimed to have the hash ``sha256``; its content type.

    Raises :class:`~sipantau_core.errors.MediaError`: ``media.invalid_hash`` (not 64
    lowercase hex digits), ``media.too_large`` (more than ``limit`` bytes),
    ``media.unsupported_type`` (not JPEG, PNG or WebP by its magic bytes, or not the
    ``content_type`` the sender declared), ``media.digest_mismatch`` (the bytes' SHA-256
    is another)."""
    if not is_sha256(sha256):
        raise MediaError(
            "the photo's hash must be a SHA-256 in lowercase hex (64 digits)",
            code="media.invalid_hash",
            message_id="kode hash foto tidak sah (harus SHA-256, 64 digit heksadesimal)",
        )
    if len(data) > limit:
        raise media_too_large(limit)
    kind = sniff_media_type(data)
    if kind is None:
        raise MediaError(
            "the file is not a JPEG, PNG or WebP image (by its first bytes)",
            code="media.unsupported_type",
            message_id="berkas bukan foto JPEG, PNG, atau WebP",
        )
    declared = (content_type or "").split(";")[0].strip().lower()
    if declared not in ("", "application/octet-stream", kind):
        raise MediaError(
            f"the file is {kind} by its first bytes, not {declared} as declared",
            code="media.unsupported_type",
            message_id=f"jenis berkas tidak sesuai: isinya {kind}, bukan {declared}",
        )
    if hashlib.sha256(data).hexdigest() != sha256:
        raise MediaError(
            "the SHA-256 of the bytes is not the hash named: the photo was altered or cut "
            "short on the way, or it is another photo than the report's",
            code="media.digest_mismatch",
            message_id="foto tidak cocok dengan kode hash di laporan (rusak atau foto lain)",
        )
    return kind


def media_too_large(limit: int) -> MediaError:
    """``media.too_large`` for a desk that takes at most ``limit`` bytes."""
    mib = limit / (1024 * 1024)
    return MediaError(
        f"the photo is larger than the desk takes ({limit} bytes, {mib:.1f} MiB)",
        code="media.too_large",
        message_id=f"foto terlalu besar (maksimal {mib:.1f} MiB); kirim foto yang lebih kecil",
    )
