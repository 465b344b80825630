"""The desk's web page over HTTP, on a real server on loopback: sign-in and sessions,
the access policy on every page and fragment, CSRF, escaping, the security headers, the
actions and their audit entries, and the live stream (the browser tests are in
``test_web_browser.py``)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest

from sipantau_adapters.web.session import COOKIE, Sessions
from sipantau_core.access import Principal, Role
from web_helpers import (
    NOW,
    SYSTEM,
    Site,
    csrf_of,
    send,
    sign_in,
    site,
    situation,
    tally,
)

OFFICERS_TPS = "1673011001001"  # in 16.73.01, the officer's kecamatan
OTHER_TPS = "1673021001001"  # in 16.73.02


@pytest.fixture(scope="module")
def web() -> Iterator[Site]:
    with site() as s:
        desk = s.desk
        send(desk, tally(desk, OFFICERS_TPS, (200, 150)))
        send(desk, tally(desk, OTHER_TPS, (120, 180)))
        # breaks a hard rule (valid + invalid != total): stored, flagged
        send(desk, tally(desk, "1673011001002", (210, 190), total=999))
        send(desk, situation(desk, "1673011001003", '<script>alert("x")</script><b>bold</b>'))
        yield s


def test_a_page_without_a_session_redirects_to_sign_in(web: Site) -> None:
    with web.client() as client:
        for path in ("/", "/tps/1673011001001", "/map", "/exports", "/print"):
            answer = client.get(path)
            assert answer.status_code == 303, path
            assert answer.headers["location"].startswith("/sign-in?next=")
            assert "Paslon" not in answer.text and "1673011001001" not in answer.text


def test_data_without_a_session_is_401_never_data(web: Site) -> None:
    with web.client() as client:
        for path in ("/fragments/panels", "/live", "/map/data.json", "/exports/tps.csv"):
            answer = client.get(path)
            assert answer.status_code == 401, path
            assert answer.json()["code"] == "access.unauthenticated"


def test_sign_in_sets_a_strict_http_only_cookie_and_sign_out_clears_it(web: Site) -> None:
    with web.client() as client:
        answer = sign_in(client, web.tokens["coordinator"])
        cookie = answer.headers["set-cookie"]
        assert cookie.startswith(f"{COOKIE}=")
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
        page = client.get("/")
        assert page.status_code == 200
        assert "Kota Lubuklinggau" in page.text
        out = client.post("/sign-out", data={"csrf": csrf_of(page.text)})
        assert out.status_code == 303
        client.cookies.clear()
        assert client.get("/").status_code == 303


def test_a_bad_token_is_refused_with_the_api_code(web: Site) -> None:
    with web.client() as client:
        form = client.get("/sign-in")
        answer = client.post("/sign-in", data={"csrf": csrf_of(form.text), "token": "not-a-token"})
        assert answer.status_code == 401
        assert 'data-code="access.bad_token"' in answer.text
        assert COOKIE not in answer.headers.get("set-cookie", "")


def test_sign_in_needs_its_own_form(web: Site) -> None:
    with web.client() as client:
        answer = client.post("/sign-in", data={"csrf": "x", "token": web.tokens["officer"]})
        assert answer.status_code == 403
        assert 'data-code="access.csrf"' in answer.text


def test_a_token_of_another_deployment_is_refused() -> None:
    with site() as one, site() as other, one.client() as client:
        form = client.get("/sign-in")
        answer = client.post(
            "/sign-in", data={"csrf": csrf_of(form.text), "token": other.tokens["officer"]}
        )
        assert answer.status_code == 401
        assert 'data-code="access.bad_token"' in answer.text


@pytest.mark.parametrize(
    "cookie",
    [
        "garbage",
        "AAAA",
        # sealed with another key
        Sessions("lubuklinggau", b"k" * 32).issue("whatever")[0],
        # another desk's cookie under the same key
        Sessions("musirawas", b"k" * 32).issue("whatever")[0],
    ],
)
def test_a_forged_cookie_opens_nothing(web: Site, cookie: str) -> None:
    with web.client() as client:
        client.cookies.set(COOKIE, cookie)
        assert client.get("/").status_code == 303
        answer = client.get("/fragments/panels")
        assert answer.status_code == 401
        assert answer.json()["code"] == "access.unauthenticated"


def test_an_expired_session_ends() -> None:
    clock = [1_000_000.0]
    sessions = Sessions("lubuklinggau", b"s" * 32, lifetime_s=60, clock=lambda: clock[0])
    value, _ = sessions.issue("t")
    assert sessions.open(value).token == "t"
    clock[0] += 61
    with pytest.raises(Exception) as caught:
        sessions.open(value)
    assert getattr(caught.value, "code", "") == "access.session_expired"


def test_a_revoked_token_ends_its_session(web: Site) -> None:
    holder = Principal(id="sementara", role=Role.OFFICER, scope="16.73.01")
    token = web.desk.issue_token(holder, principal=SYSTEM)
    with web.client() as client:
        sign_in(client, token)
        assert client.get("/").status_code == 200
        web.desk.revoke_token(token, principal=SYSTEM)
        answer = client.get("/fragments/panels")
        assert answer.status_code == 401
        assert answer.json()["code"] == "access.bad_token"
        assert client.get("/").status_code == 303  # the cookie was cleared


def test_every_page_carries_the_security_headers(web: Site) -> None:
    with web.client("officer") as client:
        for path in ("/", "/sign-in", "/tps/1673011001001", "/exports"):
            answer = client.get(path)
            csp = answer.headers["content-security-policy"]
            assert "script-src 'self'" in csp and "unsafe-inline" not in csp
            assert "frame-ancestors 'none'" in csp
            assert answer.headers["x-frame-options"] == "DENY"
            # not no-referrer: under it a browser sends the page's own forms with
            # "Origin: null", which the origin check refuses (found in the browser tests)
            assert answer.headers["referrer-policy"] == "same-origin"
            assert answer.headers["cache-control"] == "no-store"
            assert "<script>" not in answer.text.replace('<script src="', "")


def test_the_overview_shows_the_count_of_the_officers_kecamatan(web: Site) -> None:
    with web.client("officer") as client:
        page = client.get("/")
        assert page.status_code == 200
        assert "Lubuklinggau Barat I" in page.text
        assert 'id="panel-results"' in page.text and "refused" not in _section(
            page.text, "panel-results"
        )


def test_an_officer_is_refused_another_kecamatan(web: Site) -> None:
    with web.client("officer") as client:
        answer = client.get("/?region=16.73.02")
        assert answer.status_code == 403
        assert 'data-code="access.out_of_scope"' in answer.text
        assert "Paslon 1" not in answer.text
        tps = client.get(f"/tps/{OTHER_TPS}")
        assert 'data-code="access.out_of_scope"' in tps.text
        assert "120" not in _section(tps.text, "tps-tally")


def test_a_viewer_sees_only_released_regions() -> None:
    with site() as s:
        send(s.desk, tally(s.desk, OFFICERS_TPS, (200, 150)))
        with s.client("viewer") as client:
            answer = client.get("/?region=16.73.01")
            assert answer.status_code == 403
            assert 'data-code="access.not_released"' in answer.text
            assert client.get("/fragments/panels?region=16.73.01").status_code == 403
            coordinator = Principal(id="koord", role=Role.COORDINATOR, scope="16.73")
            s.desk.release("16.73.01", principal=coordinator, contest="walikota")
            page = client.get("/?region=16.73.01")
            assert page.status_code == 200
            assert "350" in _section(page.text, "panel-results")  # 200 + 150 valid
            # never the stages, incidents or flagged tallies: not the viewer's
            assert 'data-code="access.role"' in _section(page.text, "panel-stages")
            assert client.get("/?region=16.73.02").status_code == 403


def test_html_in_a_monitors_incident_is_escaped(web: Site) -> None:
    with web.client("coordinator") as client:
        for path in ("/", "/tps/1673011001003"):
            page = client.get(path).text
            assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;b&gt;bold&lt;/b&gt;" in page
            assert "<b>bold</b>" not in page


def test_no_personal_data_of_monitors_on_any_page(web: Site) -> None:
    personal = [
        value.reveal()
        for m in web.desk.deployment.monitors.values()
        if m.personal is not None
        for value in (m.personal.phone, m.personal.national_id, m.personal.name)
    ]
    assert personal
    with web.client("coordinator") as client:
        pages = [client.get(p).text for p in ("/", f"/tps/{OFFICERS_TPS}", "/map/data.json")]
    for text in pages:
        assert not [v for v in personal if v in text]


def _section(html: str, ident: str) -> str:
    start = html.index(f'id="{ident}"')
    end = html.find("</section>", start)
    return html[start:end]


# -- actions -------------------------------------------------------------------------------


def _audit(site_: Site, action: str) -> list[str]:
    return [
        f"{e.principal}:{e.object}:{e.outcome}"
        for e in site_.desk.audit.records()  # a report's record follows its batch
        if e.action == action
    ]


def test_an_override_needs_the_csrf_token_and_lands_in_the_audit_log() -> None:
    with site() as s:
        send(s.desk, tally(s.desk, OFFICERS_TPS, (200, 150), total=1))
        stored = s.desk.reports(OFFICERS_TPS, principal=SYSTEM, kind="tally")[0][0]
        assert stored.status.value == "flagged"
        with s.client("officer") as client:
            page = client.get(f"/tps/{OFFICERS_TPS}")
            form = {"report_id": str(stored.report_id), "reason": "cek C1", "action": "override"}
            refused = client.post(f"/tps/{OFFICERS_TPS}/decide", data=form)
            assert refused.status_code == 403
            assert 'data-code="access.csrf"' in refused.text
            elsewhere = client.post(
                f"/tps/{OFFICERS_TPS}/decide",
                data={**form, "csrf": csrf_of(page.text)},
                headers={"origin": "http://evil.example"},
            )
            assert elsewhere.status_code == 403
            opaque = client.post(  # an opaque origin: a sandboxed frame, a data: page
                f"/tps/{OFFICERS_TPS}/decide",
                data={**form, "csrf": csrf_of(page.text)},
                headers={"origin": "null"},
            )
            assert opaque.status_code == 403
            assert _audit(s, "override") == []  # nothing changed
            done = client.post(  # as a browser sends it: with the site's own origin
                f"/tps/{OFFICERS_TPS}/decide",
                data={**form, "csrf": csrf_of(page.text)},
                headers={"origin": s.url},
            )
            assert done.status_code == 303
            assert _audit(s, "override") == [f"petugas-1:report:{stored.report_id}:overridden"]
            after = client.get(done.headers["location"])
            assert 'id="flash"' in after.text


def test_a_correction_from_the_page_is_a_new_version_by_the_officer() -> None:
    with site() as s:
        send(s.desk, tally(s.desk, OFFICERS_TPS, (200, 150), total=1))
        first = s.desk.reports(OFFICERS_TPS, principal=SYSTEM, kind="tally")[0][0]
        with s.client("officer") as client:
            page = client.get(f"/tps/{OFFICERS_TPS}")
            answer = client.post(
                f"/tps/{OFFICERS_TPS}/correct",
                data={
                    "csrf": csrf_of(page.text),
                    "amends": str(first.report_id),
                    "version": "1",
                    "votes.1": "200",
                    "votes.2": "150",
                    "valid": "350",
                    "invalid": "4",
                    "total": "354",
                },
            )
            assert answer.status_code == 303, answer.text
        head = s.desk.reports(OFFICERS_TPS, principal=SYSTEM, kind="tally")[0][0]
        assert (head.version, head.status.value, head.submitted_by) == (2, "accepted", "petugas-1")
        assert f"petugas-1:report:{head.report_id}:accepted" in _audit(s, "submit")
        assert s.desk.tally(OFFICERS_TPS, principal=SYSTEM).valid == 350


def test_release_and_acknowledge_from_the_page() -> None:
    with site() as s:
        send(s.desk, situation(s.desk, OFFICERS_TPS, "massa berkumpul"))
        report = s.desk.reports(OFFICERS_TPS, principal=SYSTEM, kind="situation")[0][0]
        with s.client("coordinator") as client:
            page = client.get("/?region=16.73.01")
            released = client.post(
                "/release",
                data={"csrf": csrf_of(page.text), "region": "16.73.01", "contest": "walikota"},
            )
            assert released.status_code == 303
            assert s.desk.is_released("16.73.01", "walikota")
            tps = client.get(f"/tps/{OFFICERS_TPS}")
            ack = client.post(
                "/incidents/acknowledge",
                data={
                    "csrf": csrf_of(tps.text),
                    "report_id": str(report.report_id),
                    "incident": "0",
                    "station": OFFICERS_TPS,
                    "note": "polisi menuju lokasi",
                },
            )
            assert ack.status_code == 303
            assert "polisi menuju lokasi" in client.get(ack.headers["location"]).text
        assert _audit(s, "acknowledge") == [f"koord:incident:{report.report_id}:0:ok"]
        with s.client("viewer") as client:
            page = client.get(f"/tps/{OFFICERS_TPS}")
            assert page.status_code == 200
            assert 'data-code="access.role"' in _section(page.text, "tps-tally")
            refused = client.post(
                "/incidents/acknowledge",
                data={"csrf": "x", "report_id": str(report.report_id), "incident": "0"},
            )
            assert refused.status_code == 403


# -- language and the live stream ------------------------------------------------------------


def test_english_by_a_switch(web: Site) -> None:
    with web.client("officer") as client:
        assert "Ringkasan" in client.get("/").text
        switched = client.get("/lang/en?next=/")
        assert switched.status_code == 303 and switched.headers["location"] == "/"
        assert "Overview" in client.get("/").text
        assert client.get("/lang/en?next=//evil.example").headers["location"] == "/"


def _events(response: httpx.Response, wanted: int, timeout: float) -> list[dict[str, str]]:
    events: list[dict[str, str]] = []
    current: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    for line in response.iter_lines():
        if line == "":
            if "data" in current:
                events.append(current)
                if len(events) >= wanted:
                    break
            current = {}
        elif not line.startswith(":") and ":" in line:
            key, _, value = line.partition(":")
            current[key] = value.lstrip(" ")
        if time.monotonic() > deadline:
            break
    return events


def test_the_live_stream_pushes_new_panels_and_resumes() -> None:
    with site() as s, s.client("officer") as client:
        with client.stream("GET", "/live?region=16.73.01") as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            sent_at = time.monotonic()
            send(s.desk, tally(s.desk, OFFICERS_TPS, (321, 123)))
            first, update = _events(response, 2, timeout=10)
            assert time.monotonic() - sent_at < 5
        assert first["event"] == "panels"
        before = json.loads(first["data"])["html"]
        after = json.loads(update["data"])
        assert "444" not in before and "444" in after["html"]  # 321 + 123 valid
        assert after["changes"] >= 1
        seq = int(update["id"])
        send(s.desk, tally(s.desk, "1673011001002", (100, 100)))
        with client.stream(
            "GET", "/live?region=16.73.01", headers={"last-event-id": str(seq)}
        ) as response:
            (resumed,) = _events(response, 1, timeout=10)
        data = json.loads(resumed["data"])
        assert data["resumed"] is True and data["changes"] >= 1
        assert "644" in data["html"]  # 444 + 200


def test_the_live_stream_is_scoped_like_the_page(web: Site) -> None:
    with web.client("officer") as client:
        answer = client.get("/live?region=16.73.02")
        assert answer.status_code == 403
        assert answer.json()["code"] == "access.out_of_scope"


def test_now_is_election_day() -> None:
    assert NOW.date().isoformat() == "2024-11-27"


@pytest.mark.parametrize("region", ["16.73", "16.73.01", "16.73.02", "16.73.01.1001"])
def test_the_live_snapshot_cuts_the_same_panels_as_the_desk(web: Site, region: str) -> None:
    from sipantau_adapters.web.overview import overview
    from sipantau_adapters.web.snapshot import overview_from, read_snapshot

    coordinator = Principal(id="koord", role=Role.COORDINATOR, scope="16.73")
    direct = overview(web.desk, region, principal=coordinator)
    snapshot = read_snapshot(web.desk, ["16.73", "16.73.01", region], None)
    cut = overview_from(web.desk, snapshot, region)
    assert cut == direct
    assert direct.results.data is not None and direct.stages.data


def test_a_stream_ends_in_time_so_a_revoked_token_stops_its_updates(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sipantau_adapters.web import live

    monkeypatch.setattr(live, "MAX_STREAM_S", 0.5)
    with site() as s:
        holder = Principal(id="sementara", role=Role.OFFICER, scope="16.73.01")
        token = s.desk.issue_token(holder, principal=SYSTEM)
        with s.client() as client:
            sign_in(client, token)
            started = time.monotonic()
            with client.stream("GET", "/live?region=16.73.01") as response:
                for _ in response.iter_lines():
                    pass  # the server ends the stream
            assert time.monotonic() - started < 10
            s.desk.revoke_token(token, principal=SYSTEM)
            again = client.get("/live?region=16.73.01")  # what the browser's retry gets
            assert again.status_code == 401
            assert again.json()["code"] == "access.bad_token"


def test_the_tps_csv_is_streamed_with_its_headers_and_refused_whole(web: Site) -> None:
    """``/exports/tps.csv`` streams ``iter_tps_csv``: a file to save, with the page's
    security headers, every TPS of the region once; another region is refused before
    any byte, with the desk's code."""
    import csv
    import io

    from sipantau_adapters.web.exports import tps_csv

    with web.client() as client:
        sign_in(client, web.tokens["officer"])
        answer = client.get("/exports/tps.csv?region=16.73.01")
        assert answer.status_code == 200
        assert answer.headers["content-disposition"] == (
            'attachment; filename="sipantau-16.73.01-all-tps.csv"'
        )
        assert answer.headers["x-content-type-options"] == "nosniff"
        officer = web.desk.authenticate(web.tokens["officer"])
        expected = tps_csv(web.desk, "16.73.01", principal=officer)
        got = list(csv.reader(io.StringIO(answer.text, newline="")))
        want = list(csv.reader(io.StringIO(expected, newline="")))
        assert got[0] == want[0] and [r[0] for r in got] == [r[0] for r in want]
        refused = client.get("/exports/tps.csv?region=16.73")
        assert refused.status_code == 403
        assert refused.json()["code"] == "access.out_of_scope"
