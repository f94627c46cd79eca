"""The Mesos containerizer with real cgroups, namespaces and processes (root only).

Each test makes a cgroup root of its own (``corral-mesos-<pid>-<n>``); teardown destroys every
container cgroup left in it (killing its processes by pid through the freezer) and removes the
root. Containers run on a plain asyncio loop (``asyncio.run``) and are destroyed by pid.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from structlog.testing import capture_logs

from containerizer import ContainerConfig, LaunchFailed, TerminationReason, namespaces
from containerizer.cgroups import CgroupRoot, CgroupsUnavailable
from containerizer.isolators import UnknownIsolator, resolve
from containerizer.mesos import MesosContainerizer

PYTHON = sys.executable
_LINUX_LAUNCHER = namespaces.available()
needs_linux_launcher = pytest.mark.skipif(
    not _LINUX_LAUNCHER, reason=f"the linux launcher is unavailable: {_LINUX_LAUNCHER.reason}"
)
WAIT = 15.0
_roots = itertools.count()


@pytest.fixture
def root() -> Iterator[CgroupRoot]:
    """A cgroup root of this test's own, emptied and removed at teardown."""
    if os.geteuid() != 0:
        pytest.skip("the Mesos containerizer's cgroup tests need root")
    try:
        root = CgroupRoot(name=f"corral-mesos-{os.getpid()}-{next(_roots)}")
    except CgroupsUnavailable as error:
        pytest.skip(f"no usable cgroup v1 here: {error}")
    missing = {"cpu", "cpuacct", "memory", "pids", "freezer"} - root.available()
    if missing:
        pytest.skip(f"cgroup v1 controller(s) {sorted(missing)} not mounted")
    yield root
    for container_id in root.containers():
        root.create(container_id).destroy()
    root.remove()
    assert not [c for c in root.available() if (root.hierarchy(c) / root.name).exists()], (
        "test cgroups left behind"
    )


def run(scenario, containerizer: MesosContainerizer):
    """Run ``scenario(containerizer)`` on a fresh loop; destroy whatever it left running."""

    async def main():
        try:
            return await asyncio.wait_for(scenario(containerizer), WAIT)
        finally:
            for container_id in containerizer.containers():
                await containerizer.destroy(container_id, grace_seconds=0)
            containerizer.detach()

    return asyncio.run(main())


def config(tmp_path: Path, command, **resources: float) -> ContainerConfig:
    return ContainerConfig(
        command=command,
        sandbox=tmp_path / "sandbox",
        environment={"PATH": "/usr/bin:/bin"},
        resources=resources,
    )


def cid(name: str) -> str:
    return f"{name}-{os.getpid()}"


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_memory_limit_kills_and_says_so(root, tmp_path):
    hog = [PYTHON, "-c", "b = b'x' * (200 * 1024 * 1024); import time; time.sleep(30)"]

    async def scenario(mc: MesosContainerizer):
        await mc.launch(cid("mem"), config(tmp_path, hog, cpus=1, mem=32))
        started = time.monotonic()
        termination = await mc.wait(cid("mem"))
        await mc.destroy(cid("mem"))  # the cleanup already started: joins it
        return termination, time.monotonic() - started

    termination, elapsed = run(scenario, MesosContainerizer(cgroup_root=root))
    assert termination.reason is TerminationReason.CONTAINER_LIMITATION_MEMORY
    assert termination.message == "Memory limit exceeded: 32 MB"
    assert termination.signal == signal.SIGKILL
    assert elapsed < 5
    assert cid("mem") not in root.containers()


def test_cpu_quota_throttles(root, tmp_path):
    spin = [
        PYTHON,
        "-c",
        "import time\nend = time.time() + 1.5\nwhile time.time() < end: pass\ntime.sleep(30)",
    ]

    async def scenario(mc: MesosContainerizer):
        await mc.launch(cid("cpu"), config(tmp_path, spin, cpus=0.5, mem=64))
        started = time.monotonic()
        await asyncio.sleep(1.6)
        stats = await mc.usage(cid("cpu"))
        return stats, time.monotonic() - started

    stats, wall = run(scenario, MesosContainerizer(cgroup_root=root))
    cpu = stats.cpus_user_time_secs + stats.cpus_system_time_secs
    print(f"cpu {cpu:.2f} s over {wall:.2f} s wall, throttled {stats.cpus_nr_throttled}")
    assert stats.cpus_limit == 0.5
    assert stats.cpus_nr_throttled > 0
    assert cpu < 0.7 * wall


def test_fork_bomb_stops_at_pids_max(root, tmp_path):
    bomb = [
        PYTHON,
        "-c",
        "import os, time\nn = 0\nfor i in range(50):\n"
        "    try:\n        pid = os.fork()\n    except OSError:\n        break\n"
        "    if pid == 0:\n        time.sleep(30)\n        os._exit(0)\n    n += 1\n"
        "print(n, flush=True)\ntime.sleep(30)",
    ]

    async def scenario(mc: MesosContainerizer):
        await mc.launch(cid("bomb"), config(tmp_path, bomb, cpus=1, mem=256))
        stdout = tmp_path / "sandbox" / "stdout"
        while not stdout.read_text().strip():
            await asyncio.sleep(0.05)
        refused = mc._cgroups[cid("bomb")].pids_events()
        stats = await mc.usage(cid("bomb"))
        await mc.destroy(cid("bomb"), grace_seconds=0)
        return int(stdout.read_text()), refused, stats

    forked, refused, stats = run(scenario, MesosContainerizer(cgroup_root=root, pids_max=10))
    print(f"forked {forked}, refused {refused}, processes {stats.processes}")
    assert forked == 9  # the parent is the 10th
    assert refused >= 1
    assert stats.processes == 10


@needs_linux_launcher
def test_memory_limit_under_linux_launcher(root, tmp_path):
    """unshare reports its child's SIGKILL as rc 1: the cgroup's OOM record says what it was."""
    hog = [PYTHON, "-c", "b = b'x' * (200 * 1024 * 1024)"]

    async def scenario(mc: MesosContainerizer):
        await mc.launch(cid("nsmem"), config(tmp_path, hog, cpus=1, mem=32))
        termination = await mc.wait(cid("nsmem"))
        await mc.destroy(cid("nsmem"))
        return termination

    termination = run(scenario, MesosContainerizer(cgroup_root=root, launcher="linux"))
    assert termination.reason is TerminationReason.CONTAINER_LIMITATION_MEMORY
    assert termination.signal == signal.SIGKILL
    assert cid("nsmem") not in root.containers()


def test_launch_failure_leaves_no_cgroup(root, tmp_path):
    async def scenario(mc: MesosContainerizer):
        with pytest.raises(LaunchFailed, match="no-such-program"):
            await mc.launch(cid("bad"), config(tmp_path, ["no-such-program"], cpus=1, mem=32))

    run(scenario, MesosContainerizer(cgroup_root=root))
    assert root.containers() == set()


@needs_linux_launcher
def test_linux_launcher_pid_namespace(root, tmp_path):
    look = [
        PYTHON,
        "-c",
        "import os, socket\n"
        "print(sorted(int(p) for p in os.listdir('/proc') if p.isdigit()), socket.gethostname())",
    ]

    async def scenario(mc: MesosContainerizer):
        await mc.launch(cid("ns"), config(tmp_path, look, cpus=1, mem=64))
        termination = await mc.wait(cid("ns"))
        await mc.destroy(cid("ns"))
        return termination, (tmp_path / "sandbox" / "stdout").read_text()

    termination, out = run(scenario, MesosContainerizer(cgroup_root=root, launcher="linux"))
    assert termination.exit_code == 0, (tmp_path / "sandbox" / "stderr").read_text()
    assert out.strip() == f"[1] {cid('ns')[:12]}"


def test_destroy_kills_setsid_escapee_and_removes_cgroups(root, tmp_path):
    escape = "setsid sleep 60 & echo $! > escapee; sleep 60"

    async def scenario(mc: MesosContainerizer):
        status = await mc.launch(cid("esc"), config(tmp_path, escape, cpus=1, mem=64))
        path = tmp_path / "sandbox" / "escapee"
        while not path.exists() or not path.read_text().strip():
            await asyncio.sleep(0.02)
        escapee = int(path.read_text())
        await asyncio.sleep(0.05)
        assert os.getsid(escapee) != status.pid  # it left the container's session
        termination = await mc.destroy(cid("esc"), grace_seconds=0.2)
        return status.pid, escapee, termination

    main, escapee, termination = run(scenario, MesosContainerizer(cgroup_root=root))
    assert termination.destroyed
    assert gone(main) and gone(escapee)
    assert cid("esc") not in root.containers()


def test_statistics_and_update(root, tmp_path):
    async def scenario(mc: MesosContainerizer):
        await mc.launch(cid("stats"), config(tmp_path, ["sleep", "30"], cpus=0.5, mem=64, disk=10))
        before = await mc.usage(cid("stats"))
        await mc.update(cid("stats"), {"cpus": 1.5, "mem": 128})
        after = await mc.usage(cid("stats"))
        return before, after

    isolation = "cgroups/cpu,cgroups/mem,cgroups/pids,disk/du"
    before, after = run(scenario, MesosContainerizer(isolation, cgroup_root=root))
    print(before.to_json())
    assert before.processes == 1 and before.threads == 1
    assert before.cpus_limit == 0.5 and before.cpus_user_time_secs is not None
    assert before.mem_limit_bytes == 64 * 1024 * 1024 and before.mem_total_bytes > 0
    assert before.mem_rss_bytes is not None and before.cpus_nr_periods is not None
    assert before.disk_limit_bytes == 10 * 1024 * 1024 and before.disk_used_bytes >= 0
    assert after.cpus_limit == 1.5 and after.mem_limit_bytes == 128 * 1024 * 1024


def test_disk_du_enforced(root, tmp_path):
    fill = "head -c 3000000 /dev/zero > blob; sleep 30"

    async def scenario(mc: MesosContainerizer):
        await mc.launch(cid("disk"), config(tmp_path, fill, cpus=1, mem=64, disk=1))
        return await mc.wait(cid("disk"))

    mc = MesosContainerizer(
        "cgroups/mem,disk/du", cgroup_root=root, enforce_disk=True, disk_watch_interval=0.1
    )
    termination = run(scenario, mc)
    assert termination.reason is TerminationReason.CONTAINER_LIMITATION_DISK
    assert "exceeds quota (1 MB)" in termination.message


def test_recover_reattaches_and_destroys_orphans(root, tmp_path):
    runtime = tmp_path / "runtime"
    orphan = root.create(cid("orphan"))
    stray = subprocess.Popen(["sleep", "60"], preexec_fn=orphan.preexec_attacher())
    try:
        first = MesosContainerizer(cgroup_root=root, runtime_dir=runtime)

        async def start(mc: MesosContainerizer):
            status = await mc.launch(cid("rec"), config(tmp_path, ["sleep", "60"], cpus=1, mem=64))
            # A second container ends while the agent is down, leaving a setsid escapee.
            leaver = ContainerConfig(
                "setsid sleep 60 & echo $! > escapee", tmp_path / "leaver", resources={"mem": 64}
            )
            ended = await mc.launch(cid("ended"), leaver)
            while not (tmp_path / "leaver" / "escapee").exists():
                await asyncio.sleep(0.02)
            mc.detach()  # the agent goes down, its containers stay
            return status, ended

        status, ended = run(start, first)
        escapee = int((tmp_path / "leaver" / "escapee").read_text() or 0)

        async def recover(mc: MesosContainerizer):
            result = await mc.recover([status.checkpoint, ended.checkpoint])
            stats = await mc.usage(cid("rec"))
            termination = await mc.destroy(cid("rec"), grace_seconds=0)
            return result, stats, termination

        second = MesosContainerizer(cgroup_root=root, runtime_dir=runtime)
        result, stats, termination = run(recover, second)
        assert result.running == {cid("rec")}
        assert second.destroyed_orphans == {cid("orphan")}
        assert set(result.ended) == {cid("ended")}
        # It ended while no agent was its parent: its wrapper recorded how.
        assert result.ended[cid("ended")].exit_code == 0
        assert escapee and gone(escapee)  # the ended container's leftover was killed
        assert stray.wait(timeout=5) == -signal.SIGKILL
        assert stats.processes == 2  # the exit-status wrapper and sleep
        assert stats.mem_limit_bytes == 64 * 1024 * 1024
        assert termination.signal in (signal.SIGTERM, None)
        assert gone(status.pid)
        assert root.containers() == set()
    finally:
        if stray.poll() is None:
            stray.kill()
            stray.wait()


def test_unknown_isolator_refused():
    with pytest.raises(UnknownIsolator, match=r"cgroups/bogus.*known: cgroups/cpu"):
        MesosContainerizer("cgroups/cpu,cgroups/bogus", cgroup_root=_NoControllers())  # type: ignore[arg-type]


class _NoControllers:
    """A CgroupRoot as seen by a non-root agent or a host without v1 controllers."""

    def available(self) -> frozenset[str]:
        return frozenset()


def test_fallback_without_cgroups(tmp_path):
    isolation = resolve("cgroups/cpu,cgroups/mem,cgroups/pids,posix/rlimits", frozenset({"pids"}))
    assert isolation.active == ("posix/cpu", "posix/mem", "cgroups/pids", "posix/rlimits")
    assert isolation.controllers == {"pids"}

    with capture_logs() as logs:
        mc = MesosContainerizer(cgroup_root=_NoControllers())  # type: ignore[arg-type]
    warnings = [e for e in logs if e["event"] == "isolators_unavailable"]
    assert len(warnings) == 1
    assert "cgroups/mem -> posix/mem (controller(s) memory not mounted)" in warnings[0]["missing"]
    assert mc.active_isolators() == ("posix/cpu", "posix/mem", "filesystem/posix", "posix/rlimits")

    async def scenario(mc: MesosContainerizer):
        await mc.launch(cid("posix"), config(tmp_path, ["sleep", "30"], cpus=0.5, mem=64))
        return await mc.usage(cid("posix"))

    stats = run(scenario, mc)
    assert stats.processes == 1 and stats.mem_rss_bytes > 0 and stats.cpus_limit == 0.5
    assert stats.cpus_nr_throttled is None  # no cgroup: not measured
