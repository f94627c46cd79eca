"""The master's operator surface: Mesos's state endpoints and the v1 operator API (``/api/v1``).

``OperatorApi`` lives inside the master process (its handlers run there, one event at a time)
and reads the master's records directly. State endpoints (``/master/state``, ``/slaves``,
``/frameworks``, ``/tasks``, ``/roles``, ``/flags``) are served from a ``StateSnapshot``
(master/state_snapshot.py), so that polling never stalls the master. ``POST /api/v1``
takes ``{"type": …}`` calls (JSON only) and answers in ``master.proto``'s Response shapes;
SUBSCRIBE is a RecordIO stream of the master's events, fed by one small hook per event in
the master (``task_added``, ``agent_removed``…), with a HEARTBEAT every 15 s.

Statuses, as Mesos's ``src/master/http.cpp`` (checked by corral/v1/http.py): 405 with
``Allow: POST`` for a method other than POST, 400 for a missing Content-Type, 415 for one
other than JSON (protobuf is not spoken), 406 for an Accept that JSON cannot meet, 400 for a
body that is not a known call or misses its fields, 501 for a call Mesos has that Corral does
not implement (RESERVE_RESOURCES, maintenance writes, files…).
Weights and quota are kept in memory (the registry does not persist them yet).
"""

from __future__ import annotations

import json
import re
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import structlog
from aiohttp import web

from corral.ids import AgentID, FrameworkID
from corral.protocol import json_compatible
from corral.quantities import quantities_from_mapping
from corral.resources import Resources
from corral.task_states import TaskState
from corral.v1 import recordio
from corral.v1.http import (
    JSON,
    RECORDIO,
    CallError,
    answer,
    id_value,
    parse_call,
    section,
    text,
)
from libprocess import Timer
from libprocess.http import Stream, request_body
from master import mesos_state
from master.allocator import AllocatorError, Quota
from master.allocator.offer import checked_role
from master.allocator.quota import check_quota_role
from master.state import AgentRecord, FrameworkRecord, TaskRecord
from master.state_snapshot import StateSnapshot

if TYPE_CHECKING:
    from corral.protocol import TaskStatus
    from master.master import MasterProcess

log = structlog.get_logger("master.operator_api")

HEARTBEAT_SECONDS = 15.0  # between HEARTBEAT events on SUBSCRIBE streams (Mesos's default)
COMPLETED_FRAMEWORKS_KEPT = 50  # as Mesos's --max_completed_frameworks
BUILD_DATE = "2024-01-01 00:00:00"
API = "the master's /api/v1"  # how refusals name the endpoint
_CALLBACK = re.compile(r"^[A-Za-z_$][\w$]*(\.[A-Za-z_$][\w$]*)*$")

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


class OperatorApi:
    """Operator endpoints and v1 calls of one master; see the module docstring."""

    def __init__(self, master: MasterProcess) -> None:
        self.master = master
        self.registered = mesos_state.Registered()
        self.weights: dict[str, float] = {}
        self.quotas: dict[str, Quota] = {}
        self.deactivated: set[AgentID] = set()  # agents an operator deactivated (no offers)
        self.completed_frameworks: deque[dict[str, Any]] = deque(maxlen=COMPLETED_FRAMEWORKS_KEPT)
        self.started = time.time()
        runtime = master.runtime
        self.snapshot = StateSnapshot(
            self.build_state, runtime.clock.now, master.options.state_cache_seconds
        )
        # Invariant: _heartbeat is set exactly while _subscribers is not empty.
        self._subscribers: list[Stream] = []
        self._heartbeat: Timer | None = None
        self._calls: dict[str, Callable[[dict[str, Any], web.Request], Any]] = {
            "GET_HEALTH": lambda body, _: {"healthy": True},
            "GET_FLAGS": lambda body, _: {
                "flags": [{"name": k, "value": v} for k, v in self.flags().items()]
            },
            "GET_VERSION": lambda body, _: {"version_info": self.version_info()},
            "GET_METRICS": lambda body, _: {
                "metrics": [
                    {"name": k, "value": v} for k, v in sorted(runtime.metrics.snapshot().items())
                ]
            },
            "GET_STATE": lambda body, _: self.v1_state(),
            "GET_AGENTS": lambda body, _: self.v1_agents(),
            "GET_FRAMEWORKS": lambda body, _: self.v1_frameworks(),
            "GET_EXECUTORS": lambda body, _: self.v1_executors(),
            "GET_TASKS": lambda body, _: self.v1_tasks(),
            "GET_ROLES": lambda body, _: self.v1_roles(),
            "GET_WEIGHTS": lambda body, _: {
                "weight_infos": [{"role": r, "weight": w} for r, w in sorted(self.weights.items())]
            },
            "GET_MASTER": lambda body, _: {
                "master_info": json_compatible(master.master_info.to_wire()),
                "start_time": self.started,
                "elected_time": self.started,
            },
            "GET_QUOTA": lambda body, _: self.v1_quota(),
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

    # -- what the endpoints show ----------------------------------------------------------

    def flags(self) -> dict[str, str]:
        """The master's options, named and written as Mesos's flags (all strings)."""
        options = self.master.options

        def seconds(value: float | None) -> str:
            return "" if value is None else f"{value:g}secs"

        rate = options.agent_removal_rate_limit
        return {
            "hostname": options.hostname,
            "port": self.master.pid.address.rpartition(":")[2],
            "work_dir": self.master.work_dir,
            "allocation_interval": seconds(options.allocation_interval),
            "agent_ping_timeout": seconds(options.agent_ping_timeout),
            "max_agent_ping_timeouts": str(options.max_agent_ping_timeouts),
            "offer_timeout": seconds(options.offer_timeout),
            "agent_removal_rate_limit": "" if rate is None else f"{rate:g}/1secs",
            "agent_reregister_timeout": seconds(options.agent_reregister_timeout),
            "state_cache_seconds": seconds(options.state_cache_seconds),
            "max_completed_frameworks": str(COMPLETED_FRAMEWORKS_KEPT),
        }

    def version_info(self) -> dict[str, Any]:
        from master.master import VERSION

        return {
            "version": mesos_state.MESOS_VERSION,
            "build_date": BUILD_DATE,
            "build_time": 1704067200.0,
            "build_user": "corral",
            "corral_version": VERSION,
        }

    def _agent_time(self, agent_id: AgentID) -> float:
        return self.registered.agents.get(agent_id, self.started)

    def _framework_time(self, framework_id: FrameworkID) -> float:
        return self.registered.frameworks.get(framework_id, self.started)

    def build_state(self) -> dict[str, Any]:
        """``/master/state``: Mesos's keys, plus Corral's own (``agents``, ``tasks``,
        ``unreachable_agents``, ``recovered_agents``) that ``corral`` reads."""
        master = self.master
        records = master.records
        state = master.describe()
        from master.master import VERSION

        slaves = [
            mesos_state.agent_json(
                records, agent, self._agent_time(agent.id), agent.id in self.deactivated
            )
            for agent in records.agents.values()
        ]
        deactivated = sum(not slave["active"] for slave in slaves)
        state.update(
            {
                "version": mesos_state.MESOS_VERSION,
                "corral_version": VERSION,
                "build_date": BUILD_DATE,
                "build_user": "corral",
                "start_time": self.started,
                "elected_time": self.started,
                "leader": str(master.pid),
                "leader_info": json_compatible(master.master_info.to_wire()),
                "activated_slaves": len(slaves) - deactivated,
                "deactivated_slaves": deactivated,
                "unreachable_slaves": len(records.unreachable),
                "flags": self.flags(),
                "capabilities": [],
                "slaves": slaves,
                "frameworks": [
                    mesos_state.framework_json(records, f, self._framework_time(f.id))
                    for f in records.frameworks.values()
                ],
                "completed_frameworks": list(self.completed_frameworks),
                "orphan_tasks": [],
                "unregistered_frameworks": sorted(records.recovered_frameworks),
            }
        )
        return state

    def v1_agents(self) -> dict[str, Any]:
        records = self.master.records
        return {
            "agents": [
                mesos_state.v1_agent(
                    records, agent, self._agent_time(agent.id), agent.id in self.deactivated
                )
                for agent in records.agents.values()
            ],
            "recovered_agents": [
                json_compatible(info.to_wire())
                for agent_id, info in sorted(self.master._recovering.items())
                if agent_id not in records.agents
            ],
        }

    def v1_frameworks(self) -> dict[str, Any]:
        records = self.master.records
        return {
            "frameworks": [
                mesos_state.v1_framework(records, f, self._framework_time(f.id))
                for f in records.frameworks.values()
            ],
            "completed_frameworks": [],
        }

    def v1_executors(self) -> dict[str, Any]:
        return {"executors": mesos_state.v1_executors(self.master.records)}

    def v1_tasks(self) -> dict[str, Any]:
        records = self.master.records
        active, unreachable = [], []
        for task in records.tasks.values():
            kept = unreachable if task.state is TaskState.TASK_UNREACHABLE else active
            kept.append(mesos_state.v1_task(task))
        completed = [
            mesos_state.v1_task(task)
            for framework in records.frameworks.values()
            for task in framework.completed
        ]
        return {
            "tasks": active,
            "unreachable_tasks": unreachable,
            "completed_tasks": completed,
        }

    def v1_state(self) -> dict[str, Any]:
        return {
            "get_tasks": self.v1_tasks(),
            "get_executors": self.v1_executors(),
            "get_frameworks": self.v1_frameworks(),
            "get_agents": self.v1_agents(),
        }

    def v1_roles(self) -> dict[str, Any]:
        roles = []
        for entry in mesos_state.role_entries(self.master.records, self.weights, self.quotas):
            used = self._role_resources(entry["name"])
            roles.append(
                {
                    "name": entry["name"],
                    "weight": entry["weight"],
                    "frameworks": [{"value": f} for f in entry["frameworks"]],
                    "resources": json_compatible(used.to_json()),
                    "allocated": json_compatible(used.to_json()),
                }
            )
        return {"roles": roles}

    def _role_resources(self, role: str) -> Resources:
        used = Resources()
        for task in self.master.records.tasks.values():
            if role in (task.resources.allocation_roles() or {"*"}):
                used = used + task.resources
        return used.unallocated()

    def v1_quota(self) -> dict[str, Any]:
        infos, configs = [], []
        for role, quota in sorted(self.quotas.items()):
            guarantees = {name: {"value": v / 1000} for name, v in sorted(quota.guarantees.items())}
            limits = {name: {"value": v / 1000} for name, v in sorted(quota.limits.items())}
            infos.append(
                {
                    "role": role,
                    "guarantee": json_compatible(
                        Resources.scalars(
                            **{n: v / 1000 for n, v in quota.guarantees.items()}
                        ).to_json()
                    ),
                }
            )
            configs.append({"role": role, "guarantees": guarantees, "limits": limits})
        return {"status": {"infos": infos, "configs": configs}}

    # -- state endpoints ------------------------------------------------------------------

    def state_response(
        self, request: web.Request, name: str, derive: Callable[[dict], Any] | None = None
    ) -> web.Response:
        """A cached view of the state, as JSON or, with ``?jsonp=callback``, JavaScript."""
        body = self.snapshot.view(name, derive)
        callback = request.query.get("jsonp")
        if callback is None:
            return web.Response(body=body, content_type=JSON)
        if not _CALLBACK.match(callback):
            return text(
                400,
                f"jsonp={callback[:60]!r} is not a JavaScript function name; give a name "
                "such as 'angular.callbacks._0' (letters, digits, _, $ and dots)",
            )
        return web.Response(
            body=callback.encode() + b"(" + body + b");", content_type="application/javascript"
        )

    def tasks_response(self, request: web.Request) -> web.Response:
        """``/master/tasks``: ``limit`` (100; -1, as the Mesos CLI sends, for all), ``offset`` (0),
        ``order`` (``des`` or ``asc``,
        by latest status time), and optionally ``framework_id`` / ``task_id``."""
        query = request.query
        try:
            limit = int(query.get("limit", "100"))
            offset = int(query.get("offset", "0"))
        except ValueError:
            return text(400, "limit and offset must be whole numbers, e.g. ?limit=100&offset=0")
        order = query.get("order", "des")
        if limit < -1 or offset < 0 or order not in ("asc", "des"):
            return text(
                400,
                f"limit (-1: no limit) and offset must be 0 or more and order 'asc' or 'des' "
                f"(got limit={limit}, offset={offset}, order={order!r})",
            )
        framework_id, task_id = query.get("framework_id"), query.get("task_id")
        name = f"tasks?{limit}&{offset}&{order}&{framework_id}&{task_id}"

        def derive(state: dict[str, Any]) -> dict[str, Any]:
            tasks = [
                mesos_state.with_resource_maps(task)
                for framework in state["frameworks"]
                for task in framework["tasks"] + framework["completed_tasks"]
                if (framework_id is None or task["framework_id"] == framework_id)
                and (task_id is None or task["id"] == task_id)
            ]
            tasks.sort(
                key=lambda t: (t["statuses"][-1]["timestamp"] if t["statuses"] else 0.0, t["id"]),
                reverse=order == "des",
            )
            return {"tasks": tasks[offset:] if limit == -1 else tasks[offset : offset + limit]}

        return self.state_response(request, name, derive)

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
        for role, weight in parsed.items():  # all valid: apply every one
            self.weights[role] = weight
            self.master._call("set_weight", role, weight)
        self.snapshot.invalidate()
        log.info("weights_updated", weights=parsed)
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
        for role, quota in parsed.items():
            if quota.is_default():
                self.quotas.pop(role, None)
            else:
                self.quotas[role] = quota
            self.master._call("set_quota", role, quota)
        self.snapshot.invalidate()
        log.info("quota_updated", roles=sorted(parsed))
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
        agent = self.master.records.agents.get(agent_id)
        if agent is None:
            raise CallError(400, f"agent {agent_id} is not registered; list agents with GET_AGENTS")
        if agent_id not in self.deactivated:
            self.deactivated.add(agent_id)
            self.master.deactivate_agent(agent)
            self.snapshot.invalidate()
        return web.Response(status=200)

    def _reactivate_agent(self, body: dict[str, Any], _: web.Request) -> web.Response:
        agent_id = AgentID(
            id_value(section(body, "REACTIVATE_AGENT"), "agent_id", "REACTIVATE_AGENT")
        )
        agent = self.master.records.agents.get(agent_id)
        if agent is None:
            raise CallError(400, f"agent {agent_id} is not registered; list agents with GET_AGENTS")
        if agent_id in self.deactivated:
            self.deactivated.discard(agent_id)
            if agent.connected:
                self.master._call("activate_agent", agent_id)
            self.snapshot.invalidate()
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
                    "get_state": self.v1_state(),
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
        self.registered.agents[agent.id] = time.time()
        self._publish(
            lambda: {
                "type": "AGENT_ADDED",
                "agent_added": {
                    "agent": mesos_state.v1_agent(
                        self.master.records,
                        agent,
                        self._agent_time(agent.id),
                        agent.id in self.deactivated,
                    )
                },
            }
        )

    def agent_removed(self, agent_id: AgentID) -> None:
        self.registered.agents.pop(agent_id, None)
        self.deactivated.discard(agent_id)
        self._publish(
            lambda: {"type": "AGENT_REMOVED", "agent_removed": {"agent_id": {"value": agent_id}}}
        )

    def task_added(self, task: TaskRecord) -> None:
        self._publish(
            lambda: {"type": "TASK_ADDED", "task_added": {"task": mesos_state.v1_task(task)}}
        )

    def task_updated(self, task: TaskRecord, status: TaskStatus) -> None:
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
        self.registered.frameworks[framework.id] = time.time()
        self._framework_event("FRAMEWORK_ADDED", framework)

    def framework_updated(self, framework: FrameworkRecord) -> None:
        self._framework_event("FRAMEWORK_UPDATED", framework)

    def _framework_event(self, kind: str, framework: FrameworkRecord) -> None:
        self._publish(
            lambda: {
                "type": kind,
                kind.lower(): {
                    "framework": mesos_state.v1_framework(
                        self.master.records, framework, self._framework_time(framework.id)
                    )
                },
            }
        )

    def framework_removing(self, framework: FrameworkRecord) -> None:
        """Before the master forgets a framework: remember it as completed, and tell."""
        entry = mesos_state.framework_json(
            self.master.records, framework, self._framework_time(framework.id)
        )
        now = time.time()
        killed = [  # its live tasks are killed with it, as Mesos records them
            {
                **task,
                "state": "TASK_KILLED",
                "statuses": [*task.get("statuses", []), {"state": "TASK_KILLED", "timestamp": now}],
            }
            for task in entry["tasks"]
        ]
        entry.update(
            active=False,
            connected=False,
            unregistered_time=now,
            tasks=[],
            offers=[],
            completed_tasks=entry["completed_tasks"] + killed,
        )
        self.completed_frameworks.append(entry)
        self.registered.frameworks.pop(framework.id, None)
        self._publish(
            lambda: {
                "type": "FRAMEWORK_REMOVED",
                "framework_removed": {"framework_info": json_compatible(framework.info.to_wire())},
            }
        )
