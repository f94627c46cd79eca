"""Linux namespaces for a task, by wrapping its argv with util-linux ``unshare``.

Python 3.11 has no ``os.unshare``, and a pid namespace needs a fork and an init that mounts
/proc and reaps; util-linux ``unshare --pid --fork --mount-proc --kill-child`` does all of it
in ~20 ms. The semantics follow Mesos's linux launcher: the task is pid 1 of its namespace and
sees only its own processes, /proc is remounted, the mount namespace is private (unshare makes
``/`` recursively private by default), and a new network namespace has only loopback, up.

The process tree, as seen from the agent (host pid namespace)::

    unshare (the pid the containerizer starts; stays in the host namespaces)
      └── task (pid 1 inside; setting hostname / bringing lo up first, then exec)

Killing ``unshare`` kills the task (``--kill-child`` sets SIGKILL as its parent-death signal),
and the end of pid 1 kills everything else in the pid namespace.

Exit status through ``unshare`` (util-linux 2.38.1, measured here): a normal exit passes
through; a task killed by any signal but SIGKILL is re-raised, so ``unshare`` dies of the same
signal; but a task killed by SIGKILL (the OOM killer, or a host-side kill of the inner pid)
makes ``unshare`` exit 1 ("sigprocmask unblock failed: Invalid argument" on stderr, a bug of
that version), which cannot be told from ``exit 1``. :func:`decode_wrapped_status` says so
(``maybe_sigkilled``); the memory cgroup's ``oom_kill`` counter settles it.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
from collections.abc import Sequence
from dataclasses import dataclass

# Exit code of the prelude (hostname, loopback) when it fails before the task runs; the same
# "the wrapper failed, not the command" code as `docker run` and `env`.
PRELUDE_FAILED = 125

# RFC 1123 labels, and the kernel's limit of 64 bytes for a UTS hostname.
_HOSTNAME = re.compile(
    r"(?=.{1,64}$)[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*"
)


@dataclass(frozen=True)
class NamespaceSpec:
    """Which namespaces a task gets.

    ``pid`` also gives the task a private mount namespace (for its own /proc), whatever
    ``mount`` says. ``net`` is a new network namespace with only loopback (up): the task has
    no outside network. ``hostname`` (needs ``uts``) is set inside before the task starts.
    """

    pid: bool = True
    mount: bool = True
    ipc: bool = True
    uts: bool = True
    net: bool = False
    hostname: str | None = None

    def __post_init__(self) -> None:
        if self.hostname is not None:
            if not self.uts:
                raise ValueError(
                    f"hostname {self.hostname!r} needs a UTS namespace (uts=True): without "
                    "one the task would rename the agent's host"
                )
            if not isinstance(self.hostname, str) or not _HOSTNAME.fullmatch(self.hostname):
                raise ValueError(
                    f"hostname {self.hostname!r} is invalid: expected 1 to 64 characters of "
                    "dot-separated labels of letters, digits and inner '-' (e.g. 'task-7.corral')"
                )

    @property
    def any(self) -> bool:
        """Whether any namespace is asked for (else the command runs unwrapped)."""
        return self.pid or self.mount or self.ipc or self.uts or self.net


@dataclass(frozen=True)
class Availability:
    """Whether namespaces can be used here; ``reason`` says why not (empty when they can)."""

    ok: bool
    reason: str = ""

    def __bool__(self) -> bool:
        return self.ok


def available(spec: NamespaceSpec | None = None) -> Availability:
    """Whether :func:`wrap_command` can work here: ``unshare`` exists and we are root (and,
    for a network namespace, ``ip`` exists to bring loopback up). Meant for agent start-up,
    to say once why the linux launcher is off."""
    if shutil.which("unshare") is None:
        return Availability(
            False, "util-linux 'unshare' is not on PATH (apt-get install util-linux)"
        )
    if os.geteuid() != 0:
        return Availability(False, f"namespaces need root; this process runs as uid {os.geteuid()}")
    if spec is not None and spec.net and shutil.which("ip") is None:
        return Availability(
            False,
            "a network namespace needs iproute2 'ip' to bring lo up (apt-get install iproute2)",
        )
    return Availability(True)


def wrap_command(argv: Sequence[str], spec: NamespaceSpec) -> list[str]:
    """``argv`` run inside the namespaces of ``spec`` (a new argv; ``argv`` if none asked).

    Programs are given by absolute path, since a task's environment may have no PATH; the
    task's own ``argv[0]`` is still looked up on its environment's PATH, as before. Raises
    RuntimeError when a needed program is missing (see :func:`available`).
    """
    argv = list(argv)
    if not argv or not all(isinstance(arg, str) for arg in argv):
        raise ValueError(f"argv {argv!r} must be a non-empty list of strings")
    if not spec.any:
        return argv
    unshare = _which("unshare", "util-linux")
    # Without a pid namespace, unshare execs the task itself (no fork): then the task is the
    # very process the containerizer started, and its status is exact.
    wrapped = [unshare]
    if spec.pid:
        wrapped += ["--pid", "--fork", "--mount-proc", "--kill-child"]
    elif spec.mount:
        wrapped += ["--mount"]
    if spec.pid or spec.mount:
        wrapped += ["--propagation", "private"]  # the default, said out loud
    if spec.ipc:
        wrapped += ["--ipc"]
    if spec.uts:
        wrapped += ["--uts"]
    if spec.net:
        wrapped += ["--net"]
    wrapped += ["--"]
    prelude = []
    arguments = []
    if spec.hostname is not None:
        # /proc/sys/kernel/hostname is per UTS namespace; a shell builtin needs no binary.
        prelude.append(
            'printf %s "$1" > /proc/sys/kernel/hostname || '
            f'{{ echo "corral: cannot set hostname $1" >&2; exit {PRELUDE_FAILED}; }}; shift'
        )
        arguments.append(spec.hostname)
    if spec.net:
        ip = shlex.quote(_which("ip", "iproute2"))
        prelude.append(
            f"{ip} link set lo up || "
            f'{{ echo "corral: cannot bring lo up in the new network namespace" >&2; '
            f"exit {PRELUDE_FAILED}; }}"
        )
    if prelude:
        # The shell is pid 1 only until `exec`: then the task is pid 1.
        script = "; ".join([*prelude, 'exec "$@"'])
        wrapped += ["/bin/sh", "-c", script, "corral-namespaces", *arguments]
    return wrapped + argv


@dataclass(frozen=True)
class WrappedStatus:
    """A wrapped task's end, read from ``unshare``'s ``Popen.returncode``.

    Exactly one of ``exit_code`` and ``signal`` is set. ``maybe_sigkilled``: the return code
    was 1, which is either ``exit 1`` or a SIGKILL of the task (util-linux 2.38.1 reports both
    as 1); check the memory cgroup's ``oom_kill`` counter before calling it a failure exit.
    ``PRELUDE_FAILED`` (125) may also mean the prelude failed (its stderr says so).
    """

    exit_code: int | None
    signal: int | None
    maybe_sigkilled: bool = False

    def describe(self) -> str:
        if self.signal is not None:
            return f"killed by {signal.Signals(self.signal).name}"
        if self.maybe_sigkilled:
            return "exited with status 1, or was killed by SIGKILL (unshare reports both as 1)"
        return f"exited with status {self.exit_code}"


def decode_wrapped_status(returncode: int) -> WrappedStatus:
    """What ``unshare``'s return code (``Popen.returncode``: negative for a signal) says of
    the task. Exact except for 1, flagged ``maybe_sigkilled``; a negative code is a signal
    re-raised by ``unshare`` or sent to ``unshare`` itself (which then SIGKILLs the task)."""
    if returncode < 0:
        return WrappedStatus(exit_code=None, signal=-returncode)
    if returncode > 255:
        raise ValueError(
            f"return code {returncode} is not a process exit status (0..255 or -signal)"
        )
    return WrappedStatus(exit_code=returncode, signal=None, maybe_sigkilled=returncode == 1)


def _which(program: str, package: str) -> str:
    path = shutil.which(program)
    if path is None:
        raise RuntimeError(
            f"{program!r} is not on this agent's PATH; install {package} or turn off the "
            "linux launcher"
        )
    return path
