"""The record table and the cluster state that fills it, from v1 operator events: Mesos-DNS's
record sets, and how they follow tasks, agents and frameworks. No sockets, no clock."""

from __future__ import annotations

import pytest

from nameserver.cluster_state import ClusterState, EventError, Leader
from nameserver.records import Record, RecordTable, RecordType
from tests import nameserver_events as ev

A, AAAA, SRV = RecordType.A, RecordType.AAAA, RecordType.SRV
AGENT = "c0ffee-S3"
HASH_T1 = "hw4uo"  # five z-base-32 characters of sha1("t1")


def cluster(*tasks, frameworks=None, **options) -> ClusterState:
    state = ClusterState("corral", **options)
    state.apply(
        ev.subscribed(
            agents=[ev.agent(AGENT, "10.0.0.3")],
            frameworks=frameworks or [ev.framework("marathon")],
            tasks=tasks,
        )
    )
    return state


def test_a_table_counts_owners_so_a_shared_value_stays_until_the_last_goes():
    table = RecordTable()
    shared = Record("web.app.corral.", A, "10.0.0.1")
    assert table.replace("one", [shared])
    assert table.replace("two", [shared, Record("web.app.corral.", A, "10.0.0.2")])
    assert sorted(table.lookup("WEB.app.corral.", A)) == ["10.0.0.1", "10.0.0.2"]
    before = table.generation
    assert not table.replace("one", [shared])  # no change, no new generation
    assert table.generation == before
    table.replace("two", [])
    assert table.lookup("web.app.corral.", A) == ["10.0.0.1"]
    table.replace("one", [])
    assert table.lookup("web.app.corral.", A) == [] and not table.exists("web.app.corral.")
    assert len(table) == 0 and table.names() == 0


def test_a_running_task_has_mesos_dns_records():
    state = cluster(ev.task("t1", "web", AGENT, ports=((31000, 31001),)))
    table = state.table
    canonical = f"web-{HASH_T1}-s3.marathon"
    assert table.lookup("web.marathon.corral.", A) == ["10.0.0.3"]
    assert table.lookup(f"{canonical}.corral.", A) == ["10.0.0.3"]
    assert table.lookup("web.marathon.slave.corral.", A) == ["10.0.0.3"]
    assert table.lookup(f"{canonical}.slave.corral.", A) == ["10.0.0.3"]
    for name in (
        "_web._tcp.marathon.corral.",
        "_web._udp.marathon.corral.",
        "_web._tcp.marathon.slave.corral.",
        "_web._udp.marathon.slave.corral.",
    ):
        assert sorted(table.lookup(name, SRV)) == [
            f"{canonical}.slave.corral.:31000",
            f"{canonical}.slave.corral.:31001",
        ]
    assert table.lookup("slave.corral.", A) == ["10.0.0.3"]
    assert table.lookup("agent.corral.", A) == ["10.0.0.3"]
    assert table.lookup("_slave._tcp.corral.", SRV) == ["slave.corral.:5051"]


def test_discovery_info_names_the_task_and_its_ports_give_the_srv_records():
    discovery = {
        "name": "Search Engine",
        "ports": {
            "ports": [
                {"number": 8080, "name": "http", "protocol": "tcp"},
                {"number": 9090, "protocol": ""},
            ]
        },
    }
    state = cluster(ev.task("t1", "ignored", AGENT, ports=((31000, 31000),), discovery=discovery))
    table = state.table
    canonical = f"searchengine-{HASH_T1}-s3.marathon.corral."
    assert table.lookup("searchengine.marathon.corral.", A) == ["10.0.0.3"]
    assert table.lookup("ignored.marathon.corral.", A) == []
    assert sorted(table.lookup("_searchengine._tcp.marathon.corral.", SRV)) == [
        f"{canonical}:8080",
        f"{canonical}:9090",
    ]
    assert table.lookup("_http._searchengine._tcp.marathon.corral.", SRV) == [f"{canonical}:8080"]
    assert table.lookup("_searchengine._udp.marathon.corral.", SRV) == [f"{canonical}:9090"]
    # The ports resource is still named, on the agent only (the task said where it listens).
    assert table.lookup("_searchengine._tcp.marathon.slave.corral.", SRV) == [
        f"searchengine-{HASH_T1}-s3.marathon.slave.corral.:31000"
    ]


def test_the_container_address_comes_first_and_the_agent_address_stays_on_slave_names():
    state = cluster(ev.task("t1", "web", AGENT, addresses=("172.17.0.5", "fd00::5")))
    table = state.table
    assert table.lookup("web.marathon.corral.", A) == ["172.17.0.5"]
    assert table.lookup("web.marathon.corral.", AAAA) == ["fd00::5"]
    assert table.lookup("web.marathon.slave.corral.", A) == ["10.0.0.3"]
    only_host = cluster(
        ev.task("t1", "web", AGENT, addresses=("172.17.0.5",)), ip_sources=("host",)
    )
    assert only_host.table.lookup("web.marathon.corral.", A) == ["10.0.0.3"]


def test_records_appear_at_running_and_go_at_the_end():
    state = cluster()
    state.apply(ev.task_added(ev.task("t1", "web", AGENT, state="TASK_STAGING")))
    assert state.table.lookup("web.marathon.corral.", A) == []
    state.apply(ev.task_updated("t1", "TASK_RUNNING", AGENT, addresses=("172.17.0.9",)))
    assert state.table.lookup("web.marathon.corral.", A) == ["172.17.0.9"]
    state.apply(ev.task_updated("t1", "TASK_KILLING", AGENT))
    assert state.table.lookup("web.marathon.corral.", A) == []
    state.apply(ev.task_updated("t1", "TASK_KILLED", AGENT))
    assert state.tasks == {}
    assert not state.table.exists("web.marathon.slave.corral.")


def test_two_tasks_of_one_app_share_the_name_until_both_end():
    state = cluster(
        ev.task("t1", "web", AGENT, addresses=("172.17.0.1",)),
        ev.task("t2", "web", AGENT, addresses=("172.17.0.2",)),
    )
    assert sorted(state.table.lookup("web.marathon.corral.", A)) == ["172.17.0.1", "172.17.0.2"]
    state.apply(ev.task_updated("t1", "TASK_FINISHED", AGENT))
    assert state.table.lookup("web.marathon.corral.", A) == ["172.17.0.2"]


def test_an_agent_removed_takes_its_tasks_records_and_one_added_brings_them():
    state = cluster(ev.task("t1", "web", AGENT))
    state.apply({"type": "AGENT_REMOVED", "agent_removed": {"agent_id": {"value": AGENT}}})
    assert state.table.lookup("web.marathon.corral.", A) == []
    assert state.table.lookup("slave.corral.", A) == []
    state.apply({"type": "AGENT_ADDED", "agent_added": {"agent": ev.agent(AGENT, "10.0.0.4")}})
    assert state.table.lookup("web.marathon.corral.", A) == ["10.0.0.4"]


def test_a_framework_renamed_or_removed_renames_or_removes_its_tasks():
    state = cluster(ev.task("t1", "web", AGENT))
    state.apply(
        {
            "type": "FRAMEWORK_UPDATED",
            "framework_updated": {"framework": ev.framework("Jobs.Batch")},
        }
    )
    assert state.table.lookup("web.marathon.corral.", A) == []
    assert state.table.lookup("web.jobs.batch.corral.", A) == ["10.0.0.3"]
    removed = {"type": "FRAMEWORK_REMOVED", "framework_removed": ev.framework("x")}
    state.apply(removed)
    assert state.tasks == {} and len(state.table) == 4  # the agent's own records stay


def test_a_resync_replaces_everything_known():
    state = cluster(ev.task("t1", "web", AGENT))
    state.set_leader(Leader("10.0.0.1", 5050))
    state.apply(
        ev.subscribed(
            agents=[ev.agent(AGENT, "10.0.0.3")],
            frameworks=[ev.framework("marathon")],
            tasks=[ev.task("t2", "api", AGENT)],
        )
    )
    assert state.table.lookup("web.marathon.corral.", A) == []
    assert state.table.lookup("api.marathon.corral.", A) == ["10.0.0.3"]
    assert state.table.lookup("leader.corral.", A) == ["10.0.0.1"]  # kept across the resync


def test_leader_and_master_records():
    state = cluster()
    state.set_leader(Leader("10.0.0.1", 5050))
    table = state.table
    for name in ("leader.corral.", "master.corral.", "master0.corral."):
        assert table.lookup(name, A) == ["10.0.0.1"]
    assert table.lookup("_leader._tcp.corral.", SRV) == ["leader.corral.:5050"]
    assert table.lookup("_leader._udp.corral.", SRV) == ["leader.corral.:5050"]


def test_tasks_of_unknown_frameworks_or_agents_have_no_records_until_they_are_known():
    state = ClusterState("corral")
    state.apply(ev.subscribed(tasks=[ev.task("t1", "web", AGENT)]))
    assert len(state.table) == 0
    state.apply({"type": "AGENT_ADDED", "agent_added": {"agent": ev.agent(AGENT, "10.0.0.3")}})
    state.apply(
        {"type": "FRAMEWORK_ADDED", "framework_added": {"framework": ev.framework("marathon")}}
    )
    assert state.table.lookup("web.marathon.corral.", A) == ["10.0.0.3"]


def test_a_malformed_event_is_refused_and_changes_nothing():
    state = cluster(ev.task("t1", "web", AGENT))
    before = state.table.generation
    with pytest.raises(EventError, match="TASK_ADDED"):
        state.apply({"type": "TASK_ADDED", "task_added": {"task": {"name": "x"}}})
    with pytest.raises(EventError, match="GET_STATE"):
        state.apply(
            {"type": "SUBSCRIBED", "subscribed": {"get_state": {"get_agents": {"agents": [{}]}}}}
        )
    state.apply({"type": "SOMETHING_NEW"})  # a type Mesos may add later: ignored
    assert state.table.generation == before
    assert state.table.lookup("web.marathon.corral.", A) == ["10.0.0.3"]


def test_enumerate_has_mesos_dns_shape():
    state = cluster(ev.task("t1", "web", AGENT))
    (framework,) = state.enumerate()["frameworks"]
    assert framework["name"] == "marathon"
    (task,) = framework["tasks"]
    assert (task["name"], task["id"]) == ("web", "t1")
    assert {"name": "web.marathon.corral.", "host": "10.0.0.3", "rtype": "A"} in task["records"]


def test_rfc952_when_enforced():
    state = cluster(ev.task("t1", "9-lives-of-a-very-long-named-cat", AGENT), enforce_rfc952=True)
    assert state.table.lookup("lives-of-a-very-long-nam.marathon.corral.", A) == ["10.0.0.3"]


def test_the_canonical_name_is_mesos_dns_s_for_the_same_task():
    """Mesos-DNS's documented example: nginx.48dccce7-… on agent …-S1 of marathon."""
    agent_id = "20160107-001256-134875658-5050-27524-S1"
    state = ClusterState("mesos")
    task_id = "nginx.48dccce7-90bc-11e6-ae70-70b3d5800001"
    state.apply(
        ev.subscribed(
            agents=[ev.agent(agent_id, "10.10.0.93")],
            frameworks=[ev.framework("marathon")],
            tasks=[ev.task(task_id, "nginx", agent_id)],
        )
    )
    assert state.table.lookup("nginx-jhy6r-s1.marathon.mesos.", A) == ["10.10.0.93"]
