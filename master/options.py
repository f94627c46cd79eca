"""The master's knobs, named as Mesos's master flags, and the parsing of Mesos's rate form."""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass, field


@dataclass(frozen=True)
class MasterOptions:
    """The master's knobs, named as Mesos's master flags."""

    hostname: str = field(default_factory=socket.gethostname)
    allocation_interval: float = 1.0
    agent_ping_timeout: float = 15.0  # seconds between pings to each agent
    max_agent_ping_timeouts: int = 5  # unanswered pings in a row before unreachable
    offer_timeout: float | None = None  # None: offers stay until used, declined or gone
    allocator_seed: int = 0
    # Run the allocator in an OS process of its own (its metrics are then served by that
    # process's HTTP server, named in /master/state's "allocator").
    allocator_process: bool = False
    # Allocation cycles wait while this many events wait in the master's mailbox (until a
    # quarter of it is left, an allocation_interval at most; None: never wait). Offers are
    # what frameworks launch on: made while the master is behind, they only lengthen its
    # queue (master/allocator/backlog_gate.py). For the allocator in this process only.
    allocation_hold_backlog: int | None = 2_000
    # Unreachable agents removed per second at most (None: no limit); see parse_rate_limit.
    agent_removal_rate_limit: float | None = None
    # After a restart, seconds the registry's admitted agents have to re-register.
    agent_reregister_timeout: float = 600.0
    # Seconds a built /master/state (and its views) is served before it is built anew.
    state_cache_seconds: float = 0.0  # a floor on /master/state's age; see state_snapshot
    # Agents plus tasks from which /master/state and its views are built in a forked child,
    # off the master's actor (master/state_fork.py; None, the default: always on the actor,
    # until a 100,000-task run with forks no longer loses agents; docs/http-api.md).
    state_fork_threshold: int | None = None
    # Seconds between HEARTBEAT events on v1 SUBSCRIBE streams (Mesos: a fixed 15 s).
    http_heartbeat_interval: float = 15.0
    # Python's cyclic garbage collector thresholds for the master's OS process (None: leave
    # Python's 700/10/10). With them, full collections walked the whole heap (20,000 agents:
    # ~340 ms each, 23 in one launch phase, 15 % of the master's time); these make them
    # rare, while acyclic garbage is still freed at once by reference counting.
    gc_thresholds: tuple[int, int, int] | None = (50_000, 20, 100)

    def __post_init__(self) -> None:
        if self.agent_ping_timeout <= 0:
            raise ValueError(f"agent_ping_timeout must be positive, got {self.agent_ping_timeout}")
        if self.max_agent_ping_timeouts < 1:
            raise ValueError(
                f"max_agent_ping_timeouts must be 1 or more, got {self.max_agent_ping_timeouts}"
            )
        if self.offer_timeout is not None and self.offer_timeout <= 0:
            raise ValueError(
                f"offer_timeout must be positive (or None for no timeout), got {self.offer_timeout}"
            )
        if self.allocation_hold_backlog is not None and self.allocation_hold_backlog < 1:
            raise ValueError(
                f"allocation_hold_backlog must be 1 or more events (or None to never hold), "
                f"got {self.allocation_hold_backlog}"
            )
        rate = self.agent_removal_rate_limit
        if rate is not None and not 0 < rate < float("inf"):
            raise ValueError(
                f"agent_removal_rate_limit must be a positive number of removals per second "
                f"(or None for no limit), got {rate}"
            )
        if self.agent_reregister_timeout <= 0:
            raise ValueError(
                f"agent_reregister_timeout must be positive, got {self.agent_reregister_timeout}"
            )
        if not 0 < self.http_heartbeat_interval < float("inf"):
            raise ValueError(
                f"http_heartbeat_interval must be positive, got {self.http_heartbeat_interval}"
            )
        if self.gc_thresholds is not None and (
            len(self.gc_thresholds) != 3 or not all(t > 0 for t in self.gc_thresholds)
        ):
            raise ValueError(
                f"gc_thresholds are three positive numbers (as gc.set_threshold takes), "
                f"got {self.gc_thresholds}"
            )
        if self.state_fork_threshold is not None and self.state_fork_threshold < 0:
            raise ValueError(
                f"state_fork_threshold must be 0 or more agents and tasks (or None for never), "
                f"got {self.state_fork_threshold}"
            )
        if not 0 <= self.state_cache_seconds < float("inf"):
            raise ValueError(
                f"state_cache_seconds must be 0 or more, got {self.state_cache_seconds}"
            )

    @property
    def total_ping_timeout(self) -> float:
        """Seconds without a pong after which the master takes an agent for unreachable."""
        return self.agent_ping_timeout * self.max_agent_ping_timeouts


_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "ms": 1e-3,
    "secs": 1.0,
    "mins": 60.0,
    "hrs": 3600.0,
    "days": 86400.0,
    "weeks": 604800.0,
}
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(\d+(?:\.\d+)?)\s*([a-z]+)\s*$")


def parse_rate_limit(text: str) -> float:
    """Mesos's ``--agent_removal_rate_limit`` form, ``N/<duration>`` (``"1/10secs"``,
    ``"5/1mins"``), as removals per second."""
    match = _RATE.match(text.lower())
    unit = _UNITS.get(match.group(3)) if match else None
    if match is None or unit is None:
        raise ValueError(
            f"{text!r} is not a rate: write removals/duration, e.g. '1/10secs' or '5/1mins' "
            f"(units: {', '.join(_UNITS)})"
        )
    count, seconds = float(match.group(1)), float(match.group(2)) * unit
    if count <= 0 or seconds <= 0:
        raise ValueError(f"{text!r} is not a rate: both numbers must be positive")
    return count / seconds
