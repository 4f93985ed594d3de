"""Conversations and their transcript.

A *sender* is the channel's key for one customer (the widget's random id, ``tg-<chat>``);
it owns a series of conversations: a new one starts after the idle timeout or once the
previous one is closed, and inherits its language.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.db.models import Conversation, Message, utcnow

OPEN_STATUSES = ("bot", "waiting_agent", "with_agent")


@dataclass
class Opened:
    conversation: Conversation
    is_new: bool


def latest_for_sender(session: Session, sender: str) -> Conversation | None:
    return session.execute(
        select(Conversation)
        .where(Conversation.sender == sender)
        .order_by(Conversation.started_at.desc(), Conversation.id.desc())
        .limit(1)
    ).scalar_one_or_none()


def open_or_continue(
    session: Session,
    *,
    sender: str,
    channel: str,
    idle_timeout: int,
    default_language: str,
    now: datetime | None = None,
) -> Opened:
    now = now or utcnow()
    current = latest_for_sender(session, sender)
    if current is not None and current.status in OPEN_STATUSES:
        idle = now - current.last_activity_at > timedelta(seconds=idle_timeout)
        # A conversation with a human is never cut by the bot's idle timeout.
        if not idle or current.status != "bot":
            return Opened(current, False)
        current.status = "closed"
        current.ended_at = current.last_activity_at
        # a form left half-way counts as abandoned (nothing of it was written)
        current.outcome = ("abandoned" if current.outcome == "form_in_progress"
                           else current.outcome or "ended_idle")
        _close_survey(session, current.id)
    conv = Conversation(
        sender=sender,
        channel=channel,
        language=current.language if current else default_language,
        language_source=current.language_source if current else "default",
        customer_id=current.customer_id if current else None,
        started_at=now,
        last_activity_at=now,
    )
    session.add(conv)
    session.flush()
    return Opened(conv, True)


def _close_survey(session: Session, conversation_id: int) -> None:
    """A survey still waiting for answers when the conversation ends stays incomplete;
    whatever was answered is kept."""
    from bot.db.models import SurveyResponse

    row = session.execute(select(SurveyResponse).where(
        SurveyResponse.conversation_id == conversation_id)).scalar_one_or_none()
    if row is not None and row.state in ("offered", "partial"):
        row.state = "incomplete"


def find_inbound(session: Session, conversation_id: int, client_message_id: str) -> Message | None:
    return session.execute(
        select(Message).where(
            Message.conversation_id == conversation_id,
            Message.client_message_id == client_message_id,
            Message.direction == "in",
        )
    ).scalar_one_or_none()


def replies_to(session: Session, message_id: int) -> list[Message]:
    return list(
        session.execute(
            select(Message).where(Message.reply_to_id == message_id).order_by(Message.id)
        ).scalars()
    )


def add_message(
    session: Session,
    conversation: Conversation,
    *,
    direction: str,
    author: str,
    text: str,
    payload: dict | None = None,
    client_message_id: str | None = None,
    reply_to: Message | None = None,
    status: str = "ok",
    channel: str | None = None,
) -> Message:
    msg = Message(
        channel=channel or conversation.channel,
        conversation_id=conversation.id,
        direction=direction,
        author=author,
        text=text,
        payload=payload,
        client_message_id=client_message_id,
        reply_to_id=reply_to.id if reply_to else None,
        status=status,
    )
    conversation.last_activity_at = utcnow()
    session.add(msg)
    session.flush()
    return msg


def transcript(session: Session, conversation_id: int) -> list[Message]:
    return list(
        session.execute(
            select(Message).where(Message.conversation_id == conversation_id).order_by(Message.id)
        ).scalars()
    )


# Outcomes that a later one must not overwrite with something weaker.
_FINAL_OUTCOMES = {"resolved_bot_confirmed", "case_opened", "escalated"}
# (a later FAQ answer or a new form does not erase that a case was opened)


def set_outcome(session: Session, conversation_id: int, outcome: str) -> None:
    """Record what the conversation achieved (feeds containment/FCR KPIs)."""
    conv = session.get(Conversation, conversation_id)
    if conv is None:
        return
    if conv.outcome in _FINAL_OUTCOMES and outcome not in _FINAL_OUTCOMES:
        return
    conv.outcome = outcome


def attachment_count(session: Session, conversation_id: int) -> int:
    from sqlalchemy import func

    from bot.db.models import Attachment

    return int(session.execute(select(func.count(Attachment.id)).where(
        Attachment.conversation_id == conversation_id)).scalar_one())


def item(msg: Message) -> dict:
    """A transcript row as channels show it (widget history, console): text, never HTML."""
    payload = msg.payload if isinstance(msg.payload, dict) else {}
    out: dict = {
        "id": f"m{msg.id}",
        "from": msg.author,
        "text": payload.get("title") or msg.text if msg.author == "customer" else msg.text,
        "ts": msg.created_at.isoformat() + "Z",
        "channel": msg.channel,
    }
    if msg.author != "customer":
        for key in ("buttons", "expects", "image"):
            if payload.get(key):
                out[key] = payload[key]
    if msg.client_message_id:
        out["client_id"] = msg.client_message_id
    return out


def history_for_sender(session: Session, sender: str, limit: int = 200) -> list[dict]:
    """The latest messages of a sender's conversations, oldest first (a reload's history)."""
    rows = session.execute(
        select(Message)
        .join(Conversation, Conversation.id == Message.conversation_id)
        .where(Conversation.sender == sender)
        .order_by(Message.id.desc())
        .limit(limit)
    ).scalars().all()
    # a language switch is a control message, not something the customer "said"
    return [item(m) for m in reversed(rows)
            if not (m.direction == "in" and m.text.startswith("/choose_language"))]


def resolve_sender(session: Session, alias: str) -> str:
    """The sender a channel identity speaks as (itself unless a hand-over link joined it)."""
    from bot.db.models import SenderAlias

    row = session.get(SenderAlias, alias)
    return row.sender if row is not None else alias


def button_title(session: Session, conversation_id: int, payload: str) -> str | None:
    """The title of the button the customer pressed (the latest bot message offering it)."""
    rows = session.execute(
        select(Message.payload)
        .where(Message.conversation_id == conversation_id, Message.direction == "out")
        .order_by(Message.id.desc())
        .limit(5)
    ).scalars()
    for body in rows:
        for button in (body or {}).get("buttons") or []:
            if button.get("payload") == payload:
                return str(button.get("title") or "") or None
    return None


def last_bot_message(session: Session, conversation_id: int) -> Message | None:
    return session.execute(
        select(Message)
        .where(Message.conversation_id == conversation_id, Message.direction == "out")
        .order_by(Message.id.desc())
        .limit(1)
    ).scalar_one_or_none()


def expects_photo(session: Session, conversation_id: int) -> bool:
    """Whether the flow is asking for a photo right now: the latest bot message says
    ``expects: photo``. Photos are accepted only then (no free storage for anything else)."""
    last = last_bot_message(session, conversation_id)
    return bool(last is not None and (last.payload or {}).get("expects") == "photo")


def attachments_bytes(session: Session) -> int:
    """The size of every stored photo together (the upload quota counts against it)."""
    from sqlalchemy import func

    from bot.db.models import Attachment

    return int(session.execute(select(func.coalesce(func.sum(Attachment.size), 0))).scalar_one())
