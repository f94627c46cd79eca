"""The front door: DC/OS's paths on one HTTP port, DC/OS's Admin Router for Corral.

It routes by path to the parts of the cluster (the master, the services scheduler, the DNS
server, an agent by id) and answers the few paths of DC/OS itself that the DC/OS command line
asks for. It knows those parts only by their HTTP addresses: it imports none of them.
See docs/frontdoor.md.
"""

from frontdoor.proxy import FrontDoor, serve
from frontdoor.routes import RoutingTable, Upstream

__all__ = ["FrontDoor", "RoutingTable", "Upstream", "serve"]
