"""From a query packet to what the server does with it: an answer from the record table,
a query to forward to another server, or nothing (a packet too broken to answer).

Sans-IO: ``Answerer.answer`` takes bytes and returns a decision; the server (server.py) does
the sockets. The wire format is dnslib's. As Mesos-DNS: answers in the domain are
authoritative, shuffled for crude load balancing; SRV answers carry their targets' addresses
as additional records; an unknown name is NXDOMAIN with the SOA as authority; other zones go
to the resolvers, or are REFUSED when there are none.

Answers are kept, packed, per question (the query's bytes after its id) until a record they
were built from changes (the table says which names changed; answers that carry the SOA's
serial are forgotten at every change): a question asked again is answered with the kept bytes
and the new id. An answer with n records keeps min(n, ``ORDERS``) packings, each in its own
shuffled order (its records are built once, and packed again in each new order), and each
query gets one of them at random, so that clients still spread over the records.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass

from dnslib import (
    AAAA,
    EDNS0,
    NS,
    OPCODE,
    QTYPE,
    RCODE,
    RR,
    SOA,
    SRV,
    A,
    DNSBuffer,
    DNSError,
    DNSHeader,
    DNSRecord,
)

from nameserver.metrics import Counters
from nameserver.options import NameserverOptions
from nameserver.records import RecordTable, RecordType

MAX_NAME = 253  # characters of a name, without the final dot (RFC 1035's 255 octets)
UDP_LIMIT = 512  # bytes of a UDP answer without EDNS (RFC 1035)
EDNS_LIMIT = 4096  # the most we answer over UDP whatever the client offers
ORDERS = 8  # shuffled packings kept of an answer with several records
MAX_KEPT = 100_000  # questions whose answers are kept; beyond, all are forgotten
# Of which answers carrying the serial (NXDOMAIN, NODATA, the apex): beyond, no more are kept,
# so that queries for random names cannot push out the answers for real ones.
MAX_SERIAL_BOUND = 10_000
_ADDRESS_TYPES = {RecordType.A: (QTYPE.A, A), RecordType.AAAA: (QTYPE.AAAA, AAAA)}


@dataclass(frozen=True, slots=True)
class Reply:
    packet: bytes


def question_key(packet: bytes, udp: bool) -> bytes:
    """What a query's answer depends on: the transport, the header after the id, the question,
    and, for a query with just an EDNS record, its payload size and flags, but not its options
    (a client's cookie differs from query to query, and is not echoed: we do not do cookies).
    Anything else is keyed by all its bytes after the id."""
    whole = (b"U" if udp else b"T") + packet[2:]
    if packet[10:12] != b"\x00\x01" or packet[4:6] != b"\x00\x01":
        return whole  # not one question and one additional record: as it is
    end = 12
    while end < len(packet):
        length = packet[end]
        if length & 0xC0:
            return whole  # a compression pointer in the question: as it is
        end += 1 + length
        if length == 0:
            break
    end += 4  # the question's type and class
    if packet[end : end + 3] != b"\x00\x00\x29":  # the root name, type OPT
        return whole
    return whole[:1] + packet[2:end] + packet[end + 3 : end + 9]  # size, rcode, version, flags


class _Layout:
    """One answer's records, built once, to pack in as many orders as are wanted."""

    __slots__ = ("answers", "extra", "fit", "limit", "opt", "reply")

    def __init__(
        self, reply: DNSRecord, answers: list[RR], extra: list[RR], edns: bool, limit: int | None
    ) -> None:
        self.reply = reply
        self.answers = answers
        self.extra = extra
        self.opt = [EDNS0(udp_len=EDNS_LIMIT)] if edns else []
        self.limit = limit  # bytes over UDP; None over TCP
        self.fit: int | None = None  # answers that fit, once an order had to be cut

    @property
    def truncated(self) -> bool:
        return self.fit is not None

    def pack(self, rng: random.Random) -> bytes:
        """The answer in a new shuffled order, cut to ``limit`` if needed: additional records
        first, then answers, with TC set (as Mesos-DNS does) so that the client asks again
        over TCP for the whole answer."""
        order = list(self.answers)
        rng.shuffle(order)
        reply = self.reply
        if self.fit is not None:
            reply.rr, reply.ar = order[: self.fit], self.opt
        else:
            reply.rr, reply.ar = order, self.extra + self.opt
        packet = reply.pack()
        if self.limit is None or len(packet) <= self.limit:
            return packet
        reply.header.tc = 1
        reply.ar = self.opt
        packet = reply.pack()
        while len(packet) > self.limit and reply.rr:
            del reply.rr[len(reply.rr) // 2 :]
            packet = reply.pack()
        self.fit = len(reply.rr)
        return packet


@dataclass(slots=True)
class _Kept:
    counts: tuple[str, ...]  # the counters each use of the answer counts
    packings: list[bytes]
    # Invariant: layout is None exactly when no more packings are wanted.
    layout: _Layout | None
    wanted: int


@dataclass(frozen=True, slots=True)
class Forward:
    """A query for another zone, to send on as it came."""

    packet: bytes
    query: DNSRecord


class Answerer:
    """Answers queries from ``table``; counts what it did in ``counters``."""

    def __init__(
        self,
        table: RecordTable,
        options: NameserverOptions,
        counters: Counters,
        rng: random.Random | None = None,
    ) -> None:
        self.table = table
        self.counters = counters
        self.ttl = options.ttl
        self.forwarding = bool(options.resolvers)
        self.domain = f"{options.domain}."
        self._suffix = f".{self.domain}"
        self._mname = options.soa_mname
        self._soa_fields = (options.soa_rname, options.soa_refresh, options.soa_retry)
        self._expire = options.soa_expire
        self._rng = rng or random.Random()
        # Invariant: every kept answer is what the table would answer now: each question is
        # in _by_name under every name its answer was built from, or in _serial_bound if it
        # carries the serial.
        self._kept: dict[bytes, _Kept] = {}
        self._by_name: dict[str, set[bytes]] = {}
        self._serial_bound: set[bytes] = set()
        table.watch(self._forget)

    # -- the decision -----------------------------------------------------------------------

    def answer(self, packet: bytes, udp: bool) -> Reply | Forward | None:
        """What to do with one packet from a client (``udp``: it came over UDP, so the answer
        must fit what the client can take)."""
        question = question_key(packet, udp)
        kept = self._kept.get(question)
        if kept is None:
            return self._decide(packet, udp, question)
        counters = self.counters
        for name in kept.counts:
            setattr(counters, name, getattr(counters, name) + 1)
        packings = kept.packings
        if kept.layout is not None:
            counters.packed += 1
            packing = kept.layout.pack(self._rng)
            packings.append(packing)
            if len(packings) >= kept.wanted:
                kept.layout = None
        elif len(packings) > 1:
            packing = packings[self._rng.randrange(len(packings))]
        else:
            packing = packings[0]
        return Reply(packet[:2] + packing[2:])

    def _decide(self, packet: bytes, udp: bool, question: bytes) -> Reply | Forward | None:
        counters = self.counters
        try:
            query = DNSRecord.parse(packet)
        except DNSError:
            counters.malformed += 1
            return self._header_only(packet, RCODE.FORMERR)
        header = query.header
        if header.qr:
            counters.malformed += 1
            return None  # an answer sent to us: answering answers is how loops start
        if header.opcode != OPCODE.QUERY:
            counters.not_implemented += 1
            return self._header_only(packet, RCODE.NOTIMP)
        if len(query.questions) != 1:
            counters.malformed += 1
            return self._header_only(packet, RCODE.FORMERR)
        name = str(query.q.qname).lower()
        if len(name.rstrip(".")) > MAX_NAME:
            counters.oversized_names += 1
            return self._header_only(packet, RCODE.FORMERR)
        if name != self.domain and not name.endswith(self._suffix):
            if self.forwarding:
                return Forward(packet, query)
            counters.refused += 1
            reply = query.reply(ra=0)
            reply.header.aa = 0
            reply.header.rcode = RCODE.REFUSED
            packing = reply.pack()
            self._keep(question, _Kept(("refused",), [packing], None, 1), ())
            return Reply(packing)
        counts, layout, sources = self._local(query, name, udp)
        counters.packed += 1
        packing = layout.pack(self._rng)
        if layout.truncated:
            counts += ("truncated",)
        for counter in counts:
            setattr(counters, counter, getattr(counters, counter) + 1)
        wanted = min(len(layout.answers), ORDERS)
        self._keep(
            question, _Kept(counts, [packing], layout if wanted > 1 else None, wanted), sources
        )
        return Reply(packing)

    def _keep(self, question: bytes, kept: _Kept, sources: Iterable[str] | None) -> None:
        """Keep ``question``'s answer, built from the records of ``sources`` (None: it carries
        the serial)."""
        if sources is None and len(self._serial_bound) >= MAX_SERIAL_BOUND:
            return
        if len(self._kept) >= MAX_KEPT:
            self._forget(None)
        if sources is None:
            self._serial_bound.add(question)
        else:
            for source in sources:
                self._by_name.setdefault(source, set()).add(question)
        self._kept[question] = kept

    def _forget(self, names: set[str] | None) -> None:
        """The records of ``names`` changed (None: all): forget what was built from them."""
        if names is None:
            self._kept.clear()
            self._by_name.clear()
            self._serial_bound.clear()
            return
        kept = self._kept
        for name in names:
            for question in self._by_name.pop(name, ()):
                kept.pop(question, None)
        for question in self._serial_bound:
            kept.pop(question, None)
        self._serial_bound.clear()

    def failed_forward(self, query: DNSRecord) -> bytes:
        """SERVFAIL: no resolver answered in time."""
        self.counters.forward_failures += 1
        reply = query.reply()
        reply.header.aa = 0
        reply.header.rcode = RCODE.SERVFAIL
        return reply.pack()

    # -- answers from the table -------------------------------------------------------------

    def _local(
        self, query: DNSRecord, name: str, udp: bool
    ) -> tuple[tuple[str, ...], _Layout, set[str] | None]:
        """(the counters this answer counts, its records to pack, the names it was built
        from, or None if it carries the SOA's serial)."""
        sources: set[str] | None = {name}
        reply = query.reply(ra=int(self.forwarding))
        qname = query.q.qname
        qtype = query.q.qtype
        answers: list[RR] = []
        extra: list[RR] = []
        apex = name == self.domain
        if qtype in (QTYPE.A, QTYPE.ANY):
            answers += self._addresses(qname, name, RecordType.A)
        if qtype in (QTYPE.AAAA, QTYPE.ANY):
            answers += self._addresses(qname, name, RecordType.AAAA)
        if qtype in (QTYPE.SRV, QTYPE.ANY):
            for value in self.table.lookup(name, RecordType.SRV):
                target, _, port = value.rpartition(":")
                answers.append(
                    RR(qname, QTYPE.SRV, rdata=SRV(0, 0, int(port), target), ttl=self.ttl)
                )
                extra += self._addresses(target, target, RecordType.A)
                extra += self._addresses(target, target, RecordType.AAAA)
                sources.add(target)
        if apex and qtype in (QTYPE.SOA, QTYPE.ANY):
            answers.append(self._soa())
        if apex and qtype in (QTYPE.NS, QTYPE.ANY):
            answers.append(RR(self.domain, QTYPE.NS, rdata=NS(self._mname), ttl=self.ttl))
            extra += self._addresses(self._mname, self._mname, RecordType.A)
        counts: tuple[str, ...] = ("answered",)
        if apex:
            sources = None  # the SOA's serial, or the apex's NS (whose address may change)
        if not answers:
            sources = None  # the SOA, with its serial, is the authority
            reply.auth = [self._soa()]
            if not apex and not self.table.exists(name):  # else NODATA: other types only
                counts = ("nxdomain",)
                reply.header.rcode = RCODE.NXDOMAIN
        limit = UDP_LIMIT
        edns = [record for record in query.ar if record.rtype == QTYPE.OPT]
        if edns:
            limit = max(UDP_LIMIT, min(edns[0].rclass, EDNS_LIMIT))
        return counts, _Layout(reply, answers, extra, bool(edns), limit if udp else None), sources

    def _addresses(self, qname: object, name: str, kind: RecordType) -> list[RR]:
        qtype, rdata = _ADDRESS_TYPES[kind]
        return [
            RR(qname, qtype, rdata=rdata(value), ttl=self.ttl)
            for value in self.table.lookup(name, kind)
        ]

    def _soa(self) -> RR:
        rname, refresh, retry = self._soa_fields
        times = (self.table.generation, refresh, retry, self._expire, self.ttl)
        return RR(self.domain, QTYPE.SOA, rdata=SOA(self._mname, rname, times), ttl=self.ttl)

    @staticmethod
    def _header_only(packet: bytes, rcode: int) -> Reply | None:
        """An answer with no question, for a query we cannot take apart; None (drop) when
        not even the header is there to answer to."""
        if len(packet) < 12:
            return None
        try:
            asked = DNSHeader.parse(DNSBuffer(packet[:12]))
        except DNSError:
            return None
        header = DNSHeader(id=asked.id, qr=1, opcode=asked.opcode, rd=asked.rd, rcode=rcode)
        return Reply(DNSRecord(header).pack())
