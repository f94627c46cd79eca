"""Killing the containers an agent left running, for good.

A stopped agent leaves the containers of checkpointing frameworks running for its next run to
recover. When there is no next run (a local cluster torn down, a test ending, an operator
retiring the machine), this kills them by the pids the containerizer recorded, each checked
against its recorded start time so that a reused pid is never hit.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import psutil
import structlog

from agent.options import runtime_dir_of
from containerizer import ContainerState
from containerizer.posix import START_TIME_TOLERANCE

log = structlog.get_logger("agent.leftovers")


def kill_leftover_containers(work_dir: Path | str) -> list[int]:
    """SIGKILL the session of every container recorded under the agent's ``work_dir`` that
    still runs (call it once the agent has stopped); the pids killed."""
    killed = []
    for path in sorted(runtime_dir_of(Path(work_dir)).glob("*/state.json")):
        try:
            state = ContainerState.from_json(json.loads(path.read_text()))
            process = psutil.Process(state.pid)
            same = abs(process.create_time() - state.start_time) <= START_TIME_TOLERANCE
        except (OSError, ValueError, KeyError, psutil.Error):
            continue
        if not same or process.status() == psutil.STATUS_ZOMBIE:
            continue
        try:
            os.killpg(state.pid, signal.SIGKILL)  # the main process leads its session
        except ProcessLookupError:
            continue
        killed.append(state.pid)
        log.info("leftover_container_killed", container_id=state.container_id, pid=state.pid)
    return killed
