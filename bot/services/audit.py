"""The audit log: who touched personal data, when and why (GDPR art. 5(2) accountability).

Entries are written in the same transaction as the action they describe, so an export or an
erasure that happened is always in the log, and one that failed never is.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.db.models import AuditEntry, utcnow


def subject_hash(identifier: str) -> str:
    """A stable reference to a person that does not reveal them: an auditor who knows the
    email can check that it was exported or erased; the log alone tells nobody whose it was."""
    digest = hashlib.sha256(identifier.strip().lower().encode("utf-8")).hexdigest()
    return f"sha256:{digest[:32]}"


def record(session: Session, actor: str, action: str, subject: str | None = None,
           details: dict[str, Any] | None = None) -> AuditEntry:
    entry = AuditEntry(at=utcnow(), actor=actor[:64], action=action[:40],
                       subject=subject[:80] if subject else None, details=details or None)
    session.add(entry)
    session.flush()
    return entry


def recent(session: Session, limit: int = 100, action: str | None = None,
           prefix: str | None = None) -> list[dict[str, Any]]:
    """Newest first; ``action`` one exact action, ``prefix`` a family ("staff." for People)."""
    stmt = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(max(1, min(limit, 1000)))
    if action:
        stmt = stmt.where(AuditEntry.action == action)
    if prefix:
        stmt = stmt.where(AuditEntry.action.startswith(prefix, autoescape=True))
    return [{"id": e.id, "at": e.at.isoformat() + "Z", "actor": e.actor, "action": e.action,
             "subject": e.subject, "details": e.details or {}}
            for e in session.execute(stmt).scalars()]


VIEW_WINDOW_SECONDS = 600


def record_view(session: Session, actor: str, subject: str,
                details: dict[str, Any] | None = None) -> None:
    """A member of staff opened someone's data. The console re-reads an open conversation
    on every event, so one sitting is one entry: repeats within ten minutes are not logged."""
    since = utcnow() - timedelta(seconds=VIEW_WINDOW_SECONDS)
    seen = session.execute(select(AuditEntry.id).where(
        AuditEntry.actor == actor[:64], AuditEntry.action == "conversation.view",
        AuditEntry.subject == subject, AuditEntry.at >= since).limit(1)).first()
    if seen is None:
        record(session, actor, "conversation.view", subject, details)
