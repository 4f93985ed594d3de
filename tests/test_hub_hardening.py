"""What a stranger can send to the hub (issue 15), against the hub as a real process: huge and
endless bodies, security headers, the API description, malformed sender ids and conversation
ids, a binary first frame on `/ws`, DNS rebinding of the console login, and parallel login
guesses against the lockout."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import pytest
import websockets
from argon2 import PasswordHasher
from sqlalchemy import select

from bot.core.config import ROOT
from bot.db.migrate import upgrade
from bot.db.models import StaffUser, utcnow
from bot.db.session import session_factory, session_scope
from bot.services import staff_sessions
from tests.conftest import free_port
from tests.test_console_auth import PASSWORD, ConsoleClient, make_staff, staff_row

MB = 1_000_000


@dataclass
class Hub:
    url: str
    port: int
    db: str
    log: Path
    proc: subprocess.Popen

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0


@pytest.fixture(scope="module")
def hub(tmp_path_factory) -> Iterator[Hub]:
    """The hub alone (Rasa unreachable: turns get the apology), SQLite, its log in a file."""
    work = tmp_path_factory.mktemp("hardening")
    db = f"sqlite:///{work / 'hub.db'}"
    upgrade(db)
    port = free_port()
    log = work / "hub.log"
    env = {**os.environ, "DATABASE_URL": db, "RASA_URL": f"http://127.0.0.1:{free_port()}",
           "RASA_TOKEN": "t" * 16, "RASA_TIMEOUT": "2", "TELEGRAM_BOT_TOKEN": "",
           "ACTION_SERVER_URL": f"http://127.0.0.1:{free_port()}/webhook",
           "PUBLIC_ORIGINS": f"http://console.example:{port}"}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "bot.hub.app:create_app",
             "--host", "127.0.0.1", "--port", str(port), "--no-access-log"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=5).status_code in (200, 503):
                break
        except httpx.TransportError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.2)
    try:
        yield Hub(url, port, db, log, proc)
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def _alive(hub: Hub) -> None:
    assert hub.proc.poll() is None
    assert httpx.get(f"{hub.url}/healthz", timeout=10).status_code == 503  # Rasa is absent
    resp = httpx.post(f"{hub.url}/api/messages", timeout=20,
                      json={"sender": "still-alive-000000001", "text": "hola"})
    assert resp.status_code == 200 and resp.json()["messages"]


# --- body size ---------------------------------------------------------------------------------

def test_a_20_mb_json_body_is_refused_by_its_length(hub):
    before = hub.rss_mb()
    text = "a" * (20 * MB)
    body = json.dumps({"sender": "big-body-sender-0001", "text": text}).encode()
    for path in ("/api/messages", "/api/telegram-link", "/telegram/webhook", "/console/login",
                 "/nowhere"):
        resp = httpx.post(f"{hub.url}{path}", content=body, timeout=60,
                          headers={"content-type": "application/json"})
        assert resp.status_code == 413, (path, resp.status_code, resp.text[:200])
        assert resp.headers["content-type"] == "application/json"
        assert resp.json()["error"] == "too_large"
    assert hub.rss_mb() - before < 60, (before, hub.rss_mb())
    _alive(hub)


def test_a_chunked_body_without_length_is_cut_while_streaming(hub):
    before = hub.rss_mb()
    sent = {"bytes": 0}

    def endless_json() -> Iterator[bytes]:
        yield b'{"sender": "chunked-sender-000001", "text": "'
        for _ in range(20 * 16):  # 20 MB in 64 KB chunks
            sent["bytes"] += 65536
            yield b"a" * 65536
        yield b'"}'

    for path in ("/api/messages", "/api/uploads?sender=chunked-sender-000001"):
        resp = httpx.post(f"{hub.url}{path}", content=endless_json(), timeout=60,
                          headers={"content-type": "application/json"})
        assert resp.status_code == 413, (path, resp.status_code, resp.text[:200])
        assert "content-length" not in resp.request.headers  # really chunked
        assert resp.json()["error"] == "too_large"
    assert hub.rss_mb() - before < 60, (before, hub.rss_mb())
    _alive(hub)
    # an ordinary body of the same route is untouched
    ok = httpx.post(f"{hub.url}/api/messages", timeout=20,
                    content=iter([b'{"sender": "chunked-sender-000002", ', b'"text": "hola"}']),
                    headers={"content-type": "application/json"})
    assert ok.status_code == 200, ok.text


# --- headers, API description, malformed ids ----------------------------------------------------

def test_security_headers_on_every_response(hub):
    responses = [
        httpx.get(f"{hub.url}/healthz"),
        httpx.get(f"{hub.url}/widget.js"),
        httpx.get(f"{hub.url}/"),
        httpx.get(f"{hub.url}/console/login"),
        httpx.get(f"{hub.url}/no-such-page"),
        httpx.post(f"{hub.url}/api/messages", json={"sender": "x"}),
    ]
    for resp in responses:
        where = (resp.request.url.path, resp.status_code)
        assert resp.headers["x-content-type-options"] == "nosniff", where
        assert resp.headers["x-frame-options"] == "DENY", where
        assert "frame-ancestors 'none'" in resp.headers["content-security-policy"], where
        assert resp.headers.get("referrer-policy"), where
    # pages keep their own policy
    assert "script-src 'self'" in responses[2].headers["content-security-policy"]
    assert "script-src 'self'" in responses[3].headers["content-security-policy"]


def test_no_public_api_description(hub):
    for path in ("/openapi.json", "/docs", "/redoc", "/docs/oauth2-redirect"):
        assert httpx.get(f"{hub.url}{path}").status_code == 404, path


def test_a_sender_with_a_trailing_newline_is_refused_everywhere(hub):
    sender = "newline-sender-00001\n"
    resp = httpx.post(f"{hub.url}/api/messages", json={"sender": sender, "text": "hola"})
    assert resp.status_code == 422
    resp = httpx.post(f"{hub.url}/api/uploads", params={"sender": sender}, content=b"x",
                      headers={"content-type": "image/png"})
    assert resp.status_code == 422
    resp = httpx.post(f"{hub.url}/api/telegram-link", json={"sender": sender})
    assert resp.status_code == 422

    async def hello() -> dict:
        async with websockets.connect(hub.url.replace("http", "ws") + "/ws") as ws:
            await ws.send(json.dumps({"type": "hello", "sender": sender}))
            return json.loads(await asyncio.wait_for(ws.recv(), 10))

    assert asyncio.run(hello())["code"] == "bad_sender"


def test_a_binary_first_frame_on_the_socket_closes_it_cleanly(hub):
    before = hub.log.read_text(errors="replace")

    async def scenario() -> tuple[dict, int | None]:
        async with websockets.connect(hub.url.replace("http", "ws") + "/ws") as ws:
            await ws.send(b"\x00\x01binary hello")
            frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 10)
            return frame, ws.close_code

    frame, code = asyncio.run(scenario())
    assert frame == {"type": "error", "code": "bad_json"}
    assert code == 4400
    time.sleep(0.5)
    new = hub.log.read_text(errors="replace")[len(before):]
    assert "Traceback" not in new and "Exception in ASGI" not in new, new[-3000:]


def test_a_huge_conversation_id_is_a_client_error(hub):
    client = ConsoleClient(hub.url)
    try:
        assert client.login(make_staff(hub.db)).status_code == 204
        for cid in ("9" * 40, str(2**63), "-1", "0"):
            resp = client.http.get(f"/console/api/conversations/{cid}")
            assert resp.status_code == 422, (cid, resp.status_code, resp.text)
            assert resp.json()["error"] == "bad_input"
            resp = client.post(f"/console/api/conversations/{cid}/claim")
            assert resp.status_code == 422, (cid, resp.status_code, resp.text)
        assert client.http.get("/console/api/conversations/2147483647").status_code == 404
    finally:
        client.close()


# --- console login: DNS rebinding, parallel guesses ---------------------------------------------

def test_console_login_refuses_a_rebound_domain(hub):
    """evil.example resolving to the hub: the browser sends Origin = Host = evil.example."""
    username = make_staff(hub.db)
    body = {"username": username, "password": PASSWORD}
    for name in ("evil.example", "console.example.evil.test", "localhost.evil.test"):
        host = f"{name}:{hub.port}"
        resp = httpx.post(f"{hub.url}/console/login", json=body,
                          headers={"Host": host, "Origin": f"http://{host}"})
        assert resp.status_code == 403, name
        assert "set-cookie" not in resp.headers
    # the configured public origin, localhost and IP addresses are fine
    for name in ("console.example", "localhost", "127.0.0.1"):
        host = f"{name}:{hub.port}"
        resp = httpx.post(f"{hub.url}/console/login", json=body,
                          headers={"Host": host, "Origin": f"http://{host}"})
        assert resp.status_code == 204, (name, resp.text)


def _slow_hash_user(db: str) -> str:
    """A staff user whose hash costs ~0.2 s to verify: the guesses overlap for sure."""
    username = make_staff(db)
    slow = PasswordHasher(time_cost=60, memory_cost=8192, parallelism=1).hash(PASSWORD)
    with session_scope(db) as s:
        s.execute(select(StaffUser).where(StaffUser.username == username)).scalar_one() \
            .password_hash = slow
    return username


def test_parallel_guesses_do_not_get_past_the_lockout(hub):
    """15 wrong passwords at once, then the right one while they are being checked: the
    account is locked after 5 guesses, so the right password must not get in."""
    username = _slow_hash_user(hub.db)
    results: dict[str, list[int]] = {"wrong": [], "right": []}

    def attempt(kind: str, password: str) -> None:
        client = ConsoleClient(hub.url)
        try:
            results[kind].append(client.login(username, password).status_code)
        finally:
            client.close()

    threads = [threading.Thread(target=attempt, args=("wrong", f"wrong-guess-{i:02d}"))
               for i in range(15)]
    for t in threads:
        t.start()
    time.sleep(0.3)
    right = threading.Thread(target=attempt, args=("right", PASSWORD))
    right.start()
    for t in [*threads, right]:
        t.join(timeout=120)
    assert results["right"] == [401], results
    assert results["wrong"] == [401] * 15
    row = staff_row(hub.db, username)
    assert row.failed_logins == staff_sessions.MAX_FAILURES  # five tries, no more
    assert row.locked_until is not None and row.locked_until > utcnow()


def test_parallel_guesses_service_level(db_url):
    """The same on the database itself (SQLite and PostgreSQL): whatever the interleaving,
    no more than five passwords are checked before the lock, and the right one never wins
    after five wrong ones were counted."""
    username = _slow_hash_user(db_url)
    checked: list[str] = []
    real_verify = staff_sessions.verify_password
    outcome: dict[str, bool] = {}

    def counting_verify(user, password):
        checked.append(password)
        return real_verify(user, password)

    def attempt(password: str) -> None:
        with session_factory(db_url)() as s:
            user = staff_sessions.authenticate(s, username, password)
            s.commit()
            outcome[password] = user is not None

    staff_sessions.verify_password = counting_verify
    try:
        threads = [threading.Thread(target=attempt, args=(f"wrong-{i:02d}",)) for i in range(15)]
        for t in threads:
            t.start()
        time.sleep(0.3)
        threads.append(threading.Thread(target=attempt, args=(PASSWORD,)))
        threads[-1].start()
        for t in threads:
            t.join(timeout=120)
    finally:
        staff_sessions.verify_password = real_verify
    assert len(checked) <= staff_sessions.MAX_FAILURES, checked
    assert outcome[PASSWORD] is False
    row = staff_row(db_url, username)
    assert row.failed_logins == staff_sessions.MAX_FAILURES and row.locked_until > utcnow()


def test_secure_cookie_needs_a_configured_public_origin(settings):
    """The https test of test_console_auth, by domain name: only a configured name logs in."""
    from fastapi.testclient import TestClient

    from bot.hub.app import create_app

    username = make_staff(settings.database_url)
    body = {"username": username, "password": PASSWORD}
    origin = {"Origin": "https://console.example"}
    with TestClient(create_app(settings), base_url="https://console.example") as client:
        assert client.post("/console/login", json=body, headers=origin).status_code == 403
    configured = replace(settings, public_origins="https://console.example/")
    with TestClient(create_app(configured), base_url="https://console.example") as client:
        resp = client.post("/console/login", json=body, headers=origin)
        assert resp.status_code == 204, resp.text
        assert resp.headers["strict-transport-security"].startswith("max-age=")


# --- uploads and the command line ----------------------------------------------------------------

def test_a_jpeg_header_followed_by_html_is_no_photo(hub):
    from tests.test_integration_cases import PNG

    sender = "photo-polyglot-000001"
    assert httpx.post(f"{hub.url}/api/messages", timeout=20,
                      json={"sender": sender, "text": "hola"}).status_code == 200
    ask_for_photo(hub.db, sender)  # photos are taken only when the flow asks for one
    url = f"{hub.url}/api/uploads"
    for fake in (b"\xff\xd8\xff\xe0" + b"<html><script>alert(1)</script></html>" * 20,
                 PNG[:40] + b"<svg onload=alert(1)>",
                 b"RIFF\x24\0\0\0WEBPVP8 " + b"<html>" * 10):
        resp = httpx.post(url, params={"sender": sender}, content=fake,
                          headers={"content-type": "image/jpeg"})
        assert resp.status_code == 415, (fake[:12], resp.status_code, resp.text)
    ok = httpx.post(url, params={"sender": sender}, content=PNG, timeout=20,
                    headers={"content-type": "image/png"})
    assert ok.status_code == 200, ok.text
    assert ok.json()["attachment_id"]


def ask_for_photo(db: str, sender: str) -> None:
    """The bot's latest message asks for a photo, as the warranty form does (Rasa is not
    running here, so it is written directly)."""
    from bot.services import conversations as convs

    with session_scope(db) as s:
        conv = convs.latest_for_sender(s, sender)
        convs.add_message(s, conv, direction="out", author="bot", text="¿Tienes una foto?",
                          payload={"expects": "photo"})


def test_users_add_without_a_terminal_asks_for_the_environment_variable(hub):
    env = {k: v for k, v in os.environ.items() if k != "NEW_USER_PASSWORD"}
    env["DATABASE_URL"] = hub.db
    result = subprocess.run([sys.executable, "-m", "bot", "users", "add", "no-tty-user",
                             "--role", "agent"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 2, result.stderr
    assert "NEW_USER_PASSWORD" in result.stderr
    assert "Traceback" not in result.stderr
    with session_factory(hub.db)() as s:
        assert s.execute(select(StaffUser).where(StaffUser.username == "no-tty-user")
                         ).first() is None
