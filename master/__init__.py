"""The master: agents, frameworks, offers and tasks (``MasterProcess``), its registry of
admitted agents, and the DRF allocator (``master.allocator``)."""

from master.master import VERSION, MasterOptions, MasterProcess
from master.registry import AgentStatus, Registry, RegistryError
from master.state import MasterState
from master.validation import Refusal

__all__ = [
    "VERSION",
    "AgentStatus",
    "MasterOptions",
    "MasterProcess",
    "MasterState",
    "Refusal",
    "Registry",
    "RegistryError",
]
