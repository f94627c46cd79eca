"""The seam between a process and the runtime that hosts it.

Kept in a module of its own, below ``process``, ``mailbox``, ``async_work`` and ``runtime``,
so that each of them can name what it shares with the others without importing them.
"""

from __future__ import annotations


class ProcessState:
    CREATED = "created"
    RUNNING = "running"
    TERMINATED = "terminated"


class ProcessTerminated(Exception):
    """The target process ended before it could serve the request."""
