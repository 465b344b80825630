"""The web page's application core: templates, sessions, security headers, errors.

:func:`sipantau_adapters.web.add_web` puts the page's routes into the API's Starlette
app (``create_app``), so ``sipantau serve`` serves both. Every handler goes through
:meth:`WebApp.handler`, which signs the request in from its cookie (a page without a
session redirects to sign-in, a fragment, a stream or an export answers 401 with
``access.unauthenticated``: never data), runs the desk's blocking calls in worker
threads, adds the security headers (Content-Security-Policy with no inline script, no
framing, no caching of confidential pages) and turns the desk's errors into pages with
their stable codes.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import parse_qs, quote

import anyio
import anyio.to_thread
import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from sipantau_adapters.http._errors import log_unexpected
from sipantau_adapters.web.i18n import (
    LANGUAGES,
    decimal,
    number,
    percent,
    translator,
    verdict_text,
)
from sipantau_adapters.web.session import COOKIE, Session, SessionError, Sessions
from sipantau_core.access import Principal
from sipantau_core.desk import Desk
from sipantau_core.domain import Stage, StationCode
from sipantau_core.domain.regions import time_zone_of_province
from sipantau_core.errors import (
    PayloadError,
    PermissionDenied,
    Problem,
    SipantauError,
    UnknownEntityError,
)

__all__ = ["LANG_COOKIE", "SECURITY_HEADERS", "WebApp", "read_form"]

T = TypeVar("T")

LANG_COOKIE = "sipantau_lang"

#: Sent with every response of the page. No inline script or style, nothing from
#: another origin, no framing; confidential pages are never cached. The referrer goes
#: to this site only: under ``no-referrer`` a browser sends ``Origin: null`` with the
#: page's own forms, and :meth:`WebApp.check_form` (rightly) refuses those.
SECURITY_HEADERS: Mapping[str, str] = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; font-src 'self'; form-action 'self'; base-uri 'none'; "
        "frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
    "cross-origin-opener-policy": "same-origin",
}

Handler = Callable[["WebApp", Request], Awaitable[Response]]


class WebApp:
    """The page's state: the desk, the sessions, the templates."""

    def __init__(self, desk: Desk, sessions: Sessions | None = None, *, read_threads: int = 8):
        self.desk = desk
        self.sessions = sessions or Sessions(desk.deployment.id)
        self.limiter = anyio.CapacityLimiter(read_threads)
        self.env = jinja2.Environment(
            loader=jinja2.PackageLoader("sipantau_adapters.web", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.globals["stages"] = [s.value for s in Stage]
        self.live: Any = None  # the LiveHub, set by add_web
        #: times are shown in the desk's own zone (that of its region's province)
        self.zone = time_zone_of_province(desk.deployment.region).tzinfo

    # -- calls and sessions ----------------------------------------------------------------

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """A blocking desk call in a worker thread."""
        return await anyio.to_thread.run_sync(
            functools.partial(fn, *args, **kwargs), limiter=self.limiter
        )

    async def signed_in(self, request: Request) -> tuple[Principal, Session]:
        """The request's principal; :class:`SessionError` without a usable session, the
        desk's ``access.bad_token`` when its token was revoked."""
        session = self.sessions.open(request.cookies.get(COOKIE))
        principal = await self.run(self.desk.authenticate, session.token)
        return principal, session

    def check_form(self, request: Request, session: Session, form: Mapping[str, Any]) -> None:
        """A change must come from this site's own form: the session's CSRF token, and no
        other origin."""
        origin = request.headers.get("origin")
        if origin is not None and origin != _own_origin(request):
            raise PermissionDenied(
                "the form was sent from another site",
                code="access.csrf",
                message_id="formulir dikirim dari situs lain",
            )
        sent = form.get("csrf")
        self.sessions.check_csrf(session, sent if isinstance(sent, str) else None)

    # -- rendering ---------------------------------------------------------------------------

    def lang(self, request: Request) -> str:
        chosen = request.cookies.get(LANG_COOKIE, "id")
        return chosen if chosen in LANGUAGES else "id"

    def context(self, request: Request, **values: Any) -> dict[str, Any]:
        lang = values.pop("lang", None) or self.lang(request)
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return self.context_for_lang(lang, here=here, **values)

    def context_for_lang(self, lang: str, **values: Any) -> dict[str, Any]:
        """What every template may use, in language ``lang``."""
        t, has = translator(lang)
        dep = self.desk.deployment
        ctx: dict[str, Any] = {
            "lang": lang,
            "t": t,
            "has": has,
            "pct": lambda v, d=2: percent(v, lang, d),
            "num": lambda v: number(int(v), lang),
            "dec": lambda v, d=2: decimal(float(v), lang, d),
            "time": lambda at: at.astimezone(self.zone).strftime("%H:%M"),
            "when": lambda at: at.astimezone(self.zone).strftime("%d-%m-%Y %H:%M"),
            "station_label": _station_label,
            "category": lambda code: _category(self.desk, code, lang),
            "verdict": lambda est, options: verdict_text(est, options, lang),
            "static": lambda path: f"/static/{path}",
            "desk_name": dep.name,
            "here": "/",
            "principal": None,
            "csrf": "",
            "region": dep.region.value,
            "page": "",
        }
        ctx.update(values)
        return ctx

    def render(self, name: str, context: Mapping[str, Any]) -> str:
        return self.env.get_template(name).render(context)

    def page(self, request: Request, name: str, status: int = 200, **values: Any) -> Response:
        html = self.render(name, self.context(request, **values))
        return HTMLResponse(html, status_code=status, headers=dict(SECURITY_HEADERS))

    def error_page(self, request: Request, status: int, error: SipantauError) -> Response:
        lang = self.lang(request)
        text = error.message_id if lang == "id" else error.message
        return self.page(
            request, "error.html", status, code=error.code, text=text, http_status=status
        )

    # -- handlers ----------------------------------------------------------------------------

    def handler(
        self, fn: Handler, *, kind: str = "page"
    ) -> Callable[[Request], Awaitable[Response]]:
        """``fn`` with the page's error handling. ``kind``: ``page`` (no session: a
        redirect to sign-in), ``data`` (no session: 401 JSON), ``public`` (no session
        needed)."""

        @functools.wraps(fn)
        async def run(request: Request) -> Response:
            try:
                response = await fn(self, request)
            except SessionError as e:
                if kind == "page" and request.method == "GET":
                    target = "/sign-in?next=" + quote(
                        request.url.path + (f"?{request.url.query}" if request.url.query else ""),
                        safe="",
                    )
                    response = RedirectResponse(target, status_code=303)
                    if e.code == "access.session_expired":
                        response = RedirectResponse(target + "&expired=1", status_code=303)
                    response.delete_cookie(COOKIE, path="/")
                else:
                    response = _json_error(401, e)
            except PermissionDenied as e:
                if e.code == "access.bad_token":
                    # a revoked token ends the session: sign in again
                    if kind == "page" and request.method == "GET":
                        response = RedirectResponse("/sign-in", status_code=303)
                    else:
                        response = _json_error(401, e)
                    response.delete_cookie(COOKIE, path="/")
                elif kind == "page":
                    response = self.error_page(request, 403, e)
                else:
                    response = _json_error(403, e)
            except UnknownEntityError as e:
                response = (
                    self.error_page(request, 404, e) if kind == "page" else _json_error(404, e)
                )
            except SipantauError as e:
                response = (
                    self.error_page(request, 400, e) if kind == "page" else _json_error(400, e)
                )
            except Exception as e:  # noqa: BLE001 - never a traceback to the browser
                log_unexpected(e, f"web {request.method} {fn.__name__}")
                response = _json_error(
                    500,
                    SipantauError(
                        "the server failed; the desk's log has the details",
                        code="server.internal_error",
                        message_id="terjadi kesalahan pada server",
                    ),
                )
            for name, value in SECURITY_HEADERS.items():
                response.headers.setdefault(name, value)
            return response

        return run


#: A form of the page is a few fields; anything larger is refused unread.
MAX_FORM_BYTES = 16 * 1024


async def read_form(request: Request) -> dict[str, str]:
    """The fields of a urlencoded form (the page sends nothing else); the first value of
    each. A body of another type or too large is a :class:`PayloadError`."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise PayloadError([Problem("$", "form.content_type", "send the page's own form")])
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise PayloadError([Problem("$", "form.too_large", "the form is too large")])
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise PayloadError([Problem("$", "form.encoding", "the form is not UTF-8")]) from None
    fields = parse_qs(text, keep_blank_values=True, max_num_fields=64)
    return {name: values[0] for name, values in fields.items()}


def _json_error(status: int, error: SipantauError) -> Response:
    body = {"code": error.code, "message": error.message, "message_id": error.message_id}
    return Response(
        json.dumps(body, ensure_ascii=False), status_code=status, media_type="application/json"
    )


def _own_origin(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}"


def _station_label(compact: str) -> str:
    try:
        return StationCode.parse(compact).label
    except ValueError:
        return compact


def _category(desk: Desk, code: str, lang: str) -> str:
    category = desk.incident_categories.get(code)
    if category is None:
        return code
    return category.label_en if lang == "en" else category.label_id
