"""The whole ``corral services`` process: the scheduler and its REST API on one loop.

``serve(options, on_ready)`` runs it in the foreground until SIGINT or SIGTERM; on the way
out the driver stops with failover, so the framework's tasks keep running and a restart with
the same work directory takes them over.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable

from services.rest_api import RestApi
from services.scheduler import ServicesOptions, ServicesScheduler


class Services:
    def __init__(self, options: ServicesOptions) -> None:
        self.options = options
        self.scheduler = ServicesScheduler(options)
        self.api = RestApi(self.scheduler)

    async def start(self) -> None:
        """The REST API first (so the port is known), then the driver."""
        await self.api.start(self.options.ip, self.options.http_port)
        try:
            await self.scheduler.start()
        except BaseException:
            await self.api.stop()
            raise

    async def stop(self) -> None:
        """Reverse order; every step runs even if one fails, the first error is raised."""
        errors = []
        for step in (self.scheduler.stop, self.api.stop):
            try:
                await step()
            except Exception as error:  # collected
                errors.append(error)
        if errors:
            raise errors[0]


def serve(options: ServicesOptions, on_ready: Callable[[Services], None]) -> int:
    """Run until SIGINT or SIGTERM (0), or until the master refuses the framework (1)."""

    async def main() -> int:
        services = Services(options)
        await services.start()
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stopping.set)
        try:
            on_ready(services)
            stop = loop.create_task(stopping.wait())
            failed = loop.create_task(services.scheduler.wait_failed())
            await asyncio.wait((stop, failed), return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            if failed.done():
                return 1
            failed.cancel()
            return 0
        finally:
            await services.stop()

    return asyncio.run(main())
