"""The posix containerizer, with real processes.

The containerizer runs on an event loop in a background thread (uvloop, as the runtime's),
one test on a libprocess runtime's own loop and one on a plain asyncio loop in the main
thread. Every process a test starts is stopped by pid at teardown: the containers are
destroyed, then whatever is left in their sessions (and any recorded escapee) is SIGKILLed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import signal
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from containerizer import (
    ContainerConfig,
    ContainerError,
    ContainerRunState,
    ContainerState,
    ContainerTermination,
    DuplicateContainer,
    InvalidContainerId,
    LaunchFailed,
    PosixContainerizer,
    UnknownContainer,
)
from containerizer import session as sessions
from containerizer.posix import read_exit_status
from libprocess import Process, Runtime
from libprocess.runtime import new_event_loop

WAIT = 10.0  # wall-clock safety net for a coroutine on the loop thread; never hit when green
GRACE = 0.2  # destroy grace period in these tests

pytestmark = pytest.mark.skipif(
    not hasattr(os, "pidfd_open"), reason="the posix containerizer needs Linux >= 5.3 (pidfd)"
)


@pytest.fixture(scope="module")
def loop():
    """An event loop serving in a background thread, as the agent's runtime does."""
    loop = new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="test-loop", daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(WAIT)
    loop.close()


class Harness:
    """Runs coroutines on the loop thread and remembers every process to stop at the end."""

    def __init__(self, loop: asyncio.AbstractEventLoop, tmp_path: Path) -> None:
        self.loop = loop
        self.tmp_path = tmp_path
        self.launched: list[tuple[PosixContainerizer, str, int]] = []
        self.escapees: list[int] = []

    def run(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(WAIT)

    def config(self, command, **kwargs) -> ContainerConfig:
        kwargs.setdefault("sandbox", self.tmp_path / "sandbox")
        kwargs.setdefault("environment", {"PATH": os.environ.get("PATH", os.defpath)})
        return ContainerConfig(command=command, **kwargs)

    def launch(self, containerizer: PosixContainerizer, container_id: str, config):
        status = self.run(containerizer.launch(container_id, config))
        self.launched.append((containerizer, container_id, status.pid))
        return status

    def stop_everything(self) -> None:
        for containerizer, container_id, _ in self.launched:
            with contextlib.suppress(ContainerError, RuntimeError):
                self.run(containerizer.destroy(container_id, grace_seconds=0))
        for _, _, sid in self.launched:
            for pid in sessions.members(sid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        for pid in self.escapees:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def harness(loop, tmp_path):
    harness = Harness(loop, tmp_path)
    try:
        yield harness
    finally:
        harness.stop_everything()


def wait_for_file(path: Path, timeout: float = 5.0) -> str:
    """The file's text once it holds a full line (the command wrote it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().endswith("\n"):
            return path.read_text()
        time.sleep(0.005)
    raise AssertionError(f"{path} was not written within {timeout} s")


def gone(pid: int) -> bool:
    """No such process, or only a zombie left for its reaper."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


# -- launch and wait ---------------------------------------------------------------------------


def test_a_command_runs_in_its_sandbox_and_its_output_lands_in_the_sandbox_files(harness):
    containerizer = PosixContainerizer()
    config = harness.config("echo hi; echo oops >&2")
    status = harness.launch(containerizer, "c1", config)
    termination = harness.run(containerizer.wait("c1"))
    assert termination.status == 0
    assert (termination.exit_code, termination.signal, termination.destroyed) == (0, None, False)
    assert (config.sandbox / "stdout").read_text() == "hi\n"
    assert (config.sandbox / "stderr").read_text() == "oops\n"
    assert status.pid > 0
    assert containerizer.status("c1").state is ContainerRunState.TERMINATED
    assert containerizer.status("c1").termination == termination
    assert containerizer.containers() == set()


def test_an_exit_code_comes_back_and_wait_gives_the_same_answer_every_time(harness):
    containerizer = PosixContainerizer()
    harness.launch(containerizer, "c1", harness.config("exit 3"))
    first = harness.run(containerizer.wait("c1"))
    second = harness.run(containerizer.wait("c1"))
    assert first is second
    assert (first.exit_code, first.signal) == (3, None)
    assert first.describe() == "exited with status 3"


def test_concurrent_waiters_all_get_the_termination(harness):
    containerizer = PosixContainerizer()
    harness.launch(containerizer, "c1", harness.config("sleep 0.1; exit 4"))

    async def three_waiters():
        return await asyncio.gather(*(containerizer.wait("c1") for _ in range(3)))

    assert [t.exit_code for t in harness.run(three_waiters())] == [4, 4, 4]


def test_environment_is_exactly_the_given_one_and_the_sandbox_is_created_and_the_cwd(harness):
    containerizer = PosixContainerizer()
    sandbox = harness.tmp_path / "deep" / "er" / "sandbox"
    config = harness.config(
        'echo "$FOO"; echo "${HOME-unset}"; pwd',
        sandbox=sandbox,
        environment={"FOO": "bar baz"},
    )
    harness.launch(containerizer, "c1", config)
    assert harness.run(containerizer.wait("c1")).exit_code == 0
    assert (sandbox / "stdout").read_text() == f"bar baz\nunset\n{sandbox}\n"


def test_an_argv_command_is_executed_without_a_shell(harness):
    containerizer = PosixContainerizer()
    config = harness.config(["printf", "%s|", "a b", "$HOME"])
    harness.launch(containerizer, "c1", config)
    assert harness.run(containerizer.wait("c1")).exit_code == 0
    assert (config.sandbox / "stdout").read_text() == "a b|$HOME|"


@pytest.mark.skipif(os.geteuid() != 0, reason="running as another user needs root")
def test_a_command_runs_as_the_given_user(harness):
    nobody = pwd.getpwnam("nobody")
    containerizer = PosixContainerizer()
    config = harness.config("id -u; touch mine", user="nobody")
    harness.launch(containerizer, "c1", config)
    assert harness.run(containerizer.wait("c1")).exit_code == 0
    assert (config.sandbox / "stdout").read_text() == f"{nobody.pw_uid}\n"
    assert (config.sandbox / "mine").stat().st_uid == nobody.pw_uid


# -- bad requests ------------------------------------------------------------------------------


def test_a_missing_executable_is_a_launch_failure_naming_the_command_and_changes_nothing(
    harness,
):
    containerizer = PosixContainerizer()
    with pytest.raises(LaunchFailed) as failure:
        harness.launch(containerizer, "c1", harness.config(["no-such-program-xyz", "arg"]))
    assert "no-such-program-xyz" in str(failure.value)
    assert "PATH" in str(failure.value)
    assert isinstance(failure.value.cause, FileNotFoundError)
    assert failure.value.command == ("no-such-program-xyz", "arg")
    assert containerizer.containers() == set()
    with pytest.raises(UnknownContainer):
        containerizer.status("c1")
    # The id is still free.
    harness.launch(containerizer, "c1", harness.config("true"))
    assert harness.run(containerizer.wait("c1")).exit_code == 0


def test_a_sandbox_that_cannot_be_created_is_a_launch_failure(harness):
    blocker = harness.tmp_path / "file"
    blocker.write_text("")
    containerizer = PosixContainerizer()
    with pytest.raises(LaunchFailed, match="cannot prepare sandbox"):
        harness.launch(containerizer, "c1", harness.config("true", sandbox=blocker / "sandbox"))


def test_a_duplicate_container_id_is_refused_while_running_and_after(harness):
    containerizer = PosixContainerizer()
    harness.launch(containerizer, "c1", harness.config("sleep 30"))
    with pytest.raises(DuplicateContainer, match="c1 already exists"):
        harness.launch(containerizer, "c1", harness.config("true"))
    harness.run(containerizer.destroy("c1", grace_seconds=GRACE))
    with pytest.raises(DuplicateContainer):
        harness.launch(containerizer, "c1", harness.config("true"))


def test_unknown_and_invalid_container_ids_are_refused(harness):
    containerizer = PosixContainerizer()
    for call in (
        containerizer.wait("nope"),
        containerizer.destroy("nope"),
        containerizer.usage("nope"),
        containerizer.update("nope", {"cpus": 1}),
    ):
        with pytest.raises(UnknownContainer, match="unknown container 'nope'"):
            harness.run(call)
    with pytest.raises(UnknownContainer):
        containerizer.status("nope")
    with pytest.raises(UnknownContainer):
        containerizer.forget("nope")
    with pytest.raises(InvalidContainerId, match="expected 1 to 128 characters"):
        harness.launch(containerizer, "../escape", harness.config("true"))


def test_a_config_refuses_an_empty_command():
    with pytest.raises(ValueError, match="empty shell string"):
        ContainerConfig(command="  ", sandbox=Path("/tmp"))
    with pytest.raises(ValueError, match="non-empty list"):
        ContainerConfig(command=[], sandbox=Path("/tmp"))


def test_a_containerizer_serves_one_loop_only(harness):
    containerizer = PosixContainerizer()
    harness.launch(containerizer, "c1", harness.config("true"))
    harness.run(containerizer.wait("c1"))
    with pytest.raises(RuntimeError, match="serves another event loop"):
        asyncio.run(containerizer.wait("c1"))


# -- destroy -----------------------------------------------------------------------------------


def test_destroy_ends_a_container_with_sigterm_within_the_grace_period(harness):
    containerizer = PosixContainerizer()
    status = harness.launch(containerizer, "c1", harness.config(["sleep", "30"]))
    began = time.monotonic()
    termination = harness.run(containerizer.destroy("c1", grace_seconds=5))
    assert time.monotonic() - began < 2
    assert (termination.signal, termination.destroyed) == (signal.SIGTERM, True)
    assert "SIGTERM" in termination.message
    assert gone(status.pid)
    assert containerizer.status("c1").state is ContainerRunState.TERMINATED
    assert containerizer.containers() == set()


def test_a_command_ignoring_sigterm_is_sigkilled_after_the_grace_period(harness):
    containerizer = PosixContainerizer()
    config = harness.config("trap '' TERM; echo ready > ready; sleep 30")
    status = harness.launch(containerizer, "c1", config)
    wait_for_file(config.sandbox / "ready")
    began = time.monotonic()
    termination = harness.run(containerizer.destroy("c1", grace_seconds=GRACE))
    elapsed = time.monotonic() - began
    assert GRACE <= elapsed < GRACE + 2
    assert (termination.signal, termination.exit_code) == (signal.SIGKILL, None)
    assert termination.destroyed
    assert "SIGKILL" in termination.message
    assert gone(status.pid)


def test_destroy_kills_grandchildren_in_the_group_and_in_other_groups_of_the_session(harness):
    # The sleep shares the container's process group; the script makes a group of its own,
    # still in the container's session.
    script = harness.tmp_path / "own_group.py"
    script.write_text(
        "import os, time\n"
        "os.setpgid(0, 0)\n"
        "with open('own-group', 'w') as f:\n"
        "    f.write(f'{os.getpid()}\\n')\n"
        "time.sleep(30)\n"
    )
    containerizer = PosixContainerizer()
    config = harness.config(f"sleep 30 & echo $! > same-group; {sys.executable} {script} & wait")
    status = harness.launch(containerizer, "c1", config)
    same = int(wait_for_file(config.sandbox / "same-group"))
    own = int(wait_for_file(config.sandbox / "own-group"))
    assert os.getpgid(same) == status.pid
    assert os.getpgid(own) != status.pid
    assert os.getsid(own) == status.pid
    termination = harness.run(containerizer.destroy("c1", grace_seconds=GRACE))
    assert termination.destroyed
    assert gone(same)
    assert gone(own)


def test_destroy_after_the_main_process_exited_kills_what_it_left_behind(harness):
    containerizer = PosixContainerizer()
    config = harness.config("sleep 30 & echo $! > left; exit 5")
    harness.launch(containerizer, "c1", config)
    left = int(wait_for_file(config.sandbox / "left"))
    assert harness.run(containerizer.wait("c1")).exit_code == 5
    assert not gone(left)
    termination = harness.run(containerizer.destroy("c1", grace_seconds=GRACE))
    assert (termination.exit_code, termination.destroyed) == (5, False)
    assert gone(left)


def test_a_setsid_escapee_survives_posix_destroy(harness):
    """A documented gap: posix sees sessions only; issue 5's freezer cgroup closes it."""
    containerizer = PosixContainerizer()
    config = harness.config("setsid sleep 30 & echo $! > escapee; sleep 30")
    harness.launch(containerizer, "c1", config)
    escapee = int(wait_for_file(config.sandbox / "escapee"))
    harness.escapees.append(escapee)
    deadline = time.monotonic() + 5
    while os.getsid(escapee) != escapee and time.monotonic() < deadline:
        time.sleep(0.005)  # until setsid ran
    harness.run(containerizer.destroy("c1", grace_seconds=GRACE))
    assert not gone(escapee)


def test_concurrent_destroys_share_one_destruction(harness):
    containerizer = PosixContainerizer()
    harness.launch(containerizer, "c1", harness.config(["sleep", "30"]))

    async def destroy_twice():
        return await asyncio.gather(
            containerizer.destroy("c1", grace_seconds=GRACE),
            containerizer.destroy("c1", grace_seconds=GRACE),
        )

    first, second = harness.run(destroy_twice())
    assert first is second
    assert harness.run(containerizer.wait("c1")) is first
    assert harness.run(containerizer.destroy("c1")) is first


def test_forget_drops_a_terminated_container_only(harness):
    containerizer = PosixContainerizer()
    harness.launch(containerizer, "c1", harness.config(["sleep", "30"]))
    with pytest.raises(ContainerError, match="destroy it first"):
        containerizer.forget("c1")
    harness.run(containerizer.destroy("c1", grace_seconds=GRACE))
    containerizer.forget("c1")
    with pytest.raises(UnknownContainer):
        containerizer.status("c1")


def test_a_launch_cancelled_while_starting_is_destroyed_not_lost(harness):
    containerizer = PosixContainerizer()
    config = harness.config(["sleep", "30"])

    async def cancel_a_launch():
        launching = asyncio.ensure_future(containerizer.launch("c1", config))
        await asyncio.sleep(0)  # the fork/exec is under way in the executor
        launching.cancel()
        with pytest.raises(asyncio.CancelledError):
            await launching
        with pytest.raises(DuplicateContainer):  # the id stays taken meanwhile
            await containerizer.launch("c1", config)
        while True:  # until the started process is adopted
            try:
                return containerizer.status("c1").pid, await containerizer.wait("c1")
            except UnknownContainer:
                await asyncio.sleep(0.005)

    pid, termination = harness.run(cancel_a_launch())
    harness.launched.append((containerizer, "c1", pid))
    assert termination.destroyed
    harness.run(containerizer.destroy("c1"))  # the shared destruction: the session is empty
    assert gone(pid)


def test_waiters_of_a_detached_containerizer_fail_instead_of_hanging(harness):
    containerizer = PosixContainerizer()
    harness.launch(containerizer, "c1", harness.config(["sleep", "30"]))

    async def wait_then_detach():
        waiting = asyncio.ensure_future(containerizer.wait("c1"))
        await asyncio.sleep(0.01)
        containerizer.detach()
        with pytest.raises(ContainerError, match="detached before container c1 ended"):
            await waiting
        assert containerizer.containers() == set()

    harness.run(wait_then_detach())  # teardown stops the sleep by its session


# -- usage and update --------------------------------------------------------------------------


def test_usage_of_a_running_container(harness):
    containerizer = PosixContainerizer()
    config = harness.config("sleep 30 & sleep 30", resources={"cpus": 0.5, "mem": 32})
    harness.launch(containerizer, "c1", config)
    deadline = time.monotonic() + 5
    while True:  # until both sleeps run
        statistics = harness.run(containerizer.usage("c1"))
        if statistics.processes >= 3 or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    assert statistics.processes == 3  # sh and two sleeps
    assert statistics.threads >= 3
    assert statistics.mem_rss_bytes > 0
    assert statistics.cpus_user_time_secs >= 0
    assert statistics.cpus_system_time_secs >= 0
    assert statistics.cpus_limit == 0.5
    assert statistics.mem_limit_bytes == 32 * 1024 * 1024
    assert abs(statistics.timestamp - time.time()) < 5
    as_json = statistics.to_json()
    assert as_json["processes"] == 3
    assert "cpus_nr_throttled" not in as_json  # not measured by posix

    harness.run(containerizer.update("c1", {"cpus": 2.0, "mem": 64}))
    assert harness.run(containerizer.usage("c1")).cpus_limit == 2.0

    harness.run(containerizer.destroy("c1", grace_seconds=GRACE))
    assert harness.run(containerizer.usage("c1")).processes == 0
    with pytest.raises(ContainerError, match="not RUNNING"):
        harness.run(containerizer.update("c1", {"cpus": 1.0}))


# -- recovery ----------------------------------------------------------------------------------


def test_recover_reattaches_to_a_running_container_and_destroys_it(harness):
    before = PosixContainerizer()
    status = harness.launch(before, "c1", harness.config(["sleep", "30"]))
    saved = ContainerState.from_json(status.checkpoint.to_json())  # as the agent checkpoints
    before.detach()  # the agent goes away; the container keeps running

    after = PosixContainerizer()
    harness.launched.append((after, "c1", status.pid))
    result = harness.run(after.recover([saved]))
    assert (result.running, dict(result.ended), result.orphans) == ({"c1"}, {}, frozenset())
    assert after.containers() == {"c1"}
    assert after.status("c1").pid == status.pid
    assert harness.run(after.usage("c1")).processes == 1
    termination = harness.run(after.destroy("c1", grace_seconds=GRACE))
    assert termination.destroyed
    assert gone(status.pid)
    assert harness.run(after.wait("c1")) is termination


def test_recover_reports_a_container_that_ended_while_the_agent_was_down(harness):
    before = PosixContainerizer()
    status = harness.launch(before, "c1", harness.config("exit 7"))
    harness.run(before.wait("c1"))

    after = PosixContainerizer()
    result = harness.run(after.recover([status.checkpoint]))
    assert result.running == frozenset()
    termination = result.ended["c1"]
    assert termination.status is None  # nothing recorded how it ended
    assert "unknown" in termination.message
    assert harness.run(after.wait("c1")) is termination
    assert after.containers() == set()


def test_recover_does_not_take_a_reused_pid_for_the_container(harness):
    # This very test process: alive, but not started at that time.
    impostor = ContainerState("c1", os.getpid(), start_time=1.0, sandbox=harness.tmp_path)
    containerizer = PosixContainerizer()
    result = harness.run(containerizer.recover([impostor]))
    assert result.running == frozenset()
    assert result.ended["c1"].status is None
    harness.run(containerizer.destroy("c1", grace_seconds=0))  # must not touch the impostor


def test_with_a_runtime_dir_recover_knows_exit_statuses_and_finds_orphans(harness):
    runtime_dir = harness.tmp_path / "runtime"
    before = PosixContainerizer(runtime_dir)
    finished = harness.launch(before, "finished", harness.config("exit 7"))
    kept = harness.launch(before, "kept", harness.config(["sleep", "30"]))
    orphan = harness.launch(before, "orphan", harness.config(["sleep", "30"]))
    harness.run(before.wait("finished"))
    before.detach()

    after = PosixContainerizer(runtime_dir)
    harness.launched += [(after, "kept", kept.pid), (after, "orphan", orphan.pid)]
    result = harness.run(after.recover([finished.checkpoint, kept.checkpoint]))
    assert result.running == {"kept"}
    assert result.ended["finished"].exit_code == 7
    assert result.orphans == {"orphan"}
    assert after.containers() == {"kept", "orphan"}
    assert harness.run(after.destroy("orphan", grace_seconds=GRACE)).destroyed
    assert gone(orphan.pid)
    after.forget("orphan")
    assert not (runtime_dir / "orphan").exists()


def test_what_ends_while_nobody_watches_is_known_from_the_wrapper_record(harness):
    runtime_dir = harness.tmp_path / "runtime"
    go = harness.tmp_path / "go"
    wait = f"while [ ! -e {go} ]; do sleep 0.01; done"
    before = PosixContainerizer(runtime_dir)
    exits = harness.launch(before, "exits", harness.config(f"{wait}; exit 7"))
    killed = harness.launch(before, "killed", harness.config(f"{wait}; kill -KILL $$"))
    before.detach()  # the agent is down: nobody reaps or watches them
    go.touch()
    deadline = time.monotonic() + 5
    while not (gone(exits.pid) and gone(killed.pid)) and time.monotonic() < deadline:
        time.sleep(0.01)

    after = PosixContainerizer(runtime_dir)
    result = harness.run(after.recover([exits.checkpoint, killed.checkpoint]))
    assert result.ended["exits"].exit_code == 7
    assert result.ended["killed"].signal == signal.SIGKILL
    assert "agent down" in result.ended["killed"].message


@pytest.mark.parametrize(
    ("text", "status"),
    [("0\n", 0), ("3\n", 3 << 8), ("137\n", signal.SIGKILL), ("143", signal.SIGTERM),
     ("", None), ("12", 12 << 8), ("x\n", None), ("300\n", None), ("-1\n", None)],
)  # fmt: skip
def test_an_exit_status_record_reads_as_a_waitpid_status(tmp_path, text, status):
    path = tmp_path / "exit_status"
    path.write_text(text)
    assert read_exit_status(path) == status
    assert read_exit_status(tmp_path / "missing") is None


def test_recover_refuses_a_container_listed_twice_and_changes_nothing(harness):
    state = ContainerState("c1", os.getpid(), start_time=1.0, sandbox=harness.tmp_path)
    containerizer = PosixContainerizer()
    with pytest.raises(DuplicateContainer, match="listed twice"):
        harness.run(containerizer.recover([state, state]))
    assert harness.run(containerizer.recover([state])).ended.keys() == {"c1"}


def test_recover_runs_once_before_any_launch(harness):
    containerizer = PosixContainerizer()
    harness.launch(containerizer, "c1", harness.config("true"))
    with pytest.raises(RuntimeError, match="before any launch"):
        harness.run(containerizer.recover([]))


# -- the loops the agent may use ---------------------------------------------------------------


class _LoopFinder(Process):
    pass


def test_on_a_libprocess_runtime_loop(tmp_path):
    with Runtime() as runtime:
        finder = _LoopFinder()
        runtime.spawn(finder)
        loop = runtime.dispatch(finder, asyncio.get_running_loop).result(timeout=WAIT)
        harness = Harness(loop, tmp_path)
        try:
            containerizer = PosixContainerizer()
            harness.launch(containerizer, "c1", harness.config("exit 2"))
            assert harness.run(containerizer.wait("c1")).exit_code == 2
            status = harness.launch(containerizer, "c2", harness.config(["sleep", "30"]))
            assert harness.run(containerizer.destroy("c2", grace_seconds=GRACE)).destroyed
            assert gone(status.pid)
        finally:
            harness.stop_everything()


def test_on_an_asyncio_loop_in_the_main_thread(tmp_path):
    containerizer = PosixContainerizer()
    config = ContainerConfig(command="echo main", sandbox=tmp_path / "sandbox")

    async def scenario() -> ContainerTermination:
        status = await containerizer.launch("c1", config)
        try:
            return await asyncio.wait_for(containerizer.wait("c1"), WAIT)
        finally:
            await containerizer.destroy("c1", grace_seconds=0)
            assert gone(status.pid)

    assert asyncio.run(scenario()).exit_code == 0
    assert (config.sandbox / "stdout").read_text() == "main\n"
