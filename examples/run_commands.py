"""An example framework: run shell commands as tasks on a Corral cluster, to completion.

    python examples/run_commands.py --master 127.0.0.1:5050 --command "echo hi" --count 10

The framework itself is ``corral.frameworks.commands``; this is its command line.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from corral.frameworks.commands import run_commands


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Run shell commands as tasks on a Corral cluster, to completion."
    )
    parser.add_argument("--master", default="127.0.0.1:5050", help="the master's HTTP host:port")
    parser.add_argument(
        "--command",
        action="append",
        required=True,
        help="a shell command to run (repeat for several)",
    )
    parser.add_argument("--count", type=int, default=1, help="run each command this many times")
    parser.add_argument("--cpus", type=float, default=0.1, help="cpus per task")
    parser.add_argument("--mem", type=float, default=32.0, help="memory per task (MB)")
    parser.add_argument("--name", default="run-commands", help="the framework's name")
    parser.add_argument("--role", default=None, help="the framework's role")
    parser.add_argument("--timeout", type=float, default=None, help="give up after seconds")
    parser.add_argument("--log-level", default="warning", help="library log level")
    args = parser.parse_args(argv)
    if args.count < 1:
        parser.error(f"--count must be at least 1, got {args.count}")

    from libprocess import log as logsetup

    logsetup.configure(args.log_level)
    commands = [command for command in args.command for _ in range(args.count)]
    try:
        summary = run_commands(
            args.master,
            commands,
            cpus=args.cpus,
            mem=args.mem,
            name=args.name,
            role=args.role,
            timeout=args.timeout,
        )
    except KeyboardInterrupt:
        print("interrupted: the framework is torn down", file=sys.stderr)
        return 130
    print(summary.describe())
    return 0 if summary.ok else 1


if __name__ == "__main__":
    sys.exit(main())
