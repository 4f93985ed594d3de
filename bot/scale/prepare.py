"""Everything the scale profile needs before its processes start: PostgreSQL reachable and its
database created, migrated and set up (demo data, KB, first admin), Rasa's tracker table,
Redis reachable, Rasa's endpoints file and HAProxy's config. Each step fails with a message
that says what to start or set, instead of leaving a child to crash in a loop."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from bot.core.config import ROOT, Settings
from bot.scale import endpoints, haproxy
from bot.scale.layout import ScaleLayout
from bot.scale.stack import ScaleStack


class PrepareError(RuntimeError):
    """The scale profile cannot start (message: what is missing and how to fix it)."""


def _where(url: str) -> str:
    from sqlalchemy.engine import make_url

    u = make_url(url)
    return f"{u.host or 'localhost'}:{u.port or 5432}"


def ensure_database(url: str) -> bool:
    """Create the database of ``url`` when missing (connecting to the server's ``postgres``
    database as the same user). True when it was created."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import OperationalError

    target = make_url(url)
    name = target.database
    if not name:
        raise PrepareError(f"SCALE_DATABASE_URL names no database: {target!r}")
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT",
                          future=True)
    try:
        with admin.connect() as conn:
            if conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"),
                            {"n": name}).first():
                return False
            conn.execute(text(f'CREATE DATABASE "{name}"'))
            return True
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise PrepareError(
            f"PostgreSQL at {_where(url)} is not usable ({reason}): start it, or point "
            "SCALE_DATABASE_URL (or DATABASE_URL) at a server where this user may create "
            "databases") from exc
    finally:
        admin.dispose()


def ensure_tracker_table(url: str, env: dict[str, str]) -> bool:
    """Have Rasa's own code create its ``events`` table once, before the replicas start:
    several Rasa servers creating it at the same moment race (one of them fails)."""
    from sqlalchemy import create_engine, inspect

    engine = create_engine(url, future=True)
    try:
        if inspect(engine).has_table("events"):
            return False
    finally:
        engine.dispose()
    code = ("import os; from rasa.core.tracker_store import SQLTrackerStore; "
            "SQLTrackerStore(dialect='postgresql', host=os.environ['SCALE_TRACKER_URL'])")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, env={**env, "SCALE_TRACKER_URL": url}, timeout=300)
    if done.returncode != 0:
        raise PrepareError(f"could not create Rasa's tracker table:\n{done.stderr[-2000:]}")
    return True


def check_redis(url: str) -> None:
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3).ping()
    except (redis.RedisError, OSError) as exc:
        raise PrepareError(
            f"Redis at {url.split('@')[-1]} is not reachable ({exc}): start it (e.g. "
            "`redis-server --daemonize yes`) or set REDIS_URL; the scale profile's Rasa "
            "servers lock conversations there") from exc


def run_setup(url: str, env: dict[str, str]) -> str:
    """`python -m bot setup` against the scale database: migrations, demo data, KB, admin."""
    done = subprocess.run([sys.executable, "-m", "bot", "setup"], cwd=ROOT, capture_output=True,
                          text=True, env={**env, "DATABASE_URL": url}, timeout=600)
    if done.returncode != 0:
        raise PrepareError(f"`python -m bot setup` failed on the scale database:\n"
                           f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return done.stdout


def scale_stack(settings: Settings, log_dir: Path, *, extra_env: dict[str, str] | None = None,
                layout: ScaleLayout | None = None,
                say: Callable[[str], None] = print) -> ScaleStack:
    """Prepare the databases and files and return the (not yet started) stack."""
    layout = layout or ScaleLayout.from_env(settings)
    settings = replace(settings, database_url=layout.database_url,
                       rasa_tracker_url=layout.tracker_url, redis_url=layout.redis_url)
    env = {**os.environ, **(extra_env or {})}
    haproxy.binary()  # before the slow steps: a missing balancer is the likeliest problem
    check_redis(layout.redis_url)
    if ensure_database(layout.database_url):
        say(f"created PostgreSQL database on {_where(layout.database_url)}")
    for line in run_setup(layout.database_url, env).splitlines():
        say(line)
    if layout.tracker_url != layout.database_url:
        ensure_database(layout.tracker_url)
    if ensure_tracker_table(layout.tracker_url, env):
        say("created Rasa's tracker table")
    endpoints.write_endpoints(layout.run_dir / "endpoints.yml", layout.redis_url,
                              layout.lock_key_prefix)
    rasa_timeout = float(env.get("RASA_TIMEOUT") or settings.rasa_timeout)
    queue_timeout = float(env.get("RASA_QUEUE_TIMEOUT") or settings.rasa_queue_timeout)
    haproxy.write_config(layout.run_dir / "haproxy.cfg", layout.balancer_host,
                         layout.balancer_port, layout.hubs, rasa_timeout=rasa_timeout,
                         queue_timeout=queue_timeout, actions=layout.actions,
                         action_port=layout.action_port)
    return ScaleStack(settings, rasa_port=layout.rasa_ports[0], action_port=layout.action_port,
                      log_dir=log_dir, extra_env=dict(extra_env or {}), layout=layout)


def prepare_or_explain(settings: Settings, log_dir: Path) -> ScaleStack | None:
    """``scale_stack`` for the launcher: a problem is printed as one clear error (None)."""
    from bot.scale.layout import LayoutError

    print("preparing the scale profile (PostgreSQL, Redis, HAProxy)…", flush=True)
    try:
        return scale_stack(settings, log_dir, say=lambda line: print(line, flush=True))
    except (PrepareError, LayoutError, haproxy.HAProxyMissing, ValueError,
            RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None
