"""The scale profile as `make run-scale` starts it (issue 14, item 4), with real processes:
PostgreSQL (a throw-away database), Redis (a throw-away key prefix), 2 Rasa servers, the
action server, 2 hubs and HAProxy, all under `PROFILE=scale python -m bot run`.

Checked through the balancer: `/healthz`, a typed conversation over REST and over `/ws`,
both hubs answering (`X-Served-By`), the client's own address reaching the hubs (their
per-address rate limit tells one local address from another; a forged X-Forwarded-For does
not help), Rasa's trackers in PostgreSQL and its conversation locks in Redis, and Ctrl-C
stopping every process with no orphan. Cross-hub delivery (an agent on one hub, the customer
on another) belongs to the hub's delivery tests, not here.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import websockets
from sqlalchemy import create_engine, text

from bench.load_stacks import drop_database, forget_redis_prefix
from bot.core.config import ROOT
from bot.scale import haproxy
from bot.training import model_path
from tests.conftest import PG_ADMIN_URL, free_port, postgres_reachable
from tests.test_run_command import _alive

REDIS_URL = "redis://127.0.0.1:6379/5"
START_TIMEOUT = 900  # two Rasa models loading at once on a shared 2-core machine
IP_BURST = 6  # the per-address budget, small here so that the test can exhaust it


def _redis_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1):
            return True
    except OSError:
        return False


def _haproxy() -> bool:
    from bot.scale.haproxy import HAProxyMissing, binary

    try:
        binary()
        return True
    except HAProxyMissing:
        return False


pytestmark = pytest.mark.skipif(
    not (postgres_reachable() and _redis_up() and _haproxy()),
    reason="the scale profile needs PostgreSQL and Redis on 127.0.0.1 and HAProxy "
           "(scripts/ensure_haproxy.sh)")


@dataclass
class ScaleRun:
    proc: subprocess.Popen
    url: str
    database_url: str
    prefix: str
    run_dir: Path
    ports: list[int]
    action_ports: list[int]
    lines: list[str] = field(default_factory=list)

    @property
    def output(self) -> str:
        return "".join(self.lines)


def _descendants(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-e", "-o", "pid=,ppid="], capture_output=True, text=True,
                         check=False).stdout
    children: dict[int, list[int]] = {}
    for line in out.splitlines():
        child, parent = (int(x) for x in line.split())
        children.setdefault(parent, []).append(child)
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


@pytest.fixture(scope="module")
def scale(tmp_path_factory) -> Iterator[ScaleRun]:
    if not model_path().exists():
        pytest.fail("no trained model: run the suite through `make test` (it trains first)")
    work = tmp_path_factory.mktemp("scale")
    tag = uuid.uuid4().hex[:10]
    database_url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/postventa_scale_test_{tag}"
    prefix = f"pvscaletest{tag}:"
    hub_port, hubs, rasas = free_port(), [free_port(), free_port()], [free_port(), free_port()]
    action_port, actions = free_port(), [free_port(), free_port()]
    env = {**os.environ, "ENV_FILE": os.devnull, "PROFILE": "scale",
           "SCALE_DATABASE_URL": database_url, "REDIS_URL": REDIS_URL,
           "REDIS_KEY_PREFIX": prefix, "RASA_TOKEN": "rt-" + secrets.token_urlsafe(16),
           "SECRET_KEY": secrets.token_urlsafe(24), "ADMIN_PASSWORD": secrets.token_urlsafe(15),
           "HUB_PORT": str(hub_port), "SCALE_HUB_PORTS": ",".join(map(str, hubs)),
           "SCALE_RASA_PORTS": ",".join(map(str, rasas)), "ACTION_PORT": str(action_port),
           "SCALE_ACTION_PORTS": ",".join(map(str, actions)),
           "LOG_DIR": str(work / "log"), "SCALE_DIR": str(work / "run"),
           "SUPPORT_HOURS": "mon-sun 00:00-24:00", "TELEGRAM_BOT_TOKEN": "",
           # tiny, so test_client_address_reaches_the_hubs can use it up (each test talks
           # from its own 127.0.0.x address)
           "IP_RATE_BURST": str(IP_BURST), "IP_RATE_PER_SECOND": "0.01"}
    proc = subprocess.Popen([sys.executable, "-m", "bot", "run"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    run = ScaleRun(proc, f"http://127.0.0.1:{hub_port}", database_url, prefix, work / "run",
                   [hub_port, *hubs, *rasas, action_port, *actions], actions)
    threading.Thread(target=lambda: run.lines.extend(iter(proc.stdout.readline, "")),
                     daemon=True).start()
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and proc.poll() is None:
            if "Press Ctrl-C" in run.output:
                break
            time.sleep(1)
        assert "Press Ctrl-C" in run.output, run.output[-4000:]
        yield run
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
        drop_database(database_url)
        forget_redis_prefix(REDIS_URL, prefix)


def _client(source: str) -> httpx.Client:
    """HTTP from a given loopback address: the balancer sees a different customer."""
    return httpx.Client(timeout=60, transport=httpx.HTTPTransport(local_address=source))


def _say(client: httpx.Client, url: str, sender: str, text_: str) -> httpx.Response:
    return client.post(f"{url}/api/messages", json={"sender": sender, "text": text_})


def test_banner_names_every_process(scale):
    out = scale.output
    assert "scale (2 Rasa servers, 2 action servers, 2 hubs and the load balancer" in out
    assert "SQL tracker store + RedisLockStore" in out and "Press Ctrl-C to stop all 7" in out
    assert (scale.run_dir / "haproxy.cfg").is_file()
    lock = (scale.run_dir / "endpoints.yml").read_text()
    assert "lock_store:\n  type: redis" in lock and "db: 5" in lock


def test_health_through_the_balancer_and_both_hubs_answer(scale):
    # the launcher said "ready" only once the balancer itself counted both hubs UP, and both
    # action servers
    sock = haproxy.stats_socket_of(scale.run_dir / "haproxy.cfg")
    assert haproxy.servers_not_up(sock) == []
    assert haproxy.servers_not_up(sock, "actions") == []
    served = set()
    with httpx.Client(timeout=30) as client:
        for _ in range(8):
            resp = client.get(f"{scale.url}/healthz")
            assert resp.status_code == 200, resp.text
            assert resp.json()["status"] == "ok"
            served.add(resp.headers["x-served-by"])
    assert served == {"hub-1", "hub-2"}


def test_typed_conversation_over_rest(scale):
    sender = f"scale-rest-{uuid.uuid4().hex}"
    served = set()
    with _client("127.0.0.4") as client:
        for text_, expected in (("hola", "asistente"), ("¿cuánto dura la garantía?", "3 años"),
                                ("how long do refunds take?", "14 days")):
            resp = _say(client, scale.url, sender, text_)
            assert resp.status_code == 200, resp.text
            answer = "\n".join(m.get("text", "") for m in resp.json()["messages"])
            assert expected in answer, (text_, answer)
            served.add(resp.headers["x-served-by"])
    assert served <= {"hub-1", "hub-2"}
    # Rasa's tracker for this conversation is in PostgreSQL (shared by both Rasa servers)
    engine = create_engine(scale.database_url, future=True)
    try:
        with engine.connect() as conn:
            events = conn.execute(text("SELECT COUNT(*) FROM events WHERE sender_id = :s"),
                                  {"s": sender}).scalar()
    finally:
        engine.dispose()
    assert events and events > 3


def test_typed_conversation_over_the_widget_socket(scale):
    sender = f"scale-ws-{uuid.uuid4().hex}"
    ws_url = scale.url.replace("http://", "ws://") + "/ws"

    async def recv(ws, kind: str) -> dict:
        async def loop() -> dict:
            while True:
                frame = json.loads(await ws.recv())
                if frame["type"] == kind:
                    return frame
        return await asyncio.wait_for(loop(), 60)

    async def scenario() -> str:
        async with websockets.connect(ws_url, local_addr=("127.0.0.5", 0)) as ws:
            by = ws.response_headers.get("X-Served-By")
            await ws.send(json.dumps({"type": "hello", "sender": sender, "locale": "es-ES"}))
            assert (await recv(ws, "welcome"))["history"] == []
            for mid, text_, expected in (("m1", "hola", "asistente"),
                                         ("m2", "¿cuánto dura la garantía?", "3 años")):
                await ws.send(json.dumps({"type": "message", "id": mid, "sender": sender,
                                          "text": text_}))
                assert (await recv(ws, "ack"))["id"] == mid
                reply = await recv(ws, "messages")
                assert reply["reply_to"] == mid
                assert any(expected in m["text"] for m in reply["messages"]), reply
            return by

    assert asyncio.run(scenario()) in {"hub-1", "hub-2"}


def test_client_address_reaches_the_hubs(scale):
    """Without the forwarded address every customer behind the balancer would share one
    budget (the balancer's). With it, one address using its budget up leaves another alone,
    whichever hub answers (the budget is in Redis), and a forged header does not reset it."""
    codes = []
    with _client("127.0.0.2") as greedy:
        for i in range(IP_BURST + 3):
            resp = _say(greedy, scale.url, f"scale-ip-{i:02d}-{uuid.uuid4().hex}", "/greet")
            codes.append(resp.status_code)
            if resp.status_code == 429:
                break
        assert codes[-1] == 429 and codes.count(200) >= IP_BURST - 1, codes
        forged = greedy.post(f"{scale.url}/api/messages",
                             headers={"X-Forwarded-For": "203.0.113.9"},
                             json={"sender": f"scale-ip-xx-{uuid.uuid4().hex}", "text": "/greet"})
        assert forged.status_code == 429
    with _client("127.0.0.3") as other:
        resp = _say(other, scale.url, f"scale-ip-ok-{uuid.uuid4().hex}", "/greet")
        assert resp.status_code == 200, resp.text


def _watch_redis(needle: bytes, stop: threading.Event, seen: list[bytes]) -> socket.socket:
    """MONITOR on Redis in a thread: every command any client sends, filtered by ``needle``."""
    sock = socket.create_connection(("127.0.0.1", 6379), timeout=5)
    sock.sendall(b"MONITOR\r\n")
    assert sock.recv(64).startswith(b"+OK")
    sock.settimeout(0.5)

    def loop() -> None:
        buf = b""
        while not stop.is_set():
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if not chunk:
                return
            buf = (buf + chunk)[-100_000:]
            if needle in buf:
                seen.append(needle)
                return

    threading.Thread(target=loop, daemon=True).start()
    return sock


def test_rasa_takes_the_conversation_lock_in_redis(scale):
    sender = f"scale-lock-{uuid.uuid4().hex}"
    lock_prefix = scale.prefix.rstrip(":").replace(":", "")
    stop, seen = threading.Event(), []
    sock = _watch_redis(f"{lock_prefix}:lock:{sender}".encode(), stop, seen)
    try:
        with _client("127.0.0.6") as client:
            assert _say(client, scale.url, sender, "hola").status_code == 200
        deadline = time.monotonic() + 5
        while not seen and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop.set()
        sock.close()
    assert seen, "no Rasa server locked the conversation in Redis (RedisLockStore)"


def _action_server_pid(scale: ScaleRun, port: int) -> int:
    for pid in _descendants(scale.proc.pid):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"rasa_sdk" in argv and str(port).encode() in argv:
            return pid
    raise AssertionError(f"no action server on port {port} among the launcher's children")


def test_an_action_server_killed_is_skipped_then_back(scale):
    """Fault: one of the two action servers dies hard. The Rasa servers reach the action
    servers through the balancer, which sends a call that cannot connect to the other one:
    customers keep getting real answers (not the apology), and the launcher restarts the
    dead one, which the balancer then counts UP again."""
    sock = haproxy.stats_socket_of(scale.run_dir / "haproxy.cfg")
    os.killpg(_action_server_pid(scale, scale.action_ports[0]), signal.SIGKILL)
    with _client("127.0.0.6") as client:
        for i in range(4):  # at once: before the balancer's checks have noticed
            sender = f"scale-actions-{i}-{uuid.uuid4().hex}"
            resp = _say(client, scale.url, sender, "¿cuánto dura la garantía?")
            assert resp.status_code == 200, resp.text
            answer = "\n".join(m.get("text", "") for m in resp.json()["messages"])
            assert "3 años" in answer, answer
    # the launcher restarts it; once it answers, the balancer counts it UP again
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and "actions-1 restarted" not in scale.output:
        time.sleep(0.5)
    assert "actions-1 restarted" in scale.output, scale.output[-3000:]
    health = f"http://127.0.0.1:{scale.action_ports[0]}/health"
    while time.monotonic() < deadline:
        try:
            if httpx.get(health, timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(1)
    while time.monotonic() < deadline and haproxy.servers_not_up(sock, "actions"):
        time.sleep(1)
    assert haproxy.servers_not_up(sock, "actions") == []
    with _client("127.0.0.7") as client:
        resp = _say(client, scale.url, f"scale-actions-back-{uuid.uuid4().hex}",
                    "how long do refunds take?")
        assert "14 days" in "\n".join(m.get("text", "") for m in resp.json()["messages"])


def test_ctrl_c_stops_every_process_without_orphans(scale):
    family = _descendants(scale.proc.pid)
    # launcher's children: 2 Rasa, 2 hubs, 2 action servers, HAProxy
    assert len([p for p in family if _parent(p) == scale.proc.pid]) == 7, family
    scale.proc.send_signal(signal.SIGINT)
    scale.proc.wait(timeout=120)
    time.sleep(1)
    assert scale.proc.returncode == 0, scale.output[-3000:]
    assert "stopped." in scale.output
    assert not [p for p in family if _alive(p)], "orphan processes left"
    for port in scale.ports:
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still answers"


def _parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def test_balancer_stats_name_what_is_not_up(tmp_path):
    """A missing socket, or a hub the balancer counts DOWN, is named (never "all up")."""
    assert haproxy.servers_not_up(tmp_path / "nothing.sock") != []
    sock_path = tmp_path / "stats.sock"
    stat = ("# pxname,svname,qcur,status,\npublic,FRONTEND,,OPEN,\nhubs,hub-1,0,UP,\n"
            "hubs,hub-2,0,DOWN,\nhubs,BACKEND,0,UP,\n")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(str(sock_path))
        server.listen(1)

        def answer() -> None:
            conn, _ = server.accept()
            with conn:
                conn.recv(100)
                conn.sendall(stat.encode())

        thread = threading.Thread(target=answer)
        thread.start()
        assert haproxy.servers_not_up(sock_path) == ["hub-2"]
        thread.join(5)
