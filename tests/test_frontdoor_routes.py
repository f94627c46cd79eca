"""The front door's routing table and its header rules, without sockets."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest

from frontdoor import metadata
from frontdoor.headers import end_to_end, forwarded_for
from frontdoor.routes import (
    Forward,
    ForwardToAgent,
    Local,
    NotFound,
    RoutingTable,
    Unconfigured,
    Upstream,
    agent_address,
    rewrite_location,
)

ALL = {
    Upstream.MASTER: "127.0.0.1:5050",
    Upstream.SERVICES: "127.0.0.1:8080",
    Upstream.DNS: "127.0.0.1:8123",
}


@pytest.fixture
def table() -> RoutingTable:
    return RoutingTable(ALL)


@pytest.mark.parametrize(
    ("path", "upstream", "rest", "prefix"),
    [
        ("/mesos/master/state", Upstream.MASTER, "/master/state", "/mesos"),
        ("/mesos/api/v1", Upstream.MASTER, "/api/v1", "/mesos"),
        ("/mesos", Upstream.MASTER, "/", "/mesos"),
        ("/mesos/", Upstream.MASTER, "/", "/mesos"),
        ("/service/marathon/v2/apps//shop/web", Upstream.SERVICES, "/v2/apps//shop/web", None),
        ("/service/marathon/v2/events", Upstream.SERVICES, "/v2/events", "/service/marathon"),
        ("/marathon/v2/info", Upstream.SERVICES, "/v2/info", "/marathon"),
        ("/mesos_dns/v1/version", Upstream.DNS, "/v1/version", "/mesos_dns"),
    ],
)
def test_prefixes_go_to_their_upstream_with_the_prefix_taken_off(
    table, path, upstream, rest, prefix
):
    decision = table.resolve(path)
    assert isinstance(decision, Forward)
    assert decision.upstream is upstream
    assert decision.address == ALL[upstream]
    assert decision.path == rest
    if prefix:
        assert decision.prefix == prefix


def test_a_prefix_matches_only_whole_segments(table):
    assert isinstance(table.resolve("/mesosphere"), NotFound)
    assert isinstance(table.resolve("/service/marathonx/v2/apps"), NotFound)
    assert isinstance(table.resolve("/mesos_dnsx"), NotFound)


@pytest.mark.parametrize(
    ("path", "rest"),
    [
        ("/mesos/master/state.json", "/master/state"),
        ("/mesos/state.json", "/state"),
        ("/mesos/master/state-summary.json", "/master/state-summary"),
        ("/mesos/master/state-summary", "/master/state-summary"),
        ("/mesos/files/browse.json/x", "/files/browse.json/x"),  # not an endpoint's twin
    ],
)
def test_the_masters_json_twins_are_its_plain_endpoints(table, path, rest):
    assert table.resolve(path).path == rest


@pytest.mark.parametrize(
    ("path", "rest"),
    [
        ("/mesos_dns/v1/hosts/master.mesos", "/v1/hosts/master.corral"),
        ("/mesos_dns/v1/hosts/leader.mesos.", "/v1/hosts/leader.corral"),
        (
            "/mesos_dns/v1/services/_web._tcp.marathon.mesos",
            "/v1/services/_web._tcp.marathon.corral",
        ),
        ("/mesos_dns/v1/hosts/master.corral", "/v1/hosts/master.corral"),
        ("/mesos_dns/v1/hosts/mesos", "/v1/hosts/mesos"),
        ("/mesos_dns/v1/config", "/v1/config"),
    ],
)
def test_dcos_names_under_mesos_are_asked_under_the_dns_servers_domain(table, path, rest):
    assert table.resolve(path).path == rest


def test_a_dns_server_answering_mesos_itself_gets_the_names_unchanged():
    table = RoutingTable(ALL, dns_domain="mesos.")
    assert table.resolve("/mesos_dns/v1/hosts/master.mesos").path == "/v1/hosts/master.mesos"


def test_agents_are_addressed_by_id_under_slave_and_agent(table):
    for prefix in ("/slave", "/agent"):
        decision = table.resolve(f"{prefix}/abc-S0/files/read.json")
        assert decision == ForwardToAgent("abc-S0", "/files/read.json", f"{prefix}/abc-S0")
        assert decision.at("10.0.0.2:5051") == Forward(
            None, "10.0.0.2:5051", "/files/read.json", f"{prefix}/abc-S0"
        )
    assert table.resolve("/slave/abc-S0").path == "/"
    assert isinstance(table.resolve("/slave/"), NotFound)
    assert isinstance(table.resolve("/slave"), NotFound)


def test_the_front_doors_own_paths(table):
    for path in ("/", "/dcos-metadata/dcos-version.json", "/metadata"):
        assert table.resolve(path) == Local(path)
    assert table.resolve("/pkgpanda/active.buildinfo.full.json") == Local(
        "/pkgpanda/active.buildinfo.full.json"
    )
    assert isinstance(table.resolve("/dcos-metadata/other.json"), NotFound)


def test_a_part_not_given_is_named_with_how_to_start_it():
    table = RoutingTable({Upstream.MASTER: "127.0.0.1:5050"})
    decision = table.resolve("/service/marathon/v2/apps")
    assert decision == Unconfigured(Upstream.SERVICES)
    assert "services scheduler" in decision.sentence()
    assert "corral services --master" in decision.sentence()
    assert "--services HOST:PORT" in decision.sentence()
    assert table.resolve("/mesos_dns/v1/version") == Unconfigured(Upstream.DNS)
    # Agents are found through the master: without one, that is what is missing.
    assert RoutingTable({}).resolve("/slave/x/state") == Unconfigured(Upstream.MASTER)


def test_an_unknown_path_lists_every_prefix(table):
    decision = table.resolve("/nowhere/at/all")
    assert decision == NotFound("/nowhere/at/all")
    sentence = decision.sentence()
    assert sentence.startswith("no part of the cluster is served at /nowhere/at/all")
    for prefix in ("/mesos/", "/service/marathon/", "/mesos_dns/", "/slave/<agent id>/"):
        assert prefix in sentence
    assert "/dcos-metadata/dcos-version.json" in sentence


@pytest.mark.parametrize(
    ("location", "rewritten"),
    [
        ("//127.0.0.1:5050/master/state", "/mesos/master/state"),  # Mesos's form
        ("http://127.0.0.1:5050/master/redirect?x=1", "/mesos/master/redirect?x=1"),
        ("/v2/apps/web", "/mesos/v2/apps/web"),
        ("http://127.0.0.1:5050", "/mesos/"),
        ("//10.0.0.9:5050/master/state", "//10.0.0.9:5050/master/state"),  # another host
        ("https://example.org/docs", "https://example.org/docs"),
        ("state", "state"),  # relative: already right under the prefix
    ],
)
def test_redirects_stay_on_the_front_door(location, rewritten):
    assert rewrite_location(location, "127.0.0.1:5050", "/mesos") == rewritten


def test_an_agents_http_address_is_its_pids_host_with_its_http_port():
    slaves = {
        "slaves": [
            {"id": "a-S0", "pid": "agent@10.0.0.1:40001", "hostname": "node1", "port": 5051},
            {"id": "a-S1", "hostname": "node2", "port": 5052},
            {"id": "a-S2", "pid": "agent@10.0.0.3:40003", "hostname": "node3"},
        ]
    }
    assert agent_address(slaves, "a-S0") == "10.0.0.1:5051"
    assert agent_address(slaves, "a-S1") == "node2:5052"
    assert agent_address(slaves, "a-S2") is None  # no HTTP port known
    assert agent_address(slaves, "a-S9") is None
    assert agent_address({}, "a-S0") is None


def test_hop_by_hop_headers_are_dropped_and_repeats_kept():
    headers = [
        ("Content-Type", "application/json"),
        ("Connection", "keep-alive, X-Private"),
        ("Keep-Alive", "timeout=5"),
        ("Transfer-Encoding", "chunked"),
        ("X-Private", "1"),
        ("Set-Cookie", "a=1"),
        ("Set-Cookie", "b=2"),
        ("Mesos-Stream-Id", "s-1"),
        ("Host", "front:8000"),
        ("Upgrade", "h2c"),
    ]
    assert end_to_end(headers, drop=("host",)) == [
        ("Content-Type", "application/json"),
        ("Set-Cookie", "a=1"),
        ("Set-Cookie", "b=2"),
        ("Mesos-Stream-Id", "s-1"),
    ]
    assert forwarded_for(None, "10.1.1.1") == "10.1.1.1"
    assert forwarded_for("10.0.0.1", "10.1.1.1") == "10.0.0.1, 10.1.1.1"


def test_the_cluster_id_is_a_version_4_uuid_stable_per_master():
    first = metadata.cluster_id("127.0.0.1:5050")
    assert uuid.UUID(first).version == 4
    assert metadata.cluster_id("127.0.0.1:5050") == first
    assert metadata.cluster_id("127.0.0.1:5051") != first
    assert metadata.dcos_version("0.1.0")["version"] == metadata.DCOS_RELEASE


def test_the_front_door_never_imports_the_parts_it_routes_to():
    """It knows them only by their HTTP addresses."""
    code = (
        "import sys, frontdoor, corral.cli.frontdoor, corral.cli.app; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('master', 'agent', 'containerizer', 'services', 'nameserver')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
