"""Recovery, as Mesos's agent with ``--recover=reconnect``: what a restarted agent finds again.

The agent checkpoints (agent/checkpoint.py) its id, and for frameworks with ``checkpoint:
true`` their executors, tasks and status-update streams; the containerizer records each
container's pid and exit status. A restarted agent (after SIGKILL, a crash or a clean stop)
reads them before it registers (``read``), asks its containerizer to find the containers
again, and learns for each executor run what became of its container (``outcome``): it
still runs (watched again; a custom executor is asked to reconnect), it ended while the agent
was down (reported with its real exit status), or it is gone. Containers nobody owns any
more (frameworks without checkpointing) are orphans, destroyed by the agent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import structlog

from agent.checkpoint import AgentCheckpoints
from agent.executor_lifecycle import EndedWhileDown, Event, Found, NotFound
from agent.executor_run import ExecutorRun
from agent.framework_run import FrameworkRun
from containerizer import ContainerState, ContainerTermination, RecoveryResult
from corral.ids import AgentID, FrameworkID
from corral.protocol import AgentInfo, ProtocolError
from corral.task_states import TaskState

log = structlog.get_logger("agent.recovery")


@dataclass
class Checkpointed:
    """What the meta directory held."""

    agent: AgentInfo | None = None
    frameworks: dict[FrameworkID, FrameworkRun] = field(default_factory=dict)
    streams: list[dict[str, Any]] = field(default_factory=list)  # status-update stream records

    @property
    def agent_id(self) -> AgentID | None:
        return None if self.agent is None else self.agent.id

    def executors(self) -> list[ExecutorRun]:
        return [e for framework in self.frameworks.values() for e in framework.executors.values()]

    def containers(self) -> list[ContainerState]:
        """The containers the checkpoints know, for the containerizer to find again."""
        return [e.container for e in self.executors() if e.container is not None]


def read(checkpoints: AgentCheckpoints) -> Checkpointed:
    """Read the checkpoints back; what cannot be read is logged and left out."""
    state = checkpoints.recover()
    found = Checkpointed(agent=state.agent)
    for framework_id, checkpoint in state.frameworks.items():
        framework = FrameworkRun(framework_id, checkpoint.info, checkpoint.pid)
        found.frameworks[framework_id] = framework
        for executor_id, record in checkpoint.executors.items():
            try:
                executor = ExecutorRun.from_record(framework_id, record)
            except (KeyError, TypeError, ValueError, ProtocolError) as error:
                log.warning(
                    "checkpoint_executor_unreadable", executor_id=executor_id, error=repr(error)
                )
                continue
            framework.executors[executor.executor_id] = executor
        for task_id, record in checkpoint.streams.items():
            if not isinstance(record.get("stream"), dict):
                log.warning("checkpoint_stream_unreadable", task_id=task_id)
                continue
            found.streams.append(record["stream"])
            # A stream is written on every update; the executor's record is not: the
            # stream's state is the task's latest.
            state_name = str(record.get("state", ""))
            executor = framework.executor_of(task_id)
            if executor is not None and state_name in TaskState.__members__:
                executor.tasks[task_id].state = TaskState[state_name]
    return found


@dataclass(frozen=True)
class Outcome:
    """What became of one executor run's container while the agent was down."""

    event: Event
    termination: ContainerTermination | None = None
    how: str = ""  # how it ended, for the tasks' final updates


def outcome(executor: ExecutorRun, result: RecoveryResult) -> Outcome:
    container_id = executor.container_id
    if container_id in result.running:
        return Outcome(Found())
    if container_id in result.ended:
        termination = result.ended[container_id]
        how = f"the executor {termination.describe()} (while the agent was down)"
        return Outcome(EndedWhileDown(), termination, how)
    return Outcome(
        NotFound(), None, "the executor's container was not found when the agent recovered"
    )
