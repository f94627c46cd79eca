"""The protocol's infos and messages: round trips through msgpack and JSON, and validation.

Values are drawn from strategies derived from the types' own annotations, so every message
type (and every info inside) is covered without a hand-written example each.
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import functools
import inspect
import json
import types
import typing
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from corral.ids import _ID, AgentID, ExecutorID, FrameworkID, OfferID, TaskID
from corral.protocol import (
    MESSAGES,
    AgentInfo,
    Attribute,
    CheckInfo,
    CheckType,
    CommandCheck,
    CommandInfo,
    ExecutorInfo,
    Filters,
    FrameworkCapabilityType,
    FrameworkInfo,
    HttpCheck,
    KillPolicy,
    Label,
    Offer,
    Operation,
    OperationType,
    ProtocolError,
    Range,
    Reserve,
    TaskInfo,
    TaskStatus,
    TcpCheck,
    Unreserve,
    Wire,
    decode_message,
    encode,
    infos,
    json_compatible,
)
from corral.protocol import HealthCheck as TaskHealthCheck
from corral.protocol.messages import (
    AcceptOffers,
    Message,
    PongAgent,
    ResourceOffers,
    StatusUpdate,
)
from corral.resources import Resources
from corral.task_states import Reason, Source, TaskState

FAST = settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MESSAGE_TYPES = sorted(MESSAGES.values(), key=lambda cls: cls.NAME)
INFO_TYPES = [
    cls
    for _, cls in inspect.getmembers(infos, inspect.isclass)
    if issubclass(cls, Wire) and dataclasses.is_dataclass(cls)
]
ALL_TYPES = INFO_TYPES + MESSAGE_TYPES


# -- strategies from annotations ------------------------------------------------------------

TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=8)
ID_TEXT = st.text("abc-0123456789XYZ._", min_size=1, max_size=12).filter(
    lambda text: text not in (".", "..")
)
ROLES = st.sampled_from(["*", "eng", "eng/web", "batch"])
RESOURCES = st.one_of(
    st.just(Resources()),
    st.builds(
        Resources.scalars,
        cpus=st.integers(1, 64_000).map(lambda milli: milli / 1000),
        mem=st.integers(1, 2**20),
    ),
    st.sampled_from(
        [
            Resources.parse("cpus:1;mem:128;ports:[31000-31010,31020-31020]"),
            Resources.parse("cpus(eng):0.5;disk:1024;disks:{a,b}"),
        ]
    ),
)
SECONDS = st.integers(0, 10**6).map(lambda millis: millis / 1000)


def strategy(tp: Any, metadata: Any = None) -> st.SearchStrategy:
    metadata = metadata or {}
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        (inner,) = [arg for arg in typing.get_args(tp) if arg is not type(None)]
        return st.none() | strategy(inner, metadata)
    if "duration" in metadata:
        return SECONDS
    if typing.get_origin(tp) is tuple:
        item = strategy(typing.get_args(tp)[0], metadata)
        return st.lists(item, max_size=2).map(tuple)
    if "check" in metadata:
        return ROLES
    if tp in OVERRIDES:
        return OVERRIDES[tp]
    if isinstance(tp, type) and issubclass(tp, _ID):
        return ID_TEXT.map(tp)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return st.sampled_from(list(tp))
    if isinstance(tp, type) and issubclass(tp, Wire):
        return st.deferred(lambda: builds(tp))
    return {
        str: TEXT,
        bool: st.booleans(),
        int: st.integers(-(2**40), 2**40),
        float: st.floats(min_value=0, max_value=1e12, allow_nan=False),
        bytes: st.binary(max_size=16),
        Resources: RESOURCES,
    }[tp]


@functools.cache
def builds(cls: type) -> st.SearchStrategy:
    hints = typing.get_type_hints(cls)
    return st.builds(
        cls,
        **{
            field.name: strategy(hints[field.name], field.metadata)
            for field in dataclasses.fields(cls)
        },
    )


def _task_infos() -> st.SearchStrategy:
    return st.lists(builds(TaskInfo), max_size=2).map(tuple)


def _deferred(cls: type) -> st.SearchStrategy:
    return st.deferred(lambda: builds(cls))


# Types whose fields depend on one another get their own strategies.
OVERRIDES: dict[type, st.SearchStrategy] = {
    Range: st.tuples(st.integers(0, 2**16), st.integers(0, 100)).map(
        lambda pair: Range(pair[0], pair[0] + pair[1])
    ),
    Attribute: st.one_of(
        st.builds(Attribute.of_text, TEXT, TEXT),
        st.builds(Attribute.of_scalar, TEXT, st.floats(0, 1e6)),
        st.builds(Attribute.of_set, TEXT, st.lists(TEXT, max_size=3).map(tuple)),
        st.builds(Attribute.of_ranges, TEXT, st.just(((1, 2), (5, 9)))),
    ),
    Operation: st.one_of(
        st.deferred(_task_infos).map(lambda tasks: Operation.of_launch(*tasks)),
        st.builds(
            Operation.of_launch_group,
            st.deferred(lambda: builds(ExecutorInfo)),
            st.deferred(_task_infos),
        ),
        RESOURCES.map(lambda r: Operation(OperationType.RESERVE, reserve=Reserve(r))),
        RESOURCES.map(lambda r: Operation(OperationType.UNRESERVE, unreserve=Unreserve(r))),
    ),
    TaskHealthCheck: st.one_of(
        st.builds(TaskHealthCheck, st.just(CheckType.COMMAND), command=_deferred(CommandInfo)),
        st.builds(TaskHealthCheck, st.just(CheckType.HTTP), http=_deferred(HttpCheck)),
        st.builds(TaskHealthCheck, st.just(CheckType.TCP), tcp=_deferred(TcpCheck)),
    ),
    CheckInfo: st.one_of(
        st.builds(CheckInfo, st.just(CheckType.COMMAND), command=_deferred(CommandCheck)),
        st.builds(CheckInfo, st.just(CheckType.HTTP), http=_deferred(HttpCheck)),
        st.builds(CheckInfo, st.just(CheckType.TCP), tcp=_deferred(TcpCheck)),
    ),
    ResourceOffers: st.lists(st.deferred(lambda: builds(Offer)), max_size=2).flatmap(
        lambda offers: st.builds(
            ResourceOffers,
            st.just(tuple(offers)),
            st.just(()) | st.just(tuple(f"agent@127.0.0.1:{i}" for i in range(len(offers)))),
        )
    ),
}


def instances(cls: type) -> st.SearchStrategy:
    return OVERRIDES[cls] if cls in OVERRIDES else builds(cls)


def through_msgpack(body: dict) -> Any:
    return msgpack.unpackb(msgpack.packb(body))


def required_fields(cls: type) -> list[str]:
    return [
        field.name
        for field in dataclasses.fields(cls)
        if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
    ]


# -- round trips ----------------------------------------------------------------------------


@pytest.mark.parametrize("cls", MESSAGE_TYPES, ids=lambda cls: cls.NAME)
@FAST
@given(data=st.data())
def test_every_message_round_trips_through_msgpack(cls, data):
    message = data.draw(instances(cls))
    name, body = encode(message)
    assert name == cls.NAME
    assert decode_message(name, through_msgpack(body)) == message


@pytest.mark.parametrize("cls", MESSAGE_TYPES, ids=lambda cls: cls.NAME)
@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_message_round_trips_through_json_with_bytes_as_base64(cls, data):
    message = data.draw(instances(cls))
    text = json.dumps(json_compatible(message.to_wire()))
    assert cls.from_wire(json.loads(text)) == message


@pytest.mark.parametrize("cls", INFO_TYPES, ids=lambda cls: cls.__name__)
@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_info_round_trips(cls, data):
    value = data.draw(instances(cls))
    assert cls.from_wire(through_msgpack(value.to_wire())) == value


def test_the_registry_holds_every_message_under_a_unique_corral_name():
    # A slotted dataclass replaces the class it decorates; the replaced one may linger among
    # the subclasses until collected: the classes defined are those the module names.
    module = inspect.getmodule(Message)
    defined = {
        cls
        for cls in Message.__subclasses__()
        if dataclasses.is_dataclass(cls) and getattr(module, cls.__name__, None) is cls
    }
    assert set(MESSAGES.values()) == defined
    assert all(name.startswith("corral.") for name in MESSAGES)
    assert all(MESSAGES[cls.NAME] is cls for cls in MESSAGE_TYPES)


def test_the_wire_form_is_mesoss_v1_json_shape():
    task = TaskInfo(
        "sleep",
        TaskID("t1"),
        AgentID("a1"),
        Resources.scalars(cpus=0.5),
        command=CommandInfo("sleep 1"),
        labels=(Label("k", "v"),),
        kill_policy=KillPolicy(grace_period=3.0),
    )
    assert task.to_wire() == {
        "name": "sleep",
        "task_id": {"value": "t1"},
        "agent_id": {"value": "a1"},
        "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.5}}],
        "command": {"value": "sleep 1", "shell": True},
        "labels": {"labels": [{"key": "k", "value": "v"}]},
        "kill_policy": {"grace_period": {"nanoseconds": 3_000_000_000}},
    }
    status = TaskStatus(
        TaskID("t1"),
        TaskState.TASK_FAILED,
        source=Source.SOURCE_EXECUTOR,
        reason=Reason.REASON_COMMAND_EXECUTOR_FAILED,
        uuid=b"\x00" * 16,
    )
    assert status.to_wire() == {
        "task_id": {"value": "t1"},
        "state": "TASK_FAILED",
        "source": "SOURCE_EXECUTOR",
        "reason": "REASON_COMMAND_EXECUTOR_FAILED",
        "uuid": b"\x00" * 16,
    }
    assert json_compatible(status.to_wire())["uuid"] == base64.b64encode(b"\x00" * 16).decode()


def test_a_v1_framework_info_as_clients_send_it_decodes():
    sent = {
        "user": "root",
        "name": "pymesos",
        "roles": ["eng"],
        "failover_timeout": 3600,  # an integer where a double is expected: JSON allows it
        "capabilities": [{"type": "MULTI_ROLE"}, {"type": "PARTITION_AWARE"}],
        "hostname": "h1",
        "unknown_future_field": {"x": 1},
    }
    info = FrameworkInfo.from_wire(sent)
    assert info.roles == ("eng",)
    assert info.failover_timeout == 3600.0
    assert info.has_capability(FrameworkCapabilityType.MULTI_ROLE)
    assert not info.has_capability(FrameworkCapabilityType.GPU_RESOURCES)


def test_defaults_fill_optional_fields():
    assert Filters.from_wire({}).refuse_seconds == 5.0
    command = CommandInfo.from_wire({"value": "true"})
    assert command.shell is True and command.arguments == () and command.user is None
    assert AgentInfo.from_wire({"hostname": "h"}).port == 5051
    assert AgentInfo.from_wire({"hostname": "h"}).resources == Resources()
    assert PongAgent.from_wire({}) == PongAgent()


def test_null_counts_as_absent():
    assert Filters.from_wire({"refuse_seconds": None}) == Filters()
    with pytest.raises(ProtocolError, match=r"^name: a required field is missing"):
        FrameworkInfo.from_wire({"user": "u", "name": None})


# -- validation -----------------------------------------------------------------------------


@pytest.mark.parametrize("cls", ALL_TYPES, ids=lambda cls: cls.__name__)
@settings(max_examples=2, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_missing_required_field_is_named(cls, data):
    body = data.draw(instances(cls)).to_wire()
    for name in required_fields(cls):
        partial = {key: value for key, value in body.items() if key != name}
        with pytest.raises(ProtocolError, match="a required field is missing") as caught:
            cls.from_wire(partial)
        assert caught.value.path == name
        if issubclass(cls, Message):
            with pytest.raises(ProtocolError) as caught:
                decode_message(cls.NAME, partial)
            assert str(caught.value).startswith(f"{cls.NAME}: {name}: ")


@pytest.mark.parametrize("cls", ALL_TYPES, ids=lambda cls: cls.__name__)
@settings(max_examples=2, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_field_of_the_wrong_type_is_named_with_what_was_expected(cls, data):
    body = data.draw(instances(cls)).to_wire()
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        wrong = 7 if hints[field.name] in (str, str | None) else "wrong!"
        with pytest.raises(ProtocolError) as caught:
            cls.from_wire({**body, field.name: wrong})
        assert caught.value.path.startswith(field.name), str(caught.value)
        assert "expected" in str(caught.value)


@pytest.mark.parametrize("cls", MESSAGE_TYPES, ids=lambda cls: cls.NAME)
@settings(max_examples=2, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_unknown_fields_are_ignored_at_every_level(cls, data):
    message = data.draw(instances(cls))

    def with_extras(value: Any) -> Any:
        if isinstance(value, dict):
            extended = {key: with_extras(item) for key, item in value.items()}
            extended["field_from_the_future"] = [1, "two"]
            return extended
        if isinstance(value, list):
            return [with_extras(item) for item in value]
        return value

    body = message.to_wire()
    # Resources are Mesos JSON judged by corral.resources, which refuses fields it does
    # not model; leave them as they are.
    extended = {
        key: value if key == "resources" else with_extras(value) for key, value in body.items()
    }
    assert cls.from_wire(extended) == message


def test_wrong_types_are_named_with_their_full_path():
    body = encode(
        AcceptOffers(
            FrameworkID("f1"),
            (OfferID("o1"),),
            (Operation.of_launch(TaskInfo("t", TaskID("t1"), AgentID("a1"))),),
        )
    )[1]
    body["operations"][0]["launch"]["task_infos"][0]["resources"] = "cpus:1"
    with pytest.raises(ProtocolError) as caught:
        decode_message(AcceptOffers.NAME, body)
    assert str(caught.value) == (
        "corral.AcceptOffers: operations[0].launch.task_infos[0].resources: "
        "expected a list of resources, got a str ('cpus:1')"
    )


def test_invalid_resources_become_protocol_errors_with_the_path():
    body = {
        "hostname": "h",
        "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": -1}}],
    }
    with pytest.raises(ProtocolError) as caught:
        AgentInfo.from_wire(body)
    assert caught.value.path == "resources"
    assert "must not be negative" in caught.value.problem


@pytest.mark.parametrize(
    "body, path, words",
    [
        ({"task_id": {"value": "t"}, "state": "TASK_SLEEPING"}, "state", "TaskState name"),
        ({"task_id": {"value": "t"}, "state": "task_running"}, "state", "TaskState name"),
        ({"task_id": {"value": "t"}, "state": 2}, "state", "TaskState name"),
        (
            {"task_id": {"value": "t"}, "state": "TASK_RUNNING", "reason": "REASON_BORED"},
            "reason",
            "Reason name",
        ),
        (
            {"task_id": {"value": "t"}, "state": "TASK_RUNNING", "source": "SOURCE_ME"},
            "source",
            "Source name",
        ),
    ],
)
def test_unknown_enum_values_are_refused(body, path, words):
    with pytest.raises(ProtocolError, match=words) as caught:
        TaskStatus.from_wire(body)
    assert caught.value.path == path


def test_unknown_capabilities_are_refused_with_their_index():
    with pytest.raises(ProtocolError) as caught:
        FrameworkInfo.from_wire({"user": "u", "name": "n", "capabilities": [{"type": "FLY"}]})
    assert caught.value.path == "capabilities[0].type"


@pytest.mark.parametrize(
    "value, problem",
    [("", "empty"), ("a/b", "'/'"), ("a b", "whitespace"), ("..", "'..'")],
)
def test_bad_ids_inside_messages_are_named(value, problem):
    body = {
        "framework_id": {"value": "f"},
        "status": {"task_id": {"value": value}, "state": "TASK_RUNNING"},
    }
    with pytest.raises(ProtocolError) as caught:
        decode_message(StatusUpdate.NAME, body)
    assert str(caught.value).startswith("corral.StatusUpdate: status.task_id: task id")
    assert problem in str(caught.value)


def test_an_id_must_be_an_object_with_a_string_value():
    with pytest.raises(ProtocolError) as caught:
        ExecutorInfo.from_wire({"executor_id": "e1"})
    assert caught.value.path == "executor_id"
    assert "{'value': <text>}" in caught.value.problem
    with pytest.raises(ProtocolError) as caught:
        ExecutorInfo.from_wire({"executor_id": {"value": 1}})
    assert caught.value.path == "executor_id.value"


def test_roles_are_validated():
    with pytest.raises(ProtocolError) as caught:
        FrameworkInfo.from_wire({"user": "u", "name": "n", "roles": ["eng", "a//b"]})
    assert caught.value.path == "roles[1]"
    with pytest.raises(ProtocolError) as caught:
        FrameworkInfo.from_wire({"user": "u", "name": "n", "role": "-x"})
    assert caught.value.path == "role"


@pytest.mark.parametrize(
    "value", [True, "1", float("nan"), float("inf")], ids=["bool", "str", "nan", "inf"]
)
def test_numbers_must_be_finite_numbers(value):
    with pytest.raises(ProtocolError, match=r"^refuse_seconds: expected"):
        Filters.from_wire({"refuse_seconds": value})


def test_ints_refuse_bools_and_floats():
    for value in (True, 1.5):
        with pytest.raises(ProtocolError, match=r"^port: expected an int"):
            AgentInfo.from_wire({"hostname": "h", "port": value})


def test_bools_refuse_ints():
    with pytest.raises(ProtocolError, match=r"^checkpoint: expected a bool"):
        FrameworkInfo.from_wire({"user": "u", "name": "n", "checkpoint": 1})


def test_bytes_come_as_bytes_or_base64_text():
    base = {"task_id": {"value": "t"}, "state": "TASK_RUNNING"}
    assert TaskStatus.from_wire({**base, "data": b"\x01\x02"}).data == b"\x01\x02"
    assert TaskStatus.from_wire({**base, "data": "AQI="}).data == b"\x01\x02"
    with pytest.raises(ProtocolError, match=r"^uuid: expected bytes"):
        TaskStatus.from_wire({**base, "uuid": "not base64!"})


def test_negative_durations_and_refusals_are_refused():
    with pytest.raises(ProtocolError, match=r"^grace_period.nanoseconds: expected"):
        KillPolicy.from_wire({"grace_period": {"nanoseconds": -1}})
    with pytest.raises(ProtocolError, match=r"^refuse_seconds: expected 0 or more"):
        Filters.from_wire({"refuse_seconds": -1})
    with pytest.raises(ProtocolError):
        Filters(refuse_seconds=-1)  # built by hand: the same rule


def test_an_operation_carries_exactly_the_field_its_type_names():
    with pytest.raises(ProtocolError) as caught:
        Operation.from_wire({"type": "LAUNCH", "reserve": {"resources": []}})
    assert caught.value.path == "launch"
    with pytest.raises(ProtocolError) as caught:
        Operation.from_wire({"type": "LAUNCH", "launch": {}, "reserve": {}})
    assert caught.value.path == "reserve"
    with pytest.raises(ProtocolError, match=r"operations\[1\]\.launch_group"):
        AcceptOffers.from_wire(
            {
                "framework_id": {"value": "f"},
                "offer_ids": [],
                "operations": [{"type": "LAUNCH", "launch": {}}, {"type": "LAUNCH_GROUP"}],
            }
        )


def test_an_attribute_carries_exactly_its_types_value():
    assert Attribute.from_wire(
        {"name": "rack", "type": "TEXT", "text": {"value": "r1"}}
    ) == Attribute.of_text("rack", "r1")
    with pytest.raises(ProtocolError) as caught:
        Attribute.from_wire({"name": "rack", "type": "TEXT", "scalar": {"value": 1}})
    assert caught.value.path == "text"
    with pytest.raises(ProtocolError, match="begin <= end"):
        Attribute.from_wire(
            {"name": "r", "type": "RANGES", "ranges": {"range": [{"begin": 5, "end": 1}]}}
        )


def test_resource_offers_need_one_pid_per_offer_when_pids_are_given():
    offer = Offer(OfferID("o"), FrameworkID("f"), AgentID("a"), "h")
    with pytest.raises(ProtocolError, match=r"^pids: expected one pid per offer"):
        ResourceOffers((offer, offer), ("agent@h:1",))


def test_unknown_message_names_and_non_map_bodies_are_refused():
    with pytest.raises(ProtocolError, match=r"unknown message name 'corral.Nope'"):
        decode_message("corral.Nope", {})
    with pytest.raises(ProtocolError, match="unknown message name"):
        decode_message(None, {})  # type: ignore[arg-type]
    with pytest.raises(ProtocolError, match=r"^corral.PongAgent: expected a message body"):
        decode_message("corral.PongAgent", [])


def test_optional_empty_fields_are_left_out_of_the_wire_form():
    executor = ExecutorInfo(ExecutorID("e"))
    assert executor.to_wire() == {"executor_id": {"value": "e"}}
    assert AcceptOffers(FrameworkID("f"), ()).to_wire() == {
        "framework_id": {"value": "f"},
        "offer_ids": [],  # required: always present, even empty
    }
