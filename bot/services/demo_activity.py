"""Demo activity over the last 90 days: conversations, cases and surveys, so that
`bot report` shows meaningful numbers on a fresh install. Everything is marked is_demo and
removed by `python -m bot demo clear`. Deterministic (seeded) so reports are reproducible."""

from __future__ import annotations

import random
import secrets
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.db.models import Case, CaseEvent, Conversation, Customer, OrderLine, SurveyResponse
from bot.services.cases import next_number

OUTCOMES = [  # (outcome, weight)
    ("resolved_bot_confirmed", 30), ("ended_idle", 22), ("case_opened", 20), ("escalated", 12),
    ("abandoned", 6), ("faq_not_solved", 6), ("abandoned_queue", 4),
]


def load(session: Session, now: datetime | None = None, count: int = 140) -> int:
    if session.execute(select(Conversation.id).where(Conversation.is_demo.is_(True))).first():
        return 0
    rng = random.Random(20261125)
    now = now or datetime.utcnow()
    customers = list(session.execute(select(Customer).where(Customer.is_demo.is_(True)))
                     .scalars())
    has_orders = session.execute(select(OrderLine.id).limit(1)).first() is not None
    outcomes, weights = zip(*OUTCOMES, strict=True)
    for _ in range(count):
        started = now - timedelta(days=rng.uniform(0.5, 90), minutes=rng.randint(0, 600))
        customer = rng.choice(customers) if customers and rng.random() < 0.7 else None
        outcome = rng.choices(outcomes, weights)[0]
        channel = rng.choice(["web", "web", "telegram"])
        lang = customer.language if customer else rng.choice(["es", "es", "es", "en"])
        rng.getrandbits(40)  # (the draw the sender once took: the rest of the data is unchanged)
        conv = Conversation(
            # unguessable: a sender id is the key to a conversation's history (widget resume)
            sender=f"demo-{secrets.token_urlsafe(24)}", channel=channel, language=lang,
            language_source="locale", customer_id=customer.id if customer else None,
            status="closed", outcome=outcome, started_at=started,
            last_activity_at=started + timedelta(minutes=rng.randint(2, 15)),
            ended_at=started + timedelta(minutes=rng.randint(3, 20)), is_demo=True)
        if outcome in ("escalated", "abandoned_queue"):
            conv.escalated_at = started + timedelta(minutes=rng.randint(1, 5))
            if outcome == "escalated":
                conv.first_agent_reply_at = conv.escalated_at + timedelta(
                    seconds=rng.randint(30, 1800))
                conv.claimed_at = conv.first_agent_reply_at - timedelta(seconds=20)
                conv.handoff_ended_at = conv.claimed_at + timedelta(
                    seconds=rng.randint(120, 1500))
                conv.escalation_reason = rng.choice(["request_human", "complaint", "fallback"])
            else:
                conv.handoff_ended_at = conv.escalated_at + timedelta(
                    seconds=rng.randint(60, 900))
        session.add(conv)
        session.flush()
        case = None
        if outcome == "case_opened" and has_orders:
            kind = rng.choice(["warranty", "warranty", "return", "exchange"])
            case = Case(number=next_number(session, kind, started), type=kind, status="open",
                        customer_id=customer.id if customer else None,
                        # no order line: past demo cases must not block what a newcomer
                        # tries with the demo orders (duplicate / already returned)
                        order_line_id=None, conversation_id=conv.id,
                        channel=channel, language=lang, category="demo",
                        description="demo case", details={}, is_demo=True,
                        created_at=started, updated_at=started)
            session.add(case)
            session.flush()
            session.add(CaseEvent(case_id=case.id, kind="created", to_status="open",
                                  actor="bot", created_at=started))
            if rng.random() < 0.75:
                resolved_at = started + timedelta(days=rng.uniform(1, 20))
                if resolved_at < now:
                    case.status, case.resolved_at = "resolved", resolved_at
                    case.resolution = "demo resolution"
                    session.add(CaseEvent(case_id=case.id, kind="status", from_status="open",
                                          to_status="resolved", actor="agent",
                                          created_at=resolved_at))
                    if rng.random() < 0.1:
                        case.status, case.resolved_at = "open", None
                        session.add(CaseEvent(case_id=case.id, kind="reopened",
                                              from_status="resolved", to_status="open",
                                              actor="customer",
                                              created_at=resolved_at + timedelta(days=2)))
        if outcome not in ("abandoned", "abandoned_queue") and rng.random() < 0.7:
            answered = rng.random() < 0.65
            good = outcome in ("resolved_bot_confirmed", "case_opened")
            survey = SurveyResponse(
                conversation_id=conv.id, case_id=case.id if case else None, channel=channel,
                language=lang, outcome=outcome, is_demo=True, offered_at=conv.ended_at,
                updated_at=conv.ended_at, state="offered")
            if answered:
                survey.ces = min(7, max(1, round(rng.gauss(6 if good else 4, 1.2))))
                survey.nps = min(10, max(0, round(rng.gauss(8.5 if good else 6, 2))))
                if rng.random() < 0.5:
                    survey.csat = min(5, max(1, round(rng.gauss(4.3 if good else 3.2, 0.8))))
                survey.state = "completed" if rng.random() < 0.85 else "partial"
            elif rng.random() < 0.3:
                survey.state = "declined"
            session.add(survey)
    session.flush()
    return count


def clear(session: Session) -> None:
    from sqlalchemy import delete

    demo_convs = select(Conversation.id).where(Conversation.is_demo.is_(True)).scalar_subquery()
    demo_cases = select(Case.id).where(Case.is_demo.is_(True)).scalar_subquery()
    for stmt in (
        delete(SurveyResponse).where(SurveyResponse.conversation_id.in_(demo_convs)),
        delete(CaseEvent).where(CaseEvent.case_id.in_(demo_cases)),
        delete(Case).where(Case.is_demo.is_(True)),
        delete(Conversation).where(Conversation.is_demo.is_(True)),
    ):
        session.execute(stmt.execution_options(synchronize_session=False))
