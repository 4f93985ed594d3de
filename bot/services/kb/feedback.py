"""How each FAQ answer does with customers: how often it was shown, whether customers said it
helped, and how often the conversation went to a person after it.

The action server writes one ``FaqEvent`` per fact (it is the only process that knows which
entry it answered with); the console's editor reads the counts per entry. Nothing personal
is stored: an entry id, a conversation id, a kind and a time.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.db.models import FaqEvent, utcnow

KINDS = ("shown", "helped", "not_helped", "handoff_after")


def record(session: Session, faq_id: str, kind: str, conversation_id: int | None,
           language: str | None = None) -> FaqEvent:
    if kind not in KINDS:
        raise ValueError(f"unknown FAQ event kind {kind!r}")
    event = FaqEvent(faq_id=faq_id[:64], kind=kind, conversation_id=conversation_id,
                     language=(language or None) and language[:2], at=utcnow())
    session.add(event)
    session.flush()
    return event


def record_handoff(session: Session, conversation_id: int) -> str | None:
    """The conversation is going to a person: charge it to the last answer it was shown
    (once per answer shown: a second hand-off without a new answer adds nothing). Returns the
    entry charged, or None when no FAQ answer was shown in this conversation."""
    last_shown = session.execute(
        select(FaqEvent).where(FaqEvent.conversation_id == conversation_id,
                               FaqEvent.kind == "shown")
        .order_by(FaqEvent.id.desc()).limit(1)).scalar_one_or_none()
    if last_shown is None:
        return None
    already = session.execute(
        select(FaqEvent.id).where(FaqEvent.conversation_id == conversation_id,
                                  FaqEvent.kind == "handoff_after",
                                  FaqEvent.id > last_shown.id).limit(1)).first()
    if already is not None:
        return None
    record(session, last_shown.faq_id, "handoff_after", conversation_id, last_shown.language)
    return last_shown.faq_id


def empty_counts() -> dict[str, Any]:
    return {**{kind: 0 for kind in KINDS}, "helped_rate": None, "handoff_rate": None}


def _with_rates(counts: dict[str, Any]) -> dict[str, Any]:
    """Rates are None ("n/a") without data, never 0: no answer to "did it help?" is not a
    "no"."""
    answered = counts["helped"] + counts["not_helped"]
    counts["helped_rate"] = round(counts["helped"] / answered, 4) if answered else None
    counts["handoff_rate"] = (round(counts["handoff_after"] / counts["shown"], 4)
                              if counts["shown"] else None)
    return counts


def counts(session: Session, faq_ids: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """``{faq_id: {shown, helped, not_helped, handoff_after, helped_rate, handoff_rate}}``,
    aggregated in SQL (one GROUP BY over the (faq_id, kind) index)."""
    stmt = select(FaqEvent.faq_id, FaqEvent.kind, func.count()).group_by(FaqEvent.faq_id,
                                                                         FaqEvent.kind)
    if faq_ids is not None:
        stmt = stmt.where(FaqEvent.faq_id.in_(faq_ids))
    result: dict[str, dict[str, Any]] = {}
    for faq_id, kind, n in session.execute(stmt):
        if kind in KINDS:
            result.setdefault(faq_id, empty_counts())[kind] = int(n)
    return {faq_id: _with_rates(c) for faq_id, c in result.items()}
