"""The request rules every Mesos v1 endpoint shares (the master's and the agent's operator
``POST /api/v1``, ``/api/v1/scheduler``, ``/api/v1/executor``): which requests are refused
with which status, and the response shape.

As Mesos's ``src/master/http.cpp`` and ``src/slave/http.cpp`` answer: 405 (with ``Allow:
POST``) for another method, 400 for a missing Content-Type, 415 for one other than JSON
(Corral does not speak protobuf), 400 for a body that is not JSON, 406 for an Accept header
that JSON cannot meet (the most specific media range decides, as in Mesos). Operator calls
(``parse_call``) are also 400 when they name no known call and 501 for ``UNKNOWN``, and are
answered ``{"type": "GET_X", "get_x": {...}}``. Master and agent may not import each other,
so what they share lives here; each API keeps its own table of calls and its own parsing.

A body that nests arrays and objects more than ``MAX_DEPTH`` (64) levels deep is a 400 too,
found before it is parsed: Python's JSON parser recurses once per level, and so does much of
what reads a call, so 100,000 ``[`` would otherwise end in a ``RecursionError`` (a 500). The
deepest Mesos v1 call nests 16 levels (an ACCEPT launching a task group whose task's
container mounts a Docker volume with driver options); 64 leaves four times that, and keeps
everything that reads an accepted call far below the interpreter's recursion limit.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from typing import Any

from aiohttp import web

JSON = "application/json"
RECORDIO = "application/recordio"
DEFAULT_CALL = 'call such as {"type": "GET_HEALTH"}'  # what check_request asks to POST
MAX_DEPTH = 64  # arrays and objects nested in a request body, at most (see above)

_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))
_AS_SQUARE = bytes.maketrans(b"{}", b"[]")  # only the nesting counts, not its kind
_OPENING = ord("[")


class CallError(Exception):
    """A call refused before it changed anything: the status Mesos answers, and why (a
    sentence saying what was wrong and what to do)."""

    def __init__(self, status: int, reason: str, headers: Mapping[str, str] | None = None):
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = dict(headers or {})

    def response(self) -> web.Response:
        return text(self.status, self.reason, self.headers)


def text(status: int, message: str, headers: Mapping[str, str] | None = None) -> web.Response:
    """A plain-text answer of one line (what Mesos's clients print on an error)."""
    return web.Response(
        status=status,
        text=message.rstrip("\n") + "\n",
        content_type="text/plain",
        headers=dict(headers or {}),
    )


def header(headers: Mapping[str, str], name: str) -> str | None:
    """Every value of a header as one (a client may send Accept twice), or None."""
    getall = getattr(headers, "getall", None)
    if callable(getall):
        values = [str(value) for value in getall(name, [])]
    else:
        values = [headers[name]] if headers.get(name) is not None else []
    return ", ".join(values) if values else None


def accepts(accept: str | None, offered: Collection[str]) -> bool:
    """Whether an Accept header allows one of ``offered``, read as Mesos reads it (RFC 7231):
    for each offered type the most specific matching range decides (``type/subtype`` over
    ``type/*`` over ``*/*``) and ``q=0`` refuses; no header allows anything."""
    if not accept:
        return True
    ranges = [_media_range(part) for part in accept.split(",") if part.strip()]
    return any(_quality(ranges, media) > 0 for media in offered)


def _media_range(part: str) -> tuple[str, float]:
    """``("application/json", 0.5)`` from ``application/json; q=0.5``."""
    media, *params = (piece.strip() for piece in part.split(";"))
    quality = 1.0
    for param in params:
        name, _, number = param.partition("=")
        if name.strip().lower() == "q":
            try:
                quality = float(number)
            except ValueError:
                quality = 0.0  # unreadable: not an acceptance
    return media.lower(), quality


def _quality(ranges: list[tuple[str, float]], media: str) -> float:
    """The q the most specific range matching ``media`` gives it (0: none matches)."""
    kind = media.split("/", 1)[0]
    best = (-1, 0.0)
    for candidate, quality in ranges:
        specificity = {media: 2, f"{kind}/*": 1, "*/*": 0}.get(candidate)
        if specificity is not None and specificity > best[0]:
            best = (specificity, quality)
    return best[1]


def check_request(
    method: str, headers: Mapping[str, str], api: str, call: str = DEFAULT_CALL
) -> None:
    """A v1 call's method and Content-Type as Mesos checks them, or ``CallError``: 405 (with
    ``Allow: POST``), 400 without a Content-Type, 415 for one other than JSON.

    ``api`` names the endpoint ("the agent's /api/v1"), ``call`` what to POST there.
    """
    if method != "POST":
        raise CallError(
            405, f"{method} is not served on {api}: POST a JSON {call}", {"Allow": "POST"}
        )
    content_type = headers.get("Content-Type")
    if not content_type:
        raise CallError(400, f"Expecting 'Content-Type' to be present; send Content-Type: {JSON}")
    if content_type.split(";", 1)[0].strip().lower() != JSON:
        raise CallError(
            415,
            f"Expecting 'Content-Type' of {JSON}, got {content_type!r}: {api} reads JSON only "
            "(Corral does not speak protobuf)",
        )


def check_accept(
    headers: Mapping[str, str], offered: Collection[str], api: str, call_type: str
) -> None:
    """406 (``CallError``) unless the request's Accept allows one of ``offered``."""
    accept = header(headers, "Accept")
    if not accepts(accept, offered):
        raise CallError(
            406,
            f"Expecting 'Accept' to allow {' or '.join(offered)}, got {accept!r}: {api} "
            f"answers {call_type} in JSON only (not protobuf)",
        )


def json_body(body: bytes, call: str = DEFAULT_CALL) -> Any:
    """The request body parsed as JSON, or a 400 ``CallError`` saying what to send.

    Nothing nested deeper than ``MAX_DEPTH`` is parsed, so nothing that reads the result
    recurses past the interpreter's limit."""
    if not body.strip():
        raise CallError(400, f"the request has no body: POST a JSON {call}")
    if _nested_deeper_than(body, MAX_DEPTH):
        raise CallError(
            400,
            f"Failed to parse body into JSON: it nests arrays and objects more than "
            f"{MAX_DEPTH} levels deep, the most a call may (the deepest Mesos call nests 16); "
            f"POST a JSON {call}",
        )
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        raise CallError(
            400, f"Failed to parse body into JSON: {error}; POST a JSON {call}"
        ) from None


def _nested_deeper_than(body: bytes, limit: int) -> bool:
    """Whether ``body`` nests arrays and objects more than ``limit`` deep, told without
    parsing it: in time linear in its length, without recursion, and reading strings as
    the parser does (brackets inside a string nest nothing)."""
    # Escapes first (in a string a backslash only escapes; outside one the parser stops at
    # it), then every other piece between two quotes is outside the strings.
    unescaped = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    outside = b"".join(unescaped.split(b'"')[::2])
    brackets = outside.translate(_AS_SQUARE, _NOT_BRACKETS)
    if brackets.count(b"[") <= limit:  # too few openings to nest that deep
        return False
    # Fast (in C): each pass removes the innermost pairs; a balanced body at most ``limit``
    # deep is gone after ``limit`` passes. What remains (too deep, or not balanced) is
    # measured exactly below.
    left = brackets
    for _ in range(limit):
        fewer = left.replace(b"[]", b"")
        if not fewer:
            return False
        if fewer == left:
            break
        left = fewer
    depth = 0
    for byte in brackets:
        if byte == _OPENING:
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def parse_call(
    method: str,
    headers: Mapping[str, str],
    body: bytes,
    calls: Collection[str],
    api: str,
    answers: Mapping[str, Collection[str]] | None = None,
) -> tuple[str, dict[str, Any]]:
    """``(call type, the call's JSON object)`` of a v1 operator request, or ``CallError``.

    ``calls`` are every type the proto names (an implemented one or not: that is the
    caller's business); ``api`` names the endpoint in messages ("the agent's /api/v1");
    ``answers`` the media types a call may be answered in, when not only JSON.
    """
    check_request(method, headers, api)
    data = json_body(body)
    call_type = data.get("type") if isinstance(data, dict) else None
    if not isinstance(call_type, str) or call_type not in calls:
        raise CallError(
            400,
            f'the body must be a JSON object whose "type" is a call of {api} (e.g. '
            f"GET_STATE), got {json.dumps(data)[:200]}",
        )
    if call_type == "UNKNOWN":
        raise CallError(501, "UNKNOWN is not a call; give a call type, e.g. GET_STATE")
    check_accept(headers, (answers or {}).get(call_type, (JSON,)), api, call_type)
    assert isinstance(data, dict)
    return call_type, data


def section(call: Mapping[str, Any], call_type: str) -> dict[str, Any]:
    """The call's own object (``"list_files": {...}`` of LIST_FILES), or ``CallError``."""
    key = call_type.lower()
    value = call.get(key)
    if not isinstance(value, dict):
        raise CallError(400, f'{call_type} needs a "{key}" object, got {json.dumps(call)[:200]}')
    return value


def id_value(call: Mapping[str, Any], field: str, call_type: str) -> str:
    """``call[field]["value"]`` (an ``{"value": …}`` id), or ``CallError`` naming it."""
    value = call.get(field)
    if isinstance(value, dict):
        value = value.get("value")
    if not isinstance(value, str) or not value:
        raise CallError(
            400,
            f'{call_type} needs "{field}": {{"value": "<id>"}}, got {json.dumps(call)[:200]}',
        )
    return value


def answer(call_type: str, result: Mapping[str, Any]) -> web.Response:
    """Mesos's Response: ``{"type": "GET_X", "get_x": result}`` as JSON."""
    document = {"type": call_type, call_type.lower(): result}
    return web.Response(
        body=json.dumps(document, separators=(",", ":")).encode(), content_type=JSON
    )
