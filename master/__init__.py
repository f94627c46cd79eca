"""The master: agents, frameworks, offers and tasks (``MasterProcess`` over ``MasterCore``),
its registry of admitted agents and an operator's settings, and the DRF allocator
(``master.allocator``). docs/architecture.md maps the parts."""

from corral.task_validation import Refusal
from master.core import MasterCore
from master.master import VERSION, MasterProcess
from master.options import MasterOptions, parse_rate_limit
from master.registry import AgentStatus, Registry, RegistryError
from master.state import MasterState

__all__ = [
    "VERSION",
    "AgentStatus",
    "MasterCore",
    "MasterOptions",
    "MasterProcess",
    "MasterState",
    "Refusal",
    "Registry",
    "RegistryError",
    "parse_rate_limit",
]
