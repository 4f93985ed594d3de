"""Admins' data-rights desk in the console: find a person, download their export, erase them,
and read the audit log. Same login, roles and CSRF as the rest of the console; every export
and erasure is in the audit log under the admin's name."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from bot.hub.console.auth import ConsoleError, ConsoleRoute, require_role
from bot.services import audit, privacy
from bot.services.staff_sessions import StaffLogin

router = APIRouter(route_class=ConsoleRoute)
admin_only = require_role("admin")
CONFIRM_WORDS = ("BORRAR", "ERASE")


class PersonIn(BaseModel):
    identifier: str


class EraseIn(BaseModel):
    identifier: str
    confirm: str = ""


def _summary(subject: privacy.Subject) -> dict[str, Any]:
    return {"kind": subject.kind, "reference": subject.reference,
            "customers": len(subject.customer_ids),
            "conversations": len(subject.conversation_ids), "cases": len(subject.case_ids)}


def _subject(session: Any, identifier: str) -> privacy.Subject:
    try:
        subject = privacy.find(session, identifier)
    except privacy.PrivacyError as exc:
        raise ConsoleError(422, "bad_input",
                           "Escribe un email, un teléfono o un id de Telegram.") from exc
    if subject.empty:
        raise ConsoleError(404, "not_found", "No guardamos nada sobre esa persona.")
    return subject


@router.get("/console/privacy", include_in_schema=False)
async def privacy_page(login: StaffLogin = Depends(admin_only)) -> Response:
    from bot.hub.console.routes import STATIC

    return FileResponse(STATIC / "privacy.html", media_type="text/html; charset=utf-8")


@router.post("/console/api/privacy/lookup")
async def lookup(body: PersonIn, request: Request,
                 login: StaffLogin = Depends(admin_only)) -> dict[str, Any]:
    def _lookup() -> dict[str, Any]:
        with request.app.state.sessions() as session:
            return _summary(_subject(session, body.identifier))

    return await run_in_threadpool(_lookup)


@router.post("/console/api/privacy/export")
async def export(body: PersonIn, request: Request,
                 login: StaffLogin = Depends(admin_only)) -> Response:
    settings = request.app.state.settings

    def _export() -> tuple[bytes, str]:
        with request.app.state.sessions() as session:
            subject = _subject(session, body.identifier)
            data = privacy.export_zip(session, subject,
                                      privacy.tracker_engine(settings.tracker_url()),
                                      privacy.upload_dir(settings))
            audit.record(session, login.user.username, "privacy.export", subject.reference,
                         {**_summary(subject), "via": "console"})
            session.commit()
            return data, subject.reference.split(":")[-1][:12]

    data, ref = await run_in_threadpool(_export)
    return Response(data, media_type="application/zip", headers={
        "Content-Disposition": f'attachment; filename="privacy-export-{ref}.zip"',
        "Cache-Control": "no-store"})


@router.post("/console/api/privacy/erase")
async def erase(body: EraseIn, request: Request,
                login: StaffLogin = Depends(admin_only)) -> dict[str, Any]:
    if body.confirm.strip().upper() not in CONFIRM_WORDS:
        raise ConsoleError(422, "bad_input", "Escribe BORRAR para confirmar: no se puede "
                                             "deshacer.")
    settings = request.app.state.settings

    def _erase() -> dict[str, Any]:
        with request.app.state.sessions() as session:
            subject = _subject(session, body.identifier)
            return privacy.erase(session, subject,
                                 privacy.tracker_engine(settings.tracker_url()),
                                 privacy.upload_dir(settings), actor=login.user.username)

    return {"erased": await run_in_threadpool(_erase)}


@router.get("/console/api/audit")
async def audit_log(request: Request, limit: int = 100, action: str | None = None,
                    login: StaffLogin = Depends(admin_only)) -> list[dict[str, Any]]:
    def _recent() -> list[dict[str, Any]]:
        with request.app.state.sessions() as session:
            return audit.recent(session, limit, action)

    return await run_in_threadpool(_recent)
