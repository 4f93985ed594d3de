"""The People page (``/console/people``, admins only) and its JSON API over
``bot.services.people``: list staff, add, change role/team, deactivate/reactivate, reset a
password, unlock, and the staff part of the audit log.

Same login, roles and CSRF as the rest of the console (every POST needs ``X-CSRF-Token``).
Generated passwords appear in exactly one response (``Cache-Control: no-store``, like every
console answer) and are never stored or logged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from bot.hub.console.auth import ConsoleError, ConsoleRoute, require_role
from bot.services import people
from bot.services.people import Outcome, PeopleError
from bot.services.staff_sessions import StaffLogin

router = APIRouter(route_class=ConsoleRoute)
admin_only = require_role("admin")
STATUS = {"not_found": 404, "bad_input": 422, "duplicate": 409, "last_admin": 409}
T = TypeVar("T")


class AddIn(BaseModel):
    username: str
    role: str = "agent"
    team: str = "postventa"
    password: str | None = None  # empty: generated, shown once


class UpdateIn(BaseModel):
    role: str | None = None
    team: str | None = None


async def _in_session(request: Request, work: Callable[[Session], T]) -> T:
    """Run ``work`` in one transaction (committed when it returns); ``PeopleError`` becomes
    the console's JSON error with its status."""

    def _job() -> T:
        with request.app.state.sessions() as session:
            try:
                result = work(session)
            except PeopleError as exc:
                session.rollback()
                raise ConsoleError(STATUS.get(exc.code, 400), exc.code, exc.message) from exc
            session.commit()
            return result

    return await run_in_threadpool(_job)


def _answer(session: Session, outcome: Outcome) -> dict[str, Any]:
    body: dict[str, Any] = {"user": people.describe(session, [outcome.user])[0],
                            "sessions_ended": outcome.sessions_ended}
    if outcome.password is not None:
        body["password"] = outcome.password
    return body


@router.get("/console/people", include_in_schema=False)
async def people_page(login: StaffLogin = Depends(admin_only)) -> Response:
    from bot.hub.console.routes import STATIC

    return FileResponse(STATIC / "people.html", media_type="text/html; charset=utf-8")


@router.get("/console/api/staff")
async def staff(request: Request, login: StaffLogin = Depends(admin_only)) -> list[dict[str, Any]]:
    return await _in_session(request, people.list_staff)


@router.post("/console/api/staff", status_code=201)
async def add(body: AddIn, request: Request,
              login: StaffLogin = Depends(admin_only)) -> dict[str, Any]:
    return await _in_session(request, lambda s: _answer(s, people.add(
        s, login.user.username, body.username, body.role, body.team, body.password)))


@router.post("/console/api/staff/{username}/update")
async def update(username: str, body: UpdateIn, request: Request,
                 login: StaffLogin = Depends(admin_only)) -> dict[str, Any]:
    return await _in_session(request, lambda s: _answer(s, people.update(
        s, login.user.username, username, body.role, body.team,
        actor_session=login.session.token_hash)))


@router.post("/console/api/staff/{username}/deactivate")
async def deactivate(username: str, request: Request,
                     login: StaffLogin = Depends(admin_only)) -> dict[str, Any]:
    return await _in_session(request, lambda s: _answer(s, people.deactivate(
        s, login.user.username, username)))


@router.post("/console/api/staff/{username}/reactivate")
async def reactivate(username: str, request: Request,
                     login: StaffLogin = Depends(admin_only)) -> dict[str, Any]:
    return await _in_session(request, lambda s: _answer(s, people.reactivate(
        s, login.user.username, username)))


@router.post("/console/api/staff/{username}/reset-password")
async def reset_password(username: str, request: Request,
                         login: StaffLogin = Depends(admin_only)) -> dict[str, Any]:
    return await _in_session(request, lambda s: _answer(s, people.reset_password(
        s, login.user.username, username, actor_session=login.session.token_hash)))


@router.post("/console/api/staff/{username}/unlock")
async def unlock(username: str, request: Request,
                 login: StaffLogin = Depends(admin_only)) -> Response:
    await _in_session(request, lambda s: people.unlock(s, login.user.username, username))
    return Response(status_code=204)


@router.get("/console/api/people/audit")
async def staff_audit(request: Request, limit: int = Query(50, ge=1, le=500),
                      login: StaffLogin = Depends(admin_only)) -> list[dict[str, Any]]:
    return await _in_session(request, lambda s: people.recent_audit(s, limit))
