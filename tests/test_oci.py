"""The OCI containerizer and image store, with Debian's runc and a busybox rootfs (real, root).

Each test builds a busybox image (``/bin/busybox`` from busybox-static, applets linked to it)
in its own work directory. Teardown destroys every container through runc, kills any process
left by pid, and checks that runc lists nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import io
import itertools
import json
import os
import shutil
import signal
import subprocess
import tarfile
from pathlib import Path

import pytest

from containerizer import ContainerRunState, TerminationReason
from containerizer.images import ImageStore, UnknownImage, UnsafeImage
from containerizer.oci import OciContainerConfig, OciContainerizer, RuntimeMissing

BUSYBOX = Path("/bin/busybox")
APPLETS = ("sh", "echo", "true", "sleep", "cat", "head", "tail", "test", "ls", "dd")
_ids = itertools.count()

needs_runtime = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("runc") is None or not BUSYBOX.exists(),
    reason="OCI tests need root, runc and busybox-static (apt-get install runc busybox-static)",
)
# The image store's own tests pack a busybox rootfs but run nothing: busybox is all they need.
needs_busybox = pytest.mark.skipif(
    not BUSYBOX.exists(),
    reason=f"this test packs {BUSYBOX} from busybox-static (apt-get install busybox-static)",
)


def _busybox_rootfs(root: Path) -> Path:
    (root / "bin").mkdir(parents=True)
    shutil.copy2(BUSYBOX, root / "bin" / "busybox")
    for applet in APPLETS:
        (root / "bin" / applet).symlink_to("busybox")
    for directory in ("etc", "tmp", "proc", "dev", "sys"):
        (root / directory).mkdir()
    return root


def _tar_gz(source: Path, target: Path) -> bytes:
    with tarfile.open(target, "w:gz") as tar:
        tar.add(source, arcname=".")
    return target.read_bytes()


def _blob(blobs: Path, data: bytes) -> dict:
    digest = hashlib.sha256(data).hexdigest()
    (blobs / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def _oci_layout(tmp: Path, layout: Path) -> None:
    """A two-layer OCI image: busybox, then a layer adding /hello and whiting out /etc/gone."""
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    base = _busybox_rootfs(tmp / "base")
    (base / "etc" / "gone").write_text("removed by the upper layer\n")
    first = _blob(blobs, _tar_gz(base, tmp / "l1.tar.gz"))
    upper = tmp / "upper"
    (upper / "etc").mkdir(parents=True)
    (upper / "hello").write_text("from layer two\n")
    (upper / "etc" / ".wh.gone").write_text("")
    second = _blob(blobs, _tar_gz(upper, tmp / "l2.tar.gz"))
    config = _blob(blobs, json.dumps({"architecture": "amd64", "os": "linux"}).encode())
    layer = "application/vnd.oci.image.layer.v1.tar+gzip"
    manifest = _blob(
        blobs,
        json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {**config, "mediaType": "application/vnd.oci.image.config.v1+json"},
                "layers": [{**first, "mediaType": layer}, {**second, "mediaType": layer}],
            }
        ).encode(),
    )
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (layout / "index.json").write_text(
        json.dumps(
            {
                "schemaVersion": 2,
                "manifests": [
                    {**manifest, "mediaType": "application/vnd.oci.image.manifest.v1+json"}
                ],
            }
        )
    )


@pytest.fixture
def work(tmp_path) -> Path:
    images = tmp_path / "work" / "images"
    images.mkdir(parents=True)
    _tar_gz(_busybox_rootfs(tmp_path / "busybox"), images / "busybox.tar.gz")
    return tmp_path / "work"


class Harness:
    def __init__(self, work: Path) -> None:
        self.work = work
        self.containerizer = OciContainerizer(work)
        self.launched: list[str] = []

    def config(self, command: str, image: str = "busybox", **kwargs) -> OciContainerConfig:
        sandbox = self.work / "sandboxes" / f"s{len(self.launched)}"
        return OciContainerConfig(command=command, sandbox=sandbox, image=image, **kwargs)

    async def launch(self, config: OciContainerConfig) -> str:
        container_id = f"oci-test-{os.getpid()}-{next(_ids)}"
        self.launched.append(container_id)
        await self.containerizer.launch(container_id, config)
        return container_id

    async def run(self, command: str, **kwargs):
        config = self.config(command, **kwargs)
        container_id = await self.launch(config)
        termination = await asyncio.wait_for(self.containerizer.wait(container_id), 20)
        await self.containerizer.destroy(container_id)
        return termination, (config.sandbox / "stdout").read_text(), config

    def runc(self, *args: str) -> subprocess.CompletedProcess:
        root = str(self.containerizer.runc_root)
        return subprocess.run(["runc", "--root", root, *args], capture_output=True, text=True)

    def teardown(self) -> None:
        for container_id in self.launched:
            state = self.runc("state", container_id)
            if state.returncode == 0:
                pid = json.loads(state.stdout).get("pid") or 0
                if pid > 0:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
            self.runc("delete", "--force", container_id)
            self.containerizer._cleanup(container_id)
        listed = self.runc("list", "--quiet").stdout.split()
        assert not set(listed) & set(self.launched), f"runc still lists {listed}"


@pytest.fixture
def harness(work):
    harness = Harness(work)
    yield harness
    harness.teardown()


@needs_runtime
def test_echo_runs_in_the_image_and_writes_the_sandbox_stdout(harness) -> None:
    termination, stdout, _ = asyncio.run(harness.run("echo hello; pwd"))
    assert termination.exit_code == 0 and termination.signal is None
    assert stdout == "hello\n/mnt/mesos/sandbox\n"


@needs_runtime
def test_exit_status_comes_back(harness) -> None:
    termination, _, _ = asyncio.run(harness.run("exit 3"))
    assert termination.exit_code == 3
    assert not termination.destroyed and termination.reason is None


@needs_runtime
def test_task_sees_the_image_filesystem_not_the_hosts(harness) -> None:
    command = "test -x /bin/busybox && ! test -e /etc/debian_version && echo image-only"
    termination, stdout, _ = asyncio.run(harness.run(command))
    assert termination.exit_code == 0, termination
    assert stdout == "image-only\n"


@needs_runtime
def test_writes_stay_in_the_container_not_the_image(harness) -> None:
    termination, _, _ = asyncio.run(harness.run("echo x > /bin/written"))
    assert termination.exit_code == 0
    rootfs = harness.containerizer.images.provision("busybox")
    assert not (rootfs / "bin" / "written").exists()


@needs_runtime
def test_memory_limit_kills_and_is_reported(harness) -> None:
    termination, _, _ = asyncio.run(
        harness.run("head -c 64m /dev/zero | tail", resources={"mem": 16})
    )
    assert termination.signal == signal.SIGKILL, termination
    assert termination.reason is TerminationReason.CONTAINER_LIMITATION_MEMORY
    assert "16 MB" in termination.message


@needs_runtime
def test_usage_and_update(harness) -> None:
    async def scenario():
        config = harness.config("sleep 60", resources={"cpus": 0.5, "mem": 32}, max_pids=16)
        container_id = await harness.launch(config)
        cgroup = Path("/sys/fs/cgroup")
        quota = cgroup / "cpu" / "corral" / container_id / "cpu.cfs_quota_us"
        pids_max = cgroup / "pids" / "corral" / container_id / "pids.max"
        assert quota.read_text() == "50000\n" and pids_max.read_text() == "16\n"
        stats = await harness.containerizer.usage(container_id)
        await harness.containerizer.update(container_id, {"cpus": 1.0, "mem": 48})
        assert quota.read_text() == "100000\n"
        updated = await harness.containerizer.usage(container_id)
        await harness.containerizer.destroy(container_id, grace_seconds=0.2)
        return stats, updated

    stats, updated = asyncio.run(scenario())
    assert stats.processes == 1
    assert stats.mem_limit_bytes == 32 << 20 and updated.mem_limit_bytes == 48 << 20
    assert stats.mem_total_bytes and stats.mem_total_bytes > 0
    assert stats.cpus_user_time_secs is not None and stats.cpus_limit == 0.5
    assert updated.cpus_limit == 1.0


@needs_runtime
def test_destroy_leaves_no_container_and_no_process(harness) -> None:
    async def scenario():
        container_id = await harness.launch(harness.config("sleep 60"))
        status = harness.containerizer.status(container_id)
        assert status.state is ContainerRunState.RUNNING
        termination = await harness.containerizer.destroy(container_id, grace_seconds=0.2)
        return container_id, status.pid, termination

    container_id, pid, termination = asyncio.run(scenario())
    assert termination.destroyed and termination.signal in (signal.SIGTERM, signal.SIGKILL)
    assert harness.runc("state", container_id).returncode != 0
    assert not os.path.exists(f"/proc/{pid}")
    assert not Path(f"/sys/fs/cgroup/memory/corral/{container_id}").exists()
    assert not harness.containerizer.containers()


@needs_runtime
def test_oci_image_layout_is_provisioned_and_runs(harness, tmp_path) -> None:
    _oci_layout(tmp_path, harness.work / "images" / "layered")
    command = "cat /hello; test -e /etc/gone || echo gone"
    termination, stdout, _ = asyncio.run(harness.run(command, image="layered"))
    assert termination.exit_code == 0, termination
    assert stdout == "from layer two\ngone\n"


@needs_busybox
def test_unknown_image_names_the_images_the_store_has(work) -> None:
    with pytest.raises(UnknownImage, match=r"'ubuntu' is not in the image store .*has: busybox"):
        ImageStore(work / "images").provision("ubuntu")


@pytest.mark.parametrize(
    "member, why",
    [
        ("../escape", "'..' component"),
        ("/etc/evil", "absolute path"),
        ("link", "symlink to '../../x', outside"),
        ("dev/null", "device node"),
        ("etc/passwd", "through the symlink etc"),
    ],
)
def test_unsafe_tar_members_are_refused(tmp_path, member, why) -> None:
    images = tmp_path / "images"
    images.mkdir()
    with tarfile.open(images / "bad.tar", "w") as tar:
        if member == "link":
            info = tarfile.TarInfo("link")
            info.type, info.linkname = tarfile.SYMTYPE, "../../x"
        elif member == "dev/null":
            info = tarfile.TarInfo("dev/null")
            info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
        elif member == "etc/passwd":
            link = tarfile.TarInfo("etc")
            link.type, link.linkname = tarfile.SYMTYPE, "/etc"
            tar.addfile(link)
            info = tarfile.TarInfo("etc/passwd")
        else:
            info = tarfile.TarInfo(member)
        tar.addfile(info, io.BytesIO(b""))
    store = ImageStore(images)
    with pytest.raises(UnsafeImage, match=why):
        store.provision("bad")
    assert not (images / ".rootfs" / "bad").exists()
    assert not list((images / ".rootfs").iterdir())


@needs_busybox
def test_corrupt_layer_digest_is_refused(tmp_path) -> None:
    layout = tmp_path / "images" / "layered"
    _oci_layout(tmp_path, layout)
    blob = next(p for p in (layout / "blobs" / "sha256").iterdir() if p.stat().st_size > 1000)
    blob.write_bytes(gzip.compress(b"tampered"))
    with pytest.raises(Exception, match="does not match its digest"):
        ImageStore(tmp_path / "images").provision("layered")


def test_missing_runc_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(RuntimeMissing, match="apt-get install runc"):
        OciContainerizer(tmp_path, runc="runc-that-is-not-installed")


@needs_runtime
def test_recover_reattaches_known_containers_and_finds_orphans(harness) -> None:
    async def first_agent():
        known = await harness.launch(harness.config("sleep 60"))
        orphan = await harness.launch(harness.config("sleep 60"))
        containers = harness.containerizer._containers
        return harness.containerizer.status(known).checkpoint, [
            containers[known].popen,
            containers[orphan].popen,
        ]

    checkpoint, runcs = asyncio.run(first_agent())  # its loop is gone: the agent "died"
    successor = OciContainerizer(harness.work)

    async def second_agent():
        result = await successor.recover([checkpoint])
        terminations = [
            await successor.destroy(container_id, grace_seconds=0.2)
            for container_id in sorted(successor.containers())
        ]
        return result, terminations

    result, terminations = asyncio.run(second_agent())
    for runc in runcs:  # the first agent's runc children: reap them
        runc.wait(timeout=10)
    assert result.running == {checkpoint.container_id}
    assert result.orphans == set(harness.launched) - {checkpoint.container_id}
    assert len(terminations) == 2
    assert all(t.destroyed and t.status is None for t in terminations)
    assert not successor.containers()
    orphan = next(iter(result.orphans))
    assert successor.status(orphan).sandbox == harness.work / "sandboxes" / "s1"
