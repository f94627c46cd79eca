"""``corral``: the command line entry point."""

from __future__ import annotations

import argparse
import sys

from corral import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="corral",
        description="Corral: a data-center operating system in the line of Apache Mesos.",
    )
    parser.add_argument("--version", action="version", version=f"corral {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        help="start actors in several OS processes and show them exchanging messages",
    )
    demo.add_argument("--nodes", type=int, default=3, help="actor processes to start (2-16)")
    demo.add_argument("--rounds", type=int, default=3, help="times the token goes round")
    demo.add_argument("--log-level", default="warning", help="runtime log level")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "demo":
        if not 2 <= args.nodes <= 16:
            parser.error(f"--nodes must be between 2 and 16, got {args.nodes}")
        from corral.cli.demo import run_demo

        return run_demo(nodes=args.nodes, rounds=args.rounds, log_level=args.log_level)
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
