"""The SQL KPI engine gives exactly the numbers of the plain-Python engine it replaced
(tests/kpi_reference.py) on random data, on SQLite and PostgreSQL; a chart's point for a
day/week/month equals the period report of that bucket; windows are exact to the microsecond.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import pytest

from bot.db.models import Case, CaseEvent, Conversation, Customer, StaffUser, SurveyResponse
from bot.services import kpi
from bot.services.kpi_sql import bucket_count, bucket_starts
from tests import kpi_reference

T0 = datetime(2026, 9, 1, 0, 0)
NOW = datetime(2026, 11, 2, 12, 0)
OUTCOMES = [None, "resolved_bot_confirmed", "ended_idle", "case_opened", "escalated",
            "abandoned", "abandoned_queue", "faq_not_solved", "form_in_progress"]
REASONS = [None, "request_human", "complaint", "fallback"]


def _when(rng: random.Random, start: datetime, days: float) -> datetime:
    return start + timedelta(seconds=rng.uniform(0, days * 86400),
                             microseconds=rng.randrange(1_000_000))


def seed_random(session, seed: int = 7, n: int = 260) -> dict[str, int]:
    rng = random.Random(seed)
    customers = [Customer(name=f"c{i}", email=f"c{i}-{seed}@example.com") for i in range(12)]
    agents = [StaffUser(username=f"agent{i}-{seed}", password_hash="x", role="agent",
                        team=team) for i, team in enumerate(["postventa", "tienda"])]
    session.add_all(customers + agents)
    session.flush()
    senders = [f"sender-{seed}-{i:04d}-abcdef" for i in range(50)]
    convs: list[Conversation] = []
    for i in range(n):
        start = _when(rng, T0, 60)
        if convs and rng.random() < 0.15:  # a return right at / after a window's edge
            prev = rng.choice(convs)
            end = prev.ended_at or prev.last_activity_at
            start = end + rng.choice([timedelta(hours=72), timedelta(hours=72, microseconds=1),
                                      timedelta(days=7), timedelta(days=7, microseconds=1),
                                      timedelta(hours=1)])
            customer_id, sender = prev.customer_id, prev.sender
        else:
            customer_id = rng.choice(customers).id if rng.random() < 0.6 else None
            sender = rng.choice(senders)
        outcome = rng.choice(OUTCOMES)
        last = start + timedelta(minutes=rng.randint(1, 90), microseconds=rng.randrange(10**6))
        conv = Conversation(
            sender=sender, customer_id=customer_id, channel=rng.choice(["web", "telegram"]),
            language=rng.choice(["es", "en"]), team=rng.choice(["postventa", "tienda"]),
            status=rng.choice(["bot", "closed"]), outcome=outcome, started_at=start,
            last_activity_at=min(last, NOW),
            ended_at=last if rng.random() < 0.7 else None, is_demo=rng.random() < 0.3,
            agent_id=rng.choice(agents).id if rng.random() < 0.4 else None)
        if outcome in ("escalated", "abandoned_queue") or rng.random() < 0.1:
            conv.escalated_at = start + timedelta(seconds=rng.randint(1, 600),
                                                  microseconds=rng.randrange(10**6))
            conv.escalation_reason = rng.choice(REASONS)
            if rng.random() < 0.7:
                conv.first_agent_reply_at = conv.escalated_at + timedelta(
                    seconds=rng.choice([60, 600, 1800, 1800, 3600, rng.randint(1, 7200)]),
                    microseconds=rng.randrange(10**6))
                conv.claimed_at = conv.first_agent_reply_at - timedelta(seconds=20)
                if rng.random() < 0.8:
                    conv.handoff_ended_at = conv.claimed_at + timedelta(
                        seconds=rng.randint(-30, 3000))
        session.add(conv)
        session.flush()
        convs.append(conv)
        if rng.random() < 0.65:
            def score(lo: int, hi: int) -> int | None:
                return rng.randint(lo, hi) if rng.random() < 0.7 else None

            session.add(SurveyResponse(
                conversation_id=conv.id, channel=conv.channel, language=conv.language,
                state="completed", ces=score(1, 7), nps=score(0, 10), csat=score(1, 5),
                comment=rng.choice([None, "", "bien", "=1+1"])))
        if rng.random() < 0.45:
            created = start + timedelta(minutes=rng.randint(0, 30))
            resolved = None
            if rng.random() < 0.6:
                resolved = created + timedelta(hours=rng.choice(
                    [1, 24, 168, 168, 200, rng.randint(1, 500)]), microseconds=rng.randrange(10**6))
            case = Case(number=f"GAR-2026-{seed:02d}{i:04d}",
                        type=rng.choice(kpi.CASE_TYPES), status="open",
                        conversation_id=conv.id if rng.random() < 0.9 else None,
                        channel=conv.channel, language=conv.language, created_at=created,
                        updated_at=created, resolved_at=resolved,
                        assigned_agent_id=rng.choice(agents).id if rng.random() < 0.4 else None)
            session.add(case)
            session.flush()
            if resolved or rng.random() < 0.2:
                session.add(CaseEvent(case_id=case.id, kind="status", to_status="resolved",
                                      actor="a"))
                if rng.random() < 0.25:
                    session.add(CaseEvent(case_id=case.id, kind="reopened", to_status="open",
                                          actor="c"))
    session.commit()
    return {"agent": agents[0].id}


def _filter_sets(agent: int) -> list[kpi.Filters]:
    mid = T0 + timedelta(days=20, hours=5, microseconds=123)
    return [
        kpi.Filters(),
        kpi.Filters(since=T0 + timedelta(days=10), until=T0 + timedelta(days=40)),
        kpi.Filters(since=mid),
        kpi.Filters(until=mid),
        kpi.Filters(channel="telegram"),
        kpi.Filters(language="en", case_type="warranty"),
        kpi.Filters(case_type="return", since=T0 + timedelta(days=5)),
        kpi.Filters(agent_id=agent),
        kpi.Filters(team="tienda"),
        kpi.Filters(team="tienda", channel="web", language="es"),
        kpi.Filters(since=T0 + timedelta(days=400)),  # nothing
    ]


def test_sql_engine_equals_the_python_reference(session):
    ids = seed_random(session)
    for idle in (1800, 10**7):
        for f in _filter_sets(ids["agent"]):
            expected = kpi_reference.report(session, f, idle_timeout=idle, now=NOW)
            got = kpi.report(session, f, idle_timeout=idle, now=NOW)
            assert {k: got[k] for k in expected} == expected, f


def test_a_charts_point_is_the_report_of_its_bucket(session):
    seed_random(session, seed=11, n=160)
    since, until = T0 + timedelta(days=3, hours=7), T0 + timedelta(days=58)
    base = kpi.Filters(since=since, until=until, channel="web")
    for unit in ("day", "week", "month"):
        points = kpi.series(session, base, unit, now=NOW)
        assert len(points) == bucket_count(since, until, unit)
        assert [p["bucket"] for p in points] == list(bucket_starts(since, until, unit))
        for i, point in enumerate(points):
            start = max(since, datetime.fromisoformat(point["bucket"]))
            end = (datetime.fromisoformat(points[i + 1]["bucket"]) if i + 1 < len(points)
                   else until)
            alone = kpi.report(session, kpi.Filters(since=start, until=end, channel="web"),
                               now=NOW)
            alone.pop("filters")
            assert {k: v for k, v in point.items() if k != "bucket"} == alone, (unit, point)
        assert sum(p["conversations"] for p in points) == kpi.report(
            session, base, now=NOW)["conversations"]


def test_return_window_is_exact_to_the_microsecond(session):
    end = datetime(2026, 10, 1, 10, 0, 0, 250_000)
    first = Conversation(sender="s" * 16, channel="web", status="closed", outcome="ended_idle",
                         started_at=end - timedelta(minutes=5), last_activity_at=end,
                         ended_at=end)
    edge = Conversation(sender="t" * 16, channel="web", status="closed", outcome="ended_idle",
                        started_at=end - timedelta(minutes=5), last_activity_at=end,
                        ended_at=end)
    session.add_all([first, edge])
    session.flush()
    later = [  # "s": back exactly at +72 h (counts); "t": 1 µs later (does not)
        Conversation(sender="s" * 16, channel="telegram", status="closed", outcome="ended_idle",
                     started_at=end + timedelta(hours=72), last_activity_at=end + timedelta(
                         hours=73), ended_at=end + timedelta(hours=73)),
        Conversation(sender="t" * 16, channel="telegram", status="closed", outcome="ended_idle",
                     started_at=end + timedelta(hours=72, microseconds=1),
                     last_activity_at=end + timedelta(hours=73),
                     ended_at=end + timedelta(hours=73)),
    ]
    session.add_all(later)
    session.commit()
    r = kpi.report(session, kpi.Filters(channel="web"), now=NOW)
    assert r["conversations"] == 2 and r["containment_assumed_pct"] == 50.0


def test_durations_are_exact_and_percentiles_nearest_rank(session):
    base = datetime(2026, 10, 5, 8, 0, 0, 999_999)
    waits = [61.5, 0.000001, 3600, 90, 90, 7200.25, 30, 45, 600, 1200, 59.999999]
    for i, secs in enumerate(waits):
        session.add(Conversation(
            sender=f"w{i:015d}", channel="web", status="closed", outcome="escalated",
            started_at=base, last_activity_at=base, escalated_at=base,
            first_agent_reply_at=base + timedelta(seconds=secs)))
    session.commit()
    frt = kpi.report(session, now=NOW, sla=kpi.Sla(first_response_minutes=1))
    assert frt["first_response_time"] == kpi.duration_stats(
        [timedelta(seconds=s).total_seconds() for s in waits])
    # within 1 minute: 0.000001, 30, 45, 59.999999 (61.5 and 90 are not)
    assert frt["sla"]["first_response_pct"] == kpi.pct(4, len(waits))


@pytest.mark.parametrize("unit", ["day", "week", "month"])
def test_bucket_keys(unit):
    since, until = datetime(2026, 1, 30, 15), datetime(2026, 3, 2)
    keys = list(bucket_starts(since, until, unit))
    assert len(keys) == bucket_count(since, until, unit)
    first = {"day": "2026-01-30", "week": "2026-01-26", "month": "2026-01-01"}[unit]
    last = {"day": "2026-03-01", "week": "2026-02-23", "month": "2026-03-01"}[unit]
    assert keys[0] == first and keys[-1] == last


def test_overview_is_report_previous_and_series_in_one_pass(session):
    ids = seed_random(session, seed=5, n=200)
    since, until = T0 + timedelta(days=30), T0 + timedelta(days=51)
    for f in (kpi.Filters(since=since, until=until),
              kpi.Filters(since=since, until=until, team="tienda", agent_id=ids["agent"]),
              kpi.Filters(since=T0 + timedelta(days=300), until=T0 + timedelta(days=310))):
        for unit in ("day", "week", "month"):
            got = kpi.overview(session, f, unit, now=NOW)
            assert got["current"] == kpi.report(session, f, now=NOW)
            before = kpi.Filters(**{**f.__dict__, "since": f.since - (until - since)
                                    if f.since == since else f.since - timedelta(days=10),
                                    "until": f.since})
            assert got["previous"] == kpi.report(session, before, now=NOW)
            assert got["series"] == kpi.series(session, f, unit, now=NOW)
