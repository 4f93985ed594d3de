"""The widget's files (served by the hub, no CDN) and its hand-over link to Telegram."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, validator
from starlette.concurrency import run_in_threadpool

from bot.hub.routes.messages import SENDER_RE
from bot.services import channel_links
from bot.services import conversations as convs

router = APIRouter()
STATIC = Path(__file__).resolve().parent.parent / "static"
_FILES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/widget.js": ("widget.js", "text/javascript; charset=utf-8"),
    "/widget.css": ("widget.css", "text/css; charset=utf-8"),
}
_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _static(path: str) -> FileResponse:
    name, media = _FILES[path]
    headers = dict(_SECURITY_HEADERS)
    headers["Cache-Control"] = "no-cache"  # revalidate: a new release reaches customers at once
    if name == "index.html":
        headers["Content-Security-Policy"] = (
            "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; "
            "style-src 'self'; script-src 'self'; frame-ancestors 'none'")
    return FileResponse(STATIC / name, media_type=media, headers=headers)


@router.get("/", include_in_schema=False)
def demo_page() -> FileResponse:
    return _static("/")


@router.get("/widget.js", include_in_schema=False)
def widget_js() -> FileResponse:
    return _static("/widget.js")


@router.get("/widget.css", include_in_schema=False)
def widget_css() -> FileResponse:
    return _static("/widget.css")


class LinkIn(BaseModel):
    sender: str

    @validator("sender")
    def _sender_shape(cls, v: str) -> str:  # noqa: N805 - pydantic signature
        if not SENDER_RE.fullmatch(v):
            raise ValueError("sender must be 16-128 characters of [A-Za-z0-9_-]")
        return v


@router.post("/api/telegram-link")
async def telegram_link(body: LinkIn, request: Request) -> dict[str, Any]:
    """A one-time ``t.me/<bot>?start=<code>`` that continues this conversation on Telegram."""
    telegram = getattr(request.app.state, "telegram", None)
    if telegram is None or not telegram.ready:
        raise HTTPException(status_code=404, detail="Telegram is not configured")
    ttl = request.app.state.settings.telegram_link_ttl

    def _create() -> str:
        with request.app.state.sessions() as session:
            if convs.latest_for_sender(session, body.sender) is None:
                raise HTTPException(status_code=404, detail="no conversation for this sender")
            code = channel_links.create_link(session, body.sender, ttl)
            session.commit()
            return code

    code = await run_in_threadpool(_create)
    return {"url": f"https://t.me/{telegram.username}?start={code}", "expires_in": ttl}
