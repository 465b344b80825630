"""The page's screens: sign-in and out, the language, the live overview, one TPS and the
photos its reports name."""

from __future__ import annotations

import json
import secrets
from typing import Any
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from sipantau_adapters.web.app import LANG_COOKIE, SECURITY_HEADERS, WebApp, read_form
from sipantau_adapters.web.drilldown import station_view
from sipantau_adapters.web.i18n import LANGUAGES, translator
from sipantau_adapters.web.mapdata import map_data as build_map_data
from sipantau_adapters.web.overview import default_region, overview
from sipantau_adapters.web.session import COOKIE, SessionError
from sipantau_core.access import Action, Role, is_allowed
from sipantau_core.domain import RegionCode
from sipantau_core.errors import PermissionDenied, SipantauError

__all__ = ["routes"]

PRE_COOKIE = "sipantau_signin"


def _safe_next(value: Any) -> str:
    """Only a path of this site (never ``//host`` or a full URL)."""
    text = unquote(str(value or "/"))
    if not text.startswith("/") or text.startswith("//") or "\\" in text:
        return "/"
    return text


# -- signing in and out --------------------------------------------------------------------


def _signin_page(
    web: WebApp, request: Request, *, status: int = 200, error: dict[str, str] | None = None
) -> Response:
    pre = secrets.token_urlsafe(24)
    response = web.page(
        request,
        "signin.html",
        status,
        pre_csrf=pre,
        next=_safe_next(request.query_params.get("next") or "/"),
        error=error,
    )
    response.set_cookie(
        PRE_COOKIE, pre, httponly=True, samesite="strict", path="/sign-in", max_age=3600
    )
    return response


async def signin_form(web: WebApp, request: Request) -> Response:
    if request.query_params.get("expired"):
        t_id = "sesi telah berakhir; silakan masuk kembali"
        text = t_id if web.lang(request) == "id" else "the session has expired; sign in again"
        return _signin_page(web, request, error={"code": "access.session_expired", "text": text})
    return _signin_page(web, request)


async def signin(web: WebApp, request: Request) -> Response:
    form = await read_form(request)
    lang = web.lang(request)
    sent = form.get("csrf")
    if not isinstance(sent, str) or sent != request.cookies.get(PRE_COOKIE):
        text = "formulir tidak sah; coba lagi" if lang == "id" else "the form expired; try again"
        return _signin_page(web, request, status=403, error={"code": "access.csrf", "text": text})
    token = form.get("token")
    try:
        if not isinstance(token, str) or not token.strip():
            raise PermissionDenied(
                "a staff token is needed", code="access.bad_token", message_id="token diperlukan"
            )
        principal = await web.run(web.desk.authenticate, token.strip())
    except PermissionDenied as e:
        text = e.message_id if lang == "id" else e.message
        return _signin_page(web, request, status=401, error={"code": e.code, "text": text})
    if principal.role is Role.MONITOR:
        text = "pemantau melapor lewat aplikasi" if lang == "id" else "monitors use the app"
        return _signin_page(web, request, status=403, error={"code": "access.role", "text": text})
    value, _ = web.sessions.issue(token.strip())
    response = RedirectResponse(_safe_next(form.get("next")), status_code=303)
    response.set_cookie(
        COOKIE,
        value,
        max_age=web.sessions.lifetime_s,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    response.delete_cookie(PRE_COOKIE, path="/sign-in")
    return response


async def signout(web: WebApp, request: Request) -> Response:
    form = await read_form(request)
    try:
        session = web.sessions.open(request.cookies.get(COOKIE))
    except SessionError:
        session = None
    if session is not None:
        web.check_form(request, session, form)
    response = RedirectResponse("/sign-in", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


async def language(web: WebApp, request: Request) -> Response:
    lang = request.path_params["lang"]
    response = RedirectResponse(_safe_next(request.query_params.get("next")), status_code=303)
    if lang in LANGUAGES:
        response.set_cookie(
            LANG_COOKIE, lang, max_age=365 * 86400, path="/", samesite="strict", httponly=True
        )
    return response


# -- the overview --------------------------------------------------------------------------


def _regions(web: WebApp, region: RegionCode) -> list[tuple[str, str]]:
    """The region, its parents within the desk, and its children that hold TPS."""
    dep = web.desk.deployment
    top = dep.region
    codes = {top.value, region.value}
    depth = len(region.segments)
    for station in dep.stations_in(region):
        parts = station.code.village.value.split(".")
        if depth < len(parts):
            codes.add(".".join(parts[: depth + 1]))
    if top.is_nation:  # a desk over the country lists its provinces, not ~7,000 districts
        codes.update(p.value for p in dep.provinces())
    else:
        for district in dep.districts():
            codes.add(district.value)
    return [(c, dep.region_name(c)) for c in sorted(codes)]


async def overview_page(web: WebApp, request: Request) -> Response:
    principal, session = await web.signed_in(request)
    region = request.query_params.get("region") or default_region(web.desk, principal)
    contest = request.query_params.get("contest") or None
    view = await web.run(overview, web.desk, region, principal=principal, contest=contest)
    code = RegionCode.parse(view.region)
    can_release = is_allowed(principal, Action.RELEASE, code)
    released = can_release and await web.run(web.desk.is_released, code, view.contest)
    seq = web.live.seq if web.live is not None else 0
    return web.page(
        request,
        "overview.html",
        view=view,
        principal=principal,
        csrf=web.sessions.csrf(session),
        region=view.region,
        regions=_regions(web, code),
        can_release=can_release,
        released=released,
        page="overview",
        seq=seq,
        message=_done(web, request),
    )


async def panels_fragment(web: WebApp, request: Request) -> Response:
    """The overview's panels alone (what the live stream pushes)."""
    principal, _ = await web.signed_in(request)
    region = request.query_params.get("region") or default_region(web.desk, principal)
    contest = request.query_params.get("contest") or None
    html = await web.run(web.live.render_panels, principal, region, contest, web.lang(request))
    return HTMLResponse(html, headers=dict(SECURITY_HEADERS))


def _done(web: WebApp, request: Request) -> str:
    """The outcome of the action that redirected here, in the page's language."""
    done = request.query_params.get("done")
    if not done:
        return ""
    t, has = translator(web.lang(request))
    return t(f"done_{done}") if has(f"done_{done}") else ""


# -- one TPS -------------------------------------------------------------------------------


async def station_page(web: WebApp, request: Request) -> Response:
    principal, session = await web.signed_in(request)
    code = request.path_params["code"]
    view = await web.run(station_view, web.desk, code, principal=principal)
    return web.page(
        request,
        "tps.html",
        view=view,
        principal=principal,
        csrf=web.sessions.csrf(session),
        region=view.district,
        page="tps",
        message=_done(web, request),
    )


async def station_photo(web: WebApp, request: Request) -> Response:
    """A photo a report of the TPS names (its sheet's, an incident's), read through the
    desk (the access policy of the TPS's reports, on record), served as the type the desk
    read from its bytes and never cached or sniffed."""
    principal, _ = await web.signed_in(request)
    code = request.path_params["code"]
    sha256 = request.path_params["sha256"]
    record = await web.run(web.desk.media, sha256, station=code, principal=principal)
    return Response(
        record.data,
        media_type=record.content_type,
        headers={
            **SECURITY_HEADERS,
            "content-disposition": "inline",
            "cross-origin-resource-policy": "same-origin",
        },
    )


async def map_page(web: WebApp, request: Request) -> Response:
    principal, session = await web.signed_in(request)
    region = request.query_params.get("region") or default_region(web.desk, principal)
    try:
        code = RegionCode.parse(region)
    except ValueError:
        raise SipantauError(
            "not a region code", code="region.unknown", message_id="kode wilayah tidak dikenal"
        ) from None
    lang = web.lang(request)
    labels = _map_labels(lang)
    return web.page(
        request,
        "map.html",
        principal=principal,
        csrf=web.sessions.csrf(session),
        region=code.value,
        region_name=web.desk.deployment.region_name(code),
        page="map",
        labels_json=json.dumps(labels, ensure_ascii=False),
    )


#: The map's words in English (map.js holds the Indonesian ones, its defaults).
MAP_LABELS_EN: dict[str, Any] = {
    "status": {
        "silent": "Not reported",
        "reported": "Reported",
        "flagged": "Flagged tally",
        "counted": "Tally counted",
    },
    "risk": {"low": "Low", "medium": "Medium", "high": "High"},
    "indicators": {
        "keamanan": "Security",
        "aksesibilitas": "Access",
        "kejadian_lalu": "Past incidents",
        "logistik": "Logistics",
        "jaringan": "Network",
    },
    "layers": {
        "outlines": "Kecamatan outlines",
        "status": "TPS by status",
        "risk": "TPS by risk level",
    },
    "legend": {"status": "TPS status", "risk": "TPS risk level"},
    "filter": {"title": "Show risk levels"},
    "popup": {
        "status": "Status",
        "risk": "Risk level",
        "indicators": "Indicators",
        "incidents": "Incidents",
        "district": "Kecamatan",
        "none": "none",
        "open": "Open the TPS page",
    },
    "table": {
        "level": "Risk level",
        "stations": "TPS",
        "stations_with_incidents": "TPS with incidents",
        "share": "% TPS with incidents",
        "incidents": "Incidents",
        "flagged": "Flagged tallies",
        "counted": "Tallies counted",
        "silent": "Not reported",
        "total": "Total",
    },
    "unplaced": "TPS without coordinates",
    "omitted": "TPS not drawn (too many): open a city's map",
    "error": "The map could not be loaded",
}


def _map_labels(lang: str) -> dict[str, Any]:
    return MAP_LABELS_EN if lang == "en" else {}


async def map_data(web: WebApp, request: Request) -> Response:
    principal, _ = await web.signed_in(request)
    region = request.query_params.get("region") or default_region(web.desk, principal)
    data = await web.run(build_map_data, web.desk, region, principal=principal)
    return Response(
        json.dumps(data, ensure_ascii=False),
        media_type="application/json",
        headers=dict(SECURITY_HEADERS),
    )


def routes(web: WebApp) -> list[BaseRoute]:
    return [
        Route("/", web.handler(overview_page), methods=["GET"]),
        Route("/sign-in", web.handler(signin_form, kind="public"), methods=["GET"]),
        Route("/sign-in", web.handler(signin, kind="public"), methods=["POST"]),
        Route("/sign-out", web.handler(signout, kind="public"), methods=["POST"]),
        Route("/lang/{lang}", web.handler(language, kind="public"), methods=["GET"]),
        Route("/fragments/panels", web.handler(panels_fragment, kind="data"), methods=["GET"]),
        Route("/tps/{code}", web.handler(station_page), methods=["GET"]),
        Route(
            "/tps/{code}/media/{sha256}", web.handler(station_photo, kind="data"), methods=["GET"]
        ),
        Route("/map", web.handler(map_page), methods=["GET"]),
        Route("/map/data.json", web.handler(map_data, kind="data"), methods=["GET"]),
    ]
