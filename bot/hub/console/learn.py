"""Admins' learning inbox in the console (`/console/learn`): what the bot could not answer,
grouped by meaning, and one click to turn a group into example questions of an entry (live),
a new entry (a draft in the editor), or nothing (dismissed). Same login, roles and CSRF as
the rest of the console; every action is in the audit log."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from bot.db.models import FaqEntry
from bot.hub.console.auth import ConsoleError, ConsoleRoute, require_role
from bot.services import audit, learning
from bot.services.staff_sessions import StaffLogin

router = APIRouter(route_class=ConsoleRoute)
admin_only = require_role("admin")


class ItemsIn(BaseModel):
    item_ids: list[int] = Field(default_factory=list, max_items=500)


class ToEntryIn(ItemsIn):
    faq_id: str = Field(default="", max_length=64)


def _entries(session: Any) -> list[dict[str, Any]]:
    """Published entries, for the "add to…" picker."""
    rows = session.execute(select(FaqEntry).where(
        FaqEntry.deleted.is_(False), FaqEntry.published_at.is_not(None))
        .order_by(FaqEntry.faq_id)).scalars()
    return [{"id": e.faq_id, "title_es": (e.content or {}).get("es", {}).get("title", ""),
             "title_en": (e.content or {}).get("en", {}).get("title", "")} for e in rows]


@router.get("/console/learn", include_in_schema=False)
async def learn_page(login: StaffLogin = Depends(admin_only)) -> Response:
    from bot.hub.console.routes import STATIC

    return FileResponse(STATIC / "learn.html", media_type="text/html; charset=utf-8")


@router.get("/console/api/learn")
async def inbox(request: Request, login: StaffLogin = Depends(admin_only)) -> dict[str, Any]:
    def _read() -> dict[str, Any]:
        with request.app.state.sessions() as session:
            return {"groups": learning.groups(session), "trend": learning.trend(session),
                    "counts": learning.counts(session), "entries": _entries(session)}

    return await run_in_threadpool(_read)


async def _act(request: Request, login: StaffLogin, action: str, body: ItemsIn,
               fn: Any) -> dict[str, Any]:
    def _do() -> dict[str, Any]:
        with request.app.state.sessions() as session:
            try:
                result = fn(session)
            except learning.LearningError as exc:
                session.rollback()
                raise ConsoleError(409, "conflict", str(exc)) from exc
            except Exception as exc:
                session.rollback()
                code = getattr(exc, "code", None)
                if code is None:
                    raise
                status = {"not_found": 404, "duplicate": 409, "conflict": 409}.get(code, 422)
                raise ConsoleError(status, code, str(exc)) from exc
            audit.record(session, login.user.username, f"learn.{action}", None,
                         {**result, "item_ids": body.item_ids[:50]})
            session.commit()
            return result

    return await run_in_threadpool(_do)


@router.post("/console/api/learn/add-example")
async def add_example(body: ToEntryIn, request: Request,
                      login: StaffLogin = Depends(admin_only)) -> dict[str, Any]:
    if not body.faq_id.strip():
        raise ConsoleError(422, "bad_input", "Elige la entrada a la que añadir las preguntas.")
    return await _act(request, login, "add_example", body, lambda s: learning.add_examples(
        s, body.item_ids, body.faq_id.strip(), login.user.username))


@router.post("/console/api/learn/new-entry")
async def new_entry(body: ToEntryIn, request: Request,
                    login: StaffLogin = Depends(admin_only)) -> dict[str, Any]:
    if not body.faq_id.strip():
        raise ConsoleError(422, "bad_input", "Escribe un identificador para la nueva entrada.")
    return await _act(request, login, "new_entry", body, lambda s: learning.new_entry(
        s, body.item_ids, body.faq_id.strip(), login.user.username))


@router.post("/console/api/learn/dismiss")
async def dismiss(body: ItemsIn, request: Request,
                  login: StaffLogin = Depends(admin_only)) -> dict[str, Any]:
    return await _act(request, login, "dismiss", body, lambda s: learning.dismiss(
        s, body.item_ids, login.user.username))
