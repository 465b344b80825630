"""Notification channels: webhook (signed, Standard Webhooks style), Telegram Bot API,
email over SMTP and console; made from ``[settings.notifications.channels]`` by the
built-in plugin. The escalation rules, the queue and redaction are the core's
(:mod:`sipantau_core.notify`); see ``docs/notifications.md``."""

from __future__ import annotations

from sipantau_adapters.notify.console import ConsoleChannel
from sipantau_adapters.notify.factory import BUILTIN_KINDS, make_builtin_channel
from sipantau_adapters.notify.ratelimit import RateLimiter
from sipantau_adapters.notify.runner import TickLoop
from sipantau_adapters.notify.smtp import EmailChannel
from sipantau_adapters.notify.telegram import TelegramChannel
from sipantau_adapters.notify.webhook import (
    ReplayGuard,
    WebhookChannel,
    WebhookReplayError,
    WebhookVerificationError,
    new_secret,
    sign,
    verify,
)

__all__ = [
    "BUILTIN_KINDS",
    "ConsoleChannel",
    "EmailChannel",
    "RateLimiter",
    "ReplayGuard",
    "TelegramChannel",
    "TickLoop",
    "WebhookChannel",
    "WebhookReplayError",
    "WebhookVerificationError",
    "make_builtin_channel",
    "new_secret",
    "sign",
    "verify",
]
