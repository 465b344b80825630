"""The desk's web page in the system's Chromium, against a real desk on the Lubuklinggau
deployment behind a real server on loopback: signing in and out, the live overview while
reports arrive (and after its stream was cut), what a viewer may see before and after a
release, the map's risk filter, the drill-down from a flagged tally, a correction and an
override from the page into the audit log, the exports opened and read back, escaping
under the page's CSP, a phone's width, the language switch, and the screenshot script.

Every page blocks requests to other hosts and fails its test on an uncaught script error
or a Content-Security-Policy violation (``tests/browser.py``). The tests share one desk
and use TPS of their own, so that they do not depend on each other's order; what they
expect they read from the desk when they need it.
"""

from __future__ import annotations

import contextlib
import csv
import importlib.util
import json
import re
import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from browser import NewPage
from sipantau_core.desk import Desk
from sipantau_core.domain import RegionCode
from sipantau_core.results import Tally
from web_helpers import ROOT, SYSTEM, Site, send, site, situation, tally

pytest_plugins = ("browser",)

DISTRICT = "16.73.01"  # the officer's kecamatan, Lubuklinggau Barat I
CONTEST = "walikota"
#: The TPS each test reports for (all in 16.73.01, low risk unless said).
LIVE_TPS = ("1673011002001", "1673011002002", "1673011002003")
OFFLINE_TPS = "1673011002004"
VIEWER_TPS = "1673011002005"
DRILL_TPS = "1673011001003"
CORRECT_TPS = "1673011001004"
OVERRIDE_TPS = "1673011002006"
EXPORT_TPS = ("1673011002007", "1673011004001")
EXPORT_FLAGGED_TPS = "1673011004002"
NASTY_TPS = "1673011003001"
LONG_TPS = "1673011003002"
LONG_WORD = "IMG_20241127_143512_TPS002_LUBUKLINGGAU_BARAT_I_KELURAHAN_1003_ASLI_DARI_PEMANTAU.jpg"
NASTY = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>'
#: How long a live update may take to show (the hub polls every 0.5 s and renders a
#: region at most once a second).
LIVE_MS = 10_000
#: map.js's Indonesian words for the risk indicators.
INDICATORS = {
    "keamanan": "Keamanan",
    "aksesibilitas": "Aksesibilitas",
    "kejadian_lalu": "Kejadian pemilu lalu",
    "logistik": "Logistik",
    "jaringan": "Jaringan",
}


@pytest.fixture(scope="module")
def s() -> Iterator[Site]:
    with site() as running:
        yield running


# -- helpers -------------------------------------------------------------------------------


def sign_in(page: Page, s: Site, who: str, target: str = "/", *, base: str = "") -> None:
    """Sign in through the page's form as ``who`` (a name of ``staff()``) and land on
    ``target`` (of ``base``, the site's URL unless said)."""
    base = base or s.url
    page.goto(f"{base}/sign-in?next={quote(target, safe='')}")
    page.locator("#token").fill(s.tokens[who])
    page.locator("main button[type=submit]").click()
    page.wait_for_url(base + target)


def idn(value: int) -> str:
    """A count as the Indonesian page writes it (``1.234``)."""
    return f"{value:,}".replace(",", ".")


def district_tally(desk: Desk, region: str = DISTRICT) -> Tally:
    return desk.tally(region, principal=SYSTEM, contest=CONTEST)


def valid_cell(page: Page) -> Locator:
    """The overview's cell of the region's valid votes (after a cell per candidate)."""
    return page.locator("#panel-results tr.total td").nth(2)


def head_of(desk: Desk, station: str) -> Any:
    return desk.reports(station, principal=SYSTEM, kind="tally")[0][0]


def audit_of(desk: Desk, action: str, report_id: object) -> list[tuple[str, str]]:
    return [
        (e.principal, e.outcome)
        for e in desk.audit.records()  # a report's record follows its batch
        if e.action == action and e.object == f"report:{report_id}"
    ]


def click_marker(page: Page, selector: str) -> None:
    """Click a TPS marker where it is drawn (a marker beside it may overlap its edge)."""
    box = page.locator(selector).bounding_box()
    assert box is not None
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.dispatch_event(selector, "click", {"clientX": x, "clientY": y, "button": 0})


# -- 1. signing in and out -------------------------------------------------------------------


def test_sign_in_with_a_token_and_sign_out(page: Page, s: Site) -> None:
    page.goto(s.url + "/")
    page.wait_for_url(f"{s.url}/sign-in?next=%2F")
    expect(page.locator("#token")).to_have_attribute("type", "password")

    page.locator("#token").fill("bukan-token-desk")
    page.locator("main button[type=submit]").click()
    error = page.locator("main .error[role=alert]")
    expect(error).to_have_attribute("data-code", "access.bad_token")
    expect(error).to_contain_text("access.bad_token")

    page.locator("#token").fill(s.tokens["coordinator"])
    page.locator("main button[type=submit]").click()
    page.wait_for_url(s.url + "/")
    expect(page.locator("main h1")).to_contain_text("Kota Lubuklinggau")
    expect(page.locator("#panel-results h2")).to_have_text("Hasil per wilayah")
    expect(page.locator("#panel-results tbody tr")).to_have_count(1 + 8)  # the city, 8 kec.
    expect(page.locator("header .principal")).to_contain_text("koord")
    assert "sipantau" not in page.evaluate("document.cookie")  # HttpOnly

    page.locator("header").get_by_role("button", name="Keluar").click()
    page.wait_for_url(s.url + "/sign-in")
    expect(page.locator("header .principal")).to_have_count(0)
    page.goto(s.url + "/")
    page.wait_for_url(f"{s.url}/sign-in?next=%2F")


# -- 2. the live overview --------------------------------------------------------------------


class Cable:
    """A TCP relay on loopback in front of the server, standing for the network between
    a phone and the desk: :meth:`cut` drops every connection through it and refuses new
    ones (they are closed as soon as they open) until :meth:`mend`."""

    def __init__(self, target: str) -> None:
        parts = urlsplit(target)
        self.target = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.down = False
        self.open: set[socket.socket] = set()
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def cut(self) -> None:
        with self.lock:
            self.down = True
            for sock in self.open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            self.open.clear()

    def mend(self) -> None:
        with self.lock:
            self.down = False

    def close(self) -> None:
        self.cut()
        self.listener.close()

    def _accept(self) -> None:
        while True:
            try:
                near, _ = self.listener.accept()
            except OSError:
                return  # closed
            with self.lock:
                if self.down:
                    near.close()
                    continue
                far = socket.create_connection(self.target)
                self.open.update((near, far))
            for a, b in ((near, far), (far, near)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            with self.lock:
                self.open.discard(source)
                self.open.discard(sink)


@pytest.fixture
def cable(s: Site) -> Iterator[Cable]:
    relay = Cable(s.url)
    try:
        yield relay
    finally:
        relay.close()


def test_the_overview_follows_the_reports_live_and_catches_up_after_a_cut(
    page: Page, s: Site, cable: Cable
) -> None:
    sign_in(page, s, "officer", base=cable.url)
    state = page.locator("#live-state")
    panels = page.locator("#panels")
    expect(state).to_have_attribute("data-state", "live")
    expect(panels).to_have_attribute("data-seq", re.compile(r"^\d+$"))
    first_seq = int(panels.get_attribute("data-seq") or "")
    page.evaluate("window.__samePage = true")  # gone if the page were loaded again

    # one tally, then two more in a burst: each shows without a reload
    send(s.desk, tally(s.desk, LIVE_TPS[0], (211, 143)))
    count = district_tally(s.desk)
    expect(valid_cell(page)).to_have_text(idn(count.valid), timeout=LIVE_MS)
    expect(page.locator("#panel-results .progress-line strong")).to_have_text(
        str(count.stations_counted)
    )
    for code, votes in zip(LIVE_TPS[1:], ((187, 164), (142, 201)), strict=True):
        send(s.desk, tally(s.desk, code, votes))
        time.sleep(0.4)
    count = district_tally(s.desk)
    expect(valid_cell(page)).to_have_text(idn(count.valid), timeout=LIVE_MS)
    expect(page.locator("#panel-results .progress-line strong")).to_have_text(
        str(count.stations_counted)
    )
    assert page.evaluate("window.__samePage") is True
    seq = int(panels.get_attribute("data-seq") or "")
    assert seq > first_seq

    # the network drops; a tally arrives meanwhile; the page reconnects and shows it
    cable.cut()
    expect(state).to_have_attribute("data-state", "lost", timeout=LIVE_MS)
    send(s.desk, tally(s.desk, OFFLINE_TPS, (176, 158)))
    missed = district_tally(s.desk)
    page.wait_for_timeout(2500)  # a reconnection fails while the network is down
    expect(state).to_have_attribute("data-state", "lost")
    cable.mend()
    expect(state).to_have_attribute("data-state", "live", timeout=LIVE_MS)
    expect(valid_cell(page)).to_have_text(idn(missed.valid), timeout=LIVE_MS)
    assert int(panels.get_attribute("data-seq") or "") > seq
    assert panels.get_attribute("data-changes") == "1"  # what it missed, by Last-Event-ID
    assert page.evaluate("window.__samePage") is True


# -- 3. a viewer and a release -----------------------------------------------------------------


def test_a_viewer_sees_a_kecamatan_once_the_coordinator_released_it(
    page: Page, new_page: NewPage, s: Site
) -> None:
    send(s.desk, tally(s.desk, VIEWER_TPS, (233, 119)))
    sign_in(page, s, "viewer", f"/?region={DISTRICT}")
    refusal = page.locator("main [data-code='access.not_released']")
    expect(refusal).to_be_visible()
    expect(page.locator("#panel-results")).to_have_count(0)
    count = district_tally(s.desk)
    main = page.locator("main").inner_text()
    assert idn(count.valid) not in main and "Paslon" not in main

    coordinator = new_page()
    sign_in(coordinator, s, "coordinator", f"/?region={DISTRICT}")
    coordinator.on("dialog", lambda dialog: dialog.accept())
    coordinator.locator("#release").click()
    expect(coordinator.locator("#flash")).to_have_text("Hasil wilayah dirilis.")
    assert s.desk.is_released(DISTRICT, CONTEST)

    page.reload()
    expect(valid_cell(page)).to_have_text(idn(count.valid))
    expect(page.locator("#panel-stages [data-code='access.role']")).to_be_visible()
    expect(page.locator("#panel-feed [data-code='access.role']").first).to_be_visible()


# -- 4. the map ------------------------------------------------------------------------------


def test_the_map_hides_the_high_risk_tps_and_opens_a_popup(page: Page, s: Site) -> None:
    stations = list(s.desk.deployment.stations_in(RegionCode.parse(DISTRICT)))
    placed = [st for st in stations if st.position is not None]
    high = [st for st in placed if st.risk.level.value == "high"]
    assert placed and high
    sign_in(page, s, "officer", f"/map?region={DISTRICT}")
    expect(page.locator("#map")).to_have_attribute("data-state", "ready")
    markers = page.locator("path.map-tps")
    expect(markers).to_have_count(len(placed))
    expect(page.locator("path.map-tps.map-risk-high")).to_have_count(len(high))

    high_box = page.locator("#risk-filter input[value=high]")
    high_box.uncheck()
    expect(page.locator("path.map-risk-high")).to_have_count(0)
    expect(markers).to_have_count(len(placed) - len(high))
    high_box.check()
    expect(markers).to_have_count(len(placed))

    target = high[0]
    click_marker(page, f"path.map-tps-{target.code.compact}")
    popup = page.locator(".leaflet-popup-content")
    expect(popup).to_contain_text(target.code.label)
    expect(popup.locator(".map-risk-high")).to_have_text("Tinggi")
    expect(popup.locator(".map-popup-indicators li")).to_have_text(
        [INDICATORS[name] for name in sorted(target.risk.indicators)]
    )
    popup.locator("a.map-popup-link").click()
    page.wait_for_url(f"{s.url}/tps/{target.code.compact}")
    expect(page.locator("#tps-facts .risk-high")).to_have_text("tinggi")


# -- 5. and 6. a flagged tally: drill-down, correction, override -------------------------------


def _flag(desk: Desk, station: str) -> Any:
    """A tally whose total is not valid + invalid: stored, flagged."""
    send(desk, tally(desk, station, (205, 160), total=379))  # valid + invalid = 369
    stored = head_of(desk, station)
    assert stored.status.value == "flagged"
    return stored


def test_a_flagged_tally_in_the_feed_opens_its_tps(page: Page, s: Site) -> None:
    stored = _flag(s.desk, DRILL_TPS)
    (finding,) = json.loads(stored.verdict)  # it breaks this one rule
    assert finding["code"] == "total.sum_mismatch"
    sign_in(page, s, "officer")
    link = page.locator(f"a[href='/tps/{DRILL_TPS}']")
    item = page.locator("#panel-feed ul.flagged li", has=link)
    expect(item.locator("code")).to_have_text(["total.sum_mismatch"])
    item.locator("a").click()
    page.wait_for_url(f"{s.url}/tps/{DRILL_TPS}")
    expect(page.locator("main h1")).to_contain_text("16.73.01.1001 TPS 003")
    version = page.locator("#version-1")
    expect(version.locator(".status")).to_have_text("ditandai")
    found = version.locator(".findings li")
    expect(found).to_have_count(1)
    expect(found.locator("code")).to_have_text("total.sum_mismatch")
    expect(found).to_contain_text(finding["message_id"])
    assert finding["message_id"] != finding["message"]  # the Indonesian one, not English


def test_a_correction_from_the_page_is_counted_and_on_record(page: Page, s: Site) -> None:
    first = _flag(s.desk, CORRECT_TPS)
    sign_in(page, s, "officer", f"/tps/{CORRECT_TPS}")
    page.locator("details.correct summary").click()
    expect(page.locator("details.correct summary")).to_have_text("Koreksi hasil")
    for field, value in (("votes-1", 205), ("votes-2", 160), ("valid", 365), ("invalid", 4)):
        page.locator(f"#{field}").fill(str(value))
    page.locator("#total").fill("369")
    page.locator("#send-correction").click()
    page.wait_for_url(re.compile(rf"/tps/{CORRECT_TPS}\?done=accepted$"))
    expect(page.locator("#flash")).to_have_text("Koreksi diterima dan dihitung.")
    expect(page.locator("#version-2 .status")).to_have_text("diterima")
    expect(page.locator("#version-2 .sent strong")).to_have_text("petugas-1")
    expect(page.locator("#version-1 .status")).to_have_text("digantikan koreksi")

    head = head_of(s.desk, CORRECT_TPS)
    assert (head.version, head.status.value, head.submitted_by) == (2, "accepted", "petugas-1")
    assert head.report_id != first.report_id
    assert audit_of(s.desk, "submit", head.report_id) == [("petugas-1", "accepted")]
    assert s.desk.tally(CORRECT_TPS, principal=SYSTEM).total == 369
    assert s.desk.audit.verify().ok


def test_an_override_needs_its_confirmation_and_is_on_record(page: Page, s: Site) -> None:
    stored = _flag(s.desk, OVERRIDE_TPS)
    sign_in(page, s, "officer", f"/tps/{OVERRIDE_TPS}")
    page.locator("#reason-1").fill("C1 diperiksa: jumlah pemilih di formulir salah tulis")
    asked: list[str] = []

    def dismiss(dialog: Any) -> None:
        asked.append(dialog.message)
        dialog.dismiss()

    page.once("dialog", dismiss)
    page.locator("#override").click()
    page.wait_for_timeout(300)
    assert asked == ["Simpan keputusan ini? Keputusan tercatat di log audit."]
    assert page.url == f"{s.url}/tps/{OVERRIDE_TPS}"
    assert audit_of(s.desk, "override", stored.report_id) == []

    page.on("dialog", lambda dialog: dialog.accept())
    page.locator("#override").click()
    page.wait_for_url(re.compile(rf"/tps/{OVERRIDE_TPS}\?done=override$"))
    expect(page.locator("#flash")).to_have_text("Keputusan tersimpan: hasil dihitung.")
    version = page.locator("#version-1")
    expect(version.locator(".status")).to_have_text("dihitung atas keputusan")
    expect(version.locator(".decisions")).to_contain_text("petugas-1")
    expect(version.locator(".decisions q")).to_have_text(
        "C1 diperiksa: jumlah pemilih di formulir salah tulis"
    )
    assert audit_of(s.desk, "override", stored.report_id) == [("petugas-1", "overridden")]
    assert s.desk.tally(OVERRIDE_TPS, principal=SYSTEM).total == 379
    assert s.desk.audit.verify().ok


# -- 7. the exports --------------------------------------------------------------------------


def test_the_exports_download_and_read_back(page: Page, s: Site, tmp_path: Path) -> None:
    for code in EXPORT_TPS:
        send(s.desk, tally(s.desk, code, (190, 171)))
    _flag(s.desk, EXPORT_FLAGGED_TPS)
    count = district_tally(s.desk)
    sign_in(page, s, "officer", "/exports")

    with page.expect_download() as caught:
        page.locator("#export-tps").click()
    download = caught.value
    assert download.suggested_filename == "sipantau-16.73.01-all-tps.csv"
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    with saved.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(list(s.desk.deployment.stations_in(RegionCode.parse(DISTRICT))))
    by_code = {row["tps_code"]: row for row in rows}
    assert by_code[EXPORT_FLAGGED_TPS]["tally_status"] == "flagged"
    assert by_code[EXPORT_FLAGGED_TPS]["rule_codes"] == "total.sum_mismatch"
    counted = [row for row in rows if row["counted"] == "1"]
    assert {EXPORT_TPS[0], EXPORT_TPS[1]} <= {row["tps_code"] for row in counted}
    for row in rows:
        one = s.desk.tally(row["tps_code"], principal=SYSTEM, contest=CONTEST)
        if row["counted"] == "1":
            assert (int(row["votes 1 Paslon 1"]), int(row["votes 2 Paslon 2"])) == (
                one.votes[1],
                one.votes[2],
            )
            assert (int(row["valid"]), int(row["invalid"]), int(row["total"])) == (
                one.valid,
                one.invalid,
                one.total,
            )
        else:
            assert one.stations_counted == 0, row
    assert sum(int(row["valid"]) for row in counted) == count.valid
    assert len(counted) == count.stations_counted

    with page.expect_download() as caught:
        page.locator("#export-err").click()
    with open(caught.value.path(), encoding="utf-8") as f:
        report = json.load(f)
    assert report["@type"] == "ElectionResults.ElectionReport"
    assert report["Status"] == "unofficial-partial"
    (election,) = report["Election"]
    unit = f"ru-{DISTRICT}"
    ballots = next(b for b in election["BallotCounts"] if b["GpUnitId"] == unit)
    assert (ballots["BallotsCast"], ballots["BallotsRejected"]) == (count.total, count.invalid)
    (contest,) = election["Contest"]
    for selection, option in zip(contest["ContestSelection"], (1, 2), strict=True):
        counts = {v["GpUnitId"]: v["Count"] for v in selection["VoteCounts"]}
        assert counts[unit] == count.votes[option]

    page.locator("#export-print").click()
    page.wait_for_url(f"{s.url}/print?region={DISTRICT}")
    summary = page.locator("#summary")
    expect(summary.locator("h1")).to_contain_text("Lubuklinggau Barat I")
    totals = summary.locator("table.results").first
    expect(totals.locator("tr", has_text="Jumlah").locator("td").first).to_have_text(
        idn(count.total)
    )
    expect(totals.locator("tr.total td").first).to_have_text(idn(count.valid))
    expect(summary).to_contain_text(f"TPS terhitung: {count.stations_counted} / ")


# -- 8. escaping under the CSP ---------------------------------------------------------------


def test_markup_in_an_incident_is_text_live_on_reload_and_on_its_tps(page: Page, s: Site) -> None:
    sign_in(page, s, "coordinator")
    expect(page.locator("#live-state")).to_have_attribute("data-state", "live")
    send(s.desk, situation(s.desk, NASTY_TPS, NASTY, severity=4))
    quoted = page.locator("#panel-feed q.text", has_text="window.__pwned=2")
    expect(quoted).to_have_text(NASTY, timeout=LIVE_MS)  # arrived by the live stream
    for where in ("live", "reload", "tps"):
        if where == "reload":
            page.reload()
        elif where == "tps":
            page.goto(f"{s.url}/tps/{NASTY_TPS}")
            quoted = page.locator("#tps-incidents q.text")
        expect(quoted).to_have_text(NASTY)
        expect(page.locator("main img, main script")).to_have_count(0)
        assert page.evaluate("typeof window.__pwned") == "undefined", where
    # (a CSP violation on the console fails the test at teardown: see browser.py)


def projected(desk: Desk, region: str) -> None:
    """Send tallies for TPS of ``region`` that none of the tests uses, until the quick
    count of the region has a projection."""
    taken = {*LIVE_TPS, *EXPORT_TPS, OFFLINE_TPS, VIEWER_TPS, DRILL_TPS, CORRECT_TPS}
    taken |= {OVERRIDE_TPS, EXPORT_FLAGGED_TPS, NASTY_TPS, LONG_TPS}
    free = (
        st.code.compact
        for st in desk.deployment.stations_in(RegionCode.parse(region))
        if st.code.compact not in taken
    )
    for n, code in enumerate(free):
        if desk.progress(region, principal=SYSTEM, contest=CONTEST).projection is not None:
            return
        if not desk.reports(code, principal=SYSTEM, kind="tally"):
            send(desk, tally(desk, code, (150 + 7 * (n % 9), 170 - 5 * (n % 7))))
    raise AssertionError(f"no projection for {region} with every TPS counted")


#: The outermost elements that stick out to the right of the viewport (what makes a page
#: scroll sideways), for the message of a failed test.
WIDEST = """() => {
  const out = [];
  for (const el of document.querySelectorAll("body *")) {
    const r = el.getBoundingClientRect();
    if (r.right > document.documentElement.clientWidth + 1 && !out.some((o) => o.el.contains(el))) {
      const name = `${el.tagName.toLowerCase()}.${el.className}`;
      out.push({ el, text: `${name} ${Math.round(r.right)}px` });
    }
  }
  return out.map((o) => o.text);
}"""


# -- 9. a phone ------------------------------------------------------------------------------


def test_a_phone_does_not_scroll_sideways_and_can_use_the_menu(new_page: NewPage, s: Site) -> None:
    # every panel filled: enough tallies for the quick count's table, and free text with
    # a long word (a file name typed by a monitor), which wraps
    projected(s.desk, DISTRICT)
    send(s.desk, situation(s.desk, LONG_TPS, f"Foto kejadian: {LONG_WORD}", severity=2))
    phone = new_page(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    sign_in(phone, s, "coordinator")
    expect(phone.locator("#live-state")).to_have_attribute("data-state", "live")
    pages = ("/", f"/?region={DISTRICT}", f"/tps/{LONG_TPS}", "/map", "/exports", "/print")
    for path in pages:
        phone.goto(s.url + path)
        phone.wait_for_load_state("load")
        if path == "/map":
            expect(phone.locator("#map")).to_have_attribute("data-state", "ready")
        elif path == f"/?region={DISTRICT}":
            expect(phone.locator("#panel-quick table.quick")).to_be_visible()
            expect(phone.locator("#panel-feed q.text", has_text=LONG_WORD)).to_be_visible()
        width = phone.evaluate("document.documentElement.scrollWidth")
        assert width <= 390 + 1, f"{path} is {width} px wide: {phone.evaluate(WIDEST)}"
    phone.goto(s.url + "/")
    nav = phone.locator("header .main-nav a")
    expect(nav).to_have_text(["Ringkasan", "Peta", "Ekspor"])
    for i in range(3):
        box = nav.nth(i).bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
    sign_out = phone.locator("header").get_by_role("button", name="Keluar")
    expect(sign_out).to_be_in_viewport()
    nav.nth(1).tap()
    phone.wait_for_url(f"{s.url}/map?region=16.73")
    expect(phone.locator("#map")).to_have_attribute("data-state", "ready")
    phone.locator("header .main-nav a", has_text="Ekspor").tap()
    phone.wait_for_url(f"{s.url}/exports?region=16.73")


# -- 10. English -----------------------------------------------------------------------------


def test_english_by_the_switch_and_back(page: Page, s: Site) -> None:
    sign_in(page, s, "officer")
    expect(page.locator("header .main-nav a").first).to_have_text("Ringkasan")
    page.locator("header").get_by_role("link", name="English").click()
    page.wait_for_url(s.url + "/")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("header .main-nav a").first).to_have_text("Overview")
    expect(page.locator("#panel-results h2")).to_have_text("Results by region")
    expect(page.locator("#live-state")).to_have_text("Live updates on")
    expect(page.locator("header").get_by_role("button", name="Sign out")).to_be_visible()
    page.locator("header").get_by_role("link", name="Bahasa Indonesia").click()
    expect(page.locator("#panel-results h2")).to_have_text("Hasil per wilayah")


# -- the screenshot script -------------------------------------------------------------------


def _script() -> ModuleType:
    path = ROOT / "scripts" / "screenshots.py"
    spec = importlib.util.spec_from_file_location("sipantau_screenshots", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", path
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def test_the_screenshot_script_makes_every_picture(browser: Browser, tmp_path: Path) -> None:
    made = _script().main(tmp_path, browser=browser)
    names = {p.name for p in made}
    assert names == {
        "web-overview.png",
        "web-map.png",
        "web-map-risk.png",
        "web-tps.png",
        "web-phone.png",
        "web-print.png",
    }
    for path in made:
        assert path.parent == tmp_path
        assert 10_000 < path.stat().st_size < 600_000, path
    assert _png_size(tmp_path / "web-overview.png")[0] == 1280
    assert _png_size(tmp_path / "web-phone.png")[0] == 390
