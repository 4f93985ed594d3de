"""Exactly one Telegram consumer among several hubs.

Telegram hands each update to one ``getUpdates`` caller, and two pollers of one bot fight
("Conflict: terminated by other getUpdates request"). In polling mode, therefore, only the
hub holding a lease in Redis polls; it renews the lease before every poll, and when it dies
the lease runs out and another hub takes over (updates it fetched but did not confirm come
again: the database de-duplicates them by update id). Webhook mode needs none of this: any
hub may receive the webhook. Without ``REDIS_URL`` the single hub is always the leader.
"""

from __future__ import annotations

import logging
import secrets

log = logging.getLogger(__name__)

LEASE_SECONDS = 15.0
# renew only if the lease is still ours (another hub may have taken it after a stall)
_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""


class Leadership:
    """One process: always the leader."""

    async def hold(self) -> bool:
        return True

    async def close(self) -> None:
        return None


class RedisLeadership(Leadership):
    def __init__(self, url: str, key: str, lease: float = LEASE_SECONDS) -> None:
        import redis.asyncio as redis

        self.key, self.lease = key, lease
        self.me = secrets.token_hex(8)
        self._redis = redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=2.0)
        self._leading = False

    async def hold(self) -> bool:
        """Take the lease if free, renew it if ours; False when another hub holds it (or
        Redis cannot tell: better no poller for a moment than two)."""
        ms = int(self.lease * 1000)
        try:
            leading = bool(await self._redis.set(self.key, self.me, nx=True, px=ms)) or bool(
                await self._redis.eval(_RENEW, 1, self.key, self.me, ms))
        except Exception as exc:  # noqa: BLE001 - Redis away: stand down until it is back
            if self._leading:
                log.warning("telegram: cannot renew the polling lease (%s); standing down",
                            exc)
            leading = False
        if leading != self._leading:
            log.info("telegram: this hub %s the updates", "now receives" if leading
                     else "no longer receives")
            self._leading = leading
        return leading

    async def close(self) -> None:
        try:
            if self._leading:  # hand over at once instead of after the lease
                await self._redis.eval("if redis.call('get', KEYS[1]) == ARGV[1] then "
                                       "return redis.call('del', KEYS[1]) end return 0",
                                       1, self.key, self.me)
            await self._redis.close()
        except Exception:  # noqa: BLE001 - shutting down anyway
            pass


def for_telegram(settings) -> Leadership:
    if not settings.redis_url:
        return Leadership()
    bot_id = settings.telegram_bot_token.split(":", 1)[0]
    return RedisLeadership(settings.redis_url,
                           f"{settings.redis_key_prefix}telegram-poller:{bot_id}")
