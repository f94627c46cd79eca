"""Launch backoff per app (``backoffSeconds``, ``backoffFactor``, ``maxLaunchDelaySeconds``).

Each TASK_FAILED or TASK_FINISHED of an app's instance delays its next launch: the first by
``backoffSeconds``, each further one by the delay before times ``backoffFactor``, capped at
``maxLaunchDelaySeconds``. A kill (TASK_KILLED) does not count; a new config resets the delay,
as does ``DELETE /v2/queue/{id}/delay``. Times are the caller's clock (seconds).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Backoff:
    seconds: float
    factor: float
    maximum: float
    delay: float = 0.0  # the delay the next failure adds (0: no failure yet)
    until: float = 0.0  # no launch before this time

    def failed(self, now: float) -> None:
        """An instance failed at ``now``: push the next launch out."""
        self.delay = self.seconds if self.delay == 0 else self.delay * self.factor
        self.delay = min(self.delay, self.maximum)
        self.until = now + self.delay

    def reset(self) -> None:
        self.delay = 0.0
        self.until = 0.0

    def may_launch(self, now: float) -> bool:
        return now >= self.until

    def time_left(self, now: float) -> float:
        return max(0.0, self.until - now)

    def overdue(self, now: float) -> bool:
        """Whether the delay has run out (Marathon's ``delay.overdue``)."""
        return now >= self.until
