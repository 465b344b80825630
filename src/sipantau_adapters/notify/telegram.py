"""Telegram channel: the Bot API's ``sendMessage`` over httpx, within its rate limits.

Telegram allows a bot about one message a second in a chat and about 30 a second
overall; beyond that it answers 429 with ``parameters.retry_after`` (seconds). The
channel spaces its messages with a :class:`~sipantau_adapters.notify.ratelimit.RateLimiter`
and, on a 429, waits ``retry_after`` before that chat's next message (up to
``max_wait`` seconds within one send; longer, the message goes back to the queue with
that delay). A group upgraded to a supergroup (``migrate_to_chat_id``) is followed.
400 and 403 (no such chat, the bot was removed) give the message up; the rest is retried.

The bot token is part of the API's URL: it never appears in an error, and a filter on
httpx's logger hides it from the request log.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

from sipantau_adapters.notify.ratelimit import RateLimiter
from sipantau_core.access import Classification
from sipantau_core.notify import Channel, DeliveryError, Message

__all__ = ["API_URL", "TelegramChannel"]

API_URL = "https://api.telegram.org"
#: Telegram's limit of a message's text (characters).
MAX_TEXT = 4096


class _HideTokens(logging.Filter):
    """Replaces bot tokens in httpx's request log lines."""

    def __init__(self) -> None:
        super().__init__("sipantau.telegram")
        self.tokens: set[str] = set()
        self._lock = threading.Lock()

    def add(self, token: str) -> None:
        with self._lock:
            self.tokens.add(token)

    def filter(self, record: logging.LogRecord) -> bool:
        tokens = self.tokens
        if not tokens:
            return True
        text = record.getMessage()
        if any(t in text for t in tokens):
            for token in tokens:
                text = text.replace(token, "<token>")
            record.msg, record.args = text, None
        return True


_FILTER = _HideTokens()


def _hide_token_in_logs(token: str) -> None:
    _FILTER.add(token)
    for name in ("httpx", "httpcore"):
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)


class TelegramChannel(Channel):
    """Sends each message to the chat named by its recipient (a chat id such as
    ``-1001234567890`` or ``@channelname``).

    ``client``: an ``httpx.Client`` (tests pass one with ``httpx.MockTransport``);
    ``clock`` and ``sleep`` drive the rate limiter (monotonic seconds)."""

    kind = "telegram"

    def __init__(
        self,
        name: str,
        *,
        token: str,
        clearance: Classification | str,
        client: httpx.Client | None = None,
        api_url: str = API_URL,
        timeout: float = 15.0,
        per_chat_interval: float = 1.0,
        global_per_second: int = 30,
        max_wait: float = 60.0,
        max_retries: int = 5,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        max_items: int = 20,
    ):
        super().__init__(
            name, clearance=clearance, max_items=max_items, max_chars=min(4000, MAX_TEXT)
        )
        if not token:
            raise ValueError(f"telegram channel {name}: no bot token")
        self._token = token
        _hide_token_in_logs(token)
        self._own_client = client is None
        self._client = client if client is not None else httpx.Client(timeout=timeout)
        self._url = f"{api_url.rstrip('/')}/bot{token}/sendMessage"
        self.limiter = RateLimiter(
            per_key_interval=per_chat_interval,
            global_limit=global_per_second,
            clock=clock,
            sleep=sleep,
        )
        self.max_wait = max_wait
        self.max_retries = max_retries
        self._migrated: dict[str, str] = {}

    def _fail(self, what: str, **kwargs: Any) -> DeliveryError:
        return DeliveryError(
            f"telegram {self.name}: {what.replace(self._token, '<token>')}", **kwargs
        )

    def send(self, message: Message) -> None:
        chat = self._migrated.get(message.recipient, message.recipient)
        if not chat:
            raise self._fail(
                "no chat id (the rule's target needs 'channel:chat_id')", permanent=True
            )
        for _ in range(self.max_retries + 1):
            self.limiter.acquire(chat)
            try:
                response = self._client.post(
                    self._url,
                    json={
                        "chat_id": chat,
                        "text": message.text[:MAX_TEXT],
                        "disable_web_page_preview": True,
                    },
                )
            except httpx.HTTPError as e:
                raise self._fail(type(e).__name__) from None
            try:
                data: dict[str, Any] = response.json()
            except ValueError:
                data = {}
            if response.status_code == 200 and data.get("ok"):
                return
            parameters = data.get("parameters") or {}
            description = str(data.get("description", ""))[:200]
            if parameters.get("migrate_to_chat_id"):
                new = str(parameters["migrate_to_chat_id"])
                self._migrated[message.recipient] = chat = new
                continue
            if response.status_code == 429:
                wait = float(
                    parameters.get("retry_after") or response.headers.get("retry-after") or 1
                )
                self.limiter.block(chat, wait)
                if wait > self.max_wait:
                    raise self._fail(
                        f"429 flood control, retry after {wait:g} s",
                        retry_after=wait,
                        recipient_only=True,
                    )
                continue  # acquire() waits out the block
            status = response.status_code
            raise self._fail(f"HTTP {status} {description}".strip(), permanent=status in (400, 403))
        raise self._fail(
            "still flood-limited after retries", recipient_only=True, retry_after=self.max_wait
        )

    def close(self) -> None:
        if self._own_client:
            self._client.close()


def token_from_env(variable: str) -> str:
    """The bot token in the environment variable ``variable``."""
    value = os.environ.get(variable, "")
    if not value:
        raise ValueError(f"the environment variable {variable} (the bot token) is not set")
    return value
