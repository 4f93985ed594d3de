"""The live knowledge base in the database: edits with revision history and a version number
that running processes poll to rebuild their search index without retraining.

What customers get is an entry's ``content``/``tags`` once it has been published
(``published_at``); the console editor's drafts live beside it (``bot.services.kb.editor``)
and never reach the search index until published."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from bot.db.models import FaqEntry, FaqRevision, utcnow
from bot.services.kb.loader import KBError, dump_entry, load_directory, validate_entry


class KBConflict(KBError):
    """The entry changed since the editor loaded it (optimistic locking)."""


class KBNotFound(KBError):
    pass


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0


# Revisions that change what customers get; ``draft``/``discard`` only touch the editor's
# working copy, so they must not make every running process rebuild its index.
PUBLISHED_ACTIONS = ("create", "update", "delete", "restore", "publish", "revert")


def kb_version(session: Session) -> int:
    """Increases with every change customers can see (create, update, publish, revert,
    delete): the id of the latest such revision. Polled before every search (one query)."""
    return int(session.execute(select(func.max(FaqRevision.id)).where(
        FaqRevision.action.in_(PUBLISHED_ACTIONS))).scalar() or 0)


def as_dict(entry: FaqEntry) -> dict[str, Any]:
    return {"id": entry.faq_id, "tags": list(entry.tags or []),
            "content": copy.deepcopy(entry.content), "version": entry.version,
            "deleted": entry.deleted, "updated_at": entry.updated_at.isoformat(),
            "updated_by": entry.updated_by}


def flush_versioned(session: Session, entry: FaqEntry) -> None:
    """Write with the version check; a concurrent edit that got there first is a conflict."""
    try:
        session.flush()
    except StaleDataError as exc:
        raise KBConflict(f"entry {entry.faq_id!r} was changed by someone else meanwhile: "
                         "reload and edit again") from exc


def revise(session: Session, entry: FaqEntry, action: str, actor: str) -> FaqRevision:
    """One row per version of the entry: what customers got (``tags``, ``content``), and the
    editor's unpublished ``draft`` when there was one (so a conflict can show what changed
    since any version an editor loaded)."""
    snapshot = {"tags": entry.tags, "content": entry.content, "deleted": entry.deleted}
    if entry.draft is not None:
        snapshot["draft"] = entry.draft
    revision = FaqRevision(faq_entry_id=entry.id, version=entry.version, action=action,
                           changed_by=actor, snapshot=snapshot)
    session.add(revision)
    return revision


def get(session: Session, faq_id: str, *, lock: bool = False) -> FaqEntry | None:
    stmt = select(FaqEntry).where(FaqEntry.faq_id == faq_id)
    if lock:
        stmt = stmt.with_for_update()
    return session.execute(stmt).scalar_one_or_none()


def list_entries(session: Session, include_deleted: bool = False,
                 include_unpublished: bool = False) -> list[FaqEntry]:
    """Published entries (what customers can get) unless asked for more."""
    stmt = select(FaqEntry).order_by(FaqEntry.faq_id)
    if not include_deleted:
        stmt = stmt.where(FaqEntry.deleted.is_(False))
    if not include_unpublished:
        stmt = stmt.where(FaqEntry.published_at.isnot(None))
    return list(session.execute(stmt).scalars())


def create(session: Session, raw: dict[str, Any], actor: str) -> FaqEntry:
    data = validate_entry(raw)
    existing = get(session, data["id"])
    if existing is not None and not existing.deleted:
        raise KBError(f"entry {data['id']!r} already exists")
    if existing is not None:  # re-creating a deleted entry restores it with new content
        return _apply(session, existing, data, actor, "restore")
    now = utcnow()
    entry = FaqEntry(faq_id=data["id"], tags=data["tags"], content=data["content"],
                     updated_by=actor, updated_at=now, published_at=now)
    session.add(entry)
    session.flush()
    revise(session, entry, "create", actor)
    session.flush()
    return entry


def _apply(session: Session, entry: FaqEntry, data: dict[str, Any], actor: str,
           action: str) -> FaqEntry:
    entry.tags = data["tags"]
    entry.content = data["content"]
    entry.deleted = False
    entry.updated_by = actor
    entry.updated_at = entry.published_at = utcnow()
    flush_versioned(session, entry)
    revise(session, entry, action, actor)
    session.flush()
    return entry


def update(session: Session, faq_id: str, raw: dict[str, Any], actor: str,
           expected_version: int | None = None) -> FaqEntry:
    """Replace an entry's content. With `expected_version`, a concurrent edit is a conflict
    (the editor must reload); without it, last write wins and both revisions are kept —
    except for two truly simultaneous writes, where the second gets a conflict, never a loss."""
    data = validate_entry({**raw, "id": faq_id})
    entry = get(session, faq_id, lock=True)
    if entry is None or entry.deleted:
        raise KBNotFound(f"no entry {faq_id!r}")
    if expected_version is not None and entry.version != expected_version:
        raise KBConflict(f"entry {faq_id!r} is at version {entry.version}, "
                         f"not {expected_version}: reload and edit again")
    return _apply(session, entry, data, actor, "update")


def delete(session: Session, faq_id: str, actor: str,
           expected_version: int | None = None) -> FaqEntry:
    entry = get(session, faq_id, lock=True)
    if entry is None or entry.deleted:
        raise KBNotFound(f"no entry {faq_id!r}")
    if expected_version is not None and entry.version != expected_version:
        raise KBConflict(f"entry {faq_id!r} changed (version {entry.version}): reload first")
    entry.deleted = True
    entry.updated_by = actor
    entry.updated_at = utcnow()
    flush_versioned(session, entry)
    revise(session, entry, "delete", actor)
    session.flush()
    return entry


def revisions(session: Session, faq_id: str) -> list[FaqRevision]:
    entry = get(session, faq_id)
    if entry is None:
        raise KBNotFound(f"no entry {faq_id!r}")
    return list(session.execute(select(FaqRevision).where(FaqRevision.faq_entry_id == entry.id)
                                .order_by(FaqRevision.id)).scalars())


def import_directory(session: Session, path: Path, actor: str = "import",
                     only_new: bool = False) -> ImportReport:
    """Validate every file first, then write; the caller's transaction makes it all-or-nothing.

    `only_new` (used by bootstrap) adds missing entries and leaves existing ones alone, so
    that restarting the product never overwrites what an admin edited live.
    """
    entries = load_directory(path)
    report = ImportReport()
    for data in entries:
        existing = get(session, data["id"])
        if existing is None:
            create(session, data, actor)
            report.created += 1
        elif only_new:
            report.skipped += 1
        elif (existing.content == data["content"] and list(existing.tags or []) == data["tags"]
              and not existing.deleted):
            report.unchanged += 1
        else:
            _apply(session, existing, data, actor, "update")
            report.updated += 1
    return report


def export_directory(session: Session, path: Path) -> int:
    path.mkdir(parents=True, exist_ok=True)
    entries = list_entries(session)
    for entry in entries:
        (path / f"{entry.faq_id}.yml").write_text(dump_entry(as_dict(entry)), encoding="utf-8")
    return len(entries)
