"""Resources as Mesos models them: scalars, ranges and sets, reserved or not.

Scalars are kept as integer thousandths (Mesos rounds scalar values to three decimal
places), so scalar arithmetic is exact: ``a + b - b == a`` for scalars always (ranges and
sets lose in ``- b`` what ``a`` shared with ``b``). A ``Resources`` value is
immutable: arithmetic returns a new one. Like resources (same name, reservation stack
and allocation role) are merged.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from corral.memo import BoundedMemo
from corral.ranges import InvalidRanges, Ranges
from corral.roles import DEFAULT_ROLE, InvalidRole, is_self_or_ancestor, validate_role

SCALAR, RANGES, SET = "SCALAR", "RANGES", "SET"
STATIC, DYNAMIC = "STATIC", "DYNAMIC"
MILLI = 1000  # scalars are stored as integer thousandths
_MAX_MILLIS = 2**63  # Mesos keeps scalars as signed 64-bit thousandths; keep below that
_NAME_SEPARATORS = frozenset(";:()[]{}")
# Resource fields whose meaning Corral does not model yet: refused rather than dropped, so a
# revocable cpu or a persistent volume is never taken for a plain one.
_UNMODELLED_FIELDS = ("revocable", "shared", "disk")

Value = int | Ranges | frozenset


_wire_key = msgspec.msgpack.Encoder().encode
_KNOWN: BoundedMemo[bytes, Resources] = BoundedMemo(65_536)  # Resources.from_wire's memo


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
            raise InvalidResources(
                "a reservation must name a role other than '*' ('*' means unreserved), got '*'"
            )
        try:
            validate_role(self.role)
        except InvalidRole as error:
            raise InvalidResources(str(error)) from None
        if self.principal is not None and not isinstance(self.principal, str):
            raise InvalidResources(
                f"a reservation's principal is a string or None, got {self.principal!r}"
            )
        if not isinstance(self.labels, tuple) or not all(
            isinstance(label, tuple)
            and len(label) == 2
            and all(isinstance(part, str) for part in label)
            for label in self.labels
        ):
            raise InvalidResources(
                f"reservation labels are a tuple of (key, value) string pairs, got {self.labels!r}"
            )


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
    """A scalar given by a user, in thousandths.

    Rounded half up, as Mesos does (``llround(value * 1000)``). Refused, as in Mesos:
    negative, NaN and infinite values, and positive values that would round to zero.
    """
    if isinstance(value, bool) or (isinstance(value, str) and "_" in value):
        raise InvalidResources(f"{name} must be a number such as 2 or 0.5, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidResources(f"{name} must be a number such as 2 or 0.5, got {value!r}") from None
    except OverflowError:  # an int too large for a float
        if value < 0:  # type: ignore[operator]
            raise InvalidResources(f"{name} must not be negative, got {value!r}") from None
        raise InvalidResources(_too_large(name, value)) from None
    if not math.isfinite(number):
        raise InvalidResources(f"{name} must be a finite number, got {value!r}")
    if number < 0:
        raise InvalidResources(f"{name} must not be negative, got {value!r}; give 0 or more")
    scaled = number * MILLI
    if scaled >= _MAX_MILLIS:
        raise InvalidResources(_too_large(name, value))
    whole = math.floor(scaled)
    millis = int(whole) + (scaled - whole >= 0.5)
    if millis == 0 and number > 0:
        raise InvalidResources(
            f"{name} is {value!r}, below the 0.001 precision of scalars; give 0 or at least 0.001"
        )
    return millis


def _too_large(name: str, value: object) -> str:
    shown = repr(value)
    shown = shown if len(shown) <= 24 else shown[:12] + "..." + f" ({len(shown)} characters)"
    return f"{name} is too large ({shown}); scalars must stay below 2^63 thousandths (~9.2e15)"


def format_millis(millis: int) -> str:
    """Thousandths as the shortest exact decimal: 1500 → ``1.5``, 2000 → ``2``, 1 → ``0.001``."""
    whole, fraction = divmod(millis, MILLI)
    return f"{whole}.{fraction:03d}".rstrip("0") if fraction else str(whole)


def validate_name(name: object, what: str = "resource") -> str:
    """Return ``name`` if it can be a resource name in the text form; raise saying why not."""
    if (
        not isinstance(name, str)
        or not name
        or any(ch in _NAME_SEPARATORS or ch.isspace() for ch in name)
    ):
        raise InvalidResources(
            f"a {what} name is a non-empty string without spaces or any of ';:()[]{{}}', "
            f"such as 'cpus'; got {name!r}"
        )
    return name


class Resources:
    """An immutable bag of resources; the unit of offers, allocations and agent capacity.

    Invariant: ``_items`` maps each key to a non-empty value (scalars > 0, ranges and sets
    non-empty); every operation keeps it so.
    """

    __slots__ = ("_items", "_unallocated", "_wire")

    def __init__(self, items: Iterable[Resource] = ()) -> None:
        merged: dict[Key, Value] = {}
        for resource in items:
            _merge_into(
                merged,
                (resource.name, resource.reservations, resource.allocation_role),
                resource.value,
            )
        self._items = merged
        self._wire: list[dict[str, Any]] | None = None
        self._unallocated: Resources | None = None

    @classmethod
    def _of(cls, items: dict[Key, Value]) -> Resources:
        resources = cls.__new__(cls)
        resources._items = items
        resources._wire = None
        resources._unallocated = None
        return resources

    # -- building -----------------------------------------------------------------------

    @classmethod
    def parse(cls, text: str, default_role: str = DEFAULT_ROLE) -> Resources:
        """Mesos's text form ``cpus:4;mem:2048;ports:[31000-32000];cpus(eng):2;disks:{a,b}``
        (a role in parentheses is a static reservation), or its JSON form (a list).

        Resources that name no role are statically reserved to ``default_role`` (in both
        forms, as in Mesos); with the default ``*`` they are unreserved.
        """
        stripped = text.strip()
        if stripped.startswith("["):
            try:
                data = json.loads(stripped)
            except json.JSONDecodeError as error:
                raise InvalidResources(f"resources JSON does not parse: {error}") from None
            return cls.from_json(data, default_role)
        if stripped.startswith("{"):
            raise InvalidResources(
                "resources JSON is a list of resource objects; wrap the object in [...]"
            )
        items: list[Resource] = []
        for part in stripped.split(";"):
            part = part.strip()
            if not part:
                continue
            name_role, colon, value_text = part.partition(":")
            if not colon or not value_text.strip():
                raise InvalidResources(
                    f"a resource is written 'name:value' or 'name(role):value', got {part!r}"
                )
            name, role = _split_role(name_role.strip(), default_role)
            validate_name(name)
            items.append(
                Resource(name, _parse_value(name, value_text.strip()), _static_stack(role))
            )
        return cls(_validated(items))

    @classmethod
    def from_json(cls, data: Any, default_role: str = DEFAULT_ROLE) -> Resources:
        """Mesos's JSON form: a list of Resource objects, in the format with a stack of
        ``reservations`` or the older one with ``role`` (and ``reservation``)."""
        if not isinstance(data, list):
            raise InvalidResources(
                f"resources JSON is a list of resource objects, got {type(data).__name__}"
            )
        return cls(_validated(_resource_from_json(item, default_role) for item in data))

    @classmethod
    def from_wire(cls, data: Any) -> Resources:
        """``from_json`` for values that recur (every task of a framework asks for the same):
        each distinct wire form is validated once and its value shared (a bounded memo keyed
        by the form's msgpack bytes; values are immutable)."""
        try:
            key = _wire_key(data)
        except (TypeError, ValueError, OverflowError):
            return cls.from_json(data)  # not plain data: from_json says what is wrong
        value = _KNOWN.get(key)
        return value if value is not None else _KNOWN.put(key, cls.from_json(data))

    @classmethod
    def scalars(cls, reservations: Reservations = (), **values: float) -> Resources:
        """``Resources.scalars(cpus=2, mem=1024)``: a quick way to build scalar resources."""
        return cls(
            _validated(
                Resource(name, to_millis(value, f"resource {name!r}"), reservations)
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
        if all(
            allocation is None and all(r.type == STATIC for r in reservations)
            for _, reservations, allocation in self._items
        ):
            return f"Resources({self.to_text()!r})"
        # The text form would drop what tells these items apart: say everything.
        return "Resources([" + "; ".join(_describe(resource) for resource in self) + "])"

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

    def shrink_to_quantities(self, targets: Mapping[str, int]) -> Resources:
        """Unreserved scalars cut down to ``targets`` (thousandths); names absent from
        ``targets`` are dropped. Meant for resources holding at most one scalar per name
        (unreserved, unallocated), where the cut is deterministic (quota's guarantees)."""
        kept = {}
        for key, value in self._items.items():
            target = targets.get(key[0], 0)
            if target > 0:
                kept[key] = min(value, target)
        return Resources._of(kept)

    def shrink_to_limits(self, limits: Mapping[str, int]) -> Resources:
        """As ``shrink_to_quantities``, but names absent from ``limits`` are unlimited."""
        kept = {}
        for key, value in self._items.items():
            limit = limits.get(key[0])
            if limit is None:
                kept[key] = value
            elif limit > 0:
                kept[key] = min(value, limit)
        return Resources._of(kept)

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
        # Kept once made: the allocator asks it of the same offered resources at every decline.
        unallocated = self._unallocated
        if unallocated is None:
            unallocated = self._unallocated = self._reallocated(None)
        return unallocated

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
        roles = {key[2] for key in self._items}
        if len(roles) == 1:  # the usual case: all of it allocated to one role
            return {roles.pop(): self}
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

    def to_wire(self) -> list[dict[str, Any]]:
        """``to_json()`` built once per value and shared by every message that carries it (an
        agent's resources go into every offer of it): read it, never change it."""
        wire = self._wire
        if wire is None:
            wire = self._wire = self.to_json()
        return wire


def _merge_into(items: dict[Key, Value], key: Key, value: Value) -> None:
    if _is_empty(value):
        return
    mine = items.get(key)
    items[key] = value if mine is None else _add(mine, value)


def _validated(items: Iterable[Resource]) -> list[Resource]:
    """Resources given by a user: valid names, and one type per name (as Mesos requires)."""
    items = list(items)
    kinds: dict[str, str] = {}
    for resource in items:
        validate_name(resource.name)
        kind = kinds.setdefault(resource.name, resource.type)
        if kind != resource.type:
            raise InvalidResources(
                f"resource {resource.name!r} is given both as {kind} and as {resource.type}; "
                "give each name one type"
            )
    return items


def _split_role(text: str, default_role: str) -> tuple[str, str]:
    if "(" not in text:
        return text, default_role
    name, _, rest = text.partition("(")
    if not rest.endswith(")") or ")" in rest[:-1]:
        raise InvalidResources(f"a reserved resource is written 'name(role)', got {text!r}")
    return name.strip(), _checked_role(rest[:-1].strip(), f"resource {name.strip()!r}")


def _static_stack(role: str) -> Reservations:
    return () if role == DEFAULT_ROLE else (Reservation(role, STATIC),)


def _parse_value(name: str, text: str) -> Value:
    what = f"resource {name!r}"
    if text.startswith("["):
        try:
            return Ranges.parse(text)
        except InvalidRanges as error:
            raise InvalidResources(f"{what}: {error}") from None
    if text.startswith("{"):
        if not text.endswith("}"):
            raise InvalidResources(f"{what}: a set is written '{{a,b}}', got {text!r}")
        return _checked_set([item.strip() for item in text[1:-1].split(",") if item.strip()], what)
    return to_millis(text, what)


def _checked_set(items: list[str], what: str) -> frozenset[str]:
    result = frozenset(items)
    if len(result) != len(items):
        repeated = sorted({item for item in items if items.count(item) > 1})
        raise InvalidResources(
            f"{what}: the set repeats {', '.join(map(repr, repeated))}; give each item once"
        )
    return result


def _format_value(value: Value) -> str:
    if type(value) is int:
        return format_millis(value)
    if isinstance(value, Ranges):
        return str(value)
    return "{" + ",".join(sorted(value)) + "}"


def _describe(resource: Resource) -> str:
    """Everything about one item, in the spirit of Mesos's stringified resources."""
    text = resource.name
    if resource.allocation_role is not None:
        text += f"(allocated: {resource.allocation_role})"
    if resource.reservations:
        stack = []
        for r in resource.reservations:
            fields = [r.type, r.role]
            if r.principal is not None:
                fields.append(r.principal)
            if r.labels:
                fields.append("{" + ",".join(f"{k}:{v}" for k, v in r.labels) + "}")
            stack.append("(" + ",".join(fields) + ")")
        text += "(reservations: [" + ",".join(stack) + "])"
    return f"{text}:{_format_value(resource.value)}"


# -- the JSON form -----------------------------------------------------------------------

_VALUE_FIELDS = {SCALAR: "scalar", RANGES: "ranges", SET: "set"}
_VALUE_SHAPES = {
    SCALAR: "'scalar': {'value': <number>}",
    RANGES: "'ranges': {'range': [{'begin': <integer>, 'end': <integer>}, ...]}",
    SET: "'set': {'item': a list of strings}",
}


def _resource_from_json(data: Any, default_role: str) -> Resource:
    if not isinstance(data, dict):
        raise InvalidResources(
            "a resource is a JSON object such as "
            f"{{'name': 'cpus', 'type': 'SCALAR', 'scalar': {{'value': 1}}}}, got {data!r}"
        )
    name = data.get("name")
    if not isinstance(name, str):
        raise InvalidResources(f"a resource needs a 'name' string, got {name!r} in {data!r}")
    what = f"resource {name!r}"
    for field in _UNMODELLED_FIELDS:
        if field in data:
            raise InvalidResources(
                f"{what} has {field!r}, which Corral does not model yet; "
                "give such resources without it or leave them out"
            )
    return Resource(
        name,
        _value_from_json(data, what),
        _reservations_from_json(data, what, default_role),
        _allocation_from_json(data, what),
    )


def _value_from_json(data: dict[str, Any], what: str) -> Value:
    kind = data.get("type")
    if kind is None:  # Mesos requires it; the value's field says it just as well
        present = [k for k, field in _VALUE_FIELDS.items() if field in data]
        if len(present) != 1:
            raise InvalidResources(
                f"{what} needs a 'type' (SCALAR, RANGES or SET) and a value of that type"
            )
        kind = present[0]
    if not isinstance(kind, str) or kind not in _VALUE_FIELDS:
        raise InvalidResources(f"{what} has type {kind!r}; the types are SCALAR, RANGES or SET")
    for other, field in _VALUE_FIELDS.items():
        if other != kind and field in data:
            raise InvalidResources(f"{what} is {kind} but also has {field!r}; give only one value")
    body = data.get(_VALUE_FIELDS[kind])
    shape_error = InvalidResources(
        f"{what} is {kind} and needs {_VALUE_SHAPES[kind]}, got {body!r}"
    )
    if kind == SCALAR:
        if not isinstance(body, dict) or "value" not in body:
            raise shape_error
        return to_millis(body["value"], what)
    if kind == RANGES:
        entries = body.get("range", []) if isinstance(body, dict) else None
        if not isinstance(entries, list):
            raise shape_error
        pairs = []
        for entry in entries:
            if not isinstance(entry, dict) or "begin" not in entry or "end" not in entry:
                raise InvalidResources(
                    f"{what}: a range is {{'begin': <integer>, 'end': <integer>}}, got {entry!r}"
                )
            pairs.append((entry["begin"], entry["end"]))
        try:
            return Ranges.validated(pairs)
        except InvalidRanges as error:
            raise InvalidResources(f"{what}: {error}") from None
    entries = body.get("item", []) if isinstance(body, dict) else None
    if not isinstance(entries, list):
        raise shape_error
    if not all(isinstance(item, str) for item in entries):
        raise InvalidResources(f"{what}: set items must be strings, got {entries!r}")
    return _checked_set(entries, what)


def _reservations_from_json(data: dict[str, Any], what: str, default_role: str) -> Reservations:
    """The stack, from either of Mesos's formats (or both, when they agree)."""
    has_role, has_legacy = "role" in data, "reservation" in data
    role = _checked_role(data["role"], what) if has_role else default_role
    legacy = data.get("reservation")
    if has_legacy and not isinstance(legacy, dict):
        raise InvalidResources(
            f"{what}: 'reservation' is an object with 'principal' and 'labels', got {legacy!r}"
        )
    stack_data = data.get("reservations")
    if not stack_data:  # the older format: 'role', and 'reservation' if dynamic
        if not has_legacy:
            return _static_stack(role)
        if role == DEFAULT_ROLE:
            raise InvalidResources(
                f"{what}: role '*' cannot be reserved; set 'role' or drop 'reservation'"
            )
        if "type" in legacy or "role" in legacy:
            raise InvalidResources(
                f"{what}: 'reservation' takes only 'principal' and 'labels' (its role is the "
                "resource's 'role'); use 'reservations' to give types and roles"
            )
        return (Reservation(role, DYNAMIC, *_reservation_details(legacy, what)),)
    if not isinstance(stack_data, list):
        raise InvalidResources(
            f"{what}: 'reservations' is a list of reservation objects, got {stack_data!r}"
        )
    stack = tuple(_reservation_from_json(item, what) for item in stack_data)
    for below, above in itertools.pairwise(stack):
        if above.type == STATIC:
            raise InvalidResources(
                f"{what}: the reservation to {above.role!r} refines another, so it cannot be "
                "STATIC; only the first reservation of a stack may be"
            )
        if not above.role.startswith(below.role + "/"):
            raise InvalidResources(
                f"{what}: the reservation to {above.role!r} is not a refinement of the one to "
                f"{below.role!r}; each must be to a sub-role of the one before"
            )
    if len(stack) > 1:
        if has_role or has_legacy:
            raise InvalidResources(
                f"{what}: 'role' and 'reservation' must not be set when 'reservations' holds "
                "more than one reservation; drop them"
            )
        return stack
    (only,) = stack
    if has_role and role != only.role:
        raise InvalidResources(
            f"{what}: 'role' {role!r} does not match the role {only.role!r} in "
            "'reservations'; drop 'role'"
        )
    if has_legacy:
        if only.type == STATIC:
            raise InvalidResources(
                f"{what}: 'reservation' must not be set when the reservation in "
                "'reservations' is STATIC; drop it"
            )
        if _reservation_details(legacy, what) != (only.principal, only.labels):
            raise InvalidResources(
                f"{what}: 'reservation' (principal, labels) does not match 'reservations'; "
                "drop 'reservation'"
            )
    return stack


def _reservation_from_json(item: Any, what: str) -> Reservation:
    if not isinstance(item, dict):
        raise InvalidResources(
            f"{what}: a reservation is an object such as {{'type': 'DYNAMIC', 'role': 'eng'}}, "
            f"got {item!r}"
        )
    for field in ("type", "role"):
        if field not in item:
            raise InvalidResources(f"{what}: the reservation {item!r} needs a {field!r}")
    try:
        return Reservation(item["role"], item["type"], *_reservation_details(item, what))
    except InvalidResources as error:
        raise InvalidResources(f"{what}: {error}") from None


def _reservation_details(item: dict[str, Any], what: str) -> tuple[str | None, tuple]:
    """(principal, labels) of a reservation object."""
    principal = item.get("principal")
    if principal is not None and not isinstance(principal, str):
        raise InvalidResources(f"{what}: a reservation's principal is a string, got {principal!r}")
    labels_data = item.get("labels")
    if labels_data is None:
        return principal, ()
    entries = labels_data.get("labels", []) if isinstance(labels_data, dict) else None
    if not isinstance(entries, list):
        raise InvalidResources(
            f"{what}: reservation labels are written {{'labels': [{{'key': k, 'value': v}}]}}, "
            f"got {labels_data!r}"
        )
    labels = []
    for entry in entries:
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("key"), str)
            or not isinstance(entry.get("value", ""), str)
        ):
            raise InvalidResources(
                f"{what}: each of a reservation's labels is {{'key': <string>, 'value': "
                f"<string>}} (value optional), got {entry!r}"
            )
        labels.append((entry["key"], entry.get("value", "")))
    return principal, tuple(labels)


def _allocation_from_json(data: dict[str, Any], what: str) -> str | None:
    if "allocation_info" not in data:
        return None
    info = data["allocation_info"]
    if not isinstance(info, dict):
        raise InvalidResources(
            f"{what}: 'allocation_info' is an object such as {{'role': 'eng'}}, got {info!r}"
        )
    role = info.get("role")
    return None if role is None else _checked_role(role, what)


def _checked_role(role: Any, what: str) -> str:
    try:
        return validate_role(role)
    except InvalidRole as error:
        raise InvalidResources(f"{what}: {error}") from None


def _resource_to_json(resource: Resource) -> dict[str, Any]:
    out: dict[str, Any] = {"name": resource.name, "type": resource.type}
    value = resource.value
    if type(value) is int:
        # whole amounts as integers, so that they stay exact whatever their size
        out["scalar"] = {"value": value // MILLI if value % MILLI == 0 else value / MILLI}
    elif isinstance(value, Ranges):
        out["ranges"] = {"range": [{"begin": b, "end": e} for b, e in value]}
    else:
        out["set"] = {"item": sorted(value)}
    if resource.reservations:
        out["reservations"] = [_reservation_to_json(r) for r in resource.reservations]
    if resource.allocation_role is not None:
        out["allocation_info"] = {"role": resource.allocation_role}
    return out


def _reservation_to_json(reservation: Reservation) -> dict[str, Any]:
    out: dict[str, Any] = {"type": reservation.type, "role": reservation.role}
    if reservation.principal is not None:
        out["principal"] = reservation.principal
    if reservation.labels:
        out["labels"] = {"labels": [{"key": k, "value": v} for k, v in reservation.labels]}
    return out
