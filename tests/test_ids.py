"""Typed ids: validation (they become path components), wire form, and the generator."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from corral.ids import (
    ID_TYPES,
    AgentID,
    ContainerID,
    FrameworkID,
    IdGenerator,
    InvalidID,
    OfferID,
    TaskID,
    new_container_id,
    new_status_uuid,
)

SAFE_TEXT = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=0x2FFF, exclude_characters="/"),
    min_size=1,
    max_size=40,
).filter(lambda text: text not in (".", "..") and text.isprintable())


@pytest.mark.parametrize("kind", ID_TYPES)
@given(text=SAFE_TEXT)
def test_an_id_round_trips_through_its_wire_form(kind, text):
    made = kind(text)
    assert made == text
    assert type(kind.from_wire(made.to_wire())) is kind
    assert kind.from_wire(made.to_wire()) == made
    assert made.to_wire() == {"value": text}
    assert type(made.to_wire()["value"]) is str  # plain str on the wire, not the subclass


@pytest.mark.parametrize(
    "text, problem",
    [
        ("", "empty"),
        ("a/b", "'/'"),
        ("a b", "whitespace"),
        ("tab\there", "whitespace"),
        ("nl\n", "whitespace"),
        ("bell\x07", "control"),
        (".", "'.' and '..'"),
        ("..", "'.' and '..'"),
        ("x" * 256, "longer than 255"),
    ],
)
def test_unsafe_ids_are_refused_saying_why(text, problem):
    with pytest.raises(InvalidID, match="task id") as caught:
        TaskID(text)
    assert problem in str(caught.value)


def test_ids_must_be_strings_and_the_wire_form_an_object():
    with pytest.raises(InvalidID, match="string"):
        AgentID(12)  # type: ignore[arg-type]
    with pytest.raises(InvalidID, match='"value"'):
        AgentID.from_wire("a1")
    with pytest.raises(InvalidID, match='"value"'):
        AgentID.from_wire({"value": 1})


def test_ids_keep_their_kind_in_repr_and_work_as_dict_keys():
    framework = FrameworkID("f1")
    assert repr(framework) == "FrameworkID('f1')"
    assert {framework: 1}["f1"] == 1
    assert str(framework) == "f1"


def test_the_generator_makes_mesos_style_ids_under_one_prefix():
    ids = IdGenerator("master1")
    assert [ids.framework_id(), ids.framework_id()] == ["master1-0000", "master1-0001"]
    assert [ids.agent_id(), ids.agent_id()] == ["master1-S0", "master1-S1"]
    assert [ids.offer_id(), ids.offer_id()] == ["master1-O0", "master1-O1"]
    assert type(ids.offer_id()) is OfferID


def test_generators_without_a_prefix_never_collide():
    first, second = IdGenerator(), IdGenerator()
    assert first.prefix != second.prefix
    assert first.agent_id() != second.agent_id()


def test_a_generator_refuses_a_prefix_unusable_in_ids():
    with pytest.raises(InvalidID):
        IdGenerator("a/b")


def test_generated_ids_are_refused_once_the_prefix_leaves_no_room_for_them():
    ids = IdGenerator("é" * 126)  # 252 bytes of prefix: room for three more
    assert ids.offer_id() == "é" * 126 + "-O0" and type(ids.agent_id()) is AgentID
    with pytest.raises(InvalidID, match="longer than 255 bytes"):
        ids.framework_id()  # "-0000": two bytes too many


def test_container_ids_and_status_uuids_are_fresh():
    assert type(new_container_id()) is ContainerID
    assert new_container_id() != new_container_id()
    uuid = new_status_uuid()
    assert isinstance(uuid, bytes) and len(uuid) == 16
    assert uuid != new_status_uuid()
