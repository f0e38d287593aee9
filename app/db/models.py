"""Tables: bulk jobs, their per-row results and sharded progress counters; shared MX state.

A job's input addresses travel in its procrastinate tasks (one per row, carrying the row's
position); a result row appears when a worker has verified that position. Progress is counted
in `bulk_job_counters`, updated in the same transaction as the (idempotent) result insert, so
reading a job's status costs a handful of rows whatever the job's size.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Double,
    ForeignKey,
    Identity,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    false,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSON, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base

VERDICTS = ("safe", "invalid", "risky", "unknown")

COUNTER_SHARDS = 16
"""Rows per job in `bulk_job_counters`. Workers finishing rows at the same moment mostly touch
different rows, so they do not queue on one row lock until commit."""


class BulkJob(Base):
    """One `POST /v0/bulk` request."""

    __tablename__ = "bulk_jobs"

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=False), primary_key=True)
    # Unguessable (`jobs.new_token`): ids count up, so whoever knows the token holds the job.
    token: Mapped[str] = mapped_column(Text, unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    total_records: Mapped[int] = mapped_column(Integer)
    # The probe options of the request (from_email, hello_name, proxy, smtp_ports), for the
    # workers (`jobs.JobOptions`): a proxy by name, or with its credentials sealed and erased
    # once the job has ended; never credentials in plain text.
    options: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # A list read from a URL (`app.imports`) grows while it is read: `total_records` counts the
    # rows enqueued so far, and the job cannot be complete while `importing`.
    source: Mapped[str | None] = mapped_column(Text)  # the URL, without credentials
    columns: Mapped[list[str] | None] = mapped_column(JSONB)  # a CSV's other columns
    importing: Mapped[bool] = mapped_column(Boolean, server_default=false())
    import_error: Mapped[str | None] = mapped_column(Text)  # why the import ended early
    import_credentials: Mapped[str | None] = mapped_column(Text)  # sealed; erased at the end
    # The request's webhooks (`app.webhooks.WebhookConfig.to_json`); null: none.
    webhook: Mapped[dict[str, Any] | None] = mapped_column(JSONB(none_as_null=True))

    __table_args__ = (
        CheckConstraint("total_records >= 0", name="total_records_not_negative"),
        Index("ix_bulk_jobs_created_at", "created_at"),
    )


class BulkResult(Base):
    """The verification of one input row. At most one per (job, position): the primary key
    makes a retried task's second insert a no-op."""

    __tablename__ = "bulk_results"

    job_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("bulk_jobs.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(Text)
    verdict: Mapped[str] = mapped_column(String(7))
    # `json`, not `jsonb`: it keeps Reacher's key order, and downloads stream the stored text.
    output: Mapped[dict[str, Any]] = mapped_column(JSON)
    verified_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )

    __table_args__ = (
        CheckConstraint("verdict IN ('safe', 'invalid', 'risky', 'unknown')", name="verdict_known"),
        CheckConstraint("position >= 0", name="position_not_negative"),
    )


class BulkRow(Base):
    """The other cells of one input row of a CSV (in `BulkJob.columns` order), returned in
    front of its result."""

    __tablename__ = "bulk_rows"

    job_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("bulk_jobs.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    cells: Mapped[list[str]] = mapped_column(JSONB)


class BulkJobCounter(Base):
    """One shard of a job's progress: how many rows of each verdict were stored."""

    __tablename__ = "bulk_job_counters"

    job_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("bulk_jobs.id", ondelete="CASCADE"), primary_key=True
    )
    shard: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    total_safe: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    total_invalid: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    total_risky: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    total_unknown: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    # When this shard last counted a row: the job's finished_at is the latest of these once
    # every row is counted.
    last_counted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class WebhookDelivery(Base):
    """Where a job's messages of one webhook kind stand (`app.db.webhooks`): counted once each
    when delivered or given up; `failing` while they are retried."""

    __tablename__ = "webhook_deliveries"

    job_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("bulk_jobs.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(Text, primary_key=True)  # on_each_email | on_complete
    delivered: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    failing: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    given_up: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    last_status: Mapped[int | None] = mapped_column(Integer)  # the receiver's last HTTP status
    last_error: Mapped[str | None] = mapped_column(Text)  # why the last attempt failed
    # on_complete: when its message was enqueued (once: the row lock and this guard).
    queued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        CheckConstraint("kind IN ('on_each_email', 'on_complete')", name="kind_known"),
    )


class MxRate(Base):
    """The send schedule of one rate-limited MX group (`app.db.mx_rates`)."""

    __tablename__ = "mx_rates"

    key: Mapped[str] = mapped_column(Text, primary_key=True)
    # The earliest moment the next RCPT to this group may go out.
    next_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class MxBehaviourRow(Base):
    """What every process recently saw of one MX group (`app.db.mx_behaviour`): recent
    counts, each observation weighing half as much every `adapt.HALF_LIFE` seconds."""

    __tablename__ = "mx_behaviour"

    key: Mapped[str] = mapped_column(Text, primary_key=True)
    replies: Mapped[float] = mapped_column(Double)
    latency_ewma: Mapped[float | None] = mapped_column(Double)  # seconds per reply
    timeouts: Mapped[float] = mapped_column(Double)
    busy: Mapped[float] = mapped_column(Double)
    tarpits: Mapped[float] = mapped_column(Double)
    # When the counts were last decayed and added to; every process reads the recent rows.
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (Index("ix_mx_behaviour_updated_at", "updated_at"),)


class MxBudget(Base):
    """The learnt session budget of one MX group (`app.db.mx_limits`): no row is one session."""

    __tablename__ = "mx_budgets"

    key: Mapped[str] = mapped_column(Text, primary_key=True)
    budget: Mapped[int] = mapped_column(Integer)
    # Set by a 421 at connect: the budget does not grow again before then.
    capped_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # When a process last could not get a slot: sessions idling in the group give theirs back.
    wanted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Unknown recipients a session may carry, learnt from a server that hung up after more.
    max_errors: Mapped[int | None] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ResultCacheRow(Base):
    """One probed result, reusable by later checks of the same address with the same options
    (`app.cache`, `app.db.result_cache`); or, with no result yet, a probe in flight."""

    __tablename__ = "result_cache"

    # sha256 of the cache key (`app.cache.cache_key`): the address and the options that
    # change the answer; hashed, so a proxy's username is not stored in plain text.
    key: Mapped[str] = mapped_column(Text, primary_key=True)
    email: Mapped[str] = mapped_column(Text)  # the address as probed (A-label domain)
    output: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # CheckEmailOutput
    verdict: Mapped[str | None] = mapped_column(Text)
    checked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # While set and in the future, one process is probing this key: the others wait for its
    # result rather than probe the same address again.
    claimed_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    claimed_by: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_result_cache_checked_at", "checked_at"),)
