"""The master's tasks: their records, status updates, kills, reconciliation, and the updates
the master makes itself.

A sans-IO core over ``MasterState``: each method takes one event and writes what follows
into the ``Outbox`` (status updates to frameworks, kills to agents, resources back to the
allocator). The rules, as Mesos's master applies them (docs/flows.md):

- An agent's update is applied only if it comes from the agent the task runs on, while that
  agent is connected; a terminal one moves the task to its framework's completed tasks and
  frees its resources. It is forwarded to the framework (with the agent's pid) if connected.
- The master's own updates (``settle``) carry no uuid, so nobody acknowledges them; a
  framework that is not PARTITION_AWARE hears TASK_LOST where an aware one hears the finer
  state (TASK_UNREACHABLE, TASK_GONE, TASK_DROPPED...).
- A kill or reconciliation about a task the master does not know, while agents have yet to
  re-register after a master restart, is not answered: the task may yet be reported.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import structlog

from corral.ids import AgentID, ExecutorID, FrameworkID, TaskID
from corral.protocol import FrameworkCapabilityType, Task, TaskStatus
from corral.protocol.messages import (
    ExecutorLost,
    ExecutorToFramework,
    ExitedExecutor,
    KillTask,
    Message,
    ReconcileTasks,
    StatusUpdate,
)
from corral.resources import Resources
from corral.task_states import Reason, Source, TaskState, is_terminal
from corral.task_validation import Refusal
from master.allocator.events import RecoverResources
from master.observer import Observer
from master.outbox import Outbox
from master.state import AgentRecord, FrameworkRecord, MasterState, TaskRecord

log = structlog.get_logger("master")

PARTITION_AWARE = FrameworkCapabilityType.PARTITION_AWARE


class TaskBook:
    """Task records and their updates; see the module docstring."""

    def __init__(
        self,
        state: MasterState,
        out: Outbox,
        observer: Observer,
        wall: Callable[[], float],
    ) -> None:
        self.state = state
        self.out = out
        self.observer = observer
        self.wall = wall  # timestamps of the master's own updates (the wall clock)

    # -- the master's own updates -------------------------------------------------------------

    def status(
        self,
        task_id: TaskID,
        state: TaskState,
        reason: Reason,
        message: str,
        agent_id: AgentID | None,
        executor_id: ExecutorID | None = None,
    ) -> TaskStatus:
        """A status update the master makes itself: no uuid, so it needs no acknowledgement."""
        return TaskStatus(
            task_id=task_id,
            state=state,
            message=message,
            source=Source.SOURCE_MASTER,
            reason=reason,
            agent_id=agent_id,
            executor_id=executor_id,
            timestamp=self.wall(),
        )

    def tell(self, framework_id: FrameworkID, status: TaskStatus) -> None:
        """Send the framework a status update, if its scheduler is connected."""
        framework = self.state.frameworks.get(framework_id)
        if framework is not None and framework.connected:
            self.out.send(framework.pid, StatusUpdate(framework_id, status))

    def settle(self, task: TaskRecord, aware_state: TaskState, reason: Reason, why: str) -> None:
        """End (or, for TASK_UNREACHABLE, suspend) a task by the master's own update:
        ``aware_state`` for PARTITION_AWARE frameworks, TASK_LOST for the others. The caller
        frees the task's resources in the allocator where they are still counted."""
        info = self.state.framework_info(task.framework_id)
        aware = info is not None and info.has_capability(PARTITION_AWARE)
        state = aware_state if aware else TaskState.TASK_LOST
        status = self.status(task.task_id, state, reason, why, task.agent_id, task.executor_id)
        if is_terminal(state):
            self._end(task, status)
        else:
            task.state = state
            task.status = status
            self.observer.task_updated(task, status, False)
        log.info(
            "task_settled",
            framework_id=task.framework_id,
            task_id=task.task_id,
            agent_id=task.agent_id,
            state=state.value,
            reason=reason.value,
        )
        self.tell(task.framework_id, status)

    def gone(self, task: TaskRecord) -> None:
        """A task the master kept (its agent unreachable) that the re-registered agent no
        longer runs: TASK_GONE, whatever the framework's capabilities."""
        status = self.status(
            task.task_id,
            TaskState.TASK_GONE,
            Reason.REASON_AGENT_REREGISTERED,
            f"agent {task.agent_id} re-registered without this task",
            task.agent_id,
        )
        self._end(task, status)
        self.tell(task.framework_id, status)

    def end_reported(self, task: TaskRecord, reported: Task) -> None:
        """A live task its re-registering agent reports ended: it ends as the agent says."""
        status = reported.statuses[-1] if reported.statuses else None
        status = status or TaskStatus(task.task_id, reported.state, agent_id=task.agent_id)
        self._end(task, status)
        log.info(
            "reported_task_ended",
            framework_id=task.framework_id,
            task_id=task.task_id,
            agent_id=task.agent_id,
            state=reported.state.value,
        )

    def _end(self, task: TaskRecord, status: TaskStatus) -> None:
        ended = self.state.update_task(task, status)
        if not ended:
            self.state.remove_task(task)
        self.observer.task_updated(task, status, ended)

    def refuse(
        self, framework: FrameworkRecord, task_id: TaskID, agent_id: AgentID, refusal: Refusal
    ) -> None:
        """A task the master does not launch: TASK_ERROR / TASK_DROPPED with the reason."""
        status = self.status(task_id, refusal.state, refusal.reason, refusal.message, agent_id)
        log.info(
            "task_refused",
            framework_id=framework.id,
            task_id=task_id,
            state=refusal.state.value,
            reason=refusal.message,
        )
        self.observer.tasks_refused(1)
        self.tell(framework.id, status)

    # -- records ------------------------------------------------------------------------

    def add(self, task: TaskRecord) -> None:
        self.state.add_task(task)
        self.observer.task_added(task)

    # -- from agents --------------------------------------------------------------------

    def update(self, agent: AgentRecord | None, sender: str | None, message: StatusUpdate) -> None:
        """A status update from ``agent`` (the registered agent ``sender`` is, if any)."""
        status = message.status
        if agent is None:
            log.warning(
                "status_update_dropped",
                sender=sender,
                task_id=status.task_id,
                reason="not from a registered agent",
            )
            return
        if not agent.connected:
            log.warning(
                "status_update_dropped",
                agent_id=agent.id,
                task_id=status.task_id,
                reason="the agent is disconnected; it resends after re-registering",
            )
            return
        framework = self.state.frameworks.get(message.framework_id)
        if framework is None:
            log.warning(
                "status_update_dropped",
                agent_id=agent.id,
                task_id=status.task_id,
                framework_id=message.framework_id,
                reason="unknown framework",
            )
            return
        task = self.state.task(framework.id, status.task_id)
        if task is None:
            log.info(
                "status_update_for_unknown_task",
                agent_id=agent.id,
                framework_id=framework.id,
                task_id=status.task_id,
            )
        elif task.agent_id != agent.id:
            log.warning(
                "status_update_dropped",
                agent_id=agent.id,
                task_id=status.task_id,
                reason=f"the task runs on agent {task.agent_id}",
            )
            return
        else:
            ended = self.state.update_task(task, status)
            if ended:
                self.out.allocate(RecoverResources(framework.id, agent.id, task.resources))
            self.observer.task_updated(task, status, ended)
        log.debug(
            "status_update",
            framework_id=framework.id,
            task_id=status.task_id,
            state=status.state.value,
            agent_id=agent.id,
        )
        if framework.connected:
            forwarded = message if message.pid else replace(message, pid=agent.pid)
            self.out.send(framework.pid, forwarded)

    def executor_exited(self, agent: AgentRecord, message: ExitedExecutor) -> None:
        """A custom executor ended: its resources go back and its framework is told."""
        resources = agent.executors.pop((message.framework_id, message.executor_id), None)
        if resources:
            self.out.allocate(RecoverResources(message.framework_id, agent.id, resources))
        framework = self.state.frameworks.get(message.framework_id)
        if framework is not None and framework.connected:
            self.out.send(
                framework.pid,
                ExecutorLost(message.framework_id, message.executor_id, agent.id, message.status),
            )
        log.info(
            "executor_exited",
            agent_id=agent.id,
            framework_id=message.framework_id,
            executor_id=message.executor_id,
            status=message.status,
        )

    # -- from frameworks ----------------------------------------------------------------

    def kill(self, framework: FrameworkRecord, message: KillTask) -> None:
        """Pass a kill on to the task's agent; answer for a task the master does not know."""
        task = self.state.task(framework.id, message.task_id)
        if task is None and self.state.is_transitioning(message.agent_id):
            # Its agent may yet report it (after a master restart): saying LOST now could be
            # wrong, so nothing is said, as Mesos does; the framework kills or reconciles again.
            log.info(
                "kill_deferred",
                framework_id=framework.id,
                task_id=message.task_id,
                reason="unknown task while agents have yet to re-register",
            )
            return
        if task is None:
            status = self.status(
                message.task_id,
                TaskState.TASK_LOST,
                Reason.REASON_TASK_UNKNOWN,
                f"task {message.task_id} is unknown to the master; nothing to kill",
                message.agent_id,
            )
            self.out.send(framework.pid, StatusUpdate(framework.id, status))
            return
        agent = self.state.agents.get(task.agent_id)
        if agent is None:
            log.info(
                "kill_deferred",
                framework_id=framework.id,
                task_id=task.task_id,
                reason=f"agent {task.agent_id} is unreachable",
            )
            return
        self.out.send(agent.pid, replace(message, agent_id=agent.id))
        log.info(
            "task_kill_sent", framework_id=framework.id, task_id=task.task_id, agent_id=agent.id
        )

    def to_agent(
        self, framework: FrameworkRecord, message: Message, agent_id: AgentID | None, call: str
    ) -> None:
        """Pass a framework's call (an acknowledgement, a message for an executor, an executor
        shutdown) on to the agent it names, if that agent is registered here."""
        agent = self.state.agents.get(agent_id) if agent_id else None
        if agent is None:
            log.info(
                f"{call}_dropped",
                framework_id=framework.id,
                agent_id=agent_id,
                reason="unknown or unreachable agent",
            )
            return
        self.out.send(agent.pid, message)

    def to_framework(
        self, agent: AgentRecord | None, sender: str | None, message: ExecutorToFramework
    ) -> None:
        """Pass an executor's message on to its framework's scheduler, if connected."""
        framework = self.state.frameworks.get(message.framework_id)
        if agent is None or framework is None or not framework.connected:
            log.info(
                "executor_message_dropped",
                sender=sender,
                framework_id=message.framework_id,
                reason="unknown agent, or framework unknown or disconnected",
            )
            return
        self.out.send(framework.pid, message)

    def reconcile(self, framework: FrameworkRecord, message: ReconcileTasks) -> None:
        """The latest state of the tasks asked about (all the framework's when none are)."""
        state = self.state
        if message.tasks:
            asked = [task.task_id for task in message.tasks]
        else:
            asked = state.tasks_of(framework.id)
        aware = framework.info.has_capability(PARTITION_AWARE)
        named = {task.task_id: task.agent_id for task in message.tasks}
        for task_id in asked:
            task = state.task(framework.id, task_id) or state.completed_task(framework.id, task_id)
            if task is not None:
                status = self.status(
                    task_id,
                    task.state,
                    Reason.REASON_RECONCILIATION,
                    "Reconciliation: latest task state",
                    task.agent_id,
                    task.executor_id,
                )
            else:
                agent_id = named.get(task_id)
                if state.is_transitioning(agent_id):
                    continue  # its agent (or some agent) has yet to re-register: no answer yet
                if agent_id is not None and agent_id in state.unreachable:
                    kind = TaskState.TASK_UNREACHABLE if aware else TaskState.TASK_LOST
                    text = f"Reconciliation: agent {agent_id} is unreachable"
                else:
                    kind = TaskState.TASK_UNKNOWN if aware else TaskState.TASK_LOST
                    text = "Reconciliation: task unknown to the master"
                status = self.status(task_id, kind, Reason.REASON_RECONCILIATION, text, agent_id)
            self.out.send(framework.pid, StatusUpdate(framework.id, status))


def reported_task(task: Task, agent_id: AgentID, resources: Resources) -> TaskRecord:
    """The master's record of a task an agent reports (``resources`` allocated)."""
    return TaskRecord(
        task.task_id,
        task.framework_id,
        agent_id,
        task.name,
        task.state,
        resources,
        task.executor_id,
        task.statuses[-1] if task.statuses else None,
        discovery=task.discovery,
    )
