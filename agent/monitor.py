"""``/monitor/statistics``: per-container resource usage, in Mesos's shape.

Served by a process of its own, id ``monitor``, in the agent's runtime (as Mesos's monitor
is), so the URL is Mesos's. Each request asks the agent for a report (the agent asks its
containerizer), and answers a JSON list of ``{framework_id, executor_id, executor_name,
source, statistics}``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from libprocess import Future, Process

if TYPE_CHECKING:
    from agent.agent import AgentProcess


class MonitorProcess(Process):
    def __init__(self, agent: AgentProcess) -> None:
        super().__init__("monitor")
        self._agent = agent
        self.route("/statistics", self.statistics)

    def statistics(self, request: web.Request) -> Future[web.Response]:
        from agent.agent import AgentProcess

        report = self.runtime.dispatch(self._agent, AgentProcess.usage_report)
        return report.then(lambda entries: web.json_response(entries))
