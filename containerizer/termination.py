"""How a container ended, in the shape of Mesos's ``ContainerTermination``."""

from __future__ import annotations

import enum
import os
import signal
from dataclasses import dataclass


class TerminationReason(enum.StrEnum):
    """Why the containerizer ended a container, when it did (Mesos ``TaskStatus.Reason`` names).

    Only isolators set these (issue 5: cgroups limits); a plain exit or a destroy has none.
    """

    CONTAINER_LIMITATION = "REASON_CONTAINER_LIMITATION"
    CONTAINER_LIMITATION_MEMORY = "REASON_CONTAINER_LIMITATION_MEMORY"
    CONTAINER_LIMITATION_DISK = "REASON_CONTAINER_LIMITATION_DISK"


@dataclass(frozen=True)
class ContainerTermination:
    """The end of a container's main process.

    ``status`` is a ``waitpid``-style status (``None`` when it could not be known: the
    process ended while no containerizer was its parent, e.g. during an agent restart).
    ``exit_code`` is set for a normal exit, ``signal`` for a death by signal.
    ``destroyed`` says the containerizer killed it on request (``destroy``).
    """

    status: int | None
    reason: TerminationReason | None = None
    message: str = ""
    destroyed: bool = False

    def __post_init__(self) -> None:
        if self.status is not None and not (
            os.WIFEXITED(self.status) or os.WIFSIGNALED(self.status)
        ):
            raise ValueError(
                f"status {self.status:#x} is neither an exit nor a death by signal; "
                "a termination needs a final waitpid status (or None when unknown)"
            )

    @classmethod
    def from_siginfo(cls, code: int, value: int, **details: object) -> ContainerTermination:
        """From ``waitid``'s ``si_code``/``si_status`` (what a pidfd reaper gets)."""
        if code == os.CLD_EXITED:
            status = (value & 0xFF) << 8
        elif code == os.CLD_KILLED:
            status = value & 0x7F
        elif code == os.CLD_DUMPED:
            status = (value & 0x7F) | 0x80
        else:
            raise ValueError(f"si_code {code} is not a final state (exited, killed, dumped)")
        return cls(status=status, **details)

    @property
    def exit_code(self) -> int | None:
        if self.status is None or not os.WIFEXITED(self.status):
            return None
        return os.WEXITSTATUS(self.status)

    @property
    def signal(self) -> int | None:
        if self.status is None or not os.WIFSIGNALED(self.status):
            return None
        return os.WTERMSIG(self.status)

    def describe(self) -> str:
        """One line for logs and task status messages: "exited with status 3", ..."""
        if self.status is None:
            what = "ended with an unknown status"
        elif self.exit_code is not None:
            what = f"exited with status {self.exit_code}"
        else:
            assert self.signal is not None
            what = f"was killed by {signal.Signals(self.signal).name}"
        return f"{what}: {self.message}" if self.message else what

    def to_json(self) -> dict[str, object]:
        """A msgpack/JSON-safe form, for checkpoints."""
        return {
            "status": self.status,
            "reason": None if self.reason is None else self.reason.value,
            "message": self.message,
            "destroyed": self.destroyed,
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> ContainerTermination:
        reason = data.get("reason")
        return cls(
            status=data["status"],  # type: ignore[arg-type]
            reason=None if reason is None else TerminationReason(reason),
            message=str(data.get("message", "")),
            destroyed=bool(data.get("destroyed", False)),
        )
