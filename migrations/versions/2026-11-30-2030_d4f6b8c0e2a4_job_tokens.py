"""an unguessable token for every bulk job (bulk_jobs.token)

Revision ID: d4f6b8c0e2a4
Revises: c3e5a7b9d1f3
Create Date: 2026-11-30 20:30:00

Job ids count up, so anyone could read or cancel anyone's job by trying numbers. Each job gets
a token, 24 random bytes in unpadded base64url (32 characters, as `secrets.token_urlsafe(24)`
makes them; `app.db.jobs.new_token`), accepted wherever the id is.

Jobs made before this revision get theirs here, generated in Python (PostgreSQL has no
built-in source of random bytes without pgcrypto). The column is added nullable, filled, then
made NOT NULL and UNIQUE.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "d4f6b8c0e2a4"
down_revision: str | Sequence[str] | None = "c3e5a7b9d1f3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BATCH = 10_000


def upgrade() -> None:
    op.add_column("bulk_jobs", sa.Column("token", sa.Text(), nullable=True))
    connection = op.get_bind()
    ids = connection.execute(sa.text("SELECT id FROM bulk_jobs ORDER BY id")).scalars().all()
    fill = sa.text("UPDATE bulk_jobs SET token = :token WHERE id = :id")
    for start in range(0, len(ids), _BATCH):
        connection.execute(
            fill,
            [
                {"id": job_id, "token": secrets.token_urlsafe(24)}
                for job_id in ids[start : start + _BATCH]
            ],
        )
    op.alter_column("bulk_jobs", "token", nullable=False)
    op.create_unique_constraint(op.f("uq_bulk_jobs_token"), "bulk_jobs", ["token"])


def downgrade() -> None:
    op.drop_constraint(op.f("uq_bulk_jobs_token"), "bulk_jobs", type_="unique")
    op.drop_column("bulk_jobs", "token")
