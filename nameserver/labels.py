"""DNS-safe names from task and framework names, by Mesos-DNS's rules.

A label keeps ``[a-z0-9-]``: capitals are lowered, ``.`` and ``_`` become ``-``, anything else
is dropped; leading hyphens (RFC 952: also leading digits) go, the label is cut to its length
limit (RFC 1123: 63, RFC 952: 24) and trailing hyphens go. ``Web Server`` is ``webserver``,
``my_app.v2`` as a framework name is the two labels ``my-app.v2``.
"""

from __future__ import annotations

from collections.abc import Callable

Label = Callable[[str], str]

RFC1123_LENGTH = 63
RFC952_LENGTH = 24
_HYPHENATED = frozenset("-._")


def _mapped(name: str) -> str:
    kept = []
    for char in name:
        if "a" <= char <= "z" or "0" <= char <= "9":
            kept.append(char)
        elif "A" <= char <= "Z":
            kept.append(char.lower())
        elif char in _HYPHENATED:
            kept.append("-")
    return "".join(kept)


def _cut(mapped: str, length: int, leading: str) -> str:
    """Cut to ``length``; when the cut leaves trailing hyphens, what follows the hyphens fills
    their place (as Mesos-DNS does), so a long name keeps as many letters as it can."""
    trimmed = mapped.lstrip(leading)
    head = trimmed[:length].rstrip("-")
    if len(head) < min(length, len(trimmed)):
        tail = trimmed[length:].lstrip("-")
        head = head + tail[: length - len(head)]
    return head.rstrip("-")


def rfc1123(name: str) -> str:
    """A label by RFC 1123 (may start with a digit, up to 63 characters); "" if nothing is
    left of the name."""
    return _cut(_mapped(name), RFC1123_LENGTH, "-")


def rfc952(name: str) -> str:
    """A label by RFC 952 (starts with a letter, up to 24 characters): Mesos-DNS's
    ``EnforceRFC952``."""
    return _cut(_mapped(name), RFC952_LENGTH, "-0123456789")


def domain_fragment(name: str, label: Label) -> str:
    """A dotted name (a framework's) as one or more labels joined by dots; empty parts
    vanish."""
    return ".".join(part for part in (label(piece) for piece in name.split(".")) if part)
