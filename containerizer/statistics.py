"""A container's resource usage, with the field names of Mesos's ``ResourceStatistics``."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class ResourceStatistics:
    """One sample of a container's usage; ``None`` means "not measured by this containerizer".

    The posix containerizer fills what psutil can see (times, rss, counts) and the limits it
    was given; the cgroup fields (throttling, cache, swap ...) come with issue 5's isolators.
    """

    timestamp: float  # seconds since the epoch, when the sample was taken
    processes: int | None = None
    threads: int | None = None
    cpus_user_time_secs: float | None = None
    cpus_system_time_secs: float | None = None
    cpus_limit: float | None = None
    cpus_nr_periods: int | None = None
    cpus_nr_throttled: int | None = None
    cpus_throttled_time_secs: float | None = None
    mem_total_bytes: int | None = None
    mem_limit_bytes: int | None = None
    mem_rss_bytes: int | None = None
    mem_anon_bytes: int | None = None
    mem_file_bytes: int | None = None
    mem_cache_bytes: int | None = None
    mem_mapped_file_bytes: int | None = None
    mem_swap_bytes: int | None = None
    mem_unevictable_bytes: int | None = None

    def to_json(self) -> dict[str, float | int]:
        """Mesos's JSON shape (``/monitor/statistics``): unmeasured fields are left out."""
        return {name: value for name, value in asdict(self).items() if value is not None}
