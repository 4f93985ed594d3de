"""`python -m bot run` (what `make run` starts): three processes, healthy, and Ctrl-C stops
all of them with no orphans."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time

import httpx

from bot.core.config import ROOT
from tests.conftest import free_port, run_cli


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purposes
        return "Z" not in open(f"/proc/{pid}/stat").read().split()[2]
    except OSError:
        return False


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True,
                         text=True, check=False).stdout
    return [int(x) for x in out.split()]


def test_run_starts_three_processes_and_ctrl_c_stops_them(tmp_path):
    hub_port = free_port()
    env = {**os.environ, "ENV_FILE": os.devnull,
           "DATABASE_URL": f"sqlite:///{tmp_path / 'run.db'}",
           "RASA_TRACKER_URL": f"sqlite:///{tmp_path / 'tracker.db'}",
           "RASA_TOKEN": secrets.token_urlsafe(12), "HUB_PORT": str(hub_port),
           "RASA_PORT": str(free_port()), "ACTION_PORT": str(free_port())}
    assert run_cli("setup", env=env).returncode == 0
    proc = subprocess.Popen([sys.executable, "-m", "bot", "run"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")),
                              daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            if any("Press Ctrl-C" in line for line in list(lines)):
                break
            time.sleep(0.5)
        assert any("Press Ctrl-C" in line for line in list(lines)), "".join(lines)[-2000:]
        assert httpx.get(f"http://127.0.0.1:{hub_port}/healthz", timeout=10).status_code == 200
        children = _children(proc.pid)
        assert len(children) == 3
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
        reader.join(timeout=5)
        output = "".join(lines)
        assert proc.returncode == 0, output[-2000:]
        assert "Postventa assistant is running" in output and "stopped." in output
        time.sleep(0.5)
        assert not [pid for pid in children if _alive(pid)], "orphan processes left"
    finally:
        if proc.poll() is None:
            proc.kill()
