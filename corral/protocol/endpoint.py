"""``ProtocolProcess``: a libprocess actor that speaks Corral's protocol.

Handlers are declared per message type and receive the decoded, validated message::

    class Master(ProtocolProcess):
        @receives(RegisterAgent)
        def register_agent(self, sender: UPID, message: RegisterAgent) -> None: ...

A body that does not decode is the sender's fault: it is counted
(``corral/messages_invalid``), logged with the field path, and nothing else happens; the
handler never sees it. ``send_message`` encodes a typed message to its wire body.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import structlog

from corral.protocol.messages import Message, decode_message
from corral.protocol.wire import ProtocolError
from libprocess import UPID, Process
from libprocess.wire import Plain

log = structlog.get_logger("corral.protocol")

M = TypeVar("M", bound=Message)


def receives(message_type: type[M]) -> Callable[[Callable], Callable]:
    """Mark a method as the handler of ``message_type``: ``method(self, sender, message)``."""

    def mark(method: Callable) -> Callable:
        method.__corral_receives__ = message_type
        return method

    return mark


class ProtocolProcess(Process):
    """Installs a decoding wrapper for every ``@receives`` method of the class."""

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id)
        for klass in reversed(type(self).__mro__):
            for attr, value in vars(klass).items():
                message_type = getattr(value, "__corral_receives__", None)
                if message_type is not None:
                    self.install(message_type.NAME, self._decoding(getattr(self, attr)))

    def send_message(self, to: UPID | str, message: Message) -> None:
        # The codec's wire form holds only plain msgpack values: it may take the fast packer.
        self.send(to, message.NAME, Plain(message.to_wire()))

    def _decoding(self, method: Callable[[UPID | None, Any], Any]) -> Callable:
        message_type = method.__corral_receives__

        def handle(sender: UPID | None, body: Any) -> None:
            try:
                message = decode_message(message_type.NAME, body)
            except ProtocolError as error:
                self._invalid_message(sender, message_type.NAME, error)
                return
            method(sender, message)

        return handle

    def _invalid_message(self, sender: UPID | None, name: str, error: ProtocolError) -> None:
        metrics = self.runtime.metrics
        counter = metrics.get("corral/messages_invalid") or metrics.counter(
            "corral/messages_invalid"
        )
        counter.inc()
        log.warning("message_invalid", process=self.pid, sender=sender, message=name,
                    error=str(error))  # fmt: skip
