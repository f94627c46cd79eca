"""The agent's v1 operator API (``POST /api/v1`` on port 5051), as Mesos's ``agent.proto``.

``OperatorApi`` lives inside the agent process (its handlers run there, one request at a
time) and is a view (agent/agent_view.py): it reads the agent's public records and calls its
public commands. Calls are JSON ``{"type": …}`` objects and are
answered in ``agent.proto``'s Response shapes, in proto3 JSON (ids as ``{"value": …}``,
resources as lists, bytes as base64): GET_HEALTH, GET_FLAGS, GET_VERSION, GET_METRICS,
GET_LOGGING_LEVEL, GET_STATE, GET_CONTAINERS, GET_FRAMEWORKS, GET_EXECUTORS, GET_TASKS,
GET_AGENT, GET_OPERATIONS (none: Corral's agents run no offer operations of their own),
LIST_FILES and READ_FILE (confined to the sandboxes by agent/files.py, run off the actor),
KILL_CONTAINER and WAIT_CONTAINER on executors' containers. Every other call of the proto
(nested and standalone containers, ATTACH_*, resource providers, PRUNE_IMAGES,
SET_LOGGING_LEVEL) is answered 501 with a sentence. Statuses for bad requests are those of
corral/v1/http.py (Mesos's).

Also ``/version``, ``/health`` and ``/flags`` (Mesos's agent serves them; tools probe them).

Decisions where Corral differs from Mesos: GET_LOGGING_LEVEL maps the structured log's level
onto glog verbosity (INFO and above 0, DEBUG 1, everything 2). KILL_CONTAINER with SIGKILL
(the default) destroys the container through the agent, so the executor's tasks end as when
it dies; another signal goes to the container's main process only.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import logging
import os
import signal
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web

import corral
from agent import files, mesos_state
from agent.agent_view import AgentView
from agent.executor_run import ExecutorRun, TaskRecord
from containerizer import ContainerTermination
from corral.ids import AgentID
from corral.protocol import ExecutorInfo, Task, json_compatible
from corral.resources import Resources
from corral.v1.http import CallError, answer, id_value, parse_call, section, text
from libprocess import Future, Promise, collect, request_body

log = structlog.get_logger("agent.operator_api")

API = "the agent's /api/v1"
BUILD_DATE = "2024-01-01 00:00:00"  # as the master's /version (Corral has no build stamp)
BUILD_TIME = 1704067200.0
READ_CAP = 16 * os.sysconf("SC_PAGE_SIZE")  # bytes READ_FILE returns at most (Mesos: 16 pages)

# Every call type of Mesos's agent.proto (1.11); those without a handler answer 501.
MESOS_CALLS = frozenset(
    (
        "UNKNOWN",
        "GET_HEALTH",
        "GET_FLAGS",
        "GET_VERSION",
        "GET_METRICS",
        "GET_LOGGING_LEVEL",
        "SET_LOGGING_LEVEL",
        "LIST_FILES",
        "READ_FILE",
        "GET_STATE",
        "GET_CONTAINERS",
        "GET_FRAMEWORKS",
        "GET_EXECUTORS",
        "GET_OPERATIONS",
        "GET_TASKS",
        "GET_AGENT",
        "GET_RESOURCE_PROVIDERS",
        "LAUNCH_NESTED_CONTAINER",
        "WAIT_NESTED_CONTAINER",
        "KILL_NESTED_CONTAINER",
        "REMOVE_NESTED_CONTAINER",
        "LAUNCH_NESTED_CONTAINER_SESSION",
        "ATTACH_CONTAINER_INPUT",
        "ATTACH_CONTAINER_OUTPUT",
        "LAUNCH_CONTAINER",
        "WAIT_CONTAINER",
        "KILL_CONTAINER",
        "REMOVE_CONTAINER",
        "ADD_RESOURCE_PROVIDER_CONFIG",
        "UPDATE_RESOURCE_PROVIDER_CONFIG",
        "REMOVE_RESOURCE_PROVIDER_CONFIG",
        "MARK_RESOURCE_PROVIDER_GONE",
        "PRUNE_IMAGES",
    )
)

Handler = Callable[[dict[str, Any]], "dict[str, Any] | web.StreamResponse | Future[Any]"]


class OperatorApi:
    """The v1 operator calls of one agent; see the module docstring."""

    def __init__(self, agent: AgentView) -> None:
        self.agent = agent
        self._calls: dict[str, Handler] = {
            "GET_HEALTH": lambda call: {"healthy": True},
            "GET_FLAGS": lambda call: {
                "flags": [
                    {"name": name, "value": value}
                    for name, value in sorted(
                        mesos_state.flags(agent.options, agent.info.hostname).items()
                    )
                ]
            },
            "GET_VERSION": lambda call: {"version_info": version_info()},
            "GET_METRICS": lambda call: {
                "metrics": [
                    {"name": name, "value": value}
                    for name, value in sorted(agent.runtime.metrics.snapshot().items())
                ]
            },
            "GET_LOGGING_LEVEL": lambda call: {"level": logging_level()},
            "GET_STATE": lambda call: self.state(),
            "GET_FRAMEWORKS": lambda call: self.frameworks(),
            "GET_EXECUTORS": lambda call: self.executors(),
            "GET_TASKS": lambda call: self.tasks(),
            "GET_AGENT": lambda call: {"agent_info": json_compatible(agent.info.to_wire())},
            "GET_OPERATIONS": lambda call: {"operations": []},
            "GET_CONTAINERS": self._containers,
            "LIST_FILES": self._list_files,
            "READ_FILE": self._read_file,
            "KILL_CONTAINER": self._kill_container,
            "WAIT_CONTAINER": self._wait_container,
        }

    # -- HTTP -------------------------------------------------------------------------------

    def handle(self, request: web.Request) -> web.StreamResponse | Future[Any]:
        """``POST /api/v1``: one call; a bad one is answered with a reason, nothing changed."""
        try:
            call_type, call = parse_call(
                request.method, request.headers, request_body(request), MESOS_CALLS, API
            )
            handler = self._calls.get(call_type)
            if handler is None:
                raise CallError(
                    501,
                    f"{call_type} is a Mesos agent call that Corral does not implement; "
                    f"implemented: {', '.join(sorted(self._calls))}",
                )
            result = handler(call)
        except CallError as error:
            log.info("operator_call_refused", status=error.status, reason=error.reason)
            return error.response()
        log.debug("operator_call", type=call_type)
        if isinstance(result, web.StreamResponse | Future):
            return result
        return answer(call_type, result)

    def version_route(self, request: web.Request) -> web.Response:
        """``/version``: clients read ``version`` as Mesos's release numbers."""
        return web.json_response(version_info())

    def health_route(self, request: web.Request) -> web.Response:
        """``/health``: 200 while the agent runs (load balancers and tools probe it)."""
        return web.Response(status=200)

    def flags_route(self, request: web.Request) -> web.Response:
        """``/flags``: the agent's settings under Mesos's flag names."""
        agent = self.agent
        return web.json_response({"flags": mesos_state.flags(agent.options, agent.info.hostname)})

    # -- what the agent runs ----------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return {
            "get_tasks": self.tasks(),
            "get_executors": self.executors(),
            "get_frameworks": self.frameworks(),
        }

    def frameworks(self) -> dict[str, Any]:
        """``GetFrameworks``: the frameworks with executors here, and those that left."""
        live = []
        for framework in self.agent.frameworks.values():
            info = framework.info
            if info.id is None:
                info = dataclasses.replace(info, id=framework.id)
            live.append({"framework_info": json_compatible(info.to_wire())})
        return {
            "frameworks": live,
            "completed_frameworks": [
                {"framework_info": _framework_info(entry)}
                for entry in self.agent.completed_frameworks
            ],
        }

    def executors(self) -> dict[str, Any]:
        """``GetExecutors``: running executors (their ExecutorInfo) and ended ones."""
        live, completed = [], []
        for framework in self.agent.frameworks.values():
            for executor in framework.executors.values():
                live.append({"executor_info": _executor_info(executor.info, framework.id)})
            completed.extend(
                {"executor_info": _ended_executor_info(entry, str(framework.id))}
                for entry in framework.completed_executors
            )
        for entry in self.agent.completed_frameworks:
            for ended in [*entry.get("executors", ()), *entry.get("completed_executors", ())]:
                completed.append({"executor_info": _ended_executor_info(ended, entry["id"])})
        return {"executors": live, "completed_executors": completed}

    def tasks(self) -> dict[str, Any]:
        """``GetTasks``, sorted as Mesos's agent sorts them: ``pending`` (its executor not yet
        launched), ``queued`` (launched, not yet registered), ``launched`` (given to the
        executor, not ended), ``terminated`` (ended, the update not yet acknowledged) and
        ``completed`` (ended and acknowledged)."""
        agent = self.agent
        unacknowledged = agent.unacknowledged()
        lists: dict[str, list[dict[str, Any]]] = {
            "pending_tasks": [],
            "queued_tasks": [],
            "launched_tasks": [],
            "terminated_tasks": [],
            "completed_tasks": [],
        }
        for executor in agent.executors():
            waiting = "queued_tasks" if executor.container_up else "pending_tasks"
            for task in executor.queued():
                lists[waiting].append(self._task(executor, task))
            for task in executor.launched():
                if not task.state.is_terminal:
                    kept = "launched_tasks"
                elif (str(executor.framework_id), str(task.task_id)) in unacknowledged:
                    kept = "terminated_tasks"
                else:
                    kept = "completed_tasks"
                lists[kept].append(self._task(executor, task))
        for ended in _ended_executors(agent):
            lists["completed_tasks"].extend(
                _ended_task(task) for task in ended.get("completed_tasks", ())
            )
        return lists

    def _task(self, executor: ExecutorRun, task: TaskRecord) -> dict[str, Any]:
        """Mesos's ``Task`` of a task this agent holds (v1: ``agent_id``)."""
        info = task.info
        agent_id = self.agent.agent_id or info.agent_id or AgentID("")
        return json_compatible(
            Task(
                name=info.name,
                task_id=info.task_id,
                framework_id=executor.framework_id,
                agent_id=agent_id,
                state=task.state,
                executor_id=None if executor.command_task else executor.executor_id,
                resources=info.resources,
                statuses=() if task.latest is None else (task.latest,),
                labels=info.labels,
            ).to_wire()
        )

    # -- containers -------------------------------------------------------------------------

    def _running(self) -> list[ExecutorRun]:
        return [executor for executor in self.agent.executors() if executor.container_up]

    def _containers(self, call: dict[str, Any]) -> Future[web.Response]:
        """``GetContainers``: every executor's container, with its usage sampled now (off
        the actor; a container that ended meanwhile is listed without statistics)."""
        entries = [
            self.agent.usage_of(executor)
            .recover(lambda _failed: None)
            .then(
                lambda stats, executor=executor: _container(
                    executor, None if stats is None else stats.to_json()
                )
            )
            for executor in self._running()
        ]
        return collect(entries).then(
            lambda listed: answer("GET_CONTAINERS", {"containers": listed})
        )

    def _executor_of(self, call: dict[str, Any], call_type: str) -> ExecutorRun:
        container_id = id_value(section(call, call_type), "container_id", call_type)
        for executor in self._running():
            if str(executor.container_id) == container_id:
                return executor
        raise CallError(
            404,
            f"container {container_id} is not running on this agent; list the running ones "
            "with GET_CONTAINERS",
        )

    def _kill_container(self, call: dict[str, Any]) -> web.Response:
        """``KillContainer``: SIGKILL (the default) destroys it as the agent would; another
        signal is sent to its main process."""
        executor = self._executor_of(call, "KILL_CONTAINER")
        number = section(call, "KILL_CONTAINER").get("signal", signal.SIGKILL.value)
        valid = {int(s) for s in signal.valid_signals()}
        if isinstance(number, bool) or not isinstance(number, int) or number not in valid:
            raise CallError(
                400, f"KILL_CONTAINER's signal must be a signal number (e.g. 15), got {number!r}"
            )
        if number != signal.SIGKILL and executor.container is None:
            raise CallError(
                409, f"container {executor.container_id} has no process to signal yet; retry"
            )
        log.info("operator_kills_container", container_id=executor.container_id, signal=number)
        try:
            self.agent.kill_container(executor, number)
        except ProcessLookupError:
            raise CallError(
                404, f"container {executor.container_id} has ended; see WAIT_CONTAINER"
            ) from None
        return web.Response(status=200)

    def _wait_container(self, call: dict[str, Any]) -> Future[web.Response]:
        """``WaitContainer``: answered when the container's main process ends."""
        executor = self._executor_of(call, "WAIT_CONTAINER")
        promise: Promise[web.Response] = Promise()

        def answered(waited: Future[ContainerTermination]) -> None:
            termination = None if waited.is_failed() else waited.value
            if termination is None:
                message = f"container {executor.container_id} was lost: {waited.failure}"
                promise.set(text(404, message))
                return
            result: dict[str, Any] = {}
            if termination.status is not None:
                result["exit_status"] = termination.status
            if termination.reason is not None:
                result["reason"] = str(termination.reason)
            if termination.message:
                result["message"] = termination.message
            promise.set(answer("WAIT_CONTAINER", result))

        self.agent.wait_container(executor).on_any(answered)
        return promise.future

    # -- sandbox files ----------------------------------------------------------------------

    def _list_files(self, call: dict[str, Any]) -> Future[web.Response]:
        path = _path(section(call, "LIST_FILES"), "LIST_FILES")
        return files.off_actor(self.agent, list_files, self.agent.options.work_dir, path)

    def _read_file(self, call: dict[str, Any]) -> Future[web.Response]:
        body = section(call, "READ_FILE")
        path = _path(body, "READ_FILE")
        offset = _count(body, "offset", None)
        length = _count(body, "length", READ_CAP)
        work_dir = self.agent.options.work_dir
        return files.off_actor(self.agent, read_file, work_dir, path, offset, length)


# -- pieces without the agent (pure, or blocking file work) -----------------------------------


def version_info() -> dict[str, Any]:
    """Mesos's ``VersionInfo``; ``version`` is the Mesos release whose APIs Corral speaks."""
    return {
        "version": mesos_state.MESOS_VERSION,
        "build_date": BUILD_DATE,
        "build_time": BUILD_TIME,
        "build_user": "corral",
        "corral_version": corral.__version__,
    }


def logging_level() -> int:
    """The log's level as glog verbosity: INFO and above 0, DEBUG 1, everything 2."""
    logger = structlog.get_logger("agent.operator_api").bind()
    level_of = getattr(logger, "get_effective_level", None)
    level = level_of() if callable(level_of) else logging.INFO
    return max(0, (logging.INFO - level) // 10)


def list_files(work_dir: Path, path: str) -> web.Response:
    """``ListFiles``: the entries of a sandbox directory (or the one file), as FileInfos."""
    try:
        real = files.resolve(work_dir, path)  # files.Refused is a CallError
        children = sorted(real.iterdir()) if real.is_dir() else [real]
    except CallError as error:
        return error.response()
    except OSError as error:
        return text(500, f"cannot list {path!r}: {error.strerror}")
    infos = []
    for child in children:
        with contextlib.suppress(FileNotFoundError):  # removed since listed: left out
            infos.append(files.file_info(child, v1=True))
    return answer("LIST_FILES", {"file_infos": infos})


def read_file(work_dir: Path, path: str, offset: int, length: int) -> web.Response:
    """``ReadFile``: ``{size, data}``, at most 16 pages from ``offset``; nothing at or past
    the end (how clients tail a file)."""
    try:
        real = files.resolve(work_dir, path)  # files.Refused is a CallError
        if real.is_dir():
            raise CallError(400, f"{path!r} is a directory; read a file, or LIST_FILES it")
        with open(real, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            data = b""
            if offset < size and length > 0:
                handle.seek(offset)
                data = handle.read(min(length, READ_CAP))
    except CallError as error:
        return error.response()
    except OSError as error:
        return text(500, f"cannot read {path!r}: {error.strerror}")
    return answer("READ_FILE", {"size": size, "data": base64.b64encode(data).decode()})


def _path(body: dict[str, Any], call_type: str) -> str:
    path = body.get("path")
    if not isinstance(path, str) or not path:
        raise CallError(
            400,
            f'{call_type} needs "path": a sandbox path, as GET_EXECUTORS / the state\'s '
            f'"directory" gives it, got {json.dumps(body)[:200]}',
        )
    return path


def _count(body: dict[str, Any], field: str, default: int | None) -> int:
    """A ``uint64`` field: a number, or its decimal string (proto3 JSON writes them so)."""
    value = body.get(field)
    if value is None and default is not None:
        return default
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        needed = "needs" if default is None else "takes"
        raise CallError(400, f'READ_FILE {needed} "{field}": a whole number >= 0, got {value!r}')
    return value


def _container(executor: ExecutorRun, statistics: dict[str, Any] | None) -> dict[str, Any]:
    """``GetContainers.Container``."""
    status: dict[str, Any] = {"container_id": {"value": str(executor.container_id)}}
    if executor.container is not None:
        status["executor_pid"] = executor.container.pid
    entry: dict[str, Any] = {
        "framework_id": {"value": str(executor.framework_id)},
        "executor_id": {"value": str(executor.executor_id)},
        "executor_name": executor.info.name or "",
        "container_id": {"value": str(executor.container_id)},
        "container_status": status,
    }
    if statistics is not None:
        entry["resource_statistics"] = statistics
    return entry


def _executor_info(info: ExecutorInfo, framework_id: str) -> dict[str, Any]:
    if info.framework_id is None:
        info = dataclasses.replace(info, framework_id=framework_id)
    return json_compatible(info.to_wire())


def _ended_executors(agent: AgentView) -> Iterable[dict[str, Any]]:
    """The state JSON (agent/mesos_state.py) of every executor that ended here."""
    for framework in agent.frameworks.values():
        yield from framework.completed_executors
    for entry in agent.completed_frameworks:
        yield from entry.get("executors", ())
        yield from entry.get("completed_executors", ())


def _framework_info(entry: dict[str, Any]) -> dict[str, Any]:
    """A v1 ``FrameworkInfo`` from the state JSON of a framework that left."""
    info = {
        "id": {"value": entry["id"]},
        "name": entry.get("name", ""),
        "user": entry.get("user", ""),
        "failover_timeout": entry.get("failover_timeout", 0.0),
        "checkpoint": bool(entry.get("checkpoint")),
        "roles": list(entry.get("roles", ())),
        "hostname": entry.get("hostname", ""),
        "principal": entry.get("principal", ""),
    }
    return {key: value for key, value in info.items() if value not in ("", None)}


def _ended_executor_info(entry: dict[str, Any], framework_id: str) -> dict[str, Any]:
    """A v1 ``ExecutorInfo`` from the state JSON of an executor that ended."""
    info: dict[str, Any] = {
        "executor_id": {"value": entry["id"]},
        "framework_id": {"value": framework_id},
        "resources": _resources(entry.get("resources", {})),
    }
    if entry.get("type") == "CUSTOM":
        info["type"] = "CUSTOM"
    if entry.get("name"):
        info["name"] = entry["name"]
    if entry.get("labels"):
        info["labels"] = {"labels": entry["labels"]}
    return info


def _ended_task(entry: dict[str, Any]) -> dict[str, Any]:
    """A v1 ``Task`` from the state JSON of a task (``slave_id`` becomes ``agent_id``)."""
    task: dict[str, Any] = {
        "name": entry.get("name", ""),
        "task_id": {"value": entry["id"]},
        "framework_id": {"value": entry["framework_id"]},
        "agent_id": {"value": entry.get("slave_id", "")},
        "state": entry["state"],
        "resources": _resources(entry.get("resources", {})),
    }
    if entry.get("executor_id"):
        task["executor_id"] = {"value": entry["executor_id"]}
    if entry.get("labels"):
        task["labels"] = {"labels": entry["labels"]}
    return task


def _resources(mapped: dict[str, Any]) -> list[dict[str, Any]]:
    """Resources as v1 JSON from Mesos's map form ``{"cpus": 1, "ports": "[1-2]"}`` (how
    ended executors and tasks are kept); reservations were folded into the map."""
    parts = []
    for name, value in mapped.items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            if value:
                parts.append(f"{name}:{value}")
        elif isinstance(value, str) and value:
            parts.append(f"{name}:{value.replace(' ', '')}")
    try:
        return json_compatible(Resources.parse(";".join(parts)).to_json()) if parts else []
    except ValueError:
        log.warning("ended_resources_unreadable", resources=mapped)
        return []
