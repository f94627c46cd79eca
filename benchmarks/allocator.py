"""Allocator benchmarks: Mesos's allocator workloads, on HierarchicalAllocator and the reference.

Run from the repository root::

    .venv/bin/python benchmarks/allocator.py [--quick] [--agents N] [--frameworks N]
        [--rounds R] [--repeats R] [--only cycle,decline_offers,suppress_offers,
        large_and_small_quota,memory] [--reference-agents N] [--quota-roles SMALL,LARGE]
        [--profile N] [--gc-freeze]

Every workload builds its cluster through the allocator's public events (frameworks first,
then agents), then times ``allocate(now)`` calls only: setting up, declining and suppressing
are not timed. Agents are ``cpus:24;mem:4096;disk:4096;ports:[31000-32000]`` unless said
otherwise; frameworks are named ``framework-0000``..., agents ``agent-00000``....

cycle
    One full allocation cycle over ``--agents`` (default 20,000) fresh agents and
    ``--frameworks`` (default 2,000) frameworks in role ``*``, no filters: every agent goes
    whole to one framework. Also run at half the size (10,000 / 1,000 by default). A fresh
    allocator per repeat, seeded with the repeat's number; ``median_s`` is the median of the
    repeats. Mesos's published figures for this workload (from its 1.7.0 performance post):
    20k/2k ~3.75 s and 10k/1k ~1.07 s per cycle in 1.8.0.
decline_offers
    Mesos's ``HierarchicalAllocator_BENCHMARK_Test.DeclineOffers``: every agent starts with
    ``cpus:16;mem:2014;disk:1024`` and 16 port ranges (Mesos's ``fragment``: ports 31000,
    31002, ..., 31028 and 31030-32000) used by one framework, round-robin over the
    frameworks, all in role ``*``. A first, untimed cycle stands for the allocations Mesos
    makes as the agents are added. Then ``--rounds`` rounds: every allocation of the
    previous cycle is declined with an effectively infinite filter (``refuse_seconds`` =
    INT_MAX, capped at 365 days), then one cycle is timed. Filters accumulate (one more per
    agent each round; ``filters`` in ``rounds``), and a framework is passed over on the
    agents it declined. ``rounds`` lists every round; ``median_s`` and ``max_s`` are over
    rounds (the goal judges ``max_s``); ``recover_median_s`` is the untimed cost of
    declining one round's offers (``recover_resources`` per offer), which a master pays too.
    Mesos runs 2 x frameworks rounds; ``--rounds`` defaults to 10. Mesos: 10k agents /
    3,000 frameworks ~2.47 s a round.
suppress_offers
    Mesos's ``SuppressOffers``: the same cluster as decline_offers; before each of 5 cycles
    the previous offers are recovered without a filter and F/5 more frameworks suppress
    offers; each cycle is timed (``steps``; the last one has every framework suppressed).
large_and_small_quota
    Mesos's ``LargeAndSmallQuota`` (``hierarchical_allocator_benchmarks.cpp``): 2,500 roles
    with quota ``cpus:1;mem:1024;disk:1024`` and 500 with ``cpus:4;mem:4096;disk:4096``
    (guarantees = limits), one framework per role, 2,500/5 + 500*5 = 3,000 agents
    ``cpus:2;mem:2048;disk:2048``. ``median_s`` is the first cycle (which hands out the
    whole cluster to satisfy quota, cutting agents), ``empty_cycle_median_s`` the cycle
    after it (which finds nothing to give). Mesos: first cycle 15.4 s, the empty one ~13 s.
memory
    In a child process: the decline_offers cluster at ``--agents`` / ``--frameworks`` (each
    agent's resources parsed separately, as a master would hold them), one full cycle, one
    round of declines with filters and one more cycle. ``peak_rss_mb`` is that process's
    peak resident set size (Linux's ``VmHWM``), interpreter included (``baseline_rss_mb``).

The reference. ``ReferenceAllocator`` re-sorts roles and frameworks from scratch for every
agent, computing every allocation by scanning every agent: one agent costs about
O(agents x frameworks), a cycle O(agents^2 x frameworks) -- about a second per agent at
20k/2k, hours for a full cycle. So it is timed on a sample: the same workload script (same
events, same seed) is run twice, on a fresh fast allocator and on a fresh reference one,
with every cycle restricted to the same ``--reference-agents`` sampled agents
(``allocate(now, candidates=sample)``). ``reference_sampled_agents`` says how many;
``fast_sampled_median_s`` / ``reference_median_s`` are the two allocators' medians on that
sampled work, ``speedup`` = reference time / fast time summed over the same sampled cycles,
and ``reference_agrees`` whether both made exactly the same allocations (they should: a
differential test holds them together). ``speedup_per_agent`` (cycle only) compares the
reference's time per sampled agent with the fast allocator's full cycle per agent. Without
``--quick``, when the sample shows a full reference run would fit in a bounded time (twice
the estimate, ``reference_full_estimate_s``, within 60 s), the reference also runs the whole
workload and ``speedup`` compares whole runs (``reference_sampled_agents`` is then null,
``sampled_speedup`` keeps the sampled ratio). For large_and_small_quota the reference costs
about a minute per agent at 3,000 roles, so the sampled pair runs Mesos's smaller
parameterization (250 + 50 roles, 300 agents), stated in ``reference_scale``.

Timing and noise. Wall time (``time.perf_counter``) is what the goals judge; ``cpu_s``
(``time.process_time``) is shown beside it, since the machine is shared: a wall time well
above its CPU time means the process waited for a core. The collector is left as a master
would have it (on); ``gc_s`` is the time it took inside the timed cycles (measured with
``gc.callbacks``). An allocator that holds the collector off during a cycle leaves it a
debt, paid by the first allocation after the cycle, on the same thread: ``gc_after_s``
measures it (it is not in ``median_s``). Setup runs with the collector paused and ends
with a full ``gc.collect()``, so that its garbage is not charged to the first cycle.
``--gc-freeze`` (an experiment) also calls ``gc.freeze()`` after setup, as a master could
after recovery. ``--profile N`` runs the fast allocator's timed cycles under cProfile and
prints the top N functions (by own time) per workload to stderr; the timings are then
inflated, and ``profiled`` says so.

``--quick`` (< 40 s) keeps the sizes where they are cheap -- cycle at 20,000 / 2,000 and
10,000 / 1,000, large_and_small_quota at full size, memory at 20,000 / 2,000 -- so that
those goals are judged; it runs decline_offers and suppress_offers at 2,000 agents / 200
frameworks (the original parameters of Mesos's DeclineOffers) with 2 rounds, 2 repeats,
and the reference on 1 sampled agent (one round for decline_offers). Without --quick the
reference samples 2 agents (2 rounds for decline_offers). ``--agents`` / ``--frameworks``
set every workload's size, quick or not.

Progress goes to stderr, one line per step. The last line on stdout is one JSON object:
``results`` (one object per workload and size: ``workload``, ``agents``, ``frameworks``,
``median_s``, the reference figures, and the workload's details), ``peak_rss_mb``,
``goals`` with ``goal_figures`` (the measured figure each goal judges; null when that
workload did not run at the goal's size, e.g. with smaller ``--agents``) and ``goals_met``
(true/false/null), ``quick``, ``config``, ``machine`` (CPU count, load averages), ``git``
(the commit and whether the allocator's files were modified when it ran) and ``errors``.
The exit status is 1 if a workload failed (its error is in ``errors``).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import gc
import io
import json
import os
import pstats
import random
import resource
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from corral import quantities as q
from corral.resources import Resources
from master.allocator.hierarchical import HierarchicalAllocator
from master.allocator.options import AllocatorOptions
from master.allocator.quota import Quota
from master.allocator.reference import ReferenceAllocator

REPO = Path(__file__).resolve().parent.parent

AGENT_TOTAL = "cpus:24;mem:4096;disk:4096;ports:[31000-32000]"
AGENT_USED = "cpus:16;mem:2014;disk:1024"  # plus 16 port ranges: used_resources()
QUOTA_AGENT = "cpus:2;mem:2048;disk:2048"
SMALL_QUOTA = "cpus:1;mem:1024;disk:1024"
LARGE_QUOTA = "cpus:4;mem:4096;disk:4096"
INT_MAX = 2**31 - 1  # Mesos's DeclineOffers refuses for INT_MAX seconds
SUPPRESS_STEPS = 5  # Mesos's SuppressOffers: 5 cycles, F/5 more suppressed before each
REFERENCE_BUDGET_S = 60.0  # run the full reference workload when estimated within this
REFERENCE_QUOTA_ROLES = 300  # the reference's quota workload is scaled down to this
AGENT_PROGRESS = 5000  # a progress line every this many agents added (large clusters)

GOALS: dict[str, dict[str, Any]] = {
    "cycle_20000x2000_median_s": {"max": 0.25},
    "cycle_10000x1000_median_s": {"max": 0.08},
    "decline_offers_20000x2000_max_round_s": {"max": 0.5},
    "large_and_small_quota_2500+500_first_cycle_s": {"max": 1.5},
    "large_and_small_quota_2500+500_empty_cycle_s": {"max": 0.2},
    "speedup_vs_reference_cycle_20000x2000": {"min": 10.0},
    "peak_rss_mb_20000x2000": {"below": 500.0},
}

WORKLOADS = ("cycle", "decline_offers", "suppress_offers", "large_and_small_quota", "memory")

Allocator = HierarchicalAllocator | ReferenceAllocator


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- timing --------------------------------------------------------------------------------


class _GCClock:
    """Seconds the garbage collector has spent, summed (via ``gc.callbacks``)."""

    def __init__(self) -> None:
        self.total = 0.0
        self._start = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.total += time.perf_counter() - self._start


GC_CLOCK = _GCClock()


@dataclass(frozen=True)
class Timing:
    wall: float
    cpu: float
    gc: float  # collector time inside the cycle
    gc_after: float  # collector time the cycle left to the first allocation after it


@contextlib.contextmanager
def quiet(freeze: bool = False) -> Iterator[None]:
    """Untimed setup: the collector paused, then a full collection so that the garbage of
    setting up is not charged to the first timed cycle (and, with ``freeze``, gc.freeze())."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.collect()
        if freeze:
            gc.freeze()
        if enabled:
            gc.enable()


def unfreeze() -> None:
    gc.unfreeze()
    gc.collect()


class Run:
    """One allocator going through a workload's script: times its cycles, keeps what they
    allocated (when asked, to compare the two allocators) and optionally profiles them."""

    def __init__(
        self,
        allocator: Allocator,
        candidates: list[str] | None = None,
        record: bool = False,
        profiler: cProfile.Profile | None = None,
    ) -> None:
        self.allocator = allocator
        self.candidates = candidates
        self.record = record
        self.profiler = profiler
        self.timings: list[Timing] = []
        self.offers: list[int] = []  # allocations made by each timed cycle
        self.allocations: list[frozenset] = []  # every cycle's, timed or not (if record)

    def cycle(self, now: float) -> list:
        """One timed cycle."""
        allocate = self.allocator.allocate
        candidates = self.candidates
        gc_before = GC_CLOCK.total
        cpu = time.process_time()
        if self.profiler is not None:
            self.profiler.enable()
        start = time.perf_counter()
        allocations = allocate(now, candidates)
        wall = time.perf_counter() - start
        if self.profiler is not None:
            self.profiler.disable()
        cpu = time.process_time() - cpu
        gc_inside = GC_CLOCK.total - gc_before
        timing = Timing(wall, cpu, gc_inside, settle_gc())
        self.timings.append(timing)
        self.offers.append(len(allocations))
        self._keep(allocations)
        return allocations

    def untimed_cycle(self, now: float) -> list:
        allocations = self.allocator.allocate(now, self.candidates)
        self._keep(allocations)
        return allocations

    def _keep(self, allocations: list) -> None:
        if self.record:
            self.allocations.append(
                frozenset((a.framework_id, a.role, a.agent_id, a.resources) for a in allocations)
            )

    @property
    def walls(self) -> list[float]:
        return [timing.wall for timing in self.timings]


def settle_gc() -> float:
    """Collector seconds due now. A cycle that holds the collector off (as the fast
    allocator does) leaves it a debt, paid by the first allocation of a tracked object after
    the cycle, in whatever code runs next; call this first thing after a cycle."""
    before = GC_CLOCK.total
    trigger = set()  # a tracked allocation with no free list: the collector runs if due
    del trigger
    return GC_CLOCK.total - before


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def rounded(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def summary(timings: list[Timing]) -> dict[str, Any]:
    """Median, spread and every run of a list of timed cycles."""
    walls = [t.wall for t in timings]
    return {
        "median_s": rounded(median(walls)),
        "min_s": rounded(min(walls)),
        "max_s": rounded(max(walls)),
        "median_cpu_s": rounded(median([t.cpu for t in timings])),
        "median_gc_s": rounded(median([t.gc for t in timings])),
        "median_gc_after_s": rounded(median([t.gc_after for t in timings])),
        "runs_s": [rounded(w) for w in walls],
    }


# -- building clusters ---------------------------------------------------------------------


def agent_id(index: int) -> str:
    return f"agent-{index:05d}"


def framework_id(index: int) -> str:
    return f"framework-{index:04d}"


def fragment(begin: int, end: int, count: int) -> list[tuple[int, int]]:
    """Mesos's test helper: ``count`` ranges, single values two apart from ``begin``, the
    last one stretched to ``end`` ([1-10], 3 -> [1-1, 3-3, 5-10])."""
    ranges = [(begin + 2 * i, begin + 2 * i) for i in range(count)]
    ranges[-1] = (ranges[-1][0], end)
    return ranges


def used_resources() -> Resources:
    """What one framework uses on each DeclineOffers agent, allocated to role ``*``."""
    ports = ", ".join(f"{b}-{e}" for b, e in fragment(31000, 32000, 16))
    return Resources.parse(f"{AGENT_USED};ports:[{ports}]").allocated_to("*")


def add_frameworks(allocator: Allocator, count: int) -> None:
    for index in range(count):
        allocator.add_framework(framework_id(index), ["*"])


def add_agents(
    allocator: Allocator,
    count: int,
    frameworks: int,
    used: Resources | None,
    label: str,
    verbose: bool,
) -> None:
    """``count`` agents, each with its own parsed resources; with ``used``, agent i runs
    that on framework i mod ``frameworks`` (round-robin, as Mesos's benchmarks)."""
    start = time.perf_counter()
    report = verbose and count >= 2 * AGENT_PROGRESS
    parse = Resources.parse
    for index in range(count):
        if used is None:
            allocator.add_agent(agent_id(index), parse(AGENT_TOTAL))
        else:
            allocator.add_agent(
                agent_id(index), parse(AGENT_TOTAL), {framework_id(index % frameworks): used}
            )
        if report and (index + 1) % AGENT_PROGRESS == 0 and index + 1 < count:
            elapsed = time.perf_counter() - start
            progress(f"  {label}: added {index + 1:,}/{count:,} agents ({elapsed:.1f} s)")


def options() -> AllocatorOptions:
    return AllocatorOptions()


# -- the workloads' scripts ----------------------------------------------------------------
#
# A script builds a cluster on a fresh allocator (untimed) and drives it through the
# workload, timing each cycle through a Run. The same script serves the fast allocator on
# the whole cluster, and both allocators on a sample of agents.


@dataclass(frozen=True)
class Size:
    agents: int
    frameworks: int


@dataclass(frozen=True)
class QuotaSize:
    small: int  # roles with the small quota
    large: int  # roles with the large quota

    @property
    def agents(self) -> int:
        return self.small // 5 + self.large * 5

    @property
    def roles(self) -> int:
        return self.small + self.large


def build_cycle(cls: type, size: Size, seed: int, verbose: bool, freeze: bool) -> Allocator:
    with quiet(freeze):
        allocator = cls(options(), seed=seed)
        add_frameworks(allocator, size.frameworks)
        add_agents(allocator, size.agents, size.frameworks, None, "setup", verbose)
    return allocator


def script_cycle(run: Run, size: Size, steps: int) -> dict[str, Any]:
    run.cycle(0.0)
    return {}


def build_offered(cls: type, size: Size, seed: int, verbose: bool, freeze: bool) -> Allocator:
    """The DeclineOffers / SuppressOffers cluster: every agent partly used by one framework."""
    with quiet(freeze):
        allocator = cls(options(), seed=seed)
        add_frameworks(allocator, size.frameworks)
        add_agents(allocator, size.agents, size.frameworks, used_resources(), "setup", verbose)
    return allocator


def script_decline(run: Run, size: Size, rounds: int, verbose: bool = False) -> dict[str, Any]:
    allocator = run.allocator
    offers = run.untimed_cycle(0.0)  # Mesos allocates as the agents are added
    recover: list[float] = []
    per_round: list[dict[str, Any]] = []
    for index in range(rounds):
        now = float(index + 1)
        declined = len(offers)
        start = time.perf_counter()
        for offer in offers:
            allocator.recover_resources(
                offer.framework_id,
                offer.agent_id,
                offer.resources,
                refuse_seconds=INT_MAX,
                now=now,
            )
        recover.append(time.perf_counter() - start)
        offers = run.cycle(now)
        timing = run.timings[-1]
        per_round.append(
            {
                "round": index,
                "seconds": rounded(timing.wall),
                "cpu_s": rounded(timing.cpu),
                "gc_s": rounded(timing.gc),
                "gc_after_s": rounded(timing.gc_after),
                "declined_before": declined,
                "offers": len(offers),
                "filters": filter_count(allocator),
            }
        )
        if verbose:
            progress(
                f"  round {index + 1}/{rounds}: {timing.wall:.3f} s (cpu {timing.cpu:.3f}, "
                f"gc {timing.gc:.3f} + {timing.gc_after:.3f} after) -> {len(offers):,} offers; "
                f"declining took {recover[-1]:.2f} s"
            )
    return {"rounds": per_round, "recover_median_s": rounded(median(recover))}


def filter_count(allocator: Allocator) -> int | None:
    count = getattr(allocator, "filter_count", None)
    return count() if count is not None else None


def script_suppress(run: Run, size: Size, steps: int, verbose: bool = False) -> dict[str, Any]:
    allocator = run.allocator
    offers = run.untimed_cycle(0.0)
    per_step = max(1, size.frameworks // SUPPRESS_STEPS)
    suppressed = 0
    recover: list[float] = []
    per_cycle: list[dict[str, Any]] = []
    for index in range(SUPPRESS_STEPS):
        now = float(index + 1)
        start = time.perf_counter()
        for offer in offers:  # recovered without a filter: suppression alone is measured
            allocator.recover_resources(offer.framework_id, offer.agent_id, offer.resources)
        recover.append(time.perf_counter() - start)
        for _ in range(per_step):
            if suppressed < size.frameworks:
                allocator.suppress(framework_id(suppressed))
                suppressed += 1
        offers = run.cycle(now)
        timing = run.timings[-1]
        per_cycle.append(
            {
                "suppressed": suppressed,
                "seconds": rounded(timing.wall),
                "cpu_s": rounded(timing.cpu),
                "gc_s": rounded(timing.gc),
                "gc_after_s": rounded(timing.gc_after),
                "offers": len(offers),
            }
        )
        if verbose:
            progress(
                f"  {suppressed:,} suppressed: {timing.wall:.3f} s (cpu {timing.cpu:.3f}, "
                f"gc {timing.gc:.3f} + {timing.gc_after:.3f} after) -> {len(offers):,} offers"
            )
    return {"steps": per_cycle, "recover_median_s": rounded(median(recover))}


def small_role(index: int) -> str:
    return f"smallQuotaRole{index}"


def large_role(index: int) -> str:
    return f"largeQuotaRole{index}"


def build_quota(cls: type, size: QuotaSize, seed: int, verbose: bool, freeze: bool) -> Allocator:
    small = q.parse_quantities(SMALL_QUOTA)
    large = q.parse_quantities(LARGE_QUOTA)
    with quiet(freeze):
        allocator = cls(options(), seed=seed)
        roles = [small_role(i) for i in range(size.small)]
        roles += [large_role(i) for i in range(size.large)]
        for index, role in enumerate(roles):
            allocator.add_framework(framework_id(index), [role])
        for index in range(size.agents):
            allocator.add_agent(agent_id(index), Resources.parse(QUOTA_AGENT))
        for index in range(size.small):
            allocator.set_quota(small_role(index), Quota(dict(small), dict(small)))
        for index in range(size.large):
            allocator.set_quota(large_role(index), Quota(dict(large), dict(large)))
    return allocator


def script_quota(run: Run, size: QuotaSize, steps: int) -> dict[str, Any]:
    run.cycle(0.0)  # hands out the cluster to satisfy the quotas
    run.cycle(1.0)  # nothing left: the "empty" cycle
    return {}


# -- the reference, on a sample ------------------------------------------------------------


@dataclass
class Pair:
    """The same script on both allocators, cycles restricted to the same sampled agents."""

    sampled: int
    fast: list[Timing] = field(default_factory=list)
    reference: list[Timing] = field(default_factory=list)
    agrees: bool = True

    @property
    def speedup(self) -> float | None:
        fast = sum(t.wall for t in self.fast)
        ref = sum(t.wall for t in self.reference)
        return ref / fast if fast > 0 else None

    def figures(self) -> dict[str, Any]:
        return {
            "reference_sampled_agents": self.sampled,
            "reference_median_s": rounded(median([t.wall for t in self.reference])),
            "fast_sampled_median_s": rounded(median([t.wall for t in self.fast]), 6),
            "reference_runs_s": [rounded(t.wall) for t in self.reference],
            "speedup": rounded(self.speedup, 1),
            "reference_agrees": self.agrees,
        }


def sample_agents(agents: int, count: int, seed: int) -> list[str]:
    chosen = random.Random(1000 + seed).sample(range(agents), min(count, agents))
    return [agent_id(index) for index in sorted(chosen)]


def run_pair(
    build: Callable[..., Allocator],
    script: Callable[..., dict[str, Any]],
    size: Any,
    steps: int,
    sample: list[str],
    seed: int,
) -> Pair:
    pair = Pair(len(sample))
    runs = []
    for cls in (HierarchicalAllocator, ReferenceAllocator):
        allocator = build(cls, size, seed, False, False)
        run = Run(allocator, candidates=sample, record=True)
        script(run, size, steps)
        runs.append(run)
        del allocator
    fast, ref = runs
    pair.fast, pair.reference = fast.timings, ref.timings
    pair.agrees = fast.allocations == ref.allocations
    return pair


def run_full_reference(
    build: Callable[..., Allocator],
    script: Callable[..., dict[str, Any]],
    size: Any,
    steps: int,
    seed: int,
) -> list[Timing]:
    run = Run(build(ReferenceAllocator, size, seed, False, False))
    script(run, size, steps)
    return run.timings


def compare_with_reference(
    name: str,
    build: Callable[..., Allocator],
    script: Callable[..., dict[str, Any]],
    size: Any,
    agents: int,
    steps: int,
    settings: Settings,
    fast_script_s: float | None,
    pair_steps: int | None = None,
) -> dict[str, Any]:
    """The reference on a sample; on the whole workload too when that is cheap enough.

    ``fast_script_s``: the fast allocator's time for one whole run of the script (None: never
    run the full reference); ``pair_steps``: fewer rounds for the sampled pair."""
    sample = sample_agents(agents, settings.reference_agents, 0)
    pair = run_pair(build, script, size, pair_steps or steps, sample, 0)
    figures = pair.figures()
    if pair_steps is not None and pair_steps != steps:
        figures["reference_rounds"] = pair_steps
    reference_total = sum(t.wall for t in pair.reference)
    estimate = reference_total / max(1, len(sample)) * agents * steps / (pair_steps or steps)
    figures["reference_full_estimate_s"] = rounded(estimate, 1)
    progress(
        f"  reference on {len(sample)} sampled agent(s): {reference_total:.3f} s vs fast "
        f"{sum(t.wall for t in pair.fast):.4f} s -> {figures['speedup']}x"
        f"{'' if pair.agrees else '  (THE ALLOCATIONS DIFFER)'}; a full reference run "
        f"would take ~{estimate:,.1f} s"
    )
    # The estimate is low (the reference slows down as allocations pile up): keep a margin.
    if not settings.quick and fast_script_s and 2 * estimate <= REFERENCE_BUDGET_S:
        ref = run_full_reference(build, script, size, steps, 0)
        ref_total = sum(t.wall for t in ref)
        figures.update(
            {
                "reference_sampled_agents": None,
                "reference_median_s": rounded(median([t.wall for t in ref])),
                "reference_runs_s": [rounded(t.wall) for t in ref],
                "speedup": rounded(ref_total / fast_script_s, 1),
                "sampled_speedup": rounded(pair.speedup, 1),
            }
        )
        progress(f"  reference, the whole {name} workload: {ref_total:.3f} s")
    return figures


# -- the workloads -------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    quick: bool
    cycle_size: Size
    offers_size: Size  # decline_offers and suppress_offers
    memory_size: Size
    quota_size: QuotaSize
    rounds: int
    repeats: int
    reference_agents: int
    profile: int
    freeze: bool

    @staticmethod
    def of(args: argparse.Namespace) -> Settings:
        full = Size(20_000, 2_000)
        agents, frameworks = args.agents, args.frameworks

        def sized(default: Size) -> Size:
            return Size(
                agents if agents is not None else default.agents,
                frameworks if frameworks is not None else default.frameworks,
            )

        small, large = args.quota_roles or (2500, 500)
        settings = Settings(
            quick=args.quick,
            cycle_size=sized(full),
            offers_size=sized(Size(2_000, 200) if args.quick else full),
            memory_size=sized(full),
            quota_size=QuotaSize(small, large),
            rounds=2 if args.quick else 10,
            repeats=2 if args.quick else 5,
            reference_agents=1 if args.quick else 2,
            profile=args.profile or 0,
            freeze=args.gc_freeze,
        )
        if args.rounds is not None:
            settings = replace(settings, rounds=args.rounds)
        if args.repeats is not None:
            settings = replace(settings, repeats=args.repeats)
        if args.reference_agents is not None:
            settings = replace(settings, reference_agents=args.reference_agents)
        return settings


def new_profiler(settings: Settings) -> cProfile.Profile | None:
    return cProfile.Profile() if settings.profile else None


def print_profile(name: str, profiler: cProfile.Profile | None, top: int) -> None:
    if profiler is None:
        return
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    progress(f"-- profile of {name} (fast allocator, timed cycles; by own time) --")
    progress(out.getvalue().rstrip())


def base(workload: str, size: Size) -> dict[str, Any]:
    return {
        "workload": workload,
        "agents": size.agents,
        "frameworks": size.frameworks,
        "load_average": round(os.getloadavg()[0], 2),
    }


def bench_cycle(settings: Settings) -> Iterator[dict[str, Any]]:
    big = settings.cycle_size
    half = Size(max(1, big.agents // 2), max(1, big.frameworks // 2))
    for size in (big, half):
        label = f"cycle {size.agents:,} agents / {size.frameworks:,} frameworks"
        result = base("cycle", size)
        profiler = new_profiler(settings)
        timings: list[Timing] = []
        offers: list[int] = []
        for repeat in range(settings.repeats):
            start = time.perf_counter()
            allocator = build_cycle(HierarchicalAllocator, size, repeat, True, settings.freeze)
            setup = time.perf_counter() - start
            run = Run(allocator, profiler=profiler)
            script_cycle(run, size, 1)
            timing = run.timings[0]
            timings.append(timing)
            offers.append(run.offers[0])
            progress(
                f"{label}: repeat {repeat + 1}/{settings.repeats}: {timing.wall:.3f} s "
                f"(cpu {timing.cpu:.3f}, gc {timing.gc:.3f} + {timing.gc_after:.3f} after) -> "
                f"{run.offers[0]:,} offers "
                f"[setup {setup:.1f} s]"
            )
            del allocator, run
            if settings.freeze:
                unfreeze()
        result.update(summary(timings))
        result["offers"] = offers[0]
        print_profile(label, profiler, settings.profile)
        progress(f"{label}: median {result['median_s']:.3f} s; the reference...")
        figures = compare_with_reference(
            "cycle", build_cycle, script_cycle, size, size.agents, 1, settings, result["median_s"]
        )
        sampled = figures.get("reference_sampled_agents")
        if sampled:
            per_agent_ref = sum(figures["reference_runs_s"]) / sampled
            per_agent_fast = result["median_s"] / max(1, size.agents)
            figures["speedup_per_agent"] = (
                round(per_agent_ref / per_agent_fast, 1) if per_agent_fast > 0 else None
            )
        result.update(figures)
        yield result


def bench_rounds(
    workload: str,
    build: Callable[..., Allocator],
    script: Callable[..., dict[str, Any]],
    steps: int,
    settings: Settings,
) -> Iterator[dict[str, Any]]:
    size = settings.offers_size
    label = f"{workload} {size.agents:,} agents / {size.frameworks:,} frameworks"
    result = base(workload, size)
    progress(f"{label}: setting up")
    start = time.perf_counter()
    allocator = build(HierarchicalAllocator, size, 0, True, settings.freeze)
    progress(f"{label}: set up in {time.perf_counter() - start:.1f} s")
    profiler = new_profiler(settings)
    run = Run(allocator, profiler=profiler)
    details = script(run, size, steps, verbose=True)
    del allocator
    if settings.freeze:
        unfreeze()
    result.update(summary(run.timings))
    result.update(details)
    print_profile(label, profiler, settings.profile)
    progress(f"{label}: median {result['median_s']:.3f} s, max {result['max_s']:.3f} s")
    # The reference costs seconds per sampled agent and cycle at 20k/2k: fewer rounds.
    pair_steps = min(steps, 1 if settings.quick else 2) if workload == "decline_offers" else None
    figures = compare_with_reference(
        workload,
        build,
        script,
        size,
        size.agents,
        steps,
        settings,
        sum(run.walls),
        pair_steps,
    )
    result.update(figures)
    yield result


def bench_decline(settings: Settings) -> Iterator[dict[str, Any]]:
    return bench_rounds("decline_offers", build_offered, script_decline, settings.rounds, settings)


def bench_suppress(settings: Settings) -> Iterator[dict[str, Any]]:
    return bench_rounds("suppress_offers", build_offered, script_suppress, SUPPRESS_STEPS, settings)


def reference_quota_size(size: QuotaSize) -> QuotaSize:
    if size.roles <= REFERENCE_QUOTA_ROLES:
        return size
    scale = REFERENCE_QUOTA_ROLES / size.roles
    return QuotaSize(max(5, round(size.small * scale)), max(1, round(size.large * scale)))


def bench_quota(settings: Settings) -> Iterator[dict[str, Any]]:
    size = settings.quota_size
    label = f"large_and_small_quota {size.small:,}+{size.large:,} roles, {size.agents:,} agents"
    result = base("large_and_small_quota", Size(size.agents, size.roles))
    result.update({"small_quota_roles": size.small, "large_quota_roles": size.large})
    profiler = new_profiler(settings)
    first: list[Timing] = []
    empty: list[Timing] = []
    offers: list[int] = []
    for repeat in range(settings.repeats):
        allocator = build_quota(HierarchicalAllocator, size, repeat, False, settings.freeze)
        run = Run(allocator, profiler=profiler)
        script_quota(run, size, 2)
        first.append(run.timings[0])
        empty.append(run.timings[1])
        offers.append(run.offers[0])
        progress(
            f"{label}: repeat {repeat + 1}/{settings.repeats}: first cycle "
            f"{run.timings[0].wall:.3f} s (gc {run.timings[0].gc:.3f}) -> {run.offers[0]:,} "
            f"offers; the empty cycle after it {run.timings[1].wall:.3f} s -> "
            f"{run.offers[1]:,} offers"
        )
        del allocator, run
        if settings.freeze:
            unfreeze()
    result.update(summary(first))
    result["offers"] = offers[0]
    empty_summary = summary(empty)
    result.update({f"empty_cycle_{key}": value for key, value in empty_summary.items()})
    print_profile(label, profiler, settings.profile)
    ref_size = reference_quota_size(size)
    if ref_size != size:
        progress(
            f"{label}: the reference at {ref_size.small}+{ref_size.large} roles, "
            f"{ref_size.agents} agents..."
        )
    figures = compare_with_reference(
        "large_and_small_quota",
        build_quota,
        script_quota,
        ref_size,
        ref_size.agents,
        2,
        settings,
        result["median_s"] + result["empty_cycle_median_s"] if ref_size == size else None,
    )
    figures["reference_scale"] = {
        "small_quota_roles": ref_size.small,
        "large_quota_roles": ref_size.large,
        "agents": ref_size.agents,
    }
    result.update(figures)
    yield result


# -- memory --------------------------------------------------------------------------------


def rss_mb() -> float:
    try:
        import psutil

        return psutil.Process().memory_info().rss / 2**20
    except ImportError:  # pragma: no cover - psutil is a dependency
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    """This process's peak RSS. Linux's VmHWM belongs to the address space, so it starts
    afresh at exec; ``ru_maxrss`` would carry over the parent's peak into a child."""
    with contextlib.suppress(OSError), open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def memory_probe(agents: int, frameworks: int) -> dict[str, Any]:
    """In a fresh process: the decline_offers cluster, a cycle, every offer declined with a
    filter, another cycle."""
    size = Size(agents, frameworks)
    baseline = rss_mb()
    allocator = build_offered(HierarchicalAllocator, size, 0, False, False)
    after_setup = rss_mb()
    offers = allocator.allocate(0.0)
    for offer in offers:
        allocator.recover_resources(
            offer.framework_id, offer.agent_id, offer.resources, refuse_seconds=INT_MAX, now=1.0
        )
    offers = allocator.allocate(1.0)
    after = rss_mb()
    return {
        "agents": agents,
        "frameworks": frameworks,
        "baseline_rss_mb": round(baseline, 1),
        "after_setup_rss_mb": round(after_setup, 1),
        "after_cycles_rss_mb": round(after, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "filters": allocator.filter_count() if hasattr(allocator, "filter_count") else None,
        "offers": len(offers),
    }


def bench_memory(settings: Settings) -> dict[str, Any]:
    size = settings.memory_size
    progress(f"memory: {size.agents:,} agents / {size.frameworks:,} frameworks, in a child...")
    done = subprocess.run(
        [
            sys.executable,
            str(Path(__file__).resolve()),
            "--memory-probe",
            f"{size.agents},{size.frameworks}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the memory probe failed: {done.stderr.strip()[-2000:]}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    progress(
        f"memory: peak RSS {figures['peak_rss_mb']:.0f} MB (interpreter and imports "
        f"{figures['baseline_rss_mb']:.0f} MB; after setup {figures['after_setup_rss_mb']:.0f}"
        f" MB; after the cycles and {figures['filters'] or 0:,} filters "
        f"{figures['after_cycles_rss_mb']:.0f} MB)"
    )
    return figures


# -- goals ---------------------------------------------------------------------------------


def goal_figures(results: list[dict[str, Any]], memory: dict[str, Any] | None) -> dict:
    figures: dict[str, float | None] = dict.fromkeys(GOALS)

    def find(workload: str, agents: int, frameworks: int) -> dict[str, Any] | None:
        for result in results:
            if (
                result["workload"] == workload
                and result["agents"] == agents
                and result["frameworks"] == frameworks
            ):
                return result
        return None

    if (found := find("cycle", 20_000, 2_000)) is not None:
        figures["cycle_20000x2000_median_s"] = found["median_s"]
        figures["speedup_vs_reference_cycle_20000x2000"] = found.get("speedup")
    if (found := find("cycle", 10_000, 1_000)) is not None:
        figures["cycle_10000x1000_median_s"] = found["median_s"]
    if (found := find("decline_offers", 20_000, 2_000)) is not None:
        figures["decline_offers_20000x2000_max_round_s"] = found["max_s"]
    if (found := find("large_and_small_quota", 3_000, 3_000)) is not None and (
        found["small_quota_roles"],
        found["large_quota_roles"],
    ) == (2500, 500):
        figures["large_and_small_quota_2500+500_first_cycle_s"] = found["median_s"]
        figures["large_and_small_quota_2500+500_empty_cycle_s"] = found["empty_cycle_median_s"]
    if memory is not None and (memory["agents"], memory["frameworks"]) == (20_000, 2_000):
        figures["peak_rss_mb_20000x2000"] = memory["peak_rss_mb"]
    return figures


def goal_met(goal: dict[str, Any], value: float | None) -> bool | None:
    if value is None:
        return None
    if "max" in goal:
        return value <= goal["max"]
    if "min" in goal:
        return value >= goal["min"]
    return value < goal["below"]


def git_state() -> dict[str, Any]:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()

    try:
        modified = git("status", "--porcelain", "--", "master/allocator", "corral").splitlines()
        return {"commit": git("rev-parse", "--short", "HEAD"), "modified": modified}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "modified": None}


# -- main ----------------------------------------------------------------------------------


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def quota_roles(text: str) -> tuple[int, int]:
    try:
        small, large = (int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected SMALL,LARGE, got {text!r}") from None
    if small < 5 or large < 1:
        raise argparse.ArgumentTypeError("at least 5 small-quota roles and 1 large-quota role")
    return small, large


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs (< 40 s)")
    parser.add_argument("--agents", type=positive, metavar="N", help="agents (default 20000)")
    parser.add_argument(
        "--frameworks", type=positive, metavar="N", help="frameworks (default 2000)"
    )
    parser.add_argument(
        "--rounds", type=positive, metavar="R", help="decline_offers rounds (default 10)"
    )
    parser.add_argument(
        "--repeats", type=positive, metavar="R", help="fresh allocators per figure (default 5)"
    )
    parser.add_argument(
        "--only",
        metavar="NAMES",
        help=f"comma-separated workloads to run, of: {', '.join(WORKLOADS)} (default: all)",
    )
    parser.add_argument(
        "--reference-agents",
        type=positive,
        metavar="N",
        help="agents sampled for the reference comparison (default 2; 1 with --quick)",
    )
    parser.add_argument(
        "--quota-roles",
        type=quota_roles,
        metavar="SMALL,LARGE",
        help="large_and_small_quota's roles (default 2500,500; Mesos also runs 250,50)",
    )
    parser.add_argument(
        "--profile", type=positive, metavar="N", help="cProfile: print the top N functions"
    )
    parser.add_argument(
        "--gc-freeze", action="store_true", help="gc.freeze() after each setup (experiment)"
    )
    parser.add_argument("--memory-probe", metavar="AGENTS,FRAMEWORKS", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.memory_probe:
        agents, frameworks = (int(part) for part in args.memory_probe.split(","))
        print(json.dumps(memory_probe(agents, frameworks)), flush=True)
        return 0

    chosen = args.only.split(",") if args.only else list(WORKLOADS)
    unknown = [name for name in chosen if name not in WORKLOADS]
    if unknown:
        parser.error(f"unknown workload {', '.join(unknown)}; choose from {', '.join(WORKLOADS)}")
    settings = Settings.of(args)

    gc.callbacks.append(GC_CLOCK)
    began = time.perf_counter()
    load_before = os.getloadavg()
    git = git_state()
    results: list[dict[str, Any]] = []
    memory: dict[str, Any] | None = None
    errors: dict[str, str] = {}
    benches: dict[str, Callable[[Settings], Iterator[dict[str, Any]]]] = {
        "cycle": bench_cycle,
        "decline_offers": bench_decline,
        "suppress_offers": bench_suppress,
        "large_and_small_quota": bench_quota,
    }
    for name in WORKLOADS:
        if name not in chosen:
            continue
        start = time.perf_counter()
        try:
            if name == "memory":
                memory = bench_memory(settings)
                memory["wall_s"] = round(time.perf_counter() - start, 1)
            else:
                for result in benches[name](settings):
                    results.append(result)
                    result["wall_s"] = round(time.perf_counter() - start, 1)
                    start = time.perf_counter()
        except Exception as error:
            traceback.print_exc(file=sys.stderr)
            errors[name] = f"{type(error).__name__}: {error}"

    figures = goal_figures(results, memory)
    goals_met = {key: goal_met(GOALS[key], value) for key, value in figures.items()}
    summary_line = {
        "results": results,
        "peak_rss_mb": memory["peak_rss_mb"] if memory else None,
        "memory": memory,
        "goals": GOALS,
        "goal_figures": figures,
        "goals_met": goals_met,
        "all_goals_met": all(met is True for met in goals_met.values()),
        "quick": settings.quick,
        "profiled": bool(settings.profile),
        "gc_freeze": settings.freeze,
        "config": {
            "cycle": asdict(settings.cycle_size),
            "decline_and_suppress": asdict(settings.offers_size),
            "memory": asdict(settings.memory_size),
            "quota_roles": asdict(settings.quota_size),
            "rounds": settings.rounds,
            "repeats": settings.repeats,
            "reference_agents": settings.reference_agents,
            "reference_budget_s": REFERENCE_BUDGET_S,
        },
        "process_peak_rss_mb": round(peak_rss_mb(), 1),
        "seconds": round(time.perf_counter() - began, 1),
        # The machine is shared: a high load average explains a slow or scattered figure.
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
            "python": sys.version.split()[0],
        },
        "git": git,
        "errors": errors,
    }
    print(json.dumps(summary_line), flush=True)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
