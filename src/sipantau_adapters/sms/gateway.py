"""SMS gateways: messages in through a webhook, replies out through the gateway's HTTP API.

:class:`SmsGateway` is what the SMS channel needs from a gateway; :class:`GenericHttpGateway`
is the one that ships: every URL, field name and the auth header are settings
(:class:`GatewayConfig`, ``[settings.sms.generic]``), so most Indonesian SMS gateways
(and a phone running an SMS-forwarding app) fit without code. :func:`open_gateway` picks
the gateway named in ``[settings.sms] gateway``: the built-in one, or one a plugin serves
through the proposed ``sipantau_sms_gateway`` hook (see ``docs/sms.md``).
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable
from urllib.parse import parse_qsl

import attrs
import httpx

from sipantau_adapters.sms.pins import SmsConfigError, normalise_phone, sms_settings
from sipantau_core.errors import SipantauError

if TYPE_CHECKING:
    from sipantau_core.deployment import Deployment
    from sipantau_core.plugins import Plugins

__all__ = [
    "BUILTIN_GATEWAYS",
    "GatewayConfig",
    "GatewayError",
    "GenericHttpGateway",
    "InboundError",
    "InboundSms",
    "OutboundSms",
    "SmsGateway",
    "open_gateway",
]

log = logging.getLogger(__name__)

#: The most messages one webhook call may carry.
MAX_BATCH = 100
_MAX_ID = 200
_MAX_SENDER = 64


def _clean(text: str) -> str:
    """Text that encodes as UTF-8 (lone surrogates from JSON escapes become "?")."""
    return text.encode("utf-8", "replace").decode("utf-8")


@attrs.frozen
class InboundSms:
    """One message as the gateway delivered it. ``sender`` and ``text`` are never shown
    in ``repr`` (a phone number is personal data, the text may hold figures)."""

    sender: str = attrs.field(repr=False)
    text: str = attrs.field(repr=False)
    message_id: str | None = None
    sent_at: datetime | None = None
    gateway: str = "generic"


@attrs.frozen
class OutboundSms:
    """A reply: ``to`` is the monitor's number as ``08…``; the gateway formats it."""

    to: str = attrs.field(repr=False)
    text: str = attrs.field(repr=False)
    in_reply_to: str | None = None


class InboundError(SipantauError):
    """A webhook call that cannot be read; ``status`` is the HTTP status to answer."""

    code = "inbound.invalid"

    def __init__(self, message: str, *, code: str, status: int = 400):
        super().__init__(message, code=code)
        self.status = status


class GatewayError(SipantauError):
    """The gateway did not take a reply: ``sms.gateway_unreachable`` (network, timeout)
    or ``sms.gateway_refused`` (an HTTP error status)."""

    code = "sms.gateway_refused"


@runtime_checkable
class SmsGateway(Protocol):
    """What the SMS channel needs from a gateway."""

    @property
    def name(self) -> str: ...

    def check_webhook(self, headers: Mapping[str, str], query: Mapping[str, str]) -> bool:
        """True when a webhook call comes from this gateway (its shared token)."""
        ...

    def parse_inbound(self, content_type: str, body: bytes) -> list[InboundSms]:
        """The messages of one webhook call; raises :class:`InboundError`."""
        ...

    def send(self, message: OutboundSms) -> None:
        """Hand a reply to the gateway; raises :class:`GatewayError`."""
        ...

    def close(self) -> None: ...


NumberFormat = Literal["local", "international", "e164"]
BodyFormat = Literal["json", "form"]


def _format(value: Any) -> BodyFormat:
    if value not in ("json", "form"):
        raise ValueError(f"send_format: {value!r} is not 'json' or 'form'")
    return value  # type: ignore[no-any-return]


def _number_format(value: Any) -> NumberFormat:
    if value not in ("local", "international", "e164"):
        raise ValueError(f"number_format: {value!r} is not 'local', 'international' or 'e164'")
    return value  # type: ignore[no-any-return]


def _str_map(value: Any) -> Mapping[str, str]:
    if not isinstance(value, Mapping):
        raise ValueError("extra: must be a table of field = value")
    return {str(k): str(v) for k, v in value.items()}


_s = attrs.validators.instance_of(str)
_HEADER_RE = re.compile(r"[\x20-\x7e]+")


def _header(instance: Any, attribute: Any, value: Any) -> None:
    """A value that can go into an HTTP header (printable ASCII)."""
    if value is not None and not (isinstance(value, str) and _HEADER_RE.fullmatch(value)):
        raise ValueError(f"{attribute.name}: must be printable ASCII text (value hidden)")


def _opt_s(instance: Any, attribute: Any, value: Any) -> None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{attribute.name}: expected text, got {type(value).__name__}")


@attrs.frozen
class GatewayConfig:
    """The generic gateway's settings (``[settings.sms.generic]``; every key optional
    except ``send_url``). Secrets come from the environment: ``auth_value_env`` and
    ``webhook_token_env`` name the variables (``auth_value``/``webhook_token`` set them
    directly, for tests)."""

    send_url: str = attrs.field(validator=_s)
    send_format: BodyFormat = attrs.field(default="json", converter=_format)
    to_field: str = attrs.field(default="to", validator=_s)
    text_field: str = attrs.field(default="message", validator=_s)
    reply_to_field: str | None = attrs.field(default=None, validator=_opt_s)
    number_format: NumberFormat = attrs.field(default="international", converter=_number_format)
    extra: Mapping[str, str] = attrs.field(factory=dict, converter=_str_map)
    auth_header: str = attrs.field(default="Authorization", validator=_header)
    auth_value: str | None = attrs.field(default=None, validator=_header, repr=False)
    timeout: float = attrs.field(default=10.0, converter=float)
    inbound_from: str = attrs.field(default="from", validator=_s)
    inbound_text: str = attrs.field(default="text", validator=_s)
    inbound_id: str | None = attrs.field(default="id", validator=_opt_s)
    inbound_time: str | None = attrs.field(default="timestamp", validator=_opt_s)
    webhook_token: str | None = attrs.field(default=None, validator=_opt_s, repr=False)
    webhook_token_header: str = attrs.field(default="X-Webhook-Token", validator=_s)
    webhook_token_query: str | None = attrs.field(default="token", validator=_opt_s)

    @classmethod
    def from_settings(cls, table: Mapping[str, Any]) -> GatewayConfig:
        """Build from a settings table, reading the ``*_env`` secrets from the
        environment; an unknown key or a missing variable is a :class:`SmsConfigError`."""
        values = dict(table)
        for key in ("auth_value", "webhook_token"):
            env = values.pop(f"{key}_env", None)
            if env:
                secret = os.environ.get(str(env))
                if not secret:
                    raise SmsConfigError(
                        f"the environment variable {env} (settings.sms.generic.{key}_env) is "
                        "not set",
                        code="sms.secret_missing",
                    )
                values[key] = secret
        known = {a.name for a in attrs.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise SmsConfigError(
                f"settings.sms.generic: unknown key(s) {unknown}", code="sms.settings_invalid"
            )
        try:
            return cls(**values)
        except (TypeError, ValueError) as e:
            raise SmsConfigError(
                f"settings.sms.generic: {e}", code="sms.settings_invalid"
            ) from None


def _path(data: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(data, Mapping) or part not in data:
            return None
        data = data[part]
    return data


def _scalar(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | str):
        return _clean(str(value)).strip() or None
    return None


def _parse_time(value: Any) -> datetime | None:
    """An aware time from epoch seconds (or milliseconds) or ISO 8601 (naive: UTC)."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        if isinstance(value, str) and value.strip().replace(".", "", 1).isdigit():
            value = float(value)
        if isinstance(value, int | float):
            seconds = float(value) / (1000 if value > 1e11 else 1)
            return datetime.fromtimestamp(seconds, UTC)
        if isinstance(value, str):
            at = datetime.fromisoformat(value.strip())
            return at if at.tzinfo is not None else at.replace(tzinfo=UTC)
    except (ValueError, OverflowError, OSError):
        return None
    return None


class GenericHttpGateway:
    """A gateway configured entirely by :class:`GatewayConfig`.

    Inbound: a form-encoded body or JSON (one object, or a list of objects) with the
    sender, the text and optionally the gateway's message id and time under the
    configured field names (dotted paths reach into nested JSON). Outbound: a POST of the
    recipient and the text (JSON or form) with the auth header, through ``httpx``.
    """

    def __init__(
        self,
        config: GatewayConfig,
        *,
        name: str = "generic",
        transport: httpx.BaseTransport | None = None,
    ):
        self.config = config
        self._name = name
        self._client = httpx.Client(transport=transport, timeout=config.timeout)

    @classmethod
    def from_settings(
        cls, settings: Mapping[str, Any], *, transport: httpx.BaseTransport | None = None
    ) -> GenericHttpGateway:
        """From the ``[settings.sms]`` table (its ``generic`` sub-table)."""
        table = settings.get("generic")
        if not isinstance(table, Mapping):
            raise SmsConfigError(
                "settings.sms.generic: a table with at least send_url is required",
                code="sms.settings_invalid",
            )
        config = GatewayConfig.from_settings(table)
        if config.webhook_token is None:
            log.warning("sms: the generic gateway's webhook has no token; anyone may post to it")
        return cls(config, transport=transport)

    @property
    def name(self) -> str:
        return self._name

    def close(self) -> None:
        self._client.close()

    # -- inbound ---------------------------------------------------------------------------

    def check_webhook(self, headers: Mapping[str, str], query: Mapping[str, str]) -> bool:
        expected = self.config.webhook_token
        if expected is None:
            return True
        given = headers.get(self.config.webhook_token_header.lower()) or headers.get(
            self.config.webhook_token_header
        )
        if given is None and self.config.webhook_token_query:
            given = query.get(self.config.webhook_token_query)
        if given is None:
            return False
        return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))

    def parse_inbound(self, content_type: str, body: bytes) -> list[InboundSms]:
        media = content_type.split(";", 1)[0].strip().lower()
        if media == "application/json" or media.endswith("+json"):
            try:
                data = json.loads(body)
            except (ValueError, RecursionError):
                raise InboundError(
                    "the body is not valid JSON", code="inbound.invalid_json"
                ) from None
            items = data if isinstance(data, list) else [data]
            if not items or len(items) > MAX_BATCH:
                raise InboundError(
                    f"expected 1 to {MAX_BATCH} messages, got {len(items)}",
                    code="inbound.batch_size",
                    status=422,
                )
            return [self._message(item) for item in items]
        if media in ("application/x-www-form-urlencoded", ""):
            try:
                pairs = parse_qsl(
                    body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=100
                )
            except ValueError:
                raise InboundError(
                    "the form has too many fields", code="inbound.invalid_form"
                ) from None
            form: dict[str, str] = {}
            for key, value in pairs:
                form.setdefault(key, value)
            return [self._message(form)]
        raise InboundError(
            f"unsupported content type {media!r} (form-encoded or JSON)",
            code="inbound.content_type",
            status=415,
        )

    def _message(self, item: Any) -> InboundSms:
        if not isinstance(item, Mapping):
            raise InboundError("a message must be an object", code="inbound.invalid", status=422)
        config = self.config
        sender = _scalar(_path(item, config.inbound_from))
        text = _path(item, config.inbound_text)
        if sender is None or not isinstance(text, str):
            raise InboundError(
                f"the fields {config.inbound_from!r} and {config.inbound_text!r} are required",
                code="inbound.missing_field",
                status=422,
            )
        if len(sender) > _MAX_SENDER:
            raise InboundError("the sender is too long", code="inbound.invalid", status=422)
        message_id = (
            _scalar(_path(item, config.inbound_id)) if config.inbound_id is not None else None
        )
        if message_id is not None and len(message_id) > _MAX_ID:
            raise InboundError("the message id is too long", code="inbound.invalid", status=422)
        sent_at = (
            _parse_time(_path(item, config.inbound_time))
            if config.inbound_time is not None
            else None
        )
        return InboundSms(
            sender=sender,
            text=_clean(text),
            message_id=message_id,
            sent_at=sent_at,
            gateway=self.name,
        )

    # -- outbound --------------------------------------------------------------------------

    def format_number(self, phone: str) -> str:
        """``08…`` as the gateway wants it (``628…``, ``+628…`` or ``08…``)."""
        local = normalise_phone(phone) or phone
        if self.config.number_format == "local":
            return local
        international = "62" + local[1:] if local.startswith("0") else local
        return "+" + international if self.config.number_format == "e164" else international

    def send(self, message: OutboundSms) -> None:
        config = self.config
        payload: dict[str, str] = dict(config.extra)
        payload[config.to_field] = self.format_number(message.to)
        payload[config.text_field] = _clean(message.text)
        if config.reply_to_field and message.in_reply_to:
            payload[config.reply_to_field] = message.in_reply_to
        headers = {config.auth_header: config.auth_value} if config.auth_value else {}
        try:
            if config.send_format == "json":
                response = self._client.post(config.send_url, json=payload, headers=headers)
            else:
                response = self._client.post(config.send_url, data=payload, headers=headers)
        except httpx.HTTPError as e:
            raise GatewayError(
                f"the gateway {self.name} could not be reached: {type(e).__name__}",
                code="sms.gateway_unreachable",
            ) from None
        if response.status_code >= 300:
            raise GatewayError(
                f"the gateway {self.name} answered HTTP {response.status_code}",
                code="sms.gateway_refused",
            )


GatewayFactory = Callable[[Mapping[str, Any]], SmsGateway]

#: The gateways that ship, by the name used in ``[settings.sms] gateway``.
BUILTIN_GATEWAYS: Mapping[str, GatewayFactory] = {"generic": GenericHttpGateway.from_settings}


def open_gateway(
    deployment: Deployment,
    *,
    plugins: Plugins | None = None,
    transport: httpx.BaseTransport | None = None,
) -> SmsGateway:
    """The gateway named by ``[settings.sms] gateway`` (default ``generic``).

    Plugins answer first through the *firstresult* hook ``sipantau_sms_gateway(name,
    settings)`` (external plugins before the built-in one); then the built-ins.
    ``transport`` (for tests) goes to the built-in generic gateway."""
    settings = sms_settings(deployment.settings)
    name = str(settings.get("gateway", "generic"))
    if plugins is not None and (name != "generic" or transport is None):
        found: SmsGateway | None = plugins.sms_gateway(name, settings)
        if found is not None:
            return found
    if name == "generic":
        return GenericHttpGateway.from_settings(settings, transport=transport)
    factory = BUILTIN_GATEWAYS.get(name)
    if factory is None:
        raise SmsConfigError(
            f"no SMS gateway named {name!r} (built-in: {sorted(BUILTIN_GATEWAYS)})",
            code="sms.unknown_gateway",
        )
    return factory(settings)
