"""Resources as Mesos models them: scalars, ranges and sets, reserved or not.

Scalars are kept as integer thousandths (Mesos rounds scalar values to three decimal
places), so arithmetic is exact and ``a + b - b == a`` always. A ``Resources`` value is
immutable: arithmetic returns a new one. Like resources (same name, reservation stack
and allocation role) are merged.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from corral.ranges import InvalidRanges, Ranges
from corral.roles import DEFAULT_ROLE, InvalidRole, is_self_or_ancestor, validate_role

SCALAR, RANGES, SET = "SCALAR", "RANGES", "SET"
STATIC, DYNAMIC = "STATIC", "DYNAMIC"
MILLI = 1000  # scalars are stored as integer thousandths

Value = int | Ranges | frozenset


class InvalidResources(ValueError):
    """Resources that are malformed or impossible (negative, NaN, overlapping ranges...)."""


@dataclass(frozen=True, slots=True)
class Reservation:
    """One level of a reservation stack: to ``role``, static (agent flag) or dynamic."""

    role: str
    type: str = DYNAMIC
    principal: str | None = None
    labels: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.type not in (STATIC, DYNAMIC):
            raise InvalidResources(f"reservation type is STATIC or DYNAMIC, got {self.type!r}")
        if self.role == DEFAULT_ROLE:
            raise InvalidResources("a reservation names a role other than '*'")
        try:
            validate_role(self.role)
        except InvalidRole as error:
            raise InvalidResources(str(error)) from None


Reservations = tuple[Reservation, ...]
# (name, reservation stack, allocation role): resources with equal keys merge.
Key = tuple[str, Reservations, str | None]


@dataclass(frozen=True, slots=True)
class Resource:
    """One named resource with its value, as it appears when iterating ``Resources``."""

    name: str
    value: Value
    reservations: Reservations = ()
    allocation_role: str | None = None

    @property
    def type(self) -> str:
        return _type_of(self.value)

    @property
    def scalar(self) -> float:
        if not isinstance(self.value, int):
            raise TypeError(f"resource {self.name!r} is {self.type}, not a scalar")
        return self.value / MILLI

    @property
    def role(self) -> str:
        """The role reserved to (the top of the stack), or ``*`` if unreserved."""
        return self.reservations[-1].role if self.reservations else DEFAULT_ROLE

    def is_reserved(self) -> bool:
        return bool(self.reservations)


def _type_of(value: Value) -> str:
    if isinstance(value, int):
        return SCALAR
    if isinstance(value, Ranges):
        return RANGES
    return SET


def _is_empty(value: Value) -> bool:
    return value <= 0 if type(value) is int else not value


def _add(a: Value, b: Value) -> Value:
    if type(a) is not type(b):
        raise InvalidResources(f"cannot add a {_type_of(b)} to a {_type_of(a)} of the same name")
    return a + b if isinstance(a, int) else a | b


def _sub(a: Value, b: Value) -> Value:
    if type(a) is not type(b):
        raise InvalidResources(
            f"cannot subtract a {_type_of(b)} from a {_type_of(a)} of the same name"
        )
    return a - b


def _contains(a: Value, b: Value) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, int):
        return a >= b
    if isinstance(a, Ranges):
        return a.contains(b)
    return a >= b


def to_millis(value: float | int | str, name: str = "scalar") -> int:
    """A scalar given by a user, rounded to thousandths; negative and non-finite refused."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidResources(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise InvalidResources(f"{name} must be a finite number, got {value!r}")
    if number < 0:
        raise InvalidResources(f"{name} must not be negative, got {value!r}")
    return round(number * MILLI)


class Resources:
    """An immutable bag of resources; the unit of offers, allocations and agent capacity.

    Invariant: ``_items`` maps each key to a non-empty value (scalars > 0, ranges and sets
    non-empty); every operation keeps it so.
    """

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[Resource] = ()) -> None:
        merged: dict[Key, Value] = {}
        for resource in items:
            _merge_into(
                merged,
                (resource.name, resource.reservations, resource.allocation_role),
                resource.value,
            )
        self._items = merged

    @classmethod
    def _of(cls, items: dict[Key, Value]) -> Resources:
        resources = cls.__new__(cls)
        resources._items = items
        return resources

    # -- building -----------------------------------------------------------------------

    @classmethod
    def parse(cls, text: str, default_role: str = DEFAULT_ROLE) -> Resources:
        """Mesos's text form ``cpus:4;mem:2048;ports:[31000-32000];cpus(eng):2;disks:{a,b}``
        (a role in parentheses is a static reservation), or its JSON form (a list)."""
        stripped = text.strip()
        if stripped.startswith("["):
            try:
                return cls.from_json(json.loads(stripped))
            except json.JSONDecodeError as error:
                raise InvalidResources(f"resources JSON does not parse: {error}") from None
        items: list[Resource] = []
        for part in stripped.split(";"):
            part = part.strip()
            if not part:
                continue
            name_role, colon, value_text = part.partition(":")
            if not colon or not value_text.strip():
                raise InvalidResources(f"a resource is written 'name:value', got {part!r}")
            name, role = _split_role(name_role.strip(), default_role)
            items.append(
                Resource(name, _parse_value(name, value_text.strip()), _static_stack(role))
            )
        return cls(_validated(items))

    @classmethod
    def from_json(cls, data: Any) -> Resources:
        """Mesos's JSON form: a list of Resource objects."""
        if not isinstance(data, list):
            raise InvalidResources(f"resources JSON is a list, got {type(data).__name__}")
        return cls(_validated(_resource_from_json(item) for item in data))

    @classmethod
    def scalars(cls, reservations: Reservations = (), **values: float) -> Resources:
        """``Resources.scalars(cpus=2, mem=1024)``: a quick way to build scalar resources."""
        return cls(
            _validated(
                Resource(name, to_millis(value, name), reservations)
                for name, value in values.items()
            )
        )

    # -- reading ------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Resource]:
        for (name, reservations, allocation_role), value in self._items.items():
            yield Resource(name, value, reservations, allocation_role)

    def __len__(self) -> int:
        return len(self._items)

    def __bool__(self) -> bool:
        return bool(self._items)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Resources) and self._items == other._items

    def __hash__(self) -> int:
        return hash(frozenset(self._items.items()))

    def __repr__(self) -> str:
        return f"Resources({str(self)!r})"

    def __str__(self) -> str:
        return self.to_text()

    def names(self) -> set[str]:
        return {key[0] for key in self._items}

    def scalar(self, name: str) -> float:
        """The total of scalar ``name`` across reservations, as a float (0 if absent)."""
        return self.scalar_millis(name) / MILLI

    def scalar_millis(self, name: str) -> int:
        return sum(v for k, v in self._items.items() if k[0] == name and isinstance(v, int))

    def ranges(self, name: str) -> Ranges:
        result = Ranges()
        for key, value in self._items.items():
            if key[0] == name and isinstance(value, Ranges):
                result = result | value
        return result

    def quantities(self) -> dict[str, int]:
        """Scalar totals by name in thousandths, whatever their reservation (for DRF/quota)."""
        totals: dict[str, int] = {}
        for (name, _, _), value in self._items.items():
            if isinstance(value, int):
                totals[name] = totals.get(name, 0) + value
        return totals

    # -- arithmetic ---------------------------------------------------------------------

    def __add__(self, other: Resources) -> Resources:
        if not other._items:
            return self
        if not self._items:
            return other
        items = dict(self._items)
        for key, value in other._items.items():  # values are never empty (an invariant)
            mine = items.get(key)
            if mine is None:
                items[key] = value
            elif type(mine) is int and type(value) is int:
                items[key] = mine + value
            else:
                items[key] = _add(mine, value)
        return Resources._of(items)

    def __sub__(self, other: Resources) -> Resources:
        """Remove ``other``; scalars that reach zero or below disappear (as in Mesos)."""
        if not other._items:
            return self
        items = dict(self._items)
        for key, value in other._items.items():
            mine = items.get(key)
            if mine is None:
                continue
            left = _sub(mine, value)
            if _is_empty(left):
                del items[key]
            else:
                items[key] = left
        return Resources._of(items)

    def contains(self, other: Resources) -> bool:
        """Whether every resource of ``other`` is here (same name, reservation, allocation)."""
        items = self._items
        for key, value in other._items.items():
            mine = items.get(key)
            if mine is None or not _contains(mine, value):
                return False
        return True

    # -- filtering ----------------------------------------------------------------------

    def filter(self, predicate: Callable[[Resource], bool]) -> Resources:
        return Resources._of(
            {
                key: value
                for key, value in self._items.items()
                if predicate(Resource(key[0], value, key[1], key[2]))
            }
        )

    def unreserved(self) -> Resources:
        return Resources._of({k: v for k, v in self._items.items() if not k[1]})

    def reserved(self, role: str | None = None) -> Resources:
        """Reserved resources; with ``role``, those whose reservation is exactly to it."""
        if role is None:
            return Resources._of({k: v for k, v in self._items.items() if k[1]})
        return Resources._of(
            {k: v for k, v in self._items.items() if k[1] and k[1][-1].role == role}
        )

    def allocatable_to(self, role: str) -> Resources:
        """Unreserved resources and reservations to ``role`` or one of its ancestors."""
        return Resources._of(
            {
                k: v
                for k, v in self._items.items()
                if not k[1] or is_self_or_ancestor(k[1][-1].role, role)
            }
        )

    def reservation_roles(self) -> set[str]:
        return {key[1][-1].role for key in self._items if key[1]}

    def scalars_only(self) -> Resources:
        return Resources._of({k: v for k, v in self._items.items() if isinstance(v, int)})

    def non_scalars(self) -> Resources:
        return Resources._of({k: v for k, v in self._items.items() if not isinstance(v, int)})

    def allocated_to(self, role: str) -> Resources:
        """The same resources marked as allocated to ``role`` (Mesos's allocation_info)."""
        return self._reallocated(role)

    def unallocated(self) -> Resources:
        return self._reallocated(None)

    def _reallocated(self, role: str | None) -> Resources:
        items = {(key[0], key[1], role): value for key, value in self._items.items()}
        if len(items) == len(self._items):
            return Resources._of(items)
        merged: dict[Key, Value] = {}  # keys differing only by allocation role now merge
        for (name, reservations, _), value in self._items.items():
            _merge_into(merged, (name, reservations, role), value)
        return Resources._of(merged)

    def by_allocation_role(self) -> dict[str | None, Resources]:
        """The resources split by the role they are allocated to (None: unallocated)."""
        parts: dict[str | None, dict[Key, Value]] = {}
        for key, value in self._items.items():
            parts.setdefault(key[2], {})[key] = value
        return {role: Resources._of(items) for role, items in parts.items()}

    def has_reserved(self) -> bool:
        return any(key[1] for key in self._items)

    def has_non_scalars(self) -> bool:
        return any(not isinstance(value, int) for value in self._items.values())

    def allocation_roles(self) -> set[str]:
        return {key[2] for key in self._items if key[2] is not None}

    # -- formatting ---------------------------------------------------------------------

    def to_text(self) -> str:
        parts = []
        for resource in self:
            role = f"({resource.role})" if resource.reservations else ""
            parts.append(f"{resource.name}{role}:{_format_value(resource.value)}")
        return ";".join(parts)

    def to_json(self) -> list[dict[str, Any]]:
        return [_resource_to_json(resource) for resource in self]


def _merge_into(items: dict[Key, Value], key: Key, value: Value) -> None:
    if _is_empty(value):
        return
    mine = items.get(key)
    items[key] = value if mine is None else _add(mine, value)


def _validated(items: Iterable[Resource]) -> list[Resource]:
    items = list(items)
    kinds: dict[str, str] = {}
    for resource in items:
        if not resource.name or any(ch in resource.name for ch in ";:()[]{} "):
            raise InvalidResources(f"resource name {resource.name!r} is empty or has separators")
        kind = kinds.setdefault(resource.name, resource.type)
        if kind != resource.type:
            raise InvalidResources(
                f"resource {resource.name!r} is given both as {kind} and as {resource.type}"
            )
        if isinstance(resource.value, int) and resource.value < 0:
            raise InvalidResources(f"resource {resource.name!r} must not be negative")
    return items


def _split_role(text: str, default_role: str) -> tuple[str, str]:
    if "(" not in text:
        return text, default_role
    name, _, rest = text.partition("(")
    if not rest.endswith(")"):
        raise InvalidResources(f"a reserved resource is written 'name(role)', got {text!r}")
    role = rest[:-1].strip()
    try:
        validate_role(role)
    except InvalidRole as error:
        raise InvalidResources(str(error)) from None
    return name.strip(), role


def _static_stack(role: str) -> Reservations:
    return () if role == DEFAULT_ROLE else (Reservation(role, STATIC),)


def _parse_value(name: str, text: str) -> Value:
    if text.startswith("["):
        try:
            return Ranges.parse(text)
        except InvalidRanges as error:
            raise InvalidResources(f"resource {name!r}: {error}") from None
    if text.startswith("{"):
        if not text.endswith("}"):
            raise InvalidResources(f"resource {name!r}: a set is written '{{a,b}}', got {text!r}")
        items = [item.strip() for item in text[1:-1].split(",") if item.strip()]
        if len(items) != len(set(items)):
            raise InvalidResources(f"resource {name!r}: set {text} repeats an item")
        return frozenset(items)
    return to_millis(text, f"resource {name!r}")


def _format_value(value: Value) -> str:
    if isinstance(value, int):
        return f"{value / MILLI:g}" if value % MILLI else str(value // MILLI)
    if isinstance(value, Ranges):
        return str(value)
    return "{" + ",".join(sorted(value)) + "}"


def _resource_from_json(data: Any) -> Resource:
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        raise InvalidResources(f"a resource is an object with a 'name', got {data!r}")
    name = data["name"]
    kind = data.get("type", SCALAR)
    try:
        if kind == SCALAR:
            value: Value = to_millis(data["scalar"]["value"], f"resource {name!r}")
        elif kind == RANGES:
            pairs = [(r["begin"], r["end"]) for r in data["ranges"].get("range", [])]
            if not all(isinstance(b, int) and isinstance(e, int) for b, e in pairs):
                raise InvalidResources(f"resource {name!r}: range bounds must be integers")
            value = Ranges.validated(pairs)
        elif kind == SET:
            items = data["set"].get("item", [])
            if not all(isinstance(item, str) for item in items) or len(set(items)) != len(items):
                raise InvalidResources(f"resource {name!r}: set items must be distinct strings")
            value = frozenset(items)
        else:
            raise InvalidResources(f"resource {name!r}: type {kind!r} is not SCALAR/RANGES/SET")
    except (KeyError, TypeError, AttributeError):
        raise InvalidResources(f"resource {name!r} lacks the value its type {kind} needs") from None
    except InvalidRanges as error:
        raise InvalidResources(f"resource {name!r}: {error}") from None
    reservations: list[Reservation] = []
    role = data.get("role", DEFAULT_ROLE)
    if role != DEFAULT_ROLE and not data.get("reservations"):
        reservations.append(Reservation(_checked_role(role), STATIC))
    for item in data.get("reservations", []) or []:
        if not isinstance(item, dict) or "role" not in item:
            raise InvalidResources(f"resource {name!r}: a reservation needs a role, got {item!r}")
        labels = tuple(
            (label.get("key", ""), label.get("value", ""))
            for label in (item.get("labels") or {}).get("labels", [])
        )
        reservations.append(
            Reservation(
                _checked_role(item["role"]),
                item.get("type", DYNAMIC),
                item.get("principal"),
                labels,
            )
        )
    allocation = data.get("allocation_info", {}).get("role")
    return Resource(name, value, tuple(reservations), allocation)


def _checked_role(role: Any) -> str:
    if not isinstance(role, str):
        raise InvalidResources(f"a role is a string, got {role!r}")
    try:
        return validate_role(role)
    except InvalidRole as error:
        raise InvalidResources(str(error)) from None


def _resource_to_json(resource: Resource) -> dict[str, Any]:
    out: dict[str, Any] = {"name": resource.name, "type": resource.type}
    value = resource.value
    if isinstance(value, int):
        out["scalar"] = {"value": value / MILLI}
    elif isinstance(value, Ranges):
        out["ranges"] = {"range": [{"begin": b, "end": e} for b, e in value]}
    else:
        out["set"] = {"item": sorted(value)}
    if resource.reservations:
        out["reservations"] = [
            {
                "type": r.type,
                "role": r.role,
                **({"principal": r.principal} if r.principal else {}),
                **(
                    {"labels": {"labels": [{"key": k, "value": v} for k, v in r.labels]}}
                    if r.labels
                    else {}
                ),
            }
            for r in resource.reservations
        ]
    if resource.allocation_role is not None:
        out["allocation_info"] = {"role": resource.allocation_role}
    return out
