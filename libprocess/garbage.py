"""The cyclic garbage collector's cost, per generation, for the metrics.

A busy actor allocates by the million, and Python's collector then stops it for as long as a
collection takes; a full one walks every object in the process. That time is spent inside
whatever code happened to allocate, so a profile blames the wrong function. ``GC_STATS``
counts collections and their seconds from ``gc.callbacks``, once per OS process (the
collector is process-wide), and runtimes publish it as gauges.
"""

from __future__ import annotations

import gc
import threading
import time
from typing import Any

GENERATIONS = (0, 1, 2)


class GarbageCollections:
    """Collections and the CPU seconds spent in them, per generation, since ``install``."""

    def __init__(self) -> None:
        self.collections = [0, 0, 0]
        self.seconds = [0.0, 0.0, 0.0]
        self._started = 0.0
        self._installed = False
        self._lock = threading.Lock()

    def install(self) -> None:
        """Start counting (idempotent: every runtime of the process calls it)."""
        with self._lock:
            if not self._installed:
                gc.callbacks.append(self._callback)
                self._installed = True

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        # A collection holds the GIL from start to stop and runs in the thread that allocated:
        # that thread's CPU clock measures it, however busy the machine is.
        if phase == "start":
            self._started = time.thread_time()
            return
        generation = info["generation"]
        self.collections[generation] += 1
        self.seconds[generation] += time.thread_time() - self._started

    @property
    def total_seconds(self) -> float:
        return sum(self.seconds)


GC_STATS = GarbageCollections()
