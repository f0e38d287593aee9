"""learnt per-MX-group session budgets (slow start, and the budget a 421 sets)

Revision ID: c3e5a7b9d1f3
Revises: b2d4f6a8c0e2
Create Date: 2026-11-30 18:00:00

One row per MX group whose budget grew past one session or was set by a 421 at connect. The
statement that takes a slot reads it (app/db/mx_limits.py); no row means one session.
`wanted_at`: when a process last could not get a slot of the group, so that sessions idling in
it give theirs back. `max_errors`: unknown recipients a session may carry, as learnt from a
server that hung up after more.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c3e5a7b9d1f3"
down_revision: str | Sequence[str] | None = "b2d4f6a8c0e2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "mx_budgets",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("budget", sa.Integer(), nullable=False),
        sa.Column("capped_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("wanted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("max_errors", sa.Integer(), nullable=True),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_mx_budgets")),
    )


def downgrade() -> None:
    op.drop_table("mx_budgets")
