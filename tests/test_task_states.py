"""Task states, reasons and sources: Mesos's names and which states are terminal."""

from __future__ import annotations

import pytest

from corral.task_states import TERMINAL_STATES, Reason, Source, TaskState, is_terminal

MESOS_STATES = [
    "TASK_STAGING",
    "TASK_STARTING",
    "TASK_RUNNING",
    "TASK_KILLING",
    "TASK_FINISHED",
    "TASK_FAILED",
    "TASK_KILLED",
    "TASK_ERROR",
    "TASK_LOST",
    "TASK_DROPPED",
    "TASK_UNREACHABLE",
    "TASK_GONE",
    "TASK_GONE_BY_OPERATOR",
    "TASK_UNKNOWN",
]


def test_the_states_are_exactly_mesoss_with_their_names_as_values():
    assert [state.name for state in TaskState] == MESOS_STATES
    assert all(state.value == state.name for state in TaskState)


@pytest.mark.parametrize(
    "name",
    [
        "TASK_FINISHED",
        "TASK_FAILED",
        "TASK_KILLED",
        "TASK_ERROR",
        "TASK_LOST",
        "TASK_DROPPED",
        "TASK_GONE",
        "TASK_GONE_BY_OPERATOR",
    ],
)
def test_terminal_states(name):
    assert is_terminal(TaskState[name])
    assert TaskState[name].is_terminal


@pytest.mark.parametrize(
    "name",
    [
        "TASK_STAGING",
        "TASK_STARTING",
        "TASK_RUNNING",
        "TASK_KILLING",
        "TASK_UNREACHABLE",  # the agent may come back, and the task with it
        "TASK_UNKNOWN",
    ],
)
def test_states_after_which_the_task_may_still_run_are_not_terminal(name):
    assert not is_terminal(TaskState[name])
    assert not TaskState[name].is_terminal


def test_terminal_states_are_a_subset_of_the_states():
    assert set(TERMINAL_STATES) < set(TaskState)


def test_reasons_use_mesoss_v1_names():
    names = {reason.name for reason in Reason}
    for name in (
        "REASON_COMMAND_EXECUTOR_FAILED",
        "REASON_CONTAINER_LIMITATION_MEMORY",
        "REASON_CONTAINER_LIMITATION_DISK",
        "REASON_CONTAINER_LAUNCH_FAILED",
        "REASON_EXECUTOR_TERMINATED",
        "REASON_EXECUTOR_UNREGISTERED",
        "REASON_FRAMEWORK_REMOVED",
        "REASON_GC_ERROR",
        "REASON_INVALID_FRAMEWORKID",
        "REASON_INVALID_OFFERS",
        "REASON_MASTER_DISCONNECTED",
        "REASON_RECONCILIATION",
        "REASON_RESOURCES_UNKNOWN",
        "REASON_AGENT_DISCONNECTED",
        "REASON_AGENT_REMOVED",
        "REASON_AGENT_RESTARTED",
        "REASON_AGENT_UNKNOWN",
        "REASON_TASK_INVALID",
        "REASON_TASK_UNAUTHORIZED",
        "REASON_TASK_UNKNOWN",
        "REASON_EXECUTOR_REGISTRATION_TIMEOUT",
        "REASON_EXECUTOR_REREGISTRATION_TIMEOUT",
        "REASON_CONTAINER_PREEMPTED",
        "REASON_TASK_KILLED_DURING_LAUNCH",
    ):
        assert name in names
    assert not any("SLAVE" in name for name in names)  # v1 spelling only
    assert all(reason.value == reason.name for reason in Reason)


def test_sources():
    assert [source.value for source in Source] == [
        "SOURCE_MASTER",
        "SOURCE_AGENT",
        "SOURCE_EXECUTOR",
    ]
