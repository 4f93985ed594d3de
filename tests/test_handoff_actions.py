"""action_handoff and the actions that trigger it (contract: docs/handoff.md), with a fake
tracker and a collecting dispatcher against a fresh database (SQLite, and PostgreSQL when
reachable)."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from actions import handoff
from actions.cases_intake import ActionCancelForm, ActionShowCaseStatus, ActionSubmitReturn
from actions.fallback import ActionFallback
from actions.handoff import ActionHandoff
from actions.survey import ActionSurveyDone, ActionSurveyStop, ValidateSurveyForm
from bot.db.models import Case, Conversation, Customer
from bot.db.session import session_scope
from bot.services import cases
from tests.conftest import make_tracker

SUMMARY_KEYS = {"customer", "language", "channel", "reason", "intents", "slots",
                "order_number", "case_number", "last_messages"}
PAUSE = {"event": "pause", "timestamp": None}
LISTEN = {"event": "action", "timestamp": None, "name": "action_listen", "policy": None,
          "confidence": None}


def user(intent: str, text: str = "", **metadata) -> dict:
    return {"event": "user", "text": text, "parse_data": {"intent": {"name": intent}},
            "metadata": metadata}


def bot(text: str, utter: str | None = None) -> dict:
    return {"event": "bot", "text": text, "metadata": {"utter_action": utter} if utter else {}}


def slot(name: str, value) -> dict:
    return {"event": "slot", "name": name, "value": value}


@pytest.fixture
def conv(action_env):
    """A hub conversation (web) of a known customer: (conversation id, customer id)."""
    with session_scope(action_env) as s:
        customer = Customer(name="Lucía Martín", email="lucia@example.org", language="es")
        s.add(customer)
        s.flush()
        row = Conversation(sender="w" * 20, channel="web", customer_id=customer.id)
        s.add(row)
        s.flush()
        return row.id, customer.id


def run(dispatcher, tracker) -> list[dict]:
    return ActionHandoff().run(dispatcher, tracker, {})


def payload(dispatcher) -> dict:
    customs = [m["custom"]["handoff"] for m in dispatcher.messages
               if isinstance(m.get("custom"), dict) and "handoff" in m["custom"]]
    assert len(customs) == 1, dispatcher.messages
    return customs[0]


def support_cases(db_url) -> list[Case]:
    with session_scope(db_url) as s:
        return list(s.execute(select(Case).where(Case.type == "support")).scalars())


def test_request_human_opens_a_support_case_summarises_and_pauses(dispatcher, action_env,
                                                                   conv):
    cid, customer_id = conv
    events = [
        {"event": "session_started"},
        user("greet", "hola", conversation_id=cid, channel="web"),
        bot("¡Hola, Lucía!", "utter_greet_name"),
        user("ask_faq", "¿cuánto tarda el reembolso?", conversation_id=cid, channel="web"),
        bot("Hasta 14 días.", None),
        bot("¿Te ha resuelto la duda?", "utter_ask_faq_resolved"),
        user("affirm", "sí", conversation_id=cid, channel="web"),
        bot("¡Me alegro!", "utter_faq_glad"),
        user("request_human", "quiero hablar con una persona", conversation_id=cid,
             channel="web"),
    ]
    tracker = make_tracker(
        intent="request_human", text="quiero hablar con una persona", events=events,
        metadata={"conversation_id": cid, "channel": "web"},
        slots={"language": "es", "customer_id": str(customer_id), "customer_name": "Lucía",
               "customer_verified": True, "order_number": "PED-000123",
               "verification": "ok", "verify_attempts": 0, "faq_id": None,
               "requested_slot": None, "case_number": ""})
    result = run(dispatcher, tracker)

    # paused, after an action_listen so that the conversation resumes at a user turn
    assert result[-2:] == [LISTEN, PAUSE]
    assert {"event": "slot", "timestamp": None, "name": "handoff_reason",
            "value": None} in result
    first = dispatcher.messages[0]
    assert first["response"] == "utter_handoff_start"
    sent = payload(dispatcher)
    number = sent["case_number"]
    assert first["case_number"] == number and number.startswith("SOP-")
    assert (sent["reason"], sent["priority"]) == ("request_human", 0)
    summary = sent["summary"]
    assert set(summary) == SUMMARY_KEYS
    assert summary["customer"] == {"id": customer_id, "name": "Lucía Martín", "verified": True}
    assert (summary["language"], summary["channel"], summary["reason"]) == ("es", "web",
                                                                            "request_human")
    assert summary["intents"] == ["greet", "ask_faq", "affirm", "request_human"]
    # non-empty slots, without the flows' bookkeeping or what the summary says already
    assert summary["slots"] == {"order_number": "PED-000123"}
    assert (summary["order_number"], summary["case_number"]) == ("PED-000123", number)
    assert len(summary["last_messages"]) == 6
    assert summary["last_messages"][0] == {"from": "customer",
                                           "text": "¿cuánto tarda el reembolso?"}
    assert summary["last_messages"][-1] == {"from": "customer",
                                            "text": "quiero hablar con una persona"}

    with session_scope(action_env) as s:
        case = cases.get_by_number(s, number)
        assert (case.type, case.status, case.conversation_id, case.customer_id) == (
            "support", "open", cid, customer_id)
        assert case.idempotency_key == f"handoff:{cid}"
        assert (case.channel, case.language, case.category) == ("web", "es", "request_human")
        assert s.get(Conversation, cid).outcome == "escalated"


def test_handoff_is_idempotent_per_conversation(dispatcher, action_env, conv):
    cid, _ = conv
    tracker = make_tracker(intent="request_human", metadata={"conversation_id": cid},
                           events=[user("request_human", "agente", conversation_id=cid)])
    run(dispatcher, tracker)
    first = payload(dispatcher)["case_number"]
    dispatcher.messages.clear()
    run(dispatcher, tracker)  # a retried action, or a second request in the same chat
    assert payload(dispatcher)["case_number"] == first
    assert [c.number for c in support_cases(action_env)] == [first]


def test_handoff_reuses_the_open_case_of_this_conversation(dispatcher, action_env, conv):
    cid, customer_id = conv
    with session_scope(action_env) as s:
        other = Conversation(sender="o" * 20, channel="telegram")
        s.add(other)
        s.flush()
        cases.open_case(s, case_type="return", conversation_id=other.id)  # not this chat's
        warranty = cases.open_case(s, case_type="warranty", conversation_id=cid,
                                   customer_id=customer_id,
                                   details={"order_number": "PED-000402"}).case.number
    # the claim form forgot its slots when it ended: the order comes from the case
    tracker = make_tracker(intent="complain", metadata={"conversation_id": cid},
                           events=[user("complain", "esto es una vergüenza",
                                        conversation_id=cid, channel="telegram")])
    run(dispatcher, tracker)
    sent = payload(dispatcher)
    assert sent["case_number"] == warranty and sent["summary"]["case_number"] == warranty
    assert sent["summary"]["order_number"] == "PED-000402"
    assert (sent["reason"], sent["priority"]) == ("complaint", 2)
    assert sent["summary"]["channel"] == "telegram"
    assert support_cases(action_env) == []


def test_handoff_after_the_agent_closed_reopens_the_support_case(dispatcher, action_env, conv):
    cid, _ = conv
    tracker = make_tracker(intent="request_human", metadata={"conversation_id": cid},
                           events=[user("request_human", "agente", conversation_id=cid)])
    run(dispatcher, tracker)
    number = payload(dispatcher)["case_number"]
    with session_scope(action_env) as s:
        case = cases.get_by_number(s, number)
        cases.transition(s, case, "resolved", actor="agent1")
    dispatcher.messages.clear()
    again = make_tracker(intent="affirm", slots={"handoff_reason": "detractor_followup"},
                         metadata={"conversation_id": cid},
                         events=[user("affirm", "sí", conversation_id=cid)])
    run(dispatcher, again)
    sent = payload(dispatcher)
    assert sent["case_number"] == number
    assert (sent["reason"], sent["priority"]) == ("detractor_followup", 1)
    with session_scope(action_env) as s:
        case = cases.get_by_number(s, number)
        assert case.status == "open" and case.events[-1].kind == "reopened"


@pytest.mark.parametrize("slots, intent, events, reason", [
    ({"handoff_reason": "fallback"}, "nlu_fallback", [], "fallback"),
    ({"handoff_reason": "verification_failed"}, "inform", [], "verification_failed"),
    ({"handoff_reason": "not_solved"}, "deny", [], "not_solved"),
    ({"handoff_reason": "made_up"}, "request_human", [], "request_human"),  # not a reason
    ({}, "complain", [], "complaint"),
    ({}, "request_human", [], "request_human"),
    # "talk to a person" right after an answer that did not help
    ({}, "request_human", [bot("¿Cómo prefieres seguir?", "utter_faq_not_solved")],
     "not_solved"),
    # asked for a person right after an answer, without saying it did not help
    ({}, "request_human", [bot("Did this answer your question?", "utter_ask_faq_resolved")],
     "request_human"),
])
def test_reason_from_the_trigger_else_from_the_intent(slots, intent, events, reason):
    tracker = make_tracker(intent=intent, slots=slots, events=events)
    assert handoff.handoff_reason(tracker, events) == reason


def test_summary_covers_this_conversation_only(dispatcher, action_env, conv):
    cid, _ = conv
    events = [
        user("complain", "old chat", conversation_id=cid - 1 if cid > 1 else 999),
        bot("old answer"),
        {"event": "session_started"},
        user("open_return", "I want to return my lamp", conversation_id=cid, channel="web"),
        slot("order_number", "PED-000518"),
        slot("order_number", None),  # the form ended (three failed verifications)
        user("nlu_fallback", "zzkx", conversation_id=cid),
        user("open_return", "return", conversation_id=cid),
        user("EXTERNAL_conversation_closed", "", conversation_id=cid),
        user("request_human", "/request_human", conversation_id=cid),
    ]
    tracker = make_tracker(intent="request_human", text="/request_human", events=events,
                           slots={"language": "en", "survey_nps": 3, "survey_ces": 2})
    result = run(dispatcher, tracker)
    summary = payload(dispatcher)["summary"]
    assert summary["intents"] == ["open_return", "nlu_fallback", "request_human"]
    assert summary["order_number"] == "PED-000518"
    assert summary["language"] == "en" and summary["channel"] == "web"
    assert summary["slots"] == {"survey_ces": 2, "survey_nps": 3}
    assert summary["customer"] == {"id": None, "name": None, "verified": False}
    assert [m["text"] for m in summary["last_messages"]] == [
        "I want to return my lamp", "zzkx", "return", "/request_human"]
    # the survey is over once a person takes over: its slots are cleared after the summary
    cleared = {e["name"] for e in result if e["event"] == "slot" and e["value"] is None}
    assert {"handoff_reason", "survey_nps", "survey_ces"} <= cleared


def test_known_customer_from_the_hub_is_not_verified(dispatcher, action_env, conv):
    cid, customer_id = conv
    tracker = make_tracker(intent="request_human",
                           metadata={"conversation_id": cid, "customer_id": customer_id},
                           events=[user("request_human", "agent", conversation_id=cid,
                                        customer_id=customer_id)])
    run(dispatcher, tracker)
    assert payload(dispatcher)["summary"]["customer"] == {
        "id": customer_id, "name": "Lucía Martín", "verified": False}
    assert support_cases(action_env)[0].customer_id == customer_id


def test_without_the_hub_the_key_is_the_sender(dispatcher, action_env):
    run(dispatcher, make_tracker(intent="request_human", sender="rasa-shell-user-01"))
    case = support_cases(action_env)[0]
    assert case.idempotency_key == "handoff:rasa-shell-user-01" and case.conversation_id is None


def test_database_down_is_honest_and_does_not_pause(dispatcher, action_env, monkeypatch):
    from bot.core import config

    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:9/postventa")
    config.get_settings.cache_clear()
    tracker = make_tracker(intent="request_human", slots={"handoff_reason": "fallback"},
                           metadata={"conversation_id": 1},
                           events=[user("request_human", "agent", conversation_id=1)])
    result = run(dispatcher, tracker)
    assert [m.get("response") for m in dispatcher.messages] == ["utter_handoff_failed"]
    assert PAUSE not in result
    assert result == [{"event": "slot", "timestamp": None, "name": "handoff_reason",
                       "value": None}]


def test_reasons_and_priorities_match_the_hub():
    from bot.services import handoff as hub_side

    assert handoff.REASONS == hub_side.REASONS
    assert handoff.PRIORITY == hub_side.PRIORITY


# --- the triggers --------------------------------------------------------------------------

def _events(result) -> list[tuple]:
    return [(e["event"], e.get("name"), e.get("value")) for e in result]


def test_second_fallback_hands_off(dispatcher):
    both = [user("nlu_fallback", "zxqv"), bot("?"), user("nlu_fallback", "blorp")]
    result = ActionFallback().run(dispatcher, make_tracker(intent="nlu_fallback",
                                                           events=both), {})
    assert dispatcher.messages[-1]["response"] == "utter_still_not_understood"
    assert _events(result) == [("slot", "handoff_reason", "fallback"),
                               ("followup", "action_handoff", None)]


def test_verification_locked_submit_hands_off(dispatcher, action_env):
    tracker = make_tracker(intent="inform", slots={"case_blocked": "verification",
                                                   "order_number": "PED-000518"})
    result = ActionSubmitReturn().run(dispatcher, tracker, {})
    assert _events(result)[-2:] == [("slot", "handoff_reason", "verification_failed"),
                                    ("followup", "action_handoff", None)]
    status = ActionShowCaseStatus().run(dispatcher, make_tracker(
        slots={"case_blocked": "verification"}), {})
    assert _events(status)[-1] == ("followup", "action_handoff", None)
    other = ActionSubmitReturn().run(dispatcher, make_tracker(
        slots={"case_blocked": "ineligible:expired"}), {})
    assert ("followup", "action_handoff", None) not in _events(other)


@pytest.mark.parametrize("intent, says", [("request_human", []), ("complain", []),
                                          ("cancel", ["utter_form_cancelled"])])
def test_cancel_form_is_quiet_when_a_person_takes_over(dispatcher, action_env, intent, says):
    ActionCancelForm().run(dispatcher, make_tracker(intent=intent), {})
    assert [m["response"] for m in dispatcher.messages] == says


def test_detractor_yes_ends_the_survey_and_hands_off(dispatcher, action_env):
    form = ValidateSurveyForm()
    unhappy = make_tracker(slots={"survey_ces": 2, "survey_nps": 3, "survey_follow_up": True})
    required = asyncio.run(form.required_slots(
        ["survey_ces", "survey_nps", "survey_csat", "survey_follow_up", "survey_comment",
         "survey_retries"], dispatcher, unhappy, {}))
    assert "survey_comment" not in required and "survey_follow_up" in required
    assert form.validate_survey_follow_up(True, dispatcher, unhappy, {}) == {
        "survey_follow_up": True}
    assert dispatcher.messages == []  # the hand-off message says what happens
    result = ActionSurveyDone().run(dispatcher, unhappy, {})
    assert _events(result) == [("slot", "handoff_reason", "detractor_followup"),
                               ("followup", "action_handoff", None)]
    happy = ActionSurveyDone().run(dispatcher, make_tracker(slots={"survey_nps": 10}), {})
    assert dispatcher.messages[-1]["response"] == "utter_survey_thanks"
    assert ("followup", "action_handoff", None) not in _events(happy)


def test_asking_for_a_person_at_the_follow_up_question_is_a_yes(dispatcher, action_env):
    tracker = make_tracker(intent="request_human",
                           slots={"requested_slot": "survey_follow_up", "survey_nps": 2})
    result = ActionSurveyStop().run(dispatcher, tracker, {})
    assert dispatcher.messages == []
    assert ("slot", "handoff_reason", "detractor_followup") in _events(result)
    anywhere = ActionSurveyStop().run(dispatcher, make_tracker(
        intent="complain", slots={"requested_slot": "survey_ces"}), {})
    assert dispatcher.messages == [] and ("slot", "handoff_reason", "detractor_followup") \
        not in _events(anywhere)
