"""``corral run``: one command as a task on the cluster, like ``mesos-execute``."""

from __future__ import annotations

import re
import sys

from corral.frameworks.commands import Summary, run_commands
from corral.task_states import TaskState

_EXITED = re.compile(r"exited with status (\d+)")
_SIGNALED = re.compile(r"terminated with signal (\d+)")


def exit_status(summary: Summary) -> int:
    """The task's own exit status where the agent reported it; 1 for other failures."""
    (result,) = summary.results
    if result.state is TaskState.TASK_FINISHED:
        return 0
    message = result.message or ""
    if match := _EXITED.search(message):
        return int(match.group(1)) or 1
    if match := _SIGNALED.search(message):
        return 128 + int(match.group(1))
    return 1


def run(
    master: str, command: str, *, cpus: float, mem: float, name: str, timeout: float | None
) -> int:
    """Stream the task's states to stdout, then exit with its exit status."""
    try:
        summary = run_commands(
            master,
            [command],
            cpus=cpus,
            mem=mem,
            name=name,
            timeout=timeout,
            report=lambda line: print(line, flush=True),
        )
    except KeyboardInterrupt:
        print("corral run: interrupted; the task is killed with the framework", file=sys.stderr)
        return 130
    if summary.error:
        print(f"corral run: {summary.error}", file=sys.stderr)
    return exit_status(summary)
