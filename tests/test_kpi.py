"""KPI formulas on hand-made fixtures, including the edge cases (n/a, ±100, passives)."""

from datetime import datetime, timedelta

import pytest

from bot.db.models import Case, CaseEvent, Conversation, SurveyResponse
from bot.services import kpi

T0 = datetime(2026, 10, 1, 10, 0)


def test_no_answers_is_na_not_zero():
    assert kpi.csat([]) is None and kpi.nps([]) is None
    assert kpi.ces([]) == {"mean": None, "pct_5_to_7": None, "answers": 0}
    assert kpi.pct(0, 0) is None and kpi.percentile([], 90) is None


def test_nps_bounds_and_passives():
    assert kpi.nps([10, 9, 9]) == 100.0
    assert kpi.nps([0, 3, 6]) == -100.0
    assert kpi.nps([7, 8, 7, 8]) == 0.0  # only passives
    assert kpi.nps([10, 8, 6, 9]) == 25.0  # 2 promoters, 1 passive, 1 detractor of 4


def test_csat_and_ces():
    assert kpi.csat([5, 4, 3, 1]) == 50.0
    assert kpi.csat([None, 5]) == 100.0
    assert kpi.ces([7, 5, 4, 1]) == {"mean": 4.25, "pct_5_to_7": 50.0, "answers": 4}


def test_percentile_nearest_rank():
    assert kpi.percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 90) == 9
    assert kpi.percentile([42], 90) == 42


def _conv(session, sender, outcome, start, **kw):
    c = Conversation(sender=sender, channel=kw.pop("channel", "web"),
                     language=kw.pop("language", "es"), status="closed", outcome=outcome,
                     started_at=start, last_activity_at=start + timedelta(minutes=5),
                     ended_at=start + timedelta(minutes=5), **kw)
    session.add(c)
    session.flush()
    return c


def test_report_on_fixtures(session):
    confirmed = _conv(session, "a" * 16, "resolved_bot_confirmed", T0)
    assumed = _conv(session, "b" * 16, "ended_idle", T0)
    came_back = _conv(session, "c" * 16, "ended_idle", T0)
    _conv(session, "c" * 16, "ended_idle", T0 + timedelta(hours=10))  # back within 72 h
    escalated = _conv(session, "d" * 16, "escalated", T0, channel="telegram", language="en",
                      escalated_at=T0 + timedelta(minutes=1),
                      first_agent_reply_at=T0 + timedelta(minutes=11),
                      claimed_at=T0 + timedelta(minutes=9),
                      handoff_ended_at=T0 + timedelta(minutes=29))
    _conv(session, "e" * 16, "abandoned", T0)
    with_case = _conv(session, "f" * 16, "case_opened", T0)
    session.add_all([
        SurveyResponse(conversation_id=confirmed.id, channel="web", language="es",
                       state="completed", ces=7, nps=10, csat=5),
        SurveyResponse(conversation_id=escalated.id, channel="telegram", language="en",
                       state="completed", ces=2, nps=3, csat=2),
        SurveyResponse(conversation_id=assumed.id, channel="web", language="es",
                       state="offered"),
        SurveyResponse(conversation_id=with_case.id, channel="web", language="es",
                       state="declined"),
    ])
    case = Case(number="GAR-2026-000001", type="warranty", status="resolved",
                conversation_id=with_case.id, channel="web", language="es",
                created_at=T0, updated_at=T0, resolved_at=T0 + timedelta(hours=48))
    reopened = Case(number="DEV-2026-000001", type="return", status="open",
                    conversation_id=came_back.id, channel="web", language="es",
                    created_at=T0, updated_at=T0)
    session.add_all([case, reopened])
    session.flush()
    session.add_all([
        CaseEvent(case_id=case.id, kind="status", to_status="resolved", actor="a"),
        CaseEvent(case_id=reopened.id, kind="status", to_status="resolved", actor="a"),
        CaseEvent(case_id=reopened.id, kind="reopened", to_status="open", actor="c"),
    ])
    session.commit()

    r = kpi.report(session)
    assert r["conversations"] == 7 and r["cases"] == 2
    assert r["nps"] == 0.0  # one promoter, one detractor
    assert r["csat_pct"] == 50.0
    assert r["ces"] == {"mean": 4.5, "pct_5_to_7": 50.0, "answers": 2}
    assert r["escalation_rate_pct"] == 14.3  # 1 of 7
    assert r["abandonment_pct"] == 14.3
    assert r["containment_confirmed_pct"] == 14.3  # the confirmed one only
    # assumed: no hand-off, not abandoned, not confirmed, no return within 72 h:
    # "b", the later "c" conversation and the case conversation (not the first "c")
    assert r["containment_assumed_pct"] == 42.9
    assert r["first_response_time"]["median_s"] == 600
    assert r["handling_time"]["median_s"] == 20 * 60  # claimed → handed back
    assert r["resolution_time"]["warranty"]["median_s"] == 48 * 3600
    assert r["reopen_rate_pct"] == 50.0  # 1 of 2 resolved cases reopened
    assert r["fcr_pct"] == 50.0  # the reopened one is not first-contact resolution
    assert r["survey_response_rate_pct"] == 50.0  # 2 of 4 offered have answers

    en = kpi.report(session, kpi.Filters(language="en"))
    assert en["conversations"] == 1 and en["nps"] == -100.0
    tg = kpi.report(session, kpi.Filters(channel="telegram", case_type="warranty"))
    assert tg["conversations"] == 0 and tg["nps"] is None
    later = kpi.report(session, kpi.Filters(since=T0 + timedelta(days=1)))
    assert later["conversations"] == 0 and later["csat_pct"] is None


@pytest.mark.parametrize("args", [[], ["--json"], ["--since", "2026-01-01", "--language", "es"]])
def test_report_cli(db_url, args):
    import os

    from tests.conftest import run_cli

    env = {**os.environ, "DATABASE_URL": db_url}
    result = run_cli("report", *args, env=env)
    assert result.returncode == 0, result.stderr
    assert ("nps" in result.stdout) if "--json" in args else ("NPS" in result.stdout)


def test_report_cli_bad_date(db_url):
    import os

    from tests.conftest import run_cli

    result = run_cli("report", "--since", "yesterday", env={**os.environ, "DATABASE_URL": db_url})
    assert result.returncode == 2 and "YYYY-MM-DD" in result.stderr


def test_idle_form_is_abandoned_and_not_assumed_contained(session):
    left = _conv(session, "g" * 16, "form_in_progress", T0)
    left.status = "bot"
    _conv(session, "h" * 16, "faq_not_solved", T0)
    closed_unresolved = Case(number="SOP-2026-000009", type="support", status="closed",
                             channel="web", language="es", created_at=T0, updated_at=T0)
    session.add(closed_unresolved)
    session.commit()
    r = kpi.report(session, now=T0 + timedelta(hours=2), idle_timeout=1800)
    assert r["abandonment_pct"] == 50.0
    assert r["containment_assumed_pct"] == 0.0  # neither counts as contained
    assert r["fcr_pct"] is None  # a case closed without being resolved is not in FCR


def test_verification_attempts_lock(session):
    from bot.services import verification_attempts as va

    for _ in range(va.MAX_FAILURES - 1):
        va.record_failure(session, "order:PED-000001")
    assert not va.is_locked(session, "order:PED-000001")
    assert va.record_failure(session, "order:PED-000001") == va.MAX_FAILURES
    assert va.is_locked(session, "order:PED-000001")
    va.reset(session, "order:PED-000001")
    session.flush()
    assert not va.is_locked(session, "order:PED-000001")
