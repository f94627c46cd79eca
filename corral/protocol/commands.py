"""A command to run: what a task, an executor or a COMMAND check executes.

Its own module because both the infos and the checks carry one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from corral.protocol.wire import Wire, wrapped


@dataclass(frozen=True, slots=True)
class CommandURI(Wire):
    """A file the agent fetches into the sandbox before starting the command."""

    value: str
    executable: bool = False
    extract: bool = True
    cache: bool = False
    output_file: str | None = None


@dataclass(frozen=True, slots=True)
class EnvironmentVariable(Wire):
    name: str
    value: str = ""


@dataclass(frozen=True, slots=True)
class CommandInfo(Wire):
    """With ``shell`` (the default) ``value`` runs under ``/bin/sh -c``; without, ``value`` is
    the program and ``arguments`` its argv (``arguments[0]`` included, as in Mesos)."""

    value: str | None = None
    shell: bool = True
    arguments: tuple[str, ...] = ()
    environment: tuple[EnvironmentVariable, ...] = field(default=(), metadata=wrapped("variables"))
    uris: tuple[CommandURI, ...] = ()
    user: str | None = None
