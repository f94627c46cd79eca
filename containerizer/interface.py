"""The ``Containerizer`` interface the agent uses, and the records that cross it.

Modelled on Mesos's containerizer API. The agent calls it from its actor; every method that
can block (start processes, wait for them, read the OS) is ``async`` and must be awaited on
the one asyncio loop that the containerizer serves (the runtime's loop, which may run in a
non-main thread). The rest are plain methods that only read the containerizer's records.
"""

from __future__ import annotations

import abc
import enum
import re
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from containerizer.errors import ContainerError, InvalidContainerId
from containerizer.statistics import ResourceStatistics
from containerizer.termination import ContainerTermination

# A container id becomes a directory name (runtime checkpoints, cgroups): keep it tame.
_CONTAINER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def check_container_id(container_id: str) -> str:
    """The id itself, or :class:`InvalidContainerId` saying what an id may hold."""
    if not isinstance(container_id, str) or not _CONTAINER_ID.fullmatch(container_id):
        raise InvalidContainerId(
            str(container_id),
            f"container id {container_id!r} is invalid: expected 1 to 128 characters of "
            "letters, digits, '.', '_' or '-', starting with a letter or digit (e.g. a UUID)",
        )
    return container_id


@dataclass(frozen=True)
class ContainerConfig:
    """What to run and where.

    ``command`` is a shell string (run with ``/bin/sh -c``, like Mesos's ``shell: true``) or
    an argv list (executed directly, the program looked up on the environment's ``PATH``).
    ``environment`` is the whole environment: nothing is inherited from the agent.
    ``sandbox`` is the working directory, created if missing; the command's stdout and stderr
    go to ``<sandbox>/stdout`` and ``<sandbox>/stderr`` (appended), stdin is ``/dev/null``.
    ``resources`` are Mesos scalars (``cpus``, ``mem`` and ``disk`` in MB); the posix
    containerizer only reports them as limits, issue 5's isolators enforce them.
    ``user`` runs the command as that user (the agent must be root); the sandbox is then
    chowned to it, as Mesos does.
    ``ports`` are the ``ports`` resource as sorted ``(begin, end)`` pairs: the only ports of
    the agent's range the container may listen on, where ``network/ports`` watches.
    """

    command: str | Sequence[str]
    sandbox: Path
    environment: Mapping[str, str] = field(default_factory=dict)
    resources: Mapping[str, float] = field(default_factory=dict)
    user: str | None = None
    ports: tuple[tuple[int, int], ...] = ()

    def __post_init__(self) -> None:
        command = self.command
        if isinstance(command, str):
            if not command.strip():
                raise ValueError("command is an empty shell string: give a command to run")
        else:
            command = tuple(command)
            if not command or not all(isinstance(arg, str) for arg in command):
                raise ValueError(
                    f"command {self.command!r} must be a shell string or a non-empty list of "
                    "strings (argv)"
                )
            object.__setattr__(self, "command", command)
        object.__setattr__(self, "sandbox", Path(self.sandbox))
        object.__setattr__(self, "environment", MappingProxyType(dict(self.environment)))
        object.__setattr__(self, "resources", MappingProxyType(dict(self.resources)))
        ports = tuple((int(begin), int(end)) for begin, end in self.ports)
        if any(not 0 <= begin <= end for begin, end in ports):
            raise ValueError(f"ports {self.ports!r} must be (begin, end) pairs, 0 <= begin <= end")
        object.__setattr__(self, "ports", ports)

    @property
    def argv(self) -> tuple[str, ...]:
        """The argv that is executed."""
        if isinstance(self.command, str):
            return ("/bin/sh", "-c", self.command)
        return tuple(self.command)


@dataclass(frozen=True)
class ContainerState:
    """What the agent checkpoints about a container, to find it again after a restart.

    ``start_time`` is the main process's start time (psutil ``create_time``, seconds since the
    epoch): with the pid, it tells the container's process from a later one that reused the pid.
    """

    container_id: str
    pid: int
    start_time: float
    sandbox: Path

    def to_json(self) -> dict[str, object]:
        return {
            "container_id": self.container_id,
            "pid": self.pid,
            "start_time": self.start_time,
            "sandbox": str(self.sandbox),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> ContainerState:
        return cls(
            container_id=str(data["container_id"]),
            pid=int(data["pid"]),  # type: ignore[call-overload]
            start_time=float(data["start_time"]),  # type: ignore[arg-type]
            sandbox=Path(str(data["sandbox"])),
        )


class ContainerRunState(enum.StrEnum):
    """Where a container is in its life: RUNNING -> DESTROYING -> TERMINATED, or RUNNING ->
    TERMINATED when its main process ends by itself."""

    RUNNING = "RUNNING"
    DESTROYING = "DESTROYING"
    TERMINATED = "TERMINATED"


@dataclass(frozen=True)
class ContainerStatus:
    """A container's pid and state, as the containerizer last saw them (no OS call)."""

    container_id: str
    pid: int
    start_time: float
    sandbox: Path
    state: ContainerRunState
    termination: ContainerTermination | None  # set once state is TERMINATED

    @property
    def checkpoint(self) -> ContainerState:
        """What the agent should checkpoint to recover this container after a restart."""
        return ContainerState(self.container_id, self.pid, self.start_time, self.sandbox)


@dataclass(frozen=True)
class RecoveryResult:
    """What ``recover`` found.

    ``running``: known containers reattached (their pid still runs, with the same start time).
    ``ended``: known containers that ended meanwhile, with their termination (the status is
    ``None`` unless the containerizer checkpointed it before the agent went down).
    ``orphans``: containers this containerizer had launched that the agent no longer knows;
    they are reattached (listed by ``containers()``) so that the agent can ``destroy`` them.
    """

    running: frozenset[str]
    ended: Mapping[str, ContainerTermination]
    orphans: frozenset[str]


class Containerizer(abc.ABC):
    """Launches, watches, measures and destroys containers for the agent.

    Bound to one asyncio loop: the first ``async`` call fixes it, and later calls from
    another loop raise ``RuntimeError``. Bad requests (unknown or duplicate id, a command that
    cannot start) raise :class:`~containerizer.errors.ContainerError` subclasses and change
    nothing.
    """

    @abc.abstractmethod
    async def launch(self, container_id: str, config: ContainerConfig) -> ContainerStatus:
        """Start the container; returns once its main process runs (or raises LaunchFailed).

        The status returned holds what the agent checkpoints (``status.checkpoint``) to
        recover the container after a restart. Async because it creates the sandbox and
        forks/execs, which block. If the caller is cancelled mid-launch, whatever started
        is still tracked under the id and destroyed at once.
        """

    @abc.abstractmethod
    async def wait(self, container_id: str) -> ContainerTermination:
        """Wait until the container's main process has ended; its termination.

        May be awaited any number of times, also after the end, until ``forget``. It resolves
        when the main process ends, which may be while a ``destroy`` is still killing the
        rest of the container: ``forget`` only after ``destroy`` has completed.
        """

    @abc.abstractmethod
    async def destroy(self, container_id: str, grace_seconds: float = 3.0) -> ContainerTermination:
        """Kill every process of the container: SIGTERM, then SIGKILL after ``grace_seconds``.

        Returns once no process of the container is left, with its termination. Idempotent:
        concurrent calls share one destruction; on an ended container it kills whatever its
        main process left behind and returns the termination it already had.
        """

    @abc.abstractmethod
    async def update(self, container_id: str, resources: Mapping[str, float]) -> None:
        """Change the container's resources (its limits, where the containerizer enforces them).

        Async because enforcing containerizers write cgroup files or call the OCI runtime.
        """

    @abc.abstractmethod
    async def usage(self, container_id: str) -> ResourceStatistics:
        """Sample the container's resource usage now (async: it reads /proc or cgroups)."""

    async def run_inside(
        self,
        container_id: str,
        command: str | Sequence[str],
        environment: Mapping[str, str],
        timeout: float | None,
        user: str | None = None,
    ) -> int:
        """Run a short command inside a running container (its cgroups and namespaces, its
        sandbox as working directory, ``environment`` as its whole environment), as a COMMAND
        check does; its exit code (128 + N for a death by signal N).

        ``command`` is a shell string or an argv, as in ``ContainerConfig``; ``user`` runs it
        as that user (the agent must be root), as the task's own command. Raises
        TimeoutError after ``timeout`` seconds (None: no limit), once the command was
        killed; ContainerError when the container is unknown or has ended, or when this
        containerizer cannot run commands inside its containers (this default).
        """
        raise ContainerError(
            container_id,
            f"{type(self).__name__} cannot run commands inside its containers; give the "
            "task an HTTP or TCP check instead",
        )

    async def network_socket(self, container_id: str) -> socket.socket | None:
        """A TCP socket in the container's own network namespace, to reach the task on its
        loopback (an HTTP or TCP check); None when the container shares the agent's network
        (this default), where 127.0.0.1 reaches it. ContainerError when it cannot be had."""
        return None

    @abc.abstractmethod
    def status(self, container_id: str) -> ContainerStatus:
        """The container's pid and state as last recorded (no OS call, so not async)."""

    @abc.abstractmethod
    def containers(self) -> set[str]:
        """Ids of the containers not yet terminated (running or being destroyed)."""

    @abc.abstractmethod
    def forget(self, container_id: str) -> None:
        """Drop a terminated container's record once the agent has handled its termination.

        Raises ContainerError if it is still running: destroy it first.
        """

    @abc.abstractmethod
    async def recover(self, known: Sequence[ContainerState]) -> RecoveryResult:
        """After an agent restart: reattach to the containers the agent checkpointed.

        Call once, on a fresh containerizer, before any launch.
        """
