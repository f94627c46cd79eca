"""The request rules every Mesos v1 operator endpoint shares (the master's and the agent's
``POST /api/v1``): which requests are refused with which status, and the response shape.

As Mesos's ``src/master/http.cpp`` and ``src/slave/http.cpp`` answer: 405 (with ``Allow:
POST``) for another method, 400 for a missing Content-Type, 415 for one other than JSON
(Corral does not speak protobuf), 400 for a body that is not JSON or names no known call,
501 for ``UNKNOWN``, 406 for an Accept header that JSON cannot meet. A call is answered
``{"type": "GET_X", "get_x": {...}}``. Master and agent may not import each other, so what
they share lives here; each keeps its own table of calls.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from typing import Any

from aiohttp import web

JSON = "application/json"
RECORDIO = "application/recordio"


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


def accepts(header: str | None, offered: Collection[str]) -> bool:
    """Whether an Accept header allows one of ``offered`` (no header: anything)."""
    if not header:
        return True
    for part in header.split(","):
        media, _, params = part.strip().partition(";")
        media = media.strip().lower()
        quality = params.replace(" ", "").lower()
        if "q=0" in quality and "q=0." not in quality:
            continue  # explicitly refused
        if media in ("*/*", "application/*") or media in offered:
            return True
    return False


def parse_call(
    method: str,
    headers: Mapping[str, str],
    body: bytes,
    calls: Collection[str],
    api: str,
    answers: Mapping[str, Collection[str]] | None = None,
) -> tuple[str, dict[str, Any]]:
    """``(call type, the call's JSON object)`` of a v1 request, or ``CallError``.

    ``calls`` are every type the proto names (an implemented one or not: that is the
    caller's business); ``api`` names the endpoint in messages ("the agent's /api/v1");
    ``answers`` the media types a call may be answered in, when not only JSON.
    """
    if method != "POST":
        raise CallError(
            405,
            f'{method} is not served on {api}: POST a JSON call such as {{"type": "GET_HEALTH"}}',
            {"Allow": "POST"},
        )
    content_type = headers.get("Content-Type")
    if not content_type:
        raise CallError(
            400, "Expecting 'Content-Type' to be present; send Content-Type: application/json"
        )
    if content_type.split(";", 1)[0].strip().lower() != JSON:
        raise CallError(
            415,
            f"Content-Type {content_type!r} is not supported: {api} reads application/json "
            "calls (not protobuf)",
        )
    try:
        data = json.loads(body or b"null")
    except (ValueError, UnicodeDecodeError) as error:
        raise CallError(
            400, f'Failed to parse body into JSON ({error}); send {{"type": ...}}'
        ) from None
    call_type = data.get("type") if isinstance(data, dict) else None
    if not isinstance(call_type, str) or call_type not in calls:
        raise CallError(
            400,
            f'the body must be a JSON object whose "type" is a call of {api} (e.g. '
            f"GET_STATE), got {json.dumps(data)[:200]}",
        )
    if call_type == "UNKNOWN":
        raise CallError(501, "UNKNOWN is not a call; give a call type, e.g. GET_STATE")
    offered = (answers or {}).get(call_type, (JSON,))
    if not accepts(headers.get("Accept"), offered):
        raise CallError(
            406,
            f"cannot answer {call_type} as {headers.get('Accept')!r}: {api} answers "
            f"{' or '.join(offered)}",
        )
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
