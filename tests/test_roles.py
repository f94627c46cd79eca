"""Role names as Mesos validates them, and the role tree (ancestors)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corral.roles import DEFAULT_ROLE, InvalidRole, ancestors, is_self_or_ancestor, validate_role


@pytest.mark.parametrize(
    "role",
    [
        "*",
        "eng",
        "eng/web",
        "eng/web/api",
        "a",
        "a.b",
        ".a",
        "a.",
        "...",
        "..a",
        "a-b",
        "a-",
        "a*",
        "*a",
        "a/*b",
        "ops_1",
        "\u00e9quipe",
        "x" * 300,
    ],
)
def test_valid_roles(role: str) -> None:
    assert validate_role(role) == role


@pytest.mark.parametrize(
    "role, expected",
    [
        ("", "non-empty"),
        (".", "'.'"),
        ("..", "'..'"),
        ("eng/.", "'.'"),
        ("eng/../ops", "'..'"),
        ("-eng", "'-'"),
        ("eng/-web", "'-'"),
        ("/eng", "start or end with '/'"),
        ("eng/", "start or end with '/'"),
        ("/", "start or end with '/'"),
        ("eng//web", "'//'"),
        ("*/eng", "'*'"),
        ("eng/*", "'*'"),
        ("eng/*/web", "'*'"),
        ("**", None),  # allowed: only a component that is exactly '*' is refused
        ("en g", "whitespace"),
        (" eng", "whitespace"),
        ("eng\t", "whitespace"),
        ("eng\nweb", "whitespace"),
        ("eng\rweb", "whitespace"),
        ("eng\x0bweb", "whitespace"),
        ("eng\x0cweb", "whitespace"),
        ("eng\x00", "control"),
        ("eng\x1b", "control"),
        ("eng\x7f", "control"),
        ("eng\u00a0web", "whitespace"),
    ],
)
def test_invalid_roles(role: str, expected: str | None) -> None:
    if expected is None:
        assert validate_role(role) == role
        return
    with pytest.raises(InvalidRole) as error:
        validate_role(role)
    assert expected in str(error.value)
    if role:
        assert repr(role) in str(error.value), "the message names the role"


@pytest.mark.parametrize("role", [None, 5, b"eng", ["eng"]])
def test_non_string_roles_are_refused(role: object) -> None:
    with pytest.raises(InvalidRole, match="string"):
        validate_role(role)  # type: ignore[arg-type]


def test_invalid_role_is_a_value_error() -> None:
    assert issubclass(InvalidRole, ValueError)
    assert DEFAULT_ROLE == "*"


def test_ancestors() -> None:
    assert ancestors("eng/web/api") == ["eng/web", "eng"]
    assert ancestors("eng/web") == ["eng"]
    assert ancestors("eng") == []
    assert ancestors("*") == []


def test_is_self_or_ancestor() -> None:
    assert is_self_or_ancestor("eng", "eng")
    assert is_self_or_ancestor("eng", "eng/web")
    assert is_self_or_ancestor("eng", "eng/web/api")
    assert is_self_or_ancestor("eng/web", "eng/web/api")
    assert not is_self_or_ancestor("eng/web", "eng")
    assert not is_self_or_ancestor("en", "eng/web")  # a prefix that is not a path component
    assert not is_self_or_ancestor("eng/w", "eng/web")
    assert not is_self_or_ancestor("ops", "eng")
    assert not is_self_or_ancestor("*", "eng")  # '*' is not the parent of top-level roles
    assert is_self_or_ancestor("*", "*")


components = st.sampled_from(["a", "b", "ab", "a.b", "c-d"])
role_paths = st.lists(components, min_size=1, max_size=4).map("/".join)


@settings(max_examples=200)
@given(role_paths, role_paths)
def test_ancestry_agrees_with_path_prefixes(candidate: str, role: str) -> None:
    assert validate_role(role) == role
    lineage = [role, *ancestors(role)]
    assert is_self_or_ancestor(candidate, role) == (candidate in lineage)
    parts = role.split("/")
    assert lineage == ["/".join(parts[:n]) for n in range(len(parts), 0, -1)]
    for ancestor in ancestors(role):
        assert is_self_or_ancestor(ancestor, role)
        assert not is_self_or_ancestor(role, ancestor)
