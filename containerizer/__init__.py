"""Launching and isolating tasks: the ``Containerizer`` interface and its implementations.

The posix containerizer (a session per container, no isolation) and the Mesos containerizer
(a launcher and cgroups/namespaces/posix isolators chosen by flags) share that interface.
"""

from containerizer.errors import (
    ContainerError,
    DestroyFailed,
    DuplicateContainer,
    InvalidContainerId,
    LaunchFailed,
    UnknownContainer,
)
from containerizer.interface import (
    ContainerConfig,
    Containerizer,
    ContainerRunState,
    ContainerState,
    ContainerStatus,
    RecoveryResult,
)
from containerizer.mesos import MesosContainerizer, MesosResourceStatistics
from containerizer.posix import PosixContainerizer
from containerizer.statistics import ResourceStatistics
from containerizer.termination import ContainerTermination, TerminationReason

__all__ = [
    "ContainerConfig",
    "ContainerError",
    "ContainerRunState",
    "ContainerState",
    "ContainerStatus",
    "ContainerTermination",
    "Containerizer",
    "DestroyFailed",
    "DuplicateContainer",
    "InvalidContainerId",
    "LaunchFailed",
    "MesosContainerizer",
    "MesosResourceStatistics",
    "PosixContainerizer",
    "RecoveryResult",
    "ResourceStatistics",
    "TerminationReason",
    "UnknownContainer",
]
