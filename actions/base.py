"""Behaviour shared by all actions: the customer's language and database access."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Tracker

from bot.core.config import get_settings
from bot.db.session import session_scope

SUPPORTED_LANGUAGES = ("es", "en")


def language_of(tracker: Tracker) -> str:
    """The conversation's language: the slot, else the hub's metadata, else the default."""
    lang = tracker.get_slot("language")
    if lang in SUPPORTED_LANGUAGES:
        return lang
    meta = (tracker.latest_message or {}).get("metadata") or {}
    if meta.get("language") in SUPPORTED_LANGUAGES:
        return meta["language"]
    return get_settings().default_language


def message_metadata(tracker: Tracker) -> dict[str, Any]:
    return dict((tracker.latest_message or {}).get("metadata") or {})


def conversation_id(tracker: Tracker) -> int | None:
    """The hub's conversation id, from the latest message that carried the hub's metadata
    (an event the hub triggers through Rasa's API, like the survey on close, has none)."""
    for event in reversed(tracker.events):
        if event.get("event") == "user":
            cid = (event.get("metadata") or {}).get("conversation_id")
            if cid:
                return int(cid)
    cid = message_metadata(tracker).get("conversation_id")
    return int(cid) if cid else None


def record_outcome(tracker: Tracker, outcome: str) -> None:
    """What the conversation achieved (feeds containment/FCR/abandonment KPIs)."""
    from bot.services.conversations import set_outcome

    cid = conversation_id(tracker)
    if cid:
        with db_session() as session:
            set_outcome(session, cid, outcome)


def db_session():
    """A unit of work on the case database (commit on success)."""
    return session_scope(get_settings().database_url)
