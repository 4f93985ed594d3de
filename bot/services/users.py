"""Staff users (agents and admins) with argon2-hashed passwords."""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHash, VerifyMismatchError
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.db.models import StaffUser

ROLES = ("agent", "admin")
_hasher = PasswordHasher()


class UserError(ValueError):
    pass


def add_user(session: Session, username: str, password: str, role: str) -> StaffUser:
    username = username.strip().lower()
    if role not in ROLES:
        raise UserError(f"role must be one of {', '.join(ROLES)}")
    if not username or len(username) > 64:
        raise UserError("username must be 1-64 characters")
    if len(password) < 10:
        raise UserError("password must have at least 10 characters")
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
