"""Demo conversations must not be reachable by guessing their sender ids (issue 15): a sender
id is the bearer key to a conversation's history (the widget's resume), and the demo data
was generated from a fixed seed, so its ids were the same on every installation."""

from __future__ import annotations

import re

from sqlalchemy import select

from bot.db.models import Conversation
from bot.services import demo, demo_activity
from bot.services.conversations import history_for_sender


def _senders(session) -> set[str]:
    demo.load(session)
    demo_activity.load(session)
    session.commit()
    return set(session.execute(select(Conversation.sender).where(
        Conversation.is_demo.is_(True))).scalars())


def test_demo_sender_ids_differ_per_installation_and_cannot_be_guessed(session):
    first = _senders(session)
    assert len(first) >= 100
    for sender in first:
        assert re.fullmatch(r"demo-[A-Za-z0-9_-]{32}", sender), sender
    # the old scheme: demo-<index>-<hex from the fixed seed>
    assert not any(re.fullmatch(r"demo-\d{4}-[0-9a-f]{10}", s) for s in first)
    demo_activity.clear(session)
    session.commit()
    second = _senders(session)
    assert first.isdisjoint(second)
    assert history_for_sender(session, "demo-0000-" + "0" * 10) == []
