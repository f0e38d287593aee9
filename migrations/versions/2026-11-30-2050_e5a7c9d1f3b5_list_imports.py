"""lists read from a URL or a file: import state on bulk_jobs, the rows' own cells in bulk_rows

Revision ID: e5a7c9d1f3b5
Revises: d4f6b8c0e2a4
Create Date: 2026-11-30 20:50:00

A job made from a URL grows while its file is read (`app.imports`): `total_records` counts the
rows enqueued so far (0 at first), `importing` is true until the file is read to its end (or
the import fails: `import_error`). `source` is the URL without its credentials;
`import_credentials` the URL's `user:password`, sealed, erased when the import ends. A CSV's
other columns are kept per row in `bulk_rows` (their names in `bulk_jobs.columns`), to be
returned in front of the results.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "e5a7c9d1f3b5"
down_revision: str | Sequence[str] | None = "d4f6b8c0e2a4"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_constraint(op.f("ck_bulk_jobs_total_records_positive"), "bulk_jobs", type_="check")
    op.create_check_constraint(
        op.f("ck_bulk_jobs_total_records_not_negative"), "bulk_jobs", "total_records >= 0"
    )
    op.add_column("bulk_jobs", sa.Column("source", sa.Text(), nullable=True))
    op.add_column("bulk_jobs", sa.Column("columns", postgresql.JSONB(), nullable=True))
    op.add_column(
        "bulk_jobs",
        sa.Column("importing", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.add_column("bulk_jobs", sa.Column("import_error", sa.Text(), nullable=True))
    op.add_column("bulk_jobs", sa.Column("import_credentials", sa.Text(), nullable=True))
    op.create_table(
        "bulk_rows",
        sa.Column(
            "job_id",
            sa.BigInteger(),
            sa.ForeignKey("bulk_jobs.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("position", sa.Integer(), primary_key=True),
        sa.Column("cells", postgresql.JSONB(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("bulk_rows")
    for column in ("import_credentials", "import_error", "importing", "columns", "source"):
        op.drop_column("bulk_jobs", column)
    op.execute("DELETE FROM bulk_jobs WHERE total_records = 0")
    op.drop_constraint(op.f("ck_bulk_jobs_total_records_not_negative"), "bulk_jobs", type_="check")
    op.create_check_constraint(
        op.f("ck_bulk_jobs_total_records_positive"), "bulk_jobs", "total_records > 0"
    )
