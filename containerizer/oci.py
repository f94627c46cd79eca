"""The OCI containerizer: a task that names an image runs under ``runc`` as an OCI bundle.

Per container, in ``<work_dir>/containers/<id>/``: ``config.json`` (built here, in the shape
``runc spec`` writes), ``rootfs/`` (an overlay: the image's shared rootfs from the
:class:`~containerizer.images.ImageStore` below, this container's writes in ``upper/``), so
that no container alters the image or sees another's writes.

Running and waiting: the agent starts ``runc run <id>`` in the foreground (not ``-d``) as its
own child, in a session of its own, and watches that child with a pidfd, as posix.py does.
runc stays the parent of the container's init and exits with the container's status (exit
code, or 128 + signal when it was killed), so the exit status comes back without polling
``runc state`` and without making the agent a child subreaper (``run -d`` would reparent the
container's init away from us and lose its status). runc passes its stdio through to the
task: ``<sandbox>/stdout`` and ``stderr``. When runc's main process ends, runc deletes the
container and its cgroups itself; destroy still calls ``runc delete --force`` to be sure.

Isolation: namespaces pid, mount, ipc and uts; the network namespace is **not** unshared, the
task keeps the host's network, like Mesos's default (no network isolator): ports the agent
offers are then reachable as with the posix containerizer. The sandbox is bind-mounted at
``/mnt/mesos/sandbox`` (Mesos's path, ``MESOS_SANDBOX``) and is the working directory. Limits
from the task's resources: ``cpus`` -> cpu shares (1024 per cpu) and a CFS quota, ``mem`` (MB)
-> memory limit (swap equal: no swap beyond it), and an optional pids limit. The cgroups are
``corral/<id>`` in each v1 hierarchy, the layout cgroups.py uses.

Exit statuses: runc reports a death by signal N as exit code 128 + N, and so does a shell that
exits 128 + N itself; this containerizer reads codes 129..192 as deaths by signal (as shells
do). A SIGKILL that the agent did not send, under a memory limit, is reported as a memory
limitation: runc removes the cgroup on exit, so the OOM counter cannot be read afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pwd
import select
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil
import structlog

from containerizer import inside
from containerizer.errors import (
    ContainerError,
    DestroyFailed,
    DuplicateContainer,
    LaunchFailed,
)
from containerizer.images import ImageError, ImageStore
from containerizer.interface import (
    ContainerConfig,
    Containerizer,
    ContainerRunState,
    ContainerState,
    ContainerStatus,
    RecoveryResult,
    check_container_id,
)
from containerizer.records import ContainerRecords
from containerizer.statistics import ResourceStatistics
from containerizer.termination import ContainerTermination, TerminationReason

log = structlog.get_logger("containerizer.oci")

SANDBOX_MOUNT = "/mnt/mesos/sandbox"  # Mesos's path for the sandbox inside a container
CGROUP_PARENT = "corral"  # cgroupsPath is corral/<container id>, as cgroups.py lays it out
CPU_PERIOD_US = 100_000
START_TIMEOUT = 10.0  # seconds runc may take to report the container running
KILL_TIMEOUT = 5.0  # seconds the container may take to vanish after SIGKILL
_DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class RuntimeMissing(Exception):
    """The OCI runtime (runc) is not installed on this agent."""


@dataclass(frozen=True)
class OciContainerConfig(ContainerConfig):
    """A :class:`ContainerConfig` that names the image to run in (Mesos's
    ``TaskInfo.container.mesos.image``) and optionally a pids limit."""

    image: str = ""
    max_pids: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.image:
            raise ValueError("an OCI container needs an image: name one from the image store")


@dataclass(eq=False)
class _Container:
    """One container's record; touched only on the containerizer's loop."""

    container_id: str
    pid: int  # the container's init, as the host sees it (0 once recovered ended)
    start_time: float
    sandbox: Path
    bundle: Path
    resources: dict[str, float]
    ended: asyncio.Future[ContainerTermination]
    popen: subprocess.Popen | None = None  # the foreground runc; None when recovered
    pidfd: int | None = None  # on runc (ours) or on the init (recovered), while watched
    state: ContainerRunState = ContainerRunState.RUNNING
    destruction: asyncio.Task[ContainerTermination] | None = None
    killed: str | None = None  # the signal name destroy sent last, if any

    def status(self) -> ContainerStatus:
        return ContainerStatus(
            container_id=self.container_id,
            pid=self.pid,
            start_time=self.start_time,
            sandbox=self.sandbox,
            state=self.state,
            termination=self.ended.result() if self.ended.done() else None,
        )


class OciContainerizer(ContainerRecords, Containerizer):
    """Containers run by ``runc`` from images in ``<work_dir>/images``.

    ``runc_root`` is runc's state directory (``runc --root``); give each agent its own so that
    ``recover`` finds exactly its containers. Raises :class:`RuntimeMissing` when runc is not
    installed.
    """

    def __init__(self, work_dir: Path, runc_root: Path | None = None, runc: str = "runc") -> None:
        found = shutil.which(runc)
        if found is None:
            raise RuntimeMissing(
                f"the OCI containerizer needs the runc binary ({runc!r} is not on PATH "
                f"{os.environ.get('PATH', '')!r}); install it with 'apt-get install runc' "
                "(Debian), or run tasks without an image"
            )
        self.work_dir = Path(work_dir)
        self.images = ImageStore(self.work_dir / "images")
        self.runc = found
        self.runc_root = Path(runc_root) if runc_root else self.work_dir / "runc"
        self._init_records()

    # -- the interface ---------------------------------------------------------------------

    async def launch(self, container_id: str, config: ContainerConfig) -> ContainerStatus:
        loop = self._bind_loop()
        check_container_id(container_id)
        if not isinstance(config, OciContainerConfig):
            raise LaunchFailed(
                container_id,
                f"container {container_id}: the OCI containerizer runs images; give an "
                "OciContainerConfig naming one (tasks without an image go to the posix "
                "containerizer)",
                config.command,
                None,
            )
        if container_id in self._containers or container_id in self._launching:
            raise DuplicateContainer(
                container_id,
                f"container {container_id} already exists: container ids are never reused; "
                "launch with a fresh id",
            )
        self._launching.add(container_id)
        try:
            popen, pidfd, bundle = await loop.run_in_executor(
                None, self._start, container_id, config
            )
            try:
                pid, start_time = await self._wait_running(container_id, popen, pidfd)
            except BaseException:
                os.close(pidfd)
                raise
        except BaseException:
            self._launching.discard(container_id)
            await loop.run_in_executor(None, self._cleanup, container_id)
            raise
        self._launching.discard(container_id)
        container = _Container(
            container_id=container_id,
            pid=pid,
            start_time=start_time,
            sandbox=config.sandbox,
            bundle=bundle,
            resources=dict(config.resources),
            ended=loop.create_future(),
            popen=popen,
            pidfd=pidfd,
        )
        self._containers[container_id] = container
        loop.add_reader(container.pidfd, self._reap, container)
        log.info(
            "container_launched",
            container_id=container_id,
            image=config.image,
            pid=pid,
            command=config.command,
            sandbox=str(config.sandbox),
        )
        return container.status()

    async def wait(self, container_id: str) -> ContainerTermination:
        self._bind_loop()
        return await asyncio.shield(self._get(container_id).ended)

    async def destroy(self, container_id: str, grace_seconds: float = 3.0) -> ContainerTermination:
        self._bind_loop()
        if grace_seconds < 0:
            raise ValueError(f"grace_seconds must be >= 0, got {grace_seconds}")
        container = self._get(container_id)
        if container.destruction is None:
            container.destruction = asyncio.ensure_future(self._destroy(container, grace_seconds))
        return await asyncio.shield(container.destruction)

    async def update(self, container_id: str, resources: Mapping[str, float]) -> None:
        loop = self._bind_loop()
        container = self._get(container_id)
        if container.state is not ContainerRunState.RUNNING:
            raise ContainerError(
                container_id,
                f"cannot update container {container_id}: it is {container.state.value}, "
                "not RUNNING",
            )
        limits = _linux_resources(resources, None)
        limits.pop("devices", None)
        resources_file = container.bundle / "resources.json"
        resources_file.write_text(json.dumps(limits))
        await loop.run_in_executor(
            None, self._runc, container_id, "update", "--resources", str(resources_file)
        )
        container.resources = dict(resources)
        log.info("container_updated", container_id=container_id, resources=container.resources)

    async def usage(self, container_id: str) -> ResourceStatistics:
        loop = self._bind_loop()
        container = self._get(container_id)
        if container.state is ContainerRunState.TERMINATED:
            raise ContainerError(
                container_id, f"container {container_id} has terminated: it has no usage left"
            )
        output = await loop.run_in_executor(None, self._runc, container_id, "events", "--stats")
        return _statistics(json.loads(output), container.resources)

    async def run_inside(
        self,
        container_id: str,
        command: str | Sequence[str],
        environment: Mapping[str, str],
        timeout: float | None,
        user: str | None = None,
    ) -> int:
        """``runc exec``: the command joins the container's namespaces and cgroups, in its
        root filesystem, with the sandbox's mount as working directory."""
        loop = self._bind_loop()
        container = self._get(container_id)
        if container.state is not ContainerRunState.RUNNING:
            raise ContainerError(
                container_id,
                f"container {container_id} is {container.state.value}: nothing runs in it to "
                "run a command next to",
            )
        argv = ["/bin/sh", "-c", command] if isinstance(command, str) else list(command)
        runc = [self.runc, "--root", str(self.runc_root), "exec", "--cwd", SANDBOX_MOUNT]
        if user is not None:  # runc takes ids: the agent's account of that name
            try:
                entry = pwd.getpwnam(user)
            except KeyError:
                raise ContainerError(
                    container_id, f"user {user!r} does not exist on this agent"
                ) from None
            runc += ["--user", f"{entry.pw_uid}:{entry.pw_gid}"]
        for name, value in environment.items():
            runc += ["--env", f"{name}={value}"]
        runc += [container_id, *argv]
        return await inside.run(loop, runc, {}, container.sandbox, timeout)

    def _forgotten(self, container_id: str) -> None:
        self._cleanup(container_id)

    async def recover(self, known: Sequence[ContainerState]) -> RecoveryResult:
        loop = self._bind_loop()
        if self._recovered or self._containers or self._launching:
            raise RuntimeError(
                "recover() runs once, on a fresh containerizer, before any launch; "
                "make a new OciContainerizer to recover again"
            )
        self._recovered = True
        listed = await loop.run_in_executor(None, self._list)
        running: set[str] = set()
        ended: dict[str, ContainerTermination] = {}
        for state in known:
            check_container_id(state.container_id)
            info = listed.pop(state.container_id, None)
            if info is not None and self._reattach(loop, state, info):
                running.add(state.container_id)
                continue
            termination = ContainerTermination(
                status=None,
                message=f"container ended while no agent watched it (pid {state.pid}); "
                "its exit status is unknown",
            )
            record = self._record(
                loop, state.container_id, state.pid, state.start_time, state.sandbox, None
            )
            record.state = ContainerRunState.TERMINATED
            record.ended.set_result(termination)
            ended[state.container_id] = termination
        orphans = set()
        for container_id, info in listed.items():
            sandbox = self._sandbox_of(container_id)
            state = ContainerState(container_id, int(info.get("pid") or 0), 0.0, sandbox)
            if self._reattach(loop, state, info):
                orphans.add(container_id)
            else:
                await loop.run_in_executor(None, self._cleanup, container_id)
        log.info(
            "containers_recovered",
            running=sorted(running),
            ended=sorted(ended),
            orphans=sorted(orphans),
        )
        return RecoveryResult(frozenset(running), ended, frozenset(orphans))

    # -- inside ----------------------------------------------------------------------------

    def _bundle(self, container_id: str) -> Path:
        return self.work_dir / "containers" / container_id

    def _start(
        self, container_id: str, config: OciContainerConfig
    ) -> tuple[subprocess.Popen, int, Path]:
        """Provision the image, write the bundle, start ``runc run`` and open a pidfd on it
        (before anything may reap it). Runs in an executor."""
        try:
            lower = self.images.provision(config.image)
        except ImageError as error:
            raise LaunchFailed(
                container_id, f"container {container_id}: {error}", config.command, None
            ) from error
        bundle = self._bundle(container_id)
        rootfs = bundle / "rootfs"
        try:
            for name in ("rootfs", "upper", "work"):
                (bundle / name).mkdir(parents=True, exist_ok=True)
            config.sandbox.mkdir(parents=True, exist_ok=True)
            _run(
                [
                    "mount",
                    "-t",
                    "overlay",
                    "overlay",
                    "-o",
                    f"lowerdir={lower},upperdir={bundle / 'upper'},workdir={bundle / 'work'}",
                    str(rootfs),
                ],
            )
            spec = build_spec(config, rootfs, container_id)
            (bundle / "config.json").write_text(json.dumps(spec, indent=1))
            self.runc_root.mkdir(parents=True, exist_ok=True)
            with (
                open(config.sandbox / "stdout", "ab") as stdout,
                open(config.sandbox / "stderr", "ab") as stderr,
            ):
                popen = subprocess.Popen(
                    [
                        self.runc,
                        "--root",
                        str(self.runc_root),
                        "run",
                        "--bundle",
                        str(bundle),
                        container_id,
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=stdout,
                    stderr=stderr,
                    start_new_session=True,
                    close_fds=True,
                )
        except (OSError, subprocess.CalledProcessError) as error:
            raise LaunchFailed(
                container_id,
                f"container {container_id}: cannot prepare or start its bundle {bundle}: "
                f"{error} {getattr(error, 'stderr', None) or ''}".rstrip(),
                config.command,
                error if isinstance(error, OSError) else None,
            ) from error
        return popen, os.pidfd_open(popen.pid), bundle

    async def _wait_running(
        self, container_id: str, popen: subprocess.Popen, pidfd: int
    ) -> tuple[int, float]:
        """Poll ``runc state`` until the init runs; its pid and start time. A container that
        ends at once (``true``) may never be seen running: then runc's own pid stands in."""
        assert self._loop is not None
        deadline = self._loop.time() + START_TIMEOUT
        delay = 0.002
        while self._loop.time() < deadline:
            state = await self._loop.run_in_executor(None, self._state, container_id)
            if state is not None and state.get("status") == "running" and state.get("pid"):
                pid = int(state["pid"])
                with contextlib.suppress(psutil.Error):
                    return pid, psutil.Process(pid).create_time()
            runc_ended = bool(select.select([pidfd], [], [], 0)[0])  # without reaping it
            if runc_ended or (state or {}).get("status") == "stopped":
                # Ended already (or failed to start): the reaper reports its status.
                return popen.pid, time.time()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)
        popen.kill()
        popen.wait()
        raise LaunchFailed(
            container_id,
            f"container {container_id}: runc did not report it running within "
            f"{START_TIMEOUT} s; see the sandbox's stderr",
            None,
            None,
        )

    def _reap(self, container: _Container) -> None:
        """The watched process (runc, or a recovered init) ended: record the termination."""
        assert self._loop is not None and container.pidfd is not None
        self._loop.remove_reader(container.pidfd)
        status: int | None = None
        if container.popen is not None:
            info = os.waitid(os.P_PIDFD, container.pidfd, os.WEXITED)
            assert info is not None
            code = info.si_status if info.si_code == os.CLD_EXITED else 128 + info.si_status
            container.popen.returncode = code
            status = (code - 128) & 0x7F if 128 < code <= 192 else (code & 0xFF) << 8
        os.close(container.pidfd)
        container.pidfd = None
        reason, message = None, ""
        if container.killed:
            message = f"destroyed on request ({container.killed})"
        elif status is not None and os.WIFSIGNALED(status) and os.WTERMSIG(status) == 9:
            mem = container.resources.get("mem")
            if mem is not None:
                reason = TerminationReason.CONTAINER_LIMITATION_MEMORY
                message = f"killed by SIGKILL under its memory limit of {mem:g} MB (OOM)"
        if status is None:
            message = (message + "; " if message else "") + "exit status unknown (recovered)"
        termination = ContainerTermination(
            status=status, reason=reason, message=message, destroyed=container.killed is not None
        )
        if container.state is ContainerRunState.RUNNING:
            container.state = ContainerRunState.TERMINATED
        container.ended.set_result(termination)
        log.info(
            "container_ended",
            container_id=container.container_id,
            exit_code=termination.exit_code,
            signal=termination.signal,
            reason=reason,
            destroyed=termination.destroyed,
        )

    async def _destroy(self, container: _Container, grace_seconds: float) -> ContainerTermination:
        assert self._loop is not None
        loop = self._loop
        if container.state is ContainerRunState.RUNNING:
            container.state = ContainerRunState.DESTROYING
        if not container.ended.done():
            log.info("container_destroying", container_id=container.container_id)
            for signum, timeout in (
                (signal.SIGTERM, grace_seconds),
                (signal.SIGKILL, KILL_TIMEOUT),
            ):
                container.killed = signum.name
                await loop.run_in_executor(None, self._kill, container.container_id, signum)
                try:
                    async with asyncio.timeout(timeout):
                        await asyncio.shield(container.ended)
                    break
                except TimeoutError:
                    continue
            if not container.ended.done():
                raise DestroyFailed(
                    container.container_id,
                    f"container {container.container_id} still runs {KILL_TIMEOUT} s after "
                    "SIGKILL; inspect it with 'runc --root "
                    f"{self.runc_root} state {container.container_id}'",
                )
        await loop.run_in_executor(None, self._cleanup, container.container_id)
        container.state = ContainerRunState.TERMINATED
        return container.ended.result()

    def _kill(self, container_id: str, signum: int) -> None:
        """Signal every process of the container (``runc kill --all``); gone is fine."""
        subprocess.run(
            [
                self.runc,
                "--root",
                str(self.runc_root),
                "kill",
                "--all",
                container_id,
                signal.Signals(signum).name.removeprefix("SIG"),
            ],
            capture_output=True,
            check=False,
        )

    def _cleanup(self, container_id: str) -> None:
        """Delete runc's container, unmount the overlay, remove the bundle. Idempotent."""
        subprocess.run(
            [self.runc, "--root", str(self.runc_root), "delete", "--force", container_id],
            capture_output=True,
            check=False,
        )
        bundle = self._bundle(container_id)
        rootfs = bundle / "rootfs"
        if os.path.ismount(rootfs):
            _run(["umount", "--lazy", str(rootfs)])
        shutil.rmtree(bundle, ignore_errors=True)

    def _runc(self, container_id: str, *args: str) -> str:
        """Run a runc subcommand on the container; its stdout, or ContainerError."""
        command = [self.runc, "--root", str(self.runc_root), args[0], *args[1:], container_id]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise ContainerError(
                container_id,
                f"container {container_id}: {' '.join(command)} failed "
                f"(rc {result.returncode}): {result.stderr.strip()}",
            )
        return result.stdout

    def _state(self, container_id: str) -> dict | None:
        result = subprocess.run(
            [self.runc, "--root", str(self.runc_root), "state", container_id],
            capture_output=True,
            text=True,
            check=False,
        )
        return json.loads(result.stdout) if result.returncode == 0 else None

    def _list(self) -> dict[str, dict]:
        if not self.runc_root.is_dir():
            return {}
        result = subprocess.run(
            [self.runc, "--root", str(self.runc_root), "list", "--format", "json"],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0 or not result.stdout.strip():
            return {}
        return {entry["id"]: entry for entry in json.loads(result.stdout) or []}

    def _record(
        self,
        loop: asyncio.AbstractEventLoop,
        container_id: str,
        pid: int,
        start_time: float,
        sandbox: Path,
        pidfd: int | None,
    ) -> _Container:
        container = _Container(
            container_id=container_id,
            pid=pid,
            start_time=start_time,
            sandbox=sandbox,
            bundle=self._bundle(container_id),
            resources={},
            ended=loop.create_future(),
            pidfd=pidfd,
        )
        self._containers[container_id] = container
        return container

    def _sandbox_of(self, container_id: str) -> Path:
        """An orphan's sandbox, read back from its bundle's bind mount (``/`` if unreadable)."""
        try:
            spec = json.loads((self._bundle(container_id) / "config.json").read_text())
            return Path(
                next(m["source"] for m in spec["mounts"] if m["destination"] == SANDBOX_MOUNT)
            )
        except (OSError, ValueError, KeyError, StopIteration):
            return Path("/")

    def _reattach(self, loop: asyncio.AbstractEventLoop, state: ContainerState, info: dict) -> bool:
        """Watch a running container found in runc's state (its init, through a pidfd)."""
        pid = int(info.get("pid") or 0)
        if info.get("status") not in ("running", "paused") or pid <= 0:
            return False
        try:
            pidfd = os.pidfd_open(pid)
            start_time = psutil.Process(pid).create_time()
        except (OSError, psutil.Error):
            return False
        container = self._record(loop, state.container_id, pid, start_time, state.sandbox, pidfd)
        loop.add_reader(pidfd, self._reap, container)
        return True


def build_spec(config: OciContainerConfig, rootfs: Path, container_id: str) -> dict:
    """The bundle's ``config.json`` (OCI runtime spec 1.0), from ``runc spec``'s shape."""
    environment = {"PATH": _DEFAULT_PATH, **config.environment, "MESOS_SANDBOX": SANDBOX_MOUNT}
    capabilities = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": list(config.argv),
            "env": [f"{key}={value}" for key, value in environment.items()],
            "cwd": SANDBOX_MOUNT,
            "capabilities": {
                kind: capabilities for kind in ("bounding", "effective", "permitted", "ambient")
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": str(rootfs), "readonly": False},
        "hostname": container_id[:63],
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {
                "destination": "/dev",
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
            },
            {
                "destination": "/dev/pts",
                "type": "devpts",
                "source": "devpts",
                "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"],
            },
            {
                "destination": "/dev/shm",
                "type": "tmpfs",
                "source": "shm",
                "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
            },
            {
                "destination": "/dev/mqueue",
                "type": "mqueue",
                "source": "mqueue",
                "options": ["nosuid", "noexec", "nodev"],
            },
            {
                "destination": "/sys",
                "type": "sysfs",
                "source": "sysfs",
                "options": ["nosuid", "noexec", "nodev", "ro"],
            },
            {
                "destination": "/sys/fs/cgroup",
                "type": "cgroup",
                "source": "cgroup",
                "options": ["nosuid", "noexec", "nodev", "relatime", "ro"],
            },
            {
                "destination": SANDBOX_MOUNT,
                "type": "bind",
                "source": str(config.sandbox),
                "options": ["rbind", "rw"],
            },
            {
                "destination": "/etc/resolv.conf",
                "type": "bind",
                "source": "/etc/resolv.conf",
                "options": ["bind", "ro"],
            },
        ],
        "linux": {
            "resources": _linux_resources(config.resources, config.max_pids),
            "cgroupsPath": f"{CGROUP_PARENT}/{container_id}",
            # No "network" namespace: the task keeps the host's network (see the module doc).
            "namespaces": [{"type": kind} for kind in ("pid", "ipc", "uts", "mount")],
            "maskedPaths": [
                "/proc/acpi",
                "/proc/asound",
                "/proc/kcore",
                "/proc/keys",
                "/proc/latency_stats",
                "/proc/timer_list",
                "/proc/timer_stats",
                "/proc/sched_debug",
                "/sys/firmware",
                "/proc/scsi",
            ],
            "readonlyPaths": [
                "/proc/bus",
                "/proc/fs",
                "/proc/irq",
                "/proc/sys",
                "/proc/sysrq-trigger",
            ],
        },
    }


def _linux_resources(resources: Mapping[str, float], max_pids: int | None) -> dict:
    """``linux.resources`` from Mesos scalars: cpus -> shares + CFS quota, mem (MB) -> limit."""
    limits: dict[str, object] = {"devices": [{"allow": False, "access": "rwm"}]}
    cpus = resources.get("cpus")
    if cpus is not None and cpus > 0:
        limits["cpu"] = {
            "shares": max(2, int(cpus * 1024)),
            "quota": max(1000, int(cpus * CPU_PERIOD_US)),
            "period": CPU_PERIOD_US,
        }
    mem = resources.get("mem")
    if mem is not None and mem > 0:
        limit = int(mem * 1024 * 1024)
        limits["memory"] = {"limit": limit, "swap": limit}
    if max_pids is not None:
        limits["pids"] = {"limit": max_pids}
    return limits


def _statistics(events: Mapping, resources: Mapping[str, float]) -> ResourceStatistics:
    """``runc events --stats`` JSON (``{"type": "stats", "data": {...}}``) as Mesos's shape."""
    data = events.get("data") or {}
    cpu = data.get("cpu") or {}
    usage = cpu.get("usage") or {}
    throttling = cpu.get("throttling") or {}
    memory = data.get("memory") or {}
    raw = memory.get("raw") or {}
    pids = data.get("pids") or {}
    ns = 1e9
    limit = (memory.get("usage") or {}).get("limit")
    return ResourceStatistics(
        timestamp=time.time(),
        processes=pids.get("current"),
        cpus_user_time_secs=usage.get("user", 0) / ns if usage else None,
        cpus_system_time_secs=usage.get("kernel", 0) / ns if usage else None,
        cpus_limit=resources.get("cpus"),
        cpus_nr_periods=throttling.get("periods"),
        cpus_nr_throttled=throttling.get("throttledPeriods"),
        cpus_throttled_time_secs=throttling.get("throttledTime", 0) / ns if throttling else None,
        mem_total_bytes=(memory.get("usage") or {}).get("usage"),
        mem_limit_bytes=limit if limit and limit < 1 << 62 else None,
        mem_rss_bytes=raw.get("total_rss"),
        mem_anon_bytes=raw.get("total_rss"),
        mem_cache_bytes=raw.get("total_cache"),
        mem_file_bytes=raw.get("total_cache"),
        mem_mapped_file_bytes=raw.get("total_mapped_file"),
        mem_swap_bytes=raw.get("total_swap"),
        mem_unevictable_bytes=raw.get("total_unevictable"),
    )


def _run(command: list[str]) -> None:
    subprocess.run(command, capture_output=True, text=True, check=True)
