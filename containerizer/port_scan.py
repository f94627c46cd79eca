"""One scan of the machine's listening TCP sockets, for the ``network/ports`` isolator.

Blocks (it reads /proc): run it in an executor. psutil's ``net_connections`` reads the
kernel's socket tables and every process's file descriptors once, so a scan costs the same
with one container or a thousand; only the processes found listening are then looked up
(their session and their cgroup), one ``/proc/<pid>/cgroup`` each. Sockets of other network
namespaces (``namespaces/net`` containers) are not in this namespace's tables and are not
seen: such containers cannot take the host's ports anyway.
"""

from __future__ import annotations

import os

import psutil

from containerizer.port_watch import Listener


def scan_listeners(cgroup_root: str | None = None) -> list[Listener]:
    """Every listening TCP socket (IPv4 and IPv6) held by a process, with the process's
    session and, when it is in a cgroup under ``/<cgroup_root>/``, that cgroup's name."""
    found: list[Listener] = []
    owners: dict[int, tuple[int | None, str | None]] = {}
    for connection in psutil.net_connections(kind="tcp"):
        if connection.status != psutil.CONN_LISTEN or connection.pid is None:
            continue
        pid = connection.pid
        if pid not in owners:
            owners[pid] = (_session(pid), _cgroup(pid, cgroup_root))
        session, cgroup = owners[pid]
        address = connection.laddr
        found.append(Listener(pid, address.port, address.ip, session, cgroup))
    return found


def _session(pid: int) -> int | None:
    try:
        return os.getsid(pid)
    except OSError:
        return None  # ended since the scan


def _cgroup(pid: int, root: str | None) -> str | None:
    """The container id of ``pid``'s cgroup under ``/<root>/`` in any v1 hierarchy."""
    if root is None:
        return None
    prefix = f"/{root}/"
    try:
        with open(f"/proc/{pid}/cgroup") as lines:
            for line in lines:
                path = line.rstrip("\n").split(":", 2)[-1]
                if path.startswith(prefix):
                    return path[len(prefix) :].split("/", 1)[0] or None
    except OSError:
        return None
    return None
