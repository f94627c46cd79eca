"""The Mesos containerizer: a launcher and isolators, chosen by agent flags.

It is the posix containerizer (same records, pidfd reaping, checkpoints, recovery of pids)
plus, per container, a cgroup in the controllers of its active isolators:

- joining the cgroups without a race: the child is moved into every controller's
  ``cgroup.procs`` in ``preexec_fn`` (``Cgroup.preexec_attacher``: only ``os.open``/``os.write``
  of paths computed in the parent, then the rlimits' ``setrlimit``), between fork and exec, so
  the task code, and ``unshare`` under the linux launcher, already runs inside its cgroups;
- OOM: an eventfd on ``memory.oom_control`` starts a destroy and makes the termination's
  reason CONTAINER_LIMITATION_MEMORY; after the main process is reaped, ``oom_kill`` is checked
  too (before the cgroup is removed, since removal also fires the eventfd);
- destroy: SIGTERM to the whole cgroup, then the freezer's kill_all (setsid escapees included)
  and rmdir; a main process that ends by itself also gets its cgroup cleaned up;
- usage from the cgroup files, psutil where a controller is missing, ``du -sk`` for disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import structlog

from containerizer import inside
from containerizer.cgroups import Cgroup, CgroupError, CgroupRoot, CgroupsUnavailable, OomListener
from containerizer.errors import ContainerError, DestroyFailed, LaunchFailed
from containerizer.interface import (
    ContainerConfig,
    ContainerRunState,
    ContainerState,
    ContainerStatus,
    RecoveryResult,
)
from containerizer.isolators import (
    DEFAULT_ISOLATION,
    MB,
    Isolation,
    apply_limits,
    parse_isolation,
    resolve,
)
from containerizer.launchers import make_launcher
from containerizer.port_scan import scan_listeners
from containerizer.port_watch import PortViolation, PortWatch
from containerizer.posix import KILL_TIMEOUT, PosixContainerizer, _Container, _spawn
from containerizer.rlimits import RLimits
from containerizer.statistics import ResourceStatistics
from containerizer.termination import ContainerTermination, TerminationReason
from corral.ranges import Ranges

log = structlog.get_logger("containerizer.mesos")

DISK_WATCH_INTERVAL = 5.0  # seconds between two `du -sk` of a sandbox when disk/du enforces
PORTS_CHECKPOINT = "ports.json"  # a container's allocated ports, for network/ports after recovery


@dataclass(frozen=True)
class MesosResourceStatistics(ResourceStatistics):
    """ResourceStatistics plus Mesos's disk fields (from disk/du)."""

    disk_limit_bytes: int | None = None
    disk_used_bytes: int | None = None


class MesosContainerizer(PosixContainerizer):
    """Containers isolated by the ``isolation`` isolators and started by ``launcher``.

    ``cgroup_root``: where container cgroups live (default ``CgroupRoot()``, i.e.
    ``/sys/fs/cgroup/<controller>/corral``); cgroups that cannot be used (not root, controller
    missing) are logged once here and replaced by posix fallbacks: see ``active_isolators()``.
    ``pids_max``: cgroups/pids's limit when the task's resources give no ``pids``.
    ``rlimits``: posix/rlimits's limits for every task. ``enforce_disk``: disk/du kills a
    container whose sandbox outgrows ``resources["disk"]``. ``isolated_ports``: the ports
    network/ports checks (the agent's range as ``(begin, end)`` pairs; None: every port);
    ``enforce_ports``: it destroys a container listening on a port not its own (else it
    only logs, as Mesos without ``--enforce_container_ports``). ``check_ports()`` runs one
    check; the agent calls it on its timers.
    """

    def __init__(
        self,
        isolation: str | Sequence[str] = DEFAULT_ISOLATION,
        launcher: str = "posix",
        runtime_dir: Path | None = None,
        cgroup_root: CgroupRoot | None = None,
        pids_max: int | None = None,
        rlimits: RLimits | None = None,
        enforce_disk: bool = False,
        disk_watch_interval: float = DISK_WATCH_INTERVAL,
        isolated_ports: Sequence[tuple[int, int]] | None = None,
        enforce_ports: bool = True,
    ) -> None:
        super().__init__(runtime_dir)
        parse_isolation(isolation)  # refuse unknown names before probing the host
        why = ""
        if cgroup_root is None:
            try:
                cgroup_root = CgroupRoot()
            except CgroupsUnavailable as error:
                why = str(error)
        available = cgroup_root.available() if cgroup_root is not None else frozenset()
        self.isolation: Isolation = resolve(isolation, available, why)
        self._root = cgroup_root if self.isolation.controllers else None
        self.launcher = make_launcher(launcher, net="namespaces/net" in self.isolation.active)
        self.pids_max = pids_max
        self.rlimits = rlimits if "posix/rlimits" in self.isolation.active else None
        self.enforce_disk = enforce_disk and "disk/du" in self.isolation.active
        self.disk_watch_interval = disk_watch_interval
        self.ports: PortWatch | None = None  # network/ports's core, when it is active
        if "network/ports" in self.isolation.active:
            isolated = None if isolated_ports is None else Ranges(isolated_ports)
            self.ports = PortWatch(isolated)
        self.enforce_ports = enforce_ports
        self._cgroups: dict[str, Cgroup] = {}
        self._oom: dict[str, OomListener] = {}
        self._limitations: dict[str, tuple[TerminationReason, str]] = {}
        self._watchers: dict[str, asyncio.Task[None]] = {}
        self.destroyed_orphans: frozenset[str] = frozenset()  # cgroups recover() removed
        if self.isolation.missing:
            log.warning(
                "isolators_unavailable",
                missing=list(self.isolation.missing),
                active=list(self.isolation.active),
            )
        log.info(
            "mesos_containerizer_ready",
            isolators=list(self.isolation.active),
            launcher=self.launcher.name,
        )

    def active_isolators(self) -> tuple[str, ...]:
        """The isolators that run (for the agent's state), fallbacks included."""
        return self.isolation.active

    # -- the interface ---------------------------------------------------------------------

    async def launch(self, container_id: str, config: ContainerConfig) -> ContainerStatus:
        status = await super().launch(container_id, config)
        listener = self._oom.get(container_id)
        container = self._containers[container_id]
        if listener is not None and not container.ended.done():
            assert self._loop is not None
            self._loop.add_reader(listener.fileno(), self._on_oom, container)
        if self.enforce_disk and config.resources.get("disk"):
            self._watchers[container_id] = self._loop.create_task(  # type: ignore[union-attr]
                self._watch_disk(container), name=f"disk/du {container_id}"
            )
            self._watchers[container_id].add_done_callback(_log_watcher_failure)
        if self.ports is not None and not container.ended.done():
            self.ports.watch(container_id, container.pid, Ranges(config.ports))
            await self._loop.run_in_executor(  # type: ignore[union-attr]
                None, self._checkpoint_ports, container_id, config.ports
            )
        return status

    def update_ports(self, container_id: str, ports: Sequence[tuple[int, int]]) -> None:
        """The container's allocated ports are now ``ports`` (a task joined its executor)."""
        self._get(container_id)
        if self.ports is not None and container_id in self.ports.watched():
            self.ports.update(container_id, Ranges(ports))
            self._checkpoint_ports(container_id, ports)
            log.info("container_ports_updated", container_id=container_id, ports=str(Ranges(ports)))

    async def check_ports(self) -> list[PortViolation]:
        """network/ports: one scan of the machine's listening sockets; each container found
        listening on a port of the isolated range it was not allocated is destroyed with
        REASON_CONTAINER_LIMITATION (when enforcing). The violations newly seen."""
        if self.ports is None or not self.ports.watched():
            return []
        loop = self._bind_loop()
        root = self._root.name if self._root is not None else None
        listeners = await loop.run_in_executor(None, scan_listeners, root)
        violations = self.ports.check(listeners)
        for violation in violations:
            container = self._containers.get(violation.container_id)
            enforced = self.enforce_ports and container is not None
            log.warning(
                "container_ports_violation",
                container_id=violation.container_id,
                ports=str(violation.ports),
                allocated=str(violation.allocated),
                pids=list(violation.pids),
                enforced=enforced,
            )
            if not enforced or container.ended.done():
                continue
            if violation.container_id not in self._limitations:
                self._limitations[violation.container_id] = (
                    TerminationReason.CONTAINER_LIMITATION,
                    violation.message,
                )
                self._start_destruction(container, 0.0)
        return violations

    async def update(self, container_id: str, resources: Mapping[str, float]) -> None:
        await super().update(container_id, resources)
        cgroup = self._cgroups.get(container_id)
        if cgroup is not None:
            assert self._loop is not None
            await self._loop.run_in_executor(
                None, apply_limits, cgroup, self.isolation.active, dict(resources), self.pids_max
            )
            log.info("container_limits_updated", container_id=container_id, resources=resources)

    async def usage(self, container_id: str) -> ResourceStatistics:
        loop = self._bind_loop()
        container = self._get(container_id)
        cgroup = self._cgroups.get(container_id)
        stats: ResourceStatistics | None = None
        if cgroup is not None:
            with contextlib.suppress(CgroupError):  # removed meanwhile: fall back to psutil
                stats = await loop.run_in_executor(None, cgroup.statistics)
        fallback = await super().usage(container_id)
        if stats is None:
            stats = fallback
        else:  # posix/cpu, posix/mem fill what the cgroup does not measure
            missing = {
                f.name: getattr(fallback, f.name)
                for f in fields(stats)
                if getattr(stats, f.name) is None and getattr(fallback, f.name) is not None
            }
            stats = replace(stats, **missing)
        disk = container.resources.get("disk")
        used = None
        if "disk/du" in self.isolation.active:
            used = await loop.run_in_executor(None, _du_bytes, container.sandbox)
        return MesosResourceStatistics(
            **asdict(stats),
            disk_limit_bytes=None if disk is None else int(disk * MB),
            disk_used_bytes=used,
        )

    async def recover(self, known: Sequence[ContainerState]) -> RecoveryResult:
        result = await super().recover(known)
        if self.ports is not None:
            for container_id in sorted(result.running):
                ports = self._recovered_ports(container_id)
                if ports is not None:
                    self.ports.watch(container_id, self._containers[container_id].pid, ports)
        if self._root is None:
            return result
        loop = self._bind_loop()
        keep = set(result.running) | set(result.orphans)
        owned = {state.container_id for state in known}
        for container_id in sorted(keep):
            cgroup = await loop.run_in_executor(
                None, self._root.create, container_id, self.isolation.controllers
            )
            self._cgroups[container_id] = cgroup
            if "cgroups/mem" in self.isolation.active:
                self._oom[container_id] = cgroup.oom_listener()
                loop.add_reader(
                    self._oom[container_id].fileno(),
                    self._on_oom,
                    self._containers[container_id],
                )
        # Cgroups of no running container: orphans (no known container owns them) and the
        # leftovers of known containers that ended while the agent was down. Both are killed.
        stale = sorted(self._root.containers() - keep)
        for container_id in stale:
            cgroup = await loop.run_in_executor(
                None, self._root.create, container_id, self.isolation.controllers
            )
            await loop.run_in_executor(None, cgroup.destroy)
        orphans = [container_id for container_id in stale if container_id not in owned]
        self.destroyed_orphans = frozenset(orphans)
        log.info(
            "cgroups_recovered",
            reattached=sorted(keep),
            orphans_destroyed=orphans,
            ended_cleaned=[container_id for container_id in stale if container_id in owned],
        )
        return result

    # -- hooks of the posix containerizer --------------------------------------------------

    def _start(self, container_id: str, config: ContainerConfig) -> subprocess.Popen:
        """Make the cgroup, set its limits, then fork into it and exec (in an executor)."""
        try:
            argv = self.launcher.argv(container_id, config.argv)
        except (RuntimeError, ValueError) as error:
            raise LaunchFailed(
                container_id,
                f"container {container_id}: {self.launcher.name} launcher: {error}",
                config.command,
                None,
            ) from error
        steps = []
        cgroup = None
        if self._root is not None:
            try:
                cgroup = self._root.create(container_id, self.isolation.controllers)
                apply_limits(cgroup, self.isolation.active, config.resources, self.pids_max)
                if "cgroups/mem" in self.isolation.active:
                    self._oom[container_id] = cgroup.oom_listener()
            except (CgroupError, ValueError) as error:
                self._drop_cgroup(container_id, cgroup)
                raise LaunchFailed(
                    container_id,
                    f"container {container_id}: cannot set up its cgroups: {error}",
                    config.command,
                    getattr(error, "cause", None),
                ) from error
            steps.append(cgroup.preexec_attacher())
        if self.rlimits is not None and self.rlimits.limits:
            steps.append(self.rlimits.preexec())

        def prepare() -> None:  # in the child, before exec: system calls only
            for step in steps:
                step()

        try:
            popen = _spawn(
                container_id,
                config,
                argv,
                prepare if steps else None,
                exit_status=self._exit_status_path(container_id),
            )
        except BaseException:
            self._drop_cgroup(container_id, cgroup)
            raise
        if cgroup is not None:
            self._cgroups[container_id] = cgroup
        return popen

    def _terminated(
        self, container: _Container, termination: ContainerTermination
    ) -> ContainerTermination:
        """Name the limitation that ended the container, if any (before its cgroup goes)."""
        container_id = container.container_id
        self._stop_oom(container_id)
        if self.ports is not None:
            self.ports.unwatch(container_id)
        limitation = self._limitations.get(container_id)
        cgroup = self._cgroups.get(container_id)
        if limitation is None and cgroup is not None and "memory" in cgroup.controllers:
            listener = self._oom.get(container_id)
            with contextlib.suppress(CgroupError):
                if (listener is not None and listener.triggered()) or cgroup.oom_killed():
                    limitation = self._memory_limitation(container)
        if limitation is not None:
            reason, message = limitation
            status = termination.status
            if reason is TerminationReason.CONTAINER_LIMITATION_MEMORY and (
                self.launcher.wrapped and termination.exit_code == 1
            ):
                status = signal.SIGKILL  # unshare reports the task's SIGKILL as rc 1
            termination = replace(termination, status=status, reason=reason, message=message)
        if container.destruction is None and cgroup is not None:
            # The main process ended by itself: remove what it left behind, and its cgroup.
            assert self._loop is not None
            self._loop.call_soon(self._start_destruction, container, 0.0)
        return termination

    async def _destroy(self, container: _Container, grace_seconds: float) -> ContainerTermination:
        cgroup = self._cgroups.get(container.container_id)
        if cgroup is None:
            return await super()._destroy(container, grace_seconds)
        loop = self._loop
        assert loop is not None
        container_id = container.container_id
        if container.state is ContainerRunState.RUNNING:
            container.state = ContainerRunState.DESTROYING
        log.info("container_destroying", container_id=container_id, grace=grace_seconds)
        watcher = self._watchers.pop(container_id, None)
        if watcher is not None and watcher is not asyncio.current_task():
            watcher.cancel()
        # A limitation (OOM, disk) kills at once, as the kernel's OOM killer does: no SIGTERM.
        if not container.ended.done() and container_id not in self._limitations:
            self._signal(container, signal.SIGTERM)
            await loop.run_in_executor(None, cgroup.kill_all, signal.SIGTERM)
            try:
                async with asyncio.timeout(grace_seconds):
                    await asyncio.shield(container.ended)
            except TimeoutError:
                container.escalated = True
        try:
            if not container.ended.done():
                await loop.run_in_executor(None, cgroup.kill_all, signal.SIGKILL)
                async with asyncio.timeout(KILL_TIMEOUT):
                    await asyncio.shield(container.ended)
            self._stop_oom(container_id)  # removing the cgroup fires the OOM eventfd
            await loop.run_in_executor(None, cgroup.destroy)
        except (CgroupError, TimeoutError) as error:
            raise DestroyFailed(
                container_id,
                f"container {container_id}: could not empty and remove its cgroup: {error}; "
                "retrying destroy() may succeed",
            ) from error
        self._cgroups.pop(container_id, None)
        self._release(container_id)
        termination = await asyncio.shield(container.ended)
        container.state = ContainerRunState.TERMINATED
        log.info(
            "container_destroyed",
            container_id=container_id,
            signal=termination.signal,
            exit_code=termination.exit_code,
            reason=termination.reason,
        )
        return termination

    def forget(self, container_id: str) -> None:
        super().forget(container_id)
        self._limitations.pop(container_id, None)

    async def network_socket(self, container_id: str) -> socket.socket | None:
        """With ``namespaces/net`` the task has a network of its own: a socket made in it."""
        loop = self._bind_loop()
        container = self._get(container_id)
        if not self.launcher.net:
            return None
        cgroup = self._cgroups.get(container_id)
        target = inside.namespaced(cgroup.pids() if cgroup else self._members(container))
        if target is None:
            raise ContainerError(
                container_id,
                f"container {container_id}: no process of it runs in its network namespace",
            )
        try:
            return await loop.run_in_executor(None, inside.socket_in_network_of, target)
        except OSError as error:
            raise ContainerError(
                container_id, f"container {container_id}: cannot enter its network: {error}"
            ) from error

    def _inside(
        self, container: _Container, argv: Sequence[str]
    ) -> tuple[Sequence[str], Callable[[], None] | None]:
        """Into the container's cgroups (before exec) and, under the linux launcher, its
        namespaces (``nsenter`` into those of the task, the pid namespace's init)."""
        container_id = container.container_id
        cgroup = self._cgroups.get(container_id)
        if self.launcher.wrapped:
            members = cgroup.pids() if cgroup is not None else self._members(container)
            target = inside.namespaced(members)
            if target is None:
                raise ContainerError(
                    container_id,
                    f"container {container_id}: no process of it runs in its namespaces (yet, "
                    "or any more), so a command cannot enter them",
                )
            try:
                argv = inside.entering(target, argv, net=self.launcher.net)
            except RuntimeError as error:
                raise ContainerError(container_id, f"container {container_id}: {error}") from None
        return argv, None if cgroup is None else cgroup.preexec_attacher()

    # -- inside ----------------------------------------------------------------------------

    def _memory_limitation(self, container: _Container) -> tuple[TerminationReason, str]:
        mem = container.resources.get("mem")
        limit = f"{mem:g} MB" if mem is not None else "the cgroup's limit"
        return (
            TerminationReason.CONTAINER_LIMITATION_MEMORY,
            f"Memory limit exceeded: {limit}",
        )

    def _on_oom(self, container: _Container) -> None:
        """The memory cgroup hit OOM (on the loop): record it and destroy the container."""
        container_id = container.container_id
        listener = self._oom.get(container_id)
        if listener is None or listener.read() == 0:
            return
        if container_id not in self._limitations:
            self._limitations[container_id] = self._memory_limitation(container)
            log.warning("container_memory_limit", container_id=container_id)
        self._stop_oom(container_id)
        self._start_destruction(container, 0.0)

    def _stop_oom(self, container_id: str) -> None:
        listener = self._oom.get(container_id)
        if listener is not None and self._loop is not None:
            self._loop.remove_reader(listener.fileno())

    async def _watch_disk(self, container: _Container) -> None:
        """disk/du enforcement: destroy the container once its sandbox outgrows its disk."""
        assert self._loop is not None
        while not container.ended.done():
            limit = container.resources.get("disk")
            used = await self._loop.run_in_executor(None, _du_bytes, container.sandbox)
            if limit and used is not None and used > limit * MB:
                self._limitations[container.container_id] = (
                    TerminationReason.CONTAINER_LIMITATION_DISK,
                    f"Disk usage ({used / MB:.1f} MB) exceeds quota ({limit:g} MB)",
                )
                self._start_destruction(container, 0.0)
                return
            await asyncio.sleep(self.disk_watch_interval)

    def _checkpoint_ports(self, container_id: str, ports: Sequence[tuple[int, int]]) -> None:
        self._write_checkpoint(container_id, PORTS_CHECKPOINT, {"ports": [list(p) for p in ports]})

    def _recovered_ports(self, container_id: str) -> Ranges | None:
        """A recovered container's ports, from its checkpoint (None: not known, so it is not
        watched: Mesos too waits for the ports before isolating a recovered container)."""
        if self.runtime_dir is None:
            return None
        path = self.runtime_dir / container_id / PORTS_CHECKPOINT
        try:
            return Ranges(tuple(pair) for pair in json.loads(path.read_text())["ports"])
        except (OSError, ValueError, KeyError, TypeError) as error:
            log.warning("container_ports_unknown", container_id=container_id, error=repr(error))
            return None

    def _drop_cgroup(self, container_id: str, cgroup: Cgroup | None) -> None:
        listener = self._oom.pop(container_id, None)
        if listener is not None:
            listener.close()
        if cgroup is not None:
            with contextlib.suppress(CgroupError):
                cgroup.destroy()

    def _release(self, container_id: str) -> None:
        listener = self._oom.pop(container_id, None)
        if listener is not None:
            self._stop_oom(container_id)
            listener.close()


def _log_watcher_failure(task: asyncio.Task[None]) -> None:
    """A disk watcher has no awaiting caller: its failure is logged, never dropped."""
    if not task.cancelled() and task.exception() is not None:
        log.error("disk_watch_failed", task=task.get_name(), exc_info=task.exception())


def _du_bytes(path: Path) -> int | None:
    """Bytes used under ``path`` per ``du -sk`` (None if it cannot be measured)."""
    try:
        done = subprocess.run(
            ["du", "-sk", str(path)], capture_output=True, text=True, timeout=30, check=False
        )
        return int(done.stdout.split()[0]) * 1024
    except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
        return None
