"""Mesos's v1 scheduler HTTP API on the master: ``POST /api/v1/scheduler``.

``SchedulerApi.handle`` runs inside the master process for each request. It checks the
request as Mesos does (503 while the master is not ready; then corral/v1/http.py's checks:
405 for a method other than POST, 415/400 for the content type; 400 for a malformed or invalid
call, 406 when the client does not accept JSON), then:

- SUBSCRIBE answers ``200`` with a ``Mesos-Stream-Id`` header (a uuid4) and a chunked
  RecordIO stream of JSON events, written by a ``SchedulerBridge`` spawned for it: the
  framework's scheduler driver towards the master (master/scheduler_api_bridge.py).
- Every other call names its framework and carries that framework's stream id; it is turned
  into the native message of docs/flows.md and sent to the master from the bridge's pid, and
  answered ``202 Accepted`` with ``Content-Length: 0``.

Decided where Mesos leaves room, or where Corral does less:

- JSON only: a protobuf Content-Type is 415 and an Accept that allows only protobuf is 406,
  each saying that Corral speaks JSON.
- A SUBSCRIBE with ``framework_id`` but no ``framework_info.id`` takes the id (Mesos refuses
  it as a mismatch); both set and different is 400.
- ``REQUEST`` and the inverse-offer calls are accepted and ignored (Corral's allocator has no
  use for requests and it sends no inverse offers); ``UPDATE_FRAMEWORK`` and the operation
  feedback calls are 501. ACCEPT operations Corral cannot apply (CREATE, DESTROY...) are
  dropped with a warning; their resources go back with the offer's unused ones.
- ``Subscribe.suppressed_roles`` is honoured with a SUPPRESS right after SUBSCRIBED.
"""

from __future__ import annotations

import uuid

import structlog
from aiohttp import web

from corral.ids import FrameworkID
from corral.v1.http import JSON, CallError, check_accept, check_request
from libprocess import Stream
from libprocess.http import request_body
from master.scheduler_api_bridge import SchedulerBridge
from master.scheduler_api_calls import API, CALL, SchedulerCall, parse_call
from master.surface import MasterSurface

log = structlog.get_logger("master.scheduler_api")

HEARTBEAT_INTERVAL = 15.0  # seconds between HEARTBEAT events, Mesos's default
STREAM_ID_HEADER = "Mesos-Stream-Id"


class SchedulerApi:
    """The endpoint's state: the live subscriptions. Used only inside the master process."""

    def __init__(self, master: MasterSurface, heartbeat_interval: float = HEARTBEAT_INTERVAL):
        if heartbeat_interval <= 0:
            raise ValueError(f"heartbeat_interval must be positive, got {heartbeat_interval}")
        self.master = master
        self.heartbeat_interval = heartbeat_interval
        # Every bridge spawned and not yet ended (subscribed or still waiting for the master).
        self._bridges: set[SchedulerBridge] = set()
        # The framework's current subscription. Invariant: each value is in _bridges, is
        # subscribed, and its framework_id is the key.
        self._subscriptions: dict[FrameworkID, SchedulerBridge] = {}

    def handle(self, request: web.BaseRequest) -> web.StreamResponse | Stream:
        """Answer one request to ``/api/v1/scheduler`` (inside the master process)."""
        try:
            return self._handle(request)
        except CallError as refused:
            log.info(
                "scheduler_call_refused",
                status=refused.status,
                reason=refused.reason,
                remote=request.remote,
            )
            return refused.response()

    def subscription(self, framework_id: FrameworkID) -> SchedulerBridge | None:
        """The bridge currently streaming to ``framework_id``'s scheduler, if any."""
        return self._subscriptions.get(framework_id)

    # -- requests ---------------------------------------------------------------------------

    def _handle(self, request: web.BaseRequest) -> web.StreamResponse | Stream:
        master = self.master
        if master.master_info is None or master.allocator is None:
            raise CallError(503, "the master is still starting; retry in a moment")
        check_request(request.method, request.headers, API, CALL)
        call = parse_call(request_body(request))
        if call.type == "SUBSCRIBE":
            return self._subscribe(request, call)
        return self._call(request, call)

    def _subscribe(self, request: web.BaseRequest, call: SchedulerCall) -> Stream:
        check_accept(request.headers, (JSON,), API, "SUBSCRIBE")
        if STREAM_ID_HEADER in request.headers:
            raise CallError(
                400,
                f"Subscribe calls should not include the '{STREAM_ID_HEADER}' header: the "
                "master gives the stream id in its answer",
            )
        assert call.subscribe is not None
        stream_id = str(uuid.uuid4())
        bridge: SchedulerBridge | None = None

        def closed() -> None:  # the stream ended: its client went away, or the bridge ended
            if bridge is not None:
                self.master.runtime.terminate(bridge)

        stream = Stream(200, {STREAM_ID_HEADER: stream_id}, JSON, on_close=closed)
        bridge = SchedulerBridge(
            self.master.pid,
            stream,
            stream_id,
            call.subscribe.framework_info,
            call.subscribe.suppressed_roles,
            self.heartbeat_interval,
            on_subscribed=self._subscribed,
            on_ended=self._ended,
        )
        self.master.runtime.spawn(bridge)
        self._bridges.add(bridge)
        log.info(
            "scheduler_subscribe",
            framework_id=call.framework_id,
            stream_id=stream_id,
            bridge=bridge.pid,
            remote=request.remote,
        )
        return stream

    def _call(self, request: web.BaseRequest, call: SchedulerCall) -> web.Response:
        framework_id = call.framework_id
        assert framework_id is not None  # parse_call requires it for every call but SUBSCRIBE
        framework = self.master.state.frameworks.get(framework_id)
        if framework is None:
            raise CallError(
                400,
                f"Framework cannot be found: {framework_id} is not registered with this "
                "master; SUBSCRIBE first",
            )
        if not framework.connected:
            raise CallError(
                403,
                f"Framework is not subscribed: {framework_id} has no connected scheduler; "
                "SUBSCRIBE again with its framework_id",
            )
        bridge = self._subscriptions.get(framework_id)
        if bridge is None or str(bridge.pid) != framework.pid:
            raise CallError(
                403,
                f"Framework is not connected via HTTP: {framework_id} is driven by the "
                f"scheduler at {framework.pid}; SUBSCRIBE over HTTP to take it over",
            )
        stream_id = request.headers.get(STREAM_ID_HEADER)
        if stream_id is None:
            raise CallError(
                400,
                f"All non-subscribe calls should include the '{STREAM_ID_HEADER}' header: "
                "send the one the SUBSCRIBE response carried",
            )
        if stream_id != bridge.stream_id:
            raise CallError(
                400,
                f"The stream ID '{stream_id}' included in this request didn't match the stream "
                f"ID currently associated with framework ID {framework_id}; use the id of "
                "the framework's current SUBSCRIBE response",
            )
        if call.dropped_operations:
            log.warning(
                "operations_unsupported",
                framework_id=framework_id,
                operations=list(call.dropped_operations),
                reason="Corral cannot apply these operations; their resources go back",
            )
        if call.message is None:
            log.info("scheduler_call_ignored", framework_id=framework_id, call=call.type)
        else:
            self.master.runtime.dispatch(bridge, bridge.call, call.message)
            log.debug("scheduler_call", framework_id=framework_id, call=call.type)
        return web.Response(status=202)

    # -- bridges (their notices run inside the master, dispatched) ---------------------------

    def _subscribed(self, bridge: SchedulerBridge, framework_id: FrameworkID) -> None:
        if bridge not in self._bridges:
            return  # ended meanwhile
        old = self._subscriptions.get(framework_id)
        self._subscriptions[framework_id] = bridge
        if old is not None and old is not bridge:
            # Mesos closes the old stream; the master has already told it (FrameworkError)
            # if the framework was connected through it, but the old bridge may not have
            # heard yet.
            self.master.runtime.dispatch(old, old.end, "another subscription took over")

    def _ended(self, bridge: SchedulerBridge) -> None:
        self._bridges.discard(bridge)
        framework_id = bridge.framework_id
        if framework_id is not None and self._subscriptions.get(framework_id) is bridge:
            del self._subscriptions[framework_id]
