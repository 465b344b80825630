"""Monitors (pemantau) and their personal data, which never shows itself."""

from __future__ import annotations

import hmac
import re
from typing import Any, Final

import attrs
from attrs import validators as v

from sipantau_core.domain.regions import StationCode

__all__ = ["MONITOR_ID_RE", "Monitor", "PersonalData", "Sensitive"]

_HIDDEN: Final = "***"
MONITOR_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_PHONE_RE = re.compile(r"^(?:\+62|62|0)8\d{7,12}$")
_NIK_RE = re.compile(r"^\d{16}$")


class Sensitive:
    """A piece of personal data. Its content never appears in ``repr``, ``str``,
    f-strings, logs or exception messages; call :meth:`reveal` where it is needed."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError("Sensitive holds a string")
        object.__setattr__(self, "_value", value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Sensitive is immutable")

    def reveal(self) -> str:
        """The value itself. Only for code that is allowed to see it."""
        return str(object.__getattribute__(self, "_value"))

    def __repr__(self) -> str:
        return f"Sensitive({_HIDDEN!r})"

    def __str__(self) -> str:
        return _HIDDEN

    def __format__(self, spec: str) -> str:
        return _HIDDEN

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sensitive):
            return NotImplemented
        return hmac.compare_digest(self.reveal().encode(), other.reveal().encode())

    def __hash__(self) -> int:
        return hash((Sensitive, self.reveal()))

    def __reduce__(self) -> tuple[Any, ...]:
        return (Sensitive, (self.reveal(),))

    def __bool__(self) -> bool:
        return bool(self.reveal())


def _sensitive(value: Any) -> Sensitive:
    return value if isinstance(value, Sensitive) else Sensitive(value)


def _normalise_phone(value: Any) -> Sensitive:
    raw = value.reveal() if isinstance(value, Sensitive) else value
    if not isinstance(raw, str):
        raise TypeError("phone: expected a string")
    digits = re.sub(r"[\s().-]", "", raw)
    if not _PHONE_RE.match(digits):
        raise ValueError("phone: not an Indonesian mobile number like 0812… (value hidden)")
    if digits.startswith("+62"):
        digits = "0" + digits[3:]
    elif digits.startswith("62"):
        digits = "0" + digits[2:]
    return Sensitive(digits)


def _check_nik(instance: Any, attribute: attrs.Attribute[Any], value: Sensitive) -> None:
    if not _NIK_RE.match(value.reveal()):
        raise ValueError("national_id: a NIK has 16 digits (value hidden)")


@attrs.frozen(repr=False)
class PersonalData:
    """Name, phone and national ID (NIK) of a person; each held as :class:`Sensitive`."""

    name: Sensitive = attrs.field(converter=_sensitive)
    phone: Sensitive = attrs.field(converter=_normalise_phone)
    national_id: Sensitive = attrs.field(converter=_sensitive, validator=_check_nik)

    @name.validator
    def _check_name(self, attribute: attrs.Attribute[Any], value: Sensitive) -> None:
        if not value.reveal().strip():
            raise ValueError("name: must not be empty")

    def __repr__(self) -> str:
        return "PersonalData(<hidden>)"

    __str__ = __repr__


def _station(value: Any) -> StationCode:
    return StationCode.parse(value)


@attrs.frozen
class Monitor:
    """A pemantau: an id (``LLG-0001``), the TPS it is assigned to, and personal data."""

    id: str = attrs.field(validator=v.matches_re(MONITOR_ID_RE))
    station: StationCode = attrs.field(converter=_station)
    personal: PersonalData | None = attrs.field(
        default=None, validator=v.optional(v.instance_of(PersonalData))
    )
