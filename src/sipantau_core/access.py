"""Who may see and do what: principals, roles, scopes and the access policy.

The desk's information is secret (*rahasia, bukan untuk konsumsi*). Every call of the
desk names a :class:`Principal`; :func:`authorize` decides, and refuses with a
:class:`~sipantau_core.errors.PermissionDenied` that carries a stable code. The whole
matrix is written down in ``docs/confidentiality.md``.
"""

from __future__ import annotations

import enum
from typing import Any

import attrs

from sipantau_core.domain import RegionCode, StationCode
from sipantau_core.errors import PermissionDenied

__all__ = [
    "Action",
    "Classification",
    "Principal",
    "Role",
    "Scope",
    "Target",
    "authorize",
    "is_allowed",
]


class Classification(enum.IntEnum):
    """How secret a record is; a channel may carry what is at or below its clearance."""

    PUBLIC = 0
    INTERNAL = 1
    RESTRICTED = 2
    SECRET = 3


class Role(enum.Enum):
    MONITOR = "monitor"  # pemantau: one TPS
    OFFICER = "officer"  # desk officer: reads and decides within a region
    COORDINATOR = "coordinator"  # runs the desk for a region: releases, personal data
    AUDITOR = "auditor"  # reads who did what, never the figures
    VIEWER = "viewer"  # mayor's office, partner agency, public page: released aggregates
    SYSTEM = "system"  # imports, replays, the desk's own jobs


class Action(enum.Enum):
    SUBMIT = "submit"  # send a report
    READ_REPORTS = "read_reports"  # reports themselves, per TPS (secret)
    READ_TALLY = "read_tally"  # aggregated counts of a region
    READ_STATUS = "read_status"  # which stage reports are in, missing, late
    READ_INCIDENTS = "read_incidents"  # incident details (secret)
    DECIDE = "decide"  # override a flagged tally, reject a report
    RELEASE = "release"  # release a region's aggregates to viewers
    READ_PERSONAL = "read_personal"  # monitors' names, phones, national IDs
    READ_AUDIT = "read_audit"  # the record of who did what
    ENROL = "enrol"  # register a monitor's device key


Scope = RegionCode | StationCode | None
Target = RegionCode | StationCode


def _scope(value: Any) -> Scope:
    if value is None or isinstance(value, RegionCode | StationCode):
        return value
    if not isinstance(value, str):
        raise TypeError(f"scope: expected a region or TPS code, got {type(value).__name__}")
    text = value.strip()
    if text in ("", "*"):
        return None
    if (text.isdigit() and len(text) == 13) or " " in text or "/" in text:
        return StationCode.parse(text)
    return RegionCode.parse(text)


def _role(value: Any) -> Role:
    return value if isinstance(value, Role) else Role(value)


@attrs.frozen
class Principal:
    """Who acts: an id, a role and a scope (a region code, a TPS code for a monitor, or
    ``None`` for the whole country — only for the system role)."""

    id: str = attrs.field(validator=attrs.validators.min_len(1))
    role: Role = attrs.field(converter=_role)
    scope: Scope = attrs.field(default=None, converter=_scope)

    def __attrs_post_init__(self) -> None:
        if self.role is Role.MONITOR and not isinstance(self.scope, StationCode):
            raise ValueError(f"principal {self.id}: a monitor's scope is its TPS code")
        if self.role is not Role.MONITOR and isinstance(self.scope, StationCode):
            raise ValueError(f"principal {self.id}: only a monitor is scoped to one TPS")
        if self.scope is None and self.role is not Role.SYSTEM:
            raise ValueError(f"principal {self.id}: only the system role has no scope")

    def covers(self, target: Target) -> bool:
        """True when ``target`` lies within this principal's scope."""
        if self.scope is None:
            return True
        if isinstance(self.scope, StationCode):
            return isinstance(target, StationCode) and target == self.scope
        return self.scope.contains(target)


_ALL_READS = {Action.READ_REPORTS, Action.READ_TALLY, Action.READ_STATUS, Action.READ_INCIDENTS}

#: What each role may do at all (within its scope).
ROLE_ACTIONS: dict[Role, frozenset[Action]] = {
    Role.MONITOR: frozenset({Action.SUBMIT, *_ALL_READS}),
    Role.OFFICER: frozenset({Action.SUBMIT, *_ALL_READS, Action.DECIDE, Action.ENROL}),
    Role.COORDINATOR: frozenset(
        {
            Action.SUBMIT,
            *_ALL_READS,
            Action.DECIDE,
            Action.ENROL,
            Action.RELEASE,
            Action.READ_PERSONAL,
        }
    ),
    Role.AUDITOR: frozenset({Action.READ_AUDIT}),
    Role.VIEWER: frozenset({Action.READ_TALLY}),
    Role.SYSTEM: frozenset(Action),
}


def _deny(
    code: str, principal: Principal, action: Action, target: Target | None
) -> PermissionDenied:
    where = f" for {target}" if target is not None else ""
    return PermissionDenied(
        f"{principal.role.value} {principal.id!r} may not {action.value}{where}",
        code=code,
        message_id=f"{principal.id} tidak berwenang ({action.value}{where})",
    )


def authorize(
    principal: Principal,
    action: Action,
    target: Target | None = None,
    *,
    released: bool = False,
) -> None:
    """Allow or refuse ``action`` on ``target`` (a region or a TPS).

    ``released`` says whether the target's aggregates were released to viewers; it
    matters for viewers only. Refusals raise :class:`PermissionDenied` with the code
    ``access.role``, ``access.out_of_scope`` or ``access.not_released``.
    """
    if action not in ROLE_ACTIONS[principal.role]:
        raise _deny("access.role", principal, action, target)
    # No target means the whole country: only an unscoped principal (system) covers it.
    if target is None:
        if principal.scope is not None:
            raise _deny("access.out_of_scope", principal, action, target)
    elif not principal.covers(target):
        raise _deny("access.out_of_scope", principal, action, target)
    if principal.role is Role.VIEWER and not released:
        raise _deny("access.not_released", principal, action, target)


def is_allowed(
    principal: Principal, action: Action, target: Target | None = None, *, released: bool = False
) -> bool:
    """:func:`authorize` as a boolean."""
    try:
        authorize(principal, action, target, released=released)
    except PermissionDenied:
        return False
    return True
