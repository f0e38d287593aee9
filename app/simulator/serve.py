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
    and block until SIGINT or SIGTERM; then stop it. Call from the main thread."""
    stopping = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    previous = {
        signum: signal.signal(signum, request_stop) for signum in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        with world:
            line = {"nameserver": world.nameserver, "smtp_port": world.smtp_port}
            sys.stdout.write(json.dumps(line) + "\n")
            sys.stdout.flush()
            while not stopping.wait(0.5):
                pass
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
