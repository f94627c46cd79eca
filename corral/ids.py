"""Typed ids: framework, agent, task, executor, offer and container.

Each id is a ``str`` subclass, so it costs nothing to hash, compare, log or use as a dict key,
while its type says which kind of id a field holds. On the wire an id is Mesos's
``{"value": "..."}``. Ids are validated when built: they end up in sandbox paths
(``frameworks/<id>/executors/<id>/runs/<id>``) and in URLs, so an id that is empty, ``.`` or
``..``, or holds ``/``, whitespace or control characters is refused, as Mesos refuses it.

Note: ids of different kinds with the same text compare equal (they are strings); keep them
in fields and maps of one kind.
"""

from __future__ import annotations

import itertools
import re
import uuid
from typing import Any, Self, TypeVar

MAX_ID_LENGTH = 255  # ids become path components; most filesystems cap a name at 255 bytes


class InvalidID(ValueError):
    """An id that cannot be used: empty, too long, or unsafe in a path."""


class _ID(str):
    """Base of the typed ids; validates on construction."""

    __slots__ = ()
    KIND = "id"

    def __new__(cls, value: str) -> Self:
        if not isinstance(value, str):
            raise InvalidID(f"a {cls.KIND} is a string, got {type(value).__name__} {value!r}")
        problem = _problem(value)
        if problem:
            raise InvalidID(f"{cls.KIND} {value!r} {problem}")
        return super().__new__(cls, value)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"

    def to_wire(self) -> dict[str, str]:
        return {"value": str(self)}

    @classmethod
    def from_wire(cls, data: Any) -> Self:
        """``{"value": "..."}`` to an id; raises ``InvalidID`` for any other shape."""
        if not isinstance(data, dict) or not isinstance(data.get("value"), str):
            raise InvalidID(f'a {cls.KIND} is {{"value": "<text>"}}, got {data!r}')
        return cls(data["value"])


# Nearly every id is short ASCII of these characters: one compiled match settles it (this
# check runs for every id of every message a master decodes, so its cost shows at scale).
_COMMON = re.compile(r"[A-Za-z0-9_.:@+=,~-]{1,255}")


def _problem(value: str) -> str | None:
    if _COMMON.fullmatch(value) and value not in (".", ".."):
        return None
    if not value:
        return "is empty; give a non-empty id"
    if len(value.encode("utf-8")) > MAX_ID_LENGTH:
        return f"is longer than {MAX_ID_LENGTH} bytes"
    if value in (".", ".."):
        return "is not a usable id ('.' and '..' are path components)"
    for char in value:
        if char == "/":
            return "contains '/'; ids become path components, use another separator"
        if char.isspace() or not char.isprintable():
            return f"contains whitespace or a control character ({char!r})"
    return None


class FrameworkID(_ID):
    __slots__ = ()
    KIND = "framework id"


class AgentID(_ID):
    __slots__ = ()
    KIND = "agent id"


class TaskID(_ID):
    __slots__ = ()
    KIND = "task id"


class ExecutorID(_ID):
    __slots__ = ()
    KIND = "executor id"


class OfferID(_ID):
    __slots__ = ()
    KIND = "offer id"


class ContainerID(_ID):
    __slots__ = ()
    KIND = "container id"


_IdT = TypeVar("_IdT", bound=_ID)

ID_TYPES: tuple[type[_ID], ...] = (FrameworkID, AgentID, TaskID, ExecutorID, OfferID, ContainerID)


class IdGenerator:
    """Unique ids in Mesos's style, under one prefix (the master's id, a uuid).

    Frameworks are ``<prefix>-0000``, ``<prefix>-0001``...; agents ``<prefix>-S0``,
    ``<prefix>-S1``...; offers ``<prefix>-O0``... A master that restarts takes a new prefix, so
    ids never repeat across its runs. Sans-IO: the prefix can be given (tests) and nothing else
    is read from outside.
    """

    def __init__(self, prefix: str | None = None) -> None:
        self.prefix = str(uuid.uuid4()) if prefix is None else prefix
        _ID(self.prefix)  # the prefix must itself be a valid id
        self._room = MAX_ID_LENGTH - len(self.prefix.encode("utf-8"))
        self._frameworks = itertools.count()
        self._agents = itertools.count()
        self._offers = itertools.count()

    # A valid prefix with ASCII letters, digits and a dash appended is a valid id while it
    # fits: the ids are made without checking again (a master makes an offer id for each of
    # thousands of offers a cycle).

    def framework_id(self) -> FrameworkID:
        return self._made(FrameworkID, f"-{next(self._frameworks):04d}")

    def agent_id(self) -> AgentID:
        return self._made(AgentID, f"-S{next(self._agents)}")

    def offer_id(self) -> OfferID:
        return self._made(OfferID, f"-O{next(self._offers)}")

    def _made(self, cls: type[_IdT], suffix: str) -> _IdT:
        text = self.prefix + suffix
        if len(suffix) > self._room:  # past the length limit: the check says so
            return cls(text)
        return str.__new__(cls, text)


def new_container_id() -> ContainerID:
    """A fresh container id (a uuid, as Mesos's containerizer makes them)."""
    return ContainerID(str(uuid.uuid4()))


def new_status_uuid() -> bytes:
    """The 16 bytes that identify one status update, matched by its acknowledgement."""
    return uuid.uuid4().bytes
