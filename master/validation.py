"""Validation of a framework's ACCEPT: offers, then each task, each failure with a reason.

Pure functions over the master's records: they return what is wrong (a sentence for the
framework, saying what was expected, what was found and what to do), or ``None``. The master
turns a refusal into TASK_DROPPED / TASK_ERROR status updates (docs/flows.md, Frameworks 3).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from corral.ids import AgentID, FrameworkID, OfferID, TaskID
from corral.protocol import ExecutorInfo, TaskInfo
from corral.resources import Resources
from corral.task_states import Reason, TaskState
from master.state import OfferRecord


@dataclass(frozen=True)
class Refusal:
    """Why the tasks of an operation are not launched, as their status update says it."""

    state: TaskState
    reason: Reason
    message: str


def invalid_offers(message: str) -> Refusal:
    return Refusal(TaskState.TASK_DROPPED, Reason.REASON_INVALID_OFFERS, message)


def invalid_task(message: str, reason: Reason = Reason.REASON_TASK_INVALID) -> Refusal:
    return Refusal(TaskState.TASK_ERROR, reason, message)


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


def validate_task(
    task: TaskInfo,
    framework_id: FrameworkID,
    agent_id: AgentID,
    seen: set[TaskID],
    is_known: Callable[[TaskID], bool],
) -> Refusal | None:
    """Shape and identity of one task: command xor executor, right agent, a fresh id."""
    if task.command is None and task.executor is None:
        return invalid_task(
            f"task {task.task_id} has neither 'command' nor 'executor'; give exactly one"
        )
    if task.command is not None and task.executor is not None:
        return invalid_task(
            f"task {task.task_id} has both 'command' and 'executor'; give exactly one"
        )
    if task.task_id in seen:
        return invalid_task(f"task id {task.task_id} appears more than once in this call")
    if is_known(task.task_id):
        return invalid_task(
            f"task id {task.task_id} is already used by a task of framework {framework_id}; "
            "task ids must be unique within a framework"
        )
    if task.agent_id != agent_id:
        return invalid_task(
            f"task {task.task_id} names agent {task.agent_id} but the offers are on agent "
            f"{agent_id}"
        )
    if task.executor is not None:
        problem = _executor_problem(task.executor, framework_id)
        if problem:
            return invalid_task(f"task {task.task_id}: {problem}")
    if not task.resources:
        return invalid_task(f"task {task.task_id} uses no resources; give it some (cpus, mem)")
    return None


def _executor_problem(executor: ExecutorInfo, framework_id: FrameworkID) -> str | None:
    if executor.framework_id is not None and executor.framework_id != framework_id:
        return (
            f"executor {executor.executor_id} names framework {executor.framework_id}, "
            f"not {framework_id}"
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


def does_not_fit(what: str, needed: Resources, available: Resources) -> Refusal:
    left = available.unallocated()
    return invalid_task(
        f"{what} needs {needed.unallocated() or 'nothing'} but the offers have "
        f"{left or 'nothing'} left; ask for less or accept more offers of that agent"
    )
