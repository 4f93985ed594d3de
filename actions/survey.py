"""Closing survey: CES (1–7), NPS (0–10), optional CSAT (1–5), optional comment.

Offered once per conversation, never inside another form, not after the customer declined;
each answer is stored as soon as it is given.
"""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import ActiveLoop, FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.base import conversation_id, db_session
from actions.faq import answer_in_form
from bot.core.config import get_settings
from bot.services import parsing, surveys
from bot.services.conversations import Conversation

STOP_INTENTS = ("deny", "goodbye", "cancel", "complain")
STOPPED = -1  # survey_retries when the customer ended the survey half-way
SCALES = {"survey_ces": (1, 7), "survey_nps": (0, 10), "survey_csat": (1, 5)}
SURVEY_SLOTS = ["survey_ces", "survey_nps", "survey_csat", "survey_follow_up", "survey_comment",
                "survey_retries"]
NO_COMMENT = {"no", "nada", "ninguno", "ninguna", "no gracias", "no, gracias", "sin comentarios",
              "gracias", "adios", "nothing", "none", "no thanks", "no, thanks", "no comment",
              "thanks", "bye", "n/a", "-"}
HELPED_OUTCOMES = {"resolved_bot_confirmed", "case_opened", "duplicate_shown",
                   "form_not_eligible", "faq_not_solved"}


def was_helped(tracker: Tracker, cid: int | None) -> bool:
    if any(e.get("event") == "action" and e.get("name") == "action_answer_faq"
           for e in tracker.events):
        return True
    if cid is None:
        return False
    with db_session() as session:
        conv = session.get(Conversation, cid)
        return conv is not None and conv.outcome in HELPED_OUTCOMES


def try_offer(tracker: Tracker) -> list[dict[str, Any]] | None:
    """Events that start the survey, or None when it must not run now."""
    cid = conversation_id(tracker)
    if cid is None or (tracker.active_loop or {}).get("name"):
        return None
    with db_session() as session:
        _, created = surveys.offer(session, cid)
    if not created:
        return None  # never twice in a conversation (also not after "no, thanks")
    return [*[SlotSet(s, None) for s in SURVEY_SLOTS], FollowupAction("survey_form")]


class ActionOfferSurvey(Action):
    """After a case was created or an FAQ answer was confirmed, and when an agent closes a
    hand-off (intent EXTERNAL_conversation_closed, triggered by the hub)."""

    def name(self) -> str:
        return "action_offer_survey"

    def run(self, dispatcher, tracker, domain):
        events = try_offer(tracker)
        if events is None:
            # no survey now (already offered in this conversation, e.g. a second FAQ answer
            # confirmed after it): the question asked here ends the turn. Left to the
            # policies, the stories (where the survey form always follows) had no next step
            # and the customer got "no sé cómo seguir" after it.
            dispatcher.utter_message(response="utter_anything_else")
            return [FollowupAction("action_listen")]
        return events


class ActionWrapUp(Action):
    """Goodbye, thanks, or "no" to "anything else?": the survey if the customer was helped,
    otherwise the usual polite reply."""

    def name(self) -> str:
        return "action_wrap_up"

    def run(self, dispatcher, tracker, domain):
        intent = (tracker.latest_message or {}).get("intent", {}).get("name")
        if was_helped(tracker, conversation_id(tracker)):
            events = try_offer(tracker)
            if events is not None:
                return events
        dispatcher.utter_message(
            response="utter_youre_welcome" if intent == "thank" else "utter_goodbye")
        return []


class ValidateSurveyForm(FormValidationAction):
    def name(self) -> str:
        return "validate_survey_form"

    async def required_slots(self, domain_slots, dispatcher, tracker, domain) -> list[str]:
        slots = [s for s in domain_slots if s != "survey_retries"]
        if not get_settings().survey_csat:
            slots.remove("survey_csat")
        nps, ces = tracker.get_slot("survey_nps"), tracker.get_slot("survey_ces")
        unhappy = (isinstance(nps, (int, float)) and nps <= 6) or \
            (isinstance(ces, (int, float)) and ces <= 3)
        if not unhappy:
            slots.remove("survey_follow_up")
        if tracker.get_slot("survey_follow_up") is True:
            slots.remove("survey_comment")  # a person takes over now: tell them directly
        return slots

    def _score(self, slot: str, field: str, value: Any, dispatcher: CollectingDispatcher,
               tracker: Tracker) -> dict[str, Any]:
        low, high = SCALES[slot]
        score = parsing.parse_score(str(value or ""), low, high, words=slot == "survey_ces")
        intent = ((tracker.latest_message or {}).get("intent") or {}).get("name")
        if score is None and intent in STOP_INTENTS:
            # "no, gracias", "me voy": the score text is read first ("Facilísimo, un siete"
            # is an answer whatever the intent), only then a refusal ends the survey
            return self._stop(dispatcher, tracker, intent)
        if score is None and intent == "ask_faq" and answer_in_form(
                dispatcher, tracker, str(value or "")):
            return {slot: None}
        retries = int(tracker.get_slot("survey_retries") or 0)
        if score is None and retries == 0:  # asked once more, with the scale
            dispatcher.utter_message(response="utter_survey_invalid_scale", low=low, high=high)
            return {slot: None, "survey_retries": 1}
        cid = conversation_id(tracker)
        if cid:
            with db_session() as session:
                surveys.record(session, cid, field, score)
        # a skipped question is stored as "skipped" in the slot (None in the database)
        return {slot: score if score is not None else "skipped", "survey_retries": 0}

    def _stop(self, dispatcher: CollectingDispatcher, tracker: Tracker,
              intent: str | None) -> dict[str, Any]:
        """End the survey from inside the form: every question left is skipped and
        ``action_survey_done`` sees the marker and says goodbye instead of thanks."""
        if intent == "complain":
            dispatcher.utter_message(response="utter_complain_empathy")
        return {"survey_ces": tracker.get_slot("survey_ces") or "skipped",
                "survey_nps": tracker.get_slot("survey_nps") or "skipped",
                "survey_csat": tracker.get_slot("survey_csat") or "skipped",
                "survey_follow_up": False, "survey_comment": "skip",
                "survey_retries": STOPPED}

    def validate_survey_ces(self, value, dispatcher, tracker, domain):
        return self._score("survey_ces", "ces", value, dispatcher, tracker)

    def validate_survey_nps(self, value, dispatcher, tracker, domain):
        result = self._score("survey_nps", "nps", value, dispatcher, tracker)
        nps, ces = result.get("survey_nps"), tracker.get_slot("survey_ces")
        if (isinstance(nps, int) and nps <= 6) or (isinstance(ces, (int, float)) and ces <= 3):
            dispatcher.utter_message(response="utter_survey_empathy")
        return result

    def validate_survey_csat(self, value, dispatcher, tracker, domain):
        return self._score("survey_csat", "csat", value, dispatcher, tracker)

    def validate_survey_follow_up(self, value, dispatcher, tracker, domain):
        if value is True:  # the survey ends here and a person takes over (ActionSurveyDone)
            request_follow_up(tracker)
        return {"survey_follow_up": bool(value)}

    def validate_survey_comment(self, value, dispatcher, tracker, domain):
        text = " ".join(str(value or "").split())[:2000]
        skipped = (value == "skip" or not any(c.isalnum() for c in text)
                   or parsing.fold(text).strip(" .!") in NO_COMMENT)
        cid = conversation_id(tracker)
        if cid and not skipped:
            with db_session() as session:
                surveys.record(session, cid, "comment", text)
        return {"survey_comment": "skip" if skipped else text}


def request_follow_up(tracker: Tracker) -> None:
    cid = conversation_id(tracker)
    if cid:
        with db_session() as session:
            surveys.request_follow_up(session, cid)


def detractor_handoff() -> list[dict[str, Any]]:
    """A dissatisfied customer asked for a person (reason and rule: docs/handoff.md,
    data/rules/survey.yml). The survey slots stay set until action_handoff has put the
    scores in the agent's summary; it clears them."""
    return [SlotSet("handoff_reason", "detractor_followup"), FollowupAction("action_handoff")]


class ActionSurveyDone(Action):
    def name(self) -> str:
        return "action_survey_done"

    def run(self, dispatcher, tracker, domain):
        cid = conversation_id(tracker)
        if tracker.get_slot("survey_retries") == STOPPED:  # declined half-way
            if cid:
                with db_session() as session:
                    surveys.finish(session, cid, "declined")
            intent = ((tracker.latest_message or {}).get("intent") or {}).get("name")
            if intent == "complain":  # empathy was said; a person takes over
                return [SlotSet("handoff_reason", "complaint"), FollowupAction("action_handoff")]
            dispatcher.utter_message(response="utter_survey_declined")
            return [SlotSet(s, None) for s in SURVEY_SLOTS]
        if cid:
            with db_session() as session:
                surveys.finish(session, cid, "completed")
        if tracker.get_slot("survey_follow_up") is True:
            return detractor_handoff()
        dispatcher.utter_message(response="utter_survey_thanks")
        return [SlotSet(s, None) for s in SURVEY_SLOTS]


class ActionSurveyStop(Action):
    """"No, thanks" or leaving mid-survey: stop politely, keep any answer already given.
    Asking for a person (or complaining) stops it quietly: ``action_handoff`` comes next; to
    "shall someone contact you?", "put me through to someone" is a yes."""

    def name(self) -> str:
        return "action_survey_stop"

    def run(self, dispatcher, tracker, domain):
        intent = (tracker.latest_message or {}).get("intent", {}).get("name")
        follow_up = (intent == "request_human"
                     and tracker.get_slot("requested_slot") == "survey_follow_up")
        cid = conversation_id(tracker)
        if cid:
            with db_session() as session:
                surveys.finish(session, cid, "completed" if follow_up else "declined")
        stopped = [ActiveLoop(None), SlotSet("requested_slot", None)]
        if follow_up:
            request_follow_up(tracker)
            return [*stopped, SlotSet("handoff_reason", "detractor_followup")]
        if intent in ("request_human", "complain"):
            return stopped  # action_handoff clears the survey slots after its summary
        dispatcher.utter_message(response="utter_survey_declined")
        return [*stopped, *[SlotSet(s, None) for s in SURVEY_SLOTS]]
