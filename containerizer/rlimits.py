"""posix/rlimits: Mesos's ``RLimitInfo`` applied to a task with ``resource.setrlimit``.

Limits are set in the child between fork and exec (``preexec()`` as ``Popen(preexec_fn=...)``),
so they hold from the task's first instruction and are inherited through a namespace wrapper
(``unshare``) and by everything the task starts. Mesos's rules: a limit sets both ``soft`` and
``hard`` or neither (neither means unlimited), and ``soft <= hard``. Raising a hard limit needs
root (CAP_SYS_RESOURCE); RLMT_NPROC does not bind root-owned tasks.
"""

from __future__ import annotations

import contextlib
import os
import resource
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

# Mesos RLimitInfo.RLimit.Type name -> the Linux resource number. RLIMIT_LOCKS (10) has no name
# in Python's resource module; the kernel accepts it (and ignores it since Linux 2.4.25).
RESOURCES: Mapping[str, int] = {
    "RLMT_AS": resource.RLIMIT_AS,
    "RLMT_CORE": resource.RLIMIT_CORE,
    "RLMT_CPU": resource.RLIMIT_CPU,
    "RLMT_DATA": resource.RLIMIT_DATA,
    "RLMT_FSIZE": resource.RLIMIT_FSIZE,
    "RLMT_LOCKS": 10,
    "RLMT_MEMLOCK": resource.RLIMIT_MEMLOCK,
    "RLMT_MSGQUEUE": resource.RLIMIT_MSGQUEUE,
    "RLMT_NICE": resource.RLIMIT_NICE,
    "RLMT_NOFILE": resource.RLIMIT_NOFILE,
    "RLMT_NPROC": resource.RLIMIT_NPROC,
    "RLMT_RSS": resource.RLIMIT_RSS,
    "RLMT_RTPRIO": resource.RLIMIT_RTPRIO,
    "RLMT_RTTIME": resource.RLIMIT_RTTIME,
    "RLMT_SIGPENDING": resource.RLIMIT_SIGPENDING,
    "RLMT_STACK": resource.RLIMIT_STACK,
}

_LIMIT_MAX = 2**64 - 1  # Mesos's uint64


@dataclass(frozen=True)
class RLimit:
    """One limit, as in Mesos's ``RLimitInfo.RLimit``: ``soft`` and ``hard`` both set, or
    both ``None`` for unlimited."""

    type: str
    soft: int | None = None
    hard: int | None = None

    def __post_init__(self) -> None:
        if self.type not in RESOURCES:
            raise ValueError(
                f"unknown rlimit type {self.type!r}: expected one of {', '.join(RESOURCES)}"
            )
        if (self.soft is None) != (self.hard is None):
            raise ValueError(
                f"rlimit {self.type}: soft={self.soft} hard={self.hard}; set both soft and "
                "hard, or neither for unlimited"
            )
        for which in ("soft", "hard"):
            value = getattr(self, which)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"rlimit {self.type}: {which} must be an integer, got {value!r}")
            if not 0 <= value <= _LIMIT_MAX:
                raise ValueError(
                    f"rlimit {self.type}: {which} must be between 0 and 2**64-1, got {value}"
                )
        if self.soft is not None and self.hard is not None and self.soft > self.hard:
            raise ValueError(
                f"rlimit {self.type}: soft limit {self.soft} is above hard limit {self.hard}; "
                "the soft limit must be <= the hard limit"
            )

    @property
    def resource(self) -> int:
        """The ``resource.RLIMIT_*`` number."""
        return RESOURCES[self.type]

    @property
    def values(self) -> tuple[int, int]:
        """(soft, hard) as ``resource.setrlimit`` takes them; unlimited is RLIM_INFINITY."""
        if self.soft is None or self.hard is None:
            return (resource.RLIM_INFINITY, resource.RLIM_INFINITY)
        return (_clamp(self.soft), _clamp(self.hard))


@dataclass(frozen=True)
class RLimits:
    """A task's rlimits; at most one per type."""

    limits: tuple[RLimit, ...] = ()

    def __post_init__(self) -> None:
        limits = tuple(self.limits)
        for limit in limits:
            if not isinstance(limit, RLimit):
                raise ValueError(f"rlimits must be RLimit records, got {limit!r}")
        seen: set[str] = set()
        for limit in limits:
            if limit.type in seen:
                raise ValueError(f"rlimit {limit.type} is given twice; give each type at most once")
            seen.add(limit.type)
        object.__setattr__(self, "limits", limits)

    @classmethod
    def from_mesos(cls, rlimits: Iterable[Mapping[str, object]]) -> RLimits:
        """From Mesos's JSON ``RLimitInfo.rlimits``: ``[{"type": "RLMT_NOFILE", "soft": 64,
        "hard": 64}, ...]``."""
        parsed = []
        for entry in rlimits:
            if not isinstance(entry, Mapping) or "type" not in entry:
                raise ValueError(
                    f"rlimit {entry!r} must be an object with 'type' and optionally "
                    "'soft' and 'hard'"
                )
            extra = set(entry) - {"type", "soft", "hard"}
            if extra:
                raise ValueError(
                    f"rlimit {entry!r} has unknown fields {sorted(extra)}; expected "
                    "'type', 'soft', 'hard'"
                )
            parsed.append(RLimit(entry["type"], entry.get("soft"), entry.get("hard")))  # type: ignore[arg-type]
        return cls(tuple(parsed))

    def preexec(self) -> Callable[[], None]:
        """A function that applies the limits in the calling process; for
        ``subprocess.Popen(preexec_fn=...)``. It runs in the forked child before exec: on a
        failure it writes the reason to the child's stderr (the sandbox's ``stderr``) and
        raises, so Popen fails (Popen itself only says "Exception occurred in preexec_fn")."""
        plan = [(limit.type, limit.resource, limit.values) for limit in self.limits]

        def apply() -> None:
            for name, number, values in plan:
                try:
                    resource.setrlimit(number, values)
                except (OSError, ValueError) as error:
                    message = (
                        f"corral: cannot set rlimit {name} to (soft, hard) {values}: {error}\n"
                    )
                    with contextlib.suppress(OSError):
                        os.write(2, message.encode())
                    raise

        return apply


def _clamp(value: int) -> int:
    # setrlimit takes a signed 64-bit value here (RLIM_INFINITY is -1, i.e. 2**64-1 unsigned);
    # a Mesos uint64 beyond 2**63-1 is unlimited in all but name.
    return resource.RLIM_INFINITY if value > 2**63 - 1 else value
