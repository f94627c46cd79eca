"""Marathon's REST API (``/v2/...``, ``/ping``, ``/metrics``) over aiohttp.

Handlers run on the scheduler's loop and call the coordinator directly: each request is one
change (or one read) between two others, never concurrent with a driver callback. Paths,
field names, status codes and error bodies are Marathon's, so Marathon clients (the DC/OS
CLI, ``corral app``) work unchanged. A bad request gets its error and changes nothing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import structlog
from aiohttp import web

from corral import __version__
from services.app_definition import AppDefinition, AppInvalid
from services.coordinator import ApiError, Deployment, iso
from services.events import stream
from services.instances import Instance
from services.path_id import InvalidPathId, canonical, is_within
from services.scheduler import ServicesScheduler

log = structlog.get_logger("services.rest_api")

MARATHON_VERSION = "1.11.0"  # the API version this follows (its /v2/info says so)


def _truthy(value: str | None, default: bool = False) -> bool:
    if value is None:
        return default
    return value.lower() in ("true", "1", "yes", "")


_encode = msgspec.json.Encoder().encode  # several times json.dumps's speed on 10,000 tasks


def _json_response(
    body: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=_encode(body), status=status, headers=headers, content_type="application/json"
    )


def _error(status: int, message: str, **extra: Any) -> web.Response:
    return _json_response({"message": message, **extra}, status=status)


@web.middleware
async def _errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
):
    """Refusals become Marathon's bodies; a bug inside is a 500 with the log saying why.
    Updates not yet converged are settled first, so that every answer is up to date."""
    request.app["service"].apply()
    try:
        return await handler(request)
    except ApiError as error:
        return _json_response(error.body, status=error.status)
    except AppInvalid as error:
        return _json_response(error.to_json(), status=422)
    except web.HTTPException:
        raise
    except Exception:
        log.exception("request_failed", method=request.method, path=request.path)
        return _error(500, "the services scheduler failed on this request; see its log")


class RestApi:
    """The routes, over one ``ServicesScheduler``."""

    def __init__(self, service: ServicesScheduler) -> None:
        self.service = service
        self.coordinator = service.coordinator
        self.requests = 0
        self.task_views: dict[str, tuple[tuple[Any, ...], msgspec.Raw]] = {}  # task_json's
        self.app = web.Application(middlewares=[_errors], client_max_size=16 * 1024 * 1024)
        self.app["service"] = service
        self.runner: web.AppRunner | None = None
        self.port: int | None = None
        route = self.app.router
        route.add_get("/ping", self.ping)
        route.add_get("/metrics", self.metrics)
        route.add_get("/v2/info", self.info)
        route.add_get("/v2/leader", self.leader)
        route.add_get("/v2/apps", self.list_apps)
        route.add_post("/v2/apps", self.post_app)
        route.add_put("/v2/apps", self.put_apps)
        route.add_patch("/v2/apps", self.put_apps)
        route.add_route("*", "/v2/apps/{path:.+}", self.app_path)
        route.add_get("/v2/tasks", self.list_tasks)
        route.add_post("/v2/tasks/delete", self.delete_tasks)
        route.add_get("/v2/deployments", self.list_deployments)
        route.add_delete("/v2/deployments/{id}", self.delete_deployment)
        route.add_get("/v2/groups", self.get_group)
        route.add_get("/v2/groups/{path:.+}", self.get_group)
        route.add_delete("/v2/groups/{path:.+}", self.delete_group)
        route.add_post("/v2/groups", self.post_group)
        route.add_put("/v2/groups", self.post_group)
        route.add_get("/v2/queue", self.queue)
        route.add_delete("/v2/queue/{path:.+}/delay", self.reset_delay)
        route.add_get("/v2/events", self.events)

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self, ip: str, port: int) -> int:
        self.runner = web.AppRunner(self.app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, ip, port)
        await site.start()
        self.port = int(self.runner.addresses[0][1])
        return self.port

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    # -- views ----------------------------------------------------------------------------

    def task_json(self, instance: Instance) -> msgspec.Raw:
        """The task's Marathon JSON, encoded once per change of what it shows: listings of
        10,000 tasks were mostly the building of these (a key of the shown fields is a
        fraction of that cost, and never stale, whoever changed the instance)."""
        app = self.coordinator.apps.get(instance.app_id)
        checked = app is not None and bool(app.health_checks) and instance.healthy is not None
        health = instance.health
        key = (
            instance.state, instance.killing, instance.started_at, instance.version,
            instance.host, instance.agent_id, instance.staged_at, instance.app_id,
            tuple(instance.ports), tuple(instance.service_ports), checked, health.alive,
            health.consecutive_failures, health.first_success, health.last_failure,
            health.last_success, health.last_failure_cause,
        )  # fmt: skip
        cached = self.task_views.get(instance.task_id)
        if cached is not None and cached[0] == key:
            return cached[1]
        if len(self.task_views) > 2 * len(self.coordinator.instances) + 1024:
            known = self.coordinator.instances
            self.task_views = {k: v for k, v in self.task_views.items() if k in known}
        view = msgspec.Raw(_encode(self._task_dict(instance, checked)))
        self.task_views[instance.task_id] = (key, view)
        return view

    def _task_dict(self, instance: Instance, checked: bool) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": instance.task_id,
            "appId": instance.app_id,
            "host": instance.host,
            "slaveId": instance.agent_id,
            # A kill under way shows as TASK_KILLING (the agent does not send it yet).
            "state": "TASK_KILLING" if instance.killing else instance.state.value,
            "stagedAt": instance.staged_at,
            "startedAt": instance.started_at,
            "version": instance.version,
            "ports": list(instance.ports),
            "servicePorts": list(instance.service_ports),
            "ipAddresses": [],
            "localVolumes": [],
        }
        if checked:
            result = instance.health
            out["healthCheckResults"] = [
                {
                    "alive": result.alive,
                    "consecutiveFailures": result.consecutive_failures,
                    "firstSuccess": result.first_success,
                    "lastFailure": result.last_failure,
                    "lastSuccess": result.last_success,
                    "lastFailureCause": result.last_failure_cause,
                    "instanceId": instance.task_id,
                    "taskId": instance.task_id,
                }
            ]
        return out

    def _app_instances(self, app_id: str) -> list[Instance]:
        return sorted(
            self.coordinator.app_instances(app_id), key=lambda i: (i.staged_at, i.task_id)
        )

    def app_json(self, app: AppDefinition, embed: set[str]) -> dict[str, Any]:
        out = app.to_json()
        instances = [i for i in self._app_instances(app.id) if not i.is_terminal()]
        running = [i for i in instances if i.is_running()]
        out["tasksStaged"] = sum(1 for i in instances if not i.is_running())
        out["tasksRunning"] = len(running)
        out["tasksHealthy"] = sum(1 for i in running if i.healthy is True)
        out["tasksUnhealthy"] = sum(1 for i in running if i.healthy is False)
        out["deployments"] = [{"id": d.id} for d in self.coordinator.locks([app.id])]
        if "tasks" in embed:
            out["tasks"] = [self.task_json(i) for i in instances]
        if "lastTaskFailure" in embed and app.id in self.coordinator.last_failure:
            out["lastTaskFailure"] = self.coordinator.last_failure[app.id]
        return out

    # -- small ones -----------------------------------------------------------------------

    async def ping(self, request: web.Request) -> web.Response:
        return web.Response(text="pong", content_type="text/plain")

    async def info(self, request: web.Request) -> web.Response:
        options = self.service.options
        leader = f"{options.ip}:{self.port}"
        return _json_response(
            {
                "name": options.framework_name,
                "version": MARATHON_VERSION,
                "buildref": f"corral-{__version__}",
                "elected": True,
                "leader": leader,
                "frameworkId": self.coordinator.framework_id,
                "marathon_config": {
                    "master": options.master,
                    "mesos_role": options.role,
                    "framework_name": options.framework_name,
                    "failover_timeout": int(options.failover_timeout),
                    "checkpoint": True,
                    "hostname": options.ip,
                },
                "zookeeper_config": {},
                "http_config": {"http_port": self.port},
                "event_subscriber": {"type": "sse"},
            }
        )

    async def leader(self, request: web.Request) -> web.Response:
        return _json_response({"leader": f"{self.service.options.ip}:{self.port}"})

    async def metrics(self, request: web.Request) -> web.Response:
        instances = list(self.coordinator.instances.values())
        gauges = {
            "marathon.apps.active.gauge": len(self.coordinator.apps),
            "marathon.deployments.active.gauge": len(self.coordinator.deployments),
            "marathon.instances.running.gauge": sum(1 for i in instances if i.is_running()),
            "marathon.instances.staged.gauge": sum(
                1 for i in instances if not i.is_running() and not i.is_terminal()
            ),
            "marathon.http.event-streams.active.gauge": len(self.service.bus.subscribers),
            "marathon.mesos.connected.gauge": int(self.service.connected),
            "marathon.uptime.gauge": round(time.time() - self.service.started_at, 3),
        }
        counters = {
            "marathon.http.requests.counter": self.requests,
            "marathon.events.published.counter": self.service.bus.published,
            "marathon.http.event-streams.dropped.counter": self.service.bus.dropped,
        }
        return _json_response(
            {
                "version": MARATHON_VERSION,
                "gauges": {k: {"value": v} for k, v in gauges.items()},
                "counters": {k: {"count": v} for k, v in counters.items()},
            }
        )

    # -- apps -----------------------------------------------------------------------------

    @staticmethod
    def _embed(request: web.Request, default: set[str]) -> set[str]:
        given = request.query.getall("embed", [])
        if not given:
            return default
        return {e.split(".", 1)[-1] for e in given} | {"counts", "deployments"}

    async def _body(self, request: web.Request) -> Any:
        raw = await request.read()
        try:
            return json.loads(raw or b"null")
        except ValueError as error:
            raise ApiError(
                400,
                {"message": "Invalid JSON", "details": [{"path": "/", "errors": [str(error)]}]},
            ) from None

    def _posted(self, request: web.Request, app: AppDefinition) -> None:
        self.coordinator.emit(
            "api_post_event",
            clientIp=request.remote or "",
            uri=str(request.rel_url),
            appDefinition=app.to_json(),
        )

    async def list_apps(self, request: web.Request) -> web.Response:
        self.requests += 1
        embed = self._embed(request, {"counts", "deployments"})
        wanted_id = request.query.get("id")
        wanted_cmd = request.query.get("cmd")
        labels = request.query.get("label")
        apps = []
        for app in sorted(self.coordinator.apps.values(), key=lambda a: a.id):
            if wanted_id and wanted_id not in app.id:
                continue
            if wanted_cmd and wanted_cmd not in (app.cmd or ""):
                continue
            if labels and not _labels_match(app.labels, labels):
                continue
            apps.append(self.app_json(app, embed))
        return _json_response({"apps": apps})

    async def post_app(self, request: web.Request) -> web.Response:
        self.requests += 1
        body = await self._body(request)
        force = _truthy(request.query.get("force"))
        app, deployment = self.coordinator.create_app(body, time.time(), force)
        self._posted(request, app)
        self.service.apply()
        out = self.app_json(app, {"counts", "deployments", "tasks"})
        return _json_response(
            out,
            status=201,
            headers={"Location": f"/v2/apps{app.id}", "Marathon-Deployment-Id": deployment.id},
        )

    async def put_apps(self, request: web.Request) -> web.Response:
        """Several apps at once (a list of definitions, each with its id): all are judged and
        their locks checked before any changes; the answer names the last deployment."""
        self.requests += 1
        body = await self._body(request)
        if not isinstance(body, list) or not body:
            raise AppInvalid([("/", "the body is a non-empty list of app definitions")])
        partial = request.method == "PATCH" or _truthy(request.query.get("partialUpdate"), True)
        force = _truthy(request.query.get("force"))
        problems: list[tuple[str, str]] = []
        ids = []
        for index, item in enumerate(body):
            try:
                app_id = canonical(item.get("id")) if isinstance(item, dict) else None
            except InvalidPathId as error:
                problems.append((f"({index})/id", str(error)))
                continue
            if app_id is None:
                problems.append((f"({index})", "each app is an object with an id"))
                continue
            ids.append(app_id)
            current = self.coordinator.apps.get(app_id)
            try:
                if current is None:
                    AppDefinition.from_json({**item, "id": app_id})
                else:
                    self.coordinator.updated(current, item, partial)
            except AppInvalid as error:
                problems.extend((f"({index}){p}", m) for p, m in error.details)
        if problems:
            raise AppInvalid(problems)
        self.coordinator.check_lock([i for i in ids if i in self.coordinator.apps], force)
        deployment = None
        for app_id, item in zip(ids, body, strict=True):
            _, deployment, _ = self.coordinator.update_app(
                app_id, item, time.time(), partial, force=True
            )
        self.service.apply()
        assert deployment is not None
        return self._deployment_answer(deployment)

    async def app_path(self, request: web.Request) -> web.Response:
        """``/v2/apps/{id}`` and what hangs under it; an id may hold slashes."""
        self.requests += 1
        path = "/" + request.match_info["path"].strip("/")
        method = request.method
        for suffix, handler in (
            ("/restart", self._restart),
            ("/tasks", self._app_tasks),
            ("/versions", self._versions),
        ):
            if path.endswith(suffix):
                return await handler(request, path[: -len(suffix)], None)
            marker = path.rfind(suffix + "/")
            if marker > 0 and suffix != "/restart":
                return await handler(request, path[:marker], path[marker + len(suffix) + 1 :])
        if method == "GET":
            app = self._app(path)
            return _json_response(
                {
                    "app": self.app_json(
                        app,
                        self._embed(request, {"counts", "deployments", "tasks", "lastTaskFailure"}),
                    )
                }
            )
        if method in ("PUT", "PATCH"):
            body = await self._body(request)
            partial = method == "PATCH" or _truthy(request.query.get("partialUpdate"), True)
            force = _truthy(request.query.get("force"))
            app, deployment, created = self.coordinator.update_app(
                path, body, time.time(), partial, force
            )
            self._posted(request, app)
            self.service.apply()
            return _json_response(
                {"deploymentId": deployment.id, "version": deployment.version},
                status=201 if created else 200,
                headers={"Marathon-Deployment-Id": deployment.id},
            )
        if method == "DELETE":
            deployment = self.coordinator.delete_app(
                path, time.time(), _truthy(request.query.get("force"))
            )
            self.service.apply()
            return self._deployment_answer(deployment)
        return _error(405, f"{method} is not allowed on /v2/apps/{{id}}")

    def _app(self, app_id: str) -> AppDefinition:
        try:
            key = canonical(app_id)
        except InvalidPathId as error:
            raise ApiError(400, {"message": str(error)}) from None
        app = self.coordinator.apps.get(key)
        if app is None:
            raise ApiError(404, {"message": f"App '{key}' does not exist"})
        return app

    @staticmethod
    def _deployment_answer(deployment: Deployment) -> web.Response:
        return _json_response(
            {"deploymentId": deployment.id, "version": deployment.version},
            headers={"Marathon-Deployment-Id": deployment.id},
        )

    async def _restart(self, request: web.Request, app_id: str, _: str | None) -> web.Response:
        if request.method != "POST":
            return _error(405, "restart is a POST")
        deployment = self.coordinator.restart_app(
            app_id, time.time(), _truthy(request.query.get("force"))
        )
        self.service.apply()
        return self._deployment_answer(deployment)

    async def _versions(
        self, request: web.Request, app_id: str, version: str | None
    ) -> web.Response:
        app = self._app(app_id)
        if version is None:
            return _json_response({"versions": self.coordinator.versions(app.id)})
        found = self.coordinator.version(app.id, version)
        if found is None:
            raise ApiError(
                404, {"message": f"Version '{version}' of app '{app.id}' does not exist"}
            )
        return _json_response(found.to_json())

    async def _app_tasks(
        self, request: web.Request, app_id: str, task_id: str | None
    ) -> web.Response:
        app = self._app(app_id)
        live = [i for i in self._app_instances(app.id) if not i.is_terminal()]
        if request.method == "GET":
            if task_id is not None:
                found = [i for i in live if i.task_id == task_id]
                if not found:
                    raise ApiError(404, {"message": f"Task '{task_id}' does not exist"})
                return _json_response({"task": self.task_json(found[0])})
            return _json_response({"tasks": [self.task_json(i) for i in live]})
        if request.method != "DELETE":
            return _error(405, f"{request.method} is not allowed on tasks")
        if task_id is not None:
            if task_id not in {i.task_id for i in live}:
                raise ApiError(404, {"message": f"Task '{task_id}' does not exist"})
            ids = [task_id]
        else:
            host = request.query.get("host")
            ids = [i.task_id for i in live if host in (None, "*", i.host)]
        return self._kill_answer(request, ids, single=task_id is not None)

    def _kill_answer(
        self, request: web.Request, ids: list[str], single: bool = False
    ) -> web.Response:
        scale = _truthy(request.query.get("scale"))
        wipe = _truthy(request.query.get("wipe"))
        force = _truthy(request.query.get("force"))
        if not ids:
            return _json_response({"tasks": []})
        killed, deployment = self.coordinator.kill_tasks(ids, time.time(), scale, wipe, force)
        self.service.apply()
        if deployment is not None:
            return self._deployment_answer(deployment)
        tasks = [self.task_json(i) for i in killed]
        return _json_response({"task": tasks[0]} if single and tasks else {"tasks": tasks})

    # -- tasks ----------------------------------------------------------------------------

    async def list_tasks(self, request: web.Request) -> web.Response:
        self.requests += 1
        statuses = {s.lower() for s in request.query.getall("status", [])}
        live = sorted(
            (i for i in self.coordinator.instances.values() if not i.is_terminal()),
            key=lambda i: (i.app_id, i.staged_at, i.task_id),
        )
        if statuses:
            live = [i for i in live if i.state.value.removeprefix("TASK_").lower() in statuses]
        if "text/plain" in request.headers.get("Accept", "") and "json" not in request.headers.get(
            "Accept", ""
        ):
            lines = []
            for app in sorted(self.coordinator.apps.values(), key=lambda a: a.id):
                mine = [i for i in live if i.app_id == app.id]
                for index, definition in enumerate(app.port_definitions):
                    ends = " ".join(
                        f"{i.host}:{i.ports[index]}" for i in mine if index < len(i.ports)
                    )
                    lines.append(
                        f"{app.id.strip('/').replace('/', '_')}\t{definition.port}\t{ends}"
                    )
            return web.Response(
                text="\n".join(lines) + ("\n" if lines else ""), content_type="text/plain"
            )
        return _json_response({"tasks": [self.task_json(i) for i in live]})

    async def delete_tasks(self, request: web.Request) -> web.Response:
        self.requests += 1
        body = await self._body(request)
        if not isinstance(body, dict) or not isinstance(body.get("ids"), list):
            raise ApiError(400, {"message": 'the body is {"ids": [task ids]}'})
        return self._kill_answer(request, [str(i) for i in body["ids"]])

    # -- deployments ----------------------------------------------------------------------

    async def list_deployments(self, request: web.Request) -> web.Response:
        self.requests += 1
        deployments = [d.to_json() for d in self.coordinator.deployments.values()]
        for deployment in deployments:
            for action in deployment["currentActions"]:
                action["readinessCheckResults"] = self._readiness(action["app"])
        return _json_response(deployments)

    def _readiness(self, app_id: str) -> list[dict[str, Any]]:
        """The readiness of the app's new instances that run but are not ready yet."""
        app = self.coordinator.apps.get(app_id)
        if app is None or not app.readiness_checks:
            return []
        return [
            {
                "name": app.readiness_checks[0].name,
                "taskId": i.task_id,
                "ready": False,
                "lastResponse": None,
            }
            for i in self.coordinator.app_instances(app_id)
            if i.config_version == app.config_version and i.is_running() and not i.ready
        ]

    async def delete_deployment(self, request: web.Request) -> web.Response:
        self.requests += 1
        force = _truthy(request.query.get("force"))
        rollback = self.coordinator.delete_deployment(request.match_info["id"], time.time(), force)
        self.service.apply()
        if rollback is None:
            return web.Response(status=202)
        return self._deployment_answer(rollback)

    # -- groups ---------------------------------------------------------------------------

    def group_json(self, group: str, embed: set[str]) -> dict[str, Any]:
        apps = [a for a in self.coordinator.apps.values() if is_within(a.id, group)]
        depth = 0 if group == "/" else group.count("/")
        direct = [a for a in apps if a.id.count("/") == depth + 1]
        children = sorted(
            {"/".join(a.id.split("/")[: depth + 2]) for a in apps if a.id.count("/") > depth + 1}
        )
        versions = [a.version for a in apps if a.version]
        return {
            "id": group,
            "apps": [self.app_json(a, embed) for a in sorted(direct, key=lambda a: a.id)],
            "groups": [self.group_json(child, embed) for child in children],
            "pods": [],
            "dependencies": [],
            "version": max(versions) if versions else iso(self.service.started_at),
        }

    def _group_id(self, request: web.Request) -> str:
        raw = request.match_info.get("path", "")
        if not raw.strip("/"):
            return "/"
        try:
            return canonical(raw)
        except InvalidPathId as error:
            raise ApiError(400, {"message": str(error)}) from None

    async def get_group(self, request: web.Request) -> web.Response:
        self.requests += 1
        group = self._group_id(request)
        if group != "/" and not any(is_within(a, group) for a in self.coordinator.apps):
            raise ApiError(404, {"message": f"Group '{group}' does not exist"})
        return _json_response(self.group_json(group, self._embed(request, {"counts"})))

    async def delete_group(self, request: web.Request) -> web.Response:
        self.requests += 1
        group = self._group_id(request)
        apps = [a for a in self.coordinator.apps if is_within(a, group)]
        if not apps:
            raise ApiError(404, {"message": f"Group '{group}' does not exist"})
        force = _truthy(request.query.get("force"))
        self.coordinator.check_lock(apps, force)  # all or nothing: check before any change
        deployment = None
        for app_id in apps:
            deployment = self.coordinator.delete_app(app_id, time.time(), True)
        self.service.apply()
        return self._deployment_answer(deployment)

    async def post_group(self, request: web.Request) -> web.Response:
        """A group of apps (``{"id": "/shop", "apps": [...], "groups": [...]}``): each app is
        created or updated under the group's id. All are judged before any change."""
        self.requests += 1
        body = await self._body(request)
        if not isinstance(body, dict):
            raise AppInvalid([("/", "a group is a JSON object")])
        base = canonical(body["id"]) if body.get("id") not in (None, "/", "") else "/"
        definitions: list[dict[str, Any]] = []
        problems: list[tuple[str, str]] = []
        _collect_group(body, base, "", definitions, problems)
        if problems:
            raise AppInvalid(problems)
        force = _truthy(request.query.get("force"))
        ids = [d["id"] for d in definitions]
        self.coordinator.check_lock([i for i in ids if i in self.coordinator.apps], force)
        deployment = None
        now = time.time()
        for definition in definitions:
            if definition["id"] in self.coordinator.apps:
                _, deployment, _ = self.coordinator.update_app(
                    definition["id"], definition, now, False, True
                )
            else:
                _, deployment = self.coordinator.create_app(definition, now, True)
        self.service.apply()
        if deployment is None:
            raise AppInvalid([("/apps", "the group holds no apps")])
        return _json_response(
            {"deploymentId": deployment.id, "version": deployment.version},
            status=201 if request.method == "POST" else 200,
        )

    # -- queue, events --------------------------------------------------------------------

    async def queue(self, request: web.Request) -> web.Response:
        self.requests += 1
        now = time.time()
        queue = []
        for app_id, count in sorted(self.coordinator.wanted.items()):
            app = self.coordinator.apps.get(app_id)
            if app is None or count <= 0:
                continue
            backoff = self.coordinator.backoffs.get(app_id)
            stats = self.coordinator.offer_stats.get(app_id)
            summary = {
                "processedOffersCount": stats.processed if stats else 0,
                "unusedOffersCount": stats.unused if stats else 0,
                "lastUnusedOfferAt": stats.last_unused_at if stats else None,
                "lastUsedOfferAt": stats.last_used_at if stats else None,
                "rejectSummaryLastOffers": _reject_summary(stats),
                "rejectSummaryLaunchAttempt": _reject_summary(stats),
            }
            queue.append(
                {
                    "count": count,
                    "delay": {
                        "timeLeftSeconds": round(backoff.time_left(now)) if backoff else 0,
                        "overdue": backoff.overdue(now) if backoff else True,
                    },
                    "since": stats.since if stats else iso(now),
                    "app": self.app_json(app, {"counts", "deployments"}),
                    "processedOffersSummary": summary,
                    "lastUnusedOffers": list(stats.last_unused) if stats else [],
                }
            )
        return _json_response({"queue": queue})

    async def reset_delay(self, request: web.Request) -> web.Response:
        self.requests += 1
        self.coordinator.reset_delay(request.match_info["path"], time.time())
        self.service.apply()
        return web.Response(status=204)

    async def events(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        attached = {"eventType": "event_stream_attached", "timestamp": iso(time.time())}
        return await stream(request, self.service.bus, attached)


def _reject_summary(stats: Any) -> list[dict[str, Any]]:
    if stats is None:
        return []
    from services.offer_match import REASONS

    return [
        {
            "reason": reason,
            "declined": stats.declined_by.get(reason, 0),
            "processed": stats.processed_by.get(reason, 0),
        }
        for reason in REASONS
    ]


def _labels_match(labels: dict[str, str], selector: str) -> bool:
    """Marathon's label selectors: ``key``, ``key==v``, ``key!=v``, ``key in (a,b)``,
    ``key notin (a,b)``, comma-separated (all must hold)."""
    import re

    for part in re.split(r",(?![^()]*\))", selector):
        part = part.strip()
        if not part:
            continue
        if match := re.fullmatch(r"(\S+)\s+(in|notin)\s+\((.*)\)", part):
            key, op, values = match[1], match[2], {v.strip() for v in match[3].split(",")}
            if (labels.get(key) in values) != (op == "in"):
                return False
        elif "!=" in part:
            key, value = part.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "==" in part:
            key, value = part.split("==", 1)
            if labels.get(key.strip()) != value.strip():
                return False
        elif part not in labels:
            return False
    return True


def _collect_group(
    body: dict[str, Any], base: str, path: str, out: list[dict[str, Any]], problems: list
) -> None:
    for index, app in enumerate(body.get("apps") or []):
        if not isinstance(app, dict) or "id" not in app:
            problems.append((f"{path}/apps({index})", "an app of a group is an object with an id"))
            continue
        try:
            app_id = canonical(app["id"], base)
            AppDefinition.from_json({**app, "id": app_id})
        except InvalidPathId as error:
            problems.append((f"{path}/apps({index})/id", str(error)))
            continue
        except AppInvalid as error:
            problems.extend((f"{path}/apps({index}){p}", m) for p, m in error.details)
            continue
        out.append({**app, "id": app_id})
    for index, group in enumerate(body.get("groups") or []):
        if not isinstance(group, dict) or "id" not in group:
            problems.append((f"{path}/groups({index})", "a group is an object with an id"))
            continue
        try:
            child = canonical(group["id"], base)
        except InvalidPathId as error:
            problems.append((f"{path}/groups({index})/id", str(error)))
            continue
        _collect_group(group, child, f"{path}/groups({index})", out, problems)
