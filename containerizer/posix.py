"""The posix containerizer: each container is a child process in a session of its own.

No isolation and no limits (issue 5 adds cgroups and namespaces): it starts the command in
its sandbox, watches it, kills its whole session on destroy and measures it with psutil.

Reaping: each main process is watched through a pidfd (``os.pidfd_open``, Linux >= 5.3)
registered with ``loop.add_reader``. The pidfd turns readable when the process ends, and
``os.waitid(P_PIDFD, ...)`` then reaps exactly that child and yields its status. This works
on whichever thread runs the loop (the runtime's loop runs in a background thread, where
asyncio's child watchers are awkward), needs no extra thread per container, no SIGCHLD
handler, never waits on "any child" (so it cannot steal another library's children), and
works as well with uvloop. The pidfd also pins the process: a recovered pid cannot be
confused with a later process that reuses it. Processes are started with
``subprocess.Popen`` in the loop's executor (fork/exec blocks), without ``preexec_fn`` (the
Mesos containerizer, a subclass, adds one that only joins cgroups and sets rlimits).

Timing (the destroy grace period, polling for a session to empty) is real time: these are
real processes, whatever the runtime clock says.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import pwd
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import psutil
import structlog

from containerizer import inside, session
from containerizer.errors import (
    ContainerError,
    DestroyFailed,
    DuplicateContainer,
    LaunchFailed,
)
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
from containerizer.termination import ContainerTermination

log = structlog.get_logger("containerizer.posix")

KILL_TIMEOUT = 5.0  # seconds a session may take to vanish after SIGKILL before destroy fails
START_TIME_TOLERANCE = 0.005  # half a clock tick: start times are read in 1/100 s ticks
_POLL_FIRST, _POLL_MAX = 0.005, 0.1  # seconds between checks that a session has emptied

EXIT_STATUS_FILE = "exit_status"
# Run as ``sh -c WRAPPER <status file> <argv...>``: runs argv, writes its exit status (the
# shell's $?, 128 + N for a death by signal N) to the file, then ends the same way the command
# did. The record outlives an agent that died meanwhile: the agent, no longer the parent,
# could not learn the status otherwise.
_EXIT_STATUS_WRAPPER = (
    '"$@"; s=$?; echo "$s" > "$0"; '
    'if [ "$s" -gt 128 ]; then kill -s "$(kill -l "$s")" $$ 2>/dev/null; fi; exit "$s"'
)
# Popen objects of detached, unreaped children, kept for the life of the process: a collected
# one would warn and have subprocess waitpid() its pid later, maybe after the pid was reused.
_DETACHED: list[subprocess.Popen] = []


@dataclass(eq=False)
class _Container:
    """One container's record; touched only on the containerizer's loop."""

    container_id: str
    pid: int  # the main process, also the session id (it called setsid)
    start_time: float
    sandbox: Path
    resources: dict[str, float]
    ended: asyncio.Future[ContainerTermination]  # resolved when the main process has ended
    popen: subprocess.Popen | None = None  # None when recovered: then not our child
    pidfd: int | None = None  # open while the main process is watched
    state: ContainerRunState = ContainerRunState.RUNNING
    destruction: asyncio.Task[ContainerTermination] | None = None
    grace_seconds: float | None = None
    escalated: bool = False  # SIGKILL was sent
    # Once the main process has ended and its session was seen empty, the session id may be
    # reused by an unrelated process: from then on the container has no processes.
    session_empty: bool = False

    def status(self) -> ContainerStatus:
        ended = self.ended.done()
        return ContainerStatus(
            container_id=self.container_id,
            pid=self.pid,
            start_time=self.start_time,
            sandbox=self.sandbox,
            state=self.state,
            termination=self.ended.result() if ended else None,
        )


class PosixContainerizer(ContainerRecords, Containerizer):
    """Containers as plain child processes, each in its own session.

    ``runtime_dir`` (optional, like Mesos's ``/var/run/mesos/containers``) is where each
    container's state and, once reaped, its termination are checkpointed: with it, a
    recovering containerizer knows how a container that ended before the agent went down
    ended, and finds orphans (containers the agent no longer knows).
    """

    def __init__(self, runtime_dir: Path | None = None) -> None:
        self.runtime_dir = None if runtime_dir is None else Path(runtime_dir)
        self._init_records()

    # -- the interface ---------------------------------------------------------------------

    async def launch(self, container_id: str, config: ContainerConfig) -> ContainerStatus:
        loop = self._bind_loop()
        check_container_id(container_id)
        if container_id in self._containers or container_id in self._launching:
            raise DuplicateContainer(
                container_id,
                f"container {container_id} already exists: container ids are never reused; "
                "launch with a fresh id",
            )
        self._launching.add(container_id)
        spawning = loop.run_in_executor(None, self._start, container_id, config)
        try:
            popen = await asyncio.shield(spawning)
        except asyncio.CancelledError:
            # fork/exec cannot be called back: track what it starts, and destroy it at once.
            spawning.add_done_callback(
                lambda done: self._adopt_cancelled(container_id, config, done)
            )
            raise
        except BaseException:
            self._launching.discard(container_id)
            raise
        container = self._register(loop, container_id, config, popen)
        log.info(
            "container_launched",
            container_id=container_id,
            pid=popen.pid,
            command=config.command,
            sandbox=str(config.sandbox),
            user=config.user,
        )
        return container.status()

    async def wait(self, container_id: str) -> ContainerTermination:
        self._bind_loop()
        container = self._get(container_id)
        return await asyncio.shield(container.ended)

    async def destroy(self, container_id: str, grace_seconds: float = 3.0) -> ContainerTermination:
        self._bind_loop()
        if grace_seconds < 0:
            raise ValueError(f"grace_seconds must be >= 0, got {grace_seconds}")
        container = self._get(container_id)
        return await asyncio.shield(self._start_destruction(container, grace_seconds))

    async def update(self, container_id: str, resources: Mapping[str, float]) -> None:
        self._bind_loop()
        container = self._get(container_id)
        if container.state is not ContainerRunState.RUNNING:
            raise ContainerError(
                container_id,
                f"cannot update container {container_id}: it is {container.state.value}, "
                "not RUNNING",
            )
        container.resources = dict(resources)
        log.info(
            "container_updated",
            container_id=container_id,
            resources=container.resources,
            enforced=False,
        )

    async def usage(self, container_id: str) -> ResourceStatistics:
        loop = self._bind_loop()
        container = self._get(container_id)
        pids = self._members(container)
        processes, threads, user, system, rss = await loop.run_in_executor(
            None, session.sample, pids
        )
        mem = container.resources.get("mem")
        return ResourceStatistics(
            timestamp=time.time(),
            processes=processes,
            threads=threads,
            cpus_user_time_secs=user,
            cpus_system_time_secs=system,
            cpus_limit=container.resources.get("cpus"),
            mem_rss_bytes=rss,
            mem_limit_bytes=None if mem is None else int(mem * 1024 * 1024),
        )

    async def run_inside(
        self,
        container_id: str,
        command: str | Sequence[str],
        environment: Mapping[str, str],
        timeout: float | None,
        user: str | None = None,
    ) -> int:
        """A process next to the container's (no isolation here): its sandbox, the
        environment given; the Mesos containerizer adds its cgroups and namespaces."""
        loop = self._bind_loop()
        container = self._get(container_id)
        if container.ended.done() or container.state is not ContainerRunState.RUNNING:
            raise ContainerError(
                container_id,
                f"container {container_id} is {container.state.value}: nothing runs in it to "
                "run a command next to",
            )
        argv = ("/bin/sh", "-c", command) if isinstance(command, str) else tuple(command)
        if not argv or not all(isinstance(arg, str) for arg in argv):
            raise ValueError(f"command {command!r} must be a shell string or a non-empty argv")
        argv, preexec = self._inside(container, argv)
        return await inside.run(loop, argv, environment, container.sandbox, timeout, preexec, user)

    def _inside(
        self, container: _Container, argv: Sequence[str]
    ) -> tuple[Sequence[str], Callable[[], None] | None]:
        """How a command is run inside ``container``: its argv, and what its child does
        before exec (a subclass joins cgroups and enters namespaces)."""
        return argv, None

    def _forgotten(self, container_id: str) -> None:
        if self.runtime_dir is not None:
            shutil.rmtree(self.runtime_dir / container_id, ignore_errors=True)

    async def recover(self, known: Sequence[ContainerState]) -> RecoveryResult:
        loop = self._bind_loop()
        if self._recovered or self._containers or self._launching:
            raise RuntimeError(
                "recover() runs once, on a fresh containerizer, before any launch; "
                "make a new PosixContainerizer to recover again"
            )
        checkpoints = self._read_checkpoints()
        running: set[str] = set()
        ended: dict[str, ContainerTermination] = {}
        orphans: set[str] = set()
        seen: set[str] = set()
        for state in known:  # all checked before anything changes
            check_container_id(state.container_id)
            if state.container_id in seen:
                raise DuplicateContainer(
                    state.container_id,
                    f"container {state.container_id} is listed twice in the known containers; "
                    "pass each container once",
                )
            seen.add(state.container_id)
        self._recovered = True
        for state in known:
            checkpoint = checkpoints.pop(state.container_id, None)
            termination = checkpoint[1] if checkpoint else None
            container = None if termination else self._reattach(loop, state)
            if container is not None:
                running.add(state.container_id)
                continue
            if termination is None:
                termination = self._recorded_termination(
                    state.container_id,
                    f"process {state.pid} ended while no containerizer watched it (agent down)",
                )
            self._record_ended(loop, state, termination)
            ended[state.container_id] = termination
        for container_id, (state, termination) in checkpoints.items():
            if termination is None and self._reattach(loop, state) is not None:
                orphans.add(container_id)
            else:
                shutil.rmtree(self.runtime_dir / container_id, ignore_errors=True)
        log.info(
            "containers_recovered",
            running=sorted(running),
            ended=sorted(ended),
            orphans=sorted(orphans),
        )
        return RecoveryResult(frozenset(running), ended, frozenset(orphans))

    # -- beyond the interface --------------------------------------------------------------

    def detach(self) -> None:
        """Stop watching every container without killing any (an agent shutting down,
        leaving its containers to a recovering successor). The records are dropped."""
        for container in self._containers.values():
            self._unwatch(container)
            if container.popen is not None and container.popen.returncode is None:
                _DETACHED.append(container.popen)
            if not container.ended.done():  # fail waiters rather than leave them hanging
                container.ended.set_exception(
                    ContainerError(
                        container.container_id,
                        f"the containerizer was detached before container "
                        f"{container.container_id} ended; recover it with a new containerizer",
                    )
                )
                container.ended.exception()  # its waiters see it; nothing to log at exit
        self._containers.clear()
        log.info("containerizer_detached")

    # -- inside ----------------------------------------------------------------------------

    def _register(
        self,
        loop: asyncio.AbstractEventLoop,
        container_id: str,
        config: ContainerConfig,
        popen: subprocess.Popen,
    ) -> _Container:
        """Watch a freshly started main process; on failure kill it rather than lose it."""
        self._launching.discard(container_id)
        try:
            # The child is unreaped, so its pid is still ours to open and read.
            pidfd = os.pidfd_open(popen.pid)
            try:
                start_time = psutil.Process(popen.pid).create_time()
            except BaseException:
                os.close(pidfd)
                raise
        except (OSError, psutil.Error) as error:
            os.killpg(popen.pid, signal.SIGKILL)
            popen.wait()
            raise LaunchFailed(
                container_id,
                f"container {container_id}: started {list(config.argv)!r} but could not "
                f"watch it ({error}), so it was killed; check the agent's open-file limit",
                config.command,
                error if isinstance(error, OSError) else None,
            ) from error
        container = _Container(
            container_id=container_id,
            pid=popen.pid,
            start_time=start_time,
            sandbox=config.sandbox,
            resources=dict(config.resources),
            ended=loop.create_future(),
            popen=popen,
            pidfd=pidfd,
        )
        self._containers[container_id] = container
        loop.add_reader(pidfd, self._reap, container)
        self._checkpoint_state(container)
        return container

    def _adopt_cancelled(
        self, container_id: str, config: ContainerConfig, spawning: asyncio.Future
    ) -> None:
        """A launch was cancelled while its process started: destroy what started."""
        if spawning.cancelled() or spawning.exception() is not None:
            self._launching.discard(container_id)
            if not spawning.cancelled():
                log.warning(
                    "container_launch_cancelled",
                    container_id=container_id,
                    error=str(spawning.exception()),
                )
            return
        assert self._loop is not None
        try:
            container = self._register(self._loop, container_id, config, spawning.result())
        except LaunchFailed as error:
            log.warning("container_launch_cancelled", container_id=container_id, error=str(error))
            return
        log.info("container_launch_cancelled", container_id=container_id, pid=container.pid)
        self._start_destruction(container, 0.0)

    def _start_destruction(
        self, container: _Container, grace_seconds: float
    ) -> asyncio.Task[ContainerTermination]:
        """The container's one destruction task, started on first request (or again after
        a failed one)."""
        previous = container.destruction
        if previous is None or (
            previous.done() and (previous.cancelled() or previous.exception() is not None)
        ):
            assert self._loop is not None
            container.grace_seconds = grace_seconds
            container.destruction = self._loop.create_task(
                self._destroy(container, grace_seconds), name=f"destroy {container.container_id}"
            )
            container.destruction.add_done_callback(_log_destroy_failure)
        return container.destruction

    def _reap(self, container: _Container) -> None:
        """The main process's pidfd is readable: it has ended. Runs on the loop."""
        assert container.pidfd is not None
        try:
            info = os.waitid(os.P_PIDFD, container.pidfd, os.WEXITED | os.WNOHANG)
        except ChildProcessError:
            info = None  # recovered: not our child, its parent (init) reaps it
            reaped = False
        else:
            if info is None:
                return  # spurious wake-up: not ended yet
            reaped = True
        self._unwatch(container)
        details = {"destroyed": container.destruction is not None}
        if container.destruction is not None:
            how = "SIGKILL" if container.escalated else "SIGTERM"
            details["message"] = (
                f"destroyed on request ({how}, grace period {container.grace_seconds} s)"
            )
        if reaped:
            termination = ContainerTermination.from_siginfo(info.si_code, info.si_status, **details)
            if container.popen is not None:  # keep Popen from ever waiting on this pid again
                container.popen.returncode = termination.exit_code or -(termination.signal or 0)
        else:
            recorded = self._recorded_termination(
                container.container_id, str(details.get("message") or "ended")
            )
            termination = replace(recorded, destroyed=bool(details["destroyed"]))
        termination = self._terminated(container, termination)
        if container.state is ContainerRunState.RUNNING:
            container.state = ContainerRunState.TERMINATED
        container.ended.set_result(termination)
        self._checkpoint_termination(container, termination)
        log.info(
            "container_ended",
            container_id=container.container_id,
            pid=container.pid,
            status=termination.status,
            exit_code=termination.exit_code,
            signal=termination.signal,
            destroyed=termination.destroyed,
        )

    def _start(self, container_id: str, config: ContainerConfig) -> subprocess.Popen:
        """Start the main process (runs in an executor); a subclass wraps or prepares it."""
        return _spawn(container_id, config, exit_status=self._exit_status_path(container_id))

    def _exit_status_path(self, container_id: str) -> Path | None:
        """Where the container's wrapper records its command's exit status (with a runtime
        dir only): the one witness of an end that happens while no agent is its parent."""
        if self.runtime_dir is None:
            return None
        directory = self.runtime_dir / container_id
        directory.mkdir(parents=True, exist_ok=True)
        return directory / EXIT_STATUS_FILE

    def _recorded_termination(self, container_id: str, message: str) -> ContainerTermination:
        """How a container that ended unwatched ended, from its wrapper's record if any."""
        status = None
        if self.runtime_dir is not None:
            status = read_exit_status(self.runtime_dir / container_id / EXIT_STATUS_FILE)
        if status is None:
            return ContainerTermination(status=None, message=f"{message}; exit status unknown")
        return ContainerTermination(status=status, message=message)

    def _terminated(
        self, container: _Container, termination: ContainerTermination
    ) -> ContainerTermination:
        """The main process was reaped (on the loop): a subclass may add a reason here."""
        return termination

    def _unwatch(self, container: _Container) -> None:
        if container.pidfd is not None:
            assert self._loop is not None
            self._loop.remove_reader(container.pidfd)
            os.close(container.pidfd)
            container.pidfd = None

    async def _destroy(self, container: _Container, grace_seconds: float) -> ContainerTermination:
        if container.state is ContainerRunState.RUNNING:
            container.state = ContainerRunState.DESTROYING
        log.info("container_destroying", container_id=container.container_id, grace=grace_seconds)
        self._signal(container, signal.SIGTERM)
        if not await self._wait_gone(container, grace_seconds, resend=None):
            container.escalated = True
            log.info(
                "container_destroy_escalated",
                container_id=container.container_id,
                pids=self._members(container),
            )
            self._signal(container, signal.SIGKILL)
            if not await self._wait_gone(container, KILL_TIMEOUT, resend=signal.SIGKILL):
                left = self._members(container)
                raise DestroyFailed(
                    container.container_id,
                    f"container {container.container_id}: processes {left} still run "
                    f"{KILL_TIMEOUT} s after SIGKILL (stuck in the kernel?); "
                    "retrying destroy() may succeed, else inspect them with ps",
                )
        termination = await asyncio.shield(container.ended)
        container.state = ContainerRunState.TERMINATED
        log.info(
            "container_destroyed",
            container_id=container.container_id,
            signal=termination.signal,
            exit_code=termination.exit_code,
        )
        return termination

    def _signal(self, container: _Container, signum: int) -> None:
        """Signal the container's process group at once (while its leader is unreaped, the
        group id cannot be reused), then every other member of its session."""
        if container.popen is not None and container.pidfd is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(container.pid, signum)
        session.send_signal(self._members(container), container.pid, signum)

    def _members(self, container: _Container) -> list[int]:
        """Live processes of the container's session (the main process included)."""
        if container.session_empty:
            return []
        if container.pidfd is None:  # the main process is no longer pinned: is its id reused?
            try:
                leader = psutil.Process(container.pid)
                reused = abs(leader.create_time() - container.start_time) > START_TIME_TOLERANCE
            except psutil.Error:
                reused = False
            if reused:
                container.session_empty = True
                return []
        pids = session.members(container.pid)
        if not pids and container.ended.done():
            container.session_empty = True
        return pids

    async def _wait_gone(self, container: _Container, timeout: float, resend: int | None) -> bool:
        """Wait until the main process has ended and its session is empty; False on timeout."""
        assert self._loop is not None
        deadline = self._loop.time() + timeout
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(container.ended)
        except TimeoutError:
            return False
        delay = _POLL_FIRST
        while pids := self._members(container):
            if self._loop.time() >= deadline:
                return False
            if resend is not None:
                session.send_signal(pids, container.pid, resend)
            await asyncio.sleep(delay)
            delay = min(delay * 2, _POLL_MAX)
        return True

    def _reattach(
        self, loop: asyncio.AbstractEventLoop, state: ContainerState
    ) -> _Container | None:
        """Watch a recovered container's main process if it still runs as the same process."""
        try:
            pidfd = os.pidfd_open(state.pid)
        except ProcessLookupError:
            return None
        # With the pidfd open first, a matching start time proves it is the same process.
        try:
            process = psutil.Process(state.pid)
            alive = process.status() != psutil.STATUS_ZOMBIE
            same = abs(process.create_time() - state.start_time) <= START_TIME_TOLERANCE
        except psutil.Error:
            alive = same = False
        if not (alive and same):
            if alive:
                log.info("container_pid_reused", container_id=state.container_id, pid=state.pid)
            os.close(pidfd)
            return None
        container = _Container(
            container_id=state.container_id,
            pid=state.pid,
            start_time=state.start_time,
            sandbox=state.sandbox,
            resources={},
            ended=loop.create_future(),
            pidfd=pidfd,
        )
        self._containers[state.container_id] = container
        loop.add_reader(pidfd, self._reap, container)
        return container

    def _record_ended(
        self,
        loop: asyncio.AbstractEventLoop,
        state: ContainerState,
        termination: ContainerTermination,
    ) -> None:
        ended = loop.create_future()
        ended.set_result(termination)
        self._containers[state.container_id] = _Container(
            container_id=state.container_id,
            pid=state.pid,
            start_time=state.start_time,
            sandbox=state.sandbox,
            resources={},
            ended=ended,
            state=ContainerRunState.TERMINATED,
        )

    # -- checkpoints -----------------------------------------------------------------------

    def _checkpoint_state(self, container: _Container) -> None:
        state = ContainerState(
            container.container_id, container.pid, container.start_time, container.sandbox
        )
        self._write_checkpoint(container.container_id, "state.json", state.to_json())

    def _checkpoint_termination(
        self, container: _Container, termination: ContainerTermination
    ) -> None:
        self._write_checkpoint(container.container_id, "termination.json", termination.to_json())

    def _write_checkpoint(self, container_id: str, name: str, data: dict[str, object]) -> None:
        if self.runtime_dir is None:
            return
        directory = self.runtime_dir / container_id
        directory.mkdir(parents=True, exist_ok=True)
        temporary = directory / f".{name}.tmp"
        temporary.write_text(json.dumps(data))
        temporary.replace(directory / name)

    def _read_checkpoints(
        self,
    ) -> dict[str, tuple[ContainerState, ContainerTermination | None]]:
        found: dict[str, tuple[ContainerState, ContainerTermination | None]] = {}
        if self.runtime_dir is None or not self.runtime_dir.is_dir():
            return found
        for directory in self.runtime_dir.iterdir():
            try:
                state = ContainerState.from_json(json.loads((directory / "state.json").read_text()))
                path = directory / "termination.json"
                termination = (
                    ContainerTermination.from_json(json.loads(path.read_text()))
                    if path.exists()
                    else None
                )
            except (OSError, ValueError, KeyError, TypeError) as error:
                log.warning(
                    "container_checkpoint_unreadable", path=str(directory), error=repr(error)
                )
                continue
            found[directory.name] = (state, termination)
        return found


def _spawn(
    container_id: str,
    config: ContainerConfig,
    argv: Sequence[str] | None = None,
    preexec_fn: Callable[[], None] | None = None,
    exit_status: Path | None = None,
) -> subprocess.Popen:
    """Create the sandbox and start the command in a new session. Runs in an executor.

    ``argv`` replaces ``config.argv`` (a launcher's wrapped command); ``preexec_fn`` runs in
    the child before exec (joining cgroups, rlimits): it must only make system calls.
    """
    argv = config.argv if argv is None else tuple(argv)
    ids: dict[str, object] = {}
    if config.user is not None:
        if os.geteuid() != 0:
            raise LaunchFailed(
                container_id,
                f"container {container_id}: running as user {config.user!r} needs an agent "
                f"running as root (this one runs as uid {os.geteuid()}); drop 'user'",
                config.command,
                None,
            )
        try:
            entry = pwd.getpwnam(config.user)
        except KeyError:
            raise LaunchFailed(
                container_id,
                f"container {container_id}: user {config.user!r} does not exist on this agent",
                config.command,
                None,
            ) from None
        ids = {
            "user": entry.pw_uid,
            "group": entry.pw_gid,
            "extra_groups": os.getgrouplist(entry.pw_name, entry.pw_gid),
        }
    if exit_status is not None:
        _require_program(container_id, config, argv)
        if ids:  # the wrapper runs as the user: give it its file
            exit_status.touch()
            os.chown(exit_status, entry.pw_uid, entry.pw_gid)
        argv = ("/bin/sh", "-c", _EXIT_STATUS_WRAPPER, str(exit_status), *argv)
    try:
        config.sandbox.mkdir(parents=True, exist_ok=True)
        if ids:
            os.chown(config.sandbox, entry.pw_uid, entry.pw_gid)
        stdout = open(config.sandbox / "stdout", "ab")  # noqa: SIM115 - closed below
    except OSError as error:
        raise LaunchFailed(
            container_id,
            f"container {container_id}: cannot prepare sandbox {config.sandbox}: {error}",
            config.command,
            error,
        ) from error
    try:
        with stdout, open(config.sandbox / "stderr", "ab") as stderr:
            if ids:
                for path in (stdout.name, stderr.name):
                    os.chown(path, entry.pw_uid, entry.pw_gid)
            return subprocess.Popen(
                argv,
                cwd=config.sandbox,
                env=dict(config.environment),
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,
                close_fds=True,
                preexec_fn=preexec_fn,
                **ids,  # type: ignore[arg-type]
            )
    except OSError as error:
        path = os.get_exec_path(dict(config.environment))
        raise LaunchFailed(
            container_id,
            f"container {container_id}: cannot run {list(argv)!r}: {error.strerror} "
            f"(errno {error.errno}); expected {argv[0]!r} to be an executable path or on "
            f"the environment's PATH {os.pathsep.join(path)!r}",
            config.command,
            error,
        ) from error


def _require_program(container_id: str, config: ContainerConfig, argv: Sequence[str]) -> None:
    """Refuse a missing program at launch, as an unwrapped exec would (the wrapper's shell
    would start and then merely exit 127)."""
    path = os.pathsep.join(os.get_exec_path(dict(config.environment)))
    if shutil.which(argv[0], path=path) is None:
        raise LaunchFailed(
            container_id,
            f"container {container_id}: cannot run {list(argv)!r}: no such executable; "
            f"expected {argv[0]!r} to be an executable path or on the environment's PATH "
            f"{path!r}",
            config.command,
            FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), argv[0]),
        )


def read_exit_status(path: Path) -> int | None:
    """The waitpid-style status a wrapper recorded, or None (no record, or a torn one).

    The shell reports a death by signal N as 128 + N, and so does this record: an exit code
    above 128 reads as that signal. Commands that exit with such codes on purpose are rare, and
    the same ambiguity exists for any command run through a shell.
    """
    try:
        code = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    if not 0 <= code <= 255:
        return None
    if 128 < code < 128 + signal.NSIG:
        return code - 128  # WIFSIGNALED, WTERMSIG = code - 128
    return code << 8  # WIFEXITED, WEXITSTATUS = code


def _log_destroy_failure(task: asyncio.Task) -> None:
    """A destruction's failure is raised to every caller; log it too, so none goes unseen."""
    if not task.cancelled() and task.exception() is not None:
        log.error("container_destroy_failed", task=task.get_name(), exc_info=task.exception())
