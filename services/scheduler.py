"""The framework: the coordinator on a ``SchedulerDriver``, driven from one asyncio loop.

Where changes are serialized: the driver's callbacks run on its callback thread and only
hand their arguments to the loop (``call_soon_threadsafe``); REST requests run on the loop
already. So every change of the coordinator happens on that one loop, one at a time, and
the effects it returns are carried out right after (driver calls are thread-safe and do not
block). Status updates are acknowledged explicitly, only once the coordinator has taken
(and stored) them: an update that a crash kept from being stored comes again.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import structlog

from corral.ids import AgentID, FrameworkID, TaskID
from corral.protocol import (
    Filters,
    FrameworkCapability,
    FrameworkCapabilityType,
    FrameworkInfo,
    KillPolicy,
    MasterInfo,
    Offer,
    ReconcileTask,
    TaskStatus,
)
from corral.scheduler import Scheduler, SchedulerDriver
from services.coordinator import (
    Coordinator,
    Decline,
    Kill,
    Launch,
    Probe,
    Reconcile,
    Revive,
    Suppress,
)
from services.events import EventBus
from services.store import LogStore, Store

log = structlog.get_logger("services.scheduler")

TICK = 1.0  # seconds between the coordinator's ticks (backoffs, unreachable instances)


@dataclass(frozen=True)
class ServicesOptions:
    master: str
    work_dir: Path
    ip: str = "127.0.0.1"
    http_port: int = 8080
    framework_name: str = "marathon"
    failover_timeout: float = 604800.0  # a week, Marathon's default
    role: str = "*"
    user: str | None = None


class MarathonFramework(Scheduler):
    """Driver callbacks; each is passed to the loop and returns at once."""

    def __init__(self, service: ServicesScheduler) -> None:
        self.service = service

    def registered(
        self, driver: SchedulerDriver, framework_id: FrameworkID, master_info: MasterInfo
    ) -> None:
        self.service.post(self.service.on_registered, str(framework_id), master_info)

    def reregistered(self, driver: SchedulerDriver, master_info: MasterInfo) -> None:
        self.service.post(self.service.on_registered, None, master_info)

    def disconnected(self, driver: SchedulerDriver) -> None:
        self.service.post(self.service.on_disconnected)

    def resource_offers(self, driver: SchedulerDriver, offers: list[Offer]) -> None:
        self.service.post(self.service.on_offers, offers)

    def status_update(self, driver: SchedulerDriver, status: TaskStatus) -> None:
        self.service.post(self.service.on_status, status)

    def error(self, driver: SchedulerDriver, message: str) -> None:
        log.error("framework_error", message=message)
        self.service.post(self.service.on_error, message)


class ServicesScheduler:
    """Owns the store, the coordinator, the event bus and the driver; see the module
    docstring. ``start()`` and ``stop()`` run on the loop."""

    def __init__(self, options: ServicesOptions, store: Store | None = None) -> None:
        self.options = options
        self.bus = EventBus()
        self.store = store or LogStore(Path(options.work_dir) / "state")
        self.coordinator = Coordinator(self.store, time.time(), self.bus.publish)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.driver: SchedulerDriver | None = None
        self.connected = False
        self.master_info: MasterInfo | None = None
        self.failed: asyncio.Future[str] | None = None
        self._ticker: asyncio.Task | None = None
        self._session: aiohttp.ClientSession | None = None  # readiness checks' client
        self._probes: set[asyncio.Task] = set()  # readiness checks under way (owned here)
        # Callbacks from the driver's thread not yet handled on the loop, under the lock.
        self._inbox: list[tuple] = []
        self._inbox_lock = threading.Lock()
        self._drain_scheduled = False  # a _drain is on its way to the loop
        self._acknowledgements: list[TaskStatus] = []  # to send once the batch is durable
        self.started_at = time.time()

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        if self.loop is not None:
            raise RuntimeError("this ServicesScheduler is already started; start() it once")
        self.loop = asyncio.get_running_loop()
        self.failed = self.loop.create_future()
        framework_id = self.coordinator.framework_id
        info = FrameworkInfo(
            user=self.options.user or getpass.getuser(),
            name=self.options.framework_name,
            id=FrameworkID(framework_id) if framework_id else None,
            failover_timeout=self.options.failover_timeout,
            checkpoint=True,
            role=self.options.role,
            capabilities=(
                FrameworkCapability(FrameworkCapabilityType.PARTITION_AWARE),
                FrameworkCapability(FrameworkCapabilityType.TASK_KILLING_STATE),
            ),
        )
        self.driver = SchedulerDriver(
            MarathonFramework(self),
            info,
            self.options.master,
            implicit_acknowledgements=False,
            host=self.options.ip,
        )
        self.driver.start()
        self._session = aiohttp.ClientSession()
        self._ticker = self.loop.create_task(self._tick())
        log.info("services_started", master=self.options.master, framework_id=framework_id)

    async def stop(self) -> None:
        """Stop ticking, then the driver with failover (the tasks keep running)."""
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        for probe in list(self._probes):
            probe.cancel()
        await asyncio.gather(*self._probes, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
        if self.driver is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.driver.stop, True)
        self.bus.close()
        self.store.close()

    async def wait_failed(self) -> str:
        """Returns the master's reason if it refused the framework for good."""
        assert self.failed is not None, "start() first"
        return await self.failed

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK)
            self.coordinator.tick(time.time())
            self.apply()
            for probe in self.coordinator.readiness_probes(time.time()):
                task = asyncio.get_running_loop().create_task(self._probe(probe))
                self._probes.add(task)
                task.add_done_callback(self._probes.discard)

    async def _probe(self, probe: Probe) -> None:
        """One readiness check: its HTTP status (None when there is no answer) goes back to
        the coordinator, on the loop."""
        status = None
        timeout = aiohttp.ClientTimeout(total=probe.timeout or None)
        try:
            assert self._session is not None
            async with self._session.get(
                probe.url, timeout=timeout, allow_redirects=False, ssl=False
            ) as answer:
                status = answer.status
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            log.info("readiness_check_failed", task_id=probe.task_id, error=repr(error))
        self.coordinator.readiness_result(probe.task_id, status, time.time())
        self.apply()

    # -- from the driver's thread ---------------------------------------------------------

    def post(self, method, *args) -> None:
        """Run ``method(*args)`` on the loop, then carry out the effects. Callbacks that
        arrive together are handled together: their store writes are one batch (one fsync),
        the status updates among them are acknowledged once it is durable, and the effects
        are carried out once."""
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        with self._inbox_lock:
            self._inbox.append((method, args))
            if self._drain_scheduled:
                return
            self._drain_scheduled = True
        loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        with self._inbox_lock:
            calls, self._inbox = self._inbox, []
            self._drain_scheduled = False
        with self.store.batch():
            for method, args in calls:
                try:
                    method(*args)
                except Exception:
                    log.exception("services_callback_failed", method=method.__name__)
        acknowledgements, self._acknowledgements = self._acknowledgements, []
        if self.driver is not None:
            for status in acknowledgements:  # stored (the batch is durable), then acknowledged
                self.driver.acknowledge_status_update(status)
        self.apply()

    # -- on the loop ----------------------------------------------------------------------

    def on_registered(self, framework_id: str | None, master_info: MasterInfo) -> None:
        """``framework_id`` None: re-registered, with the id the coordinator keeps."""
        self.connected = True
        self.master_info = master_info
        known = framework_id or self.coordinator.framework_id
        if known is None:
            log.error("reregistered_without_framework_id")
            return
        self.coordinator.registered(known, time.time())

    def on_disconnected(self) -> None:
        self.connected = False

    def on_error(self, message: str) -> None:
        if self.failed is not None and not self.failed.done():
            self.failed.set_result(message)

    def on_offers(self, offers: list[Offer]) -> None:
        self.coordinator.offers(offers, time.time())

    def on_status(self, status: TaskStatus) -> None:
        self.coordinator.status_update(
            str(status.task_id),
            status.state,
            time.time(),
            healthy=status.healthy,
            message=status.message,
            reason=status.reason.value if status.reason is not None else None,
            agent_id=str(status.agent_id) if status.agent_id is not None else None,
        )
        if status.uuid is not None:
            self._acknowledgements.append(status)

    def apply(self) -> None:
        """Carry out what the coordinator decided."""
        driver = self.driver
        effects = self.coordinator.take_effects()
        if driver is None:
            return
        for effect in effects:
            if isinstance(effect, Launch):
                driver.launch_tasks(
                    [effect.offer_id], effect.tasks, Filters(refuse_seconds=effect.refuse_seconds)
                )
                log.info("tasks_launched", tasks=[str(t.task_id) for t in effect.tasks])
            elif isinstance(effect, Decline):
                for offer_id in effect.offer_ids:
                    driver.decline_offer(offer_id, Filters(refuse_seconds=effect.refuse_seconds))
            elif isinstance(effect, Kill):
                policy = (
                    KillPolicy(grace_period=effect.grace_seconds)
                    if effect.grace_seconds is not None
                    else None
                )
                driver.kill_task(TaskID(effect.task_id), AgentID(effect.agent_id), policy)
            elif isinstance(effect, Reconcile):
                driver.reconcile_tasks(
                    [ReconcileTask(TaskID(t), AgentID(a)) for t, a in effect.tasks]
                )
            elif isinstance(effect, Revive):
                driver.revive_offers()
            elif isinstance(effect, Suppress):
                driver.suppress_offers()
