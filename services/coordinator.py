"""The one place where the scheduler's state changes: apps, instances, deployments.

A sans-IO core: the REST API's requests, the driver's offers and status updates, and a
periodic tick come in as method calls with the time; what must happen outside comes back as
``effects`` (launch, decline, kill, reconcile, revive, suppress) for the actor to carry out,
and as events for ``/v2/events``. Every change is written to the store before it is acted on
(an instance record before its launch), so a restarted scheduler picks up where it was.
The actor calls it from one asyncio loop only, so requests and driver callbacks never race.
"""

from __future__ import annotations

import dataclasses
import datetime
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import structlog

from corral.protocol import Offer, TaskInfo
from corral.task_states import TaskState
from services import deployment_plan, offer_match, task_builder
from services.app_definition import AppDefinition, AppInvalid
from services.backoff import Backoff
from services.constraints import AgentFacts
from services.instances import TERMINAL, Instance
from services.path_id import InvalidPathId, canonical, is_within, task_prefix
from services.store import Store

log = structlog.get_logger("services.coordinator")

REFUSE_WAITING = 1.0  # seconds an offer that did not fit stays away while apps wait
REFUSE_IDLE = 120.0  # seconds an offer stays away when nothing is wanted (Marathon's default)
UNUSED_OFFERS_KEPT = 10  # lastUnusedOffers per app in /v2/queue
FIRST_SERVICE_PORT = 10000  # Marathon's local port range for service ports starts here
MAX_VERSIONS = 50  # versions kept per app (Marathon bounds them too, with --max_versions)


def iso(now: float) -> str:
    """Marathon's timestamps: ISO 8601 in UTC with milliseconds and a Z."""
    moment = datetime.datetime.fromtimestamp(now, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class ApiError(Exception):
    """A request refused, with Marathon's status and body; nothing was changed."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body.get("message", ""))
        self.status = status
        self.body = body


def _not_found(app_id: str) -> ApiError:
    return ApiError(404, {"message": f"App '{app_id}' does not exist"})


# -- effects -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Launch:
    offer_id: str
    tasks: tuple[TaskInfo, ...]
    refuse_seconds: float


@dataclass(frozen=True)
class Decline:
    offer_ids: tuple[str, ...]
    refuse_seconds: float


@dataclass(frozen=True)
class Kill:
    task_id: str
    agent_id: str
    grace_seconds: float | None


@dataclass(frozen=True)
class Reconcile:
    tasks: tuple[tuple[str, str], ...]  # (task id, agent id); empty: every task (implicit)


@dataclass(frozen=True)
class Probe:
    """A readiness check to send: GET ``url``; ready on one of ``ready_codes``."""

    task_id: str
    url: str
    timeout: float
    ready_codes: tuple[int, ...]


@dataclass(frozen=True)
class Revive:
    pass


@dataclass(frozen=True)
class Suppress:
    pass


Effect = Launch | Decline | Kill | Reconcile | Revive | Suppress


# -- deployments ---------------------------------------------------------------------------


@dataclass
class Deployment:
    """One change under way. ``original`` is each affected app's definition before it (None
    for a new app): what a rollback restores."""

    id: str
    version: str
    apps: list[str]
    actions: list[list[dict[str, str]]]  # steps of {action, app}
    original: dict[str, dict[str, Any] | None]
    current_step: int = 1

    def to_record(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Deployment:
        return cls(**record)

    def to_json(self) -> dict[str, Any]:
        step = self.actions[min(self.current_step, len(self.actions)) - 1]
        return {
            "id": self.id,
            "version": self.version,
            "affectedApps": list(self.apps),
            "affectedPods": [],
            "steps": [{"actions": [dict(a) for a in actions]} for actions in self.actions],
            "currentActions": [{**a, "readinessCheckResults": []} for a in step],
            "currentStep": self.current_step,
            "totalSteps": len(self.actions),
        }

    def plan_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "version": self.version,
            "steps": [{"actions": [dict(a) for a in actions]} for actions in self.actions],
            "original": {"apps": [a for a in self.original.values() if a]},
            "target": {"apps": [{"id": app} for app in self.apps]},
        }


@dataclass
class OfferStats:
    """What ``/v2/queue`` says of an app's recent offers."""

    processed: int = 0
    unused: int = 0
    last_unused_at: str | None = None
    last_used_at: str | None = None
    declined_by: dict[str, int] = field(default_factory=dict)  # reason -> offers it declined
    processed_by: dict[str, int] = field(default_factory=dict)
    last_unused: deque = field(default_factory=lambda: deque(maxlen=UNUSED_OFFERS_KEPT))
    since: str | None = None


# -- the core ------------------------------------------------------------------------------


class Coordinator:
    """See the module docstring."""

    def __init__(self, store: Store, now: float, emit: Callable[[dict], None] | None = None):
        self.store = store
        self.emit_to = emit or (lambda event: None)
        self.effects: list[Effect] = []
        self.apps: dict[str, AppDefinition] = {}
        self.instances: dict[str, Instance] = {}
        # The same instances by app (app id -> task id -> instance); changed with them.
        self.by_app: dict[str, dict[str, Instance]] = {}
        self.deployments: dict[str, Deployment] = {}
        self.backoffs: dict[str, Backoff] = {}
        self.offer_stats: dict[str, OfferStats] = {}
        self.last_failure: dict[str, dict[str, Any]] = {}
        self.wanted: dict[str, int] = {}  # app -> launches it waits for offers for
        self.dirty: set[str] = set()  # apps changed by updates, converged at the next settle
        self.suppressed: bool | None = None  # None: not told the master yet
        self.framework_id: str | None = None
        self.last_now = now
        self._load()

    # -- state from the store -----------------------------------------------------------------

    def _load(self) -> None:
        for record in self.store.all("apps").values():
            app = AppDefinition.from_stored(record)
            self.apps[app.id] = app
        for record in self.store.all("instances").values():
            self._add(Instance.from_record(record))
        for record in self.store.all("deployments").values():
            deployment = Deployment.from_record(record)
            self.deployments[deployment.id] = deployment
        framework = self.store.get("framework", "id")
        self.framework_id = framework["id"] if framework else None
        log.info(
            "state_loaded",
            apps=len(self.apps),
            instances=len(self.instances),
            deployments=len(self.deployments),
            framework_id=self.framework_id,
        )

    def _save_app(self, app: AppDefinition) -> None:
        """The app, and it as a version; the oldest versions beyond ``MAX_VERSIONS`` go."""
        with self.store.batch():
            self.store.put("apps", app.id, app.stored())
            self.store.put("versions", f"{app.id}@{app.version}", app.stored())
            for old in self.versions(app.id)[MAX_VERSIONS:]:
                self.store.delete("versions", f"{app.id}@{old}")

    def _save_instance(self, instance: Instance) -> None:
        self.store.put("instances", instance.task_id, instance.to_record())

    def _save_deployment(self, deployment: Deployment) -> None:
        self.store.put("deployments", deployment.id, deployment.to_record())

    def versions(self, app_id: str) -> list[str]:
        prefix = f"{app_id}@"
        keys = [k for k in self.store.all("versions") if k.startswith(prefix)]
        return sorted((k[len(prefix) :] for k in keys), reverse=True)

    def version(self, app_id: str, version: str) -> AppDefinition | None:
        record = self.store.get("versions", f"{app_id}@{version}")
        return AppDefinition.from_stored(record) if record else None

    # -- events ------------------------------------------------------------------------------

    def emit(self, event_type: str, **fields: Any) -> None:
        self.emit_to({"eventType": event_type, "timestamp": iso(self.last_now), **fields})

    def take_effects(self) -> list[Effect]:
        """What to do now. Apps that status updates changed are converged first, once for
        a whole burst of updates."""
        self.settle()
        effects, self.effects = self.effects, []
        return effects

    def settle(self) -> None:
        """Converge the apps status updates changed since the last settle."""
        for _ in range(8):  # a change may free a dependent app: a few rounds at most
            if not self.dirty:
                return
            dirty, self.dirty = self.dirty, set()
            self.converge(self.last_now, sorted(dirty))

    # -- the framework's life ----------------------------------------------------------------

    def registered(self, framework_id: str, now: float) -> None:
        """Registered (or re-registered): keep the id, and ask the master the truth."""
        self.last_now = now
        if framework_id != self.framework_id:
            self.framework_id = framework_id
            self.store.put("framework", "id", {"id": framework_id})
        known = tuple(
            (i.task_id, i.agent_id) for i in self.instances.values() if not i.is_terminal()
        )
        if known:
            self.effects.append(Reconcile(known))
        self.effects.append(Reconcile(()))  # and every task the master knows of ours
        self.suppressed = None
        self.converge(now)

    # -- the REST API's changes ---------------------------------------------------------------

    def locks(self, app_ids: list[str]) -> list[Deployment]:
        return [d for d in self.deployments.values() if set(d.apps) & set(app_ids)]

    def check_lock(self, app_ids: list[str], force: bool) -> None:
        held = self.locks(app_ids)
        if not held:
            return
        if not force:
            raise ApiError(
                409,
                {
                    "message": "App is locked by one or more deployments. Override with the "
                    "option '?force=true'. View details at '/v2/deployments/<DEPLOYMENT_ID>'.",
                    "deployments": [{"id": d.id} for d in held],
                },
            )
        for deployment in held:
            self._end_deployment(deployment, success=False, reason="cancelled by force")

    def _new_deployment(
        self, app_ids: list[str], actions: list[list[dict[str, str]]], version: str,
        original: dict[str, dict[str, Any] | None],
    ) -> Deployment:  # fmt: skip
        deployment = Deployment(str(uuid.uuid4()), version, app_ids, actions, original)
        if actions and actions[0] and actions[0][0]["action"] == "StartApplication":
            deployment.current_step = len(actions)  # the start step is done at once
        self.deployments[deployment.id] = deployment
        self._save_deployment(deployment)
        self.emit(
            "deployment_info",
            plan=deployment.plan_json(),
            currentStep={"actions": deployment.actions[deployment.current_step - 1]},
        )
        if deployment.current_step > 1:
            self.emit(
                "deployment_step_success",
                plan=deployment.plan_json(),
                currentStep={"actions": deployment.actions[0]},
            )
        return deployment

    def _end_deployment(self, deployment: Deployment, success: bool, reason: str = "") -> None:
        self.deployments.pop(deployment.id, None)
        # Apps waiting on these (to start after them, or to stop before them) move on.
        self.dirty.update(
            a.id for a in self.apps.values() if set(a.dependencies) & set(deployment.apps)
        )
        for app_id in deployment.apps:
            if app_id in self.apps:
                self.dirty.update(self.apps[app_id].dependencies)
        self.store.delete("deployments", deployment.id)
        if success:
            self.emit(
                "deployment_step_success",
                plan=deployment.plan_json(),
                currentStep={"actions": deployment.actions[-1]},
            )
            self.emit("deployment_success", id=deployment.id, plan=deployment.plan_json())
        else:
            self.emit(
                "deployment_failed", id=deployment.id, plan=deployment.plan_json(), reason=reason
            )
        log.info("deployment_ended", id=deployment.id, success=success, reason=reason)

    def _stamp(self, app: AppDefinition, now: float, config_changed: bool) -> AppDefinition:
        version = iso(now)
        while self.apps.get(app.id) is not None and self.apps[app.id].version == version:
            now += 0.001
            version = iso(now)
        return dataclasses.replace(
            app,
            version=version,
            config_version=version
            if config_changed or not app.config_version
            else app.config_version,
        )

    def _assign_service_ports(self, app: AppDefinition) -> AppDefinition:
        used = {
            p.port for other in self.apps.values() if other.id != app.id
            for p in other.port_definitions
        }  # fmt: skip
        candidate = FIRST_SERVICE_PORT
        definitions = []
        for definition in app.port_definitions:
            if definition.port == 0:
                while candidate in used:
                    candidate += 1
                used.add(candidate)
                definition = dataclasses.replace(definition, port=candidate)
            definitions.append(definition)
        return dataclasses.replace(app, port_definitions=tuple(definitions))

    def create_app(
        self, data: Any, now: float, force: bool = False
    ) -> tuple[AppDefinition, Deployment]:
        self.last_now = now
        app = AppDefinition.from_json(data)
        if app.id in self.apps:
            raise ApiError(409, {"message": f"An app with id [{app.id}] already exists."})
        self._check_group_clash(app.id)
        self.check_lock([app.id], force)
        app = self._stamp(self._assign_service_ports(app), now, True)
        self.apps[app.id] = app
        self._save_app(app)
        self.backoffs.pop(app.id, None)
        deployment = self._new_deployment(
            [app.id],
            [[{"action": "StartApplication", "app": app.id}],
             [{"action": "ScaleApplication", "app": app.id}]],
            app.version or "",
            {app.id: None},
        )  # fmt: skip
        self.emit("group_change_success", groupId="/", version=app.version)
        self.converge(now)
        return app, deployment

    def _check_group_clash(self, app_id: str) -> None:
        for other in self.apps:
            if is_within(other, app_id) and other != app_id:
                raise ApiError(
                    409,
                    {"message": f"{app_id} is a group of existing apps ({other}); pick another id"},
                )
            if is_within(app_id, other) and other != app_id:
                raise ApiError(
                    409, {"message": f"{app_id} would be inside the app {other}; pick another id"}
                )

    def update_app(
        self, app_id: str, data: Any, now: float, partial: bool = True, force: bool = False
    ) -> tuple[AppDefinition, Deployment, bool]:
        """PUT/PATCH: returns (app, deployment, created)."""
        self.last_now = now
        app_id = self._app_id(app_id)
        if not isinstance(data, dict):
            raise AppInvalid([("/", "an app definition is a JSON object")])
        current = self.apps.get(app_id)
        if set(data) - {"id"} == {"version"} and current is not None:
            return (*self._roll_back_to(current, str(data["version"]), now, force), False)
        body = dict(data)
        if body.get("id") is not None:
            try:
                if canonical(body["id"]) != app_id:
                    raise AppInvalid(
                        [("/id", f"the id in the body ({body['id']}) is not {app_id}")]
                    )
            except InvalidPathId as error:
                raise AppInvalid([("/id", str(error))]) from None
        body["id"] = app_id
        if current is None:
            app, deployment = self.create_app(body, now, force)
            return app, deployment, True
        app = self.updated(current, body, partial)
        self.check_lock([app_id], force)
        return (*self._change(current, app, now), False)

    @staticmethod
    def updated(current: AppDefinition, body: dict[str, Any], partial: bool) -> AppDefinition:
        """What ``body`` makes of ``current`` (``partial``: only the fields it names change);
        ``AppInvalid`` if that is not a valid app. Changes nothing."""
        if partial:
            merged = current.to_json()
            for key in ("version", "versionInfo"):
                merged.pop(key, None)
            merged.update({k: v for k, v in body.items() if k not in ("version", "versionInfo")})
            if "cmd" in body and "args" not in body:
                merged.pop("args", None)
            if "args" in body and "cmd" not in body:
                merged["cmd"] = None
            body = merged
        return AppDefinition.from_json({**body, "id": current.id})

    def _change(
        self, current: AppDefinition, app: AppDefinition, now: float
    ) -> tuple[AppDefinition, Deployment]:
        app = dataclasses.replace(app, config_version=current.config_version)
        scale_only = current.same_config(app) or self._same_but_ports(current, app)
        if scale_only:
            app = dataclasses.replace(app, port_definitions=current.port_definitions)
        else:
            app = self._assign_service_ports(app)
        app = self._stamp(app, now, config_changed=not scale_only)
        self.apps[app.id] = app
        self._save_app(app)
        if not scale_only:
            self.backoffs.pop(app.id, None)
        action = "ScaleApplication" if scale_only else "RestartApplication"
        deployment = self._new_deployment(
            [app.id], [[{"action": action, "app": app.id}]], app.version or "",
            {app.id: current.to_json()},
        )  # fmt: skip
        self.emit("group_change_success", groupId="/", version=app.version)
        self.converge(now)
        return app, deployment

    @staticmethod
    def _same_but_ports(current: AppDefinition, app: AppDefinition) -> bool:
        """A body that left service ports at 0 means the ones already assigned."""
        if len(current.port_definitions) != len(app.port_definitions):
            return False
        zeroed = tuple(dataclasses.replace(p, port=0) for p in current.port_definitions)
        given = tuple(p if p.port else dataclasses.replace(p, port=0) for p in app.port_definitions)
        return current.same_config(dataclasses.replace(app, port_definitions=zeroed)) and all(
            g.port in (0, c.port) for g, c in zip(given, current.port_definitions, strict=True)
        )

    def _roll_back_to(self, current: AppDefinition, version: str, now: float, force: bool):
        old = self.version(current.id, version)
        if old is None:
            raise ApiError(
                404, {"message": f"Version '{version}' of app '{current.id}' does not exist"}
            )
        self.check_lock([current.id], force)
        return self._change(current, dataclasses.replace(old, config_version=None), now)

    def restart_app(self, app_id: str, now: float, force: bool = False) -> Deployment:
        self.last_now = now
        app_id = self._app_id(app_id)
        current = self.apps.get(app_id)
        if current is None:
            raise _not_found(app_id)
        self.check_lock([app_id], force)
        app = self._stamp(current, now, config_changed=True)
        self.apps[app_id] = app
        self._save_app(app)
        self.backoffs.pop(app_id, None)
        deployment = self._new_deployment(
            [app_id], [[{"action": "RestartApplication", "app": app_id}]], app.version or "",
            {app_id: current.to_json()},
        )  # fmt: skip
        self.converge(now)
        return deployment

    def delete_app(self, app_id: str, now: float, force: bool = False) -> Deployment:
        self.last_now = now
        app_id = self._app_id(app_id)
        current = self.apps.get(app_id)
        if current is None:
            raise _not_found(app_id)
        self.check_lock([app_id], force)
        deployment = self._new_deployment(
            [app_id], [[{"action": "StopApplication", "app": app_id}]], iso(now),
            {app_id: current.to_json()},
        )  # fmt: skip
        self.dirty.add(app_id)  # settled with the other changes of this request
        return deployment

    def scale_app(self, app_id: str, instances: int, now: float, force: bool) -> Deployment:
        current = self.apps[app_id]
        self.check_lock([app_id], force)
        _, deployment = self._change(
            current, dataclasses.replace(current, instances=max(0, instances)), now
        )
        return deployment

    def kill_tasks(
        self, task_ids: list[str], now: float, scale: bool = False, wipe: bool = False,
        force: bool = False,
    ) -> tuple[list[Instance], Deployment | None]:  # fmt: skip
        """Kill these tasks; with ``scale`` their apps shrink by as many (a deployment)."""
        self.last_now = now
        if scale and wipe:
            raise ApiError(400, {"message": "scale=true and wipe=true cannot be combined"})
        found = [self.instances[t] for t in task_ids if t in self.instances]
        missing = [t for t in task_ids if t not in self.instances]
        if missing and not found:
            raise ApiError(404, {"message": f"Task '{missing[0]}' does not exist"})
        deployment = None
        if scale:
            by_app: dict[str, int] = {}
            for instance in found:
                if instance.is_active():
                    by_app[instance.app_id] = by_app.get(instance.app_id, 0) + 1
            self.check_lock(list(by_app), force)
            for instance in found:
                self._kill(instance)
            for app_id, count in by_app.items():
                current = self.apps.get(app_id)
                if current is not None:
                    deployment = self.scale_app(app_id, current.instances - count, now, True)
        else:
            for instance in found:
                self._kill(instance, replace=True)
        self.converge(now)
        return found, deployment

    def delete_deployment(
        self, deployment_id: str, now: float, force: bool = False
    ) -> Deployment | None:
        """Roll back (a new deployment restoring the apps as they were), or with ``force``
        just stop it where it is."""
        self.last_now = now
        deployment = self.deployments.get(deployment_id)
        if deployment is None:
            raise ApiError(404, {"message": f"DeploymentPlan {deployment_id} does not exist"})
        self._end_deployment(
            deployment, success=False, reason="cancelled" if force else "rolled back"
        )
        if force:
            self.converge(now)
            return None
        rollback = None
        for app_id, original in deployment.original.items():
            current = self.apps.get(app_id)
            if original is None:
                if current is not None:
                    rollback = self.delete_app(app_id, now, force=True)
            elif current is not None:
                old = AppDefinition.from_json(
                    {k: v for k, v in original.items() if k not in ("version", "versionInfo")}
                )
                _, rollback = self._change(current, old, now)
            else:
                old = AppDefinition.from_json(
                    {k: v for k, v in original.items() if k not in ("version", "versionInfo")}
                )
                _, rollback = self.create_app(old.to_json(), now, force=True)
        self.converge(now)
        return rollback

    def reset_delay(self, app_id: str, now: float) -> None:
        app_id = self._app_id(app_id)
        if app_id not in self.apps:
            raise _not_found(app_id)
        self.backoffs.pop(app_id, None)
        self.converge(now)

    def _app_id(self, app_id: str) -> str:
        try:
            return canonical(app_id)
        except InvalidPathId as error:
            raise ApiError(400, {"message": str(error)}) from None

    # -- kills -------------------------------------------------------------------------------

    def _kill(self, instance: Instance, replace: bool = False) -> None:
        """Kill the instance's task; unless ``replace``, its end is expected (not replaced)."""
        if instance.is_terminal():
            return
        if not replace:
            instance.goal = "Stopped"
        instance.killing = True
        self._save_instance(instance)
        app = self.apps.get(instance.app_id)
        grace = app.task_kill_grace_period_seconds if app else None
        self.effects.append(Kill(instance.task_id, instance.agent_id, grace))

    # -- status updates ----------------------------------------------------------------------

    def status_update(
        self, task_id: str, state: TaskState, now: float, healthy: bool | None = None,
        message: str | None = None, reason: str | None = None, agent_id: str | None = None,
    ) -> None:  # fmt: skip
        self.last_now = now
        instance = self.instances.get(task_id)
        if instance is None:
            if state not in TERMINAL and agent_id:
                # A task of ours no record knows (Marathon kills such strays).
                log.warning("unknown_task_killed", task_id=task_id, state=state.value)
                self.effects.append(Kill(task_id, agent_id, None))
            return
        was_terminal = instance.is_terminal()
        changed, health_changed = instance.apply(state, healthy, message, reason, iso(now))
        if was_terminal:
            return
        if state is TaskState.TASK_UNREACHABLE and instance.unreachable_since is None:
            instance.unreachable_since = now
        elif state is not TaskState.TASK_UNREACHABLE:
            instance.unreachable_since = None
        app = self.apps.get(instance.app_id)
        if changed:
            self.emit(
                "status_update_event",
                slaveId=instance.agent_id,
                taskId=task_id,
                taskStatus=state.value,
                message=message or "",
                appId=instance.app_id,
                host=instance.host,
                ipAddresses=[],
                ports=list(instance.ports),
                version=instance.version,
            )
            self.emit(
                "instance_changed_event",
                instanceId=task_id,
                condition=instance.condition,
                runSpecId=instance.app_id,
                agentId=instance.agent_id,
                host=instance.host,
                runSpecVersion=instance.version,
            )
        if health_changed:
            self.emit(
                "health_status_changed_event",
                appId=instance.app_id,
                taskId=task_id,
                instanceId=task_id,
                version=instance.version,
                alive=bool(instance.healthy),
            )
            if instance.healthy is False and not instance.is_terminal() and app:
                self.emit(
                    "failed_health_check_event",
                    appId=instance.app_id,
                    taskId=task_id,
                    instanceId=task_id,
                    healthCheck=app.health_checks[0].to_json() if app.health_checks else {},
                )
        if instance.is_terminal():
            self._ended(instance, state, now)
        else:
            self._save_instance(instance)
        self.dirty.add(instance.app_id)

    def _add(self, instance: Instance) -> None:
        self.instances[instance.task_id] = instance
        self.by_app.setdefault(instance.app_id, {})[instance.task_id] = instance

    def app_instances(self, app_id: str) -> list[Instance]:
        return list(self.by_app.get(app_id, {}).values())

    def _ended(self, instance: Instance, state: TaskState, now: float) -> None:
        self.instances.pop(instance.task_id, None)
        mine = self.by_app.get(instance.app_id, {})
        mine.pop(instance.task_id, None)
        if not mine:
            self.by_app.pop(instance.app_id, None)
        self.store.delete("instances", instance.task_id)
        if instance.goal != "Running":
            return
        log.info("instance_ended", task_id=instance.task_id, state=state.value, app=instance.app_id)
        app = self.apps.get(instance.app_id)
        if state is TaskState.TASK_KILLED and instance.health.consecutive_failures and app:
            self.emit(
                "unhealthy_instance_kill_event",
                appId=instance.app_id,
                taskId=instance.task_id,
                instanceId=instance.task_id,
                version=instance.version,
                reason=instance.health.last_failure_cause or "health check failed",
                host=instance.host,
                slaveId=instance.agent_id,
            )
        if state is not TaskState.TASK_KILLED or instance.health.consecutive_failures:
            self.last_failure[instance.app_id] = {
                "appId": instance.app_id,
                "host": instance.host,
                "message": instance.message or "",
                "state": state.value,
                "taskId": instance.task_id,
                "timestamp": iso(now),
                "version": instance.version,
                "slaveId": instance.agent_id,
            }
        if app is not None and state in (
            TaskState.TASK_FAILED, TaskState.TASK_FINISHED, TaskState.TASK_ERROR
        ):  # fmt: skip
            self._backoff(app).failed(now)

    def _backoff(self, app: AppDefinition) -> Backoff:
        backoff = self.backoffs.get(app.id)
        if backoff is None:
            backoff = Backoff(app.backoff_seconds, app.backoff_factor, app.max_launch_delay_seconds)
            self.backoffs[app.id] = backoff
        return backoff

    # -- readiness ---------------------------------------------------------------------------

    def readiness_probes(self, now: float) -> list[Probe]:
        """The readiness checks due now: for each running (and healthy, when health-checked)
        instance of the current config that is not ready yet, at the check's interval."""
        probes = []
        for instance in self.instances.values():
            app = self.apps.get(instance.app_id)
            if app is None or not app.readiness_checks or instance.ready is True:
                continue
            if instance.config_version != app.config_version or instance.readiness_due > now:
                continue
            if not instance.is_ready(bool(app.health_checks)):
                continue
            check = app.readiness_checks[0]
            names = [p.name for p in app.port_definitions]
            index = names.index(check.port_name)
            if index >= len(instance.ports):
                continue
            scheme = "https" if check.protocol == "HTTPS" else "http"
            url = f"{scheme}://{instance.host}:{instance.ports[index]}{check.path}"
            instance.readiness_due = now + max(check.interval_seconds, 0.1)
            probes.append(
                Probe(
                    instance.task_id, url, check.timeout_seconds, check.http_status_codes_for_ready
                )
            )
        return probes

    def readiness_result(self, task_id: str, status: int | None, now: float) -> None:
        """A readiness check came back with ``status`` (None: no answer)."""
        self.last_now = now
        instance = self.instances.get(task_id)
        app = self.apps.get(instance.app_id) if instance else None
        if instance is None or app is None or instance.is_terminal() or not app.readiness_checks:
            return
        if status in app.readiness_checks[0].http_status_codes_for_ready and not instance.ready:
            instance.ready = True
            self._save_instance(instance)
            log.info("instance_ready", task_id=task_id, status=status)
            self.dirty.add(instance.app_id)

    # -- the control loop --------------------------------------------------------------------

    def tick(self, now: float) -> None:
        """Time passed: unreachable instances may turn inactive (replaced) and then be
        expunged (forgotten: a task that comes back later is a stray, and killed), as the
        app's ``unreachableStrategy`` says; backoffs run out."""
        self.last_now = now
        for instance in list(self.instances.values()):
            if instance.unreachable_since is None:
                continue
            app = self.apps.get(instance.app_id)
            strategy = app.unreachable_strategy if app else None
            away = now - instance.unreachable_since
            if instance.goal == "Running" and away >= (
                strategy.inactive_after_seconds if strategy else 0.0
            ):
                instance.goal = "Replaced"  # inactive: a replacement starts, it is killed if back
                self._save_instance(instance)
                self.effects.append(Kill(instance.task_id, instance.agent_id, None))
            if instance.goal == "Replaced" and away >= (
                strategy.expunge_after_seconds if strategy else 0.0
            ):
                log.info("unreachable_instance_expunged", task_id=instance.task_id)
                self._ended(instance, TaskState.TASK_GONE, now)
        self.converge(now)

    def converge(self, now: float, app_ids: Iterable[str] | None = None) -> None:
        """Move the apps (default: every app) one step toward what they should be; finish
        what is done. Status updates only mark their app, converged at the next settle."""
        if app_ids is None:
            self.dirty.clear()
        for app_id in list(self.apps) if app_ids is None else list(app_ids):
            app = self.apps.get(app_id)
            self.wanted.pop(app_id, None)
            if app is None:
                continue
            instances = self.app_instances(app_id)
            locks = self.locks([app_id])
            stopping = [d for d in locks if _stops(d, app_id)]
            if stopping and self._dependents_stopping(app_id):
                continue  # stop what depends on it first (Marathon's order)
            if stopping:
                for instance in instances:
                    if instance.goal == "Running" and not instance.is_terminal():
                        self._kill(instance)
                if not any(not i.is_terminal() for i in instances):
                    self._remove_app(app_id)
                    for deployment in stopping:
                        self._end_deployment(deployment, success=True)
                continue
            step = deployment_plan.next_step(app, instances, rolling=bool(locks))
            for task_id in step.kill:
                self._kill(self.instances[task_id])
            if step.launch and not self._dependency_deploying(app):
                self.wanted[app_id] = step.launch
            if step.done and not step.kill:
                for deployment in locks:
                    if all(self._app_done(a, self.app_instances(a)) for a in deployment.apps):
                        self._end_deployment(deployment, success=True)
        for deployment in list(self.deployments.values()):
            if not any(a in self.apps for a in deployment.apps):
                self._end_deployment(deployment, success=True)
        wants = any(
            count and self._backoff(self.apps[a]).may_launch(now)
            for a, count in self.wanted.items()
        )
        if wants and self.suppressed is not False:
            self.suppressed = False
            self.effects.append(Revive())
        elif not wants and self.suppressed is not True:
            self.suppressed = True
            self.effects.append(Suppress())

    def _dependency_deploying(self, app: AppDefinition) -> bool:
        """Whether an app this one depends on is still being deployed: its instances start
        first (Marathon's order), then this one's."""
        return any(
            dependency in self.apps
            and any(not _stops(d, dependency) for d in self.locks([dependency]))
            for dependency in app.dependencies
        )

    def _dependents_stopping(self, app_id: str) -> bool:
        """Whether an app that depends on this one is being stopped too (it goes first)."""
        return any(
            other.id != app_id
            and app_id in other.dependencies
            and any(_stops(d, other.id) for d in self.locks([other.id]))
            for other in self.apps.values()
        )

    def _app_done(self, app_id: str, instances: list[Instance]) -> bool:
        app = self.apps.get(app_id)
        if app is None:
            return True
        return deployment_plan.next_step(app, instances, rolling=True).done

    def _remove_app(self, app_id: str) -> None:
        removed = self.apps.pop(app_id, None)
        if removed is not None:
            self.dirty.update(d for d in removed.dependencies if d in self.apps)
        with self.store.batch():
            self.store.delete("apps", app_id)
            for old in self.versions(app_id):
                self.store.delete("versions", f"{app_id}@{old}")
        self.backoffs.pop(app_id, None)
        self.offer_stats.pop(app_id, None)
        self.emit("app_terminated_event", appId=app_id)

    # -- offers ------------------------------------------------------------------------------

    def offers(self, offers: list[Offer], now: float) -> None:
        """Use what fits the waiting apps; decline the rest (with a filter)."""
        self.last_now = now
        self.settle()
        waiting = [
            a for a, count in sorted(self.wanted.items())
            if count and self._backoff(self.apps[a]).may_launch(now)
        ]  # fmt: skip
        # Where each waiting app runs, for its constraints (none: not needed), kept as it grows.
        placed: dict[str, list[AgentFacts]] = {
            a: [AgentFacts(i.host, i.attributes) for i in self.app_instances(a) if i.is_active()]
            for a in waiting
            if self.apps[a].constraints
        }
        declined = []
        with self.store.batch():  # every record of this round durable before any launch
            self._place(offers, waiting, placed, declined, now)
        if declined:
            refuse = REFUSE_WAITING if waiting else REFUSE_IDLE
            self.effects.append(Decline(tuple(declined), refuse))

    def _place(
        self,
        offers: list[Offer],
        waiting: list[str],
        placed: dict[str, list[AgentFacts]],
        declined: list[str],
        now: float,
    ) -> None:
        for offer in offers:
            space = offer_match.OfferSpace.of(offer)
            tasks: list[TaskInfo] = []
            for app_id in waiting:
                app = self.apps[app_id]
                stats = self.offer_stats.setdefault(app_id, OfferStats(since=iso(now)))
                launched_here = 0
                where = placed.get(app_id, [])
                while self.wanted.get(app_id, 0) > 0:
                    found = offer_match.match(app, space, where)
                    if isinstance(found, offer_match.Mismatch):
                        if not launched_here:
                            self._unused(stats, offer, found.reasons, now)
                        break
                    offer_match.take(app, space, found)
                    instance = self._new_instance(app, offer, space, found, now)
                    where.append(AgentFacts(instance.host, instance.attributes))
                    tasks.append(task_builder.task_info(app, instance))
                    self.wanted[app_id] -= 1
                    launched_here += 1
                if launched_here:
                    stats.processed += 1
                    stats.last_used_at = iso(now)
            if tasks:
                self.effects.append(Launch(str(offer.id), tuple(tasks), REFUSE_WAITING))
            else:
                declined.append(str(offer.id))

    def _unused(
        self, stats: OfferStats, offer: Offer, reasons: tuple[str, ...], now: float
    ) -> None:
        stats.processed += 1
        stats.unused += 1
        stats.last_unused_at = iso(now)
        for reason in offer_match.REASONS:
            stats.processed_by[reason] = stats.processed_by.get(reason, 0) + 1
            if reason in reasons:
                stats.declined_by[reason] = stats.declined_by.get(reason, 0) + 1
                break  # Marathon counts an offer under the first reason that declined it
        stats.last_unused.append(
            {
                "offer": {
                    "id": str(offer.id),
                    "agentId": str(offer.agent_id),
                    "hostname": offer.hostname,
                    "resources": _offer_resources(offer),
                    "attributes": [
                        {"name": k, "text": v}
                        for k, v in offer_match.agent_facts(offer).attributes.items()
                    ],
                },
                "timestamp": iso(now),
                "reason": list(reasons),
            }
        )

    def _new_instance(self, app, offer, space, found, now) -> Instance:
        instance = Instance(
            task_id=f"{task_prefix(app.id)}.{uuid.uuid4()}",
            app_id=app.id,
            version=app.version or "",
            config_version=app.config_version or "",
            agent_id=str(offer.agent_id),
            host=offer.hostname,
            ports=list(found.ports),
            service_ports=[p.port for p in app.port_definitions],
            staged_at=iso(now),
            attributes=dict(space.facts.attributes),
        )
        self._add(instance)
        self._save_instance(instance)  # durable before the launch goes out
        return instance


def _stops(deployment: Deployment, app_id: str) -> bool:
    """Whether the deployment stops the app (a StopApplication action for it)."""
    return any(
        a["action"] == "StopApplication" and a["app"] == app_id
        for step in deployment.actions
        for a in step
    )


def _offer_resources(offer: Offer) -> list[dict[str, Any]]:
    out = []
    for name in sorted(offer.resources.names()):
        ranges = offer.resources.ranges(name)
        if ranges:
            out.append({"name": name, "ranges": [{"begin": b, "end": e} for b, e in ranges]})
        else:
            out.append({"name": name, "scalar": offer.resources.scalar(name)})
    return out
