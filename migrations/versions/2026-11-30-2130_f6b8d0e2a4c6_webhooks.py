"""webhooks: a job's webhook config on bulk_jobs, delivery state per job and kind

Revision ID: f6b8d0e2a4c6
Revises: e5a7c9d1f3b5
Create Date: 2026-11-30 21:30:00

`bulk_jobs.webhook` holds a job's webhook request (`app.webhooks.WebhookConfig`: per kind a
url, headers and extra), null for a job without one. `webhook_deliveries` counts, per job and
kind (`on_each_email`, `on_complete`), the messages delivered, failing (retrying) and given up,
with the last answer seen; `queued_at` is set once the completion message is enqueued, so it is
enqueued once.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "f6b8d0e2a4c6"
down_revision: str | Sequence[str] | None = "e5a7c9d1f3b5"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("bulk_jobs", sa.Column("webhook", postgresql.JSONB(), nullable=True))
    op.create_table(
        "webhook_deliveries",
        sa.Column("job_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("delivered", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("failing", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("given_up", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "kind IN ('on_each_email', 'on_complete')",
            name=op.f("ck_webhook_deliveries_kind_known"),
        ),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["bulk_jobs.id"],
            name=op.f("fk_webhook_deliveries_job_id_bulk_jobs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("job_id", "kind", name=op.f("pk_webhook_deliveries")),
    )


def downgrade() -> None:
    op.drop_table("webhook_deliveries")
    op.drop_column("bulk_jobs", "webhook")
