"""Resource quantities: scalar amounts by name, in thousandths (quota, DRF, minimums).

A quantities value is a plain ``dict[str, int]`` with positive amounts only; these
functions never mutate their arguments unless their name says ``_into``.
"""

from __future__ import annotations

from collections.abc import Mapping

from corral.resources import InvalidResources, format_millis, to_millis, validate_name

Quantities = dict[str, int]


def parse_quantities(text: str) -> Quantities:
    """``cpus:10;mem:4096`` → quantities; names repeat at most once, values are scalars."""
    result: Quantities = {}
    for part in text.split(";"):
        part = part.strip()
        if not part:
            continue
        name, colon, value = part.partition(":")
        name = name.strip()
        if not colon or not name:
            raise InvalidResources(f"a quantity is written 'name:value', got {part!r}")
        validate_name(name, "quantity")
        if name in result:
            raise InvalidResources(f"quantity {name!r} is given twice; give each name once")
        amount = to_millis(value.strip(), f"quantity {name!r}")
        if amount:
            result[name] = amount
    return result


def quantities_from_mapping(values: Mapping[str, float]) -> Quantities:
    """From ``{"cpus": 1.5}`` (floats, as users and JSON give them)."""
    result: Quantities = {}
    for name, value in values.items():
        validate_name(name, "quantity")
        amount = to_millis(value, f"quantity {name!r}")
        if amount:
            result[name] = amount
    return result


def add(a: Mapping[str, int], b: Mapping[str, int]) -> Quantities:
    result = dict(a)
    for name, amount in b.items():
        result[name] = result.get(name, 0) + amount
    return result


def add_into(target: dict[str, int], b: Mapping[str, int]) -> None:
    for name, amount in b.items():
        target[name] = target.get(name, 0) + amount


def subtract(a: Mapping[str, int], b: Mapping[str, int]) -> Quantities:
    """``a - b`` clamped at zero; names that reach zero disappear."""
    result = dict(a)
    for name, amount in b.items():
        left = result.get(name, 0) - amount
        if left > 0:
            result[name] = left
        else:
            result.pop(name, None)
    return result


def subtract_into(target: dict[str, int], b: Mapping[str, int]) -> None:
    for name, amount in b.items():
        left = target.get(name, 0) - amount
        if left > 0:
            target[name] = left
        else:
            target.pop(name, None)


def contains(a: Mapping[str, int], b: Mapping[str, int]) -> bool:
    return all(a.get(name, 0) >= amount for name, amount in b.items())


def format_quantities(quantities: Mapping[str, int]) -> str:
    """``cpus:1.5;mem:4096``, names sorted; exact, so ``parse_quantities`` reads it back."""
    return ";".join(
        f"{name}:{format_millis(amount)}" for name, amount in sorted(quantities.items())
    )
