"""Hand-off at the database level (SQLite and PostgreSQL): queue order, exactly-one claim,
replies and closing with clear errors, team visibility; and the business-hours schedule."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.db.models import Case, Conversation, StaffUser, utcnow
from bot.db.session import session_factory
from bot.services import cases as cases_svc
from bot.services import handoff as svc
from bot.services.business_hours import Schedule, ScheduleError
from bot.services.handoff import HandoffError
from bot.services.users import add_user

# ---- business hours -------------------------------------------------------------------

SCHEDULE = Schedule.parse("mon-fri 09:00-18:00; sat 10:00-14:00", "2026-12-25", "Europe/Madrid")


def utc(*args: int) -> datetime:
    return datetime(*args)  # naive UTC, as stored in the DB


def test_open_inside_the_weekly_hours_in_madrid_time():
    assert SCHEDULE.is_open(utc(2026, 11, 25, 8, 30))  # Wed 09:30 in Madrid (UTC+1)
    assert not SCHEDULE.is_open(utc(2026, 11, 25, 7, 30))  # 08:30 Madrid
    assert not SCHEDULE.is_open(utc(2026, 11, 25, 17, 0))  # 18:00 Madrid: closed
    assert SCHEDULE.is_open(utc(2026, 11, 28, 12, 0))  # Saturday 13:00
    assert not SCHEDULE.is_open(utc(2026, 11, 29, 12, 0))  # Sunday


def test_summer_time_is_respected():
    assert SCHEDULE.is_open(utc(2026, 7, 1, 7, 30))  # 09:30 CEST (UTC+2)
    assert not SCHEDULE.is_open(utc(2026, 7, 1, 16, 30))  # 18:30 CEST


def test_next_opening_skips_nights_weekends_and_holidays():
    friday_night = utc(2026, 11, 27, 20, 0)
    assert SCHEDULE.next_opening(friday_night).strftime("%a %H:%M") == "Sat 10:00"
    saturday_evening = utc(2026, 11, 28, 15, 0)
    assert SCHEDULE.next_opening(saturday_evening).strftime("%a %d %H:%M") == "Mon 30 09:00"
    christmas_eve = utc(2026, 12, 24, 19, 0)  # the 25th is a holiday
    assert SCHEDULE.next_opening(christmas_eve).strftime("%d %H:%M") == "26 10:00"
    assert not SCHEDULE.is_open(utc(2026, 12, 25, 10, 0))


@pytest.mark.parametrize("bad", ["mon-fri 9-18", "lun 09:00-18:00", "mon 18:00-09:00"])
def test_unreadable_schedules_are_refused_clearly(bad):
    with pytest.raises(ScheduleError):
        Schedule.parse(bad)


def test_hours_are_told_in_the_customers_words():
    """Customers read the hours in their language, never the setting's "mon-fri"."""
    shop = Schedule.parse("mon-fri 09:00-14:00; mon-fri 16:00-19:00; sat 10:00-13:00")
    assert shop.describe("es") == "lunes a viernes 09:00–14:00 y 16:00–19:00; sábado 10:00–13:00"
    assert shop.describe("en") == ("Monday to Friday 09:00–14:00 and 16:00–19:00; "
                                   "Saturday 10:00–13:00")
    assert Schedule.parse("sat-sun 10:00-12:00").describe("es") == "sábado y domingo 10:00–12:00"
    assert Schedule.parse("mon-sun 00:00-24:00").describe("en") == "Monday to Sunday 00:00–24:00"


@pytest.mark.parametrize("lang", ["es", "en"])
def test_the_closed_queue_note_names_the_hours_in_the_customers_language(lang):
    from bot.core.config import Settings
    from bot.hub.turns import TurnService

    today = datetime.now(ZoneInfo("Europe/Madrid")).weekday()
    other = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[(today + 2) % 7]
    hours = f"{other} 10:00-14:00"
    turns = TurnService(Settings(support_hours=hours), rasa=None, session_factory=None)
    note = turns._queue_note(None, Conversation(language=lang))
    assert note["queue"] == {"open": False}
    named = turns.schedule.describe(lang)
    assert named in note["text"] and other not in note["text"], note["text"]
    assert "10:00–14:00" in named


def test_round_the_clock_schedule():
    always = Schedule.parse("mon-sun 00:00-24:00")
    assert always.is_open(utc(2026, 11, 29, 23, 59))


# ---- queue, claims, replies -----------------------------------------------------------

def _waiting(session, reason="request_human", team="postventa", minutes_ago=0, sender=None):
    conv = Conversation(sender=sender or f"web-{reason}-{minutes_ago}-{team}-xxxxxx",
                        channel="web", team=team)
    session.add(conv)
    session.flush()
    case = cases_svc.open_case(session, case_type="support", conversation_id=conv.id).case
    svc.escalate(session, conv, {"reason": reason, "case_number": case.number,
                                 "summary": {"reason": reason}})
    conv.escalated_at = utcnow() - timedelta(minutes=minutes_ago)
    session.flush()
    return conv


@pytest.fixture
def agents(session):
    ana = add_user(session, "ana", "contraseña-segura-1", "agent")
    luis = add_user(session, "luis", "contraseña-segura-2", "agent")
    other = add_user(session, "olga", "contraseña-segura-3", "agent")
    other.team = "muebles"
    boss = add_user(session, "jefa", "contraseña-segura-4", "admin")
    session.commit()
    return ana, luis, other, boss


def test_queue_order_is_priority_then_waiting_time(session, agents):
    ana = agents[0]
    old = _waiting(session, minutes_ago=10)
    complaint = _waiting(session, "complaint", minutes_ago=1)
    new = _waiting(session, minutes_ago=2)
    session.commit()
    ids = [r["conversation_id"] for r in svc.queue_rows(session, ana)]
    assert ids == [complaint.id, old.id, new.id]
    assert svc.queue_position(session, new) == 3
    assert complaint.outcome == "escalated" and complaint.priority == 2
    assert svc.wait_estimate_minutes(session, new) >= 1


def test_agents_see_only_their_team_admins_see_all(session, agents):
    ana, _luis, olga, boss = agents
    ours = _waiting(session)
    theirs = _waiting(session, team="muebles")
    session.commit()
    assert [r["conversation_id"] for r in svc.queue_rows(session, ana)] == [ours.id]
    assert [r["conversation_id"] for r in svc.queue_rows(session, olga)] == [theirs.id]
    assert {r["conversation_id"] for r in svc.queue_rows(session, boss)} == {ours.id, theirs.id}
    with pytest.raises(HandoffError) as err:
        svc.detail(session, theirs.id, ana)
    assert err.value.code == "not_found"


def test_two_agents_claiming_at_once_exactly_one_wins(db_url, agents, session):
    conv = _waiting(session)
    session.commit()
    factory = session_factory(db_url)
    results: list[str] = []
    barrier = threading.Barrier(2)

    def attempt(username: str) -> None:
        with factory() as s:
            agent = s.query(StaffUser).filter_by(username=username).one()
            barrier.wait()
            try:
                svc.claim(s, conv.id, agent)
                s.commit()
                results.append("won")
            except HandoffError as exc:
                s.rollback()
                results.append(exc.code)

    threads = [threading.Thread(target=attempt, args=(u,)) for u in ("ana", "luis")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["already_claimed", "won"]
    session.expire_all()
    assert session.get(Conversation, conv.id).status == "with_agent"


def test_reply_close_and_their_errors(session, agents):
    ana, luis, _olga, _boss = agents
    conv = _waiting(session)
    session.commit()
    with pytest.raises(HandoffError) as err:
        svc.reply(session, conv.id, ana, "hola")
    assert err.value.code == "not_owner"  # claim first
    conv, fresh = svc.claim(session, conv.id, ana)
    assert fresh and svc.claim(session, conv.id, ana) == (conv, False)  # a double click
    case = session.get(Case, conv.handoff_case_id)
    assert case.status == "in_progress" and case.assigned_agent_id == ana.id
    with pytest.raises(HandoffError) as err:
        svc.reply(session, conv.id, luis, "soy otro")
    assert err.value.code == "not_owner"
    for bad in ("", "   ", "x" * 5000):
        with pytest.raises(HandoffError) as err:
            svc.reply(session, conv.id, ana, bad)
        assert err.value.code == "bad_input"
    msg = svc.reply(session, conv.id, ana, "Hola, soy Ana")
    assert msg.author == "agent" and conv.first_agent_reply_at == msg.created_at
    svc.note(session, conv.id, ana, "cliente muy amable")
    svc.close(session, conv.id, ana, resolution="Explicado el proceso")
    session.commit()
    assert (conv.status, conv.outcome) == ("bot", "escalated")
    assert conv.handoff_ended_at is not None
    assert case.status == "resolved" and case.resolution == "Explicado el proceso"
    for action in (lambda: svc.reply(session, conv.id, ana, "¿sigues?"),
                   lambda: svc.close(session, conv.id, ana)):
        with pytest.raises(HandoffError) as err:
            action()
        assert err.value.code == "closed"
    detail = svc.detail(session, conv.id, ana)
    notes = detail["cases"][0]["notes"]
    assert [n["text"] for n in notes] == ["cliente muy amable"]


def test_transfer_only_to_an_agent_of_the_team(session, agents):
    ana, luis, olga, _boss = agents
    conv = _waiting(session)
    svc.claim(session, conv.id, ana)
    with pytest.raises(HandoffError):
        svc.transfer(session, conv.id, ana, "olga")  # another team
    with pytest.raises(HandoffError):
        svc.transfer(session, conv.id, ana, "nadie")
    conv, target = svc.transfer(session, conv.id, ana, "LUIS")
    assert conv.agent_id == luis.id == target.id
    with pytest.raises(HandoffError):
        svc.reply(session, conv.id, ana, "ya no es mía")
    svc.reply(session, conv.id, luis, "Hola, soy Luis")


def test_leaving_the_queue_counts_as_abandoned(session, agents):
    conv = _waiting(session)
    assert svc.leave_queue(session, conv)
    assert (conv.status, conv.outcome) == ("bot", "abandoned_queue")
    assert not svc.leave_queue(session, conv)  # only once
    with pytest.raises(HandoffError) as err:
        svc.claim(session, conv.id, agents[0])
    assert err.value.code == "closed"
