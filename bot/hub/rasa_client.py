"""HTTP client for the Rasa server: REST channel for turns, HTTP API (token) for trackers.

The token travels in the ``X-Rasa-Token`` header (``bot.rasa_entry`` teaches Rasa to read
it), never in the URL, so no access or client log can record it. Only for a Rasa started
without ``bot.rasa_entry`` (``RASA_TOKEN_IN_QUERY=1``) is it also sent as ``?token=``.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any
from urllib.parse import quote

import httpx

TOKEN_HEADER = "X-Rasa-Token"


class RasaUnavailable(Exception):
    """Rasa did not answer, answered with an error, or answered nothing."""


class RasaUnreachable(RasaUnavailable):
    """Nothing reached Rasa (connection refused, connect timeout): another replica may take
    the request without any risk of it being processed twice."""


def _failure(exc: Exception) -> RasaUnavailable:
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
        return RasaUnreachable(str(exc))
    return RasaUnavailable(str(exc))


class RasaClient:
    def __init__(self, base_url: str, token: str, timeout: float, *,
                 token_in_query: bool = False) -> None:
        self.base_url = base_url.rstrip("/")
        self._query = {"token": token} if token_in_query else {}
        self._http = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=2.0),
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
            headers={TOKEN_HEADER: token},
        )

    def close(self) -> None:
        self._http.close()

    def _tracker_url(self, sender: str, suffix: str) -> str:
        return f"{self.base_url}/conversations/{quote(sender, safe='')}/{suffix}"

    def send(self, sender: str, text: str, metadata: dict[str, Any]) -> list[dict[str, Any]]:
        try:
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
            resp = self._http.post(
                self._tracker_url(sender, "tracker/events"),
                params={**self._query, "include_events": "NONE"},
                json=events,
            )
            resp.raise_for_status()
        except httpx.HTTPError as exc:
            raise _failure(exc) from exc

    def prepare_turn(self, sender: str, *, new_session: bool, slots: dict[str, Any]) -> None:
        """Start a fresh Rasa session (new conversation) and/or set slots, in one request.

        Starting the session ourselves, in the same request as the slots, means Rasa does
        not run its own session start afterwards and wipe them.
        """
        events: list[dict[str, Any]] = []
        if new_session:
            events += [
                {"event": "action", "name": "action_session_start"},
                {"event": "session_started"},
                {"event": "action", "name": "action_listen"},
            ]
        events += [{"event": "slot", "name": k, "value": v} for k, v in slots.items()]
        if events:
            self.append_events(sender, events)

    def trigger_intent(self, sender: str, intent: str,
                       entities: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Inject an intent (e.g. EXTERNAL_conversation_closed) and return the bot's replies."""
        try:
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
        """NLU only (no tracker change): used while Rasa is paused for a human hand-off."""
        try:
            resp = self._http.post(f"{self.base_url}/model/parse", params=self._query,
                                   json={"text": text[:1000]})
            resp.raise_for_status()
            return resp.json()
        except (httpx.HTTPError, ValueError):
            return None

    def healthy(self) -> bool:
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
    With one URL it is exactly one ``RasaClient``."""

    DOWN_SECONDS = 5.0

    def __init__(self, urls: list[str], token: str, timeout: float, *,
                 token_in_query: bool = False) -> None:
        self.clients = [RasaClient(u, token, timeout, token_in_query=token_in_query)
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

    def send(self, sender: str, text: str, metadata: dict[str, Any]) -> list[dict[str, Any]]:
        return self._call(sender, "send", sender, text, metadata)

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
                    token_in_query=settings.rasa_token_in_query)
