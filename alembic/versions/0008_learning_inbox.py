"""Learning inbox: customer messages the bot did not understand (fallbacks, "I don't know"
answers, "that didn't help", a hand-off right after an answer), with what an admin did about
them.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "learning_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("conversation_id", sa.Integer(), nullable=True),
        sa.Column("language", sa.String(length=2), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("faq_id", sa.String(length=64), nullable=True),
        sa.Column("vector", sa.LargeBinary(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False, server_default="open"),
        sa.Column("resolved_by", sa.String(length=64), nullable=True),
        sa.Column("resolved_at", sa.DateTime(), nullable=True),
        sa.Column("resolved_faq_id", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["conversation_id"], ["conversations.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_learning_items_status_at", "learning_items", ["status", "at"])
    op.create_index("ix_learning_items_conversation_id", "learning_items", ["conversation_id"])


def downgrade() -> None:
    op.drop_index("ix_learning_items_conversation_id", table_name="learning_items")
    op.drop_index("ix_learning_items_status_at", table_name="learning_items")
    op.drop_table("learning_items")
