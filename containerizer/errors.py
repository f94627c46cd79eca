"""The containerizer's errors: each names the container and says what to do."""

from __future__ import annotations


class ContainerError(Exception):
    """A containerizer request failed; ``container_id`` names the container concerned."""

    def __init__(self, container_id: str, message: str) -> None:
        super().__init__(message)
        self.container_id = container_id


class InvalidContainerId(ContainerError):
    """The id cannot name a container (it becomes a directory name, so it is restricted)."""


class UnknownContainer(ContainerError):
    """No container with that id is known (never launched, recovered, or already forgotten)."""


class DuplicateContainer(ContainerError):
    """A container with that id already exists; ids are never reused."""


class LaunchFailed(ContainerError):
    """The container could not be started; ``command`` and the OS error ``cause`` say why."""

    def __init__(
        self, container_id: str, message: str, command: object, cause: OSError | None
    ) -> None:
        super().__init__(container_id, message)
        self.command = command
        self.cause = cause


class DestroyFailed(ContainerError):
    """Processes of the container outlived SIGKILL (a bug, or a process stuck in the kernel)."""
