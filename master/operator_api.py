"""Mesos's v1 operator API on the master: ``POST /api/v1`` calls and SUBSCRIBE streams.

``OperatorApi`` lives inside the master process (its handlers run there, one event at a time).
It is a view: it reads the master's read model through ``StateViews`` (master/state_views.py)
and changes nothing but through the master's public commands (``MasterSurface``), and it hears
of changes as an ``Observer`` of the master's cores, for the SUBSCRIBE streams: a RecordIO
stream of ``TASK_ADDED``, ``AGENT_REMOVED``… with a HEARTBEAT every 15 s.

Statuses, as Mesos's ``src/master/http.cpp`` (checked by corral/v1/http.py): 405 with
``Allow: POST`` for a method other than POST, 400 for a missing Content-Type, 415 for one
other than JSON (protobuf is not spoken), 406 for an Accept that JSON cannot meet, 400 for a
body that is not a known call or misses its fields, 501 for a call Mesos has that Corral does
not implement (RESERVE_RESOURCES, maintenance writes, files…).
Weights, quota and agent deactivations are written to the master's registry before the call
is answered (503 if that fails, nothing changed), so they outlive a master restart.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import structlog
from aiohttp import web

from corral.ids import AgentID, FrameworkID
from corral.protocol import TaskStatus, json_compatible
from corral.quantities import quantities_from_mapping
from corral.v1 import recordio
from corral.v1.http import (
    JSON,
    RECORDIO,
    CallError,
    answer,
    id_value,
    parse_call,
    section,
)
from libprocess import Timer
from libprocess.http import Stream, request_body
from master import mesos_state
from master.allocator import AllocatorError, Quota
from master.allocator.offer import checked_role
from master.allocator.quota import check_quota_role
from master.observer import Observer
from master.registry import RegistryError
from master.state import AgentRecord, FrameworkRecord, TaskRecord
from master.state_views import StateViews
from master.surface import MasterSurface

log = structlog.get_logger("master.operator_api")

HEARTBEAT_SECONDS = 15.0  # between HEARTBEAT events on SUBSCRIBE streams (Mesos's default)
API = "the master's /api/v1"  # how refusals name the endpoint

# Every call type of Mesos's master.proto; those without a handler below answer 501.
MESOS_CALLS = frozenset(
    (
        "GET_HEALTH",
        "GET_FLAGS",
        "GET_VERSION",
        "GET_METRICS",
        "GET_LOGGING_LEVEL",
        "SET_LOGGING_LEVEL",
        "LIST_FILES",
        "READ_FILE",
        "GET_STATE",
        "GET_AGENTS",
        "GET_FRAMEWORKS",
        "GET_EXECUTORS",
        "GET_OPERATIONS",
        "GET_TASKS",
        "GET_ROLES",
        "GET_WEIGHTS",
        "UPDATE_WEIGHTS",
        "GET_MASTER",
        "SUBSCRIBE",
        "RESERVE_RESOURCES",
        "UNRESERVE_RESOURCES",
        "CREATE_VOLUMES",
        "DESTROY_VOLUMES",
        "GROW_VOLUME",
        "SHRINK_VOLUME",
        "GET_MAINTENANCE_STATUS",
        "GET_MAINTENANCE_SCHEDULE",
        "UPDATE_MAINTENANCE_SCHEDULE",
        "START_MAINTENANCE",
        "STOP_MAINTENANCE",
        "DRAIN_AGENT",
        "DEACTIVATE_AGENT",
        "REACTIVATE_AGENT",
        "GET_QUOTA",
        "UPDATE_QUOTA",
        "SET_QUOTA",
        "REMOVE_QUOTA",
        "TEARDOWN",
        "MARK_AGENT_GONE",
        "UNKNOWN",
    )
)


def _scalars(value: Any, where: str) -> dict[str, float]:
    """``{"cpus": {"value": 1}}`` (a quota config's map of ``Value.Scalar``) as floats."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise CallError(400, f'{where} is a map of name to {{"value": number}}, got {value!r}')
    out = {}
    for name, scalar in value.items():
        number = scalar.get("value") if isinstance(scalar, dict) else scalar
        if not isinstance(number, int | float) or isinstance(number, bool) or number < 0:
            raise CallError(
                400, f'{where}.{name} must be {{"value": <number ≥ 0>}}, got {scalar!r}'
            )
        out[name] = float(number)
    return out


class OperatorApi(Observer):
    """The v1 operator calls of one master; see the module docstring."""

    def __init__(self, master: MasterSurface, views: StateViews) -> None:
        self.master = master
        self.views = views
        self.records = master.state
        runtime = master.runtime
        # Invariant: _heartbeat is set exactly while _subscribers is not empty.
        self._subscribers: list[Stream] = []
        self._heartbeat: Timer | None = None
        self._calls: dict[str, Callable[[dict[str, Any], web.Request], Any]] = {
            "GET_HEALTH": lambda body, _: {"healthy": True},
            "GET_FLAGS": lambda body, _: {
                "flags": [{"name": k, "value": v} for k, v in self.views.flags().items()]
            },
            "GET_VERSION": lambda body, _: {"version_info": self.views.version_info()},
            "GET_METRICS": lambda body, _: {
                "metrics": [
                    {"name": k, "value": v} for k, v in sorted(runtime.metrics.snapshot().items())
                ]
            },
            "GET_STATE": lambda body, _: self.views.v1_state(),
            "GET_AGENTS": lambda body, _: self.views.v1_agents(),
            "GET_FRAMEWORKS": lambda body, _: self.views.v1_frameworks(),
            "GET_EXECUTORS": lambda body, _: self.views.v1_executors(),
            "GET_TASKS": lambda body, _: self.views.v1_tasks(),
            "GET_ROLES": lambda body, _: self.views.v1_roles(),
            "GET_WEIGHTS": lambda body, _: {
                "weight_infos": [
                    {"role": r, "weight": w} for r, w in sorted(self.records.weights.items())
                ]
            },
            "GET_MASTER": lambda body, _: {
                "master_info": json_compatible(master.master_info.to_wire()),
                "start_time": self.views.started,
                "elected_time": self.views.started,
            },
            "GET_QUOTA": lambda body, _: self.views.v1_quota(),
            "GET_OPERATIONS": lambda body, _: {"operations": []},
            "GET_MAINTENANCE_STATUS": lambda body, _: {"status": {}},
            "GET_MAINTENANCE_SCHEDULE": lambda body, _: {"schedule": {}},
            "UPDATE_WEIGHTS": self._update_weights,
            "UPDATE_QUOTA": self._update_quota,
            "MARK_AGENT_GONE": self._mark_agent_gone,
            "TEARDOWN": self._teardown,
            "DEACTIVATE_AGENT": self._deactivate_agent,
            "REACTIVATE_AGENT": self._reactivate_agent,
            "SUBSCRIBE": self._subscribe,
        }

    def stop(self) -> None:
        """The master stops: end every stream and the heartbeat."""
        for stream in list(self._subscribers):
            stream.close()
        self._subscribers.clear()
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            self._heartbeat = None

    @property
    def subscribers(self) -> int:
        """How many SUBSCRIBE streams are open."""
        return len(self._subscribers)

    def install(self, master: MasterSurface) -> None:
        master.route("/api/v1", self.handle, 'Mesos\'s v1 operator API: POST {"type": ...} (JSON)')
        master.alias("/api/v1", "/api/v1")

    # -- POST /api/v1 ---------------------------------------------------------------------

    def handle(self, request: web.Request) -> web.StreamResponse | Stream:
        """One v1 operator call; bad requests are answered with a reason, nothing changed."""
        try:
            call_type, body = parse_call(
                request.method,
                request.headers,
                request_body(request),
                MESOS_CALLS,
                API,
                answers={"SUBSCRIBE": (JSON, RECORDIO)},
            )
            handler = self._calls.get(call_type)
            if handler is None:
                raise CallError(
                    501,
                    f"{call_type} is a Mesos operator call that Corral does not implement; "
                    f"implemented: {', '.join(sorted(self._calls))}",
                )
            result = handler(body, request)
        except CallError as error:
            log.info("operator_call_refused", status=error.status, reason=error.reason)
            return error.response()
        if isinstance(result, web.StreamResponse | Stream):
            return result
        log.debug("operator_call", type=call_type)
        return answer(call_type, result)

    # -- writes ---------------------------------------------------------------------------

    def _update_weights(self, body: dict[str, Any], _: web.Request) -> web.Response:
        infos = section(body, "UPDATE_WEIGHTS").get("weight_infos")
        if not isinstance(infos, list) or not infos:
            raise CallError(400, 'UPDATE_WEIGHTS needs "weight_infos": [{"role": …, "weight": …}]')
        parsed = {}
        for info in infos:
            role = info.get("role") if isinstance(info, dict) else None
            weight = info.get("weight") if isinstance(info, dict) else None
            try:
                checked_role(role if isinstance(role, str) else "")
            except AllocatorError as error:
                raise CallError(400, f"weight_infos: {error}") from None
            if not isinstance(weight, int | float) or isinstance(weight, bool) or weight <= 0:
                raise CallError(
                    400, f"weight_infos: the weight of {role} must be > 0, got {weight}"
                )
            parsed[role] = float(weight)
        _written(lambda: self.master.update_weights(parsed), "weights")  # all valid: apply all
        self.views.snapshot.invalidate()
        return web.Response(status=200)

    def _update_quota(self, body: dict[str, Any], _: web.Request) -> web.Response:
        configs = section(body, "UPDATE_QUOTA").get("quota_configs")
        if not isinstance(configs, list) or not configs:
            raise CallError(
                400,
                'UPDATE_QUOTA needs "quota_configs": [{"role": …, "guarantees": {"cpus": '
                '{"value": 1}}, "limits": {…}}]',
            )
        parsed: dict[str, Quota] = {}
        for config in configs:
            role = config.get("role") if isinstance(config, dict) else None
            try:
                check_quota_role(checked_role(role if isinstance(role, str) else ""))
                quota = Quota(
                    quantities_from_mapping(_scalars(config.get("guarantees"), "guarantees")),
                    quantities_from_mapping(_scalars(config.get("limits"), "limits")),
                )
            except (AllocatorError, ValueError) as error:
                raise CallError(400, f"quota_configs: {error}") from None
            parsed[role] = quota
        _written(lambda: self.master.update_quotas(parsed), "quota")
        self.views.snapshot.invalidate()
        return web.Response(status=200)

    def _mark_agent_gone(self, body: dict[str, Any], _: web.Request) -> web.Response:
        agent_id = id_value(section(body, "MARK_AGENT_GONE"), "agent_id", "MARK_AGENT_GONE")
        status, reason = self.master.mark_agent_gone(AgentID(agent_id))
        if status != 200:
            raise CallError(status, reason)
        return web.Response(status=200)

    def _teardown(self, body: dict[str, Any], _: web.Request) -> web.Response:
        framework_id = id_value(section(body, "TEARDOWN"), "framework_id", "TEARDOWN")
        if not self.master.teardown_framework(FrameworkID(framework_id)):
            raise CallError(
                400,
                f"no framework {framework_id} is registered; list them with GET_FRAMEWORKS",
            )
        return web.Response(status=200)

    def _deactivate_agent(self, body: dict[str, Any], _: web.Request) -> web.Response:
        agent_id = AgentID(
            id_value(section(body, "DEACTIVATE_AGENT"), "agent_id", "DEACTIVATE_AGENT")
        )
        if not _written(lambda: self.master.deactivate_agent(agent_id), "deactivation"):
            raise CallError(400, f"agent {agent_id} is not registered; list agents with GET_AGENTS")
        self.views.snapshot.invalidate()
        return web.Response(status=200)

    def _reactivate_agent(self, body: dict[str, Any], _: web.Request) -> web.Response:
        agent_id = AgentID(
            id_value(section(body, "REACTIVATE_AGENT"), "agent_id", "REACTIVATE_AGENT")
        )
        if not _written(lambda: self.master.reactivate_agent(agent_id), "reactivation"):
            raise CallError(400, f"agent {agent_id} is not registered; list agents with GET_AGENTS")
        self.views.snapshot.invalidate()
        return web.Response(status=200)

    # -- SUBSCRIBE ------------------------------------------------------------------------

    def _subscribe(self, body: dict[str, Any], request: web.Request) -> Stream:
        recordio_accepted = RECORDIO in (request.headers.get("Accept") or "")
        headers = {"Message-Content-Type": JSON} if recordio_accepted else {}
        stream = Stream(
            200,
            headers,
            content_type=RECORDIO if recordio_accepted else JSON,
        )
        stream.on_close = lambda: self._unsubscribe(stream)
        self._write(
            stream,
            {
                "type": "SUBSCRIBED",
                "subscribed": {
                    "get_state": self.views.v1_state(),
                    "heartbeat_interval_seconds": HEARTBEAT_SECONDS,
                },
            },
        )
        self._subscribers.append(stream)
        if self._heartbeat is None:
            self._heartbeat = self.master.delay(HEARTBEAT_SECONDS, self._beat)
        log.info("operator_subscribed", subscribers=len(self._subscribers))
        return stream

    def _unsubscribe(self, stream: Stream) -> None:
        if stream in self._subscribers:
            self._subscribers.remove(stream)
            log.info("operator_unsubscribed", subscribers=len(self._subscribers))
        if not self._subscribers and self._heartbeat is not None:
            self._heartbeat.cancel()
            self._heartbeat = None

    def _beat(self) -> None:
        self._heartbeat = None
        self._publish(lambda: {"type": "HEARTBEAT"})
        if self._subscribers:
            self._heartbeat = self.master.delay(HEARTBEAT_SECONDS, self._beat)

    @staticmethod
    def _write(stream: Stream, event: dict[str, Any]) -> bool:
        return stream.write(recordio.encode(json.dumps(event, separators=(",", ":")).encode()))

    def _publish(self, event: Callable[[], dict[str, Any]]) -> None:
        """Send an event to every subscriber; built only when someone listens."""
        if not self._subscribers:
            return
        record = recordio.encode(json.dumps(event(), separators=(",", ":")).encode())
        for stream in list(self._subscribers):
            if not stream.write(record):
                self._unsubscribe(stream)

    # -- the master's events (one call each from the master) ------------------------------

    def agent_added(self, agent: AgentRecord) -> None:
        self._publish(
            lambda: {
                "type": "AGENT_ADDED",
                "agent_added": {
                    "agent": mesos_state.v1_agent(
                        self.records,
                        agent,
                        self.views.agent_time(agent.id),
                        agent.id in self.records.deactivated,
                    )
                },
            }
        )

    def agent_removed(self, agent_id: AgentID) -> None:
        self._publish(
            lambda: {"type": "AGENT_REMOVED", "agent_removed": {"agent_id": {"value": agent_id}}}
        )

    def task_added(self, task: TaskRecord) -> None:
        self._publish(
            lambda: {"type": "TASK_ADDED", "task_added": {"task": mesos_state.v1_task(task)}}
        )

    def task_updated(self, task: TaskRecord, status: TaskStatus, ended: bool) -> None:
        self._publish(
            lambda: {
                "type": "TASK_UPDATED",
                "task_updated": {
                    "framework_id": {"value": task.framework_id},
                    "status": json_compatible(status.to_wire()),
                    "state": task.state.value,
                },
            }
        )

    def framework_added(self, framework: FrameworkRecord) -> None:
        self._framework_event("FRAMEWORK_ADDED", framework)

    def framework_updated(self, framework: FrameworkRecord) -> None:
        self._framework_event("FRAMEWORK_UPDATED", framework)

    def _framework_event(self, kind: str, framework: FrameworkRecord) -> None:
        self._publish(
            lambda: {
                "type": kind,
                kind.lower(): {
                    "framework": mesos_state.v1_framework(
                        self.records, framework, self.views.framework_time(framework.id)
                    )
                },
            }
        )

    def framework_removing(self, framework: FrameworkRecord) -> None:
        self._publish(
            lambda: {
                "type": "FRAMEWORK_REMOVED",
                "framework_removed": {"framework_info": json_compatible(framework.info.to_wire())},
            }
        )


def _written(command: Callable[[], Any], what: str) -> Any:
    """Run a command the master writes to its registry; 503 if it could not (nothing changed)."""
    try:
        return command()
    except RegistryError as error:
        raise CallError(503, f"the {what} could not be recorded: {error}; retry later") from None
