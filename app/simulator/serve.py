"""Run a simulated world in the foreground until SIGINT or SIGTERM (`mxprobe sim`)."""

from __future__ import annotations

import json
import signal
import sys
import threading
from types import FrameType

from app.simulator.world import World

__all__ = ["serve_forever"]


def serve_forever(world: World) -> None:
    """Start `world`, print ``{"nameserver": …, "smtp_port": …}`` as one JSON line on stdout,
    and block until SIGINT or SIGTERM; then stop it. Call from the main thread.

    SIGUSR1 prints ``{"stats": {host: {connections, peak_connections, round_trips, rcpt, data,
    refused_421}}}`` as one JSON line (benchmarks read the fake MXes' logs this way); SIGUSR2
    resets those counters."""
    stopping = threading.Event()
    report = threading.Event()
    reset = threading.Event()

    def request_report(signum: int, frame: FrameType | None) -> None:
        report.set()

    def request_reset(signum: int, frame: FrameType | None) -> None:
        reset.set()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    previous = {
        signum: signal.signal(signum, request_stop) for signum in (signal.SIGINT, signal.SIGTERM)
    }
    previous[signal.SIGUSR1] = signal.signal(signal.SIGUSR1, request_report)
    previous[signal.SIGUSR2] = signal.signal(signal.SIGUSR2, request_reset)
    try:
        with world:
            line = {"nameserver": world.nameserver, "smtp_port": world.smtp_port}
            sys.stdout.write(json.dumps(line) + "\n")
            sys.stdout.flush()
            while not stopping.wait(0.05):
                if reset.is_set():
                    reset.clear()
                    world.reset_recorders()
                if report.is_set():
                    report.clear()
                    stats = {host: r.summary() for host, r in world.recorders.items()}
                    sys.stdout.write(json.dumps({"stats": stats}) + "\n")
                    sys.stdout.flush()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
