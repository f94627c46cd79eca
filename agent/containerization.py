"""The agent's containerizer, built from its flags (``--isolation``, ``--launcher``).

Tasks without an image run in the Mesos containerizer (a launcher and isolators; where
cgroups or namespaces are missing it says so once and runs with what there is); tasks that
name an image run under runc, when runc is installed.
"""

from __future__ import annotations

import structlog

from agent.options import AgentOptions
from containerizer.composing import ComposingContainerizer
from containerizer.mesos import MesosContainerizer
from containerizer.oci import OciContainerizer, RuntimeMissing

log = structlog.get_logger("agent.containerization")


def containerizer_for(options: AgentOptions) -> ComposingContainerizer:
    default = MesosContainerizer(
        isolation=options.isolation,
        launcher=options.launcher,
        runtime_dir=options.runtime_dir,
        isolated_ports=options.isolated_ports(),
        enforce_ports=options.enforce_container_ports,
    )
    try:
        images: OciContainerizer | None = OciContainerizer(options.work_dir)
        missing = ""
    except RuntimeMissing as error:
        images, missing = None, str(error)
        log.warning("images_unavailable", reason=missing)
    return ComposingContainerizer(default, images, missing)
