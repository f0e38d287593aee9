"""The Prometheus observer: what each engine event moves, and a bounded label set."""

from __future__ import annotations

from prometheus_client import REGISTRY

from app import metrics
from app.engine.model import ProbeDebug
from worker.tasks import failed_output


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def open_groups() -> set[str]:
    return {
        sample.labels["mx_group"]
        for family in REGISTRY.collect()
        if family.name == "mxprobe_smtp_sessions_open"
        for sample in family.samples
    }


def test_a_groups_open_sessions_series_goes_with_its_last_session() -> None:
    observer = metrics.PrometheusObserver()
    opened = value("mxprobe_smtp_sessions_opened_total")

    observer.session_opened("gmail")
    observer.session_opened("gmail")
    observer.session_opened("mx.example.test")
    assert value("mxprobe_smtp_sessions_open", mx_group="gmail") == 2
    assert value("mxprobe_smtp_sessions_open", mx_group="mx.example.test") == 1

    observer.session_closed("gmail")
    observer.session_closed("mx.example.test")
    assert value("mxprobe_smtp_sessions_open", mx_group="gmail") == 1
    assert "mx.example.test" not in open_groups()

    observer.session_closed("gmail")
    assert not open_groups() & {"gmail", "mx.example.test"}
    assert value("mxprobe_smtp_sessions_opened_total") == opened + 3


def test_engine_events_move_their_counters() -> None:
    observer = metrics.PrometheusObserver()
    names = (
        "mxprobe_smtp_connect_refused_total",
        "mxprobe_smtp_round_trips_total",
        "mxprobe_dns_cache_hits_total",
        "mxprobe_dns_cache_misses_total",
        "mxprobe_probe_duration_seconds_count",
    )
    before = {name: value(name) for name in names}
    timeouts = {s: value("mxprobe_smtp_timeouts_total", stage=s) for s in ("connect", "command")}

    observer.connect_refused("gmail")
    observer.timed_out("gmail", stage="connect")
    for _ in range(3):
        observer.round_trip("gmail", 0.05)
    observer.dns_lookup(cached=True)
    observer.dns_lookup(cached=False)
    observer.dns_lookup(cached=False)
    observer.verified(failed_output("a@b.test", RuntimeError("x")), seconds=0.2)

    moved = {name: value(name) - before[name] for name in names}
    assert moved == {
        "mxprobe_smtp_connect_refused_total": 1,
        "mxprobe_smtp_round_trips_total": 3,
        "mxprobe_dns_cache_hits_total": 1,
        "mxprobe_dns_cache_misses_total": 2,
        "mxprobe_probe_duration_seconds_count": 1,
    }
    assert value("mxprobe_smtp_timeouts_total", stage="connect") == timeouts["connect"] + 1
    assert value("mxprobe_smtp_timeouts_total", stage="command") == timeouts["command"]


def test_checks_are_counted_by_verdict_and_reply_category() -> None:
    no_probe = failed_output("a@b.test", RuntimeError("x"))
    answered = no_probe.model_copy(
        update={
            "debug": no_probe.debug.model_copy(
                update={
                    "probe": ProbeDebug(
                        category="temp_fail", code=451, message="later", elapsed_ms=1, mx_host="m"
                    )
                }
            )
        }
    )
    labels = [("unknown", metrics.NO_PROBE), ("unknown", "temp_fail")]
    before = [value("mxprobe_checks_total", verdict=v, category=c) for v, c in labels]

    metrics.count_check(no_probe)
    metrics.count_check(answered)
    metrics.count_check(answered)

    after = [value("mxprobe_checks_total", verdict=v, category=c) for v, c in labels]
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 2]
