"""The executor state machine (agent/executor_lifecycle.py): its table, row by row, with no
agent, no containers and no clock."""

from __future__ import annotations

import itertools

import pytest

from agent.executor_lifecycle import (
    TIMED_STATES,
    TRANSITIONS,
    Action,
    ContainerEnded,
    Destroy,
    Destroyed,
    EndedWhileDown,
    Event,
    ExecutorKind,
    ExecutorLifecycle,
    ExecutorState,
    Found,
    IllegalTransition,
    Kill,
    Launch,
    Launched,
    LaunchFailed,
    NotFound,
    Registered,
    Reregistered,
    Resubscribed,
    Shutdown,
    TimedOut,
)

A, S = Action, ExecutorState
COMMAND, CUSTOM = ExecutorKind.COMMAND, ExecutorKind.CUSTOM
EVENTS: list[Event] = [
    Launch(), Launched(), LaunchFailed(), Found(), EndedWhileDown(), NotFound(), Registered(),
    Reregistered(), Resubscribed(), Kill(), Shutdown(), Destroy(), TimedOut(), ContainerEnded(),
    Destroyed(),
]  # fmt: skip


def machine(kind: ExecutorKind, state: ExecutorState = S.NEW) -> ExecutorLifecycle:
    return ExecutorLifecycle(kind, "fw-1/ex-1", state)


def run(lifecycle: ExecutorLifecycle, *events: Event) -> list[list[Action]]:
    return [lifecycle.handle(event) for event in events]


def test_a_command_task_launches_runs_and_ends():
    lifecycle = machine(COMMAND)
    assert run(lifecycle, Launch(), Launched(), ContainerEnded(), Destroyed()) == [
        [A.CHECKPOINT, A.REPORT_STARTING, A.LAUNCH],
        [A.CHECKPOINT, A.WATCH, A.REPORT_RUNNING],
        [A.DESTROY, A.REPORT_END, A.REMOVE],  # what the command left in its session goes too
        [A.FORGET_CONTAINER],
    ]
    assert lifecycle.state is S.TERMINATED and not lifecycle.killed
    assert lifecycle.grace == 0.0


def test_a_command_task_killed_while_its_container_starts_is_destroyed_once_it_runs():
    lifecycle = machine(COMMAND)
    lifecycle.handle(Launch())
    assert lifecycle.handle(Kill(grace=1.5)) == [A.CHECKPOINT]
    assert (lifecycle.state, lifecycle.killed, lifecycle.grace) == (S.ABORTING, True, 1.5)
    assert lifecycle.handle(Launched()) == [A.CHECKPOINT, A.WATCH, A.DESTROY]
    assert lifecycle.grace == 1.5  # the kill's grace, not 0
    assert lifecycle.handle(Kill()) == [A.CHECKPOINT]  # a second kill changes nothing more
    assert lifecycle.handle(ContainerEnded()) == [A.REPORT_END, A.REMOVE]
    assert lifecycle.state is S.TERMINATED


def test_a_running_command_task_killed_uses_its_kill_grace():
    lifecycle = ExecutorLifecycle(COMMAND, "fw-1/t", S.RUNNING, kill_grace=7.0)
    assert lifecycle.handle(Kill()) == [A.CHECKPOINT, A.DESTROY]
    assert (lifecycle.state, lifecycle.grace, lifecycle.killed) == (S.DESTROYING, 7.0, True)


def test_a_custom_executor_registers_is_shut_down_and_destroyed_after_the_grace():
    lifecycle = machine(CUSTOM)
    assert run(lifecycle, Launch(), Launched(), Registered(), Shutdown(), TimedOut()) == [
        [A.CHECKPOINT, A.LAUNCH],
        [A.CHECKPOINT, A.WATCH, A.ARM_TIMER],  # the registration timeout
        [A.CANCEL_TIMER, A.SEND_TASKS],
        [A.SEND_SHUTDOWN, A.ARM_TIMER],  # the shutdown grace
        [A.CANCEL_TIMER, A.DESTROY],
    ]
    assert lifecycle.state is S.DESTROYING and lifecycle.grace == 0.0
    assert lifecycle.handle(Destroyed()) == [A.FORGET_CONTAINER]
    assert lifecycle.handle(ContainerEnded()) == [A.REPORT_END, A.SEND_EXITED, A.REMOVE]


def test_an_executor_that_registers_before_its_launch_returns_runs_when_it_does():
    lifecycle = machine(CUSTOM)
    lifecycle.handle(Launch())
    assert lifecycle.handle(Registered()) == [A.SEND_TASKS]
    assert lifecycle.state is S.REGISTERED_EARLY and lifecycle.state.phase == "RUNNING"
    assert lifecycle.handle(Launched()) == [A.CHECKPOINT, A.WATCH]  # no registration timer
    assert lifecycle.state is S.RUNNING


def test_an_executor_that_never_registers_is_destroyed_on_the_timeout():
    lifecycle = machine(CUSTOM)
    run(lifecycle, Launch(), Launched())
    assert lifecycle.handle(TimedOut()) == [A.CANCEL_TIMER, A.DESTROY]
    assert lifecycle.handle(ContainerEnded()) == [A.REPORT_END, A.SEND_EXITED, A.REMOVE]


def test_a_recovered_executor_is_asked_to_reconnect_and_resumes():
    lifecycle = ExecutorLifecycle.restored(CUSTOM, "fw-1/e", False, 3.0, doomed=False)
    assert lifecycle.state is S.RECOVERING
    assert lifecycle.handle(Found()) == [A.WATCH, A.RECONNECT, A.ARM_TIMER]
    assert lifecycle.state.phase == "RECOVERING"
    assert lifecycle.handle(Reregistered()) == [A.CANCEL_TIMER, A.SEND_TASKS]
    assert lifecycle.handle(Resubscribed()) == [A.SEND_TASKS]  # a new HTTP link
    assert lifecycle.state is S.RUNNING


def test_a_recovered_command_task_that_was_killed_is_destroyed_when_found():
    lifecycle = ExecutorLifecycle.restored(COMMAND, "fw-1/t", True, 2.0, doomed=False)
    assert lifecycle.state is S.ABORTING and lifecycle.grace == 2.0
    assert lifecycle.handle(Found()) == [A.WATCH, A.DESTROY]
    ended = ExecutorLifecycle.restored(COMMAND, "fw-1/u", False, 2.0, doomed=True)
    assert ended.handle(EndedWhileDown()) == [A.FORGET_CONTAINER, A.REPORT_END, A.REMOVE]
    missing = ExecutorLifecycle.restored(CUSTOM, "fw-1/v", False, 2.0, doomed=False)
    assert missing.handle(NotFound()) == [A.REPORT_END, A.SEND_EXITED, A.REMOVE]


def test_a_launch_that_fails_ends_the_run():
    for kind, ending in ((COMMAND, [A.REPORT_END, A.REMOVE]),
                         (CUSTOM, [A.REPORT_END, A.SEND_EXITED, A.REMOVE])):  # fmt: skip
        lifecycle = machine(kind)
        lifecycle.handle(Launch())
        assert lifecycle.handle(LaunchFailed()) == ending
        assert lifecycle.state is S.TERMINATED


@pytest.mark.parametrize(
    ("key", "transition"), list(TRANSITIONS.items()), ids=lambda item: str(item)
)
def test_every_row_moves_to_its_state_with_its_actions_and_timers_derived(key, transition):
    kind, state, event_type = key
    lifecycle = machine(kind, state)
    (event,) = [event for event in EVENTS if type(event) is event_type]
    actions = lifecycle.handle(event)
    assert lifecycle.state is transition.state
    expected = list(transition.actions)
    if state is not transition.state and state in TIMED_STATES:
        expected.insert(0, A.CANCEL_TIMER)
    if state is not transition.state and transition.state in TIMED_STATES:
        expected.append(A.ARM_TIMER)
    assert actions == expected
    if transition.state is S.TERMINATED and state is not S.TERMINATED:
        assert actions[-1] is A.REMOVE and A.REPORT_END in actions
        assert (A.SEND_EXITED in actions) is (kind is CUSTOM)


def test_every_other_event_is_illegal_names_it_and_changes_nothing():
    illegal = 0
    for kind, state, event in itertools.product(ExecutorKind, ExecutorState, EVENTS):
        if (kind, state, type(event)) in TRANSITIONS:
            continue
        lifecycle = machine(kind, state)
        assert not lifecycle.allows(event)
        with pytest.raises(IllegalTransition) as raised:
            lifecycle.handle(event)
        message = str(raised.value)
        assert "fw-1/ex-1" in message and state.value in message and event.NAME in message
        assert lifecycle.state is state and not lifecycle.killed
        illegal += 1
    assert illegal > 100
    lifecycle = machine(CUSTOM, S.TERMINATED)
    with pytest.raises(IllegalTransition, match="takes destroyed there"):
        lifecycle.handle(Registered())


def test_a_command_executor_never_registers_and_a_custom_one_is_never_killed():
    for state in ExecutorState:
        for event in (Registered(), Reregistered(), Resubscribed(), Shutdown(), TimedOut()):
            assert not machine(COMMAND, state).allows(event)
        assert not machine(CUSTOM, state).allows(Kill())


def test_every_live_state_can_be_destroyed_and_every_state_is_reachable():
    """An agent that stops destroys every executor, whatever its state."""
    for kind in ExecutorKind:
        lived = {to.state for (k, _, _), to in TRANSITIONS.items() if k is kind}
        for state in (lived | {S.RECOVERING}) - {S.TERMINATED}:
            assert machine(kind, state).allows(Destroy()), (kind, state)
    reached = {to.state for to in TRANSITIONS.values()} | {S.NEW, S.RECOVERING}
    assert reached == set(ExecutorState)


def test_leaving_a_timed_state_always_cancels_its_timer():
    for (kind, state, event_type), transition in TRANSITIONS.items():
        if state in TIMED_STATES and transition.state is not state:
            lifecycle = machine(kind, state)
            (event,) = [event for event in EVENTS if type(event) is event_type]
            assert lifecycle.handle(event)[0] is A.CANCEL_TIMER


def test_phases_are_the_six_the_state_json_shows():
    phases = {state.phase for state in ExecutorState}
    assert phases == {"LAUNCHING", "REGISTERING", "RECOVERING", "RUNNING", "TERMINATING",
                      "TERMINATED"}  # fmt: skip
