"""The ACCEPT decision: a framework's offers and operations in, launches and refusals out.

A pure function over the master's records (docs/flows.md, Frameworks 3). The offers are checked
first (they must exist, be the framework's, be named once and be on one agent); then each LAUNCH
task and each LAUNCH_GROUP in order: what the task says (``corral.task_validation``, the same
judgement the agent makes), a fresh id, the right agent, and room in what is left of the offers.
A task that passes takes its resources (and its executor's, for an executor new on the agent)
from the offers' part of the role that holds them; the rest goes back. Nothing here changes a
record: the caller applies the decision.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from corral.ids import AgentID, ExecutorID, FrameworkID, OfferID, TaskID
from corral.memo import BoundedMemo
from corral.protocol import ExecutorInfo, OperationType, TaskGroupInfo, TaskInfo
from corral.protocol.messages import AcceptOffers, RunTask, RunTaskGroup
from corral.resources import Resources
from corral.task_states import Reason, TaskState
from corral.task_validation import Refusal, group_problem, invalid_task, task_problem
from master.state import AgentRecord, FrameworkRecord, OfferRecord, TaskRecord

ExecutorKey = tuple[FrameworkID, ExecutorID]


@dataclass(slots=True)
class Launch:
    """One RunTask or RunTaskGroup for the agent, with the records of the tasks it starts and
    the executor it starts there first, if any (its key and allocated resources)."""

    message: RunTask | RunTaskGroup
    tasks: list[TaskRecord]
    new_executor: tuple[ExecutorKey, Resources] | None = None


@dataclass(slots=True)
class AcceptDecision:
    offers: list[OfferID]  # the framework's offers the call used up (valid or not)
    # Why the offers cannot be used (then nothing launches and each offer's resources go
    # back as they were, with no filter), or None.
    invalid_offers: Refusal | None = None
    agent_id: AgentID | None = None  # the offers' agent, when they are valid
    launches: list[Launch] = field(default_factory=list)
    # Each refused task, with the agent its status update names.
    refused: list[tuple[TaskID, AgentID, Refusal]] = field(default_factory=list)
    leftover: Resources = field(default_factory=Resources)  # back, with the call's filter


def invalid_offers(message: str) -> Refusal:
    return Refusal(TaskState.TASK_DROPPED, Reason.REASON_INVALID_OFFERS, message)


def validate_offers(
    framework_id: FrameworkID,
    offer_ids: Sequence[OfferID],
    offers: Mapping[OfferID, OfferRecord],
) -> Refusal | None:
    """The offers must exist, belong to the framework, appear once and share one agent."""
    if not offer_ids:
        return invalid_offers("the call names no offers; accept at least one offer")
    if len(set(offer_ids)) != len(offer_ids):
        twice = sorted({o for o in offer_ids if offer_ids.count(o) > 1})
        return invalid_offers(f"offers {', '.join(twice)} are listed more than once")
    for offer_id in offer_ids:
        record = offers.get(offer_id)
        if record is None:
            return invalid_offers(
                f"offer {offer_id} is no longer valid (unknown, already used, declined or "
                "rescinded); use offers received since, or revive to get new ones"
            )
        if record.offer.framework_id != framework_id:
            return invalid_offers(
                f"offer {offer_id} was made to another framework, not to {framework_id}"
            )
    agents = sorted({offers[offer_id].offer.agent_id for offer_id in offer_ids})
    if len(agents) > 1:
        return invalid_offers(
            f"the offers are on different agents ({', '.join(agents)}); accept the offers of "
            "one agent per call"
        )
    return None


def fit(needed: Resources, available: Resources) -> Resources | None:
    """``needed`` (as a framework sends it, usually without allocation info) allocated to
    the role of an offered part that contains it; ``None`` if no part does."""
    plain = needed.unallocated()
    for role, part in available.by_allocation_role().items():
        if part.unallocated().contains(plain):
            return plain.allocated_to(role) if role is not None else plain
    return None


def does_not_fit(what: str, needed: Resources, available: Resources) -> str:
    left = available.unallocated()
    return (
        f"{what} needs {needed.unallocated() or 'nothing'} but the offers have "
        f"{left or 'nothing'} left; ask for less or accept more offers of that agent"
    )


# Allocated forms already made, by (what a task asked for, role); bounded like the codec's.
_ALLOCATED: BoundedMemo[tuple[Resources, str | None], Resources] = BoundedMemo(4096)


def allocated(resources: Resources, role: str | None) -> Resources:
    """``resources`` as the allocator holds them for ``role`` (None: as they are).

    One value per distinct request: nearly every task of a framework asks for the same, and a
    master holding 100,000 tasks kept 100,000 equal copies (~340 bytes each) without this;
    sharing the value also shares its wire form (``Resources.to_wire``), built once.
    """
    key = (resources, role)
    found = _ALLOCATED.get(key)
    if found is None:
        plain = resources.unallocated()
        found = _ALLOCATED.put(key, plain.allocated_to(role) if role is not None else plain)
    return found


def decide_accept(
    framework: FrameworkRecord,
    message: AcceptOffers,
    offers: Mapping[OfferID, OfferRecord],
    agents: Mapping[AgentID, AgentRecord],
    task_known: Callable[[TaskID], bool],
    now: float,
) -> AcceptDecision:
    """What ``message`` (from ``framework``'s driver) launches, refuses and gives back."""
    mine = [
        offer_id
        for offer_id in dict.fromkeys(message.offer_ids)
        if (record := offers.get(offer_id)) is not None
        and record.offer.framework_id == framework.id
    ]
    decision = AcceptDecision(mine)
    refusal = validate_offers(framework.id, message.offer_ids, offers)
    if refusal is not None:
        decision.invalid_offers = refusal
        for operation in message.operations:
            decision.refused.extend(
                (task.task_id, task.agent_id, refusal) for task in operation.launched_tasks()
            )
        return decision
    agent = agents[offers[mine[0]].offer.agent_id]
    decision.agent_id = agent.id
    available = Resources()
    for offer_id in mine:
        available = available + offers[offer_id].offer.resources
    launching = _Launching(framework, agent, task_known, now, decision)
    for operation in message.operations:
        if operation.type is OperationType.LAUNCH:
            for task in operation.launched_tasks():
                available = launching.task(task, available)
        elif operation.type is OperationType.LAUNCH_GROUP:
            assert operation.launch_group is not None
            group = operation.launch_group
            available = launching.group(group.executor, group.task_group.tasks, available)
    decision.leftover = available
    return decision


class _Launching:
    """The tasks of one ACCEPT, in order: what each takes from what is left."""

    def __init__(
        self,
        framework: FrameworkRecord,
        agent: AgentRecord,
        task_known: Callable[[TaskID], bool],
        now: float,
        decision: AcceptDecision,
    ) -> None:
        self.framework = framework
        self.agent = agent
        self.task_known = task_known
        self.now = now
        self.decision = decision
        self.seen: set[TaskID] = set()  # task ids of this call so far
        # Executors this call starts on the agent: their allocated resources.
        self.executors: dict[ExecutorKey, Resources] = {}

    def _identity_problem(self, task: TaskInfo) -> str | None:
        """Checks that need the master's records: a fresh id, and the offers' agent."""
        if task.task_id in self.seen:
            return f"task id {task.task_id} appears more than once in this call"
        if self.task_known(task.task_id):
            return (
                f"task id {task.task_id} is already used by a task of framework "
                f"{self.framework.id}; task ids must be unique within a framework"
            )
        if task.agent_id != self.agent.id:
            return (
                f"task {task.task_id} names agent {task.agent_id} but the offers are on agent "
                f"{self.agent.id}"
            )
        return None

    def refuse(self, task: TaskInfo, refusal: Refusal) -> None:
        self.decision.refused.append((task.task_id, self.agent.id, refusal))

    def _executor_resources(self, key: ExecutorKey) -> Resources | None:
        """The allocated resources of an executor already on the agent (None: a new one)."""
        known = self.agent.executors.get(key)
        return known if known is not None else self.executors.get(key)

    def _record(self, task: TaskInfo, resources: Resources, executor_id: ExecutorID | None):
        return TaskRecord(
            task.task_id,
            self.framework.id,
            self.agent.id,
            task.name,
            TaskState.TASK_STAGING,
            resources,
            executor_id,
            launched_at=self.now,
            discovery=task.discovery,
        )

    def task(self, task: TaskInfo, available: Resources) -> Resources:
        """One LAUNCH task; returns what is left of ``available``."""
        framework = self.framework
        problem = self._identity_problem(task) or task_problem(task, framework.id)
        self.seen.add(task.task_id)
        if problem is not None:
            self.refuse(task, invalid_task(problem))
            return available
        executor = task.executor
        key = (framework.id, executor.executor_id) if executor is not None else None
        held = self._executor_resources(key) if key is not None else None
        needed = task.resources
        if executor is not None and held is None:
            needed = needed + executor.resources
        taken = fit(needed, available)
        if taken is None:
            self.refuse(task, invalid_task(does_not_fit(f"task {task.task_id}", needed, available)))
            return available
        role = min(taken.allocation_roles(), default=None)
        resources = allocated(task.resources, role)
        new_executor = None
        if executor is not None:
            assert key is not None
            if held is None:
                held = self.executors[key] = allocated(executor.resources, role)
                new_executor = (key, held)
            executor = replace(executor, framework_id=framework.id, resources=held)
        sent = replace(task, resources=resources, executor=executor)
        record = self._record(task, resources, executor.executor_id if executor else None)
        message = RunTask(framework.info, sent, pid=framework.pid)
        self.decision.launches.append(Launch(message, [record], new_executor))
        return available - taken

    def group(
        self, executor: ExecutorInfo, tasks: Sequence[TaskInfo], available: Resources
    ) -> Resources:
        """One LAUNCH_GROUP: all its tasks, under the group's executor, or none."""
        framework = self.framework
        executor = replace(executor, framework_id=framework.id)
        problem = None
        for task in tasks:
            problem = problem or self._identity_problem(task)
            self.seen.add(task.task_id)
        problem = problem or group_problem(executor, tasks, framework.id)
        key = (framework.id, executor.executor_id)
        held = self._executor_resources(key)
        needed = Resources()
        for task in tasks:
            needed = needed + task.resources
        if held is None:
            needed = needed + executor.resources
        taken = fit(needed, available) if problem is None else None
        if problem is None and taken is None:
            problem = does_not_fit("the task group", needed, available)
        if problem is not None or taken is None:
            refusal = invalid_task(problem or "", Reason.REASON_TASK_GROUP_INVALID)
            for task in tasks:
                self.refuse(task, refusal)
            return available
        role = min(taken.allocation_roles(), default=None)
        new_executor = None
        if held is None:
            held = self.executors[key] = allocated(executor.resources, role)
            new_executor = (key, held)
        executor = replace(executor, resources=held)
        sent, records = [], []
        for task in tasks:
            resources = allocated(task.resources, role)
            sent.append(replace(task, resources=resources))
            records.append(self._record(task, resources, executor.executor_id))
        message = RunTaskGroup(framework.info, executor, TaskGroupInfo(tuple(sent)))
        self.decision.launches.append(Launch(message, records, new_executor))
        return available - taken
