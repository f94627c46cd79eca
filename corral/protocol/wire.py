"""The one codec behind every protocol type: dataclass annotations to Mesos's v1 wire shape.

Each protocol type is a frozen dataclass deriving from ``Wire``. Its field annotations say
everything the codec needs: ``str``, ``int``, ``float``, ``bool``, ``bytes``, an ``enum.Enum``
(wire form: the member's name), a typed id (``{"value": ...}``), ``Resources`` (Mesos's JSON
list), another ``Wire`` type, ``tuple[X, ...]`` (a list) and ``X | None``. A field without a
default is required. Field metadata covers Mesos's few wrapped shapes (``wrapped("labels")``
for ``{"labels": [...]}``, ``DURATION`` for ``{"nanoseconds": n}``) and extra checks on
values (``ROLE``).

Decoding validates everything and raises ``ProtocolError`` naming the field path; unknown
fields are ignored, as protobuf ignores them, so newer peers can add fields. A field sent as
``null`` counts as absent. One codec per class is built on first use and cached, since
offers and status updates are on the hot path.

Bytes stay ``bytes`` in the wire dict (msgpack carries them natively); ``json_compatible``
turns them into padded base64 text for JSON, and decoding accepts either form.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import enum
import math
import types
import typing
from collections.abc import Callable
from typing import Any, Self

from corral.ids import _ID, InvalidID
from corral.resources import InvalidResources, Resources
from corral.roles import InvalidRole, validate_role

Encode = Callable[[Any], Any]
Decode = Callable[[Any, str], Any]


class ProtocolError(ValueError):
    """A message or info that does not have the shape the protocol defines.

    ``path`` locates the field (``task_infos[0].resources``); ``problem`` says what was
    expected and what was found. The fault is the sender's: answer or log it, change nothing.
    """

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}" if path else problem)

    def within(self, prefix: str) -> ProtocolError:
        """The same error seen from an enclosing value at ``prefix``."""
        return ProtocolError(_join(prefix, self.path), self.problem)


def _join(prefix: str, path: str) -> str:
    if not prefix:
        return path
    if not path:
        return prefix
    return prefix + path if path.startswith("[") else f"{prefix}.{path}"


def found(value: Any) -> str:
    """How a wrong value is described in an error: its type, and a short text of it."""
    if value is None:
        return "null"
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    if isinstance(value, (dict, list, tuple)):
        return f"{_a(type(value).__name__)} {text}"
    return f"{_a(type(value).__name__)} ({text})"


def _a(noun: str) -> str:
    return f"an {noun}" if noun[:1].lower() in "aeiou" else f"a {noun}"


def _expected(path: str, what: str, value: Any) -> ProtocolError:
    return ProtocolError(path, f"expected {what}, got {found(value)}")


# -- field metadata -------------------------------------------------------------------------


def wrapped(key: str) -> dict[str, Any]:
    """Metadata for a tuple field whose wire form is ``{key: [...]}`` (Mesos's ``Labels``,
    ``Environment``...)."""
    return {"wrapped": key}


DURATION = {"duration": True}  # float seconds <-> Mesos's DurationInfo {"nanoseconds": n}
ROLE = {"check": validate_role}  # each value (or each item) must be a valid role name


class Wire:
    """Base of every protocol type: ``to_wire`` and ``from_wire`` through the shared codec.

    Subclasses are frozen dataclasses. ``_check`` may add rules across fields; it runs when a
    value is built (by hand or from the wire) and raises ``ProtocolError`` with a path
    relative to the value. Field types are checked only on the way in (``from_wire``): values
    built by Corral's own code are trusted, as type checkers can vouch for them.
    """

    __slots__ = ()

    def __post_init__(self) -> None:
        self._check()

    def _check(self) -> None:
        """Cross-field rules; none by default."""

    def to_wire(self) -> dict[str, Any]:
        return _codec_of(type(self))[0](self)

    @classmethod
    def from_wire(cls, data: Any) -> Self:
        """Validate ``data`` (a dict from msgpack or JSON) and build the value from it."""
        return _codec_of(cls)[1](data, "")


def json_compatible(data: Any) -> Any:
    """A wire value with its bytes as padded base64 text, ready for ``json.dumps``."""
    if isinstance(data, bytes):
        return base64.b64encode(data).decode("ascii")
    if isinstance(data, dict):
        return {key: json_compatible(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [json_compatible(value) for value in data]
    return data


# -- building codecs ------------------------------------------------------------------------

_CODECS: dict[type, tuple[Encode, Decode]] = {}


def _codec_of(cls: type) -> tuple[Encode, Decode]:
    codec = _CODECS.get(cls)
    if codec is None:
        codec = _CODECS[cls] = _dataclass_codec(cls)
    return codec


def _dataclass_codec(cls: type) -> tuple[Encode, Decode]:
    hints = typing.get_type_hints(cls)
    specs = []
    for field in dataclasses.fields(cls):
        required = (
            field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
        )
        encode, decode, what = _field_codec(hints[field.name], field.metadata)
        specs.append((field.name, required, encode, decode, what))
    shape = _a(f"{cls.__name__} object")

    def encode(value: Any) -> dict[str, Any]:
        out = {}
        for name, required, field_encode, _, _ in specs:
            item = getattr(value, name)
            if item is None or (not required and _is_empty(item)):
                continue
            out[name] = field_encode(item)
        return out

    def decode(data: Any, path: str) -> Any:
        if not isinstance(data, dict):
            raise _expected(path, shape, data)
        kwargs = {}
        for name, required, _, field_decode, what in specs:
            item = data.get(name)
            if item is None:
                if required:
                    raise ProtocolError(
                        _join(path, name), f"a required field is missing; expected {what}"
                    )
                continue
            kwargs[name] = field_decode(item, _join(path, name))
        try:
            return cls(**kwargs)
        except ProtocolError as error:
            raise error.within(path) from None

    return encode, decode


def _is_empty(value: Any) -> bool:
    return (isinstance(value, tuple) and not value) or (isinstance(value, Resources) and not value)


def _field_codec(tp: Any, metadata: Any) -> tuple[Encode, Decode, str]:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [arg for arg in typing.get_args(tp) if arg is not type(None)]
        if len(args) != 1:
            raise TypeError(f"protocol fields are X or X | None, not {tp}")
        tp = args[0]  # None is handled by the dataclass codec (absent)
    if "duration" in metadata:
        return _encode_duration, _decode_duration, "a duration {'nanoseconds': <int>}"
    if "wrapped" in metadata:
        return _wrapped_codec(tp, metadata["wrapped"], metadata)
    return _type_codec(tp, metadata.get("check"))


def _type_codec(tp: Any, check: Callable[[Any], Any] | None) -> tuple[Encode, Decode, str]:
    if typing.get_origin(tp) is tuple:
        item_tp, ellipsis = typing.get_args(tp)
        assert ellipsis is Ellipsis, f"protocol tuples are tuple[X, ...], not {tp}"
        return _tuple_codec(*_type_codec(item_tp, check))
    if isinstance(tp, type) and issubclass(tp, _ID):
        return _id_codec(tp)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return _enum_codec(tp)
    if tp is Resources:
        return _encode_resources, _decode_resources, "a list of resources"
    if isinstance(tp, type) and issubclass(tp, Wire):
        return (
            lambda value: _codec_of(tp)[0](value),
            lambda data, path: _codec_of(tp)[1](data, path),
            _a(f"{tp.__name__} object"),
        )
    if tp in _SCALARS:
        encode, decode, what = _SCALARS[tp]
        if check is not None:
            decode = _checked(decode, check)
        return encode, decode, what
    raise TypeError(f"no protocol codec for {tp!r}")


def _identity(value: Any) -> Any:
    return value


def _decode_str(data: Any, path: str) -> str:
    if not isinstance(data, str):
        raise _expected(path, "a str", data)
    return data


def _decode_bool(data: Any, path: str) -> bool:
    if not isinstance(data, bool):
        raise _expected(path, "a bool (true or false)", data)
    return data


def _decode_int(data: Any, path: str) -> int:
    if not isinstance(data, int) or isinstance(data, bool):
        raise _expected(path, "an int", data)
    return data


def _decode_float(data: Any, path: str) -> float:
    if not isinstance(data, (int, float)) or isinstance(data, bool):
        raise _expected(path, "a number", data)
    value = float(data)
    if not math.isfinite(value):
        raise _expected(path, "a finite number", data)
    return value


def _decode_bytes(data: Any, path: str) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, str):  # the JSON form
        try:
            return base64.b64decode(data, validate=True)
        except binascii.Error:
            pass
    raise _expected(path, "bytes (padded base64 text in JSON)", data)


_SCALARS: dict[Any, tuple[Encode, Decode, str]] = {
    str: (_identity, _decode_str, "a str"),
    bool: (_identity, _decode_bool, "a bool"),
    int: (_identity, _decode_int, "an int"),
    float: (_identity, _decode_float, "a number"),
    bytes: (_identity, _decode_bytes, "bytes"),
}


def _checked(decode: Decode, check: Callable[[Any], Any]) -> Decode:
    def checked(data: Any, path: str) -> Any:
        value = decode(data, path)
        try:
            check(value)
        except (InvalidRole, ValueError) as error:
            raise ProtocolError(path, str(error)) from None
        return value

    return checked


def _tuple_codec(encode: Encode, decode: Decode, what: str) -> tuple[Encode, Decode, str]:
    def encode_all(value: tuple) -> list:
        return [encode(item) for item in value]

    def decode_all(data: Any, path: str) -> tuple:
        if not isinstance(data, (list, tuple)):
            raise _expected(path, f"a list of {_plural(what)}", data)
        return tuple(decode(item, f"{path}[{index}]") for index, item in enumerate(data))

    return encode_all, decode_all, f"a list of {_plural(what)}"


def _plural(what: str) -> str:
    """``a str`` -> ``strs``; a described shape -> ``items, each <shape>``."""
    for article in ("a ", "an "):
        if what.startswith(article) and " " not in what[len(article) :]:
            return what[len(article) :] + "s"
    if what.endswith(" object"):
        return what.split(" ", 1)[1].replace(" object", " objects")
    noun, brace, shape = what.partition(" {")
    if brace and noun.startswith(("a ", "an ")):  # "an offer id {...}" -> "offer ids ({...} each)"
        return f"{noun.split(' ', 1)[1]}s ({{{shape} each)"
    return f"items, each {what}"


def _wrapped_codec(tp: Any, key: str, metadata: Any) -> tuple[Encode, Decode, str]:
    encode_all, decode_all, what = _type_codec(tp, metadata.get("check"))
    shape = f"{{'{key}': {what}}}"

    def encode(value: tuple) -> dict[str, list]:
        return {key: encode_all(value)}

    def decode(data: Any, path: str) -> tuple:
        if not isinstance(data, dict):
            raise _expected(path, shape, data)
        items = data.get(key)
        return () if items is None else decode_all(items, f"{path}.{key}")

    return encode, decode, shape


def _id_codec(cls: type[_ID]) -> tuple[Encode, Decode, str]:
    what = _a(f"{cls.KIND} {{'value': <text>}}")

    def encode(value: _ID) -> dict[str, str]:
        return {"value": str(value)}

    def decode(data: Any, path: str) -> _ID:
        if not isinstance(data, dict):
            raise _expected(path, what, data)
        text = data.get("value")
        if not isinstance(text, str):
            raise _expected(f"{path}.value", "a str", text)
        try:
            return cls(text)
        except InvalidID as error:
            raise ProtocolError(path, str(error)) from None

    return encode, decode, what


def _enum_codec(cls: type[enum.Enum]) -> tuple[Encode, Decode, str]:
    names = list(cls.__members__)
    listed = ", ".join(names) if len(names) <= 8 else ", ".join(names[:4]) + ", ..."
    what = _a(f"{cls.__name__} name ({listed})")
    members = {member.value: member for member in cls}

    def encode(value: enum.Enum) -> str:
        return value.value

    def decode(data: Any, path: str) -> enum.Enum:
        member = members.get(data) if isinstance(data, str) else None
        if member is None:
            raise _expected(path, what, data)
        return member

    return encode, decode, what


def _encode_resources(value: Resources) -> list[dict[str, Any]]:
    return value.to_json()


def _decode_resources(data: Any, path: str) -> Resources:
    if not isinstance(data, list):
        raise _expected(path, "a list of resources", data)
    try:
        return Resources.from_json(data)
    except InvalidResources as error:
        raise ProtocolError(path, str(error)) from None


def _encode_duration(seconds: float) -> dict[str, int]:
    return {"nanoseconds": round(seconds * 1e9)}


def _decode_duration(data: Any, path: str) -> float:
    if not isinstance(data, dict):
        raise _expected(path, "a duration {'nanoseconds': <int>}", data)
    nanoseconds = _decode_int(data.get("nanoseconds"), f"{path}.nanoseconds")
    if nanoseconds < 0:
        raise _expected(f"{path}.nanoseconds", "a duration of 0 or more", nanoseconds)
    return nanoseconds / 1e9
