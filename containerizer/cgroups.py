"""One small interface over cgroup v1: the container's cgroups, their limits and counters.

The cgroups isolators use only this module. ``cgroupspy`` builds the cgroup tree and reads and
writes the cpu, cpuacct and memory controllers; what it lacks is written here: the pids and
freezer controllers, OOM events (an eventfd on ``memory.oom_control``), attaching one pid per
write (the kernel takes one pid per write to ``cgroup.procs``), and removing a cgroup while
the kernel still says EBUSY for a moment after its last process left.

Layout: ``<hierarchy root>/<controller>/<root name>/<container id>`` in each hierarchy (the
root name is ``corral`` in production, a unique name in tests). Every method here blocks (file
I/O, short sleeps while a cgroup freezes or empties): the isolators call them from an executor.
Every failed cgroup file access raises :class:`CgroupError` naming the file and the OS error.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import structlog
from cgroupspy import trees

from containerizer.errors import ContainerError
from containerizer.interface import check_container_id
from containerizer.statistics import ResourceStatistics

log = structlog.get_logger("containerizer.cgroups")

CPU_SHARES_PER_CPU = 1024
MIN_CPU_SHARES = 2  # the kernel's minimum
CFS_PERIOD_US = 100_000  # 100 ms, as Mesos uses
MIN_CFS_QUOTA_US = 1_000  # the kernel's minimum
FREEZE_TIMEOUT = 5.0  # seconds a cgroup may take to reach FROZEN
KILL_TIMEOUT = 5.0  # seconds kill_all may take to empty the cgroup
RMDIR_TIMEOUT = 2.0  # seconds rmdir is retried while the kernel answers EBUSY
_UNLIMITED = 1 << 62  # v1 reports "no limit" as about 2**63 rounded to a page: treat as None

# Controllers the default cgroup of a container joins, when mounted.
DEFAULT_CONTROLLERS = frozenset({"cpu", "cpuacct", "memory", "pids", "freezer"})
# Controllers cgroupspy knows: their files are read and written through it.
_CGROUPSPY = frozenset({"cpu", "cpuacct", "memory", "cpuset", "devices", "blkio"})


class CgroupsUnavailable(Exception):
    """cgroups cannot be used on this host (not root, no v1 hierarchy, controller missing).

    An environment problem, not a container's: the agent says so once and runs without the
    cgroups isolators.
    """


class CgroupError(ContainerError):
    """Reading or writing a cgroup file failed; ``path`` is the file, ``cause`` the OS error."""

    def __init__(self, container_id: str, message: str, path: Path, cause: OSError | None) -> None:
        super().__init__(container_id, message)
        self.path = path
        self.cause = cause


def _v1_mounts() -> dict[str, Path]:
    """Mounted cgroup v1 controllers -> mount point, from /proc/self/mountinfo."""
    mounts: dict[str, Path] = {}
    with open("/proc/self/mountinfo") as mountinfo:
        for line in mountinfo:
            left, _, right = line.partition(" - ")
            fstype, _source, options = [*right.split(), "", "", ""][:3]
            if fstype != "cgroup":
                continue
            mount_point = Path(left.split()[4].replace("\\040", " "))
            for option in options.split(","):
                if option not in ("rw", "ro") and not option.startswith("name="):
                    mounts.setdefault(option, mount_point)
    return mounts


class CgroupRoot:
    """This host's cgroup v1 hierarchies and the ``name`` directory corral owns in each.

    Raises :class:`CgroupsUnavailable` when not root or when no v1 hierarchy with a
    controller is mounted under ``hierarchy_root``.
    """

    def __init__(self, hierarchy_root: str | Path = "/sys/fs/cgroup", name: str = "corral") -> None:
        self.hierarchy_root = Path(hierarchy_root)
        self.name = check_container_id(name)  # same rules: it becomes a directory name
        if os.geteuid() != 0:
            raise CgroupsUnavailable(
                f"cgroups need root: running as uid {os.geteuid()}; run the agent as root or "
                "choose isolators that need no cgroups (posix/cpu, posix/mem)"
            )
        # controller -> <hierarchy_root>/<controller>; only v1 mounts reachable under that name
        self._hierarchies: dict[str, Path] = {}
        for controller, mount_point in _v1_mounts().items():
            path = self.hierarchy_root / controller
            if path.is_dir() and path.resolve() == mount_point.resolve():
                self._hierarchies[controller] = path
        if not self._hierarchies:
            raise CgroupsUnavailable(
                f"no cgroup v1 hierarchy is mounted under {self.hierarchy_root} (expected e.g. "
                f"{self.hierarchy_root}/memory of type cgroup in /proc/self/mountinfo); mount "
                "the v1 controllers there or run without the cgroups isolators"
            )

    def available(self) -> frozenset[str]:
        """The v1 controllers mounted here (cpu, cpuacct, memory, pids, freezer, ...)."""
        return frozenset(self._hierarchies)

    def require(self, controllers: Iterable[str]) -> None:
        """Raise :class:`CgroupsUnavailable` naming the controllers that are not mounted."""
        missing = sorted(set(controllers) - set(self._hierarchies))
        if missing:
            raise CgroupsUnavailable(
                f"cgroup v1 controller(s) {', '.join(missing)} not mounted under "
                f"{self.hierarchy_root} (mounted: {', '.join(sorted(self._hierarchies))}); "
                "mount them or drop the isolators that need them"
            )

    def hierarchy(self, controller: str) -> Path:
        """``<hierarchy_root>/<controller>``: the mount of one controller."""
        self.require([controller])
        return self._hierarchies[controller]

    def create(self, container_id: str, controllers: Iterable[str] | None = None) -> Cgroup:
        """The container's cgroup in each controller, made if missing (idempotent).

        ``controllers`` defaults to those of cpu, cpuacct, memory, pids and freezer that are
        mounted; a named controller that is not mounted raises :class:`CgroupsUnavailable`.
        Also reattaches to an existing cgroup after an agent restart.
        """
        check_container_id(container_id)
        if controllers is None:
            chosen = sorted(DEFAULT_CONTROLLERS & set(self._hierarchies))
        else:
            chosen = sorted(set(controllers))
            self.require(chosen)
        relative = f"{self.name}/{container_id}"
        try:
            # cgroupspy makes <controller>/<name>/<id> in each hierarchy (mkdir, EEXIST is fine)
            tree = trees.GroupedTree(
                root_path=str(self.hierarchy_root).encode(),
                groups=[c.encode() for c in chosen],
                sub_groups=[relative],
            )
        except OSError as error:
            raise CgroupError(
                container_id,
                f"cannot create cgroup {relative} under {self.hierarchy_root} for controllers "
                f"{', '.join(chosen)}: {error}",
                Path(error.filename or self.hierarchy_root),
                error,
            ) from error
        node = tree.get_node_by_path(f"/{relative}")
        assert node is not None, f"cgroupspy lost the node it made: {relative}"
        cgroup = Cgroup(container_id, {c: self._hierarchies[c] / relative for c in chosen}, node)
        if "cpuset" in chosen:
            cgroup._inherit_cpuset()
        log.debug("cgroup_created", container_id=container_id, controllers=chosen)
        return cgroup

    def containers(self) -> set[str]:
        """Ids of the container cgroups under this root in any hierarchy (to find orphans)."""
        found: set[str] = set()
        for hierarchy in self._hierarchies.values():
            with contextlib.suppress(FileNotFoundError):
                found.update(
                    entry.name for entry in (hierarchy / self.name).iterdir() if entry.is_dir()
                )
        return found

    def remove(self) -> None:
        """Remove this root's own directory in every hierarchy; it must hold no container."""
        for controller, hierarchy in self._hierarchies.items():
            _rmdir(self.name, hierarchy / self.name, f"{controller} root")


class Cgroup:
    """One container's cgroups, one directory per controller. Make one with CgroupRoot.create."""

    def __init__(self, container_id: str, paths: dict[str, Path], node: object) -> None:
        self.container_id = container_id
        self.paths = paths  # controller -> this container's directory in that hierarchy
        self._node = node  # cgroupspy's NodeControlGroup: .cpu, .cpuacct, .memory controllers

    @property
    def controllers(self) -> frozenset[str]:
        """The controllers this cgroup is in."""
        return frozenset(self.paths)

    def __repr__(self) -> str:
        return f"Cgroup({self.container_id!r}, controllers={sorted(self.paths)})"

    # -- membership -------------------------------------------------------------------------

    def attach(self, pid: int) -> None:
        """Move process ``pid`` (and its threads) into every controller's cgroup."""
        for controller in sorted(self.paths):
            self._write(controller, "cgroup.procs", str(pid))

    def preexec_attacher(self) -> Callable[[], None]:
        """A ``preexec_fn`` that moves the child into the cgroups before it execs (no race).

        It only opens and writes files whose paths are computed here, in the parent. On
        failure it writes the reason to the child's stderr and raises, so Popen fails.
        """
        procs = [os.fsencode(self.paths[c] / "cgroup.procs") for c in sorted(self.paths)]

        def join_cgroups() -> None:
            pid = str(os.getpid()).encode()
            for path in procs:
                try:
                    fd = os.open(path, os.O_WRONLY)
                    try:
                        os.write(fd, pid)
                    finally:
                        os.close(fd)
                except OSError as error:
                    with contextlib.suppress(OSError):
                        os.write(2, b"cannot join cgroup %s: %s\n" % (path, str(error).encode()))
                    raise

        return join_cgroups

    def pids(self, controller: str | None = None) -> list[int]:
        """Pids in the cgroup of ``controller`` (default: freezer, else any we are in)."""
        text = self._read(controller or self._primary(), "cgroup.procs")
        return [int(pid) for pid in text.split()]

    def threads(self, controller: str | None = None) -> list[int]:
        """Thread ids in the cgroup of ``controller`` (its ``tasks`` file)."""
        return [int(tid) for tid in self._read(controller or self._primary(), "tasks").split()]

    # -- limits -----------------------------------------------------------------------------

    def set_cpu(self, cpus: float, quota: bool = True) -> None:
        """Shares of 1024 per cpu; with ``quota``, a hard CFS cap of ``cpus`` per 100 ms."""
        if cpus <= 0:
            raise ValueError(f"cpus must be > 0, got {cpus}")
        cpu = self._controller("cpu")
        with self._writing("cpu", "cpu.shares"):
            cpu.shares = max(MIN_CPU_SHARES, int(cpus * CPU_SHARES_PER_CPU))
        with self._writing("cpu", "cpu.cfs_period_us"):
            cpu.cfs_period_us = CFS_PERIOD_US
        with self._writing("cpu", "cpu.cfs_quota_us"):
            cpu.cfs_quota_us = (
                max(MIN_CFS_QUOTA_US, int(cpus * CFS_PERIOD_US)) if quota else None  # None: -1
            )

    def set_memory(self, limit_bytes: int) -> None:
        """Hard memory limit; memory+swap gets the same limit when swap is accounted."""
        if limit_bytes <= 0:
            raise ValueError(f"limit_bytes must be > 0, got {limit_bytes}")
        memory = self._controller("memory")
        memsw = (self.paths["memory"] / "memory.memsw.limit_in_bytes").exists()
        # The kernel keeps memsw >= limit: raise memsw first when growing, last when shrinking.
        current = memsw and self._get(
            "memory", "memory.memsw.limit_in_bytes", lambda c: c.memsw_limit_in_bytes
        )
        growing = memsw and limit_bytes > (current or _UNLIMITED)
        if growing:
            with self._writing("memory", "memory.memsw.limit_in_bytes"):
                memory.memsw_limit_in_bytes = limit_bytes
        with self._writing("memory", "memory.limit_in_bytes"):
            memory.limit_in_bytes = limit_bytes
        if memsw and not growing:
            with self._writing("memory", "memory.memsw.limit_in_bytes"):
                memory.memsw_limit_in_bytes = limit_bytes

    def set_pids(self, maximum: int | None) -> None:
        """At most ``maximum`` processes and threads (None: no limit); fork fails beyond."""
        if maximum is not None and maximum < 1:
            raise ValueError(f"maximum must be >= 1 or None, got {maximum}")
        self._write("pids", "pids.max", "max" if maximum is None else str(maximum))

    # -- freezer and destroy ----------------------------------------------------------------

    def freeze(self, timeout: float = FREEZE_TIMEOUT) -> None:
        """Stop every process of the cgroup; returns once the kernel says FROZEN."""
        self._write("freezer", "freezer.state", "FROZEN")
        deadline = time.monotonic() + timeout
        delay = 0.001
        while (state := self._read("freezer", "freezer.state").strip()) != "FROZEN":
            if time.monotonic() > deadline:
                raise CgroupError(
                    self.container_id,
                    f"cgroup of container {self.container_id} still {state} after {timeout} s "
                    "(a process stuck in the kernel?); thaw() it and retry",
                    self.paths["freezer"] / "freezer.state",
                    None,
                )
            self._write("freezer", "freezer.state", "FROZEN")  # re-request, as Mesos does
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def thaw(self) -> None:
        """Let the processes of the cgroup run again."""
        self._write("freezer", "freezer.state", "THAWED")

    def kill_all(self, signum: int = signal.SIGKILL, timeout: float = KILL_TIMEOUT) -> None:
        """Signal every process of the cgroup until it is empty (setsid escapees included).

        With the freezer: freeze, signal every pid, thaw, repeat. A frozen process can
        neither fork nor exit, so no pid is missed and none is reused before it is signalled.
        Without it: signal and rescan. Raises :class:`CgroupError` if processes remain after
        ``timeout``.
        """
        frozen = "freezer" in self.paths
        deadline = time.monotonic() + timeout
        delay = 0.001
        while True:
            try:
                if frozen:
                    self.freeze(timeout=max(0.1, deadline - time.monotonic()))
                pids = self.pids()
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signum)
            finally:
                if frozen:
                    self.thaw()
            if not pids:
                return
            if signum != signal.SIGKILL:
                return  # a catchable signal: the processes decide; one round is the request
            if time.monotonic() > deadline:
                raise CgroupError(
                    self.container_id,
                    f"container {self.container_id}: pids {pids} outlived SIGKILL for "
                    f"{timeout} s (stuck in the kernel?)",
                    self.paths[self._primary()] / "cgroup.procs",
                    None,
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def destroy(self) -> None:
        """Kill every process, then remove the container's directory in each hierarchy."""
        existing = {c: p for c, p in self.paths.items() if p.is_dir()}
        if existing:
            self.kill_all()
        for controller, path in sorted(existing.items()):
            _rmdir(self.container_id, path, controller)
        log.debug("cgroup_destroyed", container_id=self.container_id)

    # -- measurement ------------------------------------------------------------------------

    def statistics(self) -> ResourceStatistics:
        """A sample of the container's usage from the cgroup files (Mesos's mapping)."""
        fields: dict[str, float | int | None] = {}
        fields["processes"] = len(self.pids())
        fields["threads"] = len(self.threads())
        if "cpuacct" in self.paths:
            ticks = os.sysconf("SC_CLK_TCK")
            acct = self._get("cpuacct", "cpuacct.stat", lambda c: c.acct_stat)
            fields["cpus_user_time_secs"] = acct["user"] / ticks
            fields["cpus_system_time_secs"] = acct["system"] / ticks
        if "cpu" in self.paths:
            quota = self._get("cpu", "cpu.cfs_quota_us", lambda c: c.cfs_quota_us)
            period = self._get("cpu", "cpu.cfs_period_us", lambda c: c.cfs_period_us)
            fields["cpus_limit"] = quota / period if quota and period else None
            stat = self._get("cpu", "cpu.stat", lambda c: c.stat)
            fields["cpus_nr_periods"] = stat.get("nr_periods")
            fields["cpus_nr_throttled"] = stat.get("nr_throttled")
            throttled = stat.get("throttled_time")
            fields["cpus_throttled_time_secs"] = None if throttled is None else throttled / 1e9
        if "memory" in self.paths:
            stat = self._get("memory", "memory.stat", lambda c: c.stat)
            limit = self._get("memory", "memory.limit_in_bytes", lambda c: c.limit_in_bytes)
            fields["mem_total_bytes"] = self._get(
                "memory", "memory.usage_in_bytes", lambda c: c.usage_in_bytes
            )
            fields["mem_limit_bytes"] = limit if limit is not None and limit < _UNLIMITED else None
            fields["mem_rss_bytes"] = fields["mem_anon_bytes"] = stat.get("total_rss")
            fields["mem_cache_bytes"] = fields["mem_file_bytes"] = stat.get("total_cache")
            fields["mem_mapped_file_bytes"] = stat.get("total_mapped_file")
            fields["mem_swap_bytes"] = stat.get("total_swap")
            fields["mem_unevictable_bytes"] = stat.get("total_unevictable")
        return ResourceStatistics(timestamp=time.time(), **fields)  # type: ignore[arg-type]

    def pids_events(self) -> int:
        """How many forks ``pids.max`` refused (``max`` in ``pids.events``)."""
        for line in self._read("pids", "pids.events").splitlines():
            key, _, value = line.partition(" ")
            if key == "max":
                return int(value)
        return 0

    # -- OOM --------------------------------------------------------------------------------

    def oom_listener(self) -> OomListener:
        """An eventfd the kernel signals when the memory cgroup hits OOM (close it after)."""
        return OomListener(self)

    def oom_killed(self) -> bool:
        """Whether the kernel's OOM killer killed a process of this cgroup (the fallback check).

        ``memory.failcnt`` is not used: it stayed 0 on these kernels.
        """
        for line in self._read("memory", "memory.oom_control").splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value) > 0
        raise CgroupError(
            self.container_id,
            f"no oom_kill counter in {self.paths['memory'] / 'memory.oom_control'} "
            "(kernel older than 4.13?): rely on the OOM eventfd",
            self.paths["memory"] / "memory.oom_control",
            None,
        )

    # -- files ------------------------------------------------------------------------------

    def _primary(self) -> str:
        """The hierarchy whose membership is read: freezer's (destroy relies on it), or any."""
        if "freezer" in self.paths:
            return "freezer"
        return min(self.paths)

    def _path(self, controller: str, filename: str) -> Path:
        if controller not in self.paths:
            raise CgroupError(
                self.container_id,
                f"container {self.container_id} has no {controller} cgroup (it has "
                f"{', '.join(sorted(self.paths))}); create it with that controller",
                Path(filename),
                None,
            )
        return self.paths[controller] / filename

    def _controller(self, controller: str):
        self._path(controller, ".")  # raises if we are not in that hierarchy
        return getattr(self._node, controller)

    def _read(self, controller: str, filename: str) -> str:
        path = self._path(controller, filename)
        try:
            return path.read_text()
        except OSError as error:
            raise self._error("read", path, error) from error

    def _write(self, controller: str, filename: str, value: str) -> None:
        path = self._path(controller, filename)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, value.encode())
            finally:
                os.close(fd)
        except OSError as error:
            raise self._error(f"write {value!r} to", path, error) from error

    @contextlib.contextmanager
    def _writing(self, controller: str, filename: str) -> Iterator[None]:
        """Turn an OS error of a cgroupspy write into a :class:`CgroupError`."""
        path = self._path(controller, filename)
        try:
            yield
        except OSError as error:
            raise self._error("write", path, error) from error

    def _get(self, controller: str, filename: str, read: Callable[[object], object]):
        """Read one file through cgroupspy, with the OS error turned into a CgroupError."""
        path = self._path(controller, filename)
        try:
            return read(self._controller(controller))
        except OSError as error:
            raise self._error("read", path, error) from error

    def _error(self, action: str, path: Path, error: OSError) -> CgroupError:
        return CgroupError(
            self.container_id,
            f"container {self.container_id}: cannot {action} {path}: "
            f"{errno.errorcode.get(error.errno or 0, '?')} ({error.strerror})",
            path,
            error,
        )

    def _inherit_cpuset(self) -> None:
        """Copy cpus and mems from the parent: a v1 cpuset with none refuses processes."""
        path = self.paths["cpuset"]
        for directory in (path.parent, path):
            for filename in ("cpuset.cpus", "cpuset.mems"):
                target = directory / filename
                try:
                    if not target.read_text().strip():
                        target.write_text((directory.parent / filename).read_text())
                except OSError as error:
                    raise self._error("inherit", target, error) from error


class OomListener:
    """An eventfd registered on ``memory.oom_control``: readable once the cgroup hits OOM.

    Use ``fileno()`` with ``loop.add_reader``. The kernel also signals the eventfd when the
    cgroup is removed: check ``triggered()`` (or :meth:`Cgroup.oom_killed`) before destroy.
    """

    def __init__(self, cgroup: Cgroup) -> None:
        self.container_id = cgroup.container_id
        control = cgroup._path("memory", "memory.oom_control")
        self._events = 0
        self._efd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        try:
            self._control = os.open(control, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as error:
            os.close(self._efd)
            raise cgroup._error("open", control, error) from error
        try:
            cgroup._write("memory", "cgroup.event_control", f"{self._efd} {self._control}")
        except CgroupError:
            self.close()
            raise

    def fileno(self) -> int:
        """The eventfd, for ``loop.add_reader``."""
        return self._efd

    def read(self) -> int:
        """OOM events since the last read (0 if none); never blocks."""
        try:
            count = os.eventfd_read(self._efd)
        except BlockingIOError:
            return 0
        self._events += count
        return count

    def triggered(self) -> bool:
        """Whether any OOM event has arrived so far."""
        self.read()
        return self._events > 0

    def close(self) -> None:
        """Close both descriptors (the kernel then drops the registration)."""
        for fd in (self._efd, self._control):
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> OomListener:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _rmdir(container_id: str, path: Path, what: str, timeout: float = RMDIR_TIMEOUT) -> None:
    """Remove an empty cgroup directory, retrying while the kernel says EBUSY; gone is fine."""
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError as error:
            if error.errno != errno.EBUSY or time.monotonic() > deadline:
                raise CgroupError(
                    container_id,
                    f"cannot remove the {what} cgroup {path}: {error.strerror} (after "
                    f"{timeout} s of retries if busy); are processes or child cgroups left?",
                    path,
                    error,
                ) from error
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
