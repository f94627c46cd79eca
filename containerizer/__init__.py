"""Launching and isolating tasks: the ``Containerizer`` interface and its implementations.

Today: the posix containerizer (a session per container, no isolation). Issue 5 adds the
cgroups and namespaces isolators and an OCI backend behind the same interface.
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
    "PosixContainerizer",
    "RecoveryResult",
    "ResourceStatistics",
    "TerminationReason",
    "UnknownContainer",
]
