"""PostgreSQL restarted under a running hub (issue 14, item 7): every connection the hub holds
is cut the way a restart cuts them (`pg_terminate_backend` on its database, so the other
tests' databases on this server are untouched). The hub reconnects by itself; a turn in
flight when it happens fails cleanly (503, nothing half-written) and the same message
resent is answered once.

Bad inputs handled: connections killed between turns, connections killed during a turn."""

from __future__ import annotations

import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from sqlalchemy import create_engine, select, text

from bot.db.models import Message
from bot.db.session import session_scope
from tests.conftest import PG_ADMIN_URL, postgres_reachable
from tests.hub_process import run_hub

pytestmark = pytest.mark.skipif(not postgres_reachable(), reason="needs PostgreSQL")


class _SlowRasa(BaseHTTPRequestHandler):
    """A Rasa that takes 3 s to answer: a turn stays in flight long enough to cut the
    database under it. (The hub only needs a reply shape here, not understanding.)"""

    def do_POST(self):  # noqa: N802 - http.server API
        self.rfile.read(int(self.headers.get("content-length") or 0))
        time.sleep(3)
        body = b'[{"recipient_id": "x", "text": "Hola, te leo."}]'
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):  # noqa: N802
        body = b'{"model_id": "slow"}'
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def database():
    name = f"postventa_dbfault_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", future=True)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield name, PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def cut_connections(name: str) -> int:
    """What clients see when PostgreSQL restarts: every session of the database dies."""
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", future=True)
    try:
        with admin.connect() as conn:
            return len(conn.execute(text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = :name AND pid <> pg_backend_pid()"), {"name": name}).all())
    finally:
        admin.dispose()


def test_the_hub_survives_a_postgresql_restart(database, tmp_path):
    name, url = database
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SlowRasa)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    rasa = f"http://127.0.0.1:{server.server_address[1]}"
    sender = f"pg-restart-{uuid.uuid4().hex}"
    try:
        with run_hub(tmp_path, url, RASA_URL=rasa, RASA_TIMEOUT="10") as hub:
            def say(text_: str, mid: str) -> httpx.Response:
                return httpx.post(f"{hub.url}/api/messages", timeout=30, json={
                    "sender": sender, "text": text_, "message_id": mid})

            assert say("hola", "m1").status_code == 200
            assert cut_connections(name) >= 1  # between turns
            after = say("¿seguís ahí?", "m2")
            assert after.status_code == 200, after.text  # reconnected by itself
            # during a turn: the hub is waiting for Rasa when its connections die
            inflight: dict[str, httpx.Response] = {}
            turn = threading.Thread(target=lambda: inflight.update(r=say("una más", "m3")))
            turn.start()
            time.sleep(1.0)
            cut_connections(name)
            turn.join(timeout=30)
            assert inflight["r"].status_code in (200, 503), inflight["r"].text
            again = say("una más", "m3")  # the customer (or the widget) resends it
            assert again.status_code == 200, again.text
            assert "te leo" in again.text
            with session_scope(url) as s:
                rows = s.execute(select(Message).where(
                    Message.client_message_id == "m3")).scalars().all()
                assert len(rows) == 1 and rows[0].status == "ok"
                replies = s.execute(select(Message).where(
                    Message.reply_to_id == rows[0].id)).scalars().all()
                assert len(replies) == 1  # answered once, not once per attempt
            health = httpx.get(f"{hub.url}/healthz", timeout=10).json()
            assert health["checks"]["database"] is True
    finally:
        server.shutdown()
