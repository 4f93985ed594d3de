"""Channels: message channel, Telegram update dedupe, sender aliases, hand-over links.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("channel", sa.String(length=16), nullable=True))
    op.create_table(
        "telegram_updates",
        sa.Column("update_key", sa.String(length=40), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("update_key"),
    )
    op.create_table(
        "sender_aliases",
        sa.Column("alias", sa.String(length=128), nullable=False),
        sa.Column("sender", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("alias"),
    )
    op.create_index("ix_sender_aliases_sender", "sender_aliases", ["sender"])
    op.create_table(
        "channel_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("sender", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("used_at", sa.DateTime(), nullable=True),
        sa.Column("used_by", sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code_hash"),
    )


def downgrade() -> None:
    op.drop_table("channel_links")
    op.drop_index("ix_sender_aliases_sender", table_name="sender_aliases")
    op.drop_table("sender_aliases")
    op.drop_table("telegram_updates")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("channel")
