"""Cases (warranty, return, exchange, support): numbering, idempotent creation, duplicate
detection and the audited status lifecycle that the bot, the console and follow-ups share."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.db.models import Case, CaseCounter, CaseEvent, utcnow
from bot.services.identifiers import CASE_PREFIXES, format_case_number

CASE_TYPES = tuple(CASE_PREFIXES)
STATUSES = ("open", "in_progress", "waiting_customer", "resolved", "closed")
OPEN_STATUSES = ("open", "in_progress", "waiting_customer")
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "open": ("in_progress", "waiting_customer", "resolved", "closed"),
    "in_progress": ("waiting_customer", "resolved", "closed"),
    "waiting_customer": ("in_progress", "resolved", "closed"),
    "resolved": ("closed", "open"),  # open again = reopen
    "closed": ("open",),  # reopen
}


class CaseError(ValueError):
    pass


class InvalidTransition(CaseError):
    pass


@dataclass
class Opened:
    case: Case
    created: bool  # False: an earlier submission with the same idempotency key


def next_number(session: Session, case_type: str, now: datetime | None = None) -> str:
    """Dense per prefix and year. The increment is one atomic UPDATE, so two processes can
    never draw the same number (a read-then-write would, on SQLite's autocommit reads)."""
    prefix = CASE_PREFIXES[case_type]
    year = (now or utcnow()).year
    for _ in range(3):
        bumped = session.execute(
            update(CaseCounter)
            .where(CaseCounter.prefix == prefix, CaseCounter.year == year)
            .values(last_value=CaseCounter.last_value + 1)
        ).rowcount
        if bumped:
            value = session.execute(
                select(CaseCounter.last_value)
                .where(CaseCounter.prefix == prefix, CaseCounter.year == year)
            ).scalar_one()
            return format_case_number(prefix, year, value)
        try:
            with session.begin_nested():
                session.execute(insert(CaseCounter).values(prefix=prefix, year=year,
                                                           last_value=1))
            return format_case_number(prefix, year, 1)
        except IntegrityError:
            continue  # another process created the counter first: bump it instead
    raise CaseError("could not allocate a case number")


def find_open_duplicate(session: Session, case_type: str, order_line_id: int) -> Case | None:
    """An open case of the same kind for the same product line (exchange ≈ return)."""
    kinds = ("return", "exchange") if case_type in ("return", "exchange") else (case_type,)
    return session.execute(
        select(Case).where(Case.order_line_id == order_line_id, Case.type.in_(kinds),
                           Case.status.in_(OPEN_STATUSES)).order_by(Case.id).limit(1)
    ).scalar_one_or_none()


def find_completed_return(session: Session, order_line_id: int) -> Case | None:
    """A return of this product line that was already completed (resolved or closed)."""
    return session.execute(
        select(Case).where(Case.order_line_id == order_line_id, Case.type == "return",
                           Case.status.in_(("resolved", "closed")),
                           Case.resolution.is_not(None)).order_by(Case.id).limit(1)
    ).scalar_one_or_none()


def open_case(
    session: Session,
    *,
    case_type: str,
    actor: str = "bot",
    idempotency_key: str | None = None,
    customer_id: int | None = None,
    order_line_id: int | None = None,
    conversation_id: int | None = None,
    channel: str | None = None,
    language: str = "es",
    category: str | None = None,
    description: str | None = None,
    details: dict[str, Any] | None = None,
) -> Opened:
    """Create a case with its first event. A retried submission (same idempotency key)
    returns the case created the first time instead of a second one."""
    if case_type not in CASE_TYPES:
        raise CaseError(f"unknown case type {case_type!r}")
    if idempotency_key:
        existing = session.execute(
            select(Case).where(Case.idempotency_key == idempotency_key)).scalar_one_or_none()
        if existing is not None:
            return Opened(existing, False)
    now = utcnow()
    case = Case(
        number=next_number(session, case_type, now), type=case_type, status="open",
        customer_id=customer_id, order_line_id=order_line_id, conversation_id=conversation_id,
        channel=channel, language=language, category=category, description=description,
        details=details or {}, idempotency_key=idempotency_key, created_at=now, updated_at=now,
    )
    try:
        with session.begin_nested():
            session.add(case)
            session.flush()
    except IntegrityError:
        if not idempotency_key:
            raise
        # The same submission raced us and won: use its case.
        existing = session.execute(
            select(Case).where(Case.idempotency_key == idempotency_key)).scalar_one()
        return Opened(existing, False)
    session.add(CaseEvent(case_id=case.id, kind="created", to_status="open", actor=actor,
                          created_at=now))
    session.flush()
    return Opened(case, True)


def transition(session: Session, case: Case, to_status: str, *, actor: str,
               note: str | None = None) -> CaseEvent:
    if to_status not in STATUSES:
        raise InvalidTransition(f"unknown status {to_status!r}")
    if to_status not in TRANSITIONS[case.status]:
        raise InvalidTransition(f"{case.number}: cannot go from {case.status} to {to_status}")
    reopen = case.status in ("resolved", "closed") and to_status == "open"
    event = CaseEvent(case_id=case.id, kind="reopened" if reopen else "status",
                      from_status=case.status, to_status=to_status, actor=actor, note=note)
    now = utcnow()
    case.status = to_status
    case.updated_at = now
    if to_status == "resolved":
        case.resolved_at = now
    if reopen:
        case.resolved_at = None
    session.add(event)
    session.flush()
    return event


def add_note(session: Session, case: Case, *, actor: str, note: str,
             internal: bool = True) -> CaseEvent:
    """Internal notes are for agents only; never shown to the customer."""
    event = CaseEvent(case_id=case.id, kind="note", actor=actor, note=note, internal=internal)
    case.updated_at = utcnow()
    session.add(event)
    session.flush()
    return event


def set_resolution(session: Session, case: Case, *, actor: str, resolution: str) -> CaseEvent:
    case.resolution = resolution
    case.updated_at = utcnow()
    event = CaseEvent(case_id=case.id, kind="resolution", actor=actor, note=resolution)
    session.add(event)
    session.flush()
    return event


def get_by_number(session: Session, number: str) -> Case | None:
    return session.execute(select(Case).where(Case.number == number)).scalar_one_or_none()


def list_cases(session: Session, status: str | None = None,
               customer_id: int | None = None) -> list[Case]:
    stmt = select(Case).order_by(Case.created_at.desc(), Case.id.desc())
    if status:
        stmt = stmt.where(Case.status == status)
    if customer_id is not None:
        stmt = stmt.where(Case.customer_id == customer_id)
    return list(session.execute(stmt).scalars())


def as_dict(case: Case, *, include_internal: bool = True) -> dict[str, Any]:
    from bot.db.models import SurveyResponse

    session = Session.object_session(case)
    survey = None
    if session is not None and case.conversation_id:
        row = session.execute(select(SurveyResponse).where(
            SurveyResponse.conversation_id == case.conversation_id)).scalar_one_or_none()
        if row is not None:
            survey = {"state": row.state, "ces": row.ces, "nps": row.nps, "csat": row.csat,
                      "comment": row.comment}
    return {
        "number": case.number, "type": case.type, "status": case.status,
        "customer_id": case.customer_id, "order_line_id": case.order_line_id,
        "conversation_id": case.conversation_id, "channel": case.channel,
        "language": case.language, "category": case.category,
        "description": case.description, "resolution": case.resolution,
        "details": case.details or {},
        "created_at": case.created_at.isoformat(), "updated_at": case.updated_at.isoformat(),
        "resolved_at": case.resolved_at.isoformat() if case.resolved_at else None,
        "events": [
            {"kind": e.kind, "from": e.from_status, "to": e.to_status, "actor": e.actor,
             "note": e.note, "internal": e.internal, "at": e.created_at.isoformat()}
            for e in case.events if include_internal or not e.internal
        ],
        "survey": survey,
    }


def recognise_customer(session: Session, conversation_id: int | None,
                       customer_id: int) -> list[Case]:
    """A customer just proved who they are in this conversation: link it to them (their
    transcripts on every channel meet under one customer) and return their open cases from
    *other* conversations — e.g. the claim they opened on Telegram yesterday — so the bot can
    pick up where they left off instead of starting from zero."""
    from bot.db.models import Conversation

    if conversation_id is not None:
        conv = session.get(Conversation, conversation_id)
        if conv is not None and conv.customer_id is None:
            conv.customer_id = customer_id
    stmt = select(Case).where(Case.customer_id == customer_id,
                              Case.status.in_(OPEN_STATUSES)).order_by(Case.id.desc())
    if conversation_id is not None:
        stmt = stmt.where((Case.conversation_id != conversation_id)
                          | Case.conversation_id.is_(None))
    return list(session.execute(stmt.limit(3)).scalars())


def latest_open_case(session: Session, conversation_id: int) -> Case | None:
    """The most recent still-open case of a conversation (e.g. the claim just opened in it):
    a hand-off to a person continues that case instead of opening another."""
    return session.execute(
        select(Case).where(Case.conversation_id == conversation_id,
                           Case.status.in_(OPEN_STATUSES)).order_by(Case.id.desc()).limit(1)
    ).scalar_one_or_none()
