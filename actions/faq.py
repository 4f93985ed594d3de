"""FAQ answers from the live knowledge base, and "did this solve your question?".

The answer text comes from the KB in the customer's language (admins edit it live); the
framing around it (suggestions, "I don't know", the follow-up question) is in the domain.
Each answer shown and each yes/no to "did it help?" is recorded per entry (``faq_events``)
for the editor's statistics.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy.exc import SQLAlchemyError

from actions.base import conversation_id, db_session, language_of, record_outcome
from bot.core.config import get_settings
from bot.services import learning, surveys
from bot.services.kb import feedback
from bot.services.kb.live import LiveKnowledgeBase
from bot.services.kb.search import SearchResult

log = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def knowledge_base() -> LiveKnowledgeBase:
    """One live KB per action-server process (the index is rebuilt when the KB changes)."""
    return LiveKnowledgeBase(get_settings().database_url)


def customer_text(tracker: Tracker) -> str:
    text = (tracker.latest_message or {}).get("text") or ""
    return "" if text.startswith("/") else text


def requested_faq_id(tracker: Tracker) -> str | None:
    """A suggestion button carries `/ask_faq{"faq_id": "..."}`."""
    return next(iter(tracker.get_latest_entity_values("faq_id")), None)


def note_faq_event(tracker: Tracker | None, faq_id: str, kind: str,
                   lang: str | None = None) -> None:
    """Count it for the editor's per-entry statistics; only conversations that came through
    the hub (they have an id) are counted, and a database hiccup never costs the answer."""
    cid = conversation_id(tracker) if tracker is not None else None
    if not cid:
        return
    try:
        with db_session() as session:
            feedback.record(session, faq_id, kind, cid, lang)
    except SQLAlchemyError:
        log.warning("could not record FAQ event %s for %s", kind, faq_id, exc_info=True)


def question_before(tracker: Tracker) -> str:
    """The customer's own words that led to the last answer: the latest typed message before
    the current one (a pressed suggestion button is skipped: its question came before it)."""
    seen_current = False
    for event in reversed(tracker.events):
        if event.get("event") != "user":
            continue
        if not seen_current:
            seen_current = True
            continue
        text = event.get("text") or ""
        intent = ((event.get("parse_data") or {}).get("intent") or {}).get("name")
        if text and not text.startswith("/") and intent not in _NOT_A_QUESTION:
            return text
    return ""


# replies around an answer ("no", "gracias", "una persona"), not the question behind it
_NOT_A_QUESTION = {"affirm", "deny", "thank", "greet", "goodbye", "request_human", "cancel",
                   "bot_challenge", "choose_language"}


def note_unanswered(tracker: Tracker | None, text: str, reason: str,
                    faq_id: str | None = None) -> None:
    """Into the admins' learning inbox (bot/services/learning.py): what we could not answer,
    in the customer's words. Never costs the customer their reply."""
    if tracker is None or not text:
        return
    try:
        with db_session() as session:
            learning.record(session, text, language_of(tracker), reason,
                            conversation_id(tracker) or None, faq_id)
    except SQLAlchemyError:
        log.warning("could not record an unanswered question", exc_info=True)


def send_answer(dispatcher: CollectingDispatcher, faq_id: str, lang: str,
                in_form: bool = False, tracker: Tracker | None = None) -> list[dict]:
    answer = knowledge_base().answer(faq_id, lang)
    if answer is None:
        return []
    dispatcher.utter_message(text=answer["answer"])
    note_faq_event(tracker, faq_id, "shown", lang)
    if in_form:  # the form asks its next question right after; no "did this help?"
        return []
    dispatcher.utter_message(response="utter_ask_faq_resolved")
    return [SlotSet("faq_id", faq_id)]


def respond(dispatcher: CollectingDispatcher, result: SearchResult, lang: str,
            in_form: bool = False, tracker: Tracker | None = None) -> list[dict]:
    """Answer, offer the best candidates, or say honestly that we do not know."""
    if result.decision == "answer":
        return send_answer(dispatcher, result.candidates[0].faq_id, lang, in_form, tracker)
    if result.decision == "suggest":
        buttons = [{"title": c.title, "payload": f'/ask_faq{{"faq_id": "{c.faq_id}"}}'}
                   for c in result.candidates[:3]]
        dispatcher.utter_message(response="utter_faq_suggest", buttons=buttons)
        return [SlotSet("faq_id", None)]
    dispatcher.utter_message(response="utter_faq_unknown")
    if tracker is not None:
        note_unanswered(tracker, customer_text(tracker), "no_answer")
    return [SlotSet("faq_id", None)]


def answer_in_form(dispatcher: CollectingDispatcher, tracker: Tracker, text: str,
                   suggest: bool = False) -> bool:
    """A question in the middle of a form ("¿y cuánto tarda?"): answered when the KB knows
    the answer (the form then asks its question again). False when it does not."""
    lang = language_of(tracker)
    result = knowledge_base().search(text, lang)
    if result.decision == "answer" or (suggest and result.decision == "suggest"):
        send_answer(dispatcher, result.candidates[0].faq_id, lang, in_form=True,
                    tracker=tracker)
        return True
    return False


class ActionAnswerFaq(Action):
    def name(self) -> str:
        return "action_answer_faq"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
            domain: dict[str, Any]) -> list[dict[str, Any]]:
        lang = language_of(tracker)
        chosen = requested_faq_id(tracker)
        if chosen:
            events = send_answer(dispatcher, chosen, lang, tracker=tracker)
            if events:
                return events
        text = customer_text(tracker)
        if not text:  # the "I have a question" button
            dispatcher.utter_message(response="utter_ask_faq_question")
            return [SlotSet("faq_id", None)]
        in_form = bool((tracker.active_loop or {}).get("name"))
        result = knowledge_base().search(text, lang)
        if result.decision != "answer" and _asked_for_a_comment(tracker):
            # "que respondan más rápido por whatsapp" at "any comment?" reads like a
            # question to the classifier, but it is the comment: kept, not met with "I have
            # no reliable answer to that" (a slot set here is not validated by the form, so
            # it is recorded here, as validate_survey_comment would)
            comment = " ".join(text.split())[:2000]
            cid = conversation_id(tracker)
            if cid:
                with db_session() as session:
                    surveys.record(session, cid, "comment", comment)
            return [SlotSet("survey_comment", comment)]
        return respond(dispatcher, result, lang, in_form, tracker)


def _asked_for_a_comment(tracker: Tracker) -> bool:
    return ((tracker.active_loop or {}).get("name") == "survey_form"
            and tracker.get_slot("requested_slot") == "survey_comment")


class ActionFaqFeedback(Action):
    """Yes/no after an answer: confirmed containment, or a way forward.

    A "no" is not handed to a person straight away: it often means "not quite", and a queue
    (or "we open at 9") is not what the customer asked for. They get one-tap ways on, the
    first being "talk to a person", which ``action_handoff`` then records as ``not_solved``.
    """

    def name(self) -> str:
        return "action_faq_feedback"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
            domain: dict[str, Any]) -> list[dict[str, Any]]:
        intent = (tracker.latest_message or {}).get("intent", {}).get("name")
        answered = tracker.get_slot("faq_id")
        positive = intent in ("affirm", "thank")  # "sí, gracias" is often read as thanks
        if positive and answered:
            record_outcome(tracker, "resolved_bot_confirmed")
            note_faq_event(tracker, answered, "helped", language_of(tracker))
            dispatcher.utter_message(response="utter_faq_glad")
            return [SlotSet("faq_id", None), FollowupAction("action_offer_survey")]
        elif intent == "thank":
            dispatcher.utter_message(response="utter_youre_welcome")
        elif positive:
            dispatcher.utter_message(response="utter_anything_else")
        else:
            if answered:
                record_outcome(tracker, "faq_not_solved")
                note_faq_event(tracker, answered, "not_helped", language_of(tracker))
                note_unanswered(tracker, question_before(tracker), "not_helped", answered)
            dispatcher.utter_message(response="utter_faq_not_solved")
        return [SlotSet("faq_id", None)]
