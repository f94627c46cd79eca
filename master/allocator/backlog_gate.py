"""When the master is behind its messages, the allocator waits before making more offers.

Offers are Mesos's admission control: a framework can launch only on what it was offered.
So the master's own backlog is what the allocator should look at before a cycle. A cycle made
while tens of thousands of status updates, acceptances and declines wait in the master's
mailbox queues one more offer per agent behind them, and every answer to those offers behind
that. The measured result was a master 20,000 messages behind, launches that waited seconds
to be looked at, and bursts of progress between silences.

``BacklogGate`` is a sans-IO decision: given the master's backlog (events waiting in its
mailbox) and the time, may a cycle run now? It holds cycles from the moment the backlog
reaches ``high`` until it falls to ``low`` (hysteresis: one drained message does not let a
cycle through), and never longer than ``max_hold`` at a time, so allocation goes on (one cycle
per ``max_hold``) whatever the backlog. The allocator actor asks again every ``recheck``
seconds while held (master/allocator/process.py).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BacklogLimits:
    """The gate's knobs: ``high``/``low`` in events waiting, ``max_hold`` in seconds."""

    high: int = 2_000
    low: int = 500
    max_hold: float = 1.0
    recheck: float = 0.01

    def __post_init__(self) -> None:
        if not 0 <= self.low <= self.high:
            raise ValueError(
                f"the backlog limits need 0 <= low <= high, got low={self.low} high={self.high}"
            )
        if not 0 < self.recheck <= self.max_hold:
            raise ValueError(
                f"recheck must be positive and at most max_hold, got recheck={self.recheck} "
                f"max_hold={self.max_hold}"
            )


class BacklogGate:
    """Whether an allocation cycle may run now; see the module docstring."""

    def __init__(self, limits: BacklogLimits) -> None:
        self.limits = limits
        self.held_since: float | None = None  # runtime-clock time the current hold began

    def wait(self, backlog: int, now: float) -> float:
        """0.0: run the cycle now. Otherwise the seconds after which to ask again."""
        limits = self.limits
        behind = backlog > limits.low if self.held_since is not None else backlog >= limits.high
        if not behind:
            self.held_since = None
            return 0.0
        if self.held_since is None:
            self.held_since = now
        elif now - self.held_since >= limits.max_hold:
            self.held_since = None  # held long enough: this cycle runs, the next may wait
            return 0.0
        return limits.recheck
