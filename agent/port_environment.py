"""The port variables of a task's environment, as Marathon's users expect them.

``PORT0``, ``PORT1``, ... are the task's ``ports`` resource, expanded in ascending order (the
order of its ranges: Mesos keeps ranges sorted), ``PORT`` is ``PORT0``, ``PORTS`` lists them
all comma-separated, ``PORT_<NAME>`` gives each port its ``DiscoveryInfo`` names, and
``HOST`` is the agent's hostname. A plain function of the task, so that the mapping is
unit-tested without an agent.

A named port is matched by its number, not by its index as Marathon does (Marathon knows
which host port it picked for which port definition; the agent only sees numbers): a name
whose number is not one of the task's ports gets no variable, since the task may not listen
on it. When two names map to one variable, the first wins.
"""

from __future__ import annotations

import re

from corral.protocol import DiscoveryInfo
from corral.resources import Resources

_NOT_IN_A_NAME = re.compile(r"[^A-Z0-9_]")


def task_ports(resources: Resources) -> list[int]:
    """The task's ports, one by one, ascending."""
    return [port for begin, end in resources.ranges("ports") for port in range(begin, end + 1)]


def variable_name(port_name: str) -> str:
    """``PORT_<NAME>``: the name upper-cased, anything but letters, digits and ``_`` as ``_``."""
    return "PORT_" + _NOT_IN_A_NAME.sub("_", port_name.upper())


def port_environment(
    resources: Resources, discovery: DiscoveryInfo | None, hostname: str | None
) -> dict[str, str]:
    """The variables of a task given ``resources``, found as ``discovery`` says, on
    ``hostname``."""
    variables: dict[str, str] = {}
    if hostname:
        variables["HOST"] = hostname
    ports = task_ports(resources)
    if not ports:
        return variables
    for index, port in enumerate(ports):
        variables[f"PORT{index}"] = str(port)
    variables["PORT"] = str(ports[0])
    variables["PORTS"] = ",".join(str(port) for port in ports)
    given = set(ports)
    for named in discovery.ports if discovery is not None else ():
        if named.name and named.number in given:
            variables.setdefault(variable_name(named.name), str(named.number))
    return variables
