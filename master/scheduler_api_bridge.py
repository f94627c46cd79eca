"""``SchedulerBridge``: the scheduler driver of one v1 HTTP framework's subscription.

An HTTP framework is bridged onto the native protocol so that the master's framework logic
is shared unchanged. Each SUBSCRIBE spawns one bridge, with its own pid, in the master's
runtime. Towards the master it is a driver: it registers (or re-registers, when the
SUBSCRIBE carries a framework id) from its pid, sends the framework's calls from its pid
(so the master's "only from the framework's driver" checks hold), and the master links to
it. Towards the client it writes what the master sends a driver as v1 events on the
SUBSCRIBE stream, and a HEARTBEAT every ``heartbeat_interval`` seconds (runtime clock).

The bridge lives exactly as long as the stream: a client that goes away (the stream closes,
or a write finds it closed) terminates the bridge, and the master sees a driver that exited
(the framework is disconnected and its failover timeout starts). Conversely, when the master
tells the bridge the framework is over (``FrameworkError``: failed over to another
subscription, or removed) or after TEARDOWN, the bridge ends the stream and terminates.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

from corral.ids import FrameworkID
from corral.protocol import FrameworkInfo
from corral.protocol.endpoint import ProtocolProcess, receives
from corral.protocol.messages import (
    AgentLost,
    ExecutorLost,
    ExecutorToFramework,
    FrameworkError,
    FrameworkRegistered,
    FrameworkReregistered,
    Message,
    RegisterFramework,
    ReregisterFramework,
    RescindOffer,
    ResourceOffers,
    StatusUpdate,
    SuppressOffers,
    UnregisterFramework,
)
from libprocess import UPID, Stream, Timer
from master import scheduler_api_events as events

log = structlog.get_logger("master.scheduler_api")


class SchedulerBridge(ProtocolProcess):
    """One subscription: a driver towards the master, a v1 event stream towards the client.

    ``on_subscribed(bridge, framework_id)`` and ``on_ended(bridge)`` are run inside the
    master process (dispatched), so that the API's table of streams stays the master's.
    """

    def __init__(
        self,
        master: UPID,
        stream: Stream,
        stream_id: str,
        framework: FrameworkInfo,
        suppressed_roles: tuple[str, ...],
        heartbeat_interval: float,
        on_subscribed: Callable[[SchedulerBridge, FrameworkID], None],
        on_ended: Callable[[SchedulerBridge], None],
    ) -> None:
        super().__init__()
        self.master = master
        self.stream = stream
        self.stream_id = stream_id
        self.framework = framework
        self.suppressed_roles = suppressed_roles
        self.heartbeat_interval = heartbeat_interval
        self.framework_id: FrameworkID | None = framework.id  # set once SUBSCRIBED is sent
        self.subscribed = False  # SUBSCRIBED written; calls may flow
        self._on_subscribed = on_subscribed
        self._on_ended = on_ended
        self._heartbeat: Timer | None = None
        self._ending = False  # end() was called: the stream is closed, termination follows

    # -- lifecycle ------------------------------------------------------------------------

    def initialize(self) -> None:
        self.link(self.master)
        if self.framework.id is None:
            self.send_message(self.master, RegisterFramework(self.framework))
        else:
            # A new connection for a known framework is a failover, as Mesos treats it:
            # the subscription it had (if any) is told to go.
            self.send_message(self.master, ReregisterFramework(self.framework, failover=True))
        log.info(
            "http_framework_subscribing",
            bridge=self.pid,
            framework_id=self.framework.id,
            name=self.framework.name,
            stream_id=self.stream_id,
        )

    def finalize(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        self.stream.close()
        self.runtime.dispatch(self.master, self._on_ended, self)  # fails quietly if gone
        log.info(
            "http_framework_stream_ended", framework_id=self.framework_id, stream_id=self.stream_id
        )

    def end(self, why: str) -> None:
        """Close the stream and stop being the framework's driver."""
        if self._ending:
            return
        self._ending = True
        log.info("http_framework_stream_closing", framework_id=self.framework_id, reason=why)
        self.stream.close()
        self.terminate()

    def exited(self, pid: UPID) -> None:
        if pid == self.master:
            self.end("the master exited")

    # -- towards the client -----------------------------------------------------------------

    def _write(self, event: events.Event) -> None:
        if self._ending:
            return
        if not self.stream.write(events.record(event)):
            self.end("the client went away")

    def _beat(self) -> None:
        self._heartbeat = self.delay(self.heartbeat_interval, self._beat)
        self._write(events.heartbeat())

    def _from_master(self, sender: UPID | None, message: Message) -> bool:
        if sender != self.master:
            log.warning("message_not_from_master", bridge=self.pid, sender=sender,
                        message=message.NAME)  # fmt: skip
            return False
        return True

    @receives(FrameworkRegistered)
    def registered(self, sender: UPID | None, message: FrameworkRegistered) -> None:
        self._subscribed(sender, message)

    @receives(FrameworkReregistered)
    def reregistered(self, sender: UPID | None, message: FrameworkReregistered) -> None:
        self._subscribed(sender, message)

    def _subscribed(
        self, sender: UPID | None, message: FrameworkRegistered | FrameworkReregistered
    ) -> None:
        if not self._from_master(sender, message) or self.subscribed:
            return
        self.subscribed = True
        self.framework_id = message.framework_id
        # The API learns the stream before the client can read SUBSCRIBED and call.
        self.runtime.dispatch(self.master, self._on_subscribed, self, message.framework_id)
        if self.suppressed_roles:
            self.send_message(
                self.master, SuppressOffers(message.framework_id, self.suppressed_roles)
            )
        self._write(events.subscribed(message.framework_id, self.heartbeat_interval,
                                      message.master_info))  # fmt: skip
        if not self._ending:
            self._beat()  # the first HEARTBEAT right away, as Mesos's heartbeater does
        log.info("http_framework_subscribed", framework_id=message.framework_id,
                 bridge=self.pid, stream_id=self.stream_id)  # fmt: skip

    def _relay(self, sender: UPID | None, message: Message) -> None:
        if not self._from_master(sender, message):
            return
        event = events.from_master(message)
        if event is not None:
            self._write(event)

    @receives(ResourceOffers)
    def offers(self, sender: UPID | None, message: ResourceOffers) -> None:
        self._relay(sender, message)

    @receives(RescindOffer)
    def rescind(self, sender: UPID | None, message: RescindOffer) -> None:
        self._relay(sender, message)

    @receives(StatusUpdate)
    def update(self, sender: UPID | None, message: StatusUpdate) -> None:
        self._relay(sender, message)

    @receives(ExecutorToFramework)
    def executor_message(self, sender: UPID | None, message: ExecutorToFramework) -> None:
        self._relay(sender, message)

    @receives(AgentLost)
    def agent_lost(self, sender: UPID | None, message: AgentLost) -> None:
        self._relay(sender, message)

    @receives(ExecutorLost)
    def executor_lost(self, sender: UPID | None, message: ExecutorLost) -> None:
        self._relay(sender, message)

    @receives(FrameworkError)
    def framework_error(self, sender: UPID | None, message: FrameworkError) -> None:
        if not self._from_master(sender, message):
            return
        log.warning("http_framework_error", framework_id=self.framework_id,
                    message=message.message)  # fmt: skip
        self._write(events.error(message.message))
        self.end(f"the master refused the framework: {message.message}")

    # -- towards the master (dispatched by the API) -----------------------------------------

    def call(self, message: Message) -> None:
        """Send a framework's call to the master from this driver's pid."""
        if not self.subscribed:
            log.warning("http_call_before_subscribed", bridge=self.pid, call=message.NAME)
            return
        self.send_message(self.master, message)
        if isinstance(message, UnregisterFramework):
            self.end("the framework was torn down")  # as Mesos closes a removed one's stream
