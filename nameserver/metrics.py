"""The server's counters, shown at ``/metrics`` (docs/dns.md lists them)."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(slots=True)
class Counters:
    queries: int = 0  # every packet taken off UDP or TCP (before flood control)
    udp_queries: int = 0
    tcp_queries: int = 0
    answered: int = 0  # answers from the record table (NOERROR, with or without records)
    nxdomain: int = 0
    refused: int = 0  # other zones with no resolvers configured
    forwarded: int = 0  # other zones sent on to a resolver and answered from there
    forward_failures: int = 0  # no resolver answered: SERVFAIL
    malformed: int = 0  # packets that are not a DNS query: FORMERR, or dropped if unreadable
    oversized_names: int = 0  # queries for a name over 253 characters: FORMERR
    not_implemented: int = 0  # opcodes other than QUERY: NOTIMP
    flood_dropped: int = 0  # queries dropped because their client sent too many
    truncated: int = 0  # UDP answers cut to fit, with TC set
    packed: int = 0  # answers packed (the rest were kept answers, reused)
    # The event stream from the master.
    events: int = 0
    event_errors: int = 0
    subscriptions: int = 0  # SUBSCRIBED received: the first, then one per resync
    stream_losses: int = 0

    def snapshot(self) -> dict[str, int]:
        return {f"dns/{name}": value for name, value in asdict(self).items()}
