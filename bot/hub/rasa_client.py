"""HTTP client for the Rasa server: REST channel for turns, HTTP API (token) for trackers.

The token travels in the ``X-Rasa-Token`` header (``bot.rasa_entry`` teaches Rasa to read
it), never in the URL, so no access or client log can record it. Only for a Rasa started
without ``bot.rasa_entry`` (``RASA_TOKEN_IN_QUERY=1``) is it also sent as ``?token=``.

Every request to a Rasa server passes its admission gate (``AdmissionGate``): a few turns in
flight per server, the others waiting in line, in arrival order, for a bounded time.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

import httpx

from bot.rasa_entry import HUB_EVENTS_KEY

TOKEN_HEADER = "X-Rasa-Token"


class RasaUnavailable(Exception):
    """Rasa did not answer, answered with an error, or answered nothing."""


class RasaUnreachable(RasaUnavailable):
    """Nothing reached Rasa (connection refused, connect timeout): another replica may take
    the request without any risk of it being processed twice."""


class RasaBusy(RasaUnavailable):
    """The turn waited in the server's admission queue for ``RASA_QUEUE_TIMEOUT`` without
    getting in: nothing of it was sent to Rasa. Not ``RasaUnreachable``: another replica must
    not take the customer (their conversation stays on one server), the customer is told we
    are busy and the message is kept for a resend."""


class AdmissionGate:
    """At most ``limit`` turns in flight to one Rasa server from this hub; the others wait
    here in arrival order (FIFO) for at most ``queue_timeout`` seconds, then ``RasaBusy``.

    Why: a Rasa server works on every request it has at once, on one event loop and about
    one core. Given 40 turns together (the hub's worker threads) it shares the core among all
    of them, every one of them gets slow, and under a crowd they pass ``RASA_TIMEOUT``
    together: the customers get apologies for work Rasa did anyway, too late. With a few in
    flight Rasa stays busy (one turn's NLU runs while another waits for the action server),
    each turn is as fast as with no crowd, and the crowd waits here, where waiting costs no
    CPU, in the order it came. ``RASA_TIMEOUT`` (httpx's) only starts once a request is sent.

    The slot belongs to a turn, not to one request: a thread holding it makes all the
    requests of its turn (undo a failed try, slots, the message) without queueing again
    (``slot`` is re-entrant per thread). ``limit`` 0 means no gate (every request at once).
    A freed slot is handed to the oldest waiter directly, so a newcomer never overtakes it.
    """

    def __init__(self, limit: int, queue_timeout: float) -> None:
        self.limit = max(0, int(limit))
        self.queue_timeout = queue_timeout
        self._lock = threading.Lock()
        self._in_flight = 0
        self._waiters: deque[threading.Event] = deque()
        self._local = threading.local()
        self.refused = 0  # turns that gave up waiting (RasaBusy), since start

    def stats(self) -> dict[str, int]:
        """What ``/healthz`` shows: turns at Rasa now, turns waiting, turns refused so far."""
        with self._lock:
            return {"in_flight": self._in_flight, "waiting": len(self._waiters),
                    "limit": self.limit, "refused": self.refused}

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold a slot for the ``with`` block (waiting for one first); re-entrant."""
        depth = getattr(self._local, "depth", 0)
        if depth == 0 and self.limit:
            self._acquire()
        self._local.depth = depth + 1
        try:
            yield
        finally:
            self._local.depth = depth
            if depth == 0 and self.limit:
                self._release()

    def _acquire(self) -> None:
        with self._lock:
            if self._in_flight < self.limit and not self._waiters:
                self._in_flight += 1
                return
            ticket = threading.Event()
            self._waiters.append(ticket)
        if ticket.wait(self.queue_timeout):
            return  # a finishing turn handed its slot over
        with self._lock:
            if ticket.is_set():  # handed over between the timeout and taking the lock
                return
            self._waiters.remove(ticket)
            self.refused += 1
            waiting = len(self._waiters)
        raise RasaBusy(f"no turn slot in {self.queue_timeout:g}s ({self.limit} in flight, "
                       f"{waiting} more waiting)")

    def _release(self) -> None:
        with self._lock:
            if self._waiters:  # the slot goes to the oldest waiter: in_flight unchanged
                self._waiters.popleft().set()
            else:
                self._in_flight -= 1


def _failure(exc: Exception) -> RasaUnavailable:
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
        return RasaUnreachable(str(exc))
    return RasaUnavailable(str(exc))


def turn_events(new_session: bool, slots: dict[str, Any]) -> list[dict[str, Any]]:
    """What prepares a turn on the tracker: a fresh Rasa session (a new conversation) and/or
    slots. Starting the session ourselves, together with the slots, means Rasa does not run
    its own session start afterwards and wipe them."""
    events: list[dict[str, Any]] = []
    if new_session:
        events += [
            {"event": "action", "name": "action_session_start"},
            {"event": "session_started"},
            {"event": "action", "name": "action_listen"},
        ]
    events += [{"event": "slot", "name": k, "value": v} for k, v in slots.items()]
    return events


class RasaClient:
    def __init__(self, base_url: str, token: str, timeout: float, *,
                 token_in_query: bool = False, gate: AdmissionGate | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        # no gate given: nothing is held back (tools and tests that call Rasa directly)
        self.gate = gate or AdmissionGate(0, 0.0)
        self._query = {"token": token} if token_in_query else {}
        # A Rasa started through bot.rasa_entry applies a turn's preparation sent inside the
        # message (one request per turn). The token in the query is for a Rasa started
        # without it, which would ignore them: there they go first, in a request of their own.
        self.events_in_message = not token_in_query
        self._http = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=2.0),
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
            headers={TOKEN_HEADER: token},
        )

    def close(self) -> None:
        self._http.close()

    def _tracker_url(self, sender: str, suffix: str) -> str:
        return f"{self.base_url}/conversations/{quote(sender, safe='')}/{suffix}"

    def send(self, sender: str, text: str, metadata: dict[str, Any], *,
             new_session: bool = False,
             slots: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """One turn: the message, after a fresh session and/or slots when asked (see
        ``turn_events``), all applied by Rasa under the conversation's lock before NLU.
        On failure the caller cannot know whether the preparation was applied: it sends it
        again with its next try (starting a session again discards the failed try)."""
        events = turn_events(new_session, slots or {})
        try:
            with self.gate.slot():
                if events and not self.events_in_message:
                    self.append_events(sender, events)
                    events = []
                if events:
                    metadata = {**metadata, HUB_EVENTS_KEY: events}
                resp = self._http.post(
                    f"{self.base_url}/webhooks/rest/webhook",
                    json={"sender": sender, "message": text, "metadata": metadata},
                )
            resp.raise_for_status()
            data = resp.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise _failure(exc) from exc
        if not isinstance(data, list):
            raise RasaUnavailable(f"unexpected reply {data!r:.200}")
        return data

    def revert_if_latest(self, sender: str, inbound_id: int) -> bool:
        """Undo a failed turn that Rasa did record (its user message carries our
        ``inbound_id`` in the metadata), so that retrying it is not a second message: a
        crashed action loses its events but Rasa still saves the turn. ``rewind`` takes the
        tracker back to just before that message. Nothing is undone when the failed turn never
        reached the tracker (Rasa was down): the previous, good turn stays."""
        with self.gate.slot():
            try:
                resp = self._http.get(self._tracker_url(sender, "tracker"),
                                      params={**self._query, "include_events": "NONE"})
                resp.raise_for_status()
                latest = (resp.json() or {}).get("latest_message") or {}
            except (httpx.HTTPError, ValueError) as exc:
                raise _failure(exc) from exc
            if (latest.get("metadata") or {}).get("inbound_id") != inbound_id:
                return False
            # rewind also drops the action_listen before that message: put it back, or the
            # retried message would look like one the bot never waited for
            self.append_events(sender, [{"event": "rewind"},
                                        {"event": "action", "name": "action_listen"}])
            return True

    def append_events(self, sender: str, events: list[dict[str, Any]]) -> None:
        """Append events, stamped now and in order.

        Without explicit timestamps Rasa stamps them when parsing the request, which can sort
        them before the session-start events it creates itself, and the SQL tracker store
        replays events by timestamp: a language slot would then be wiped by the session start.
        """
        now = time.time()
        events = [{**e, "timestamp": now + i * 1e-6} for i, e in enumerate(events)]
        try:
            with self.gate.slot():
                resp = self._http.post(
                    self._tracker_url(sender, "tracker/events"),
                    params={**self._query, "include_events": "NONE"},
                    json=events,
                )
            resp.raise_for_status()
        except httpx.HTTPError as exc:
            raise _failure(exc) from exc

    def prepare_turn(self, sender: str, *, new_session: bool, slots: dict[str, Any]) -> None:
        """Start a fresh Rasa session (new conversation) and/or set slots, in one request of
        their own (``send`` can carry them with the message instead)."""
        events = turn_events(new_session, slots)
        if events:
            self.append_events(sender, events)

    def trigger_intent(self, sender: str, intent: str,
                       entities: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Inject an intent (e.g. EXTERNAL_conversation_closed) and return the bot's replies."""
        try:
            with self.gate.slot():
                resp = self._http.post(
                    self._tracker_url(sender, "trigger_intent"),
                    params={**self._query, "output_channel": "latest",
                            "include_events": "NONE"},
                    json={"name": intent, "entities": entities or {}},
                )
            resp.raise_for_status()
            return list(resp.json().get("messages") or [])
        except (httpx.HTTPError, ValueError) as exc:
            raise _failure(exc) from exc

    def parse(self, text: str) -> dict[str, Any] | None:
        """NLU only (no tracker change): used while Rasa is paused for a human hand-off.
        None when Rasa cannot tell now (down, or too busy: the caller goes without)."""
        try:
            with self.gate.slot():
                resp = self._http.post(f"{self.base_url}/model/parse", params=self._query,
                                       json={"text": text[:1000]})
            resp.raise_for_status()
            return resp.json()
        except (httpx.HTTPError, ValueError, RasaBusy):
            return None

    def healthy(self) -> bool:
        """Rasa's ``/status``, past the admission gate: a health check never waits in line
        behind customers' turns."""
        try:
            resp = self._http.get(
                f"{self.base_url}/status", params=self._query, timeout=2.0
            )
            return resp.status_code == 200 and bool(resp.json().get("model_id"))
        except (httpx.HTTPError, ValueError):
            return False


class RasaPool:
    """Several Rasa servers (``RASA_URLS``) sharing one tracker store. Each sender always goes
    to the same replica while it is up (rendezvous hashing: adding or losing a replica moves
    only the senders of that replica), so no two replicas ever handle one conversation at
    once — the open-source RedisLockStore has a known race between instances. A replica that
    cannot be reached is skipped for a few seconds; the sender goes to its next choice.
    With one URL it is exactly one ``RasaClient``.

    Each server has its own admission gate (``max_in_flight`` turns from this hub at once,
    ``queue_timeout`` seconds of waiting at most): one busy replica does not hold back the
    customers of another."""

    DOWN_SECONDS = 5.0

    def __init__(self, urls: list[str], token: str, timeout: float, *,
                 token_in_query: bool = False, max_in_flight: int = 0,
                 queue_timeout: float = 90.0) -> None:
        self.clients = [RasaClient(u, token, timeout, token_in_query=token_in_query,
                                   gate=AdmissionGate(max_in_flight, queue_timeout))
                        for u in urls]
        self._down_until: dict[str, float] = {}

    @property
    def base_url(self) -> str:
        return self.clients[0].base_url

    def order(self, key: str) -> list[RasaClient]:
        def weight(client: RasaClient) -> bytes:
            return hashlib.sha256(f"{client.base_url}|{key}".encode()).digest()

        ranked = sorted(self.clients, key=weight, reverse=True)
        now = time.monotonic()
        up = [c for c in ranked if self._down_until.get(c.base_url, 0.0) <= now]
        return up + [c for c in ranked if c not in up]  # all down: try them anyway

    def _call(self, key: str, method: str, *args: Any, **kwargs: Any) -> Any:
        last: RasaUnavailable | None = None
        for client in self.order(key):
            try:
                return getattr(client, method)(*args, **kwargs)
            except RasaUnreachable as exc:
                self._down_until[client.base_url] = time.monotonic() + self.DOWN_SECONDS
                last = exc
        raise last or RasaUnavailable("no Rasa server configured")

    @contextmanager
    def admitted(self, sender: str) -> Iterator[None]:
        """One slot at the sender's server for a whole turn (wait in line first; RasaBusy
        after ``queue_timeout``): the turn's requests then go out without queueing again,
        and a turn that cannot get in has sent Rasa nothing at all. Should the server turn
        out unreachable, the next choice's gate is passed per request as usual."""
        with self.order(sender)[0].gate.slot():
            yield

    def load(self) -> dict[str, dict[str, int]]:
        """Each server's gate: in flight, waiting, limit, refused (for ``/healthz``)."""
        return {c.base_url: c.gate.stats() for c in self.clients}

    def send(self, sender: str, text: str, metadata: dict[str, Any], *,
             new_session: bool = False,
             slots: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        return self._call(sender, "send", sender, text, metadata, new_session=new_session,
                          slots=slots)

    def revert_if_latest(self, sender: str, inbound_id: int) -> bool:
        return self._call(sender, "revert_if_latest", sender, inbound_id)

    def append_events(self, sender: str, events: list[dict[str, Any]]) -> None:
        self._call(sender, "append_events", sender, events)

    def prepare_turn(self, sender: str, *, new_session: bool, slots: dict[str, Any]) -> None:
        self._call(sender, "prepare_turn", sender, new_session=new_session, slots=slots)

    def trigger_intent(self, sender: str, intent: str,
                       entities: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        return self._call(sender, "trigger_intent", sender, intent, entities)

    def parse(self, text: str) -> dict[str, Any] | None:
        for client in self.order(text):
            parsed = client.parse(text)
            if parsed is not None:
                return parsed
        return None

    def replicas_down(self) -> list[str]:
        return [c.base_url for c in self.clients if not c.healthy()]

    def healthy(self) -> bool:
        """Serving: at least one replica up (the others' senders move to it)."""
        return len(self.replicas_down()) < len(self.clients)

    def close(self) -> None:
        for client in self.clients:
            client.close()


def pool_from_settings(settings: Any) -> RasaPool:
    urls = [u.strip() for u in (settings.rasa_urls or settings.rasa_url).split(",") if u.strip()]
    return RasaPool(urls, settings.rasa_token, settings.rasa_timeout,
                    token_in_query=settings.rasa_token_in_query,
                    max_in_flight=settings.rasa_max_in_flight,
                    queue_timeout=settings.rasa_queue_timeout)
