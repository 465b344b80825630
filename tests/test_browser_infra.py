"""The browser fixtures of ``tests/browser.py``: the system's Chromium opens a page served on
loopback, runs its script (a static file, under ``script-src 'self'``), and every request
to another host is blocked, recorded, and fails the test that did not expect it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from browser import is_loopback, served

#: The fixtures (browser, page, new_page, outside_requests, page_errors, csp_violations), one
#: browser for the session.
pytest_plugins = ("browser",)

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent

#: Scripts only from the page's own origin; images from anywhere, so that the outside image
#: below reaches the page fixture's guard (a stricter img-src would stop it first).
CSP = "script-src 'self'"

HTML = """<!doctype html>
<html lang="id"><head><meta charset="utf-8"><title>uji</title>
<script src="/static/app.js" defer></script></head>
<body>
<p id="out">belum</p>
<button id="go" type="button">Tekan</button>
<img alt="" src="http://example.invalid/x.png">
</body></html>
"""

SCRIPT = """
document.getElementById("go").addEventListener("click", function () {
  document.getElementById("out").textContent = "sudah ditekan";
});
"""


def tiny_app() -> Starlette:
    async def home(request: Request) -> Response:
        return HTMLResponse(HTML, headers={"Content-Security-Policy": CSP})

    async def script(request: Request) -> Response:
        return Response(SCRIPT, media_type="text/javascript")

    return Starlette(routes=[Route("/", home), Route("/static/app.js", script)])


def test_a_page_on_loopback_runs_its_script_and_outside_requests_are_blocked(
    page: Page, outside_requests: list[str]
) -> None:
    with served(tiny_app()) as url:
        assert url.startswith("http://127.0.0.1:")
        page.goto(url + "/")
        expect(page.locator("#out")).to_have_text("belum")
        page.click("#go")
        expect(page.locator("#out")).to_have_text("sudah ditekan")
        # the image never loaded: the request was aborted
        assert page.eval_on_selector("img", "img => img.naturalWidth") == 0
    assert outside_requests == ["http://example.invalid/x.png"]
    outside_requests.clear()  # expected: the page fixture would fail the test otherwise


def test_an_outside_websocket_is_blocked_and_recorded(
    page: Page, outside_requests: list[str]
) -> None:
    with served(tiny_app()) as url:
        page.goto(url + "/")
        outside_requests.clear()
        page.evaluate("() => { window.ws = new WebSocket('ws://example.invalid/socket'); }")
        deadline = time.monotonic() + 10
        while not outside_requests and time.monotonic() < deadline:
            page.wait_for_timeout(50)
    assert outside_requests == ["ws://example.invalid/socket"]
    outside_requests.clear()


@pytest.mark.parametrize(
    ("url", "loopback"),
    [
        ("http://127.0.0.1:8000/x", True),
        ("http://127.8.9.1/", True),
        ("http://[::1]:81/", True),
        ("http://localhost/", True),
        ("ws://127.0.0.1:9/socket", True),
        ("data:image/png;base64,AAAA", True),
        ("blob:http://127.0.0.1:8000/1234", True),
        ("http://example.invalid/x.png", False),
        ("https://unpkg.com/leaflet@1.9.4/dist/leaflet.js", False),
        ("https://tile.openstreetmap.org/1/1/1.png", False),
        ("http://10.0.0.1/", False),
        ("http://127.0.0.1.nip.io/", False),
        ("wss://example.org/", False),
    ],
)
def test_which_urls_are_loopback(url: str, loopback: bool) -> None:
    assert is_loopback(url) is loopback


def _run_pytest(tmp_path: Path, body: str, **env: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_inner.py").write_text(
        textwrap.dedent(
            f"""
            import sys
            sys.path.insert(0, {str(TESTS)!r})
            pytest_plugins = ("browser",)
            """
        )
        + textwrap.dedent(body),
        encoding="utf-8",
    )
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_inner.py"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src"), **env},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_without_chromium_the_browser_tests_fail_not_skip(tmp_path: Path) -> None:
    result = _run_pytest(
        tmp_path,
        """
        def test_needs_a_page(page):
            pass
        """,
        SIPANTAU_CHROMIUM=str(tmp_path / "no-chromium-here"),
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 error" in result.stdout and "skipped" not in result.stdout
    assert "Chromium is not installed at" in result.stdout
    assert "`make test` installs it" in result.stdout


def test_an_outside_request_a_script_error_or_a_csp_violation_fails_the_test(
    tmp_path: Path,
) -> None:
    result = _run_pytest(
        tmp_path,
        """
        def test_loads_from_outside(page):
            page.set_content('<img alt="" src="http://example.invalid/y.png">')
            page.wait_for_load_state("load")

        def test_throws(page):
            page.set_content("<p>x</p>")
            page.evaluate("() => setTimeout(() => { throw new Error('boom'); }, 0)")
            page.wait_for_timeout(200)

        def test_breaks_its_csp(new_page):
            second = new_page()
            second.set_content(
                '<meta http-equiv="Content-Security-Policy" content="script-src \\'self\\'">'
                "<script>document.title = 'ran'</script>"
            )
            assert second.title() == ""
        """,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "3 passed, 3 errors" in result.stdout
    assert "blocked): http://example.invalid/y.png" in result.stdout
    assert "the page raised: Error: boom" in result.stdout
    assert "broke its Content-Security-Policy: Executing inline script" in result.stdout
