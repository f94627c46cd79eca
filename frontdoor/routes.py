"""Which part of the cluster answers a path of the front door, and under which path.

The table is sans-IO: ``RoutingTable.resolve(path)`` takes a request path and returns a
decision (forward to an upstream with the path rewritten, forward to an agent named by id,
answer here, or not found), and ``rewrite_location`` turns an upstream's redirect into one
that stays on the front door. The proxy (frontdoor/proxy.py) does the I/O.

Paths are DC/OS's (its Admin Router's): ``/mesos/...`` is the leading master's HTTP API,
``/service/marathon/...`` the services scheduler's Marathon API, ``/mesos_dns/...`` Mesos-DNS's
``/v1`` API, ``/slave/<agent id>/...`` (and ``/agent/<agent id>/...``) one agent's HTTP API.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from urllib.parse import urlsplit


class Upstream(enum.Enum):
    """The parts of the cluster the front door sends requests to."""

    MASTER = "master"
    SERVICES = "services"
    DNS = "dns"


# What each part is called in errors, and how a user starts it and hands it to the front door.
DESCRIPTIONS: dict[Upstream, tuple[str, str]] = {
    Upstream.MASTER: (
        "the master",
        "start one with `corral master` (or `corral local`) and give its HTTP address with "
        "`corral frontdoor --master HOST:PORT`",
    ),
    Upstream.SERVICES: (
        "the services scheduler (Marathon's API)",
        "start one with `corral services --master HOST:PORT` (or `corral local`) and give its "
        "HTTP address with `corral frontdoor --services HOST:PORT`",
    ),
    Upstream.DNS: (
        "the DNS server (Mesos-DNS's API)",
        "start one with `corral dns --master HOST:PORT` (or `corral local`) and give its HTTP "
        "address with `corral frontdoor --dns HOST:PORT`",
    ),
}


@dataclass(frozen=True)
class Prefix:
    """``prefix`` (``/mesos``) is served by ``upstream`` with the prefix taken off."""

    prefix: str
    upstream: Upstream
    about: str  # one line, for the index and the 404's list


PREFIXES: tuple[Prefix, ...] = (
    Prefix("/mesos", Upstream.MASTER, "the leading master's HTTP API (Mesos's paths)"),
    Prefix("/service/marathon", Upstream.SERVICES, "the services scheduler (Marathon's /v2 API)"),
    Prefix("/marathon", Upstream.SERVICES, "the same, by its short name"),
    Prefix("/mesos_dns", Upstream.DNS, "the DNS server's HTTP API (Mesos-DNS's /v1)"),
)
AGENT_PREFIXES = ("/slave", "/agent")  # /slave/<agent id>/... : that agent's HTTP API

# What the front door answers itself (frontdoor/metadata.py has the bodies).
LOCAL_PATHS: dict[str, str] = {
    "/": "this list",
    "/dcos-metadata/dcos-version.json": "the DC/OS version whose APIs are served",
    "/metadata": "the cluster's id (DC/OS's CLUSTER_ID)",
    "/pkgpanda/active.buildinfo.full.json": "what a DC/OS node runs (here: nothing to "
    "authenticate against, security disabled)",
}

# DC/OS clients ask Mesos-DNS's API for names under ``mesos`` (``dcos node`` looks up
# ``master.mesos``); ``corral dns`` answers under its own --domain, so such names are renamed.
_DNS_NAME = re.compile(r"^(?P<api>/v1/(?:hosts|services)/)(?P<name>.+?)\.mesos\.?$")

# Mesos's master also serves its endpoints with a ``.json`` suffix (``/master/state.json``,
# deprecated but still what older tools ask for); Corral's master serves the plain paths.
_JSON_TWIN = re.compile(r"^(?P<path>/(?:master/)?[a-z-]+)\.json$")


@dataclass(frozen=True)
class Forward:
    """Send the request to ``upstream`` (``None``: an agent) at ``address`` under ``path``
    (the query kept as is)."""

    upstream: Upstream | None
    address: str
    path: str
    prefix: str  # the front door's prefix it came under, for redirects


@dataclass(frozen=True)
class ForwardToAgent:
    """Send the request to the agent ``agent_id`` (its address comes from the master)."""

    agent_id: str
    path: str
    prefix: str  # ``/slave/<agent id>``

    def at(self, address: str) -> Forward:
        """The forward, once the master has said where the agent listens."""
        return Forward(None, address, self.path, self.prefix)


@dataclass(frozen=True)
class Local:
    """The front door answers ``path`` itself."""

    path: str


@dataclass(frozen=True)
class Unconfigured:
    """The path belongs to ``upstream``, but this front door was not told where it runs."""

    upstream: Upstream

    def sentence(self) -> str:
        name, start = DESCRIPTIONS[self.upstream]
        return f"this front door was not given {name}: {start}."


@dataclass(frozen=True)
class NotFound:
    path: str

    def sentence(self) -> str:
        return f"no part of the cluster is served at {self.path}; the front door serves:\n" + (
            index_text()
        )


Decision = Forward | ForwardToAgent | Local | Unconfigured | NotFound


def index_text() -> str:
    """The front door's paths, one a line (the 404's body, and ``/``)."""
    lines = [f"  {p.prefix}/...  {p.about}" for p in PREFIXES]
    lines += [f"  {p}/<agent id>/...  that agent's HTTP API" for p in AGENT_PREFIXES]
    lines += [f"  {path}  {about}" for path, about in LOCAL_PATHS.items()]
    return "\n".join(lines) + "\n"


class RoutingTable:
    """Paths to upstreams, for one front door; ``addresses`` are ``host:port`` (``None``: the
    front door was not given that part); ``dns_domain`` is the DNS server's --domain."""

    def __init__(self, addresses: dict[Upstream, str | None], dns_domain: str = "corral") -> None:
        self.addresses = dict(addresses)
        self.dns_domain = dns_domain.strip(".")  # the zone the DNS server answers

    def resolve(self, path: str) -> Decision:
        if path in LOCAL_PATHS:
            return Local(path)
        for entry in PREFIXES:
            if path == entry.prefix or path.startswith(entry.prefix + "/"):
                address = self.addresses.get(entry.upstream)
                if address is None:
                    return Unconfigured(entry.upstream)
                rest = path[len(entry.prefix) :] or "/"
                if entry.upstream is Upstream.MASTER and (twin := _JSON_TWIN.match(rest)):
                    rest = twin["path"]
                if entry.upstream is Upstream.DNS and (name := _DNS_NAME.match(rest)):
                    rest = f"{name['api']}{name['name']}.{self.dns_domain}"
                return Forward(entry.upstream, address, rest, entry.prefix)
        for prefix in AGENT_PREFIXES:
            if path.startswith(prefix + "/"):
                agent_id, _, rest = path[len(prefix) + 1 :].partition("/")
                if not agent_id:
                    break
                if self.addresses.get(Upstream.MASTER) is None:
                    return Unconfigured(Upstream.MASTER)  # agents are found through it
                return ForwardToAgent(agent_id, "/" + rest, f"{prefix}/{agent_id}")
        return NotFound(path)


def rewrite_location(location: str, upstream_address: str, prefix: str) -> str:
    """An upstream's ``Location`` as the front door's: a path on the upstream (``/x``, or a
    URL naming the upstream's own address, scheme-relative as Mesos writes them or not) goes
    under the front door's ``prefix``; a redirect elsewhere is left alone."""
    parts = urlsplit(location)
    if parts.netloc and parts.netloc != upstream_address:
        return location
    if not parts.netloc and not parts.path.startswith("/"):
        return location  # relative to the current path: still right through the prefix
    rewritten = prefix + (parts.path or "/")
    return rewritten + (f"?{parts.query}" if parts.query else "")


def agent_address(slaves: dict, agent_id: str) -> str | None:
    """The HTTP ``host:port`` of agent ``agent_id`` in the master's ``/master/slaves`` JSON:
    the address its pid names with its HTTP ``port`` (the pid's port is its native one)."""
    for agent in slaves.get("slaves", []):
        if agent.get("id") != agent_id:
            continue
        host = str(agent.get("hostname", ""))
        pid = str(agent.get("pid", ""))
        if "@" in pid:
            host = pid.rpartition("@")[2].rpartition(":")[0]
        port = agent.get("port")
        if not host or not port:
            return None
        return f"{host}:{port}"
    return None
