"""Where an executor run lives on disk: Mesos's sandbox layout under the agent's work dir."""

from __future__ import annotations

from pathlib import Path

from corral.ids import ContainerID, ExecutorID, FrameworkID


def sandbox_path(
    work_dir: Path, framework_id: FrameworkID, executor_id: ExecutorID, container_id: ContainerID
) -> Path:
    """``<work_dir>/frameworks/<fid>/executors/<eid>/runs/<container id>``.

    The ids are validated path components (``corral.ids`` refuses '/', '..' and the like), so
    the path cannot leave the work directory.
    """
    return (
        Path(work_dir)
        / "frameworks"
        / framework_id
        / "executors"
        / executor_id
        / "runs"
        / container_id
    )
