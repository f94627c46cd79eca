"""The cgroup v1 interface against real cgroups (root only; skipped with the reason otherwise).

Each test gets a container cgroup under a root of its own (``corral-test-<pid>-<n>``), which
teardown destroys (killing whatever is left in it) and removes, even when the test failed.
Every process started here is tracked and stopped by pid; the test runner itself never joins
a task cgroup (children join through ``preexec_attacher``, between fork and exec).
"""

from __future__ import annotations

import itertools
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import psutil
import pytest

from containerizer.cgroups import Cgroup, CgroupError, CgroupRoot, CgroupsUnavailable

_roots = itertools.count()

PYTHON = sys.executable


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen]]:
    """Children started by a test: killed by pid and reaped at teardown."""
    started: list[subprocess.Popen] = []
    yield started
    for child in started:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=5)


@pytest.fixture
def make_cgroup(processes: list[subprocess.Popen]) -> Iterator[Callable[..., Cgroup]]:
    """``make_cgroup(*controllers)``: a container cgroup in a fresh test root (skips if absent)."""
    if os.geteuid() != 0:
        pytest.skip("cgroup tests need root (they create cgroups under /sys/fs/cgroup)")
    try:
        root = CgroupRoot(name=f"corral-test-{os.getpid()}-{next(_roots)}")
    except CgroupsUnavailable as error:
        pytest.skip(f"no usable cgroup v1 here: {error}")
    made: list[Cgroup] = []

    def make(*controllers: str) -> Cgroup:
        missing = set(controllers) - root.available()
        if missing:
            pytest.skip(f"cgroup v1 controller(s) {sorted(missing)} not mounted")
        cgroup = root.create(f"c{len(made)}", controllers)
        made.append(cgroup)
        return cgroup

    try:
        yield make
    finally:
        errors = []
        for cgroup in made:
            try:
                cgroup.destroy()
            except CgroupError as error:
                errors.append(error)
        root.remove()
        assert not errors, errors
        leftovers = [root.hierarchy(c) / root.name for c in root.available()]
        assert not [path for path in leftovers if path.exists()], "test cgroups left behind"


def spawn(
    processes: list[subprocess.Popen], cgroup: Cgroup, code: str, **kwargs: object
) -> subprocess.Popen:
    """A python child running ``code`` that joins ``cgroup`` before it execs."""
    child = subprocess.Popen([PYTHON, "-c", code], preexec_fn=cgroup.preexec_attacher(), **kwargs)
    processes.append(child)
    return child


def alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie is dead)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_root_refuses_without_v1_hierarchy(tmp_path) -> None:
    if os.geteuid() != 0:
        pytest.skip("the root check comes first when not root")
    with pytest.raises(CgroupsUnavailable, match="no cgroup v1 hierarchy is mounted under"):
        CgroupRoot(hierarchy_root=tmp_path)


def test_root_refuses_when_not_root(monkeypatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(CgroupsUnavailable, match="cgroups need root: running as uid 1000"):
        CgroupRoot()


def test_preexec_attacher_joins_child_before_exec(make_cgroup, processes) -> None:
    cgroup = make_cgroup("cpu", "memory", "freezer")
    child = spawn(processes, cgroup, "import time; time.sleep(30)")
    for controller in ("cpu", "memory", "freezer"):
        assert cgroup.pids(controller) == [child.pid]
    assert os.getpid() not in cgroup.pids()


def test_attach_names_the_file_and_the_error(make_cgroup) -> None:
    cgroup = make_cgroup("pids")
    with pytest.raises(CgroupError, match=r"cgroup\.procs: ESRCH") as raised:
        cgroup.attach(2**22 + 1)  # above pid_max: no such process
    assert raised.value.path.name == "cgroup.procs"
    with pytest.raises(CgroupError, match="has no memory cgroup"):
        cgroup.set_memory(1 << 20)


def test_memory_limit_kills_with_sigkill_and_oom_is_detected(make_cgroup, processes) -> None:
    cgroup = make_cgroup("memory")
    cgroup.set_memory(32 * 1024 * 1024)
    with cgroup.oom_listener() as oom:
        assert not oom.triggered()
        started = time.monotonic()
        child = spawn(processes, cgroup, "data = b'x' * (100 * 1024 * 1024)")
        assert child.wait(timeout=10) == -signal.SIGKILL
        readable, _, _ = select.select([oom], [], [], 5)
        elapsed = time.monotonic() - started
        assert readable, "the OOM eventfd did not fire within 5 s"
        assert oom.triggered()
    assert cgroup.oom_killed()
    print(f"\nOOM: child killed by signal 9, eventfd fired, oom_kill counted ({elapsed:.2f} s)")


def test_cpu_quota_throttles_a_busy_loop(make_cgroup, processes) -> None:
    cgroup = make_cgroup("cpu", "cpuacct")
    cgroup.set_cpu(0.5)
    child = spawn(
        processes, cgroup, "import time\nt = time.time()\nwhile time.time() - t < 1: pass"
    )
    assert child.wait(timeout=10) == 0
    stats = cgroup.statistics()
    assert stats.cpus_limit == 0.5
    assert stats.cpus_nr_throttled > 0
    assert stats.cpus_throttled_time_secs > 0
    used = stats.cpus_user_time_secs + stats.cpus_system_time_secs
    assert used < 0.8, f"a 0.5 cpu quota let a 1 s busy loop use {used:.2f} s of cpu"
    print(
        f"\ncpu 0.5: {stats.cpus_nr_throttled}/{stats.cpus_nr_periods} periods throttled, "
        f"{stats.cpus_throttled_time_secs:.3f} s throttled, {used:.2f} s cpu in 1 s"
    )


FORK_BOMB = """
import os, sys, time
ok = failed = 0
for _ in range(20):
    try:
        pid = os.fork()
    except OSError:
        failed += 1
        continue
    if pid == 0:
        time.sleep(30)
        os._exit(0)
    ok += 1
print(ok, failed, flush=True)
time.sleep(30)
"""


def test_pids_max_stops_a_fork_bomb(make_cgroup, processes) -> None:
    cgroup = make_cgroup("pids", "freezer")
    cgroup.set_pids(5)
    child = spawn(processes, cgroup, FORK_BOMB, stdout=subprocess.PIPE, text=True)
    forked, failed = map(int, child.stdout.readline().split())
    in_cgroup = len(cgroup.pids())
    assert forked == 4 and failed == 16, (forked, failed)  # 1 parent + 4 children = pids.max
    assert in_cgroup == 5
    assert cgroup.pids_events() >= 16
    cgroup.kill_all()
    assert cgroup.pids() == []
    print(f"\npids.max 5: {forked} forks ok, {failed} refused, {in_cgroup} processes in cgroup")


ESCAPEE = """
import os, time
pid = os.fork()
if pid == 0:
    os.setsid()
    time.sleep(60)
    os._exit(0)
print(pid, flush=True)
"""


def test_kill_all_kills_a_setsid_escapee(make_cgroup, processes) -> None:
    cgroup = make_cgroup("freezer", "pids")
    child = spawn(processes, cgroup, ESCAPEE, stdout=subprocess.PIPE, text=True)
    escapee = int(child.stdout.readline())
    try:
        assert child.wait(timeout=5) == 0
        assert os.getsid(escapee) == escapee != os.getsid(0)
        assert cgroup.pids() == [escapee]
        cgroup.kill_all()
        assert cgroup.pids() == []
        deadline = time.monotonic() + 2
        while alive(escapee) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not alive(escapee)
    finally:
        if alive(escapee):
            os.kill(escapee, signal.SIGKILL)


def test_destroy_kills_and_leaves_no_directory(make_cgroup, processes) -> None:
    cgroup = make_cgroup("cpu", "cpuacct", "memory", "pids", "freezer")
    child = spawn(processes, cgroup, "import time; time.sleep(30)")
    cgroup.destroy()
    assert child.wait(timeout=5) == -signal.SIGKILL
    assert [path for path in cgroup.paths.values() if path.exists()] == []
    cgroup.destroy()  # idempotent: nothing left to do


def test_statistics_are_filled(make_cgroup, processes) -> None:
    cgroup = make_cgroup("cpu", "cpuacct", "memory", "pids", "freezer")
    cgroup.set_memory(64 * 1024 * 1024)
    code = "import time; data = b'x' * (8 << 20); print(flush=True); time.sleep(30)"
    child = spawn(processes, cgroup, code, stdout=subprocess.PIPE)
    child.stdout.readline()  # the child has touched its 8 MB
    stats = cgroup.statistics()
    assert stats.processes == 1 and stats.threads >= 1
    assert stats.cpus_user_time_secs >= 0 and stats.cpus_system_time_secs >= 0
    assert stats.mem_total_bytes > 8 << 20
    assert stats.mem_rss_bytes >= 8 << 20
    assert stats.mem_limit_bytes == 64 << 20
    assert stats.cpus_limit is None  # no quota set
    assert set(stats.to_json()) >= {"processes", "mem_total_bytes", "cpus_nr_throttled"}


def test_oom_eventfd_also_fires_when_the_cgroup_is_removed(make_cgroup) -> None:
    """The kernel's trap: removal signals the eventfd too, so check it before destroy."""
    cgroup = make_cgroup("memory")
    with cgroup.oom_listener() as oom:
        assert not oom.triggered()
        cgroup.destroy()
        assert select.select([oom], [], [], 2)[0], "removal did not signal the eventfd"
        assert oom.triggered()
