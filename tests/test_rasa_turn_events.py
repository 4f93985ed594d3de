"""A turn's preparation (a new Rasa session, the language slot) travels with the message
(issue 14, item 6: no extra tracker round trip per turn). ``bot.rasa_entry`` teaches Rasa to
apply the events the hub puts in the message's metadata before the message, as the tracker
API would have; a plain Rasa (``RASA_TOKEN_IN_QUERY=1``) still gets them in a request of
their own, first.

Bad inputs handled: a metadata entry that is not a list or holds no valid event (ignored),
slots alone for a tracker Rasa has never seen (Rasa's own session start comes first, as with
the tracker API), a first turn that failed (its session start is sent again with the retry).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from bot.hub.rasa_client import RasaClient
from bot.rasa_entry import HUB_EVENTS_KEY, _events_from_metadata
from bot.stack import free_port
from tests.hub_process import run_hub


@contextmanager
def recording_rasa(port: int = 0) -> Iterator[tuple[str, list[tuple[str, Any]]]]:
    """Rasa's REST webhook and tracker-events endpoint, recording (path, body) in order."""
    seen: list[tuple[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802 - http.server API
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
            seen.append((self.path.split("?")[0], body))
            data = json.dumps([{"text": "ok"}] if "webhook" in self.path else {}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()


SESSION = ["action_session_start", "session_started", "action_listen"]


def _names(events: list[dict[str, Any]]) -> list[str]:
    return [e.get("name") if e["event"] == "action" else e["event"] for e in events]


def test_the_preparation_goes_with_the_message_to_our_rasa():
    with recording_rasa() as (url, seen):
        client = RasaClient(url, "secret-token", 5)
        try:
            assert client.send("s-1", "hola", {"inbound_id": 1}, new_session=True,
                               slots={"language": "es"}) == [{"text": "ok"}]
            client.send("s-1", "otra", {"inbound_id": 2})  # nothing changed: nothing extra
        finally:
            client.close()
    assert [path for path, _ in seen] == ["/webhooks/rest/webhook"] * 2
    first = seen[0][1]["metadata"]
    assert first["inbound_id"] == 1
    assert _names(first[HUB_EVENTS_KEY]) == [*SESSION, "slot"]
    assert first[HUB_EVENTS_KEY][-1] == {"event": "slot", "name": "language", "value": "es"}
    assert seen[1][1]["metadata"] == {"inbound_id": 2}


def test_a_plain_rasa_gets_the_preparation_first_in_a_request_of_its_own():
    with recording_rasa() as (url, seen):
        client = RasaClient(url, "secret-token", 5, token_in_query=True)
        try:
            client.send("s-2", "hello", {"inbound_id": 3}, slots={"language": "en"})
        finally:
            client.close()
    assert [path for path, _ in seen] == ["/conversations/s-2/tracker/events",
                                          "/webhooks/rest/webhook"]
    assert _names(seen[0][1]) == ["slot"]
    assert seen[1][1]["metadata"] == {"inbound_id": 3}


def test_a_first_turn_that_never_reached_rasa_starts_the_session_with_its_retry(tmp_path):
    port = free_port()  # nothing listens there yet: Rasa is down
    with run_hub(tmp_path, RASA_URL=f"http://127.0.0.1:{port}") as hub:
        turn = {"sender": "retry-first-turn-0001", "text": "hola", "message_id": "m-1"}
        failed = httpx.post(f"{hub.url}/api/messages", json=turn, timeout=30).json()
        assert failed["messages"][0]["from"] == "system"  # the apology
        with recording_rasa(port) as (_, seen):
            again = httpx.post(f"{hub.url}/api/messages", json=turn, timeout=30).json()
    assert again["messages"] == [{"text": "ok"}]
    assert [path for path, _ in seen] == ["/webhooks/rest/webhook"]
    assert _names(seen[0][1]["metadata"][HUB_EVENTS_KEY]) == [*SESSION, "slot"]


# --- Rasa's side (bot.rasa_entry), on Rasa's own tracker ----------------------------------

@pytest.fixture(scope="module")
def domain():
    from rasa.shared.core.domain import Domain

    return Domain.from_yaml("""
version: "3.1"
slots:
  language:
    type: categorical
    values: [es, en]
    influence_conversation: false
    mappings: [{type: custom}]
session_config:
  session_expiration_time: 0
""")


class _Processor:
    """The part of Rasa's MessageProcessor the wrapper uses; its own session check records
    when it ran and starts a session on an empty tracker, as Rasa's does."""

    def __init__(self, domain) -> None:
        self.domain = domain
        self.rasa_checks: list[int] = []

    async def own_check(self, tracker, output_channel, metadata=None) -> None:
        from rasa.shared.core.events import ActionExecuted, SessionStarted

        self.rasa_checks.append(len(tracker.events))
        assert not (metadata or {}).get(HUB_EVENTS_KEY)  # never seen by Rasa's own code
        if not tracker.applied_events():
            tracker.update(ActionExecuted("action_session_start"), self.domain)
            tracker.update(SessionStarted(), self.domain)
            tracker.update(ActionExecuted("action_listen"), self.domain)


def _run(domain, metadata: dict[str, Any] | None, tracker=None):
    from rasa.shared.core.trackers import DialogueStateTracker

    tracker = tracker or DialogueStateTracker("s-3", domain.slots)
    processor = _Processor(domain)
    wrapped = _events_from_metadata(_Processor.own_check)
    asyncio.run(wrapped(processor, tracker, None, metadata))
    return tracker, processor


def _kinds(tracker) -> list[str]:
    return [getattr(e, "action_name", None) or type(e).__name__ for e in tracker.events]


def test_rasa_applies_the_hubs_session_start_and_slot_before_the_message(domain):
    events = [{"event": "action", "name": "action_session_start"},
              {"event": "session_started"}, {"event": "action", "name": "action_listen"},
              {"event": "slot", "name": "language", "value": "en"}]
    metadata = {"inbound_id": 7, HUB_EVENTS_KEY: events}
    tracker, processor = _run(domain, metadata)
    # the hub's session start replaces Rasa's own (which then finds nothing to do)
    assert _kinds(tracker) == ["action_session_start", "SessionStarted", "action_listen",
                               "SlotSet"]
    assert tracker.get_slot("language") == "en"
    assert processor.rasa_checks == [4]
    assert metadata == {"inbound_id": 7}  # the stored user message carries what it did
    stamps = [e.timestamp for e in tracker.events]
    assert stamps == sorted(stamps) and len(set(stamps)) == 4  # replayed in this order


def test_slots_alone_on_an_unknown_tracker_come_after_rasas_session_start(domain):
    tracker, processor = _run(domain, {HUB_EVENTS_KEY: [
        {"event": "slot", "name": "language", "value": "es"}]})
    assert _kinds(tracker) == ["action_session_start", "SessionStarted", "action_listen",
                               "SlotSet"]
    assert tracker.get_slot("language") == "es"


@pytest.mark.parametrize("junk", ["en", [], [{"event": "no-such-event"}], [42], None])
def test_junk_under_the_key_changes_nothing(domain, junk):
    tracker, processor = _run(domain, {"inbound_id": 1, HUB_EVENTS_KEY: junk})
    assert _kinds(tracker) == ["action_session_start", "SessionStarted", "action_listen"]
    assert tracker.get_slot("language") is None


def test_without_the_key_rasa_runs_as_before(domain):
    tracker, processor = _run(domain, None)
    assert processor.rasa_checks == [0]
    assert _kinds(tracker) == ["action_session_start", "SessionStarted", "action_listen"]
