"""Personal data encrypted at rest: AES-256-GCM with the ciphertext bound to its row.

The associated data names the table, the row and the field, so a ciphertext copied into
another row (or field) fails to decrypt. The key comes from the deployment's settings
(``[settings] personal_data_key_env = "NAME"`` names an environment variable holding
32 bytes in base64url; a test or demo may set ``personal_data_key`` directly).
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from typing import Any, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sipantau_core.errors import SipantauError

__all__ = ["SealError", "Sealer", "key_from_settings"]

_VERSION: Final = b"\x01"
_NONCE: Final = 12


class SealError(SipantauError):
    """Personal data could not be sealed or opened. Codes: ``seal.key_missing``,
    ``seal.key_invalid``, ``seal.tampered`` (wrong key, altered, or moved to another
    row)."""

    code = "seal.tampered"


class Sealer:
    """Encrypts and decrypts one field of one row. The key never shows in ``repr``."""

    __slots__ = ("_aead",)

    def __init__(self, key: bytes):
        if len(key) != 32:
            raise SealError("the personal data key must have 32 bytes", code="seal.key_invalid")
        self._aead = AESGCM(key)

    @staticmethod
    def _aad(table: str, row: str, field: str) -> bytes:
        return f"sipantau/seal/v1|{table}|{row}|{field}".encode()

    def seal(self, plaintext: str, *, table: str, row: str, field: str) -> bytes:
        nonce = os.urandom(_NONCE)
        sealed = self._aead.encrypt(nonce, plaintext.encode("utf-8"), self._aad(table, row, field))
        return _VERSION + nonce + sealed

    def open(self, sealed: bytes, *, table: str, row: str, field: str) -> str:
        if len(sealed) < 1 + _NONCE + 16 or sealed[:1] != _VERSION:
            raise SealError(f"{table}.{field} of {row}: not a sealed value", code="seal.tampered")
        nonce, body = sealed[1 : 1 + _NONCE], sealed[1 + _NONCE :]
        try:
            return self._aead.decrypt(nonce, body, self._aad(table, row, field)).decode("utf-8")
        except InvalidTag:
            raise SealError(
                f"{table}.{field} of {row} does not open: wrong key, altered, or moved "
                "from another row",
                code="seal.tampered",
            ) from None

    def __repr__(self) -> str:
        return "Sealer(<key hidden>)"


def _decode_key(text: str) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise SealError("the personal data key is not base64url", code="seal.key_invalid") from None
    if len(raw) != 32:
        raise SealError("the personal data key must decode to 32 bytes", code="seal.key_invalid")
    return raw


def key_from_settings(
    settings: Mapping[str, Any], environ: Mapping[str, str] | None = None
) -> bytes | None:
    """The personal data key of a deployment's ``[settings]``, or ``None`` when none is set."""
    env = os.environ if environ is None else environ
    name = settings.get("personal_data_key_env")
    if name:
        value = env.get(str(name))
        if not value:
            raise SealError(
                f"the environment variable {name} (settings.personal_data_key_env) is not set",
                code="seal.key_missing",
            )
        return _decode_key(value)
    direct = settings.get("personal_data_key")
    return _decode_key(str(direct)) if direct else None
