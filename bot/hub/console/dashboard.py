"""The KPI dashboard in the console: the page, its JSON API and the CSV exports.

Who sees what (the contract of DESIGN.md: "agents may read the dashboard of their team"):

* admins: every team, every filter, and the CSV exports;
* agents: the dashboard's numbers for **their own team only** (the team filter is forced to
  theirs; asking for another team is 403) and **no exports** — an export is row-level data
  (customer comments, who handled what), an admin's tool, and is audited.

Everything here is GET: nothing changes state except the audit entry an export writes. The
session cookie is ``SameSite=Strict`` (another site cannot make the browser send it), and an
export additionally refuses requests the browser marks as coming from another site
(``Sec-Fetch-Site``), so a foreign page cannot make an admin's browser export anything.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from bot.hub.console.auth import ConsoleError, ConsoleRoute, forbidden, require_role
from bot.services import audit, kpi, kpi_dashboard, kpi_export
from bot.services.staff_sessions import StaffLogin

router = APIRouter(route_class=ConsoleRoute)
staff_only = require_role("agent")  # agents and admins
admin_only = require_role("admin")

VENDOR = {  # third-party files we serve ourselves (no CDN): name → media type
    "chart.umd.min.js": "text/javascript; charset=utf-8",
    "chart.js.LICENSE.md": "text/plain; charset=utf-8",
}
QUERY_KEYS = ("since", "until", "channel", "language", "case_type", "agent", "team", "group")


def _query(request: Request, login: StaffLogin) -> kpi_dashboard.Query:
    """The filters of the query string, with an agent held to their own team."""
    params: dict[str, str | None] = {k: request.query_params.get(k) for k in QUERY_KEYS}
    if login.user.role != "admin":
        if params["team"] and params["team"] != login.user.team:
            raise forbidden("Solo puedes ver los indicadores de tu equipo.")
        params["team"] = login.user.team
    try:
        return kpi_dashboard.parse(params)
    except kpi_dashboard.BadQuery as exc:
        raise ConsoleError(422, "bad_input", str(exc)) from exc


def _filters_for_audit(f: kpi.Filters) -> dict[str, Any]:
    return {k: (v.date().isoformat() if hasattr(v, "date") else v)
            for k, v in f.__dict__.items() if v is not None}


@router.get("/console/dashboard", include_in_schema=False)
async def dashboard_page(login: StaffLogin = Depends(staff_only)) -> Response:
    from bot.hub.console.routes import STATIC

    return FileResponse(STATIC / "dashboard.html", media_type="text/html; charset=utf-8")


@router.get("/console/static/vendor/{name}", include_in_schema=False)
async def vendor_file(name: str) -> Response:
    from bot.hub.console.routes import STATIC

    media = VENDOR.get(name)
    if media is None:
        raise ConsoleError(404, "not_found", "No existe.")
    return FileResponse(STATIC / "vendor" / name, media_type=media,
                        headers={"Cache-Control": "public, max-age=86400"})


@router.get("/console/api/kpi")
async def kpis(request: Request, login: StaffLogin = Depends(staff_only)) -> Response:
    """Tiles (period and previous period) and chart series; ``Server-Timing`` tells how long
    the computation took on the server (the benchmark reads it)."""
    query = _query(request, login)
    settings = request.app.state.settings

    def _build() -> tuple[dict[str, Any], float]:
        started = time.perf_counter()
        with request.app.state.sessions() as session:
            data = kpi_dashboard.build(session, query,
                                       idle_timeout=settings.conversation_idle_timeout,
                                       sla=kpi.Sla.from_settings(settings))
            if login.user.role == "admin":  # customers' own words: row-level, admins only
                data["comments"] = kpi_dashboard.recent_comments(session, query.filters)
        return data, (time.perf_counter() - started) * 1000

    data, ms = await run_in_threadpool(_build)
    return JSONResponse({**data, "team_locked": login.user.role != "admin"},
                        headers={"Server-Timing": f"kpi;dur={ms:.1f}"})


@router.get("/console/api/kpi/options")
async def kpi_options(request: Request, login: StaffLogin = Depends(staff_only)
                      ) -> dict[str, Any]:
    """What the filter menus offer (an agent: their team and its agents only)."""
    team = None if login.user.role == "admin" else login.user.team

    def _options() -> dict[str, Any]:
        with request.app.state.sessions() as session:
            return kpi_dashboard.options(session, team)

    data = await run_in_threadpool(_options)
    return {**data, "role": login.user.role, "team": login.user.team,
            "can_export": login.user.role == "admin"}


def _export(request: Request, login: StaffLogin, kind: str) -> StreamingResponse:
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        raise forbidden("Exportación pedida desde otro sitio: ábrela desde la consola.")
    query = _query(request, login)
    f = query.filters
    with request.app.state.sessions() as session:
        audit.record(session, login.user.username, f"export.{kind}", None,
                     {**_filters_for_audit(f), "via": "console"})
        session.commit()
    make = kpi_export.conversations_csv if kind == "conversations" else kpi_export.cases_csv
    sessions = request.app.state.sessions

    def rows():
        # its own session, closed when the stream ends or the client goes away
        with sessions() as session:
            yield from make(session, f)

    assert f.since is not None and f.until is not None
    name = f"{kind}-{f.since:%Y%m%d}-{f.until:%Y%m%d}.csv"
    return StreamingResponse(rows(), media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"})


@router.get("/console/api/export/conversations.csv")
async def export_conversations(request: Request,
                               login: StaffLogin = Depends(admin_only)) -> Response:
    return await run_in_threadpool(_export, request, login, "conversations")


@router.get("/console/api/export/cases.csv")
async def export_cases(request: Request, login: StaffLogin = Depends(admin_only)) -> Response:
    return await run_in_threadpool(_export, request, login, "cases")
