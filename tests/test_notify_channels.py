"""The notification channels against real counterparts: the webhook channel posts to a
real HTTP server on loopback that verifies with the shipped helper; email goes to a real
SMTP server (aiosmtpd) on loopback; Telegram's Bot API is faked at the edge with
``httpx.MockTransport`` (the only fake), on an injected clock, and enforces its limits.

The servers and the fake here are used by test_notify_burst.py too."""

from __future__ import annotations

import base64
import email
import email.policy
import io
import json
import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import attrs
import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from sipantau_adapters.notify import (
    ConsoleChannel,
    EmailChannel,
    RateLimiter,
    ReplayGuard,
    TelegramChannel,
    WebhookChannel,
    WebhookReplayError,
    WebhookVerificationError,
    new_secret,
    sign,
    verify,
)
from sipantau_adapters.notify.webhook import parse_secret
from sipantau_core import Desk, SipantauError, hookimpl
from sipantau_core.access import Classification
from sipantau_core.deployment import Deployment
from sipantau_core.notify import Channel, DeliveryError, Message, MessageItem
from sipantau_core.testing.contracts import small_deployment

T0 = datetime(2024, 11, 27, 3, 0, tzinfo=UTC)
TOKEN = "7000000001:AAE-canary-bot-token-abcdefghijklmno"
SECRET = "whsec_" + base64.b64encode(b"sipantau-test-webhook-secret-32b").decode()


def message(
    text: str = "Kejadian baru tingkat 3 di TPS 016 Air Kuti: Intimidasi",
    *,
    recipient: str = "-1001",
    msg_id: str = "msg_0123456789abcdef0123456789abcdef",
    clearance: Classification = Classification.RESTRICTED,
) -> Message:
    item = MessageItem("k" * 64, "incident", text, T0)
    return Message(
        id=msg_id,
        channel="ch",
        recipient=recipient,
        subject=f"[Desk] {text}",
        text=f"{text} — buka desk",
        items=(item,),
        desk="Desk",
        clearance=clearance,
        created_at=T0,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# ---------------------------------------------------------------------------------------
# A fake clock for the rate limits
# ---------------------------------------------------------------------------------------


class FakeTime:
    """Monotonic seconds that move only when something sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept = 0.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.now += seconds
        self.slept += seconds


# ---------------------------------------------------------------------------------------
# A real webhook receiver on loopback
# ---------------------------------------------------------------------------------------


class WebhookReceiver:
    """An HTTP server on 127.0.0.1 that verifies every delivery with the shipped
    ``verify`` (tolerance, replay guard) and keeps the verified ones. ``answer`` forces
    a status (e.g. 503) for every request; :meth:`stop` takes it off the network (and
    :meth:`start` puts it back on the same port)."""

    def __init__(self, secret: str = SECRET) -> None:
        self.secret = secret
        self.port = 0
        self.deliveries: list[tuple[dict[str, str], bytes, Any]] = []
        self.raw: list[bytes] = []
        self.replays = 0
        self.refused: list[str] = []
        self.answer: int | None = None
        self.guard = ReplayGuard()
        self._server: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/sipantau"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                with receiver._lock:
                    receiver.raw.append(body)
                    if receiver.answer is not None:
                        self.send_response(receiver.answer)
                        if receiver.answer in (429, 503):
                            self.send_header("Retry-After", "120")
                        self.end_headers()
                        return
                    try:
                        payload = verify(body, headers, receiver.secret, replay=receiver.guard)
                    except WebhookReplayError:
                        receiver.replays += 1
                        status = 200  # processed before: say so, do nothing
                    except WebhookVerificationError as e:
                        receiver.refused.append(e.code)
                        status = 401
                    else:
                        receiver.deliveries.append((headers, body, payload))
                        status = 204
                self.send_response(status)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

    def start(self) -> WebhookReceiver:
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def items(self) -> list[dict[str, Any]]:
        return [item for _, _, p in self.deliveries for item in p["data"]["items"]]


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    r = WebhookReceiver().start()
    yield r
    r.stop()


# ---------------------------------------------------------------------------------------
# Telegram's Bot API, faked at the edge
# ---------------------------------------------------------------------------------------


class FakeTelegram:
    """``sendMessage`` as an ``httpx.MockTransport`` handler on fake time. It enforces
    Telegram's limits (one message a second per chat, 30 a second overall): a request
    beyond them is a *violation* (answered 429). Every ``flood_every``-th request is
    answered 429 with ``retry_after`` = ``flood_seconds`` (Telegram's flood control); a
    request for that chat before the time is up is a violation too. ``down``: the API
    cannot be reached."""

    def __init__(
        self, clock: FakeTime, *, token: str = TOKEN, flood_every: int = 0, flood_seconds: float = 3
    ) -> None:
        self.clock = clock
        self.token = token
        self.flood_every = flood_every
        self.flood_seconds = flood_seconds
        self.accepted: list[tuple[float, str, str]] = []
        self.bodies: list[bytes] = []
        self.violations: list[str] = []
        self.floods = 0
        self.requests = 0
        self.down = False
        self.answers: dict[str, tuple[int, dict[str, Any]]] = {}
        self._last: dict[str, float] = {}
        self._blocked: dict[str, float] = {}
        self._window: deque[float] = deque()

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)

    def client(self) -> httpx.Client:
        return httpx.Client(transport=self.transport())

    def _too_many(self, why: str, retry_after: float = 1) -> httpx.Response:
        return httpx.Response(
            429,
            json={"ok": False, "error_code": 429,
                  "description": f"Too Many Requests: retry after {retry_after:g}",
                  "parameters": {"retry_after": retry_after}},
        )  # fmt: skip

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path == f"/bot{self.token}/sendMessage"
        if self.down:
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
        self.requests += 1
        self.bodies.append(request.content)
        data = json.loads(request.content)
        chat, text, now = str(data["chat_id"]), str(data["text"]), self.clock.now
        if chat in self.answers:
            status, body = self.answers[chat]
            return httpx.Response(status, json=body)
        eps = 1e-6
        if now < self._blocked.get(chat, 0) - eps:
            self.violations.append(f"{chat}: before its retry_after at {now}")
            return self._too_many("flood")
        last = self._last.get(chat)
        if last is not None and now - last < 1 - eps:
            self.violations.append(f"{chat}: {now - last:.3f} s after its last message")
            return self._too_many("chat")
        while self._window and self._window[0] <= now - 1 + eps:
            self._window.popleft()
        if len(self._window) >= 30:
            self.violations.append(f"31st message within one second at {now}")
            return self._too_many("global")
        if self.flood_every and self.requests % self.flood_every == 0:
            self.floods += 1
            self._blocked[chat] = now + self.flood_seconds
            return self._too_many("injected", self.flood_seconds)
        self.accepted.append((now, chat, text))
        self._last[chat] = now
        self._window.append(now)
        return httpx.Response(
            200, json={"ok": True, "result": {"message_id": len(self.accepted), "text": text}}
        )

    def per_chat(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for _, chat, text in self.accepted:
            out.setdefault(chat, []).append(text)
        return out


def telegram(api: FakeTelegram, clock: FakeTime, **kwargs: Any) -> TelegramChannel:
    return TelegramChannel(
        kwargs.pop("name", "tg"),
        token=api.token,
        clearance=kwargs.pop("clearance", "restricted"),
        client=api.client(),
        clock=clock.monotonic,
        sleep=clock.sleep,
        **kwargs,
    )


# ---------------------------------------------------------------------------------------
# A real SMTP server on loopback
# ---------------------------------------------------------------------------------------


class SmtpSink:
    """aiosmtpd on 127.0.0.1 that keeps every message; ``refuse`` lists addresses it
    answers 550; with ``login`` it requires that user and password."""

    def __init__(
        self, *, refuse: frozenset[str] = frozenset(), login: tuple[str, str] | None = None
    ) -> None:
        self.port = free_port()
        self.raw: list[bytes] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.refuse = refuse
        self.login = login
        self._controller: Controller | None = None

    def _handler(self) -> Any:
        sink = self

        class Handler:
            async def handle_RCPT(
                self, server: SMTPServer, session: Session, envelope: Envelope,
                address: str, rcpt_options: list[str],
            ) -> str:  # fmt: skip
                if address in sink.refuse:
                    return "550 5.1.1 mailbox unavailable"
                envelope.rcpt_tos.append(address)
                return "250 OK"

            async def handle_DATA(
                self, server: SMTPServer, session: Session, envelope: Envelope
            ) -> str:
                content = envelope.content
                assert isinstance(content, bytes)
                sink.raw.append(content)
                sink.envelopes.append((str(envelope.mail_from), list(envelope.rcpt_tos)))
                return "250 Message accepted for delivery"

        return Handler()

    def _authenticate(
        self, server: SMTPServer, session: Session, envelope: Envelope, mechanism: str,
        auth_data: Any,
    ) -> AuthResult:  # fmt: skip
        ok = isinstance(auth_data, LoginPassword) and self.login == (
            auth_data.login.decode(),
            auth_data.password.decode(),
        )
        return AuthResult(success=ok)

    def start(self) -> SmtpSink:
        kwargs: dict[str, Any] = {}
        if self.login is not None:
            kwargs = {"authenticator": self._authenticate, "auth_require_tls": False,
                      "auth_required": True}  # fmt: skip
        self._controller = Controller(
            self._handler(), hostname="127.0.0.1", port=self.port, **kwargs
        )
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def messages(self) -> list[EmailMessage]:
        out = []
        for raw in self.raw:
            parsed = email.message_from_bytes(raw, policy=email.policy.default)
            assert isinstance(parsed, EmailMessage)
            out.append(parsed)
        return out

    def bodies(self) -> list[str]:
        out = []
        for m in self.messages():
            body = m.get_body(("plain",))
            assert body is not None
            out.append(str(body.get_content()).replace("\r\n", "\n"))
        return out


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    sink = SmtpSink().start()
    yield sink
    sink.stop()


def mail_channel(sink: SmtpSink, **kwargs: Any) -> EmailChannel:
    return EmailChannel(
        kwargs.pop("name", "surel"),
        host="127.0.0.1",
        port=sink.port,
        sender="desk-pilkada@lubuklinggaukota.go.id",
        clearance=kwargs.pop("clearance", "secret"),
        timeout=kwargs.pop("timeout", 5),
        **kwargs,
    )


# ---------------------------------------------------------------------------------------
# Webhook
# ---------------------------------------------------------------------------------------


def test_a_webhook_delivery_is_signed_and_verified_by_a_real_receiver(
    receiver: WebhookReceiver,
) -> None:
    channel = WebhookChannel("posko", url=receiver.url, secret=SECRET, clearance="internal")
    try:
        channel.send(message(recipient="ops"))
        channel.send(message(recipient="ops"))  # a retry of the same message: the same id
    finally:
        channel.close()
    [(headers, body, payload)] = receiver.deliveries
    assert receiver.replays == 1  # the receiver saw the id again and did not act twice
    assert headers["webhook-id"] == "msg_0123456789abcdef0123456789abcdef"
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 60
    assert headers["webhook-signature"] == sign(
        SECRET, headers["webhook-id"], int(headers["webhook-timestamp"]), body
    )
    assert headers["content-type"] == "application/json"
    assert payload["type"] == "sipantau.notification"
    data = payload["data"]
    assert (data["recipient"], data["clearance"], data["channel"]) == ("ops", "restricted", "ch")
    assert data["text"] == "Kejadian baru tingkat 3 di TPS 016 Air Kuti: Intimidasi — buka desk"
    assert data["items"] == [
        {"id": "k" * 64, "kind": "incident",
         "text": "Kejadian baru tingkat 3 di TPS 016 Air Kuti: Intimidasi",
         "at": "2024-11-27T03:00:00+00:00"}
    ]  # fmt: skip


def test_verify_refuses_tampering_a_wrong_secret_old_or_future_times_and_replays() -> None:
    body = json.dumps({"type": "x", "data": {}}).encode()
    now = 1_732_676_400
    good = {"webhook-id": "msg_1", "webhook-timestamp": str(now),
            "webhook-signature": sign(SECRET, "msg_1", now, body)}  # fmt: skip
    assert verify(body, good, SECRET, now=now) == {"type": "x", "data": {}}
    assert verify(body, {k.upper(): v for k, v in good.items()}, SECRET, now=now + 299)

    def code(
        b: bytes = body, headers: dict[str, str] = good, secret: str = SECRET, at: float = now
    ) -> str:
        with pytest.raises(WebhookVerificationError) as info:
            verify(b, headers, secret, now=at)
        return info.value.code

    assert code(b=body + b" ") == "webhook.bad_signature"
    assert code(secret=new_secret()) == "webhook.bad_signature"
    assert code(at=now + 301) == "webhook.stale"
    assert code(at=now - 301) == "webhook.stale"
    assert code(headers={**good, "webhook-id": "msg_2"}) == "webhook.bad_signature"
    assert code(headers={**good, "webhook-timestamp": str(now + 1)}) == "webhook.bad_signature"
    assert code(headers={**good, "webhook-timestamp": "soon"}) == "webhook.bad_timestamp"
    for name in good:
        missing = {k: v for k, v in good.items() if k != name}
        assert code(headers=missing) == "webhook.missing_header"
    # several signatures (a secret being rotated): one that matches is enough
    rotated = {**good, "webhook-signature": f"v1,AAAA {good['webhook-signature']}"}
    assert verify(body, rotated, SECRET, now=now)
    guard = ReplayGuard()
    assert verify(body, good, SECRET, now=now, replay=guard)
    with pytest.raises(WebhookReplayError) as info:
        verify(body, good, SECRET, now=now + 10, replay=guard)
    assert info.value.code == "webhook.replay"
    assert parse_secret(SECRET) == b"sipantau-test-webhook-secret-32b"
    assert parse_secret("plain") == b"plain"
    assert len(parse_secret(new_secret())) == 32


def test_a_receiver_that_refuses_or_is_down_is_a_failure_to_retry(
    receiver: WebhookReceiver,
) -> None:
    wrong = WebhookChannel("posko", url=receiver.url, secret=new_secret(), clearance="internal")
    channel = WebhookChannel("posko", url=receiver.url, secret=SECRET, clearance="internal")
    try:
        with pytest.raises(DeliveryError) as info:
            wrong.send(message())
        assert (info.value.message, info.value.permanent) == ("webhook posko: HTTP 401", False)
        assert receiver.refused == ["webhook.bad_signature"]
        receiver.answer = 503
        with pytest.raises(DeliveryError) as info:
            channel.send(message())
        assert info.value.retry_after == 120
        receiver.answer = 410
        with pytest.raises(DeliveryError) as info:
            channel.send(message())
        assert info.value.permanent
        receiver.answer = None
        receiver.stop()
        with pytest.raises(DeliveryError) as info:
            channel.send(message())
        assert info.value.message == "webhook posko: ConnectError"
        assert not info.value.permanent
        receiver.start()  # back, on the same port
        channel.send(message())
    finally:
        channel.close()
        wrong.close()
    assert len(receiver.deliveries) == 1


# ---------------------------------------------------------------------------------------
# Telegram
# ---------------------------------------------------------------------------------------


def test_telegram_sends_the_text_to_the_chat_and_waits_out_a_429() -> None:
    clock = FakeTime()
    api = FakeTelegram(clock, flood_seconds=7)
    channel = telegram(api, clock)
    channel.send(message())  # sent at once
    api.flood_every = 2  # the next request is answered 429 retry_after 7
    start = clock.now
    channel.send(message(recipient="-1002"))
    assert api.floods == 1
    assert api.violations == []
    (_, chat1, text1), (t2, chat2, _) = api.accepted
    assert (chat1, chat2) == ("-1001", "-1002")
    assert text1 == "Kejadian baru tingkat 3 di TPS 016 Air Kuti: Intimidasi — buka desk"
    assert t2 - start == pytest.approx(7)  # retry_after honoured, not more
    body = json.loads(api.bodies[0])
    assert body == {"chat_id": "-1001", "text": text1, "disable_web_page_preview": True}


def test_telegram_holds_its_rate_limits_across_many_chats() -> None:
    clock = FakeTime()
    api = FakeTelegram(clock, flood_every=37, flood_seconds=2)
    channel = telegram(api, clock)
    chats = [f"-100{n}" for n in range(45)]
    for round_ in range(8):
        for chat in chats:
            channel.send(message(f"pesan {round_}", recipient=chat))
    assert api.violations == []
    assert api.floods > 5
    assert len(api.accepted) == 45 * 8
    assert all(texts == [f"pesan {r} — buka desk" for r in range(8)]
               for texts in api.per_chat().values())  # fmt: skip
    # 360 messages at 30 a second overall: at least 12 seconds
    assert api.accepted[-1][0] - api.accepted[0][0] >= 11.9


def test_a_long_flood_wait_goes_back_to_the_queue() -> None:
    clock = FakeTime()
    api = FakeTelegram(clock, flood_every=1, flood_seconds=600)
    channel = telegram(api, clock, max_wait=60)
    with pytest.raises(DeliveryError) as info:
        channel.send(message())
    assert (info.value.retry_after, info.value.recipient_only) == (600, True)
    assert clock.slept == 0


@pytest.mark.parametrize(
    ("status", "description", "permanent"),
    [
        (403, "Forbidden: bot was kicked from the supergroup chat", True),
        (400, "Bad Request: chat not found", True),
        (401, "Unauthorized", False),
        (502, "Bad Gateway", False),
    ],
)
def test_telegram_errors(status: int, description: str, permanent: bool) -> None:
    clock = FakeTime()
    api = FakeTelegram(clock)
    api.answers["-1001"] = (status, {"ok": False, "error_code": status, "description": description})
    with pytest.raises(DeliveryError) as info:
        telegram(api, clock).send(message())
    assert info.value.permanent is permanent
    assert info.value.message == f"telegram tg: HTTP {status} {description}"


def test_telegram_follows_a_group_upgraded_to_a_supergroup() -> None:
    clock = FakeTime()
    api = FakeTelegram(clock)
    api.answers["-1001"] = (400, {"ok": False, "error_code": 400,
                                  "description": "Bad Request: group chat was upgraded",
                                  "parameters": {"migrate_to_chat_id": -1009}})  # fmt: skip
    channel = telegram(api, clock)
    channel.send(message())
    channel.send(message())
    assert [chat for _, chat, _ in api.accepted] == ["-1009", "-1009"]


def test_the_bot_token_never_shows(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeTime()
    api = FakeTelegram(clock)
    caplog.set_level(logging.DEBUG)
    channel = telegram(api, clock)
    channel.send(message())
    api.down = True
    with pytest.raises(DeliveryError) as info:
        channel.send(message())
    assert info.value.message == "telegram tg: ConnectError"
    assert TOKEN not in repr(channel) and TOKEN not in str(info.value)
    assert "HTTP Request: POST" in caplog.text  # httpx logged the requests…
    assert "/bot<token>/sendMessage" in caplog.text
    assert TOKEN not in caplog.text  # …without the token


def test_the_rate_limiter() -> None:
    clock = FakeTime()
    limiter = RateLimiter(per_key_interval=1, global_limit=30, clock=clock.monotonic,
                          sleep=clock.sleep)  # fmt: skip
    sent: list[tuple[float, str]] = []
    for i in range(600):
        key = f"chat-{i % 50}"
        limiter.acquire(key)
        sent.append((clock.now, key))
    times = [t for t, _ in sent]
    for i in range(30, len(times)):
        assert times[i] - times[i - 30] >= 1 - 1e-9  # never 31 within a second
    last: dict[str, float] = {}
    for t, key in sent:
        assert key not in last or t - last[key] >= 1 - 1e-9
        last[key] = t
    limiter.block("chat-1", 5)
    before = clock.now
    limiter.acquire("chat-1")
    assert clock.now - before == pytest.approx(5)
    limiter.block(None, 2)
    before = clock.now
    limiter.acquire("chat-2")
    assert clock.now - before == pytest.approx(2)


# ---------------------------------------------------------------------------------------
# Email
# ---------------------------------------------------------------------------------------


def test_an_email_reaches_a_real_smtp_server(smtp: SmtpSink) -> None:
    mail_channel(smtp).send(
        message(recipient="kaban@example.go.id", clearance=Classification.SECRET)
    )
    [mail] = smtp.messages()
    assert smtp.envelopes == [("desk-pilkada@lubuklinggaukota.go.id", ["kaban@example.go.id"])]
    assert mail["To"] == "kaban@example.go.id"
    assert mail["Subject"] == "[Desk] Kejadian baru tingkat 3 di TPS 016 Air Kuti: Intimidasi"
    assert mail["Message-ID"] == "<msg_0123456789abcdef0123456789abcdef@sipantau>"
    assert mail["X-Sipantau-Clearance"] == "secret"
    assert smtp.bodies() == [
        "Kejadian baru tingkat 3 di TPS 016 Air Kuti: Intimidasi — buka desk\n"
    ]


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_an_email_with_a_login() -> None:
    sink = SmtpSink(login=("desk", "rahasia")).start()
    try:
        mail_channel(sink, username="desk", password="rahasia").send(
            message(recipient="kaban@example.go.id")
        )
        with pytest.raises(DeliveryError) as info:
            mail_channel(sink, username="desk", password="salah", timeout=0.5).send(
                message(recipient="kaban@example.go.id")
            )
        assert not info.value.permanent  # a login can be fixed: retried
    finally:
        sink.stop()
    assert len(sink.raw) == 1


def test_a_refused_recipient_is_given_up_and_a_server_down_is_retried() -> None:
    sink = SmtpSink(refuse=frozenset({"nobody@example.go.id"})).start()
    try:
        with pytest.raises(DeliveryError) as info:
            mail_channel(sink).send(message(recipient="nobody@example.go.id"))
        assert info.value.permanent
        assert "nobody" not in info.value.message  # no address in the record
    finally:
        sink.stop()
    with pytest.raises(DeliveryError) as info:
        mail_channel(sink).send(message(recipient="kaban@example.go.id"))
    assert not info.value.permanent
    assert info.value.message == "email surel: ConnectionRefusedError"
    with pytest.raises(DeliveryError) as info:
        mail_channel(sink).send(message(recipient="-1001"))
    assert info.value.permanent


# ---------------------------------------------------------------------------------------
# Console
# ---------------------------------------------------------------------------------------


def test_the_console_channel(caplog: pytest.LogCaptureFixture) -> None:
    out = io.StringIO()
    ConsoleChannel("konsol", clearance="internal", to=out).send(message(recipient=""))
    assert out.getvalue() == (
        "[konsol → *] [Desk] Kejadian baru tingkat 3 di TPS 016 Air Kuti: Intimidasi\n"
        "Kejadian baru tingkat 3 di TPS 016 Air Kuti: Intimidasi — buka desk\n\n"
    )
    caplog.set_level(logging.INFO, logger="sipantau.notify.console")
    ConsoleChannel("konsol", clearance="internal", to="log").send(message())
    assert "buka desk" in caplog.text
    with pytest.raises(ValueError):
        ConsoleChannel("konsol", clearance="internal", to="printer")


# ---------------------------------------------------------------------------------------
# The hook: channels made by kind from the deployment's settings
# ---------------------------------------------------------------------------------------


class OwnTelegram:
    """Makes the ``telegram`` channels itself (here: with the fake API)."""

    def __init__(self, api: FakeTelegram, clock: FakeTime) -> None:
        self.api, self.clock = api, clock
        self.asked: list[tuple[str, str, Deployment]] = []

    @hookimpl
    def sipantau_notification_channel(
        self, name: str, kind: str, settings: Any, deployment: Deployment
    ) -> Channel | None:
        self.asked.append((name, kind, deployment))
        if kind != "telegram":
            return None
        return telegram(self.api, self.clock, name=name, clearance=settings["clearance"])


CHANNELS = {
    "tg": {"kind": "telegram", "clearance": "restricted", "token_env": "T_TOKEN"},
    "posko": {"kind": "webhook", "clearance": "internal", "url": "http://127.0.0.1:9/h",
              "secret_env": "T_SECRET"},
    "surel": {"kind": "email", "clearance": "secret", "host": "127.0.0.1",
              "sender": "desk@example.go.id", "port": 2525},
    "konsol": {"kind": "console", "clearance": "internal", "to": "log"},
}  # fmt: skip


def settings(channels: dict[str, Any]) -> dict[str, Any]:
    return {"notifications": {"channels": channels,
                              "rules": [{"on": "incident", "to": list(channels)}]}}  # fmt: skip


def test_notification_channels_are_made_by_kind_from_the_plugins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("T_TOKEN", TOKEN)
    monkeypatch.setenv("T_SECRET", SECRET)
    dep = attrs.evolve(small_deployment(), settings=settings(CHANNELS))
    with Desk.open(dep, autoload=False) as desk:  # the built-in plugin makes all four
        assert desk.notifier is not None
        made = desk.notifier.channels
        assert {n: type(c) for n, c in made.items()} == {
            "tg": TelegramChannel, "posko": WebhookChannel, "surel": EmailChannel,
            "konsol": ConsoleChannel,
        }  # fmt: skip
        assert {n: c.clearance.name for n, c in made.items()} == {
            "tg": "RESTRICTED", "posko": "INTERNAL", "surel": "SECRET", "konsol": "INTERNAL"
        }  # fmt: skip
        assert TOKEN not in repr(made["tg"])
    clock = FakeTime()
    api = FakeTelegram(clock)
    own = OwnTelegram(api, clock)
    with Desk.open(dep, plugins=[own], autoload=False) as desk:  # asked before the built-in
        assert desk.notifier is not None
        tg = desk.notifier.channels["tg"]
        tg.send(message())
        assert len(api.accepted) == 1
        assert isinstance(desk.notifier.channels["posko"], WebhookChannel)
    assert [(n, k) for n, k, _ in own.asked] == [
        ("tg", "telegram"), ("posko", "webhook"), ("surel", "email"), ("konsol", "console")
    ]  # fmt: skip
    assert all(d is dep for *_, d in own.asked)


@pytest.mark.parametrize(
    ("channels", "code", "words"),
    [
        ({"x": {"kind": "pager", "clearance": "internal"}}, "notify.unknown_kind", "'pager'"),
        ({"tg": {**CHANNELS["tg"], "token_env": "T_MISSING"}}, "notify.config", "T_MISSING"),
        ({"tg": {**CHANNELS["tg"], "token": "in-the-file"}}, "notify.config", "['token']"),
        ({"surel": {**CHANNELS["surel"], "host": ""}}, "notify.config", "host"),
        ({"konsol": {**CHANNELS["konsol"], "to": "printer"}}, "notify.config", "to must"),
    ],
)
def test_a_channel_that_cannot_be_made_stops_the_desk_from_opening(
    monkeypatch: pytest.MonkeyPatch, channels: dict[str, Any], code: str, words: str
) -> None:
    monkeypatch.setenv("T_TOKEN", TOKEN)
    dep = attrs.evolve(small_deployment(), settings=settings(channels))
    with pytest.raises(SipantauError) as info:
        Desk.open(dep, autoload=False)
    assert info.value.code == code
    assert words in str(info.value)
    assert TOKEN not in str(info.value)
