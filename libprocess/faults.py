"""Deliberate message loss, for tests: drop chosen messages on purpose.

A runtime loses messages for real when a peer goes away or a queue overflows; tests that need
one *particular* message lost (the third status update, every ``PongAgent``, whatever goes to
one process) set a rule on the runtime instead::

    rule = runtime.faults.drop(name="PongAgent", to=master_pid, count=3)
    ...
    assert rule.dropped == 3
    rule.remove()

A rule matches a message by name (exact), destination and sender; a criterion left ``None``
matches anything. The runtime consults its rules where a message leaves a sender in it (local
deliveries and outgoing remote sends, in ``send``) and where a message from another runtime
reaches one of its processes (inbound delivery). A message is checked once per runtime it
passes, so a rule on the sending runtime and one on the receiving runtime are independent.
Runtime-to-runtime control messages (link requests and exit notices) and ``dispatch`` are
never dropped: they are not messages between processes.

This module is test machinery; production code never sets a rule. With no rule set, the
runtime pays one attribute check per message.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import structlog

from libprocess.metrics import Metrics
from libprocess.upid import UPID

log = structlog.get_logger("libprocess.faults")

DROPPED_METRIC = "libprocess/messages_dropped_by_rule"


def _matcher(what: str, value: UPID | str | None) -> tuple[str | None, str | None]:
    """``(id, address)`` to compare against: a full ``id@host:port`` pins both, a bare
    process id matches that id in any runtime."""
    if value is None:
        return None, None
    if not isinstance(value, str):
        raise TypeError(f"{what} is a UPID, a process id or None, got {type(value).__name__}")
    if "@" in value:
        pid = UPID(value)
        return pid.id, pid.address
    if not value:
        raise ValueError(f"{what} must not be empty; pass None to match any {what}")
    return value, None


class DropRule:
    """One rule: which messages it drops, how many it may still drop, how many it did."""

    def __init__(
        self,
        faults: Faults,
        name: str | None,
        to: UPID | str | None,
        sender: UPID | str | None,
        count: int | None,
    ) -> None:
        if name is not None and (not isinstance(name, str) or not name):
            raise ValueError(f"name is a message name or None, got {name!r}")
        if count is not None and (not isinstance(count, int) or count < 1):
            raise ValueError(f"count is a positive number of messages or None, got {count!r}")
        self._faults = faults
        self.name = name
        self.to = to
        self.sender = sender
        self.count = count  # None: drop every match until removed
        self._to_id, self._to_address = _matcher("to", to)
        self._sender_id, self._sender_address = _matcher("sender", sender)
        # How many messages this rule dropped; never above ``count``. Written under the
        # faults' lock, read from any thread.
        self.dropped = 0

    @property
    def active(self) -> bool:
        """Whether the rule still drops: not removed and ``count`` not used up."""
        return self in self._faults._rules

    def remove(self) -> None:
        """Stop dropping; messages sent from now on are delivered again. Idempotent."""
        self._faults._remove(self)

    def __enter__(self) -> DropRule:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.remove()

    def __repr__(self) -> str:
        parts = [
            f"{key}={value!r}"
            for key, value in (("name", self.name), ("to", self.to), ("sender", self.sender))
            if value is not None
        ]
        limit = "" if self.count is None else f"/{self.count}"
        return f"<DropRule {' '.join(parts) or 'every message'} dropped={self.dropped}{limit}>"

    def _matches(self, to_id: str, to_address: str, sender: UPID | None, name: str) -> bool:
        if self.name is not None and name != self.name:
            return False
        if self._to_id is not None and (
            to_id != self._to_id
            or (self._to_address is not None and to_address != self._to_address)
        ):
            return False
        if self._sender_id is not None:
            if sender is not None and type(sender) is not UPID:
                sender = UPID(sender)  # a caller may name its sender as a plain string
            if sender is None or sender.id != self._sender_id:
                return False
            if self._sender_address is not None and sender.address != self._sender_address:
                return False
        return True


class Faults:
    """The drop rules of one runtime (``runtime.faults``); safe to change from any thread.

    ``on_change`` gets this object while any rule is set and ``None`` once none is, so that
    the runtime's hot paths look at one attribute and call ``drops`` only when needed.
    """

    def __init__(self, metrics: Metrics, on_change: Callable[[Faults | None], None]) -> None:
        self._lock = threading.Lock()
        # The rules in force, oldest first; replaced (never mutated) under the lock.
        self._rules: tuple[DropRule, ...] = ()
        self._on_change = on_change
        self._dropped = metrics.counter(DROPPED_METRIC)

    def drop(
        self,
        name: str | None = None,
        *,
        to: UPID | str | None = None,
        sender: UPID | str | None = None,
        count: int | None = None,
    ) -> DropRule:
        """Drop messages called ``name``, to ``to``, from ``sender`` (each ``None``: any).

        ``to`` and ``sender`` are a full pid (``id@host:port``) or a bare process id (that id
        in any runtime). ``count`` drops that many, then the rule retires itself; ``None``
        drops until ``remove()``. Takes effect for messages sent after it returns.
        """
        rule = DropRule(self, name, to, sender, count)
        with self._lock:
            self._rules = (*self._rules, rule)
            self._on_change(self)
        log.debug("drop_rule_set", rule=repr(rule))
        return rule

    def rules(self) -> list[DropRule]:
        """The rules in force, oldest first."""
        return list(self._rules)

    def clear(self) -> None:
        """Remove every rule."""
        with self._lock:
            self._rules = ()
            self._on_change(None)

    def _remove(self, rule: DropRule) -> None:
        with self._lock:
            if rule in self._rules:
                self._rules = tuple(r for r in self._rules if r is not rule)
                self._on_change(self if self._rules else None)

    def drops(
        self, to_id: str, to_address: str, sender: UPID | None, name: str, where: str
    ) -> bool:
        """Whether a rule takes this message (and count it if so); ``where`` is for the log."""
        with self._lock:
            for rule in self._rules:
                if rule._matches(to_id, to_address, sender, name):
                    rule.dropped += 1
                    if rule.count is not None and rule.dropped >= rule.count:
                        self._rules = tuple(r for r in self._rules if r is not rule)
                        self._on_change(self if self._rules else None)
                    break
            else:
                return False
            self._dropped.inc()  # under the lock: senders on several threads count exactly
        log.debug(
            "message_dropped_by_rule",
            message=name,
            to=f"{to_id}@{to_address}",
            sender=sender,
            where=where,
            rule=repr(rule),
        )
        return True
