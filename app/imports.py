"""Lists read from a file or a URL into a bulk job's rows: uploads, `input_type: "csv"` and
`input_type: "remote_url"`. One parser (`app.lists.ListReader`), one way to enqueue (`enqueue`).

- **A file in the request** (an upload, or CSV text in `input`) is read in the POST, batch by
  batch, inside the POST's transaction (`submit_file`): the job exists with every row, or not
  at all. The request's own size limit bounds it.
- **A URL** is checked in the POST for what can be known quickly (`check_url`: the URL, its
  server's answer, an address in the first lines); then the job is created empty and
  `importing`, with an import task, and the POST answers. A worker reads the file
  (`import_url`); each batch of rows is enqueued and counted in one transaction, so the status
  is true at every moment (`total_records` = rows read so far, never complete while
  importing). If the worker dies, the task runs again and skips the rows already counted; if
  the file cannot be read to its end (dropped, too big, too many rows), the import ends there
  with `import_error`, and the rows read so far are verified.

Credentials in a URL (`user:password@`) are sent as basic auth and never stored in clear: the
job keeps the URL without them, and them sealed with MXPROBE_SECRET_KEY until the import ends.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterable, Sequence
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import fetch, queue, sealing
from app.bulk import BulkError, EmptyInput, TooManyEmails
from app.db import jobs
from app.db import webhooks as webhook_state
from app.db.jobs import JobOptions, NewJob
from app.db.session import session_scope
from app.engine import Resolver
from app.lists import ListError, ListReader, Row
from app.settings import Settings

log = logging.getLogger(__name__)

BATCH_ROWS = 5_000
"""Rows enqueued per statement group (and, for URLs, per transaction)."""

_INSERT_CELLS = text(
    """
    INSERT INTO bulk_rows (job_id, position, cells)
    SELECT CAST(:job_id AS bigint), rows.position, CAST(rows.cells AS jsonb)
      FROM unnest(CAST(:positions AS integer[]), CAST(:cells AS text[])) AS rows(position, cells)
    ON CONFLICT DO NOTHING
    """
)


class UnreadableList(BulkError):
    """The file is not a list of addresses (`ListError`'s message)."""


class RemoteListFailed(BulkError):
    """Fetching the URL failed in a way the POST can report (`fetch.FetchError`)."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


class TooManyRows(TooManyEmails):
    def __init__(self, *, limit: int) -> None:
        BulkError.__init__(self, f"the list has more than {limit} rows; the maximum is {limit}")
        self.limit = limit


async def enqueue(
    session: AsyncSession,
    job_id: int,
    rows: Sequence[Row],
    *,
    first_position: int,
    columns: Sequence[str] | None,
) -> None:
    """Defer a verification per row, keep their other cells, count them: one transaction."""
    if not rows:
        return
    await queue.defer_verifications(
        session, job_id=job_id, emails=[row.address for row in rows], first_position=first_position
    )
    cells = [(first_position + i, row.extra) for i, row in enumerate(rows) if row.extra]
    if cells:
        await session.execute(
            _INSERT_CELLS,
            {
                "job_id": job_id,
                "positions": [position for position, _ in cells],
                "cells": [json.dumps(list(extra)) for _, extra in cells],
            },
        )
    await jobs.add_rows(
        session, job_id, count=len(rows), columns=list(columns) if columns else None
    )


async def submit_file(
    session: AsyncSession,
    chunks: AsyncIterable[bytes],
    *,
    options: JobOptions,
    max_emails: int,
    max_bytes: int | None = None,
    webhook: dict[str, Any] | None = None,
) -> NewJob:
    """A job of every row of the file, in the session's transaction; `webhook`: as
    `app.bulk.checked_webhook` gives it."""
    reader = ListReader(max_bytes=max_bytes)
    job = await jobs.create(session, total_records=0, options=options, webhook=webhook)
    counted = 0
    batch: list[Row] = []

    async def flush() -> None:
        nonlocal counted, batch
        if counted + len(batch) > max_emails:
            raise TooManyRows(limit=max_emails)
        await enqueue(session, job.job_id, batch, first_position=counted, columns=reader.columns)
        counted += len(batch)
        batch = []

    try:
        async for chunk in chunks:
            for row in reader.iter_feed(chunk):  # lazily: one gzip chunk may hold millions
                batch.append(row)
                if len(batch) >= BATCH_ROWS:
                    await flush()
        batch += reader.close()
    except ListError as exc:
        raise UnreadableList(str(exc)) from exc
    await flush()
    if counted == 0:
        raise EmptyInput
    return job


def split_credentials(url: str) -> tuple[str, tuple[str, str] | None]:
    """The URL without `user:password@`, and the (decoded) credentials it held."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, None
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    public = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return public, (unquote(parts.username or ""), unquote(parts.password or ""))


def with_credentials(url: str, credentials: tuple[str, str] | None) -> str:
    if credentials is None:
        return url
    parts = urlsplit(url)
    user, password = (quote(part, safe="") for part in credentials)
    netloc = f"{user}:{password}@{parts.netloc}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _open(url: str, settings: Settings) -> fetch.OpenUrl:
    return fetch.open_url(
        url,
        allow_private=settings.allow_private_urls,
        max_bytes=settings.remote_max_bytes,
        read_timeout=settings.remote_timeout,
        # The service's own resolver (MXPROBE_DNS_NAMESERVERS), as for MX hosts and proxies.
        resolve=Resolver(settings.dns_config()).addresses,
    )


async def check_url(url: str, *, settings: Settings) -> None:
    """What can be known quickly: the URL is fetchable and its first lines hold an address."""
    reader = ListReader(max_bytes=settings.remote_max_bytes)
    try:
        async with _open(url, settings) as body:
            async for chunk in body:
                if next(iter(reader.iter_feed(chunk)), None) is not None:
                    return
            if not reader.close():
                raise EmptyInput
    except fetch.FetchError as exc:
        raise RemoteListFailed(str(exc), status=exc.status) from exc
    except ListError as exc:
        raise UnreadableList(str(exc)) from exc


async def submit_url(
    session: AsyncSession,
    url: str,
    *,
    options: JobOptions,
    settings: Settings,
    webhook: dict[str, Any] | None = None,
) -> NewJob:
    """Check the URL, then create the job (empty, importing) and its import task. `webhook`:
    as `app.bulk.checked_webhook` gives it; its `on_complete` is enqueued by whichever comes
    last, the import's end or the last row counted (`end`)."""
    public, credentials = split_credentials(url)
    sealed = None
    if credentials is not None:
        if not settings.secret_key:
            raise BulkError(
                "this server cannot keep a URL's credentials: MXPROBE_SECRET_KEY is not set"
            )
        sealed = sealing.seal(
            settings.secret_key.get_secret_value(), username=credentials[0], password=credentials[1]
        )
    await check_url(url, settings=settings)
    job = await jobs.create(
        session,
        total_records=0,
        options=options,
        source=public,
        importing=True,
        import_credentials=sealed,
        webhook=webhook,
    )
    await queue.defer_import(session, job_id=job.job_id)
    return job


class _Overtaken(Exception):
    """Another run of the same import (a stalled task retried while this one still ran) has
    counted rows this one had not: it carries on, this one leaves the job alone."""


class _Stop(Exception):
    """The import ends here: `message` is why (None: cancelled, or another run has it)."""

    def __init__(self, message: str | None) -> None:
        super().__init__(message)
        self.message = message


async def import_url(
    sessions: async_sessionmaker[AsyncSession], job_id: int, *, settings: Settings
) -> None:
    """Read the job's URL to its end, enqueuing its rows after those already counted."""
    async with session_scope(sessions) as session:
        state = await jobs.import_state(session, job_id)
    if not state.importing:
        return
    error: str | None = None
    try:
        if state.cancelled:
            raise _Stop(None)
        url = _source_url(state, settings)
        await _read(sessions, job_id, url, skip=state.rows, settings=settings)
    except _Overtaken:
        return
    except _Stop as stop:
        error = stop.message
    except (fetch.FetchError, ListError) as exc:
        error = f"reading the list stopped: {exc}"
    if error:
        log.warning("job %s: %s", job_id, error)
    async with session_scope(sessions) as session:
        await end(session, job_id, error=error)


async def end(session: AsyncSession, job_id: int, *, error: str | None) -> None:
    """No more rows: the import is over. If every row is counted already, the job is complete
    now, and its `on_complete` webhook is enqueued here (`completed_now` locks it, so that of
    this transaction and one counting the last rows, exactly one enqueues it)."""
    await jobs.end_import(session, job_id, error=error)
    if await webhook_state.completed_now(session, [job_id]):
        await queue.defer_webhooks(session, [(job_id, webhook_state.ON_COMPLETE, None)])


def _source_url(state: jobs.ImportState, settings: Settings) -> str:
    assert state.source is not None
    if state.credentials is None:
        return state.source
    if not settings.secret_key:
        raise _Stop("the URL's credentials cannot be read: MXPROBE_SECRET_KEY is not set")
    try:
        credentials = sealing.unseal(settings.secret_key.get_secret_value(), state.credentials)
    except sealing.Unreadable:
        raise _Stop("the URL's credentials cannot be read: MXPROBE_SECRET_KEY changed") from None
    return with_credentials(state.source, credentials)


async def _read(
    sessions: async_sessionmaker[AsyncSession],
    job_id: int,
    url: str,
    *,
    skip: int,
    settings: Settings,
) -> None:
    reader = ListReader(max_bytes=settings.remote_max_bytes)
    seen = 0
    counted = skip
    batch: list[Row] = []

    async def flush() -> None:
        nonlocal counted, batch
        async with session_scope(sessions) as session:
            state = await jobs.import_state(session, job_id, lock=True)
            if not state.importing or state.rows != counted:
                raise _Overtaken  # another run of this import is ahead (or done): it goes on
            if state.cancelled:
                raise _Stop(None)
            room = settings.bulk_max_emails - counted
            rows, over = batch[:room], len(batch) > room
            await enqueue(session, job_id, rows, first_position=counted, columns=reader.columns)
        counted += len(rows)
        batch = []
        if over:
            limit = settings.bulk_max_emails
            raise _Stop(f"the list has more than {limit} rows: the first {limit} are verified")

    try:
        async with _open(url, settings) as body:
            async for chunk in body:
                for row in reader.iter_feed(chunk):
                    seen += 1
                    if seen > skip:
                        batch.append(row)
                        if len(batch) >= BATCH_ROWS:
                            await flush()
            for row in reader.close():
                seen += 1
                if seen > skip:
                    batch.append(row)
    except (fetch.FetchError, ListError):
        await flush()  # the rows read whole before it went wrong are the job's too
        raise
    await flush()
