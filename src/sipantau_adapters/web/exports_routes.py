"""The exports of the page: CSV per TPS and per kecamatan, the results as NIST SP
1500-100 Election Results Reporting (JSON), and a printable summary of a region's count.
Each is read under the signed-in principal, so it holds exactly what the pages may show;
what it may not read is refused with the desk's code (``access.*``), never cut short."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from sipantau_adapters.web.app import SECURITY_HEADERS, WebApp
from sipantau_adapters.web.exports import (
    district_csv as make_district_csv,
)
from sipantau_adapters.web.exports import (
    election_results_report,
    iter_tps_csv,
)
from sipantau_adapters.web.exports import summary as make_summary
from sipantau_adapters.web.overview import default_region

__all__ = ["routes"]


def _download(web: WebApp, body: str | Iterator[str], media_type: str, filename: str) -> Response:
    """A file to save: ``body`` at once, or streamed a part at a time (each part read in
    a worker thread under the page's limit on desk calls, as every other read)."""
    headers = dict(SECURITY_HEADERS)
    headers["content-disposition"] = f'attachment; filename="{filename}"'
    if isinstance(body, str):
        return Response(body.encode("utf-8"), media_type=media_type, headers=headers)

    async def parts() -> AsyncIterator[bytes]:
        while (part := await web.run(next, body, None)) is not None:
            if part:  # a city without TPS of the contest writes no row
                yield part.encode("utf-8")

    return StreamingResponse(parts(), media_type=media_type, headers=headers)


def _name(region: str, contest: str | None, suffix: str) -> str:
    safe = re.sub(r"[^0-9A-Za-z._-]", "_", f"{region}-{contest or 'all'}")
    return f"sipantau-{safe}-{suffix}"


def _query(web: WebApp, request: Request, principal: object) -> tuple[str, str | None]:
    region = request.query_params.get("region") or default_region(web.desk, principal)  # type: ignore[arg-type]
    contest = request.query_params.get("contest") or None
    return region, contest


async def exports_page(web: WebApp, request: Request) -> Response:
    principal, session = await web.signed_in(request)
    region, contest = _query(web, request, principal)
    return web.page(
        request,
        "exports.html",
        principal=principal,
        csrf=web.sessions.csrf(session),
        region=region,
        region_name=web.desk.deployment.region_name(region),
        contest=contest or "",
        page="exports",
    )


async def tps_csv(web: WebApp, request: Request) -> Response:
    """The TPS CSV, sent a part (a city) at a time: a national desk's export never holds
    the country's reports at once. The first part is read before the answer starts, so a
    refusal is an error answer, not a cut download."""
    principal, _ = await web.signed_in(request)
    region, contest = _query(web, request, principal)
    parts = await web.run(iter_tps_csv, web.desk, region, principal=principal, contest=contest)
    return _download(web, parts, "text/csv; charset=utf-8", _name(region, contest, "tps.csv"))


async def district_csv(web: WebApp, request: Request) -> Response:
    principal, _ = await web.signed_in(request)
    region, contest = _query(web, request, principal)
    body = await web.run(make_district_csv, web.desk, region, principal=principal, contest=contest)
    return _download(web, body, "text/csv; charset=utf-8", _name(region, contest, "wilayah.csv"))


async def results_json(web: WebApp, request: Request) -> Response:
    principal, _ = await web.signed_in(request)
    region, contest = _query(web, request, principal)
    document = await web.run(
        election_results_report, web.desk, region, principal=principal, contest=contest
    )
    body = json.dumps(document, ensure_ascii=False, indent=1)
    return _download(web, body, "application/json", _name(region, contest, "nist-err.json"))


async def print_page(web: WebApp, request: Request) -> Response:
    principal, session = await web.signed_in(request)
    region, contest = _query(web, request, principal)
    summary = await web.run(make_summary, web.desk, region, principal=principal, contest=contest)
    return web.page(
        request,
        "print.html",
        principal=principal,
        csrf=web.sessions.csrf(session),
        region=region,
        summary=summary,
        page="print",
    )


def routes(web: WebApp) -> list[BaseRoute]:
    data = "data"
    return [
        Route("/exports", web.handler(exports_page), methods=["GET"]),
        Route("/exports/tps.csv", web.handler(tps_csv, kind=data), methods=["GET"]),
        Route("/exports/districts.csv", web.handler(district_csv, kind=data), methods=["GET"]),
        Route("/exports/results.json", web.handler(results_json, kind=data), methods=["GET"]),
        Route("/print", web.handler(print_page), methods=["GET"]),
    ]
