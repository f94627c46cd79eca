"""Running a short command inside a container that already runs: what a COMMAND check needs.

Mesos's checkers start the check's command next to the task, in the task's namespaces (they
``setns`` into them in the child) and, through the containerizer, in its cgroups. Here the
child joins the container's cgroups between fork and exec (the same ``preexec_fn`` the task
itself was started with), and, under the linux launcher, util-linux ``nsenter`` enters the
namespaces of a process of the task (the pid namespace's init: it forks, so the command is a
member of that pid namespace and sees the task's /proc, mounts, hostname and network).

The command is started in the loop's executor (fork/exec blocks), watched through a pidfd
on the loop (no thread waits on it) and, when it outlives its timeout, killed with its whole
process group.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import pwd
import shutil
import signal
import socket
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

KILL_WAIT = 5.0  # seconds a killed command may take to be reaped before we stop waiting
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)
_setns_lock = threading.Lock()  # one thread at a time hops into another network namespace


def entering(target_pid: int, argv: Sequence[str], net: bool) -> list[str]:
    """``argv`` run by ``nsenter`` in the mount, uts, ipc and pid namespaces of
    ``target_pid`` (and its network namespace when ``net``), in its working directory.
    RuntimeError without nsenter."""
    nsenter = shutil.which("nsenter")
    if nsenter is None:
        raise RuntimeError(
            "util-linux 'nsenter' is not on this agent's PATH (apt-get install util-linux): "
            "commands cannot enter a task's namespaces"
        )
    flags = ["--mount", "--uts", "--ipc", "--pid"] + (["--net"] if net else [])
    # Entering a mount namespace moves the working directory to its root: --wd (with no
    # value) takes the target's, the sandbox as the task sees it.
    return [nsenter, f"--target={target_pid}", *flags, "--wd", "--", *argv]


def namespaced(pids: Sequence[int]) -> int | None:
    """The first of ``pids`` that lives in another pid namespace than this process (the
    task under ``unshare``), or None when none does (or it ended meanwhile)."""
    try:
        own = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return None
    for pid in pids:
        try:
            if os.stat(f"/proc/{pid}/ns/pid").st_ino != own:
                return pid
        except OSError:
            continue
    return None


def exit_code(returncode: int) -> int:
    """Popen's return code as a shell reports it: the exit code, or 128 + N for signal N."""
    return 128 - returncode if returncode < 0 else returncode


async def run(
    loop: asyncio.AbstractEventLoop,
    argv: Sequence[str],
    environment: Mapping[str, str],
    cwd: Path,
    timeout: float | None,
    preexec: Callable[[], None] | None = None,
    user: str | None = None,
) -> int:
    """Run ``argv`` to its end; its exit code (``exit_code``). TimeoutError after
    ``timeout`` seconds (None: no limit), once the command's process group was killed;
    OSError when it cannot start (LookupError: no such ``user``)."""
    ids: dict[str, object] = {}
    if user is not None:
        try:
            entry = pwd.getpwnam(user)
        except KeyError:
            raise LookupError(f"user {user!r} does not exist on this agent") from None
        ids = {
            "user": entry.pw_uid,
            "group": entry.pw_gid,
            "extra_groups": os.getgrouplist(entry.pw_name, entry.pw_gid),
        }

    def start() -> subprocess.Popen:
        return subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(environment),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
            preexec_fn=preexec,
            **ids,  # type: ignore[arg-type]
        )

    popen = await loop.run_in_executor(None, start)
    pidfd = os.pidfd_open(popen.pid)
    ended: asyncio.Future[None] = loop.create_future()
    loop.add_reader(pidfd, lambda: ended.done() or ended.set_result(None))
    try:
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(ended)
        except (TimeoutError, asyncio.CancelledError):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(popen.pid, signal.SIGKILL)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(KILL_WAIT):
                    await asyncio.shield(ended)
            raise
        return exit_code(popen.wait())
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)
        if popen.returncode is None and ended.done():
            popen.wait()


def socket_in_network_of(pid: int) -> socket.socket:
    """A TCP socket (not connected) that lives in the network namespace of ``pid``: what an
    HTTP or TCP check connects through to a task whose network is its own.

    A socket keeps the namespace it was made in, so only its creation happens there: the
    calling thread enters the namespace (``setns``, allowed per thread for network
    namespaces), makes the socket and comes back at once. OSError when the namespace cannot
    be entered; a thread that could not come back is a bug that must not go on serving, so
    that raises RuntimeError.
    """
    with (
        _setns_lock,
        open(f"/proc/{pid}/ns/net", "rb") as target,
        open("/proc/thread-self/ns/net", "rb") as own,
    ):
        _setns(target.fileno())
        try:
            return socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        finally:
            try:
                _setns(own.fileno())
            except OSError as error:
                raise RuntimeError(
                    f"this thread entered the network namespace of pid {pid} and could not "
                    f"return to its own: {error}"
                ) from error


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        number = ctypes.get_errno()
        raise OSError(number, f"setns: {os.strerror(number)}")
