"""What a task's health check and check may say (corral/task_validation.py), judged as
Mesos's master judges them; a bad one is a sentence that says what to give instead."""

from __future__ import annotations

import dataclasses

import pytest

from corral.ids import AgentID, TaskID
from corral.protocol import (
    CheckInfo,
    CheckType,
    CommandCheck,
    CommandInfo,
    HealthCheck,
    HttpCheck,
    TaskInfo,
    TcpCheck,
)
from corral.protocol.wire import ProtocolError
from corral.resources import Resources
from corral.task_validation import check_problem, health_check_problem, task_problem

HTTP = HealthCheck(type=CheckType.HTTP, http=HttpCheck(port=8080, path="/health"))


@pytest.mark.parametrize(
    ("check", "expected"),
    [
        (HTTP, None),
        (dataclasses.replace(HTTP, http=HttpCheck(port=0)), "port 0 is out of range"),
        (dataclasses.replace(HTTP, http=HttpCheck(port=70000)), "port 70000 is out of range"),
        (dataclasses.replace(HTTP, http=HttpCheck(port=80, path="health")), "must start with '/'"),
        (
            dataclasses.replace(HTTP, http=HttpCheck(port=80, scheme="ftp")),
            "'ftp' is not supported",
        ),
        (dataclasses.replace(HTTP, http=HttpCheck(port=80, statuses=(42,))), "statuses hold 42"),
        (dataclasses.replace(HTTP, delay_seconds=-1.0), "delay_seconds is -1.0"),
        (dataclasses.replace(HTTP, interval_seconds=-0.5), "interval_seconds is -0.5"),
        (dataclasses.replace(HTTP, timeout_seconds=float("nan")), "timeout_seconds is nan"),
        (dataclasses.replace(HTTP, grace_period_seconds=-3.0), "grace_period_seconds is -3.0"),
        (dataclasses.replace(HTTP, consecutive_failures=0), "consecutive_failures is 0"),
        (HealthCheck(type=CheckType.TCP, tcp=TcpCheck(port=-1)), "port -1 is out of range"),
        (
            HealthCheck(type=CheckType.COMMAND, command=CommandInfo(value="")),
            "COMMAND health check: the command",
        ),
    ],
)
def test_health_check_values(check, expected):
    problem = health_check_problem(check)
    if expected is None:
        assert problem is None
    else:
        assert problem is not None and expected in problem


def test_a_command_check_without_a_command_cannot_be_built():
    with pytest.raises(ProtocolError, match="needs 'command'"):
        HealthCheck(type=CheckType.COMMAND)


def test_general_check_values():
    good = CheckInfo(type=CheckType.TCP, tcp=TcpCheck(port=5432))
    assert check_problem(good) is None
    assert "interval_seconds is -1" in check_problem(dataclasses.replace(good, interval_seconds=-1))
    assert "carries a 'scheme'" in check_problem(
        CheckInfo(type=CheckType.HTTP, http=HttpCheck(port=80, scheme="https"))
    )
    empty = CheckInfo(type=CheckType.COMMAND, command=CommandCheck(CommandInfo(value=" ")))
    assert "COMMAND check" in check_problem(empty)


def test_a_task_with_a_bad_check_is_refused_with_its_id():
    task = TaskInfo(
        name="t",
        task_id=TaskID("web-1"),
        agent_id=AgentID("S0"),
        resources=Resources.parse("cpus:0.1"),
        command=CommandInfo(value="sleep 1"),
        health_check=dataclasses.replace(HTTP, http=HttpCheck(port=80, path="x")),
    )
    assert task_problem(task).startswith("task web-1: its HTTP health check's path 'x'")
    good = dataclasses.replace(task, health_check=HTTP)
    assert task_problem(good) is None
