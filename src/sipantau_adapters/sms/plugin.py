"""The SMS gateways that ship, as a plugin of the proposed hooks (not registered yet).

These hooks are a proposal for ``sipantau_core.hookspecs`` (see ``docs/sms.md``)::

    @hookspec(firstresult=True)
    def sipantau_sms_gateway(name: str, settings: Mapping[str, Any]) -> SmsGateway | None:
        '''Open the SMS gateway called ``name`` ([settings.sms] gateway) if this plugin
        serves it; ``settings`` is the [settings.sms] table. firstresult.'''

    @hookspec
    def sipantau_sms_gateway_names() -> Iterable[str]:
        '''The gateway names this plugin's sipantau_sms_gateway serves.'''

Until the core declares them, this module must not be registered with a desk's plugin
manager (``check_pending`` would refuse the unknown hooks); :func:`open_gateway` falls
back to the built-ins.
"""

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
