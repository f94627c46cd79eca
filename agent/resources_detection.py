"""What this machine offers, detected with psutil, for an agent not told its resources.

Mesos's defaults: every logical cpu, the memory less 1 GB for the system (at least 512 MB),
the work directory's free disk less 10 %, and ports 31000-32000. Resources given as text
override the detected ones of the same name; the others are still detected.
"""

from __future__ import annotations

from pathlib import Path

import psutil

from corral.resources import Resources

DEFAULT_PORTS = "[31000-32000]"
MEM_RESERVED_MB = 1024  # left to the system and the agent itself
MEM_MIN_MB = 512
DISK_RESERVED_FRACTION = 0.1


def detect_resources(work_dir: Path) -> Resources:
    """cpus, mem (MB), disk (MB of the work dir's file system) and ports of this machine."""
    cpus = psutil.cpu_count(logical=True) or 1
    total_mb = psutil.virtual_memory().total // (1024 * 1024)
    mem = max(total_mb - MEM_RESERVED_MB, MEM_MIN_MB)
    probe = Path(work_dir)
    while not probe.exists() and probe != probe.parent:  # the work dir may not exist yet
        probe = probe.parent
    free_mb = psutil.disk_usage(str(probe)).free // (1024 * 1024)
    disk = max(int(free_mb * (1 - DISK_RESERVED_FRACTION)), 0)
    text = f"cpus:{cpus};mem:{mem};ports:{DEFAULT_PORTS}"
    if disk > 0:
        text += f";disk:{disk}"
    return Resources.parse(text)


def agent_resources(text: str | None, work_dir: Path) -> Resources:
    """The agent's total: ``text`` (Mesos's text or JSON form) plus what it does not name."""
    detected = detect_resources(work_dir)
    if text is None or not text.strip():
        return detected
    given = Resources.parse(text)
    missing = detected.filter(lambda resource: resource.name not in given.names())
    return given + missing
