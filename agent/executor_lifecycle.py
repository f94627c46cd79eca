"""An executor's life on an agent, as one table: (kind, state, event) -> next state + actions.

A sans-IO core in the style of h11's state table. ``ExecutorLifecycle`` holds where one
executor run is (``state``) and the little data its transitions own (``killed``, the kill
grace, the grace of the destroy it decided); ``handle(event)`` looks the event up in
``TRANSITIONS`` and returns the actions the agent actor carries out, in order (launch the
container, watch it, destroy it, checkpoint, report, send RunTask / ShutdownExecutor /
ExitedExecutor, forget it). Nothing here sends, sleeps or reads a clock.

An event the table has no row for is a bug of the caller, not bad input: ``handle`` raises
``IllegalTransition`` naming the event, the state and the executor, and nothing changes. What
comes from outside (a registration, a kill, a subscription) is checked first with
``allows(event)`` and refused with a reason when it does not fit.

Two kinds of executors share the states: the agent's built-in command executor (one command
task, its id the task's; TASK_STARTING, TASK_RUNNING and the end are the agent's to report)
and custom executors (a program that registers and runs its tasks itself). Timed states
(``TIMED_STATES``) arm a timer on entry and cancel it on exit; those actions are derived from
the table, never written in it.

Decision where Mesos leaves room: the containerizer cannot destroy a container while its launch
is in flight, so a kill or shutdown that arrives then (or while a recovered container is not
found yet) moves the executor to ABORTING, and the destroy follows as soon as the container
is known to run.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import ClassVar


class ExecutorKind(enum.Enum):
    COMMAND = "COMMAND"  # the agent's built-in command executor: one task, id = task id
    CUSTOM = "CUSTOM"  # a program of the framework's that registers with the agent


class ExecutorState(enum.Enum):
    """Where an executor run is. ``phase`` is how the agent's state JSON and metrics name it
    (Corral's six phases, which group these states)."""

    NEW = "NEW"  # created; launched by the first event
    LAUNCHING = "LAUNCHING"  # the container is being started
    # Killed or shut down before its container was known to run (launching, or recovered
    # and not yet found): destroyed as soon as it is.
    ABORTING = "ABORTING"
    REGISTERING = "REGISTERING"  # custom: started; waits for RegisterExecutor (timed)
    REGISTERED_EARLY = "REGISTERED_EARLY"  # custom: registered before the launch returned
    RECOVERING = "RECOVERING"  # read from the checkpoints; its container not found yet
    REREGISTERING = "REREGISTERING"  # custom: found running; waits for ReregisterExecutor
    RUNNING = "RUNNING"  # command: its command runs; custom: registered, runs its tasks
    SHUTTING_DOWN = "SHUTTING_DOWN"  # custom: asked to exit; destroyed after the grace
    DESTROYING = "DESTROYING"  # destroy asked of the containerizer; waits for the end
    TERMINATED = "TERMINATED"  # the container ended (or never started); tasks reported

    @property
    def phase(self) -> str:
        return _PHASES.get(self, self.value)


_PHASES = {
    ExecutorState.NEW: "LAUNCHING",
    ExecutorState.ABORTING: "TERMINATING",
    ExecutorState.REGISTERED_EARLY: "RUNNING",
    ExecutorState.REREGISTERING: "RECOVERING",
    ExecutorState.SHUTTING_DOWN: "TERMINATING",
    ExecutorState.DESTROYING: "TERMINATING",
}

# States that wait for something with a timeout: the registration, the re-registration, the
# executor's exit after ShutdownExecutor. Entering one arms its timer; leaving cancels it.
TIMED_STATES = frozenset(
    {ExecutorState.REGISTERING, ExecutorState.REREGISTERING, ExecutorState.SHUTTING_DOWN}
)


# -- events --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """Something that happened to an executor run. ``NAME`` is how errors and logs say it."""

    NAME: ClassVar[str] = "event"


@dataclass(frozen=True)
class Launch(Event):
    NAME: ClassVar[str] = "launch"  # start it (the agent accepted its first task)


@dataclass(frozen=True)
class Launched(Event):
    NAME: ClassVar[str] = "launched"  # the containerizer's launch returned


@dataclass(frozen=True)
class LaunchFailed(Event):
    NAME: ClassVar[str] = "launch failed"


@dataclass(frozen=True)
class Found(Event):
    NAME: ClassVar[str] = "found running"  # recovery: its container still runs


@dataclass(frozen=True)
class EndedWhileDown(Event):
    NAME: ClassVar[str] = "ended while the agent was down"  # recovery: it has an exit status


@dataclass(frozen=True)
class NotFound(Event):
    NAME: ClassVar[str] = "not found"  # recovery: the containerizer does not know it


@dataclass(frozen=True)
class Registered(Event):
    NAME: ClassVar[str] = "RegisterExecutor"


@dataclass(frozen=True)
class Reregistered(Event):
    NAME: ClassVar[str] = "ReregisterExecutor"  # a native driver answering ReconnectExecutor


@dataclass(frozen=True)
class Resubscribed(Event):
    NAME: ClassVar[str] = "ReregisterExecutor from an HTTP subscription"


@dataclass(frozen=True)
class Kill(Event):
    """Command executor: kill its task (reported TASK_KILLED); ``grace`` (SIGTERM to
    SIGKILL) replaces the task's own kill policy when given."""

    NAME: ClassVar[str] = "kill"
    grace: float | None = None


@dataclass(frozen=True)
class Shutdown(Event):
    NAME: ClassVar[str] = "shutdown"  # custom, connected: ask it to exit


@dataclass(frozen=True)
class Destroy(Event):
    """Destroy the container now (SIGTERM, then SIGKILL after ``grace``)."""

    NAME: ClassVar[str] = "destroy"
    grace: float = 0.0


@dataclass(frozen=True)
class TimedOut(Event):
    NAME: ClassVar[str] = "timed out"  # the timer of a TIMED_STATES state fired


@dataclass(frozen=True)
class ContainerEnded(Event):
    NAME: ClassVar[str] = "container ended"  # the containerizer's wait returned (or failed)


@dataclass(frozen=True)
class Destroyed(Event):
    NAME: ClassVar[str] = "destroyed"  # the containerizer's destroy returned


# -- actions -------------------------------------------------------------------------------


class Action(enum.Enum):
    """What the agent actor does for a transition, in the order given."""

    CANCEL_TIMER = "cancel the state's timer"  # derived: leaving a TIMED_STATES state
    CHECKPOINT = "checkpoint the executor run"  # when its framework checkpoints
    LAUNCH = "launch the container"
    WATCH = "wait for the container's end"
    DESTROY = "destroy the container"  # with ExecutorLifecycle.grace
    FORGET_CONTAINER = "drop the containerizer's record of the ended container"
    REPORT_STARTING = "report TASK_STARTING"  # command executor
    REPORT_RUNNING = "report TASK_RUNNING"  # command executor
    # Hand the queued tasks to the registered executor: recorded as its, checkpointed with
    # its pid, then sent (RunTask); a crash in between loses no task silently.
    SEND_TASKS = "give the queued tasks to the registered executor"
    RECONNECT = "ask the recovered executor to re-register (ReconnectExecutor)"
    SEND_SHUTDOWN = "send ShutdownExecutor"
    REPORT_END = "report the end of every task still open"
    SEND_EXITED = "send ExitedExecutor to the master"
    REMOVE = "close its bridge, drop its checkpoint, list it as completed"
    ARM_TIMER = "arm the state's timer"  # derived: entering a TIMED_STATES state


@dataclass(frozen=True)
class Transition:
    state: ExecutorState
    actions: tuple[Action, ...] = ()


# -- the table -----------------------------------------------------------------------------

S, A, K = ExecutorState, Action, ExecutorKind
COMMAND, CUSTOM = K.COMMAND, K.CUSTOM
_ENDED = {  # how each kind's run ends: its tasks reported, the master told (custom), removed
    COMMAND: (A.REPORT_END, A.REMOVE),
    CUSTOM: (A.REPORT_END, A.SEND_EXITED, A.REMOVE),
}


def _row(kinds: K | tuple[K, ...], state: S, event: type[Event], to: S, *actions: A) -> dict:
    """Rows of the table; a row that ends the run gets its kind's ending appended."""
    ends = to is S.TERMINATED and state is not S.TERMINATED
    kinds = kinds if isinstance(kinds, tuple) else (kinds,)
    return {
        (kind, state, event): Transition(to, (*actions, *(_ENDED[kind] if ends else ())))
        for kind in kinds
    }


ANY = (COMMAND, CUSTOM)

# Every legal transition; anything else raises IllegalTransition. Rows that end the run (into
# TERMINATED) get REPORT_END (+ SEND_EXITED for custom executors) and REMOVE appended.
TRANSITIONS: dict[tuple[ExecutorKind, ExecutorState, type[Event]], Transition] = {
    # A new run: checkpointed, then its container launched.
    **_row(COMMAND, S.NEW, Launch, S.LAUNCHING, A.CHECKPOINT, A.REPORT_STARTING, A.LAUNCH),
    **_row(CUSTOM, S.NEW, Launch, S.LAUNCHING, A.CHECKPOINT, A.LAUNCH),
    # The launch returns.
    **_row(COMMAND, S.LAUNCHING, Launched, S.RUNNING, A.CHECKPOINT, A.WATCH, A.REPORT_RUNNING),
    **_row(CUSTOM, S.LAUNCHING, Launched, S.REGISTERING, A.CHECKPOINT, A.WATCH),
    **_row(CUSTOM, S.REGISTERED_EARLY, Launched, S.RUNNING, A.CHECKPOINT, A.WATCH),
    **_row(ANY, S.ABORTING, Launched, S.DESTROYING, A.CHECKPOINT, A.WATCH, A.DESTROY),
    **_row(ANY, S.LAUNCHING, LaunchFailed, S.TERMINATED),
    **_row(CUSTOM, S.REGISTERED_EARLY, LaunchFailed, S.TERMINATED),
    **_row(ANY, S.ABORTING, LaunchFailed, S.TERMINATED),
    # Recovery: the containerizer says what became of a checkpointed container.
    **_row(COMMAND, S.RECOVERING, Found, S.RUNNING, A.WATCH),
    **_row(CUSTOM, S.RECOVERING, Found, S.REREGISTERING, A.WATCH, A.RECONNECT),
    **_row(ANY, S.ABORTING, Found, S.DESTROYING, A.WATCH, A.DESTROY),
    **_row(ANY, S.RECOVERING, EndedWhileDown, S.TERMINATED, A.FORGET_CONTAINER),
    **_row(ANY, S.ABORTING, EndedWhileDown, S.TERMINATED, A.FORGET_CONTAINER),
    **_row(ANY, S.RECOVERING, NotFound, S.TERMINATED),
    **_row(ANY, S.ABORTING, NotFound, S.TERMINATED),
    # A custom executor registers (or registers again, after a restart or a new HTTP
    # subscription): the tasks queued for it are sent.
    **_row(CUSTOM, S.LAUNCHING, Registered, S.REGISTERED_EARLY, A.SEND_TASKS),
    **_row(CUSTOM, S.REGISTERING, Registered, S.RUNNING, A.SEND_TASKS),
    **_row(CUSTOM, S.REREGISTERING, Reregistered, S.RUNNING, A.SEND_TASKS),
    **_row(CUSTOM, S.REREGISTERING, Resubscribed, S.RUNNING, A.SEND_TASKS),
    **_row(CUSTOM, S.RUNNING, Resubscribed, S.RUNNING, A.SEND_TASKS),
    **_row(CUSTOM, S.REGISTERED_EARLY, Resubscribed, S.REGISTERED_EARLY, A.SEND_TASKS),
    # Kill (command executor): the end is reported TASK_KILLED.
    **_row(COMMAND, S.LAUNCHING, Kill, S.ABORTING, A.CHECKPOINT),
    **_row(COMMAND, S.RECOVERING, Kill, S.ABORTING, A.CHECKPOINT),
    **_row(COMMAND, S.ABORTING, Kill, S.ABORTING, A.CHECKPOINT),
    **_row(COMMAND, S.RUNNING, Kill, S.DESTROYING, A.CHECKPOINT, A.DESTROY),
    **_row(COMMAND, S.DESTROYING, Kill, S.DESTROYING, A.CHECKPOINT),
    # Shutdown (custom executor that is connected; one that is not is destroyed).
    **_row(CUSTOM, S.LAUNCHING, Shutdown, S.ABORTING),
    **_row(CUSTOM, S.REGISTERED_EARLY, Shutdown, S.ABORTING),
    **_row(CUSTOM, S.RECOVERING, Shutdown, S.ABORTING),
    **_row(CUSTOM, S.ABORTING, Shutdown, S.ABORTING),
    **_row(CUSTOM, S.REREGISTERING, Shutdown, S.SHUTTING_DOWN, A.SEND_SHUTDOWN),
    **_row(CUSTOM, S.RUNNING, Shutdown, S.SHUTTING_DOWN, A.SEND_SHUTDOWN),
    **_row(CUSTOM, S.SHUTTING_DOWN, Shutdown, S.SHUTTING_DOWN),
    **_row(CUSTOM, S.DESTROYING, Shutdown, S.DESTROYING),
    # Destroy now (a timeout, the operator, an agent that stops).
    **_row(ANY, S.LAUNCHING, Destroy, S.ABORTING),
    **_row(CUSTOM, S.REGISTERED_EARLY, Destroy, S.ABORTING),
    **_row(ANY, S.RECOVERING, Destroy, S.ABORTING),
    **_row(ANY, S.ABORTING, Destroy, S.ABORTING),
    **_row(CUSTOM, S.REGISTERING, Destroy, S.DESTROYING, A.DESTROY),
    **_row(CUSTOM, S.REREGISTERING, Destroy, S.DESTROYING, A.DESTROY),
    **_row(ANY, S.RUNNING, Destroy, S.DESTROYING, A.DESTROY),
    **_row(CUSTOM, S.SHUTTING_DOWN, Destroy, S.DESTROYING, A.DESTROY),
    **_row(ANY, S.DESTROYING, Destroy, S.DESTROYING),
    # Waited too long: for the registration, the re-registration, the exit.
    **_row(CUSTOM, S.REGISTERING, TimedOut, S.DESTROYING, A.DESTROY),
    **_row(CUSTOM, S.REREGISTERING, TimedOut, S.DESTROYING, A.DESTROY),
    **_row(CUSTOM, S.SHUTTING_DOWN, TimedOut, S.DESTROYING, A.DESTROY),
    # The container ends. Unasked, what its main process left behind in its session is
    # destroyed too; the destroy's return then forgets the container.
    **_row(CUSTOM, S.REGISTERING, ContainerEnded, S.TERMINATED, A.DESTROY),
    **_row(CUSTOM, S.REREGISTERING, ContainerEnded, S.TERMINATED, A.DESTROY),
    **_row(ANY, S.RUNNING, ContainerEnded, S.TERMINATED, A.DESTROY),
    **_row(CUSTOM, S.SHUTTING_DOWN, ContainerEnded, S.TERMINATED, A.DESTROY),
    **_row(ANY, S.DESTROYING, ContainerEnded, S.TERMINATED),
    **_row(ANY, S.DESTROYING, Destroyed, S.DESTROYING, A.FORGET_CONTAINER),
    **_row(ANY, S.TERMINATED, Destroyed, S.TERMINATED, A.FORGET_CONTAINER),
}


class IllegalTransition(RuntimeError):
    """An event the executor's state has no transition for: a bug of the agent's, which fed
    it. Nothing changed."""


class ExecutorLifecycle:
    """One executor run's place in ``TRANSITIONS`` and the data its transitions own.

    ``name`` identifies the run in errors (framework id and executor id).
    """

    def __init__(
        self,
        kind: ExecutorKind,
        name: str,
        state: ExecutorState = ExecutorState.NEW,
        killed: bool = False,
        kill_grace: float = 3.0,
    ) -> None:
        self.kind = kind
        self.name = name
        self.state = state
        # Command executor: its end is reported TASK_KILLED (a kill was asked). Only Kill
        # sets it; it is checkpointed with the run.
        self.killed = killed
        # Command executor: seconds between SIGTERM and SIGKILL when it is killed.
        self.kill_grace = kill_grace
        # The grace of the destroy this machine decided last: what DESTROY uses.
        self.grace = kill_grace if killed else 0.0

    @classmethod
    def restored(
        cls, kind: ExecutorKind, name: str, killed: bool, kill_grace: float, doomed: bool
    ) -> ExecutorLifecycle:
        """A run read back from its checkpoint: RECOVERING until the containerizer says
        where its container is; ABORTING when it was killed (or its task ended) before, so
        that what still runs is destroyed."""
        if not (killed or doomed):
            return cls(kind, name, ExecutorState.RECOVERING, killed, kill_grace)
        lifecycle = cls(kind, name, ExecutorState.ABORTING, killed, kill_grace)
        lifecycle.grace = kill_grace
        return lifecycle

    def __repr__(self) -> str:
        return f"<ExecutorLifecycle {self.name} {self.kind.value} {self.state.value}>"

    @property
    def is_command(self) -> bool:
        return self.kind is ExecutorKind.COMMAND

    def allows(self, event: Event) -> bool:
        """Whether ``event`` has a transition from the current state."""
        return (self.kind, self.state, type(event)) in TRANSITIONS

    def handle(self, event: Event) -> list[Action]:
        """Take ``event``: move to the next state and return what to do, in order.

        Raises ``IllegalTransition`` (nothing changed) when the state has no transition
        for it.
        """
        transition = TRANSITIONS.get((self.kind, self.state, type(event)))
        if transition is None:
            legal = sorted(
                kind.NAME
                for (k, state, kind) in TRANSITIONS
                if k is self.kind and state is self.state
            )
            raise IllegalTransition(
                f"executor {self.name} ({self.kind.value.lower()}) cannot take {event.NAME!r} "
                f"while {self.state.value}; it takes {', '.join(legal) or 'nothing more'} there"
            )
        if isinstance(event, Kill):
            self.killed = True
            if event.grace is not None:
                self.kill_grace = event.grace
            self.grace = self.kill_grace
        elif isinstance(event, Destroy):
            self.grace = event.grace
        elif isinstance(event, (Shutdown, TimedOut, ContainerEnded)):
            self.grace = 0.0  # a destroy that follows kills at once
        actions = list(transition.actions)
        before, after = self.state, transition.state
        if before is not after:
            if before in TIMED_STATES:
                actions.insert(0, Action.CANCEL_TIMER)
            if after in TIMED_STATES:
                actions.append(Action.ARM_TIMER)
        self.state = after
        return actions
