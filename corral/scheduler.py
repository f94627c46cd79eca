"""The framework API: a ``Scheduler`` (callbacks) and the ``SchedulerDriver`` that runs it.

The driver is embedded in the framework's own program, as Mesos's ``MesosSchedulerDriver``
is: ``start()`` starts a libprocess runtime in a background thread and spawns a
``SchedulerProcess`` actor (``scheduler(N)``) that finds the master from its HTTP address,
registers the framework (retrying with backoff on the runtime clock until the master
answers), links to the master, and re-registers whenever the link breaks and comes back.
The message flows are those of ``docs/flows.md`` ("Frameworks", "Status updates").

Threads: the driver's methods may be called from any thread; each hands its work to the
actor (a dispatch) and returns the driver's status at once. Scheduler callbacks run on one
dedicated callback thread, one at a time and in the order the messages arrived, so a
scheduler that blocks in a callback delays only later callbacks, never the runtime's loop
(the actor keeps receiving, and calls made meanwhile still go out).
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import itertools
import queue
import socket
import threading
from collections.abc import Callable, Iterable
from typing import Any

import structlog

from corral.discovery import MasterNotFound, master_pid
from corral.ids import AgentID, ExecutorID, FrameworkID, OfferID, TaskID
from corral.protocol import (
    Filters,
    FrameworkCapabilityType,
    FrameworkInfo,
    KillPolicy,
    MasterInfo,
    Offer,
    Operation,
    ReconcileTask,
    TaskInfo,
    TaskStatus,
)
from corral.protocol.endpoint import ProtocolProcess, receives
from corral.protocol.messages import (
    AcceptOffers,
    AgentLost,
    DeactivateFramework,
    DeclineOffers,
    ExecutorLost,
    ExecutorToFramework,
    FrameworkError,
    FrameworkRegistered,
    FrameworkReregistered,
    FrameworkToExecutor,
    KillTask,
    Message,
    ReconcileTasks,
    RegisterFramework,
    ReregisterFramework,
    RescindOffer,
    ResourceOffers,
    ReviveOffers,
    StatusUpdate,
    StatusUpdateAcknowledgement,
    SuppressOffers,
    UnregisterFramework,
)
from corral.task_states import Reason, Source, TaskState
from libprocess import UPID, Runtime, Timer

log = structlog.get_logger("corral.scheduler")

INITIAL_BACKOFF = 1.0  # seconds before the first retry of registration or discovery
MAX_BACKOFF = 60.0  # the retry interval doubles up to this
STOP_TIMEOUT = 5.0  # wall-clock guard on the actor's last sends at stop()

_driver_numbers = itertools.count(1)  # scheduler(N): unique per OS process


class Status(enum.Enum):
    """The driver's lifecycle, as Mesos's ``Status`` (``DRIVER_RUNNING``...)."""

    NOT_STARTED = "NOT_STARTED"
    RUNNING = "RUNNING"
    STOPPED = "STOPPED"
    ABORTED = "ABORTED"


class Scheduler:
    """Callbacks from the driver; override what you need, the rest do nothing.

    Every callback runs on the driver's callback thread, one at a time, in the order of the
    messages behind them; it may call the driver freely. A callback that raises is logged
    with its traceback and the driver goes on; a ``status_update`` that raises is not
    acknowledged implicitly, so the update comes again.
    """

    def registered(
        self, driver: SchedulerDriver, framework_id: FrameworkID, master_info: MasterInfo
    ) -> None:
        """The master accepted the framework for the first time and gave it ``framework_id``."""

    def reregistered(self, driver: SchedulerDriver, master_info: MasterInfo) -> None:
        """The framework is registered again (after a disconnection or a failover)."""

    def disconnected(self, driver: SchedulerDriver) -> None:
        """The master is out of reach; the driver re-registers once it is back."""

    def resource_offers(self, driver: SchedulerDriver, offers: list[Offer]) -> None:
        """New offers: launch on them, or decline them (with a filter) to free them."""

    def offer_rescinded(self, driver: SchedulerDriver, offer_id: OfferID) -> None:
        """The offer is no longer valid; a launch on it gets TASK_DROPPED."""

    def status_update(self, driver: SchedulerDriver, status: TaskStatus) -> None:
        """A task changed state. With implicit acknowledgements the driver acknowledges it
        after this returns; otherwise call ``driver.acknowledge_status_update(status)``."""

    def framework_message(
        self, driver: SchedulerDriver, executor_id: ExecutorID, agent_id: AgentID, data: bytes
    ) -> None:
        """An executor sent data (best effort)."""

    def agent_lost(self, driver: SchedulerDriver, agent_id: AgentID) -> None:
        """The agent is unreachable or gone; its tasks' updates follow."""

    def executor_lost(
        self,
        driver: SchedulerDriver,
        executor_id: ExecutorID,
        agent_id: AgentID,
        status: int | None,
    ) -> None:
        """An executor ended (``status`` is its exit status when known)."""

    def error(self, driver: SchedulerDriver, message: str) -> None:
        """The master refused the framework; the driver is already aborted."""


class SchedulerDriver:
    """Connects a ``Scheduler`` to a Corral master and carries its calls.

    ``master`` is the master's HTTP address (``host:port``; the native pid is discovered
    from ``/master/state``) or an explicit pid ``master@host:port``. ``host`` is the local
    address the driver's runtime listens on; by default the interface that routes to the
    master. Every method is thread-safe and returns the driver's ``Status``; a call made
    while the driver is not running does nothing.
    """

    def __init__(
        self,
        scheduler: Scheduler,
        framework: FrameworkInfo,
        master: str,
        implicit_acknowledgements: bool = True,
        *,
        host: str | None = None,
        registration_backoff: float = INITIAL_BACKOFF,
        registration_backoff_max: float = MAX_BACKOFF,
    ) -> None:
        if not isinstance(scheduler, Scheduler):
            raise TypeError(
                f"SchedulerDriver takes a corral.scheduler.Scheduler, got "
                f"{type(scheduler).__name__}; subclass Scheduler"
            )
        if not isinstance(framework, FrameworkInfo):
            raise TypeError(f"framework is a FrameworkInfo, got {type(framework).__name__}")
        self.scheduler = scheduler
        if framework.hostname is None:
            framework = dataclasses.replace(framework, hostname=socket.gethostname())
        self.framework = framework
        self.master = master.strip()
        self.implicit_acknowledgements = implicit_acknowledgements
        if not 0 < registration_backoff <= registration_backoff_max:
            raise ValueError(
                "registration backoff must satisfy 0 < registration_backoff <= "
                f"registration_backoff_max, got {registration_backoff} and "
                f"{registration_backoff_max}"
            )
        self.registration_backoff = registration_backoff
        self.registration_backoff_max = registration_backoff_max
        self._master_upid: UPID | None = None
        if "@" in self.master:
            self._master_upid = UPID(self.master)  # a bad pid raises here, for the caller
            master_host = self._master_upid.host
        else:
            address = self.master.removeprefix("http://").rstrip("/")
            master_host, colon, port = address.rpartition(":")
            if not (colon and master_host and port.isdigit()):
                raise ValueError(
                    f"master is the master's HTTP address 'host:port' (e.g. 127.0.0.1:5050) "
                    f"or its pid 'master@host:port', got {master!r}"
                )
        self._host = host or _local_address_towards(master_host)
        self._lock = threading.Condition()
        self._status = Status.NOT_STARTED  # changes under _lock only; waiters are notified
        self._shutting_down = False  # stop() under way or done: a second stop() returns
        self._shut = False  # stop() has finished: the runtime is down
        self._runtime: Runtime | None = None
        self._process: SchedulerProcess | None = None
        self._callbacks: _CallbackThread | None = None

    # -- lifecycle ----------------------------------------------------------------------

    @property
    def status(self) -> Status:
        return self._status

    @property
    def runtime(self) -> Runtime | None:
        """The driver's runtime once started (tests lose messages with its ``faults``)."""
        return self._runtime

    @property
    def pid(self) -> UPID | None:
        """The driver actor's pid once started (the master links to it)."""
        return self._process.pid if self._process is not None else None

    def start(self) -> Status:
        """Start the runtime and the driver actor, which then registers; once only."""
        with self._lock:
            if self._status is not Status.NOT_STARTED:
                return self._status
            runtime = Runtime(self._host, 0)
            runtime.start()
            self._runtime = runtime
            self._callbacks = _CallbackThread(self)
            self._process = SchedulerProcess(self, f"scheduler({next(_driver_numbers)})")
            self._status = Status.RUNNING
            runtime.spawn(self._process)
            log.info("driver_started", pid=self._process.pid, master=self.master)
            return self._status

    def stop(self, failover: bool = False) -> Status:
        """Stop the driver. Without ``failover`` the framework is torn down at the master
        (``UnregisterFramework``: its tasks are killed); with it, the driver only
        disconnects, and a new driver with the same framework id may take over."""
        self._send_held_declines()
        with self._lock:
            if self._status not in (Status.RUNNING, Status.ABORTED) or self._shutting_down:
                return self._status
            self._shutting_down = True
            if self._status is Status.RUNNING:
                self._status = Status.STOPPED  # from now on calls and callbacks do nothing
            status = self._status
        try:
            self._shut_down(failover)
        finally:
            with self._lock:
                self._shut = True  # join() returns once the last messages are out
                self._lock.notify_all()
        return status

    def abort(self) -> Status:
        """Stop delivering callbacks and tell the master the framework is inactive
        (``DeactivateFramework``); ``join`` returns. ``stop()`` still cleans up after it."""
        with self._lock:
            if self._status is not Status.RUNNING:
                return self._status
            self._status = Status.ABORTED
            self._lock.notify_all()
        self._dispatch("abort")
        return Status.ABORTED

    def join(self, timeout: float | None = None) -> Status:
        """Block until the driver is aborted, or stopped with its last messages sent (or
        ``timeout`` wall-clock seconds pass); the status then."""
        with self._lock:
            if self._status is Status.NOT_STARTED:
                return self._status
            self._lock.wait_for(lambda: self._shut or self._status is Status.ABORTED, timeout)
            return self._status

    def run(self) -> Status:
        """``start()`` then ``join()``."""
        status = self.start()
        return self.join() if status is Status.RUNNING else status

    def _shut_down(self, failover: bool) -> None:
        runtime, process = self._runtime, self._process
        if runtime is None or process is None:
            return
        try:
            runtime.dispatch(process, process.shut_down, failover).result(STOP_TIMEOUT)
        except Exception as error:  # the runtime is stopping anyway; say so and go on
            log.warning("driver_stop_incomplete", error=repr(error))
        runtime.stop()
        if self._callbacks is not None:
            self._callbacks.close()
        log.info("driver_stopped", failover=failover, status=self._status.value)

    # -- calls ----------------------------------------------------------------------------

    def launch_tasks(
        self,
        offer_ids: OfferID | str | Iterable[OfferID | str],
        tasks: Iterable[TaskInfo],
        filters: Filters | None = None,
    ) -> Status:
        """Launch ``tasks`` on the offers (all on one agent): one ACCEPT with one LAUNCH."""
        return self.accept_offers(offer_ids, [Operation.of_launch(*tasks)], filters)

    def accept_offers(
        self,
        offer_ids: OfferID | str | Iterable[OfferID | str],
        operations: Iterable[Operation],
        filters: Filters | None = None,
    ) -> Status:
        """Apply ``operations`` to the offers; what they leave unused is declined with
        ``filters``."""
        ids = _offer_ids(offer_ids)
        operations = tuple(operations)
        for operation in operations:
            if not isinstance(operation, Operation):
                raise TypeError(f"operations are Operation values, got {type(operation).__name__}")
        return self._dispatch("accept", ids, operations, filters)

    def decline_offer(self, offer_id: OfferID | str, filters: Filters | None = None) -> Status:
        """Give the offer back; with ``filters``, keep its resources away that long.

        Declines made inside a scheduler callback go out together when it returns (or before
        the callback's next other call, so order is kept): one DECLINE names every offer
        declined in a row with the same filters. A framework that declines thousands of
        offers a second then costs the master one message per callback, not per offer."""
        ids = _offer_ids(offer_id)
        callbacks = self._callbacks
        if callbacks is not None and callbacks.is_current():
            status = self._status
            if status is Status.RUNNING:
                callbacks.hold_decline(ids, filters)
            return status
        return self._dispatch("decline", ids, filters)

    def kill_task(
        self,
        task_id: TaskID | str,
        agent_id: AgentID | str | None = None,
        kill_policy: KillPolicy | None = None,
    ) -> Status:
        agent = AgentID(agent_id) if agent_id is not None else None
        return self._dispatch("kill", TaskID(task_id), agent, kill_policy)

    def reconcile_tasks(
        self, statuses_or_task_ids: Iterable[TaskStatus | ReconcileTask | TaskID | str] = ()
    ) -> Status:
        """Ask the master for the latest state of these tasks, or of all the framework's
        tasks when the list is empty; the answers come as ``status_update``."""
        tasks = []
        for item in statuses_or_task_ids:
            if isinstance(item, ReconcileTask):
                tasks.append(item)
            elif isinstance(item, TaskStatus):
                tasks.append(ReconcileTask(item.task_id, item.agent_id))
            elif isinstance(item, str):
                tasks.append(ReconcileTask(TaskID(item)))
            else:
                raise TypeError(
                    f"reconcile_tasks takes TaskStatus, ReconcileTask or task ids, "
                    f"got {type(item).__name__}"
                )
        return self._dispatch("reconcile", tuple(tasks))

    def revive_offers(self, roles: Iterable[str] | None = None) -> Status:
        """Remove filters and ask for offers again (for ``roles``, or every role)."""
        return self._dispatch("revive", tuple(roles or ()))

    def suppress_offers(self, roles: Iterable[str] | None = None) -> Status:
        """Ask for no offers (for ``roles``, or every role) until ``revive_offers``."""
        return self._dispatch("suppress", tuple(roles or ()))

    def acknowledge_status_update(self, status: TaskStatus) -> Status:
        """Acknowledge an update explicitly (drivers made with
        ``implicit_acknowledgements=False``); updates without a uuid need none."""
        if self.implicit_acknowledgements:
            raise RuntimeError(
                "acknowledge_status_update() is for explicit acknowledgements, but this driver "
                "acknowledges implicitly; create it with implicit_acknowledgements=False"
            )
        if not isinstance(status, TaskStatus):
            raise TypeError(f"acknowledge a TaskStatus, got {type(status).__name__}")
        return self._dispatch("acknowledge", status)

    def send_framework_message(
        self, executor_id: ExecutorID | str, agent_id: AgentID | str, data: bytes
    ) -> Status:
        """Send ``data`` to an executor through the master (best effort)."""
        if not isinstance(data, bytes):
            raise TypeError(f"framework message data is bytes, got {type(data).__name__}")
        return self._dispatch("framework_message", ExecutorID(executor_id), AgentID(agent_id), data)

    def _send_held_declines(self) -> None:
        """Called from a scheduler callback: send the declines it made so far."""
        callbacks = self._callbacks
        if callbacks is not None and callbacks.held and callbacks.is_current():
            callbacks.send_declines()

    def _dispatch(self, method: str, *args: Any) -> Status:
        """Hand a call to the actor (from any thread); the status at the time of the call."""
        self._send_held_declines()  # what the callback declined goes first, in order
        with self._lock:
            status = self._status
            if status is not Status.RUNNING and method != "abort":
                return status
            process = self._process
            future = self._runtime.dispatch(process, getattr(process, method), *args)
        future.on_failed(lambda error: log.error("driver_call_failed", call=method, error=error))
        return status


class SchedulerProcess(ProtocolProcess):
    """The driver's actor: registration, the master link, and the messages both ways.

    Scheduler callbacks are never run here but posted to the driver's callback thread.
    """

    def __init__(self, driver: SchedulerDriver, id: str) -> None:
        super().__init__(id)
        self.driver = driver
        self.framework = driver.framework
        # A driver given a framework id takes over from an earlier scheduler: failover.
        self.failover = driver.framework.id is not None
        self.master: UPID | None = None  # the master we link to, once discovered
        self.connected = False  # registered with ``master`` and the link holds
        self.running = True  # False once aborted or stopping: incoming messages dropped
        self.backoff = self.driver.registration_backoff
        self.timer: Timer | None = None  # the pending retry (registration or discovery)
        self.detection = 0  # increases per discovery attempt; stale answers are dropped

    # -- registration -----------------------------------------------------------------------

    def initialize(self) -> None:
        self._detect()

    def _detect(self) -> None:
        """Find the master's pid: given, or asked of its HTTP address in a thread."""
        self.timer = None
        if not self.running:
            return
        given = self.driver._master_upid
        if given is not None:
            self._detected(given)
            return
        self.detection += 1
        attempt, runtime, address = self.detection, self.runtime, self.driver.master

        def ask() -> None:
            try:
                pid: UPID | MasterNotFound = master_pid(address)
            except MasterNotFound as error:
                pid = error
            except Exception as error:  # a bug or a surprise: report it, and retry
                pid = MasterNotFound(f"asking {address} for the master failed: {error!r}")
            with contextlib.suppress(RuntimeError):  # the driver stopped while we asked
                runtime.dispatch(self, self._detection_done, attempt, pid)

        threading.Thread(target=ask, name="corral-master-discovery", daemon=True).start()

    def _detection_done(self, attempt: int, result: UPID | MasterNotFound) -> None:
        if attempt != self.detection or not self.running or self.connected:
            return
        if isinstance(result, MasterNotFound):
            log.warning("master_not_found", error=str(result), retry_in=self.backoff)
            self._retry(self._detect)
            return
        self._detected(result)

    def _detected(self, pid: UPID) -> None:
        if self.master is not None and self.master != pid:
            self.unlink(self.master)
        self.master = pid
        self.link(pid)
        self._register()

    def _register(self) -> None:
        self.timer = None
        if self.connected or not self.running or self.master is None:
            return
        if self.framework.id is None:
            self.send_message(self.master, RegisterFramework(self.framework))
        else:
            self.send_message(
                self.master, ReregisterFramework(self.framework, failover=self.failover)
            )
        log.info(
            "framework_registering",
            master=self.master,
            framework_id=self.framework.id,
            retry_in=self.backoff,
        )
        self._retry(self._register)

    def _retry(self, method: Callable[[], None]) -> None:
        """Run ``method`` after the current backoff (runtime clock), then double it."""
        self._cancel_timer()
        self.timer = self.delay(self.backoff, method)
        self.backoff = min(self.backoff * 2, self.driver.registration_backoff_max)

    def _cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _from_master(self, sender: UPID | None, message: Message) -> bool:
        """True if the message should be handled: running, and from the current master."""
        if not self.running:
            return False
        if sender is None or sender != self.master:
            log.warning(
                "message_not_from_master",
                message=message.NAME,
                sender=sender,
                master=self.master,
            )
            return False
        return True

    @receives(FrameworkRegistered)
    def framework_registered(self, sender: UPID | None, message: FrameworkRegistered) -> None:
        if not self._from_master(sender, message):
            return
        if self.connected:
            return  # an answer to a retry: already registered
        self._connected(message.framework_id)
        self._post(self.driver.scheduler.registered, message.framework_id, message.master_info)

    @receives(FrameworkReregistered)
    def framework_reregistered(self, sender: UPID | None, message: FrameworkReregistered) -> None:
        if not self._from_master(sender, message):
            return
        if self.connected:
            return
        if self.framework.id is not None and message.framework_id != self.framework.id:
            log.error(
                "framework_reregistered_with_another_id",
                expected=self.framework.id,
                got=message.framework_id,
            )
            return
        self._connected(message.framework_id)
        self._post(self.driver.scheduler.reregistered, message.master_info)

    def _connected(self, framework_id: FrameworkID) -> None:
        self._cancel_timer()
        self.backoff = self.driver.registration_backoff
        self.connected = True
        self.link(self.master)  # idempotent; relinks if an exit raced with the answer
        self.failover = False  # later re-registrations are reconnections, not failovers
        self.framework = dataclasses.replace(self.framework, id=framework_id)
        log.info("framework_registered", framework_id=framework_id, master=self.master)

    def exited(self, pid: UPID) -> None:
        if pid != self.master or not self.running:
            return
        was_connected = self.connected
        self.connected = False
        log.warning("master_disconnected", master=pid, retry_in=self.backoff)
        self._retry(self._detect)  # scheduled before the callback is posted
        if was_connected:
            self._post(self.driver.scheduler.disconnected)

    # -- from the master --------------------------------------------------------------------

    def _deliverable(self, sender: UPID | None, message: Message) -> bool:
        if not self._from_master(sender, message):
            return False
        if not self.connected:
            log.info("message_dropped_while_disconnected", message=message.NAME)
            return False
        return True

    @receives(ResourceOffers)
    def resource_offers(self, sender: UPID | None, message: ResourceOffers) -> None:
        if self._deliverable(sender, message):
            self._post(self.driver.scheduler.resource_offers, list(message.offers))

    @receives(RescindOffer)
    def rescind_offer(self, sender: UPID | None, message: RescindOffer) -> None:
        if self._deliverable(sender, message):
            self._post(self.driver.scheduler.offer_rescinded, message.offer_id)

    @receives(StatusUpdate)
    def status_update(self, sender: UPID | None, message: StatusUpdate) -> None:
        if not self._deliverable(sender, message):
            return  # unacknowledged: the agent sends it again
        status = message.status
        # Updates the master made itself (no agent pid, no uuid) need no acknowledgement.
        implicit = (
            self.driver.implicit_acknowledgements and status.uuid is not None and bool(message.pid)
        )
        self._post(
            self.driver.scheduler.status_update, status, acknowledge=status if implicit else None
        )

    @receives(ExecutorToFramework)
    def executor_to_framework(self, sender: UPID | None, message: ExecutorToFramework) -> None:
        if self._deliverable(sender, message):
            self._post(
                self.driver.scheduler.framework_message,
                message.executor_id,
                message.agent_id,
                message.data,
            )

    @receives(AgentLost)
    def agent_lost(self, sender: UPID | None, message: AgentLost) -> None:
        if self._deliverable(sender, message):
            self._post(self.driver.scheduler.agent_lost, message.agent_id)

    @receives(ExecutorLost)
    def executor_lost(self, sender: UPID | None, message: ExecutorLost) -> None:
        if self._deliverable(sender, message):
            self._post(
                self.driver.scheduler.executor_lost,
                message.executor_id,
                message.agent_id,
                message.status,
            )

    @receives(FrameworkError)
    def framework_error(self, sender: UPID | None, message: FrameworkError) -> None:
        if not self._from_master(sender, message):
            return
        log.error("framework_error", message=message.message)
        driver = self.driver

        def abort_then_tell() -> None:  # as Mesos: the driver is aborted, then told why
            driver.abort()
            driver.scheduler.error(driver, message.message)

        self.driver._callbacks.post(abort_then_tell, force=True)

    def _post(
        self, callback: Callable[..., Any], *args: Any, acknowledge: TaskStatus | None = None
    ) -> None:
        """Queue ``callback(driver, *args)`` for the callback thread; ``acknowledge`` is the
        status to acknowledge once it returns."""
        driver = self.driver
        driver._callbacks.post(lambda: callback(driver, *args), acknowledge=acknowledge)

    # -- calls from the driver (dispatched) -------------------------------------------------

    def _can_send(self, call: str) -> bool:
        if self.running and self.connected:
            return True
        log.warning("call_dropped_while_disconnected", call=call, master=self.master)
        return False

    def accept(
        self,
        offer_ids: tuple[OfferID, ...],
        operations: tuple[Operation, ...],
        filters: Filters | None,
    ) -> None:
        if not self._can_send("accept_offers"):
            if self.running:
                self._drop_launches(operations)
            return
        message = AcceptOffers(self.framework.id, offer_ids, operations, filters)
        self.send_message(self.master, message)

    def _drop_launches(self, operations: tuple[Operation, ...]) -> None:
        """Tasks launched while disconnected never reach the master: tell the scheduler,
        as Mesos's driver does (TASK_DROPPED for PARTITION_AWARE frameworks, else LOST)."""
        partition_aware = self.framework.has_capability(FrameworkCapabilityType.PARTITION_AWARE)
        state = TaskState.TASK_DROPPED if partition_aware else TaskState.TASK_LOST
        for operation in operations:
            for task in operation.launched_tasks():
                status = TaskStatus(
                    task.task_id,
                    state,
                    message="the driver is not connected to a master; launch again later",
                    source=Source.SOURCE_MASTER,
                    reason=Reason.REASON_MASTER_DISCONNECTED,
                    agent_id=task.agent_id,
                )
                self._post(self.driver.scheduler.status_update, status)

    def decline(self, offer_ids: tuple[OfferID, ...], filters: Filters | None) -> None:
        if self._can_send("decline_offer"):
            self.send_message(self.master, DeclineOffers(self.framework.id, offer_ids, filters))

    def kill(
        self, task_id: TaskID, agent_id: AgentID | None, kill_policy: KillPolicy | None
    ) -> None:
        if self._can_send("kill_task"):
            message = KillTask(self.framework.id, task_id, agent_id, kill_policy)
            self.send_message(self.master, message)

    def reconcile(self, tasks: tuple[ReconcileTask, ...]) -> None:
        if self._can_send("reconcile_tasks"):
            self.send_message(self.master, ReconcileTasks(self.framework.id, tasks))

    def revive(self, roles: tuple[str, ...]) -> None:
        if self._can_send("revive_offers"):
            self.send_message(self.master, ReviveOffers(self.framework.id, roles))

    def suppress(self, roles: tuple[str, ...]) -> None:
        if self._can_send("suppress_offers"):
            self.send_message(self.master, SuppressOffers(self.framework.id, roles))

    def acknowledge(self, status: TaskStatus) -> None:
        if status.uuid is None:
            return  # the master's own updates (reconciliation) need no acknowledgement
        if status.agent_id is None:
            log.warning("acknowledgement_without_agent", task_id=status.task_id)
            return
        if self._can_send("acknowledge_status_update"):
            message = StatusUpdateAcknowledgement(
                status.agent_id, self.framework.id, status.task_id, status.uuid
            )
            self.send_message(self.master, message)

    def framework_message(self, executor_id: ExecutorID, agent_id: AgentID, data: bytes) -> None:
        if self._can_send("send_framework_message"):
            message = FrameworkToExecutor(agent_id, self.framework.id, executor_id, data)
            self.send_message(self.master, message)

    def abort(self) -> None:
        if self.running and self.connected:
            self.send_message(self.master, DeactivateFramework(self.framework.id))
        self.running = False
        self._cancel_timer()

    def shut_down(self, failover: bool) -> None:
        """The driver stops: teardown unless ``failover``; the link then just ends."""
        if not failover and self.connected and self.framework.id is not None:
            self.send_message(self.master, UnregisterFramework(self.framework.id))
        self.running = False
        self.connected = False
        self._cancel_timer()


class _CallbackThread:
    """Runs scheduler callbacks one at a time, in order, off the runtime's loop.

    An item posted for a status update carries the status to acknowledge after the callback
    returns (implicit acknowledgements): the acknowledgement goes back through the actor, so
    it is ordered with everything else the driver sends.
    """

    _CLOSE = object()

    def __init__(self, driver: SchedulerDriver) -> None:
        self.driver = driver
        self.queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        # Declines the running callback made, not sent yet: [offer ids, filters] per run.
        self.held: list[tuple[list[OfferID], Filters | None]] = []
        self.thread = threading.Thread(
            target=self._serve, name="corral-scheduler-callbacks", daemon=True
        )
        self.thread.start()

    def post(
        self, call: Callable[[], Any], acknowledge: TaskStatus | None = None, force: bool = False
    ) -> None:
        self.queue.put((call, acknowledge, force))

    def is_current(self) -> bool:
        """Whether the caller is a callback this thread runs."""
        return threading.get_ident() == self.thread.ident

    def hold_decline(self, offer_ids: tuple[OfferID, ...], filters: Filters | None) -> None:
        """Keep a decline made by the running callback for ``send_declines``."""
        held = self.held
        if held and held[-1][1] == filters:
            held[-1][0].extend(offer_ids)
        else:
            held.append((list(offer_ids), filters))

    def send_declines(self) -> None:
        """Send the held declines: one DECLINE per run of equal filters, in order."""
        held, self.held = self.held, []
        driver = self.driver
        for offer_ids, filters in held:
            driver._dispatch("decline", tuple(offer_ids), filters)

    def close(self) -> None:
        """Let the thread end after the callback under way (not waited for: it may be the
        caller, or blocked in the scheduler's code)."""
        self.queue.put(self._CLOSE)

    def _serve(self) -> None:
        driver = self.driver
        while True:
            item = self.queue.get()
            if item is self._CLOSE:
                return
            call, acknowledge, force = item
            if driver.status is not Status.RUNNING and not force:
                continue  # stopped or aborted: no more callbacks
            try:
                call()
            except Exception:
                log.exception("scheduler_callback_failed", unacknowledged=acknowledge is not None)
                continue
            finally:
                if self.held:
                    self.send_declines()
            if acknowledge is not None and driver.status is Status.RUNNING:
                # Stopped in between: not acknowledged, so the agent resends; nothing is lost.
                with contextlib.suppress(RuntimeError):
                    driver._runtime.dispatch(driver._process, "acknowledge", acknowledge)


def _offer_ids(offer_ids: OfferID | str | Iterable[OfferID | str]) -> tuple[OfferID, ...]:
    if isinstance(offer_ids, str):
        return (OfferID(offer_ids),)
    ids = tuple(OfferID(offer_id) for offer_id in offer_ids)
    if not ids:
        raise ValueError("name at least one offer id")
    return ids


def _local_address_towards(host: str) -> str:
    """The local IP address that routes to ``host`` (no packet is sent), so the master can
    reach the driver back; 127.0.0.1 if it cannot be found."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect((host, 9))
            return probe.getsockname()[0]
    except OSError:
        log.warning("local_address_unknown", master_host=host, using="127.0.0.1")
        return "127.0.0.1"
