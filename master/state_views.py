"""Mesos's state endpoints on the master: ``/master/state`` and its views (``/slaves``,
``/frameworks``, ``/tasks``, ``/roles``, ``/flags``, ``/version``, ``/health``, ``/info``), and
the v1 read models the operator API answers ``GET_*`` with.

``StateViews`` reads the master's ``MasterState`` (through ``MasterSurface``) and keeps only
what Mesos shows that the records do not hold: when agents and frameworks registered, and the
last completed frameworks (it is an ``Observer`` of the master's cores for that). The state
endpoints are served from a ``StateSnapshot`` (master/state_snapshot.py), so that polling never
stalls the master; ``?jsonp=callback`` wraps the JSON for the Mesos web UI. ``POST
/master/agents/gone`` is Corral's form of MARK_AGENT_GONE.
"""

from __future__ import annotations

import heapq
import json
import operator
import re
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from aiohttp import web

import corral
from corral.ids import AgentID, FrameworkID
from corral.protocol import TaskStatus, json_compatible
from corral.resources import Resources
from corral.task_states import TaskState
from corral.v1.http import JSON, CallError, json_body, text
from corral.v1.model import resources_json, unallocated_json
from libprocess.future import Future
from libprocess.http import request_body
from master import mesos_state
from master.observer import Observer
from master.state import AgentRecord, FrameworkRecord, TaskRecord
from master.state_fragments import StateFragments
from master.state_snapshot import StateSnapshot
from master.surface import MasterSurface

COMPLETED_FRAMEWORKS_KEPT = 50  # as Mesos's --max_completed_frameworks
BUILD_DATE = "2024-01-01 00:00:00"
_CALLBACK = re.compile(r"^[A-Za-z_$][\w$]*(\.[A-Za-z_$][\w$]*)*$")


class StateViews(Observer):
    """The state endpoints and read models of one master; see the module docstring."""

    def __init__(self, master: MasterSurface) -> None:
        self.master = master
        self.records = master.state
        self.registered = mesos_state.Registered()
        self.completed_frameworks: deque[dict[str, Any]] = deque(maxlen=COMPLETED_FRAMEWORKS_KEPT)
        self.started = time.time()
        self.fragments = StateFragments()
        self._slaves = self.fragments.table(mesos_state.agent_json)
        self._agents = self.fragments.table(
            lambda agent, records: _agent_json(agent, records.used_on(agent))
        )
        self._tasks = self.fragments.table(mesos_state.task_json)
        self._own_tasks = self.fragments.table(_task_json)
        self._completed = self.fragments.table(lambda entry: entry)  # never changed once made
        self._totals = _TaskTotals()
        threshold = master.options.state_fork_threshold
        records = self.records
        self.snapshot = StateSnapshot(
            self.build_state,
            master.runtime.clock.now,
            master.options.state_cache_seconds,
            self.fragments.parts,
            # Agents and tasks from which a build is made in a forked child (and no longer
            # on the master's actor): master/state_fork.py.
            fork_when=None
            if threshold is None
            else lambda: len(records.agents) + len(records.tasks) >= threshold,
            loop=lambda: master.runtime.loop,
        )

    # -- the routes (installed on the master process) ---------------------------------------

    def install(self, master: MasterSurface) -> None:
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
            ("/agents/gone", self.mark_agent_gone_http, 'POST {"agent_id": ...}: the agent is '
             "gone for good (as Mesos's MARK_AGENT_GONE); its tasks end and it may not "
             "re-register"),
        ]  # fmt: skip
        for path, handler, description in routes:
            # Reads are served ahead of the master's queued messages: a poll answers in the
            # time of a build (or none: a cached one), not of the master's backlog.
            master.route(path, handler, description, ahead=path != "/agents/gone")
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
                    mesos_state.framework_with_resource_maps(f, self._with_resource_maps)
                    for f in state["frameworks"]
                ],
                "completed_frameworks": [
                    mesos_state.framework_with_resource_maps(f, self._with_resource_maps)
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
            body = json_body(request_body(request), '{"agent_id": "<id>"}')
        except CallError as error:
            return web.Response(status=error.status, text=error.reason + "\n")
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
            "allocation_hold_backlog": str(options.allocation_hold_backlog or ""),
            "agent_ping_timeout": seconds(options.agent_ping_timeout),
            "max_agent_ping_timeouts": str(options.max_agent_ping_timeouts),
            "offer_timeout": seconds(options.offer_timeout),
            "agent_removal_rate_limit": "" if rate is None else f"{rate:g}/1secs",
            "agent_reregister_timeout": seconds(options.agent_reregister_timeout),
            "state_cache_seconds": seconds(options.state_cache_seconds),
            "state_fork_threshold": str(
                "" if options.state_fork_threshold is None else options.state_fork_threshold
            ),
            "gc_thresholds": ",".join(map(str, options.gc_thresholds or ())),
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

    def agent_time(self, agent_id: AgentID) -> float:
        return self.registered.agents.get(agent_id, self.started)

    def framework_time(self, framework_id: FrameworkID) -> float:
        return self.registered.frameworks.get(framework_id, self.started)

    def build_state(self) -> dict[str, Any]:
        """``/master/state``: Mesos's keys, plus Corral's own (``agents``, ``tasks``,
        ``unreachable_agents``, ``recovered_agents``, ``allocator``) that ``corral`` reads.

        Each agent's, framework's task's and completed framework's JSON is a fragment
        (master/state_fragments.py), built again only when what it shows changed; the lists
        and the few keys around them are built anew.
        """
        master = self.master
        records = self.records
        fragments = self.fragments
        tasks = records.tasks
        slaves, agents = [], []
        for agent in records.agents.values():
            registered = self.agent_time(agent.id)
            deactivated = agent.id in records.deactivated
            key = (
                agent.info,
                agent.pid,
                agent.version,
                agent.connected,
                agent.pending_removal,
                registered,
                deactivated,
                tuple([tasks[task_key].resources for task_key in agent.tasks]),
                tuple(agent.offers),
                tuple(agent.executors.items()),
            )
            slaves.append(self._slaves.get(agent, key, records, agent, registered, deactivated))
            agents.append(self._agents.get(agent, key, agent, records))
        deactivated_count = sum(not slave["active"] for slave in slaves)
        executors = mesos_state.executors_by_framework(records)
        frameworks = [
            mesos_state.framework_json(
                records,
                framework,
                self.framework_time(framework.id),
                executors.get(framework.id, []),
                self._task_fragments,
                self._totals.of,
            )
            for framework in records.frameworks.values()
        ]
        self._totals.keep(records.frameworks)
        all_tasks = self._own_tasks.many(tasks.values(), _task_key)
        for framework in records.frameworks.values():
            all_tasks.extend(self._own_tasks.many(framework.completed, _task_key))
        completed = [self._completed.get(entry, (), entry) for entry in self.completed_frameworks]
        state = {
            "id": master.ids_prefix,
            "allocator": master.allocator_info(),
            "pid": str(master.pid),
            "hostname": master.options.hostname,
            "version": mesos_state.MESOS_VERSION,
            "agents": agents,
            "unreachable_agents": [
                {"id": agent_id, "hostname": info.hostname}
                for agent_id, info in records.unreachable.items()
            ],
            "recovered_agents": [  # in the registry, not re-registered since the master started
                {"id": agent_id, "hostname": info.hostname}
                for agent_id, info in sorted(records.recovering.items())
                if agent_id not in records.agents
            ],
            "frameworks": frameworks,
            "tasks": all_tasks,
            "corral_version": corral.__version__,
            "build_date": BUILD_DATE,
            "build_user": "corral",
            "start_time": self.started,
            "elected_time": self.started,
            "leader": str(master.pid),
            "leader_info": json_compatible(master.master_info.to_wire()),
            "activated_slaves": len(slaves) - deactivated_count,
            "deactivated_slaves": deactivated_count,
            "unreachable_slaves": len(records.unreachable),
            "flags": self.flags(),
            "capabilities": [],
            "slaves": slaves,
            "completed_frameworks": completed,
            "orphan_tasks": [],
            "unregistered_frameworks": sorted(records.recovered_frameworks),
        }
        fragments.sweep()
        return state

    def _task_fragments(self, tasks: Iterable[TaskRecord]) -> list[dict[str, Any]]:
        """Tasks as a framework of ``/master/state`` lists them (Mesos's keys)."""
        return self._tasks.many(tasks, _task_key)

    def _with_resource_maps(self, entry: dict[str, Any]) -> dict[str, Any]:
        return self.fragments.derived(entry, "maps", mesos_state.with_resource_maps)

    def v1_agents(self) -> dict[str, Any]:
        records = self.records
        return {
            "agents": [
                mesos_state.v1_agent(
                    records, agent, self.agent_time(agent.id), agent.id in records.deactivated
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
                mesos_state.v1_framework(records, f, self.framework_time(f.id))
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
    ) -> web.Response | Future[web.Response]:
        """A cached view of the state, as JSON or, with ``?jsonp=callback``, JavaScript
        (later, when a forked child builds it)."""
        callback = request.query.get("jsonp")
        if callback is not None and not _CALLBACK.match(callback):
            return text(
                400,
                f"jsonp={callback[:60]!r} is not a JavaScript function name; give a name "
                "such as 'angular.callbacks._0' (letters, digits, _, $ and dots)",
            )
        body = self.snapshot.view(name, derive)
        if isinstance(body, Future):
            return body.then(lambda built: _state_body(built, callback))
        return _state_body(body, callback)

    def tasks_response(self, request: web.Request) -> web.Response | Future[web.Response]:
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
                task
                for framework in state["frameworks"]
                for task in framework["tasks"] + framework["completed_tasks"]
                if (framework_id is None or task["framework_id"] == framework_id)
                and (task_id is None or task["id"] == task_id)
            ]
            if limit == -1:
                tasks.sort(key=_latest_status_time, reverse=order == "des")
                page = tasks[offset:]
            else:  # as sorting them all, then slicing (heapq's nsmallest/nlargest are stable)
                pick = heapq.nlargest if order == "des" else heapq.nsmallest
                page = pick(offset + limit, tasks, key=_latest_status_time)[offset:]
            return {"tasks": [self._with_resource_maps(task) for task in page]}

        return self.state_response(request, name, derive)

    # -- what the records do not hold (as an observer of the master's cores) ----------------

    def agent_added(self, agent: AgentRecord) -> None:
        self.registered.agents[agent.id] = time.time()

    def agent_removed(self, agent_id: AgentID) -> None:
        self.registered.agents.pop(agent_id, None)

    def framework_added(self, framework: FrameworkRecord) -> None:
        self.registered.frameworks[framework.id] = time.time()

    def framework_removing(self, framework: FrameworkRecord) -> None:
        """Before the master forgets a framework: remember it as completed."""
        entry = mesos_state.framework_json(
            self.records, framework, self.framework_time(framework.id)
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
)
_TASK_LISTS = frozenset({"tasks", "completed_tasks", "unreachable_tasks", "offers", "executors"})


# What a task's JSON is made of that can change (nothing else of a task record does); in C,
# as it runs for every task at every build.
_task_key: Callable[[TaskRecord], tuple[TaskState, TaskStatus | None]] = operator.attrgetter(
    "state", "status"
)


class _TaskTotals:
    """Each framework's live tasks' resources summed, kept between builds: a build adds the
    tasks that came and takes off those that went, where that is exact (scalars: whole
    millis); a framework whose leaving tasks held ranges or sets (ports) is summed anew."""

    def __init__(self) -> None:
        # framework id -> (the tasks summed, by id; their total)
        self._kept: dict[FrameworkID, tuple[dict[int, TaskRecord], Resources]] = {}

    def of(self, framework: FrameworkRecord, tasks: list[TaskRecord]) -> Resources:
        now = {id(task): task for task in tasks}
        kept = self._kept.get(framework.id)
        total = None
        if kept is not None:
            before, total = kept
            gone = [task for ident, task in before.items() if now.get(ident) is not task]
            if any(task.resources.has_non_scalars() for task in gone):
                total = None
            else:
                for task in gone:
                    total = total - task.resources
                for ident, task in now.items():
                    if before.get(ident) is not task:
                        total = total + task.resources
        if total is None:
            total = Resources()
            for task in tasks:
                total = total + task.resources
        self._kept[framework.id] = (now, total)
        return total

    def keep(self, frameworks: Iterable[FrameworkID]) -> None:
        """Forget the frameworks not listed (after a build)."""
        for framework_id in set(self._kept) - set(frameworks):
            del self._kept[framework_id]


def _state_body(body: bytes, callback: str | None) -> web.Response:
    if callback is None:
        return web.Response(body=body, content_type=JSON)
    return web.Response(
        body=callback.encode() + b"(" + body + b");", content_type="application/javascript"
    )


def _latest_status_time(task: dict[str, Any]) -> tuple[float, str]:
    """How ``/master/tasks`` orders tasks: by their latest status's time, then id."""
    statuses = task["statuses"]
    return (statuses[-1]["timestamp"] if statuses else 0.0, task["id"])


def _task_json(task: TaskRecord) -> dict[str, Any]:
    entry = {
        "id": task.task_id,
        "name": task.name,
        "framework_id": task.framework_id,
        "agent_id": task.agent_id,
        "executor_id": task.executor_id or "",
        "state": task.state.value,
        "resources": unallocated_json(task.resources),
    }
    status = task.status
    if status is not None and status.healthy is not None:  # its health check's latest word
        entry["healthy"] = status.healthy
    return entry


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
