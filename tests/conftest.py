"""Shared fixtures: fresh databases (SQLite, and PostgreSQL when reachable), a fake
tracker/dispatcher for actions, and real processes started on free ports."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# The developer's .env must not leak into tests: every test builds its own settings.
os.environ["ENV_FILE"] = os.devnull

import httpx  # noqa: E402
import pytest  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

from bot.core.config import ROOT, Settings  # noqa: E402
from bot.db.migrate import upgrade  # noqa: E402
from bot.db.models import Base  # noqa: E402
from bot.db.session import engine_for, session_factory  # noqa: E402
from tests.security_report import (  # noqa: E402,F401 - pytest hooks of `make security`
    pytest_addoption,
    pytest_collection_modifyitems,
    pytest_runtest_logreport,
    pytest_terminal_summary,
)

ARTIFACTS = ROOT / "test-artifacts"
PG_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def postgres_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


BACKENDS = ["sqlite"] + (["postgresql"] if postgres_reachable() else [])


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A throw-away PostgreSQL database for this run, migrated once."""
    name = f"postventa_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", future=True)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    upgrade(url)
    yield url
    engine_for(url).dispose()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("db") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(params=BACKENDS)
def db_url(request, tmp_path) -> str:
    """A fresh, migrated, empty database: SQLite always, PostgreSQL when reachable."""
    if request.param == "sqlite":
        template = request.getfixturevalue("sqlite_template")
        path = tmp_path / "postventa.db"
        shutil.copy(template, path)
        return f"sqlite:///{path}"
    url = request.getfixturevalue("pg_database")
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine_for(url).begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    return url


@pytest.fixture
def settings(db_url) -> Settings:
    return Settings(database_url=db_url, rasa_token="test-token")


@pytest.fixture
def session(db_url):
    s = session_factory(db_url)()
    yield s
    s.rollback()
    s.close()


# --- fake tracker and dispatcher for actions -----------------------------------------------

def make_tracker(
    *,
    slots: dict[str, Any] | None = None,
    intent: str = "greet",
    text: str = "",
    entities: list[dict[str, Any]] | None = None,
    metadata: dict[str, Any] | None = None,
    events: list[dict[str, Any]] | None = None,
    sender: str = "test-sender-000001",
):
    from rasa_sdk import Tracker

    latest = {
        "intent": {"name": intent, "confidence": 1.0},
        "entities": entities or [],
        "text": text,
        "metadata": metadata or {},
    }
    return Tracker(sender, dict(slots or {}), latest, list(events or []), False, None, {},
                   "action_listen")


@pytest.fixture
def dispatcher():
    from rasa_sdk.executor import CollectingDispatcher

    return CollectingDispatcher()


@pytest.fixture
def action_env(db_url, monkeypatch):
    """Point the actions' settings at the test database."""
    from bot.core import config

    monkeypatch.setenv("DATABASE_URL", db_url)
    config.get_settings.cache_clear()
    yield db_url
    config.get_settings.cache_clear()


# --- real processes ------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bot", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


TELEGRAM_TOKEN = "123456:TEST-postventa-token"


@pytest.fixture(scope="session")
def bot_api():
    """A local fake of Telegram's Bot API (real HTTP, real PTB client on the other side)."""
    from tests.fakes.bot_api import FakeBotAPI

    api = FakeBotAPI(token=TELEGRAM_TOKEN)
    api.start()
    try:
        yield api
    finally:
        api.stop()


@pytest.fixture(scope="session")
def stack(tmp_path_factory, bot_api):
    """Rasa server, action server and hub as real processes on free ports (SQLite DB); the
    hub's Telegram channel long-polls the fake Bot API."""
    from bot.stack import Stack
    from bot.training import model_path

    if not model_path().exists():
        pytest.fail("no trained model: run the suite through `make test` (it trains first)")
    work = tmp_path_factory.mktemp("stack")
    settings = Settings(
        database_url=f"sqlite:///{work / 'postventa.db'}",
        rasa_token=secrets.token_urlsafe(16),
        hub_port=free_port(),
        rasa_timeout=8.0,
        rasa_tracker_url=f"sqlite:///{work / 'tracker.db'}",
    )
    setup = run_cli("setup", env={**os.environ, "DATABASE_URL": settings.database_url})
    assert setup.returncode == 0, setup.stderr
    st = Stack(settings, rasa_port=free_port(), action_port=free_port(),
               log_dir=ARTIFACTS / "stack-logs",
               extra_env={"SUPPORT_HOURS": "mon-sun 00:00-24:00",  # tests run at any hour
                          "TELEGRAM_BOT_TOKEN": TELEGRAM_TOKEN,
                          "TELEGRAM_API_URL": bot_api.base_url.rsplit("/bot", 1)[0],
                          # every customer of the session comes from 127.0.0.1 — hundreds
                          # within minutes, each typing faster than a person — so the address
                          # limit (sized for a shop's NAT) is raised. The per-sender limit
                          # stays as shipped: test_ws_protocol and the browser tests check it.
                          "IP_RATE_BURST": "5000", "IP_RATE_PER_SECOND": "500"})
    st.start()
    try:
        st.wait_healthy(timeout=240)
        yield st
    finally:
        st.stop()


class Chat:
    """A customer talking to the hub's turn API."""

    def __init__(self, hub_url: str, sender: str | None = None, locale: str | None = None):
        self.hub_url = hub_url
        self.sender = sender or f"test-{uuid.uuid4().hex}"
        self.locale = locale
        self.http = httpx.Client(timeout=30)

    def say(self, text: str, **extra: Any) -> list[dict[str, Any]]:
        body: dict[str, Any] = {"sender": self.sender, "text": text, **extra}
        if self.locale:
            body.setdefault("metadata", {})["locale"] = self.locale
        for _ in range(20):
            resp = self.http.post(f"{self.hub_url}/api/messages", json=body)
            if resp.status_code != 429:
                break
            # a test answers faster than any person types: over the sender's rate budget it
            # waits as the 429 asks, like any well-behaved client (the message was not taken)
            time.sleep(float(resp.json()["retry_after"]))
        assert resp.status_code == 200, resp.text
        return resp.json()["messages"]

    @staticmethod
    def texts(messages: list[dict[str, Any]]) -> str:
        return "\n".join(m.get("text", "") for m in messages)
