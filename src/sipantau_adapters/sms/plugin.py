"""The SMS gateways that ship, served through the ``sipantau_sms_gateway`` hook (the
built-in plugin ``sipantau_adapters.plugin`` registers them)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sipantau_adapters.sms.gateway import BUILTIN_GATEWAYS, SmsGateway
from sipantau_core import hookimpl


@hookimpl
def sipantau_sms_gateway(name: str, settings: Mapping[str, Any]) -> SmsGateway | None:
    factory = BUILTIN_GATEWAYS.get(name)
    return factory(settings) if factory is not None else None


@hookimpl
def sipantau_sms_gateway_names() -> Iterable[str]:
    return tuple(BUILTIN_GATEWAYS)
