"""The closing survey of a conversation: one row per conversation, written answer by answer
(partial answers survive a customer who leaves), offered at most once."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.db.models import Case, CaseEvent, Conversation, SurveyResponse, utcnow

FIELDS = ("ces", "nps", "csat", "comment")


def get(session: Session, conversation_id: int) -> SurveyResponse | None:
    return session.execute(select(SurveyResponse).where(
        SurveyResponse.conversation_id == conversation_id)).scalar_one_or_none()


def offer(session: Session, conversation_id: int) -> tuple[SurveyResponse | None, bool]:
    """Create the survey row if this conversation never had one. (row, created)"""
    existing = get(session, conversation_id)
    if existing is not None:
        return existing, False
    conv = session.get(Conversation, conversation_id)
    if conv is None:
        return None, False
    case_id = session.execute(select(Case.id).where(Case.conversation_id == conversation_id)
                              .order_by(Case.id.desc()).limit(1)).scalar()
    row = SurveyResponse(conversation_id=conversation_id, case_id=case_id, channel=conv.channel,
                         language=conv.language, outcome=conv.outcome, agent_id=conv.agent_id,
                         state="offered")
    session.add(row)
    session.flush()
    return row, True


def record(session: Session, conversation_id: int, field: str, value: int | str | None) -> None:
    """Store one answer (None = skipped after an unclear answer); idempotent on retries."""
    if field not in FIELDS:
        raise ValueError(field)
    row = get(session, conversation_id)
    if row is None:
        row, _ = offer(session, conversation_id)
        if row is None:
            return
    setattr(row, field, value)
    if row.state == "offered":
        row.state = "partial"
    row.updated_at = utcnow()


def finish(session: Session, conversation_id: int, state: str) -> None:
    """completed | declined | incomplete (left half-way)."""
    row = get(session, conversation_id)
    if row is None:
        return
    if state == "declined" and any(getattr(row, f) is not None for f in FIELDS):
        state = "incomplete"  # answered some, then stopped: keep what was given
    row.state = state
    row.updated_at = utcnow()


def request_follow_up(session: Session, conversation_id: int) -> None:
    """A dissatisfied customer wants a human to get back to them: flag it on the survey and
    as a note on the conversation's case, where agents will see it."""
    row = get(session, conversation_id)
    if row is None:
        return
    row.follow_up_requested = True
    if row.case_id:
        session.add(CaseEvent(case_id=row.case_id, kind="note", actor="survey", internal=True,
                              note="Follow-up requested by the customer after a low score."))
