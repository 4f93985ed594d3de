"""Hand-off to human agents, at the database level: the queue, claims, replies, closing.

Every state change is one guarded UPDATE (``WHERE status = 'waiting_agent'`` …), so two agents
claiming at once, or an agent replying to a conversation that was just closed, get a clear
error instead of a silent overwrite. The async orchestration (delivery to channels, live events,
resuming Rasa) lives in ``bot.hub.handoff``.
"""

from __future__ import annotations

import statistics
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from bot.db.models import (
    Case,
    CaseEvent,
    Conversation,
    Customer,
    Message,
    Order,
    OrderLine,
    Product,
    StaffSession,
    StaffUser,
    utcnow,
)
from bot.services import audit
from bot.services import cases as cases_svc
from bot.services import conversations as convs

REASONS = ("request_human", "complaint", "fallback", "not_solved", "verification_failed",
           "detractor_followup")
PRIORITY = {"complaint": 2, "detractor_followup": 1}
DEFAULT_HANDLE_MINUTES = 6.0  # until there is history to estimate from
MAX_REPLY_CHARS = 4000


class HandoffError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# ---- customer side --------------------------------------------------------------------

def escalate(session: Session, conv: Conversation, handoff: dict[str, Any]) -> None:
    """The bot asked for a human (custom payload from ``action_handoff``)."""
    reason = handoff.get("reason") if handoff.get("reason") in REASONS else "request_human"
    case = None
    if handoff.get("case_number"):
        case = cases_svc.get_by_number(session, str(handoff["case_number"]))
    now = utcnow()
    conv.status = "waiting_agent"
    conv.escalated_at = conv.escalated_at or now
    conv.escalation_reason = reason
    conv.priority = int(handoff.get("priority") or PRIORITY.get(reason, 0))
    conv.handoff_case_id = case.id if case is not None else conv.handoff_case_id
    summary = handoff.get("summary")
    conv.handoff_summary = summary if isinstance(summary, dict) else {"reason": reason}
    conv.agent_id = None
    conv.claimed_at = None
    conv.handoff_ended_at = None
    convs.set_outcome(session, conv.id, "escalated")


def leave_queue(session: Session, conv: Conversation) -> bool:
    """The customer said "never mind" while waiting: counted as abandoned, back to the bot."""
    done = session.execute(
        update(Conversation)
        .where(Conversation.id == conv.id, Conversation.status == "waiting_agent")
        .values(status="bot", outcome="abandoned_queue", handoff_ended_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount
    session.refresh(conv)
    return done == 1


def waiting(session: Session, team: str | None = None) -> list[Conversation]:
    stmt = select(Conversation).where(Conversation.status == "waiting_agent")
    if team is not None:
        stmt = stmt.where(Conversation.team == team)
    return list(session.execute(
        stmt.order_by(Conversation.priority.desc(), Conversation.escalated_at,
                      Conversation.id)).scalars())


def queue_position(session: Session, conv: Conversation) -> int | None:
    if conv.status != "waiting_agent":
        return None
    ids = [c.id for c in waiting(session, conv.team)]
    return ids.index(conv.id) + 1 if conv.id in ids else None


def online_agents(session: Session, team: str, now: datetime | None = None) -> int:
    """Agents with a console session seen in the last 10 minutes (at least one is assumed
    during business hours: somebody will log in)."""
    now = now or utcnow()
    count = session.execute(
        select(func.count(func.distinct(StaffSession.user_id)))
        .join(StaffUser, StaffUser.id == StaffSession.user_id)
        .where(StaffSession.last_seen_at > now - timedelta(minutes=10),
               StaffSession.expires_at > now, StaffUser.active.is_(True),
               (StaffUser.team == team) | (StaffUser.role == "admin"))
    ).scalar_one()
    return max(1, int(count))


def typical_handle_minutes(session: Session) -> float:
    """Median minutes from claim to close over the last 50 hand-offs (honest, not hopeful)."""
    rows = session.execute(
        select(Conversation.claimed_at, Conversation.handoff_ended_at)
        .where(Conversation.claimed_at.is_not(None), Conversation.handoff_ended_at.is_not(None))
        .order_by(Conversation.handoff_ended_at.desc()).limit(50)
    ).all()
    spans = [(end - start).total_seconds() / 60 for start, end in rows if end > start]
    return max(1.0, statistics.median(spans)) if spans else DEFAULT_HANDLE_MINUTES


def wait_estimate_minutes(session: Session, conv: Conversation) -> int | None:
    position = queue_position(session, conv)
    if position is None:
        return None
    per_agent = typical_handle_minutes(session) / online_agents(session, conv.team)
    return max(1, round(position * per_agent))


# ---- agent side -----------------------------------------------------------------------

def _visible(conv: Conversation, agent: StaffUser) -> bool:
    """Admins see every conversation; an agent sees those of their team that were handed to
    a person — a conversation the bot handled alone is none of an agent's business."""
    if agent.role == "admin":
        return True
    return conv.team == agent.team and conv.escalated_at is not None


def get_for_agent(session: Session, conversation_id: int, agent: StaffUser) -> Conversation:
    conv = session.get(Conversation, conversation_id)
    if conv is None or not _visible(conv, agent):
        # another team's conversation does not exist, as far as this agent knows
        raise HandoffError("not_found", "conversation not found")
    return conv


def claim(session: Session, conversation_id: int,
          agent: StaffUser) -> tuple[Conversation, bool]:
    """(conversation, True) for the one agent who won; a repeat by the same agent is
    (conversation, False); anybody else gets ``already_claimed``."""
    conv = get_for_agent(session, conversation_id, agent)
    now = utcnow()
    won = session.execute(
        update(Conversation)
        .where(Conversation.id == conv.id, Conversation.status == "waiting_agent")
        .values(status="with_agent", agent_id=agent.id, claimed_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    session.refresh(conv)
    if won != 1:
        if conv.status == "with_agent":
            if conv.agent_id == agent.id:
                return conv, False  # a double click
            raise HandoffError("already_claimed", "another agent is already handling it")
        if conv.status == "closed" or conv.handoff_ended_at is not None:
            raise HandoffError("closed", "this conversation is already closed")
        raise HandoffError("not_waiting", "this conversation is not waiting for an agent")
    if conv.handoff_case_id:
        case = session.get(Case, conv.handoff_case_id)
        if case is not None:
            case.assigned_agent_id = agent.id
            if case.status == "open":
                cases_svc.transition(session, case, "in_progress", actor=agent.username)
    return conv, True


def _owned(session: Session, conversation_id: int, agent: StaffUser) -> Conversation:
    conv = get_for_agent(session, conversation_id, agent)
    if conv.status != "with_agent":
        if conv.status == "waiting_agent":
            raise HandoffError("not_owner", "claim the conversation first")
        raise HandoffError("closed", "this conversation is already closed")
    if conv.agent_id != agent.id and agent.role != "admin":
        raise HandoffError("not_owner", "another agent is handling this conversation")
    return conv


def reply(session: Session, conversation_id: int, agent: StaffUser, text: str) -> Message:
    text = (text or "").strip()
    if not text:
        raise HandoffError("bad_input", "the reply is empty")
    if len(text) > MAX_REPLY_CHARS:
        raise HandoffError("bad_input", f"the reply is longer than {MAX_REPLY_CHARS} characters")
    conv = _owned(session, conversation_id, agent)
    channel = last_customer_channel(session, conv)
    msg = convs.add_message(session, conv, direction="out", author="agent", text=text,
                            payload={"text": text, "agent": agent.username}, channel=channel)
    if conv.first_agent_reply_at is None:
        conv.first_agent_reply_at = msg.created_at
    return msg


def last_customer_channel(session: Session, conv: Conversation) -> str:
    channel = session.execute(
        select(Message.channel)
        .where(Message.conversation_id == conv.id, Message.direction == "in",
               Message.channel.is_not(None))
        .order_by(Message.id.desc()).limit(1)
    ).scalar_one_or_none()
    return channel or conv.channel


def _case(session: Session, conv: Conversation) -> Case:
    case = session.get(Case, conv.handoff_case_id) if conv.handoff_case_id else None
    if case is None:
        raise HandoffError("not_found", "this conversation has no case")
    return case


def note(session: Session, conversation_id: int, agent: StaffUser, text: str) -> CaseEvent:
    text = (text or "").strip()
    if not text:
        raise HandoffError("bad_input", "the note is empty")
    conv = get_for_agent(session, conversation_id, agent)
    return cases_svc.add_note(session, _case(session, conv), actor=agent.username,
                              note=text[:MAX_REPLY_CHARS], internal=True)


def set_case_status(session: Session, conversation_id: int, agent: StaffUser,
                    status: str) -> Case:
    conv = get_for_agent(session, conversation_id, agent)
    case = _case(session, conv)
    if status == case.status:
        return case
    try:
        cases_svc.transition(session, case, status, actor=agent.username)
    except cases_svc.InvalidTransition as exc:
        raise HandoffError("bad_input", str(exc)) from exc
    return case


def set_resolution(session: Session, conversation_id: int, agent: StaffUser,
                   text: str) -> Case:
    text = (text or "").strip()
    if not text:
        raise HandoffError("bad_input", "the resolution is empty")
    conv = get_for_agent(session, conversation_id, agent)
    case = _case(session, conv)
    cases_svc.set_resolution(session, case, actor=agent.username, resolution=text[:2000])
    return case


def transfer(session: Session, conversation_id: int, agent: StaffUser,
             to_username: str) -> tuple[Conversation, StaffUser]:
    conv = _owned(session, conversation_id, agent)
    target = session.execute(select(StaffUser).where(
        StaffUser.username == (to_username or "").strip().lower(),
        StaffUser.active.is_(True))).scalar_one_or_none()
    if target is None or not (target.role == "admin" or target.team == conv.team):
        raise HandoffError("bad_input", f"no active agent {to_username!r} in this team")
    conv.agent_id = target.id
    if conv.handoff_case_id:
        case = session.get(Case, conv.handoff_case_id)
        if case is not None:
            case.assigned_agent_id = target.id
            cases_svc.add_note(session, case, actor=agent.username, internal=True,
                               note=f"transferred to {target.username}")
    return conv, target


def close(session: Session, conversation_id: int, agent: StaffUser,
          resolution: str | None = None) -> Conversation:
    """The agent is done: the conversation goes back to the bot (which asks the survey)."""
    conv = _owned(session, conversation_id, agent)
    now = utcnow()
    done = session.execute(
        update(Conversation)
        .where(Conversation.id == conv.id, Conversation.status == "with_agent")
        .values(status="bot", handoff_ended_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    session.refresh(conv)
    if done != 1:
        raise HandoffError("closed", "this conversation is already closed")
    if conv.handoff_case_id:
        case = session.get(Case, conv.handoff_case_id)
        if case is not None:
            if resolution and resolution.strip():
                cases_svc.set_resolution(session, case, actor=agent.username,
                                         resolution=resolution.strip()[:2000])
            if case.type == "support" and case.status in cases_svc.OPEN_STATUSES:
                if case.status == "open":
                    cases_svc.transition(session, case, "in_progress", actor=agent.username)
                cases_svc.transition(session, case, "resolved", actor=agent.username)
    return conv


# ---- what the console shows -----------------------------------------------------------

def row(session: Session, conv: Conversation, now: datetime | None = None) -> dict[str, Any]:
    now = now or utcnow()
    customer = session.get(Customer, conv.customer_id) if conv.customer_id else None
    case = session.get(Case, conv.handoff_case_id) if conv.handoff_case_id else None
    agent = session.get(StaffUser, conv.agent_id) if conv.agent_id else None
    last_in = session.execute(
        select(Message.text).where(Message.conversation_id == conv.id,
                                   Message.direction == "in")
        .order_by(Message.id.desc()).limit(1)).scalar_one_or_none()
    summary = conv.handoff_summary or {}
    return {
        "conversation_id": conv.id,
        "status": conv.status,
        "priority": conv.priority,
        "reason": conv.escalation_reason,
        "language": conv.language,
        "channel": last_customer_channel(session, conv),
        "customer_name": customer.name if customer else
        ((summary.get("customer") or {}).get("name")),
        "case_number": case.number if case else None,
        "waiting_seconds": int((now - conv.escalated_at).total_seconds())
        if conv.escalated_at else 0,
        "agent": agent.username if agent else None,
        "preview": (last_in or "")[:140],
        "team": conv.team,
    }


def queue_rows(session: Session, agent: StaffUser) -> list[dict[str, Any]]:
    team = None if agent.role == "admin" else agent.team
    rows = [row(session, c) for c in waiting(session, team)]
    mine = select(Conversation).where(Conversation.status == "with_agent")
    if agent.role != "admin":
        mine = mine.where(Conversation.agent_id == agent.id)
    rows += [row(session, c) for c in session.execute(
        mine.order_by(Conversation.claimed_at)).scalars()]
    return rows


def detail(session: Session, conversation_id: int, agent: StaffUser) -> dict[str, Any]:
    conv = get_for_agent(session, conversation_id, agent)
    audit.record_view(session, agent.username, f"conversation:{conv.id}",
                      {"customer_id": conv.customer_id, "escalated": conv.escalated_at
                       is not None})
    related = [conv]
    if conv.customer_id:
        related = list(session.execute(
            select(Conversation).where(Conversation.customer_id == conv.customer_id)
            .order_by(Conversation.started_at.desc()).limit(5)).scalars())
        if conv not in related:
            related.append(conv)
    transcript = []
    for c in sorted(related, key=lambda c: (c.started_at, c.id)):
        for m in convs.transcript(session, c.id):
            transcript.append({**convs.item(m), "conversation_id": c.id})
    orders: list[dict[str, Any]] = []
    case_rows: list[Case] = []
    if conv.customer_id:
        for order in session.execute(select(Order).where(
                Order.customer_id == conv.customer_id).order_by(Order.id)).scalars():
            lines = session.execute(
                select(OrderLine, Product).join(Product, Product.id == OrderLine.product_id)
                .where(OrderLine.order_id == order.id).order_by(OrderLine.id)).all()
            orders.append({
                "number": order.number,
                "delivered_at": order.delivered_at.isoformat() if order.delivered_at else None,
                "lines": [{"line_id": line.line_no,
                           "product": p.name_en if conv.language == "en" else p.name_es,
                           "category": p.category} for line, p in lines],
            })
        case_rows = cases_svc.list_cases(session, customer_id=conv.customer_id)
    elif conv.handoff_case_id:
        case_rows = [c for c in [session.get(Case, conv.handoff_case_id)] if c is not None]
    case_list = []
    for case in case_rows:
        events = session.execute(select(CaseEvent).where(CaseEvent.case_id == case.id)
                                 .order_by(CaseEvent.id)).scalars().all()
        case_list.append({
            "number": case.number, "type": case.type, "status": case.status,
            "resolution": case.resolution, "is_handoff_case": case.id == conv.handoff_case_id,
            "notes": [{"text": e.note, "author": e.actor, "at": e.created_at.isoformat() + "Z"}
                      for e in events if e.kind == "note"],
        })
    return {"conversation": row(session, conv), "summary": conv.handoff_summary or {},
            "transcript": transcript, "orders": orders, "cases": case_list}
