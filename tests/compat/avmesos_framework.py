"""A framework on ``avmesos.client.MesosClient``, driven from a test thread.

The client is used as its documentation says (``on(...)`` callbacks, ``register()`` blocking
in a thread of its own, ``Offer.accept``, the ``SchedulerDriver`` it hands to SUBSCRIBED);
nothing of it is patched. Its callbacks only put what they get on queues, so the test thread
decides and asserts. ``Calls`` records the HTTP answer to every call the client makes, since the
client itself drops them (it logs at debug level and carries on).
"""

from __future__ import annotations

import getpass
import json
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import requests
from avmesos.client import MesosClient
from avmesos.offers import Offer

TERMINAL = {
    "TASK_FINISHED",
    "TASK_FAILED",
    "TASK_KILLED",
    "TASK_ERROR",
    "TASK_LOST",
    "TASK_DROPPED",
    "TASK_GONE",
    "TASK_GONE_BY_OPERATOR",
    "TASK_UNKNOWN",
}


@dataclass
class Answer:
    """One call the client made to ``/api/v1/scheduler`` and what the master answered."""

    call: str  # the call's "type": SUBSCRIBE, ACCEPT, ACKNOWLEDGE...
    status: int
    content_length: str | None
    text: str


@dataclass
class Calls:
    """Wraps ``requests.post`` (which avmesos calls) to keep every answer of the scheduler API."""

    answers: list[Answer] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wrap(self, post: Any) -> Any:
        def recorded(url: str, data: Any = None, **options: Any) -> requests.Response:
            response = post(url, data, **options)
            if url.endswith("/api/v1/scheduler"):
                call = json.loads(data).get("type", "?") if isinstance(data, str) else "?"
                text = "" if options.get("stream") else response.text
                with self.lock:
                    self.answers.append(
                        Answer(
                            call, response.status_code, response.headers.get("Content-Length"), text
                        )
                    )
            return response

        return recorded

    def of(self, call: str) -> list[Answer]:
        with self.lock:
            return [answer for answer in self.answers if answer.call == call]

    def refused(self) -> list[Answer]:
        """Calls not answered as Mesos answers them (200 for SUBSCRIBE, 202 for the others)."""
        with self.lock:
            return [
                answer
                for answer in self.answers
                if answer.status != (200 if answer.call == "SUBSCRIBE" else 202)
            ]


class AvmesosFramework:
    """One ``MesosClient`` subscribed to the master; its events on queues for the test thread."""

    def __init__(
        self, master_url: str, name: str, wait: float, capabilities: tuple[str, ...] = ()
    ) -> None:
        self.wait = wait
        self.client = MesosClient(
            mesos_urls=[master_url],
            frameworkName=name,
            frameworkUser=getpass.getuser(),
            max_reconnect=1,
        )
        for capability in capabilities:
            self.client.add_capability(capability)
        self.drivers: queue.Queue[MesosClient.SchedulerDriver] = queue.Queue()
        self.offers: queue.Queue[Offer] = queue.Queue()
        self.updates: queue.Queue[dict] = queue.Queue()
        self.errors: queue.Queue[str] = queue.Queue()
        self.held: list[dict] = []  # updates taken off the queue while looking for another task
        self.client.on(MesosClient.SUBSCRIBED, self.drivers.put)
        self.client.on(MesosClient.OFFERS, lambda offers: [self.offers.put(o) for o in offers])
        self.client.on(MesosClient.UPDATE, lambda update: self.updates.put(update["status"]))
        self.client.on(MesosClient.ERROR, self.errors.put)
        self.registered: bool | None = None  # what register() returned, once it has
        self.thread = threading.Thread(target=self._register, name=f"avmesos-{name}", daemon=True)
        self.driver: MesosClient.SchedulerDriver | None = None

    def _register(self) -> None:
        self.registered = self.client.register()

    def start(self) -> MesosClient.SchedulerDriver:
        """Subscribe; returns the driver avmesos hands to its SUBSCRIBED callback."""
        self.thread.start()
        deadline = time.monotonic() + self.wait
        while self.driver is None:
            try:
                self.driver = self.drivers.get(timeout=0.1)
            except queue.Empty:
                if not self.thread.is_alive():
                    raise AssertionError(
                        f"avmesos could not subscribe (register() returned {self.registered}); "
                        "see its log for the master's answer"
                    ) from None
                if time.monotonic() > deadline:
                    raise
        return self.driver

    @property
    def framework_id(self) -> str:
        return self.client.frameworkId

    def next_offer(self) -> Offer:
        return self.offers.get(timeout=self.wait)

    def next_update(self, task_id: str, answer: bool = False) -> dict:
        """The next status of ``task_id`` (v1 JSON); other tasks' statuses wait their turn.

        ``answer``: the next one without a uuid (the master's own answer, to reconciliation
        say), skipping agent updates resent meanwhile (a late acknowledgement gets them resent).
        """
        for index, status in enumerate(self.held):
            if status["task_id"]["value"] == task_id and not (answer and "uuid" in status):
                return self.held.pop(index)
        while True:
            status = self.updates.get(timeout=self.wait)
            if status["task_id"]["value"] != task_id:
                self.held.append(status)
            elif not (answer and "uuid" in status):
                return status

    def until_terminal(self, task_id: str) -> list[dict]:
        seen = [self.next_update(task_id)]
        while seen[-1]["state"] not in TERMINAL:
            seen.append(self.next_update(task_id))
        return seen

    def until_state(self, task_id: str, state: str) -> list[dict]:
        seen = [self.next_update(task_id)]
        while seen[-1]["state"] != state:
            assert seen[-1]["state"] not in TERMINAL, seen
            seen.append(self.next_update(task_id))
        return seen

    def tear_down(self) -> None:
        """TEARDOWN the way avmesos users do: stop the client's loop, then the driver's call."""
        self.client.tearDown()
        if self.driver is not None:
            self.driver.tearDown()

    def wait_stopped(self, timeout: float) -> bool:
        """Whether the client's ``register()`` returned (the master ended the stream)."""
        self.thread.join(timeout)
        return not self.thread.is_alive()

    def disconnect(self) -> None:
        """Leave without tearing down (cleanup after a failed test)."""
        self.client.disconnect_framework()
