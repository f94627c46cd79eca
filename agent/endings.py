"""How the end of an executor run is reported: the final update of every task still open.

Plain functions of the run and of how its container ended. A command task ends as its
command did (TASK_FINISHED on exit 0, TASK_KILLED when a kill was asked, else TASK_FAILED
with the exit status or signal), reported as its executor's (SOURCE_EXECUTOR); the open tasks
of a custom executor fail (SOURCE_AGENT), since their executor is gone. An isolator's
limitation (memory, disk) names the reason.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass

from agent.executor_run import ExecutorRun, TaskRecord
from containerizer import ContainerTermination
from corral.task_states import Reason, Source, TaskState


@dataclass(frozen=True)
class Ending:
    """How a run ended: its container's termination (None: lost, or never started), a
    sentence, and the reason given to the tasks it fails."""

    termination: ContainerTermination | None
    message: str
    reason: Reason = Reason.REASON_EXECUTOR_TERMINATED


@dataclass(frozen=True)
class FinalUpdate:
    task: TaskRecord
    state: TaskState
    message: str
    reason: Reason | None
    source: Source


def final_updates(executor: ExecutorRun, ending: Ending) -> list[FinalUpdate]:
    """The updates that end every task of ``executor`` still open."""
    termination = ending.termination
    if executor.command_task:
        (task,) = executor.tasks.values()
        if task.state.is_terminal:
            return []
        state, text = _command_outcome(executor.lifecycle.killed, termination, ending.message)
        failed = state is TaskState.TASK_FAILED and termination is None
        limitation = limitation_of(termination) if state is TaskState.TASK_FAILED else None
        if limitation is not None:
            assert termination is not None
            text = f"{termination.message or limitation.name} ({text})"
        reason = limitation or (ending.reason if failed else None)
        return [FinalUpdate(task, state, text, reason, Source.SOURCE_EXECUTOR)]
    message, reason = ending.message, ending.reason
    limitation = limitation_of(termination)
    if limitation is not None:
        assert termination is not None
        message, reason = termination.message or message, limitation
    return [
        FinalUpdate(task, TaskState.TASK_FAILED, message, reason, Source.SOURCE_AGENT)
        for task in executor.open_tasks()
    ]


def exit_status(ending: Ending) -> int:
    """ExitedExecutor's status: the waitpid status, -1 when unknown."""
    termination = ending.termination
    if termination is None or termination.status is None:
        return -1
    return termination.status


def limitation_of(termination: ContainerTermination | None) -> Reason | None:
    """The task-state reason of a container an isolator ended (memory, disk), if so."""
    if termination is None or termination.reason is None:
        return None
    return Reason[termination.reason.value]


def _command_outcome(
    killed: bool, termination: ContainerTermination | None, lost: str
) -> tuple[TaskState, str]:
    """The command task's final state and message, from how its container ended."""
    if termination is None:
        return TaskState.TASK_FAILED, lost
    if termination.signal is not None:
        name = signal.Signals(termination.signal).name
        text = f"Command terminated with signal {name}"
    elif termination.exit_code is not None:
        text = f"Command exited with status {termination.exit_code}"
    else:
        text = "Command ended with an unknown status"
    if killed:
        return TaskState.TASK_KILLED, f"Task killed ({text})"
    if termination.exit_code == 0:
        return TaskState.TASK_FINISHED, text
    return TaskState.TASK_FAILED, text
