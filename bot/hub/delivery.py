"""One delivery path. Every way a turn can start — the turn API, a widget socket, Telegram, a
photo upload — ends in ``after_turn``; everything said to a customer outside a turn — an
agent's reply, a queue announcement, the survey after a hand-off — goes through
``to_customer``; every live event for the consoles through ``to_console``. Nothing else sends
to a widget socket or a console, and no channel module imports another.

Frames for widget sockets and console events go over the bus (bot/hub/bus.py), so with
several hubs they reach the sockets and consoles held by the other processes too. Telegram
is an outgoing API call: made once, by the hub where it happens.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from bot.hub.bus import make_bus
from bot.hub.channels.web import WebConnections

log = logging.getLogger(__name__)
MAX_EVENTS_BUFFERED = 200

TurnHook = Callable[[str, str, Any], Awaitable[None]]


@dataclass(eq=False)
class _Subscriber:
    agent_id: int
    role: str
    team: str
    queue: asyncio.Queue[dict[str, Any]] = field(
        default_factory=lambda: asyncio.Queue(MAX_EVENTS_BUFFERED))

    def wants(self, team: str | None) -> bool:
        return self.role == "admin" or team is None or team == self.team


class ConsoleFeed:
    """The consoles' live streams open on this hub (SSE), and who may see what."""

    def __init__(self) -> None:
        self._subscribers: set[_Subscriber] = set()

    def subscribe(self, agent: Any) -> asyncio.Queue[dict[str, Any]]:
        sub = _Subscriber(agent.id, agent.role, agent.team)
        self._subscribers.add(sub)
        return sub.queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        self._subscribers = {s for s in self._subscribers if s.queue is not queue}

    def fan_out(self, event: dict[str, Any], team: str | None) -> None:
        for sub in list(self._subscribers):
            if not sub.wants(team):
                continue
            try:
                sub.queue.put_nowait(event)
            except asyncio.QueueFull:  # a stalled console: it re-fetches on the next event
                pass


class Delivery:
    def __init__(self, web: WebConnections, telegram: Callable[[], Any], *,
                 redis_url: str = "", prefix: str = "postventa:") -> None:
        self.web = web
        self.telegram = telegram
        self.feed = ConsoleFeed()
        self.bus = make_bus(self._on_bus, redis_url, prefix)
        # the hand-off hub's reaction to a turn (queue events, console transcript)
        self.turn_hooks: list[TurnHook] = []

    async def start(self) -> None:
        await self.bus.start()

    async def close(self) -> None:
        await self.bus.close()

    # ---- the three ways out ---------------------------------------------------------------

    async def after_turn(self, sender: str, channel: str, result: Any, *,
                         reply_to: str | None = None, language_changed: bool = False) -> None:
        """A turn was answered in ``channel`` (the channel itself answered the one who
        asked: the HTTP response, the socket's ``reply_to``, the Telegram chat). Here: every
        other place the customer is — their other widget tabs on any hub, the widget they
        came from when they continued on Telegram — and the consoles."""
        if channel == "web":
            await self.to_widget(sender, {"type": "messages", "reply_to": reply_to,
                                          "messages": result.items()} if result.messages
                                 else None)
            if language_changed:
                await self.to_widget(sender, {"type": "language", "language": result.language})
        elif channel == "telegram" and not sender.startswith("tg-"):
            # a conversation continued from the widget: an open widget tab follows along
            items = ([result.inbound] if result.inbound else []) + result.items()
            await self.to_widget(sender, {"type": "messages", "reply_to": None,
                                          "messages": items})
        for hook in self.turn_hooks:
            try:
                await hook(sender, channel, result)
            except Exception:  # noqa: BLE001 - the customer has their answer already
                log.exception("after-turn hook failed for %s", sender)

    async def to_customer(self, sender: str, channel: str, items: list[dict[str, Any]]) -> None:
        """Outside a turn: to the customer where they are — their Telegram chat and/or their
        open widget tabs. What cannot be delivered waits in the transcript (the widget shows
        it on reconnect, Telegram retries are the channel's own)."""
        telegram = self.telegram()
        if channel == "telegram" and telegram is not None and telegram.ready:
            try:
                await telegram.deliver(sender, items)
            except Exception:  # noqa: BLE001 - kept in the transcript anyway
                log.exception("telegram delivery failed for %s", sender)
        await self.to_widget(sender, {"type": "messages", "reply_to": None, "messages": items})

    async def to_widget(self, sender: str, frame: dict[str, Any] | None) -> None:
        """A frame for every open widget socket of ``sender``, on every hub."""
        if frame is not None:
            await self.bus.publish("widget", {"sender": sender, "frame": frame})

    async def to_console(self, event: dict[str, Any], team: str | None = None) -> None:
        await self.bus.publish("console", {"event": event, "team": team})

    # ---- what arrives from the bus (this hub's own events included) -------------------------

    async def _on_bus(self, topic: str, payload: dict[str, Any]) -> None:
        if topic == "widget":
            await self.web.send(str(payload.get("sender")), payload.get("frame") or {})
        elif topic == "console":
            self.feed.fan_out(payload.get("event") or {}, payload.get("team"))
