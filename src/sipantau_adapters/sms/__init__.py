"""Reporting by SMS from a feature phone: the coded formats, PINs, gateways, the webhook.

See ``docs/sms.md`` (Indonesian and English) for the formats, the replies and how to set
up a gateway.
"""

from __future__ import annotations

from sipantau_adapters.sms.gateway import (
    BUILTIN_GATEWAYS,
    GatewayConfig,
    GatewayError,
    GenericHttpGateway,
    InboundError,
    InboundSms,
    OutboundSms,
    SmsGateway,
    open_gateway,
)
from sipantau_adapters.sms.parser import (
    CATEGORY_SHORT_CODES,
    PARSE_ERROR_CODES,
    SituationMessage,
    SmsMessage,
    SmsParseError,
    TallyMessage,
    parse_sms,
)
from sipantau_adapters.sms.pins import (
    PinBook,
    SmsConfigError,
    hash_pin,
    normalise_phone,
    verify_pin,
    write_pin_csv,
)
from sipantau_adapters.sms.service import REPORT_ID_NAMESPACE, SmsOutcome, SmsPolicy, SmsService
from sipantau_adapters.sms.webhook import sms_routes

__all__ = [
    "BUILTIN_GATEWAYS",
    "CATEGORY_SHORT_CODES",
    "PARSE_ERROR_CODES",
    "REPORT_ID_NAMESPACE",
    "GatewayConfig",
    "GatewayError",
    "GenericHttpGateway",
    "InboundError",
    "InboundSms",
    "OutboundSms",
    "PinBook",
    "SituationMessage",
    "SmsConfigError",
    "SmsGateway",
    "SmsMessage",
    "SmsOutcome",
    "SmsParseError",
    "SmsPolicy",
    "SmsService",
    "TallyMessage",
    "hash_pin",
    "normalise_phone",
    "open_gateway",
    "parse_sms",
    "sms_routes",
    "verify_pin",
    "write_pin_csv",
]
