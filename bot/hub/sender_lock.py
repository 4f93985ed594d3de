"""One turn at a time per customer: the transcript, the language bookkeeping and Rasa's tracker
of one conversation must never interleave, whichever hub or thread a message arrives on.

* One hub process: a lock per sender in memory (threads wait in arrival order).
* Several hubs (``REDIS_URL``): the same, then a Redis lock per sender with a short timeout,
  extended while the turn runs (a hub that dies mid-turn blocks its customer for seconds,
  not for ever) and a **fencing token**: every
  holder gets the next number of a per-sender counter, and before writing the turn's answer
  it checks the counter is still its own. A holder that stalled past the timeout, while
  another hub took the customer's next message, finds a newer token and does not write.

Redis down: the lock falls back to this process (one warning). Two hubs could then run one
customer's turns at once — the load balancer's stickiness and Rasa's own lock store still
order most of them — which we prefer to refusing every customer while Redis is away.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)


class SenderBusy(RuntimeError):
    """Another turn of this customer held the lock for longer than we wait."""


class Fence:
    """This process only: nobody else can take the turn."""

    def still_ours(self) -> bool:
        return True


class LocalSenderLocks:
    def __init__(self) -> None:
        self._locks: dict[str, list] = {}  # sender -> [lock, users]; pruned when unused
        self._guard = threading.Lock()

    @contextmanager
    def hold(self, sender: str) -> Iterator[Fence]:
        with self._guard:
            entry = self._locks.setdefault(sender, [threading.Lock(), 0])
            entry[1] += 1
        try:
            with entry[0]:
                yield Fence()
        finally:
            with self._guard:
                entry[1] -= 1
                if entry[1] == 0:
                    del self._locks[sender]

    def held(self) -> int:
        return len(self._locks)


class _RedisFence(Fence):
    def __init__(self, client, key: str, token: int) -> None:
        self.client, self.key, self.token = client, key, token

    def still_ours(self) -> bool:
        try:
            return int(self.client.get(self.key) or 0) == self.token
        except Exception:  # noqa: BLE001 - Redis gone: nobody else could have taken it
            return True


class RedisSenderLocks(LocalSenderLocks):
    def __init__(self, url: str, prefix: str, ttl: float, wait: float) -> None:
        super().__init__()
        import redis

        self._redis = redis.Redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=2.0)
        self.prefix, self.ttl, self.wait = prefix, ttl, wait
        self._warned = False

    @contextmanager
    def hold(self, sender: str) -> Iterator[Fence]:
        import redis

        with super().hold(sender):  # this process's threads queue here, not on Redis
            lock = self._redis.lock(f"{self.prefix}turn:{sender}", timeout=self.ttl,
                                    blocking_timeout=self.wait, thread_local=False)
            fence_key = f"{self.prefix}fence:{sender}"
            fence: _RedisFence | None = None
            try:
                if not lock.acquire():
                    raise SenderBusy(f"turn lock of {sender} busy for {self.wait:.0f}s")
                fence = _RedisFence(self._redis, fence_key, int(self._redis.incr(fence_key)))
                self._redis.expire(fence_key, int(self.ttl * 4) + 60)
            except redis.RedisError as exc:
                if not self._warned:
                    log.warning("turn lock: Redis unreachable (%s): turns are ordered within "
                                "this hub only until it is back", exc)
                    self._warned = True
            if fence is None:
                yield Fence()
                return
            if self._warned:
                log.info("turn lock: Redis reachable again")
                self._warned = False
            done = threading.Event()
            keeper = threading.Thread(target=self._keep, args=(lock, done), daemon=True)
            keeper.start()
            try:
                yield fence
            finally:
                done.set()
                keeper.join(timeout=2)
                try:
                    lock.release()
                except redis.RedisError as exc:  # expired (a stall beyond the ttl) or gone
                    log.warning("turn lock of %s: %s", sender, exc)

    def _keep(self, lock, done: threading.Event) -> None:
        """Extend the lock while the turn runs: the ttl can stay short, so the customer of
        a hub that died mid-turn waits seconds, not minutes, for another hub to take over."""
        while not done.wait(self.ttl / 3):
            try:
                lock.extend(self.ttl, replace_ttl=True)
            except Exception as exc:  # noqa: BLE001 - the fence tells the turn if it lost
                log.warning("turn lock: could not extend (%s)", exc)
                return


LOCK_TTL = 6.0  # seconds; extended every ttl/3 while the turn runs


def from_settings(settings) -> LocalSenderLocks:
    if not settings.redis_url:
        return LocalSenderLocks()
    # wait for a live holder as long as a turn can take: its wait in line for Rasa
    # (RASA_QUEUE_TIMEOUT), then a few Rasa calls of RASA_TIMEOUT
    return RedisSenderLocks(settings.redis_url, settings.redis_key_prefix, ttl=LOCK_TTL,
                            wait=settings.rasa_queue_timeout + settings.rasa_timeout * 3 + 15)
