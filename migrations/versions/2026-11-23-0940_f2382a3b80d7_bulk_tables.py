"""bulk jobs, their per-row results and sharded progress counters

Revision ID: f2382a3b80d7
Revises: 564fc9fa4496
Create Date: 2026-11-23 09:40:00

Drafted with autogenerate from app/db/models.py, then edited: constraint names follow the
naming convention, `output` is `json` (keeps Reacher's key order) while `options` is `jsonb`.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "f2382a3b80d7"
down_revision: str | Sequence[str] | None = "564fc9fa4496"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "bulk_jobs",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("total_records", sa.Integer(), nullable=False),
        sa.Column(
            "options",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("total_records > 0", name=op.f("ck_bulk_jobs_total_records_positive")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bulk_jobs")),
    )
    op.create_index("ix_bulk_jobs_created_at", "bulk_jobs", ["created_at"])

    op.create_table(
        "bulk_results",
        sa.Column("job_id", sa.BigInteger(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("email", sa.Text(), nullable=False),
        sa.Column("verdict", sa.String(length=7), nullable=False),
        sa.Column("output", postgresql.JSON(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "verified_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(
            "verdict IN ('safe', 'invalid', 'risky', 'unknown')",
            name=op.f("ck_bulk_results_verdict_known"),
        ),
        sa.CheckConstraint("position >= 0", name=op.f("ck_bulk_results_position_not_negative")),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["bulk_jobs.id"],
            name=op.f("fk_bulk_results_job_id_bulk_jobs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("job_id", "position", name=op.f("pk_bulk_results")),
    )

    op.create_table(
        "bulk_job_counters",
        sa.Column("job_id", sa.BigInteger(), nullable=False),
        sa.Column("shard", sa.SmallInteger(), nullable=False),
        sa.Column("total_safe", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("total_invalid", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("total_risky", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("total_unknown", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("last_counted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["bulk_jobs.id"],
            name=op.f("fk_bulk_job_counters_job_id_bulk_jobs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("job_id", "shard", name=op.f("pk_bulk_job_counters")),
    )


def downgrade() -> None:
    op.drop_table("bulk_job_counters")
    op.drop_table("bulk_results")
    op.drop_index("ix_bulk_jobs_created_at", table_name="bulk_jobs")
    op.drop_table("bulk_jobs")
