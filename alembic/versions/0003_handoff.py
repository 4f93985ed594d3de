"""Hand-off to humans: escalation fields on conversations, teams, console sessions.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(sa.Column("escalation_reason", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("priority", sa.Integer(), nullable=False,
                                   server_default="0"))
        batch.add_column(sa.Column("handoff_case_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("handoff_summary", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("claimed_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("handoff_ended_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("team", sa.String(length=32), nullable=False,
                                   server_default="postventa"))
        batch.create_foreign_key("fk_conversations_handoff_case_id_cases", "cases",
                                 ["handoff_case_id"], ["id"])
    with op.batch_alter_table("staff_users") as batch:
        batch.add_column(sa.Column("team", sa.String(length=32), nullable=False,
                                   server_default="postventa"))
    op.create_table(
        "staff_sessions",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["staff_users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("token_hash"),
    )
    op.create_index("ix_staff_sessions_user_id", "staff_sessions", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_staff_sessions_user_id", table_name="staff_sessions")
    op.drop_table("staff_sessions")
    with op.batch_alter_table("staff_users") as batch:
        batch.drop_column("team")
    with op.batch_alter_table("conversations") as batch:
        batch.drop_constraint("fk_conversations_handoff_case_id_cases", type_="foreignkey")
        for col in ("team", "handoff_ended_at", "claimed_at", "handoff_summary",
                    "handoff_case_id", "priority", "escalation_reason"):
            batch.drop_column(col)
