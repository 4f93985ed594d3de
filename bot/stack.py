"""Start and stop the three processes: Rasa server, action server, hub.

Used by `make run`, the integration tests and the benchmarks, so all of them exercise the
same startup. Each child gets its own process group, so stopping kills grandchildren too.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bot.core.config import ROOT, VAR_DIR, Settings
from bot.training import model_path, rasa_env


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Stack:
    settings: Settings
    rasa_port: int
    action_port: int
    log_dir: Path = field(default_factory=lambda: VAR_DIR / "log")
    extra_env: dict[str, str] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def hub_url(self) -> str:
        return f"http://{self.settings.hub_host}:{self.settings.hub_port}"

    @property
    def rasa_url(self) -> str:
        return f"http://127.0.0.1:{self.rasa_port}"

    def env(self) -> dict[str, str]:
        s = self.settings
        env = rasa_env()
        env.update({
            "DATABASE_URL": s.database_url,
            "RASA_URL": self.rasa_url,
            "RASA_TOKEN": s.rasa_token,
            "ACTION_SERVER_URL": f"http://127.0.0.1:{self.action_port}/webhook",
            "RASA_TRACKER_URL": s.tracker_url(),
            "RASA_TRACKER_DIALECT": s.tracker_url().split(":", 1)[0].split("+")[0],
            "HUB_HOST": s.hub_host,
            "HUB_PORT": str(s.hub_port),
            "SANIC_HOST": "127.0.0.1",
            "PYTHONPATH": str(ROOT),
        })
        env.update(self.extra_env)
        return env

    def _spawn(self, name: str, cmd: list[str]) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_dir / f"{name}.log", "ab")
        self.procs[name] = subprocess.Popen(
            cmd, cwd=ROOT, env=self.env(), stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
        log.close()

    def commands(self) -> dict[str, list[str]]:
        py = sys.executable
        return {
            "actions": [py, "-m", "rasa_sdk", "--actions", "actions",
                        "-p", str(self.action_port)],
            "rasa": [
                str(Path(py).parent / "rasa"), "run", "-m", str(model_path()), "--enable-api",
                # "=" form: a token starting with "-" must not be read as an option
                f"--auth-token={self.settings.rasa_token}", "-i", "127.0.0.1",
                "-p", str(self.rasa_port), "--endpoints", "endpoints.yml",
                "--credentials", "credentials.yml",
            ],
            "hub": [
                py, "-m", "uvicorn", "--factory", "bot.hub.app:create_app",
                "--host", self.settings.hub_host, "--port", str(self.settings.hub_port),
                "--no-access-log", "--timeout-graceful-shutdown", "5",
            ],
        }

    def start(self, only: str | None = None) -> None:
        """Start all three processes (or one of them again, e.g. after a fault test)."""
        if not self.settings.rasa_token:
            raise RuntimeError("RASA_TOKEN is empty: Rasa's HTTP API must not run without one")
        if not model_path().exists():
            raise RuntimeError(f"no trained model at {model_path()}: run `make train`")
        for name, cmd in self.commands().items():
            if only in (None, name):
                self._spawn(name, cmd)

    def dead(self) -> list[str]:
        return [name for name, p in self.procs.items() if p.poll() is not None]

    def wait_healthy(self, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if self.dead():
                raise RuntimeError(f"process exited: {self.dead()}; see logs in {self.log_dir}")
            try:
                resp = httpx.get(f"{self.hub_url}/healthz", timeout=5.0)
                if resp.status_code == 200:
                    return
                last = resp.text
            except httpx.HTTPError as exc:
                last = str(exc)
            time.sleep(0.5)
        raise TimeoutError(f"stack not healthy after {timeout:.0f}s: {last}")

    def stop_one(self, name: str, timeout: float = 15.0) -> None:
        proc = self.procs.get(name)
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
        except ProcessLookupError:
            pass

    def stop(self) -> None:
        for name in ("hub", "rasa", "actions"):
            self.stop_one(name)
