"""The Indonesian replies of the SMS channel, one function per situation (docs/sms.md
lists them all)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sipantau_adapters.sms.parser import SmsParseError
from sipantau_core.deployment import Deployment
from sipantau_core.domain import (
    EMPTY_BOX,
    Contest,
    IncidentCatalogue,
    PollingStation,
    SituationReport,
    TallyReport,
)
from sipantau_core.rules import Violation

__all__ = [
    "EXAMPLE_SITUATION",
    "EXAMPLE_TALLY",
]

EXAMPLE_TALLY = "HASIL 1234 130 270 SAH 400 TS 15 TOTAL 415"
EXAMPLE_SITUATION = "LAPOR 1234 BUKA AMAN"


def station_name(deployment: Deployment, station: PollingStation) -> str:
    """``TPS 003 Kel. Kayu Ara``: the station's own name, else its number and village."""
    if station.name:
        return station.name
    village = deployment.region_names.get(station.code.village)
    if village:
        return f"TPS {station.code.number:03d} Kel. {village}"
    return station.code.label


def clock_time(at: datetime, station: PollingStation) -> str:
    """``10:02 WIB``: a time in the station's own time zone."""
    zone = station.time_zone
    return f"{at.astimezone(zone.tzinfo):%H:%M} {zone.name}"


def readback(report: TallyReport, contest: Contest) -> str:
    """``01=130 02=270 sah 400 tidak sah 15 total 415`` (the empty box as ``KK``)."""
    votes = " ".join(
        f"{'KK' if n == EMPTY_BOX and contest.empty_box else f'{n:02d}'}={report.votes[n]}"
        for n in contest.options
        if n in report.votes
    )
    return f"{votes} sah {report.valid} tidak sah {report.invalid} total {report.total}"


def _notes(violations: Iterable[Violation]) -> str:
    return "; ".join(v.message_id for v in violations)


def tally_accepted(name: str, text: str, *, version: int, soft: Sequence[Violation] = ()) -> str:
    head = f"Koreksi diterima (versi {version})" if version > 1 else "Diterima"
    reply = f"{head} {name}: {text}"
    if soft:
        reply += f". Catatan: {_notes(soft)}"
    return reply


def tally_flagged(name: str, text: str, *, version: int, hard: Sequence[Violation]) -> str:
    head = f"Koreksi (versi {version}) DITANDAI" if version > 1 else "DITANDAI"
    return (
        f"{head} {name}: {text}. Belum dihitung: {_notes(hard)}. "
        "Periksa C.Hasil lalu kirim KOREKSI PIN dan angka yang benar"
    )


def situation_accepted(name: str, report: SituationReport, categories: IncidentCatalogue) -> str:
    reply = f"Laporan diterima {name}: tahap {report.stage.value}, {report.status.value}"
    for incident in report.incidents:
        label = (
            categories[incident.category].label_id
            if incident.category in categories
            else incident.category
        )
        reply += f". Kejadian: {label} tingkat {incident.severity}"
    return reply


def already_received(at: str | None = None) -> str:
    if at is None:
        return "Pesan ini sudah diterima sebelumnya; tidak dicatat lagi"
    return f"Pesan yang sama sudah diterima pukul {at}; tidak dicatat lagi"


def unknown_sender() -> str:
    return "Nomor ini tidak terdaftar sebagai pemantau desk. Hubungi koordinator"


def pin_not_set() -> str:
    return "PIN untuk nomor ini belum terdaftar. Hubungi koordinator"


def wrong_pin(left: int) -> str:
    return f"PIN salah. Sisa {left} kali percobaan sebelum nomor dikunci"


def locked_now(attempts: int, until: str) -> str:
    return (
        f"PIN salah {attempts} kali. Nomor dikunci sampai pukul {until}. "
        "Hubungi koordinator bila lupa PIN"
    )


def locked(until: str) -> str:
    return f"Nomor dikunci sampai pukul {until} karena PIN salah berulang kali"


def parse_error(error: SmsParseError) -> str:
    example = EXAMPLE_SITUATION if error.kind == "situation" else EXAMPLE_TALLY
    if error.kind == "correction":
        example = "KOREKSI" + EXAMPLE_TALLY[len("HASIL") :]
    if error.kind is None:
        return f"Format salah: {error.detail_id}. Contoh: {EXAMPLE_TALLY} atau {EXAMPLE_SITUATION}"
    return f"Format salah: {error.detail_id}. Contoh: {example}"


def vote_count(got: int, contest: Contest) -> str:
    options = " ".join(
        "KK" if n == EMPTY_BOX and contest.empty_box else f"{n:02d}" for n in contest.options
    )
    return (
        f"Format salah: terbaca {got} angka suara paslon, seharusnya {len(contest.options)} "
        f"({options} berurutan) lalu SAH, TS, TOTAL"
    )


def contest_missing(contests: Iterable[str]) -> str:
    names = " atau ".join(c.upper() for c in sorted(contests))
    return f"Format salah: sebutkan pemilihan setelah PIN: {names}"


def contest_unknown(given: str, contests: Iterable[str]) -> str:
    names = " atau ".join(c.upper() for c in sorted(contests))
    return f"Format salah: pemilihan {given.upper()} tidak dikenal; pakai {names}"


def nothing_to_correct() -> str:
    return "Belum ada hasil TPS ini untuk dikoreksi; kirim HASIL dulu"


def already_reported() -> str:
    return (
        "Hasil TPS ini sudah pernah diterima. Untuk mengubah, kirim KOREKSI PIN dan angka "
        "yang benar"
    )


def refused(message_id: str) -> str:
    return f"Ditolak: {message_id}"


def desk_unavailable() -> str:
    return (
        "Maaf, desk sedang gangguan; pesan belum tercatat. Kirim ulang SMS yang sama "
        "beberapa menit lagi"
    )
