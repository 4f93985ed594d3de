"""The hub as a real process when Rasa is unreachable or hangs: the customer gets an
apology in their language within seconds and the turn is recorded as failed."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from sqlalchemy import select

from bot.core.config import ROOT
from bot.db.models import Message
from bot.db.session import session_factory
from tests.conftest import free_port


class _Hanging(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 - http.server API
        time.sleep(30)

    do_GET = do_POST

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def hanging_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hanging)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def start_hub(db_url: str, rasa_url: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "DATABASE_URL": db_url, "RASA_URL": rasa_url, "RASA_TOKEN": "t",
           "RASA_TIMEOUT": "2", "ACTION_SERVER_URL": f"http://127.0.0.1:{free_port()}/webhook"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "bot.hub.app:create_app",
         "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, url
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("hub did not start")


@pytest.mark.parametrize("mode", ["refused", "hanging"])
def test_rasa_unavailable(db_url, hanging_server, mode):
    rasa_url = f"http://127.0.0.1:{free_port()}" if mode == "refused" else hanging_server
    proc, url = start_hub(db_url, rasa_url)
    try:
        for locale, words in (("es", "problema técnico"), ("en", "technical problem")):
            sender = f"fault-{mode}-{locale}-0000001"
            started = time.monotonic()
            resp = httpx.post(f"{url}/api/messages", timeout=20, json={
                "sender": sender, "text": "hola" if locale == "es" else "hello",
                "metadata": {"locale": locale}})
            assert time.monotonic() - started < 6
            assert resp.status_code == 200
            assert words in resp.json()["messages"][0]["text"]
        assert httpx.get(f"{url}/healthz", timeout=10).status_code == 503
        with session_factory(db_url)() as s:
            rows = s.execute(select(Message).order_by(Message.id)).scalars().all()
        assert [(r.direction, r.status) for r in rows] == [
            ("in", "failed"), ("out", "ok"), ("in", "failed"), ("out", "ok")]
        assert rows[0].text == "hola"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
