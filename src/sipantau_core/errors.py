"""The error hierarchy of sipantau.

Every error the library raises on purpose derives from :class:`SipantauError`
and carries a stable ``code`` (part of the public contract), an English
``message`` for developers and, where a monitor may read it, an Indonesian
``message_id``. Personal data and tally figures never appear in a message.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import attrs

__all__ = [
    "ConflictError",
    "DeploymentError",
    "MediaError",
    "PayloadError",
    "PermissionDenied",
    "Problem",
    "SipantauError",
    "StorageError",
    "UnknownEntityError",
]


class SipantauError(Exception):
    """Base class of every error sipantau raises on purpose."""

    code: str = "sipantau.error"

    def __init__(self, message: str, *, code: str | None = None, message_id: str | None = None):
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message
        self.message_id = message_id if message_id is not None else message

    def __str__(self) -> str:
        return f"[{self.code}] {self.message}"

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuilt as they are (code, messages, problems…), not by calling __init__ again
        # with the message: errors cross process boundaries (the parallel bulk path).
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))


def _rebuild(cls: type[SipantauError], args: tuple[Any, ...], state: dict[str, Any]) -> Any:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


@attrs.frozen
class Problem:
    """One problem found in a payload: where (a JSON path), what (a stable code), and why."""

    path: str
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message} ({self.code})"


class PayloadError(SipantauError):
    """A payload could not be read as a report. ``problems`` lists every problem found."""

    code = "payload.invalid"

    def __init__(self, problems: Iterable[Problem]):
        self.problems: tuple[Problem, ...] = tuple(problems)
        lines = "; ".join(str(p) for p in self.problems) or "no detail"
        super().__init__(
            f"invalid report payload: {lines}",
            message_id=f"laporan tidak dapat dibaca: {lines}",
        )

    @property
    def codes(self) -> Sequence[str]:
        return [p.code for p in self.problems]


class DeploymentError(SipantauError):
    """A deployment directory could not be loaded; names the file, line and field."""

    code = "deployment.invalid"

    def __init__(
        self,
        message: str,
        *,
        file: str,
        line: int | None = None,
        field: str | None = None,
        code: str | None = None,
    ):
        self.file = file
        self.line = line
        self.field = field
        where = file + (f":{line}" if line is not None else "")
        where += f" [{field}]" if field else ""
        super().__init__(f"{where}: {message}", code=code)


class ConflictError(SipantauError):
    """A write conflicts with what the desk holds: the same report id with other content,
    an amendment of a version that is no longer the newest, or a second tally chain for a
    station. Codes: ``report.conflict``, ``report.stale_version``,
    ``report.station_already_reported``, ``report.amends_unknown``, ``report.not_head``."""

    code = "report.conflict"


class PermissionDenied(SipantauError):
    """The principal may not do this. Codes: ``access.role`` (the role may never do it),
    ``access.out_of_scope`` (not within the principal's region or station),
    ``access.not_released`` (a viewer asked for figures not released),
    ``access.wrong_monitor`` (a monitor acting for another monitor),
    ``access.unknown_principal``."""

    code = "access.denied"


class UnknownEntityError(SipantauError):
    """A report names something the deployment lacks. Codes: ``report.unknown_station``,
    ``report.unknown_monitor``, ``report.unknown_contest``,
    ``report.unknown_incident_category``, ``region.unknown``."""

    code = "report.unknown"


class StorageError(SipantauError):
    """The storage failed. ``storage.unavailable``: the database cannot be reached (the
    operation may be retried; nothing was written); ``storage.unknown_scheme``: no plugin
    serves the URL's scheme; ``storage.integrity``: a constraint refused a write."""

    code = "storage.unavailable"


class MediaError(SipantauError):
    """A photo could not be taken. Codes: ``media.invalid_hash`` (not a SHA-256 in
    lowercase hex), ``media.too_large`` (past the desk's ``max_media_bytes``),
    ``media.unsupported_type`` (not JPEG, PNG or WebP by its first bytes),
    ``media.digest_mismatch`` (the bytes' SHA-256 is not the hash named),
    ``media.not_referenced`` (no report of the sender's at the TPS references the hash)."""

    code = "media.invalid"
