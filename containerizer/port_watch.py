"""The ``network/ports`` isolator's decisions: which containers listen on ports not theirs.

A plain class, no sockets, no clock: it is told each container's allocated ports and how to
recognise its processes (its cgroup, else its session), then given the listening sockets one
scan of the machine found, and answers the containers that listen on ports they were not
given. Only ports inside ``isolated`` count (the agent's port range, as Mesos's
``--check_agent_port_range_only``; ``None``: every port), so an executor's own libprocess or
ZeroMQ socket on an ephemeral port is no violation.

A container is reported once per distinct set of offending ports (Mesos logs a violation
only when its ports change): an enforcing caller destroys it at the first report; a
log-only caller is not flooded every interval.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from corral.ranges import Ranges


@dataclass(frozen=True)
class Listener:
    """One listening TCP socket, seen by a scan, and the process holding it.

    ``session``: the process's session id (a posix container is a session led by its main
    process). ``cgroup``: the container id of the process's cgroup under the agent's cgroup
    root, when it is in one (a process that called setsid is still in its cgroup).
    """

    pid: int
    port: int
    address: str = ""
    session: int | None = None
    cgroup: str | None = None


@dataclass(frozen=True)
class PortViolation:
    """A container listening on ``ports`` it was not allocated (held by ``pids``)."""

    container_id: str
    ports: Ranges
    allocated: Ranges
    pids: tuple[int, ...]

    @property
    def message(self) -> str:
        """The limitation's message: names the ports, as Mesos's does."""
        allocated = _listed(self.allocated) if self.allocated else "none"
        return (
            f"Container {self.container_id} is listening on port(s) {_listed(self.ports)} "
            f"that were not allocated to it (allocated: {allocated})"
        )


@dataclass
class _Watched:
    session: int  # the main process's pid, which leads the container's session
    ports: Ranges
    reported: Ranges = field(default_factory=Ranges)  # the offending ports last reported


class PortWatch:
    """The containers watched, by id.

    Invariant: ``_by_session`` maps each watched container's session id to its id, and only
    those (kept by ``watch`` and ``unwatch``).
    """

    def __init__(self, isolated: Ranges | None = None) -> None:
        self.isolated = isolated  # the ports that are checked; None: every port
        self._watched: dict[str, _Watched] = {}
        self._by_session: dict[int, str] = {}

    def watch(self, container_id: str, session: int, ports: Ranges) -> None:
        """Start watching a container (launched, or recovered with its ports)."""
        previous = self._watched.get(container_id)
        if previous is not None:
            self._by_session.pop(previous.session, None)
        self._watched[container_id] = _Watched(session, ports)
        self._by_session[session] = container_id

    def update(self, container_id: str, ports: Ranges) -> None:
        """The container's ports changed (a task joined its executor)."""
        watched = self._watched.get(container_id)
        if watched is None:
            raise KeyError(
                f"container {container_id} is not watched: watch() it before updating its ports"
            )
        watched.ports = ports
        watched.reported = watched.reported - ports

    def unwatch(self, container_id: str) -> None:
        """Stop watching (the container ended); unknown ids are ignored."""
        watched = self._watched.pop(container_id, None)
        if watched is not None and self._by_session.get(watched.session) == container_id:
            del self._by_session[watched.session]

    def watched(self) -> set[str]:
        return set(self._watched)

    def allocated(self, container_id: str) -> Ranges:
        return self._watched[container_id].ports

    def owner(self, listener: Listener) -> str | None:
        """The watched container ``listener``'s process belongs to: its cgroup's, else its
        session's."""
        if listener.cgroup is not None and listener.cgroup in self._watched:
            return listener.cgroup
        if listener.session is not None:
            return self._by_session.get(listener.session)
        return None

    def check(self, listeners: Iterable[Listener]) -> list[PortViolation]:
        """The containers listening on ports they were not allocated, newly so since the last
        report; sorted by container id."""
        offending_ports: dict[str, set[int]] = {}
        holders: dict[str, set[int]] = {}
        for listener in listeners:
            if self.isolated is not None and listener.port not in self.isolated:
                continue
            container_id = self.owner(listener)
            if container_id is None or listener.port in self._watched[container_id].ports:
                continue
            offending_ports.setdefault(container_id, set()).add(listener.port)
            holders.setdefault(container_id, set()).add(listener.pid)
        violations = []
        # Only containers off their ports now, or reported last time, can change their answer.
        reported = {cid for cid, watched in self._watched.items() if watched.reported}
        for container_id in sorted(offending_ports.keys() | reported):
            watched = self._watched[container_id]
            offending = Ranges((port, port) for port in offending_ports.get(container_id, ()))
            if not offending:
                watched.reported = Ranges()
                continue
            if offending == watched.reported:
                continue
            watched.reported = offending
            violations.append(
                PortViolation(
                    container_id,
                    offending,
                    watched.ports,
                    tuple(sorted(holders[container_id])),
                )
            )
        return violations


def _listed(ranges: Ranges) -> str:
    """``31005, 31007-31009``: single ports bare, runs as ranges."""
    return ", ".join(str(b) if b == e else f"{b}-{e}" for b, e in ranges)
