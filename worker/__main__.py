"""`python -m worker [CONCURRENCY]`: one worker, configured by the environment (DATABASE_URL,
MXPROBE_*). The `mxprobe worker` command does the same."""

from __future__ import annotations

import sys

from app.settings import get_settings
from worker.main import run


def main(argv: list[str]) -> None:
    run(get_settings(), concurrency=int(argv[0]) if argv else None)


if __name__ == "__main__":
    main(sys.argv[1:])
