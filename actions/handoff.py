"""Hand-off to a person (contract: docs/handoff.md).

``action_handoff`` runs when the customer asks for a person, complains, is not understood
twice in a row, says an answer did not help and picks "talk to a person", is locked out of
verification, or asks for follow-up after a low survey score. It opens a support case (or
reuses the open case of this conversation), tells the customer in one message that a person
takes over with the whole context, hands the hub the summary the agent sees first, and pauses
the Rasa conversation until the hub resumes it. If the case database is down it says so
honestly and does not pause: nobody would be waiting on the other side.
"""

from __future__ import annotations

import logging
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ActionExecuted, ConversationPaused, EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy.exc import SQLAlchemyError

from actions.base import (
    conversation_id,
    db_session,
    language_of,
    message_metadata,
    record_outcome,
)
from actions.cases_intake import reset_flow_events
from actions.faq import question_before
from actions.survey import SURVEY_SLOTS
from bot.db.models import Customer
from bot.services import cases, learning
from bot.services.kb import feedback

log = logging.getLogger(__name__)

REASONS = ("request_human", "complaint", "fallback", "not_solved", "verification_failed",
           "detractor_followup")
PRIORITY = {"complaint": 2, "detractor_followup": 1}
INTENT_REASONS = {"request_human": "request_human", "complain": "complaint"}
# The customer said an answer did not help and, offered the ways on, picked a person.
# (Asking for a person right after an answer, without saying it did not help, stays
# request_human: that is what they said.)
NOT_SOLVED_PROMPTS = ("utter_faq_not_solved",)
# Flow bookkeeping, or already in the summary's own keys: not shown among the slots.
INTERNAL_SLOTS = frozenset({
    "requested_slot", "session_started_metadata", "handoff_reason", "language",
    "customer_id", "customer_name", "customer_verified", "verification", "verified_order",
    "verify_attempts", "invalid_attempts", "survey_retries",
})
LAST_MESSAGES = 6
MAX_TEXT = 1000


def conversation_events(tracker: Tracker) -> list[dict[str, Any]]:
    """This conversation's events: the hub starts one Rasa session per conversation, and a
    sender's tracker keeps the earlier ones before the last ``session_started``."""
    events = list(tracker.events)
    for index in range(len(events) - 1, -1, -1):
        if events[index].get("event") == "session_started":
            return events[index + 1:]
    return events


def _intent(event: dict[str, Any]) -> str | None:
    return ((event.get("parse_data") or {}).get("intent") or {}).get("name")


def last_bot_response(events: list[dict[str, Any]]) -> str | None:
    for event in reversed(events):
        if event.get("event") == "bot":
            return (event.get("metadata") or {}).get("utter_action")
    return None


def handoff_reason(tracker: Tracker, events: list[dict[str, Any]]) -> str:
    """Set by whoever triggered the hand-off, else read from what the customer just said."""
    slot = tracker.get_slot("handoff_reason")
    if slot in REASONS:
        return slot
    intent = ((tracker.latest_message or {}).get("intent") or {}).get("name")
    if intent == "complain":
        return "complaint"
    if intent == "request_human" and last_bot_response(events) in NOT_SOLVED_PROMPTS:
        return "not_solved"
    return INTENT_REASONS.get(intent or "", "request_human")


def intents_seen(tracker: Tracker, events: list[dict[str, Any]]) -> list[str]:
    """Unique, in order; intents the hub injects (``EXTERNAL_*``) are not the customer's."""
    names = [_intent(e) for e in events if e.get("event") == "user"]
    names.append(((tracker.latest_message or {}).get("intent") or {}).get("name"))
    seen: list[str] = []
    for name in names:
        if name and not name.startswith("EXTERNAL_") and name not in seen:
            seen.append(name)
    return seen


def visible_slots(tracker: Tracker) -> dict[str, Any]:
    return {name: value for name, value in sorted(tracker.slots.items())
            if name not in INTERNAL_SLOTS and value not in (None, "", [], {})}


def last_messages(events: list[dict[str, Any]]) -> list[dict[str, str]]:
    out = []
    for event in events:
        kind, text = event.get("event"), event.get("text")
        if kind in ("user", "bot") and text:
            out.append({"from": "customer" if kind == "user" else "bot",
                        "text": str(text)[:MAX_TEXT]})
    return out[-LAST_MESSAGES:]


def _from_user_metadata(events: list[dict[str, Any]], tracker: Tracker, key: str) -> Any:
    """A value the hub sends with every message (the latest one that carried it)."""
    for event in reversed(events):
        if event.get("event") == "user":
            value = (event.get("metadata") or {}).get(key)
            if value not in (None, ""):
                return value
    return message_metadata(tracker).get(key)


def order_number_of(tracker: Tracker, events: list[dict[str, Any]]) -> str | None:
    """The order being talked about, even after a form forgot it (forms reset their slots
    when they end, e.g. after three failed verifications)."""
    for name in ("order_number", "verified_order"):
        if tracker.get_slot(name):
            return str(tracker.get_slot(name))
    for event in reversed(events):
        if event.get("event") == "slot" and event.get("name") in (
                "order_number", "verified_order") and event.get("value"):
            return str(event["value"])
    return None


def _as_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


class ActionHandoff(Action):
    def name(self) -> str:
        return "action_handoff"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
            domain: dict[str, Any]) -> list[EventType]:
        events = conversation_events(tracker)
        reason = handoff_reason(tracker, events)
        lang = language_of(tracker)
        channel = _from_user_metadata(events, tracker, "channel")
        cid = conversation_id(tracker)
        order_number = order_number_of(tracker, events)
        customer_key = _as_int(tracker.get_slot("customer_id")) or _as_int(
            _from_user_metadata(events, tracker, "customer_id"))
        customer_message = next((str(e.get("text"))[:MAX_TEXT] for e in reversed(events)
                                 if e.get("event") == "user" and e.get("text")), None)
        # the survey is over once a person takes over (its answers go in the summary first)
        # the summary carries the form's answers; the next request starts from a clean form
        done = [SlotSet("handoff_reason", None),
                *[SlotSet(s, None) for s in SURVEY_SLOTS if tracker.get_slot(s) is not None],
                *[e for e in reset_flow_events() if tracker.get_slot(e["name"]) is not None]]
        try:
            with db_session() as session:
                customer = session.get(Customer, customer_key) if customer_key else None
                case = cases.latest_open_case(session, cid) if cid is not None else None
                if case is None:
                    opened = cases.open_case(
                        session, case_type="support", actor="bot",
                        idempotency_key=f"handoff:{cid if cid is not None else tracker.sender_id}",
                        customer_id=customer.id if customer else None, conversation_id=cid,
                        channel=channel, language=lang, category=reason,
                        description=customer_message,
                        details={"reason": reason, "order_number": order_number})
                    case = opened.case
                    if case.status not in cases.OPEN_STATUSES:
                        # handed off again in the same conversation after the agent closed
                        cases.transition(session, case, "open", actor="bot",
                                         note=f"handed off again: {reason}")
                case_number = case.number
                order_number = order_number or (case.details or {}).get("order_number")
                if cid is not None:  # the editor shows hand-offs after each FAQ answer
                    charged = feedback.record_handoff(session, cid)
                    if charged:  # … and the question behind it waits in the learning inbox
                        learning.record(session, question_before(tracker),
                                        language_of(tracker), "handoff", cid, charged)
                customer_info = {
                    "id": customer.id if customer else customer_key,
                    "name": customer.name if customer else tracker.get_slot("customer_name"),
                    "verified": bool(tracker.get_slot("customer_verified")),
                }
            record_outcome(tracker, "escalated")
        except SQLAlchemyError:
            log.exception("hand-off failed: the case database is not available")
            dispatcher.utter_message(response="utter_handoff_failed")
            return done
        summary = {
            "customer": customer_info,
            "language": lang,
            "channel": channel,
            "reason": reason,
            "intents": intents_seen(tracker, events),
            "slots": visible_slots(tracker),
            "order_number": order_number,
            "case_number": case_number,
            "last_messages": last_messages(events),
        }
        dispatcher.utter_message(response="utter_handoff_start", case_number=case_number)
        dispatcher.utter_message(json_message={"handoff": {
            "reason": reason, "case_number": case_number,
            "priority": PRIORITY.get(reason, 0), "summary": summary}})
        # Rasa stops predicting once paused, so it would never run action_listen: log it
        # here, or the first message after the hub resumes the conversation would follow
        # action_handoff instead of action_listen and match no rule.
        return [*done, ActionExecuted("action_listen"), ConversationPaused()]
