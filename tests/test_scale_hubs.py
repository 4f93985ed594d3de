"""Several hubs sharing the work (issue 14, items 1–2): two real hub processes on the test
stack's database, Rasa and action server, with REDIS_URL. An agent's reply typed in hub B's
console reaches the customer's widget socket on hub A; hub A's console sees a turn served by
hub B; a customer typing in two tabs on two hubs at once gets turns that never interleave;
the per-sender Redis lock fences a holder that outlived it; each sender always goes to the
same Rasa replica and a dead replica is skipped.

Bad inputs handled: a customer sending from two tabs on two hubs at once (ordered), a Rasa
replica that refuses connections (skipped), Redis unreachable (local delivery and local
locks, one warning), a turn that outlived its lock (not written)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from contextlib import ExitStack
from typing import Any

import httpx
import pytest
import redis
import websockets
from sqlalchemy import select

from bot.db.models import Conversation, Message
from bot.db.session import session_scope
from bot.hub.bus import RedisBus
from bot.hub.rasa_client import RasaPool, RasaUnreachable
from bot.hub.sender_lock import RedisSenderLocks, SenderBusy
from bot.services import handoff as handoff_svc
from tests.conftest import Chat, free_port
from tests.hub_process import run_hub
from tests.test_console_auth import ConsoleClient, make_staff

REDIS = "redis://127.0.0.1:6379/9"


@pytest.fixture(scope="module")
def prefix() -> str:
    value = f"test-{uuid.uuid4().hex[:8]}:"
    yield value
    client = redis.Redis.from_url(REDIS)
    for key in client.scan_iter(f"{value}*"):
        client.delete(key)


@pytest.fixture(scope="module")
def hubs(stack, prefix, tmp_path_factory):
    """Hub A and hub B: the same database, Rasa and action server as the stack."""
    env = stack.env("hub")
    shared = {k: env[k] for k in ("RASA_URL", "RASA_TOKEN", "ACTION_SERVER_URL",
                                  "RASA_TRACKER_URL")}
    shared.update(REDIS_URL=REDIS, REDIS_KEY_PREFIX=prefix, SUPPORT_HOURS="mon-sun 00:00-24:00",
                  IP_RATE_BURST="1000", IP_RATE_PER_SECOND="1000", RASA_TIMEOUT="20")
    with ExitStack() as started:
        a = started.enter_context(run_hub(tmp_path_factory.mktemp("hub-a"),
                                          stack.settings.database_url, **shared))
        b = started.enter_context(run_hub(tmp_path_factory.mktemp("hub-b"),
                                          stack.settings.database_url, **shared))
        yield a, b


def ws_url(hub) -> str:
    return hub.url.replace("http://", "ws://") + "/ws"


async def _frames_until(ws, predicate, timeout: float = 30.0) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            frame = json.loads(await asyncio.wait_for(ws.recv(), deadline - time.monotonic()))
        except asyncio.TimeoutError:
            break
        seen.append(frame)
        if predicate(frame):
            return seen
    raise AssertionError(f"frame not seen within {timeout}s: {seen}")


def _escalate(db: str, sender: str) -> int:
    with session_scope(db) as s:
        conv = s.execute(select(Conversation).where(Conversation.sender == sender)
                         .order_by(Conversation.id.desc()).limit(1)).scalar_one()
        handoff_svc.escalate(s, conv, {"reason": "request_human", "summary": {}})
        return conv.id


def _release(db: str, conv_id: int) -> None:
    with session_scope(db) as s:
        conv = s.get(Conversation, conv_id)
        conv.status, conv.agent_id = "bot", None


def test_an_agent_on_hub_b_reaches_a_widget_on_hub_a(stack, hubs):
    a, b = hubs
    sender = f"two-hubs-{uuid.uuid4().hex}"

    async def scenario() -> list[dict[str, Any]]:
        async with websockets.connect(ws_url(a)) as ws:
            await ws.send(json.dumps({"type": "hello", "sender": sender, "locale": "es-ES"}))
            await _frames_until(ws, lambda f: f["type"] == "welcome")
            await ws.send(json.dumps({"type": "message", "sender": sender, "id": "m1",
                                      "text": "hola"}))
            await _frames_until(ws, lambda f: f["type"] == "messages" and f["reply_to"] == "m1")
            conv_id = await asyncio.to_thread(_escalate, stack.settings.database_url, sender)
            agent = ConsoleClient(b.url)
            try:
                assert (await asyncio.to_thread(agent.login, make_staff(
                    stack.settings.database_url))).status_code == 204
                claim = await asyncio.to_thread(
                    agent.post, f"/console/api/conversations/{conv_id}/claim")
                assert claim.status_code == 200, claim.text
                reply = await asyncio.to_thread(
                    agent.post, f"/console/api/conversations/{conv_id}/reply",
                    {"text": "Hola, soy Ana, desde el otro servidor"})
                assert reply.status_code == 200, reply.text
                return await _frames_until(ws, lambda f: f["type"] == "messages" and any(
                    "otro servidor" in m.get("text", "") for m in f["messages"]))
            finally:
                agent.close()
                await asyncio.to_thread(_release, stack.settings.database_url, conv_id)

    frames = asyncio.run(scenario())
    texts = [m.get("text", "") for f in frames if f["type"] == "messages" for m in f["messages"]]
    assert any("se ha unido" in t for t in texts), texts  # "Ana has joined", from hub B too


def test_hub_a_console_sees_a_turn_served_by_hub_b(stack, hubs):
    a, b = hubs
    chat = Chat(b.url)
    chat.say("hola")
    conv_id = _escalate(stack.settings.database_url, chat.sender)
    agent = ConsoleClient(a.url)
    events: list[dict[str, Any]] = []
    ready = threading.Event()

    def listen() -> None:
        with agent.http.stream("GET", "/console/events", timeout=30) as resp:
            ready.set()
            for line in resp.iter_lines():
                if line.startswith("data: "):
                    events.append(json.loads(line[6:]))
                    if any(e.get("type") == "message" and e.get("conversation_id") == conv_id
                           for e in events):
                        return

    try:
        assert agent.login(make_staff(stack.settings.database_url)).status_code == 204
        listener = threading.Thread(target=listen, daemon=True)
        listener.start()
        assert ready.wait(10)
        time.sleep(0.5)
        chat.say("¿hay alguien ahí?")  # served by hub B while a person owns it
        listener.join(timeout=20)
        assert any(e.get("type") == "message" and e.get("conversation_id") == conv_id
                   and "alguien" in e["item"]["text"] for e in events), events
    finally:
        agent.close()
        _release(stack.settings.database_url, conv_id)


def test_two_tabs_on_two_hubs_never_interleave(stack, hubs):
    a, b = hubs
    sender = f"two-tabs-{uuid.uuid4().hex}"
    texts = ["hola", "¿cuánto tarda un reembolso?", "¿hacéis envíos a Canarias?",
             "gracias", "¿puedo devolver algo usado?", "adiós"]
    errors: list[str] = []

    def tab(hub, mine: list[str]) -> None:
        chat = Chat(hub.url, sender=sender)
        for text in mine:
            try:
                chat.say(text)
            except AssertionError as exc:  # pragma: no cover - shown below
                errors.append(str(exc))

    threads = [threading.Thread(target=tab, args=(a, texts[0::2])),
               threading.Thread(target=tab, args=(b, texts[1::2]))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    with session_scope(stack.settings.database_url) as s:
        rows = s.execute(select(Message).join(Conversation).where(
            Conversation.sender == sender).order_by(Message.id)).scalars().all()
        turns: list[int] = []
        for row in rows:
            if row.direction == "in":
                turns.append(row.id)
            else:  # every answer follows its own question, before the next one arrives
                assert row.reply_to_id == turns[-1], [(r.direction, r.text[:30]) for r in rows]
        assert len(turns) == len(texts)


class _Frozen(RedisSenderLocks):
    """A hub that stalls mid-turn (GC pause, SIGSTOP, swapped out): its keeper thread stalls
    with it and stops extending the lock."""

    def _keep(self, lock, done) -> None:
        done.wait()


def test_the_turn_lock_fences_a_holder_that_outlived_it(prefix):
    first = _Frozen(REDIS, prefix, ttl=1.0, wait=5.0)
    second = RedisSenderLocks(REDIS, prefix, ttl=1.0, wait=5.0)  # "another hub"
    sender = f"fenced-{uuid.uuid4().hex}"
    took_over = threading.Event()
    outcome: dict[str, bool] = {}

    def other_hub() -> None:
        with second.hold(sender) as fence:
            took_over.set()
            outcome["second"] = fence.still_ours()

    with first.hold(sender) as fence:
        assert fence.still_ours()
        thread = threading.Thread(target=other_hub)
        thread.start()
        assert took_over.wait(5), "the lock never expired"  # first stalled past its ttl
        outcome["first"] = fence.still_ours()
        thread.join()
    assert outcome == {"first": False, "second": True}
    # a live holder keeps the lock past its ttl (extended), and nobody else gets in
    alive = RedisSenderLocks(REDIS, prefix, ttl=1.0, wait=0.5)
    with alive.hold(f"{sender}-3") as fence:
        time.sleep(2.0)
        with pytest.raises(SenderBusy):
            with RedisSenderLocks(REDIS, prefix, ttl=1.0, wait=0.5).hold(f"{sender}-3"):
                pass
        assert fence.still_ours()
    # a lock held for longer than another hub waits: that hub gives up cleanly
    impatient = RedisSenderLocks(REDIS, prefix, ttl=10.0, wait=0.3)
    with first.hold(f"{sender}-2"), pytest.raises(SenderBusy):
        with impatient.hold(f"{sender}-2"):
            pass


def test_each_sender_keeps_its_rasa_replica_and_a_dead_one_is_skipped(stack):
    dead = f"http://127.0.0.1:{free_port()}"
    pool = RasaPool([dead, stack.rasa_url], stack.settings.rasa_token, 10)
    try:
        senders = [f"replica-{i:04d}-{uuid.uuid4().hex[:8]}" for i in range(40)]
        first = {s: pool.order(s)[0].base_url for s in senders}
        assert set(first.values()) == {dead, stack.rasa_url}  # both get senders
        assert first == {s: pool.order(s)[0].base_url for s in senders}  # always the same
        on_dead = [s for s in senders if first[s] == dead]
        with pytest.raises(RasaUnreachable):  # the dead one alone really is unreachable
            pool.clients[0].send(on_dead[0], "hola", {})
        assert pool.healthy() and pool.replicas_down() == [dead]
        # a sender of the dead replica is served by the other one, at once
        pool.prepare_turn(on_dead[0], new_session=True, slots={"language": "es"})
        replies = pool.send(on_dead[0], "hola", {"language": "es"})
        assert replies and pool.order(on_dead[0])[0].base_url == stack.rasa_url
    finally:
        pool.close()


def test_redis_down_keeps_this_hubs_delivery_with_one_warning(caplog):
    handled: list[tuple[str, dict]] = []

    async def handler(topic: str, payload: dict) -> None:
        handled.append((topic, payload))

    async def scenario() -> None:
        bus = RedisBus(handler, f"redis://127.0.0.1:{free_port()}/0", "down:")
        await bus.start()
        for i in range(3):
            await bus.publish("widget", {"n": i})
        await bus.close()

    asyncio.run(scenario())
    assert [p["n"] for _, p in handled] == [0, 1, 2]
    warnings = [r for r in caplog.records if "Redis unreachable" in r.getMessage()]
    assert len(warnings) == 1


def test_exactly_one_hub_polls_telegram_and_another_takes_over(stack, prefix, tmp_path_factory):
    """Two hubs with the same bot token: one polls (holds the lease), the other waits; a
    message is answered once; the poller is killed outright and the other takes over."""
    from tests.fakes.bot_api import FakeBotAPI

    api = FakeBotAPI(token="777001:TEST-two-hubs", username="two_hubs_bot").start()
    env = stack.env("hub")
    shared = {k: env[k] for k in ("RASA_URL", "RASA_TOKEN", "ACTION_SERVER_URL",
                                  "RASA_TRACKER_URL")}
    shared.update(REDIS_URL=REDIS, REDIS_KEY_PREFIX=f"{prefix}tg:", RASA_TIMEOUT="20",
                  TELEGRAM_BOT_TOKEN=api.token, SUPPORT_HOURS="mon-sun 00:00-24:00",
                  TELEGRAM_API_URL=api.base_url.rsplit("/bot", 1)[0])
    try:
        with ExitStack() as started:
            hubs = [started.enter_context(run_hub(tmp_path_factory.mktemp(f"tg-{n}"),
                                                  stack.settings.database_url, **shared))
                    for n in "ab"]

            def pollers() -> list:
                return [h for h in hubs
                        if h.proc.poll() is None and "now receives" in h.log.read_text()]

            deadline = time.monotonic() + 40
            while not pollers() and time.monotonic() < deadline:
                time.sleep(0.3)
            time.sleep(2)
            assert len(pollers()) == 1, [h.log.read_text()[-500:] for h in hubs]
            leader = pollers()[0]
            api.user_sends_text(55501, "hola")
            api.wait_for_sent(55501, 1, timeout=40)
            time.sleep(2)
            first = len(api.sent(55501))
            leader.proc.kill()  # dies without releasing the lease
            other = next(h for h in hubs if h is not leader)
            deadline = time.monotonic() + 40
            while "now receives" not in other.log.read_text() and time.monotonic() < deadline:
                time.sleep(0.3)
            assert "now receives" in other.log.read_text(), other.log.read_text()[-2000:]
            api.user_sends_text(55501, "¿cuánto tarda un reembolso?")
            api.wait_for_sent(55501, first + 1, timeout=40)
            assert "Conflict" not in other.log.read_text()
    finally:
        api.stop()


def test_the_same_message_on_two_hubs_at_once_is_one_turn(stack, hubs):
    """A load balancer retrying a request on the other hub, or a widget resending after a
    reconnect: the same message id reaches both hubs at the same moment — one turn, and both
    answers are the same stored answer."""
    a, b = hubs
    sender = f"same-id-{uuid.uuid4().hex}"
    Chat(a.url, sender=sender).say("hola")
    answers: dict[str, Any] = {}
    go = threading.Event()

    def send(hub) -> None:
        go.wait()
        answers[hub.url] = httpx.post(f"{hub.url}/api/messages", timeout=60, json={
            "sender": sender, "text": "¿cuánto tarda un reembolso?", "message_id": "dup-1"})

    threads = [threading.Thread(target=send, args=(h,)) for h in (a, b)]
    for t in threads:
        t.start()
    go.set()
    for t in threads:
        t.join(timeout=90)
    assert [r.status_code for r in answers.values()] == [200, 200], \
        [r.text[:200] for r in answers.values()]
    first, second = (r.json()["messages"] for r in answers.values())
    assert first == second and first
    with session_scope(stack.settings.database_url) as s:
        inbound = s.execute(select(Message).join(Conversation).where(
            Conversation.sender == sender, Message.client_message_id == "dup-1")).scalars().all()
        assert len(inbound) == 1


def test_a_hub_killed_mid_turn_loses_nothing(stack, prefix, tmp_path_factory):
    """Hub A dies while answering; the client resends the same message to hub B, which
    answers it once (the message stored by A is retried, not duplicated)."""
    env = stack.env("hub")
    shared = {k: env[k] for k in ("RASA_URL", "RASA_TOKEN", "ACTION_SERVER_URL",
                                  "RASA_TRACKER_URL")}
    shared.update(REDIS_URL=REDIS, REDIS_KEY_PREFIX=f"{prefix}kill:", RASA_TIMEOUT="20",
                  SUPPORT_HOURS="mon-sun 00:00-24:00")
    sender = f"killed-hub-{uuid.uuid4().hex}"
    with ExitStack() as started:
        a, b = (started.enter_context(run_hub(tmp_path_factory.mktemp(f"kill-{n}"),
                                              stack.settings.database_url, **shared))
                for n in "ab")
        Chat(a.url, sender=sender).say("hola")
        body = {"sender": sender, "text": "quiero devolver un producto", "message_id": "k-1"}
        killer = threading.Timer(0.15, a.proc.kill)
        killer.start()
        try:
            httpx.post(f"{a.url}/api/messages", json=body, timeout=30)
        except httpx.TransportError:
            pass  # the connection died with the hub: the client resends
        killer.join()
        retry = httpx.post(f"{b.url}/api/messages", json=body, timeout=60)
        assert retry.status_code == 200, retry.text
        assert "ped-" in Chat.texts(retry.json()["messages"]).lower()
        with session_scope(stack.settings.database_url) as s:
            rows = s.execute(select(Message).join(Conversation).where(
                Conversation.sender == sender, Message.client_message_id == "k-1")
            ).scalars().all()
            assert len(rows) == 1 and rows[0].status == "ok"
