"""Greeting: by name when the conversation belongs to a known customer, then the help menu."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.base import db_session, message_metadata
from bot.db.models import Customer


class ActionGreet(Action):
    def name(self) -> str:
        return "action_greet"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        name = tracker.get_slot("customer_name")
        customer_id = message_metadata(tracker).get("customer_id")
        if not name and customer_id:
            with db_session() as session:
                customer = session.get(Customer, int(customer_id))
                if customer is not None:
                    name = customer.name.split()[0]
                    events.append(SlotSet("customer_name", name))
        if name:
            dispatcher.utter_message(response="utter_greet_name", customer_name=name)
        else:
            dispatcher.utter_message(response="utter_greet")
        dispatcher.utter_message(response="utter_help")
        return events
