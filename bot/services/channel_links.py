"""Hand a widget conversation over to Telegram with a one-time ``/start`` code.

The code travels in a ``t.me`` link, so only its SHA-256 is stored: a leaked database does not
leak live links. Redeeming marks it used in the same UPDATE that checks it is unused, so two
chats racing for one code cannot both win.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bot.db.models import ChannelLink, SenderAlias, utcnow

CODE_BYTES = 18  # 24 url-safe characters; Telegram allows up to 64 in a start parameter


def _digest(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def create_link(session: Session, sender: str, ttl_seconds: int) -> str:
    code = secrets.token_urlsafe(CODE_BYTES)
    now = utcnow()
    session.add(ChannelLink(code_hash=_digest(code), sender=sender, created_at=now,
                            expires_at=now + timedelta(seconds=ttl_seconds)))
    session.flush()
    return code


def redeem(session: Session, code: str, alias: str) -> str | None:
    """The sender the code was made for, now continued by ``alias``; None if the code is
    unknown, expired or already used."""
    if not code or len(code) > 64:
        return None
    now = utcnow()
    digest = _digest(code)
    claimed = session.execute(
        update(ChannelLink)
        .where(ChannelLink.code_hash == digest, ChannelLink.used_at.is_(None),
               ChannelLink.expires_at > now)
        .values(used_at=now, used_by=alias)
        .execution_options(synchronize_session=False)
    ).rowcount
    if claimed != 1:
        return None
    sender = session.execute(
        select(ChannelLink.sender).where(ChannelLink.code_hash == digest)).scalar_one()
    row = session.get(SenderAlias, alias)
    if row is None:
        session.add(SenderAlias(alias=alias, sender=sender, created_at=now))
    else:
        row.sender, row.created_at = sender, now
    session.flush()
    return sender


def aliases_of(session: Session, sender: str, prefix: str) -> list[str]:
    """Channel identities continuing ``sender`` (e.g. its Telegram chat), newest first."""
    return list(session.execute(
        select(SenderAlias.alias)
        .where(SenderAlias.sender == sender, SenderAlias.alias.startswith(prefix))
        .order_by(SenderAlias.created_at.desc())
    ).scalars())
