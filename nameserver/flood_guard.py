"""Flood control: a token bucket per client address, so that one client cannot take the
server from everyone else. Sans-IO: the caller says what time it is."""

from __future__ import annotations

MAX_CLIENTS = 65536  # buckets kept; beyond, the refilled (idle) ones are forgotten, and if
# all are busy (a flood from spoofed addresses), all are: each client starts a new burst.


class FloodGuard:
    """``rate`` queries per second per client, ``burst`` at once; rate 0 lets everything
    through."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        # Invariant: 0 <= tokens <= burst for every client, as of its time stamp.
        self._buckets: dict[str, list[float]] = {}  # client -> [tokens, when]

    def allow(self, client: str, now: float) -> bool:
        """Take one token of ``client``'s bucket; False (drop the query) when there is none."""
        if not self.rate:
            return True
        bucket = self._buckets.get(client)
        if bucket is None:
            if len(self._buckets) >= MAX_CLIENTS:
                self._forget_idle(now)
            bucket = self._buckets[client] = [self.burst, now]
        tokens = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
        bucket[1] = now
        if tokens < 1.0:
            bucket[0] = tokens
            return False
        bucket[0] = tokens - 1.0
        return True

    def _forget_idle(self, now: float) -> None:
        refill = self.burst / self.rate
        self._buckets = {
            client: bucket for client, bucket in self._buckets.items() if now - bucket[1] < refill
        }
        if len(self._buckets) >= MAX_CLIENTS // 2:  # else the next new client prunes again
            self._buckets.clear()
