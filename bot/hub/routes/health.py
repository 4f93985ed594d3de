"""`GET /healthz`: 200 only when Rasa, the action server and the database all answer.

Its blocking checks run on threads of their own (``app.state.health_threads``), and Rasa's
``/status`` is asked past the admission gate: under a crowd of customers the balancer's health
check must answer in time, not wait behind their turns (it would take a working hub out of
service).
"""

from __future__ import annotations

from typing import Any

import anyio
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


def _checks(request: Request) -> tuple[dict[str, bool], list[str]]:
    settings = request.app.state.settings
    rasa = request.app.state.rasa
    rasa_down = rasa.replicas_down()  # one /status call per replica, not two
    return {
        "rasa": len(rasa_down) < len(rasa.clients),  # serving while one replica is up
        "actions": _action_server_ok(settings.action_server_url),
        "database": _database_ok(request),
    }, rasa_down


def _turns(rasa: Any) -> dict[str, int]:
    """Turns at Rasa now, waiting in line for it, and refused as busy since the start (all
    replicas together; counts only, no addresses: this answer is public)."""
    total = {"in_flight": 0, "waiting": 0, "refused": 0}
    for stats in rasa.load().values():
        for key in total:
            total[key] += stats[key]
    return total


@router.get("/healthz")
async def healthz(request: Request) -> JSONResponse:
    rasa = request.app.state.rasa
    checks, rasa_down = await anyio.to_thread.run_sync(
        _checks, request, limiter=request.app.state.health_threads)
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
                         "channels": channels, "turns": _turns(rasa)},
                        status_code=200 if ok else 503)
