"""result cache: probed results reused across jobs and processes

Revision ID: a7c9e1f3b5d7
Revises: f6b8d0e2a4c6
Create Date: 2026-11-30 23:30:00

One row per cache key (a sha256 of the address and the options that change the answer,
`app.cache.cache_key`): the output of the last probe and when it was made, or, while
`claimed_until` is in the future and no fresh result is there, a probe in flight that other
checks of the same key wait for, `claimed_by` naming its holder (`app.db.result_cache`). The index serves the prune of rows
older than MXPROBE_RESULT_CACHE_TTL.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "a7c9e1f3b5d7"
down_revision: str | Sequence[str] | None = "f6b8d0e2a4c6"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "result_cache",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("email", sa.Text(), nullable=False),
        sa.Column("output", postgresql.JSON(), nullable=True),
        sa.Column("verdict", sa.Text(), nullable=True),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claimed_by", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_result_cache")),
    )
    op.create_index("ix_result_cache_checked_at", "result_cache", ["checked_at"])


def downgrade() -> None:
    op.drop_index("ix_result_cache_checked_at", table_name="result_cache")
    op.drop_table("result_cache")
