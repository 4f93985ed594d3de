"""Issue 15, limits: one rate budget per sender and per client address shared by the turn API,
every widget socket and uploads (in memory, and through Redis across hub processes), photos
only when the flow asks for one, and the disk quota — against real hub processes (uvicorn,
Rasa unreachable: every turn gets the apology, which is all a limit needs).

Client addresses are set with ``X-Forwarded-For``, which uvicorn trusts from 127.0.0.1 (a
reverse proxy on the same machine), so each test has addresses of its own.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis
import websockets
from playwright.sync_api import expect
from sqlalchemy import func, select

from bot.core.config import ROOT
from bot.db.migrate import upgrade
from bot.db.models import Attachment, Conversation, Message
from bot.db.session import session_scope
from bot.services import conversations as convs
from tests.conftest import free_port
from tests.test_integration_cases import PNG
from tests.test_widget_browser import Widget, browser  # noqa: F401 - the browser fixture

BURST, RATE = 5, 0.5  # per sender: 5 at once, then one every 2 s
IP_BURST, IP_RATE = 12, 0.5  # per address
REDIS_URL = "redis://127.0.0.1:6379/9"
PREFIX = f"test-rl-{uuid.uuid4().hex[:12]}:"  # this run's Redis keys (deleted at the end)
_ips = itertools.count(1)


def fresh_ip() -> str:
    n = next(_ips)
    return f"10.{os.getpid() % 250}.{n // 250}.{n % 250 + 1}"


def sender_id(tag: str) -> str:
    return f"rl-{tag}-{uuid.uuid4().hex}"


@dataclass
class Hub:
    url: str
    db: str
    log: Path
    proc: subprocess.Popen

    def post(self, sender: str, text: str = "hola", ip: str | None = None) -> httpx.Response:
        return httpx.post(f"{self.url}/api/messages", timeout=20,
                          json={"sender": sender, "text": text},
                          headers={"X-Forwarded-For": ip or fresh_ip()})

    def upload(self, sender: str, ip: str | None = None, data: bytes = PNG) -> httpx.Response:
        return httpx.post(f"{self.url}/api/uploads", params={"sender": sender}, content=data,
                          timeout=20, headers={"content-type": "image/png",
                                               "X-Forwarded-For": ip or fresh_ip()})

    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/ws"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def _start(work: Path, name: str, env: dict[str, str]) -> Hub:
    db = f"sqlite:///{work / f'{name}.db'}"
    upgrade(db)
    port = free_port()
    log = work / f"{name}.log"
    full_env = {**os.environ, "DATABASE_URL": db, "RASA_URL": f"http://127.0.0.1:{free_port()}",
                "RASA_TOKEN": "t" * 16, "RASA_TIMEOUT": "2", "TELEGRAM_BOT_TOKEN": "",
                "ACTION_SERVER_URL": f"http://127.0.0.1:{free_port()}/webhook",
                "UPLOAD_DIR": str(work / f"{name}-uploads"),
                "WIDGET_RATE_BURST": str(BURST), "WIDGET_RATE_PER_SECOND": str(RATE),
                "IP_RATE_BURST": str(IP_BURST), "IP_RATE_PER_SECOND": str(IP_RATE), **env}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "bot.hub.app:create_app",
             "--host", "127.0.0.1", "--port", str(port), "--no-access-log"],
            cwd=ROOT, env=full_env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)
    return Hub(f"http://127.0.0.1:{port}", db, log, proc)


def _wait(hub: Hub) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{hub.url}/healthz", timeout=5).status_code in (200, 503):
                return
        except httpx.TransportError:
            pass
        assert hub.proc.poll() is None and time.monotonic() < deadline, hub.log_text()[-3000:]
        time.sleep(0.1)


@pytest.fixture(scope="module")
def hubs(tmp_path_factory) -> Iterator[dict[str, Hub]]:
    """Five hubs started together: the main one (limits in memory), one with a tiny upload
    quota, two sharing a Redis, and one whose Redis is not there."""
    work = tmp_path_factory.mktemp("rate-limits")
    redis_env = {"REDIS_URL": REDIS_URL, "REDIS_KEY_PREFIX": PREFIX}
    started = {
        "main": _start(work, "main", {}),
        "quota": _start(work, "quota", {"UPLOAD_QUOTA_BYTES": str(len(PNG) * 3 // 2)}),
        "redis_a": _start(work, "redis_a", redis_env),
        "redis_b": _start(work, "redis_b", redis_env),
        "redis_down": _start(work, "redis_down",
                             {"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}),
    }
    try:
        for hub in started.values():
            _wait(hub)
        yield started
    finally:
        for hub in started.values():
            hub.proc.terminate()
        for hub in started.values():
            hub.proc.wait(timeout=15)
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=f"{PREFIX}*"))
        if keys:
            client.delete(*keys)
        client.close()


def allowed_at_most(burst: int, rate: float, elapsed: float) -> int:
    """What a bucket can let through in ``elapsed`` seconds from full."""
    return burst + int(rate * elapsed)


def ask_for_photo(hub: Hub, sender: str) -> None:
    """The flow asks for a photo: the bot's latest message says ``expects: photo`` (as the
    warranty form's photo question does; inserted here because Rasa is not running)."""
    with session_scope(hub.db) as s:
        conv = convs.latest_for_sender(s, sender)
        assert conv is not None
        convs.add_message(s, conv, direction="out", author="bot",
                          text="¿Tienes una foto del problema?", payload={"expects": "photo"})


def attachments(hub: Hub) -> int:
    with session_scope(hub.db) as s:
        return s.execute(select(func.count(Attachment.id))).scalar_one()


def inbound(hub: Hub, sender: str) -> int:
    """How many of the sender's messages were processed (stored)."""
    with session_scope(hub.db) as s:
        return s.execute(select(func.count(Message.id))
                         .join(Conversation, Conversation.id == Message.conversation_id)
                         .where(Conversation.sender == sender, Message.direction == "in")
                         ).scalar_one()


def assert_rate_limited(resp: httpx.Response) -> None:
    assert resp.status_code == 429, (resp.status_code, resp.text)
    body = resp.json()
    assert body["error"] == "rate_limited" and body["retry_after"] > 0
    assert int(resp.headers["retry-after"]) >= 1


# --- one budget per sender ------------------------------------------------------------------

def test_one_sender_on_five_sockets_and_rest_cannot_exceed_its_burst(hubs):
    """Bad input: one sender opening five widget sockets at once and posting to the turn API
    at the same time, every socket and request from another address (so that only the
    sender's budget applies): all of them together get the burst, not five bursts."""
    hub = hubs["main"]
    sender = sender_id("sockets")
    per_socket, rest_posts = 4, 4

    async def one_socket(n: int) -> tuple[int, int]:
        async with websockets.connect(hub.ws_url(),
                                      extra_headers={"X-Forwarded-For": fresh_ip()}) as ws:
            await ws.send(json.dumps({"type": "hello", "sender": sender, "locale": "es-ES"}))
            while json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] != "welcome":
                pass
            await ready.wait()
            ids = [f"s{n}-{i}" for i in range(per_socket)]
            for mid in ids:
                await ws.send(json.dumps({"type": "message", "id": mid, "sender": sender,
                                          "text": f"mensaje {mid}"}))
            acked = limited = 0
            while acked + limited < per_socket:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 20))
                if frame["type"] == "ack":
                    acked += 1
                elif frame["type"] == "rate_limited":
                    assert frame["id"] in ids and frame["retry_after"] > 0
                    limited += 1
            return acked, limited

    async def rest(client: httpx.AsyncClient) -> int:
        await ready.wait()
        resp = await client.post("/api/messages", json={"sender": sender, "text": "hola"},
                                 headers={"X-Forwarded-For": fresh_ip()})
        if resp.status_code == 429:
            assert_rate_limited(resp)
        else:
            assert resp.status_code == 200, resp.text
        return resp.status_code

    async def scenario() -> tuple[list[tuple[int, int]], list[int], float]:
        async with httpx.AsyncClient(base_url=hub.url, timeout=20) as client:
            sockets = [asyncio.create_task(one_socket(n)) for n in range(5)]
            posts = [asyncio.create_task(rest(client)) for _ in range(rest_posts)]
            await asyncio.sleep(0.5)  # every socket has said hello
            started = time.monotonic()
            ready.set()
            results = await asyncio.gather(*sockets)
            statuses = await asyncio.gather(*posts)
            return results, statuses, time.monotonic() - started

    ready = asyncio.Event()
    sockets, statuses, elapsed = asyncio.run(scenario())
    accepted = sum(a for a, _ in sockets) + statuses.count(200)
    limited = sum(lim for _, lim in sockets) + statuses.count(429)
    assert accepted + limited == 5 * per_socket + rest_posts
    assert BURST <= accepted <= allowed_at_most(BURST, RATE, elapsed), (accepted, elapsed)
    # what was accepted is processed (the sockets' turns finish after they closed), what was
    # refused never is
    deadline = time.monotonic() + 20
    while (stored := inbound(hub, sender)) < accepted and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.2)
    assert inbound(hub, sender) == stored == accepted


def test_rest_gets_429_with_retry_after_after_the_burst(hubs):
    """Bad input: a client posting to the turn API faster than its budget. The refused
    message is not processed; after Retry-After the next one is."""
    hub = hubs["main"]
    sender, ip = sender_id("rest"), fresh_ip()
    for _ in range(BURST):
        assert hub.post(sender, ip=ip).status_code == 200
    refused = hub.post(sender, "uno más", ip=ip)
    assert_rate_limited(refused)
    assert refused.json()["retry_after"] <= 1 / RATE
    time.sleep(refused.json()["retry_after"] + 0.05)
    assert hub.post(sender, "ahora sí", ip=ip).status_code == 200


def test_many_senders_from_one_address_hit_the_address_limit(hubs):
    """Bad input: a script inventing a new sender id for every message (each one well within
    its own budget) from one address, over REST and the socket; another address is not
    affected."""
    hub = hubs["main"]
    ip = fresh_ip()
    started = time.monotonic()
    statuses = [hub.post(sender_id("nat"), ip=ip).status_code for _ in range(IP_BURST + 4)]
    elapsed = time.monotonic() - started
    assert set(statuses) == {200, 429}
    assert IP_BURST <= statuses.count(200) <= allowed_at_most(IP_BURST, IP_RATE, elapsed)

    async def socket_from_that_address() -> dict:
        async with websockets.connect(hub.ws_url(), extra_headers={"X-Forwarded-For": ip}) as ws:
            sender = sender_id("nat-ws")
            await ws.send(json.dumps({"type": "hello", "sender": sender}))
            while json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] != "welcome":
                pass
            await ws.send(json.dumps({"type": "message", "id": "n1", "sender": sender,
                                      "text": "hola"}))
            while True:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
                if frame["type"] in ("ack", "rate_limited"):
                    return frame

    frame = asyncio.run(socket_from_that_address())
    assert frame["type"] == "rate_limited" and frame["text"]  # with the polite notice
    assert hub.post(sender_id("other-address")).status_code == 200


def test_uploads_spend_the_same_sender_budget(hubs):
    """Bad input: a sender spending its budget on uploads (photos nobody asked for, 409 —
    refused, but each one counted) and then on messages; once spent, an upload gets the
    rate limit, not a look at the photo."""
    hub = hubs["main"]
    sender = sender_id("uploads")
    assert hub.post(sender).status_code == 200
    for _ in range(BURST - 1):
        assert hub.upload(sender).status_code == 409
    assert_rate_limited(hub.post(sender))
    assert_rate_limited(hub.upload(sender))


# --- photos only when asked, the disk quota ---------------------------------------------------

def test_a_photo_nobody_asked_for_is_refused_and_an_asked_one_accepted(hubs):
    """Bad input: a photo posted while the flow asks for none (409 ``photo_not_expected``,
    nothing stored — the endpoint is no free file storage) and by a sender without any
    conversation (404). When the bot's latest message asks for a photo, the same photo is
    accepted, and only then: the next one, after the bot's answer, is refused again."""
    hub = hubs["main"]
    assert hub.upload(sender_id("stranger")).status_code == 404
    sender = sender_id("photo")
    assert hub.post(sender).status_code == 200
    before = attachments(hub)
    refused = hub.upload(sender)
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"] == "photo_not_expected"
    assert attachments(hub) == before

    ask_for_photo(hub, sender)
    ok = hub.upload(sender)
    assert ok.status_code == 200, ok.text
    assert ok.json()["messages"]  # handed to the conversation (here: the apology)
    with session_scope(hub.db) as s:
        row = s.get(Attachment, ok.json()["attachment_id"])
        assert row is not None and row.size == len(PNG)
        assert row.conversation_id == convs.latest_for_sender(s, sender).id
    again = hub.upload(sender)  # the bot's latest message no longer asks for one
    assert again.status_code == 409 and again.json()["error"] == "photo_not_expected"


def test_the_disk_quota_refuses_uploads_with_507(hubs):
    """Bad input: photos past UPLOAD_QUOTA_BYTES (here 1.5 photos; a disk filling up): the
    first is stored, the second — another customer's — gets 507 ``storage_full`` and the
    operator a warning in the log; nothing more is stored."""
    hub = hubs["quota"]
    first, second = sender_id("quota-1"), sender_id("quota-2")
    for sender in (first, second):
        assert hub.post(sender).status_code == 200
        ask_for_photo(hub, sender)
    assert hub.upload(first).status_code == 200
    full = hub.upload(second)
    assert full.status_code == 507, full.text
    assert full.json()["error"] == "storage_full"
    assert attachments(hub) == 1
    assert "upload quota is full" in hub.log_text()


# --- several hub processes ----------------------------------------------------------------------

def test_two_hub_processes_share_one_sender_budget_through_redis(hubs):
    """Bad input: one sender spreading its messages over two hub processes (as behind a
    load balancer) to get two budgets: with REDIS_URL both take from one."""
    a, b = hubs["redis_a"], hubs["redis_b"]
    sender = sender_id("redis")
    started = time.monotonic()
    statuses = [(a if i % 2 else b).post(sender).status_code for i in range(2 * BURST)]
    elapsed = time.monotonic() - started
    assert set(statuses) == {200, 429}
    assert BURST <= statuses.count(200) <= allowed_at_most(BURST, RATE, elapsed), statuses
    client = redis.Redis.from_url(REDIS_URL)
    try:
        assert client.exists(f"{PREFIX}rl:sender:{sender}")
    finally:
        client.close()
    assert "Redis unreachable" not in a.log_text() + b.log_text()


def test_an_unreachable_redis_falls_back_to_memory_with_one_warning(hubs):
    """Bad input: REDIS_URL pointing at nothing. No customer turn fails because of it: the
    limits are kept in memory, and the operator gets one warning, not one per message."""
    hub = hubs["redis_down"]
    sender, ip = sender_id("no-redis"), fresh_ip()
    for _ in range(BURST):
        resp = hub.post(sender, ip=ip)
        assert resp.status_code == 200, resp.text
        assert resp.json()["messages"]
    assert_rate_limited(hub.post(sender, ip=ip))
    log = hub.log_text()
    assert log.count("rate limiter: Redis unreachable") == 1
    # the turn lock and the bus between hubs fall back too, each saying so once
    assert log.count("turn lock: Redis unreachable") <= 1
    assert log.count("bus: Redis unreachable") <= 1


# --- what the customer sees -------------------------------------------------------------------

def test_the_widget_explains_refused_photos_politely(hubs, browser):  # noqa: F811
    """Bad input, as a customer meets it in the widget: a photo sent after spending the rate
    budget (429), one sent when the conversation no longer asks for it (409, e.g. a stale
    tab), and one past the disk quota (507): a polite notice in the page's language each."""
    hub = hubs["main"]
    w = Widget(browser, hub.url, "rate-limits-es")
    try:
        w.goto("/")
        sender = w.page.evaluate("PostventaWidget.sender")
        ip = fresh_ip()
        assert hub.post(sender, "hola", ip=ip).status_code == 200  # (the apology: no Rasa)
        ask_for_photo(hub, sender)
        w.page.reload()
        w.wait_connected()
        expect(w.page.locator(".pv-attach")).to_be_visible()
        while hub.post(sender, "otra vez", ip=ip).status_code != 429:
            pass  # the rest of the budget, spent elsewhere (another tab, a script)
        file = {"name": "foto.png", "mimeType": "image/png", "buffer": PNG}
        w.page.locator(".pv-file").set_input_files(file)
        expect(w.page.locator(".pv-notice").last).to_contain_text("Vas un poco rápido")
        time.sleep(1 / RATE)  # a token again; meanwhile the bot answered without asking
        w.page.locator(".pv-file").set_input_files(file)
        expect(w.page.locator(".pv-notice").last).to_contain_text(
            "Ahora no hace falta ninguna foto")
        assert not w.errors, w.errors
    finally:
        w.close()

    quota = hubs["quota"]
    filler = sender_id("filler")
    assert quota.post(filler).status_code == 200
    ask_for_photo(quota, filler)
    if attachments(quota) == 0:  # the quota test may have filled it already
        assert quota.upload(filler).status_code == 200
    w = Widget(browser, quota.url, "rate-limits-en", locale="en-GB")
    try:
        w.goto("/")
        sender = w.page.evaluate("PostventaWidget.sender")
        assert quota.post(sender, "hello").status_code == 200
        ask_for_photo(quota, sender)
        w.page.reload()
        w.wait_connected()
        with w.page.expect_file_chooser() as chooser:
            w.page.locator(".pv-attach").click()
        chooser.value.set_files({"name": "photo.png", "mimeType": "image/png", "buffer": PNG})
        expect(w.page.locator(".pv-notice").last).to_contain_text(
            "We can't store photos right now")
        assert not w.errors, w.errors
    finally:
        w.close()
