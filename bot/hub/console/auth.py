"""Who is calling the console: session cookie, roles, CSRF, security headers.

* The session lives in ``staff_sessions`` (see ``bot.services.staff_sessions``); the cookie
  ``pv_console`` carries its random token: HttpOnly, SameSite=Strict, Path=/console, Secure
  when the request came over https.
* Every state-changing request under /console (POST/PUT/PATCH/DELETE) must carry
  ``X-CSRF-Token`` equal to the session's token (the console's JS reads it from
  ``/console/api/me``); the login itself, which has no session yet, must come from this same
  origin (``Origin``, or ``Referer`` when a browser sends no Origin).
* Pages without a session redirect (303) to the login page; API calls answer 401 JSON; a
  role that is not enough answers 403.
* Errors are ``{"error": code, "message": text}``; every console response gets a strict CSP,
  no framing and no caching.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from bot.services import staff_sessions
from bot.services.staff_sessions import StaffLogin

log = logging.getLogger(__name__)

COOKIE_NAME = "pv_console"
COOKIE_PATH = "/console"
CSRF_HEADER = "X-CSRF-Token"
LOGIN_PATH = "/console/login"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
ROLE_RANK = {"agent": 1, "admin": 2}

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"),
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


class ConsoleError(Exception):
    """An answer other than success: ``{"error": code, "message": message}`` with ``status``."""

    def __init__(self, status: int, code: str, message: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def response(self) -> Response:
        return JSONResponse({"error": self.code, "message": self.message},
                            status_code=self.status, headers=self.headers)


class LoginRedirect(ConsoleError):
    """A page asked for without a session: go to the login page."""

    def __init__(self) -> None:
        super().__init__(303, "unauthenticated", "Inicia sesión.")

    def response(self) -> Response:
        return RedirectResponse(LOGIN_PATH, status_code=303)


def unauthenticated() -> ConsoleError:
    return ConsoleError(401, "unauthenticated", "Tu sesión ha caducado: inicia sesión de nuevo.")


def forbidden(message: str = "No tienes permiso para esto.") -> ConsoleError:
    return ConsoleError(403, "forbidden", message)


def apply_security_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


class ConsoleRoute(APIRoute):
    """Every console route: ``ConsoleError`` (from dependencies too) and invalid bodies become
    the JSON error shape, and every response gets the security headers."""

    def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                response = await handler(request)
            except ConsoleError as exc:
                response = exc.response()
            except RequestValidationError as exc:
                response = ConsoleError(422, "bad_input", _validation_message(exc)).response()
            except StarletteHTTPException as exc:
                response = ConsoleError(exc.status_code, f"http_{exc.status_code}",
                                        str(exc.detail), dict(exc.headers or {})).response()
            except Exception:  # noqa: BLE001 - the console gets JSON it can show, not a bare 500
                log.exception("console %s %s failed", request.method, request.url.path)
                response = ConsoleError(500, "internal", "Error interno: inténtalo de nuevo; "
                                        "si se repite, avisa a un administrador.").response()
            return apply_security_headers(response)

        return route


def _validation_message(exc: RequestValidationError) -> str:
    fields = [".".join(str(p) for p in err.get("loc", ()) if p != "body")
              for err in exc.errors()]
    fields = [f for f in fields if f]
    return "Datos no válidos" + (f": {', '.join(fields)}" if fields else "") + "."


# --- the session -------------------------------------------------------------------------

def is_api(request: Request) -> bool:
    path = request.url.path
    return (path.startswith("/console/api/") or path == "/console/events"
            or request.method != "GET")


def is_https(request: Request) -> bool:
    return request.url.scheme == "https"


def set_session_cookie(response: Response, request: Request, token: str) -> None:
    response.set_cookie(COOKIE_NAME, token, max_age=int(staff_sessions.SESSION_TTL.total_seconds()),
                        path=COOKIE_PATH, httponly=True, samesite="strict",
                        secure=is_https(request))


def clear_session_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(COOKIE_NAME, path=COOKIE_PATH, httponly=True, samesite="strict",
                           secure=is_https(request))


def _lookup(app: Any, token: str | None, touch: bool) -> StaffLogin | None:
    with app.state.sessions() as session:
        login = staff_sessions.lookup(session, token, touch=touch)
        session.commit()
        return login


async def session_of(request: Request, *, touch: bool = True) -> StaffLogin | None:
    """The caller's live session, or None (no CSRF or role check)."""
    token = request.cookies.get(COOKIE_NAME)
    if not token:
        return None
    return await run_in_threadpool(_lookup, request.app, token, touch)


def check_csrf(request: Request, login: StaffLogin) -> None:
    sent = request.headers.get(CSRF_HEADER, "")
    if not sent or not hmac.compare_digest(sent.encode("utf-8"),
                                           login.csrf_token.encode("utf-8")):
        raise forbidden("Falta la protección CSRF de la petición: recarga la página.")


async def current_staff(request: Request) -> StaffLogin:
    """The logged-in staff member; CSRF-checked for state-changing methods."""
    login = await session_of(request)
    if login is None:
        if is_api(request):
            raise unauthenticated()
        raise LoginRedirect()
    if request.method in UNSAFE_METHODS:
        check_csrf(request, login)
    request.state.staff = login
    return login


def require_role(role: str) -> Callable[..., Awaitable[StaffLogin]]:
    """Dependency: a session whose role is at least ``role`` (admin satisfies agent)."""
    needed = ROLE_RANK[role]

    async def dependency(login: StaffLogin = Depends(current_staff)) -> StaffLogin:
        if ROLE_RANK.get(login.user.role, 0) < needed:
            raise forbidden()
        return login

    dependency.__name__ = f"require_{role}"
    return dependency


def same_origin(request: Request) -> bool:
    """The request comes from a page of this very site (login CSRF protection), reached at a
    name we trust: an attacker's domain that resolves to us (DNS rebinding) has Origin equal
    to Host as well, so the host must also be an IP address, localhost or a configured
    public origin (``PUBLIC_ORIGINS``, the origin of ``TELEGRAM_WEBHOOK_URL``)."""
    source = request.headers.get("origin")
    if source is None:
        source = request.headers.get("referer")
    if not source or source == "null":
        return False
    parts = urlsplit(source)
    host = request.headers.get("host", "")
    if not (parts.scheme in ("http", "https") and bool(host)
            and parts.netloc.lower() == host.lower()):
        return False
    return trusted_origin(f"{parts.scheme}://{parts.netloc}", getattr(
        request.app.state, "settings", None))


def _normalized(origin: str) -> str | None:
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    default = {"http": 80, "https": 443}[parts.scheme]
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != default else "")


def configured_origins(settings: Any) -> set[str]:
    if settings is None:
        return set()
    raw = [o for o in (settings.public_origins or "").split(",") if o.strip()]
    if settings.telegram_webhook_url:
        raw.append(settings.telegram_webhook_url)
    return {n for n in (_normalized(o) for o in raw) if n}


def trusted_origin(origin: str, settings: Any) -> bool:
    normalized = _normalized(origin)
    if normalized is None:
        return False
    hostname = urlsplit(normalized).hostname or ""
    if hostname == "localhost":
        return True
    try:
        ipaddress.ip_address(hostname)
        return True  # a page served from an IP address is no rebinding of a domain
    except ValueError:
        pass
    return normalized in configured_origins(settings)
