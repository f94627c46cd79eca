"""Launchers: how a container's main process is started, selected by ``--launcher``.

``posix``: the command runs in a session of its own (as :class:`PosixContainerizer` does).
``linux``: additionally in new pid (own init and /proc), mount, ipc and uts namespaces (the
hostname is the container id's prefix), and a network namespace with only loopback when the
``namespaces/net`` isolator is on. It wraps the argv with util-linux ``unshare``
(``namespaces.wrap_command``), because ``os.unshare`` only exists from Python 3.12.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

from containerizer import namespaces

LAUNCHERS = ("posix", "linux")


class UnknownLauncher(ValueError):
    """``--launcher`` names no launcher (the agent's flags are wrong)."""


class LauncherUnavailable(RuntimeError):
    """The launcher cannot work on this host (not root, no ``unshare``)."""


@dataclass(frozen=True)
class Launcher:
    """Turns a container's argv into the argv actually executed.

    ``wrapped``: the command runs under ``unshare``, so its exit status is ``unshare``'s
    (rc 1 may hide a SIGKILL: see ``namespaces.decode_wrapped_status``).
    """

    name: str
    net: bool = False

    @property
    def wrapped(self) -> bool:
        return self.name == "linux"

    def argv(self, container_id: str, argv: Sequence[str]) -> list[str]:
        if not self.wrapped:
            return list(argv)
        spec = namespaces.NamespaceSpec(net=self.net, hostname=hostname_for(container_id))
        return namespaces.wrap_command(argv, spec)


def make_launcher(name: str, net: bool = False) -> Launcher:
    """The launcher of a ``--launcher`` flag; raises if unknown or unusable here."""
    if name not in LAUNCHERS:
        raise UnknownLauncher(f"unknown launcher {name!r}; known: {', '.join(LAUNCHERS)}")
    if name == "linux":
        available = namespaces.available(namespaces.NamespaceSpec(net=net))
        if not available:
            raise LauncherUnavailable(
                f"the linux launcher cannot run here: {available.reason}; use --launcher=posix"
            )
    elif net:
        raise UnknownLauncher(
            "isolator namespaces/net needs --launcher=linux (the posix launcher makes no "
            "namespaces); drop it or switch launcher"
        )
    return Launcher(name, net)


def hostname_for(container_id: str) -> str:
    """A valid UTS hostname from the container id: its first 12 letters, digits or '-'."""
    cleaned = re.sub(r"[^A-Za-z0-9-]", "-", container_id)[:12].strip("-")
    return cleaned or f"corral-{os.getpid()}"
