"""Marathon's app JSON ⇄ a typed ``AppDefinition`` with Marathon's defaults.

``AppDefinition.from_json`` judges a whole definition and raises ``AppInvalid`` naming every
problem with its JSON path (Marathon's 422 body: ``{"message": "Object is not valid",
"details": [{"path": "/cpus", "errors": [...]}]}``), so a client fixes them all at once.
``to_json`` writes Marathon's field names with every default filled in, which is what
``GET /v2/apps/{id}`` shows. Fields Corral does not act on yet (``secrets``, ``fetch``...)
are kept and shown as given.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from typing import Any

from services.constraints import OPERATORS, Constraint
from services.path_id import InvalidPathId, canonical

KILL_SELECTIONS = ("YOUNGEST_FIRST", "OLDEST_FIRST")
HEALTH_PROTOCOLS = ("HTTP", "HTTPS", "TCP", "COMMAND", "MESOS_HTTP", "MESOS_HTTPS", "MESOS_TCP")
PORT_PROTOCOLS = ("tcp", "udp", "udp,tcp", "tcp,udp")
CONTAINER_TYPES = ("MESOS", "DOCKER")
NETWORK_MODES = ("host", "container", "container/bridge")
_PORT_NAME = re.compile(r"^[a-z0-9-]+$")


class AppInvalid(ValueError):
    """A definition Marathon would refuse with 422: ``details`` lists (path, message)."""

    def __init__(self, details: list[tuple[str, str]]) -> None:
        self.details = details
        super().__init__("; ".join(f"{path}: {message}" for path, message in details))

    def to_json(self) -> dict[str, Any]:
        grouped: dict[str, list[str]] = {}
        for path, message in self.details:
            grouped.setdefault(path, []).append(message)
        return {
            "message": "Object is not valid",
            "details": [{"path": path, "errors": errors} for path, errors in grouped.items()],
        }


@dataclass(frozen=True)
class PortDefinition:
    port: int = 0  # 0: a service port is assigned
    protocol: str = "tcp"
    name: str | None = None
    labels: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"port": self.port, "protocol": self.protocol}
        if self.name is not None:
            out["name"] = self.name
        out["labels"] = dict(self.labels)
        return out


@dataclass(frozen=True)
class HealthCheckDefinition:
    """One of ``healthChecks``; the defaults are Marathon's (not Mesos's)."""

    protocol: str = "HTTP"
    path: str | None = None
    port_index: int | None = None  # None with no ``port``: 0
    port: int | None = None
    command: str | None = None
    grace_period_seconds: float = 300.0
    interval_seconds: float = 60.0
    timeout_seconds: float = 20.0
    max_consecutive_failures: int = 3
    delay_seconds: float = 15.0
    ip_protocol: str = "IPv4"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "protocol": self.protocol,
            "gracePeriodSeconds": _number(self.grace_period_seconds),
            "intervalSeconds": _number(self.interval_seconds),
            "timeoutSeconds": _number(self.timeout_seconds),
            "maxConsecutiveFailures": self.max_consecutive_failures,
            "delaySeconds": _number(self.delay_seconds),
        }
        if self.protocol in ("HTTP", "HTTPS", "MESOS_HTTP", "MESOS_HTTPS"):
            out["path"] = self.path or "/"
            out["ipProtocol"] = self.ip_protocol
        if self.command is not None:
            out["command"] = {"value": self.command}
        elif self.port is not None:
            out["port"] = self.port
        else:
            out["portIndex"] = self.port_index or 0
        return out


@dataclass(frozen=True)
class ReadinessCheckDefinition:
    """One of ``readinessChecks``: an HTTP GET the scheduler itself sends to a new instance
    during a deployment; the instance counts as ready once it answers with one of
    ``http_status_codes_for_ready``. Marathon's defaults."""

    name: str = "readinessCheck"
    protocol: str = "HTTP"
    path: str = "/"
    port_name: str = "http-api"
    interval_seconds: float = 30.0
    timeout_seconds: float = 10.0
    http_status_codes_for_ready: tuple[int, ...] = (200,)
    preserve_last_response: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "protocol": self.protocol,
            "path": self.path,
            "portName": self.port_name,
            "intervalSeconds": _number(self.interval_seconds),
            "timeoutSeconds": _number(self.timeout_seconds),
            "httpStatusCodesForReady": list(self.http_status_codes_for_ready),
            "preserveLastResponse": self.preserve_last_response,
        }


@dataclass(frozen=True)
class UpgradeStrategy:
    minimum_health_capacity: float = 1.0
    maximum_over_capacity: float = 1.0

    def to_json(self) -> dict[str, Any]:
        return {
            "minimumHealthCapacity": _number(self.minimum_health_capacity),
            "maximumOverCapacity": _number(self.maximum_over_capacity),
        }


@dataclass(frozen=True)
class UnreachableStrategy:
    inactive_after_seconds: float = 0.0
    expunge_after_seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "inactiveAfterSeconds": _number(self.inactive_after_seconds),
            "expungeAfterSeconds": _number(self.expunge_after_seconds),
        }


@dataclass(frozen=True)
class AppDefinition:
    """A Marathon app; ``version`` is the time of its last change (ISO 8601, UTC), and
    ``config_version`` that of its last change other than scaling: instances of an older
    config are replaced by a deployment, those of an older version only are not."""

    id: str
    cmd: str | None = None
    args: tuple[str, ...] | None = None
    cpus: float = 1.0
    mem: float = 128.0
    disk: float = 0.0
    gpus: int = 0
    instances: int = 1
    env: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    user: str | None = None
    container: dict[str, Any] | None = None
    port_definitions: tuple[PortDefinition, ...] = (PortDefinition(),)
    require_ports: bool = False
    networks: tuple[dict[str, Any], ...] = ({"mode": "host"},)
    health_checks: tuple[HealthCheckDefinition, ...] = ()
    readiness_checks: tuple[ReadinessCheckDefinition, ...] = ()
    constraints: tuple[Constraint, ...] = ()
    accepted_resource_roles: tuple[str, ...] | None = None
    upgrade_strategy: UpgradeStrategy = UpgradeStrategy()
    backoff_seconds: float = 1.0
    backoff_factor: float = 1.15
    max_launch_delay_seconds: float = 300.0
    kill_selection: str = "YOUNGEST_FIRST"
    unreachable_strategy: UnreachableStrategy = UnreachableStrategy(0.0, 0.0)
    task_kill_grace_period_seconds: float | None = None
    dependencies: tuple[str, ...] = ()
    fetch: tuple[dict[str, Any], ...] = ()
    role: str = "*"
    version: str | None = None
    config_version: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # kept, not acted on

    # -- reading ---------------------------------------------------------------------------

    @classmethod
    def from_json(cls, data: Any, base: str = "/", id_required: bool = True) -> AppDefinition:
        """The definition in ``data``, or ``AppInvalid`` with every problem's path."""
        return _Reader(data, base, id_required).read()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id}
        out["cmd"] = self.cmd
        if self.args is not None:
            out["args"] = list(self.args)
        out.update(
            {
                "cpus": _number(self.cpus),
                "mem": _number(self.mem),
                "disk": _number(self.disk),
                "gpus": self.gpus,
                "instances": self.instances,
                "env": dict(self.env),
                "labels": dict(self.labels),
                "user": self.user,
                "container": self.container,
                "portDefinitions": [p.to_json() for p in self.port_definitions],
                "requirePorts": self.require_ports,
                "networks": [dict(n) for n in self.networks],
                "healthChecks": [h.to_json() for h in self.health_checks],
                "readinessChecks": [r.to_json() for r in self.readiness_checks],
                "constraints": [c.to_json() for c in self.constraints],
                "acceptedResourceRoles": (
                    list(self.accepted_resource_roles)
                    if self.accepted_resource_roles is not None
                    else None
                ),
                "upgradeStrategy": self.upgrade_strategy.to_json(),
                "backoffSeconds": _number(self.backoff_seconds),
                "backoffFactor": _number(self.backoff_factor),
                "maxLaunchDelaySeconds": _number(self.max_launch_delay_seconds),
                "killSelection": self.kill_selection,
                "unreachableStrategy": self.unreachable_strategy.to_json(),
                "dependencies": list(self.dependencies),
                "fetch": [dict(f) for f in self.fetch],
                "role": self.role,
                "version": self.version,
            }
        )
        if self.task_kill_grace_period_seconds is not None:
            out["taskKillGracePeriodSeconds"] = _number(self.task_kill_grace_period_seconds)
        if self.version is not None:
            out["versionInfo"] = {
                "lastScalingAt": self.version,
                "lastConfigChangeAt": self.config_version or self.version,
            }
        for key, value in self.extra.items():
            out.setdefault(key, value)
        return out

    def stored(self) -> dict[str, Any]:
        """The form the store keeps (``to_json`` plus the config version)."""
        out = self.to_json()
        out["versionInfo"] = {
            "lastScalingAt": self.version,
            "lastConfigChangeAt": self.config_version,
        }
        return out

    @classmethod
    def from_stored(cls, data: dict[str, Any]) -> AppDefinition:
        info = data.get("versionInfo") or {}
        body = {k: v for k, v in data.items() if k not in ("version", "versionInfo")}
        app = cls.from_json(body)
        return dataclasses.replace(
            app, version=data.get("version"), config_version=info.get("lastConfigChangeAt")
        )

    # -- what the scheduler asks ----------------------------------------------------------

    def image(self) -> str | None:
        """The image a MESOS container runs from (``container.docker.image``)."""
        container = self.container or {}
        docker = container.get("docker") or {}
        return docker.get("image") or None

    def port_count(self) -> int:
        return len(self.port_definitions)

    def same_config(self, other: AppDefinition) -> bool:
        """Whether only ``instances`` (and versions) differ: a scale, not a restart."""
        mine = dataclasses.replace(self, instances=0, version=None, config_version=None)
        theirs = dataclasses.replace(other, instances=0, version=None, config_version=None)
        return mine == theirs


def _number(value: float) -> float | int:
    """Whole numbers as ints, as Marathon's JSON shows ``"mem": 128``."""
    return int(value) if float(value).is_integer() else value


_KNOWN_FIELDS = {
    "id", "cmd", "args", "cpus", "mem", "disk", "gpus", "instances", "env", "labels", "user",
    "container", "portDefinitions", "ports", "requirePorts", "networks", "healthChecks",
    "readinessChecks", "constraints", "acceptedResourceRoles", "upgradeStrategy",
    "backoffSeconds", "backoffFactor", "maxLaunchDelaySeconds", "killSelection",
    "unreachableStrategy", "taskKillGracePeriodSeconds", "dependencies", "fetch", "uris",
    "role", "version", "versionInfo", "executor", "storeUrls", "secrets", "tty",
    "resourceLimits", "ipAddress", "residency", "check", "executorResources",
    # read-only fields of GET's answer, which clients send back on PUT
    "tasksStaged", "tasksRunning", "tasksHealthy", "tasksUnhealthy", "deployments", "tasks",
    "lastTaskFailure", "readinessCheckResults", "taskStats",
}  # fmt: skip
# Fields kept as given and shown back, not acted on yet (see docs/services.md).
_KEPT = ("secrets", "tty", "executor", "storeUrls", "residency", "resourceLimits", "check")


class _Reader:
    """One pass over a definition, collecting every problem before raising."""

    def __init__(self, data: Any, base: str, id_required: bool) -> None:
        self.data = data
        self.base = base
        self.id_required = id_required
        self.problems: list[tuple[str, str]] = []

    def problem(self, path: str, message: str) -> None:
        self.problems.append((path, message))

    def read(self) -> AppDefinition:
        data = self.data
        if not isinstance(data, dict):
            raise AppInvalid([("/", "an app definition is a JSON object")])
        values: dict[str, Any] = {}
        app_id = self.read_id(data)
        values.update(self.read_command(data))
        values["cpus"] = self.number(data, "cpus", 1.0, minimum=0.001)
        values["mem"] = self.number(data, "mem", 128.0, minimum=0.0)
        values["disk"] = self.number(data, "disk", 0.0, minimum=0.0)
        values["gpus"] = int(self.number(data, "gpus", 0, minimum=0, integer=True))
        values["instances"] = int(self.number(data, "instances", 1, minimum=0, integer=True))
        values["env"] = self.string_map(data, "env")
        values["labels"] = self.string_map(data, "labels")
        values["user"] = self.optional_string(data, "user")
        values["container"] = self.read_container(data.get("container"))
        values["port_definitions"] = self.read_port_definitions(data)
        values["require_ports"] = self.boolean(data, "requirePorts", False)
        values["networks"] = self.read_networks(data.get("networks"))
        values["health_checks"] = self.read_health_checks(data.get("healthChecks"))
        values["readiness_checks"] = self.read_readiness_checks(
            data.get("readinessChecks"), values["port_definitions"]
        )
        values["constraints"] = self.read_constraints(data.get("constraints"))
        values["accepted_resource_roles"] = self.read_roles(data.get("acceptedResourceRoles"))
        values["upgrade_strategy"] = self.read_upgrade_strategy(data.get("upgradeStrategy"))
        values["backoff_seconds"] = self.number(data, "backoffSeconds", 1.0, minimum=0.0)
        values["backoff_factor"] = self.number(data, "backoffFactor", 1.15, minimum=1.0)
        values["max_launch_delay_seconds"] = self.number(
            data, "maxLaunchDelaySeconds", 300.0, minimum=0.0
        )
        values["kill_selection"] = self.choice(
            data, "killSelection", KILL_SELECTIONS, "YOUNGEST_FIRST"
        )
        values["unreachable_strategy"] = self.read_unreachable(data.get("unreachableStrategy"))
        grace = data.get("taskKillGracePeriodSeconds")
        if grace is not None:
            grace = self.number(data, "taskKillGracePeriodSeconds", 0.0, minimum=0.0)
        values["task_kill_grace_period_seconds"] = grace
        values["dependencies"] = self.read_dependencies(data.get("dependencies"), app_id)
        values["fetch"] = self.object_list(data, "fetch")
        values["role"] = self.optional_string(data, "role") or "*"
        for key in data:
            if key not in _KNOWN_FIELDS:
                self.problem(f"/{key}", f"unknown field '{key}'; see Marathon's app schema")
        extra = {k: data[k] for k in _KEPT if data.get(k) is not None}
        if values["require_ports"] and any(p.port == 0 for p in values["port_definitions"]):
            self.problem(
                "/requirePorts",
                "requirePorts needs every portDefinitions[].port set (not 0): those exact "
                "ports are asked of the agents",
            )
        if self.problems:
            raise AppInvalid(self.problems)
        return AppDefinition(id=app_id or "", extra=extra, **values)

    # -- fields ----------------------------------------------------------------------------

    def read_id(self, data: dict[str, Any]) -> str | None:
        raw = data.get("id")
        if raw is None:
            if self.id_required:
                self.problem("/id", "id is required: a path such as '/shop/web'")
            return None
        try:
            return canonical(raw, self.base)
        except InvalidPathId as error:
            self.problem("/id", str(error))
            return None

    def read_command(self, data: dict[str, Any]) -> dict[str, Any]:
        cmd, args = data.get("cmd"), data.get("args")
        out: dict[str, Any] = {"cmd": None, "args": None}
        if cmd is not None and not isinstance(cmd, str):
            self.problem("/cmd", "cmd is a string (a shell command)")
        elif cmd is not None:
            out["cmd"] = cmd
        if args is not None:
            if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
                self.problem("/args", "args is a list of strings")
            else:
                out["args"] = tuple(args)
        if cmd is not None and args:
            self.problem("/", "AppDefinition must either contain one of 'cmd' or 'args', not both")
        container = data.get("container") or {}
        has_image = isinstance(container, dict) and bool(container.get("docker") or {})
        if cmd is None and not args and not has_image:
            self.problem(
                "/",
                "AppDefinition must either contain one of 'cmd' or 'args', and/or a 'container'",
            )
        return out

    def number(
        self,
        data: dict[str, Any],
        key: str,
        default: float,
        minimum: float | None = None,
        maximum: float | None = None,
        integer: bool = False,
        path: str = "",
    ) -> float:
        value = data.get(key, default)
        where = f"{path}/{key}"
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            self.problem(where, f"{key} is a number, got {value!r}")
            return default
        if integer and not float(value).is_integer():
            self.problem(where, f"{key} is a whole number, got {value!r}")
            return default
        if minimum is not None and value < minimum:
            self.problem(where, f"got {_number(value)}, expected {_number(minimum)} or more")
            return default
        if maximum is not None and value > maximum:
            self.problem(where, f"got {_number(value)}, expected {_number(maximum)} or less")
            return default
        return float(value)

    def boolean(self, data: dict[str, Any], key: str, default: bool, path: str = "") -> bool:
        value = data.get(key, default)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.problem(f"{path}/{key}", f"{key} is true or false, got {value!r}")
            return default
        return value

    def optional_string(self, data: dict[str, Any], key: str) -> str | None:
        value = data.get(key)
        if value is not None and not isinstance(value, str):
            self.problem(f"/{key}", f"{key} is a string, got {value!r}")
            return None
        return value

    def choice(self, data: dict[str, Any], key: str, allowed: tuple, default: str, path=""):
        value = data.get(key, default)
        if value is None:
            return default
        if value not in allowed:
            self.problem(f"{path}/{key}", f"{key} is one of {', '.join(allowed)}; got {value!r}")
            return default
        return value

    def string_map(self, data: dict[str, Any], key: str) -> dict[str, str]:
        value = data.get(key) or {}
        if not isinstance(value, dict):
            self.problem(f"/{key}", f"{key} is an object of strings")
            return {}
        out = {}
        for name, item in value.items():
            if isinstance(item, str):
                out[name] = item
            elif key == "env" and isinstance(item, dict) and "secret" in item:
                continue  # a secret reference: secrets are not built yet (kept out of env)
            else:
                self.problem(f"/{key}/{name}", f"a value of {key} is a string, got {item!r}")
        return out

    def object_list(self, data: dict[str, Any], key: str) -> tuple[dict[str, Any], ...]:
        value = data.get(key) or []
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            self.problem(f"/{key}", f"{key} is a list of objects")
            return ()
        return tuple(value)

    def read_container(self, value: Any) -> dict[str, Any] | None:
        if value is None:
            return None
        if not isinstance(value, dict):
            self.problem("/container", "container is an object")
            return None
        kind = value.get("type", "DOCKER")
        if kind not in CONTAINER_TYPES:
            self.problem("/container/type", f"type is MESOS or DOCKER, got {kind!r}")
        elif kind == "DOCKER":
            self.problem(
                "/container/type",
                "DOCKER containers need the Docker containerizer, which Corral does not have "
                "yet; use type MESOS with docker.image (it runs under runc)",
            )
        docker = value.get("docker")
        if docker is not None and (
            not isinstance(docker, dict) or not isinstance(docker.get("image"), str)
        ):
            self.problem("/container/docker/image", "docker.image is a string: the image")
        return {**value, "type": kind}

    def read_port_definitions(self, data: dict[str, Any]) -> tuple[PortDefinition, ...]:
        if "portDefinitions" not in data and "ports" in data:
            ports = data["ports"]
            if not isinstance(ports, list) or not all(isinstance(p, int) for p in ports):
                self.problem("/ports", "ports is a list of port numbers")
                return (PortDefinition(),)
            return tuple(PortDefinition(port=p) for p in ports)
        value = data.get("portDefinitions")
        if value is None:
            return (PortDefinition(),)
        if not isinstance(value, list):
            self.problem("/portDefinitions", "portDefinitions is a list of objects")
            return ()
        out = []
        names: set[str] = set()
        for index, item in enumerate(value):
            path = f"/portDefinitions({index})"
            if not isinstance(item, dict):
                self.problem(path, "a port definition is an object")
                continue
            port = int(self.number(item, "port", 0, 0, 65535, integer=True, path=path))
            protocol = self.choice(item, "protocol", PORT_PROTOCOLS, "tcp", path=path)
            name = item.get("name")
            if name is not None and (not isinstance(name, str) or not _PORT_NAME.match(name)):
                self.problem(f"{path}/name", "a port name is lower-case letters, digits and '-'")
                name = None
            if name is not None:
                if name in names:
                    self.problem(f"{path}/name", f"port name {name!r} is used twice")
                names.add(name)
            labels = item.get("labels") or {}
            if not isinstance(labels, dict):
                self.problem(f"{path}/labels", "labels is an object of strings")
                labels = {}
            out.append(PortDefinition(port, protocol, name, dict(labels)))
        given = [p.port for p in out if p.port]
        if len(given) != len(set(given)):
            self.problem("/portDefinitions", "port numbers of portDefinitions must be unique")
        return tuple(out)

    def read_networks(self, value: Any) -> tuple[dict[str, Any], ...]:
        if value is None or value == []:
            return ({"mode": "host"},)  # Marathon's default: the host's network
        if not isinstance(value, list):
            self.problem("/networks", "networks is a list of objects")
            return ()
        for index, item in enumerate(value):
            mode = item.get("mode", "container") if isinstance(item, dict) else None
            if mode != "host":
                self.problem(
                    f"/networks({index})/mode",
                    f"only mode 'host' is supported (got {mode!r}): container networks "
                    "are not built yet",
                )
        return tuple(v for v in value if isinstance(v, dict))

    def read_health_checks(self, value: Any) -> tuple[HealthCheckDefinition, ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            self.problem("/healthChecks", "healthChecks is a list of objects")
            return ()
        out = []
        for index, item in enumerate(value):
            path = f"/healthChecks({index})"
            if not isinstance(item, dict):
                self.problem(path, "a health check is an object")
                continue
            protocol = self.choice(item, "protocol", HEALTH_PROTOCOLS, "HTTP", path=path)
            command = item.get("command")
            if protocol == "COMMAND":
                if not isinstance(command, dict) or not isinstance(command.get("value"), str):
                    self.problem(f"{path}/command", "a COMMAND check needs command.value")
                    command = None
                else:
                    command = command["value"]
            else:
                command = None
            port = item.get("port")
            port_index = item.get("portIndex")
            if port is not None and port_index is not None:
                self.problem(path, "give port or portIndex, not both")
            if port is not None:
                port = int(self.number(item, "port", 0, 1, 65535, integer=True, path=path))
            if port_index is not None:
                port_index = int(self.number(item, "portIndex", 0, 0, integer=True, path=path))
            check_path = item.get("path")
            if check_path is not None and (
                not isinstance(check_path, str) or not check_path.startswith("/")
            ):
                self.problem(f"{path}/path", "path starts with '/'")
                check_path = None
            if index > 0:
                self.problem(
                    path,
                    "give at most one health check: each runs on the agent as the task's one "
                    "Mesos health check",
                )
            out.append(
                HealthCheckDefinition(
                    protocol=protocol,
                    path=check_path,
                    port_index=port_index,
                    port=port,
                    command=command,
                    grace_period_seconds=self.number(
                        item, "gracePeriodSeconds", 300.0, 0.0, path=path
                    ),
                    interval_seconds=self.number(item, "intervalSeconds", 60.0, 0.0, path=path),
                    timeout_seconds=self.number(item, "timeoutSeconds", 20.0, 0.0, path=path),
                    max_consecutive_failures=int(
                        self.number(item, "maxConsecutiveFailures", 3, 0, integer=True, path=path)
                    ),
                    delay_seconds=self.number(item, "delaySeconds", 15.0, 0.0, path=path),
                    ip_protocol=self.choice(item, "ipProtocol", ("IPv4", "IPv6"), "IPv4", path),
                )
            )
        return tuple(out)

    def read_readiness_checks(
        self, value: Any, ports: tuple[PortDefinition, ...]
    ) -> tuple[ReadinessCheckDefinition, ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            self.problem("/readinessChecks", "readinessChecks is a list of objects")
            return ()
        out = []
        names = {p.name for p in ports if p.name}
        for index, item in enumerate(value):
            path = f"/readinessChecks({index})"
            if not isinstance(item, dict):
                self.problem(path, "a readiness check is an object")
                continue
            port_name = item.get("portName", "http-api")
            if port_name not in names:
                self.problem(
                    f"{path}/portName",
                    f"no port definition is named {port_name!r}: name one of portDefinitions",
                )
            codes = item.get("httpStatusCodesForReady", [200])
            if (
                not isinstance(codes, list)
                or not codes
                or not all(isinstance(c, int) and 100 <= c <= 599 for c in codes)
            ):
                self.problem(f"{path}/httpStatusCodesForReady", "a list of HTTP status codes")
                codes = [200]
            check_path = item.get("path", "/")
            if not isinstance(check_path, str) or not check_path.startswith("/"):
                self.problem(f"{path}/path", "path starts with '/'")
                check_path = "/"
            out.append(
                ReadinessCheckDefinition(
                    name=str(item.get("name", "readinessCheck")),
                    protocol=self.choice(item, "protocol", ("HTTP", "HTTPS"), "HTTP", path),
                    path=check_path,
                    port_name=str(port_name),
                    interval_seconds=self.number(item, "intervalSeconds", 30.0, 0.0, path=path),
                    timeout_seconds=self.number(item, "timeoutSeconds", 10.0, 0.0, path=path),
                    http_status_codes_for_ready=tuple(codes),
                    preserve_last_response=self.boolean(
                        item, "preserveLastResponse", False, path=path
                    ),
                )
            )
        return tuple(out)

    def read_constraints(self, value: Any) -> tuple[Constraint, ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            self.problem("/constraints", "constraints is a list of [field, OPERATOR, value?]")
            return ()
        out = []
        for index, item in enumerate(value):
            path = f"/constraints({index})"
            if isinstance(item, dict):  # the object form of newer clients
                item = [item.get("fieldName"), item.get("operator"), item.get("value")]
                item = [part for part in item if part is not None]
            if (
                not isinstance(item, list)
                or not 2 <= len(item) <= 3
                or not all(isinstance(part, str) for part in item)
            ):
                self.problem(path, "a constraint is [field, OPERATOR] or [field, OPERATOR, value]")
                continue
            if item[1] not in OPERATORS:
                self.problem(path, f"operator is one of {', '.join(OPERATORS)}; got {item[1]!r}")
                continue
            try:
                out.append(Constraint.of(*item))
            except ValueError as error:
                self.problem(path, str(error))
        return tuple(out)

    def read_roles(self, value: Any) -> tuple[str, ...] | None:
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value) or not value:
            self.problem("/acceptedResourceRoles", "acceptedResourceRoles is a non-empty list")
            return None
        return tuple(value)

    def read_upgrade_strategy(self, value: Any) -> UpgradeStrategy:
        if value is None:
            return UpgradeStrategy()
        if not isinstance(value, dict):
            self.problem("/upgradeStrategy", "upgradeStrategy is an object")
            return UpgradeStrategy()
        path = "/upgradeStrategy"
        return UpgradeStrategy(
            self.number(value, "minimumHealthCapacity", 1.0, 0.0, 1.0, path=path),
            self.number(value, "maximumOverCapacity", 1.0, 0.0, 1.0, path=path),
        )

    def read_unreachable(self, value: Any) -> UnreachableStrategy:
        if value is None or value == "disabled":
            return UnreachableStrategy(0.0, 0.0)
        if not isinstance(value, dict):
            self.problem("/unreachableStrategy", "unreachableStrategy is an object or 'disabled'")
            return UnreachableStrategy(0.0, 0.0)
        path = "/unreachableStrategy"
        inactive = self.number(value, "inactiveAfterSeconds", 0.0, 0.0, path=path)
        expunge = self.number(value, "expungeAfterSeconds", 0.0, 0.0, path=path)
        if inactive > expunge:
            self.problem(
                f"{path}/inactiveAfterSeconds",
                f"inactiveAfterSeconds ({_number(inactive)}) must be less or equal to "
                f"expungeAfterSeconds, which is {_number(expunge)}",
            )
        return UnreachableStrategy(inactive, expunge)

    def read_dependencies(self, value: Any, app_id: str | None) -> tuple[str, ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            self.problem("/dependencies", "dependencies is a list of app ids")
            return ()
        out = []
        for index, item in enumerate(value):
            try:
                out.append(canonical(item, app_id.rpartition("/")[0] or "/" if app_id else "/"))
            except InvalidPathId as error:
                self.problem(f"/dependencies({index})", str(error))
        return tuple(out)
