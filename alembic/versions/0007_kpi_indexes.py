"""Indexes for the KPI dashboard's SQL aggregation (≤ 300 ms with 100 000 conversations):
the period filters (conversation start, case opening), "did the customer come back within
72 h / 7 days" by customer, a case's events, a conversation's cases.

Revision ID: 0007
Revises: 0006
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

INDEXES = [
    ("ix_conversations_started_at", "conversations", ["started_at"]),
    ("ix_conversations_customer_started", "conversations", ["customer_id", "started_at"]),
    ("ix_cases_created_at", "cases", ["created_at"]),
    ("ix_cases_conversation_id", "cases", ["conversation_id"]),
    ("ix_case_events_case_id", "case_events", ["case_id"]),
]


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, table, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
