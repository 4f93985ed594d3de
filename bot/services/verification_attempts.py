"""Failed identity checks, counted in the database.

Two counters per order or case number: one for the conversation (three failures lock that
conversation out of the number, and a person takes over) and one across all conversations
with a higher limit (many senders guessing one number lock it for a while). A stranger's
three guesses therefore never lock the real customer out, and a new sender id does not reset
a distributed attack."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session

from bot.db.models import VerificationAttempt, utcnow

MAX_FAILURES = 3  # per conversation
GLOBAL_MAX_FAILURES = 10  # per number, all conversations together
LOCK_FOR = timedelta(minutes=30)


def is_locked(session: Session, key: str) -> bool:
    row = session.get(VerificationAttempt, key)
    return bool(row and row.locked_until and row.locked_until > utcnow())


def record_failure(session: Session, key: str, limit: int = MAX_FAILURES) -> int:
    """Returns the failures in the current window; locks the key at ``limit``."""
    row = session.get(VerificationAttempt, key)
    if row is None:
        row = VerificationAttempt(key=key, failures=0)
        session.add(row)
    if row.locked_until and row.locked_until <= utcnow():
        row.failures, row.locked_until = 0, None  # the lock expired: a fresh window
    row.failures += 1
    row.last_failure_at = utcnow()
    if row.failures >= limit:
        row.locked_until = utcnow() + LOCK_FOR
    session.flush()
    return row.failures


def reset(session: Session, key: str) -> None:
    row = session.get(VerificationAttempt, key)
    if row is not None:
        session.delete(row)


def keys(number: str, conversation: object) -> tuple[str, str]:
    """(this conversation's key, the number's key across conversations)."""
    return f"{number}:conv:{conversation}", number


def check_locked(session: Session, number: str, conversation: object) -> bool:
    return any(is_locked(session, k) for k in keys(number, conversation))


def fail(session: Session, number: str, conversation: object) -> int:
    """Count a failure on both counters; returns this conversation's failures."""
    local, shared = keys(number, conversation)
    record_failure(session, shared, GLOBAL_MAX_FAILURES)
    return max(record_failure(session, local), MAX_FAILURES if is_locked(session, shared) else 0)


def succeed(session: Session, number: str, conversation: object) -> None:
    reset(session, keys(number, conversation)[0])
