"""Namespaces (util-linux ``unshare``) and rlimits, with real processes as root.

Every process is started in a session of its own (as the posix containerizer does) and is
stopped by pid at the end of its test: the fixture SIGKILLs whatever is left in each session.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from containerizer import session as sessions
from containerizer.namespaces import (
    PRELUDE_FAILED,
    NamespaceSpec,
    available,
    decode_wrapped_status,
    wrap_command,
)
from containerizer.rlimits import RLimit, RLimits

TIMEOUT = 10.0  # seconds; a safety net, never reached when green
ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}

_AVAILABLE = available(NamespaceSpec(net=True))
needs_namespaces = pytest.mark.skipif(
    not _AVAILABLE, reason=f"namespaces unavailable: {_AVAILABLE.reason}"
)


class Processes:
    """Starts processes in new sessions; kills every one of their sessions by pid at the end."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen] = []

    def start(self, argv: list[str], **kwargs: object) -> subprocess.Popen:
        popen = subprocess.Popen(
            argv,
            env=ENV,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
            **kwargs,  # type: ignore[arg-type]
        )
        self.started.append(popen)
        return popen

    def run(self, argv: list[str], **kwargs: object) -> tuple[int, str, str]:
        popen = self.start(argv, **kwargs)
        stdout, stderr = popen.communicate(timeout=TIMEOUT)
        return popen.returncode, stdout, stderr

    def stop_all(self) -> None:
        for popen in self.started:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(popen.pid, signal.SIGKILL)  # the session's group, while pinned
            sessions.send_signal(sessions.members(popen.pid), popen.pid, signal.SIGKILL)
            popen.kill()
            popen.communicate(timeout=TIMEOUT)


@pytest.fixture
def processes():
    tracker = Processes()
    try:
        yield tracker
    finally:
        tracker.stop_all()


# -- namespaces ----------------------------------------------------------------------------


@needs_namespaces
def test_pid_namespace_shows_only_the_tasks_processes(processes):
    spec = NamespaceSpec(pid=True, mount=False, ipc=False, uts=False)
    script = 'echo "self $$"; for p in /proc/[0-9]*; do echo "${p#/proc/}"; done'
    rc, out, err = processes.run(wrap_command(["/bin/sh", "-c", script], spec))
    assert rc == 0, err
    lines = out.split()
    assert lines[:2] == ["self", "1"]  # the task is pid 1, as under Mesos's linux launcher
    assert set(lines[2:]) == {"1"}  # /proc is remounted: only the task itself is listed


@needs_namespaces
def test_net_namespace_has_only_loopback_and_it_is_up(processes):
    spec = NamespaceSpec(pid=False, mount=False, ipc=False, uts=False, net=True)
    rc, out, err = processes.run(
        wrap_command(["/bin/sh", "-c", "ip -o link; echo ---; cat /proc/net/dev"], spec)
    )
    assert rc == 0, err
    links, dev = out.split("---\n")
    assert len(links.splitlines()) == 1, links
    assert links.startswith("1: lo: <LOOPBACK,UP,LOWER_UP>"), links
    interfaces = [line.split(":")[0].strip() for line in dev.splitlines()[2:]]
    assert interfaces == ["lo"]


@needs_namespaces
def test_uts_namespace_sets_the_hostname_inside_only(processes):
    host = socket.gethostname()
    spec = NamespaceSpec(pid=False, mount=False, ipc=False, uts=True, hostname="corral-task-7")
    rc, out, err = processes.run(wrap_command(["cat", "/proc/sys/kernel/hostname"], spec))
    assert (rc, out.strip()) == (0, "corral-task-7"), err
    assert socket.gethostname() == host != "corral-task-7"


@needs_namespaces
def test_mount_namespace_keeps_its_mounts_private(processes, tmp_path):
    target = tmp_path / "mnt"
    target.mkdir()
    spec = NamespaceSpec(pid=False, mount=True, ipc=False, uts=False)
    script = (
        'mount -t tmpfs corral-test "$1" && touch "$1/marker" && '
        "grep -c corral-test /proc/self/mounts"
    )
    rc, out, err = processes.run(wrap_command(["/bin/sh", "-c", script, "sh", str(target)], spec))
    assert (rc, out.strip()) == (0, "1"), err  # mounted and used inside
    assert not os.path.ismount(target)
    assert not (target / "marker").exists()
    assert "corral-test" not in Path("/proc/self/mounts").read_text()


@needs_namespaces
def test_killing_the_wrapper_leaves_no_process_behind(processes):
    spec = NamespaceSpec()  # pid, mount, ipc, uts
    wrapper = processes.start(
        wrap_command(["/bin/sh", "-c", "sleep 60 & sleep 60 & echo ready; wait"], spec)
    )
    assert wrapper.stdout.readline() == "ready\n"
    inside = psutil.Process(wrapper.pid).children(recursive=True)  # pid 1 and two sleeps
    assert len(inside) == 3, inside
    pidfds = [os.pidfd_open(process.pid) for process in inside]  # pinned: no reuse confusion
    try:
        os.kill(wrapper.pid, signal.SIGKILL)
        assert wrapper.wait(TIMEOUT) == -signal.SIGKILL
        deadline = time.monotonic() + TIMEOUT
        pending = list(pidfds)
        while pending and time.monotonic() < deadline:
            ready, _, _ = select.select(pending, [], [], deadline - time.monotonic())
            pending = [fd for fd in pending if fd not in ready]
        assert not pending, "a process of the namespace outlived its wrapper"
    finally:
        for fd in pidfds:
            os.close(fd)
    assert sessions.members(wrapper.pid) == []


@needs_namespaces
@pytest.mark.parametrize("code", [0, 3])
def test_exit_codes_pass_through(processes, code):
    spec = NamespaceSpec(net=True, hostname="corral-exit")
    rc, _, err = processes.run(wrap_command(["/bin/sh", "-c", f"exit {code}"], spec))
    assert rc == code, err
    status = decode_wrapped_status(rc)
    assert (status.exit_code, status.signal, status.maybe_sigkilled) == (code, None, False)


@needs_namespaces
def test_a_fatal_signal_passes_through(processes):
    # A real fault is delivered even to pid 1; unshare re-raises it on itself.
    fault = ["python3", "-c", "import ctypes; ctypes.string_at(0)"]
    no_core = RLimits((RLimit("RLMT_CORE", 0, 0),)).preexec()
    rc, _, _ = processes.run(wrap_command(fault, NamespaceSpec()), preexec_fn=no_core)
    assert rc == -signal.SIGSEGV
    assert decode_wrapped_status(rc).describe() == "killed by SIGSEGV"


@needs_namespaces
def test_a_sigkilled_task_looks_like_exit_1(processes):
    """The caveat, measured: util-linux 2.38.1 exits 1 when its child is SIGKILLed."""
    wrapper = processes.start(wrap_command(["sleep", "60"], NamespaceSpec()))
    deadline = time.monotonic() + TIMEOUT
    while not (children := psutil.Process(wrapper.pid).children()):
        assert time.monotonic() < deadline
        time.sleep(0.005)
    children[0].kill()  # as the OOM killer would
    rc = wrapper.wait(TIMEOUT)
    assert rc in (1, -signal.SIGKILL)  # -9 once util-linux re-raises SIGKILL too
    status = decode_wrapped_status(rc)
    assert status.maybe_sigkilled or status.signal == signal.SIGKILL


@needs_namespaces
def test_a_failed_prelude_stops_before_the_task(processes, monkeypatch):
    which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name: "/bin/false" if name == "ip" else which(name))
    spec = NamespaceSpec(net=True)
    rc, out, err = processes.run(wrap_command(["echo", "task ran"], spec))
    assert (rc, out) == (PRELUDE_FAILED, "")
    assert "corral: cannot bring lo up in the new network namespace" in err


def test_no_namespace_leaves_the_command_alone():
    spec = NamespaceSpec(pid=False, mount=False, ipc=False, uts=False, net=False)
    assert wrap_command(["true"], spec) == ["true"]


def test_bad_specs_are_refused():
    with pytest.raises(ValueError, match="needs a UTS namespace"):
        NamespaceSpec(uts=False, hostname="box")
    with pytest.raises(ValueError, match="hostname 'bad_name!' is invalid"):
        NamespaceSpec(hostname="bad_name!")
    with pytest.raises(ValueError, match="non-empty list of strings"):
        wrap_command([], NamespaceSpec())
    with pytest.raises(ValueError, match="not a process exit status"):
        decode_wrapped_status(256)


def test_availability_says_why_not(monkeypatch):
    # As if util-linux were installed (unshare is checked first): the root check is the point.
    monkeypatch.setattr(shutil, "which", lambda program: f"/usr/bin/{program}")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    found = available()
    assert not found and found.reason == "namespaces need root; this process runs as uid 1000"


# -- rlimits -------------------------------------------------------------------------------


@needs_namespaces
def test_rlimit_nofile_holds_in_a_wrapped_task(processes):
    limits = RLimits.from_mesos([{"type": "RLMT_NOFILE", "soft": 64, "hard": 64}])
    rc, out, err = processes.run(
        wrap_command(["/bin/sh", "-c", "ulimit -n; ulimit -Hn"], NamespaceSpec()),
        preexec_fn=limits.preexec(),
    )
    assert (rc, out.split()) == (0, ["64", "64"]), err


def test_unlimited_rlimit_is_infinity(processes):
    limits = RLimits((RLimit("RLMT_FSIZE"), RLimit("RLMT_CORE", 0, 0)))
    rc, out, err = processes.run(
        ["/bin/sh", "-c", "ulimit -f; ulimit -c"], preexec_fn=limits.preexec()
    )
    assert (rc, out.split()) == (0, ["unlimited", "0"]), err


def test_an_rlimit_the_kernel_refuses_fails_the_launch_clearly(processes, tmp_path):
    nr_open = int(Path("/proc/sys/fs/nr_open").read_text())
    limits = RLimits((RLimit("RLMT_NOFILE", nr_open + 1, nr_open + 1),))
    with (tmp_path / "stderr").open("w") as stderr, pytest.raises(subprocess.SubprocessError):
        subprocess.Popen(
            ["true"], stdin=subprocess.DEVNULL, stderr=stderr, preexec_fn=limits.preexec()
        )
    assert "corral: cannot set rlimit RLMT_NOFILE" in (tmp_path / "stderr").read_text()


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"type": "RLMT_BOGUS", "soft": 1, "hard": 1}, "unknown rlimit type 'RLMT_BOGUS'"),
        ({"type": "RLMT_NOFILE", "soft": 65, "hard": 64}, "soft limit 65 is above hard"),
        ({"type": "RLMT_NOFILE", "soft": -1, "hard": 64}, "soft must be between 0 and"),
        ({"type": "RLMT_CPU", "soft": 1}, "set both soft and hard, or neither"),
        ({"type": "RLMT_CPU", "soft": True, "hard": 2}, "soft must be an integer"),
        ({"type": "RLMT_CPU", "soft": 1, "hard": 2, "max": 3}, "unknown fields"),
        ({"soft": 1, "hard": 2}, "must be an object with 'type'"),
    ],
)
def test_invalid_rlimits_are_refused(entry, message):
    with pytest.raises(ValueError, match=message):
        RLimits.from_mesos([entry])


def test_an_rlimit_given_twice_is_refused():
    with pytest.raises(ValueError, match="RLMT_NOFILE is given twice"):
        RLimits((RLimit("RLMT_NOFILE", 1, 1), RLimit("RLMT_NOFILE", 2, 2)))
