"""The page's words in Indonesian (the default) and English.

``translator(lang)`` gives the ``t(key, **values)`` of a page; a key missing from a
language falls back to Indonesian, and a key missing from both is shown as itself (a test
checks that every key the templates use is in both catalogues).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = [
    "LANGUAGES",
    "MESSAGES",
    "decimal",
    "number",
    "percent",
    "translator",
    "verdict_text",
]

LANGUAGES = ("id", "en")

MESSAGES: Mapping[str, Mapping[str, str]] = {
    "id": {
        "overview": "Ringkasan",
        "map": "Peta",
        "exports": "Ekspor",
        "menu": "Menu utama",
        "sign_in": "Masuk",
        "sign_out": "Keluar",
        "staff_token": "Token petugas",
        "token_hint": "Token dari koordinator desk (sipantau token …).",
        "secret_banner": "RAHASIA — bukan untuk konsumsi publik",
        "error": "Terjadi kesalahan",
        "error_403": "Tidak berwenang",
        "error_404": "Tidak ditemukan",
        "error_400": "Permintaan tidak sah",
        "back_to_overview": "Kembali ke ringkasan",
        "region": "Wilayah",
        "show": "Tampilkan",
        "live_connecting": "Menghubungkan pembaruan langsung…",
        "live_on": "Pembaruan langsung aktif",
        "live_lost": "Koneksi terputus; mencoba lagi…",
        "results": "Hasil per wilayah",
        "results_chart": "Perolehan suara sah per pasangan",
        "tps_counted": "TPS terhitung",
        "valid": "Sah",
        "invalid": "Tidak sah",
        "tps": "TPS",
        "quick_count": "Hitung cepat",
        "candidate": "Pasangan",
        "share": "Perolehan",
        "margin": "galat",
        "interval": "Rentang",
        "design_effect": "Efek desain",
        "coverage": "Cakupan DPT",
        "strata_coverage": "Cakupan strata (menurut DPT)",
        "no_projection": "Belum cukup TPS untuk proyeksi.",
        "verdict_callable": (
            "Pasangan {leader} unggul dengan {share} ± {margin}; hasil dapat dinyatakan "
            "pada tingkat kepercayaan {level}."
        ),
        "verdict_not_callable": (
            "Pasangan {leader} unggul dengan {share} ± {margin}; selisihnya belum pasti "
            "pada tingkat kepercayaan {level}."
        ),
        "stages": "Laporan per tahapan",
        "stage_persiapan": "Persiapan",
        "stage_pembukaan": "Pembukaan",
        "stage_pemungutan": "Pemungutan",
        "stage_penghitungan": "Penghitungan",
        "stage_penyerahan": "Penyerahan",
        "late": "terlambat",
        "feed": "Kejadian dan hasil bermasalah",
        "flagged_tallies": "Hasil yang ditandai",
        "incidents": "Kejadian",
        "none": "Tidak ada.",
        "refused": "Anda tidak berwenang melihat bagian ini.",
        "refused_access.not_released": "Belum dirilis oleh koordinator.",
        "refused_access.role": "Peran Anda tidak mencakup bagian ini.",
        "refused_access.out_of_scope": "Di luar wilayah Anda.",
        "release_title": "Rilis hasil",
        "release_button": "Rilis hasil",
        "release_confirm": "Rilis hasil wilayah ini kepada pengamat?",
        "released_already": "Wilayah ini sudah dirilis.",
        "tps_facts": "Data TPS",
        "dpt": "DPT",
        "risk_level": "Tingkat kerawanan",
        "risk_low": "rendah",
        "risk_medium": "sedang",
        "risk_high": "tinggi",
        "risk_indicators": "Indikator kerawanan",
        "monitor": "Pemantau",
        "state_in": "masuk",
        "state_late": "terlambat",
        "state_missing": "belum masuk",
        "state_pending": "belum waktunya",
        "security_aman": "aman",
        "security_waspada": "waspada",
        "security_gangguan": "gangguan",
        "tally_chain": "Hasil penghitungan dan koreksinya",
        "no_tally": "Belum ada hasil penghitungan.",
        "version": "Versi",
        "status_accepted": "diterima",
        "status_flagged": "ditandai",
        "status_overridden": "dihitung atas keputusan",
        "status_rejected": "ditolak",
        "status_superseded": "digantikan koreksi",
        "sent_by": "Dikirim oleh",
        "total": "Jumlah",
        "decision_override": "Dihitung atas keputusan",
        "decision_reject": "Ditolak",
        "override_confirm": "Simpan keputusan ini? Keputusan tercatat di log audit.",
        "reason": "Alasan",
        "override": "Hitung tetap",
        "reject": "Tolak",
        "correct": "Koreksi hasil",
        "send_correction": "Kirim koreksi",
        "media": "Foto/video",
        "media_pending": "belum diterima desk",
        "sheet_photo": "Foto lembar C.Hasil",
        "sheet_photo_alt": "Foto lembar C.Hasil-KWK, versi",
        "photo_open": "Buka foto ukuran penuh",
        "photo_none": "Tidak ada foto lembar yang dikirim.",
        "photo_pending": "Foto disebut dalam laporan tetapi belum diterima desk.",
        "acknowledged_by": "Ditindaklanjuti oleh",
        "note": "Catatan",
        "acknowledge": "Tindak lanjuti",
        "audit_entries": "Log audit TPS ini",
        "refused_audit": "Log audit hanya untuk auditor.",
        "when": "Waktu",
        "who": "Oleh",
        "action": "Tindakan",
        "object": "Objek",
        "outcome": "Hasil",
        "done_override": "Keputusan tersimpan: hasil dihitung.",
        "done_reject": "Keputusan tersimpan: laporan ditolak.",
        "done_accepted": "Koreksi diterima dan dihitung.",
        "done_flagged": "Koreksi tersimpan tetapi ditandai (melanggar aturan).",
        "done_acknowledged": "Kejadian ditindaklanjuti.",
        "done_released": "Hasil wilayah dirilis.",
        "exports_intro": "Unduhan mengikuti hak akses Anda: hanya yang boleh Anda lihat.",
        "export_tps": "Hasil per TPS",
        "export_districts": "Hasil per wilayah",
        "export_err": "Hasil (NIST SP 1500-100)",
        "export_print": "Ringkasan untuk dicetak",
        "risk_filter": "Saring menurut kerawanan",
        "risk_summary": "Kerawanan dan kejadian",
        "risk_summary_hint": "Apakah TPS rawan lebih sering melaporkan masalah?",
        "generated_at": "dibuat",
        "unofficial": "bukan hasil resmi",
        "votes": "Suara",
        "print": "Cetak",
        "role_monitor": "pemantau",
        "role_officer": "petugas desk",
        "role_coordinator": "koordinator",
        "role_auditor": "auditor",
        "role_viewer": "pengamat",
        "role_system": "sistem",
    },
    "en": {
        "overview": "Overview",
        "map": "Map",
        "exports": "Exports",
        "menu": "Main menu",
        "sign_in": "Sign in",
        "sign_out": "Sign out",
        "staff_token": "Staff token",
        "token_hint": "A token from the desk's coordinator (sipantau token …).",
        "secret_banner": "SECRET — not for public consumption",
        "error": "Something went wrong",
        "error_403": "Not allowed",
        "error_404": "Not found",
        "error_400": "Bad request",
        "back_to_overview": "Back to the overview",
        "region": "Region",
        "show": "Show",
        "live_connecting": "Connecting live updates…",
        "live_on": "Live updates on",
        "live_lost": "Connection lost; retrying…",
        "results": "Results by region",
        "results_chart": "Valid votes per pair",
        "tps_counted": "TPS counted",
        "valid": "Valid",
        "invalid": "Invalid",
        "tps": "TPS",
        "quick_count": "Quick count",
        "candidate": "Pair",
        "share": "Share",
        "margin": "margin",
        "interval": "Interval",
        "design_effect": "Design effect",
        "coverage": "Voters covered",
        "strata_coverage": "Strata covered (by voters)",
        "no_projection": "Too few TPS for a projection yet.",
        "verdict_callable": (
            "Pair {leader} leads with {share} ± {margin}; callable at {level} confidence."
        ),
        "verdict_not_callable": (
            "Pair {leader} leads with {share} ± {margin}; not callable yet at {level} confidence."
        ),
        "stages": "Reports by stage",
        "stage_persiapan": "Preparation",
        "stage_pembukaan": "Opening",
        "stage_pemungutan": "Voting",
        "stage_penghitungan": "Counting",
        "stage_penyerahan": "Handover",
        "late": "late",
        "feed": "Incidents and flagged tallies",
        "flagged_tallies": "Flagged tallies",
        "incidents": "Incidents",
        "none": "None.",
        "refused": "You may not see this part.",
        "refused_access.not_released": "Not released by a coordinator yet.",
        "refused_access.role": "Your role does not cover this part.",
        "refused_access.out_of_scope": "Outside your region.",
        "release_title": "Release the results",
        "release_button": "Release the results of",
        "release_confirm": "Release this region's results to viewers?",
        "released_already": "This region is released.",
        "tps_facts": "TPS facts",
        "dpt": "Registered voters",
        "risk_level": "Risk level",
        "risk_low": "low",
        "risk_medium": "medium",
        "risk_high": "high",
        "risk_indicators": "Risk indicators",
        "monitor": "Monitor",
        "state_in": "in",
        "state_late": "late",
        "state_missing": "missing",
        "state_pending": "not due yet",
        "security_aman": "safe",
        "security_waspada": "alert",
        "security_gangguan": "disturbed",
        "tally_chain": "The tally and its corrections",
        "no_tally": "No tally yet.",
        "version": "Version",
        "status_accepted": "accepted",
        "status_flagged": "flagged",
        "status_overridden": "counted by decision",
        "status_rejected": "rejected",
        "status_superseded": "superseded by a correction",
        "sent_by": "Sent by",
        "total": "Total",
        "decision_override": "Counted by decision",
        "decision_reject": "Rejected",
        "override_confirm": "Record this decision? It goes into the audit log.",
        "reason": "Reason",
        "override": "Count anyway",
        "reject": "Reject",
        "correct": "Correct the tally",
        "send_correction": "Send the correction",
        "media": "Photo/video",
        "media_pending": "not received by the desk yet",
        "sheet_photo": "Photo of the C.Hasil sheet",
        "sheet_photo_alt": "Photo of the C.Hasil-KWK tally sheet, version",
        "photo_open": "Open the photo in full size",
        "photo_none": "No photo of the sheet was sent.",
        "photo_pending": "The report names a photo, but the desk has not received it yet.",
        "acknowledged_by": "Acted on by",
        "note": "Note",
        "acknowledge": "Acknowledge",
        "audit_entries": "Audit log of this TPS",
        "refused_audit": "The audit log is for auditors.",
        "when": "When",
        "who": "Who",
        "action": "Action",
        "object": "Object",
        "outcome": "Outcome",
        "done_override": "Decision recorded: the tally counts.",
        "done_reject": "Decision recorded: the report is rejected.",
        "done_accepted": "Correction accepted and counted.",
        "done_flagged": "Correction stored but flagged (it breaks a rule).",
        "done_acknowledged": "Incident acknowledged.",
        "done_released": "The region's results are released.",
        "exports_intro": "Downloads follow your access: only what you may see.",
        "export_tps": "Results per TPS",
        "export_districts": "Results per region",
        "export_err": "Results (NIST SP 1500-100)",
        "export_print": "Printable summary",
        "risk_filter": "Filter by risk level",
        "risk_summary": "Risk and incidents",
        "risk_summary_hint": "Do TPS mapped as risky report more trouble?",
        "generated_at": "made",
        "unofficial": "not the official result",
        "votes": "Votes",
        "print": "Print",
        "role_monitor": "monitor",
        "role_officer": "desk officer",
        "role_coordinator": "coordinator",
        "role_auditor": "auditor",
        "role_viewer": "viewer",
        "role_system": "system",
    },
}


def translator(lang: str) -> tuple[Callable[..., str], Callable[[str], bool]]:
    """``t(key, **values)`` and ``has(key)`` of a language (Indonesian when unknown)."""
    own = MESSAGES.get(lang, MESSAGES["id"])
    base = MESSAGES["id"]

    def t(key: str, **values: Any) -> str:
        text = own.get(key) or base.get(key) or key
        return text.format(**values) if values else text

    def has(key: str) -> bool:
        return key in own or key in base

    return t, has


def percent(value: float, lang: str, digits: int = 2) -> str:
    """``41,47%`` in Indonesian, ``41.47%`` in English; ``–`` for no value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    text = f"{100 * value:.{digits}f}%"
    return text.replace(".", ",") if lang == "id" else text


def decimal(value: float, lang: str, digits: int = 2) -> str:
    """``18,59`` in Indonesian, ``18.59`` in English; ``–`` for no value."""
    if value is None or math.isnan(value):
        return "–"
    text = f"{value:.{digits}f}"
    return text.replace(".", ",") if lang == "id" else text


def number(value: int, lang: str) -> str:
    """``134.934`` in Indonesian, ``134,934`` in English."""
    text = f"{value:,}"
    return text.replace(",", ".") if lang == "id" else text


def verdict_text(estimate: Any, options: Sequence[tuple[int, str]], lang: str) -> str:
    """The quick count's verdict in the page's language (the estimate's own
    :meth:`~sipantau_core.quickcount.ShareEstimate.verdict` is English)."""
    t, _ = translator(lang)
    names = dict(options)
    leader = estimate.leader
    key = "verdict_callable" if estimate.callable else "verdict_not_callable"
    return t(
        key,
        leader=f"{leader}. {names.get(leader, leader)}",
        share=percent(estimate.share[leader], lang),
        margin=percent(estimate.margin[leader], lang),
        level=percent(estimate.confidence, lang, 0),
    )
