"""Admission control in front of Rasa (issue 14, item 5): a hub keeps at most
``RASA_MAX_IN_FLIGHT`` turns at a Rasa server; the others wait in line, first come first
served, for at most ``RASA_QUEUE_TIMEOUT`` seconds, and ``RASA_TIMEOUT`` only counts once a
request is sent. Under a crowd, every customer is then answered (late, not with an apology);
a turn that waits too long is told we are busy, in the customer's language, and its message is
kept so that a resend is answered once.

The Rasa here is a local HTTP server speaking Rasa's REST protocol (webhook, tracker events,
``/status``) that takes its time on every message and counts how many requests it has at
once; the hub is the real process (``tests/hub_process.py``).

Bad inputs handled: more customers than slots (they queue, in order, none answered with an
apology although the queue is longer than RASA_TIMEOUT), a queue wait beyond its limit
(polite "busy" reply, message kept as failed, the resend answered exactly once), a health
check during the crowd (answers at once: it never waits behind turns)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import websockets
from sqlalchemy import select

from bot.db.models import Conversation, Message
from bot.db.session import session_factory
from bot.hub.rasa_client import AdmissionGate, RasaBusy
from tests.hub_process import HubProcess, run_hub

BUSY = {"es": "atendiendo a muchas personas", "en": "helping a lot of people"}


# --- the gate itself ---------------------------------------------------------------------

def test_the_gate_lets_in_at_most_its_limit_first_come_first_served():
    gate = AdmissionGate(2, queue_timeout=30)
    entered: list[int] = []
    active, most = [0], [0]
    guard = threading.Lock()

    def turn(i: int) -> None:
        with gate.slot():
            with guard:
                entered.append(i)
                active[0] += 1
                most[0] = max(most[0], active[0])
            with gate.slot():  # the same turn's next request: no second place in line
                time.sleep(0.15)
            with guard:
                active[0] -= 1

    threads = []
    for i in range(7):
        threads.append(threading.Thread(target=turn, args=(i,)))
        threads[-1].start()
        time.sleep(0.03)  # arrival order 0, 1, 2, …
    for t in threads:
        t.join(10)
    assert entered == list(range(7))
    assert most[0] == 2
    assert gate.stats() == {"in_flight": 0, "waiting": 0, "limit": 2, "refused": 0}


def test_a_wait_beyond_the_queue_timeout_is_refused_and_leaves_the_line():
    gate = AdmissionGate(1, queue_timeout=0.3)
    holding, release = threading.Event(), threading.Event()

    def holder() -> None:
        with gate.slot():
            holding.set()
            release.wait(10)

    t = threading.Thread(target=holder)
    t.start()
    holding.wait(5)
    started = time.monotonic()
    with pytest.raises(RasaBusy):
        with gate.slot():
            pass
    assert 0.25 < time.monotonic() - started < 2
    assert gate.stats() == {"in_flight": 1, "waiting": 0, "limit": 1, "refused": 1}
    release.set()
    t.join(5)
    with gate.slot():  # the slot came back
        assert gate.stats()["in_flight"] == 1
    assert AdmissionGate(0, 0).stats()["limit"] == 0  # 0: no gate at all
    with AdmissionGate(0, 0).slot():
        pass


# --- a slow Rasa and the real hub -----------------------------------------------------------

@dataclass
class SlowRasa:
    """What the fake Rasa saw: requests at once (most), messages in arrival order."""

    url: str
    delay: float
    active: int = 0
    most: int = 0
    messages: list[tuple[str, str]] = field(default_factory=list)  # (sender, text)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        with self.lock:
            self.most, self.messages = self.active, []


@contextmanager
def slow_rasa(delay: float) -> Iterator[SlowRasa]:
    """Rasa's REST webhook answering ``echo: <text>`` after ``delay`` seconds; tracker events
    and the tracker accepted at once; ``/status`` and the action server's ``/health`` for the
    hub's health check (never counted: they bypass the gate on purpose)."""
    state = SlowRasa("", delay)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _reply(self, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _counted(self, work) -> None:
            with state.lock:
                state.active += 1
                state.most = max(state.most, state.active)
            try:
                work()
            finally:
                with state.lock:
                    state.active -= 1

        def do_GET(self) -> None:  # noqa: N802 - http.server API
            if self.path.startswith("/status"):
                self._reply({"model_id": "slow-fake"})
            elif self.path.startswith("/health"):
                self._reply({"status": "ok"})
            else:  # the tracker (a retry asks whether the failed try reached it)
                self._counted(lambda: self._reply({"latest_message": {}}))

        def do_POST(self) -> None:  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0))
                              or b"null")
            if self.path.startswith("/webhooks/rest/webhook"):
                def answer() -> None:
                    with state.lock:
                        state.messages.append((body["sender"], body["message"]))
                    time.sleep(state.delay)
                    self._reply([{"recipient_id": body["sender"],
                                  "text": f"echo: {body['message']}"}])
                self._counted(answer)
            else:  # /conversations/<sender>/tracker/events
                self._counted(lambda: self._reply({}))

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield state
    finally:
        server.shutdown()


@contextmanager
def hub_with(rasa: SlowRasa, tmp_path, **env: str) -> Iterator[HubProcess]:
    with run_hub(tmp_path, RASA_URL=rasa.url, ACTION_SERVER_URL=f"{rasa.url}/webhook",
                 IP_RATE_BURST="1000", IP_RATE_PER_SECOND="1000", **env) as hub:
        rasa.reset()
        yield hub


def _sender(tag: str) -> str:
    return f"admission-{tag}-{uuid.uuid4().hex[:12]}"


def _rest_customer(url: str, sender: str, lines: list[str], out: dict[str, list[str]]) -> None:
    with httpx.Client(timeout=60) as client:
        for line in lines:
            resp = client.post(f"{url}/api/messages", json={
                "sender": sender, "text": line, "message_id": uuid.uuid4().hex})
            resp.raise_for_status()
            out.setdefault(sender, []).extend(m.get("text", "") for m in resp.json()["messages"])


async def _socket_customer(url: str, sender: str, lines: list[str]) -> list[str]:
    """Sends all its lines at once (a fast typist): the answers must come in that order."""
    async with websockets.connect(url.replace("http://", "ws://") + "/ws") as ws:
        await ws.send(json.dumps({"type": "hello", "sender": sender, "locale": "es-ES"}))
        assert json.loads(await ws.recv())["type"] == "welcome"
        for i, line in enumerate(lines):
            await ws.send(json.dumps({"type": "message", "sender": sender, "id": f"m{i}",
                                      "text": line}))
        answers: list[str] = []
        while len(answers) < len(lines):
            frame = json.loads(await asyncio.wait_for(ws.recv(), 60))
            if frame["type"] == "messages":
                answers += [m.get("text", "") for m in frame["messages"]]
        return answers


def test_a_crowd_waits_in_line_and_every_customer_is_answered_in_order(tmp_path):
    """2 slots, 9 customers, 1 s per message: turns wait far longer than RASA_TIMEOUT (2 s) in
    line and still get their answers, in order; Rasa never has more than 2 requests at once;
    /healthz answers at once all along."""
    with slow_rasa(delay=1.0) as rasa, hub_with(rasa, tmp_path, RASA_MAX_IN_FLIGHT="2",
                                                RASA_QUEUE_TIMEOUT="60",
                                                RASA_TIMEOUT="2") as hub:
        rest: dict[str, list[str]] = {}
        senders = [_sender(f"rest{i}") for i in range(8)]
        lines = {s: [f"{s[-12:]} uno", f"{s[-12:]} dos"] for s in senders}
        threads = [threading.Thread(target=_rest_customer, args=(hub.url, s, lines[s], rest))
                   for s in senders]
        socket_sender = _sender("ws")
        socket_lines = [f"{socket_sender[-12:]} {w}" for w in ("uno", "dos", "tres")]
        health: list[tuple[float, int, dict[str, int]]] = []
        done = threading.Event()

        def watch_health() -> None:
            with httpx.Client(timeout=10) as client:
                while not done.is_set():
                    started = time.monotonic()
                    resp = client.get(f"{hub.url}/healthz")
                    health.append((time.monotonic() - started, resp.status_code,
                                   resp.json()["turns"]))
                    time.sleep(0.3)

        watcher = threading.Thread(target=watch_health)
        started = time.monotonic()
        for t in [*threads, watcher]:
            t.start()
        socket_answers = asyncio.run(_socket_customer(hub.url, socket_sender, socket_lines))
        for t in threads:
            t.join(90)
        took = time.monotonic() - started
        done.set()
        watcher.join(15)

    for s in senders:
        assert rest.get(s) == [f"echo: {line}" for line in lines[s]], (s, rest.get(s))
    assert socket_answers == [f"echo: {line}" for line in socket_lines]
    assert rasa.most == 2, rasa.most  # the gate held: never more than 2 at Rasa
    assert len(rasa.messages) == 19  # each message once
    # 19 messages at 2 at a time take ≥ 9.5 s: the last ones waited well past RASA_TIMEOUT
    assert took > 9, took
    assert health and all(code == 200 for _, code, _ in health), health
    assert max(seconds for seconds, _, _ in health) < 2.0, health  # never behind the turns
    assert max(turns["waiting"] for _, _, turns in health) >= 3, health  # a line did form
    assert all(turns["in_flight"] <= 2 and turns["refused"] == 0 for _, _, turns in health)


def test_a_turn_that_waits_too_long_is_told_we_are_busy_and_its_message_kept(tmp_path):
    """1 slot held for 4 s by one customer; two others wait 1 s (RASA_QUEUE_TIMEOUT) and get
    the busy reply in their language, nothing of theirs reaching Rasa; resending the same
    message id later is answered, and Rasa sees that message once."""
    with slow_rasa(delay=4.0) as rasa, hub_with(rasa, tmp_path, RASA_MAX_IN_FLIGHT="1",
                                                RASA_QUEUE_TIMEOUT="1",
                                                RASA_TIMEOUT="10") as hub:
        first = _sender("first")
        holder = threading.Thread(target=_rest_customer,
                                  args=(hub.url, first, ["hola, soy el primero"], {}))
        holder.start()
        deadline = time.monotonic() + 10
        while not rasa.messages and time.monotonic() < deadline:  # it holds the slot now
            time.sleep(0.05)
        waiting = {"es": (_sender("es"), "hola, ¿cuánto dura la garantía?", "es-ES"),
                   "en": (_sender("en"), "hello, how long is the warranty?", "en-GB")}
        ids = {lang: uuid.uuid4().hex for lang in waiting}
        replies: dict[str, tuple[float, dict[str, Any]]] = {}

        def ask(lang: str) -> None:
            sender, text, locale = waiting[lang]
            started = time.monotonic()
            resp = httpx.post(f"{hub.url}/api/messages", timeout=30, json={
                "sender": sender, "text": text, "message_id": ids[lang],
                "metadata": {"locale": locale}})
            replies[lang] = (time.monotonic() - started, resp.json())

        askers = [threading.Thread(target=ask, args=(lang,)) for lang in waiting]
        for t in askers:
            t.start()
        for t in askers:
            t.join(30)
        health = httpx.get(f"{hub.url}/healthz", timeout=10).json()
        holder.join(30)
        for lang, (seconds, body) in replies.items():
            text = body["messages"][0]["text"]
            assert BUSY[lang] in text, (lang, text)
            assert body["messages"][0]["from"] == "system"
            assert 0.8 < seconds < 3.5, seconds  # the queue's limit, not Rasa's 4 s
        assert [s for s, _ in rasa.messages] == [first]  # nothing of theirs reached Rasa
        assert health["turns"]["refused"] == 2

        with session_factory(hub.db)() as s:
            for lang, (sender, text, _) in waiting.items():
                conv = s.execute(select(Conversation).where(
                    Conversation.sender == sender)).scalar_one()
                rows = s.execute(select(Message).where(Message.conversation_id == conv.id)
                                 .order_by(Message.id)).scalars().all()
                assert [(r.direction, r.author, r.status) for r in rows] == [
                    ("in", "customer", "failed"), ("out", "system", "ok")]
                assert rows[0].text == text and rows[0].client_message_id == ids[lang]

        # the line is free again: the same messages, resent, are answered
        for lang in waiting:
            ask(lang)
            sender, text, _ = waiting[lang]
            assert replies[lang][1]["messages"] == [{"text": f"echo: {text}"}], replies[lang]
        assert sorted(m for _, m in rasa.messages[1:]) == sorted(t for _, t, _ in
                                                                 waiting.values())
        with session_factory(hub.db)() as s:
            for sender, _, _ in waiting.values():
                inbound = s.execute(select(Message).join(Conversation).where(
                    Conversation.sender == sender, Message.direction == "in")).scalars().all()
                assert [r.status for r in inbound] == ["ok"]  # one message, answered
