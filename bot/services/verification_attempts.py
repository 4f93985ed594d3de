"""Failed identity checks, counted in the database per order or case number, so that a new
conversation (or a new sender id) does not reset the count, and a locked number stays locked
for a while even for a right guess."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session

from bot.db.models import VerificationAttempt, utcnow

MAX_FAILURES = 3
LOCK_FOR = timedelta(minutes=30)


def is_locked(session: Session, key: str) -> bool:
    row = session.get(VerificationAttempt, key)
    return bool(row and row.locked_until and row.locked_until > utcnow())


def record_failure(session: Session, key: str) -> int:
    """Returns the failures in the current window; locks the key at MAX_FAILURES."""
    row = session.get(VerificationAttempt, key)
    if row is None:
        row = VerificationAttempt(key=key, failures=0)
        session.add(row)
    if row.locked_until and row.locked_until <= utcnow():
        row.failures, row.locked_until = 0, None  # the lock expired: a fresh window
    row.failures += 1
    row.last_failure_at = utcnow()
    if row.failures >= MAX_FAILURES:
        row.locked_until = utcnow() + LOCK_FOR
    session.flush()
    return row.failures


def reset(session: Session, key: str) -> None:
    row = session.get(VerificationAttempt, key)
    if row is not None:
        session.delete(row)
