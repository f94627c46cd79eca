"""Finding the master's native endpoint from its HTTP address (the one address users give).

The master serves ``/master/info`` (JSON with a ``pid`` field, also in ``/master/state`` as in
Mesos's, but ``/master/info`` costs nothing however large the cluster); its ``pid`` is the
libprocess address that schedulers and agents send messages to.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from libprocess import UPID


class MasterNotFound(ConnectionError):
    """No master answers at the given HTTP address."""


def master_pid(http_address: str, timeout: float = 5.0) -> UPID:
    """The master's UPID, asked of ``http://<http_address>/master/info``.

    Blocking (urllib): call it before starting actors, or from a thread of its own.
    """
    address = http_address.removeprefix("http://").rstrip("/")
    url = f"http://{address}/master/info"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            state = json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise MasterNotFound(
            f"no master answered at {url} ({error}); check the address (host:port of the "
            "master's HTTP endpoint, 5050 by default) and that the master runs"
        ) from None
    pid = state.get("pid") if isinstance(state, dict) else None
    if not isinstance(pid, str):
        raise MasterNotFound(f"{url} answered without a 'pid' field; is that a Corral master?")
    return UPID(pid)
