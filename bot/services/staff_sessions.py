"""Console logins: password check with lockout, and server-side sessions.

The browser's cookie carries a random token; only its SHA-256 is stored (``staff_sessions``),
so a copy of the database cannot be replayed as a login. A session ends after
``SESSION_TTL`` (absolute) or ``IDLE_TTL`` without a request, at logout, or when the user is
deactivated.

Lockout: every wrong password adds one to ``failed_logins``; each ``MAX_FAILURES``-th one locks
the account for ``LOCK_BASE`` doubled per previous lock (15 min, 30 min, 1 h … capped at
``LOCK_MAX``). A locked account answers exactly like a wrong password and an unknown user
costs the same argon2 verification as a known one, so the answer tells nothing about which
usernames exist. A successful login resets the counter. Each attempt is counted before its
password is checked (see ``authenticate``), so parallel guesses get no more tries than
sequential ones.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHash, VerificationError
from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from bot.db.models import StaffSession, StaffUser, utcnow
from bot.services.users import verify_password

SESSION_TTL = timedelta(hours=8)
IDLE_TTL = timedelta(hours=1)
MAX_FAILURES = 5
LOCK_BASE = timedelta(minutes=15)
LOCK_MAX = timedelta(hours=24)
TOUCH_EVERY = timedelta(seconds=30)  # last_seen_at is not rewritten on every request

_hasher = PasswordHasher()
_dummy_hash: str | None = None


@dataclass
class StaffLogin:
    """A valid session and its user (both detached from the DB session that loaded them)."""

    session: StaffSession
    user: StaffUser

    @property
    def csrf_token(self) -> str:
        return self.session.csrf_token


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _burn_verification(password: str) -> None:
    """Spend the time of one argon2 verification (unknown user, inactive or locked account)."""
    global _dummy_hash
    if _dummy_hash is None:
        _dummy_hash = _hasher.hash(secrets.token_urlsafe(16))
    try:
        _hasher.verify(_dummy_hash, password)
    except (VerificationError, InvalidHash):
        pass


def lock_duration(failed_logins: int) -> timedelta | None:
    """How long the ``failed_logins``-th consecutive failure locks the account (None: not)."""
    if failed_logins <= 0 or failed_logins % MAX_FAILURES:
        return None
    locks_before = failed_logins // MAX_FAILURES - 1
    return min(LOCK_BASE * (2 ** min(locks_before, 16)), LOCK_MAX)


def is_locked(user: StaffUser, now: datetime | None = None) -> bool:
    now = now or utcnow()
    return user.locked_until is not None and user.locked_until > now


def authenticate(session: Session, username: str, password: str,
                 now: datetime | None = None) -> StaffUser | None:
    """The user if ``password`` is right and the account usable; None otherwise, whatever the
    reason.

    Parallel guesses must not get more than ``MAX_FAILURES`` tries before the lock, so every
    attempt is *counted before* its password is checked: one conditional UPDATE (refused
    while locked) takes a slot and, when it is the slot that reaches the limit, sets the lock
    already. That is committed at once (a short transaction: argon2 runs outside it), so a
    concurrent attempt sees the count and the lock. A right password then clears the count
    with an UPDATE that only succeeds when no other attempt locked the account meanwhile
    (or when this attempt's own slot set the lock). The caller commits as before.
    """
    now = now or utcnow()
    name = (username or "").strip().lower()
    user = None
    if name and len(name) <= 64:
        user = session.execute(select(StaffUser).where(StaffUser.username == name)
                               ).scalar_one_or_none()
    if user is None or not user.active:
        _burn_verification(password)
        return None
    not_locked = or_(StaffUser.locked_until.is_(None), StaffUser.locked_until <= now)
    taken = session.execute(update(StaffUser).where(StaffUser.id == user.id, not_locked)
                            .values(failed_logins=StaffUser.failed_logins + 1)
                            .execution_options(synchronize_session=False))
    if not taken.rowcount:
        # locked: same work and same answer as a wrong password; attempts while locked do not
        # count, so the lock ends when it says it does
        session.commit()  # ends the (empty) write transaction before the slow part
        _burn_verification(password)
        return None
    session.refresh(user, ["failed_logins", "locked_until"])
    slot = user.failed_logins
    lock = lock_duration(slot)
    if lock is not None:
        user.locked_until = now + lock
    session.commit()  # visible to parallel attempts before the (slow) verification
    if not verify_password(user, password):
        return None
    # right password: this attempt's slot is given back and the count cleared, unless the
    # account was locked meanwhile by another attempt (this slot's own lock does not count)
    mine = (StaffUser.locked_until == user.locked_until) if lock is not None else not_locked
    cleared = session.execute(update(StaffUser).where(StaffUser.id == user.id, mine)
                              .values(failed_logins=0, locked_until=None)
                              .execution_options(synchronize_session=False))
    if not cleared.rowcount:
        session.commit()
        return None
    session.refresh(user, ["failed_logins", "locked_until"])
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    session.flush()
    return user


def create(session: Session, user: StaffUser,
           now: datetime | None = None) -> tuple[str, StaffLogin]:
    """A new session for ``user``: returns the cookie token (never stored) and the session."""
    now = now or utcnow()
    # housekeeping: this user's dead sessions
    session.execute(delete(StaffSession).where(StaffSession.user_id == user.id,
                                               StaffSession.expires_at <= now))
    token = secrets.token_urlsafe(32)
    row = StaffSession(token_hash=token_hash(token), user_id=user.id,
                       csrf_token=secrets.token_urlsafe(32), created_at=now, last_seen_at=now,
                       expires_at=now + SESSION_TTL)
    session.add(row)
    user.last_login_at = now  # shown to admins on the People page
    session.flush()
    return token, StaffLogin(session=row, user=user)


def lookup(session: Session, token: str | None, now: datetime | None = None, *,
           touch: bool = True) -> StaffLogin | None:
    """The live session of this cookie token, or None (unknown, expired, idle, user gone).
    A dead session found here is deleted. The caller commits."""
    if not token or len(token) > 256:
        return None
    now = now or utcnow()
    row = session.get(StaffSession, token_hash(token))
    if row is None:
        return None
    user = session.get(StaffUser, row.user_id)
    if (user is None or not user.active or row.expires_at <= now
            or row.last_seen_at + IDLE_TTL <= now):
        session.delete(row)
        session.flush()
        return None
    if touch and now - row.last_seen_at >= TOUCH_EVERY:
        row.last_seen_at = now
        session.flush()
    return StaffLogin(session=row, user=user)


def delete_session(session: Session, token: str | None) -> bool:
    """Logout: True when a session was deleted."""
    if not token:
        return False
    result = session.execute(delete(StaffSession).where(
        StaffSession.token_hash == token_hash(token)))
    return bool(result.rowcount)


def delete_user_sessions(session: Session, user_id: int) -> int:
    """Every session of a user (deactivated, password changed, forced logout)."""
    result = session.execute(delete(StaffSession).where(StaffSession.user_id == user_id))
    return int(result.rowcount or 0)


def unlock(session: Session, user: StaffUser) -> None:
    """An admin lifts a lockout."""
    user.failed_logins = 0
    user.locked_until = None
    session.flush()
