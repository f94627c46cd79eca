"""Role names: ``*`` (the default), or paths like ``eng/web`` forming a tree."""

from __future__ import annotations

DEFAULT_ROLE = "*"


class InvalidRole(ValueError):
    """A name that Mesos would not accept as a role."""


def validate_role(role: str) -> str:
    """Return ``role`` if valid; raise ``InvalidRole`` saying why not."""
    if role == DEFAULT_ROLE:
        return role
    if not isinstance(role, str) or not role:
        raise InvalidRole(f"a role is a non-empty string, got {role!r}")
    if role.startswith("/") or role.endswith("/"):
        raise InvalidRole(f"role {role!r} must not start or end with '/'")
    for part in role.split("/"):
        if part in ("", ".", ".."):
            raise InvalidRole(f"role {role!r} has an empty, '.' or '..' path component")
        if part.startswith("-"):
            raise InvalidRole(f"role {role!r} has a component starting with '-'")
        if part == DEFAULT_ROLE:
            raise InvalidRole(f"role {role!r} uses '*' as a path component")
        if any(ch.isspace() or ord(ch) < 32 or ch == "\x7f" for ch in part):
            raise InvalidRole(f"role {role!r} contains whitespace or control characters")
    return role


def ancestors(role: str) -> list[str]:
    """``eng/web/api`` → ``["eng/web", "eng"]`` (nearest first)."""
    parts = role.split("/")
    return ["/".join(parts[:i]) for i in range(len(parts) - 1, 0, -1)]


def is_self_or_ancestor(candidate: str, role: str) -> bool:
    """Whether ``candidate`` is ``role`` or one of its ancestors."""
    return candidate == role or role.startswith(candidate + "/")
