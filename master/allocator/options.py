"""The allocator's knobs, as Mesos's master flags name them."""

from __future__ import annotations

from dataclasses import dataclass, field

from corral.quantities import Quantities

DEFAULT_REFUSE_SECONDS = 5.0
MAX_REFUSE_SECONDS = 365 * 24 * 3600.0


def _default_min_allocatable() -> tuple[Quantities, ...]:
    return ({"cpus": 10}, {"mem": 32_000})  # cpus:0.01 OR mem:32, in thousandths


@dataclass(frozen=True)
class AllocatorOptions:
    """``min_allocatable_resources``: an offer must hold at least one of these quantity sets
    (empty tuple: anything goes). ``fair_sharing_excluded_resource_names`` are left out of
    DRF shares only. ``filter_gpu_resources``: agents with GPUs go only to frameworks with
    the GPU_RESOURCES capability."""

    allocation_interval: float = 1.0
    min_allocatable_resources: tuple[Quantities, ...] = field(
        default_factory=_default_min_allocatable
    )
    fair_sharing_excluded_resource_names: frozenset[str] = frozenset()
    filter_gpu_resources: bool = True

    def __post_init__(self) -> None:
        if self.allocation_interval <= 0:
            raise ValueError(
                f"allocation_interval must be positive, got {self.allocation_interval}"
            )
