"""The built-in channel kinds made from ``[settings.notifications.channels.NAME]``.

Secrets are never written in ``deployment.toml``: the table names the environment
variable that holds each (``token_env``, ``secret_env``, ``password_env``).

=========  ==========================================================================
kind       settings (besides ``kind`` and ``clearance``)
=========  ==========================================================================
webhook    ``url``, ``secret_env``; ``timeout``, ``max_items``
telegram   ``token_env``; ``api_url``, ``per_chat_interval``, ``global_per_second``,
           ``max_wait``, ``max_items``
email      ``host``, ``sender``; ``port``, ``starttls``, ``ssl``, ``username_env``,
           ``password_env``, ``timeout``, ``max_items``
console    ``to`` (``stderr``, ``stdout`` or ``log``); ``max_items``
=========  ==========================================================================
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from sipantau_core.deployment import Deployment
from sipantau_core.errors import SipantauError
from sipantau_core.notify import Channel, parse_clearance

__all__ = ["BUILTIN_KINDS", "make_builtin_channel"]


class _Reader:
    def __init__(self, name: str, settings: Mapping[str, Any], allowed: set[str]):
        self.name = name
        self.settings = settings
        unknown = set(settings) - allowed - {"kind", "clearance"}
        if unknown:
            raise self.error(f"unknown settings {sorted(unknown)} (known: {sorted(allowed)})")

    def error(self, why: str) -> SipantauError:
        return SipantauError(
            f"[settings.notifications.channels.{self.name}]: {why}", code="notify.config"
        )

    def text(self, key: str, default: str | None = None) -> str:
        value = self.settings.get(key, default)
        if not isinstance(value, str) or not value:
            raise self.error(f"{key} is required (text)")
        return value

    def secret(self, key: str, *, required: bool = True) -> str | None:
        variable = self.settings.get(key)
        if variable is None and not required:
            return None
        if not isinstance(variable, str) or not variable:
            raise self.error(f"{key} must name the environment variable that holds the secret")
        value = os.environ.get(variable)
        if not value:
            raise self.error(f"the environment variable {variable} ({key}) is not set")
        return value

    def number(self, key: str, default: float) -> float:
        value = self.settings.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise self.error(f"{key} must be a positive number")
        return float(value)

    def whole(self, key: str, default: int) -> int:
        value = self.settings.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise self.error(f"{key} must be a positive whole number")
        return value

    def flag(self, key: str) -> bool:
        value = self.settings.get(key, False)
        if not isinstance(value, bool):
            raise self.error(f"{key} must be true or false")
        return value


def _webhook(name: str, settings: Mapping[str, Any]) -> Channel:
    from sipantau_adapters.notify.webhook import WebhookChannel

    r = _Reader(name, settings, {"url", "secret_env", "timeout", "max_items"})
    secret = r.secret("secret_env")
    assert secret is not None
    return WebhookChannel(
        name,
        url=r.text("url"),
        secret=secret,
        clearance=parse_clearance(settings["clearance"]),
        timeout=r.number("timeout", 10.0),
        max_items=r.whole("max_items", 50),
    )


def _telegram(name: str, settings: Mapping[str, Any]) -> Channel:
    from sipantau_adapters.notify.telegram import API_URL, TelegramChannel

    r = _Reader(
        name,
        settings,
        {"token_env", "api_url", "per_chat_interval", "global_per_second", "max_wait",
         "max_items", "timeout"},
    )  # fmt: skip
    token = r.secret("token_env")
    assert token is not None
    return TelegramChannel(
        name,
        token=token,
        clearance=parse_clearance(settings["clearance"]),
        api_url=r.text("api_url", API_URL),
        per_chat_interval=r.number("per_chat_interval", 1.0),
        global_per_second=r.whole("global_per_second", 30),
        max_wait=r.number("max_wait", 60.0),
        timeout=r.number("timeout", 15.0),
        max_items=r.whole("max_items", 20),
    )


def _email(name: str, settings: Mapping[str, Any]) -> Channel:
    from sipantau_adapters.notify.smtp import EmailChannel

    r = _Reader(
        name,
        settings,
        {"host", "sender", "port", "starttls", "ssl", "username_env", "password_env",
         "timeout", "max_items"},
    )  # fmt: skip
    username = r.secret("username_env", required=False)
    return EmailChannel(
        name,
        host=r.text("host"),
        sender=r.text("sender"),
        clearance=parse_clearance(settings["clearance"]),
        port=r.whole("port", 465 if r.flag("ssl") else 587 if r.flag("starttls") else 25),
        username=username,
        password=r.secret("password_env", required=username is not None),
        starttls=r.flag("starttls"),
        use_ssl=r.flag("ssl"),
        timeout=r.number("timeout", 30.0),
        max_items=r.whole("max_items", 100),
    )


def _console(name: str, settings: Mapping[str, Any]) -> Channel:
    from sipantau_adapters.notify.console import ConsoleChannel

    r = _Reader(name, settings, {"to", "max_items"})
    to = r.text("to", "stderr")
    if to not in ("stderr", "stdout", "log"):
        raise r.error("to must be stderr, stdout or log")
    return ConsoleChannel(
        name,
        clearance=parse_clearance(settings["clearance"]),
        to=to,
        max_items=r.whole("max_items", 50),
    )


#: kind → factory(name, settings)
BUILTIN_KINDS: dict[str, Callable[[str, Mapping[str, Any]], Channel]] = {
    "webhook": _webhook,
    "telegram": _telegram,
    "email": _email,
    "console": _console,
}


def make_builtin_channel(
    name: str, kind: str, settings: Mapping[str, Any], deployment: Deployment
) -> Channel | None:
    """A built-in channel of ``kind`` configured by ``settings``; ``None`` for a kind that
    is not built in. Raises ``SipantauError`` (``notify.config``) for bad settings or a
    secret missing from the environment."""
    factory = BUILTIN_KINDS.get(kind)
    if factory is None:
        return None
    try:
        return factory(name, settings)
    except ValueError as e:
        raise SipantauError(
            f"[settings.notifications.channels.{name}]: {e}", code="notify.config"
        ) from None
