"""A part of the DC/OS layer (``corral dns``, ``corral services``, ``corral frontdoor``) in an OS
process of its own, as ``corral local``, the demo and the tests start them.

Each part prints one line when it listens, saying where; the launcher waits for that line (or
the process's end, or a timeout), so that callers get the part's real addresses even when they
asked for free ports. A part is stopped by its pid, never by a name.
"""

from __future__ import annotations

import re
import selectors
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass
class LayerProcess:
    """A started part: its process (stdout is the pipe its ready line came from)."""

    process: subprocess.Popen[str]

    def kill(self) -> None:
        """SIGKILL: a crash (nothing is finalized)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._close()

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, SIGKILL after ``timeout``; its exit code."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._close()
        return self.process.returncode

    def _close(self) -> None:
        if self.process.stdout is not None:
            self.process.stdout.close()


def start_layer(
    part: str, arguments: Sequence[str], ready: re.Pattern[str], timeout: float
) -> tuple[subprocess.Popen[str], re.Match[str], str]:
    """Run ``corral PART ARGUMENTS…`` and wait until it prints a line ``ready`` matches: the
    process, the match and the line. Nothing is left running if it does not get there."""
    command = [sys.executable, "-m", "corral", part, *arguments]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        match, line = _wait_ready(process, part, ready, timeout)
    except BaseException:  # not ready, or interrupted meanwhile: leave nothing behind
        LayerProcess(process).kill()
        raise
    return process, match, line


def _wait_ready(
    process: subprocess.Popen[str], part: str, ready: re.Pattern[str], timeout: float
) -> tuple[re.Match[str], str]:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while (left := deadline - time.monotonic()) > 0:
            if not selector.select(left):
                continue
            line = process.stdout.readline()
            if not line:
                break  # it exited
            match = ready.match(line)
            if match:
                return match, line.strip()
    if process.poll() is None:
        raise RuntimeError(f"corral {part} did not start within {timeout:g} s; see its log")
    raise RuntimeError(f"corral {part} exited with code {process.returncode}; see its log")
