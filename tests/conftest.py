"""Fixtures shared by the whole suite."""

from __future__ import annotations

import pytest

from libprocess import Runtime, clock, launch
from tests.actors import Collector, Echo


@pytest.fixture
def runtime():
    """A runtime serving in a background thread on 127.0.0.1, stopped after the test."""
    with Runtime("127.0.0.1", 0) as running:
        yield running


@pytest.fixture
def paused_clock():
    """The process-wide runtime clock, paused for the test and resumed after it."""
    clock.pause()
    try:
        yield clock
    finally:
        clock.resume()


@pytest.fixture(scope="module")
def echo():
    """An Echo actor in a child process, shared by a module's tests that only talk to it."""
    child = launch(Echo)
    try:
        yield child
    finally:
        child.stop(timeout=5)


@pytest.fixture
def home():
    """The test's own runtime for multi-process tests (modules may override it)."""
    with Runtime("127.0.0.1", 0) as running:
        yield running


@pytest.fixture
def collector(home):
    """A ``Collector`` in ``home``: what it receives, for the test thread to read."""
    process = Collector()
    home.spawn(process)
    return process
