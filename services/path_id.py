"""Marathon's path ids: ``/shop/web`` is the app ``web`` in the group ``/shop``.

A relative id (``web``, ``../db``) is resolved against a base group; every stored id is
absolute and canonical (no trailing slash, no empty or dot segments).
"""

from __future__ import annotations

import re

# Marathon's segment rule: lower-case letters, digits, '-' and '.', starting and ending with
# a letter or digit ('.' and '..' are navigation, resolved away).
_SEGMENT = re.compile(
    r"^(([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9])\.)*([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9])$"
)


class InvalidPathId(ValueError):
    """An id that is not a path of valid segments."""


def canonical(path: str, base: str = "/") -> str:
    """The absolute, canonical form of ``path`` (relative ones are resolved under ``base``)."""
    if not isinstance(path, str) or not path.strip("/"):
        raise InvalidPathId(f"an id is a path such as '/shop/web', got {path!r}")
    parts = [] if path.startswith("/") else [p for p in base.split("/") if p]
    for segment in path.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if not parts:
                raise InvalidPathId(f"{path!r} goes above the root group '/'")
            parts.pop()
            continue
        if not _SEGMENT.match(segment):
            raise InvalidPathId(
                f"path segment {segment!r} of {path!r} is invalid: use lower-case letters, "
                "digits, '-' and '.', starting and ending with a letter or digit"
            )
        parts.append(segment)
    if not parts:
        raise InvalidPathId(f"{path!r} names the root group, not an app")
    return "/" + "/".join(parts)


def parent(path: str) -> str:
    """The group that holds ``path`` ('/' for a top-level app)."""
    head = path.rstrip("/").rpartition("/")[0]
    return head or "/"


def ancestors(path: str) -> list[str]:
    """Every group above ``path``, from the root down: ``/a/b/c`` → ['/', '/a', '/a/b']."""
    parts = [p for p in path.split("/") if p]
    return ["/"] + ["/" + "/".join(parts[:i]) for i in range(1, len(parts))]


def task_prefix(app_id: str) -> str:
    """What a task id of the app starts with: its segments joined by '_', as Marathon's
    (``/shop/web`` → ``shop_web``; a segment never holds '_', so the id can be read back)."""
    return "_".join(p for p in app_id.split("/") if p)


def app_of_task(task_id: str) -> str:
    """The app id a task id of ours names (``shop_web.<uuid>`` → ``/shop/web``)."""
    return "/" + task_id.partition(".")[0].replace("_", "/")


def is_within(path: str, group: str) -> bool:
    """Whether ``path`` is ``group`` or lies under it."""
    group = group.rstrip("/")
    return not group or path == group or path.startswith(group + "/")
