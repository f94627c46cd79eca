"""The DRF allocator: sorter, sans-IO core, reference policy, and the thin actor."""

from master.allocator import events
from master.allocator.events import AllocatorEvent
from master.allocator.hierarchical import HierarchicalAllocator
from master.allocator.offer import Allocation, AllocatorError
from master.allocator.options import AllocatorOptions
from master.allocator.process import ALLOCATIONS, ERROR, AllocatorClient, AllocatorProcess
from master.allocator.quota import InvalidQuota, Quota
from master.allocator.reference import ReferenceAllocator

__all__ = [
    "ALLOCATIONS",
    "ERROR",
    "Allocation",
    "AllocatorClient",
    "AllocatorError",
    "AllocatorEvent",
    "AllocatorOptions",
    "AllocatorProcess",
    "HierarchicalAllocator",
    "InvalidQuota",
    "Quota",
    "ReferenceAllocator",
    "events",
]
