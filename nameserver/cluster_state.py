"""What the server knows of the cluster, from the master's v1 operator events, and the
records that follow from it.

``ClusterState`` is sans-IO: the follower (nameserver/follower.py) hands it the SUBSCRIBED
snapshot and every event after; it keeps agents, frameworks and tasks and rewrites the records
of whatever an event touched in the ``RecordTable``. The names are Mesos-DNS's (docs/dns.md):
only TASK_RUNNING tasks have records, on agents and in frameworks the master has told of.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import structlog

from nameserver.labels import Label, domain_fragment, rfc952, rfc1123
from nameserver.records import Record, RecordTable, RecordType

log = structlog.get_logger("nameserver.cluster_state")

RUNNING = "TASK_RUNNING"
TERMINAL = frozenset(
    (
        "TASK_FINISHED",
        "TASK_FAILED",
        "TASK_KILLED",
        "TASK_LOST",
        "TASK_ERROR",
        "TASK_DROPPED",
        "TASK_GONE",
        "TASK_GONE_BY_OPERATOR",
    )
)
IP_SOURCES = ("netinfo", "mesos", "host")  # Mesos-DNS's default order
MESOS_IP_LABEL = "MesosContainerizer.NetworkSettings.IPAddress"
_ZBASE32 = "ybndrfg8ejkmcpqxot1uwisza345h769"


class EventError(ValueError):
    """An event from the master lacks what its type needs (the master's fault, or a stream
    that is not the v1 operator API's); the state is left as it was."""


@dataclass(slots=True)
class AgentEntry:
    id: str
    hostname: str
    address: str | None  # an IP literal, or None when the agent has none we can tell
    port: int


@dataclass(slots=True)
class FrameworkEntry:
    id: str
    name: str
    hostname: str


@dataclass(slots=True)
class TaskEntry:
    framework_id: str
    task_id: str
    name: str
    agent_id: str
    state: str
    running_status: dict[str, Any] | None  # the latest TASK_RUNNING status (its addresses)
    discovery: dict[str, Any] | None
    ports: tuple[int, ...]  # of the task's `ports` resource

    @property
    def key(self) -> tuple[str, str]:
        return (self.framework_id, self.task_id)


@dataclass(frozen=True, slots=True)
class Leader:
    address: str
    port: int


@dataclass
class ClusterState:
    """See the module docstring. ``domain`` is without dots at either end (``corral``)."""

    domain: str
    table: RecordTable = field(default_factory=RecordTable)
    ip_sources: tuple[str, ...] = IP_SOURCES
    enforce_rfc952: bool = False
    nameserver: tuple[str, str] | None = None  # (SOA mname, its address): an A record

    def __post_init__(self) -> None:
        self.label: Label = rfc952 if self.enforce_rfc952 else rfc1123
        self._tail = f".{self.domain}."
        self.leader: Leader | None = None
        self._reset()

    def _reset(self) -> None:
        """Nothing known but the leader (kept: it comes from GET_MASTER, not the stream)."""
        self.table.clear()
        self.agents: dict[str, AgentEntry] = {}
        self.frameworks: dict[str, FrameworkEntry] = {}
        self.tasks: dict[tuple[str, str], TaskEntry] = {}
        # Invariant: every task is in the index of its agent and of its framework.
        self._by_agent: dict[str, set[tuple[str, str]]] = {}
        self._by_framework: dict[str, set[tuple[str, str]]] = {}
        if self.nameserver is not None:
            name, address = self.nameserver
            self.table.replace(("nameserver",), [_address_record(name.lower(), address)])

    # -- input ------------------------------------------------------------------------------

    def load(self, get_state: dict[str, Any]) -> None:
        """Forget everything and take ``get_state`` (a GET_STATE answer, as SUBSCRIBED carries
        it) as the whole truth: what a resync after a lost stream does."""
        try:
            agents = [_agent(a) for a in _list(get_state, "get_agents", "agents")]
            frameworks = [_framework(f) for f in _list(get_state, "get_frameworks", "frameworks")]
            tasks = [_task(t) for t in _list(get_state, "get_tasks", "tasks")]
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise EventError(f"a GET_STATE snapshot without what it needs: {error!r}") from None
        self._reset()
        self.set_leader(self.leader)
        for agent in agents:
            self.agents[agent.id] = agent
            self._agent_changed(agent.id)
        for framework in frameworks:
            self.frameworks[framework.id] = framework
            self._framework_records(framework)
        for task in tasks:
            if task.state not in TERMINAL:
                self._put_task(task)

    def set_leader(self, leader: Leader | None) -> None:
        self.leader = leader
        records = []
        if leader is not None:
            name = f"leader{self._tail}"
            records = [
                _address_record(name, leader.address),
                _address_record(f"master{self._tail}", leader.address),
                _address_record(f"master0{self._tail}", leader.address),
                Record(f"_leader._tcp{self._tail}", RecordType.SRV, f"{name}:{leader.port}"),
                Record(f"_leader._udp{self._tail}", RecordType.SRV, f"{name}:{leader.port}"),
            ]
        self.table.replace(("leader",), records)

    def apply(self, event: dict[str, Any]) -> None:
        """One event of the SUBSCRIBE stream; an unknown type changes nothing (Mesos adds
        types over time). Raises ``EventError`` for an event without what its type needs."""
        kind = event.get("type") if isinstance(event, dict) else None
        try:
            if kind == "SUBSCRIBED":
                self.load(event["subscribed"]["get_state"])
            elif kind == "TASK_ADDED":
                task = _task(event["task_added"]["task"])
                if task.state not in TERMINAL:
                    self._put_task(task)
            elif kind == "TASK_UPDATED":
                self._task_updated(event["task_updated"])
            elif kind == "AGENT_ADDED":
                agent = _agent(event["agent_added"]["agent"])
                self.agents[agent.id] = agent
                self._agent_changed(agent.id)
            elif kind == "AGENT_REMOVED":
                agent_id = event["agent_removed"]["agent_id"]["value"]
                self.agents.pop(agent_id, None)
                self._agent_changed(agent_id)
            elif kind in ("FRAMEWORK_ADDED", "FRAMEWORK_UPDATED"):
                framework = _framework(event[kind.lower()]["framework"])
                self.frameworks[framework.id] = framework
                self._framework_records(framework)
                for key in self._by_framework.get(framework.id, ()):
                    self._task_records(self.tasks[key])
            elif kind == "FRAMEWORK_REMOVED":
                framework_id = event["framework_removed"]["framework_info"]["id"]["value"]
                self.frameworks.pop(framework_id, None)
                self.table.replace(("framework", framework_id), ())
                for key in list(self._by_framework.get(framework_id, ())):
                    self._drop_task(key)
        except EventError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise EventError(f"a {kind} event without what it needs: {error!r}") from None

    # -- output ------------------------------------------------------------------------------

    def enumerate(self) -> dict[str, Any]:
        """Mesos-DNS's ``/v1/enumerate``: each framework's tasks with their records."""
        frameworks = []
        for framework in self.frameworks.values():
            tasks = []
            for key in sorted(self._by_framework.get(framework.id, ())):
                task = self.tasks[key]
                records = self.table.owned(("task", *key))
                if not records:
                    continue
                tasks.append(
                    {
                        "name": task.name,
                        "id": task.task_id,
                        "records": [
                            {"name": r.name, "host": r.value, "rtype": r.type.value}
                            for r in records
                        ],
                    }
                )
            frameworks.append({"tasks": tasks, "name": framework.name})
        return {"frameworks": frameworks}

    # -- tasks -------------------------------------------------------------------------------

    def _task_updated(self, body: dict[str, Any]) -> None:
        status = body["status"]
        key = (body["framework_id"]["value"], status["task_id"]["value"])
        task = self.tasks.get(key)
        state = body.get("state") or status["state"]
        if task is None:
            return  # never added (it ended before we subscribed): nothing to name
        if state in TERMINAL:
            self._drop_task(key)
            return
        task.state = state
        if status.get("state") == RUNNING:
            task.running_status = status
        self._task_records(task)

    def _put_task(self, task: TaskEntry) -> None:
        old = self.tasks.get(task.key)
        if old is not None and old.agent_id != task.agent_id:
            self._by_agent.get(old.agent_id, set()).discard(task.key)
        self.tasks[task.key] = task
        self._by_agent.setdefault(task.agent_id, set()).add(task.key)
        self._by_framework.setdefault(task.framework_id, set()).add(task.key)
        self._task_records(task)

    def _drop_task(self, key: tuple[str, str]) -> None:
        task = self.tasks.pop(key, None)
        if task is None:
            return
        for index, owner in ((self._by_agent, task.agent_id), (self._by_framework, key[0])):
            keys = index.get(owner)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del index[owner]
        self.table.replace(("task", *key), ())

    def _agent_changed(self, agent_id: str) -> None:
        agent = self.agents.get(agent_id)
        records = []
        if agent is not None and agent.address is not None:
            for name in ("slave", "agent"):
                records.append(_address_record(f"{name}{self._tail}", agent.address))
                records.append(
                    Record(
                        f"_{name}._tcp{self._tail}",
                        RecordType.SRV,
                        f"{name}{self._tail}:{agent.port}",
                    )
                )
        self.table.replace(("agent", agent_id), records)
        for key in self._by_agent.get(agent_id, ()):
            self._task_records(self.tasks[key])

    def _framework_records(self, framework: FrameworkEntry) -> None:
        name = domain_fragment(framework.name, self.label)
        records = []
        if name and _is_ip(framework.hostname):
            records.append(_address_record(f"{name}{self._tail}", framework.hostname))
        self.table.replace(("framework", framework.id), records)

    def _task_records(self, task: TaskEntry) -> None:
        self.table.replace(("task", *task.key), self._records_of(task))

    def _records_of(self, task: TaskEntry) -> Iterator[Record]:
        framework = self.frameworks.get(task.framework_id)
        agent = self.agents.get(task.agent_id)
        if task.state != RUNNING or framework is None or agent is None or agent.address is None:
            return
        label = self.label
        frame = domain_fragment(framework.name, label)
        discovered = bool(task.discovery and task.discovery.get("name"))
        name = label(task.discovery["name"] if discovered else task.name)
        if not name or not frame:
            return
        tail = self._tail
        canonical = f"{name}-{_hashed(task.task_id)}-{_agent_tail(task.agent_id)}.{frame}"
        addresses = self._addresses(task, agent.address)
        for address in addresses:
            yield _address_record(f"{name}.{frame}{tail}", address)
            yield _address_record(f"{canonical}{tail}", address)
        yield _address_record(f"{name}.{frame}.slave{tail}", agent.address)
        yield _address_record(f"{canonical}.slave{tail}", agent.address)
        on_agent = f"{canonical}.slave{tail}"
        for port in task.ports:
            for protocol in ("tcp", "udp"):
                yield Record(
                    f"_{name}._{protocol}.{frame}.slave{tail}", RecordType.SRV, f"{on_agent}:{port}"
                )
                if not discovered:
                    yield Record(
                        f"_{name}._{protocol}.{frame}{tail}", RecordType.SRV, f"{on_agent}:{port}"
                    )
        if not discovered:
            return
        for port in _discovery_ports(task.discovery):
            protocol = label(port.get("protocol") or "")
            target = f"{canonical}{tail}:{int(port['number'])}"
            port_name = label(port.get("name") or "")
            for proto in (protocol,) if protocol else ("tcp", "udp"):
                service = f"_{name}._{proto}.{frame}{tail}"
                yield Record(service, RecordType.SRV, target)
                if port_name:
                    yield Record(f"_{port_name}.{service}", RecordType.SRV, target)

    def _addresses(self, task: TaskEntry, agent_address: str) -> list[str]:
        """The task's addresses from the first of ``ip_sources`` that has any."""
        status = task.running_status or {}
        for source in self.ip_sources:
            if source == "host":
                found = [agent_address]
            elif source == "netinfo":
                found = list(_netinfo_addresses(status))
            elif source == "mesos":
                found = [
                    label.get("value", "")
                    for label in _labels(status.get("labels"))
                    if label.get("key") == MESOS_IP_LABEL
                ]
            else:
                found = []
            valid = [address for address in found if _is_ip(address)]
            if valid:
                return valid
        return []


# -- parsing the v1 JSON ------------------------------------------------------------------------


def _list(state: dict[str, Any], section: str, key: str) -> list[Any]:
    return (state.get(section) or {}).get(key) or []


def _agent(body: dict[str, Any]) -> AgentEntry:
    info = body["agent_info"]
    hostname = info.get("hostname") or ""
    pid_host = _pid_host(body.get("pid") or "")
    address = pid_host if _is_ip(pid_host) else (hostname if _is_ip(hostname) else None)
    return AgentEntry(info["id"]["value"], hostname, address, int(info.get("port") or 5051))


def _framework(body: dict[str, Any]) -> FrameworkEntry:
    info = body["framework_info"]
    return FrameworkEntry(info["id"]["value"], str(info["name"]), info.get("hostname") or "")


def _task(body: dict[str, Any]) -> TaskEntry:
    statuses = body.get("statuses") or []
    running = [s for s in statuses if s.get("state") == RUNNING]
    running.sort(key=lambda s: s.get("timestamp") or 0.0)
    return TaskEntry(
        framework_id=body["framework_id"]["value"],
        task_id=body["task_id"]["value"],
        name=str(body.get("name") or ""),
        agent_id=body["agent_id"]["value"],
        state=body["state"],
        running_status=running[-1] if running else None,
        discovery=body.get("discovery"),
        ports=tuple(_ports(body.get("resources") or [])),
    )


def _ports(resources: Iterable[dict[str, Any]]) -> Iterator[int]:
    for resource in resources:
        if resource.get("name") != "ports":
            continue
        for span in (resource.get("ranges") or {}).get("range") or []:
            yield from range(int(span["begin"]), int(span["end"]) + 1)


def _discovery_ports(discovery: dict[str, Any]) -> list[dict[str, Any]]:
    ports = discovery.get("ports") or {}
    return (ports.get("ports") if isinstance(ports, dict) else ports) or []


def _labels(labels: Any) -> list[dict[str, Any]]:
    if isinstance(labels, dict):
        labels = labels.get("labels")
    return labels if isinstance(labels, list) else []


def _netinfo_addresses(status: dict[str, Any]) -> Iterator[str]:
    for network in (status.get("container_status") or {}).get("network_infos") or []:
        for address in network.get("ip_addresses") or []:
            if address.get("ip_address"):
                yield address["ip_address"]


def _pid_host(pid: str) -> str:
    """``agent@10.0.0.2:5051`` → ``10.0.0.2``."""
    _, _, address = pid.partition("@")
    host, _, _ = address.rpartition(":")
    return host.strip("[]")


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _address_record(name: str, address: str) -> Record:
    kind = RecordType.AAAA if ":" in address else RecordType.A
    return Record(name, kind, address)


def _hashed(task_id: str) -> str:
    """Five z-base-32 characters of the task id's SHA-1, as Mesos-DNS names tasks."""
    bits = int.from_bytes(hashlib.sha1(task_id.encode()).digest()[:4], "big") >> 7  # 25 bits
    return "".join(_ZBASE32[(bits >> shift) & 31] for shift in (20, 15, 10, 5, 0))


def _agent_tail(agent_id: str) -> str:
    """``…-S3`` → ``s3``."""
    return agent_id.rsplit("-", 1)[-1].lower()
