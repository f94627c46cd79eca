"""Which isolators a Mesos containerizer runs, chosen from ``--isolation`` and what the host has.

Resolution is pure (no I/O beyond asking the :class:`CgroupRoot` what is mounted), so the
fallbacks (cgroups/mem -> posix/mem, cgroups/cpu -> posix/cpu when a controller is missing or
the agent is not root) are decided once, at construction, and can be unit-tested.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from containerizer.cgroups import Cgroup

MB = 1024 * 1024

# isolator name -> cgroup v1 controllers it needs (empty: needs no cgroups)
KNOWN_ISOLATORS: Mapping[str, frozenset[str]] = {
    "cgroups/cpu": frozenset({"cpu", "cpuacct"}),
    "cgroups/mem": frozenset({"memory"}),
    "cgroups/pids": frozenset({"pids"}),
    "cgroups/freezer": frozenset({"freezer"}),  # implied by any cgroups/* isolator
    "posix/cpu": frozenset(),
    "posix/mem": frozenset(),
    "posix/rlimits": frozenset(),
    "filesystem/posix": frozenset(),
    "disk/du": frozenset(),
    "namespaces/net": frozenset(),  # linux launcher only: a network namespace, loopback only
    "network/ports": frozenset(),  # kills containers listening on ports not theirs
}
# What a cgroups isolator falls back to when its controllers are missing.
FALLBACKS: Mapping[str, str] = {"cgroups/cpu": "posix/cpu", "cgroups/mem": "posix/mem"}
DEFAULT_ISOLATION = "cgroups/cpu,cgroups/mem,cgroups/pids,filesystem/posix,posix/rlimits"


class UnknownIsolator(ValueError):
    """``--isolation`` names an isolator this containerizer does not have (the agent's flags)."""


@dataclass(frozen=True)
class Isolation:
    """The isolators that will run and why the others do not.

    ``active``: names in flag order (fallbacks replace what they stand in for).
    ``controllers``: the cgroup controllers each container's cgroup joins (empty: no cgroup).
    ``missing``: one line per isolator turned off or replaced, for the start-up warning.
    """

    requested: tuple[str, ...]
    active: tuple[str, ...]
    controllers: frozenset[str]
    missing: tuple[str, ...]


def parse_isolation(isolation: str | Iterable[str]) -> tuple[str, ...]:
    """The isolator names of a ``--isolation`` flag; refuses unknown names, listing known ones."""
    names = isolation.split(",") if isinstance(isolation, str) else list(isolation)
    parsed = tuple(dict.fromkeys(name.strip() for name in names if name.strip()))
    unknown = [name for name in parsed if name not in KNOWN_ISOLATORS]
    if unknown:
        raise UnknownIsolator(
            f"unknown isolator(s) {', '.join(unknown)} in --isolation; known: "
            f"{', '.join(sorted(KNOWN_ISOLATORS))}"
        )
    return parsed


def resolve(
    isolation: str | Iterable[str], available: frozenset[str], why_unavailable: str = ""
) -> Isolation:
    """Choose the isolators to run given the mounted controllers (``available``, empty when
    cgroups cannot be used at all; ``why_unavailable`` then says why)."""
    requested = parse_isolation(isolation)
    active: list[str] = []
    missing: list[str] = []
    controllers: set[str] = set()
    for name in requested:
        needs = KNOWN_ISOLATORS[name]
        if needs and not needs <= available:
            lacking = ", ".join(sorted(needs - available))
            reason = why_unavailable or f"controller(s) {lacking} not mounted"
            fallback = FALLBACKS.get(name)
            if fallback is not None:
                missing.append(f"{name} -> {fallback} ({reason})")
                if fallback not in active:
                    active.append(fallback)
            else:
                missing.append(f"{name} off ({reason})")
            continue
        active.append(name)
        controllers |= needs
    # Destroy through the freezer whenever containers have cgroups: it catches setsid escapees.
    if controllers and "freezer" in available:
        controllers.add("freezer")
        if "cgroups/freezer" not in active:
            active.append("cgroups/freezer")
    return Isolation(requested, tuple(active), frozenset(controllers), tuple(missing))


def apply_limits(
    cgroup: Cgroup, active: Iterable[str], resources: Mapping[str, float], pids_max: int | None
) -> None:
    """Write the limits of ``resources`` into the cgroup, for the active cgroups isolators.

    Blocks (cgroup files): call from an executor. ``resources["pids"]``, when given, wins
    over the configured ``pids_max``.
    """
    names = set(active)
    cpus = resources.get("cpus")
    if "cgroups/cpu" in names and cpus:
        cgroup.set_cpu(float(cpus))
    mem = resources.get("mem")
    if "cgroups/mem" in names and mem:
        cgroup.set_memory(int(float(mem) * MB))
    if "cgroups/pids" in names:
        limit = resources.get("pids", pids_max)
        cgroup.set_pids(None if limit is None else int(limit))
