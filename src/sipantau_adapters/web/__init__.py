"""The desk's web page: a live, role-scoped view of election day, served beside the API.

:func:`add_web` puts its routes into the API's Starlette app (``create_app(desk)`` does by
default). See ``docs/web.md``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from sipantau_adapters.web import actions, exports_routes, live, pages
from sipantau_adapters.web.app import WebApp
from sipantau_adapters.web.session import Sessions
from sipantau_core.desk import Desk

__all__ = ["WebApp", "add_web"]


def add_web(app: Starlette, desk: Desk, *, sessions: Sessions | None = None) -> WebApp:
    """Serve the desk's web page from ``app`` (beside the API): its routes, its static
    files, and its live hub started and stopped with the app."""
    web = WebApp(desk, sessions)
    web.live = live.LiveHub(web)
    routes: list[BaseRoute] = [
        *pages.routes(web),
        *actions.routes(web),
        *exports_routes.routes(web),
        Route("/live", web.handler(live.stream, kind="data"), methods=["GET"]),
        Mount(
            "/static",
            StaticFiles(packages=[("sipantau_adapters.web", "static")]),
            name="static",
        ),
    ]
    app.router.routes[:0] = routes
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[Any]:
        async with inner(app) as state, web.live.running():
            yield state

    app.router.lifespan_context = lifespan
    app.state.web = web
    return web
