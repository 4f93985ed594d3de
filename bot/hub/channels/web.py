"""Web widget channel: who is connected (the rate limits are in bot/hub/rate_limit.py).

A customer may have the widget open in several tabs (and may continue on Telegram): every
open socket of a sender gets what any of them, or an agent, adds to the conversation.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from starlette.websockets import WebSocket, WebSocketState

log = logging.getLogger(__name__)


class WebConnections:
    """sender → open sockets. Only touched from the event loop."""

    def __init__(self) -> None:
        self._by_sender: dict[str, set[WebSocket]] = {}

    def add(self, sender: str, ws: WebSocket) -> None:
        self._by_sender.setdefault(sender, set()).add(ws)

    def remove(self, sender: str, ws: WebSocket) -> None:
        sockets = self._by_sender.get(sender)
        if sockets is not None:
            sockets.discard(ws)
            if not sockets:
                del self._by_sender[sender]

    def connected(self, sender: str) -> bool:
        return bool(self._by_sender.get(sender))

    def count(self) -> int:
        return sum(len(s) for s in self._by_sender.values())

    async def send(self, sender: str, frame: dict[str, Any],
                   exclude: Iterable[WebSocket] = ()) -> int:
        """Send a frame to every socket of ``sender``; returns how many got it."""
        skip = set(exclude)
        sent = 0
        for ws in list(self._by_sender.get(sender, ())):
            if ws in skip:
                continue
            if await safe_send(ws, frame):
                sent += 1
        return sent


async def safe_send(ws: WebSocket, frame: dict[str, Any]) -> bool:
    """A socket that went away is not an error worth more than a debug line: what it missed
    is in the transcript and comes back with the next ``welcome``."""
    if ws.client_state != WebSocketState.CONNECTED:
        return False
    try:
        await asyncio.wait_for(ws.send_json(frame), timeout=10)
        return True
    except Exception as exc:  # noqa: BLE001 - closed/broken socket of any kind
        log.debug("widget socket send failed: %s", exc)
        return False
