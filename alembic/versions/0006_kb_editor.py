"""Knowledge-base editor: drafts waiting to be published, when an entry was last published
(an entry made in the editor has none and is invisible until its first publish), and what
happened after each FAQ answer (shown, helped, not helped, handed to a person).

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("faq_entries") as batch:
        batch.add_column(sa.Column("draft", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("draft_by", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("draft_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("published_at", sa.DateTime(), nullable=True))
    # every entry that exists today was published by import or the CLI
    op.execute("UPDATE faq_entries SET published_at = updated_at")
    op.create_table(
        "faq_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("faq_id", sa.String(length=64), nullable=False),
        sa.Column("conversation_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("language", sa.String(length=2), nullable=True),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["conversation_id"], ["conversations.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_faq_events_faq_id_kind", "faq_events", ["faq_id", "kind"])
    op.create_index("ix_faq_events_conversation_id", "faq_events", ["conversation_id"])


def downgrade() -> None:
    op.drop_index("ix_faq_events_conversation_id", table_name="faq_events")
    op.drop_index("ix_faq_events_faq_id_kind", table_name="faq_events")
    op.drop_table("faq_events")
    with op.batch_alter_table("faq_entries") as batch:
        batch.drop_column("published_at")
        batch.drop_column("draft_at")
        batch.drop_column("draft_by")
        batch.drop_column("draft")
