"""``python -m app.simulator [--bench] [--smtp-port N] [--dns-port N]``: serve a world."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from app.simulator.bench import bench_world
from app.simulator.serve import serve_forever
from app.simulator.standard import standard_world


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m app.simulator", description=__doc__)
    parser.add_argument("--bench", action="store_true", help="the bench world, not the standard")
    parser.add_argument("--smtp-port", type=int, default=None)
    parser.add_argument("--dns-port", type=int, default=None)
    args = parser.parse_args(argv)
    build = bench_world if args.bench else standard_world
    serve_forever(build(smtp_port=args.smtp_port, dns_port=args.dns_port))


if __name__ == "__main__":
    main()
