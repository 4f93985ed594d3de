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


def db_session():
    """A unit of work on the case database (commit on success)."""
    return session_scope(get_settings().database_url)
