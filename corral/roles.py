"""Role names: ``*`` (the default), or paths like ``eng/web`` forming a tree."""

from __future__ import annotations

DEFAULT_ROLE = "*"


class InvalidRole(ValueError):
    """A name that Mesos would not accept as a role."""


def validate_role(role: str) -> str:
    """Return ``role`` if valid; raise ``InvalidRole`` saying why not.

    Mesos's rules: ``*`` alone, or a path of components joined by single ``/``; no component
    is empty, ``.``, ``..`` or ``*``, starts with ``-``, or holds whitespace or a control
    character.
    """
    if role == DEFAULT_ROLE:
        return role
    if not isinstance(role, str) or not role:
        raise InvalidRole(f"a role is a non-empty string such as 'eng' or 'eng/web', got {role!r}")
    if role.startswith("/") or role.endswith("/"):
        raise InvalidRole(f"role {role!r} must not start or end with '/'; remove it")
    if "//" in role:
        raise InvalidRole(f"role {role!r} must not contain '//'; separate components by one '/'")
    for part in role.split("/"):
        if part in (".", ".."):
            raise InvalidRole(f"role {role!r} must not have {part!r} as a path component")
        if part == DEFAULT_ROLE:
            raise InvalidRole(
                f"role {role!r} must not have '*' as a path component ('*' is only a whole role)"
            )
        if part.startswith("-"):
            raise InvalidRole(f"role {role!r} has a component {part!r} starting with '-'")
        for ch in part:
            if ch.isspace():
                raise InvalidRole(f"role {role!r} must not contain whitespace, found {ch!r}")
            if ord(ch) < 32 or ch == "\x7f":
                raise InvalidRole(
                    f"role {role!r} must not contain control characters, found {ch!r}"
                )
    return role


def ancestors(role: str) -> list[str]:
    """``eng/web/api`` → ``["eng/web", "eng"]`` (nearest first)."""
    parts = role.split("/")
    return ["/".join(parts[:i]) for i in range(len(parts) - 1, 0, -1)]


def is_self_or_ancestor(candidate: str, role: str) -> bool:
    """Whether ``candidate`` is ``role`` or one of its ancestors."""
    return candidate == role or role.startswith(candidate + "/")
