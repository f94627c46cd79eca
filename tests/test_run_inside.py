"""A short command run inside a running container (what a COMMAND check does): its cgroups,
its namespaces under the linux launcher, its sandbox, the environment given, the timeout.
Real processes, real cgroups (root only); containers are destroyed by id at the end."""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import socket
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent import check_probes
from containerizer import ContainerConfig, ContainerError, PosixContainerizer, namespaces
from containerizer.cgroups import CgroupRoot, CgroupsUnavailable
from containerizer.mesos import MesosContainerizer
from containerizer.oci import OciContainerConfig, OciContainerizer
from corral.protocol import HttpCheck

_LINUX_LAUNCHER = namespaces.available()
needs_linux_launcher = pytest.mark.skipif(
    not _LINUX_LAUNCHER, reason=f"the linux launcher is unavailable: {_LINUX_LAUNCHER.reason}"
)
WAIT = 20.0
ENV = {"PATH": "/usr/bin:/bin"}


@pytest.fixture
def root() -> Iterator[CgroupRoot]:
    if os.geteuid() != 0:
        pytest.skip("cgroup tests need root")
    try:
        root = CgroupRoot(name=f"corral-inside-{os.getpid()}")
    except CgroupsUnavailable as error:
        pytest.skip(f"no usable cgroup v1 here: {error}")
    yield root
    for container_id in root.containers():
        root.create(container_id).destroy()
    root.remove()


def run(scenario, containerizer):
    async def main():
        try:
            return await asyncio.wait_for(scenario(containerizer), WAIT)
        finally:
            for container_id in containerizer.containers():
                await containerizer.destroy(container_id, grace_seconds=0)
            containerizer.detach()

    return asyncio.run(main())


def config(tmp_path: Path, command: str) -> ContainerConfig:
    return ContainerConfig(command=command, sandbox=tmp_path / "sandbox", environment=ENV)


def test_posix_runs_in_the_sandbox_with_the_environment(tmp_path):
    async def scenario(c: PosixContainerizer):
        await c.launch("t1", config(tmp_path, "sleep 30"))
        env = {**ENV, "GREETING": "hello"}
        ok = await c.run_inside("t1", 'test "$GREETING" = hello && test -d ../sandbox', env, 5)
        failed = await c.run_inside("t1", ["sh", "-c", "exit 3"], env, 5)
        return ok, failed, Path(tmp_path / "sandbox").is_dir()

    ok, failed, _ = run(scenario, PosixContainerizer())
    assert (ok, failed) == (0, 3)


def test_timeout_kills_the_command(tmp_path):
    marker = tmp_path / "survived"

    async def scenario(c: PosixContainerizer):
        await c.launch("t2", config(tmp_path, "sleep 30"))
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await c.run_inside("t2", f"sleep 3; touch {marker}", ENV, 0.3)
        return time.monotonic() - started

    took = run(scenario, PosixContainerizer())
    assert took < 2.0
    time.sleep(3.5)
    assert not marker.exists(), "the timed-out command (and its child) should have been killed"


def test_unknown_or_ended_container_is_refused(tmp_path):
    async def scenario(c: PosixContainerizer):
        with pytest.raises(ContainerError, match="unknown container"):
            await c.run_inside("nope", "true", ENV, 1)
        await c.launch("t3", config(tmp_path, "true"))
        await c.wait("t3")
        with pytest.raises(ContainerError, match="nothing runs in it"):
            await c.run_inside("t3", "true", ENV, 1)

    run(scenario, PosixContainerizer())


def test_mesos_joins_the_container_cgroups(root, tmp_path):
    async def scenario(c: MesosContainerizer):
        await c.launch("t4", config(tmp_path, "sleep 30"))
        probe = f"grep -q '/{root.name}/t4$' /proc/self/cgroup"
        return await c.run_inside("t4", probe, ENV, 5)

    assert run(scenario, MesosContainerizer(cgroup_root=root)) == 0


@needs_linux_launcher
def test_linux_launcher_enters_the_task_namespaces(root, tmp_path):
    """The task mounts a tmpfs in its own mount namespace and writes a marker there: only a
    command in that namespace sees it; it also sees the task's pid namespace (pid 1 is the
    task) and its hostname."""
    shared = tmp_path / "sandbox" / "private"
    shared.mkdir(parents=True)
    task = "mount -t tmpfs none private && touch private/marker && exec sleep 30"

    async def scenario(c: MesosContainerizer):
        await c.launch("t5", config(tmp_path, task))
        in_mount_ns = None
        for _ in range(100):  # until the task has forked into its namespaces and mounted
            try:
                # relative: the command's working directory is the task's sandbox
                in_mount_ns = await c.run_inside("t5", "test -f private/marker", ENV, 5)
            except ContainerError:
                in_mount_ns = None
            if in_mount_ns == 0:
                break
            await asyncio.sleep(0.05)
        pid_ns = await c.run_inside("t5", "grep -q sleep /proc/1/cmdline", ENV, 5)
        cgroup = await c.run_inside("t5", f"grep -q '/{root.name}/t5$' /proc/self/cgroup", ENV, 5)
        hostname = await c.run_inside("t5", 'test "$(cat /proc/sys/kernel/hostname)" = t5', ENV, 5)
        return in_mount_ns, pid_ns, cgroup, hostname

    results = run(scenario, MesosContainerizer(cgroup_root=root, launcher="linux"))
    assert not (shared / "marker").exists(), "the marker must be invisible from the host"
    assert results == (0, 0, 0, 0)


@needs_linux_launcher
def test_a_socket_in_the_task_network_reaches_its_loopback(root, tmp_path):
    """With namespaces/net the task's loopback is its own: the agent's 127.0.0.1 does not
    reach the task's server, a socket made in the task's network does (HTTP and TCP)."""
    if shutil.which("ip") is None:
        pytest.skip("a network namespace needs iproute2's ip (apt-get install iproute2)")
    probe = socket.create_server(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # a port free on the agent's loopback
    server = f"exec {sys.executable} -m http.server {port} --bind 127.0.0.1"
    isolation = "cgroups/cpu,cgroups/mem,filesystem/posix,namespaces/net"

    async def scenario(c: MesosContainerizer):
        await c.launch("t6", config(tmp_path, server))
        reached = None
        for _ in range(200):  # until the task runs and its server listens in its network
            try:
                sock = await c.network_socket("t6")
                assert sock is not None
                reached = await check_probes.http(HttpCheck(port=port, path="/"), 2.0, sock)
                break
            except (ContainerError, check_probes.ProbeFailed):
                await asyncio.sleep(0.05)
        connected = await check_probes.tcp(port, 2.0, await c.network_socket("t6"))
        from_agent = await check_probes.tcp(port, 2.0)
        return reached, connected, from_agent

    reached, connected, from_agent = run(
        scenario, MesosContainerizer(isolation=isolation, cgroup_root=root, launcher="linux")
    )
    assert reached is not None and reached.http.status_code == 200
    assert connected.tcp.succeeded is True
    assert from_agent.tcp.succeeded is False


def test_a_container_sharing_the_agent_network_needs_no_socket(tmp_path):
    async def scenario(c: PosixContainerizer):
        await c.launch("t7", config(tmp_path, "sleep 30"))
        return await c.network_socket("t7")

    assert run(scenario, PosixContainerizer()) is None


def test_the_command_runs_as_the_task_user(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("running as another user needs root")
    nobody = pwd.getpwnam("nobody")

    async def scenario(c: PosixContainerizer):
        await c.launch("t8", config(tmp_path, "sleep 30"))
        as_nobody = await c.run_inside("t8", f'test "$(id -u)" = {nobody.pw_uid}', ENV, 5, "nobody")
        with pytest.raises(LookupError, match="does not exist"):
            await c.run_inside("t8", "true", ENV, 5, "no-such-user-here")
        return as_nobody

    assert run(scenario, PosixContainerizer()) == 0


BUSYBOX = Path("/bin/busybox")


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("runc") is None or not BUSYBOX.exists(),
    reason="runc exec needs root, runc and busybox-static (apt-get install runc busybox-static)",
)
def test_runc_exec_runs_in_the_image_container(tmp_path):
    """Under the OCI backend the command joins the container through ``runc exec``: it
    sees the image's root filesystem and the sandbox's mount as its working directory."""
    rootfs = tmp_path / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    shutil.copy2(BUSYBOX, rootfs / "bin" / "busybox")
    for applet in ("sh", "sleep", "test", "cat", "pwd"):
        (rootfs / "bin" / applet).symlink_to("busybox")
    for directory in ("etc", "tmp", "proc", "dev", "sys"):
        (rootfs / directory).mkdir()
    (rootfs / "etc" / "image-only").write_text("inside\n")
    work = tmp_path / "work"
    (work / "images").mkdir(parents=True)
    with tarfile.open(work / "images" / "box.tar.gz", "w:gz") as tar:
        tar.add(rootfs, arcname=".")
    containerizer = OciContainerizer(work)
    container_id = f"inside-oci-{os.getpid()}"
    sandbox = tmp_path / "sandbox"
    config = OciContainerConfig(command="sleep 30", sandbox=sandbox, image="box")
    env = {"PATH": "/bin", "GREETING": "hi"}

    async def scenario():
        await containerizer.launch(container_id, config)
        try:
            inside = await containerizer.run_inside(
                container_id,
                'test -f /etc/image-only && test "$(pwd)" = /mnt/mesos/sandbox && '
                'test "$GREETING" = hi',
                env,
                10,
            )
            failing = await containerizer.run_inside(container_id, "exit 4", env, 10)
            return inside, failing
        finally:
            await containerizer.destroy(container_id, 0)
            containerizer.forget(container_id)

    assert asyncio.run(asyncio.wait_for(scenario(), WAIT)) == (0, 4)
    assert not Path("/etc/image-only").exists()
