"""The agent's HTTP endpoints, Mesos's agent surface: which path serves what.

Views of the agent (agent/agent_view.py), installed on its process so that they run inside
it: ``/state`` (also ``/slave(1)/state``, ``/agent/state``; agent/mesos_state.py), ``/files/
browse|read|download`` confined to the sandboxes (agent/files.py, run off the actor),
``/containers``, ``slave/*`` metrics in ``/metrics/snapshot``, the v1 operator API ``/api/v1``
with ``/version``, ``/health``, ``/flags`` (agent/operator_api.py), and the v1 executor API
``/api/v1/executor`` (agent/executor_api.py parses the calls; the agent keeps one bridge per
executor, a new subscription replaces the old, and a bridge's end ends no task).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web

from agent import files, mesos_state
from agent.agent_view import AgentView
from agent.executor_api import parse_call
from agent.operator_api import OperatorApi
from corral.task_states import TaskState
from corral.v1.http import CallError
from libprocess import Future, Stream, collect, request_body

log = structlog.get_logger("agent.endpoints")

# Paths a master also serves: aliased to the agent only when no other process has them.
_SHARED_PATHS = frozenset({"/api/v1", "/version", "/health", "/flags"})
_ALIASES = {  # Mesos's public paths -> the agent's own routes
    "/state": "/state",
    "/state.json": "/state",
    "/slave(1)/state": "/state",
    "/slave(1)/state.json": "/state",
    "/api/v1/executor": "/api/v1/executor",
    "/slave(1)/api/v1/executor": "/api/v1/executor",
    "/files/browse": "/files/browse",
    "/files/browse.json": "/files/browse",
    "/files/read": "/files/read",
    "/files/read.json": "/files/read",
    "/files/download": "/files/download",
    "/files/download.json": "/files/download",
    "/containers": "/containers",
    "/slave(1)/containers": "/containers",
    "/api/v1": "/api/v1",
    "/slave(1)/api/v1": "/api/v1",
    "/version": "/version",
    "/health": "/health",
    "/slave(1)/health": "/health",
    "/flags": "/flags",
    "/slave(1)/flags": "/flags",
}


def install(agent: AgentView) -> None:
    """Routes at ``/agent/...``, and at Mesos's paths through aliases."""
    operator = OperatorApi(agent)
    routes: dict[str, Callable[[Any], Any]] = {
        "/state": functools.partial(state, agent),
        "/api/v1/executor": functools.partial(executor_api, agent),
        "/api/v1": operator.handle,
        "/version": operator.version_route,
        "/health": operator.health_route,
        "/flags": operator.flags_route,
        "/files/browse": functools.partial(sandbox_files, agent, files.browse),
        "/files/read": functools.partial(sandbox_files, agent, files.read),
        "/files/download": functools.partial(sandbox_files, agent, files.download),
        "/containers": functools.partial(containers, agent),
    }
    for path, handler in routes.items():
        agent.route(path, handler)
    for public, path in _ALIASES.items():
        taken = agent.runtime.http_aliases.get(public)
        if public in _SHARED_PATHS and taken is not None and taken[0] != agent.pid.id:
            # A master in the same runtime serves these; its own stay at /agent/...
            log.info("agent_alias_taken", path=public, by=taken[0])
            continue
        agent.alias(public, path)


def install_metrics(agent: AgentView) -> tuple[list[Any], dict[TaskState, Any]]:
    """Mesos's ``slave/*`` metrics, served with the runtime's ``/metrics/snapshot``: the
    gauges and counters registered (to remove at exit) and the counter of each terminal
    state (``slave/tasks_finished``, ...); none when another agent of the runtime has them."""
    metrics = agent.runtime.metrics
    names = mesos_state.metrics(agent)
    taken = [name for name in names if metrics.get(name) is not None]
    if taken:  # another agent serves this runtime's metrics: one agent per runtime
        log.warning("agent_metrics_not_registered", taken=taken[:3])
        return [], {}
    gauges = [
        metrics.gauge(name, lambda name=name: mesos_state.metrics(agent)[name]) for name in names
    ]
    counters = {
        state: metrics.counter(f"slave/tasks_{state.name.removeprefix('TASK_').lower()}")
        for state in TaskState
        if state.is_terminal
    }
    return [*gauges, *counters.values()], counters


def state(agent: AgentView, request: web.Request) -> web.Response:
    """``/state`` (``/slave(1)/state``, ``/agent/state``): Mesos's agent state JSON, with
    Corral's keys; ``?jsonp=callback`` wraps it as Mesos's web UI asks."""
    document = mesos_state.agent_state(agent)
    callback = request.query.get("jsonp")
    if callback:
        if not callback.replace("_", "").replace(".", "").isalnum():
            return web.Response(
                status=400,
                text=f"jsonp callback {callback!r} is not a JavaScript name\n",
                content_type="text/plain",
            )
        text = f"{callback}({json.dumps(document)});"
        return web.Response(text=text, content_type="text/javascript")
    return web.json_response(document)


def sandbox_files(
    agent: AgentView, serve: Callable[[Path, Any], web.Response], request: web.Request
) -> Future[Any]:
    """Sandbox files (agent/files.py), read off the actor: they may be large or slow."""
    return files.off_actor(agent, serve, agent.options.work_dir, dict(request.query))


def containers(agent: AgentView, request: web.Request) -> Future[web.Response]:
    """``/containers``: every launched container, with its resource statistics (none for one
    that ended meanwhile)."""
    entries = [
        agent.usage_of(executor)
        .recover(lambda _failed: None)
        .then(
            lambda stats, executor=executor: mesos_state.container_json(
                executor, None if stats is None else stats.to_json()
            )
        )
        for executor in agent.executors()
        if executor.container_up
    ]
    return collect(entries).then(lambda listed: web.json_response(listed))


def executor_api(agent: AgentView, request: web.Request) -> web.StreamResponse | Stream:
    """``POST /api/v1/executor``: an HTTP executor's SUBSCRIBE, UPDATE and MESSAGE calls; a
    call refused is answered with Mesos's status and a sentence saying why."""
    try:
        call = parse_call(request.method, request.headers, request_body(request))
        if not agent.recovered:
            raise CallError(503, "the agent has not finished recovery; retry shortly")
        if call.type == "SUBSCRIBE":
            return agent.subscribe_executor(call)
        agent.executor_call(call)
    except CallError as error:
        log.info("executor_call_refused", status=error.status, reason=error.reason)
        return error.response()
    return web.Response(status=202, headers={"Content-Length": "0"})
