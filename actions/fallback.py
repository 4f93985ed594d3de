"""Two-step fallback: first ask to rephrase (with the menu), then hand off to a person."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.base import language_of
from actions.faq import customer_text, knowledge_base, note_unanswered, respond

FALLBACK_INTENT = "nlu_fallback"


def consecutive_fallbacks(events: list[dict[str, Any]]) -> int:
    """How many of the latest user messages in a row were not understood.

    Derived from the tracker each time rather than kept in a slot, so nothing has to
    remember to reset it when the customer is understood again.
    """
    count = 0
    for event in reversed(events):
        if event.get("event") == "session_started":
            break
        if event.get("event") != "user":
            continue
        intent = ((event.get("parse_data") or {}).get("intent") or {}).get("name")
        if intent != FALLBACK_INTENT:
            break
        count += 1
    return count


class ActionFallback(Action):
    """Not understood: maybe the knowledge base knows; otherwise rephrase, and the second
    time in a row a person takes over (``action_handoff``, reason ``fallback``)."""

    def name(self) -> str:
        return "action_fallback"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        form = (tracker.active_loop or {}).get("name")
        if form:  # inside a form the text is an answer: let the form validate it
            return [FollowupAction(form)]
        text = customer_text(tracker)
        if text:
            lang = language_of(tracker)
            result = knowledge_base().search(text, lang)
            if result.decision != "none":
                return respond(dispatcher, result, lang, tracker=tracker)
        note_unanswered(tracker, text, "fallback")
        if consecutive_fallbacks(tracker.events) >= 2:
            dispatcher.utter_message(response="utter_still_not_understood")
            return [SlotSet("handoff_reason", "fallback"), FollowupAction("action_handoff")]
        dispatcher.utter_message(response="utter_ask_rephrase")
        return []
