"""Marathon's placement constraints: ``[field, OPERATOR, value?]`` over an agent's hostname
and attributes.

``Constraint.allows(agent, placed)`` judges one agent for one more instance, given the agents
the app's instances already run on. As in Marathon, an agent that lacks the field fails every
operator except UNLIKE (a missing value is "not like" anything).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

OPERATORS = ("UNIQUE", "CLUSTER", "GROUP_BY", "LIKE", "UNLIKE", "MAX_PER", "IS")
_HOSTNAME_FIELDS = ("hostname", "@hostname")


@dataclass(frozen=True)
class AgentFacts:
    """What constraints read of an agent: its hostname and attributes as text."""

    hostname: str
    attributes: Mapping[str, str]

    def value(self, field: str) -> str | None:
        if field in _HOSTNAME_FIELDS:
            return self.hostname
        return self.attributes.get(field)


@dataclass(frozen=True)
class Constraint:
    field: str
    operator: str
    value: str | None = None

    @classmethod
    def of(cls, field: str, operator: str, value: str | None = None) -> Constraint:
        """A checked constraint; ``ValueError`` says what is wrong with it."""
        if operator not in OPERATORS:
            raise ValueError(f"operator is one of {', '.join(OPERATORS)}; got {operator!r}")
        if operator in ("LIKE", "UNLIKE", "IS", "MAX_PER") and value is None:
            raise ValueError(f"{operator} needs a value: [{field!r}, {operator!r}, VALUE]")
        if operator == "UNIQUE" and value is not None:
            raise ValueError("UNIQUE takes no value: [field, 'UNIQUE']")
        if (
            operator in ("MAX_PER", "GROUP_BY")
            and value is not None
            and (not value.isdigit() or int(value) < 1)
        ):
            raise ValueError(f"{operator}'s value is a whole number of 1 or more, got {value!r}")
        if operator in ("LIKE", "UNLIKE"):
            try:
                re.compile(value)
            except re.error as error:
                raise ValueError(f"{operator}'s value is a regular expression: {error}") from None
        return cls(field, operator, value)

    def to_json(self) -> list[str]:
        return [self.field, self.operator] + ([self.value] if self.value is not None else [])

    def allows(self, agent: AgentFacts, placed: Iterable[AgentFacts]) -> bool:
        """Whether one more instance may go on ``agent``, the app's others being on ``placed``."""
        mine = agent.value(self.field)
        if self.operator == "UNLIKE":
            return mine is None or re.fullmatch(self.value or "", mine) is None
        if mine is None:
            return False
        if self.operator == "LIKE":
            return re.fullmatch(self.value or "", mine) is not None
        if self.operator == "IS":
            return mine == self.value
        counts = Counter(v for v in (p.value(self.field) for p in placed) if v is not None)
        if self.operator == "UNIQUE":
            return counts[mine] == 0
        if self.operator == "MAX_PER":
            return counts[mine] < int(self.value or 1)
        if self.operator == "CLUSTER":
            if self.value:
                return mine == self.value
            return not counts or mine in counts
        # GROUP_BY: spread evenly over the values; until `value` distinct ones are seen, a
        # value not used yet is always welcome.
        wanted = int(self.value) if self.value else 0
        if mine not in counts:
            return True  # a value with no instance yet has the fewest
        return counts[mine] <= min(counts.values()) and (not wanted or len(counts) >= wanted)

    def describe(self) -> str:
        return ":".join(self.to_json())
