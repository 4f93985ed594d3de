"""Explicit language choice ("English please", "/language es"): sticky for the conversation."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.base import SUPPORTED_LANGUAGES, language_of

_ALIASES = {
    "es": "es", "español": "es", "espanol": "es", "castellano": "es", "spanish": "es",
    "en": "en", "inglés": "en", "ingles": "en", "english": "en",
}


def requested_language(tracker: Tracker) -> str | None:
    for value in tracker.get_latest_entity_values("language"):
        lang = _ALIASES.get(str(value).strip().lower())
        if lang:
            return lang
    return None


class ActionSetLanguage(Action):
    def name(self) -> str:
        return "action_set_language"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        lang = requested_language(tracker)
        if lang is None:
            # "switch language" without saying which: flip between the two we speak.
            current = language_of(tracker)
            lang = [x for x in SUPPORTED_LANGUAGES if x != current][0]
        # Tell the hub: an explicit choice overrides locale and text detection from now on.
        dispatcher.utter_message(json_message={"set_language": lang})
        return [SlotSet("language", lang)]
