"""The status-update manager on its own: ordering, one in flight per stream, backoff, duplicate
and stray acks, pause/resume, cleanup, checkpoint/recovery; and a model-based state machine
that random sequences of updates, acks, ticks, pauses, restarts and cleanups hold to it."""

from __future__ import annotations

import itertools

import msgpack
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from agent.status_updates import (
    RETRY_INTERVAL_MAX,
    RETRY_INTERVAL_MIN,
    Forward,
    Ignored,
    Refused,
    Schedule,
    StatusUpdate,
    StatusUpdateManager,
    StreamClosed,
)

F, T = "framework-1", "task-1"
_uuids = itertools.count(1)


def status(
    state: str = "TASK_RUNNING",
    terminal: bool = False,
    framework_id: str = F,
    task_id: str = T,
    uuid: bytes | None = None,
) -> StatusUpdate:
    if uuid is None:
        uuid = next(_uuids).to_bytes(16, "big")
    return StatusUpdate(framework_id, task_id, uuid, state, terminal, {"state": state})


def send(manager: StatusUpdateManager, update: StatusUpdate, now: float = 0.0) -> list:
    return manager.update(update.framework_id, update.task_id, update, now)


def ack(manager: StatusUpdateManager, update: StatusUpdate, now: float = 0.0) -> list:
    return manager.acknowledge(update.framework_id, update.task_id, update.uuid, now)


def kinds(actions: list) -> list[type]:
    return [type(action) for action in actions]


# --- updates and acks --------------------------------------------------------------------


def test_first_update_is_forwarded_and_a_retry_scheduled():
    manager = StatusUpdateManager()
    running = status()
    assert send(manager, running, now=100.0) == [Forward(running), Schedule(110.0)]
    assert manager.pending(F, T) == (running,)
    assert manager.retry_at(F, T) == 110.0


def test_later_updates_queue_behind_the_head_and_go_one_by_one_in_order():
    manager = StatusUpdateManager()
    starting, running, finished = status("TASK_STARTING"), status(), status("TASK_FINISHED", True)
    send(manager, starting)
    assert send(manager, running) == []
    assert send(manager, finished) == []
    assert manager.pending(F, T) == (starting, running, finished)
    assert ack(manager, starting, now=3.0) == [Forward(running), Schedule(13.0)]
    assert ack(manager, running, now=4.0) == [Forward(finished), Schedule(14.0)]
    assert ack(manager, finished, now=5.0) == [StreamClosed(F, T)]
    assert manager.pending(F, T) == ()
    assert manager.acknowledged(F, T) == (starting.uuid, running.uuid, finished.uuid)
    assert manager.closed(F, T)
    assert manager.retry_at(F, T) is None
    assert manager.next_retry() is None


def test_ack_of_the_last_non_terminal_update_leaves_the_stream_open_and_idle():
    manager = StatusUpdateManager()
    running = status()
    send(manager, running)
    assert ack(manager, running) == []
    assert not manager.closed(F, T)
    assert manager.retry_at(F, T) is None
    later = status("TASK_FINISHED", True)
    assert send(manager, later, now=7.0) == [Forward(later), Schedule(17.0)]


def test_streams_of_different_tasks_are_independent():
    manager = StatusUpdateManager()
    a, b = status(task_id="a"), status(task_id="b")
    assert kinds(send(manager, a, now=0.0)) == [Forward, Schedule]
    assert send(manager, b, now=1.0) == [Forward(b), Schedule(10.0)]  # earliest of all heads
    assert manager.retry_at(F, "a") == 10.0
    assert manager.retry_at(F, "b") == 11.0


def test_duplicate_of_a_pending_update_is_ignored():
    manager = StatusUpdateManager()
    running = status()
    send(manager, running)
    [ignored] = send(manager, running)
    assert isinstance(ignored, Ignored) and "already pending" in ignored.reason
    assert manager.pending(F, T) == (running,)


def test_duplicate_of_an_acknowledged_update_is_ignored_even_after_the_stream_closed():
    manager = StatusUpdateManager()
    running, finished = status(), status("TASK_FINISHED", True)
    send(manager, running)
    ack(manager, running)
    [ignored] = send(manager, running)
    assert isinstance(ignored, Ignored) and "already acknowledged" in ignored.reason
    send(manager, finished)
    ack(manager, finished)
    [ignored] = send(manager, finished)  # the executor retried its terminal update
    assert isinstance(ignored, Ignored)
    assert manager.pending(F, T) == ()


def test_update_after_an_acknowledged_terminal_update_is_refused():
    manager = StatusUpdateManager()
    finished = status("TASK_FINISHED", True)
    send(manager, finished)
    ack(manager, finished)
    [refused] = send(manager, status())
    assert isinstance(refused, Refused)
    assert "stream is closed" in refused.reason and T in refused.reason
    assert manager.pending(F, T) == ()


def test_update_after_a_pending_terminal_update_is_refused():
    manager = StatusUpdateManager()
    failed = status("TASK_FAILED", True)
    send(manager, failed)
    late = status()
    [refused] = send(manager, late)
    assert isinstance(refused, Refused)
    assert failed.uuid.hex() in refused.reason and "TASK_FAILED" in refused.reason
    assert manager.pending(F, T) == (failed,)


def test_update_whose_ids_differ_from_the_arguments_is_a_caller_bug():
    manager = StatusUpdateManager()
    with pytest.raises(ValueError, match="belongs to task"):
        manager.update(F, "other-task", status(), 0.0)
    assert manager.streams() == []


@pytest.mark.parametrize(
    "fields",
    [
        dict(uuid=b""),
        dict(uuid="not-bytes"),
        dict(framework_id=""),
        dict(task_id=7),
        dict(state=""),
        dict(terminal="yes"),
    ],
)
def test_status_update_validates_itself(fields):
    values = dict(framework_id=F, task_id=T, uuid=b"u", state="TASK_RUNNING", terminal=False)
    values.update(fields)
    with pytest.raises(ValueError, match="StatusUpdate"):
        StatusUpdate(**values)


def test_ack_for_an_unknown_stream_is_refused():
    manager = StatusUpdateManager()
    [refused] = manager.acknowledge(F, T, b"x", 0.0)
    assert isinstance(refused, Refused) and "no status update stream" in refused.reason


def test_ack_for_an_unknown_uuid_is_refused_and_changes_nothing():
    manager = StatusUpdateManager()
    running = status()
    send(manager, running)
    [refused] = manager.acknowledge(F, T, b"stray", 1.0)
    assert isinstance(refused, Refused)
    assert "no update" in refused.reason and running.uuid.hex() in refused.reason
    assert manager.pending(F, T) == (running,)
    assert manager.retry_at(F, T) == 10.0


def test_ack_out_of_order_is_refused_and_changes_nothing():
    manager = StatusUpdateManager()
    starting, running = status("TASK_STARTING"), status()
    send(manager, starting)
    send(manager, running)
    [refused] = ack(manager, running)
    assert isinstance(refused, Refused) and "out of order" in refused.reason
    assert "a later update" in refused.reason
    assert manager.pending(F, T) == (starting, running)


def test_repeated_ack_is_ignored():
    manager = StatusUpdateManager()
    running, finished = status(), status("TASK_FINISHED", True)
    send(manager, running)
    send(manager, finished)
    ack(manager, running)
    [ignored] = ack(manager, running)  # the framework acked the original and a resend
    assert isinstance(ignored, Ignored)
    assert manager.pending(F, T) == (finished,)
    ack(manager, finished)
    [ignored] = ack(manager, finished)
    assert isinstance(ignored, Ignored)


def test_ack_with_a_new_uuid_on_an_empty_or_closed_stream_is_refused():
    manager = StatusUpdateManager()
    running = status()
    send(manager, running)
    ack(manager, running)
    [refused] = manager.acknowledge(F, T, b"stray", 0.0)
    assert isinstance(refused, Refused) and "stream is empty" in refused.reason
    finished = status("TASK_FINISHED", True)
    send(manager, finished)
    ack(manager, finished)
    [refused] = manager.acknowledge(F, T, b"stray", 0.0)
    assert isinstance(refused, Refused) and "stream is closed" in refused.reason


# --- retries -----------------------------------------------------------------------------


def test_tick_resends_with_exponential_backoff_capped_at_the_maximum():
    manager = StatusUpdateManager()
    assert (RETRY_INTERVAL_MIN, RETRY_INTERVAL_MAX) == (10.0, 600.0)
    running = status()
    send(manager, running, now=0.0)
    now, waits = 0.0, []
    for _ in range(9):
        retry_at = manager.retry_at(F, T)
        assert manager.tick(retry_at - 0.5) == [Schedule(retry_at)]  # not yet due
        now = retry_at
        assert manager.tick(now) == [Forward(running), Schedule(manager.retry_at(F, T))]
        waits.append(manager.retry_at(F, T) - now)
    assert waits == [20, 40, 80, 160, 320, 600, 600, 600, 600]


def test_backoff_bounds_are_configurable_and_checked():
    manager = StatusUpdateManager(retry_interval_min=1.0, retry_interval_max=3.0)
    send(manager, status(), now=0.0)
    assert manager.retry_at(F, T) == 1.0
    manager.tick(1.0)
    assert manager.retry_at(F, T) == 3.0
    manager.tick(3.0)
    assert manager.retry_at(F, T) == 6.0
    with pytest.raises(ValueError, match="0 < min <= max"):
        StatusUpdateManager(retry_interval_min=5.0, retry_interval_max=1.0)
    with pytest.raises(ValueError):
        StatusUpdateManager(retry_interval_min=0.0)


def test_a_late_tick_waits_from_the_resend_not_from_the_old_deadline():
    manager = StatusUpdateManager()
    running = status()
    send(manager, running, now=0.0)
    assert manager.tick(95.0) == [Forward(running), Schedule(115.0)]


def test_next_head_starts_its_backoff_over_after_an_ack():
    manager = StatusUpdateManager()
    starting, running = status("TASK_STARTING"), status()
    send(manager, starting, now=0.0)
    send(manager, running, now=0.0)
    manager.tick(10.0)
    manager.tick(30.0)
    assert ack(manager, starting, now=31.0) == [Forward(running), Schedule(41.0)]


def test_tick_resends_only_due_heads_and_schedules_the_earliest_remaining():
    manager = StatusUpdateManager()
    a, b = status(task_id="a"), status(task_id="b")
    send(manager, a, now=0.0)
    send(manager, b, now=5.0)
    assert manager.tick(10.0) == [Forward(a), Schedule(15.0)]
    assert manager.tick(15.0) == [Forward(b), Schedule(30.0)]
    ack(manager, a, now=16.0)
    ack(manager, b, now=16.0)
    assert manager.tick(30.0) == []  # the stale timers are skipped
    assert manager.next_retry() is None


# --- pause, resume, cleanup --------------------------------------------------------------


def test_paused_manager_forwards_nothing_and_resume_resends_every_head():
    manager = StatusUpdateManager()
    a, a2, b = status(task_id="a"), status("TASK_FINISHED", True, task_id="a"), status(task_id="b")
    send(manager, a, now=0.0)
    send(manager, a2, now=0.0)
    manager.tick(10.0)  # a's wait is now 20 s
    manager.pause()
    assert manager.paused
    assert manager.retry_at(F, "a") is None
    assert send(manager, b, now=11.0) == []  # queued, not sent
    assert manager.tick(1000.0) == []
    assert ack(manager, a, now=12.0) == []  # acked while paused: a2 waits for resume
    actions = manager.resume(now=2000.0)
    assert actions == [Forward(a2), Forward(b), Schedule(2010.0)]
    assert manager.retry_at(F, "a") == 2010.0  # backoff starts over
    assert not manager.paused


def test_cleanup_drops_only_that_frameworks_streams():
    manager = StatusUpdateManager()
    mine, theirs = status(framework_id="f1"), status(framework_id="f2")
    send(manager, mine, now=0.0)
    send(manager, theirs, now=1.0)
    assert manager.cleanup("f1") is None
    assert manager.streams() == [("f2", T)]
    assert manager.pending("f1", T) == ()
    assert manager.tick(10.0) == [Schedule(11.0)]
    assert manager.tick(11.0) == [Forward(theirs), Schedule(31.0)]
    [refused] = ack(manager, mine)
    assert isinstance(refused, Refused)


# --- checkpoint and recovery -------------------------------------------------------------


def test_checkpoint_records_round_trip_through_msgpack():
    manager = StatusUpdateManager()
    starting, running = status("TASK_STARTING"), status()
    finished = status("TASK_FINISHED", True, task_id="done")
    send(manager, starting)
    send(manager, running)
    ack(manager, starting)
    send(manager, finished)
    ack(manager, finished)
    records = manager.checkpoint_records()
    assert records == [
        {
            "framework_id": F,
            "task_id": T,
            "pending": [
                {
                    "uuid": running.uuid,
                    "state": "TASK_RUNNING",
                    "terminal": False,
                    "payload": {"state": "TASK_RUNNING"},
                }
            ],
            "acknowledged": [starting.uuid],
            "closed": False,
        },
        {
            "framework_id": F,
            "task_id": "done",
            "pending": [],
            "acknowledged": [finished.uuid],
            "closed": True,
        },
    ]
    restored = msgpack.unpackb(msgpack.packb(records))
    recovered = StatusUpdateManager()
    recovered.recover(restored)
    assert recovered.checkpoint_records() == records
    assert recovered.pending(F, T) == (running,)
    assert recovered.closed(F, "done")
    # A recovered manager is paused until the agent re-registers.
    assert recovered.paused and recovered.retry_at(F, T) is None
    assert recovered.tick(1e9) == []
    assert recovered.resume(now=50.0) == [Forward(running), Schedule(60.0)]
    # Duplicates and closed streams are still recognised after the restart.
    assert kinds(send(recovered, starting)) == [Ignored]
    assert kinds(send(recovered, status(task_id="done"))) == [Refused]


def test_payloads_go_through_encode_and_decode():
    manager = StatusUpdateManager()
    running = status()
    send(manager, running)
    [record] = manager.checkpoint_records(encode=lambda payload: repr(payload))
    assert record["pending"][0]["payload"] == "{'state': 'TASK_RUNNING'}"
    recovered = StatusUpdateManager()
    recovered.recover([record], decode=lambda text: {"decoded": text})
    assert recovered.pending(F, T)[0].payload == {"decoded": "{'state': 'TASK_RUNNING'}"}
    assert manager.stream_record(F, "missing") is None


def test_recover_into_a_manager_in_use_is_refused():
    manager = StatusUpdateManager()
    send(manager, status())
    with pytest.raises(RuntimeError, match="empty manager"):
        manager.recover(manager.checkpoint_records())


def _record(**changes):
    record = {
        "framework_id": F,
        "task_id": T,
        "pending": [{"uuid": b"a", "state": "TASK_RUNNING", "terminal": False, "payload": None}],
        "acknowledged": [b"z"],
        "closed": False,
    }
    record.update(changes)
    return record


@pytest.mark.parametrize(
    "records, message",
    [
        ([{"framework_id": F}], "not a stream record"),
        ([_record(task_id="")], "non-empty str"),
        ([_record(acknowledged=[b"z", b"z"])], "repeated acked uuid"),
        ([_record(acknowledged=[b"a"])], "is repeated"),
        ([_record(closed=True)], "closed=True with 1 pending"),
        (
            [
                _record(
                    pending=[
                        {"uuid": b"a", "state": "TASK_FINISHED", "terminal": True, "payload": 0},
                        {"uuid": b"b", "state": "TASK_RUNNING", "terminal": False, "payload": 0},
                    ]
                )
            ],
            "is not last",
        ),
        ([_record(pending=[{"uuid": b"", "state": "S", "terminal": False, "payload": 0}])], "bad"),
        ([_record(), _record()], "repeats stream"),
    ],
)
def test_corrupt_checkpoint_records_raise_and_recover_nothing(records, message):
    manager = StatusUpdateManager()
    with pytest.raises(ValueError, match=message):
        manager.recover(records)
    assert manager.streams() == []


# --- random sequences against a model ----------------------------------------------------

FRAMEWORKS = ("f1", "f2")
TASKS = ("t1", "t2", "t3")
KEYS = [(framework, task) for framework in FRAMEWORKS for task in TASKS]
MIN, MAX = 10.0, 80.0


class StatusUpdateMachine(RuleBasedStateMachine):
    """Drives a manager and a plain model of what it must do, and compares them at each step.

    The model: per stream, the uuids accepted in order, how many were acked, whether a
    terminal one was accepted, and, for the in-flight head, its retry time and wait.
    """

    def __init__(self) -> None:
        super().__init__()
        self.manager = StatusUpdateManager(MIN, MAX)
        self.now = 0.0
        self.paused = False
        self.counter = 0
        self.updates: dict[bytes, StatusUpdate] = {}
        self.accepted: dict[tuple[str, str], list[bytes]] = {}
        self.acked: dict[tuple[str, str], int] = {}
        self.closed: set[tuple[str, str]] = set()
        self.forwarded: dict[tuple[str, str], list[bytes]] = {}
        self.retry: dict[tuple[str, str], float] = {}  # in-flight heads only
        self.wait: dict[tuple[str, str], float] = {}

    # model helpers

    def pending(self, key) -> list[bytes]:
        return self.accepted.get(key, [])[self.acked.get(key, 0) :]

    def terminal_accepted(self, key) -> bool:
        accepted = self.accepted.get(key)
        return bool(accepted) and self.updates[accepted[-1]].terminal

    def start(self, key) -> None:
        self.wait[key] = MIN
        self.retry[key] = self.now + MIN

    def stop(self, key) -> None:
        self.retry.pop(key, None)
        self.wait.pop(key, None)

    def expected_schedule(self) -> list:
        return [Schedule(min(self.retry.values()))] if self.retry else []

    def record(self, actions: list) -> None:
        """Check every Forward is its stream's current head of an open stream; log it."""
        for action in actions:
            if isinstance(action, Forward):
                key = (action.update.framework_id, action.update.task_id)
                assert key not in self.closed, f"{key} forwarded after its stream closed"
                assert not self.paused, "forwarded while paused"
                assert self.pending(key)[0] == action.update.uuid, "forwarded a non-head"
                self.forwarded.setdefault(key, []).append(action.update.uuid)

    # rules

    @rule(key=st.sampled_from(KEYS), terminal=st.booleans())
    def new_update(self, key, terminal) -> None:
        self.counter += 1
        state = "TASK_FINISHED" if terminal else "TASK_RUNNING"
        update = StatusUpdate(
            key[0], key[1], self.counter.to_bytes(4, "big"), state, terminal, {"n": self.counter}
        )
        self.updates[update.uuid] = update
        actions = self.manager.update(key[0], key[1], update, self.now)
        if key in self.closed or self.terminal_accepted(key):
            assert kinds(actions) == [Refused]
            return
        self.accepted.setdefault(key, []).append(update.uuid)
        if len(self.pending(key)) == 1 and not self.paused:
            self.start(key)
            assert actions == [Forward(update), *self.expected_schedule()]
        else:
            assert actions == []
        self.record(actions)

    @precondition(lambda self: any(self.accepted.values()))
    @rule(data=st.data())
    def duplicate_update(self, data) -> None:
        key = data.draw(st.sampled_from(sorted(k for k, v in self.accepted.items() if v)))
        uuid = data.draw(st.sampled_from(self.accepted[key]))
        assert kinds(self.manager.update(key[0], key[1], self.updates[uuid], self.now)) == [Ignored]

    def ackable(self) -> list[tuple[str, str]]:
        """Streams whose head the framework has received (at least once)."""
        return [
            k for k in KEYS if self.pending(k) and self.pending(k)[0] in self.forwarded.get(k, ())
        ]

    @precondition(lambda self: self.ackable())
    @rule(data=st.data())
    def ack_head(self, data) -> None:
        self.ack(data.draw(st.sampled_from(self.ackable())))

    def ack(self, key) -> None:
        head = self.pending(key)[0]
        actions = self.manager.acknowledge(key[0], key[1], head, self.now)
        self.acked[key] = self.acked.get(key, 0) + 1
        self.stop(key)
        if self.updates[head].terminal:
            self.closed.add(key)
            assert actions == [StreamClosed(*key)]
        elif self.pending(key) and not self.paused:
            self.start(key)
            assert actions == [
                Forward(self.updates[self.pending(key)[0]]),
                *self.expected_schedule(),
            ]
        else:
            assert actions == []
        self.record(actions)

    @rule(key=st.sampled_from(KEYS), data=st.data())
    def stray_ack(self, key, data) -> None:
        """An ack that is not for the head: refused (unknown, out of order) or ignored (repeat)."""
        acked = self.accepted.get(key, [])[: self.acked.get(key, 0)]
        later = self.pending(key)[1:]
        uuid = data.draw(st.sampled_from([b"stray", *acked, *later]))
        actions = self.manager.acknowledge(key[0], key[1], uuid, self.now)
        assert kinds(actions) == [Ignored if uuid in acked else Refused]

    @rule(dt=st.sampled_from([0.0, 1.0, 5.0, 10.0, 15.0, 40.0, 100.0]))
    def tick(self, dt) -> None:
        self.now += dt
        actions = self.manager.tick(self.now)
        due = [] if self.paused else [k for k, at in self.retry.items() if at <= self.now]
        for key in due:
            self.wait[key] = min(self.wait[key] * 2, MAX)
            self.retry[key] = self.now + self.wait[key]
        forwards = [a for a in actions if isinstance(a, Forward)]
        assert sorted(a.update.uuid for a in forwards) == sorted(self.pending(k)[0] for k in due)
        expected_tail = [] if self.paused else self.expected_schedule()
        assert actions[len(forwards) :] == expected_tail
        self.record(actions)

    @rule()
    def pause(self) -> None:
        self.manager.pause()
        self.paused = True
        for key in list(self.retry):
            self.stop(key)

    @rule()
    def resume(self) -> None:
        actions = self.manager.resume(self.now)
        self.paused = False
        heads = [k for k in self.accepted if self.pending(k)]
        for key in heads:
            self.start(key)
        forwards = [a for a in actions if isinstance(a, Forward)]
        assert sorted(a.update.uuid for a in forwards) == sorted(self.pending(k)[0] for k in heads)
        assert actions[len(forwards) :] == self.expected_schedule()
        self.record(actions)

    @rule()
    def restart(self) -> None:
        """The agent dies and recovers from its checkpoint: paused, nothing lost."""
        records = msgpack.unpackb(msgpack.packb(self.manager.checkpoint_records()))
        self.manager = StatusUpdateManager(MIN, MAX)
        self.manager.recover(records)
        self.pause()

    @rule(framework=st.sampled_from(FRAMEWORKS))
    def cleanup(self, framework) -> None:
        self.manager.cleanup(framework)
        for model in (self.accepted, self.acked, self.forwarded, self.retry, self.wait):
            for key in [k for k in model if k[0] == framework]:
                del model[key]
        self.closed = {k for k in self.closed if k[0] != framework}

    # invariants

    @invariant()
    def nothing_is_dropped_until_acknowledged(self) -> None:
        for key in KEYS:
            pending = [update.uuid for update in self.manager.pending(*key)]
            assert pending == self.pending(key)
            acked = self.accepted.get(key, [])[: self.acked.get(key, 0)]
            assert list(self.manager.acknowledged(*key)) == acked
            assert self.manager.closed(*key) == (key in self.closed)

    @invariant()
    def forwarded_in_received_order(self) -> None:
        for key, forwarded in self.forwarded.items():
            distinct = list(dict.fromkeys(forwarded))
            assert distinct == self.accepted[key][: len(distinct)]

    @invariant()
    def at_most_one_in_flight_and_retries_follow_the_backoff(self) -> None:
        for key in KEYS:
            assert self.manager.retry_at(*key) == self.retry.get(key)
            if key in self.retry:  # the one in flight is the head of an open, unpaused stream
                assert self.pending(key) and not self.paused and key not in self.closed
        assert self.manager.next_retry() == (min(self.retry.values()) if self.retry else None)

    def teardown(self) -> None:
        """If acks keep coming, every accepted update is eventually forwarded."""
        if self.paused:
            self.resume()
        for _ in range(1000):
            keys = [k for k in KEYS if self.pending(k)]
            if not keys:
                break
            for key in keys:
                assert self.pending(key)[0] in self.forwarded[key]
                self.ack(key)
        for key, accepted in self.accepted.items():
            assert list(dict.fromkeys(self.forwarded.get(key, []))) == accepted
            assert (key in self.closed) == self.terminal_accepted(key)


TestStatusUpdateMachine = StatusUpdateMachine.TestCase
TestStatusUpdateMachine.settings = settings(
    max_examples=150,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
