"""Fuzzing the SMS channel with hypothesis.

- every spelling the documentation allows reads back the numbers it was made from;
- random text and mutated valid messages give a message or an SmsParseError with one of
  the documented codes, never another exception;
- the service never raises on any text from any sender;
- the webhook never answers 5xx, whatever the body, content type or token.
"""

from __future__ import annotations

import json
import string
from typing import Any

import anyio
import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.routing import Mount

from sipantau_adapters.sms import (
    CATEGORY_SHORT_CODES,
    PARSE_ERROR_CODES,
    GatewayConfig,
    GenericHttpGateway,
    InboundSms,
    PinBook,
    SituationMessage,
    SmsParseError,
    SmsService,
    TallyMessage,
    hash_pin,
    parse_sms,
    sms_routes,
)
from sipantau_adapters.storage.memory import MemoryStorage
from sipantau_core import Desk, SecurityStatus, Stage
from sipantau_core.domain import MAX_COUNT
from test_sms import CHEAP, PINS, SEND_URL, TOKEN, Clock, sms_deployment

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ---------------------------------------------------------------------------------------
# Strategies: valid messages in every documented spelling
# ---------------------------------------------------------------------------------------

SEPARATORS = st.sampled_from([" ", "  ", "#", "*", " # ", ", ", "\n", " . ", "=", ";"])


def case(word: str) -> st.SearchStrategy[str]:
    return st.sampled_from([word.upper(), word.lower(), word.capitalize()])


@st.composite
def spelled(draw: st.DrawFn, value: int | str, zeros: int = 2) -> str:
    """A number (or PIN) typed with O for 0 and l/I for 1 here and there, and maybe
    leading zeros."""
    digits = str(value) if isinstance(value, int) else value
    if isinstance(value, int) and draw(st.booleans()):
        digits = "0" * draw(st.integers(0, zeros)) + digits
    out = []
    for c in digits:
        if c == "0":
            out.append(draw(st.sampled_from(["0", "0", "O", "o"])))
        elif c == "1":
            out.append(draw(st.sampled_from(["1", "1", "l", "I"])))
        else:
            out.append(c)
    return "".join(out)


def _has_digit(text: str) -> bool:
    return any("0" <= c <= "9" for c in text)


@st.composite
def keyword_and_pin(draw: st.DrawFn, aliases: list[str], pin: str) -> str:
    word = draw(case(draw(st.sampled_from(aliases))))
    typed = draw(spelled(pin))
    if _has_digit(typed) and draw(st.booleans()):
        return word + typed
    return word + draw(SEPARATORS) + typed


PINS_ST = st.from_regex(r"[0-9]{4,6}", fullmatch=True)
COUNTS = st.integers(0, MAX_COUNT)


@st.composite
def tally_texts(draw: st.DrawFn) -> tuple[str, TallyMessage]:
    pin = draw(PINS_ST)
    votes = draw(st.lists(COUNTS, min_size=1, max_size=4))
    valid, invalid, total = draw(COUNTS), draw(COUNTS), draw(COUNTS)
    correction = draw(st.booleans())
    aliases = ["KOREKSI", "KOR", "K"] if correction else ["HASIL", "HSL", "H", "HAS1L"]
    parts = [draw(keyword_and_pin(aliases, pin))]
    parts += [draw(spelled(v)) for v in votes]
    if draw(st.booleans()):
        parts += [draw(spelled(n)) for n in (valid, invalid, total)]
    else:
        labels = {
            "valid": (["SAH", "S"], valid),
            "invalid": (["TS", "TSAH", "TIDAKSAH", "TDKSAH", "TIDAK SAH", "TDK SAH"], invalid),
            "total": (["TOTAL", "TOT", "JUMLAH", "JML", "T"], total),
        }
        for key in draw(st.permutations(["valid", "invalid", "total"])):
            names, value = labels[key]
            label = draw(case(draw(st.sampled_from(names))))
            number = draw(spelled(value))
            if " " not in label and _has_digit(number) and draw(st.booleans()):
                parts.append(label + number)
            else:
                label = label.replace(" ", draw(SEPARATORS))
                parts.append(label + draw(SEPARATORS) + number)
    text = draw(st.sampled_from(["", " ", "  "]))
    for i, part in enumerate(parts):
        text += (draw(SEPARATORS) if i else "") + part
    expected = TallyMessage(
        pin=pin,
        votes=tuple(votes),
        valid=valid,
        invalid=invalid,
        total=total,
        correction=correction,
    )
    return text + draw(st.sampled_from(["", " ", ".", "\n"])), expected


STAGE_WORDS = {
    Stage.PREPARATION: ["SIAP", "PERSIAPAN"],
    Stage.OPENING: ["BUKA", "PEMBUKAAN"],
    Stage.VOTING: ["PILIH", "PEMUNGUTAN", "COBLOS"],
    Stage.COUNTING: ["HITUNG", "PENGHITUNGAN"],
    Stage.HANDOVER: ["SERAH", "PENYERAHAN"],
}
STATUS_WORDS = {
    SecurityStatus.SAFE: ["AMAN", "A"],
    SecurityStatus.ALERT: ["WASPADA", "W"],
    SecurityStatus.DISTURBED: ["GANGGUAN", "G"],
}
WORDS = st.text(alphabet=string.ascii_letters, min_size=2, max_size=8)


@st.composite
def situation_texts(draw: st.DrawFn) -> tuple[str, SituationMessage]:
    pin = draw(PINS_ST)
    stage = draw(st.sampled_from(list(Stage)))
    status = draw(st.sampled_from(list(SecurityStatus)))
    first = draw(keyword_and_pin(["LAPOR", "LAPORAN", "LAP", "SITUASI", "SIT", "L", "S"], pin))
    words = [
        draw(case(draw(st.sampled_from(STAGE_WORDS[stage])))),
        draw(case(draw(st.sampled_from(STATUS_WORDS[status])))),
    ]
    if draw(st.booleans()):
        words.reverse()
    parts = [first, *words]
    category = severity = None
    note = ""
    if draw(st.booleans()):
        short, category = draw(st.sampled_from(sorted(CATEGORY_SHORT_CODES.items())))
        parts.append(
            draw(
                st.sampled_from([short, short.lower(), category, category.upper().replace("_", "")])
            )
        )
        if draw(st.booleans()):
            severity = draw(st.integers(1, 4))
            parts.append(draw(spelled(severity, zeros=1).filter(_has_digit)))
        note_words = draw(st.lists(WORDS, max_size=5))
        if note_words:
            parts.append("  ".join(note_words))
            note = " ".join(note_words)
    text = ""
    for i, part in enumerate(parts):
        text += (draw(SEPARATORS) if i else "") + part
    expected = SituationMessage(
        pin=pin, stage=stage, status=status, category=category, severity=severity, text=note
    )
    return text, expected


@given(tally_texts())
@FUZZ
def test_every_documented_tally_spelling_reads_back(case: tuple[str, TallyMessage]) -> None:
    text, expected = case
    assert parse_sms(text) == expected


@given(situation_texts())
@FUZZ
def test_every_documented_situation_spelling_reads_back(
    case: tuple[str, SituationMessage],
) -> None:
    text, expected = case
    assert parse_sms(text) == expected


# ---------------------------------------------------------------------------------------
# Only documented errors
# ---------------------------------------------------------------------------------------


def parse_or_error(text: str) -> TallyMessage | SituationMessage | SmsParseError:
    try:
        return parse_sms(text)
    except SmsParseError as e:
        assert e.code in PARSE_ERROR_CODES, e.code
        assert e.message_id and isinstance(e.message_id, str)
        return e


@given(st.text(max_size=300))
@FUZZ
def test_random_text_gives_a_message_or_a_documented_error(text: str) -> None:
    parse_or_error(text)


SMS_ALPHABET = st.sampled_from(
    [*(string.ascii_letters + string.digits + " #*.,;:=/+-_\n\t"), "é", "\u00a0", "٣", "²"]
)


@st.composite
def mutated(draw: st.DrawFn) -> str:
    text, _ = draw(st.one_of(tally_texts(), situation_texts()))
    chars = list(text)
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["insert", "delete", "replace", "swapcase", "duplicate"]))
        at = draw(st.integers(0, max(len(chars) - 1, 0)))
        if op == "insert":
            chars.insert(at, draw(SMS_ALPHABET))
        elif chars and op == "delete":
            del chars[at]
        elif chars and op == "replace":
            chars[at] = draw(SMS_ALPHABET)
        elif chars and op == "swapcase":
            chars[at] = chars[at].swapcase()
        elif chars:
            chars.insert(at, chars[at])
    return "".join(chars)


@given(mutated())
@FUZZ
def test_mutated_messages_give_a_message_or_a_documented_error(text: str) -> None:
    parse_or_error(text)


@given(mutated(), st.integers(0, 400), st.sampled_from(["7919", "l7919", "7919X", "97919"]))
@FUZZ
def test_errors_never_repeat_a_figure_outside_the_reply_detail(
    text: str, at: int, canary: str
) -> None:
    """Errors are logged; what the sender typed (figures, a PIN) only goes back to the
    sender in ``detail_id``."""
    result = parse_or_error(text[:at] + " " + canary + " " + text[at:])
    if isinstance(result, SmsParseError):
        for surface in (str(result), repr(result), result.message, result.message_id):
            assert "7919" not in surface


@given(st.text(max_size=1200))
@settings(max_examples=50, deadline=None)
def test_long_text_is_refused_by_length_only(text: str) -> None:
    result = parse_or_error(text)
    if len(text) > 1000:
        assert isinstance(result, SmsParseError) and result.code == "sms.too_long"


# ---------------------------------------------------------------------------------------
# The service and the webhook
# ---------------------------------------------------------------------------------------


class Api:
    def __init__(self) -> None:
        self.sent = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.sent += 1
        json.loads(request.content)
        return httpx.Response(200)


def make_service() -> tuple[SmsService, Api]:
    api = Api()
    config = GatewayConfig(send_url=SEND_URL, webhook_token=TOKEN)
    gateway = GenericHttpGateway(config, transport=httpx.MockTransport(api))
    desk = Desk.open(sms_deployment(), storage=MemoryStorage(), clock=Clock())
    pins = PinBook({k: hash_pin(v, cost=CHEAP) for k, v in PINS.items()})
    return SmsService(desk, gateway, pins), api


SENDERS = st.sampled_from(
    ["081234567801", "+6281234567801", "6281234567802", "+6281234567803", "085299990000", "X"]
)
TEXTS = st.one_of(
    st.text(max_size=200),
    mutated(),
    tally_texts().map(lambda c: c[0]),
    situation_texts().map(lambda c: c[0]),
    st.sampled_from(
        [
            "HASIL 1234 130 220 SAH 350 TS 15 TOTAL 365",
            "KOREKSI 1234 130 230 SAH 350 TS 15 TOTAL 365",
            "HASIL 4321 100 100 SAH 200 TS 5 TOTAL 205",
            "LAPOR 2468 BUKA AMAN PU 3 amplop",
            "HASIL 9999 1 2 3 4",
        ]
    ),
)


@given(st.lists(st.tuples(SENDERS, TEXTS, st.none() | st.text(max_size=5)), max_size=8))
@settings(max_examples=100, deadline=None)
def test_the_service_never_raises(messages: list[tuple[str, str, str | None]]) -> None:
    service, api = make_service()
    replies = 0
    for sender, text, message_id in messages:
        out = service.receive(InboundSms(sender, text, message_id or None))
        replies += out.reply_sent
        assert out.reply is None or out.reply.strip()
    assert api.sent == replies


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
MESSAGE_OBJECTS = st.fixed_dictionaries(
    {},
    optional={
        "from": SENDERS | JSON_VALUES,
        "text": TEXTS | JSON_VALUES,
        "id": st.text(max_size=300) | JSON_VALUES,
        "timestamp": st.integers() | st.floats() | st.text(max_size=30) | JSON_VALUES,
    },
)


@st.composite
def requests(draw: st.DrawFn) -> dict[str, Any]:
    headers: dict[str, str] = {}
    token = draw(st.sampled_from([TOKEN, TOKEN, None, "salah"]))
    if token is not None:
        headers["X-Webhook-Token"] = token
    kind = draw(st.sampled_from(["json", "form", "raw"]))
    if kind == "json":
        body = draw(MESSAGE_OBJECTS | st.lists(MESSAGE_OBJECTS, max_size=4) | JSON_VALUES)
        return {
            "content": json.dumps(body).encode(),
            "headers": {**headers, "content-type": "application/json"},
        }
    if kind == "form":
        fields = draw(
            st.dictionaries(
                st.sampled_from(["from", "text", "id", "timestamp"]) | st.text(max_size=5),
                st.text(max_size=60) | SENDERS | TEXTS,
                max_size=5,
            )
        )
        return {"data": fields, "headers": headers}
    content_type = draw(
        st.sampled_from(["", "application/json", "application/x-www-form-urlencoded", "text/plain"])
        | st.text(st.characters(max_codepoint=255, exclude_categories=["Cc"]), max_size=30)
    )
    raw: dict[str, Any] = dict(headers)
    if content_type:
        raw["content-type"] = content_type.encode("latin-1")
    return {"content": draw(st.binary(max_size=400)), "headers": raw}


@given(st.lists(requests(), min_size=1, max_size=4))
@settings(max_examples=150, deadline=None)
def test_the_webhook_never_answers_5xx(calls: list[dict[str, Any]]) -> None:
    service, _ = make_service()
    app = Starlette(routes=[Mount("/sms", routes=sms_routes(service))])

    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sms.test") as client:
            return [await client.post("/sms/inbound", **call) for call in calls]

    for response in anyio.run(run):
        assert response.status_code in (200, 400, 401, 413, 415, 422), response.text
        body = response.json()
        if response.status_code == 200:
            assert body["received"] == len(body["outcomes"]) >= 1
        else:
            assert body["error"].startswith("inbound.")
