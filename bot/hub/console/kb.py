"""Admins' knowledge-base editor in the console (``/console/kb``): list and search entries,
edit both languages side by side as a draft, publish, revert, retire, and try a customer
question against the published KB and against the unsaved edit.

The rules live in ``bot.services.kb.editor``; this module words its refusals in the
console's language and maps them to HTTP. The hub keeps its own ``LiveKnowledgeBase`` (made
on first use: it loads the embedding model) so that search here is the bot's own search.
"""

from __future__ import annotations

import threading
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from bot.hub.console.auth import ConsoleError, ConsoleRoute, require_role
from bot.services.kb import editor, preview
from bot.services.kb.live import LiveKnowledgeBase
from bot.services.kb.search import MAX_QUERY_CHARS
from bot.services.kb.store import KBConflict
from bot.services.staff_sessions import StaffLogin

router = APIRouter(route_class=ConsoleRoute)
admin_only = require_role("admin")

FaqId = Annotated[str, PathParam(min_length=1, max_length=80)]
Version = Annotated[int, Field(ge=0, le=2**31 - 1)]
SEARCH_RESULTS = 15
LANG_NAMES = {"es": "español", "en": "inglés"}
PARTS = {"title": "el título", "answer": "la respuesta", "questions": "una pregunta de ejemplo"}
STATUS = {"not_found": 404, "bad_revision": 404, "duplicate": 409, "conflict": 409,
          "nothing_to_publish": 409, "no_draft": 409, "never_published": 409, "retired": 409}
_live_lock = threading.Lock()


class CreateIn(BaseModel):
    id: str = Field(..., max_length=200)
    entry: dict[str, Any] | None = None


class DraftIn(BaseModel):
    expected_version: Version
    entry: dict[str, Any]


class PublishIn(BaseModel):
    expected_version: Version
    entry: dict[str, Any] | None = None


class VersionIn(BaseModel):
    expected_version: Version


class RevertIn(BaseModel):
    expected_version: Version
    revision_id: Version


class TryIn(BaseModel):
    query: str = Field(..., max_length=MAX_QUERY_CHARS * 4)
    lang: str = Field("es", max_length=2)
    faq_id: str | None = Field(None, max_length=80)
    entry: dict[str, Any] | None = None


# --- errors in the console's words -----------------------------------------------------------

def _number(n: int) -> str:
    return f"{n:,}".replace(",", " ")


def _field_label(field: str) -> str:
    if field == "tags":
        return "Una etiqueta"
    lang, _, part = field.partition(".")
    name = LANG_NAMES.get(lang, lang)
    return {"title": f"El título en {name}", "answer": f"La respuesta en {name}",
            "questions": f"Una pregunta de ejemplo en {name}"}.get(part, field)


def message(exc: editor.EditorError) -> str:
    p = exc.params
    lang = LANG_NAMES.get(p.get("lang") or "", "")
    if exc.code == "too_long":
        return (f"{_field_label(p['field'])} tiene {_number(p['length'])} caracteres; el "
                f"máximo es {_number(p['limit'])}. Acórtala y vuelve a guardar.")
    if exc.code == "too_many":
        return (f"Demasiadas etiquetas (máximo {p['limit']})." if p["field"] == "tags" else
                f"Demasiadas preguntas de ejemplo en {lang} (máximo {p['limit']}).")
    if exc.code == "incomplete":
        parts = " y ".join(PARTS[x] for x in p["parts"])
        return (f"Falta {parts} en {lang}. Complétalo, o deja vacío todo el bloque en {lang} "
                f"para publicarla sin {lang} (quedará marcada como «falta {lang}»).")
    if exc.code == "duplicate":
        return (f"Ya existe una entrada «{p['faq_id']}» (retirada): búscala con el filtro "
                "«Retiradas» y publícala de nuevo." if p.get("retired") else
                f"Ya existe una entrada «{p['faq_id']}»: ábrela desde la lista.")
    return {
        "bad_input": f"Datos no válidos: {p.get('field', '')}.",
        "no_language": "Para publicar hace falta al menos un idioma completo: título, "
                       "respuesta y una pregunta de ejemplo.",
        "bad_id": "El id debe ser palabras en minúsculas, sin acentos ni espacios, unidas por "
                  "guiones (p. ej. «plazo-de-envio»), de 64 caracteres como mucho.",
        "not_found": f"No existe la entrada «{p.get('faq_id', '')}».",
        "nothing_to_publish": "No hay cambios que publicar: edita algo o guarda un borrador.",
        "bad_revision": "Esa revisión no existe en esta entrada o no se puede restaurar.",
        "no_draft": "No hay borrador que descartar.",
        "never_published": "Esta entrada nunca se ha publicado, así que no hay versión a la "
                           "que volver: usa «Retirar» para quitarla.",
        "retired": "La entrada ya está retirada.",
    }.get(exc.code, "No se ha podido hacer.")


def conflict_message(info: dict[str, Any]) -> str:
    current = info["current"]
    when = (info.get("at") or "")[:16].replace("T", " ")
    if not info["base_found"]:
        return (f"La versión {info['base_version']} que tienes no es la de esta entrada "
                f"(ahora es la {current['version']}): recarga la entrada.")
    return (f"Otra persona ({info['by']}) cambió esta entrada mientras la editabas "
            f"({when} UTC, ahora versión {current['version']}). Abajo tienes sus cambios; "
            "los tuyos siguen en el formulario: recarga su versión, o guarda la tuya encima "
            "si quieres sustituirla.")


class KBConflictError(ConsoleError):
    """409 with the current entry and the diff of what the other person changed."""

    def __init__(self, info: dict[str, Any]) -> None:
        super().__init__(409, "conflict", conflict_message(info))
        self.info = info

    def response(self) -> Response:
        return JSONResponse({"error": self.code, "message": self.message,
                             "current": self.info["current"], "changes": self.info["changes"],
                             "by": self.info["by"], "at": self.info["at"],
                             "base_version": self.info["base_version"]}, status_code=409)


def _as_console_error(exc: editor.EditorError) -> ConsoleError:
    if isinstance(exc, editor.EditConflict):
        return KBConflictError(exc.info)
    return ConsoleError(STATUS.get(exc.code, 422), exc.code, message(exc))


# --- unit of work ----------------------------------------------------------------------------

def _live(app: Any) -> LiveKnowledgeBase:
    """The hub's view of the published KB (same index and version polling as the bot)."""
    live = getattr(app.state, "kb_live", None)
    if live is None:
        with _live_lock:
            live = getattr(app.state, "kb_live", None)
            if live is None:
                live = app.state.kb_live = LiveKnowledgeBase(app.state.settings.database_url)
    return live


def _change(request: Request, faq_id: str, expected_version: int | None, fn: Any,
            *args: Any) -> dict[str, Any]:
    """Run one editor change in its own transaction and answer with the entry as it is now.
    A race lost at the database (two saves at the same instant) is a conflict like any other
    stale version."""
    try:
        with request.app.state.sessions() as session:
            try:
                entry = fn(session, *args)
                session.commit()
                return editor.detail(session, entry)
            except editor.EditorError as exc:
                session.rollback()
                raise _as_console_error(exc) from exc
            except (KBConflict, IntegrityError):
                session.rollback()
                raise
    except KBConflict as exc:
        if expected_version is None:
            raise ConsoleError(409, "conflict", "Otra persona cambió esta entrada a la vez: "
                               "recárgala.") from exc
        with request.app.state.sessions() as session:
            raise KBConflictError(editor.conflict_info(session, faq_id,
                                                       expected_version)) from exc
    except IntegrityError as exc:  # the same id created twice at the same instant
        raise ConsoleError(409, "duplicate", f"Ya existe una entrada «{faq_id}».") from exc


def _read(request: Request, fn: Any, *args: Any) -> Any:
    with request.app.state.sessions() as session:
        try:
            return fn(session, *args)
        except editor.EditorError as exc:
            raise _as_console_error(exc) from exc


# --- pages and reading -----------------------------------------------------------------------

@router.get("/console/kb", include_in_schema=False)
async def kb_page(login: StaffLogin = Depends(admin_only)) -> Response:
    from bot.hub.console.routes import STATIC

    return FileResponse(STATIC / "kb.html", media_type="text/html; charset=utf-8")


def _list(request: Request, q: str, lang: str, tag: str, filter_: str) -> dict[str, Any]:
    verdict, scores = preview.ranking(_live(request.app), q, lang) if q.strip() else (None, None)
    with request.app.state.sessions() as session:
        rows, tags = editor.listing(session, filter_, tag, q, scores, SEARCH_RESULTS)
    return {"entries": rows, "tags": tags, "search": verdict}


@router.get("/console/api/kb/entries")
async def list_entries(request: Request, q: str = Query("", max_length=MAX_QUERY_CHARS),
                       lang: str = Query("es", max_length=2),
                       tag: str = Query("", max_length=80),
                       filter: str = Query("all", max_length=20),  # noqa: A002 - query name
                       login: StaffLogin = Depends(admin_only)) -> dict[str, Any]:
    if filter not in editor.FILTERS:
        raise ConsoleError(422, "bad_input", "Filtro no válido: " + ", ".join(editor.FILTERS))
    if lang not in LANG_NAMES:
        raise ConsoleError(422, "bad_input", "Idioma no válido: es o en.")
    return await run_in_threadpool(_list, request, q, lang, tag, filter)


@router.get("/console/api/kb/entries/{faq_id}")
async def entry(faq_id: FaqId, request: Request,
                login: StaffLogin = Depends(admin_only)) -> dict[str, Any]:
    return await run_in_threadpool(
        _read, request, lambda s, i: editor.detail(s, editor.find(s, i)), faq_id)


# --- changing --------------------------------------------------------------------------------

@router.post("/console/api/kb/entries", status_code=201)
async def create(body: CreateIn, request: Request,
                 login: StaffLogin = Depends(admin_only)) -> dict[str, Any]:
    return await run_in_threadpool(_change, request, body.id.strip().lower(), None,
                                   editor.create_draft, body.id, body.entry,
                                   login.user.username)


@router.post("/console/api/kb/entries/{faq_id}/draft")
async def save_draft(faq_id: FaqId, body: DraftIn, request: Request,
                     login: StaffLogin = Depends(admin_only)) -> dict[str, Any]:
    return await run_in_threadpool(_change, request, faq_id, body.expected_version,
                                   editor.save_draft, faq_id, body.entry, login.user.username,
                                   body.expected_version)


@router.post("/console/api/kb/entries/{faq_id}/publish")
async def publish(faq_id: FaqId, body: PublishIn, request: Request,
                  login: StaffLogin = Depends(admin_only)) -> dict[str, Any]:
    return await run_in_threadpool(_change, request, faq_id, body.expected_version,
                                   editor.publish, faq_id, login.user.username,
                                   body.expected_version, body.entry)


@router.post("/console/api/kb/entries/{faq_id}/discard")
async def discard(faq_id: FaqId, body: VersionIn, request: Request,
                  login: StaffLogin = Depends(admin_only)) -> dict[str, Any]:
    return await run_in_threadpool(_change, request, faq_id, body.expected_version,
                                   editor.discard_draft, faq_id, login.user.username,
                                   body.expected_version)


@router.post("/console/api/kb/entries/{faq_id}/retire")
async def retire(faq_id: FaqId, body: VersionIn, request: Request,
                 login: StaffLogin = Depends(admin_only)) -> dict[str, Any]:
    return await run_in_threadpool(_change, request, faq_id, body.expected_version,
                                   editor.retire, faq_id, login.user.username,
                                   body.expected_version)


@router.post("/console/api/kb/entries/{faq_id}/revert")
async def revert(faq_id: FaqId, body: RevertIn, request: Request,
                 login: StaffLogin = Depends(admin_only)) -> dict[str, Any]:
    return await run_in_threadpool(_change, request, faq_id, body.expected_version,
                                   editor.revert, faq_id, body.revision_id,
                                   login.user.username, body.expected_version)


# --- try it ----------------------------------------------------------------------------------

def _try(request: Request, body: TryIn) -> dict[str, Any]:
    draft = None
    if body.entry is not None and body.faq_id:
        try:
            draft = editor.normalise(body.entry)
        except editor.EditorError as exc:
            raise _as_console_error(exc) from exc
    return preview.try_question(_live(request.app), body.query, body.lang,
                                body.faq_id, draft)


@router.post("/console/api/kb/try")
async def try_it(body: TryIn, request: Request,
                 login: StaffLogin = Depends(admin_only)) -> dict[str, Any]:
    if not body.query.strip():
        raise ConsoleError(422, "bad_input", "Escribe una pregunta de cliente para probar.")
    if body.lang not in LANG_NAMES:
        raise ConsoleError(422, "bad_input", "Idioma no válido: es o en.")
    return await run_in_threadpool(_try, request, body)
