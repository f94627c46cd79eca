"""The master's operator surface: Mesos's state endpoints and the v1 operator API (``/api/v1``).

``OperatorApi`` lives inside the master process (its handlers run there, one event at a time).
It is a view: it reads the master's read model (``MasterState``) and changes nothing but
through the master's public commands (``OperatorHost`` below names what it uses), and it hears
of changes as an ``Observer`` of the master's cores, for the SUBSCRIBE streams.

State endpoints (``/master/state``, ``/slaves``, ``/frameworks``, ``/tasks``, ``/roles``,
``/flags``) are served from a ``StateSnapshot`` (master/state_snapshot.py), so that polling
never stalls the master. ``POST /api/v1`` takes ``{"type": …}`` calls (JSON only) and answers
in ``master.proto``'s Response shapes; SUBSCRIBE is a RecordIO stream of the master's events
(``task_added``, ``agent_removed``… as the observer hears them), with a HEARTBEAT every 15 s.

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
import re
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

import structlog
from aiohttp import web

import corral
from corral.ids import AgentID, FrameworkID
from corral.protocol import MasterInfo, Offer, TaskStatus, json_compatible
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
from corral.v1.model import resources_json, unallocated_json
from libprocess import UPID, Runtime, Timer
from libprocess.http import Stream, request_body
from master import mesos_state
from master.allocator import AllocatorError, Quota
from master.allocator.offer import checked_role
from master.allocator.quota import check_quota_role
from master.observer import Observer
from master.options import MasterOptions
from master.registry import RegistryError
from master.state import AgentRecord, FrameworkRecord, MasterState, TaskRecord
from master.state_snapshot import StateSnapshot

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


class OperatorHost(Protocol):
    """What the operator surface needs of its master: a read model, commands, and the
    process's own means (pid, runtime, routes, timers). ``MasterProcess`` is one."""

    options: MasterOptions
    work_dir: str
    master_info: MasterInfo | None

    @property
    def pid(self) -> UPID: ...

    @property
    def runtime(self) -> Runtime: ...

    @property
    def state(self) -> MasterState: ...

    @property
    def ids_prefix(self) -> str: ...

    def allocator_info(self) -> dict[str, Any]: ...

    def route(self, path: str, handler: Callable, description: str = "") -> None: ...

    def alias(self, public_path: str, path: str) -> None: ...

    def delay(self, seconds: float, method: Callable, *args: Any) -> Timer: ...

    def mark_agent_gone(self, agent_id: AgentID) -> tuple[int, str]: ...

    def teardown_framework(self, framework_id: FrameworkID) -> bool: ...

    def update_weights(self, weights: dict[str, float]) -> None: ...

    def update_quotas(self, quotas: dict[str, Quota]) -> None: ...

    def deactivate_agent(self, agent_id: AgentID) -> bool: ...

    def reactivate_agent(self, agent_id: AgentID) -> bool: ...


class OperatorApi(Observer):
    """Operator endpoints and v1 calls of one master; see the module docstring."""

    def __init__(self, master: OperatorHost) -> None:
        self.master = master
        self.records = master.state
        self.registered = mesos_state.Registered()
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
                "weight_infos": [
                    {"role": r, "weight": w} for r, w in sorted(self.records.weights.items())
                ]
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

    # -- the routes (installed on the master process) ---------------------------------------

    def install(self, master: OperatorHost) -> None:
        """Serve the state endpoints and the v1 operator API on ``master``'s process routes,
        and at Mesos's absolute paths (``/state`` as well as ``/master/state``)."""
        routes: list[tuple[str, Callable, str]] = [
            ("/state", self.state_json, "agents, frameworks and tasks, Mesos's JSON (cached; "
             "?jsonp=callback)"),
            ("/info", self.info_json, "who the master is (pid, id, hostname, version): cheap at "
             "any size"),
            ("/state-summary", self.state_summary_json, "agents and frameworks without their "
             "tasks (Mesos's JSON)"),
            ("/slaves", self.slaves_json, "the registered agents (Mesos's JSON; ?jsonp=callback)"),
            ("/frameworks", self.frameworks_json, "the frameworks (Mesos's JSON; "
             "?jsonp=callback)"),
            ("/tasks", self.tasks_response, "tasks, newest first (?limit=100&offset=0&"
             "order=des|asc)"),
            ("/roles", self.roles_json, "roles with their weights, quota, frameworks and "
             "resources"),
            ("/flags", self.flags_json, "the master's options, as Mesos's flags"),
            ("/version", self.version_json, "the Mesos version whose APIs this master speaks, "
             "and Corral's"),
            ("/health", self.health, "200 while the master runs"),
            ("/api/v1", self.handle, 'Mesos\'s v1 operator API: POST {"type": ...} (JSON)'),
            ("/agents/gone", self.mark_agent_gone_http, 'POST {"agent_id": ...}: the agent is '
             "gone for good (as Mesos's MARK_AGENT_GONE); its tasks end and it may not "
             "re-register"),
        ]  # fmt: skip
        for path, handler, description in routes:
            master.route(path, handler, description)
        for path in _ALIASED:
            master.alias(path, path)

    def state_json(self, request: web.Request) -> web.Response:
        return self.state_response(request, "state")

    def info_json(self, request: web.Request) -> web.Response:
        """What drivers and agents need to find the master's native endpoint; unlike
        ``/master/state`` it costs nothing at 20,000 agents (corral/discovery.py)."""
        return web.json_response(
            {
                "pid": str(self.master.pid),
                "id": self.master.ids_prefix,
                "hostname": self.master.options.hostname,
                "version": corral.__version__,
            }
        )

    def state_summary_json(self, request: web.Request) -> web.Response:
        return self.state_response(
            request,
            "state-summary",
            lambda state: {
                "hostname": state["hostname"],
                "cluster": state.get("cluster", ""),
                "slaves": state["slaves"],
                "frameworks": [
                    {k: v for k, v in f.items() if k not in _TASK_LISTS}
                    for f in state["frameworks"]
                ],
            },
        )

    def slaves_json(self, request: web.Request) -> web.Response:
        return self.state_response(
            request,
            "slaves",
            lambda state: {
                "slaves": state["slaves"],
                "recovered_slaves": state["recovered_agents"],
            },
        )

    def frameworks_json(self, request: web.Request) -> web.Response:
        return self.state_response(
            request,
            "frameworks",
            lambda state: {
                "frameworks": [
                    mesos_state.framework_with_resource_maps(f) for f in state["frameworks"]
                ],
                "completed_frameworks": [
                    mesos_state.framework_with_resource_maps(f)
                    for f in state["completed_frameworks"]
                ],
                "unregistered_frameworks": state["unregistered_frameworks"],
            },
        )

    def roles_json(self, request: web.Request) -> web.Response:
        records = self.records
        return self.state_response(
            request,
            "roles",
            lambda _: {"roles": mesos_state.role_entries(records, records.weights, records.quotas)},
        )

    def flags_json(self, request: web.Request) -> web.Response:
        return web.json_response({"flags": self.flags()})

    def version_json(self, request: web.Request) -> web.Response:
        return web.json_response(self.version_info())

    def health(self, request: web.Request) -> web.Response:
        return web.Response(status=200)

    def mark_agent_gone_http(self, request: web.Request) -> web.Response:
        if request.method != "POST":
            return web.Response(
                status=405,
                text=f"{request.method} is not served here: POST a JSON body "
                '{"agent_id": "<id>"}\n',
            )
        try:
            body = json.loads(request_body(request) or b"null")
        except (ValueError, RecursionError) as error:
            return web.Response(status=400, text=f"the body is not JSON ({error})\n")
        agent_id = body.get("agent_id") if isinstance(body, dict) else None
        if not isinstance(agent_id, str) or not agent_id:
            return web.Response(
                status=400,
                text='the body must be a JSON object with a string "agent_id", got '
                f"{json.dumps(body)[:200]}\n",
            )
        status, text = self.master.mark_agent_gone(AgentID(agent_id))
        return web.Response(status=status, text=text + "\n")

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
        return {
            "version": mesos_state.MESOS_VERSION,
            "build_date": BUILD_DATE,
            "build_time": 1704067200.0,
            "build_user": "corral",
            "corral_version": corral.__version__,
        }

    def _agent_time(self, agent_id: AgentID) -> float:
        return self.registered.agents.get(agent_id, self.started)

    def _framework_time(self, framework_id: FrameworkID) -> float:
        return self.registered.frameworks.get(framework_id, self.started)

    def build_state(self) -> dict[str, Any]:
        """``/master/state``: Mesos's keys, plus Corral's own (``agents``, ``tasks``,
        ``unreachable_agents``, ``recovered_agents``) that ``corral`` reads."""
        master = self.master
        records = self.records
        state = self.describe()
        slaves = [
            mesos_state.agent_json(
                records, agent, self._agent_time(agent.id), agent.id in records.deactivated
            )
            for agent in records.agents.values()
        ]
        deactivated = sum(not slave["active"] for slave in slaves)
        state.update(
            {
                "version": mesos_state.MESOS_VERSION,
                "corral_version": corral.__version__,
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

    def describe(self) -> dict[str, Any]:
        """Corral's own keys of ``/master/state`` (``agents``, ``tasks``,
        ``unreachable_agents``, ``recovered_agents``, ``allocator``), which ``corral`` reads."""
        master = self.master
        state = self.records
        frameworks = []
        for framework in state.frameworks.values():
            tasks = [state.tasks[(framework.id, t)] for t in state.tasks_of(framework.id)]
            frameworks.append(
                {
                    "id": framework.id,
                    "name": framework.info.name,
                    "user": framework.info.user,
                    "pid": framework.pid,
                    "roles": list(framework.roles),
                    "active": framework.active,
                    "connected": framework.connected,
                    "failover_timeout": framework.info.failover_timeout,
                    "capabilities": [c.type.value for c in framework.info.capabilities],
                    "tasks": [_task_json(task) for task in tasks],
                    "completed_tasks": [_task_json(task) for task in framework.completed],
                    "offers": [
                        _offer_json(state.offers[offer_id].offer)
                        for offer_id in sorted(framework.offers)
                    ],
                }
            )
        all_tasks = [_task_json(task) for task in state.tasks.values()]
        for framework in state.frameworks.values():
            all_tasks.extend(_task_json(task) for task in framework.completed)
        return {
            "id": master.ids_prefix,
            "allocator": master.allocator_info(),
            "pid": str(master.pid),
            "hostname": master.options.hostname,
            "version": corral.__version__,
            "agents": [_agent_json(agent, state.used_on(agent)) for agent in state.agents.values()],
            "unreachable_agents": [
                {"id": agent_id, "hostname": info.hostname}
                for agent_id, info in state.unreachable.items()
            ],
            "recovered_agents": [  # in the registry, not re-registered since the master started
                {"id": agent_id, "hostname": info.hostname}
                for agent_id, info in sorted(state.recovering.items())
                if agent_id not in state.agents
            ],
            "frameworks": frameworks,
            "tasks": all_tasks,
        }

    def v1_agents(self) -> dict[str, Any]:
        records = self.records
        return {
            "agents": [
                mesos_state.v1_agent(
                    records, agent, self._agent_time(agent.id), agent.id in records.deactivated
                )
                for agent in records.agents.values()
            ],
            "recovered_agents": [
                json_compatible(info.to_wire())
                for agent_id, info in sorted(records.recovering.items())
                if agent_id not in records.agents
            ],
        }

    def v1_frameworks(self) -> dict[str, Any]:
        records = self.records
        return {
            "frameworks": [
                mesos_state.v1_framework(records, f, self._framework_time(f.id))
                for f in records.frameworks.values()
            ],
            "completed_frameworks": [],
        }

    def v1_executors(self) -> dict[str, Any]:
        return {"executors": mesos_state.v1_executors(self.records)}

    def v1_tasks(self) -> dict[str, Any]:
        records = self.records
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
        records = self.records
        for entry in mesos_state.role_entries(records, records.weights, records.quotas):
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
        for task in self.records.tasks.values():
            if role in (task.resources.allocation_roles() or {"*"}):
                used = used + task.resources
        return used.unallocated()

    def v1_quota(self) -> dict[str, Any]:
        infos, configs = [], []
        for role, quota in sorted(self.records.quotas.items()):
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
        _written(lambda: self.master.update_weights(parsed), "weights")  # all valid: apply all
        self.snapshot.invalidate()
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
        self.snapshot.invalidate()
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
        self.snapshot.invalidate()
        return web.Response(status=200)

    def _reactivate_agent(self, body: dict[str, Any], _: web.Request) -> web.Response:
        agent_id = AgentID(
            id_value(section(body, "REACTIVATE_AGENT"), "agent_id", "REACTIVATE_AGENT")
        )
        if not _written(lambda: self.master.reactivate_agent(agent_id), "reactivation"):
            raise CallError(400, f"agent {agent_id} is not registered; list agents with GET_AGENTS")
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
                        self.records,
                        agent,
                        self._agent_time(agent.id),
                        agent.id in self.records.deactivated,
                    )
                },
            }
        )

    def agent_removed(self, agent_id: AgentID) -> None:
        self.registered.agents.pop(agent_id, None)
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
                        self.records, framework, self._framework_time(framework.id)
                    )
                },
            }
        )

    def framework_removing(self, framework: FrameworkRecord) -> None:
        """Before the master forgets a framework: remember it as completed, and tell."""
        entry = mesos_state.framework_json(
            self.records, framework, self._framework_time(framework.id)
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


def _written(command: Callable[[], Any], what: str) -> Any:
    """Run a command the master writes to its registry; 503 if it could not (nothing changed)."""
    try:
        return command()
    except RegistryError as error:
        raise CallError(503, f"the {what} could not be recorded: {error}; retry later") from None


# Routes also served at Mesos's absolute paths (``/state`` as well as ``/master/state``).
_ALIASED = (
    "/state",
    "/state-summary",
    "/slaves",
    "/frameworks",
    "/tasks",
    "/roles",
    "/flags",
    "/version",
    "/health",
    "/api/v1",
)
_TASK_LISTS = frozenset({"tasks", "completed_tasks", "unreachable_tasks", "offers", "executors"})


def _task_json(task: TaskRecord) -> dict[str, Any]:
    return {
        "id": task.task_id,
        "name": task.name,
        "framework_id": task.framework_id,
        "agent_id": task.agent_id,
        "executor_id": task.executor_id or "",
        "state": task.state.value,
        "resources": unallocated_json(task.resources),
    }


def _offer_json(offer: Offer) -> dict[str, Any]:
    return {
        "id": offer.id,
        "agent_id": offer.agent_id,
        "resources": offer.resources.unallocated().to_json(),
    }


def _agent_json(agent: AgentRecord, used: Resources) -> dict[str, Any]:
    info = agent.info
    return {
        "id": agent.id,
        "hostname": info.hostname,
        "port": info.port,
        "pid": agent.pid,
        "version": agent.version,
        "active": agent.connected,
        "connected": agent.connected,
        "pending_removal": agent.pending_removal,
        "resources": resources_json(info.resources),
        "used_resources": unallocated_json(used),
        "attributes": [json_compatible(attribute.to_wire()) for attribute in info.attributes],
    }
