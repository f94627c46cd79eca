"""A Linux network namespace joined to this one by a veth pair, whose link tests can cut.

For partition tests: a process started inside the namespace (``popen``, ``exec_args``) reaches
the root namespace only over the veth pair, so ``cut()`` puts it behind a network partition
while every process in the root namespace still reaches every other (the host end's address
stays local to this namespace even while its link is down). ``heal()`` joins them again.

Needs root and iproute2 (``ip``); ``available()`` says whether this machine can, and why not.
The cut is ``ip link set <host end> down``: it needs no kernel module (``tc`` netem and
iptables are often missing). Packets from the namespace then vanish silently; sends from the
root namespace to it fail at once with ENETUNREACH. Established TCP connections survive a
short cut (their retransmissions resume after ``heal``), as they would across a real partition.
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import json
import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import structlog

log = structlog.get_logger("tests.netns")

_numbers = itertools.count(1)


class NetnsError(RuntimeError):
    """An ``ip`` command failed; the message has the command and what it printed."""


def available() -> str | None:
    """``None`` if namespaces can be made here, else why not (a pytest skip reason)."""
    if os.name != "posix" or not Path("/proc/self/ns/net").exists():
        return "network namespaces are Linux only"
    if os.geteuid() != 0:
        return "network namespaces and veth pairs need root"
    if shutil.which("ip") is None:
        return "iproute2's 'ip' is not installed (apt-get install iproute2)"
    return None


def ip(*args: str, namespace: str | None = None) -> str:
    """Run ``ip args...`` (inside ``namespace`` if given); its output, or ``NetnsError``."""
    command = ["ip", *args] if namespace is None else ["ip", "-n", namespace, *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)
    if done.returncode != 0:
        raise NetnsError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def _free_subnet() -> ipaddress.IPv4Network:
    """A random 10.x.y.z/30 that overlaps no address or route of the root namespace."""
    used = [
        ipaddress.ip_network(f"{info['local']}/{info['prefixlen']}", strict=False)
        for link in json.loads(ip("-j", "-4", "addr", "show"))
        for info in link.get("addr_info", ())
    ]
    used += [
        ipaddress.ip_network(route["dst"], strict=False)
        for route in json.loads(ip("-j", "-4", "route", "show", "table", "all"))
        if route.get("dst", "default") != "default"
    ]
    for _ in range(1000):
        candidate = ipaddress.ip_network(
            f"10.{random.randint(200, 254)}.{random.randint(0, 255)}."
            f"{random.randrange(0, 256, 4)}/30"
        )
        if not any(candidate.overlaps(network) for network in used):
            return candidate
    raise NetnsError("found no free 10.x.y.z/30 subnet in 1,000 tries")


@dataclass
class Namespace:
    """A namespace ``name`` whose ``ns_address`` is reached from here at ``host_address``."""

    name: str
    host_interface: str  # the veth end in the root namespace
    ns_interface: str  # its peer, inside the namespace
    host_address: str
    ns_address: str
    is_cut: bool = field(default=False)

    def exec_args(self, command: Sequence[str]) -> list[str]:
        """``command`` prefixed to run inside the namespace (``ip netns exec``)."""
        return ["ip", "netns", "exec", self.name, *command]

    def run(self, command: Sequence[str], **kwargs: object) -> subprocess.CompletedProcess:
        """Run ``command`` inside the namespace to completion (``subprocess.run`` arguments)."""
        kwargs.setdefault("timeout", 30)
        return subprocess.run(self.exec_args(command), **kwargs)

    def popen(self, command: Sequence[str], **kwargs: object) -> subprocess.Popen:
        """Start ``command`` inside the namespace; the caller stops it by its pid."""
        return subprocess.Popen(self.exec_args(command), **kwargs)

    def pids(self) -> list[int]:
        """The pids of every process in the namespace (what the tests started, and their
        children), for cleaning up by pid."""
        return [int(word) for word in ip("netns", "pids", self.name).split()]

    def cut(self) -> None:
        """Partition: nothing crosses between the namespace and the root namespace."""
        ip("link", "set", self.host_interface, "down")
        self.is_cut = True
        log.info("netns_cut", namespace=self.name, interface=self.host_interface)

    def heal(self, timeout: float = 5.0) -> None:
        """End the partition; returns once the link carries packets again."""
        ip("link", "set", self.host_interface, "up")
        deadline = time.monotonic() + timeout
        while not (
            self._operational(self.host_interface, None)
            and self._operational(self.ns_interface, self.name)
        ):
            if time.monotonic() > deadline:
                raise NetnsError(f"{self.host_interface} did not come up within {timeout} s")
            time.sleep(0.01)
        self.is_cut = False
        log.info("netns_healed", namespace=self.name, interface=self.host_interface)

    @staticmethod
    def _operational(interface: str, namespace: str | None) -> bool:
        return "state UP" in ip("link", "show", interface, namespace=namespace)


@contextlib.contextmanager
def namespace(prefix: str = "corral") -> Iterator[Namespace]:
    """A fresh namespace and veth pair with a random free /30; both deleted on exit.

    The name carries this process's pid and a counter, so parallel test runs never share
    one. Processes started inside must be stopped before exit (a namespace with processes
    in it outlives its name until they end).
    """
    reason = available()
    if reason is not None:
        raise NetnsError(reason)
    number = next(_numbers)
    pid = os.getpid()
    name = f"{prefix}-{pid}-{number}"
    # Interface names are at most 15 characters.
    host_interface = f"cv{pid % 10**7}h{number % 100}"
    ns_interface = f"cv{pid % 10**7}n{number % 100}"
    subnet = _free_subnet()
    host_address, ns_address = (str(host) for host in subnet.hosts())
    made_namespace = made_link = False
    try:
        ip("netns", "add", name)
        made_namespace = True
        ip("link", "add", host_interface, "type", "veth", "peer", "name", ns_interface,
           "netns", name)  # fmt: skip
        made_link = True
        ip("addr", "add", f"{host_address}/30", "dev", host_interface)
        ip("addr", "add", f"{ns_address}/30", "dev", ns_interface, namespace=name)
        ip("link", "set", "lo", "up", namespace=name)
        ip("link", "set", ns_interface, "up", namespace=name)
        space = Namespace(name, host_interface, ns_interface, host_address, ns_address)
        space.heal()  # brings the host end up and waits for both ends
        log.info("netns_created", namespace=name, host=host_address, inside=ns_address)
        yield space
    finally:
        errors = []
        if made_link:
            try:
                ip("link", "del", host_interface)  # takes its peer with it
            except NetnsError as error:
                errors.append(error)
        if made_namespace:
            try:
                ip("netns", "del", name)
            except NetnsError as error:
                errors.append(error)
        if errors and sys.exc_info()[0] is None:
            raise NetnsError("; ".join(str(error) for error in errors))
        for error in errors:  # the test's own failure is already on its way up
            log.error("netns_cleanup_failed", namespace=name, error=str(error))
