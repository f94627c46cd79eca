"""What every backend keeps the same way: its container records by id, and the event loop it
is bound to (the first that calls it)."""

from __future__ import annotations

import asyncio
from typing import Any

from containerizer.errors import ContainerError, UnknownContainer
from containerizer.interface import ContainerRunState, ContainerStatus


class ContainerRecords:
    """A mixin for backends whose records have ``state`` and ``status()``.

    Invariant: ``_containers`` holds every container launched or recovered and not yet
    forgotten; ``_launching`` the ids between ``launch()`` and their record existing.
    """

    def _init_records(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._containers: dict[str, Any] = {}
        self._launching: set[str] = set()
        self._recovered = False

    def status(self, container_id: str) -> ContainerStatus:
        return self._get(container_id).status()

    def containers(self) -> set[str]:
        return {
            container_id
            for container_id, container in self._containers.items()
            if container.state is not ContainerRunState.TERMINATED
        }

    def forget(self, container_id: str) -> None:
        container = self._get(container_id)
        if container.state is not ContainerRunState.TERMINATED:
            raise ContainerError(
                container_id,
                f"cannot forget container {container_id}: it is {container.state.value}; "
                "destroy it first",
            )
        del self._containers[container_id]
        self._forgotten(container_id)

    def _forgotten(self, container_id: str) -> None:
        """Runs after a record is dropped: remove what the backend kept on disk for it."""

    def _get(self, container_id: str) -> Any:
        container = self._containers.get(container_id)
        if container is None:
            raise UnknownContainer(
                container_id,
                f"unknown container {container_id!r}: it was never launched or recovered here, "
                f"or was forgotten; known: {sorted(self._containers) or 'none'}",
            )
        return container

    def _bind_loop(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif self._loop is not loop:
            raise RuntimeError(
                "this containerizer serves another event loop (the one of its first call); "
                "call it from that loop, e.g. with asyncio.run_coroutine_threadsafe"
            )
        return loop
