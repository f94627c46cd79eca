"""HTTP executors' subscriptions: one bridge per executor run, the newest.

A v1 executor's SUBSCRIBE (agent/endpoints.py) opens a stream and spawns an
``ExecutorBridge`` (agent/executor_bridge.py) that registers for the executor. A new
subscription replaces the old one; a subscription's end ends no task (the container's end
does): the executor may subscribe again. These functions keep the run's ``bridge`` and
``pid`` true to that; they run inside the agent (``process``), which owns the bridges.
"""

from __future__ import annotations

import structlog

from agent.executor_api import Call
from agent.executor_bridge import ExecutorBridge, subscription_stream
from agent.executor_lifecycle import Resubscribed
from agent.executor_run import ExecutorRun
from agent.framework_run import FrameworkRun
from corral.v1.http import CallError
from libprocess import Process, Stream

log = structlog.get_logger("agent.subscriptions")


def subscribe(
    process: Process, framework: FrameworkRun, executor: ExecutorRun, call: Call
) -> Stream:
    """Open a subscription for ``executor`` (admitted already): the stream of its events."""
    if executor.bridge is not None:
        log.info("executor_resubscribing", executor_id=executor.executor_id)
        close(process, executor)
    if executor.state.phase == "RUNNING":
        executor.pid = None  # tasks wait in the queue until the new bridge registers
    bridge: ExecutorBridge | None = None

    def closed() -> None:
        if bridge is not None:
            _ended(process, executor, bridge)

    stream = subscription_stream(closed)
    bridge = ExecutorBridge(
        process.pid,
        stream,
        framework.info,
        executor.info,
        executor.container_id,
        call,
        reregister=executor.lifecycle.allows(Resubscribed()),
    )
    executor.bridge = bridge
    process.runtime.spawn(bridge)
    return stream


def forward(process: Process, executor: ExecutorRun, call: Call) -> None:
    """An UPDATE or MESSAGE of the subscribed executor, sent on from its bridge's pid."""
    bridge = executor.bridge
    if bridge is None or executor.pid != bridge.pid:
        raise CallError(
            400,
            f"executor {call.executor_id} has not subscribed (or its subscription ended); "
            "SUBSCRIBE first, listing unacknowledged updates in the subscription",
        )
    if call.type == "UPDATE":
        assert call.status is not None
        process.runtime.dispatch(bridge, ExecutorBridge.update, call.status)
    else:
        process.runtime.dispatch(bridge, ExecutorBridge.message, call.data)


def close(process: Process, executor: ExecutorRun) -> None:
    """End the executor's subscription, if it has one (the run is over, or replaced)."""
    bridge = executor.bridge
    if bridge is None:
        return
    executor.bridge = None
    if executor.pid == bridge.pid:
        executor.pid = None
    process.runtime.terminate(bridge)


def _ended(process: Process, executor: ExecutorRun, bridge: ExecutorBridge) -> None:
    """A subscription's stream ended (the executor went away, or was replaced)."""
    if executor.bridge is bridge:
        executor.bridge = None
        log.info("executor_disconnected", executor_id=executor.executor_id, bridge=bridge.pid)
    if executor.pid == bridge.pid:
        executor.pid = None
    process.runtime.terminate(bridge)  # False when it has ended already
