"""The master's bookkeeping of agents, frameworks, offers and tasks: plain records, no I/O.

``MasterState`` keeps the indexes consistent (a task is listed under its framework and its
agent; an offer under both); the actor decides what to send. Tasks are indexed by
``(framework_id, task_id)`` whether or not the framework is registered yet: an agent that
re-registers after a master failover reports tasks of frameworks that have not come back.
Those frameworks are kept in ``recovered_frameworks`` (their ``FrameworkInfo`` as the agent
reported it) until they re-register or are removed.

It is also the read model the HTTP surfaces (master/operator_api.py, master/mesos_state.py)
and the metrics read: they read it, and change it only through the master's commands.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from corral.ids import AgentID, ExecutorID, FrameworkID, OfferID, TaskID
from corral.protocol import AgentInfo, DiscoveryInfo, FrameworkInfo, Offer, Task, TaskStatus
from corral.resources import Resources
from corral.task_states import TaskState, is_terminal
from master.allocator.quota import Quota

TaskKey = tuple[FrameworkID, TaskID]
ExecutorKey = tuple[FrameworkID, ExecutorID]
COMPLETED_TASKS_KEPT = 1000  # terminal tasks remembered per framework (state, reconcile)


class Executors(dict[ExecutorKey, Resources]):
    """An agent's executors, ``(framework, executor) -> resources``, that also knows each
    framework's executor ids: every offer lists them, and an agent may run hundreds of
    executors, so they are not found by scanning. Change it by ``[key] =``, ``del`` and
    ``pop`` only: they keep the index (``update``, ``setdefault``... would not)."""

    __slots__ = ("_by_framework",)

    def __init__(self) -> None:
        super().__init__()
        self._by_framework: dict[FrameworkID, set[ExecutorID]] = {}

    def __setitem__(self, key: ExecutorKey, resources: Resources) -> None:
        super().__setitem__(key, resources)
        self._by_framework.setdefault(key[0], set()).add(key[1])

    def __delitem__(self, key: ExecutorKey) -> None:
        super().__delitem__(key)
        self._forget(key)

    def pop(self, key: ExecutorKey, *default: Resources | None) -> Resources | None:  # type: ignore[override]
        if key in self:
            self._forget(key)
        return super().pop(key, *default)

    def _forget(self, key: ExecutorKey) -> None:
        ids = self._by_framework[key[0]]
        ids.discard(key[1])
        if not ids:
            del self._by_framework[key[0]]

    def of_framework(self, framework_id: FrameworkID) -> tuple[ExecutorID, ...]:
        """The framework's executor ids on the agent, sorted (as offers list them)."""
        return tuple(sorted(self._by_framework.get(framework_id, ())))


@dataclass(slots=True)
class AgentRecord:
    info: AgentInfo  # with its id set
    pid: str
    version: str = ""
    # False from the moment the link to the agent's pid breaks until it re-registers; a
    # disconnected agent gets no offers (it is deactivated in the allocator).
    connected: bool = True
    # Unreachable, but waiting for the agent removal rate limit; a pong cancels it.
    pending_removal: bool = False
    # Invariant: missed_pings counts pings sent since the last pong, minus the one in flight.
    awaiting_pong: bool = False
    missed_pings: int = 0
    tasks: set[TaskKey] = field(default_factory=set)
    offers: set[OfferID] = field(default_factory=set)
    # Executors launched with tasks: (framework, executor) -> their resources (allocated).
    executors: Executors = field(default_factory=Executors)
    # Invariant: the generation of the allocator's view of this agent, new with every
    # AddAgent the master sends (never reused); an allocation of another is stale (OfferBook).
    generation: int = 0
    # The resources of the agent's last offer: an equal allocation reuses this value, whose
    # wire form is then built once (an idle agent is offered the same thing every cycle).
    offered: Resources | None = None

    @property
    def id(self) -> AgentID:
        assert self.info.id is not None
        return self.info.id


@dataclass(slots=True)
class FrameworkRecord:
    id: FrameworkID
    info: FrameworkInfo  # with its id set
    pid: str
    roles: tuple[str, ...]
    active: bool = True
    connected: bool = True
    offers: set[OfferID] = field(default_factory=set)
    completed: deque[TaskRecord] = field(default_factory=lambda: deque(maxlen=COMPLETED_TASKS_KEPT))


@dataclass(slots=True)
class TaskRecord:
    task_id: TaskID
    framework_id: FrameworkID
    agent_id: AgentID
    name: str
    state: TaskState
    resources: Resources  # allocated form: what the allocator holds for the task
    executor_id: ExecutorID | None = None
    status: TaskStatus | None = None  # the latest update (None until the first one)
    # Runtime-clock time the master sent RunTask; None for tasks learned from an agent.
    launched_at: float | None = None
    discovery: DiscoveryInfo | None = None  # the TaskInfo's, shown in v1 Task (service names)

    def to_task(self) -> Task:
        return Task(
            name=self.name,
            task_id=self.task_id,
            framework_id=self.framework_id,
            agent_id=self.agent_id,
            state=self.state,
            executor_id=self.executor_id,
            resources=self.resources,
            statuses=(self.status,) if self.status else (),
            discovery=self.discovery,
        )


@dataclass(slots=True)
class OfferRecord:
    offer: Offer

    @property
    def id(self) -> OfferID:
        return self.offer.id


def roles_of(info: FrameworkInfo) -> tuple[str, ...]:
    """A framework's roles: ``roles``, else ``role``, else ``*`` (docs/flows.md)."""
    if info.roles:
        return tuple(info.roles)
    return (info.role,) if info.role else ("*",)


class MasterState:
    """Agents, frameworks, offers and tasks, with their cross-indexes kept consistent."""

    def __init__(self) -> None:
        self.agents: dict[AgentID, AgentRecord] = {}
        self.unreachable: dict[AgentID, AgentInfo] = {}  # agents that stopped answering
        # The tasks an unreachable agent had (some may have ended since; see unreachable_tasks).
        self._unreachable_tasks: dict[AgentID, set[TaskKey]] = {}
        self.frameworks: dict[FrameworkID, FrameworkRecord] = {}
        self.removed_frameworks: set[FrameworkID] = set()  # torn down: ids refused
        # Frameworks known only from agents' re-registrations (after a master failover), not
        # registered with this master yet. Invariant: no id is both here and in frameworks.
        self.recovered_frameworks: dict[FrameworkID, FrameworkInfo] = {}
        # Tasks agents reported ended, of frameworks not registered (yet): theirs once back.
        self._early_completed: dict[FrameworkID, list[TaskRecord]] = {}
        self.offers: dict[OfferID, OfferRecord] = {}
        # Invariant: every task is listed in its agent's ``tasks`` while the agent is known
        # (reachable or not), and in ``framework_tasks`` under its framework id.
        self.tasks: dict[TaskKey, TaskRecord] = {}
        self.framework_tasks: dict[FrameworkID, set[TaskID]] = {}
        self._agents_by_pid: dict[str, AgentID] = {}
        # Agents the registry lists as admitted that have not re-registered since the master
        # started (their tasks may yet be reported: reconciliation waits for them).
        self.recovering: dict[AgentID, AgentInfo] = {}
        # An operator's settings, kept in the registry too (they outlive a master restart).
        self.weights: dict[str, float] = {}
        self.quotas: dict[str, Quota] = {}
        self.deactivated: set[AgentID] = set()  # agents an operator deactivated (no offers)

    # -- agents -----------------------------------------------------------------------

    def add_agent(self, record: AgentRecord) -> None:
        self.unreachable.pop(record.id, None)
        self._unreachable_tasks.pop(record.id, None)
        self.agents[record.id] = record
        self._agents_by_pid[record.pid] = record.id

    def agent_by_pid(self, pid: str | None) -> AgentRecord | None:
        agent_id = self._agents_by_pid.get(pid) if pid else None
        return self.agents.get(agent_id) if agent_id else None

    def set_agent_pid(self, agent: AgentRecord, pid: str) -> None:
        self._agents_by_pid.pop(agent.pid, None)
        agent.pid = pid
        self._agents_by_pid[pid] = agent.id

    def remove_agent(self, agent_id: AgentID, unreachable: bool) -> AgentRecord:
        """Forget the agent (its offers too); its tasks stay for the caller to settle."""
        agent = self.agents.pop(agent_id)
        self._agents_by_pid.pop(agent.pid, None)
        for offer_id in list(agent.offers):
            self.remove_offer(offer_id)
        if unreachable:
            self.unreachable[agent_id] = agent.info
            self._unreachable_tasks[agent_id] = agent.tasks
        return agent

    def add_unreachable(self, info: AgentInfo) -> None:
        """An agent the registry lists as unreachable (after a master restart), tasks unknown."""
        assert info.id is not None
        if info.id not in self.agents:
            self.unreachable[info.id] = info
            self._unreachable_tasks.setdefault(info.id, set())

    def remove_unreachable(self, agent_id: AgentID) -> list[TaskRecord]:
        """Forget an unreachable agent (it is gone for good); returns the tasks still kept."""
        tasks = self.unreachable_tasks(agent_id)
        self.unreachable.pop(agent_id, None)
        self._unreachable_tasks.pop(agent_id, None)
        return tasks

    def unreachable_tasks(self, agent_id: AgentID) -> list[TaskRecord]:
        """The tasks still kept for an unreachable agent (not ended since it went)."""
        keys = self._unreachable_tasks.get(agent_id, ())
        return [self.tasks[key] for key in sorted(keys) if key in self.tasks]

    # -- frameworks ---------------------------------------------------------------------

    def add_framework(self, record: FrameworkRecord) -> None:
        self.recovered_frameworks.pop(record.id, None)
        self.frameworks[record.id] = record
        self.framework_tasks.setdefault(record.id, set())
        record.completed.extend(self._early_completed.pop(record.id, ()))

    def frameworks_by_pid(self, pid: str) -> list[FrameworkRecord]:
        return [framework for framework in self.frameworks.values() if framework.pid == pid]

    def remove_framework(self, framework_id: FrameworkID) -> list[TaskRecord]:
        """Forget the framework, its offers and its tasks; returns the tasks it had."""
        framework = self.frameworks.pop(framework_id)
        for offer_id in list(framework.offers):
            self.remove_offer(offer_id)
        tasks = [self.tasks[(framework_id, task_id)] for task_id in self.tasks_of(framework_id)]
        for task in tasks:
            self.remove_task(task)
        self.framework_tasks.pop(framework_id, None)
        self.removed_frameworks.add(framework_id)
        return tasks

    def remove_recovered_framework(self, framework_id: FrameworkID) -> list[TaskRecord]:
        """Forget a framework known only from agents (it never came back); its ids refused."""
        self.recovered_frameworks.pop(framework_id, None)
        self._early_completed.pop(framework_id, None)
        tasks = [self.tasks[(framework_id, task_id)] for task_id in self.tasks_of(framework_id)]
        for task in tasks:
            self.remove_task(task)
        self.framework_tasks.pop(framework_id, None)
        self.removed_frameworks.add(framework_id)
        return tasks

    def framework_info(self, framework_id: FrameworkID) -> FrameworkInfo | None:
        """The framework's info, registered or known only from an agent's report."""
        framework = self.frameworks.get(framework_id)
        return framework.info if framework else self.recovered_frameworks.get(framework_id)

    def tasks_of(self, framework_id: FrameworkID) -> list[TaskID]:
        return sorted(self.framework_tasks.get(framework_id, ()))

    # -- offers ---------------------------------------------------------------------------

    def add_offer(self, record: OfferRecord) -> None:
        offer = record.offer
        self.offers[offer.id] = record
        self.frameworks[offer.framework_id].offers.add(offer.id)
        self.agents[offer.agent_id].offers.add(offer.id)

    def remove_offer(self, offer_id: OfferID) -> OfferRecord | None:
        record = self.offers.pop(offer_id, None)
        if record is None:
            return None
        offer = record.offer
        framework = self.frameworks.get(offer.framework_id)
        if framework is not None:
            framework.offers.discard(offer_id)
        agent = self.agents.get(offer.agent_id)
        if agent is not None:
            agent.offers.discard(offer_id)
        return record

    # -- tasks ----------------------------------------------------------------------------

    def add_task(self, task: TaskRecord) -> None:
        key = (task.framework_id, task.task_id)
        self.tasks[key] = task
        self.framework_tasks.setdefault(task.framework_id, set()).add(task.task_id)
        agent = self.agents.get(task.agent_id)
        if agent is not None:
            agent.tasks.add(key)

    def task(self, framework_id: FrameworkID, task_id: TaskID) -> TaskRecord | None:
        return self.tasks.get((framework_id, task_id))

    def completed_task(self, framework_id: FrameworkID, task_id: TaskID) -> TaskRecord | None:
        framework = self.frameworks.get(framework_id)
        completed = framework.completed if framework else self._early_completed.get(framework_id)
        for task in reversed(completed or ()):
            if task.task_id == task_id:
                return task
        return None

    def add_completed(self, task: TaskRecord) -> None:
        """A task known only as ended (reported so by a re-registering agent)."""
        framework = self.frameworks.get(task.framework_id)
        if framework is not None:
            framework.completed.append(task)
        elif task.framework_id not in self.removed_frameworks:
            early = self._early_completed.setdefault(task.framework_id, [])
            early.append(task)
            del early[:-COMPLETED_TASKS_KEPT]

    def forget_completed(self, framework_id: FrameworkID, task_id: TaskID) -> None:
        """A task reported lost that came back with its agent is not completed any more."""
        framework = self.frameworks.get(framework_id)
        if framework is None or not any(t.task_id == task_id for t in framework.completed):
            return
        kept = [task for task in framework.completed if task.task_id != task_id]
        framework.completed = deque(kept, maxlen=COMPLETED_TASKS_KEPT)

    def remove_task(self, task: TaskRecord) -> None:
        key = (task.framework_id, task.task_id)
        self.tasks.pop(key, None)
        ids = self.framework_tasks.get(task.framework_id)
        if ids is not None:
            ids.discard(task.task_id)
        agent = self.agents.get(task.agent_id)
        if agent is not None:
            agent.tasks.discard(key)

    def update_task(self, task: TaskRecord, status: TaskStatus) -> bool:
        """Apply a status update; True when it ends the task (it moves to completed)."""
        was_terminal = is_terminal(task.state)
        task.state = status.state
        task.status = status
        if was_terminal or not is_terminal(status.state):
            return False
        self.remove_task(task)
        framework = self.frameworks.get(task.framework_id)
        if framework is not None:
            framework.completed.append(task)
        return True

    def is_transitioning(self, agent_id: AgentID | None) -> bool:
        """Whether a task unknown to the master may yet be reported by an agent: its agent (or,
        when none is named, any agent) is in the registry and has not re-registered since the
        master started. Mesos answers nothing then, rather than a wrong TASK_LOST."""
        if agent_id is None:
            return any(a not in self.agents for a in self.recovering)
        return agent_id in self.recovering and agent_id not in self.agents

    def tasks_on(self, agent: AgentRecord) -> list[TaskRecord]:
        return [self.tasks[key] for key in sorted(agent.tasks)]

    def used_by_framework(self, agent: AgentRecord) -> dict[FrameworkID, Resources]:
        """What each framework's live tasks and executors hold on the agent (allocated form):
        exactly what the allocator must count as used there."""
        used: dict[FrameworkID, Resources] = {}
        for key in agent.tasks:
            task = self.tasks[key]
            used[task.framework_id] = used.get(task.framework_id, Resources()) + task.resources
        for (framework_id, _), resources in agent.executors.items():
            used[framework_id] = used.get(framework_id, Resources()) + resources
        return {framework_id: held for framework_id, held in used.items() if held}

    def used_on(self, agent: AgentRecord) -> Resources:
        """What the agent's live tasks and executors hold (allocated form)."""
        used = Resources()
        for key in agent.tasks:
            used = used + self.tasks[key].resources
        for resources in agent.executors.values():
            used = used + resources
        return used
