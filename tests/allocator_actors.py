"""Test actors for the allocator actor's tests (importable by launched children)."""

from __future__ import annotations

import queue

from libprocess import Process, handler
from master.allocator import ALLOCATIONS, ERROR, AllocatorClient, AllocatorEvent
from master.allocator.codec import decode_allocations


class Subscriber(Process):
    """Stands in for the master: owns the client, collects allocations and errors."""

    def __init__(self) -> None:
        super().__init__()
        self.allocations: queue.Queue = queue.Queue()
        self.errors: queue.Queue = queue.Queue()
        self.client: AllocatorClient | None = None

    def connect(self, allocator) -> None:
        self.client = AllocatorClient(self, allocator)

    def post(self, event: AllocatorEvent) -> None:
        self.client.post(event)

    @handler(ALLOCATIONS)
    def _allocations(self, sender, body) -> None:
        self.allocations.put(decode_allocations(body))

    @handler(ERROR)
    def _error(self, sender, body) -> None:
        self.errors.put(body)
