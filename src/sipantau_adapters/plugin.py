"""The built-in plugin of sipantau_adapters, registered through the ``sipantau`` entry
point exactly like a third party's: storage for ``memory://``, ``sqlite:///`` and
``postgresql://``; notification channels of the kinds ``webhook``, ``telegram``,
``email`` and ``console``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from sipantau_core import hookimpl
from sipantau_core.deployment import Deployment
from sipantau_core.ports import Storage

if TYPE_CHECKING:
    from sipantau_core.notify import Channel

SQL_SCHEMES = ("sqlite", "postgresql", "postgresql+psycopg", "postgres")


@hookimpl
def sipantau_storage_schemes() -> Iterable[str]:
    return ("memory", *SQL_SCHEMES)


@hookimpl
def sipantau_storage(url: str, deployment: Deployment) -> Storage | None:
    scheme = url.split(":", 1)[0].lower()
    if scheme == "memory":
        from sipantau_adapters.storage.memory import MemoryStorage

        return MemoryStorage(url)
    if scheme in SQL_SCHEMES:
        from sipantau_adapters.storage.sql import SQLStorage

        return SQLStorage(url)
    return None


@hookimpl
def sipantau_notification_channel(
    name: str, kind: str, settings: Mapping[str, Any], deployment: Deployment
) -> Channel | None:
    from sipantau_adapters.notify.factory import make_builtin_channel

    return make_builtin_channel(name, kind, settings, deployment)


@hookimpl
def sipantau_sms_gateway(name: str, settings: Mapping[str, Any]) -> Any | None:
    from sipantau_adapters.sms.plugin import sipantau_sms_gateway as gateway

    return gateway(name=name, settings=settings)


@hookimpl
def sipantau_sms_gateway_names() -> Iterable[str]:
    from sipantau_adapters.sms.gateway import BUILTIN_GATEWAYS

    return tuple(BUILTIN_GATEWAYS)
