"""The services half of ``corral demo``: a service deployed, scaled, rolled out, broken and
healed through the front door, as an operator would with the DC/OS CLI or ``corral app``.

It starts ``corral services`` and the front door next to a running local cluster, speaks
Marathon's REST API through the front door's ``/service/marathon``, and prints each step and
the deployment's progress as it goes. Everything it starts, it stops.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from corral.cli.app import Marathon, app_path
from corral.cli.frontdoor import FrontDoorProcess, launch_frontdoor
from corral.cli.services import ServicesProcess, launch_services

APP_ID = "/demo/web"
WAIT = 60.0  # seconds any one step may take before the demo says it is stuck


def web_app(instances: int) -> dict[str, Any]:
    """An HTTP server on its PORT0 (``python3 -m http.server``), health checked over HTTP."""
    serve = f"{sys.executable} -m http.server $PORT0 --bind 127.0.0.1"
    return {
        "id": APP_ID,
        "cmd": f"mkdir -p www && echo ok > www/health && cd www && exec {serve}",
        "cpus": 0.1,
        "mem": 32,
        "instances": instances,
        "portDefinitions": [{"port": 0, "name": "http"}],
        "healthChecks": [
            {
                "protocol": "MESOS_HTTP",
                "path": "/health",
                "portIndex": 0,
                "gracePeriodSeconds": 15,
                "intervalSeconds": 1,
                "timeoutSeconds": 2,
                "delaySeconds": 0,
                "maxConsecutiveFailures": 3,
            }
        ],
        "upgradeStrategy": {"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0.2},
        "backoffSeconds": 0.5,
    }


class ServiceDemo:
    """One run of the service steps against ``master``; ``report`` prints a line."""

    def __init__(self, master: str, work_dir: Path, report: Callable[[str], None]) -> None:
        self.master = master
        self.work_dir = work_dir
        self.report = report
        self.services: ServicesProcess | None = None
        self.door: FrontDoorProcess | None = None

    def run(self) -> bool:
        try:
            return self._steps()
        finally:
            self.stop()

    def _steps(self) -> bool:
        self.services = launch_services(self.master, work_dir=self.work_dir / "services")
        self.door = launch_frontdoor(self.master, services=self.services.address)
        self.report(f"front door {self.door.url}, services scheduler {self.services.url}")
        api = Marathon(f"{self.door.url}/service/marathon")
        path = app_path(APP_ID)

        self.report(f"deploying {APP_ID}: 3 instances with an HTTP health check")
        api.call("POST", "/v2/apps", f"adding {APP_ID}", web_app(3))
        self._settled(api, path, 3)

        self.report(f"scaling {APP_ID} to 5 instances")
        api.call("PUT", path, f"scaling {APP_ID}", {"instances": 5})
        self._settled(api, path, 5)

        self.report(f"rolling out a new version of {APP_ID} (minimumHealthCapacity 0.5)")
        version = api.call("PUT", path, f"updating {APP_ID}", {"env": {"RELEASE": "2"}})
        app = self._settled(api, path, 5, version=version["version"])
        self.report(f"every instance runs version {version['version']}")

        victim = app["tasks"][0]["id"]
        self.report(f"killing instance {victim}; the scheduler replaces it")
        api.call("DELETE", f"{path}/tasks/{victim}", f"killing {victim}")
        app = self._settled(api, path, 5, gone=victim)
        self.report(f"replaced: {len(app['tasks'])} healthy instances, {victim} not among them")

        self.report(f"removing {APP_ID}")
        api.call("DELETE", path, f"removing {APP_ID}")
        self._until(lambda: not api.call("GET", "/v2/apps", "listing apps")["apps"], "removed")
        return True

    def _settled(
        self,
        api: Marathon,
        path: str,
        healthy: int,
        *,
        version: str | None = None,
        gone: str | None = None,
    ) -> dict[str, Any]:
        """Wait until the app has no deployment and ``healthy`` healthy instances (of
        ``version``, without ``gone``), printing how the deployment is doing meanwhile."""
        shown = ""

        def settled() -> dict[str, Any] | None:
            nonlocal shown
            app = api.call("GET", path, "reading the app")["app"]
            tasks = app["tasks"]
            line = (
                f"  {app['tasksRunning']} running, {app['tasksHealthy']} healthy, "
                f"{app['tasksStaged']} staged"
            )
            deployments = app["deployments"]
            if deployments:
                line += f"; deployment {deployments[0]['id'][:8]} in progress"
            if line != shown:
                self.report(line)
                shown = line
            done = not deployments and app["tasksHealthy"] == healthy == len(tasks)
            done = done and (version is None or all(t["version"] == version for t in tasks))
            done = done and (gone is None or all(t["id"] != gone for t in tasks))
            return app if done else None

        return self._until(settled, f"{healthy} healthy instances")

    def _until(self, check: Callable[[], Any], what: str) -> Any:
        deadline = time.monotonic() + WAIT
        while (result := check()) in (None, False):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{APP_ID}: still waiting for {what} after {WAIT:g} s")
            time.sleep(0.2)
        return result

    def stop(self) -> None:
        if self.door is not None:
            self.door.stop()
        if self.services is not None:
            self.services.stop()
