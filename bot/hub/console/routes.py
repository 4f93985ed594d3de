"""The agents' console: login, inbox page, JSON API over ``app.state.handoff``, live events.

Pages and static files are plain files under ``static/`` (no inline scripts: the CSP allows
scripts from this origin only). Everything the hand-off hub raises as ``HandoffError`` maps to
an HTTP status and ``{"error": code, "message": text}``.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import signal
import time
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, RedirectResponse, Response, StreamingResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from bot.hub.console.auth import (
    COOKIE_NAME,
    ConsoleError,
    ConsoleRoute,
    apply_security_headers,
    clear_session_cookie,
    current_staff,
    forbidden,
    require_role,
    same_origin,
    session_of,
    set_session_cookie,
)
from bot.services import staff_sessions
from bot.services.handoff import HandoffError
from bot.services.staff_sessions import StaffLogin

log = logging.getLogger(__name__)
router = APIRouter(route_class=ConsoleRoute)

STATIC = Path(__file__).resolve().parent / "static"
_STATIC_FILES = {
    "console.js": "text/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
    "console-api.js": "text/javascript; charset=utf-8",
    "login.js": "text/javascript; charset=utf-8",
    "privacy.js": "text/javascript; charset=utf-8",
    "people.js": "text/javascript; charset=utf-8",
    "kb.js": "text/javascript; charset=utf-8",
    "kb.css": "text/css; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
    "learn.js": "text/javascript; charset=utf-8",
}
HEARTBEAT_SECONDS = 15.0
POLL_SECONDS = 1.0  # how often a quiet event stream checks for a gone client
SESSION_CHECK_SECONDS = 5.0  # … and whether its session still exists (logout elsewhere)
MAX_LOGIN_BODY = 4096
MAX_TEXT = 4000
# a database id (INTEGER): a bigger number is refused (422) instead of overflowing the
# database driver (500)
ConversationId = Annotated[int, PathParam(ge=1, le=2**31 - 1)]
CASE_STATUSES = ("open", "in_progress", "waiting_customer", "resolved", "closed")

BAD_LOGIN = "Usuario o contraseña incorrectos."
HANDOFF_ERRORS: dict[str, tuple[int, str]] = {
    "not_found": (404, "La conversación no existe."),
    "forbidden": (403, "No tienes permiso para esta conversación."),
    "already_claimed": (409, "Otra persona ya atiende esta conversación."),
    "not_owner": (409, "Esta conversación la atiende otra persona."),
    "closed": (409, "La conversación ya está cerrada."),
    "not_waiting": (409, "La conversación ya no está esperando en la cola."),
    "bad_input": (422, "Datos no válidos."),
}

agent_only = require_role("agent")
admin_only = require_role("admin")


# --- pages and files -----------------------------------------------------------------------

def _page(name: str) -> FileResponse:
    return FileResponse(STATIC / name, media_type="text/html; charset=utf-8")


@router.get("/console/login", include_in_schema=False)
async def login_page(request: Request) -> Response:
    if await session_of(request, touch=False) is not None:
        return RedirectResponse("/console", status_code=303)
    return _page("login.html")


@router.get("/console", include_in_schema=False)
async def inbox_page(login: StaffLogin = Depends(agent_only)) -> Response:
    return _page("inbox.html")


@router.get("/console/static/{name}", include_in_schema=False)
async def static_file(name: str) -> Response:
    media = _STATIC_FILES.get(name)
    if media is None:
        raise ConsoleError(404, "not_found", "No existe.")
    return FileResponse(STATIC / name, media_type=media)


# --- login / logout ------------------------------------------------------------------------

def _login_fields(raw: bytes, content_type: str) -> tuple[str, str, bool]:
    """(username, password, is_form) of a JSON or urlencoded body."""
    content_type = content_type.split(";", 1)[0].strip().lower()
    try:
        text = raw.decode("utf-8")
        if content_type == "application/json":
            data = json.loads(text)
            if not isinstance(data, dict):
                raise ValueError("not an object")
            username, password, is_form = data.get("username"), data.get("password"), False
        elif content_type == "application/x-www-form-urlencoded":
            form = parse_qs(text, keep_blank_values=True, max_num_fields=10)
            username = (form.get("username") or [""])[0]
            password = (form.get("password") or [""])[0]
            is_form = True
        else:
            raise ConsoleError(415, "bad_input", "Envía JSON o un formulario.")
    except (UnicodeDecodeError, ValueError) as exc:
        raise ConsoleError(422, "bad_input", "Datos no válidos.") from exc
    if not isinstance(username, str) or not isinstance(password, str):
        raise ConsoleError(422, "bad_input", "Faltan el usuario o la contraseña.")
    return username, password, is_form


def _login(app: Any, username: str, password: str) -> str | None:
    with app.state.sessions() as session:
        user = staff_sessions.authenticate(session, username, password)
        token = None
        if user is not None:
            token, _ = staff_sessions.create(session, user)
        session.commit()  # failures are remembered as well
        return token


@router.post("/console/login", include_in_schema=False)
async def login(request: Request) -> Response:
    if not same_origin(request):
        raise forbidden("Inicio de sesión desde otro sitio: no permitido.")
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > MAX_LOGIN_BODY:
        raise ConsoleError(413, "bad_input", "Demasiados datos.")
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_LOGIN_BODY:
            raise ConsoleError(413, "bad_input", "Demasiados datos.")
    username, password, is_form = _login_fields(raw, request.headers.get("content-type", ""))
    token = await run_in_threadpool(_login, request.app, username, password)
    if token is None:
        log.info("console login failed for %r", username[:64])
        if is_form:
            return RedirectResponse("/console/login?error=1", status_code=303)
        raise ConsoleError(401, "invalid_credentials", BAD_LOGIN)
    response: Response = (RedirectResponse("/console", status_code=303) if is_form
                          else Response(status_code=204))
    set_session_cookie(response, request, token)
    return response


def _logout(app: Any, token: str | None) -> None:
    with app.state.sessions() as session:
        staff_sessions.delete_session(session, token)
        session.commit()


@router.post("/console/logout", include_in_schema=False)
async def logout(request: Request, login: StaffLogin = Depends(current_staff)) -> Response:
    await run_in_threadpool(_logout, request.app, request.cookies.get(COOKIE_NAME))
    response = Response(status_code=204)
    clear_session_cookie(response, request)
    return response


# --- who am I (staff management: people.py) -----------------------------------------------

@router.get("/console/api/me")
async def me(login: StaffLogin = Depends(current_staff)) -> dict[str, Any]:
    user = login.user
    return {"username": user.username, "role": user.role, "team": user.team,
            "csrf_token": login.csrf_token,
            "expires_at": login.session.expires_at.isoformat() + "Z"}


# --- the hand-off hub ------------------------------------------------------------------------

def _hub(request: Request) -> Any:
    hub = getattr(request.app.state, "handoff", None)
    if hub is None:
        raise ConsoleError(503, "unavailable", "La atención por personas no está disponible.")
    return hub


async def _call(request: Request, method: str, *args: Any, bad_input: str | None = None,
                **kwargs: Any) -> Any:
    """``await app.state.handoff.<method>(*args)``, with ``HandoffError`` → HTTP and a
    message in the console's language (``bad_input``: this action's own wording)."""
    hub = _hub(request)
    try:
        return await getattr(hub, method)(*args, **kwargs)
    except HandoffError as exc:
        status, message = HANDOFF_ERRORS.get(exc.code, (400, "No se ha podido hacer."))
        if exc.code == "bad_input" and bad_input:
            message = bad_input
        log.info("console %s on %s: %s (%s)", method, args[:1], exc.code, exc.message)
        raise ConsoleError(status, exc.code, message) from exc


def _text(value: str | None, field: str, *, required: bool = True) -> str | None:
    text = (value or "").strip()
    if not text:
        if required:
            raise ConsoleError(422, "bad_input", f"Escribe el {field}.")
        return None
    if len(text) > MAX_TEXT:
        raise ConsoleError(422, "bad_input", f"El {field} es demasiado largo "
                                             f"(máximo {MAX_TEXT} caracteres).")
    return text


class TextIn(BaseModel):
    text: str


class StatusIn(BaseModel):
    status: str


class TransferIn(BaseModel):
    username: str


class CloseIn(BaseModel):
    resolution: str | None = None


def _jsonable(data: Any) -> Any:
    return json.loads(json.dumps(data, default=str))


@router.get("/console/api/queue")
async def queue(request: Request, login: StaffLogin = Depends(agent_only)) -> Any:
    return _jsonable(await _call(request, "queue", login.user))


@router.get("/console/api/conversations/{conversation_id}")
async def detail(conversation_id: ConversationId, request: Request,
                 login: StaffLogin = Depends(agent_only)) -> Any:
    return _jsonable(await _call(request, "detail", conversation_id, login.user))


@router.post("/console/api/conversations/{conversation_id}/claim")
async def claim(conversation_id: ConversationId, request: Request,
                login: StaffLogin = Depends(agent_only)) -> Any:
    return _jsonable(await _call(request, "claim", conversation_id, login.user))


@router.post("/console/api/conversations/{conversation_id}/reply")
async def reply(conversation_id: ConversationId, body: TextIn, request: Request,
                login: StaffLogin = Depends(agent_only)) -> Any:
    text = _text(body.text, "mensaje")
    return _jsonable(await _call(request, "reply", conversation_id, login.user, text))


@router.post("/console/api/conversations/{conversation_id}/note")
async def note(conversation_id: ConversationId, body: TextIn, request: Request,
               login: StaffLogin = Depends(agent_only)) -> Any:
    text = _text(body.text, "texto de la nota")
    return _jsonable(await _call(request, "note", conversation_id, login.user, text))


@router.post("/console/api/conversations/{conversation_id}/status")
async def case_status(conversation_id: ConversationId, body: StatusIn, request: Request,
                      login: StaffLogin = Depends(agent_only)) -> Any:
    if body.status not in CASE_STATUSES:
        raise ConsoleError(422, "bad_input", "Estado no válido: " + ", ".join(CASE_STATUSES))
    return _jsonable(await _call(request, "set_case_status", conversation_id, login.user,
                                 body.status, bad_input="El caso no puede pasar a ese estado "
                                                        "desde el actual."))


@router.post("/console/api/conversations/{conversation_id}/resolution")
async def resolution(conversation_id: ConversationId, body: TextIn, request: Request,
                     login: StaffLogin = Depends(agent_only)) -> Any:
    text = _text(body.text, "texto de la resolución")
    return _jsonable(await _call(request, "set_resolution", conversation_id, login.user, text))


@router.post("/console/api/conversations/{conversation_id}/transfer")
async def transfer(conversation_id: ConversationId, body: TransferIn, request: Request,
                   login: StaffLogin = Depends(agent_only)) -> Any:
    username = _text(body.username, "usuario")
    return _jsonable(await _call(request, "transfer", conversation_id, login.user,
                                 username.lower(),
                                 bad_input=f"No hay ningún agente activo «{username}» en este "
                                           "equipo."))


@router.post("/console/api/conversations/{conversation_id}/close")
async def close(conversation_id: ConversationId, request: Request, body: CloseIn | None = None,
                login: StaffLogin = Depends(agent_only)) -> Any:
    text = _text(body.resolution if body else None, "texto de la resolución", required=False)
    return _jsonable(await _call(request, "close", conversation_id, login.user,
                                 resolution=text))


# --- live events (Server-Sent Events) ------------------------------------------------------

def server_exiting() -> bool:
    """Uvicorn is shutting down (it waits for open responses, and an event stream never ends
    by itself): its signal handler is a bound method of the server, which has ``should_exit``."""
    try:
        handler = signal.getsignal(signal.SIGTERM)
    except (ValueError, OSError):  # pragma: no cover - not the main interpreter
        return False
    server = getattr(handler, "__self__", None)
    return bool(getattr(server, "should_exit", False))


def sse(data: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(data, ensure_ascii=False, default=str)}\n\n".encode()


@router.get("/console/events")
async def events(request: Request, login: StaffLogin = Depends(agent_only)) -> Response:
    hub = _hub(request)
    subscribed = hub.subscribe(login.user)
    queue: asyncio.Queue = await subscribed if inspect.isawaitable(subscribed) else subscribed

    async def stream():
        getter: asyncio.Future | None = None
        last_write = last_check = time.monotonic()
        try:
            yield b"retry: 3000\n: connected\n\n"
            while True:
                if getter is None:
                    getter = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait({getter}, timeout=POLL_SECONDS)
                if getter in done:
                    event, getter = getter.result(), None
                    yield sse(event)
                    last_write = time.monotonic()
                    continue
                if await request.is_disconnected() or server_exiting():
                    break
                now = time.monotonic()
                if now - last_check >= SESSION_CHECK_SECONDS:
                    # a logout elsewhere, an expired or deactivated account end the stream too
                    last_check = now
                    if await session_of(request, touch=False) is None:
                        yield sse({"type": "logout"})
                        break
                if now - last_write >= HEARTBEAT_SECONDS:
                    yield b": heartbeat\n\n"
                    last_write = now
        finally:
            if getter is not None:
                getter.cancel()
            try:
                result = hub.unsubscribe(login.user, queue)
                if inspect.isawaitable(result):
                    await result
            except Exception:  # noqa: BLE001 - never let cleanup break the response
                log.exception("unsubscribe failed")

    response = StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"X-Accel-Buffering": "no"})
    return apply_security_headers(response)
