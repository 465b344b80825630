"""Notifications: the right people hear of the right thing, once.

The core side of the desk's notification channels (see ``docs/notifications.md``):

- **events → alerts** (``finding``): an incident (its severity raised at a TPS mapped as
  high-risk), a tally flagged by a hard rule, a TPS silent past a stage deadline (in its
  own time zone), a progress milestone, a quick count that becomes callable;
- **escalation rules** (``routing``, with the :class:`Alert` value and its
  :func:`dedupe_key`): ``[settings.notifications]`` of ``deployment.toml``, which alerts
  go to which channels and recipients;
- **the durable queue** (``delivery``): one :class:`~sipantau_core.ports.NotificationRecord`
  per alert, rule, channel and recipient (unique by its ``dedupe_key``), written in the
  transaction of the report that caused it (or by :meth:`Notifier.tick` before anything
  is sent);
- **digests and redaction** (``redaction``): pending alerts of one channel and recipient
  go out as one message, each line rendered at the channel's clearance: never personal
  data or free text, figures only where the clearance allows;
- **delivery** (``delivery``, the :class:`Notifier`): retried with backoff until sent or
  given up, the outcome recorded.

The imports run one way: ``routing`` imports none of the others, ``redaction`` and
``finding`` import ``routing``, ``delivery`` imports all three.

Channels are :class:`Channel` objects made by plugins (the ``sipantau_notification_channel``
hook); ``sipantau_adapters.notify`` ships webhook, Telegram, email and console channels.
The channel port lives in :mod:`sipantau_core.events`; it is re-exported here, like every
public name of the package's modules.
"""

from __future__ import annotations

from sipantau_core.events import (
    Channel,
    DeliveryError,
    Message,
    MessageItem,
    parse_clearance,
)
from sipantau_core.notify.delivery import Notifier, TickResult, make_channel
from sipantau_core.notify.finding import NOTIFIER
from sipantau_core.notify.redaction import figures_allowed, render_line
from sipantau_core.notify.routing import (
    EVENT_KINDS,
    Alert,
    EscalationRule,
    NotificationSettings,
    Target,
    dedupe_key,
)

__all__ = [
    "EVENT_KINDS",
    "NOTIFIER",
    "Alert",
    "Channel",
    "DeliveryError",
    "EscalationRule",
    "Message",
    "MessageItem",
    "NotificationSettings",
    "Notifier",
    "Target",
    "TickResult",
    "dedupe_key",
    "figures_allowed",
    "make_channel",
    "parse_clearance",
    "render_line",
]
