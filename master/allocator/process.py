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
from collections.abc import Iterable
from typing import Any

import structlog

from libprocess import UPID, Process, Timer, handler
from master.allocator import codec
from master.allocator.hierarchical import HierarchicalAllocator
from master.allocator.offer import AllocatorError
from master.allocator.options import AllocatorOptions

log = structlog.get_logger("master.allocator")

ALLOCATIONS = "allocator/allocations"  # allocator -> subscriber: one cycle's allocations
CALL = "allocator/call"  # subscriber -> allocator: [method, args, kwargs], encoded

# Events that ask for a cycle: over all agents, or over the agent named by the first argument.
_CYCLE_ALL = frozenset({"add_framework", "activate_framework", "revive", "update_framework"})
_CYCLE_AGENT = frozenset({"add_agent", "update_agent", "activate_agent"})
_EVENTS = frozenset(
    {
        "add_agent",
        "remove_agent",
        "update_agent",
        "activate_agent",
        "deactivate_agent",
        "clear_agent_filters",
        "add_framework",
        "remove_framework",
        "activate_framework",
        "deactivate_framework",
        "update_framework",
        "suppress",
        "revive",
        "set_weight",
        "set_quota",
        "recover_resources",
    }
)


class AllocatorProcess(Process):
    """Runs allocation cycles; sends their allocations to ``subscriber``."""

    def __init__(
        self,
        subscriber: UPID | str | None = None,
        options: AllocatorOptions | None = None,
        seed: int = 0,
        id: str = "allocator",
    ) -> None:
        super().__init__(id)
        self.options = options or AllocatorOptions()
        self.core = HierarchicalAllocator(self.options, seed)
        self.subscriber = UPID(subscriber) if subscriber is not None else None
        self.paused = False
        # Invariant: _queued is True exactly while one _cycle dispatch is in the mailbox;
        # _candidates is None (all agents) or the agents that triggers asked for since then.
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
        self._metrics = [
            self._runs,
            self._run_time,
            self._run_latency,
            self._made,
            self._filtered,
            metrics.gauge("allocator/mesos/offer_filters/active", self.core.filter_count),
            metrics.gauge("allocator/mesos/event_queue_dispatches", lambda: len(self.mailbox)),
        ]
        self._role_gauges: set[str] = set()
        self._schedule_tick()

    def finalize(self) -> None:
        if self._tick is not None:
            self._tick.cancel()
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

    def event(self, method: str, *args: Any, **kwargs: Any) -> None:
        """Apply one event to the core and queue the cycle it asks for, if any."""
        if method not in _EVENTS:
            raise AllocatorError(f"the allocator has no event {method!r}")
        if method == "recover_resources":
            kwargs["now"] = self.runtime.clock.now()  # filters expire by this actor's clock
        getattr(self.core, method)(*args, **kwargs)
        if method in _CYCLE_ALL:
            self.trigger()
        elif method in _CYCLE_AGENT:
            self.trigger([args[0]] if args else [kwargs["agent_id"]])

    @handler(CALL)
    def _call(self, sender: UPID | None, body: Any) -> None:
        try:
            method, args, kwargs = body
            self.event(method, *codec.decode(args), **codec.decode(kwargs))
        except (AllocatorError, ValueError, TypeError, KeyError) as error:
            log.warning("allocator_call_refused", sender=sender, error=str(error))
            if sender is not None:
                self.send(sender, "allocator/error", {"call": str(body)[:200], "error": str(error)})

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

    def call(self, method: str, *args: Any, **kwargs: Any) -> None:
        """Send one event (a core method's name and arguments), ordered after every earlier
        one from the owner. Fire and forget: a refused event is logged (and, across
        processes, answered with ``allocator/error``)."""
        if self.local:
            runtime = self._owner.runtime
            future = runtime.dispatch(self.pid, AllocatorProcess.event, method, *args, **kwargs)
            future.on_failed(
                lambda error: log.warning("allocator_call_refused", call=method, error=str(error))
            )
        else:
            body = [method, codec.encode(list(args)), codec.encode(kwargs)]
            self._owner.send(self.pid, CALL, body)
