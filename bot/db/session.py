"""Engine and session factory.

SQLite gets WAL, foreign keys and a busy timeout on every connection: the hub, the action
server and the CLI write to the same file from different processes.

SQLite connections are pooled (SQLAlchemy 1.4 would open and close one per session for a
file database). Opening one costs four PRAGMAs, and closing the last connection to a WAL
database checkpoints and deletes the WAL file: per turn that was a few milliseconds on an
idle machine and over ten on a busy one (measured on the hub for issue 14).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import QueuePool

# connections kept open per process; more are opened when needed (never waited for, as
# before pooling: a burst of turns queues on SQLite's own lock, not on the pool) and closed
# when given back beyond these
SQLITE_POOL_SIZE = 8


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        database = make_url(url).database
        in_memory = database in (None, "", ":memory:") or "mode=memory" in url
        pooled = {} if in_memory else {
            "poolclass": QueuePool, "pool_size": SQLITE_POOL_SIZE, "max_overflow": -1}
        engine = create_engine(
            url, future=True, connect_args={"timeout": 15, "check_same_thread": False},
            **pooled,
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:  # pragma: no cover - trivial
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=15000")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    return create_engine(url, future=True, pool_pre_ping=True)


@lru_cache(maxsize=8)
def engine_for(url: str) -> Engine:
    """One engine (and pool) per URL per process."""
    return make_engine(url)


def session_factory(url: str) -> sessionmaker:
    return sessionmaker(bind=engine_for(url), future=True, expire_on_commit=False)


@contextmanager
def session_scope(url: str) -> Iterator[Session]:
    """A unit of work: commit on success, roll back on error."""
    session = session_factory(url)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
