"""End to end with isolation: an agent with cgroups isolators and the linux launcher, and an
image in its store. Real cgroups, namespaces and runc, as root; skipped with the reason
elsewhere."""

from __future__ import annotations

import getpass
import json
import os
import shutil
import tarfile
import urllib.request
from pathlib import Path

import pytest

from containerizer.cgroups import CgroupRoot, CgroupsUnavailable
from corral.cli.cluster import LocalCluster, start_local_cluster, wait_for_agents
from corral.cli.listings import fetch_state
from corral.ids import TaskID
from corral.protocol import (
    CommandInfo,
    ContainerInfo,
    DockerImage,
    FrameworkInfo,
    Image,
    ImageType,
    MesosContainerInfo,
    TaskInfo,
)
from corral.resources import Resources
from corral.scheduler import SchedulerDriver
from corral.task_states import Reason, TaskState
from master import MasterOptions
from tests.test_cluster import WAIT, Recorder

BUSYBOX = Path("/bin/busybox")
ISOLATION = "cgroups/cpu,cgroups/mem,cgroups/pids,filesystem/posix,posix/rlimits"


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "isolation needs root"
    try:
        CgroupRoot().require(["cpu", "memory", "pids", "freezer"])
    except CgroupsUnavailable as error:
        return str(error)
    if shutil.which("unshare") is None:
        return "the linux launcher needs util-linux's unshare (apt-get install util-linux)"
    return None


pytestmark = pytest.mark.skipif(_why_not() is not None, reason=_why_not() or "")


def _busybox_image(images: Path) -> None:
    rootfs = images / "busybox-rootfs"
    (rootfs / "bin").mkdir(parents=True)
    shutil.copy2(BUSYBOX, rootfs / "bin" / "busybox")
    for applet in ("sh", "echo", "cat", "ls", "true", "sleep", "head", "tail"):
        (rootfs / "bin" / applet).symlink_to("busybox")
    for directory in ("etc", "tmp", "proc", "dev", "sys"):
        (rootfs / directory).mkdir()
    with tarfile.open(images / "busybox.tar", "w") as tar:
        tar.add(rootfs, arcname=".")
    shutil.rmtree(rootfs)


@pytest.fixture(scope="module")
def isolated(tmp_path_factory) -> LocalCluster:
    root = tmp_path_factory.mktemp("isolated")
    can_run_images = shutil.which("runc") is not None and BUSYBOX.exists()
    if can_run_images:
        images = root / "agent-0" / "images"
        images.mkdir(parents=True)
        _busybox_image(images)
    cluster = start_local_cluster(
        1,
        work_dir=str(root),
        resources="cpus:2;mem:512;disk:512",
        master_options=MasterOptions(allocation_interval=0.2),
        isolation=ISOLATION,
        launcher="linux",
    )
    try:
        wait_for_agents(cluster.http_address, 1)
        cluster.can_run_images = can_run_images
        yield cluster
    finally:
        assert cluster.stop() == [0, 0]


@pytest.fixture
def framework(isolated):
    recorder = Recorder()
    info = FrameworkInfo(user=getpass.getuser(), name="isolated")
    driver = SchedulerDriver(recorder, info, isolated.http_address)
    driver.start()
    recorder.ids.get(timeout=WAIT)
    yield driver, recorder
    driver.stop()


def _task(offer, name: str, command: str, resources: str, container=None) -> TaskInfo:
    return TaskInfo(
        name=name,
        task_id=TaskID(name),
        agent_id=offer.agent_id,
        resources=Resources.parse(resources),
        command=CommandInfo(value=command),
        container=container,
    )


def test_a_task_over_its_memory_limit_fails_as_a_memory_limitation(framework):
    driver, recorder = framework
    offer = recorder.next_offer()
    hog = _task(
        offer,
        "memory-hog",
        "python3 -c 'b = bytearray(200 * 2**20); b[::4096] = b\"x\" * len(b[::4096])'",
        "cpus:0.5;mem:32",
    )
    driver.launch_tasks([offer.id], [hog])
    final = recorder.until_terminal(hog.task_id)[-1]
    assert final.state is TaskState.TASK_FAILED
    assert final.reason is Reason.REASON_CONTAINER_LIMITATION_MEMORY
    assert "32 MB" in (final.message or "")


def test_a_task_in_the_linux_launcher_sees_only_its_own_processes(framework, isolated):
    driver, recorder = framework
    offer = recorder.next_offer()
    # Its shell is pid 1 or 2 of a namespace where a handful of processes exist at most
    # (the host has hundreds).
    check = 'test $$ -le 2 && test "$(ls /proc | grep -c "^[0-9]")" -le 8'
    probe = _task(offer, "pid-probe", check, "cpus:0.1;mem:32")
    driver.launch_tasks([offer.id], [probe])
    assert recorder.until_terminal(probe.task_id)[-1].state is TaskState.TASK_FINISHED


def test_an_image_task_runs_under_runc(framework, isolated):
    if not isolated.can_run_images:
        pytest.skip(
            "image tasks need runc and busybox-static (apt-get install runc busybox-static)"
        )
    driver, recorder = framework
    offer = recorder.next_offer()
    image = Image(ImageType.DOCKER, docker=DockerImage("busybox"))
    in_image = _task(
        offer,
        "in-image",
        "test -x /bin/busybox && test ! -e /etc/debian_version && echo inside",
        "cpus:0.1;mem:32",
        ContainerInfo(mesos=MesosContainerInfo(image=image)),
    )
    driver.launch_tasks([offer.id], [in_image])
    states = [status.state for status in recorder.until_terminal(in_image.task_id)]
    assert states[-1] is TaskState.TASK_FINISHED, states


def test_the_agent_reports_its_active_isolators(isolated):
    (agent,) = fetch_state(isolated.http_address)["agents"]
    url = f"http://127.0.0.1:{agent['port']}/agent/state"
    with urllib.request.urlopen(url, timeout=WAIT) as response:
        state = json.loads(response.read())
    assert {"cgroups/cpu", "cgroups/mem", "cgroups/pids", "posix/rlimits"} <= set(
        state["isolators"]
    )
