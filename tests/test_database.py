"""Schema, demo data and conversation bookkeeping on SQLite and PostgreSQL."""

from datetime import date, timedelta

import pytest
from sqlalchemy import inspect, select
from sqlalchemy.exc import IntegrityError

from bot.db.models import Conversation, Customer, Message, Order, utcnow
from bot.db.session import engine_for
from bot.services import conversations as convs
from bot.services import demo

EXPECTED_TABLES = {
    "customers", "products", "orders", "order_lines", "conversations", "messages", "cases",
    "case_events", "case_counters", "survey_responses", "faq_entries", "faq_revisions",
    "staff_users", "alembic_version", "telegram_updates", "sender_aliases", "channel_links",
    "staff_sessions",
}


def test_migration_creates_every_table(db_url):
    assert EXPECTED_TABLES <= set(inspect(engine_for(db_url)).get_table_names())


def test_migrations_match_the_models(db_url):
    """A column added to a model without a migration would only fail in production."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from bot.db.models import Base

    with engine_for(db_url).connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    # SQLite cannot name some constraints the way models do; columns and tables must match
    relevant = [d for d in diff if d[0] in ("add_table", "remove_table", "add_column",
                                             "remove_column")]
    assert relevant == []


def test_demo_covers_every_policy_window(session, settings):
    today = date.today()
    assert demo.load(session, today) == len(demo.CUSTOMERS)
    assert demo.load(session, today) == 0  # idempotent
    session.commit()
    data = demo.show(session, settings)
    lines = [(o, line) for c in data["customers"] for o in c["orders"] for line in o["lines"]]
    iso = today.isoformat()
    in_return = [line for o, line in lines if line["return_until"] and line["return_until"] >= iso]
    out_return_in_warranty = [
        line for o, line in lines
        if line["return_until"] and line["return_until"] < iso <= line["warranty_until"]
    ]
    expired = [line for o, line in lines if line["warranty_until"] and line["warranty_until"] < iso]
    extended_only = [
        line for o, line in lines
        if line["extended_warranty"] and line["warranty_until"] >= iso
        and o["delivered_at"] < (today - timedelta(days=3 * 365 + 1)).isoformat()
    ]
    undelivered = [o for o, _ in lines if o["delivered_at"] is None]
    multi_line = [o for c in data["customers"] for o in c["orders"] if len(o["lines"]) > 1]
    assert in_return and out_return_in_warranty and expired and extended_only
    assert undelivered and multi_line
    assert {c["language"] for c in data["customers"]} == {"es", "en"}
    first = data["customers"][0]
    assert set(first) == {"name", "email", "phone", "language", "orders"}
    assert set(first["orders"][0]["lines"][0]) >= {
        "line_id", "product", "category", "warranty_until", "return_until"}


def test_demo_clear_removes_only_demo_rows(session):
    demo.load(session)
    session.add(Customer(name="Real Person", email="real@example.org", language="es"))
    session.commit()
    demo.clear(session)
    session.commit()
    names = session.execute(select(Customer.name)).scalars().all()
    assert names == ["Real Person"]
    assert session.execute(select(Order)).first() is None


def test_conversation_rolls_over_after_idle_timeout(session):
    opened = convs.open_or_continue(session, sender="s" * 16, channel="api", idle_timeout=60,
                                    default_language="es")
    assert opened.is_new
    opened.conversation.language, opened.conversation.language_source = "en", "explicit"
    again = convs.open_or_continue(session, sender="s" * 16, channel="api", idle_timeout=60,
                                   default_language="es")
    assert not again.is_new and again.conversation.id == opened.conversation.id
    later = utcnow() + timedelta(seconds=61)
    rolled = convs.open_or_continue(session, sender="s" * 16, channel="api", idle_timeout=60,
                                    default_language="es", now=later)
    assert rolled.is_new and rolled.conversation.id != opened.conversation.id
    assert opened.conversation.status == "closed"
    assert opened.conversation.outcome == "ended_idle"
    # the language the customer chose travels to the next conversation
    assert (rolled.conversation.language, rolled.conversation.language_source) == (
        "en", "explicit")


def test_conversation_with_agent_is_not_cut_by_idle_timeout(session):
    opened = convs.open_or_continue(session, sender="a" * 16, channel="web", idle_timeout=1,
                                    default_language="es")
    opened.conversation.status = "with_agent"
    later = utcnow() + timedelta(hours=2)
    again = convs.open_or_continue(session, sender="a" * 16, channel="web", idle_timeout=1,
                                   default_language="es", now=later)
    assert again.conversation.id == opened.conversation.id


def test_duplicate_client_message_id_is_rejected(session):
    conv = Conversation(sender="d" * 16, channel="web")
    session.add(conv)
    session.flush()
    convs.add_message(session, conv, direction="in", author="customer", text="hola",
                      client_message_id="m-1")
    session.commit()
    assert convs.find_inbound(session, conv.id, "m-1") is not None
    with pytest.raises(IntegrityError):
        convs.add_message(session, conv, direction="in", author="customer", text="hola",
                          client_message_id="m-1")
    session.rollback()


def test_foreign_keys_are_enforced(session):
    session.add(Message(conversation_id=999999, direction="in", author="customer", text="x"))
    with pytest.raises(IntegrityError):
        session.flush()
    session.rollback()


def test_form_left_half_way_counts_as_abandoned(session):
    opened = convs.open_or_continue(session, sender="h" * 16, channel="web", idle_timeout=60,
                                    default_language="es")
    convs.set_outcome(session, opened.conversation.id, "form_in_progress")
    later = utcnow() + timedelta(seconds=120)
    convs.open_or_continue(session, sender="h" * 16, channel="web", idle_timeout=60,
                           default_language="es", now=later)
    assert opened.conversation.outcome == "abandoned"


def test_final_outcome_is_not_overwritten(session):
    opened = convs.open_or_continue(session, sender="k" * 16, channel="web", idle_timeout=60,
                                    default_language="es")
    convs.set_outcome(session, opened.conversation.id, "case_opened")
    convs.set_outcome(session, opened.conversation.id, "faq_not_solved")
    assert opened.conversation.outcome == "case_opened"


def test_idle_close_marks_an_open_survey_incomplete(session):
    from bot.services import surveys

    opened = convs.open_or_continue(session, sender="m" * 16, channel="web", idle_timeout=60,
                                    default_language="es")
    surveys.offer(session, opened.conversation.id)
    surveys.record(session, opened.conversation.id, "ces", 6)
    later = utcnow() + timedelta(seconds=120)
    convs.open_or_continue(session, sender="m" * 16, channel="web", idle_timeout=60,
                           default_language="es", now=later)
    row = surveys.get(session, opened.conversation.id)
    assert (row.state, row.ces) == ("incomplete", 6)
