"""The allocator actor: a thin shell around ``HierarchicalAllocator``.

It turns events into calls on the core, runs a cycle every ``allocation_interval`` (the next
wait starts when a cycle ends) and whenever an event asks for one (a framework added or
activated, a revive, an agent added), keeps at most one cycle queued with the candidate
agents of every trigger merged, and sends each cycle's allocations to its subscriber as one
``allocator/allocations`` message. It runs inside the master's process (events arrive by
``dispatch`` through ``AllocatorClient``) or in an OS process of its own (events arrive as
``allocator/call`` messages).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import structlog

from libprocess import UPID, Process, Timer, handler
from master.allocator import codec
from master.allocator.backlog_gate import BacklogGate, BacklogLimits
from master.allocator.events import CYCLE_AGENT, CYCLE_ALL, AllocatorEvent, event_from_wire
from master.allocator.hierarchical import HierarchicalAllocator
from master.allocator.offer import AllocatorError
from master.allocator.options import AllocatorOptions

log = structlog.get_logger("master.allocator")

ALLOCATIONS = "allocator/allocations"  # allocator -> subscriber: one cycle's allocations
CALL = "allocator/call"  # subscriber -> allocator: one event, as its to_wire() list
ERROR = "allocator/error"  # allocator -> sender: an event it refused, and why


class AllocatorProcess(Process):
    """Runs allocation cycles; sends their allocations to ``subscriber``."""

    def __init__(
        self,
        subscriber: UPID | str | None = None,
        options: AllocatorOptions | None = None,
        seed: int = 0,
        id: str = "allocator",
        backlog: Callable[[], int] | None = None,
        limits: BacklogLimits | None = None,
    ) -> None:
        """``backlog``: how many events wait in the subscriber's mailbox, for a subscriber in
        this runtime; with it, cycles wait while the subscriber is behind (``limits``;
        master/allocator/backlog_gate.py)."""
        super().__init__(id)
        self.options = options or AllocatorOptions()
        self.core = HierarchicalAllocator(self.options, seed)
        self.subscriber = UPID(subscriber) if subscriber is not None else None
        self.paused = False
        # Invariant: _queued is True exactly while one _cycle dispatch is in the mailbox or
        # held by the gate (_held: its timer); _candidates is None (all agents) or the agents
        # that triggers asked for since then.
        self._backlog = backlog
        self._gate = BacklogGate(limits or BacklogLimits()) if backlog is not None else None
        self._held: Timer | None = None
        self._queued = False
        self._candidates: set[str] | None = set()
        self._queued_at = 0.0
        self._tick: Timer | None = None
        self._tick_waiting = False  # the periodic trigger waits for the cycle it queued

    # -- lifecycle ----------------------------------------------------------------------

    def initialize(self) -> None:
        metrics = self.runtime.metrics
        self._runs = metrics.counter("allocator/mesos/allocation_runs")
        self._run_time = metrics.timer("allocator/mesos/allocation_run")
        self._run_latency = metrics.timer("allocator/mesos/allocation_run_latency")
        self._made = metrics.counter("allocator/mesos/allocations_made")
        self._filtered = metrics.counter("allocator/mesos/offers_filtered")
        # Cycles the gate held while the subscriber was behind, and for how long each.
        self._runs_held = metrics.counter("allocator/mesos/allocation_runs_held")
        self._hold_time = metrics.timer("allocator/mesos/allocation_hold")
        self._metrics = [
            self._runs,
            self._run_time,
            self._run_latency,
            self._made,
            self._filtered,
            self._runs_held,
            self._hold_time,
            metrics.gauge("allocator/mesos/offer_filters/active", self.core.filter_count),
            metrics.gauge("allocator/mesos/event_queue_dispatches", lambda: len(self.mailbox)),
        ]
        self._role_gauges: set[str] = set()
        self._schedule_tick()

    def finalize(self) -> None:
        for timer in (self._tick, self._held):
            if timer is not None:
                timer.cancel()
        metrics = self.runtime.metrics
        for metric in self._metrics:
            metrics.remove(metric.name)
        for role in self._role_gauges:
            metrics.remove(f"allocator/mesos/roles/{role}/shares/dominant")

    # -- events ---------------------------------------------------------------------------

    def subscribe(self, subscriber: UPID | str) -> None:
        self.subscriber = UPID(subscriber)

    def pause(self) -> None:
        """Stop allocating (events are still taken in) until ``resume``."""
        self.paused = True

    def resume(self) -> None:
        self.paused = False

    def event(self, event: AllocatorEvent) -> None:
        """Apply one event to the core and queue the cycle it asks for, if any; an event the
        core refuses raises ``AllocatorError`` and changes nothing."""
        if not isinstance(event, AllocatorEvent):
            raise AllocatorError(f"not an allocator event: {event!r}")
        event.apply(self.core, self.runtime.clock.now())
        if event.CYCLE == CYCLE_ALL:
            self.trigger()
        elif event.CYCLE == CYCLE_AGENT:
            self.trigger([event.agent_id])  # type: ignore[attr-defined]

    def take(self, event: AllocatorEvent, sender: UPID | None) -> None:
        """``event`` from ``sender`` (an ``AllocatorClient``): a refusal is answered with
        ``allocator/error`` — a refused event means the sender's view and the allocator's
        differ, which the sender must hear about, not a log line here."""
        try:
            self.event(event)
        except AllocatorError as error:
            log.error(
                "allocator_event_refused", sender=sender, refused=repr(event), error=str(error)
            )
            if sender is not None:
                self.send(sender, ERROR, {"event": repr(event)[:300], "error": str(error)})

    @handler(CALL)
    def _call(self, sender: UPID | None, body: Any) -> None:
        try:
            event = event_from_wire(body)
        except AllocatorError as error:
            log.error("allocator_event_refused", sender=sender, error=str(error))
            if sender is not None:
                self.send(sender, ERROR, {"event": str(body)[:300], "error": str(error)})
            return
        self.take(event, sender)

    # -- cycles ---------------------------------------------------------------------------

    def trigger(self, agents: Iterable[str] | None = None) -> None:
        """Ask for a cycle over ``agents`` (None: all); merged into the one queued."""
        if agents is None:
            self._candidates = None
        elif self._candidates is not None:
            self._candidates.update(agents)
        if not self._queued:
            self._queued = True
            self._queued_at = time.perf_counter()
            self.runtime.dispatch(self, AllocatorProcess._cycle)

    def _cycle(self) -> None:
        self._held = None
        gate = self._gate
        if gate is not None and not self.paused:
            assert self._backlog is not None, "a gate is made only with a backlog"
            now = self.runtime.clock.now()
            held_since = gate.held_since
            wait = gate.wait(self._backlog(), now)
            if wait:
                if held_since is None:
                    self._runs_held.inc()
                self._held = self.delay(wait, AllocatorProcess._cycle)
                return
            if held_since is not None:
                self._hold_time.record(now - held_since)
        self._queued = False
        candidates, self._candidates = self._candidates, set()
        if not self.paused:
            self._run_latency.record(time.perf_counter() - self._queued_at)
            started = time.perf_counter()
            filtered_before = self.core.stats_filtered
            allocations = self.core.allocate(self.runtime.clock.now(), candidates)
            self._run_time.record(time.perf_counter() - started)
            self._runs.inc()
            self._made.inc(len(allocations))
            self._filtered.inc(self.core.stats_filtered - filtered_before)
            self._sync_role_gauges()
            if allocations and self.subscriber is not None:
                local = self.subscriber.address == self.runtime.address
                body = allocations if local else codec.encode_allocations(allocations)
                self.send(self.subscriber, ALLOCATIONS, body)
        if self._tick_waiting:
            self._tick_waiting = False
            self._schedule_tick()

    def _schedule_tick(self) -> None:
        self._tick = self.delay(self.options.allocation_interval, AllocatorProcess._on_tick)

    def _on_tick(self) -> None:
        self._tick_waiting = True
        self.trigger()

    def _sync_role_gauges(self) -> None:
        metrics = self.runtime.metrics
        roles = set(self.core.roles())
        for role in roles - self._role_gauges:
            metrics.gauge(
                f"allocator/mesos/roles/{role}/shares/dominant",
                lambda role=role: self.core.role_share(role),
            )
        for role in self._role_gauges - roles:
            metrics.remove(f"allocator/mesos/roles/{role}/shares/dominant")
        self._role_gauges = roles


class AllocatorClient:
    """How a master (itself a process) talks to its allocator, wherever that runs."""

    def __init__(self, owner: Process, allocator: UPID | str) -> None:
        self._owner = owner
        self.pid = UPID(allocator)

    @property
    def local(self) -> bool:
        return self.pid.address == self._owner.runtime.address

    def post(self, event: AllocatorEvent) -> None:
        """Send one event, ordered after every earlier one from the owner. Fire and forget:
        a refused event is answered to the owner with an ``allocator/error`` message."""
        if self.local:
            self._owner.runtime.dispatch(self.pid, AllocatorProcess.take, event, self._owner.pid)
        else:
            self._owner.send(self.pid, CALL, event.to_wire())
