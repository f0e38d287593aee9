"""per-MX-group send schedule for rate limits (MXPROBE_MX_RATE, max_msg_rate)

Revision ID: a1c3e5f7b9d1
Revises: f2382a3b80d7
Create Date: 2026-11-23 11:10:00

One row per rate-limited MX group: the earliest moment the next RCPT may go out (the
"theoretical arrival time" of GCRA). A reservation is one UPDATE ... RETURNING.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a1c3e5f7b9d1"
down_revision: str | Sequence[str] | None = "f2382a3b80d7"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "mx_rates",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("next_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_mx_rates")),
    )


def downgrade() -> None:
    op.drop_table("mx_rates")
