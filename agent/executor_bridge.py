"""One HTTP executor's subscription, seen by the agent as that executor's driver.

The v1 executor API (agent/executor_api.py) is bridged onto the native protocol: each
SUBSCRIBE spawns an ``ExecutorBridge`` in the agent's runtime, a process with a pid of its own
that registers with the agent (``RegisterExecutor``; ``ReregisterExecutor`` when the agent
recovers the executor after a restart or the executor subscribes again on a new connection)
and writes what the agent sends an executor as v1 events on the subscription's stream.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import structlog

from agent.executor_api import Call, event
from corral.ids import ContainerID
from corral.protocol import ExecutorInfo, FrameworkInfo, TaskStatus
from corral.protocol.endpoint import ProtocolProcess, receives
from corral.protocol.messages import (
    ExecutorRegistered,
    ExecutorReregistered,
    ExecutorToFramework,
    FrameworkToExecutor,
    KillTask,
    ReconnectExecutor,
    RegisterExecutor,
    ReregisterExecutor,
    RunTask,
    RunTaskGroup,
    ShutdownExecutor,
    StatusUpdate,
    StatusUpdateAcknowledgement,
)
from corral.v1.http import JSON
from libprocess import UPID, Stream, Timer

log = structlog.get_logger("agent.executor_bridge")

HEARTBEAT_INTERVAL = 30.0  # runtime-clock seconds between HEARTBEAT events on a stream


def subscription_stream(on_close: Callable[[], None]) -> Stream:
    """The SUBSCRIBE response: 200, chunked, RecordIO records of JSON events."""
    return Stream(200, content_type=JSON, on_close=on_close)


class ExecutorBridge(ProtocolProcess):
    """One HTTP executor's subscription, seen by the agent as that executor's driver.

    It registers when it starts (``reregister``: with ReregisterExecutor and what the executor
    says it has not had acknowledged), writes an event for each message from the agent, and
    sends the executor's calls from its own pid. The agent owns it: it terminates it when the
    stream ends or a new subscription replaces it; ending it alone ends no task.
    """

    def __init__(
        self,
        agent: UPID,
        stream: Stream,
        framework_info: FrameworkInfo,
        executor_info: ExecutorInfo,
        container_id: ContainerID,
        call: Call,
        reregister: bool,
        heartbeat_interval: float = HEARTBEAT_INTERVAL,
    ) -> None:
        super().__init__()
        self.agent = agent
        self.stream = stream
        self.framework_info = framework_info
        self.executor_info = executor_info
        self.container_id = container_id
        self.framework_id = call.framework_id
        self.executor_id = call.executor_id
        self._call = call
        self._reregister = reregister
        self._heartbeat_interval = heartbeat_interval
        self._heartbeat_timer: Timer | None = None
        self.agent_id: Any = None  # set by ExecutorRegistered / ExecutorReregistered

    def initialize(self) -> None:
        call = self._call
        if self._reregister:
            message: RegisterExecutor | ReregisterExecutor = ReregisterExecutor(
                self.framework_id, self.executor_id, call.tasks, call.updates
            )
        else:
            message = RegisterExecutor(self.framework_id, self.executor_id)
        log.info(
            "executor_subscribing",
            bridge=self.pid,
            executor_id=self.executor_id,
            framework_id=self.framework_id,
            reregister=self._reregister,
        )
        self.send_message(self.agent, message)
        self._heartbeat_timer = self.delay(self._heartbeat_interval, self._heartbeat)

    def finalize(self) -> None:
        if self._heartbeat_timer is not None:
            self._heartbeat_timer.cancel()
        self.stream.close()

    def _heartbeat(self) -> None:
        self._write(event("HEARTBEAT"))
        self._heartbeat_timer = self.delay(self._heartbeat_interval, self._heartbeat)

    def _write(self, data: bytes) -> None:
        if not self.stream.write(data):
            log.debug("executor_stream_gone", bridge=self.pid, executor_id=self.executor_id)

    def _from_agent(self, sender: UPID | None, what: str) -> bool:
        if sender != self.agent:
            log.warning("bridge_message_from_stranger", sender=sender, message=what)
            return False
        return True

    def _subscribed(self, agent_info: Any) -> None:
        framework_info = self.framework_info
        if framework_info.id is None:
            framework_info = dataclasses.replace(framework_info, id=self.framework_id)
        self._write(
            event(
                "SUBSCRIBED",
                executor_info=self.executor_info.to_wire(),
                framework_info=framework_info.to_wire(),
                agent_info=agent_info.to_wire(),
                container_id={"value": str(self.container_id)},
            )
        )

    # -- from the agent -----------------------------------------------------------------------

    @receives(ExecutorRegistered)
    def registered(self, sender: UPID | None, message: ExecutorRegistered) -> None:
        if self._from_agent(sender, message.NAME):
            self.agent_id = message.agent_id
            self.executor_info = message.executor_info
            self.framework_info = message.framework_info
            self._subscribed(message.agent_info)

    @receives(ExecutorReregistered)
    def reregistered(self, sender: UPID | None, message: ExecutorReregistered) -> None:
        if self._from_agent(sender, message.NAME):
            self.agent_id = message.agent_id
            self._subscribed(message.agent_info)

    @receives(RunTask)
    def run_task(self, sender: UPID | None, message: RunTask) -> None:
        if self._from_agent(sender, message.NAME):
            self._write(event("LAUNCH", task=message.task.to_wire()))

    @receives(RunTaskGroup)
    def run_task_group(self, sender: UPID | None, message: RunTaskGroup) -> None:
        if self._from_agent(sender, message.NAME):
            self._write(event("LAUNCH_GROUP", task_group=message.task_group.to_wire()))

    @receives(KillTask)
    def kill_task(self, sender: UPID | None, message: KillTask) -> None:
        if not self._from_agent(sender, message.NAME):
            return
        kill: dict[str, Any] = {"task_id": {"value": str(message.task_id)}}
        if message.kill_policy is not None:
            kill["kill_policy"] = message.kill_policy.to_wire()
        self._write(event("KILL", **kill))

    @receives(FrameworkToExecutor)
    def framework_to_executor(self, sender: UPID | None, message: FrameworkToExecutor) -> None:
        if self._from_agent(sender, message.NAME):
            self._write(event("MESSAGE", data=message.data))

    @receives(ShutdownExecutor)
    def shutdown(self, sender: UPID | None, message: ShutdownExecutor) -> None:
        if self._from_agent(sender, message.NAME):
            log.info("executor_shutdown_sent", bridge=self.pid, executor_id=self.executor_id)
            if message.reason:  # refused: the executor learns why before it is told to stop
                self._write(event("ERROR", message=message.reason))
            self._write(event("SHUTDOWN"))

    @receives(StatusUpdateAcknowledgement)
    def acknowledged(self, sender: UPID | None, message: StatusUpdateAcknowledgement) -> None:
        if self._from_agent(sender, message.NAME):
            self._write(
                event(
                    "ACKNOWLEDGED",
                    task_id={"value": str(message.task_id)},
                    uuid=message.uuid,
                )
            )

    @receives(ReconnectExecutor)
    def reconnect(self, sender: UPID | None, message: ReconnectExecutor) -> None:
        """HTTP executors reconnect by subscribing again, not through their old bridge."""
        log.info("bridge_reconnect_ignored", bridge=self.pid, sender=sender)

    # -- from the executor (dispatched by the agent's route) ---------------------------------

    def update(self, status: TaskStatus) -> None:
        if self.agent_id is not None:
            status = dataclasses.replace(status, agent_id=self.agent_id)
        self.send_message(self.agent, StatusUpdate(self.framework_id, status, str(self.pid)))

    def message(self, data: bytes) -> None:
        if self.agent_id is None:
            log.warning("framework_message_dropped", reason="the executor is not subscribed yet")
            return
        self.send_message(
            self.agent,
            ExecutorToFramework(self.agent_id, self.framework_id, self.executor_id, data),
        )
