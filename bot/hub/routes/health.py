"""`GET /healthz`: 200 only when Rasa, the action server and the database all answer."""

from __future__ import annotations

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

router = APIRouter()


def _action_server_ok(webhook_url: str) -> bool:
    health_url = webhook_url.rsplit("/", 1)[0] + "/health"
    try:
        return httpx.get(health_url, timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def _database_ok(request: Request) -> bool:
    try:
        with request.app.state.sessions() as session:
            session.execute(text("SELECT 1"))
        return True
    except Exception:  # noqa: BLE001 - any failure means "not healthy"
        return False


@router.get("/healthz")
def healthz(request: Request) -> JSONResponse:
    settings = request.app.state.settings
    rasa = request.app.state.rasa
    rasa_down = rasa.replicas_down()  # one /status call per replica, not two
    checks = {
        "rasa": len(rasa_down) < len(rasa.clients),  # serving while one replica is up
        "actions": _action_server_ok(settings.action_server_url),
        "database": _database_ok(request),
    }
    ok = all(checks.values())
    telegram = request.app.state.telegram
    channels = {
        "web": True,
        # informative only: Telegram being down must not take the widget down with it
        "telegram": "off" if telegram is None else (
            ("webhook" if telegram.webhook_mode else "polling") if telegram.ready
            else "starting"),
    }
    down = [name for name, up in checks.items() if not up]
    if len(rasa.clients) > 1:  # scale profile: which Rasa servers are down (senders moved)
        channels["rasa_replicas_down"] = rasa_down
    # while the launcher restarts a process, "down" names it (and the answer is 503)
    return JSONResponse({"status": "ok" if ok else "degraded", "checks": checks, "down": down,
                         "channels": channels}, status_code=200 if ok else 503)
