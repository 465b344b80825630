"""The photo of the tally sheet on the drill-down of a TPS (issue #12), over HTTP on a real
server on loopback: shown where it was received, "not received yet" where a report names
it, "none sent" otherwise; served by the page under the access policy of the TPS's
reports, with the stored content type, never sniffed or cached, and the page's CSP allows
images from the site only. (The browser test is ``test_web_photo_browser.py``.)"""

from __future__ import annotations

import re
from collections.abc import Iterator

import attrs
import pytest

from media_helpers import JPEG, png, sha
from sipantau_core.domain import Incident
from web_helpers import SYSTEM, Site, monitor_of, send, site, situation, tally

WITH_PHOTO = "1673011001001"  # 16.73.01: the officer's kecamatan
ANNOUNCED = "1673011001002"  # names a photo the desk has not received
WITHOUT = "1673011001003"
OTHER = "1673021001001"  # 16.73.02
PHOTO = png(60, 80, seed=21)
LATER = png(60, 80, seed=22)
OTHER_PHOTO = png(60, 80, seed=23)


@pytest.fixture(scope="module")
def web() -> Iterator[Site]:
    with site() as s:
        desk = s.desk
        first = attrs.evolve(tally(desk, WITH_PHOTO, (200, 150)), sheet_sha256=sha(PHOTO))
        send(desk, first)
        desk.upload_media(PHOTO, sha256=sha(PHOTO), principal=monitor_of(desk, WITH_PHOTO))
        send(desk, attrs.evolve(tally(desk, ANNOUNCED, (100, 90)), sheet_sha256=sha(LATER)))
        send(desk, tally(desk, WITHOUT, (80, 70)))
        other = attrs.evolve(tally(desk, OTHER, (120, 180)), sheet_sha256=sha(OTHER_PHOTO))
        send(desk, other)
        desk.upload_media(OTHER_PHOTO, sha256=sha(OTHER_PHOTO), principal=monitor_of(desk, OTHER))
        scene = attrs.evolve(
            situation(desk, WITH_PHOTO, "pintu TPS rusak"),
            incidents=[Incident("gangguan_tps", 3, "pintu TPS rusak", media_sha256=sha(JPEG))],
        )
        send(desk, scene)
        desk.upload_media(JPEG, sha256=sha(JPEG), principal=monitor_of(desk, WITH_PHOTO))
        yield s


def section(html: str, ident: str) -> str:
    start = html.index(f'id="{ident}"')
    return html[start : html.index("</section>", start)]


def test_the_drill_down_shows_the_photo_of_the_sheet(web: Site) -> None:
    with web.client("officer") as client:
        page = client.get(f"/tps/{WITH_PHOTO}")
        assert page.status_code == 200
        tally_part = section(page.text, "tps-tally")
        src = f"/tps/{WITH_PHOTO}/media/{sha(PHOTO)}"
        assert f'<img src="{src}"' in tally_part
        assert 'alt="Foto lembar C.Hasil-KWK, versi 1"' in tally_part
        photo = client.get(src)
        assert photo.status_code == 200 and photo.content == PHOTO
        assert photo.headers["content-type"] == "image/png"
        assert photo.headers["x-content-type-options"] == "nosniff"
        assert photo.headers["cache-control"] == "no-store"
        csp = page.headers["content-security-policy"]
        assert re.search(r"img-src 'self';", csp) and "data:" not in csp
        # the incident's photo too (a JPEG)
        incidents = section(page.text, "tps-incidents")
        assert f"/tps/{WITH_PHOTO}/media/{sha(JPEG)}" in incidents
        assert client.get(f"/tps/{WITH_PHOTO}/media/{sha(JPEG)}").headers["content-type"] == (
            "image/jpeg"
        )


def test_a_photo_named_but_not_received_and_none_sent(web: Site) -> None:
    with web.client("officer") as client:
        announced = section(client.get(f"/tps/{ANNOUNCED}").text, "tps-tally")
        assert "belum diterima desk" in announced and "<img" not in announced
        assert sha(LATER)[:16] in announced
        assert client.get(f"/tps/{ANNOUNCED}/media/{sha(LATER)}").json()["code"] == (
            "media.not_found"
        )
        without = section(client.get(f"/tps/{WITHOUT}").text, "tps-tally")
        assert "Tidak ada foto lembar yang dikirim." in without
        client.get("/lang/en")
        english = section(client.get(f"/tps/{ANNOUNCED}").text, "tps-tally")
        assert "has not received it yet" in english


def test_the_photo_is_read_under_the_access_policy_and_on_record(web: Site) -> None:
    src = f"/tps/{OTHER}/media/{sha(OTHER_PHOTO)}"
    with web.client() as client:
        answer = client.get(src)
        assert answer.status_code == 401 and answer.json()["code"] == "access.unauthenticated"
    with web.client("officer") as client:  # another kecamatan's TPS
        answer = client.get(src)
        assert (answer.status_code, answer.json()["code"]) == (403, "access.out_of_scope")
        assert OTHER_PHOTO not in answer.content
        page = client.get(f"/tps/{OTHER}")
        assert 'data-code="access.out_of_scope"' in section(page.text, "tps-tally")
        assert src not in page.text
        # a TPS of the officer's whose reports do not name the photo
        answer = client.get(f"/tps/{WITHOUT}/media/{sha(PHOTO)}")
        assert (answer.status_code, answer.json()["code"]) == (404, "media.not_found")
    for who in ("viewer", "auditor"):
        with web.client(who) as client:
            answer = client.get(src)
            assert (answer.status_code, answer.json()["code"]) == (403, "access.role"), who
    with web.client("coordinator") as client:
        assert client.get(src).content == OTHER_PHOTO
    reads = [
        (e.principal, e.outcome)
        for e in web.desk.audit.entries()
        if e.object == f"media:{sha(OTHER_PHOTO)}"
    ]
    assert ("koord", "ok") in reads and ("walikota", "denied:access.role") in reads
    assert ("petugas-1", "denied:access.out_of_scope") in reads
    assert web.desk.audit.verify().ok


def test_the_system_can_read_any_photo_the_desk_holds(web: Site) -> None:
    found = web.desk.media(sha(PHOTO), station=WITH_PHOTO, principal=SYSTEM)
    assert found.data == PHOTO
