"""A libprocess-style actor runtime: processes, messages over ZeroMQ, futures, timers.

The names below are the whole public surface; the modules behind them are private
to the package unless a name is imported from them here.
"""

from libprocess.clock import Clock, Timer, clock
from libprocess.faults import DropRule, Faults
from libprocess.future import (
    DiscardedError,
    Future,
    FutureError,
    FutureTimeout,
    Promise,
    State,
    collect,
)
from libprocess.host import ProcessTerminated
from libprocess.http import Stream, request_body
from libprocess.launch import Launched, LaunchError, LaunchOptions, launch, serve
from libprocess.process import Process, handler, route
from libprocess.runtime import Runtime, UnknownProcess
from libprocess.transport import TransportConfig
from libprocess.upid import UPID, InvalidUPID
from libprocess.wire import MessageTooLarge, UnencodableBody

__all__ = [
    "UPID",
    "Clock",
    "DiscardedError",
    "DropRule",
    "Faults",
    "Future",
    "FutureError",
    "FutureTimeout",
    "InvalidUPID",
    "LaunchError",
    "LaunchOptions",
    "Launched",
    "MessageTooLarge",
    "Process",
    "ProcessTerminated",
    "Promise",
    "Runtime",
    "State",
    "Stream",
    "Timer",
    "TransportConfig",
    "UnencodableBody",
    "UnknownProcess",
    "clock",
    "collect",
    "handler",
    "launch",
    "request_body",
    "route",
    "serve",
]
