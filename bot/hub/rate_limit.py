"""How fast one customer, and one client address, may talk to the hub.

One budget per key, shared by every way in — the turn API (`/api/messages`), every widget
socket (`/ws`) and photo uploads (`/api/uploads`) — so that opening ten tabs, or mixing REST
and sockets, buys nobody a bigger budget:

* ``sender:<id>``: ``WIDGET_RATE_BURST`` at once, then ``WIDGET_RATE_PER_SECOND``. A person
  typing never reaches it; a script does.
* ``ip:<address>``: ``IP_RATE_BURST`` / ``IP_RATE_PER_SECOND``. A new random sender id per
  message escapes the sender limit; the address does not change. It is generous on purpose:
  a shop, an office or a mobile carrier puts many real customers behind one address (NAT),
  and they must not slow each other down — only a machine sends that much.

Two backends with one interface (``hit``): token buckets in this process (the default, one
hub process) and Redis (``REDIS_URL``), where one Lua script takes the tokens atomically, so
several hub processes share each budget. The limiter must never cost a customer their turn:
when Redis cannot be reached, that call is decided in memory and one warning is logged.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any, Protocol

from fastapi.responses import JSONResponse

from bot.core.config import Settings

log = logging.getLogger(__name__)

Rule = tuple[float, float]  # (burst, tokens per second)
REDIS_TIMEOUT = 0.5  # seconds; a slow Redis must not slow every turn down
REDIS_RETRY_AFTER = 5.0  # seconds during which a failed Redis is not asked again


class Limiter(Protocol):
    async def hit(self, *keys: str) -> float:
        """Take one token from every key's bucket: 0.0 when allowed, otherwise the seconds
        to wait (and nothing is taken, so a refused request costs no budget)."""

    async def close(self) -> None: ...


class TokenBucket:
    """``burst`` requests at once, then ``rate`` per second."""

    def __init__(self, burst: float, rate: float) -> None:
        self.capacity = float(max(1.0, burst))
        self.rate = max(rate, 0.01)
        self.tokens = self.capacity
        self.stamp = time.monotonic()

    def refill(self) -> None:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def wait_time(self) -> float:
        """Seconds until one token is free (0: one is free now)."""
        self.refill()
        return max(0.0, (1 - self.tokens) / self.rate)

    def full(self) -> bool:
        self.refill()
        return self.tokens >= self.capacity - 1e-9


def _rule(rules: dict[str, Rule], key: str) -> Rule:
    kind = key.split(":", 1)[0]
    if kind not in rules:
        raise ValueError(f"no rate rule for key kind {kind!r}")
    return rules[kind]


class MemoryLimiter:
    """Token buckets of this process. Only touched from the event loop (no await between
    looking and taking), so a check-and-take is atomic here."""

    def __init__(self, rules: dict[str, Rule], max_keys: int = 100_000) -> None:
        self.rules = rules
        self.max_keys = max_keys
        self.buckets: dict[str, TokenBucket] = {}

    async def hit(self, *keys: str) -> float:
        return self.hit_now(*keys)

    def hit_now(self, *keys: str) -> float:
        buckets = [self._bucket(k) for k in keys]
        wait = max((b.wait_time() for b in buckets), default=0.0)
        if wait > 0:
            return wait
        for b in buckets:
            b.tokens -= 1
        return 0.0

    def _bucket(self, key: str) -> TokenBucket:
        bucket = self.buckets.get(key)
        if bucket is None:
            if len(self.buckets) >= self.max_keys:
                # forget idle keys (their buckets are full: nothing is lost); if that is not
                # enough (a flood of fresh keys), the oldest half — memory stays bounded
                self.buckets = {k: b for k, b in self.buckets.items() if not b.full()}
                if len(self.buckets) > self.max_keys // 2:
                    keep = list(self.buckets.items())[len(self.buckets) - self.max_keys // 2:]
                    self.buckets = dict(keep)
            bucket = self.buckets[key] = TokenBucket(*_rule(self.rules, key))
        return bucket

    async def close(self) -> None:
        self.buckets.clear()


# KEYS: the buckets; ARGV: burst and rate of each key, in turn. Redis's own clock, so that
# hub processes on different machines agree on the time. Nothing is taken unless every key
# has a token. Returns the wait as a string (Lua numbers become integers on the way out).
_LUA = """
pcall(redis.replicate_commands)
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local wait = 0
local tokens = {}
for i, key in ipairs(KEYS) do
  local burst = tonumber(ARGV[2 * i - 1])
  local rate = tonumber(ARGV[2 * i])
  local state = redis.call('HMGET', key, 'tokens', 'ts')
  local have = tonumber(state[1]) or burst
  local since = tonumber(state[2]) or now
  have = math.min(burst, have + math.max(0, now - since) * rate)
  tokens[i] = have
  if have < 1 then wait = math.max(wait, (1 - have) / rate) end
end
if wait > 0 then return tostring(wait) end
for i, key in ipairs(KEYS) do
  local burst = tonumber(ARGV[2 * i - 1])
  local rate = tonumber(ARGV[2 * i])
  redis.call('HSET', key, 'tokens', tostring(tokens[i] - 1), 'ts', tostring(now))
  redis.call('PEXPIRE', key, math.ceil(burst / rate * 1000) + 1000)
end
return '0'
"""


class RedisLimiter:
    """The same buckets in Redis, shared by every hub process that uses the same Redis and
    ``REDIS_KEY_PREFIX``. Falls back to ``fallback`` (in memory) while Redis fails."""

    def __init__(self, url: str, rules: dict[str, Rule], prefix: str,
                 fallback: MemoryLimiter) -> None:
        import redis.asyncio as aioredis

        self.rules = rules
        self.prefix = prefix
        self.fallback = fallback
        self.client: Any = aioredis.from_url(url, socket_connect_timeout=REDIS_TIMEOUT,
                                             socket_timeout=REDIS_TIMEOUT)
        self.script = self.client.register_script(_LUA)
        self.failing = False
        self.retry_at = 0.0

    async def hit(self, *keys: str) -> float:
        if self.failing and time.monotonic() < self.retry_at:
            return await self.fallback.hit(*keys)
        args: list[float] = []
        for key in keys:
            args.extend(_rule(self.rules, key))
        try:
            raw = await self.script(keys=[f"{self.prefix}rl:{k}" for k in keys], args=args)
            wait = float(raw.decode() if isinstance(raw, bytes) else raw)
        except Exception as exc:  # noqa: BLE001 - whatever Redis does, the turn goes on
            if not self.failing:
                log.warning("rate limiter: Redis unreachable (%s); limiting in memory, per "
                            "process, until it is back", type(exc).__name__)
            self.failing = True
            self.retry_at = time.monotonic() + REDIS_RETRY_AFTER
            return await self.fallback.hit(*keys)
        if self.failing:
            log.info("rate limiter: Redis is back")
            self.failing = False
        return wait

    async def close(self) -> None:
        closer = getattr(self.client, "aclose", None) or self.client.close
        try:
            await closer()
        except Exception:  # noqa: BLE001 - closing a broken connection
            pass


def from_settings(settings: Settings) -> Limiter:
    """The hub's limiter: Redis when ``REDIS_URL`` is set, this process's memory otherwise."""
    rules: dict[str, Rule] = {
        "sender": (settings.widget_rate_burst, settings.widget_rate_per_second),
        "ip": (settings.ip_rate_burst, settings.ip_rate_per_second),
    }
    memory = MemoryLimiter(rules)
    if not settings.redis_url:
        return memory
    return RedisLimiter(settings.redis_url, rules, settings.redis_key_prefix, memory)


def customer_keys(sender: str, client_ip: str | None) -> list[str]:
    """The budgets one request spends: its sender's and its address's."""
    return [f"sender:{sender}"] + ([f"ip:{client_ip}"] if client_ip else [])


def too_fast(wait: float) -> JSONResponse:
    """The HTTP answer to a request over its budget (REST and uploads alike)."""
    retry = round(max(wait, 0.01), 2)
    return JSONResponse({"error": "rate_limited", "retry_after": retry}, status_code=429,
                        headers={"Retry-After": str(max(1, math.ceil(wait)))})
