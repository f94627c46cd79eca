"""Which headers cross the front door: a proxy drops the hop-by-hop ones (RFC 9110 §7.6.1)
in both directions, and tells the upstream who asked (``X-Forwarded-*``)."""

from __future__ import annotations

from collections.abc import Iterable

# Meaningful for one connection only; a proxy never forwards them. ``Host`` is the
# upstream's own (the client library sets it); ``Content-Length`` is set anew where the
# body is rewritten, else passed as is.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)


def end_to_end(headers: Iterable[tuple[str, str]], drop: Iterable[str] = ()) -> list[tuple]:
    """``headers`` without the hop-by-hop ones, those the ``Connection`` header names, and
    ``drop`` (lower case); repeated headers (``Set-Cookie``) stay repeated, in order."""
    pairs = list(headers)
    named = {
        token.strip().lower()
        for name, value in pairs
        if name.lower() == "connection"
        for token in value.split(",")
    }
    skip = HOP_BY_HOP | named | set(drop)
    return [(name, value) for name, value in pairs if name.lower() not in skip]


def forwarded_for(previous: str | None, client: str | None) -> str:
    """``X-Forwarded-For`` with the client appended, as proxies in a chain do."""
    client = client or "unknown"
    return f"{previous}, {client}" if previous else client
