"""Service discovery for Corral: Mesos-DNS's names, kept live from the master's event stream.

This is the DC/OS layer: a client of the kernel, as Mesos-DNS is of Mesos. It reaches the
master only over HTTP (the v1 operator API's SUBSCRIBE stream) and never imports ``master`` or
``agent``. ``corral dns`` runs it (corral/cli/dns.py); docs/dns.md says what it answers.
"""

from nameserver.options import NameserverOptions
from nameserver.service import Nameserver

__all__ = ["Nameserver", "NameserverOptions"]
