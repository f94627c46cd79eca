"""What the master's HTTP surfaces need of the master, and nothing more.

The state endpoints (master/state_views.py), the v1 operator API (master/operator_api.py) and
the v1 scheduler API (master/scheduler_api.py) are views: they read the master's read model
(``MasterState``) and change nothing but through the commands named here. ``MasterProcess`` is
a ``MasterSurface``; the views never import it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from corral.ids import AgentID, FrameworkID
from corral.protocol import MasterInfo
from libprocess import UPID, Runtime, Timer
from master.allocator.quota import Quota
from master.options import MasterOptions
from master.state import MasterState


class MasterSurface(Protocol):
    """A read model, commands, and the process's own means (pid, runtime, routes, timers)."""

    options: MasterOptions
    work_dir: str
    master_info: MasterInfo | None
    allocator: Any  # None until the master has started its allocator

    @property
    def pid(self) -> UPID: ...

    @property
    def runtime(self) -> Runtime: ...

    @property
    def state(self) -> MasterState: ...

    @property
    def ids_prefix(self) -> str: ...

    def allocator_info(self) -> dict[str, Any]: ...

    def route(
        self, path: str, handler: Callable, description: str = "", *, ahead: bool = False
    ) -> None: ...

    def alias(self, public_path: str, path: str) -> None: ...

    def delay(self, seconds: float, method: Callable, *args: Any) -> Timer: ...

    def mark_agent_gone(self, agent_id: AgentID) -> tuple[int, str]: ...

    def teardown_framework(self, framework_id: FrameworkID) -> bool: ...

    def update_weights(self, weights: dict[str, float]) -> None: ...

    def update_quotas(self, quotas: dict[str, Quota]) -> None: ...

    def deactivate_agent(self, agent_id: AgentID) -> bool: ...

    def reactivate_agent(self, agent_id: AgentID) -> bool: ...
