"""What the agent's HTTP surfaces may read of the agent and ask of it.

The state JSON (agent/mesos_state.py), the operator API (agent/operator_api.py), the monitor
(agent/monitor.py) and the endpoints (agent/endpoints.py) are views: they read the agent's
public records (frameworks, executor runs and their tasks) and call its public commands,
never a private member. ``AgentView`` names that surface; ``agent.agent.AgentProcess``
provides it. Every read and command runs inside the agent actor (the routes are its own;
the monitor dispatches into it).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from agent.executor_api import Call
from agent.executor_run import ExecutorRun
from agent.framework_run import FrameworkRun
from agent.options import AgentOptions
from containerizer import ContainerTermination, ResourceStatistics
from corral.ids import AgentID, FrameworkID
from corral.protocol import AgentInfo
from libprocess import UPID, Future, Runtime, Stream

T = TypeVar("T")


class AgentView(Protocol):
    options: AgentOptions
    info: AgentInfo
    agent_id: AgentID | None
    start_time: float  # wall clock, for /state and slave/uptime_secs
    recovered: bool  # checkpoints read and containers found again
    frameworks: dict[FrameworkID, FrameworkRun]
    # Mesos's JSON of frameworks removed from this agent (newest last).
    completed_frameworks: deque[dict[str, Any]]

    @property
    def pid(self) -> UPID: ...

    @property
    def runtime(self) -> Runtime: ...

    @property
    def master(self) -> UPID | None: ...

    @property
    def registered(self) -> bool: ...

    def executors(self) -> list[ExecutorRun]:
        """Every executor run of every framework here."""
        ...

    def unacknowledged(self) -> set[tuple[str, str]]:
        """(framework id, task id) of tasks whose updates still wait for an ack."""
        ...

    def isolators(self) -> list[str]: ...

    def route(self, path: str, handler: Callable, description: str = "") -> None: ...

    def alias(self, public_path: str, path: str) -> None: ...

    def run_async(self, awaitable: Awaitable[T]) -> Future[T]: ...

    def usage_of(self, executor: ExecutorRun) -> Future[ResourceStatistics]:
        """Its container's resource usage, sampled now (off the actor)."""
        ...

    def kill_container(self, executor: ExecutorRun, number: int) -> None:
        """Signal ``executor``'s container: SIGKILL destroys it as the agent would, another
        signal goes to its main process (ProcessLookupError: it has ended)."""
        ...

    def wait_container(self, executor: ExecutorRun) -> Future[ContainerTermination]:
        """Ready when the container's main process ends."""
        ...

    def subscribe_executor(self, call: Call) -> Stream:
        """A v1 executor's SUBSCRIBE: the stream of its events (CallError: refused)."""
        ...

    def executor_call(self, call: Call) -> None:
        """A subscribed v1 executor's UPDATE or MESSAGE (CallError: refused)."""
        ...
