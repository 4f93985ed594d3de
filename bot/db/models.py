"""The case database: customers, orders, conversations, transcripts, cases, surveys, FAQ, staff.

Timestamps are stored as naive UTC (``utcnow``) so that SQLite and PostgreSQL compare alike.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import declarative_base, relationship

Base = declarative_base()


def utcnow() -> datetime:
    return datetime.utcnow()


class Customer(Base):
    __tablename__ = "customers"
    id = Column(Integer, primary_key=True)
    name = Column(String(120), nullable=False)
    email = Column(String(254), nullable=False, unique=True)
    phone = Column(String(32), nullable=True)
    telegram_id = Column(String(32), nullable=True, unique=True)
    language = Column(String(2), nullable=False, default="es")
    is_demo = Column(Boolean, nullable=False, default=False)
    created_at = Column(DateTime, nullable=False, default=utcnow)
    orders = relationship("Order", back_populates="customer", order_by="Order.number")


class Product(Base):
    __tablename__ = "products"
    id = Column(Integer, primary_key=True)
    sku = Column(String(40), nullable=False, unique=True)
    name_es = Column(String(160), nullable=False)
    name_en = Column(String(160), nullable=False)
    category = Column(String(20), nullable=False)  # appliance | electronics | furniture
    is_demo = Column(Boolean, nullable=False, default=False)


class Order(Base):
    __tablename__ = "orders"
    id = Column(Integer, primary_key=True)
    number = Column(String(10), nullable=False, unique=True)  # PED-NNNNNN
    customer_id = Column(Integer, ForeignKey("customers.id"), nullable=False, index=True)
    ordered_at = Column(Date, nullable=False)
    delivered_at = Column(Date, nullable=True)  # null: not delivered yet
    is_demo = Column(Boolean, nullable=False, default=False)
    customer = relationship("Customer", back_populates="orders")
    lines = relationship("OrderLine", back_populates="order", order_by="OrderLine.line_no")


class OrderLine(Base):
    __tablename__ = "order_lines"
    __table_args__ = (UniqueConstraint("order_id", "line_no"),)
    id = Column(Integer, primary_key=True)
    order_id = Column(Integer, ForeignKey("orders.id", ondelete="CASCADE"), nullable=False)
    line_no = Column(Integer, nullable=False)
    product_id = Column(Integer, ForeignKey("products.id"), nullable=False)
    quantity = Column(Integer, nullable=False, default=1)
    unit_price_cents = Column(Integer, nullable=False)  # integer cents: exact on SQLite too
    extended_warranty = Column(Boolean, nullable=False, default=False)
    order = relationship("Order", back_populates="lines")
    product = relationship("Product")


class Conversation(Base):
    """One conversation with a customer; a sender (channel key) may have several over time."""

    __tablename__ = "conversations"
    __table_args__ = (
        Index("ix_conversations_sender_started", "sender", "started_at"),
        # KPI dashboard (migration 0007): period filter, "came back within 72 h / 7 days"
        Index("ix_conversations_started_at", "started_at"),
        Index("ix_conversations_customer_started", "customer_id", "started_at"),
    )
    id = Column(Integer, primary_key=True)
    sender = Column(String(128), nullable=False)
    channel = Column(String(16), nullable=False)  # web | telegram | api
    language = Column(String(2), nullable=False, default="es")
    language_source = Column(String(16), nullable=False, default="default")
    rasa_language = Column(String(2), nullable=True)  # last value pushed to Rasa's slot
    rasa_session_started = Column(Boolean, nullable=False, default=False)
    customer_id = Column(Integer, ForeignKey("customers.id"), nullable=True, index=True)
    status = Column(String(16), nullable=False, default="bot")
    outcome = Column(String(32), nullable=True)
    started_at = Column(DateTime, nullable=False, default=utcnow)
    last_activity_at = Column(DateTime, nullable=False, default=utcnow)
    ended_at = Column(DateTime, nullable=True)
    # hand-off to a human (filled by the escalation flow; KPIs: escalation, first response)
    escalated_at = Column(DateTime, nullable=True)
    first_agent_reply_at = Column(DateTime, nullable=True)
    agent_id = Column(Integer, ForeignKey("staff_users.id"), nullable=True)
    is_demo = Column(Boolean, nullable=False, default=False)
    # hand-off to a human (issue #8): why, how urgent, which case, what the agent sees first
    escalation_reason = Column(String(32), nullable=True)
    priority = Column(Integer, nullable=False, default=0)  # higher first (complaints)
    handoff_case_id = Column(Integer, ForeignKey("cases.id", use_alter=True,
                             name="fk_conversations_handoff_case_id_cases"), nullable=True)
    handoff_summary = Column(JSON, nullable=True)
    claimed_at = Column(DateTime, nullable=True)
    handoff_ended_at = Column(DateTime, nullable=True)  # agent closed or customer left queue
    team = Column(String(32), nullable=False, default="postventa")
    # set when the words were removed (privacy erase or RETENTION_DAYS); times stay for KPIs
    transcript_erased_at = Column(DateTime, nullable=True)
    customer = relationship("Customer")


class Message(Base):
    """Transcript row, both directions; ``status`` marks turns the bot could not serve."""

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("conversation_id", "client_message_id"),
        Index("ix_messages_conversation_id_id", "conversation_id", "id"),
    )
    id = Column(Integer, primary_key=True)
    conversation_id = Column(
        Integer, ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False
    )
    direction = Column(String(3), nullable=False)  # in | out
    author = Column(String(16), nullable=False)  # customer | bot | agent | system
    text = Column(Text, nullable=False, default="")
    payload = Column(JSON, nullable=True)
    client_message_id = Column(String(64), nullable=True)
    reply_to_id = Column(Integer, ForeignKey("messages.id"), nullable=True)
    status = Column(String(16), nullable=False, default="ok")  # ok | failed | pending
    created_at = Column(DateTime, nullable=False, default=utcnow)
    # where the customer wrote it / where it was delivered: one conversation can span the
    # widget and Telegram after a hand-over link
    channel = Column(String(16), nullable=True)


class Case(Base):
    __tablename__ = "cases"
    __table_args__ = (Index("ix_cases_created_at", "created_at"),  # KPI period filter
                      Index("ix_cases_conversation_id", "conversation_id"))
    id = Column(Integer, primary_key=True)
    number = Column(String(20), nullable=False, unique=True)
    type = Column(String(16), nullable=False)  # warranty | return | exchange | support
    status = Column(String(20), nullable=False, default="open")
    customer_id = Column(Integer, ForeignKey("customers.id"), nullable=True, index=True)
    order_line_id = Column(Integer, ForeignKey("order_lines.id"), nullable=True, index=True)
    conversation_id = Column(Integer, ForeignKey("conversations.id"), nullable=True)
    channel = Column(String(16), nullable=True)
    language = Column(String(2), nullable=False, default="es")
    category = Column(String(32), nullable=True)
    description = Column(Text, nullable=True)
    resolution = Column(Text, nullable=True)
    details = Column(JSON, nullable=True)
    idempotency_key = Column(String(128), nullable=True, unique=True)
    assigned_agent_id = Column(Integer, ForeignKey("staff_users.id"), nullable=True)
    is_demo = Column(Boolean, nullable=False, default=False)
    created_at = Column(DateTime, nullable=False, default=utcnow)
    updated_at = Column(DateTime, nullable=False, default=utcnow)
    resolved_at = Column(DateTime, nullable=True)
    events = relationship("CaseEvent", back_populates="case", order_by="CaseEvent.id")


class CaseEvent(Base):
    __tablename__ = "case_events"
    __table_args__ = (Index("ix_case_events_case_id", "case_id"),)
    id = Column(Integer, primary_key=True)
    case_id = Column(Integer, ForeignKey("cases.id", ondelete="CASCADE"), nullable=False)
    kind = Column(String(20), nullable=False)  # created | status | note | resolution
    from_status = Column(String(20), nullable=True)
    to_status = Column(String(20), nullable=True)
    actor = Column(String(64), nullable=False, default="system")
    note = Column(Text, nullable=True)
    internal = Column(Boolean, nullable=False, default=False)
    created_at = Column(DateTime, nullable=False, default=utcnow)
    case = relationship("Case", back_populates="events")


class CaseCounter(Base):
    """Per prefix and year sequence, so numbers are dense and never reused."""

    __tablename__ = "case_counters"
    prefix = Column(String(3), primary_key=True)
    year = Column(Integer, primary_key=True)
    last_value = Column(Integer, nullable=False, default=0)


class Attachment(Base):
    """A photo the customer sent (stored under var/uploads with a random name)."""

    __tablename__ = "attachments"
    id = Column(String(32), primary_key=True)  # random hex, also the file name
    conversation_id = Column(Integer, ForeignKey("conversations.id", ondelete="CASCADE"),
                             nullable=True, index=True)
    case_id = Column(Integer, ForeignKey("cases.id"), nullable=True, index=True)
    content_type = Column(String(32), nullable=False)
    size = Column(Integer, nullable=False)
    created_at = Column(DateTime, nullable=False, default=utcnow)


class SurveyResponse(Base):
    __tablename__ = "survey_responses"
    id = Column(Integer, primary_key=True)
    conversation_id = Column(
        Integer, ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False, unique=True
    )
    case_id = Column(Integer, ForeignKey("cases.id"), nullable=True)
    agent_id = Column(Integer, ForeignKey("staff_users.id"), nullable=True)
    channel = Column(String(16), nullable=False)
    language = Column(String(2), nullable=False)
    state = Column(String(16), nullable=False, default="offered")
    outcome = Column(String(32), nullable=True)
    ces = Column(Integer, nullable=True)
    nps = Column(Integer, nullable=True)
    csat = Column(Integer, nullable=True)
    comment = Column(Text, nullable=True)
    follow_up_requested = Column(Boolean, nullable=False, default=False)
    is_demo = Column(Boolean, nullable=False, default=False)
    offered_at = Column(DateTime, nullable=False, default=utcnow)
    updated_at = Column(DateTime, nullable=False, default=utcnow)


class FaqEntry(Base):
    __tablename__ = "faq_entries"
    id = Column(Integer, primary_key=True)
    faq_id = Column(String(64), nullable=False, unique=True)
    tags = Column(JSON, nullable=False, default=list)
    content = Column(JSON, nullable=False)  # {"es": {title, answer, questions}, "en": {...}}
    version = Column(Integer, nullable=False, default=1)
    deleted = Column(Boolean, nullable=False, default=False)
    updated_at = Column(DateTime, nullable=False, default=utcnow)
    updated_by = Column(String(64), nullable=False, default="system")
    # Editor (console /console/kb): ``content``/``tags`` are what customers get; an unpublished
    # edit waits in ``draft`` ({"tags", "content"}) until an admin publishes it. An entry made
    # in the editor has no ``published_at`` (last publish) until its first publish and is
    # invisible till then.
    draft = Column(JSON, nullable=True)
    draft_by = Column(String(64), nullable=True)
    draft_at = Column(DateTime, nullable=True)
    published_at = Column(DateTime, nullable=True)
    # Optimistic locking: every UPDATE checks the version it read, so two concurrent edits
    # can never silently overwrite each other (the loser gets a conflict).
    __mapper_args__ = {"version_id_col": version}


class FaqRevision(Base):
    __tablename__ = "faq_revisions"
    id = Column(Integer, primary_key=True)
    faq_entry_id = Column(
        Integer, ForeignKey("faq_entries.id", ondelete="CASCADE"), nullable=False, index=True
    )
    version = Column(Integer, nullable=False)
    # create | update | delete | restore (publish-like: change what customers get), publish |
    # revert (editor), draft | discard (the editor's working copy only; customers unaffected)
    action = Column(String(10), nullable=False)
    snapshot = Column(JSON, nullable=False)
    changed_by = Column(String(64), nullable=False)
    changed_at = Column(DateTime, nullable=False, default=utcnow)


class FaqEvent(Base):
    """What happened after an FAQ answer, per conversation: ``shown``, ``helped`` /
    ``not_helped`` (the "did this help?" answer) and ``handoff_after`` (the conversation went
    to a person after it). Written by the action server; counted per entry in the editor.
    Keyed by ``faq_id`` (not the row) so that counts survive retiring and re-creating."""

    __tablename__ = "faq_events"
    __table_args__ = (Index("ix_faq_events_faq_id_kind", "faq_id", "kind"),)
    id = Column(Integer, primary_key=True)
    faq_id = Column(String(64), nullable=False)
    conversation_id = Column(Integer, ForeignKey("conversations.id", ondelete="CASCADE"),
                             nullable=True, index=True)
    kind = Column(String(16), nullable=False)  # shown | helped | not_helped | handoff_after
    language = Column(String(2), nullable=True)
    at = Column(DateTime, nullable=False, default=utcnow)


class VerificationAttempt(Base):
    """Failed identity checks per order/case number (brute-force protection)."""

    __tablename__ = "verification_attempts"
    key = Column(String(40), primary_key=True)  # "order:PED-000123" | "case:GAR-2026-000001"
    failures = Column(Integer, nullable=False, default=0)
    last_failure_at = Column(DateTime, nullable=True)
    locked_until = Column(DateTime, nullable=True)


class StaffUser(Base):
    __tablename__ = "staff_users"
    id = Column(Integer, primary_key=True)
    username = Column(String(64), nullable=False, unique=True)
    password_hash = Column(String(255), nullable=False)
    role = Column(String(10), nullable=False)  # agent | admin
    active = Column(Boolean, nullable=False, default=True)
    failed_logins = Column(Integer, nullable=False, default=0)
    locked_until = Column(DateTime, nullable=True)
    created_at = Column(DateTime, nullable=False, default=utcnow)
    team = Column(String(32), nullable=False, default="postventa")
    last_login_at = Column(DateTime, nullable=True)  # set by every successful console login


class StaffSession(Base):
    """A console login. Server-side so logout and lockout take effect at once; the cookie
    carries a random token of which only the SHA-256 is stored."""

    __tablename__ = "staff_sessions"
    token_hash = Column(String(64), primary_key=True)
    user_id = Column(Integer, ForeignKey("staff_users.id", ondelete="CASCADE"), nullable=False,
                     index=True)
    csrf_token = Column(String(64), nullable=False)
    created_at = Column(DateTime, nullable=False, default=utcnow)
    last_seen_at = Column(DateTime, nullable=False, default=utcnow)
    expires_at = Column(DateTime, nullable=False)


class TelegramUpdate(Base):
    """Every Telegram ``update_id`` seen: Telegram redelivers on timeouts and restarts, and a
    redelivered update must not become a second turn (kept in the DB so a restart remembers)."""

    __tablename__ = "telegram_updates"
    # "<bot id>:<update_id>": update ids are only unique per bot
    update_key = Column(String(40), primary_key=True)
    received_at = Column(DateTime, nullable=False, default=utcnow)


class SenderAlias(Base):
    """A channel identity that continues another sender's conversations: the Telegram chat
    ``tg-<chat>`` that opened a widget's hand-over link speaks as the widget's sender."""

    __tablename__ = "sender_aliases"
    alias = Column(String(128), primary_key=True)
    sender = Column(String(128), nullable=False, index=True)
    created_at = Column(DateTime, nullable=False, default=utcnow)


class ChannelLink(Base):
    """One-time, short-lived code for ``t.me/<bot>?start=<code>``; only its hash is stored."""

    __tablename__ = "channel_links"
    id = Column(Integer, primary_key=True)
    code_hash = Column(String(64), nullable=False, unique=True)
    sender = Column(String(128), nullable=False)
    created_at = Column(DateTime, nullable=False, default=utcnow)
    expires_at = Column(DateTime, nullable=False)
    used_at = Column(DateTime, nullable=True)
    used_by = Column(String(128), nullable=True)


class AuditEntry(Base):
    """Who did what to personal data: staff opening a conversation, exports, erasures,
    retention runs. The subject of a privacy action is a hash of the identifier, never the
    identifier itself (an erased person's email must not survive in the audit log)."""

    __tablename__ = "audit_log"
    id = Column(Integer, primary_key=True)
    at = Column(DateTime, nullable=False, default=utcnow, index=True)
    actor = Column(String(64), nullable=False)  # staff username | "cli" | "retention"
    action = Column(String(40), nullable=False)  # conversation.view | privacy.export | ...
    subject = Column(String(80), nullable=True)
    details = Column(JSON, nullable=True)


class LearningItem(Base):
    """A customer message the bot did not understand — a fallback, an "I don't know" answer,
    a "that didn't help", a hand-off right after an answer — waiting in the admins' learning
    inbox, and what was done about it. ``vector`` is its e5 embedding (grouping similar ones);
    the row goes with the conversation's transcript (privacy erase, retention)."""

    __tablename__ = "learning_items"
    __table_args__ = (Index("ix_learning_items_status_at", "status", "at"),)
    id = Column(Integer, primary_key=True)
    at = Column(DateTime, nullable=False, default=utcnow)
    conversation_id = Column(Integer, ForeignKey("conversations.id", ondelete="CASCADE"),
                             nullable=True, index=True)
    language = Column(String(2), nullable=False)
    text = Column(Text, nullable=False)
    reason = Column(String(16), nullable=False)  # fallback | no_answer | not_helped | handoff
    faq_id = Column(String(64), nullable=True)  # the answer that did not help
    vector = Column(LargeBinary, nullable=True)
    status = Column(String(16), nullable=False, default="open", server_default="open")
    resolved_by = Column(String(64), nullable=True)
    resolved_at = Column(DateTime, nullable=True)
    resolved_faq_id = Column(String(64), nullable=True)
