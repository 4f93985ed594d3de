"""What every hub process must hear: frames for a customer's open widget sockets and live events
for the agents' consoles.

One hub (the default): handled in this process. Several hubs behind a load balancer
(``REDIS_URL``): the event is handled here at once (lowest latency for the sockets this hub
holds) and published on one Redis channel; every other hub handles it for the sockets and
consoles it holds. A customer connected to hub A thus gets the reply an agent typed into hub
B's console, and every console sees every hub's events. Redis pub/sub keeps the order of one
publisher, so one conversation's frames arrive in the order they were sent.

Redis down: this hub's own sockets and consoles are still served (one warning); the others miss
live frames until it is back, and their clients catch up from the transcript on reconnect.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)

Handler = Callable[[str, dict[str, Any]], Awaitable[None]]
RECONNECT_SECONDS = 1.0


class LocalBus:
    """One process: an event is handled where it happens."""

    def __init__(self, handler: Handler) -> None:
        self._handler = handler

    async def start(self) -> None:
        return None

    async def publish(self, topic: str, payload: dict[str, Any]) -> None:
        await self._handle(topic, payload)

    async def _handle(self, topic: str, payload: dict[str, Any]) -> None:
        try:
            await self._handler(topic, payload)
        except Exception:  # noqa: BLE001 - one bad event must not break the publisher
            log.exception("bus: handling %s failed", topic)

    async def close(self) -> None:
        return None


class RedisBus(LocalBus):
    """Several hubs: handled here, and shared with the others over Redis pub/sub."""

    def __init__(self, handler: Handler, url: str, prefix: str) -> None:
        super().__init__(handler)
        import redis.asyncio as redis

        self.hub_id = secrets.token_hex(8)
        self.channel = f"{prefix}bus"
        self._redis = redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=2.0)
        self._listener: asyncio.Task | None = None
        self._warned = False

    async def start(self) -> None:
        self._listener = asyncio.create_task(self._listen())

    async def publish(self, topic: str, payload: dict[str, Any]) -> None:
        await self._handle(topic, payload)
        message = json.dumps({"hub": self.hub_id, "topic": topic, "payload": payload},
                             ensure_ascii=False, default=str)
        try:
            await self._redis.publish(self.channel, message)
            if self._warned:
                log.info("bus: Redis reachable again; other hubs hear this one")
                self._warned = False
        except Exception as exc:  # noqa: BLE001 - this hub's clients were served already
            if not self._warned:
                log.warning("bus: Redis unreachable (%s): other hubs miss live events until "
                            "it is back (their clients catch up on reconnect)", exc)
                self._warned = True

    async def _listen(self) -> None:
        """Events of the other hubs; reconnects for as long as this hub runs."""
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is None:
                        continue
                    try:
                        data = json.loads(message["data"])
                    except (TypeError, ValueError):
                        continue
                    if data.get("hub") != self.hub_id and isinstance(data.get("payload"), dict):
                        await self._handle(str(data.get("topic")), data["payload"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - Redis restarted or unreachable
                if not self._warned:
                    log.warning("bus: lost Redis (%s); reconnecting", exc)
                    self._warned = True
                await asyncio.sleep(RECONNECT_SECONDS)
            finally:
                try:
                    await pubsub.close()
                except Exception:  # noqa: BLE001
                    pass

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
        try:
            await self._redis.close()
        except Exception:  # noqa: BLE001 - closing anyway
            pass


def make_bus(handler: Handler, redis_url: str, prefix: str) -> LocalBus:
    return RedisBus(handler, redis_url, prefix) if redis_url else LocalBus(handler)
