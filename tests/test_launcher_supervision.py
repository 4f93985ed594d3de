"""`python -m bot run` as an operator meets it (issue 15): no secret in any log or on any command
line after a real conversation, a killed child is restarted (and `/healthz` names it while it
is down), killing the launcher outright takes the children with it, and a busy port is named
with the process holding it."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from bot.core.config import ROOT
from bot.training import model_path
from tests.conftest import Chat, free_port, run_cli
from tests.test_run_command import _alive, _children


@dataclass
class Launcher:
    proc: subprocess.Popen
    env: dict[str, str]
    log_dir: Path
    hub_url: str
    lines: list[str] = field(default_factory=list)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def child(self, marker: str) -> int:
        for pid in _children(self.proc.pid):
            try:
                args = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if marker in args:
                return pid
        raise AssertionError(f"no child running {marker!r}: {self.output[-2000:]}")

    def secrets(self) -> dict[str, str]:
        return {k: self.env[k] for k in ("RASA_TOKEN", "SECRET_KEY", "ADMIN_PASSWORD")}


def _start(env: dict[str, str]) -> tuple[subprocess.Popen, list[str]]:
    proc = subprocess.Popen([sys.executable, "-m", "bot", "run"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")),
                     daemon=True).start()
    return proc, lines


@pytest.fixture(scope="module")
def launcher(tmp_path_factory) -> Iterator[Launcher]:
    if not model_path().exists():
        pytest.fail("no trained model: run the suite through `make test` (it trains first)")
    work = tmp_path_factory.mktemp("launcher")
    hub_port = free_port()
    env = {**os.environ, "ENV_FILE": os.devnull,
           "DATABASE_URL": f"sqlite:///{work / 'run.db'}",
           "RASA_TRACKER_URL": f"sqlite:///{work / 'tracker.db'}",
           "RASA_TOKEN": "rt-" + secrets.token_urlsafe(18),
           "SECRET_KEY": "sk-" + secrets.token_urlsafe(24),
           "ADMIN_USERNAME": "admin", "ADMIN_PASSWORD": "ap-" + secrets.token_urlsafe(15),
           "HUB_PORT": str(hub_port), "RASA_PORT": str(free_port()),
           "ACTION_PORT": str(free_port()), "LOG_DIR": str(work / "log"),
           "SUPPORT_HOURS": "mon-sun 00:00-24:00", "TELEGRAM_BOT_TOKEN": ""}
    setup = run_cli("setup", env=env)
    assert setup.returncode == 0, setup.stderr
    assert env["ADMIN_PASSWORD"] not in setup.stdout + setup.stderr
    proc, lines = _start(env)
    launcher = Launcher(proc, env, work / "log", f"http://127.0.0.1:{hub_port}", lines)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            if "Press Ctrl-C" in launcher.output:
                break
            time.sleep(0.5)
        assert "Press Ctrl-C" in launcher.output, launcher.output[-3000:]
        yield launcher
    finally:
        children = _children(proc.pid)
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
        for pid in children:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def _wait_for(check, timeout: float, what: str, step: float = 0.5):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except (httpx.HTTPError, OSError) as exc:
            last = exc
        time.sleep(step)
    raise AssertionError(f"{what} not within {timeout:.0f}s (last: {last!r})")


def test_no_secret_in_logs_or_command_lines(launcher):
    chat = Chat(launcher.hub_url, locale="es-ES")
    assert "problema técnico" not in Chat.texts(chat.say("hola"))
    chat.say("can we switch to English please?")  # language slot: Rasa's tracker API
    chat.say("I want to talk to a person")  # hand-off: the conversation is paused in Rasa
    console = httpx.Client(base_url=launcher.hub_url, headers={"Origin": launcher.hub_url})
    try:
        login = console.post("/console/login", json={
            "username": "admin", "password": launcher.env["ADMIN_PASSWORD"]})
        assert login.status_code == 204, login.text
        wrong = console.post("/console/login", json={
            "username": "admin", "password": launcher.env["ADMIN_PASSWORD"] + "x"})
        assert wrong.status_code == 401
    finally:
        console.close()
    # Rasa's API takes the token in a header (and nothing without it)
    rasa = f"http://127.0.0.1:{launcher.env['RASA_PORT']}"
    assert httpx.get(f"{rasa}/status").status_code == 401
    assert httpx.get(f"{rasa}/status", headers={"X-Rasa-Token": "nope"}).status_code == 401
    assert httpx.get(f"{rasa}/status",
                     headers={"X-Rasa-Token": launcher.env["RASA_TOKEN"]}).status_code == 200
    time.sleep(1)  # let the processes flush their logs

    files = [p for p in launcher.log_dir.rglob("*") if p.is_file()]
    assert {"rasa.log", "actions.log", "hub.log"} <= {p.name for p in files}
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert "bot.rasa_entry" in ps
    for name, value in launcher.secrets().items():
        for path in files:
            assert value not in path.read_text(errors="replace"), f"{name} in {path.name}"
        assert value not in ps, f"{name} on a command line"
        assert value not in launcher.output, f"{name} in the launcher's output"
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name
    # nothing of the turn API's URLs at all (httpx logged each Rasa call with ?token=)
    assert "token=" not in (launcher.log_dir / "hub.log").read_text(errors="replace")


def test_a_killed_action_server_is_restarted(launcher):
    old = launcher.child("rasa_sdk")
    os.kill(old, signal.SIGKILL)

    def down() -> bool:
        resp = httpx.get(f"{launcher.hub_url}/healthz", timeout=10)
        return resp.status_code == 503 and resp.json()["down"] == ["actions"]

    _wait_for(down, 15, "/healthz naming the action server", step=0.2)
    started = time.monotonic()
    chat = Chat(launcher.hub_url, locale="en")

    def answered() -> bool:
        fresh = Chat(launcher.hub_url, locale="en")
        return "technical problem" not in Chat.texts(fresh.say("hello"))

    _wait_for(answered, 40, "a turn answered again after the action server died", step=1)
    assert time.monotonic() - started < 40
    assert launcher.child("rasa_sdk") != old
    assert "technical problem" not in Chat.texts(chat.say("hello"))
    _wait_for(lambda: httpx.get(f"{launcher.hub_url}/healthz").status_code == 200, 30,
              "healthy again")
    assert "actions exited (signal 9); restarting" in launcher.output
    assert "actions restarted" in launcher.output
    assert "actions exited" in (launcher.log_dir / "stack.log").read_text()


def test_a_turn_retried_after_the_action_server_died_counts_once(launcher):
    """The action server dies: Rasa still saves the customer's message (the action's events
    are lost) and the customer gets the apology. Resending the same message (same id) once it
    is back must be ONE message in the conversation, not two (a form would count an answer,
    or a miss, twice)."""
    chat = Chat(launcher.hub_url, locale="es")
    assert "problema técnico" not in Chat.texts(chat.say("hola"))
    old = launcher.child("rasa_sdk")
    os.kill(old, signal.SIGKILL)
    _wait_for(lambda: httpx.get(f"{launcher.hub_url}/healthz", timeout=10).status_code == 503,
              15, "/healthz saying the action server is down", step=0.2)
    words = "quiero devolver un producto"
    failed = chat.say(words, message_id="retry-after-crash-1")
    assert "problema técnico" in Chat.texts(failed), Chat.texts(failed)
    rasa = f"http://127.0.0.1:{launcher.env['RASA_PORT']}"
    headers = {"X-Rasa-Token": launcher.env["RASA_TOKEN"]}

    def said() -> int:
        tracker = httpx.get(f"{rasa}/conversations/{chat.sender}/tracker", headers=headers,
                            params={"include_events": "APPLIED"}, timeout=10).json()
        return sum(1 for e in tracker["events"] if e["event"] == "user" and e["text"] == words)

    assert said() == 1  # Rasa kept the failed turn
    _wait_for(lambda: httpx.get(f"{launcher.hub_url}/healthz").status_code == 200, 60,
              "the action server back")
    again = chat.say(words, message_id="retry-after-crash-1")
    assert "problema técnico" not in Chat.texts(again), Chat.texts(again)
    assert "ped-" in Chat.texts(again).lower()  # the return starts: "which order?"
    assert said() == 1


def test_an_action_server_killed_mid_form_leaves_no_half_case_and_the_form_resumes(launcher):
    """Mid-way through a return (order given, email asked), the action server dies: the
    customer's answer gets the apology and is kept; resent once the server is back, the form
    goes on from where it was, and no case was half-written meanwhile."""
    from types import SimpleNamespace

    from sqlalchemy import select

    from bot.db.models import Case, Conversation
    from bot.db.session import session_scope
    from tests.test_typed_flows import new_order

    db = launcher.env["DATABASE_URL"]
    order = new_order(SimpleNamespace(settings=SimpleNamespace(database_url=db)), ["TV-55"])
    chat = Chat(launcher.hub_url, locale="es")
    assert "ped-" in Chat.texts(chat.say("quiero devolver un producto")).lower()
    asked = Chat.texts(chat.say(f"es el {order['number']}")).lower()
    assert "correo" in asked or "email" in asked, asked
    os.kill(launcher.child("rasa_sdk"), signal.SIGKILL)
    _wait_for(lambda: httpx.get(f"{launcher.hub_url}/healthz", timeout=10).status_code == 503,
              15, "/healthz saying the action server is down", step=0.2)
    failed = Chat.texts(chat.say(order["email"], message_id="mid-form-1"))
    assert "problema técnico" in failed, failed
    _wait_for(lambda: httpx.get(f"{launcher.hub_url}/healthz").status_code == 200, 60,
              "the action server back")
    resumed = Chat.texts(chat.say(order["email"], message_id="mid-form-1")).lower()
    assert "problema técnico" not in resumed and resumed.strip(), resumed
    assert "correo" not in resumed and "ped-" not in resumed, resumed  # the next question
    with session_scope(db) as s:
        conv = s.execute(select(Conversation).where(Conversation.sender == chat.sender)
                         ).scalar_one()
        assert s.execute(select(Case).where(Case.conversation_id == conv.id)).first() is None


def test_a_killed_rasa_gets_an_apology_and_the_conversation_goes_on(launcher):
    """Rasa dies mid-conversation: /healthz names it, the customer gets the apology within
    RASA_TIMEOUT and their message is kept; once the launcher has Rasa back, the next message
    works and the failed one, resent, is answered once."""
    chat = Chat(launcher.hub_url, locale="es")
    assert "problema técnico" not in Chat.texts(chat.say("hola"))
    os.kill(launcher.child("bot.rasa_entry"), signal.SIGKILL)

    def rasa_down() -> bool:
        resp = httpx.get(f"{launcher.hub_url}/healthz", timeout=10)
        return resp.status_code == 503 and "rasa" in resp.json()["down"]

    _wait_for(rasa_down, 15, "/healthz naming Rasa", step=0.2)
    started = time.monotonic()
    failed = Chat.texts(chat.say("¿cuánto tarda un reembolso?", message_id="rasa-down-1"))
    assert "problema técnico" in failed, failed
    assert time.monotonic() - started < 10 + 5  # RASA_TIMEOUT (default 10 s) and some slack
    _wait_for(lambda: httpx.get(f"{launcher.hub_url}/healthz").status_code == 200, 240,
              "Rasa back (model loaded)", step=2)
    assert "problema técnico" not in Chat.texts(chat.say("gracias"))
    again = Chat.texts(chat.say("¿cuánto tarda un reembolso?", message_id="rasa-down-1"))
    assert "problema técnico" not in again and again.strip(), again
    assert "rasa exited (signal 9); restarting" in launcher.output


def test_a_killed_hub_is_restarted(launcher):
    old = launcher.child("uvicorn")
    os.kill(old, signal.SIGKILL)
    _wait_for(lambda: httpx.get(f"{launcher.hub_url}/healthz", timeout=5).status_code == 200,
              40, "the hub back")
    assert launcher.child("uvicorn") != old
    assert "problema técnico" not in Chat.texts(Chat(launcher.hub_url).say("hola"))


def _bindable(port: int) -> bool:
    """The kernel may need a moment after the last owner died to release a listening port."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_killing_the_launcher_outright_takes_the_children_along(launcher):
    children = _children(launcher.proc.pid)
    assert len(children) == 3
    os.kill(launcher.proc.pid, signal.SIGKILL)
    launcher.proc.wait(timeout=10)
    _wait_for(lambda: not [pid for pid in children if _alive(pid)], 10,
              "every child gone")
    for port in ("HUB_PORT", "RASA_PORT", "ACTION_PORT"):  # free for the next `make run`
        _wait_for(lambda p=int(launcher.env[port]): _bindable(p), 15, f"{port} free again")


def test_a_busy_port_is_named_with_its_process(tmp_path):
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    env = {**os.environ, "ENV_FILE": os.devnull, "RASA_TOKEN": secrets.token_urlsafe(12),
           "DATABASE_URL": f"sqlite:///{tmp_path / 'busy.db'}", "HUB_PORT": str(port),
           "RASA_PORT": str(free_port()), "ACTION_PORT": str(free_port()),
           "LOG_DIR": str(tmp_path / "log")}
    try:
        started = time.monotonic()
        result = subprocess.run([sys.executable, "-m", "bot", "run"], cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=60)
    finally:
        holder.close()
    assert result.returncode == 1
    assert time.monotonic() - started < 30
    assert f"port {port} (hub) is already in use by pid {os.getpid()}" in result.stderr, \
        result.stderr
    assert "HUB_PORT" in result.stderr
    assert "is running" not in result.stdout
    assert not (tmp_path / "log" / "rasa.log").exists()  # nothing was started
