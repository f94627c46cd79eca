"""In-process semantics of the runtime: spawn, mailboxes, handlers, dispatch, terminate,
defer, delay, local links, fairness and shutdown. Real runtimes, no mocks."""

from __future__ import annotations

import itertools
import threading

import pytest

from libprocess import (
    UPID,
    InvalidUPID,
    Process,
    ProcessTerminated,
    Promise,
    Runtime,
    UnknownProcess,
    handler,
)

WAIT = 5.0  # wall-clock safety net for result(); never part of what is tested


def call(runtime: Runtime, process, fn, *args, **kwargs):
    """Run ``fn`` inside ``process`` and return its result (raises what it raised)."""
    return runtime.dispatch(process, fn, *args, **kwargs).result(WAIT)


def counter(runtime: Runtime, name: str) -> int:
    return runtime.metrics.get(f"libprocess/{name}").value


class Recorder(Process):
    """Notes its lifecycle in ``log`` and keeps every ``note`` message it receives."""

    def __init__(self, id: str | None = None, log: list | None = None) -> None:
        super().__init__(id)
        self.log = log if log is not None else []
        self.received: list = []
        self.exits: list = []

    def initialize(self) -> None:
        self.log.append((self.pid.id, "initialize"))

    def finalize(self) -> None:
        self.log.append((self.pid.id, "finalize"))

    def exited(self, pid) -> None:
        self.exits.append(pid)

    @handler("note")
    def note(self, sender, body) -> None:
        self.log.append((self.pid.id, "note", body))
        self.received.append((sender, body))


class Name(Process):
    pass


# -- spawn and ids --------------------------------------------------------------------------


def test_spawn_assigns_ids_from_the_class_name(runtime):
    first = runtime.spawn(Name())
    second = runtime.spawn(Name())
    other = runtime.spawn(Recorder())
    assert (first.id, second.id, other.id) == ("name(1)", "name(2)", "recorder(1)")
    assert first == f"name(1)@{runtime.address}"
    assert isinstance(first, UPID)
    assert first.address == runtime.address


def test_duplicate_ids_are_refused_clearly_and_free_again_after_termination(runtime):
    original = Recorder("master")
    pid = runtime.spawn(original)
    with pytest.raises(ValueError, match=r"'master' already runs.*pick another"):
        runtime.spawn(Recorder("master"))
    # The refused process changed nothing: the first one still serves.
    assert call(runtime, pid, lambda: "still here") == "still here"
    runtime.terminate(pid)
    runtime.wait(pid).result(WAIT)
    again = runtime.spawn(Recorder("master"))
    assert again == pid
    assert call(runtime, again, lambda: "new one") == "new one"


def test_a_process_is_spawned_once(runtime):
    process = Name()
    runtime.spawn(process)
    with pytest.raises(RuntimeError, match="already spawned"):
        runtime.spawn(process)


def test_a_subclass_that_skips_base_init_gets_a_clear_error(runtime):
    class Forgetful(Process):
        def __init__(self) -> None:
            pass

    with pytest.raises(TypeError, match=r"super\(\).__init__"):
        runtime.spawn(Forgetful())


def test_invalid_requested_ids_are_refused():
    for bad in ("", "a@b", "a/b"):
        with pytest.raises(ValueError, match="process id"):
            Process(bad)


def test_dispatch_and_wait_by_pid_right_after_spawn_from_another_thread(runtime):
    # spawn() from outside the loop registers the process asynchronously; the pid it
    # returns must be usable at once by every other call.
    for _ in range(50):
        pid = runtime.spawn(Name())
        assert call(runtime, pid, lambda: "served") == "served"
    pid = runtime.spawn(Name())
    done = runtime.wait(pid)
    assert done.is_pending()
    assert runtime.terminate(pid)
    done.result(WAIT)


# -- lifecycle ------------------------------------------------------------------------------


def test_initialize_runs_first_and_finalize_last(runtime):
    log: list = []
    process = Recorder(log=log)
    pid = runtime.spawn(process)
    for n in range(3):
        runtime.send(pid, "note", n)
    runtime.terminate(pid, inject=False)
    runtime.wait(pid).result(WAIT)
    assert log == [
        (pid.id, "initialize"),
        (pid.id, "note", 0),
        (pid.id, "note", 1),
        (pid.id, "note", 2),
        (pid.id, "finalize"),
    ]
    assert process.state == "terminated"


def test_initialize_runs_even_when_terminated_right_after_spawn(runtime):
    for _ in range(20):
        log: list = []
        pid = runtime.spawn(Recorder(log=log))
        runtime.terminate(pid)  # injected: jumps every queued event, but not initialize
        runtime.wait(pid).result(WAIT)
        assert log == [(pid.id, "initialize"), (pid.id, "finalize")]


def test_a_failing_initialize_terminates_the_process_after_finalize(runtime):
    log: list = []

    class Broken(Recorder):
        def initialize(self) -> None:
            super().initialize()
            raise RuntimeError("cannot start")

    pid = runtime.spawn(Broken(log=log))
    runtime.wait(pid).result(WAIT)
    assert log == [(pid.id, "initialize"), (pid.id, "finalize")]
    assert pid not in runtime.processes()


# -- message order --------------------------------------------------------------------------


class Sender(Process):
    def __init__(self, target, count: int) -> None:
        super().__init__()
        self.target = target
        self.count = count

    @handler("go")
    def go(self, sender, body) -> None:
        for n in range(self.count):
            self.send(self.target, "note", n)


def test_messages_from_each_sender_arrive_in_send_order(runtime):
    count = 2000
    receiver = Recorder()
    target = runtime.spawn(receiver)
    senders = [runtime.spawn(Sender(target, count)) for _ in range(4)]
    for sender in senders:
        runtime.send(sender, "go")
    for n in range(count):  # an anonymous sender from the test thread, interleaved
        runtime.send(target, "note", -n)
    runtime.settle()
    received = call(runtime, target, lambda: list(receiver.received))
    assert len(received) == 5 * count
    by_sender: dict = {}
    for sender, body in received:
        by_sender.setdefault(sender, []).append(body)
    for sender in senders:
        assert by_sender[sender] == list(range(count))
    assert by_sender[None] == [-n for n in range(count)]


# -- handlers -------------------------------------------------------------------------------


def test_handlers_by_decorator_and_by_install(runtime):
    got: list = []

    class Both(Process):
        def initialize(self) -> None:
            self.install("installed", lambda sender, body: got.append(("installed", body)))

        @handler("decorated")
        def decorated(self, sender, body) -> None:
            got.append(("decorated", body))

    pid = runtime.spawn(Both())
    runtime.send(pid, "decorated", 1)
    runtime.send(pid, "installed", 2)
    runtime.settle()
    assert got == [("decorated", 1), ("installed", 2)]


def test_a_subclass_inherits_and_overrides_handlers(runtime):
    got: list = []

    class Base(Process):
        @handler("a")
        def on_a(self, sender, body) -> None:
            got.append(("base a", body))

        @handler("b")
        def on_b(self, sender, body) -> None:
            got.append(("base b", body))

    class Derived(Base):
        def on_b(self, sender, body) -> None:  # overrides the method behind "b"
            got.append(("derived b", body))

    pid = runtime.spawn(Derived())
    runtime.send(pid, "a", 1)
    runtime.send(pid, "b", 2)
    runtime.settle()
    assert got == [("base a", 1), ("derived b", 2)]


def test_coroutine_handlers_are_refused_at_class_time_and_at_install():
    with pytest.raises(TypeError, match=r"coroutine function.*defer"):

        class Bad(Process):
            @handler("x")
            async def on_x(self, sender, body) -> None:
                pass

    async def coroutine(sender, body) -> None:
        pass

    with pytest.raises(TypeError, match="coroutine function"):
        Process().install("x", coroutine)
    with pytest.raises(TypeError, match="coroutine function"):
        Process().route("/x", coroutine)


def test_an_unknown_message_name_is_counted_and_the_process_keeps_serving(runtime):
    receiver = Recorder()
    pid = runtime.spawn(receiver)
    runtime.send(pid, "no-such-message", 1)
    runtime.send(pid, "note", 2)
    runtime.settle()
    assert counter(runtime, "messages_unknown_name") == 1
    assert [body for _, body in receiver.received] == [2]


def test_unhandled_can_be_overridden(runtime):
    got: list = []

    class Catcher(Process):
        def unhandled(self, sender, name, body) -> None:
            got.append((sender, name, body))

    pid = runtime.spawn(Catcher())
    sender = runtime.spawn(Name())
    runtime.send(pid, "whatever", {"k": 1}, sender=sender)
    runtime.settle()
    assert got == [(sender, "whatever", {"k": 1})]
    assert counter(runtime, "messages_unknown_name") == 0


def test_a_raising_handler_is_counted_and_the_process_keeps_serving(runtime):
    class Fragile(Recorder):
        @handler("boom")
        def boom(self, sender, body) -> None:
            raise ValueError("handler bug")

    process = Fragile()
    pid = runtime.spawn(process)
    runtime.send(pid, "boom")
    runtime.send(pid, "boom")
    runtime.send(pid, "note", "after")
    runtime.settle()
    assert counter(runtime, "handler_errors") == 2
    assert [body for _, body in process.received] == ["after"]
    assert process.state == "running"


# -- dispatch -------------------------------------------------------------------------------


class Account(Process):
    def __init__(self) -> None:
        super().__init__()
        self.balance = 0
        self.pending: Promise | None = None

    def deposit(self, amount: int, *, note: str = "") -> int:
        self.balance += amount
        return self.balance

    def later(self):
        self.pending = Promise()
        return self.pending.future

    def fail(self) -> None:
        raise KeyError("no such account")


class SavingsAccount(Account):
    def deposit(self, amount: int, *, note: str = "") -> int:
        return super().deposit(amount * 2, note=note)


def test_dispatch_by_name_bound_method_class_function_and_lambda(runtime):
    account = Account()
    pid = runtime.spawn(account)
    assert call(runtime, pid, "deposit", 1) == 1
    assert call(runtime, pid, account.deposit, 2) == 3
    assert call(runtime, pid, Account.deposit, 3, note="unbound") == 6
    assert call(runtime, account, lambda: account.balance * 10) == 60
    loop_thread = call(runtime, pid, threading.get_ident)
    assert loop_thread != threading.get_ident()


def test_dispatch_ahead_is_served_before_queued_events_and_in_its_own_order(runtime):
    recorder = Recorder()
    pid = runtime.spawn(recorder)
    runtime.settle()  # initialized: nothing queued
    order: list = []
    done = threading.Event()

    def queue_then_jump() -> None:  # on the loop: nothing is served in between
        for index in range(3):
            runtime.dispatch(pid, order.append, f"queued-{index}")
        runtime.dispatch_ahead(pid, order.append, "ahead-0")
        runtime.dispatch_ahead(pid, order.append, "ahead-1")
        runtime.dispatch(pid, done.set)

    runtime.call_on_loop(queue_then_jump)
    assert done.wait(WAIT)
    assert order == ["ahead-0", "ahead-1", "queued-0", "queued-1", "queued-2"]


def test_dispatch_ahead_waits_for_initialize_and_fails_for_an_ended_process(runtime):
    log: list = []
    recorder = Recorder(log=log)
    seen: list = []

    def spawn_and_jump() -> None:
        runtime.spawn(recorder)
        runtime.dispatch_ahead(recorder, lambda: seen.append(list(log)))

    runtime.call_on_loop(spawn_and_jump)
    runtime.settle()
    assert seen == [[(recorder.pid.id, "initialize")]]
    runtime.terminate(recorder)
    runtime.wait(recorder).result(WAIT)
    with pytest.raises((ProcessTerminated, UnknownProcess)):
        runtime.dispatch_ahead(recorder.pid, lambda: None).result(WAIT)


def test_dispatch_of_a_base_class_function_binds_to_a_subclass_process(runtime):
    savings = SavingsAccount()
    pid = runtime.spawn(savings)
    # Account.deposit(savings, 5), as Python would call it: the base implementation.
    assert call(runtime, pid, Account.deposit, 5) == 5
    assert call(runtime, pid, "deposit", 5) == 15  # by name: the override


def test_dispatch_of_a_missing_method_name_fails_clearly(runtime):
    pid = runtime.spawn(Account())
    with pytest.raises(AttributeError, match="Account has no method 'withdraw'"):
        call(runtime, pid, "withdraw", 1)


def test_dispatch_of_a_coroutine_function_is_refused(runtime):
    async def work() -> int:
        return 1

    pid = runtime.spawn(Name())
    with pytest.raises(TypeError, match=r"returned a coroutine.*defer"):
        call(runtime, pid, work)
    assert call(runtime, pid, lambda: "still serving") == "still serving"


def test_dispatch_returning_a_future_is_followed(runtime):
    account = Account()
    pid = runtime.spawn(account)
    result = runtime.dispatch(pid, "later")
    runtime.settle()
    assert result.is_pending()
    account.pending.set("eventually")
    assert result.result(WAIT) == "eventually"


def test_a_raising_dispatch_fails_its_future(runtime):
    pid = runtime.spawn(Account())
    with pytest.raises(KeyError, match="no such account"):
        call(runtime, pid, "fail")
    assert call(runtime, pid, "deposit", 1) == 1  # and the process keeps serving


def test_dispatch_to_an_unknown_pid_fails_with_unknown_process(runtime):
    future = runtime.dispatch(f"nobody@{runtime.address}", "deposit", 1)
    assert future.is_failed()
    with pytest.raises(UnknownProcess, match="nobody"):
        future.result(WAIT)
    elsewhere = runtime.dispatch("account(1)@10.9.9.9:5050", "deposit", 1)
    assert isinstance(elsewhere.failure, UnknownProcess)


def test_dispatch_to_a_terminated_process_fails_with_process_terminated(runtime):
    process = Account()
    runtime.spawn(process)
    runtime.terminate(process)
    runtime.wait(process).result(WAIT)
    with pytest.raises(ProcessTerminated):
        runtime.dispatch(process, "deposit", 1).result(WAIT)


# -- terminate and wait ---------------------------------------------------------------------


def _queue_then_terminate(runtime: Runtime, target: Recorder, inject: bool):
    """From inside another process: queue messages and a dispatch, then terminate."""

    def act():
        for n in range(3):
            runtime.send(target.pid, "note", n)
        pending = runtime.dispatch(target, lambda: "served")
        runtime.terminate(target, inject=inject)
        return [pending]  # in a list: a returned Future would be followed

    driver = runtime.spawn(Name())
    [pending] = call(runtime, driver, act)
    return pending


def test_terminate_with_inject_drops_pending_events_and_fails_pending_dispatches(runtime):
    log: list = []
    target = Recorder(log=log)
    runtime.spawn(target)
    runtime.settle()
    pending = _queue_then_terminate(runtime, target, inject=True)
    runtime.wait(target).result(WAIT)
    with pytest.raises(ProcessTerminated, match="terminated before it handled a dispatch"):
        pending.result(WAIT)
    assert log == [(target.pid.id, "initialize"), (target.pid.id, "finalize")]


def test_terminate_without_inject_serves_queued_events_first(runtime):
    log: list = []
    target = Recorder(log=log)
    runtime.spawn(target)
    pending = _queue_then_terminate(runtime, target, inject=False)
    runtime.wait(target).result(WAIT)
    assert pending.result(WAIT) == "served"
    notes = [entry[2] for entry in log if entry[1] == "note"]
    assert notes == [0, 1, 2]
    assert log[-1] == (target.pid.id, "finalize")


def test_wait_becomes_ready_after_termination(runtime):
    pid = runtime.spawn(Recorder())
    done = runtime.wait(pid)
    runtime.settle()
    assert done.is_pending()
    assert runtime.terminate(pid) is True
    assert done.result(WAIT) is None
    assert runtime.terminate(pid) is False  # already gone
    assert runtime.wait(pid).is_ready()  # an unknown pid is as good as terminated


def test_a_process_can_terminate_itself_after_the_current_event(runtime):
    log: list = []

    class Quitter(Recorder):
        @handler("quit")
        def quit(self, sender, body) -> None:
            self.terminate()
            self.log.append((self.pid.id, "still in the handler"))

    pid = runtime.spawn(Quitter(log=log))
    runtime.send(pid, "quit")
    runtime.send(pid, "note", "dropped")
    runtime.wait(pid).result(WAIT)
    assert log == [
        (pid.id, "initialize"),
        (pid.id, "still in the handler"),
        (pid.id, "finalize"),
    ]


# -- defer and delay ------------------------------------------------------------------------


def test_defer_brings_a_continuation_back_into_the_process(runtime):
    class Waiter(Recorder):
        def __init__(self) -> None:
            super().__init__()
            self.external = Promise()
            self.threads: list = []

        def initialize(self) -> None:
            super().initialize()
            self.external.future.then(self.defer(self.on_value))

        def on_value(self, value) -> str:
            self.threads.append(threading.get_ident())
            self.log.append((self.pid.id, "continuation", value))
            return f"handled {value}"

    waiter = Waiter()
    pid = runtime.spawn(waiter)
    runtime.settle()
    loop_thread = call(runtime, pid, threading.get_ident)
    # The promise is completed on this (test) thread; the continuation must still run on
    # the runtime's thread, queued in the mailbox between the two messages.
    runtime.send(pid, "note", "before")
    waiter.external.set(42)
    runtime.send(pid, "note", "after")
    runtime.settle()
    assert waiter.threads == [loop_thread]
    assert waiter.log[1:] == [
        (pid.id, "note", "before"),
        (pid.id, "continuation", 42),
        (pid.id, "note", "after"),
    ]


def test_a_deferred_call_returns_a_future_of_its_result(runtime):
    waiter = Recorder()
    runtime.spawn(waiter)
    deferred = waiter.defer(lambda x: x * 2)
    assert deferred(21).result(WAIT) == 42


def test_delay_fires_on_the_paused_clock_only_when_advanced_far_enough(runtime, paused_clock):
    class Sleeper(Recorder):
        @handler("arm")
        def arm(self, sender, body) -> None:
            self.timer = self.delay(5.0, "wake", body)

        def wake(self, body) -> None:
            self.log.append((self.pid.id, "woke", body, threading.get_ident()))

    sleeper = Sleeper()
    pid = runtime.spawn(sleeper)
    loop_thread = call(runtime, pid, threading.get_ident)
    runtime.send(pid, "arm", "first")
    runtime.settle()
    paused_clock.advance(4.9)
    runtime.settle()
    assert not [entry for entry in sleeper.log if entry[1] == "woke"]
    paused_clock.advance(0.2)
    runtime.settle()
    assert [entry for entry in sleeper.log if entry[1] == "woke"] == [
        (pid.id, "woke", "first", loop_thread)
    ]


def test_a_cancelled_delay_never_fires(runtime, paused_clock):
    fired: list = []
    pid = runtime.spawn(Recorder())
    timer = runtime.delay(1.0, pid, lambda: fired.append("runtime delay"))
    assert timer.cancel() is True
    paused_clock.advance(10)
    runtime.settle()
    assert fired == []
    later = runtime.delay(1.0, pid, lambda: fired.append("fired"))
    paused_clock.advance(1.0)
    runtime.settle()
    assert fired == ["fired"]
    assert later.cancel() is False


# -- local links ----------------------------------------------------------------------------


def test_a_link_to_a_live_process_delivers_exited_once_when_it_ends(runtime):
    watcher = Recorder()
    runtime.spawn(watcher)
    target = runtime.spawn(Recorder())
    call(runtime, watcher, lambda: (watcher.link(target), watcher.link(target)))
    runtime.settle()
    assert watcher.exits == []
    runtime.terminate(target)
    runtime.wait(target).result(WAIT)
    runtime.settle()
    assert watcher.exits == [target]


def test_a_link_to_a_nonexistent_process_delivers_exited_at_once(runtime):
    watcher = Recorder()
    runtime.spawn(watcher)
    ghost = UPID(f"ghost@{runtime.address}")
    call(runtime, watcher, lambda: watcher.link(ghost))
    runtime.settle()
    assert watcher.exits == [ghost]


def test_unlink_stops_exited(runtime):
    watcher = Recorder()
    runtime.spawn(watcher)
    target = runtime.spawn(Recorder())
    call(runtime, watcher, lambda: watcher.link(target))
    call(runtime, watcher, lambda: watcher.unlink(target))
    runtime.terminate(target)
    runtime.wait(target).result(WAIT)
    runtime.settle()
    assert watcher.exits == []


def test_a_linker_that_terminated_first_gets_nothing(runtime):
    log: list = []
    watcher = Recorder(log=log)
    runtime.spawn(watcher)
    target = runtime.spawn(Recorder())
    call(runtime, watcher, lambda: watcher.link(target))
    runtime.terminate(watcher)
    runtime.wait(watcher).result(WAIT)
    runtime.terminate(target)
    runtime.wait(target).result(WAIT)
    runtime.settle()
    assert watcher.exits == []
    assert log[-1] == (watcher.pid.id, "finalize")


def test_link_from_outside_the_process_is_handed_to_the_loop(runtime):
    watcher = Recorder()
    runtime.spawn(watcher)
    target = runtime.spawn(Recorder())
    watcher.link(target)  # from the test thread
    runtime.terminate(target)
    runtime.wait(target).result(WAIT)
    runtime.settle()
    assert watcher.exits == [target]


# -- sends to nobody, fairness, shutdown ----------------------------------------------------


def test_a_send_to_a_nonexistent_local_pid_is_counted(runtime):
    runtime.send(f"nobody@{runtime.address}", "note", 1)
    sender = Name()
    runtime.spawn(sender)
    call(runtime, sender, lambda: sender.send(f"gone@{runtime.address}", "note", 2))
    runtime.settle()
    assert counter(runtime, "messages_unknown_process") == 2


def test_an_invalid_destination_fails_at_send_in_the_callers_thread(runtime):
    from libprocess import InvalidUPID

    with pytest.raises(InvalidUPID, match="id@host:port"):
        runtime.send("not-a-pid", "note", 1)


class Tally(Process):
    def __init__(self, trace: list) -> None:
        super().__init__()
        self.trace = trace

    @handler("tick")
    def tick(self, sender, body) -> None:
        self.trace.append(self.pid.id)


def test_a_flooded_process_does_not_starve_another(runtime):
    trace: list = []
    busy = runtime.spawn(Tally(trace))
    quiet = runtime.spawn(Tally(trace))
    driver = runtime.spawn(Name())

    def flood():  # all queued in one event, the busy process first
        for _ in range(5000):
            runtime.send(busy, "tick")
        for _ in range(500):
            runtime.send(quiet, "tick")

    call(runtime, driver, flood)
    runtime.settle()
    assert trace.count(busy.id) == 5000
    assert trace.count(quiet.id) == 500
    assert trace.index(quiet.id) < 1000  # served long before the busy one is done
    # While both have work queued, neither runs for long without the other getting a go.
    both_busy = trace[: len(trace) - trace[::-1].index(quiet.id)]
    longest = run = 1
    for before, after in itertools.pairwise(both_busy):
        run = run + 1 if before == after else 1
        longest = max(longest, run)
    assert longest <= 1000


def test_a_process_that_keeps_itself_busy_does_not_starve_others(runtime):
    class Spinner(Process):
        def __init__(self) -> None:
            super().__init__()
            self.spins = 0

        @handler("spin")
        def spin(self, sender, body) -> None:
            self.spins += 1
            self.send(self.pid, "spin")

    spinner = Spinner()
    spinning = runtime.spawn(spinner)
    other = runtime.spawn(Name())
    runtime.send(spinning, "spin")
    for _ in range(20):
        assert call(runtime, other, lambda: "answered") == "answered"
    before = spinner.spins
    assert call(runtime, other, lambda: "again") == "again"
    assert spinner.spins > before > 0  # still spinning all along
    runtime.terminate(spinning)
    runtime.wait(spinning).result(WAIT)


def test_stop_finalizes_every_process_in_reverse_spawn_order():
    log: list = []
    runtime = Runtime("127.0.0.1", 0).start()
    try:
        pids = [runtime.spawn(Recorder(f"r{n}", log=log)) for n in range(4)]
        runtime.settle()
    finally:
        runtime.stop()
    finalized = [ident for ident, event, *_ in log if event == "finalize"]
    assert finalized == ["r3", "r2", "r1", "r0"]
    for pid in pids:
        assert runtime.wait(pid).is_ready()


@pytest.mark.parametrize("bad", ["", "my worker", "a@b", "eng/web", "tab\there"])
def test_an_id_that_cannot_be_in_a_upid_is_refused_at_construction(bad):
    with pytest.raises(ValueError, match="cannot be a process id"):
        Process(bad)


def test_a_refused_spawn_leaves_the_id_free(runtime):
    class Named(Process):
        pass

    first = Named("worker")
    first.mailbox.requested_id = "bad worker"  # as if construction had not checked it
    with pytest.raises(InvalidUPID):
        runtime.spawn(first)
    second = Named("bad-worker")
    assert runtime.spawn(second).id == "bad-worker"
    assert "bad worker" not in runtime._reserved
