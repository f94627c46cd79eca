"""What the front door answers itself: the few DC/OS paths that are no part of Mesos,
Marathon or Mesos-DNS, which the DC/OS command line asks before anything else.

- ``/dcos-metadata/dcos-version.json``: the DC/OS release whose APIs are served. The CLI
  (``dcoscli`` 0.6.1) only shows it (``dcos cluster list``); 1.11 is that CLI's release.
- ``/metadata``: ``CLUSTER_ID`` names the cluster in the CLI's configuration directory, so it
  must be stable for a cluster and differ between clusters, and the CLI only takes a version-4
  UUID; it is derived from the master's address, which is what tells clusters apart on one
  machine (DC/OS keeps a random one in ZooKeeper).
- ``/pkgpanda/active.buildinfo.full.json``: ``dcos cluster setup`` sends a HEAD here to learn
  whether the cluster wants a login (a 401 with ``WWW-Authenticate``); a 200 says security is
  disabled, which is what Corral is.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

DCOS_RELEASE = "1.11.0"


def cluster_id(master: str) -> str:
    """A version-4 UUID (the form the DC/OS CLI accepts) made of a hash of ``master``."""
    digest = hashlib.sha256(f"corral cluster {master}".encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def dcos_version(corral_version: str) -> dict[str, Any]:
    return {
        "version": DCOS_RELEASE,
        "dcos-variant": "open",
        "dcos-image-commit": f"corral-{corral_version}",
        "bootstrap-id": f"corral-{corral_version}",
    }


def cluster_metadata(master: str, public_ip: str) -> dict[str, Any]:
    return {"CLUSTER_ID": cluster_id(master), "PUBLIC_IPV4": public_ip}
