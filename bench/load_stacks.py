"""The stacks `make bench-load` measures: the default profile (one Rasa, one hub, SQLite) and
the scale profile (PostgreSQL, Redis, N Rasa, M hubs, HAProxy), each started on free ports
with throw-away data (a fresh SQLite file; a fresh PostgreSQL database and Redis key prefix,
both removed afterwards) — or a stack already running (``BENCH_LOAD_URL``).

All simulated customers come from 127.0.0.1, so the per-address rate limit (sized for a shop's
NAT: IP_RATE_BURST=60, 10/s) would refuse most of them: the stacks started here get a raised
address budget (``LOAD_ENV``); the per-sender budget stays as shipped.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bench.load_script import CaseRef
from bench.stack_fixture import RESULTS, bench_stack
from bot.core.config import Settings
from bot.scale.layout import DEFAULT_REDIS_URL, ScaleLayout
from bot.scale.prepare import scale_stack
from bot.stack import Stack, free_port

LOAD_ENV = {"IP_RATE_BURST": "100000", "IP_RATE_PER_SECOND": "10000",
            "SUPPORT_HOURS": "mon-sun 00:00-24:00", "TELEGRAM_BOT_TOKEN": ""}
PG_SERVER = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@dataclass
class Target:
    profile: str  # default | scale | external
    url: str
    database_url: str | None  # for the cases the customers ask about and the transcript check
    stack: Stack | None = None
    notes: list[str] = field(default_factory=list)


def load_env() -> dict[str, str]:
    env = dict(LOAD_ENV)
    if os.environ.get("BENCH_LOAD_RASA_TIMEOUT"):
        env["RASA_TIMEOUT"] = os.environ["BENCH_LOAD_RASA_TIMEOUT"]
    return env


def keep_logs(log_dir: Path, profile: str) -> None:
    """``BENCH_LOAD_KEEP_LOGS=1``: the processes' logs go to bench/results/ (the stack's
    temporary directory is removed), to find out why a message failed."""
    if os.environ.get("BENCH_LOAD_KEEP_LOGS") and log_dir.is_dir():
        dest = RESULTS / f"load-logs-{time.strftime('%Y%m%d-%H%M%S')}-{profile}"
        shutil.copytree(log_dir, dest)
        print(f"[{profile}] logs kept in {dest}", flush=True)


@contextmanager
def default_target() -> Iterator[Target]:
    with bench_stack(extra_env=load_env(), timeout=600) as bs:
        try:
            yield Target("default", bs.hub_url, bs.settings.database_url, bs.stack)
        finally:
            keep_logs(bs.stack.log_dir, "default")


def drop_database(url: str) -> None:
    name = make_url(url).database
    admin = create_engine(make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT",
                          future=True)
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def forget_redis_prefix(url: str, prefix: str) -> None:
    """Delete every key under ``prefix`` (rate-limit buckets, Rasa's lock keys)."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@contextmanager
def scale_target(rasa_replicas: int, hub_replicas: int,
                 action_replicas: int = 2) -> Iterator[Target]:
    tag = uuid.uuid4().hex[:10]
    database_url = PG_SERVER.rsplit("/", 1)[0] + f"/postventa_bench_{tag}"
    redis_url = os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL)
    prefix = f"pvbench{tag}:"
    work = Path(tempfile.mkdtemp(prefix="postventa-load-"))
    settings = Settings(database_url=database_url, rasa_token=secrets.token_urlsafe(16),
                        hub_port=free_port(), redis_url=redis_url, redis_key_prefix=prefix)
    layout = ScaleLayout(
        database_url=database_url, tracker_url=database_url, redis_url=redis_url,
        redis_key_prefix=prefix, rasa_ports=tuple(free_port() for _ in range(rasa_replicas)),
        hub_ports=tuple(free_port() for _ in range(hub_replicas)), action_port=free_port(),
        action_ports=tuple(free_port() for _ in range(action_replicas)),
        balancer_host="127.0.0.1", balancer_port=settings.hub_port, run_dir=work / "scale")
    stack = None
    try:
        stack = scale_stack(settings, work / "logs", layout=layout, say=lambda _line: None,
                            extra_env={"ENV_FILE": os.devnull, **load_env()})
        stack.start()
        stack.wait_healthy(timeout=900)
        yield Target("scale", stack.hub_url, database_url, stack)
    finally:
        if stack is not None:
            stack.stop()
        keep_logs(work / "logs", "scale")
        drop_database(database_url)
        forget_redis_prefix(redis_url, prefix)
        shutil.rmtree(work, ignore_errors=True)


def external_target(url: str) -> Target:
    db = os.environ.get("BENCH_LOAD_DATABASE_URL") or None
    return Target("external", url.rstrip("/"), db, None, notes=[
        "stack started elsewhere: raise its IP_RATE_BURST / IP_RATE_PER_SECOND yourself "
        "(every simulated customer comes from this machine's address)"]
        + ([] if db else ["no BENCH_LOAD_DATABASE_URL: no case-status questions and no "
                          "transcript check"]))


def case_refs(database_url: str | None, limit: int = 20) -> list[CaseRef]:
    """Real cases with their customer's e-mail (the status question's identity check)."""
    if not database_url:
        return []
    engine = create_engine(database_url, future=True)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text(
                "SELECT c.number, cu.email FROM cases c JOIN customers cu "
                "ON cu.id = c.customer_id WHERE cu.email IS NOT NULL ORDER BY c.id LIMIT :n"),
                {"n": limit}).all()
    finally:
        engine.dispose()
    return [CaseRef(number, email) for number, email in rows]


def postgres_backends(database_url: str | None):
    """A callable listing the PostgreSQL backend pids connected to the stack's database
    (their CPU is the database's share of each turn); None for SQLite."""
    if not database_url or not database_url.startswith("postgresql"):
        return None
    name = make_url(database_url).database

    def pids() -> list[int]:
        engine = create_engine(PG_SERVER, future=True)
        try:
            with engine.connect() as conn:
                return [r[0] for r in conn.execute(text(
                    "SELECT pid FROM pg_stat_activity WHERE datname = :n "
                    "AND pid <> pg_backend_pid()"), {"n": name})]
        finally:
            engine.dispose()

    return pids
