"""How ``corral dns`` runs: Mesos-DNS's settings where it has them (docs/dns.md)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from nameserver.cluster_state import IP_SOURCES


class OptionsError(ValueError):
    """A setting that cannot work; the message names it and what would."""


def parse_address(text: str, default_port: int, what: str) -> tuple[str, int]:
    """``host``, ``host:port`` or ``[v6]:port`` as (host, port)."""
    host, port = text, default_port
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest.startswith(":"):
            port = _port(rest[1:], what, text)
    elif text.count(":") == 1:
        host, _, number = text.partition(":")
        port = _port(number, what, text)
    if not host:
        raise OptionsError(f"{what} {text!r} has no host; give host or host:port")
    return host, port


def _port(number: str, what: str, text: str) -> int:
    if not number.isdigit() or not 0 < int(number) < 65536:
        raise OptionsError(f"{what} {text!r}: the port must be 1-65535, got {number!r}")
    return int(number)


@dataclass(frozen=True)
class NameserverOptions:
    """Every field is checked when built; a bad one raises ``OptionsError`` saying which."""

    master: str  # the master's HTTP host:port
    domain: str = "corral"
    ip: str = "127.0.0.1"  # where DNS and HTTP listen
    port: int = 53  # UDP and TCP; 0 picks a free one
    http_port: int = 8123  # Mesos-DNS's /v1 API and /metrics; 0 picks a free one
    resolvers: tuple[str, ...] = ()  # for other zones, "host[:port]"; none: REFUSED
    ttl: int = 60
    forward_timeout: float = 5.0  # seconds per resolver (Mesos-DNS's `timeout`)
    ip_sources: tuple[str, ...] = IP_SOURCES
    enforce_rfc952: bool = False
    soa_mname: str = ""  # default: ns1.<domain>.
    soa_rname: str = ""  # default: root.ns1.<domain>.
    soa_refresh: int = 60
    soa_retry: int = 600
    soa_expire: int = 86400
    client_rate: float = 5000.0  # queries per second one client address may send; 0: no limit
    client_burst: float = 10000.0  # how many it may send at once
    reconnect_max: float = 5.0  # seconds: the longest wait between attempts to subscribe
    tcp_idle_timeout: float = 10.0  # seconds a TCP connection may stay silent

    def __post_init__(self) -> None:
        domain = self.domain.strip(".").lower()
        if not domain or any(not part or len(part) > 63 for part in domain.split(".")):
            raise OptionsError(f"--domain {self.domain!r} is not a DNS name; e.g. corral")
        object.__setattr__(self, "domain", domain)
        parse_address(self.master, 5050, "--master")
        try:
            ipaddress.ip_address(self.ip)
        except ValueError:
            raise OptionsError(f"--ip {self.ip!r} is not an IP address; e.g. 127.0.0.1") from None
        for name in ("port", "http_port"):
            value = getattr(self, name)
            if not 0 <= value < 65536:
                raise OptionsError(f"--{name.replace('_', '-')} must be 0-65535, got {value}")
        for resolver in self.resolvers:
            parse_address(resolver, 53, "--resolvers entry")
        if self.ttl < 0 or self.forward_timeout <= 0:
            raise OptionsError("--ttl must be ≥ 0 and --timeout > 0 (seconds)")
        unknown = set(self.ip_sources) - set(IP_SOURCES)
        if not self.ip_sources or unknown:
            raise OptionsError(
                f"--ip-sources takes some of {', '.join(IP_SOURCES)}, got {list(self.ip_sources)}"
            )
        if self.client_rate < 0 or (self.client_rate and self.client_burst < 1):
            raise OptionsError("--client-rate must be ≥ 0 (0: no limit) and --client-burst ≥ 1")
        if not self.soa_mname:
            object.__setattr__(self, "soa_mname", f"ns1.{domain}.")
        if not self.soa_rname:
            object.__setattr__(self, "soa_rname", f"root.ns1.{domain}.")

    @property
    def master_address(self) -> tuple[str, int]:
        return parse_address(self.master, 5050, "--master")

    @property
    def resolver_addresses(self) -> list[tuple[str, int]]:
        return [parse_address(r, 53, "--resolvers entry") for r in self.resolvers]

    def mesos_dns_config(self, port: int, http_port: int) -> dict[str, object]:
        """``/v1/config``: Mesos-DNS's keys, with this server's values."""
        return {
            "Masters": [self.master],
            "RefreshSeconds": 0,  # no polling: the records follow the master's event stream
            "TTL": self.ttl,
            "Port": port,
            "Domain": self.domain,
            "Resolvers": list(self.resolvers),
            "Timeout": self.forward_timeout,
            "Listener": self.ip,
            "HTTPPort": http_port,
            "DnsOn": True,
            "HttpOn": True,
            "ExternalOn": bool(self.resolvers),
            "SOAMname": self.soa_mname,
            "SOARname": self.soa_rname,
            "SOARefresh": self.soa_refresh,
            "SOARetry": self.soa_retry,
            "SOAExpire": self.soa_expire,
            "SOAMinttl": self.ttl,
            "IPSources": list(self.ip_sources),
            "EnforceRFC952": self.enforce_rfc952,
        }
