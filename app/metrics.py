"""Prometheus metrics of one process: what its engine saw, what it verified and stored.

Every process (the API, each worker) counts in its own memory, in prometheus-client's default
registry, and is scraped on its own: the API at `/metrics` (with what it reads from the
database on each scrape: `app.api.metrics`), a worker on `--metrics-port`. No process forks
after counting (the API runs one uvicorn process; `mxprobe serve` starts workers as separate
commands, each with its own port), so prometheus-client's multiprocess mode is not needed.

Label sets stay small: `mx_group` only on the open-sessions gauge, whose series is removed
when a group's last session closes; verdicts and reply categories are fixed sets; per-job
series exist only while a job runs (the API's, read from the database).

`OBSERVER` is the engine's `Observer` counting into these metrics; the API and the workers
hand it to `app.verifiers.open_verifier`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    start_http_server,
)

from app.engine import CheckEmailOutput, Observer
from app.engine.observer import TimeoutStage

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""Prometheus' text format, as `generate_latest` writes it."""

NO_PROBE = "none"
"""The `category` of a check that asked no RCPT (bad syntax, no MX, DNS failure)."""

# No `_created` series beside every counter: nobody reads them (the function is untyped).
disable_created_metrics()  # type: ignore[no-untyped-call]

CHECKS = Counter(
    "mxprobe_checks",
    "Addresses verified and answered (bulk rows once stored, single checks once answered), "
    "by verdict and by the RCPT reply's category",
    ["verdict", "category"],
)
PROBE_DURATION = Histogram(
    "mxprobe_probe_duration_seconds",
    "Time the engine took to verify one address (every attempt, greylisting retries too)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
SESSIONS_OPEN = Gauge(
    "mxprobe_smtp_sessions_open",
    "SMTP sessions this process has open, per MX group",
    ["mx_group"],
)
SESSIONS_OPENED = Counter("mxprobe_smtp_sessions_opened", "SMTP sessions opened")
CONNECT_REFUSED = Counter(
    "mxprobe_smtp_connect_refused",
    "Connects answered 421 (too many connections, busy)",
)
TIMEOUTS = Counter(
    "mxprobe_smtp_timeouts",
    "SMTP timeouts: no banner/EHLO within the connect timeout (connect), or no reply to a "
    "command within the command timeout (command)",
    ["stage"],
)
ROUND_TRIPS = Counter(
    "mxprobe_smtp_round_trips",
    "SMTP round trips of MAIL/RCPT flights (a pipelined flight is one)",
)
DNS_HITS = Counter("mxprobe_dns_cache_hits", "DNS look-ups answered from the cache")
DNS_MISSES = Counter("mxprobe_dns_cache_misses", "DNS look-ups asked of a nameserver")
RESULT_CACHE_HITS = Counter(
    "mxprobe_result_cache_hits",
    "Addresses answered from the result cache instead of a probe (counted in mxprobe_checks too)",
)
ROWS_STORED = Counter(
    "mxprobe_rows_stored",
    "Bulk result rows this worker stored (a row stored again by a retried task not counted)",
)

for _stage in ("connect", "command"):
    TIMEOUTS.labels(_stage)  # both series from the start, at 0


class PrometheusObserver(Observer):
    """The engine's observer, counting into this module's metrics."""

    def __init__(self) -> None:
        self._open: dict[str, int] = {}
        self._lock = threading.Lock()  # the scrape runs in another thread in a worker

    def session_opened(self, group: str) -> None:
        SESSIONS_OPENED.inc()
        with self._lock:
            self._open[group] = self._open.get(group, 0) + 1
            SESSIONS_OPEN.labels(group).set(self._open[group])

    def session_closed(self, group: str) -> None:
        with self._lock:
            left = self._open.get(group, 0) - 1
            if left > 0:
                self._open[group] = left
                SESSIONS_OPEN.labels(group).set(left)
            else:  # no series for a group with no session: a bounded label set
                self._open.pop(group, None)
                SESSIONS_OPEN.remove(group)

    def connect_refused(self, group: str) -> None:
        CONNECT_REFUSED.inc()

    def timed_out(self, group: str, *, stage: TimeoutStage) -> None:
        TIMEOUTS.labels(stage).inc()

    def round_trip(self, group: str, seconds: float) -> None:
        ROUND_TRIPS.inc()

    def dns_lookup(self, *, cached: bool) -> None:
        (DNS_HITS if cached else DNS_MISSES).inc()

    def verified(self, output: CheckEmailOutput, *, seconds: float) -> None:
        PROBE_DURATION.observe(seconds)


OBSERVER = PrometheusObserver()


def count_check(output: CheckEmailOutput) -> None:
    """One address answered: counted by verdict and reply category, and as a cache hit when
    the result cache answered it."""
    probe = output.debug.probe
    CHECKS.labels(output.is_reachable.value, probe.category if probe else NO_PROBE).inc()
    if output.from_cache:
        RESULT_CACHE_HITS.inc()


@contextmanager
def serving(*, host: str, port: int | None) -> Iterator[None]:
    """While open, this process's metrics are served at `http://host:port/metrics` (any
    path, in fact: prometheus-client's server), from a thread of its own, so a scrape is
    answered even while the event loop is busy. `port` None: not served."""
    if port is None:
        yield
        return
    server, thread = start_http_server(port, addr=host)
    try:
        yield
    finally:
        _stop(server, thread)


def _stop(server: WSGIServer, thread: threading.Thread) -> None:
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)
