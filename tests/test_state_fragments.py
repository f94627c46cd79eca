"""The state's JSON fragments on their own: ``dumps`` is ``json.dumps`` byte for byte, a
fragment is built again exactly when its key changes, and a sweep forgets what no build
asked for. (That ``/master/state`` stays right as a real master changes is in
test_operator_api.py.)"""

from __future__ import annotations

import json

from master.state_fragments import StateFragments


def compact(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


class Entity:
    """Something a table keeps a fragment for (any object: it is kept by identity)."""

    def __init__(self, name: str, state: str) -> None:
        self.name, self.state = name, state


def render(entity: Entity) -> dict:
    return {"name": entity.name, "state": entity.state, "labels": [{"k": "é", "v": 1.5}]}


def test_dumps_is_json_dumps_with_fragments_inside_and_around():
    fragments = StateFragments()
    table = fragments.table(render)
    a, b = Entity("a", "RUNNING"), Entity("b", "STAGING")
    value = {
        "tasks": [table.get(a, a.state, a), table.get(b, b.state, b)],
        "nested": {"one": table.get(a, a.state, a), "empty": {}, "none": [], "t": (1, None)},
        "numbers": {1: "int key", 2.5: "float key", None: "null key"},  # json converts keys
        "text": 'quotes " and \\ and \n and ☃',
        "floats": [0.1, 1e300, -0.0, 3],
        "flags": [True, False, None],
    }
    assert fragments.dumps(value) == compact(value)
    assert fragments.dumps([]) == b"[]" and fragments.dumps({}) == b"{}"
    assert fragments.dumps("plain") == compact("plain")


def test_a_fragment_is_built_again_only_when_its_key_changes():
    fragments = StateFragments()
    table = fragments.table(render)
    task = Entity("t", "RUNNING")
    first = table.get(task, task.state, task)
    assert table.get(task, task.state, task) is first and table.renders == 1
    task.state = "FINISHED"
    second = table.get(task, task.state, task)
    assert second is not first and second["state"] == "FINISHED" and table.renders == 2
    assert fragments.dumps([second]) == compact([second])
    assert fragments.fragment_of(first) is None  # the stale one is out of the index


def test_a_sweep_forgets_what_no_build_asked_for():
    fragments = StateFragments()
    table = fragments.table(render)
    kept, gone = Entity("kept", "RUNNING"), Entity("gone", "RUNNING")
    table.get(kept, "k", kept)
    old = table.get(gone, "k", gone)
    fragments.sweep()  # the end of a build that asked for both
    assert len(table) == 2
    table.get(kept, "k", kept)  # the next build asks only for one
    fragments.sweep()
    assert len(table) == 1 and fragments.fragment_of(old) is None
    assert table.get(gone, "k", gone) is not old  # asked again: built again


def test_derived_values_live_with_their_fragment():
    fragments = StateFragments()
    table = fragments.table(render)
    task = Entity("t", "RUNNING")
    value = table.get(task, "k", task)
    calls = []

    def upper(entry: dict) -> dict:
        calls.append(entry["name"])
        return {**entry, "name": entry["name"].upper()}

    mapped = fragments.derived(value, "upper", upper)
    assert fragments.derived(value, "upper", upper) is mapped and calls == ["t"]
    assert fragments.dumps({"tasks": [mapped]}) == compact({"tasks": [mapped]})
    loose = {"name": "x", "state": "s"}  # no fragment: derived anew each time
    assert fragments.derived(loose, "upper", upper)["name"] == "X" and calls == ["t", "x"]
    fragments.sweep()
    fragments.sweep()  # the fragment is forgotten, and what was derived from it
    assert fragments.fragment_of(value) is None and fragments.fragment_of(mapped) is None
