"""Monitors' SMS PINs, stored only as salted scrypt hashes, and their phone numbers.

A :class:`PinBook` maps a monitor id to the hash of its PIN; it is loaded from a CSV of
hashes (``monitor_id,pin_hash``) or from the deployment's ``[settings.sms]``. The PINs
themselves are never stored: :func:`hash_pin` gives each monitor its own random salt and
:func:`write_pin_csv` turns a list of freshly issued PINs into such a file. A 4-6 digit
PIN falls to an offline search whatever the hash, so the file stays restricted (and a
*pepper*, a secret kept outside the file, can be mixed in); online guessing is stopped by
the lockout of :class:`~sipantau_adapters.sms.service.SmsService`.
"""

from __future__ import annotations

import base64
import binascii
import csv
import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from sipantau_core.deployment import Deployment
from sipantau_core.domain import Monitor
from sipantau_core.errors import SipantauError

__all__ = [
    "PinBook",
    "SmsConfigError",
    "hash_pin",
    "normalise_phone",
    "phone_directory",
    "verify_pin",
    "write_pin_csv",
]

_SCHEME = "scrypt"
#: scrypt's cost (n, r, p): about 16 MiB and a few tens of milliseconds per check.
DEFAULT_COST = (2**14, 8, 1)
_MAX_N = 2**20
_PIN_RE = re.compile(r"[0-9]{4,6}")
_PHONE_RE = re.compile(r"(?:\+62|62|0)8[0-9]{7,12}")


class SmsConfigError(SipantauError):
    """The SMS channel's configuration is unusable (a PIN file, a gateway setting)."""

    code = "sms.config"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_pin(
    pin: str,
    *,
    salt: bytes | None = None,
    pepper: bytes = b"",
    cost: tuple[int, int, int] = DEFAULT_COST,
) -> str:
    """The storable hash of ``pin``: ``scrypt$n$r$p$<salt>$<key>`` with a random 16-byte
    salt (one per monitor) unless ``salt`` is given."""
    if not isinstance(pin, str) or not _PIN_RE.fullmatch(pin):
        raise ValueError("pin: a PIN is 4 to 6 digits (value hidden)")
    n, r, p = cost
    salt = secrets.token_bytes(16) if salt is None else salt
    key = _derive(pin, salt, pepper, n, r, p)
    return f"{_SCHEME}${n}${r}${p}${_b64(salt)}${_b64(key)}"


def _derive(pin: str, salt: bytes, pepper: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        pepper + pin.encode("ascii"), salt=salt, n=n, r=r, p=p, maxmem=256 * r * n + 2**20
    )


def _parse_hash(encoded: str) -> tuple[int, int, int, bytes, bytes]:
    parts = encoded.split("$")
    if len(parts) != 6 or parts[0] != _SCHEME:
        raise ValueError("not a scrypt PIN hash (scrypt$n$r$p$salt$key)")
    try:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt, key = _unb64(parts[4]), _unb64(parts[5])
    except (ValueError, binascii.Error):
        raise ValueError("a PIN hash with unreadable parameters") from None
    if not (2 <= n <= _MAX_N and n & (n - 1) == 0 and 1 <= r <= 32 and 1 <= p <= 16):
        raise ValueError("a PIN hash with out-of-range scrypt parameters")
    if len(salt) < 8 or len(key) < 16:
        raise ValueError("a PIN hash with a too short salt or key")
    return n, r, p, salt, key


def verify_pin(pin: str, encoded: str, *, pepper: bytes = b"") -> bool:
    """True when ``pin`` is the PIN that ``encoded`` was made from (compared in constant
    time); False for a malformed PIN or hash."""
    try:
        n, r, p, salt, key = _parse_hash(encoded)
    except ValueError:
        return False
    if not isinstance(pin, str) or not _PIN_RE.fullmatch(pin):
        return False
    candidate = hashlib.scrypt(
        pepper + pin.encode("ascii"),
        salt=salt,
        n=n,
        r=r,
        p=p,
        maxmem=256 * r * n + 2**20,
        dklen=len(key),
    )
    return hmac.compare_digest(candidate, key)


class PinBook(Mapping[str, str]):
    """Monitor id → PIN hash. ``verify`` checks a PIN; the PINs themselves are unknown."""

    def __init__(self, hashes: Mapping[str, str] | None = None, *, pepper: bytes = b""):
        self._hashes: dict[str, str] = {}
        self._pepper = pepper
        for monitor_id, encoded in (hashes or {}).items():
            try:
                _parse_hash(encoded)
            except ValueError as e:
                raise SmsConfigError(
                    f"the PIN hash of monitor {monitor_id!r}: {e}", code="sms.pin_hash_invalid"
                ) from None
            self._hashes[str(monitor_id)] = encoded

    def __getitem__(self, monitor_id: str) -> str:
        return self._hashes[monitor_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._hashes)

    def __len__(self) -> int:
        return len(self._hashes)

    def __repr__(self) -> str:
        return f"PinBook(<{len(self)} hashes>)"

    def verify(self, monitor_id: str, pin: str) -> bool:
        """True when ``pin`` is the PIN of ``monitor_id`` (False when it has none)."""
        encoded = self._hashes.get(monitor_id)
        if encoded is None:
            return False
        return verify_pin(pin, encoded, pepper=self._pepper)

    @classmethod
    def from_csv(cls, path: str | Path, *, pepper: bytes = b"") -> PinBook:
        """Read ``monitor_id,pin_hash`` rows (a header line first)."""
        file = Path(path)
        try:
            with file.open(newline="", encoding="utf-8") as f:
                reader = csv.DictReader(f)
                if not {"monitor_id", "pin_hash"} <= set(reader.fieldnames or ()):
                    raise SmsConfigError(
                        f"{file}: the columns monitor_id and pin_hash are required",
                        code="sms.pin_file_invalid",
                    )
                rows = {
                    (row["monitor_id"] or "").strip(): (row["pin_hash"] or "").strip()
                    for row in reader
                }
        except OSError as e:
            raise SmsConfigError(
                f"{file}: cannot be read ({e.strerror})", code="sms.pin_file_invalid"
            ) from None
        return cls(rows, pepper=pepper)

    @classmethod
    def from_settings(cls, deployment: Deployment) -> PinBook:
        """The PIN book of ``[settings.sms]``: ``pins_csv`` (a path, relative to the
        deployment directory) and/or a ``pins`` table of hashes; ``pin_pepper_env`` names
        an environment variable holding the pepper."""
        sms = sms_settings(deployment.settings)
        pepper = b""
        pepper_env = sms.get("pin_pepper_env")
        if pepper_env:
            value = os.environ.get(str(pepper_env))
            if not value:
                raise SmsConfigError(
                    f"the environment variable {pepper_env} (settings.sms.pin_pepper_env) is "
                    "not set",
                    code="sms.pin_pepper_missing",
                )
            pepper = value.encode("utf-8")
        hashes: dict[str, str] = {}
        if sms.get("pins_csv"):
            path = Path(str(sms["pins_csv"]))
            if not path.is_absolute() and deployment.path is not None:
                path = deployment.path / path
            hashes.update(cls.from_csv(path)._hashes)
        table = sms.get("pins", {})
        if not isinstance(table, Mapping):
            raise SmsConfigError(
                "settings.sms.pins must be a table of monitor id = PIN hash",
                code="sms.pin_file_invalid",
            )
        hashes.update({str(k): str(v) for k, v in table.items()})
        return cls(hashes, pepper=pepper)


def write_pin_csv(
    path: str | Path,
    pins: Mapping[str, str],
    *,
    pepper: bytes = b"",
    cost: tuple[int, int, int] = DEFAULT_COST,
) -> None:
    """Write the hashes of freshly issued ``pins`` (monitor id → PIN) as a PIN file."""
    with Path(path).open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["monitor_id", "pin_hash"])
        for monitor_id, pin in sorted(pins.items()):
            writer.writerow([monitor_id, hash_pin(pin, pepper=pepper, cost=cost)])


def sms_settings(settings: Mapping[str, Any]) -> Mapping[str, Any]:
    sms = settings.get("sms", {})
    if not isinstance(sms, Mapping):
        raise SmsConfigError("settings.sms must be a table", code="sms.settings_invalid")
    return sms


def normalise_phone(text: str) -> str | None:
    """An Indonesian mobile number as ``08…`` from ``08…``, ``+628…`` or ``628…`` (spaces,
    dashes, dots and brackets ignored); None when it is not one."""
    if not isinstance(text, str):
        return None
    digits = re.sub(r"[\s().-]", "", text)
    if not _PHONE_RE.fullmatch(digits):
        return None
    if digits.startswith("+62"):
        return "0" + digits[3:]
    if digits.startswith("62"):
        return "0" + digits[2:]
    return digits


def phone_directory(deployment: Deployment) -> dict[str, Monitor]:
    """Normalised phone number → monitor, for every monitor with personal data."""
    out: dict[str, Monitor] = {}
    for monitor in deployment.monitors.values():
        if monitor.personal is None:
            continue
        phone = normalise_phone(monitor.personal.phone.reveal())
        if phone is not None:
            out[phone] = monitor
    return out
