"""Queries to answers, sans-IO: packets in (built with dnslib), decisions out."""

from __future__ import annotations

import random
import struct
import subprocess
import sys

import pytest
from dnslib import EDNS0, QTYPE, RCODE, DNSRecord

from nameserver.answers import Answerer, Forward, Reply
from nameserver.cluster_state import ClusterState, Leader
from nameserver.flood_guard import FloodGuard
from nameserver.metrics import Counters
from nameserver.options import NameserverOptions, OptionsError
from tests import nameserver_events as ev

AGENT = "c0ffee-S0"


def answerer(*tasks, **options) -> Answerer:
    opts = NameserverOptions(master="127.0.0.1:5050", **options)
    state = ClusterState(opts.domain, nameserver=(opts.soa_mname, "127.0.0.1"))
    state.apply(
        ev.subscribed(
            agents=[ev.agent(AGENT, "10.0.0.2")],
            frameworks=[ev.framework("marathon")],
            tasks=tasks,
        )
    )
    state.set_leader(Leader("10.0.0.1", 5050))
    return Answerer(state.table, opts, Counters(), random.Random(7))


def ask(server: Answerer, name: str, kind: str = "A", udp: bool = True, edns: int = 0):
    query = DNSRecord.question(name, kind)
    if edns:
        query.add_ar(EDNS0(udp_len=edns))
    decision = server.answer(query.pack(), udp=udp)
    assert isinstance(decision, Reply), decision
    reply = DNSRecord.parse(decision.packet)
    assert reply.header.id == query.header.id
    return reply


def rdata(reply: DNSRecord) -> list[str]:
    return sorted(str(rr.rdata) for rr in reply.rr)


def test_a_task_is_answered_with_authority():
    server = answerer(ev.task("t1", "web", AGENT, addresses=("172.17.0.4",)))
    reply = ask(server, "web.marathon.corral.")
    assert reply.header.rcode == RCODE.NOERROR and reply.header.aa
    assert rdata(reply) == ["172.17.0.4"]
    assert reply.rr[0].ttl == 60
    assert rdata(ask(server, "WEB.Marathon.slave.corral.")) == ["10.0.0.2"]
    assert server.counters.answered == 2


def test_srv_answers_carry_their_targets_addresses():
    server = answerer(ev.task("t1", "web", AGENT, ports=((31000, 31000),)))
    reply = ask(server, "_web._tcp.marathon.corral.", "SRV")
    (srv,) = reply.rr
    assert srv.rdata.port == 31000
    target = str(srv.rdata.target)
    assert target.startswith("web-") and target.endswith(".marathon.slave.corral.")
    (extra,) = reply.ar
    assert (str(extra.rname), str(extra.rdata)) == (target, "10.0.0.2")


def test_unknown_names_are_nxdomain_with_the_soa_and_known_ones_of_another_type_nodata():
    server = answerer(ev.task("t1", "web", AGENT))
    missing = ask(server, "nothing.marathon.corral.")
    assert missing.header.rcode == RCODE.NXDOMAIN
    (soa,) = missing.auth
    assert soa.rtype == QTYPE.SOA and str(soa.rdata.mname) == "ns1.corral."
    nodata = ask(server, "web.marathon.corral.", "AAAA")
    assert nodata.header.rcode == RCODE.NOERROR and not nodata.rr and nodata.auth
    assert server.counters.nxdomain == 1


def test_soa_ns_and_the_leader():
    server = answerer()
    (soa,) = ask(server, "corral.", "SOA").rr
    assert str(soa.rdata.rname) == "root.ns1.corral."
    assert soa.rdata.times[1:] == (60, 600, 86400, 60)
    ns = ask(server, "corral.", "NS")
    assert rdata(ns) == ["ns1.corral."]
    assert [str(rr.rdata) for rr in ns.ar] == ["127.0.0.1"]
    assert rdata(ask(server, "leader.corral.")) == ["10.0.0.1"]
    assert rdata(ask(server, "master.corral.")) == ["10.0.0.1"]
    assert rdata(ask(server, "_leader._tcp.corral.", "SRV")) == ["0 0 5050 leader.corral."]


def test_the_serial_changes_with_the_records():
    opts = NameserverOptions(master="127.0.0.1:5050")
    state = ClusterState("corral")
    server = Answerer(state.table, opts, Counters())
    first = ask(server, "corral.", "SOA").rr[0].rdata.times[0]
    state.apply(ev.subscribed(agents=[ev.agent(AGENT, "10.0.0.2")]))
    assert ask(server, "corral.", "SOA").rr[0].rdata.times[0] > first


def test_answers_are_shuffled():
    tasks = [ev.task(f"t{i}", "web", AGENT, addresses=(f"172.17.0.{i}",)) for i in range(1, 9)]
    server = answerer(*tasks)
    orders = {
        tuple(str(rr.rdata) for rr in ask(server, "web.marathon.corral.").rr) for _ in range(20)
    }
    assert len(orders) > 1
    assert all(sorted(order) == sorted(next(iter(orders))) for order in orders)


def test_a_udp_answer_too_big_is_truncated_and_tcp_gets_it_whole():
    tasks = [
        ev.task(f"t{i}", "web", AGENT, addresses=(f"172.17.{i // 250}.{i % 250}",))
        for i in range(100)
    ]
    server = answerer(*tasks)
    cut = ask(server, "web.marathon.corral.")
    assert cut.header.tc and 0 < len(cut.rr) < 100
    assert len(cut.pack()) <= 512
    assert len(ask(server, "web.marathon.corral.", udp=False).rr) == 100
    bigger = ask(server, "web.marathon.corral.", edns=4096)
    assert not bigger.header.tc and len(bigger.rr) == 100
    assert server.counters.truncated == 1


def test_other_zones_are_refused_without_resolvers_and_forwarded_with():
    refused = ask(answerer(), "example.org.")
    assert refused.header.rcode == RCODE.REFUSED and not refused.header.aa
    forwarding = answerer(resolvers=("127.0.0.1:5353",))
    decision = forwarding.answer(DNSRecord.question("example.org.").pack(), udp=True)
    assert isinstance(decision, Forward)
    failed = DNSRecord.parse(forwarding.failed_forward(decision.query))
    assert failed.header.rcode == RCODE.SERVFAIL
    assert forwarding.counters.forward_failures == 1


def test_garbage_gets_formerr_or_nothing_and_is_counted():
    server = answerer()
    assert server.answer(b"\x00", udp=True) is None
    reply = server.answer(struct.pack(">HHHHHH", 99, 0x0100, 1, 0, 0, 0) + b"\x05abc", udp=True)
    assert isinstance(reply, Reply)
    parsed = DNSRecord.parse(reply.packet)
    assert (parsed.header.id, parsed.header.rcode) == (99, RCODE.FORMERR)
    answer = DNSRecord.question("web.marathon.corral.").reply().pack()
    assert server.answer(answer, udp=True) is None  # answers are never answered
    assert server.counters.malformed == 3


def huge_query(query_id: int = 7) -> bytes:
    """A question for a 511-character name: legal labels, illegal length (dnslib will not
    build one, so the bytes are laid out here)."""
    name = b"".join(bytes([63]) + b"a" * 63 for _ in range(8)) + b"\x00"
    return struct.pack(">HHHHHH", query_id, 0x0100, 1, 0, 0, 0) + name + struct.pack(">HH", 1, 1)


def test_a_huge_name_gets_formerr_and_is_counted():
    server = answerer()
    reply = server.answer(huge_query(), udp=True)
    assert DNSRecord.parse(reply.packet).header.rcode == RCODE.FORMERR
    assert server.counters.oversized_names == 1


def test_other_opcodes_are_not_implemented():
    query = DNSRecord.question("web.marathon.corral.")
    query.header.opcode = 4  # NOTIFY
    reply = DNSRecord.parse(answerer().answer(query.pack(), udp=True).packet)
    assert reply.header.rcode == RCODE.NOTIMP


def test_the_flood_guard_lets_a_burst_through_then_the_rate():
    guard = FloodGuard(rate=10.0, burst=5.0)
    assert [guard.allow("10.0.0.9", 0.0) for _ in range(6)] == [True] * 5 + [False]
    assert guard.allow("10.0.0.8", 0.0)  # another client has its own bucket
    assert not guard.allow("10.0.0.9", 0.05)
    assert guard.allow("10.0.0.9", 0.15)  # 0.15 s at 10/s: one token back
    assert FloodGuard(rate=0.0, burst=0.0).allow("x", 0.0)


def test_bad_options_say_which_and_what_would_do():
    with pytest.raises(OptionsError, match="--domain"):
        NameserverOptions(master="m:5050", domain="..")
    with pytest.raises(OptionsError, match="--master"):
        NameserverOptions(master="m:99999")
    with pytest.raises(OptionsError, match="--ip-sources"):
        NameserverOptions(master="m:5050", ip_sources=("docker",))
    with pytest.raises(OptionsError, match="--resolvers"):
        NameserverOptions(master="m:5050", resolvers=(":53",))
    assert NameserverOptions(master="m", domain="Example.").soa_mname == "ns1.example."


def test_kept_answers_follow_the_records_they_were_built_from():
    """Answers are packed once per question and kept; a change of the records they came from
    (and only of those) makes the next query build them again."""
    opts = NameserverOptions(master="127.0.0.1:5050")
    state = ClusterState(opts.domain)
    state.apply(
        ev.subscribed(
            agents=[ev.agent(AGENT, "10.0.0.2")],
            frameworks=[ev.framework("marathon")],
            tasks=[ev.task("t1", "web", AGENT, ports=((31000, 31000),))],
        )
    )
    server = Answerer(state.table, opts, Counters())
    assert rdata(ask(server, "web.marathon.corral.")) == ["10.0.0.2"]
    srv = ask(server, "_web._tcp.marathon.corral.", "SRV")
    assert [str(rr.rdata) for rr in srv.ar] == ["10.0.0.2"]
    missing = ask(server, "api.marathon.corral.")
    assert missing.header.rcode == RCODE.NXDOMAIN
    serial = missing.auth[0].rdata.times[0]
    assert rdata(ask(server, "web.marathon.corral.")) == ["10.0.0.2"]  # kept: same answer
    # The agent moves: the task's names and the SRV target's address change.
    state.apply({"type": "AGENT_ADDED", "agent_added": {"agent": ev.agent(AGENT, "10.0.0.7")}})
    assert rdata(ask(server, "web.marathon.corral.")) == ["10.0.0.7"]
    srv = ask(server, "_web._tcp.marathon.corral.", "SRV")
    assert [str(rr.rdata) for rr in srv.ar] == ["10.0.0.7"]
    # A new task: its name answers at once, and negative answers carry the new serial.
    state.apply(ev.task_added(ev.task("t2", "api", AGENT)))
    assert rdata(ask(server, "api.marathon.corral.")) == ["10.0.0.7"]
    other = ask(server, "nothing.marathon.corral.")
    assert other.auth[0].rdata.times[0] > serial
    assert server.counters.answered == 6 and server.counters.nxdomain == 2
    assert server.counters.packed == 7  # the repeated question was answered as kept


def test_the_nameserver_never_imports_the_master_or_the_agent():
    """The DC/OS layer is a client of the kernel: HTTP to the master, no imports of it."""
    code = (
        "import sys, nameserver.service, corral.cli.dns; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('master', 'agent', 'containerizer')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_queries_for_random_names_do_not_push_out_the_kept_answers(monkeypatch):
    from nameserver import answers

    monkeypatch.setattr(answers, "MAX_SERIAL_BOUND", 5)
    monkeypatch.setattr(answers, "MAX_KEPT", 10)
    server = answerer(ev.task("t1", "web", AGENT))
    ask(server, "web.marathon.corral.")
    for index in range(20):
        assert ask(server, f"nothing-{index}.marathon.corral.").header.rcode == RCODE.NXDOMAIN
    assert server.counters.packed == 21
    assert rdata(ask(server, "web.marathon.corral.")) == ["10.0.0.2"]
    assert server.counters.packed == 21  # still kept: answered without packing again
    assert server.counters.nxdomain == 20


def test_any_answers_every_type_the_name_has():
    server = answerer(ev.task("t1", "web", AGENT, addresses=("172.17.0.4", "fd00::4")))
    kinds = sorted(QTYPE[rr.rtype] for rr in ask(server, "web.marathon.corral.", "ANY").rr)
    assert kinds == ["A", "AAAA"]
    apex = sorted(QTYPE[rr.rtype] for rr in ask(server, "corral.", "ANY").rr)
    assert apex == ["NS", "SOA"]
    assert ask(server, "web.marathon.corral.", "TXT").header.rcode == RCODE.NOERROR  # NODATA


def test_queries_that_differ_only_in_edns_options_share_the_kept_answer():
    """dig sends a fresh EDNS cookie with every query: the answer does not depend on it."""
    from dnslib import EDNSOption

    server = answerer(ev.task("t1", "web", AGENT))
    replies = []
    for cookie in (b"\x01" * 8, b"\x02" * 8):
        query = DNSRecord.question("web.marathon.corral.")
        query.add_ar(EDNS0(udp_len=1232, opts=[EDNSOption(10, cookie)]))
        replies.append(DNSRecord.parse(server.answer(query.pack(), udp=True).packet))
    assert [rdata(reply) for reply in replies] == [["10.0.0.2"], ["10.0.0.2"]]
    assert server.counters.packed == 1
    bigger = DNSRecord.question("web.marathon.corral.")
    bigger.add_ar(EDNS0(udp_len=4096))
    server.answer(bigger.pack(), udp=True)
    assert server.counters.packed == 2  # another payload size: its own answer
    without = ask(server, "web.marathon.corral.")
    assert not without.ar and server.counters.packed == 3
