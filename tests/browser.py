"""A real browser for the tests of the web page: the system's Chromium, driven by Playwright.

The browser is Chromium from Debian's packages (``/usr/bin/chromium``, or the binary
``SIPANTAU_CHROMIUM`` names); ``make test`` installs it when it is missing. Nothing here
downloads a browser. When the binary is not there the tests that need it FAIL, saying so:
they are never skipped.

Every page runs in a fresh context that aborts each request to a host other than the
loopback one and records it: a test whose page tried to load anything from outside fails
at teardown, and so does one whose page raised an uncaught JavaScript error or reported a
Content-Security-Policy violation on the console. A test that expects a blocked request
looks at ``outside_requests`` and clears it (likewise ``page_errors``,
``csp_violations``). ``new_page()`` opens more pages, each in a context of its own (two
people signed in at once)::

    from browser import served

    # the fixtures: browser, page, new_page, outside_requests, page_errors, csp_violations
    pytest_plugins = ("browser",)

    def test_it(page: Page, outside_requests: list[str]) -> None:
        with served(app) as url:
            page.goto(url + "/")

Playwright's sync API cannot run inside a running asyncio loop; the app is served by
uvicorn in a thread of its own (:func:`served`), the browser is driven from the test's.
Loaded as a plugin (``pytest_plugins``), the fixtures are registered once: one browser
per test module that uses it (closed after the module, so that no asyncio loop of
Playwright's is left running for the modules after it). The module has no asserts to
rewrite, and a test module imports it before pytest loads it as a plugin: hence
PYTEST_DONT_REWRITE (no "already imported" warning).
"""

from __future__ import annotations

import functools
import ipaddress
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Playwright,
    Route,
    WebSocketRoute,
    sync_playwright,
)
from starlette.applications import Starlette

from sipantau_adapters.http.server import running

__all__ = [
    "CHROMIUM",
    "CHROMIUM_ARGS",
    "browser",
    "chromium_path",
    "csp_violations",
    "is_loopback",
    "new_page",
    "outside_requests",
    "page",
    "page_errors",
    "served",
]

CHROMIUM = "/usr/bin/chromium"

#: Headless, no sandbox (root in a container), and none of Chromium's own traffic.
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
)

_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def chromium_path() -> str:
    """The Chromium binary to drive: ``SIPANTAU_CHROMIUM``, else ``/usr/bin/chromium``."""
    return os.environ.get("SIPANTAU_CHROMIUM") or CHROMIUM


def is_loopback(url: str) -> bool:
    """True for a URL on this machine (``127.0.0.0/8``, ``::1``, ``localhost``) and for one
    without a host (``data:``, ``blob:``, ``about:``)."""
    parts = urlsplit(url)
    if parts.scheme in ("data", "blob", "about"):
        return True
    host = (parts.hostname or "").lower().rstrip(".")
    if not host:
        return parts.scheme not in ("http", "https", "ws", "wss")
    if host in _LOOPBACK_NAMES or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@contextmanager
def served(app: Starlette) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1, on a free port, in a background thread; yield its base
    URL (``http://127.0.0.1:PORT``). Stops the server on exit."""
    with running(app, host="127.0.0.1", port=0) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """The system's Chromium, headless, launched once per test module. Not once per
    session: while Playwright's sync API runs, its event loop is the thread's running
    loop, and a later module's ``asyncio.run`` (the async client's tests) would fail."""
    path = chromium_path()
    if not (Path(path).is_file() and os.access(path, os.X_OK)):
        pytest.fail(
            f"Chromium is not installed at {path}. The browser tests drive the system's "
            "Chromium: `make test` installs it (Debian package chromium: `apt-get install "
            "chromium`), or point SIPANTAU_CHROMIUM at a Chromium binary.",
            pytrace=False,
        )
    with sync_playwright() as pw:
        launched = _launch(pw, path)
        try:
            yield launched
        finally:
            launched.close()


def _launch(pw: Playwright, path: str) -> Browser:
    return pw.chromium.launch(
        executable_path=path, headless=True, args=list(CHROMIUM_ARGS), timeout=60_000
    )


@pytest.fixture
def outside_requests() -> list[str]:
    """The URLs the ``page`` fixture blocked because they went to a host other than the
    loopback one, in order. Clear it in a test that expects some."""
    return []


@pytest.fixture
def page_errors() -> list[str]:
    """The uncaught JavaScript errors of the ``page`` fixture's pages. Clear it in a test
    that expects some."""
    return []


@pytest.fixture
def csp_violations() -> list[str]:
    """The console's Content-Security-Policy reports of the pages of ``new_page`` and
    ``page``, in order. Clear it in a test that expects some."""
    return []


NewPage = Callable[..., Page]


@pytest.fixture
def new_page(
    browser: Browser,
    outside_requests: list[str],
    page_errors: list[str],
    csp_violations: list[str],
) -> Iterator[NewPage]:
    """A maker of pages, each in a fresh browser context of its own (no cookies, no
    storage, no service workers; keyword arguments go to ``browser.new_context``, such
    as ``viewport``), where every request to a non-loopback host is aborted and
    recorded. The test fails at teardown if one of its pages requested such a host,
    raised an uncaught JavaScript error or reported a Content-Security-Policy
    violation."""
    contexts: list[BrowserContext] = []

    def make(**options: Any) -> Page:
        options.setdefault("viewport", {"width": 1100, "height": 800})
        context = browser.new_context(service_workers="block", **options)
        contexts.append(context)
        context.route(re.compile(r".*"), functools.partial(_guard, outside_requests))
        context.route_web_socket(
            re.compile(r".*"), functools.partial(_guard_socket, outside_requests)
        )
        opened = context.new_page()
        opened.on("pageerror", lambda e: page_errors.append(f"{e.name}: {e.message}"))
        opened.on("console", functools.partial(_csp_report, csp_violations))
        return opened

    try:
        yield make
    finally:
        for context in contexts:
            context.close()
    problems = []
    if outside_requests:
        problems.append(
            "the page requested hosts other than the loopback one (blocked): "
            + ", ".join(outside_requests)
        )
    if page_errors:
        problems.append("the page raised: " + "; ".join(page_errors))
    if csp_violations:
        problems.append("the page broke its Content-Security-Policy: " + "; ".join(csp_violations))
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture
def page(new_page: NewPage) -> Page:
    """A page of :func:`new_page`: a fresh context, outside hosts blocked; the test fails
    at teardown if there was a request to one, an uncaught JavaScript error or a
    Content-Security-Policy violation."""
    return new_page()


def _guard(outside_requests: list[str], route: Route) -> None:
    url = route.request.url
    if is_loopback(url):
        route.continue_()
    else:
        outside_requests.append(url)
        route.abort("blockedbyclient")


def _guard_socket(outside_requests: list[str], ws: WebSocketRoute) -> None:
    if is_loopback(ws.url):
        ws.connect_to_server()
    else:
        outside_requests.append(ws.url)
        ws.close(code=1008, reason="outside host")


def _csp_report(found: list[str], message: ConsoleMessage) -> None:
    if "Content Security Policy" in message.text:
        found.append(message.text)
