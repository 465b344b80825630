"""What officers and coordinators do from the page: correct, override or reject a
tally, release a region, acknowledge an incident. Each is a form with the session's CSRF
token and goes through the same desk call (and so the same access policy and audit log)
as the API; the answer is a redirect back to the page, which shows the outcome."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from sipantau_adapters.web.app import WebApp, read_form
from sipantau_adapters.web.overview import station_contest
from sipantau_core.domain import StationCode, TallyReport
from sipantau_core.domain.reports import Amends
from sipantau_core.errors import PayloadError, Problem, SipantauError

__all__ = ["routes"]


def _field(form: Mapping[str, Any], name: str) -> str:
    value = form.get(name)
    if not isinstance(value, str) or not value.strip():
        raise PayloadError([Problem(name, "form.missing", f"{name} is required")])
    return value.strip()


def _count(form: Mapping[str, Any], name: str) -> int:
    text = _field(form, name)
    if not text.isdigit() or len(text) > 7:
        raise PayloadError([Problem(name, "form.not_a_count", f"{name} must be a count")])
    return int(text)


def _report_id(form: Mapping[str, Any], name: str = "report_id") -> uuid.UUID:
    try:
        return uuid.UUID(_field(form, name))
    except ValueError:
        raise PayloadError([Problem(name, "form.bad_id", f"{name} is not a report id")]) from None


def _back(path: str, message: str) -> Response:
    return RedirectResponse(f"{path}?done={quote(message)}", status_code=303)


async def decide(web: WebApp, request: Request) -> Response:
    """Override (count anyway) or reject the TPS's flagged tally, with a reason."""
    principal, session = await web.signed_in(request)
    form = await read_form(request)
    web.check_form(request, session, form)
    report_id = _report_id(form)
    reason = _field(form, "reason")
    action = form.get("action")
    if action == "override":
        await web.run(web.desk.override, report_id, principal=principal, reason=reason)
    elif action == "reject":
        await web.run(web.desk.reject, report_id, principal=principal, reason=reason)
    else:
        raise PayloadError([Problem("action", "form.bad_action", "override or reject")])
    return _back(f"/tps/{request.path_params['code']}", str(action))


async def correct(web: WebApp, request: Request) -> Response:
    """A new version of the TPS's tally, amending the newest (sent in the monitor's
    name by the officer, who is on record as its submitter)."""
    principal, session = await web.signed_in(request)
    form = await read_form(request)
    web.check_form(request, session, form)
    code = StationCode.parse(request.path_params["code"])
    amends = _report_id(form, "amends")
    version = _count(form, "version")
    dep = web.desk.deployment
    monitor = next((m.id for m in dep.monitors.values() if m.station == code), None)
    contest = station_contest(dep, code)
    if monitor is None or contest is None:
        raise SipantauError(
            "this TPS has no monitor or contest to correct a tally for",
            code="report.unknown_monitor",
            message_id="TPS ini tidak memiliki pemantau atau pemilihan",
        )
    votes = {n: _count(form, f"votes.{n}") for n in contest.options}
    report = TallyReport(
        report_id=uuid.uuid4(),
        monitor=monitor,
        station=code,
        contest=contest.id,
        observed_at=web.desk.clock(),
        votes=votes,
        valid=_count(form, "valid"),
        invalid=_count(form, "invalid"),
        total=_count(form, "total"),
        amends=Amends(amends, version),
    )
    receipt = await web.run(web.desk.submit, report, principal=principal)
    return _back(f"/tps/{code.compact}", receipt.status)


async def release(web: WebApp, request: Request) -> Response:
    """Release a region's counts (one contest) to viewers."""
    principal, session = await web.signed_in(request)
    form = await read_form(request)
    web.check_form(request, session, form)
    region = _field(form, "region")
    contest = form.get("contest") or None
    await web.run(
        web.desk.release,
        region,
        principal=principal,
        contest=contest if isinstance(contest, str) else None,
    )
    return RedirectResponse(f"/?region={quote(region)}&done=released", status_code=303)


async def acknowledge(web: WebApp, request: Request) -> Response:
    """An officer has seen an incident and is acting on it."""
    principal, session = await web.signed_in(request)
    form = await read_form(request)
    web.check_form(request, session, form)
    report_id = _report_id(form)
    incident = _count(form, "incident")
    note = form.get("note")
    await web.run(
        web.desk.acknowledge,
        report_id,
        incident,
        principal=principal,
        note=note if isinstance(note, str) else "",
    )
    station = form.get("station")
    target = f"/tps/{StationCode.parse(station).compact}" if isinstance(station, str) else "/"
    return _back(target, "acknowledged")


def routes(web: WebApp) -> list[BaseRoute]:
    return [
        Route("/tps/{code}/decide", web.handler(decide), methods=["POST"]),
        Route("/tps/{code}/correct", web.handler(correct), methods=["POST"]),
        Route("/release", web.handler(release), methods=["POST"]),
        Route("/incidents/acknowledge", web.handler(acknowledge), methods=["POST"]),
    ]
