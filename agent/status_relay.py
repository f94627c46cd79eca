"""The agent's status updates on their way to the master: the thin shell around the sans-IO
``StatusUpdateManager`` (agent/status_updates.py).

``StatusRelay`` feeds the manager (an update, an acknowledgement, a tick of its retry timer)
and carries out what it decides: forward to the master, re-arm the one retry timer,
checkpoint the task's stream (for frameworks that checkpoint). The manager stays the judge of
what is unacknowledged; the relay keeps no task state of its own: a stream's checkpoint
records the task's latest state as the agent's task record holds it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog

from agent.checkpoint import AgentCheckpoints
from agent.status_updates import (
    Action,
    Forward,
    Ignored,
    Refused,
    Schedule,
    StatusUpdateManager,
    StreamClosed,
)
from agent.status_updates import StatusUpdate as StreamUpdate
from corral.ids import FrameworkID, TaskID
from corral.protocol import ProtocolError, TaskStatus
from corral.protocol.endpoint import ProtocolProcess
from corral.protocol.messages import StatusUpdate
from corral.task_states import TaskState
from libprocess import UPID, Timer

log = structlog.get_logger("agent.status_relay")


class StatusRelay:
    """Status updates of one agent: into their streams, out to the master until acknowledged.

    ``master()`` is the master to forward to (None: hold); ``checkpointing(framework_id)``
    whether the framework's streams are checkpointed; ``state_of(framework_id, task_id)`` the
    task's latest state as the agent holds it ("" once the task is gone).
    """

    def __init__(
        self,
        process: ProtocolProcess,
        manager: StatusUpdateManager,
        checkpoints: AgentCheckpoints,
        master: Callable[[], UPID | None],
        checkpointing: Callable[[FrameworkID], bool],
        state_of: Callable[[FrameworkID, TaskID], str],
    ) -> None:
        self.process = process
        self.manager = manager
        self.checkpoints = checkpoints
        self.master = master
        self.checkpointing = checkpointing
        self.state_of = state_of
        self.counters: dict[TaskState, Any] = {}  # slave/tasks_finished, ...: set by the agent
        self._retry_timer: Timer | None = None

    def _now(self) -> float:
        return self.process.runtime.clock.now()

    # -- events -----------------------------------------------------------------------------

    def report(self, framework_id: FrameworkID, status: TaskStatus) -> bool:
        """Take ``status`` into its task's stream; False if the manager refused it."""
        assert status.uuid is not None
        log.info(
            "status_update",
            task_id=status.task_id,
            state=status.state.value,
            framework_id=framework_id,
            message=status.message,
        )
        payload = StatusUpdate(framework_id=framework_id, status=status, pid=str(self.process.pid))
        update = StreamUpdate(
            framework_id=framework_id,
            task_id=status.task_id,
            uuid=status.uuid,
            state=status.state.value,
            terminal=status.state.is_terminal,
            payload=payload,
        )
        actions = self.manager.update(framework_id, status.task_id, update, self._now())
        if _accepted(actions):
            counter = self.counters.get(status.state)
            if counter is not None:
                counter.inc()
            self.checkpoint_stream(framework_id, status.task_id)
        self._apply(actions)
        return not any(isinstance(action, Refused) for action in actions)

    def acknowledge(self, framework_id: FrameworkID, task_id: TaskID, uuid: bytes) -> bool:
        """The framework's acknowledgement; True when it closed the task's stream."""
        actions = self.manager.acknowledge(framework_id, task_id, uuid, self._now())
        closed = False
        if _accepted(actions):
            self.checkpoint_stream(framework_id, task_id)
            closed = any(isinstance(action, StreamClosed) for action in actions)
        self._apply(actions)
        return closed

    def pause(self) -> None:
        """The master is gone: hold every update (none is lost)."""
        self.manager.pause()
        self._cancel_timer()

    def resume(self) -> None:
        """Registered again: resend every stream's head."""
        self._apply(self.manager.resume(self._now()))

    def cleanup(self, framework_id: FrameworkID) -> None:
        self.manager.cleanup(framework_id)

    def stop(self) -> None:
        self._cancel_timer()

    def recover(self, records: list[dict[str, Any]]) -> None:
        """The checkpointed streams, back into a fresh manager (paused until registered)."""
        try:
            self.manager.recover(records, decode=StatusUpdate.from_wire)
        except (ValueError, KeyError, TypeError, ProtocolError) as error:
            log.error("checkpoint_streams_unreadable", error=str(error))

    # -- reading ----------------------------------------------------------------------------

    def unacknowledged(self) -> set[tuple[str, str]]:
        """(framework id, task id) of every task with updates still unacknowledged."""
        return {key for key in self.manager.streams() if self.manager.pending(*key)}

    def latest_pending(self) -> list[StatusUpdate]:
        """The newest unacknowledged update of every task that has one."""
        return [
            self.manager.pending(*key)[-1].payload
            for key in self.manager.streams()
            if self.manager.pending(*key)
        ]

    # -- inside -----------------------------------------------------------------------------

    def checkpoint_stream(self, framework_id: FrameworkID, task_id: TaskID) -> None:
        if not self.checkpointing(framework_id):
            return
        record = self.manager.stream_record(framework_id, task_id, StatusUpdate.to_wire)
        if record is None or record["closed"]:
            self.checkpoints.save_stream(framework_id, task_id, None)
            return
        state = self.state_of(framework_id, task_id)
        self.checkpoints.save_stream(framework_id, task_id, {"stream": record, "state": state})

    def _tick(self) -> None:
        self._retry_timer = None
        self._apply(self.manager.tick(self._now()))

    def _cancel_timer(self) -> None:
        if self._retry_timer is not None:
            self._retry_timer.cancel()
            self._retry_timer = None

    def _apply(self, actions: list[Action]) -> None:
        """Carry out the manager's decisions."""
        for action in actions:
            if isinstance(action, Forward):
                master = self.master()
                if master is not None:
                    self.process.send_message(master, action.update.payload)
            elif isinstance(action, Schedule):
                self._cancel_timer()
                delay = max(action.at - self._now(), 0.0)
                self._retry_timer = self.process.delay(delay, self._tick)
            elif isinstance(action, StreamClosed):
                log.debug("status_stream_closed", task_id=action.task_id)
            elif isinstance(action, Ignored):
                log.debug("status_update_repeated", task_id=action.task_id, reason=action.reason)
            elif isinstance(action, Refused):
                log.warning("status_update_refused", task_id=action.task_id, reason=action.reason)


def _accepted(actions: list[Action]) -> bool:
    return not any(isinstance(action, (Refused, Ignored)) for action in actions)
