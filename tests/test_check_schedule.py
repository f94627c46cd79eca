"""The check schedule core (agent/check_schedule.py): timing and decisions, no clock, no I/O.
Times are plain numbers, as the runtime clock's seconds would be."""

from __future__ import annotations

from agent.check_schedule import CheckSchedule, HealthSchedule, empty_status, passes
from corral.protocol import (
    CheckInfo,
    CheckStatusInfo,
    CheckType,
    CommandCheck,
    CommandCheckStatus,
    CommandInfo,
    HealthCheck,
    HttpCheck,
    HttpCheckStatus,
    TcpCheck,
    TcpCheckStatus,
)

OK = CheckStatusInfo(type=CheckType.HTTP, http=HttpCheckStatus(status_code=200))
BAD = CheckStatusInfo(type=CheckType.HTTP, http=HttpCheckStatus(status_code=503))


def health(**values) -> HealthCheck:
    values.setdefault("delay_seconds", 5.0)
    values.setdefault("interval_seconds", 2.0)
    values.setdefault("grace_period_seconds", 0.0)
    values.setdefault("consecutive_failures", 3)
    return HealthCheck(type=CheckType.HTTP, http=HttpCheck(port=8080, path="/"), **values)


def test_first_check_after_the_delay_then_each_interval_after_the_result():
    schedule = HealthSchedule(health(), started_at=100.0)
    assert schedule.first_at == 105.0
    decision, _ = schedule.result(105.7, OK)  # the probe took 0.7 s
    assert decision.next_at == 107.7


def test_healthy_reported_on_first_success_and_first_after_failures_only():
    schedule = HealthSchedule(health(), 0.0)
    first, _ = schedule.result(5.0, OK)
    again, _ = schedule.result(7.0, OK)
    failed, why = schedule.result(9.0, BAD)
    back, _ = schedule.result(11.0, OK)
    assert first.healthy is True and not first.kill
    assert again.healthy is None
    assert failed.healthy is False and failed.consecutive_failures == 1
    assert "503" in why
    assert back.healthy is True and back.consecutive_failures == 0


def test_every_counted_failure_is_reported_and_the_last_one_kills():
    schedule = HealthSchedule(health(consecutive_failures=3), 0.0)
    decisions = [schedule.result(5.0 + 2 * i, BAD)[0] for i in range(3)]
    assert [d.healthy for d in decisions] == [False, False, False]
    assert [d.consecutive_failures for d in decisions] == [1, 2, 3]
    assert [d.kill for d in decisions] == [False, False, True]
    assert decisions[-1].next_at is None  # killed: nothing more is checked


def test_failures_within_the_grace_period_are_ignored_until_the_first_success():
    schedule = HealthSchedule(health(grace_period_seconds=10.0, consecutive_failures=1), 0.0)
    early, _ = schedule.result(5.0, BAD)
    edge, _ = schedule.result(10.0, None)  # at the grace period's end: still inside
    assert early.ignored and early.healthy is None and not early.kill
    assert edge.ignored
    late, _ = schedule.result(10.5, BAD)
    assert late.kill and late.healthy is False


def test_after_a_success_the_grace_period_no_longer_shields_failures():
    schedule = HealthSchedule(health(grace_period_seconds=60.0, consecutive_failures=2), 0.0)
    schedule.result(5.0, OK)
    first, _ = schedule.result(7.0, BAD)
    second, _ = schedule.result(9.0, BAD)
    assert not first.ignored and first.healthy is False and not first.kill
    assert second.kill


def test_a_probe_without_result_counts_as_a_failure():
    schedule = HealthSchedule(health(consecutive_failures=1), 0.0)
    decision, why = schedule.result(5.0, None)
    assert decision.kill and why


def test_what_passes():
    http = health()
    assert passes(http, CheckStatusInfo(type=CheckType.HTTP, http=HttpCheckStatus(399)))[0]
    assert not passes(http, CheckStatusInfo(type=CheckType.HTTP, http=HttpCheckStatus(400)))[0]
    assert not passes(http, CheckStatusInfo(type=CheckType.HTTP, http=HttpCheckStatus(199)))[0]
    only_204 = HealthCheck(type=CheckType.HTTP, http=HttpCheck(port=1, statuses=(204,)))
    assert not passes(only_204, OK)[0]
    command = HealthCheck(type=CheckType.COMMAND, command=CommandInfo(value="true"))
    assert passes(command, CheckStatusInfo(type=CheckType.COMMAND, command=CommandCheckStatus(0)))[
        0
    ]
    ok, why = passes(command, CheckStatusInfo(command=CommandCheckStatus(exit_code=2)))
    assert not ok and "2" in why
    tcp = HealthCheck(type=CheckType.TCP, tcp=TcpCheck(port=1))
    assert passes(tcp, CheckStatusInfo(tcp=TcpCheckStatus(succeeded=True)))[0]
    assert not passes(tcp, CheckStatusInfo(tcp=TcpCheckStatus(succeeded=False)))[0]


def test_zero_timeout_means_none():
    assert HealthSchedule(health(timeout_seconds=0.0), 0.0).timeout is None
    assert HealthSchedule(health(timeout_seconds=1.5), 0.0).timeout == 1.5


def check(**values) -> CheckInfo:
    values.setdefault("delay_seconds", 1.0)
    values.setdefault("interval_seconds", 3.0)
    return CheckInfo(
        type=CheckType.COMMAND, command=CommandCheck(CommandInfo(value="exit 0")), **values
    )


def test_general_check_reports_changes_only_and_never_kills():
    schedule = CheckSchedule(check(), started_at=50.0)
    assert schedule.first_at == 51.0
    assert schedule.latest == empty_status(CheckType.COMMAND)
    zero = CheckStatusInfo(type=CheckType.COMMAND, command=CommandCheckStatus(exit_code=0))
    one = CheckStatusInfo(type=CheckType.COMMAND, command=CommandCheckStatus(exit_code=1))
    first = schedule.result(51.2, zero)
    same = schedule.result(54.2, zero)
    changed = schedule.result(57.2, one)
    lost = schedule.result(60.2, None)  # a timeout: the empty result
    assert first.changed == zero and first.next_at == 54.2
    assert same.changed is None
    assert changed.changed == one
    assert lost.changed == empty_status(CheckType.COMMAND)
    assert not hasattr(first, "kill")


def test_empty_status_per_type():
    assert empty_status(CheckType.HTTP).to_wire() == {"type": "HTTP", "http": {}}
    assert empty_status(CheckType.TCP).to_wire() == {"type": "TCP", "tcp": {}}
    assert empty_status(CheckType.COMMAND).to_wire() == {"type": "COMMAND", "command": {}}
