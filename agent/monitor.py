"""``/monitor/statistics``: per-container resource usage, in Mesos's shape.

Served by a process of its own, id ``monitor``, in the agent's runtime (as Mesos's monitor
is), so the URL is Mesos's. Each request runs ``usage_report`` inside the agent (a view of
its public records, agent/agent_view.py), which samples every running container and answers a
JSON list of ``{framework_id, executor_id, executor_name, source, statistics}``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from agent.agent_view import AgentView
from agent.executor_lifecycle import ExecutorState
from agent.executor_run import ExecutorRun
from containerizer import ResourceStatistics
from libprocess import Future, Process, collect


class MonitorProcess(Process):
    def __init__(self, agent: AgentView) -> None:
        super().__init__("monitor")
        self._agent = agent
        self.route("/statistics", self.statistics)

    def statistics(self, request: web.Request) -> Future[web.Response]:
        report = self.runtime.dispatch(self._agent.pid, usage_report, self._agent)
        return report.then(lambda entries: web.json_response(entries))


def usage_report(agent: AgentView) -> Future[list[dict[str, Any]]]:
    """One entry per running container (run inside the agent); one that ends meanwhile is
    left out."""
    reports = [
        agent.usage_of(executor)
        .recover(lambda _failed: None)
        .then(lambda stats, executor=executor: _entry(executor, stats))
        for executor in agent.executors()
        if executor.container_up and executor.state is not ExecutorState.DESTROYING
    ]
    return collect(reports).then(lambda entries: [e for e in entries if e is not None])


def _entry(executor: ExecutorRun, stats: ResourceStatistics | None) -> dict[str, Any] | None:
    if stats is None:
        return None
    return {
        "framework_id": str(executor.framework_id),
        "executor_id": str(executor.executor_id),
        "executor_name": executor.info.name or "",
        "source": "",
        "statistics": stats.to_json(),
    }
