"""`python -m bot db backup|restore FILE` through the real command line: a restore into a
fresh database brings back every table, Rasa's tracker events and the photos (SQLite, and
PostgreSQL when reachable); a backup taken while somebody writes is a consistent snapshot;
bad inputs get one line on stderr and a non-zero exit, and leave the target untouched."""

from __future__ import annotations

import io
import json
import os
import sqlite3
import stat
import subprocess
import tarfile
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import (
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    select,
    text,
)
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from bot.core.config import ROOT
from bot.db import backup
from bot.db.migrate import alembic_config, upgrade
from bot.db.models import Base, TelegramUpdate
from bot.db.session import make_engine
from bot.services import cases, demo, demo_activity, users
from bot.services import conversations as convs
from bot.services.kb import store
from bot.services.uploads import link_to_case, store_image
from tests.conftest import PG_ADMIN_URL, free_port, postgres_reachable, run_cli
from tests.test_integration_cases import PNG

BACKENDS = ["sqlite"] + (["postgresql"] if postgres_reachable() else [])


@dataclass
class Service:
    """Where one installation keeps its data, as the CLI sees it through the environment."""

    db_url: str
    uploads: Path
    tracker_url: str = ""  # empty: Settings' default (own SQLite file, or the PostgreSQL DB)

    hub_port: int = field(default_factory=free_port)  # a restore first asks if a hub runs

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        return run_cli(*args, env={**os.environ, "DATABASE_URL": self.db_url,
                                   "RASA_TRACKER_URL": self.tracker_url,
                                   "UPLOAD_DIR": str(self.uploads),
                                   "HUB_PORT": str(self.hub_port)})

    @property
    def events_url(self) -> str:
        return self.tracker_url or self.db_url


def sqlite_service(directory: Path) -> Service:
    return Service(f"sqlite:///{directory / 'postventa.db'}", directory / "uploads",
                   f"sqlite:///{directory / 'rasa_tracker.db'}")


EVENTS = Table("events", MetaData(),  # the columns of Rasa 3.6's SQLTrackerStore
               Column("id", Integer, primary_key=True),
               Column("sender_id", String(255), nullable=False, index=True),
               Column("type_name", String(255), nullable=False), Column("timestamp", Float),
               Column("intent_name", String(255)), Column("action_name", String(255)),
               Column("data", Text))


def populate(service: Service) -> None:
    """What `python -m bot setup` writes (schema, KB, demo customers, orders and 140 past
    conversations, first admin) — in-process, without setup's warming of the search index,
    which takes minutes on a cold machine and writes nothing to the database — plus a
    conversation with a transcript and a case with a photo, and a few tracker events."""
    upgrade(service.db_url)
    engine = create_engine(service.db_url, poolclass=NullPool)
    with Session(engine) as session:
        store.import_directory(session, ROOT / "knowledge_base", actor="bootstrap",
                               only_new=True)
        assert demo.load(session) and demo_activity.load(session)
        users.ensure_first_admin(session, "admin", "backup-test-password")
        session.commit()
    with Session(engine) as session:
        conv = convs.open_or_continue(session, sender="web-backup-0001", channel="web",
                                      idle_timeout=1800, default_language="es").conversation
        asked = convs.add_message(session, conv, direction="in", author="customer",
                                  text="la cafetera llegó rota 😞", client_message_id="m1")
        convs.add_message(session, conv, direction="out", author="bot", reply_to=asked,
                          text="¿Tienes una foto?", payload={"buttons": []})
        case = cases.open_case(session, case_type="warranty", description="se rompió",
                               conversation_id=conv.id).case
        photo = store_image(session, PNG, conversation_id=conv.id, max_bytes=10_000,
                            directory=service.uploads)
        link_to_case(session, photo.id, case.id)
        session.commit()
    engine.dispose()
    tracker = create_engine(service.events_url, poolclass=NullPool)
    with tracker.begin() as conn:
        EVENTS.create(conn)
        conn.execute(EVENTS.insert(), [
            {"sender_id": "web-backup-0001", "type_name": t, "timestamp": 1_764_000_000.5 + i,
             "intent_name": "greet" if t == "user" else None, "data": json.dumps({"i": i})}
            for i, t in enumerate(["action", "user", "bot"])])
    tracker.dispose()


def table_rows(url: str, names: list[str]) -> dict[str, list[tuple]]:
    engine = create_engine(url, poolclass=NullPool)
    rows: dict[str, list[tuple]] = {}
    try:
        with engine.connect() as conn:
            for name in names:
                table = Base.metadata.tables.get(name)
                if table is None:  # Rasa's events, alembic_version
                    table = Table(name, MetaData(), autoload_with=conn)
                order = list(table.primary_key.columns) or list(table.columns)
                rows[name] = [tuple(r) for r in conn.execute(select(table).order_by(*order))]
    finally:
        engine.dispose()
    return rows


def state(service: Service) -> dict[str, Any]:
    """Everything a restore must bring back."""
    names = [t.name for t in Base.metadata.sorted_tables] + ["alembic_version"]
    data: dict[str, Any] = table_rows(service.db_url, names)
    data["events (tracker)"] = table_rows(service.events_url, ["events"])["events"]
    data["photos"] = {p.name: p.read_bytes() for p in sorted(service.uploads.iterdir())
                      if p.is_file()} if service.uploads.is_dir() else {}
    return data


# --- sources, built once -------------------------------------------------------------------

@pytest.fixture(scope="module")
def sqlite_source(tmp_path_factory) -> Service:
    service = sqlite_service(tmp_path_factory.mktemp("sqlite-source"))
    populate(service)
    return service


@pytest.fixture(scope="module")
def new_pg_database() -> Iterator[Callable[[], str]]:
    """Makes empty PostgreSQL databases (dropped at the end)."""
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", future=True)
    made: list[str] = []

    def make() -> str:
        name = f"postventa_backup_{uuid.uuid4().hex[:10]}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        made.append(name)
        return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"

    yield make
    with admin.connect() as conn:
        for name in made:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="module")
def postgresql_source(new_pg_database, tmp_path_factory) -> Service:
    # the tracker's `events` table lives in the same database (Settings' default)
    service = Service(new_pg_database(), tmp_path_factory.mktemp("pg-source") / "uploads")
    populate(service)
    return service


@pytest.fixture(scope="module")
def sqlite_archive(sqlite_source, tmp_path_factory) -> Path:
    archive = tmp_path_factory.mktemp("archives") / "postventa.tar.gz"
    result = sqlite_source.cli("db", "backup", str(archive))
    assert result.returncode == 0, result.stderr
    return archive


# --- a restore brings everything back --------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_restore_into_a_fresh_database_brings_everything_back(backend, request, tmp_path):
    source: Service = request.getfixturevalue(f"{backend}_source")
    archive = tmp_path / "backup.tar.gz"
    result = source.cli("db", "backup", str(archive))
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600  # personal data
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        manifest = json.load(tar.extractfile("manifest.json"))
    assert names[0] == "manifest.json"
    assert manifest["kind"] == backend and manifest["schema_revision"] == _head()
    assert len([n for n in names if n.startswith("uploads/")]) == 1

    if backend == "sqlite":
        target = sqlite_service(tmp_path / "fresh")
        assert "rasa_tracker.db" in names
    else:
        target = Service(request.getfixturevalue("new_pg_database")(), tmp_path / "uploads")
        assert "rasa_tracker.db" not in names  # events are in the dump of the same database
    result = target.cli("db", "restore", str(archive))
    assert result.returncode == 0, result.stderr

    expected, restored = state(source), state(target)
    assert expected["cases"] and expected["messages"] and expected["conversations"]
    assert expected["attachments"] and len(expected["events (tracker)"]) == 3
    for table in expected:
        assert restored[table] == expected[table], f"{table} differs after the restore"
    assert restored.keys() == expected.keys()
    for photo in target.uploads.iterdir():
        assert stat.S_IMODE(photo.stat().st_mode) == 0o600
    if backend == "sqlite":
        assert stat.S_IMODE(Path(target.db_url.split("///")[1]).stat().st_mode) == 0o600
    engine = create_engine(target.db_url, poolclass=NullPool)
    with Session(engine) as session:  # the restored database goes on (ids, sequences)
        case = cases.open_case(session, case_type="return").case
        session.commit()
        assert case.id > max(row[0] for row in expected["cases"])
    engine.dispose()


@pytest.mark.skipif("postgresql" not in BACKENDS, reason="PostgreSQL not reachable")
def test_postgresql_restore_replaces_existing_data_but_not_while_connected(
        postgresql_source, new_pg_database, tmp_path):
    archive = tmp_path / "pg.tar.gz"
    assert postgresql_source.cli("db", "backup", str(archive)).returncode == 0
    target = Service(new_pg_database(), tmp_path / "uploads")
    assert target.cli("db", "restore", str(archive)).returncode == 0
    engine = create_engine(target.db_url, poolclass=NullPool)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM case_events"))
        conn.execute(text("INSERT INTO telegram_updates (update_key, received_at) "
                          "VALUES ('1:1', now())"))
    with engine.connect() as conn:  # the stack is still connected
        conn.execute(text("SELECT 1"))
        _assert_one_line_error(target.cli("db", "restore", str(archive)), "other connection")
    engine.dispose()
    result = target.cli("db", "restore", str(archive))
    assert result.returncode == 0, result.stderr
    assert state(target) == state(postgresql_source)


def test_restore_replaces_existing_data_but_not_under_a_running_stack(sqlite_source,
                                                                     sqlite_archive, tmp_path):
    target = sqlite_service(tmp_path / "target")
    assert target.cli("db", "restore", str(sqlite_archive)).returncode == 0
    engine = make_engine(target.db_url)  # as the hub does: WAL
    with Session(engine) as session:
        session.add(TelegramUpdate(update_key="1:999"))
        session.commit()
    engine.dispose()
    stray = target.uploads / f"{'f' * 32}.png"  # a photo the backup does not know
    stray.write_bytes(PNG)
    notes = target.uploads / "README.txt"  # not one of our photo names: left alone
    notes.write_text("kept")

    connection = sqlite3.connect(target.db_url.split("///")[1])  # somebody has it open
    connection.execute("SELECT count(*) FROM cases").fetchone()
    refused = target.cli("db", "restore", str(sqlite_archive))
    connection.close()
    _assert_one_line_error(refused, "in use")
    with _fake_hub(target.hub_port):  # an idle hub holds no connection: asked over HTTP
        refused = target.cli("db", "restore", str(sqlite_archive))
    _assert_one_line_error(refused, "the hub is running")
    assert table_rows(target.db_url, ["telegram_updates"])["telegram_updates"]

    result = target.cli("db", "restore", str(sqlite_archive))
    assert result.returncode == 0, result.stderr
    assert "1 photo(s) not in the backup removed" in result.stdout
    assert not stray.exists() and notes.read_text() == "kept"
    after = state(target)
    after["photos"].pop("README.txt")
    assert after == state(sqlite_source)


@contextmanager
def _fake_hub(port: int) -> Iterator[None]:
    """Answers /healthz like the hub does."""
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            body = json.dumps({"status": "ok", "checks": {}, "down": [],
                               "channels": {}}).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


def test_an_older_schema_is_migrated_on_restore(tmp_path):
    from alembic.script import ScriptDirectory

    source = sqlite_service(tmp_path / "old")
    script = ScriptDirectory.from_config(alembic_config(source.db_url))
    previous = script.get_revision(script.get_current_head()).down_revision
    upgrade(source.db_url, previous)
    archive = tmp_path / "old.tar.gz"
    result = source.cli("db", "backup", str(archive))
    assert result.returncode == 0, result.stderr
    assert "tracker file does not exist yet" in result.stdout

    target = sqlite_service(tmp_path / "new")
    result = target.cli("db", "restore", str(archive))
    assert result.returncode == 0, result.stderr
    assert f"schema migrated from {previous} to {_head()}" in result.stdout
    assert table_rows(target.db_url, ["alembic_version"])["alembic_version"] == [(_head(),)]


def test_backup_while_a_writer_is_writing_is_a_consistent_snapshot(sqlite_source, tmp_path):
    source = sqlite_service(tmp_path / "busy")
    source.uploads.mkdir(parents=True)
    with closing(sqlite3.connect(sqlite_source.db_url.split("///")[1])) as src, \
            closing(sqlite3.connect(source.db_url.split("///")[1])) as dst:
        src.backup(dst)
    engine = make_engine(source.db_url)
    stop, errors, written = threading.Event(), [], [0]

    def writer() -> None:
        try:
            while not stop.is_set():
                with Session(engine) as session:  # one row per transaction, keys 0, 1, 2…
                    session.add(TelegramUpdate(update_key=f"1:{written[0]}"))
                    session.commit()
                written[0] += 1
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        while written[0] < 200:
            time.sleep(0.01)
        before = written[0]
        archive = tmp_path / "busy.tar.gz"
        result = source.cli("db", "backup", str(archive))
        after = written[0]
    finally:
        stop.set()
        thread.join()
        engine.dispose()
    assert result.returncode == 0, result.stderr
    assert not errors, errors  # the backup never blocked the writer into an error
    assert after > before  # the writer really wrote during the backup

    target = sqlite_service(tmp_path / "busy-restored")
    result = target.cli("db", "restore", str(archive))
    assert result.returncode == 0, result.stderr
    keys = [int(r[0].split(":")[1]) for r in
            table_rows(target.db_url, ["telegram_updates"])["telegram_updates"]]
    assert before <= len(keys) <= after + 1  # +1: committed, not yet counted
    assert sorted(keys) == list(range(len(keys)))  # a prefix: one moment in time, no holes
    with closing(sqlite3.connect(target.db_url.split("///")[1])) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


# --- bad inputs --------------------------------------------------------------------------------

def _head() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def _rewrite(archive: Path, out: Path, *, manifest: Callable[[dict], None] | None = None,
             member: tuple[str, Callable[[bytes], bytes]] | None = None) -> Path:
    """A copy of ``archive`` with its manifest or one member changed."""
    with tarfile.open(archive) as src, tarfile.open(out, "w:gz") as dst:
        for info in src.getmembers():
            data = src.extractfile(info).read()
            if info.name == "manifest.json" and manifest:
                doc = json.loads(data)
                manifest(doc)
                data = json.dumps(doc).encode()
            if member and info.name == member[0]:
                data = member[1](data)
            info.size = len(data)
            dst.addfile(info, io.BytesIO(data))
    return out


def _zip(out: Path) -> Path:
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("manifest.json", "{}")
    return out


def _plain_tar(out: Path) -> Path:
    with tarfile.open(out, "w") as tar:
        tar.add(Path(__file__), arcname="notes.py")
    return out


def _flip(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1:]


RESTORE_REFUSALS: dict[str, tuple[Callable[[Path, Path], Path], str]] = {
    "missing file": (lambda a, tmp: tmp / "nope.tar.gz", "does not exist"),
    "a directory": (lambda a, tmp: tmp, "is not a file"),
    "not an archive": (lambda a, tmp: Path(__file__), "is not a backup archive"),
    "a zip": (lambda a, tmp: _zip(tmp / "b.zip"), "is not a backup archive"),
    "a foreign tar": (lambda a, tmp: _plain_tar(tmp / "t.tar"), "not a postventa backup"),
    "truncated": (lambda a, tmp: _truncated(a, tmp / "cut.tar.gz"), "is corrupt"),
    "a changed byte": (lambda a, tmp: _rewrite(a, tmp / "x.tar.gz",
                                               member=("postventa.db", _flip)),
                       "checksum mismatch"),
    "a member missing": (lambda a, tmp: _rewrite(a, tmp / "m.tar.gz", manifest=lambda d: d[
        "files"].update({"uploads/extra.png": {"size": 1, "sha256": "0"}})), "missing"),
    "another format": (lambda a, tmp: _rewrite(a, tmp / "f.tar.gz", manifest=lambda d: d.update(
        format="something-else")), "not a postventa backup"),
    "made by newer code": (lambda a, tmp: _rewrite(a, tmp / "n.tar.gz", manifest=lambda d: d.update(
        schema_revision="9999_future")), "newer code"),
    "a path outside": (lambda a, tmp: _rewrite(a, tmp / "p.tar.gz", manifest=lambda d: d[
        "files"].update({"../evil": {"size": 1, "sha256": "0"}})), "unexpected member"),
}


def _truncated(archive: Path, out: Path) -> Path:
    out.write_bytes(archive.read_bytes()[: archive.stat().st_size * 2 // 3])
    return out


@pytest.mark.parametrize("case", list(RESTORE_REFUSALS))
def test_restore_refuses_bad_archives_without_touching_anything(case, sqlite_archive, tmp_path):
    make, message = RESTORE_REFUSALS[case]
    (tmp_path / "inputs").mkdir()
    bad = make(sqlite_archive, tmp_path / "inputs")
    target = sqlite_service(tmp_path / "target")
    result = target.cli("db", "restore", str(bad))
    _assert_one_line_error(result, message)
    assert not (tmp_path / "target").exists() or not any((tmp_path / "target").rglob("*"))


def test_restore_refuses_a_sqlite_backup_for_postgresql(sqlite_archive, tmp_path):
    target = Service("postgresql://postventa@127.0.0.1:5432/not_contacted", tmp_path / "up")
    result = target.cli("db", "restore", str(sqlite_archive))
    _assert_one_line_error(result, "backup of a SQLite database but DATABASE_URL is PostgreSQL")


def test_restore_refuses_another_tracker_layout(sqlite_archive, tmp_path):
    target = sqlite_service(tmp_path)
    target.tracker_url = target.db_url  # Rasa's events inside the case database
    result = target.cli("db", "restore", str(sqlite_archive))
    _assert_one_line_error(result, "RASA_TRACKER_URL")


def test_backup_refusals(sqlite_source, tmp_path):
    existing = tmp_path / "exists.tar.gz"
    existing.write_bytes(b"precious")
    _assert_one_line_error(sqlite_source.cli("db", "backup", str(existing)), "--force")
    assert existing.read_bytes() == b"precious"
    result = sqlite_source.cli("db", "backup", str(existing), "--force")
    assert result.returncode == 0, result.stderr
    assert tarfile.is_tarfile(existing) and stat.S_IMODE(existing.stat().st_mode) == 0o600

    _assert_one_line_error(sqlite_source.cli("db", "backup", str(tmp_path / "no" / "b.tgz")),
                           "does not exist")
    _assert_one_line_error(sqlite_source.cli("db", "backup", str(tmp_path)), "is a directory")
    if os.geteuid() == 0:  # root may write anywhere a mode forbids: use a place nobody can
        unwritable = Path("/proc")
    else:
        unwritable = tmp_path / "read-only"
        unwritable.mkdir(mode=0o500)
    _assert_one_line_error(sqlite_source.cli("db", "backup", str(unwritable / "b.tgz")),
                           "cannot write to")
    missing_db = Service(f"sqlite:///{tmp_path / 'none.db'}", tmp_path / "up")
    _assert_one_line_error(missing_db.cli("db", "backup", str(tmp_path / "c.tgz")),
                           "no database file")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exists.tar.gz"] + (
        [] if unwritable == Path("/proc") else ["read-only"])  # no partial files left


def _assert_one_line_error(result: subprocess.CompletedProcess, message: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert message in lines[0], lines[0]
    assert "Traceback" not in result.stderr


# --- secrets -------------------------------------------------------------------------------------

def test_password_goes_to_the_environment_never_to_the_archive_or_argv():
    url = "postgresql+psycopg2://app:s3cr%40t@db.example:6432/postventa?sslmode=require"
    assert backup._public(url) == ("postgresql+psycopg2://app@db.example:6432/postventa"
                                   "?sslmode=require")
    env = backup._pg_env(url)
    assert (env["PGPASSWORD"], env["PGUSER"], env["PGHOST"], env["PGPORT"], env["PGDATABASE"],
            env["PGSSLMODE"]) == ("s3cr@t", "app", "db.example", "6432", "postventa", "require")
    assert "s3cr" not in backup._conninfo_dbname(url)

