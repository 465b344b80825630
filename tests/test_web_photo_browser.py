"""The photo of the tally sheet in the system's Chromium (issue #12): a monitor's device
sends a signed tally naming the photo and uploads the photo (a real PNG made here) over
the HTTP API, an officer opens the TPS's drill-down and the image is drawn, under the
page's Content-Security-Policy (a violation on the console fails the test: see
``tests/browser.py``), and a TPS whose photo has not arrived says so."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Page, expect

from media_helpers import png, sha
from sipantau_adapters.http.media import KEY_ID_HEADER, SIGNATURE_HEADER
from sipantau_core.domain import TallyReport
from sipantau_core.signing import DeviceKey, sign_media, sign_report
from web_helpers import NOW, SYSTEM, Site, monitor_of, site

pytest_plugins = ("browser",)

PHOTO_TPS = "1673011002001"  # in 16.73.01, the officer's kecamatan
LATE_TPS = "1673011002002"
#: The sheet, as a phone would not take it: 240 × 320 pixels, but a real PNG.
PHOTO = png(240, 320, seed=12)


@pytest.fixture(scope="module")
def s() -> Iterator[Site]:
    with site() as running:
        yield running


def send_signed_tally(s: Site, station: str, photo: bytes) -> DeviceKey:
    """The monitor's device: its key enrolled, a signed tally naming ``photo`` sent."""
    monitor = monitor_of(s.desk, station)
    key = DeviceKey.generate()
    s.desk.enrol_device(monitor.id, key.public_key, principal=SYSTEM)
    report = TallyReport(
        report_id=uuid.uuid4(),
        monitor=monitor.id,
        station=station,
        contest="walikota",
        observed_at=NOW,
        votes={1: 160, 2: 210},
        valid=370,
        invalid=6,
        total=376,
        sheet_sha256=sha(photo),
    )
    answer = httpx.post(
        s.url + "/v1/reports",
        content=sign_report(report, key).to_json(),
        headers={"content-type": "application/json"},
    )
    assert answer.status_code == 201, answer.text
    return key


def upload(s: Site, key: DeviceKey, photo: bytes) -> None:
    signature = sign_media(sha(photo), key).to_wire()
    answer = httpx.put(
        f"{s.url}/v1/media/{sha(photo)}",
        content=photo,
        headers={
            "content-type": "image/png",
            KEY_ID_HEADER: signature["key_id"],
            SIGNATURE_HEADER: signature["value"],
        },
    )
    assert answer.status_code == 201, answer.text


def sign_in(page: Page, s: Site, target: str) -> None:
    page.goto(f"{s.url}/sign-in?next={target}")
    page.locator("#token").fill(s.tokens["officer"])
    page.locator("main button[type=submit]").click()
    page.wait_for_url(s.url + target)


def test_the_drill_down_draws_the_photo_of_the_sheet(page: Page, s: Site) -> None:
    key = send_signed_tally(s, PHOTO_TPS, PHOTO)
    upload(s, key, PHOTO)
    sign_in(page, s, f"/tps/{PHOTO_TPS}")
    image = page.locator("#sheet-photo-1 img")
    expect(image).to_be_visible()
    expect(image).to_have_attribute("alt", "Foto lembar C.Hasil-KWK, versi 1")
    image.scroll_into_view_if_needed()
    page.wait_for_function(
        "() => { const i = document.querySelector('#sheet-photo-1 img');"
        " return i && i.complete && i.naturalWidth > 0; }"
    )
    size = image.evaluate("i => [i.naturalWidth, i.naturalHeight]")
    assert size == [240, 320]
    # the link opens the photo itself, served by the page with the type the desk read
    href = image.locator("xpath=..").get_attribute("href")
    assert href == f"/tps/{PHOTO_TPS}/media/{sha(PHOTO)}"
    answer = page.request.get(s.url + href)
    assert answer.status == 200 and answer.headers["content-type"] == "image/png"
    assert answer.body() == PHOTO
    # the read is on record, as the officer's
    reads = [
        e.principal
        for e in s.desk.audit.entries()
        if e.action == "read_media" and e.object == f"media:{sha(PHOTO)}"
    ]
    assert "petugas-1" in reads


def test_a_photo_not_received_yet_is_said_so(page: Page, s: Site) -> None:
    send_signed_tally(s, LATE_TPS, png(240, 320, seed=13))  # the photo never uploaded
    sign_in(page, s, f"/tps/{LATE_TPS}")
    note = page.locator("#sheet-photo-1")
    expect(note).to_have_class("note photo-pending")
    expect(note).to_contain_text("belum diterima desk")
    expect(page.locator("#tps-tally img")).to_have_count(0)
