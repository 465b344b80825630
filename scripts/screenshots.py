#!/usr/bin/env python3
"""Screenshots of the desk's web page for the documentation (``docs/img/web-*.png``).

Opens a desk on the Lubuklinggau deployment in memory with an afternoon of election day
(15:10 local time): the demo's scenario up to then, so most TPS have sent their tally,
a few tallies are flagged (digits misread from the sheet, some corrected since), there
are incidents of every severity, and one kecamatan is released to viewers. Serves it on
loopback, signs in through the page with the system's Chromium (``/usr/bin/chromium`` or
``SIPANTAU_CHROMIUM``; nothing is downloaded, and any request to another host is blocked
and fails the run) and saves:

    web-overview.png   the coordinator's overview of the city (1280 wide)
    web-map.png        the map with the TPS by status
    web-map-risk.png   the map with the TPS by risk level
    web-tps.png        the drill-down of a TPS whose tally is flagged, with the photo of
                       its sheet (which shows the figures the tally misread)
    web-phone.png      the overview on a phone (390 wide)
    web-print.png      the printable summary of the city, as printed

Run from the repository: ``python scripts/screenshots.py [--out docs/img]``.
``tests/test_web_browser.py`` runs :func:`main` into a temporary directory.
"""

from __future__ import annotations

import argparse
import hashlib
import ipaddress
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, time, timedelta
from pathlib import Path
from urllib.parse import urlsplit

from playwright.sync_api import Browser, BrowserContext, Page, Route, expect, sync_playwright

from sipantau_adapters.demo_scenario import build_scenario
from sipantau_adapters.http.server import create_app, running
from sipantau_core.access import Principal, Role
from sipantau_core.deployment import Deployment
from sipantau_core.desk import Desk
from sipantau_core.domain import StationCode

ROOT = Path(__file__).resolve().parent.parent
DEPLOYMENT = ROOT / "examples" / "lubuklinggau"
OUT = ROOT / "docs" / "img"
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
)
SYSTEM = Principal(id="system", role=Role.SYSTEM)
COORDINATOR = Principal(id="koord", role=Role.COORDINATOR, scope="16.73")
OFFICER = Principal(id="petugas-1", role=Role.OFFICER, scope="16.73")
#: The afternoon of election day the pictures show (local time).
AT = time(15, 10)
RELEASED = "16.73.02"
DESKTOP = {"width": 1280, "height": 960}
PHONE = {"width": 390, "height": 844}


def day_desk() -> tuple[Desk, str]:
    """The desk at 15:10 on election day, and the 13 digits of a TPS whose tally is
    flagged (a sheet misread, not corrected yet; one with an incident if there is one).
    Each report reaches the desk when its monitor sent it (the desk's clock follows the
    scenario), so the stage reports are on time or late as they were sent."""
    deployment = Deployment.load(DEPLOYMENT)
    scenario = build_scenario(deployment, seed=2024)
    zone = scenario.events[0].at.tzinfo
    now = datetime.combine(deployment.election_day, AT, tzinfo=zone)
    clock = [scenario.events[0].at]
    desk = Desk.open(deployment, storage="memory://", clock=lambda: clock[0])
    events = [e for e in scenario.events if e.at <= now and not e.resend]
    for start in range(0, len(events), 50):  # 50 at a time, received as the last was sent
        batch = events[start : start + 50]
        clock[0] = batch[-1].at + timedelta(seconds=30)
        desk.submit_many(
            [e.report for e in batch],
            principal=[
                Principal(id=e.monitor, role=Role.MONITOR, scope=StationCode.parse(e.station))
                for e in batch
            ],
        )
        for e in batch:  # the photos of the sheets, uploaded after their tallies
            for data in e.media:
                desk.upload_media(
                    data,
                    sha256=hashlib.sha256(data).hexdigest(),
                    principal=Principal(
                        id=e.monitor, role=Role.MONITOR, scope=StationCode.parse(e.station)
                    ),
                )
    clock[0] = now
    flagged = desk.flagged("16.73", principal=SYSTEM)
    if len(flagged) < 2:
        raise RuntimeError("the scenario has too few flagged tallies for the pictures")
    # an officer has looked at one of them and sent it back
    desk.reject(
        flagged[-1].report_id,
        principal=OFFICER,
        reason="Foto C.Hasil tidak terbaca; pemantau diminta mengirim ulang",
    )
    desk.release(RELEASED, principal=COORDINATOR, contest="walikota")
    # the picture of one TPS: a flagged tally, and an incident there if there is one
    troubled = {i.station for i in desk.incidents("16.73", principal=SYSTEM)}
    shown = next((f for f in flagged[:-1] if f.station in troubled), flagged[0])
    return desk, shown.station


def _loopback(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme in ("data", "blob", "about"):
        return True
    host = (parts.hostname or "").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Guard:
    """Blocks every request to another host and records it, and the pages' errors."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def context(self, browser: Browser, **options: object) -> BrowserContext:
        context = browser.new_context(service_workers="block", **options)  # type: ignore[arg-type]
        context.route(re.compile(r".*"), self._route)
        return context

    def page(self, context: BrowserContext) -> Page:
        page = context.new_page()
        page.on("pageerror", lambda e: self.problems.append(f"script error: {e.message}"))
        page.on(
            "console",
            lambda m: self.problems.append(m.text) if "Content Security Policy" in m.text else None,
        )
        return page

    def _route(self, route: Route) -> None:
        if _loopback(route.request.url):
            route.continue_()
        else:
            self.problems.append(f"blocked a request to {route.request.url}")
            route.abort("blockedbyclient")


def sign_in(page: Page, url: str, token: str) -> None:
    page.goto(url + "/sign-in")
    page.locator("#token").fill(token)
    page.locator("main button[type=submit]").click()
    page.wait_for_url(url + "/")


def live(page: Page) -> None:
    expect(page.locator("#live-state")).to_have_attribute("data-state", "live")


def shoot(browser: Browser, url: str, token: str, flagged: str, out: Path) -> list[Path]:
    guard = Guard()
    made: list[Path] = []

    def save(page: Page, name: str, *, full_page: bool = False) -> None:
        path = out / name
        page.screenshot(path=str(path), full_page=full_page, animations="disabled")
        made.append(path)

    desktop = guard.context(browser, viewport=DESKTOP)
    phone = guard.context(browser, viewport=PHONE, is_mobile=True, has_touch=True)
    try:
        page = guard.page(desktop)
        sign_in(page, url, token)
        live(page)
        save(page, "web-overview.png")

        page.goto(url + "/map")
        expect(page.locator("#map")).to_have_attribute("data-state", "ready")
        save(page, "web-map.png")
        control = page.locator(".leaflet-control-layers")
        control.get_by_label("TPS menurut kerawanan").check()
        control.get_by_label("TPS menurut status").uncheck()
        expect(page.locator(".map-legend-section").nth(1)).to_be_visible()
        save(page, "web-map-risk.png")

        page.goto(f"{url}/tps/{flagged}")
        expect(page.locator("#version-1 .findings li").first).to_be_visible()
        page.wait_for_function(  # the photo of the sheet, drawn
            "() => { const i = document.querySelector('#sheet-photo-1 img');"
            " return i && i.complete && i.naturalWidth > 0; }"
        )
        page.locator("details.correct summary").click()  # the correction form, open
        save(page, "web-tps.png", full_page=True)

        page.goto(url + "/print")
        expect(page.locator("#summary")).to_be_visible()
        page.emulate_media(media="print")  # as it comes out of the printer
        save(page, "web-print.png", full_page=True)
        page.emulate_media(media="screen")

        small = guard.page(phone)
        sign_in(small, url, token)
        live(small)
        save(small, "web-phone.png")
    finally:
        phone.close()
        desktop.close()
    if guard.problems:
        raise RuntimeError("the pages misbehaved: " + "; ".join(guard.problems))
    return made


@contextmanager
def _browser(given: Browser | None) -> Iterator[Browser]:
    if given is not None:
        yield given
        return
    path = os.environ.get("SIPANTAU_CHROMIUM") or "/usr/bin/chromium"
    if not Path(path).is_file():
        raise SystemExit(f"Chromium is not at {path}: install it (scripts/browser.sh)")
    with sync_playwright() as pw:
        launched = pw.chromium.launch(
            executable_path=path, headless=True, args=list(CHROMIUM_ARGS), timeout=60_000
        )
        try:
            yield launched
        finally:
            launched.close()


def main(out: Path = OUT, *, browser: Browser | None = None) -> list[Path]:
    """Make the screenshots into ``out``; return their paths. ``browser``: a Chromium of
    Playwright's to use (else the system's is launched)."""
    out.mkdir(parents=True, exist_ok=True)
    desk, flagged = day_desk()
    try:
        token = desk.issue_token(COORDINATOR, principal=SYSTEM)
        with running(create_app(desk)) as url, _browser(browser) as chromium:
            return shoot(chromium, url, token, flagged, out)
    finally:
        desk.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=OUT, help="directory (docs/img)")
    args = parser.parse_args()
    for made in main(args.out):
        print(made.relative_to(ROOT) if made.is_relative_to(ROOT) else made)
    sys.exit(0)
