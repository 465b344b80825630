"""The SMS channel: the coded formats, PINs and lockout, duplicates, corrections, the
replies (exact Indonesian text), the gateway (faked at the edge with httpx.MockTransport)
and the webhook, on a AppClient and over a real uvicorn server on loopback."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import anyio
import attrs
import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount

from sipantau_adapters.sms import (
    PARSE_ERROR_CODES,
    REPORT_ID_NAMESPACE,
    GatewayConfig,
    GenericHttpGateway,
    InboundError,
    InboundSms,
    PinBook,
    SituationMessage,
    SmsConfigError,
    SmsOutcome,
    SmsParseError,
    SmsPolicy,
    SmsService,
    TallyMessage,
    hash_pin,
    normalise_phone,
    open_gateway,
    parse_sms,
    sms_routes,
    verify_pin,
    write_pin_csv,
)
from sipantau_adapters.storage.memory import MemoryStorage
from sipantau_core import (
    Candidate,
    Contest,
    Deployment,
    Desk,
    PersonalData,
    Principal,
    RegionCode,
    Role,
    SecurityStatus,
    Stage,
    TallyReport,
    TimeZone,
    hookimpl,
)
from sipantau_core.plugins import Plugins
from sipantau_core.rules import check_tally
from sipantau_core.testing.contracts import small_deployment

T0 = datetime(2024, 11, 27, 13, 30, tzinfo=TimeZone.WIB.tzinfo)
CHEAP = (16, 8, 1)  # scrypt cost for tests; the default is 2**14
PHONES = {"LLG-0001": "081234567801", "LLG-0002": "0812-3456-7802", "LLG-0003": "+6281234567803"}
PINS = {"LLG-0001": "1234", "LLG-0002": "4321", "LLG-0003": "2468"}
ONE = "081234567801"  # LLG-0001, TPS 001 Kel. Kayu Ara (DPT 400)
ONE_INTL = "6281234567801"
SEND_URL = "https://sms.example.test/api/send"
TOKEN = "rahasia-webhook"
COORDINATOR = Principal(id="coord", role=Role.COORDINATOR, scope="16.73")
STATION_ONE = "1673011001001"


class Clock:
    def __init__(self, start: datetime = T0):
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, minutes: float) -> None:
        self.now += timedelta(minutes=minutes)


def sms_deployment(*, contests: list[Contest] | None = None, **settings: Any) -> Deployment:
    """small_deployment() with phone numbers, village names and SMS settings."""
    base = small_deployment()
    monitors = {
        m.id: attrs.evolve(
            m,
            personal=PersonalData(
                name=f"Pemantau {i}", phone=PHONES[m.id], national_id=f"16730128048000{i:02d}"
            ),
        )
        for i, m in enumerate(base.monitors.values(), start=1)
    }
    names = {
        RegionCode("16.73.01.1001"): "Kayu Ara",
    }
    changes: dict[str, Any] = {"monitors": monitors, "region_names": names, "settings": settings}
    if contests is not None:
        changes["contests"] = {c.id: c for c in contests}
    return attrs.evolve(base, **changes)


class GatewayApi:
    """The SMS gateway's HTTP API, faked at the edge: records what it is asked to send."""

    def __init__(self, status: int = 200):
        self.status = status
        self.sent: list[dict[str, str]] = []
        self.auth: list[str | None] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert str(request.url) == SEND_URL
        self.auth.append(request.headers.get("authorization"))
        if request.headers["content-type"].startswith("application/json"):
            self.sent.append(json.loads(request.content))
        else:
            self.sent.append(dict(parse_qsl(request.content.decode())))
        return httpx.Response(self.status, json={"status": "queued"})

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)

    def replies_to(self, number: str) -> list[str]:
        return [m["message"] for m in self.sent if m["to"] == number]


def cheap_pins(pins: dict[str, str] = PINS) -> PinBook:
    return PinBook({k: hash_pin(v, cost=CHEAP) for k, v in pins.items()})


@attrs.define
class Env:
    desk: Desk
    api: GatewayApi
    gateway: GenericHttpGateway
    service: SmsService
    clock: Clock

    def send(self, text: str, sender: str = ONE, message_id: str | None = None) -> SmsOutcome:
        return self.service.receive(
            InboundSms(sender=sender, text=text, message_id=message_id, gateway="generic")
        )

    def tally(self, station: str = STATION_ONE) -> tuple[dict[int, int], int, int, int]:
        t = self.desk.tally(station, principal=COORDINATOR)
        return dict(t.votes), t.valid, t.invalid, t.total


def make_env(deployment: Deployment | None = None, *, status: int = 200) -> Env:
    clock = Clock()
    desk = Desk.open(deployment or sms_deployment(), storage=MemoryStorage(), clock=clock)
    api = GatewayApi(status)
    config = GatewayConfig(send_url=SEND_URL, auth_value="Bearer kunci", webhook_token=TOKEN)
    gateway = GenericHttpGateway(config, transport=api.transport)
    service = SmsService(desk, gateway, cheap_pins())
    return Env(desk, api, gateway, service, clock)


@pytest.fixture
def env() -> Iterator[Env]:
    e = make_env()
    yield e
    e.gateway.close()
    e.desk.close()


# ---------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------

TALLY = TallyMessage(pin="1234", votes=(130, 270), valid=400, invalid=15, total=415)


@pytest.mark.parametrize(
    "text",
    [
        "HASIL 1234 130 270 SAH 400 TS 15 TOTAL 415",
        "hasil 1234 130 270 sah 400 ts 15 total 415",
        "  HASIL   1234  130   270 SAH 400  TS 15 TOTAL 415  ",
        "H#1234#130#270#400#15#415",
        "h*1234*130*270*400*15*415",
        "HASIL 1234 130 270 400 15 415",
        "HASIL 1234 13O 27O SAH 4OO TS l5 TOTAL 4l5",
        "HASIL l234 130 270 SAH 400 TS I5 TOTAL 4I5",
        "HAS1L 1234 130 270 SAH 400 TS 15 TOTAL 415",
        "HASlL 1234 130 270 SAH 400 TS 15 TOTAL 415",
        "HASIL1234 130 270 SAH400 TS15 TOTAL415",
        "HASIL 1234 130 270 SAH 400 TIDAK SAH 15 JUMLAH 415",
        "HASIL 1234 130,270, SAH=400, TS=15, TOTAL=415.",
        "HASIL 1234 130 270 TOTAL 415 SAH 400 TS 15",
        "HSL 1234 130 270 S 400 TSAH 15 JML 415",
        "HASIL\n1234\n130\n270\nSAH 400\nTS 15\nTOTAL 415",
    ],
)
def test_every_spelling_of_a_tally_reads_the_same(text: str) -> None:
    assert parse_sms(text) == TALLY
    assert parse_sms(text).canonical() == "HASIL 130 270 SAH 400 TS 15 TOTAL 415"


@pytest.mark.parametrize(
    ("text", "contest", "correction"),
    [
        ("KOREKSI 1234 130 270 SAH 400 TS 15 TOTAL 415", None, True),
        ("K#1234#130#270#400#15#415", None, True),
        ("koreksi 1234 walikota 130 270 400 15 415", "walikota", True),
        ("HASIL 1234 GUBERNUR 130 270 SAH 400 TS 15 TOTAL 415", "gubernur", False),
    ],
)
def test_corrections_and_a_named_contest(text: str, contest: str | None, correction: bool) -> None:
    got = parse_sms(text)
    assert got == attrs.evolve(TALLY, contest=contest, correction=correction)


def test_the_pin_is_not_in_the_repr_or_the_canonical_text() -> None:
    msg = parse_sms("HASIL 9876 130 270 400 15 415")
    assert "9876" not in repr(msg) and "9876" not in msg.canonical()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("LAPOR 1234 BUKA AMAN", SituationMessage("1234", Stage.OPENING, SecurityStatus.SAFE)),
        ("lapor 1234 buka aman", SituationMessage("1234", Stage.OPENING, SecurityStatus.SAFE)),
        ("L#1234#SIAP#A", SituationMessage("1234", Stage.PREPARATION, SecurityStatus.SAFE)),
        (
            "SITUASI 1234 WASPADA PILIH",
            SituationMessage("1234", Stage.VOTING, SecurityStatus.ALERT),
        ),
        (
            "LAPOR 1234 HITUNG GANGGUAN KER 4 Dua kelompok saling dorong",
            SituationMessage(
                "1234",
                Stage.COUNTING,
                SecurityStatus.DISTURBED,
                "kekerasan",
                4,
                "Dua kelompok saling dorong",
            ),
        ),
        (
            "L#1234#PILIH#WASPADA#PU#3#Ada bagi-bagi amplop, dekat TPS",
            SituationMessage(
                "1234",
                Stage.VOTING,
                SecurityStatus.ALERT,
                "politik_uang",
                3,
                "Ada bagi-bagi amplop, dekat TPS",
            ),
        ),
        (
            "LAPOR 1234 SERAH AMAN politik_uang   warga   lapor",
            SituationMessage(
                "1234", Stage.HANDOVER, SecurityStatus.SAFE, "politik_uang", None, "warga lapor"
            ),
        ),
        (
            "LAPOR 1234 BUKA WASPADA LOGISTIK 2",
            SituationMessage("1234", Stage.OPENING, SecurityStatus.ALERT, "logistik", 2),
        ),
        (
            "LAPOR 1234 BUKA W NETRALITASASN camat hadir",
            SituationMessage(
                "1234", Stage.OPENING, SecurityStatus.ALERT, "netralitas_asn", None, "camat hadir"
            ),
        ),
    ],
)
def test_situation_reports(text: str, expected: SituationMessage) -> None:
    assert parse_sms(text) == expected


def test_a_plugins_category_is_read_by_its_code() -> None:
    got = parse_sms("LAPOR 1234 BUKA AMAN KONFLIK_LAHAN 3", categories=["konflik_lahan"])
    assert isinstance(got, SituationMessage) and got.category == "konflik_lahan"
    with pytest.raises(SmsParseError) as e:
        parse_sms("LAPOR 1234 BUKA AMAN PU", categories=["konflik_lahan"])
    assert e.value.code == "sms.category_unknown"


@pytest.mark.parametrize(
    ("text", "code", "message_id"),
    [
        ("", "sms.empty", "pesan kosong"),
        ("  # * ", "sms.empty", "pesan kosong"),
        ("x" * 1001, "sms.too_long", "pesan terlalu panjang (lebih dari 1000 huruf)"),
        (
            "HALO 1234",
            "sms.unknown_keyword",
            "awali pesan dengan HASIL, KOREKSI atau LAPOR, bukan HALO",
        ),
        (
            "1234 HASIL",
            "sms.unknown_keyword",
            "awali pesan dengan HASIL, KOREKSI atau LAPOR, bukan 1234",
        ),
        ("HASIL", "sms.pin_missing", "PIN tidak ada"),
        ("HASIL SAH 400", "sms.pin_missing", "kata kedua harus PIN (angka)"),
        ("HASIL 12 130 270 400 15 415", "sms.pin_format", "PIN harus 4 sampai 6 angka"),
        ("HASIL 1234 130 27X 400 15 415", "sms.number_invalid", "27X bukan angka"),
        (
            "HASIL 1234 130 270 SAH 4X0 TS 15 TOTAL 415",
            "sms.number_invalid",
            "4X0 setelah SAH bukan angka",
        ),
        (
            "HASIL 1234 130 270 SAH 400 TS 15 TOTAL 99999",
            "sms.number_too_large",
            "angka 99999 terlalu besar (paling banyak 10000)",
        ),
        (
            "HASIL 1234 130 270 SAH 400 TS 15 TOTAL",
            "sms.number_missing",
            "angka setelah TOTAL tidak ada",
        ),
        ("HASIL 1234 SAH 400 TS 15 TOTAL 415", "sms.votes_missing", "suara paslon belum ditulis"),
        ("HASIL 1234 130 270 SAH 400 TOTAL 415", "sms.totals_missing", "TS belum ditulis"),
        (
            "HASIL 1234 130 270 400",
            "sms.totals_missing",
            "tulis suara tiap paslon lalu SAH, TS (tidak sah) dan TOTAL",
        ),
        (
            "HASIL 1234 130 270 SAH 400 SAH 400 TS 1 TOTAL 2",
            "sms.label_repeated",
            "SAH ditulis dua kali",
        ),
        (
            "HASIL 1234 130 270 SAH 400 7 TS 15 TOTAL 415",
            "sms.unexpected_token",
            "angka 7 setelah SAH/TS/TOTAL tidak jelas untuk apa",
        ),
        (
            "LAPOR 1234",
            "sms.stage_missing",
            "tahap belum ditulis; pakai SIAP, BUKA, PILIH, HITUNG atau SERAH",
        ),
        (
            "LAPOR 1234 BUKAK AMAN",
            "sms.stage_unknown",
            "tahap BUKAK tidak dikenal; pakai SIAP, BUKA, PILIH, HITUNG atau SERAH",
        ),
        (
            "LAPOR 1234 BUKA",
            "sms.status_missing",
            "status belum ditulis; pakai AMAN, WASPADA atau GANGGUAN",
        ),
        (
            "LAPOR 1234 BUKA RUSUH",
            "sms.status_unknown",
            "status RUSUH tidak dikenal; pakai AMAN, WASPADA atau GANGGUAN",
        ),
        (
            "LAPOR 1234 BUKA AMAN RIBUT",
            "sms.category_unknown",
            "kode kejadian RIBUT tidak dikenal; pakai PU, INT, KER, LOG, ASN, PTT, GT, BEN, LAIN",
        ),
        (
            "LAPOR 1234 BUKA AMAN PU 5 amplop",
            "sms.severity_invalid",
            "tingkat kejadian 5 harus 1 sampai 4",
        ),
    ],
)
def test_parse_errors_have_a_stable_code_and_say_what_is_wrong(
    text: str, code: str, message_id: str
) -> None:
    with pytest.raises(SmsParseError) as e:
        parse_sms(text)
    assert e.value.code == code and code in PARSE_ERROR_CODES
    assert e.value.detail_id == message_id


@pytest.mark.parametrize(
    "text",
    [
        "7919 HASIL",
        "HASIL 1234 130 7919X 400 15 415",
        "HASIL 1234 130 270 SAH 79190 TS 15 TOTAL 415",
        "HASIL 1234 130 270 SAH 400 TS 15 TOTAL 415 7919",
        "LAPOR 1234 7919 AMAN",
        "LAPOR 1234 BUKA 7919",
        "LAPOR 1234 BUKA AMAN X7919",
    ],
)
def test_errors_do_not_repeat_what_was_typed_except_in_the_reply_detail(text: str) -> None:
    with pytest.raises(SmsParseError) as e:
        parse_sms(text)
    for surface in (str(e.value), repr(e.value), e.value.message, e.value.message_id):
        assert "7919" not in surface
    assert "7919" in e.value.detail_id


# ---------------------------------------------------------------------------------------
# Replies
# ---------------------------------------------------------------------------------------


def test_an_accepted_tally_is_read_back_and_counted(env: Env) -> None:
    out = env.send("hasil 1234 13O 220 sah 35O ts 15 total 365")
    reply = "Diterima TPS 001 Kel. Kayu Ara: 01=130 02=220 sah 350 tidak sah 15 total 365"
    assert (out.kind, out.reply, out.reply_sent) == ("accepted", reply, True)
    assert env.api.sent == [{"to": ONE_INTL, "message": reply}]
    assert env.api.auth == ["Bearer kunci"]
    assert env.tally() == ({1: 130, 2: 220}, 350, 15, 365)
    assert out.receipt is not None and out.receipt.status == "accepted"


def test_a_flagged_tally_says_exactly_which_rule_it_breaks(env: Env) -> None:
    out = env.send("H#1234#130#230#350#15#365")
    report = env.desk.reports(STATION_ONE, principal=COORDINATOR, kind="tally")[0][1]
    assert isinstance(report, TallyReport)
    verdict = check_tally(
        report,
        station=env.desk.deployment.station(STATION_ONE),
        contest=env.desk.deployment.contests["walikota"],
    )
    [violation] = verdict.hard
    assert violation.message_id == (
        "Jumlah suara sah 350 tidak sama dengan jumlah suara paslon 360"
    )
    assert out.kind == "flagged"
    assert out.reply == (
        "DITANDAI TPS 001 Kel. Kayu Ara: 01=130 02=230 sah 350 tidak sah 15 total 365. "
        "Belum dihitung: Jumlah suara sah 350 tidak sama dengan jumlah suara paslon 360. "
        "Periksa C.Hasil lalu kirim KOREKSI PIN dan angka yang benar"
    )
    assert env.api.replies_to(ONE_INTL) == [out.reply]
    assert env.tally() == ({1: 0, 2: 0}, 0, 0, 0)


def test_several_broken_rules_are_all_named(env: Env) -> None:
    out = env.send("HASIL 1234 130 230 SAH 350 TS 15 TOTAL 400")
    assert out.reply is not None
    assert out.reply.split("Belum dihitung: ")[1] == (
        "Jumlah suara sah 350 tidak sama dengan jumlah suara paslon 360; "
        "Suara sah 350 + tidak sah 15 = 365, tidak sama dengan jumlah suara 400. "
        "Periksa C.Hasil lalu kirim KOREKSI PIN dan angka yang benar"
    )


def test_an_accepted_tally_carries_the_soft_warnings(env: Env) -> None:
    out = env.send("HASIL 1234 50 50 SAH 100 TS 5 TOTAL 105")
    assert out.kind == "accepted"
    assert out.reply == (
        "Diterima TPS 001 Kel. Kayu Ara: 01=50 02=50 sah 100 tidak sah 5 total 105. "
        "Catatan: Partisipasi 26,2% di luar rentang wajar 30-100%"
    )


def test_a_station_without_a_village_name_is_named_by_its_code(env: Env) -> None:
    out = env.send("HASIL 2468 200 200 SAH 400 TS 5 TOTAL 405", sender="+62 812 3456 7803")
    assert out.reply == (
        "Diterima 16.73.02.1002 TPS 001: 01=200 02=200 sah 400 tidak sah 5 total 405"
    )
    assert env.api.sent[-1]["to"] == "6281234567803"


def test_a_situation_report_with_an_incident(env: Env) -> None:
    out = env.send("LAPOR 1234 PILIH WASPADA PU 3 Ada bagi amplop di dekat TPS")
    assert out.kind == "situation"
    assert out.reply == (
        "Laporan diterima TPS 001 Kel. Kayu Ara: tahap pemungutan, waspada. "
        "Kejadian: Politik uang tingkat 3"
    )
    [incident] = env.desk.incidents("16.73", principal=COORDINATOR)
    assert (incident.category, incident.severity, incident.text, incident.stage) == (
        "politik_uang",
        3,
        "Ada bagi amplop di dekat TPS",
        Stage.VOTING,
    )


def test_an_incident_without_a_severity_takes_the_categorys_default(env: Env) -> None:
    out = env.send("LAPOR 1234 HITUNG GANGGUAN KER")
    assert out.reply == (
        "Laporan diterima TPS 001 Kel. Kayu Ara: tahap penghitungan, gangguan. "
        "Kejadian: Kekerasan tingkat 4"
    )


def test_a_format_error_says_what_is_wrong_with_an_example(env: Env) -> None:
    out = env.send("HASIL 1234 130 27X 400 15 415")
    assert (out.kind, out.code) == ("invalid", "sms.number_invalid")
    assert out.reply == (
        "Format salah: 27X bukan angka. Contoh: HASIL 1234 130 270 SAH 400 TS 15 TOTAL 415"
    )
    out = env.send("LAPOR 1234 BUKA")
    assert out.reply == (
        "Format salah: status belum ditulis; pakai AMAN, WASPADA atau GANGGUAN. "
        "Contoh: LAPOR 1234 BUKA AMAN"
    )
    out = env.send("apa kabar")
    assert out.reply == (
        "Format salah: awali pesan dengan HASIL, KOREKSI atau LAPOR, bukan apa. "
        "Contoh: HASIL 1234 130 270 SAH 400 TS 15 TOTAL 415 atau LAPOR 1234 BUKA AMAN"
    )


def test_the_number_of_votes_must_match_the_pairs(env: Env) -> None:
    out = env.send("HASIL 1234 100 100 100 SAH 300 TS 5 TOTAL 305")
    assert (out.kind, out.code) == ("invalid", "sms.vote_count")
    assert out.reply == (
        "Format salah: terbaca 3 angka suara paslon, seharusnya 2 (01 02 berurutan) "
        "lalu SAH, TS, TOTAL"
    )
    assert env.tally()[3] == 0


def test_several_contests_need_the_contest_named() -> None:
    contests = [
        Contest(id="walikota", candidates=[Candidate(1, "A"), Candidate(2, "B")]),
        Contest(id="gubernur", candidates=[Candidate(1, "C")], empty_box=True),
    ]
    e = make_env(sms_deployment(contests=contests))
    out = e.send("HASIL 1234 100 100 SAH 200 TS 5 TOTAL 205")
    assert out.reply == "Format salah: sebutkan pemilihan setelah PIN: GUBERNUR atau WALIKOTA"
    out = e.send("HASIL 1234 BUPATI 100 100 SAH 200 TS 5 TOTAL 205")
    assert out.reply == (
        "Format salah: pemilihan BUPATI tidak dikenal; pakai GUBERNUR atau WALIKOTA"
    )
    out = e.send("HASIL 1234 gubernur 150 50 SAH 200 TS 5 TOTAL 205")
    assert out.reply == (
        "Diterima TPS 001 Kel. Kayu Ara: 01=150 KK=50 sah 200 tidak sah 5 total 205"
    )
    tally = e.desk.tally(STATION_ONE, principal=COORDINATOR, contest="gubernur")
    assert dict(tally.votes) == {1: 150, 0: 50}


# ---------------------------------------------------------------------------------------
# Senders: phone and PIN
# ---------------------------------------------------------------------------------------


def test_an_unknown_number_is_refused_once_per_window(env: Env) -> None:
    out = env.send("HASIL 1234 130 220 SAH 350 TS 15 TOTAL 365", sender="+6285299990000")
    assert (out.kind, out.code) == ("unknown_sender", "sms.unknown_sender")
    assert out.reply == "Nomor ini tidak terdaftar sebagai pemantau desk. Hubungi koordinator"
    assert env.api.sent == [{"to": "6285299990000", "message": out.reply}]
    again = env.send("HASIL 1234 130 220 SAH 350 TS 15 TOTAL 365", sender="085299990000")
    assert (again.kind, again.reply) == ("unknown_sender", None)
    assert len(env.api.sent) == 1
    assert env.tally()[3] == 0


def test_a_sender_that_is_not_a_phone_number_gets_no_reply(env: Env) -> None:
    out = env.send("HASIL 1234 130 220 SAH 350 TS 15 TOTAL 365", sender="INFO-OPERATOR")
    assert (out.kind, out.reply) == ("unknown_sender", None)
    assert env.api.sent == []


def test_wrong_pins_lock_the_number_for_a_while(env: Env) -> None:
    good = "HASIL 1234 130 220 SAH 350 TS 15 TOTAL 365"
    first = env.send("HASIL 1111 130 220 SAH 350 TS 15 TOTAL 365")
    assert (first.kind, first.code) == ("wrong_pin", "sms.pin_wrong")
    assert first.reply == "PIN salah. Sisa 2 kali percobaan sebelum nomor dikunci"
    second = env.send("HASIL 2222 130 220 SAH 350 TS 15 TOTAL 365")
    assert second.reply == "PIN salah. Sisa 1 kali percobaan sebelum nomor dikunci"
    third = env.send("HASIL 3333 130 220 SAH 350 TS 15 TOTAL 365")
    assert (third.kind, third.code) == ("locked", "sms.pin_locked")
    assert third.reply == (
        "PIN salah 3 kali. Nomor dikunci sampai pukul 13:45 WIB. Hubungi koordinator bila lupa PIN"
    )
    env.clock.advance(5)
    locked = env.send(good)
    assert (locked.kind, locked.code) == ("locked", "sms.locked")
    assert locked.reply == "Nomor dikunci sampai pukul 13:45 WIB karena PIN salah berulang kali"
    assert env.tally()[3] == 0
    env.clock.advance(10)
    assert env.send(good).kind == "accepted"
    assert env.api.replies_to(ONE_INTL) == [
        first.reply,
        second.reply,
        third.reply,
        locked.reply,
        "Diterima TPS 001 Kel. Kayu Ara: 01=130 02=220 sah 350 tidak sah 15 total 365",
    ]


def test_a_right_pin_resets_the_count_of_wrong_ones(env: Env) -> None:
    env.send("LAPOR 1111 BUKA AMAN")
    env.send("LAPOR 1111 BUKA AMAN")
    assert env.send("LAPOR 1234 BUKA AMAN").kind == "situation"
    assert env.send("LAPOR 1111 PILIH AMAN").kind == "wrong_pin"


def test_the_lock_is_per_monitor(env: Env) -> None:
    for pin in ("1111", "2222", "3333"):
        env.send(f"LAPOR {pin} BUKA AMAN")
    other = env.send("LAPOR 4321 BUKA AMAN", sender="081234567802")
    assert other.kind == "situation"


def test_a_monitor_without_a_pin_is_told_so() -> None:
    e = make_env()
    e.service.pins = cheap_pins({"LLG-0002": "4321"})
    out = e.send("LAPOR 1234 BUKA AMAN")
    assert (out.kind, out.reply) == (
        "pin_not_set",
        "PIN untuk nomor ini belum terdaftar. Hubungi koordinator",
    )


# ---------------------------------------------------------------------------------------
# Duplicates and redelivery
# ---------------------------------------------------------------------------------------


def test_the_same_message_within_the_window_is_dropped_and_answered_once(env: Env) -> None:
    first = env.send("HASIL 1234 130 220 SAH 350 TS 15 TOTAL 365", message_id="a1")
    env.clock.advance(3)
    second = env.send("hasil 1234 13O 22O sah 35O ts 15 total 365", message_id="a2")
    assert (second.kind, second.code) == ("duplicate", "sms.duplicate")
    assert second.reply == "Pesan yang sama sudah diterima pukul 13:30 WIB; tidak dicatat lagi"
    third = env.send("HASIL 1234 130 220 SAH 350 TS 15 TOTAL 365", message_id="a3")
    assert (third.kind, third.reply) == ("duplicate", None)
    assert env.api.replies_to(ONE_INTL) == [first.reply, second.reply]
    assert env.tally() == ({1: 130, 2: 220}, 350, 15, 365)
    assert len(env.desk.reports(STATION_ONE, principal=COORDINATOR, heads_only=False)) == 1


def test_after_the_window_the_same_tally_is_still_not_counted_twice(env: Env) -> None:
    env.send("HASIL 1234 130 220 SAH 350 TS 15 TOTAL 365", message_id="a1")
    env.clock.advance(11)
    out = env.send("HASIL 1234 130 220 SAH 350 TS 15 TOTAL 365", message_id="a2")
    assert (out.kind, out.reply) == (
        "duplicate",
        "Pesan ini sudah diterima sebelumnya; tidak dicatat lagi",
    )
    assert env.tally()[3] == 365


def test_a_second_different_tally_is_pointed_to_koreksi(env: Env) -> None:
    env.send("HASIL 1234 130 220 SAH 350 TS 15 TOTAL 365")
    out = env.send("HASIL 1234 131 220 SAH 351 TS 15 TOTAL 366")
    assert (out.kind, out.code) == ("refused", "report.station_already_reported")
    assert out.reply == (
        "Hasil TPS ini sudah pernah diterima. Untuk mengubah, kirim KOREKSI PIN dan angka "
        "yang benar"
    )
    assert env.tally()[3] == 365


def test_a_gateway_redelivery_is_silent_and_idempotent_at_the_desk(env: Env) -> None:
    text = "LAPOR 1234 BUKA AMAN"
    first = env.send(text, message_id="gw-77")
    assert first.receipt is not None
    assert first.receipt.report_id == uuid.uuid5(REPORT_ID_NAMESPACE, "generic:LLG-0001:gw-77")
    env.clock.advance(30)
    again = env.send(text, message_id="gw-77")
    assert (again.kind, again.reply) == ("redelivery", None)
    # After a restart the service has forgotten the id; the desk has not.
    restarted = SmsService(env.desk, env.gateway, cheap_pins())
    after = restarted.receive(InboundSms(ONE, text, "gw-77"))
    assert (after.kind, after.reply) == (
        "duplicate",
        "Pesan ini sudah diterima sebelumnya; tidak dicatat lagi",
    )
    situations = env.desk.reports(STATION_ONE, principal=COORDINATOR, kind="situation")
    assert len(situations) == 1
    assert len(env.api.replies_to(ONE_INTL)) == 2


def test_a_tally_redelivered_after_a_restart_is_counted_once(env: Env) -> None:
    text = "HASIL 1234 130 220 SAH 350 TS 15 TOTAL 365"
    env.send(text, message_id="gw-1")
    env.clock.advance(1)
    restarted = SmsService(env.desk, env.gateway, cheap_pins())
    out = restarted.receive(InboundSms(ONE, text, "gw-1"))
    assert out.kind == "duplicate"
    assert env.tally()[3] == 365


# ---------------------------------------------------------------------------------------
# Corrections
# ---------------------------------------------------------------------------------------


def test_a_correction_amends_the_newest_tally(env: Env) -> None:
    flagged = env.send("HASIL 1234 130 230 SAH 350 TS 15 TOTAL 365")
    assert flagged.kind == "flagged"
    fixed = env.send("KOREKSI 1234 130 220 SAH 350 TS 15 TOTAL 365")
    assert (fixed.kind, fixed.reply) == (
        "corrected",
        "Koreksi diterima (versi 2) TPS 001 Kel. Kayu Ara: "
        "01=130 02=220 sah 350 tidak sah 15 total 365",
    )
    assert env.tally() == ({1: 130, 2: 220}, 350, 15, 365)
    again = env.send("K#1234#140#210#350#15#365")
    assert again.reply is not None and again.reply.startswith("Koreksi diterima (versi 3)")
    assert env.tally() == ({1: 140, 2: 210}, 350, 15, 365)
    back = env.send("KOREKSI 1234 130 220 SAH 350 TS 15 TOTAL 365")
    assert back.kind == "corrected" and back.receipt is not None and back.receipt.version == 4
    assert env.tally() == ({1: 130, 2: 220}, 350, 15, 365)


def test_a_flagged_correction_says_so(env: Env) -> None:
    env.send("HASIL 1234 130 220 SAH 350 TS 15 TOTAL 365")
    out = env.send("KOREKSI 1234 130 220 SAH 350 TS 15 TOTAL 300")
    assert out.reply == (
        "Koreksi (versi 2) DITANDAI TPS 001 Kel. Kayu Ara: "
        "01=130 02=220 sah 350 tidak sah 15 total 300. Belum dihitung: "
        "Suara sah 350 + tidak sah 15 = 365, tidak sama dengan jumlah suara 300. "
        "Periksa C.Hasil lalu kirim KOREKSI PIN dan angka yang benar"
    )
    assert env.tally()[3] == 0


def test_a_correction_without_a_tally(env: Env) -> None:
    out = env.send("KOREKSI 1234 130 220 SAH 350 TS 15 TOTAL 365")
    assert (out.kind, out.reply) == (
        "refused",
        "Belum ada hasil TPS ini untuk dikoreksi; kirim HASIL dulu",
    )


# ---------------------------------------------------------------------------------------
# The gateway
# ---------------------------------------------------------------------------------------


def test_a_gateway_failure_keeps_the_report() -> None:
    e = make_env(status=503)
    out = e.send("HASIL 1234 130 220 SAH 350 TS 15 TOTAL 365")
    assert (out.kind, out.reply_sent) == ("accepted", False)
    assert e.tally()[3] == 365


def test_a_form_gateway_with_extra_fields_and_local_numbers() -> None:
    api = GatewayApi()
    config = GatewayConfig(
        send_url=SEND_URL,
        send_format="form",
        to_field="to",
        text_field="message",
        number_format="local",
        extra={"sender_id": "DESKLLG"},
        reply_to_field="ref",
    )
    gateway = GenericHttpGateway(config, transport=api.transport)
    desk = Desk.open(sms_deployment(), storage=MemoryStorage(), clock=Clock())
    service = SmsService(desk, gateway, cheap_pins())
    service.receive(InboundSms("+6281234567801", "LAPOR 1234 BUKA AMAN", "m-9"))
    assert api.sent == [
        {
            "sender_id": "DESKLLG",
            "to": "081234567801",
            "message": "Laporan diterima TPS 001 Kel. Kayu Ara: tahap pembukaan, aman",
            "ref": "m-9",
        }
    ]
    assert api.auth == [None]


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [("local", "081234567801"), ("international", "6281234567801"), ("e164", "+6281234567801")],
)
def test_number_formats(fmt: Any, expected: str) -> None:
    gateway = GenericHttpGateway(GatewayConfig(send_url=SEND_URL, number_format=fmt))
    assert gateway.format_number("081234567801") == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("081234567801", "081234567801"),
        ("+6281234567801", "081234567801"),
        ("6281234567801", "081234567801"),
        ("+62 812-3456-7801", "081234567801"),
        ("(0812) 3456.7801", "081234567801"),
        ("0212345678", None),
        ("TELKOMSEL", None),
        ("", None),
    ],
)
def test_phone_numbers_are_normalised(raw: str, expected: str | None) -> None:
    assert normalise_phone(raw) == expected


def test_the_gateway_config_reads_its_secrets_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SMS_TOKEN", "Bearer dari-env")
    monkeypatch.setenv("SMS_HOOK", "hook-env")
    config = GatewayConfig.from_settings(
        {"send_url": SEND_URL, "auth_value_env": "SMS_TOKEN", "webhook_token_env": "SMS_HOOK"}
    )
    assert (config.auth_value, config.webhook_token) == ("Bearer dari-env", "hook-env")
    assert "dari-env" not in repr(config)
    with pytest.raises(SmsConfigError) as e:
        GatewayConfig.from_settings({"send_url": SEND_URL, "auth_value_env": "NOT_SET_HERE"})
    assert e.value.code == "sms.secret_missing"
    with pytest.raises(SmsConfigError) as e:
        GatewayConfig.from_settings({"send_url": SEND_URL, "sendurl": "typo"})
    assert e.value.code == "sms.settings_invalid"
    with pytest.raises(SmsConfigError):
        GatewayConfig.from_settings({"send_url": SEND_URL, "send_format": "xml"})


def test_a_plugin_can_serve_a_gateway_through_the_hook() -> None:
    class Zenziva:
        @hookimpl
        def sipantau_sms_gateway(self, name: str, settings: Any) -> Any:
            if name != "zenziva":
                return None
            return GenericHttpGateway(GatewayConfig(send_url="https://zenziva.test/send"))

        @hookimpl
        def sipantau_sms_gateway_names(self) -> Any:
            return ["zenziva"]

    plugins = Plugins.load([Zenziva()], autoload=False)
    pm = plugins.manager
    dep = sms_deployment(sms={"gateway": "zenziva"})
    gateway = open_gateway(dep, plugins=plugins)
    assert isinstance(gateway, GenericHttpGateway)
    assert gateway.config.send_url == "https://zenziva.test/send"
    generic = open_gateway(
        sms_deployment(sms={"gateway": "generic", "generic": {"send_url": SEND_URL}}),
        plugins=plugins,
    )
    assert isinstance(generic, GenericHttpGateway) and generic.config.send_url == SEND_URL
    assert plugins.sms_gateway_names() == ["generic", "zenziva"]
    assert pm.is_registered(Zenziva) is False
    with pytest.raises(SmsConfigError) as e:
        open_gateway(sms_deployment(sms={"gateway": "nope"}), plugins=plugins)
    assert e.value.code == "sms.unknown_gateway"


# ---------------------------------------------------------------------------------------
# PINs
# ---------------------------------------------------------------------------------------


def test_pin_hashes_are_salted_per_monitor_and_verify() -> None:
    a, b = hash_pin("1234", cost=CHEAP), hash_pin("1234", cost=CHEAP)
    assert a != b and "1234" not in a
    assert verify_pin("1234", a) and verify_pin("1234", b)
    assert not verify_pin("1235", a)
    assert not verify_pin("1234", "scrypt$garbage")
    assert not verify_pin("12a4", a)
    peppered = hash_pin("1234", pepper=b"lada", cost=CHEAP)
    assert verify_pin("1234", peppered, pepper=b"lada") and not verify_pin("1234", peppered)
    with pytest.raises(ValueError):
        hash_pin("12")


def test_the_default_cost_is_scrypt_2_14() -> None:
    assert hash_pin("1234").startswith("scrypt$16384$8$1$")


def test_a_pin_file_round_trips(tmp_path: Path) -> None:
    write_pin_csv(tmp_path / "pins.csv", {"LLG-0001": "1234", "LLG-0002": "4321"}, cost=CHEAP)
    text = (tmp_path / "pins.csv").read_text()
    assert text.startswith("monitor_id,pin_hash\n") and "1234" not in text.split("\n", 1)[1]
    book = PinBook.from_csv(tmp_path / "pins.csv")
    assert book.verify("LLG-0001", "1234") and not book.verify("LLG-0001", "4321")
    assert not book.verify("LLG-0009", "1234")
    assert repr(book) == "PinBook(<2 hashes>)"


def test_pins_from_the_deployment_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_pin_csv(tmp_path / "pins.csv", {"LLG-0001": "1234"}, pepper=b"lada", cost=CHEAP)
    monkeypatch.setenv("SMS_PEPPER", "lada")
    dep = attrs.evolve(
        sms_deployment(
            sms={
                "pins_csv": "pins.csv",
                "pin_pepper_env": "SMS_PEPPER",
                "pins": {"LLG-0002": hash_pin("4321", pepper=b"lada", cost=CHEAP)},
            }
        ),
        path=tmp_path,
    )
    book = PinBook.from_settings(dep)
    assert book.verify("LLG-0001", "1234") and book.verify("LLG-0002", "4321")


@pytest.mark.parametrize(
    "content",
    ["monitor_id,pin_hash\nLLG-0001,plain1234\n", "id,pin\nLLG-0001,x\n"],
)
def test_a_bad_pin_file_is_refused(tmp_path: Path, content: str) -> None:
    (tmp_path / "pins.csv").write_text(content)
    with pytest.raises(SmsConfigError):
        PinBook.from_csv(tmp_path / "pins.csv")


def test_the_service_builds_from_the_deployment_settings(tmp_path: Path) -> None:
    write_pin_csv(tmp_path / "pins.csv", PINS, cost=CHEAP)
    dep = attrs.evolve(
        sms_deployment(
            sms={
                "gateway": "generic",
                "pins_csv": "pins.csv",
                "duplicate_window_minutes": 5,
                "max_pin_attempts": 5,
                "lock_minutes": 30,
                "generic": {"send_url": SEND_URL, "webhook_token": TOKEN},
            }
        ),
        path=tmp_path,
    )
    api = GatewayApi()
    desk = Desk.open(dep, storage=MemoryStorage(), clock=Clock())
    service = SmsService.from_desk(desk, transport=api.transport)
    assert service.policy == SmsPolicy(
        duplicate_window=timedelta(minutes=5),
        max_pin_attempts=5,
        lock_for=timedelta(minutes=30),
    )
    out = service.receive(InboundSms(ONE, "LAPOR 1234 BUKA AMAN"))
    assert out.reply_sent and api.sent[0]["to"] == ONE_INTL


# ---------------------------------------------------------------------------------------
# The webhook
# ---------------------------------------------------------------------------------------


def make_app(service: SmsService) -> Starlette:
    return Starlette(routes=[Mount("/sms", routes=sms_routes(service))])


class AppClient:
    """Calls an ASGI app in process through httpx.ASGITransport (synchronously)."""

    def __init__(self, app: Starlette):
        self.app = app

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        async def call() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://sms.test") as c:
                return await c.request(method, url, **kwargs)

        return anyio.run(call)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)


def test_the_webhook_takes_a_form_post(env: Env) -> None:
    client = AppClient(make_app(env.service))
    r = client.post(
        "/sms/inbound",
        data={"from": ONE_INTL, "text": "HASIL 1234 130 220 SAH 350 TS 15 TOTAL 365", "id": "f1"},
        headers={"X-Webhook-Token": TOKEN},
    )
    assert r.status_code == 200
    assert r.json() == {
        "received": 1,
        "outcomes": [{"kind": "accepted", "code": None, "reply_sent": True}],
    }
    assert env.api.replies_to(ONE_INTL) == [
        "Diterima TPS 001 Kel. Kayu Ara: 01=130 02=220 sah 350 tidak sah 15 total 365"
    ]
    assert env.tally()[3] == 365


def test_the_webhook_takes_json_with_a_token_in_the_query(env: Env) -> None:
    client = AppClient(make_app(env.service))
    body = [
        {
            "from": ONE,
            "text": "LAPOR 1234 BUKA AMAN",
            "id": "j1",
            "timestamp": "2024-11-27T06:29:00Z",
        },
        {"from": ONE, "text": "LAPOR 1234 BUKA AMAN", "id": "j1"},
        {"from": 6285299990000, "text": "halo", "id": 5},
    ]
    r = client.post(f"/sms/inbound?token={TOKEN}", json=body)
    assert r.status_code == 200
    assert [o["kind"] for o in r.json()["outcomes"]] == [
        "situation",
        "redelivery",
        "unknown_sender",
    ]
    [(_, report)] = env.desk.reports(STATION_ONE, principal=COORDINATOR)
    assert report.observed_at == datetime.fromisoformat("2024-11-27T06:29:00+00:00")


def test_nested_json_fields(env: Env) -> None:
    env.gateway.config = attrs.evolve(
        env.gateway.config,
        inbound_from="data.sender",
        inbound_text="data.body",
        inbound_id="data.id",
        inbound_time=None,
    )
    client = AppClient(make_app(env.service))
    r = client.post(
        "/sms/inbound",
        json={"data": {"sender": ONE, "body": "LAPOR 1234 BUKA AMAN", "id": "n1"}},
        headers={"X-Webhook-Token": TOKEN},
    )
    assert r.json()["outcomes"][0]["kind"] == "situation"


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        ({"data": {"from": ONE, "text": "x"}}, 401, "inbound.unauthorized"),
        (
            {"data": {"from": ONE, "text": "x"}, "params": {"token": "salah"}},
            401,
            "inbound.unauthorized",
        ),
        (
            {"content": b"{", "headers": {"content-type": "application/json"}},
            400,
            "inbound.invalid_json",
        ),
        (
            {"content": b"<sms/>", "headers": {"content-type": "text/xml"}},
            415,
            "inbound.content_type",
        ),
        ({"data": {"from": ONE}}, 422, "inbound.missing_field"),
        ({"json": {"from": ONE, "text": 5}}, 422, "inbound.missing_field"),
        ({"json": []}, 422, "inbound.batch_size"),
        ({"json": [1]}, 422, "inbound.invalid"),
        ({"content": b"x" * 300_000}, 413, "inbound.too_large"),
    ],
)
def test_the_webhook_refuses_what_it_cannot_read(
    env: Env, kwargs: dict[str, Any], status: int, code: str
) -> None:
    client = AppClient(make_app(env.service))
    if status != 401:
        kwargs.setdefault("headers", {})["X-Webhook-Token"] = TOKEN
    r = client.post("/sms/inbound", **kwargs)
    assert r.status_code == status
    assert r.json()["error"] == code
    assert env.api.sent == []


def test_the_routes_can_be_added_without_a_prefix(env: Env) -> None:
    app = Starlette(routes=sms_routes(env.service, path="/webhook/sms"))
    r = AppClient(app).post(
        "/webhook/sms",
        data={"from": ONE, "text": "LAPOR 1234 BUKA AMAN"},
        headers={"X-Webhook-Token": TOKEN},
    )
    assert r.status_code == 200
    assert app.url_path_for("sms_inbound") == "/webhook/sms"
    assert AppClient(app).get("/webhook/sms").status_code == 405


@contextmanager
def serve(app: Starlette) -> Iterator[str]:
    """``app`` served by uvicorn on a free loopback port, in a thread."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def test_end_to_end_over_a_real_server_on_loopback(env: Env) -> None:
    posts: list[Callable[[httpx.Client], httpx.Response]] = [
        lambda c: c.post(
            "/sms/inbound",
            data={"from": "+6281234567801", "text": "H#1234#130#230#350#15#365", "id": "e1"},
        ),
        lambda c: c.post(
            "/sms/inbound",
            json={
                "from": "6281234567801",
                "text": "koreksi 1234 13O 22O sah 35O ts l5 total 365",
                "id": "e2",
            },
        ),
        lambda c: c.post(
            "/sms/inbound",
            json={
                "from": "6281234567801",
                "text": "KOREKSI 1234 130 220 SAH 350 TS 15 TOTAL 365",
                "id": "e3",
            },
        ),
        lambda c: c.post(
            "/sms/inbound", data={"from": "081234567803", "text": "LAPOR 9999 BUKA AMAN"}
        ),
    ]
    with (
        serve(make_app(env.service)) as url,
        httpx.Client(base_url=url, headers={"X-Webhook-Token": TOKEN}, timeout=10) as client,
    ):
        kinds = []
        for post in posts:
            r = post(client)
            assert r.status_code == 200
            kinds.append(r.json()["outcomes"][0]["kind"])
        unauthorised = client.post(
            "/sms/inbound", data={"from": ONE, "text": "x"}, headers={"X-Webhook-Token": "salah"}
        )
        assert unauthorised.status_code == 401
    assert kinds == ["flagged", "corrected", "duplicate", "wrong_pin"]
    assert env.api.sent == [
        {
            "to": "6281234567801",
            "message": "DITANDAI TPS 001 Kel. Kayu Ara: 01=130 02=230 sah 350 tidak sah 15 "
            "total 365. Belum dihitung: Jumlah suara sah 350 tidak sama dengan jumlah suara "
            "paslon 360. Periksa C.Hasil lalu kirim KOREKSI PIN dan angka yang benar",
        },
        {
            "to": "6281234567801",
            "message": "Koreksi diterima (versi 2) TPS 001 Kel. Kayu Ara: 01=130 02=220 sah 350 "
            "tidak sah 15 total 365",
        },
        {
            "to": "6281234567801",
            "message": "Pesan yang sama sudah diterima pukul 13:30 WIB; tidak dicatat lagi",
        },
        {
            "to": "6281234567803",
            "message": "PIN salah. Sisa 2 kali percobaan sebelum nomor dikunci",
        },
    ]
    assert env.tally() == ({1: 130, 2: 220}, 350, 15, 365)
    city = env.desk.tally("16.73", principal=COORDINATOR)
    assert (dict(city.votes), city.stations_counted) == ({1: 130, 2: 220}, 1)


def test_inbound_errors_are_typed() -> None:
    gateway = GenericHttpGateway(GatewayConfig(send_url=SEND_URL))
    with pytest.raises(InboundError) as e:
        gateway.parse_inbound("application/json", b"\xff\xfe\x00")
    assert e.value.status == 400
    [message] = gateway.parse_inbound(
        "application/json", json.dumps({"from": ONE, "text": "a\ud800b"}).encode()
    )
    assert message.text == "a?b"
    assert ONE not in repr(message)


def test_logs_never_carry_phone_numbers_pins_or_figures(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    e = make_env(status=500)
    e.send("HASIL 1234 7919 220 SAH 8139 TS 15 TOTAL 8154")
    e.send("HASIL 9876 7919 220 SAH 8139 TS 15 TOTAL 8154")
    e.send("HASIL 1234 7919X", sender="+6285299997777")
    e.send("HASIL 1234 79190 220 SAH 8139 TS 15 TOTAL 8154")
    for _ in range(3):
        e.send("LAPOR 9876 BUKA AMAN")
    text = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert "sms: accepted from monitor LLG-0001" not in text  # 8154 > DPT: flagged
    assert "flagged from monitor LLG-0001" in text and "LLG-0001 locked" in text
    for secret in ("1234567801", "85299997777", "9876", "7919", "8139", "8154"):
        assert secret not in text
