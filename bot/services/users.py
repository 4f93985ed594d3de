"""Staff users (agents and admins) with argon2-hashed passwords.

The rules for usernames, teams and passwords live here so that ``bot users add`` and the
console's People page accept exactly the same things.
"""

from __future__ import annotations

import re
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHash, VerifyMismatchError
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.db.models import StaffUser

ROLES = ("agent", "admin")
MIN_PASSWORD = 10
MAX_PASSWORD = 256  # argon2 takes any length; a megabyte "password" is only a way to burn CPU
# Usernames travel in URL paths (/console/api/staff/<name>/…) and in the audit log: letters,
# digits and . _ @ - only, starting with a letter or digit (no "/", "..", spaces or markup).
USERNAME_RE = re.compile(r"[a-z0-9][a-z0-9._@-]{0,63}")
_hasher = PasswordHasher()


class UserError(ValueError):
    pass


def normalize_username(username: str) -> str:
    """The stored form of a username (trimmed, lower case), or ``UserError``."""
    name = (username or "").strip().lower()
    if not name or len(name) > 64:
        raise UserError("username must be 1-64 characters")
    if not USERNAME_RE.fullmatch(name):
        raise UserError("username may only contain letters, digits and . _ @ - "
                        "(starting with a letter or digit)")
    return name


def normalize_team(team: str) -> str:
    """The stored form of a team name (trimmed, lower case, 1-32 printable characters)."""
    name = (team or "").strip().lower()
    if not name or len(name) > 32:
        raise UserError("team must be 1-32 characters")
    if not name.isprintable():
        raise UserError("team must not contain control characters")
    return name


def check_password(password: str) -> None:
    if len(password or "") < MIN_PASSWORD:
        raise UserError(f"password must have at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise UserError(f"password must have at most {MAX_PASSWORD} characters")


def generate_password() -> str:
    """A password an admin hands over once: 20 URL-safe characters (120 random bits)."""
    return secrets.token_urlsafe(15)


def set_password(user: StaffUser, password: str) -> None:
    check_password(password)
    user.password_hash = _hasher.hash(password)


def add_user(session: Session, username: str, password: str, role: str) -> StaffUser:
    username = normalize_username(username)
    if role not in ROLES:
        raise UserError(f"role must be one of {', '.join(ROLES)}")
    check_password(password)
    if session.execute(select(StaffUser).where(StaffUser.username == username)).first():
        raise UserError(f"user {username!r} already exists")
    user = StaffUser(username=username, password_hash=_hasher.hash(password), role=role)
    session.add(user)
    session.flush()
    return user


def verify_password(user: StaffUser, password: str) -> bool:
    try:
        return _hasher.verify(user.password_hash, password)
    except (VerifyMismatchError, InvalidHash):
        return False


def ensure_first_admin(session: Session, username: str, password: str | None) -> str | None:
    """Create the first admin when there is no staff user yet; returns its password."""
    if session.execute(select(StaffUser.id).limit(1)).first():
        return None
    password = password or secrets.token_urlsafe(12)
    add_user(session, username, password, "admin")
    return password
