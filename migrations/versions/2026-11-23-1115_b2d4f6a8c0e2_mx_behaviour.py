"""per-MX-group behaviour cache: recent replies, latency, timeouts, busy banners, tarpits

Revision ID: b2d4f6a8c0e2
Revises: a1c3e5f7b9d1
Create Date: 2026-11-23 11:15:00

One row per MX group some process has talked to. The counts are recent counts, decayed by
their age on every write and read (app/db/mx_behaviour.py), hence `double precision`; the
index serves the read of recently updated rows that every process makes every few seconds.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b2d4f6a8c0e2"
down_revision: str | Sequence[str] | None = "a1c3e5f7b9d1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "mx_behaviour",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("replies", sa.Double(), nullable=False),
        sa.Column("latency_ewma", sa.Double(), nullable=True),
        sa.Column("timeouts", sa.Double(), nullable=False),
        sa.Column("busy", sa.Double(), nullable=False),
        sa.Column("tarpits", sa.Double(), nullable=False),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_mx_behaviour")),
    )
    op.create_index("ix_mx_behaviour_updated_at", "mx_behaviour", ["updated_at"])


def downgrade() -> None:
    op.drop_index("ix_mx_behaviour_updated_at", table_name="mx_behaviour")
    op.drop_table("mx_behaviour")
