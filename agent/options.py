"""The agent's settings, fixed before it starts (the command line builds them from flags)."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path

from agent.resources_detection import agent_resources
from corral.protocol import Attribute
from corral.ranges import InvalidRanges, Ranges
from corral.resources import Resources
from libprocess import UPID


@dataclass(frozen=True)
class AgentOptions:
    """How an agent runs.

    ``master`` is the master's pid (``master@host:port``) or its HTTP address (``host:port``,
    resolved through ``/master/state`` when the agent starts). ``resources`` is Mesos's text
    form (``cpus:4;mem:4096``); what it does not name is detected with psutil.
    ``attributes`` is Mesos's text form too (``rack:r1;zone:a``).
    """

    master: str
    work_dir: Path
    resources: str | None = None
    attributes: str | None = None
    hostname: str | None = None
    port: int = 5051  # the agent's HTTP port, as advertised in AgentInfo
    registration_backoff: float = 1.0  # first retry; doubles up to the max
    registration_backoff_max: float = 60.0
    executor_shutdown_grace: float = 5.0  # an executor's time to exit after ShutdownExecutor
    executor_registration_timeout: float = 60.0  # runtime-clock seconds to RegisterExecutor
    # After a restart, seconds a recovered executor has to answer ReconnectExecutor.
    executor_reregistration_timeout: float = 2.0
    # Seconds without a PingAgent before the agent takes the master for lost and registers
    # again; the master's own value (sent when it answers a registration) replaces it.
    master_ping_timeout: float = 75.0
    # Seconds a checkpointing executor waits for a restarted agent before it exits (Mesos's
    # --recovery_timeout); passed to executors as CORRAL_RECOVERY_TIMEOUT.
    recovery_timeout: float = 900.0
    status_update_retry_min: float = 10.0
    status_update_retry_max: float = 600.0
    extra_environment: dict[str, str] = field(default_factory=dict)  # given to every executor
    # Mesos's --isolation and --launcher: isolators by name (containerizer/isolators.py; e.g.
    # "cgroups/cpu,cgroups/mem,cgroups/pids,filesystem/posix,posix/rlimits") and posix|linux.
    isolation: str = "posix/cpu,posix/mem,filesystem/posix"
    launcher: str = "posix"
    # network/ports (docs/ports.md): seconds between two scans of the listening sockets
    # (Mesos's --container_ports_watch_interval); whether only ports of the agent's own
    # range count (--check_agent_port_range_only; on by default here, since executors'
    # libprocess sockets take ephemeral ports); a range to check instead (Mesos's
    # --container_ports_isolated_range, e.g. "[31000-32000]"; wins over the agent's range);
    # whether a violation kills (--enforce_container_ports) or is only logged.
    container_ports_watch_interval: float = 30.0
    check_agent_port_range_only: bool = True
    container_ports_isolated_range: str | None = None
    enforce_container_ports: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "work_dir", Path(self.work_dir))
        if not self.master or not isinstance(self.master, str):
            raise ValueError(
                "AgentOptions.master is the master's pid (master@host:port) or its HTTP "
                f"address (host:port), got {self.master!r}"
            )
        if not 0 < self.registration_backoff <= self.registration_backoff_max:
            raise ValueError(
                "registration backoff must satisfy 0 < registration_backoff <= "
                f"registration_backoff_max, got {self.registration_backoff} and "
                f"{self.registration_backoff_max}"
            )
        for name in ("executor_reregistration_timeout", "master_ping_timeout", "recovery_timeout"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.executor_shutdown_grace < 0:
            raise ValueError(
                f"executor_shutdown_grace must be >= 0 s, got {self.executor_shutdown_grace}"
            )
        if self.container_ports_watch_interval <= 0:
            raise ValueError(
                "container_ports_watch_interval must be positive seconds, got "
                f"{self.container_ports_watch_interval}"
            )
        if self.container_ports_isolated_range is not None:
            try:
                Ranges.parse(self.container_ports_isolated_range)
            except InvalidRanges as error:
                raise ValueError(f"container_ports_isolated_range: {error}") from None
        self.parsed_attributes()  # refuse bad text now, not when registering

    @property
    def meta_dir(self) -> Path:
        """The agent's checkpoints (agent/checkpoint.py)."""
        return self.work_dir / "meta"

    @property
    def runtime_dir(self) -> Path:
        """The containerizer's per-container records (pids, exit statuses)."""
        return runtime_dir_of(self.work_dir)

    @property
    def master_is_pid(self) -> bool:
        return "@" in self.master

    def master_upid(self) -> UPID:
        """The master's pid when ``master`` is one (else resolve the HTTP address)."""
        return UPID(self.master)

    def agent_hostname(self) -> str:
        return self.hostname or socket.gethostname()

    def total_resources(self) -> Resources:
        return agent_resources(self.resources, self.work_dir)

    def isolated_ports(self) -> tuple[tuple[int, int], ...] | None:
        """The ports network/ports checks, as (begin, end) pairs; None: every port."""
        if self.container_ports_isolated_range is not None:
            return Ranges.parse(self.container_ports_isolated_range).bounds
        if self.check_agent_port_range_only:
            return self.total_resources().ranges("ports").bounds
        return None

    def parsed_attributes(self) -> tuple[Attribute, ...]:
        """``rack:r1;cores:4;zone:{a,b};slots:[1-4]``: text, scalar, set and ranges values."""
        if not self.attributes:
            return ()
        result: list[Attribute] = []
        for part in self.attributes.split(";"):
            part = part.strip()
            if not part:
                continue
            name, colon, value = part.partition(":")
            name, value = name.strip(), value.strip()
            if not colon or not name or not value:
                raise ValueError(f"an attribute is written 'name:value', got {part!r}")
            result.append(_attribute(name, value))
        return tuple(result)


def runtime_dir_of(work_dir: Path) -> Path:
    """Where an agent with this work directory keeps its containers' records."""
    return Path(work_dir) / "run" / "containers"


def _attribute(name: str, value: str) -> Attribute:
    if value.startswith("{") and value.endswith("}"):
        items = tuple(item.strip() for item in value[1:-1].split(",") if item.strip())
        return Attribute.of_set(name, items)
    if value.startswith("[") and value.endswith("]"):
        ranges = []
        for item in value[1:-1].split(","):
            begin, dash, end = item.strip().partition("-")
            try:
                ranges.append((int(begin), int(end if dash else begin)))
            except ValueError:
                raise ValueError(
                    f"attribute {name!r}: ranges are written [1-4,8-9], got {value!r}"
                ) from None
        return Attribute.of_ranges(name, tuple(ranges))
    try:
        return Attribute.of_scalar(name, float(value))
    except ValueError:
        return Attribute.of_text(name, value)
