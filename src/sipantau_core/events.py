"""What crosses the plugin boundary: report and region events, the desk as a plugin sees
it, and the notification channel port.

:mod:`sipantau_core.hookspecs`, :mod:`sipantau_core.plugins` and :mod:`sipantau_core.notify`
depend on this module; it imports no use case (nothing of :mod:`sipantau_core.desk`), so
the desk can depend on all of them without an import circle. A test over the import
graph keeps it that way (``tests/test_architecture.py``).
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import attrs

from sipantau_core.access import Classification, Principal
from sipantau_core.domain import Report
from sipantau_core.errors import SipantauError
from sipantau_core.results import Receipt

if TYPE_CHECKING:
    from sipantau_core.deployment import Deployment
    from sipantau_core.domain import IncidentCatalogue, RegionCode, Stage, StationCode
    from sipantau_core.ports import Storage, StoredReport
    from sipantau_core.quickcount import ProgressCount
    from sipantau_core.results import IncidentView, StationStatus, Tally
    from sipantau_core.rules import RuleRegistry

__all__ = [
    "Channel",
    "DeliveryError",
    "DeskView",
    "Message",
    "MessageItem",
    "RegionEvent",
    "ReportEvent",
    "parse_clearance",
]

# ---------------------------------------------------------------------------------------
# Events (announced to plugins after the transaction committed)
# ---------------------------------------------------------------------------------------


@attrs.frozen
class ReportEvent:
    """A report lifecycle event for plugins (``kind``: accepted, flagged, corrected,
    overridden, rejected)."""

    kind: str
    report: Report
    receipt: Receipt
    principal: Principal
    at: datetime
    reason: str = ""


@attrs.frozen
class RegionEvent:
    region: str
    contest: str | None
    principal: Principal
    at: datetime


# ---------------------------------------------------------------------------------------
# The desk as plugins and the notifier see it
# ---------------------------------------------------------------------------------------


class DeskView(Protocol):
    """What a plugin's hook (``desk``) and the notifier use of a running desk: its
    deployment, storage, rules, catalogue and clock, and its queries. A
    :class:`~sipantau_core.desk.Desk` is one; typing against this protocol keeps the
    hooks and the notifier free of the use cases."""

    @property
    def deployment(self) -> Deployment: ...

    @property
    def storage(self) -> Storage: ...

    @property
    def rules(self) -> RuleRegistry: ...

    @property
    def incident_categories(self) -> IncidentCatalogue: ...

    @property
    def clock(self) -> Callable[[], datetime]: ...

    def is_released(self, region: RegionCode | str, contest: str) -> bool: ...

    def tally(
        self,
        region: RegionCode | StationCode | str,
        *,
        principal: Principal,
        contest: str | None = None,
    ) -> Tally: ...

    def reports(
        self,
        where: RegionCode | StationCode | str,
        *,
        principal: Principal,
        kind: str | None = None,
        contest: str | None = None,
        heads_only: bool = True,
    ) -> list[tuple[StoredReport, Report]]: ...

    def station_status(
        self,
        where: RegionCode | StationCode | str,
        *,
        principal: Principal,
        now: datetime | None = None,
        contest: str | None = None,
    ) -> list[StationStatus]: ...

    def incidents(
        self,
        where: RegionCode | StationCode | str,
        *,
        principal: Principal,
        stage: Stage | str | None = None,
        category: str | None = None,
        min_severity: int = 1,
    ) -> list[IncidentView]: ...

    def progress(
        self,
        region: RegionCode | str,
        *,
        principal: Principal,
        contest: str | None = None,
        confidence: float = 0.95,
    ) -> ProgressCount[int]: ...


# ---------------------------------------------------------------------------------------
# Messages and the notification channel port
# ---------------------------------------------------------------------------------------


def parse_clearance(value: Any) -> Classification:
    """A clearance from its name (``"public"``, ``"internal"``, ``"restricted"``,
    ``"secret"``) or a :class:`~sipantau_core.access.Classification`."""
    if isinstance(value, Classification):
        return value
    if isinstance(value, str) and value.strip().upper() in Classification.__members__:
        return Classification[value.strip().upper()]
    names = ", ".join(c.name.lower() for c in Classification)
    raise ValueError(f"clearance {value!r} is not one of {names}")


@attrs.frozen
class MessageItem:
    """One alert in a message: its ``key`` (stable: receivers may dedupe by it), kind,
    the line as rendered for the channel's clearance, and when it happened."""

    key: str
    kind: str
    text: str
    at: datetime


@attrs.frozen
class Message:
    """What a channel delivers: one alert or a digest of several for one recipient.

    ``id`` is derived from the alerts it carries (a retry of the same alerts has the same
    id); ``text`` and ``subject`` are already redacted to the channel's ``clearance``."""

    id: str
    channel: str
    recipient: str
    subject: str
    text: str
    items: tuple[MessageItem, ...]
    desk: str
    clearance: Classification
    created_at: datetime

    def as_json(self) -> dict[str, Any]:
        """The message as the webhook channel posts it (``type``, ``timestamp``,
        ``data``), in the style of the Standard Webhooks payloads."""
        return {
            "type": "sipantau.notification",
            "timestamp": self.created_at.isoformat(),
            "data": {
                "desk": self.desk,
                "channel": self.channel,
                "recipient": self.recipient,
                "clearance": self.clearance.name.lower(),
                "subject": self.subject,
                "text": self.text,
                "items": [
                    {"id": i.key, "kind": i.kind, "text": i.text, "at": i.at.isoformat()}
                    for i in self.items
                ],
            },
        }


class DeliveryError(SipantauError):
    """A message was not delivered. ``permanent``: trying again cannot help (the message
    is given up at once); ``retry_after``: the other side said when to try again
    (seconds); ``recipient_only``: only this recipient is affected (a chat's flood
    limit), not the whole channel. The message never holds a secret or an address."""

    code = "notify.delivery_failed"

    def __init__(
        self,
        message: str,
        *,
        permanent: bool = False,
        retry_after: float | None = None,
        recipient_only: bool = False,
        code: str | None = None,
    ):
        super().__init__(message, code=code)
        self.permanent = permanent
        self.retry_after = retry_after
        self.recipient_only = recipient_only


class Channel(abc.ABC):
    """A way out for notifications: a port that adapters fill (webhook, Telegram, email,
    console in ``sipantau_adapters.notify``; a plugin's own through the
    ``sipantau_notification_channel`` hook).

    ``clearance`` is the highest classification the channel may carry: every message is
    rendered for it. ``max_items`` and ``max_chars`` bound one message (a digest longer
    than that is split)."""

    kind: ClassVar[str] = ""

    def __init__(
        self,
        name: str,
        *,
        clearance: Classification | str,
        max_items: int = 20,
        max_chars: int = 4000,
    ):
        if max_items < 1 or max_chars < 200:
            raise ValueError(f"channel {name}: max_items >= 1 and max_chars >= 200")
        self.name = name
        self.clearance = parse_clearance(clearance)
        self.max_items = max_items
        self.max_chars = max_chars

    @abc.abstractmethod
    def send(self, message: Message) -> None:
        """Deliver ``message`` to ``message.recipient``; raise :class:`DeliveryError`
        when it was not delivered."""

    def close(self) -> None:  # noqa: B027 - optional for channels that hold nothing
        """Release connections."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, clearance={self.clearance.name.lower()})"
