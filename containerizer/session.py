"""The processes of one session: find, signal and measure them.

A posix container is a session (its main process called setsid), so every process it starts
shares its session id unless it calls setsid itself; those escapees are out of reach here
(issue 5's freezer cgroup catches them). Zombies count as gone: they hold no resources, and
their reaper may be an init that never reaps.
"""

from __future__ import annotations

import contextlib
import os
import signal

import psutil


def members(sid: int) -> list[int]:
    """Pids of the live (non-zombie) processes in session ``sid``."""
    found = []
    for pid in psutil.pids():
        try:
            if os.getsid(pid) != sid:
                continue
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                continue
        except (OSError, psutil.Error):
            continue  # ended meanwhile
        found.append(pid)
    return found


def send_signal(pids: list[int], sid: int, signum: int) -> list[int]:
    """Send ``signum`` to each of ``pids`` still in session ``sid``; the pids signalled.

    Each process is pinned with a pidfd and its session checked again before the signal,
    so a pid reused since ``members`` found it is never hit.
    """
    signalled = []
    for pid in pids:
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:
            continue  # ended since the scan
        try:
            if os.getsid(pid) == sid:
                signal.pidfd_send_signal(pidfd, signum)
                signalled.append(pid)
        except OSError:
            pass  # ended since the scan
        finally:
            os.close(pidfd)
    return signalled


def sample(pids: list[int]) -> tuple[int, int, float, float, int]:
    """(processes, threads, user seconds, system seconds, rss bytes) summed over ``pids``.

    CPU times include the reaped children of each member (what a shell's commands used);
    rss double-counts pages the members share.
    """
    processes = threads = rss = 0
    user = system = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            process = psutil.Process(pid)
            with process.oneshot():
                times = process.cpu_times()
                memory = process.memory_info()
                count = process.num_threads()
            processes += 1
            threads += count
            user += times.user + times.children_user
            system += times.system + times.children_system
            rss += memory.rss
    return processes, threads, user, system, rss
