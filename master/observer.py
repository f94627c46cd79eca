"""Who hears of the master's changes as they happen: the v1 SUBSCRIBE streams and the metrics.

The cores call one method per change, right after their records changed (``framework_removing``
right before the framework is forgotten, so it can still be read). An observer only reads:
it must not change the records or raise. ``Observer`` does nothing; ``Observers`` fans out.
"""

from __future__ import annotations

from corral.ids import AgentID
from corral.protocol import TaskStatus
from master.state import AgentRecord, FrameworkRecord, TaskRecord


class Observer:
    """The changes an observer hears of; each does nothing unless overridden."""

    def agent_added(self, agent: AgentRecord) -> None:
        pass

    def agent_removed(self, agent_id: AgentID) -> None:
        pass

    def framework_added(self, framework: FrameworkRecord) -> None:
        pass

    def framework_updated(self, framework: FrameworkRecord) -> None:
        pass

    def framework_removing(self, framework: FrameworkRecord) -> None:
        pass

    def task_added(self, task: TaskRecord) -> None:
        pass

    def task_updated(self, task: TaskRecord, status: TaskStatus, ended: bool) -> None:
        """``ended``: the update moved the task to its framework's completed tasks."""

    def tasks_launched(self, count: int) -> None:
        pass

    def tasks_refused(self, count: int) -> None:
        """Tasks answered TASK_ERROR / TASK_DROPPED at ACCEPT."""


class Observers(Observer):
    """Several observers, told in the order they were added."""

    def __init__(self) -> None:
        self.observers: list[Observer] = []

    def add(self, observer: Observer) -> None:
        self.observers.append(observer)

    def agent_added(self, agent: AgentRecord) -> None:
        for observer in self.observers:
            observer.agent_added(agent)

    def agent_removed(self, agent_id: AgentID) -> None:
        for observer in self.observers:
            observer.agent_removed(agent_id)

    def framework_added(self, framework: FrameworkRecord) -> None:
        for observer in self.observers:
            observer.framework_added(framework)

    def framework_updated(self, framework: FrameworkRecord) -> None:
        for observer in self.observers:
            observer.framework_updated(framework)

    def framework_removing(self, framework: FrameworkRecord) -> None:
        for observer in self.observers:
            observer.framework_removing(framework)

    def task_added(self, task: TaskRecord) -> None:
        for observer in self.observers:
            observer.task_added(task)

    def task_updated(self, task: TaskRecord, status: TaskStatus, ended: bool) -> None:
        for observer in self.observers:
            observer.task_updated(task, status, ended)

    def tasks_launched(self, count: int) -> None:
        for observer in self.observers:
            observer.tasks_launched(count)

    def tasks_refused(self, count: int) -> None:
        for observer in self.observers:
            observer.tasks_refused(count)
