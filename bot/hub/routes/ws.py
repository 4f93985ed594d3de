"""`/ws`: the web widget's conversation socket (protocol in docs/widget-protocol.md).

Frames from one socket are accepted in order into a queue and answered in order by one worker,
so a fast typist never gets answers out of order; an accepted (acknowledged) message is always
answered, even when the socket closes meanwhile (the answer waits in the transcript).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.concurrency import run_in_threadpool

from bot.hub import texts
from bot.hub.channels.web import safe_send
from bot.hub.rate_limit import customer_keys
from bot.hub.routes.messages import SENDER_RE
from bot.services import conversations as convs

log = logging.getLogger(__name__)
router = APIRouter()

HELLO_TIMEOUT = 30.0
MAX_FRAME_CHARS = 64_000
MAX_QUEUE = 50  # accepted but not yet answered messages per socket
MAX_ID_CHARS = 64
NOTICE_EVERY = 30.0  # seconds between two "you're going too fast" notices


def origin_allowed(ws: WebSocket, allowed: str) -> bool:
    """Browsers send Origin on every WebSocket: same host, or a site the admin listed."""
    origin = ws.headers.get("origin")
    if not origin:
        return True  # not a browser (tests, tools); the sender id is still the bearer key
    if allowed.strip() == "*":
        return True
    host = urlsplit(origin).netloc
    if host and host == ws.headers.get("host"):
        return True
    return origin.rstrip("/") in {o.strip().rstrip("/") for o in allowed.split(",") if o.strip()}


def _load_history(app: Any, sender: str) -> tuple[str | None, list[dict[str, Any]]]:
    with app.state.sessions() as session:
        conv = convs.latest_for_sender(session, sender)
        return (conv.language if conv else None), convs.history_for_sender(session, sender)


@router.websocket("/ws")
async def widget_socket(ws: WebSocket) -> None:
    app = ws.app
    settings = app.state.settings
    if not origin_allowed(ws, settings.widget_origins):
        await ws.close(code=1008)
        return
    await ws.accept()
    try:
        hello = json.loads(await asyncio.wait_for(ws.receive_text(), HELLO_TIMEOUT))
    except WebSocketDisconnect:
        return
    except (asyncio.TimeoutError, ValueError, RuntimeError, TypeError,
            KeyError):  # KeyError: a binary frame has no text
        await _close(ws, "bad_json")
        return
    sender = hello.get("sender") if isinstance(hello, dict) else None
    if not (isinstance(hello, dict) and hello.get("type") == "hello"
            and isinstance(sender, str) and SENDER_RE.fullmatch(sender)):
        await _close(ws, "bad_sender")
        return
    locale = str(hello.get("locale") or "")[:16] or None
    language, history = await run_in_threadpool(_load_history, app, sender)
    telegram = getattr(app.state, "telegram", None)
    await safe_send(ws, {
        "type": "welcome", "sender": sender, "language": language, "history": history,
        "telegram": telegram.username if telegram is not None and telegram.ready else None,
    })
    web = app.state.web
    web.add(sender, ws)
    session = _SocketSession(app, ws, sender, locale, language)
    try:
        await session.read_loop()
    finally:
        web.remove(sender, ws)
        session.finish()


def _locale_language(locale: str | None) -> str | None:
    lang = (locale or "").split("-")[0].lower()
    return lang if lang in ("es", "en") else None


async def _close(ws: WebSocket, code: str) -> None:
    await safe_send(ws, {"type": "error", "code": code})
    try:
        await ws.close(code=4400)
    except RuntimeError:
        pass


class _SocketSession:
    def __init__(self, app: Any, ws: WebSocket, sender: str, locale: str | None,
                 language: str | None) -> None:
        s = app.state.settings
        self.app, self.ws, self.sender, self.locale = app, ws, sender, locale
        self.language = language or _locale_language(locale) or s.default_language
        # the sender's and the address's budgets, shared with every other socket, the turn
        # API and uploads (bot/hub/rate_limit.py)
        self.keys = customer_keys(sender, ws.client.host if ws.client else None)
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=MAX_QUEUE)
        self.worker = asyncio.create_task(self._work())
        self.last_notice = -NOTICE_EVERY

    async def read_loop(self) -> None:
        while True:
            try:
                raw = await self.ws.receive_text()
            except (WebSocketDisconnect, RuntimeError):
                return
            except KeyError:  # a binary frame
                await safe_send(self.ws, {"type": "error", "code": "bad_frame"})
                continue
            if len(raw) > MAX_FRAME_CHARS:
                await safe_send(self.ws, {"type": "error", "code": "bad_frame"})
                continue
            try:
                frame = json.loads(raw)
            except ValueError:
                await safe_send(self.ws, {"type": "error", "code": "bad_json"})
                continue
            if not isinstance(frame, dict):
                await safe_send(self.ws, {"type": "error", "code": "bad_frame"})
                continue
            await self._dispatch(frame)

    async def _dispatch(self, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        mid = frame.get("id")
        if frame.get("sender") != self.sender:
            # a frame for somebody else's conversation: refused, never processed
            await safe_send(self.ws, {"type": "error", "code": "foreign_session", "id": mid,
                                      "text": texts.text("foreign_session", self.language)})
            return
        if kind == "typing":
            hook = getattr(self.app.state, "on_customer_typing", None)
            if hook is not None:
                await hook(self.sender)
            return
        if kind == "language":
            lang = frame.get("language")
            if lang not in ("es", "en"):
                await safe_send(self.ws, {"type": "error", "code": "bad_frame", "id": mid})
                return
            frame = {"id": None, "text": f'/choose_language{{"language": "{lang}"}}',
                     "title": "Español" if lang == "es" else "English"}
            kind = "message"
        if kind != "message":
            await safe_send(self.ws, {"type": "error", "code": "bad_frame", "id": mid})
            return
        if mid is not None and not (isinstance(mid, str) and 0 < len(mid) <= MAX_ID_CHARS):
            await safe_send(self.ws, {"type": "error", "code": "bad_frame", "id": None})
            return
        text = frame.get("text")
        if not isinstance(text, str):
            await safe_send(self.ws, {"type": "error", "code": "bad_frame", "id": mid})
            return
        # a full queue costs no budget; otherwise one token of the sender and of the address
        wait = 0.5 if self.queue.full() else await self.app.state.limiter.hit(*self.keys)
        if wait > 0:
            # not accepted: the widget keeps it and resends it later; nothing is lost
            reply: dict[str, Any] = {"type": "rate_limited", "id": mid,
                                     "retry_after": round(max(wait, 0.5), 2)}
            if time.monotonic() - self.last_notice > NOTICE_EVERY:
                reply["text"] = texts.text("rate_limited", self.language)
                self.last_notice = time.monotonic()
            await safe_send(self.ws, reply)
            return
        self.queue.put_nowait(frame)
        if mid is not None:
            await safe_send(self.ws, {"type": "ack", "id": mid})

    async def _work(self) -> None:
        turns = self.app.state.turns
        delivery = self.app.state.delivery
        while True:
            frame = await self.queue.get()
            if frame is None:
                return
            await delivery.to_widget(self.sender, {"type": "typing", "on": True})
            metadata: dict[str, Any] = {"locale": self.locale}
            if frame.get("title"):
                metadata["button_title"] = str(frame["title"])[:200]
            try:
                result = await turns.run(
                    sender=self.sender, text=frame["text"], channel="web",
                    metadata=metadata, client_message_id=frame.get("id"))
            except Exception:  # the database itself is down
                log.exception("widget turn failed")
                await delivery.to_widget(self.sender, {"type": "typing", "on": False})
                await delivery.to_widget(self.sender, {
                    "type": "error", "code": "unavailable", "id": frame.get("id"),
                    "text": texts.text("unavailable", self.language)})
                continue
            old_language = self.language
            self.language = result.language
            await delivery.to_widget(self.sender, {"type": "typing", "on": False})
            # the answer, to this tab and every other tab of this customer on any hub, and
            # the consoles: one delivery path (bot/hub/delivery.py)
            await delivery.after_turn(
                self.sender, "web", result, reply_to=frame.get("id"),
                language_changed=(result.language != old_language
                                  or frame["text"].startswith("/choose_language")))

    def finish(self) -> None:
        """The socket is gone; what was accepted is still answered (into the transcript)."""
        try:
            self.queue.put_nowait(None)  # type: ignore[arg-type]
        except asyncio.QueueFull:
            asyncio.get_running_loop().call_soon(self._finish_later)

    def _finish_later(self) -> None:
        async def _put() -> None:
            await self.queue.put(None)  # type: ignore[arg-type]
        asyncio.create_task(_put())
