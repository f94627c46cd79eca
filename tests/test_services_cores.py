"""The services scheduler's sans-IO cores: no sockets, no threads, no clock of their own.

App definitions and their validation (with JSON paths), path ids, constraints, offer
matching with reasons, backoff, deployment steps under upgrade strategies, the store's crash
safety, and the coordinator itself driven by offers and status updates it is handed.
"""

from __future__ import annotations

import json
import os

import pytest

from corral.ids import AgentID, FrameworkID, OfferID
from corral.protocol import Attribute, CheckType, Offer
from corral.resources import Resources
from corral.task_states import TaskState
from services.app_definition import AppDefinition, AppInvalid
from services.backoff import Backoff
from services.constraints import AgentFacts, Constraint
from services.coordinator import ApiError, Coordinator, Decline, Kill, Launch, Reconcile, Revive
from services.deployment_plan import capacity, next_step
from services.instances import Instance
from services.offer_match import OfferSpace, match, take
from services.path_id import InvalidPathId, app_of_task, canonical, task_prefix
from services.store import FileStore, LogStore, MemoryStore
from services.task_builder import task_info, task_name

# -- app definitions ------------------------------------------------------------------------


def test_a_definition_gets_marathons_defaults():
    app = AppDefinition.from_json({"id": "web", "cmd": "serve"})
    out = app.to_json()
    assert out["id"] == "/web"
    assert (out["cpus"], out["mem"], out["disk"], out["instances"]) == (1, 128, 0, 1)
    assert (out["backoffSeconds"], out["backoffFactor"], out["maxLaunchDelaySeconds"]) == (
        1,
        1.15,
        300,
    )
    assert out["upgradeStrategy"] == {"minimumHealthCapacity": 1, "maximumOverCapacity": 1}
    assert out["killSelection"] == "YOUNGEST_FIRST"
    assert out["portDefinitions"] == [{"port": 0, "protocol": "tcp", "labels": {}}]
    check = AppDefinition.from_json(
        {"id": "/a", "cmd": "x", "healthChecks": [{"protocol": "MESOS_HTTP"}]}
    ).health_checks[0]
    assert (check.grace_period_seconds, check.interval_seconds, check.timeout_seconds) == (
        300,
        60,
        20,
    )
    assert (check.max_consecutive_failures, check.delay_seconds) == (3, 15)
    kept = AppDefinition.from_json({"id": "/a", "cmd": "x", "tty": True, "secrets": {}})
    assert kept.to_json()["tty"] is True  # kept and shown, not acted on


def test_every_problem_is_named_with_its_path():
    with pytest.raises(AppInvalid) as raised:
        AppDefinition.from_json(
            {
                "id": "/ok",
                "cmd": "x",
                "args": ["y"],
                "cpus": 0,
                "mem": "lots",
                "instances": 1.5,
                "upgradeStrategy": {"minimumHealthCapacity": 2},
                "healthChecks": [{"protocol": "MESOS_HTTP", "path": "health"}],
                "constraints": [["hostname", "SOMEWHERE"], ["rack", "LIKE"]],
                "portDefinitions": [{"port": 80, "name": "Bad Name"}],
                "wat": 1,
            }
        )
    body = raised.value.to_json()
    assert body["message"] == "Object is not valid"
    paths = [d["path"] for d in body["details"]]
    assert {
        "/",
        "/cpus",
        "/mem",
        "/instances",
        "/upgradeStrategy/minimumHealthCapacity",
        "/healthChecks(0)/path",
        "/constraints(0)",
        "/constraints(1)",
        "/portDefinitions(0)/name",
        "/wat",
    } <= set(paths)
    assert len(paths) == len(set(paths))  # grouped by path


def test_a_definition_survives_the_store_round_trip():
    app = AppDefinition.from_json(
        {
            "id": "/shop/web",
            "cmd": "serve",
            "constraints": [["rack", "GROUP_BY", "2"]],
            "healthChecks": [{"protocol": "MESOS_TCP", "portIndex": 0}],
            "env": {"A": "1"},
        }
    )
    app = app.__class__(**{**app.__dict__, "version": "v2", "config_version": "v1"})
    back = AppDefinition.from_stored(json.loads(json.dumps(app.stored())))
    assert back == app


def test_a_scale_is_not_a_config_change():
    app = AppDefinition.from_json({"id": "/a", "cmd": "x", "instances": 1})
    assert app.same_config(AppDefinition.from_json({"id": "/a", "cmd": "x", "instances": 9}))
    assert not app.same_config(AppDefinition.from_json({"id": "/a", "cmd": "y"}))


# -- path ids -------------------------------------------------------------------------------


def test_path_ids_resolve_and_refuse():
    assert canonical("web", "/shop") == "/shop/web"
    assert canonical("../db", "/shop/web") == "/shop/db"
    assert canonical("/a/b/") == "/a/b"
    for bad in ("/", "/UPPER", "/under_score", "/-x", "/a/../.."):
        with pytest.raises(InvalidPathId):
            canonical(bad)
    assert task_prefix("/shop/web") == "shop_web"
    assert app_of_task("shop_web.1234") == "/shop/web"
    assert task_name("/shop/web") == "web.shop"


# -- constraints ----------------------------------------------------------------------------


def agent(host: str, **attributes: str) -> AgentFacts:
    return AgentFacts(host, attributes)


def test_constraints_follow_marathons_rules():
    a, b, c = agent("a", rack="r1"), agent("b", rack="r1"), agent("c", rack="r2")
    bare = agent("d")
    unique = Constraint.of("hostname", "UNIQUE")
    assert unique.allows(a, [b]) and not unique.allows(a, [a])
    by_rack = Constraint.of("rack", "UNIQUE")
    assert not by_rack.allows(b, [a]) and by_rack.allows(c, [a])
    assert not by_rack.allows(bare, [])  # a missing attribute fails ...
    unlike = Constraint.of("rack", "UNLIKE", "r1")
    assert unlike.allows(bare, []) and not unlike.allows(a, []) and unlike.allows(c, [])
    assert Constraint.of("rack", "LIKE", "r[12]").allows(c, [])
    assert not Constraint.of("rack", "LIKE", "r").allows(c, [])  # a full match
    assert Constraint.of("rack", "IS", "r2").allows(c, []) and not Constraint.of(
        "rack", "IS", "r2"
    ).allows(a, [])
    cluster = Constraint.of("rack", "CLUSTER", "r1")
    assert cluster.allows(a, []) and not cluster.allows(c, [])
    assert Constraint.of("rack", "CLUSTER").allows(c, [c]) and not Constraint.of(
        "rack", "CLUSTER"
    ).allows(a, [c])
    max_per = Constraint.of("rack", "MAX_PER", "2")
    assert max_per.allows(a, [b]) and not max_per.allows(a, [a, b])
    group = Constraint.of("rack", "GROUP_BY", "2")
    assert group.allows(c, [a]) and not group.allows(b, [a])  # waits for a second rack
    assert group.allows(a, [a, c])  # both racks have one: either may take the next
    for bad in (("x", "LIKE"), ("x", "MAX_PER", "0"), ("x", "UNIQUE", "1"), ("x", "LIKE", "(")):
        with pytest.raises(ValueError):
            Constraint.of(*bad)


# -- offers ---------------------------------------------------------------------------------


def offer(
    resources: str = "cpus:4;mem:1024;disk:100;ports:[31000-31004]", host: str = "h1", **attrs
):
    return Offer(
        id=OfferID(f"o-{host}"),
        framework_id=FrameworkID("f"),
        agent_id=AgentID(f"agent-{host}"),
        hostname=host,
        resources=Resources.parse(resources),
        attributes=tuple(Attribute.of_text(k, v) for k, v in attrs.items()),
    )


def app_of(**fields) -> AppDefinition:
    return AppDefinition.from_json({"id": "/web", "cmd": "serve", "cpus": 1, "mem": 256, **fields})


def test_an_offer_fits_until_it_runs_out_and_says_why_not():
    app = app_of(portDefinitions=[{"port": 0}, {"port": 0}])
    space = OfferSpace.of(offer())
    placed = []
    for expected in ((31000, 31001), (31002, 31003)):
        found = match(app, space, placed)
        assert found.ports == expected
        take(app, space, found)
    assert match(app, space, []).reasons == ("InsufficientPorts",)
    big = app_of(mem=4096, cpus=8)
    assert set(match(big, OfferSpace.of(offer()), []).reasons) == {
        "InsufficientCpus",
        "InsufficientMemory",
    }
    pinned = app_of(portDefinitions=[{"port": 31004}], requirePorts=True)
    assert match(pinned, OfferSpace.of(offer()), []).ports == (31004,)
    taken = app_of(portDefinitions=[{"port": 80}], requirePorts=True)
    assert match(taken, OfferSpace.of(offer()), []).reasons == ("InsufficientPorts",)
    unique = app_of(constraints=[["hostname", "UNIQUE"]])
    assert match(unique, OfferSpace.of(offer()), [agent("h1")]).reasons == (
        "UnfulfilledConstraint",
    )
    racked = app_of(constraints=[["rack", "IS", "r1"]])
    assert match(racked, OfferSpace.of(offer(rack="r1")), []).ports == (31000,)


# -- backoff --------------------------------------------------------------------------------


def test_backoff_grows_by_its_factor_up_to_the_maximum():
    backoff = Backoff(seconds=1, factor=2, maximum=5)
    assert backoff.may_launch(0)
    delays = []
    for now in (0, 10, 20, 30, 40):
        backoff.failed(now)
        delays.append(backoff.until - now)
    assert delays == [1, 2, 4, 5, 5]
    assert not backoff.may_launch(44) and backoff.may_launch(45)
    assert backoff.time_left(43) == 2
    backoff.reset()
    assert backoff.may_launch(0)


# -- deployment steps -----------------------------------------------------------------------


def instance(number: int, config: str, state=TaskState.TASK_RUNNING, healthy=True) -> Instance:
    return Instance(
        task_id=f"web.{number}",
        app_id="/web",
        version=config,
        config_version=config,
        agent_id="a",
        host="h",
        ports=[],
        service_ports=[],
        staged_at=f"2026-01-01T00:00:{number:02d}.000Z",
        state=state,
        healthy=healthy,
    )


def versioned(instances: int, min_health: float, max_over: float, health: bool = True):
    app = app_of(
        instances=instances,
        upgradeStrategy={"minimumHealthCapacity": min_health, "maximumOverCapacity": max_over},
        healthChecks=[{"protocol": "MESOS_HTTP"}] if health else [],
    )
    return app.__class__(**{**app.__dict__, "version": "v2", "config_version": "v2"})


def test_capacity_is_marathons():
    assert capacity(4, 0.5, 0) == (2, 4)
    assert capacity(3, 1, 1) == (3, 6)
    assert capacity(3, 1, 0) == (3, 4)  # equal: room for one more, or nothing moves
    assert capacity(10, 0.9, 0.1) == (9, 11)


def simulate(app: AppDefinition, old: int) -> list[tuple[int, int]]:
    """Run a rolling restart to its end, each launch becoming healthy at once; the (ready,
    total not being killed) after each step."""
    instances = {i.task_id: i for i in (instance(n, "v1") for n in range(old))}
    seen = []
    number = 100
    for _ in range(50):
        step = next_step(app, list(instances.values()), rolling=True)
        if step.done:
            return seen
        for task_id in step.kill:
            del instances[task_id]
        for _ in range(step.launch):
            number += 1
            instances[f"web.{number}"] = instance(number, "v2")
        ready = sum(1 for i in instances.values() if i.is_ready(True))
        seen.append((ready, len(instances)))
    raise AssertionError("the restart never finished")


@pytest.mark.parametrize(
    ("count", "min_health", "max_over"), [(4, 0.5, 0), (3, 1, 1), (3, 1, 0), (10, 0.9, 0.1)]
)
def test_a_rolling_restart_keeps_within_the_strategy(count, min_health, max_over):
    app = versioned(count, min_health, max_over)
    floor, ceiling = capacity(count, min_health, max_over)
    for ready, total in simulate(app, count):
        assert ready >= min(floor, count)
        assert total <= ceiling


def test_a_restart_waits_for_new_instances_to_be_healthy():
    app = versioned(2, 1, 0)
    old = [instance(1, "v1"), instance(2, "v1")]
    step = next_step(app, old, rolling=True)
    assert step.launch == 1 and step.kill == ()
    starting = instance(3, "v2", healthy=None)
    step = next_step(app, [*old, starting], rolling=True)
    assert step == step.__class__()  # nothing until the new one is healthy
    healthy = instance(3, "v2")
    step = next_step(app, [*old, healthy], rolling=True)
    assert len(step.kill) == 1 and step.launch == 1


def test_scaling_kills_by_kill_selection():
    app = versioned(2, 1, 1)
    four = [instance(n, "v2") for n in range(4)]
    assert set(next_step(app, four, rolling=True).kill) == {"web.3", "web.2"}
    oldest = app.__class__(**{**app.__dict__, "kill_selection": "OLDEST_FIRST"})
    assert set(next_step(oldest, four, rolling=True).kill) == {"web.0", "web.1"}
    staging = [*four[:2], instance(9, "v2", state=TaskState.TASK_STAGING, healthy=None)]
    assert next_step(oldest, staging, rolling=True).kill == ("web.9",)  # not running: first
    assert next_step(app, four[:1], rolling=False).launch == 1


# -- the store ------------------------------------------------------------------------------


def test_the_file_store_keeps_records_across_a_reopen(tmp_path):
    store = FileStore(tmp_path)
    store.put("apps", "/shop/web", {"id": "/shop/web"})
    store.put("instances", "t1", {"n": 1})
    store.put("instances", "t1", {"n": 2})
    store.delete("instances", "missing")
    again = FileStore(tmp_path)
    assert again.get("apps", "/shop/web") == {"id": "/shop/web"}
    assert again.all("instances") == {"t1": {"n": 2}}
    again.delete("instances", "t1")
    assert FileStore(tmp_path).all("instances") == {}


def test_a_torn_write_is_never_read_back(tmp_path):
    store = FileStore(tmp_path)
    store.put("apps", "/a", {"id": "/a", "instances": 1})
    record = tmp_path / "apps" / "%2Fa"
    # A crash in the middle of the next write leaves its temporary file half written ...
    whole = record.read_bytes()
    (tmp_path / "apps" / "%2Fa.tmp").write_bytes(whole[: len(whole) // 2])
    # ... and a record damaged in place (a disk that lies about fsync) is caught too.
    store.put("apps", "/b", {"id": "/b"})
    damaged = tmp_path / "apps" / "%2Fb"
    damaged.write_bytes(damaged.read_bytes()[:-10])
    reopened = FileStore(tmp_path)
    assert reopened.all("apps") == {"/a": {"id": "/a", "instances": 1}}
    assert not (tmp_path / "apps" / "%2Fa.tmp").exists()
    assert reopened.get("apps", "/b") is None


def test_a_write_is_a_rename_of_a_synced_file(tmp_path, monkeypatch):
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    FileStore(tmp_path).put("apps", "/a", {"id": "/a"})
    assert len(synced) == 2  # the file, then its directory
    assert sorted(p.name for p in (tmp_path / "apps").iterdir()) == ["%2Fa"]


def test_the_log_store_keeps_changes_across_a_reopen_and_compacts(tmp_path):
    store = LogStore(tmp_path, compact_after=2000)
    for number in range(40):
        store.put("instances", f"t{number}", {"n": number})
    for number in range(0, 40, 2):
        store.delete("instances", f"t{number}")
    store.put("framework", "id", {"id": "f1"})
    assert (tmp_path / "snapshot").exists()  # compacted along the way
    expected = {f"t{n}": {"n": n} for n in range(1, 40, 2)}
    assert store.all("instances") == expected
    store.close()
    again = LogStore(tmp_path)
    assert again.all("instances") == expected and again.get("framework", "id") == {"id": "f1"}


def test_a_torn_log_tail_is_dropped_and_cut_off(tmp_path):
    store = LogStore(tmp_path)
    store.put("apps", "/a", {"id": "/a"})
    store.put("apps", "/b", {"id": "/b"})
    store.close()
    log_file = tmp_path / "log"
    whole = log_file.read_bytes()
    log_file.write_bytes(whole[:-7])  # a crash in the middle of the last append
    again = LogStore(tmp_path)
    assert again.all("apps") == {"/a": {"id": "/a"}}
    assert log_file.read_bytes() == whole[: whole.index(b"\n") + 1]  # the torn line is gone
    again.put("apps", "/c", {"id": "/c"})  # and appends go on after it
    again.close()
    assert set(LogStore(tmp_path).all("apps")) == {"/a", "/c"}


def test_a_batch_is_one_write_and_one_fsync(tmp_path, monkeypatch):
    store = LogStore(tmp_path)
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    with store.batch():
        for number in range(100):
            store.put("instances", f"t{number}", {"n": number})
        with store.batch():  # nested: still the one batch
            store.delete("instances", "t0")
        assert synced == []  # nothing durable yet: no launch may go out before the end
    assert len(synced) == 1
    store.close()
    assert len(LogStore(tmp_path).all("instances")) == 99


def test_a_crash_between_snapshot_and_log_truncation_changes_nothing(tmp_path):
    store = LogStore(tmp_path)
    store.put("apps", "/a", {"id": "/a", "v": 1})
    store.delete("apps", "/gone")
    kept_log = (tmp_path / "log").read_bytes()
    store.compact()
    store.close()
    (tmp_path / "log").write_bytes(kept_log)  # as if the truncation never happened
    assert LogStore(tmp_path).all("apps") == {"/a": {"id": "/a", "v": 1}}


# -- the coordinator ------------------------------------------------------------------------


def effects_of(kind, coordinator: Coordinator) -> list:
    return [e for e in coordinator.take_effects() if isinstance(e, kind)]


@pytest.fixture
def core():
    events: list[dict] = []
    coordinator = Coordinator(MemoryStore(), 1000.0, events.append)
    coordinator.registered("framework-1", 1000.0)
    coordinator.take_effects()
    coordinator.events = events  # for the tests' eyes
    return coordinator


def launch_all(core: Coordinator, now: float, host: str = "h1") -> list:
    core.offers([offer(host=host)], now)
    launches = [e for e in core.take_effects() if isinstance(e, Launch)]
    return [task for launch in launches for task in launch.tasks]


def run(core: Coordinator, tasks, now: float, healthy: bool | None = True) -> None:
    for task in tasks:
        core.status_update(str(task.task_id), TaskState.TASK_RUNNING, now, healthy=healthy)
    core.settle()  # as the actor does after a burst of updates


def test_the_coordinator_launches_replaces_and_backs_off(core):
    _, deployment = core.create_app(
        {"id": "/web", "cmd": "serve", "cpus": 1, "mem": 128, "instances": 2}, 1001.0
    )
    assert isinstance(core.take_effects()[-1], Revive)
    tasks = launch_all(core, 1002.0)
    assert len(tasks) == 2
    first = tasks[0]
    assert first.name == "web" and first.discovery.name == "web"
    env = {v.name: v.value for v in first.command.environment}
    assert env["MARATHON_APP_ID"] == "/web" and env["PORT0"] == env["PORT"]
    assert core.store.get("instances", str(first.task_id))  # stored before the launch
    run(core, tasks, 1003.0, healthy=None)
    assert deployment.id not in core.deployments  # no health checks: running is ready
    core.status_update(str(first.task_id), TaskState.TASK_FAILED, 1004.0, message="boom")
    assert core.last_failure["/web"]["message"] == "boom"
    assert not launch_all(core, 1004.5)  # backing off: 1 s
    (replacement,) = launch_all(core, 1005.1)
    assert replacement.task_id != first.task_id
    # A stray task of ours that no record knows is killed.
    core.status_update("web.stray", TaskState.TASK_RUNNING, 1006.0, agent_id="agent-h1")
    assert [k.task_id for k in effects_of(Kill, core)] == ["web.stray"]


def test_the_coordinator_refuses_changes_to_a_locked_app_unless_forced(core):
    core.create_app(
        {
            "id": "/web",
            "cmd": "x",
            "cpus": 1,
            "mem": 64,
            "healthChecks": [{"protocol": "MESOS_TCP"}],
        },
        1001.0,
    )
    tasks = launch_all(core, 1002.0)
    run(core, tasks, 1003.0, healthy=None)  # running, not yet healthy: still deploying
    with pytest.raises(ApiError) as raised:
        core.update_app("/web", {"instances": 3}, 1004.0)
    assert raised.value.status == 409 and raised.value.body["deployments"]
    assert core.apps["/web"].instances == 1
    core.update_app("/web", {"instances": 3}, 1005.0, force=True)
    assert core.apps["/web"].instances == 3
    assert [e["eventType"] for e in core.events].count("deployment_failed") == 1
    with pytest.raises(ApiError) as raised:
        core.restart_app("/nope", 1006.0)
    assert raised.value.status == 404
    with pytest.raises(AppInvalid):
        core.update_app("/web", {"cpus": -1}, 1007.0, force=True)
    assert core.apps["/web"].cpus == 1  # nothing changed


def test_the_coordinator_rolls_out_a_new_config(core):
    core.create_app(
        {
            "id": "/web",
            "cmd": "v1",
            "cpus": 0.1,
            "mem": 16,
            "instances": 2,
            "healthChecks": [{"protocol": "MESOS_HTTP", "portIndex": 0}],
            "upgradeStrategy": {"minimumHealthCapacity": 1, "maximumOverCapacity": 0},
        },
        1001.0,
    )
    old = launch_all(core, 1002.0)
    assert old[0].health_check.type is CheckType.HTTP
    assert (
        old[0].health_check.http.port == old[0].resources.ranges("ports").__iter__().__next__()[0]
    )
    run(core, old, 1003.0)
    assert not core.deployments
    core.update_app("/web", {"cmd": "v2"}, 1004.0)
    (new,) = launch_all(core, 1005.0)  # one over capacity at a time
    assert new.command.value == "v2"
    assert not effects_of(Kill, core)
    run(core, [new], 1006.0)
    (kill,) = effects_of(Kill, core)
    assert kill.task_id in {str(t.task_id) for t in old}
    core.status_update(kill.task_id, TaskState.TASK_KILLED, 1007.0)
    (second,) = launch_all(core, 1008.0)
    run(core, [second], 1009.0)
    (kill,) = effects_of(Kill, core)
    core.status_update(kill.task_id, TaskState.TASK_KILLED, 1010.0)
    core.settle()
    assert not core.deployments
    assert {i.config_version for i in core.instances.values()} == {core.apps["/web"].config_version}
    kinds = [e["eventType"] for e in core.events]
    assert kinds.count("deployment_success") == 2


def test_a_restarted_coordinator_continues_from_the_store(core):
    core.create_app({"id": "/web", "cmd": "x", "cpus": 1, "mem": 64, "instances": 2}, 1001.0)
    tasks = launch_all(core, 1002.0)
    again = Coordinator(core.store, 2000.0)
    assert set(again.instances) == {str(t.task_id) for t in tasks}
    assert again.deployments.keys() == core.deployments.keys()
    again.registered("framework-1", 2000.0)
    reconcile = effects_of(Reconcile, again)
    assert {t for t, _ in reconcile[0].tasks} == set(again.instances) and reconcile[1].tasks == ()
    again.offers([offer(host="h2")], 2001.0)
    assert not [e for e in again.take_effects() if isinstance(e, Launch)]  # none doubled
    again.status_update(str(tasks[0].task_id), TaskState.TASK_LOST, 2002.0)
    again.offers([offer(host="h2")], 2003.0)
    launched = [e for e in again.take_effects() if isinstance(e, Launch)]
    assert len(launched[0].tasks) == 1  # the lost one replaced
    assert [e for e in again.take_effects() if isinstance(e, Decline)] == []


def test_deleting_an_app_kills_its_instances_then_forgets_it(core):
    core.create_app({"id": "/web", "cmd": "x", "cpus": 1, "mem": 64, "instances": 2}, 1001.0)
    tasks = launch_all(core, 1002.0)
    run(core, tasks, 1003.0, healthy=None)
    assert len(core.versions("/web")) == 1
    core.delete_app("/web", 1004.0)
    kills = effects_of(Kill, core)
    assert {k.task_id for k in kills} == {str(t.task_id) for t in tasks}
    for task in tasks:
        core.status_update(str(task.task_id), TaskState.TASK_KILLED, 1005.0)
    core.settle()
    assert "/web" not in core.apps and not core.deployments
    assert core.store.get("apps", "/web") is None and core.versions("/web") == []
    kinds = [e["eventType"] for e in core.events]
    assert kinds[-3:] == ["app_terminated_event", "deployment_step_success", "deployment_success"]


def test_a_task_info_carries_marathons_translation():
    app = AppDefinition.from_json(
        {
            "id": "/shop/web",
            "cmd": "serve",
            "cpus": 0.5,
            "mem": 64,
            "portDefinitions": [{"port": 0, "name": "http"}, {"port": 0, "name": "admin"}],
            "healthChecks": [
                {"protocol": "MESOS_TCP", "portIndex": 1, "maxConsecutiveFailures": 0}
            ],
            "labels": {"team": "a"},
            "container": {"type": "MESOS", "docker": {"image": "busybox"}},
            "taskKillGracePeriodSeconds": 3,
        }
    )
    record = instance(1, "v1")
    record.ports = [31005, 31002]
    task = task_info(app, record)
    assert task.name == "web.shop"
    assert task.health_check.type is CheckType.TCP and task.health_check.tcp.port == 31002
    assert task.health_check.consecutive_failures == 1  # Marathon's 0: kill at the first
    assert [(p.name, p.number) for p in task.discovery.ports] == [("http", 31005), ("admin", 31002)]
    env = {v.name: v.value for v in task.command.environment}
    assert (env["PORT0"], env["PORT1"], env["PORT_HTTP"], env["PORT_ADMIN"]) == (
        "31005",
        "31002",
        "31005",
        "31002",
    )
    assert env["MARATHON_APP_LABEL_TEAM"] == "a"
    assert task.container.image.name == "busybox"
    assert task.kill_policy.grace_period == 3
    assert sorted(p for b, e in task.resources.ranges("ports") for p in range(b, e + 1)) == [
        31002,
        31005,
    ]


# -- events ---------------------------------------------------------------------------------


def test_a_slow_subscriber_is_cut_off_and_never_slows_publishing():
    import asyncio

    from services import events as events_module
    from services.events import EventBus, sse

    async def scenario() -> None:
        bus = EventBus()
        fast = bus.subscribe(["status_update_event"], "fast")
        slow = bus.subscribe([], "slow")
        burst = bus.subscribe([], "burst")
        start = fast.progress_at
        # A burst in one loop turn: everyone falls behind, nobody is cut off.
        for number in range(events_module.QUEUE_LIMIT + 5):
            bus.publish({"eventType": "status_update_event", "n": number}, now=start + 1)
        assert bus.subscribers == {fast, slow, burst}
        # The fast one and the burst one catch up; the slow one's stream writes nothing.
        for subscriber in (fast, burst):
            while subscriber.queue.qsize():
                subscriber.queue.get_nowait()
            subscriber.progress_at = start + 9
        later = start + events_module.STALL_SECONDS + 2
        bus.publish({"eventType": "deployment_info"}, now=later)  # not asked for by the fast one
        assert bus.subscribers == {fast, burst} and bus.dropped == 1
        # The slow one gets what it had, then the end of its stream.
        drained = []
        while (item := slow.queue.get_nowait()) is not None:
            drained.append(item)
        assert len(drained) == events_module.QUEUE_LIMIT + 5
        assert fast.queue.qsize() == 0 and burst.queue.qsize() == 1
        # Far behind, it goes at once whatever its stream does.
        for number in range(events_module.HARD_LIMIT + 1):
            bus.publish({"eventType": "status_update_event", "n": number}, now=later)
        assert bus.subscribers == set() and bus.dropped == 3

    asyncio.run(scenario())
    frame = sse({"eventType": "deployment_success", "id": "d1"})
    assert frame.startswith(b"event: deployment_success\ndata: {") and frame.endswith(b"\n\n")


def test_an_unreachable_instance_is_replaced_after_inactive_after_seconds(core):
    core.create_app(
        {
            "id": "/web",
            "cmd": "x",
            "cpus": 1,
            "mem": 64,
            "unreachableStrategy": {"inactiveAfterSeconds": 30, "expungeAfterSeconds": 60},
        },
        1001.0,
    )
    (task,) = launch_all(core, 1002.0)
    run(core, [task], 1003.0, healthy=None)
    core.status_update(str(task.task_id), TaskState.TASK_UNREACHABLE, 1010.0)
    core.tick(1020.0)
    assert not launch_all(core, 1021.0)  # still counted: it may come back
    core.tick(1041.0)
    assert [k.task_id for k in effects_of(Kill, core)] == [str(task.task_id)]
    (replacement,) = launch_all(core, 1042.0)
    assert replacement.task_id != task.task_id
    core.status_update(str(task.task_id), TaskState.TASK_KILLED, 1043.0)
    assert not launch_all(core, 1044.0)  # its end was expected: not replaced twice
    # Another goes unreachable and never answers: forgotten after expungeAfterSeconds.
    gone = replacement.task_id
    run(core, [replacement], 1045.0, healthy=None)
    core.status_update(str(gone), TaskState.TASK_UNREACHABLE, 1050.0)
    core.tick(1081.0)  # inactive: replaced
    assert str(gone) in core.instances
    assert len(launch_all(core, 1082.0)) == 1  # its replacement
    core.tick(1111.0)  # expunged
    assert str(gone) not in core.instances and core.store.get("instances", str(gone)) is None
    assert not launch_all(core, 1112.0)  # forgetting it launches nothing more
    core.status_update(str(gone), TaskState.TASK_RUNNING, 1113.0, agent_id="agent-h1")
    assert [k.task_id for k in effects_of(Kill, core)] == [str(gone)]  # back: a stray


def test_a_deployment_waits_for_readiness_checks(core):
    core.create_app(
        {
            "id": "/web",
            "cmd": "x",
            "cpus": 1,
            "mem": 64,
            "portDefinitions": [{"port": 0, "name": "http-api"}],
            "readinessChecks": [{"path": "/ready", "intervalSeconds": 5}],
        },
        1001.0,
    )
    (task,) = launch_all(core, 1002.0)
    assert core.readiness_probes(1002.5) == []  # not running yet
    run(core, [task], 1003.0, healthy=None)
    assert core.deployments  # running, not ready
    (probe,) = core.readiness_probes(1003.0)
    port = next(iter(task.resources.ranges("ports")))[0]
    assert probe.url == f"http://h1:{port}/ready" and probe.ready_codes == (200,)
    assert core.readiness_probes(1004.0) == []  # the interval
    core.readiness_result(probe.task_id, 503, 1004.0)
    assert core.deployments
    (again,) = core.readiness_probes(1008.1)
    core.readiness_result(again.task_id, 200, 1008.2)
    core.settle()
    assert not core.deployments
    assert core.readiness_probes(1020.0) == []  # ready: asked no more
    with pytest.raises(AppInvalid) as raised:
        AppDefinition.from_json({"id": "/x", "cmd": "y", "readinessChecks": [{}]})
    assert raised.value.details[0][0] == "/readinessChecks(0)/portName"


def test_dependencies_start_first_and_stop_last(core):
    core.create_app({"id": "/shop/db", "cmd": "db", "cpus": 1, "mem": 64}, 1001.0)
    core.create_app(
        {"id": "/shop/web", "cmd": "web", "cpus": 1, "mem": 64, "dependencies": ["db"]}, 1001.5
    )
    assert core.apps["/shop/web"].dependencies == ("/shop/db",)
    (db,) = launch_all(core, 1002.0)  # the web app waits for its database
    assert db.command.value == "db"
    run(core, [db], 1003.0, healthy=None)
    (web,) = launch_all(core, 1004.0)
    assert web.command.value == "web"
    run(core, [web], 1005.0, healthy=None)
    assert not core.deployments
    core.delete_app("/shop/db", 1006.0)
    core.delete_app("/shop/web", 1006.5)
    kills = effects_of(Kill, core)
    assert [k.task_id for k in kills] == [str(web.task_id)]  # the web app stops first
    core.status_update(str(web.task_id), TaskState.TASK_KILLED, 1007.0)
    kills = effects_of(Kill, core)
    assert [k.task_id for k in kills] == [str(db.task_id)]
    core.status_update(str(db.task_id), TaskState.TASK_KILLED, 1008.0)
    core.settle()
    assert not core.apps and not core.deployments
