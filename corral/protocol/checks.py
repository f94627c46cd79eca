"""Health checks and general checks, as a task asks for them and as their results come back.

Shapes are Mesos v1's ``HealthCheck``, ``CheckInfo`` and ``CheckStatusInfo`` in their JSON form.
A health check decides a task's ``healthy`` and, after enough failures, kills it; a general
check only reports (``TaskStatus.check_status``) and never kills. Only the shape is checked
here (the tagged union of ``type``); the master judges the values (ports, durations, paths) and
answers TASK_ERROR, as Mesos's task validation does.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from corral.protocol.commands import CommandInfo
from corral.protocol.wire import ProtocolError, Wire


class CheckType(enum.Enum):
    """What a check runs: a command in the task's container, an HTTP GET, a TCP connect."""

    COMMAND = "COMMAND"
    HTTP = "HTTP"
    TCP = "TCP"


_CHECK_FIELD = {CheckType.COMMAND: "command", CheckType.HTTP: "http", CheckType.TCP: "tcp"}


def _check_union(value: Wire, type_: CheckType | None, what: str) -> None:
    """``type`` must be set and name the one of ``command``/``http``/``tcp`` that is set."""
    if type_ is None:
        raise ProtocolError("type", f"{what} needs a 'type' (COMMAND, HTTP or TCP)")
    wanted = _CHECK_FIELD[type_]
    what = f"{'an' if type_ is CheckType.HTTP else 'a'} {type_.value} {what}"
    if getattr(value, wanted) is None:
        raise ProtocolError(wanted, f"{what} needs '{wanted}', and it is missing")
    for name in _CHECK_FIELD.values():
        if name != wanted and getattr(value, name) is not None:
            problem = f"{what} carries only '{wanted}'; remove '{name}'"
            raise ProtocolError(name, problem)


@dataclass(frozen=True, slots=True)
class HttpCheck(Wire):
    """GET ``scheme://<task's address>:port/path``; a health check passes on a status in
    ``statuses`` (default: 200 to 399), a general check reports the status code."""

    port: int
    path: str | None = None
    scheme: str | None = None  # "http" (default) or "https"; health checks only
    statuses: tuple[int, ...] = ()  # health checks only


@dataclass(frozen=True, slots=True)
class TcpCheck(Wire):
    """A TCP connect to the task's address on ``port``."""

    port: int


@dataclass(frozen=True, slots=True)
class HealthCheck(Wire):
    """Mesos's ``HealthCheck``; the defaults are Mesos's. The command variant is a whole
    ``CommandInfo`` (it runs in the task's container, with the task's environment)."""

    type: CheckType | None = None
    command: CommandInfo | None = None
    http: HttpCheck | None = None
    tcp: TcpCheck | None = None
    delay_seconds: float = 15.0
    interval_seconds: float = 10.0
    timeout_seconds: float = 20.0
    consecutive_failures: int = 3
    grace_period_seconds: float = 10.0

    def _check(self) -> None:
        _check_union(self, self.type, "health check")


@dataclass(frozen=True, slots=True)
class CommandCheck(Wire):
    """A general check's command (Mesos's ``CheckInfo.Command``, which wraps a CommandInfo)."""

    command: CommandInfo


@dataclass(frozen=True, slots=True)
class CheckInfo(Wire):
    """Mesos's ``CheckInfo``: a check whose result is reported, never acted on."""

    type: CheckType | None = None
    command: CommandCheck | None = None
    http: HttpCheck | None = None
    tcp: TcpCheck | None = None
    delay_seconds: float = 15.0
    interval_seconds: float = 10.0
    timeout_seconds: float = 20.0

    def _check(self) -> None:
        _check_union(self, self.type, "check")


@dataclass(frozen=True, slots=True)
class CommandCheckStatus(Wire):
    exit_code: int | None = None  # absent: the command could not be run or timed out


@dataclass(frozen=True, slots=True)
class HttpCheckStatus(Wire):
    status_code: int | None = None  # absent: no answer (refused, timed out)


@dataclass(frozen=True, slots=True)
class TcpCheckStatus(Wire):
    succeeded: bool | None = None


@dataclass(frozen=True, slots=True)
class CheckStatusInfo(Wire):
    """A general check's latest result, carried by ``TaskStatus.check_status``. Its inner
    field is empty until the first result (Mesos sends that empty status on TASK_RUNNING)."""

    type: CheckType | None = None
    command: CommandCheckStatus | None = None
    http: HttpCheckStatus | None = None
    tcp: TcpCheckStatus | None = None
