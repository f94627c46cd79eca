"""A containerizer in front of two: image containers go to the OCI backend, the rest to the
Mesos containerizer (launcher + isolators). As Mesos's ComposingContainerizer, each container
stays with the one that launched it."""

from __future__ import annotations

import socket
from collections.abc import Mapping, Sequence
from typing import Any

from containerizer.errors import LaunchFailed, UnknownContainer
from containerizer.interface import (
    ContainerConfig,
    Containerizer,
    ContainerState,
    ContainerStatus,
    RecoveryResult,
)
from containerizer.oci import OciContainerConfig
from containerizer.statistics import ResourceStatistics
from containerizer.termination import ContainerTermination


class ComposingContainerizer(Containerizer):
    """``images`` may be None (no runc here): then an image container is refused with why."""

    def __init__(
        self, default: Containerizer, images: Containerizer | None, images_missing: str = ""
    ) -> None:
        self.default = default
        self.images = images
        self.images_missing = images_missing
        self._owner: dict[str, Containerizer] = {}

    def _of(self, container_id: str) -> Containerizer:
        owner = self._owner.get(container_id)
        if owner is None:
            raise UnknownContainer(
                container_id,
                f"unknown container {container_id!r}: it was never launched or recovered here, "
                "or was forgotten",
            )
        return owner

    async def launch(self, container_id: str, config: ContainerConfig) -> ContainerStatus:
        target = self.default
        if isinstance(config, OciContainerConfig):
            if self.images is None:
                raise LaunchFailed(
                    f"container {container_id} names image {config.image!r}, but this agent "
                    f"cannot run images: {self.images_missing}"
                )
            target = self.images
        self._owner[container_id] = target
        try:
            return await target.launch(container_id, config)
        except BaseException:
            if container_id not in target.containers():
                self._owner.pop(container_id, None)
            raise

    async def wait(self, container_id: str) -> ContainerTermination:
        return await self._of(container_id).wait(container_id)

    async def destroy(self, container_id: str, grace_seconds: float = 3.0) -> ContainerTermination:
        return await self._of(container_id).destroy(container_id, grace_seconds)

    async def update(self, container_id: str, resources: Mapping[str, float]) -> None:
        await self._of(container_id).update(container_id, resources)

    async def usage(self, container_id: str) -> ResourceStatistics:
        return await self._of(container_id).usage(container_id)

    async def run_inside(
        self,
        container_id: str,
        command: str | Sequence[str],
        environment: Mapping[str, str],
        timeout: float | None,
        user: str | None = None,
    ) -> int:
        owner = self._of(container_id)
        return await owner.run_inside(container_id, command, environment, timeout, user)

    async def network_socket(self, container_id: str) -> socket.socket | None:
        return await self._of(container_id).network_socket(container_id)

    def status(self, container_id: str) -> ContainerStatus:
        return self._of(container_id).status(container_id)

    def containers(self) -> set[str]:
        found = set(self.default.containers())
        if self.images is not None:
            found |= self.images.containers()
        return found

    def forget(self, container_id: str) -> None:
        self._of(container_id).forget(container_id)
        self._owner.pop(container_id, None)

    async def recover(self, known: Sequence[ContainerState]) -> RecoveryResult:
        """Each backend recovers what it launched; the results are merged.

        Every backend is shown every known container, and one that does not run it reports it
        as ended: a container running in one backend is running, and of the ended reports the
        one that knows the exit status wins. The other backends' records of it are dropped.
        """
        backends = [self.default] + ([self.images] if self.images is not None else [])
        results = [await backend.recover(known) for backend in backends]
        running: set[str] = set()
        orphans: set[str] = set()
        for backend, result in zip(backends, results, strict=True):
            for container_id in result.running | result.orphans:
                self._owner[container_id] = backend
            running |= result.running
            orphans |= result.orphans
        ended: dict[str, ContainerTermination] = {}
        for backend, result in zip(backends, results, strict=True):
            for container_id, termination in result.ended.items():
                chosen = ended.get(container_id)
                if container_id not in running and (chosen is None or chosen.status is None):
                    if chosen is not None:
                        self._owner[container_id].forget(container_id)
                    ended[container_id] = termination
                    self._owner[container_id] = backend
                else:
                    backend.forget(container_id)
        return RecoveryResult(frozenset(running), ended, frozenset(orphans - running))

    async def check_ports(self) -> list[Any]:
        """network/ports's check, in the Mesos containerizer (image containers are not
        watched); nothing where it has none."""
        check = getattr(self.default, "check_ports", None)
        return [] if check is None else await check()

    def update_ports(self, container_id: str, ports: Sequence[tuple[int, int]]) -> None:
        update = getattr(self._of(container_id), "update_ports", None)
        if update is not None:
            update(container_id, ports)

    def active_isolators(self) -> tuple[str, ...]:
        isolators = getattr(self.default, "active_isolators", lambda: ())()
        return tuple(isolators) + (("oci/runc",) if self.images is not None else ())
