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

from corral.ids import _ID, InvalidID, OfferID
from corral.memo import BoundedMemo
from corral.resources import InvalidResources, Resources
from corral.roles import InvalidRole, validate_role

Encode = Callable[[Any], Any]
Decode = Callable[[Any], Any]  # raises ProtocolError with a path relative to its input


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
        return _codec_of(cls)[1](data)


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
#
# Each protocol class gets an encoder and a decoder generated as Python source from its field
# annotations, compiled once and cached: scalar checks are inlined, so decoding a message costs
# a few dict lookups and type tests per field rather than a chain of calls. A decoder takes only
# the data; a ProtocolError raised below a field is re-raised with the field's name prefixed
# (``within``), so error paths cost nothing until something is wrong.

_CODECS: dict[type, tuple[Encode, Decode]] = {}

# A bounded memo of the ids that recur in nearly every message (an agent's or a framework's
# id in each update), each validated once, when it first came in. (Resources have their own:
# Resources.from_wire.)
MEMO_LIMIT = 65_536


_BUILDING: set[type] = set()  # classes whose codec is being built (a type may contain itself)


def _codec_of(cls: type) -> tuple[Encode, Decode]:
    codec = _CODECS.get(cls)
    if codec is None:
        _BUILDING.add(cls)
        try:
            codec = _CODECS[cls] = _dataclass_codec(cls)
        finally:
            _BUILDING.discard(cls)
    return codec


def _dataclass_codec(cls: type) -> tuple[Encode, Decode]:
    hints = typing.get_type_hints(cls)
    env: dict[str, Any] = {
        "cls": cls,
        "new": object.__new__,
        "ProtocolError": ProtocolError,
        "expected": _expected,
        "isfinite": math.isfinite,
        "SHAPE": _a(f"{cls.__name__} object"),
    }
    encode_lines = ["def encode(value):", "    out = {}"]
    # A slotted class's fields are set through their slots' descriptors (past the frozen
    # __setattr__); others' are stored in field order, as __init__ stores them, so the
    # instance's dict stays a compact key-sharing one (a master holds hundreds of thousands).
    slots = _slot_setters(cls)
    decode_lines = [
        "def decode(data):",
        "    if type(data) is not dict and not isinstance(data, dict):",
        "        raise expected('', SHAPE, data)",
        "    get = data.get",
        "    value = new(cls)",
    ]
    if slots is None:
        decode_lines.append("    fields = value.__dict__")
    else:
        env.update({f"set{index}": setter for index, setter in enumerate(slots)})
    for index, field in enumerate(dataclasses.fields(cls)):
        name = field.name
        required = (
            field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
        )
        plan = _field_plan(hints[name], field.metadata)
        tag = f"{index}"
        env[f"enc{tag}"] = plan.encode
        env[f"dec{tag}"] = plan.decode
        env[f"what{tag}"] = plan.what
        # encode: absent (None) fields are left out, and so are optional empty lists
        emptiable = plan.emptiable and not required
        encode_lines += [
            f"    x = value.{name}",
            "    if x:" if emptiable else "    if x is not None:",
            f"        out[{name!r}] = {plan.encode_expr.format(x='x', enc=f'enc{tag}')}",
        ]
        # decode: absent or null is the default
        decode_lines += [f"    v = get({name!r})", "    if v is None:"]
        if required:
            missing = f"a required field is missing; expected {plan.what}"
            decode_lines.append(f"        raise ProtocolError({name!r}, {missing!r})")
        elif field.default_factory is not dataclasses.MISSING:
            env[f"default{tag}"] = field.default_factory
            decode_lines.append(f"        v = default{tag}()")
        else:
            env[f"default{tag}"] = field.default
            decode_lines.append(f"        v = default{tag}")
        decode_lines.append("    else:")
        decode_lines += [
            "        " + line.format(v="v", name=repr(name), dec=f"dec{tag}", what=f"what{tag}")
            for line in plan.decode_lines
        ]
        if slots is None:
            decode_lines.append(f"    fields[{name!r}] = v")
        else:
            decode_lines.append(f"    set{tag}(value, v)")
    if cls._check is not Wire._check:
        decode_lines.append("    value._check()")
    decode_lines.append("    return value")
    encode_lines.append("    return out")
    source = "\n".join(encode_lines + decode_lines) + "\n"
    exec(compile(source, f"<protocol codec of {cls.__qualname__}>", "exec"), env)
    return env["encode"], env["decode"]


def _slot_setters(cls: type) -> list[Callable[[Any, Any], None]] | None:
    """The ``__set__`` of each field's slot, in field order; None when instances have a
    ``__dict__`` (a class declared without ``slots=True``)."""
    if cls.__dictoffset__ != 0:
        return None
    setters = []
    for field in dataclasses.fields(cls):
        owner = next(klass for klass in cls.__mro__ if field.name in vars(klass))
        setters.append(vars(owner)[field.name].__set__)
    return setters


@dataclasses.dataclass(frozen=True)
class _FieldPlan:
    """How one field is coded: ``encode_expr`` builds the wire value of ``{x}`` (with ``{enc}``
    the field's item encoder); ``decode_lines`` turn ``{v}`` into the value or raise."""

    encode_expr: str
    encode: Encode | None
    decode_lines: tuple[str, ...]
    decode: Decode | None
    what: str
    emptiable: bool = False  # an empty value (no items) is left out when optional


# Decode ``{v}`` with ``{dec}``, naming the field in any error from below.
_CALL = (
    "try:",
    "    {v} = {dec}({v})",
    "except ProtocolError as error:",
    "    raise error.within({name}) from None",
)


def _field_plan(tp: Any, metadata: Any) -> _FieldPlan:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [arg for arg in typing.get_args(tp) if arg is not type(None)]
        if len(args) != 1:
            raise TypeError(f"protocol fields are X or X | None, not {tp}")
        tp = args[0]  # None is handled by the dataclass codec (absent)
    if "duration" in metadata:
        what = "a duration {'nanoseconds': <int>}"
        return _FieldPlan("{enc}({x})", _encode_duration, _CALL, _decode_duration, what)
    if "wrapped" in metadata:
        encode, decode, what = _wrapped_codec(tp, metadata["wrapped"], metadata)
        return _FieldPlan("{enc}({x})", encode, _CALL, decode, what, emptiable=True)
    check = metadata.get("check")
    if check is None and tp in _INLINE:
        return _INLINE[tp]
    if isinstance(tp, type) and issubclass(tp, enum.Enum) and check is None:
        members, what = _enum_members(tp)
        lines = (
            "member = {dec}.get({v}) if isinstance({v}, str) else None",
            "if member is None:",
            "    raise expected({name}, {what}, {v})",
            "{v} = member",
        )
        return _FieldPlan("{x}.value", None, lines, members, what)
    encode, decode, what = _type_codec(tp, check)
    emptiable = typing.get_origin(tp) is tuple or tp is Resources
    if isinstance(tp, type) and issubclass(tp, _ID):
        return _FieldPlan("{{'value': str({x})}}", None, _CALL, decode, what)
    if tp is Resources:
        return _FieldPlan("{x}.to_wire()", None, _CALL, decode, what, emptiable=True)
    if isinstance(tp, type) and issubclass(tp, Wire):
        return _FieldPlan("{x}.to_wire()", None, _CALL, decode, what)
    return _FieldPlan("{enc}({x})", encode, _CALL, decode, what, emptiable=emptiable)


def _scalar_plan(tp: type, fast: str) -> _FieldPlan:
    """A scalar: ``fast`` accepts the usual case inline; anything else goes to the full check."""
    _, decode, what = _SCALARS[tp]
    return _FieldPlan(
        "{x}", None, (f"if not ({fast}):", "    {v} = {dec}({v}, {name})"), decode, what
    )


def _type_codec(tp: Any, check: Callable[[Any], Any] | None) -> tuple[Encode, Decode, str]:
    """One-argument codecs for a type (items of lists and wrapped lists, nested values)."""
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
        what = _a(f"{tp.__name__} object")
        if tp in _BUILDING:  # a type within itself: look its codec up when it is used
            return (
                lambda value: _codec_of(tp)[0](value),
                lambda data: _codec_of(tp)[1](data),
                what,
            )
        return (*_codec_of(tp), what)
    if tp in _SCALARS:
        _, decode, what = _SCALARS[tp]
        if check is not None:
            decode = _checked(decode, check)
        return _identity, lambda data: decode(data, ""), what
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


_SCALARS: dict[Any, tuple[Encode, Callable[[Any, str], Any], str]] = {
    str: (_identity, _decode_str, "a str"),
    bool: (_identity, _decode_bool, "a bool"),
    int: (_identity, _decode_int, "an int"),
    float: (_identity, _decode_float, "a number"),
    bytes: (_identity, _decode_bytes, "bytes"),
}

_INLINE: dict[Any, _FieldPlan] = {
    str: _scalar_plan(str, "type({v}) is str"),
    bool: _scalar_plan(bool, "{v} is True or {v} is False"),
    int: _scalar_plan(int, "type({v}) is int"),
    float: _scalar_plan(float, "type({v}) is float and isfinite({v})"),
    bytes: _scalar_plan(bytes, "type({v}) is bytes"),
}


def _checked(decode: Callable[[Any, str], Any], check: Callable[[Any], Any]) -> Callable:
    def checked(data: Any, path: str) -> Any:
        value = decode(data, path)
        try:
            check(value)
        except (InvalidRole, ValueError) as error:
            raise ProtocolError(path, str(error)) from None
        return value

    return checked


def _tuple_codec(encode: Encode, decode: Decode, what: str) -> tuple[Encode, Decode, str]:
    shape = f"a list of {_plural(what)}"

    def encode_all(value: tuple) -> list:
        return [encode(item) for item in value]

    def decode_all(data: Any) -> tuple:
        if not isinstance(data, (list, tuple)):
            raise _expected("", shape, data)
        try:
            return tuple([decode(item) for item in data])
        except ProtocolError:
            for index, item in enumerate(data):  # find which item, to say so
                try:
                    decode(item)
                except ProtocolError as error:
                    raise error.within(f"[{index}]") from None
            raise

    return encode_all, decode_all, shape


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

    def decode(data: Any) -> tuple:
        if not isinstance(data, dict):
            raise _expected("", shape, data)
        items = data.get(key)
        if items is None:
            return ()
        try:
            return decode_all(items)
        except ProtocolError as error:
            raise error.within(key) from None

    return encode, decode, shape


def _id_codec(cls: type[_ID]) -> tuple[Encode, Decode, str]:
    what = _a(f"{cls.KIND} {{'value': <text>}}")
    # An offer id comes back once (an accept or a decline): remembering it would only push
    # out the ids that recur. The others are looked up before they are validated.
    known: BoundedMemo[str, _ID] | None = None if cls is OfferID else BoundedMemo(MEMO_LIMIT)

    def encode(value: _ID) -> dict[str, str]:
        return {"value": str(value)}

    def decode(data: Any) -> _ID:
        if not isinstance(data, dict):
            raise _expected("", what, data)
        text = data.get("value")
        if type(text) is cls:  # delivered in-process: already an id of this kind
            return text
        if not isinstance(text, str):
            raise _expected("value", "a str", text)
        value = known.get(text) if known is not None else None
        if value is None:
            try:
                value = cls(text)
            except InvalidID as error:
                raise ProtocolError("", str(error)) from None
            if known is not None:
                known.put(value, value)
        return value

    return encode, decode, what


def _enum_members(cls: type[enum.Enum]) -> tuple[dict[Any, enum.Enum], str]:
    names = list(cls.__members__)
    listed = ", ".join(names) if len(names) <= 8 else ", ".join(names[:4]) + ", ..."
    return {member.value: member for member in cls}, _a(f"{cls.__name__} name ({listed})")


def _enum_codec(cls: type[enum.Enum]) -> tuple[Encode, Decode, str]:
    members, what = _enum_members(cls)

    def encode(value: enum.Enum) -> str:
        return value.value

    def decode(data: Any) -> enum.Enum:
        member = members.get(data) if isinstance(data, str) else None
        if member is None:
            raise _expected("", what, data)
        return member

    return encode, decode, what


def _encode_resources(value: Resources) -> list[dict[str, Any]]:
    return value.to_wire()


def _decode_resources(data: Any) -> Resources:
    if not isinstance(data, list):
        raise _expected("", "a list of resources", data)
    try:
        return Resources.from_wire(data)
    except InvalidResources as error:
        raise ProtocolError("", str(error)) from None


def _encode_duration(seconds: float) -> dict[str, int]:
    return {"nanoseconds": round(seconds * 1e9)}


def _decode_duration(data: Any) -> float:
    if not isinstance(data, dict):
        raise _expected("", "a duration {'nanoseconds': <int>}", data)
    nanoseconds = _decode_int(data.get("nanoseconds"), "nanoseconds")
    if nanoseconds < 0:
        raise _expected("nanoseconds", "a duration of 0 or more", nanoseconds)
    return nanoseconds / 1e9
