"""The KPI engine as it was before it moved into SQL (plain Python over every row), kept as
the oracle for tests/test_kpi_sql.py: the SQL engine must give the very same numbers on
random data. Only the team filter was added (conversation team; a case by its conversation).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.db.models import Case, CaseEvent, Conversation, SurveyResponse
from bot.services.kpi import (
    ABANDONED_OUTCOMES,
    CONFIRMED,
    ESCALATED_OUTCOMES,
    FCR_WINDOW,
    NOT_CONTAINED,
    RETURN_WINDOW,
    Filters,
    ces,
    csat,
    duration_stats,
    nps,
    pct,
)


def _conversations(session: Session, f: Filters) -> list[Conversation]:
    stmt = select(Conversation)
    if f.since:
        stmt = stmt.where(Conversation.started_at >= f.since)
    if f.until:
        stmt = stmt.where(Conversation.started_at < f.until)
    if f.channel:
        stmt = stmt.where(Conversation.channel == f.channel)
    if f.language:
        stmt = stmt.where(Conversation.language == f.language)
    if f.agent_id is not None:
        stmt = stmt.where(Conversation.agent_id == f.agent_id)
    if f.team:
        stmt = stmt.where(Conversation.team == f.team)
    convs = list(session.execute(stmt).scalars())
    if f.case_type:
        with_type = set(session.execute(
            select(Case.conversation_id).where(Case.type == f.case_type)).scalars())
        convs = [c for c in convs if c.id in with_type]
    return convs


def _cases(session: Session, f: Filters) -> list[Case]:
    stmt = select(Case)
    if f.since:
        stmt = stmt.where(Case.created_at >= f.since)
    if f.until:
        stmt = stmt.where(Case.created_at < f.until)
    if f.channel:
        stmt = stmt.where(Case.channel == f.channel)
    if f.language:
        stmt = stmt.where(Case.language == f.language)
    if f.case_type:
        stmt = stmt.where(Case.type == f.case_type)
    if f.agent_id is not None:
        stmt = stmt.where(Case.assigned_agent_id == f.agent_id)
    rows = list(session.execute(stmt).scalars())
    if f.team:
        teams = dict(session.execute(select(Conversation.id, Conversation.team)).all())
        rows = [c for c in rows if teams.get(c.conversation_id) == f.team]
    return rows


def _surveys(session: Session, conv_ids: set[int]) -> list[SurveyResponse]:
    if not conv_ids:
        return []
    return list(session.execute(select(SurveyResponse).where(
        SurveyResponse.conversation_id.in_(conv_ids))).scalars())


def report(session: Session, f: Filters | None = None, *, idle_timeout: int = 1800,
           now: datetime | None = None) -> dict[str, Any]:
    """All KPIs. A form left idle longer than `idle_timeout` counts as abandoned even if the
    customer never came back (the hub only closes a conversation on its next message)."""
    f = f or Filters()
    now = now or datetime.utcnow()
    convs = _conversations(session, f)
    conv_ids = {c.id for c in convs}
    surveys = _surveys(session, conv_ids)
    case_rows = _cases(session, f)
    case_ids = [c.id for c in case_rows]
    events = list(session.execute(select(CaseEvent).where(CaseEvent.case_id.in_(case_ids)))
                  .scalars()) if case_ids else []
    reopened = {e.case_id for e in events if e.kind == "reopened"}
    ever_resolved = {e.case_id for e in events if e.to_status == "resolved"}
    escalated_convs = {c.id for c in convs
                       if c.escalated_at is not None or c.outcome in ESCALATED_OUTCOMES}

    # containment: confirmed vs assumed, never mixed
    everyone = list(session.execute(select(Conversation)).scalars())  # returns may be unfiltered
    by_customer: dict[Any, list[Conversation]] = {}
    for c in everyone:
        by_customer.setdefault(c.customer_id or f"s:{c.sender}", []).append(c)
    positive_survey = {s.conversation_id for s in surveys
                       if (s.ces is not None and s.ces >= 5) or (s.nps is not None and s.nps >= 9)
                       or (s.csat is not None and s.csat >= 4)}

    def came_back(c: Conversation, window: timedelta) -> bool:
        end = c.ended_at or c.last_activity_at
        return any(o.id != c.id and end < o.started_at <= end + window
                   for o in by_customer.get(c.customer_id or f"s:{c.sender}", []))

    abandoned = {c.id for c in convs if c.outcome in ABANDONED_OUTCOMES
                 or (c.outcome == "form_in_progress" and c.status == "bot"
                     and c.last_activity_at < now - timedelta(seconds=idle_timeout))}
    not_escalated = [c for c in convs if c.id not in escalated_convs]
    confirmed = [c for c in not_escalated if c.outcome == CONFIRMED or c.id in positive_survey]
    confirmed_ids = {c.id for c in confirmed}
    # assumed: no hand-off, not abandoned, not told us it did not help, no return in 72 h
    assumed = [c for c in not_escalated if c.id not in confirmed_ids and c.id not in abandoned
               and c.outcome not in NOT_CONTAINED and not came_back(c, RETURN_WINDOW)]

    # FCR over resolved cases: no escalation, no reopening, no new contact within 7 days
    resolved = [c for c in case_rows if c.id in ever_resolved]  # closed unresolved: no
    conv_by_id = {c.id: c for c in everyone}
    fcr_ok = 0
    for case in resolved:
        conv = conv_by_id.get(case.conversation_id)
        escalated = conv is not None and (conv.escalated_at is not None
                                          or conv.outcome in ESCALATED_OUTCOMES)
        recontact = conv is not None and came_back(conv, FCR_WINDOW)
        if not escalated and case.id not in reopened and not recontact:
            fcr_ok += 1

    # times
    frt = [(c.first_agent_reply_at - c.escalated_at).total_seconds() for c in convs
           if c.escalated_at and c.first_agent_reply_at]
    # handling time: from the agent taking the conversation to handing it back
    handling = [(c.handoff_ended_at - c.claimed_at).total_seconds() for c in convs
                if c.claimed_at and c.handoff_ended_at and c.handoff_ended_at >= c.claimed_at]
    resolution: dict[str, dict[str, float | None]] = {}
    for kind in sorted({c.type for c in case_rows}):
        secs = [(c.resolved_at - c.created_at).total_seconds() for c in case_rows
                if c.type == kind and c.resolved_at]
        resolution[kind] = duration_stats(secs)

    answered = [s for s in surveys if any(v is not None for v in (s.ces, s.nps, s.csat))
                or s.comment]
    return {
        "filters": {k: (v.isoformat() if isinstance(v, datetime) else v)
                    for k, v in f.__dict__.items()},
        "conversations": len(convs),
        "demo_conversations": sum(bool(c.is_demo) for c in convs),
        "cases": len(case_rows),
        "csat_pct": csat(s.csat for s in surveys),
        "nps": nps(s.nps for s in surveys),
        "ces": ces(s.ces for s in surveys),
        "fcr_pct": pct(fcr_ok, len(resolved)),
        "containment_confirmed_pct": pct(len(confirmed), len(convs)),
        "containment_assumed_pct": pct(len(assumed), len(convs)),
        "escalation_rate_pct": pct(len(escalated_convs), len(convs)),
        "abandonment_pct": pct(len(abandoned), len(convs)),
        "first_response_time": duration_stats(frt),
        "handling_time": duration_stats(handling),
        "resolution_time": resolution,
        "reopen_rate_pct": pct(len(reopened & ever_resolved), len(ever_resolved)),
        "survey_response_rate_pct": pct(len(answered), len(surveys)),
    }
