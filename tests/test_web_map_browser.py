"""The map script (``static/map.js`` with the vendored Leaflet) in the system's Chromium:
a minimal page served on loopback under ``script-src 'self'`` draws the JSON of
``map_data`` of a real desk; markers, colours, the risk filter, the popups, the risk table
and the labels; nothing loads from outside and the page raises nothing."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

import sipantau_adapters.web
from browser import served
from mapdesk import COORDINATOR, DAY, EXPECTED_STATUS, day_desk
from sipantau_adapters.web.mapdata import map_data
from sipantau_core import Desk, PollingStation, Position, RiskProfile
from sipantau_core.testing.contracts import build_deployment

pytest_plugins = ("browser",)

STATIC = Path(sipantau_adapters.web.__file__).resolve().parent / "static"
LEAFLET = STATIC / "vendor" / "leaflet"

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)

ENGLISH = {
    "status": {"silent": "Silent", "reported": "Reported", "flagged": "Flagged"},
    "risk": {"high": "High"},
    "legend": {"status": "TPS status"},
    "popup": {"risk": "Risk", "open": "Open the TPS page"},
    "table": {"level": "Risk level"},
}


def page_html(labels: dict[str, Any] | None) -> str:
    data_labels = ""
    if labels is not None:
        quoted = json.dumps(labels).replace("&", "&amp;").replace("'", "&#39;")
        data_labels = f" data-labels='{quoted}'"
    return f"""<!doctype html>
<html lang="id"><head><meta charset="utf-8"><title>Peta desk</title>
<link rel="stylesheet" href="/static/vendor/leaflet/leaflet.css">
<link rel="stylesheet" href="/static/map.css">
<script src="/static/vendor/leaflet/leaflet.js" defer></script>
<script src="/static/map.js" defer></script>
</head><body>
<div id="risk-filter"></div>
<div id="map" data-src="/map/data.json?region=16.73"{data_labels}></div>
<table id="risk-summary"></table>
</body></html>"""


def map_app(desk: Desk, *, refuse: bool = False) -> Starlette:
    async def home(request: Request) -> Response:
        labels = ENGLISH if request.query_params.get("lang") == "en" else None
        return HTMLResponse(page_html(labels), headers={"Content-Security-Policy": CSP})

    async def data(request: Request) -> Response:
        if refuse:
            return JSONResponse({"error": "access.role"}, status_code=403)
        region = request.query_params["region"]
        return JSONResponse(map_data(desk, region, principal=COORDINATOR))

    return Starlette(
        routes=[
            Route("/", home),
            Route("/map/data.json", data),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ]
    )


@pytest.fixture(scope="module")
def desk() -> Desk:
    return day_desk()


@pytest.fixture(scope="module")
def data(desk: Desk) -> dict[str, Any]:
    return map_data(desk, "16.73", principal=COORDINATOR)


def open_map(page: Page, url: str) -> None:
    page.goto(url)
    expect(page.locator("#map")).to_have_attribute("data-state", "ready")


def click_marker(page: Page, selector: str) -> None:
    """Click a TPS marker where it is drawn (a marker beside it may overlap its edge)."""
    box = page.locator(selector).bounding_box()
    assert box is not None
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.dispatch_event(selector, "click", {"clientX": x, "clientY": y, "button": 0})


def test_the_map_draws_every_placed_tps_filters_by_risk_and_opens_popups(
    page: Page,
    desk: Desk,
    data: dict[str, Any],
    csp_violations: list[str],
    tmp_path: Path,
) -> None:
    placed = data["totals"]["stations"] - data["totals"]["unplaced"]
    high = next(r["stations"] for r in data["risk_summary"] if r["level"] == "high")
    assert placed == 326 and high == 26
    interactive = page.locator("path.leaflet-interactive")
    with served(map_app(desk)) as url:
        open_map(page, url + "/")
        expect(interactive).to_have_count(placed)
        # colours by status: one marker class per status, as many as the data says
        for status in ("silent", "reported", "flagged", "counted"):
            expect(page.locator(f"path.map-tps.map-status-{status}")).to_have_count(
                data["totals"][status]
            )
        assert page.locator("path.map-status-counted").first.get_attribute("fill") == "#1a9850"
        assert page.locator("path.map-status-flagged").first.get_attribute("fill") == "#d7301f"
        # the outlines are drawn, not clickable; no tile was asked for
        expect(page.locator(".leaflet-overlay-pane path")).to_have_count(8)
        expect(page.locator(".leaflet-overlay-pane path.leaflet-interactive")).to_have_count(0)
        expect(page.locator(".leaflet-tile")).to_have_count(0)
        expect(page.locator(".map-district-label")).to_have_count(8)
        expect(page.locator(".map-district-label").first).to_have_text("Lubuklinggau Barat I")
        # the legend counts the statuses
        legend = page.locator(".map-legend")
        expect(legend).to_contain_text("Status TPS")
        expect(legend).to_contain_text(f"Tally terhitung{data['totals']['counted']}")

        # the risk filter: unticking "high" hides the high-risk TPS
        high_box = page.locator("#risk-filter input[value=high]")
        expect(page.locator("#risk-filter input[type=checkbox]")).to_have_count(3)
        high_box.uncheck()
        expect(interactive).to_have_count(placed - high)
        expect(page.locator("path.map-risk-high")).to_have_count(0)
        high_box.check()
        expect(interactive).to_have_count(placed)

        # the popup of a high-risk TPS with indicators and incidents
        click_marker(page, "path.map-tps-1673011001001")
        popup = page.locator(".leaflet-popup-content")
        expect(popup).to_contain_text("16.73.01.1001 TPS 001")
        expect(popup).to_contain_text("TPS 001 Kel. Kayu Ara")
        expect(popup).to_contain_text("Lubuklinggau Barat I")
        expect(popup).to_contain_text("Tinggi")
        expect(popup.locator(".map-popup-indicators li")).to_have_text(
            ["Aksesibilitas", "Jaringan", "Kejadian pemilu lalu"]
        )
        expect(popup.locator(".map-status-reported")).to_have_text("Sudah lapor")
        expect(popup.locator("a")).to_have_attribute("href", "/tps/1673011001001")

        # the risk table, as map_data counted it
        table = page.locator("table#risk-summary")
        for row in data["risk_summary"]:
            line = table.locator(f"tbody tr[data-level={row['level']}]")
            for col in ("stations", "stations_with_incidents", "incidents", "flagged", "counted"):
                expect(line.locator(f"td[data-col={col}]")).to_have_text(str(row[col]))
        expect(table.locator("tfoot td[data-col=stations]")).to_have_text("326")
        expect(table.locator("tbody tr[data-level=high] td[data-col=share]")).to_have_text(
            "3,8"  # 1 of 26, in the page's language (id)
        )
        expect(page.locator(".leaflet-popup")).to_have_css("opacity", "1")  # faded in
        shot = os.environ.get("SIPANTAU_MAP_SCREENSHOT") or str(tmp_path / "map.png")
        page.screenshot(path=shot, full_page=True)

        # the layer control switches to the colours of the risk mapping
        control = page.locator(".leaflet-control-layers")
        control.get_by_label("TPS menurut kerawanan").check()
        expect(page.locator("path.map-tps-risk")).to_have_count(placed)
        control.get_by_label("TPS menurut status").uncheck()
        expect(interactive).to_have_count(placed)
        expect(page.locator("path.map-tps-risk.map-risk-high")).to_have_count(high)
        assert page.locator("path.map-tps-risk.map-risk-high").first.get_attribute("fill") == (
            "#99000d"
        )
        expect(page.locator(".map-legend-section").first).to_be_hidden()
        expect(page.locator(".map-legend-section").nth(1)).to_contain_text("Kerawanan TPS")


def test_the_labels_come_from_the_page(page: Page, desk: Desk) -> None:
    counted = next(s for s, w in DAY.items() if EXPECTED_STATUS[w] == "flagged")
    with served(map_app(desk)) as url:
        open_map(page, url + "/?lang=en")
        expect(page.locator(".map-legend")).to_contain_text("TPS status")
        expect(page.locator(".map-legend")).to_contain_text("Flagged")
        expect(page.locator(".map-legend")).to_contain_text("Tally terhitung")  # default
        expect(page.locator("#risk-summary thead th").first).to_have_text("Risk level")
        click_marker(page, f"path.map-tps-{counted}")
        popup = page.locator(".leaflet-popup-content")
        expect(popup.locator(".map-status-flagged")).to_have_text("Flagged")
        expect(popup.locator("a")).to_have_text("Open the TPS page")


def test_data_is_text_never_markup(page: Page, outside_requests: list[str]) -> None:
    nasty = '<img src="http://example.invalid/evil.png"><b>TPS</b> 001'
    stations = [
        PollingStation(
            code="1673011001001",
            registered_voters=300,
            position=Position(-3.28, 102.84),
            risk=RiskProfile("high", ["<script>alert(1)</script>"]),
            name=nasty,
        ),
        PollingStation(
            code="1673021001001", registered_voters=300, position=Position(-3.29, 102.87)
        ),
        PollingStation(code="1673021001002", registered_voters=300),
    ]
    desk = Desk.open(build_deployment(stations), storage="memory://")
    with served(map_app(desk)) as url:
        open_map(page, url + "/")
        expect(page.locator("path.leaflet-interactive")).to_have_count(2)
        expect(page.locator(".map-legend-unplaced")).to_have_text("TPS tanpa koordinat: 1")
        click_marker(page, "path.map-tps-1673011001001")
        popup = page.locator(".leaflet-popup-content")
        expect(popup).to_contain_text(nasty)
        expect(popup.locator(".map-popup-indicators li")).to_have_text(
            ["<script>alert(1)</script>"]
        )
        expect(popup.locator("img, b, script")).to_have_count(0)
    assert outside_requests == []


def test_a_refused_read_shows_the_error(page: Page, desk: Desk) -> None:
    with served(map_app(desk, refuse=True)) as url:
        page.goto(url + "/")
        expect(page.locator("#map")).to_have_attribute("data-state", "error")
        expect(page.locator("#map .map-error")).to_have_text("Peta tidak dapat dimuat (403)")


def test_the_vendored_leaflet_is_the_one_its_readme_names() -> None:
    readme = (LEAFLET / "README.md").read_text(encoding="utf-8")
    assert "leaflet@1.9.4" in readme and "BSD-2-Clause" in readme
    listed = dict(re.findall(r"^\| `([^`]+)` \| `([0-9a-f]{64})` \|$", readme, re.M))
    assert set(listed) == {
        p.relative_to(LEAFLET).as_posix()
        for p in LEAFLET.rglob("*")
        if p.is_file() and p.name != "README.md"
    }
    for name, digest in listed.items():
        assert hashlib.sha256((LEAFLET / name).read_bytes()).hexdigest() == digest, name
    assert "BSD 2-Clause License" in (LEAFLET / "LICENSE").read_text(encoding="utf-8")


def test_past_map_points_the_tps_are_counted_not_drawn(
    page: Page, outside_requests: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A province's or the nation's map draws no point for each of its TPS: the outlines,
    the counts and the table are there, and the legend says how many TPS were not drawn."""
    from sipantau_adapters.web import mapdata as mapdata_module

    stations = [
        PollingStation(
            code=f"16730{d}1001{n:03d}",
            registered_voters=300,
            position=Position(-3.28 - d / 100, 102.84 + n / 200),
        )
        for d in (1, 2)
        for n in (1, 2, 3)
    ]
    desk = Desk.open(build_deployment(stations), storage="memory://")
    monkeypatch.setattr(mapdata_module, "MAP_POINTS", 5)
    with served(map_app(desk)) as url:
        open_map(page, url + "/")
        expect(page.locator("path.map-tps")).to_have_count(0)
        expect(page.locator(".leaflet-overlay-pane path")).to_have_count(2)  # the outlines
        expect(page.locator(".map-legend-omitted")).to_have_text(
            "TPS tidak digambar (terlalu banyak): buka peta kota/kabupaten: 6"
        )
        expect(page.locator("#risk-summary")).to_contain_text("6")
    assert outside_requests == []
