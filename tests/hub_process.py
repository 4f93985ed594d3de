"""The hub alone as a real process (uvicorn), for tests that need no Rasa: its turns then get
the apology, everything else (queue, limits, retention, console) is the real code path."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from bot.core.config import ROOT
from bot.db.migrate import upgrade
from tests.conftest import free_port


@dataclass
class HubProcess:
    url: str
    db: str
    log: Path
    proc: subprocess.Popen


@contextmanager
def run_hub(work: Path, db: str | None = None, **env: str) -> Iterator[HubProcess]:
    """Start a hub on a free port with ``env`` on top of a Rasa-less default; stop it after."""
    db = db or f"sqlite:///{work / 'hub.db'}"
    upgrade(db)
    port = free_port()
    full_env = {**os.environ, "DATABASE_URL": db,
                "RASA_URL": f"http://127.0.0.1:{free_port()}", "RASA_TOKEN": "t" * 16,
                "RASA_TIMEOUT": "2", "TELEGRAM_BOT_TOKEN": "",
                "RASA_TRACKER_URL": f"sqlite:///{work / 'tracker.db'}",
                "ACTION_SERVER_URL": f"http://127.0.0.1:{free_port()}/webhook", **env}
    log = work / f"hub-{port}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "bot.hub.app:create_app",
             "--host", "127.0.0.1", "--port", str(port), "--no-access-log"],
            cwd=ROOT, env=full_env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=5).status_code in (200, 503):
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, \
                log.read_text()[-3000:]
            time.sleep(0.2)
        yield HubProcess(url, db, log, proc)
    finally:
        proc.terminate()
        proc.wait(timeout=15)
