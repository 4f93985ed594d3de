"""Backups of the whole service: ``python -m bot db backup FILE`` / ``db restore FILE``.

A backup must bring the *service* back, not just our tables: the case database, Rasa's
tracker store (conversation memory; a separate SQLite file by default) and the photos
customers uploaded (referenced by ``attachments`` rows) are taken together.

Archive format (version 1): a gzip-compressed tar file, written with mode 0600 because it
holds personal data (names, e-mails, phones, transcripts, photos) — keep it that way.

    manifest.json          first member, see below
    postventa.db           case database, SQLite (online-backup snapshot, journal_mode DELETE)
    postventa.pgdump       … or PostgreSQL (``pg_dump --format=custom``; with PostgreSQL the
                           tracker's ``events`` table usually lives in the same database)
    rasa_tracker.db        Rasa's tracker when it is its own SQLite file (and exists yet)
    rasa_tracker.pgdump    … or its own PostgreSQL database
    uploads/<name>         every photo under UPLOAD_DIR

``manifest.json``::

    {"format": "postventa-backup", "format_version": 1,
     "created_at": "2026-11-27T10:00:00+00:00", "kind": "sqlite" | "postgresql",
     "schema_revision": "0003",                  # alembic revision of the case database
     "source": "sqlite:///…/postventa.db",       # DATABASE_URL, never with its password
     "databases": {"cases": {"kind", "member", "source"},
                   "tracker": {"kind", "member", "source"} | null},
     "tracker_layout": "shared" | "separate",    # tracker inside the case database or not
     "files": {"<member>": {"size": n, "sha256": "…"}, …}}

Taking a backup is safe while the stack runs: SQLite is copied with the online backup API
(one consistent snapshot; WAL writers are not blocked), PostgreSQL by ``pg_dump`` (one
snapshot), and photos are read *after* the database snapshot, so every photo the snapshot
refers to was complete on disk already.

Restoring replaces the current data: **stop the stack first**. It refuses (exit code 2, the
reason on one line) an archive that is not ours, is corrupt (every member is checked against
its SHA-256 before anything is touched), was made by newer code (unknown schema revision),
holds another kind of database than DATABASE_URL (SQLite vs PostgreSQL) or another tracker
layout, and a SQLite database still in use. Everything is unpacked and checked first; then
PostgreSQL is restored in one transaction (``pg_restore --clean --if-exists --no-owner
--single-transaction``) and SQLite files are swapped in with ``os.replace`` (never half a
file). An older schema is migrated to the code's head afterwards. Photos of the backup are
written back; our own photo files (random hex names) that the backup does not know are removed
so no orphaned personal data stays behind.

PostgreSQL tools get the connection through libpq environment variables (``PGPASSWORD`` …),
never on the command line, where any local user could read it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy.engine import URL, make_url

from bot.core.config import Settings

FORMAT = "postventa-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
_CHUNK = 1 << 20
_UPLOAD_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_OUR_PHOTO = re.compile(r"[0-9a-f]{32}\.(jpg|png|webp)")  # names store_image gives
_MEMBER = re.compile(r"(postventa|rasa_tracker)\.(db|pgdump)|uploads/" + _UPLOAD_NAME.pattern)
_EXT = {"sqlite": "db", "postgresql": "pgdump"}
# libpq understands these URL query parameters; everything else is SQLAlchemy's business
_LIBPQ_QUERY = {"sslmode": "PGSSLMODE", "sslrootcert": "PGSSLROOTCERT",
                "sslcert": "PGSSLCERT", "sslkey": "PGSSLKEY", "connect_timeout":
                "PGCONNECT_TIMEOUT", "application_name": "PGAPPNAME", "options": "PGOPTIONS",
                "host": "PGHOST", "port": "PGPORT"}
_PG_CONNECTION_VARS = ("PGHOST", "PGHOSTADDR", "PGPORT", "PGUSER", "PGPASSWORD",
                       "PGDATABASE", "PGSERVICE")


class BackupError(Exception):
    """A refusal or failure with a message fit for one stderr line (exit code 2)."""

    exit_code = 2


@dataclass
class Report:
    """What a backup or restore did, for the one-line summary the CLI prints."""

    path: Path
    manifest: dict[str, Any]
    photos: int = 0
    notes: list[str] = field(default_factory=list)

    def parts(self) -> str:
        tracker = self.manifest["databases"].get("tracker")
        what = [f"case database ({self.manifest['kind']}, schema "
                f"{self.manifest['schema_revision']})"]
        if tracker:
            what.append("Rasa tracker")
        elif self.manifest["tracker_layout"] == "shared":
            what.append("Rasa tracker (in the case database)")
        what.append(f"{self.photos} photo{'s' if self.photos != 1 else ''}")
        return ", ".join(what)


# --- databases ---------------------------------------------------------------------------

def _kind(url: str) -> str:
    try:
        backend = make_url(url).get_backend_name()
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy raises ArgumentError and others
        raise BackupError(f"not a database URL: {_public(url)!r}") from exc
    if backend not in _EXT:
        raise BackupError(f"backups support SQLite and PostgreSQL, not {backend}")
    return backend


def _sqlite_path(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise BackupError(f"{url} is not a database file")
    return Path(database).resolve()


def _public(url: str) -> str:
    """The URL without its password, for the manifest and messages."""
    try:
        parsed = make_url(url)
    except Exception:  # noqa: BLE001 - not a URL at all: show nothing of it
        return "<unparseable URL>"
    query = {k: v for k, v in parsed.query.items() if k != "password"}
    # URL.set(password=None) would keep the password (None means "unchanged" there)
    clean = URL.create(parsed.drivername, username=parsed.username, host=parsed.host,
                       port=parsed.port, database=parsed.database, query=query)
    return clean.render_as_string(hide_password=False)


def _same_database(a: str, b: str) -> bool:
    if _kind(a) != _kind(b):
        return False
    if _kind(a) == "sqlite":
        return _sqlite_path(a) == _sqlite_path(b)
    ua, ub = make_url(a), make_url(b)
    return (ua.host, ua.port or 5432, ua.database) == (ub.host, ub.port or 5432, ub.database)


def _pg_env(url: str) -> dict[str, str]:
    """libpq environment for ``url``: password in PGPASSWORD, never in argv."""
    parsed: URL = make_url(url)
    env = {k: v for k, v in os.environ.items() if k not in _PG_CONNECTION_VARS}
    for var, value in (("PGHOST", parsed.host), ("PGPORT", parsed.port),
                       ("PGUSER", parsed.username), ("PGPASSWORD", parsed.password),
                       ("PGDATABASE", parsed.database)):
        if value not in (None, ""):
            env[var] = str(value)
    for key, value in parsed.query.items():
        if key in _LIBPQ_QUERY:
            env[_LIBPQ_QUERY[key]] = value if isinstance(value, str) else value[-1]
    return env


def _pg_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BackupError(f"{name} not found: install postgresql-client")
    return path


def _run_pg(args: list[str], url: str) -> None:
    result = subprocess.run(args, env=_pg_env(url), capture_output=True, text=True)
    if result.returncode != 0:
        lines = [ln.strip() for ln in result.stderr.splitlines() if ln.strip()]
        raise BackupError(f"{Path(args[0]).name} failed: "
                          f"{lines[0] if lines else f'exit code {result.returncode}'}")


def _snapshot(url: str, dest: Path) -> None:
    """A consistent copy of the database at ``url`` into the file ``dest``."""
    if _kind(url) == "postgresql":
        _run_pg([_pg_tool("pg_dump"), "--format=custom", "--no-password", f"--file={dest}"],
                url)
        return
    path = _sqlite_path(url)
    if not path.is_file():
        raise BackupError(f"no database file at {path}")
    src = sqlite3.connect(path, timeout=15)
    dst = sqlite3.connect(dest)
    try:
        src.backup(dst)  # all pages in one step: one read transaction, one snapshot
        dst.execute("PRAGMA journal_mode=DELETE")  # a self-contained file, no -wal needed
        _quick_check(dst, str(path))
    finally:
        dst.close()
        src.close()


def _quick_check(conn: sqlite3.Connection, what: str) -> None:
    try:
        verdict = conn.execute("PRAGMA quick_check").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{what} is not a readable SQLite database: {exc}") from exc
    if verdict != "ok":
        raise BackupError(f"{what} fails SQLite's integrity check: {verdict}")


def _revision_of(url: str) -> str | None:
    """The alembic revision stored in the database (None: never migrated)."""
    from sqlalchemy import create_engine, inspect, text
    from sqlalchemy.pool import NullPool

    engine = create_engine(url, poolclass=NullPool, future=True)
    try:
        with engine.connect() as conn:
            if not inspect(conn).has_table("alembic_version"):
                return None
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    finally:
        engine.dispose()


def _known_revisions(url: str) -> tuple[set[str], str | None]:
    from alembic.script import ScriptDirectory

    from bot.db.migrate import alembic_config

    script = ScriptDirectory.from_config(alembic_config(url))
    return {s.revision for s in script.walk_revisions()}, script.get_current_head()


# --- uploads -----------------------------------------------------------------------------

def _photos(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir()
                  if p.is_file() and not p.is_symlink() and _UPLOAD_NAME.fullmatch(p.name))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


# --- backup ------------------------------------------------------------------------------

def backup(settings: Settings, target: Path, *, uploads: Path, force: bool = False) -> Report:
    """Write a backup of the service configured by ``settings`` to ``target``."""
    try:
        return _backup(settings, target, uploads=uploads, force=force)
    except BackupError:
        raise
    except (OSError, sqlite3.Error) as exc:
        raise BackupError(_describe(exc)) from exc
    except Exception as exc:  # noqa: BLE001 - e.g. SQLAlchemy cannot connect
        raise BackupError(f"backup failed: {_describe(exc)}") from exc


def _backup(settings: Settings, target: Path, *, uploads: Path, force: bool) -> Report:
    target = target.absolute()
    if target.is_dir():
        raise BackupError(f"{target} is a directory: give the archive's file name")
    if target.exists() and not force:
        raise BackupError(f"{target} exists: choose another name or pass --force")
    if not target.parent.exists():
        raise BackupError(f"directory {target.parent} does not exist")
    if not target.parent.is_dir():
        raise BackupError(f"{target.parent} is not a directory")
    if not os.access(target.parent, os.W_OK):
        raise BackupError(f"cannot write to {target.parent}: permission denied")

    db_url, tracker_url = settings.database_url, settings.tracker_url()
    kind = _kind(db_url)
    shared = _same_database(db_url, tracker_url)
    try:
        work_dir = tempfile.TemporaryDirectory(prefix=".postventa-backup-", dir=target.parent)
    except OSError as exc:
        raise BackupError(f"cannot write to {target.parent}: {exc.strerror}") from exc
    with work_dir as tmp:
        work = Path(tmp)
        staged: dict[str, Path] = {}
        databases: dict[str, Any] = {"cases": None, "tracker": None}
        member = f"postventa.{_EXT[kind]}"
        _snapshot(db_url, work / member)
        staged[member] = work / member
        databases["cases"] = {"kind": kind, "member": member, "source": _public(db_url)}
        revision = _revision_of(f"sqlite:///{work / member}" if kind == "sqlite" else db_url)
        if revision is None:
            raise BackupError("the case database has no schema yet: nothing to back up "
                              "(run `python -m bot setup` first)")
        notes = []
        if not shared:
            tracker_kind = _kind(tracker_url)
            tmember = f"rasa_tracker.{_EXT[tracker_kind]}"
            if tracker_kind == "sqlite" and not _sqlite_path(tracker_url).is_file():
                notes.append("Rasa's tracker file does not exist yet (no conversation with "
                             "Rasa so far): not included")
            else:
                _snapshot(tracker_url, work / tmember)
                staged[tmember] = work / tmember
                databases["tracker"] = {"kind": tracker_kind, "member": tmember,
                                        "source": _public(tracker_url)}
        files = {name: {"size": path.stat().st_size, "sha256": _sha256(path)}
                 for name, path in staged.items()}
        photos = []
        for photo in _photos(uploads):  # after the snapshot: the photos it refers to are whole
            try:
                files[f"uploads/{photo.name}"] = {"size": photo.stat().st_size,
                                                  "sha256": _sha256(photo)}
            except FileNotFoundError:
                continue  # erased meanwhile by the retention job: not in this backup
            photos.append(photo)
            staged[f"uploads/{photo.name}"] = photo
        manifest = {"format": FORMAT, "format_version": FORMAT_VERSION,
                    "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    "kind": kind, "schema_revision": revision, "source": _public(db_url),
                    "databases": databases,
                    "tracker_layout": "shared" if shared else "separate", "files": files}
        _write_archive(target, manifest, staged, force=force)
    return Report(target, manifest, photos=len(photos), notes=notes)


def _write_archive(target: Path, manifest: dict[str, Any], staged: dict[str, Path], *,
                   force: bool) -> None:
    """Write next to ``target`` (mode 0600), then move into place in one step."""
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial",
                                        dir=target.parent)
    except OSError as exc:
        raise BackupError(f"cannot write to {target.parent}: {exc.strerror}") from exc
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            with tarfile.open(fileobj=fh, mode="w:gz", compresslevel=6) as tar:
                data = json.dumps(manifest, indent=2).encode()
                _add(tar, MANIFEST, len(data), _BytesReader(data))
                for name, path in staged.items():
                    with path.open("rb") as src:
                        _add(tar, name, manifest["files"][name]["size"], src)
            fh.flush()
            os.fsync(fh.fileno())
        if force:
            os.replace(tmp, target)
        else:
            try:
                os.link(tmp, target)  # fails if somebody created target meanwhile
            except FileExistsError:
                raise BackupError(f"{target} exists: choose another name or pass --force") \
                    from None
            tmp.unlink()
    finally:
        tmp.unlink(missing_ok=True)


class _BytesReader:
    def __init__(self, data: bytes) -> None:
        self._data, self._pos = data, 0

    def read(self, size: int = -1) -> bytes:
        end = len(self._data) if size < 0 else self._pos + size
        chunk, self._pos = self._data[self._pos:end], min(end, len(self._data))
        return chunk


def _add(tar: tarfile.TarFile, name: str, size: int, fileobj: Any) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o600, int(time.time())
    tar.addfile(info, fileobj)


# --- restore -----------------------------------------------------------------------------

def restore(settings: Settings, source: Path, *, uploads: Path) -> Report:
    """Bring back the service configured by ``settings`` from the archive ``source``."""
    try:
        return _restore(settings, source, uploads=uploads)
    except BackupError:
        raise
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        raise BackupError(f"{source} is corrupt: {exc}") from exc
    except (OSError, sqlite3.Error) as exc:
        raise BackupError(_describe(exc)) from exc
    except Exception as exc:  # noqa: BLE001 - e.g. SQLAlchemy cannot connect
        raise BackupError(f"restore failed: {_describe(exc)}") from exc


@contextmanager
def _open_archive(source: Path) -> Iterator[tarfile.TarFile]:
    if not source.exists():
        raise BackupError(f"{source} does not exist")
    if not source.is_file():
        raise BackupError(f"{source} is not a file")
    try:
        tar = tarfile.open(source, mode="r:*")
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        raise BackupError(f"{source} is not a backup archive (not a tar file written by "
                          "`python -m bot db backup`)") from exc
    try:
        yield tar
    finally:
        tar.close()


def _read_manifest(tar: tarfile.TarFile, source: Path) -> dict[str, Any]:
    try:
        members = {m.name: m for m in tar.getmembers()}  # reads to the end: truncation shows
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise BackupError(f"{source} is corrupt: {exc}") from exc
    if MANIFEST not in members or not members[MANIFEST].isfile():
        raise BackupError(f"{source} is not a postventa backup (no {MANIFEST})")
    try:
        manifest = json.loads(tar.extractfile(members[MANIFEST]).read())  # type: ignore[union-attr]
    except ValueError as exc:
        raise BackupError(f"{source} is corrupt: unreadable {MANIFEST}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"{source} is not a postventa backup")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BackupError(f"{source} has backup format {manifest.get('format_version')!r}; "
                          f"this code reads format {FORMAT_VERSION}: use newer code")
    try:
        files = manifest["files"]
        for name in files:
            if not _MEMBER.fullmatch(name):
                raise BackupError(f"{source} is corrupt: unexpected member {name!r}")
            if name not in members or not members[name].isfile() \
                    or members[name].size != files[name]["size"]:
                raise BackupError(f"{source} is corrupt: member {name} missing or truncated")
        for role in ("cases", "tracker"):
            entry = manifest["databases"][role]
            if entry and (entry["member"] not in files or entry["kind"] not in _EXT):
                raise BackupError(f"{source} is corrupt: bad manifest entry for {role}")
        if not manifest["databases"]["cases"] or not manifest["schema_revision"]:
            raise BackupError(f"{source} is corrupt: no case database in it")
    except (KeyError, TypeError) as exc:
        raise BackupError(f"{source} is corrupt: incomplete {MANIFEST}") from exc
    manifest["_members"] = members
    return manifest


def _extract(tar: tarfile.TarFile, manifest: dict[str, Any], name: str, out: BinaryIO,
             source: Path) -> None:
    """Copy one member to ``out``, checking its SHA-256 against the manifest."""
    reader = tar.extractfile(manifest["_members"][name])
    assert reader is not None  # a regular file, checked by _read_manifest
    digest = hashlib.sha256()
    while chunk := reader.read(_CHUNK):
        digest.update(chunk)
        out.write(chunk)
    out.flush()
    os.fsync(out.fileno())
    if digest.hexdigest() != manifest["files"][name]["sha256"]:
        raise BackupError(f"{source} is corrupt: checksum mismatch in {name}")


def _staged_file(directory: Path, name: str) -> tuple[BinaryIO, Path]:
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)  # new directories: private
    fd, path = tempfile.mkstemp(prefix=f".{name}.restore-", dir=directory)  # mode 0600
    return os.fdopen(fd, "wb"), Path(path)


def _check_layout(settings: Settings, manifest: dict[str, Any]) -> None:
    db_url, tracker_url = settings.database_url, settings.tracker_url()
    kind, theirs = _kind(db_url), manifest["kind"]
    if kind != theirs:
        raise BackupError(f"this is a backup of a {_NAME[theirs]} database but DATABASE_URL "
                          f"is {_NAME[kind]}: restore it into the same kind of database")
    shared = _same_database(db_url, tracker_url)
    if shared != (manifest["tracker_layout"] == "shared"):
        where = "inside the case database" if manifest["tracker_layout"] == "shared" \
            else "in its own database"
        raise BackupError(f"the backup keeps Rasa's tracker {where} but RASA_TRACKER_URL here "
                          "does not: set RASA_TRACKER_URL as on the machine it came from")
    tracker = manifest["databases"]["tracker"]
    if tracker and tracker["kind"] != _kind(tracker_url):
        raise BackupError(f"the backup's Rasa tracker is {_NAME[tracker['kind']]} but "
                          f"RASA_TRACKER_URL is {_NAME[_kind(tracker_url)]}")


_NAME = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}


def _hub_running(settings: Settings) -> str | None:
    """The URL of our hub when it answers on HUB_HOST:HUB_PORT (the stack is running).

    With SQLite an idle hub holds no connection, so the database alone cannot tell."""
    import httpx

    host = "127.0.0.1" if settings.hub_host in ("", "0.0.0.0", "::") else settings.hub_host
    url = f"http://[{host}]:{settings.hub_port}" if ":" in host else \
        f"http://{host}:{settings.hub_port}"
    try:
        body = httpx.get(f"{url}/healthz", timeout=1.0, trust_env=False).json()
    except Exception:  # noqa: BLE001 - nothing there, or not JSON: not our hub
        return None
    return url if isinstance(body, dict) and {"checks", "channels"} <= body.keys() else None


def _ensure_idle(url: str) -> None:
    """Refuse to replace a database somebody is connected to (the running stack)."""
    if _kind(url) == "sqlite":
        path = _sqlite_path(url)
        if not path.exists():
            return
        try:
            conn = sqlite3.connect(path, timeout=2)
            try:
                # leaving WAL needs the only connection: a running hub/Rasa makes this fail
                mode = conn.execute("PRAGMA journal_mode=DELETE").fetchone()[0]
            finally:
                conn.close()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                return  # not a database we could open: it is replaced anyway
            mode = "busy"
        except sqlite3.DatabaseError:
            return
        if mode != "delete":
            raise BackupError(f"{path} is in use: stop the stack (make run / python -m bot "
                              "run) before restoring")
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    engine = create_engine(url, poolclass=NullPool, future=True)
    try:
        with engine.connect() as conn:
            others = conn.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND backend_type = 'client backend'")).scalar()
    finally:
        engine.dispose()
    if others:
        raise BackupError(f"{_public(url)} has {others} other connection(s): stop the stack "
                          "before restoring")


def _restore(settings: Settings, source: Path, *, uploads: Path) -> Report:
    source = source.absolute()
    with _open_archive(source) as tar:
        manifest = _read_manifest(tar, source)
        _check_layout(settings, manifest)
        db_url = settings.database_url
        known, head = _known_revisions(db_url)
        revision = manifest["schema_revision"]
        if revision not in known:
            raise BackupError(f"{source} has schema revision {revision!r}, unknown to this code "
                              f"(head {head}): it was made by newer code; update it first")
        targets = [("cases", db_url)]
        if manifest["databases"]["tracker"]:
            targets.append(("tracker", settings.tracker_url()))
        hub = _hub_running(settings)
        if hub:
            raise BackupError(f"the hub is running at {hub}: stop the stack (make run / "
                              "python -m bot run) before restoring")
        for _role, url in targets:
            _ensure_idle(url)

        staged: list[tuple[str, str, Path]] = []  # (kind, target url, staged file)
        photos: list[tuple[Path, Path]] = []  # (staged file, final path)
        work = tempfile.TemporaryDirectory(prefix="postventa-restore-")
        try:
            for role, url in targets:
                entry = manifest["databases"][role]
                if entry["kind"] == "sqlite":
                    final = _sqlite_path(url)
                    out, path = _staged_file(final.parent, final.name)
                else:
                    path = Path(work.name) / entry["member"]
                    out = path.open("wb")
                staged.append((entry["kind"], url, path))
                with out:
                    _extract(tar, manifest, entry["member"], out, source)
                _verify_staged(entry["kind"], path, source)
                if role == "cases" and entry["kind"] == "sqlite" and revision != head:
                    _migrate_sqlite_file(path)
            for name in manifest["files"]:
                if name.startswith("uploads/"):
                    out, path = _staged_file(uploads, Path(name).name)
                    photos.append((path, uploads / Path(name).name))
                    with out:
                        _extract(tar, manifest, name, out, source)
            # everything is unpacked and checked: now replace, PostgreSQL first (one
            # transaction), then the SQLite files and photos (each os.replace is atomic)
            for kind, url, path in staged:
                if kind == "postgresql":
                    _run_pg([_pg_tool("pg_restore"), "--clean", "--if-exists", "--no-owner",
                             "--single-transaction", "--no-password",
                             f"--dbname={_conninfo_dbname(url)}", str(path)], url)
            for kind, url, path in staged:
                if kind == "sqlite":
                    final = _sqlite_path(url)
                    for suffix in ("-wal", "-shm", "-journal"):  # of the replaced database
                        Path(f"{final}{suffix}").unlink(missing_ok=True)
                    os.replace(path, final)
            keep = set()
            for path, final in photos:
                os.replace(path, final)
                keep.add(final.name)
            removed = [p for p in _photos(uploads)
                       if _OUR_PHOTO.fullmatch(p.name) and p.name not in keep]
            for p in removed:
                p.unlink()
        finally:
            work.cleanup()
            for path in [p for _k, _u, p in staged] + [p for p, _f in photos]:
                path.unlink(missing_ok=True)  # anything not moved into place (a failure)
    manifest.pop("_members")
    notes = []
    if manifest["kind"] == "postgresql" and revision != head:
        from bot.db.migrate import upgrade

        upgrade(db_url)
    if revision != head:
        notes.append(f"schema migrated from {revision} to {head}")
    if manifest["tracker_layout"] == "separate" and not manifest["databases"]["tracker"]:
        notes.append("the backup holds no Rasa tracker (there was none yet): the current one "
                     "was left as it is")
    if removed:
        notes.append(f"{len(removed)} photo(s) not in the backup removed from {uploads}")
    return Report(source, manifest, photos=len(photos), notes=notes)


def _verify_staged(kind: str, path: Path, source: Path) -> None:
    if kind == "postgresql":
        result = subprocess.run([_pg_tool("pg_restore"), "--list", str(path)],
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise BackupError(f"{source} is corrupt: pg_restore cannot read its dump")
        return
    conn = sqlite3.connect(path)
    try:
        _quick_check(conn, f"the database in {source}")
    finally:
        conn.close()


def _migrate_sqlite_file(path: Path) -> None:
    """Bring an older backup's schema to head before it replaces the live file."""
    from bot.db.migrate import upgrade

    upgrade(f"sqlite:///{path}")
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA journal_mode=DELETE")  # the migration switched it to WAL
    finally:
        conn.close()


def _conninfo_dbname(url: str) -> str:
    """``dbname='…'`` for pg_restore's --dbname (the rest comes from the environment)."""
    name = make_url(url).database or ""
    return "dbname='" + name.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    exc = getattr(exc, "orig", None) or exc  # SQLAlchemy wraps the driver's error
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
