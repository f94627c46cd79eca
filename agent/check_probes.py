"""The probes a check runs against a task: an HTTP GET, a TCP connect, a command inside the
task's container. Coroutines for the runtime's loop (``Process.run_async``); each answers a
``CheckStatusInfo`` of its type, or raises ``ProbeFailed`` (or TimeoutError) when it gives no
result at all.

As Mesos's checkers: HTTP and TCP go to 127.0.0.1 on the check's port, in the task's network
(the agent's, or the task's own namespace through a socket made there); HTTP does not follow
redirects (a 3xx passes a health check anyway), and ``https`` does not verify the certificate
(as curl ``-k``). The command runs in the task's container with the task's environment plus
the check command's own (``Containerizer.run_inside``).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Mapping

from containerizer import ContainerError, Containerizer
from corral.protocol import CheckStatusInfo, CheckType, CommandInfo, HttpCheck
from corral.protocol.checks import CommandCheckStatus, HttpCheckStatus, TcpCheckStatus
from corral.task_validation import command_argv

TASK_HOST = "127.0.0.1"
_STATUS_LINE_LIMIT = 8192  # bytes of the answer read for its status line


class ProbeFailed(Exception):
    """The probe gave no result (connection refused, a malformed answer, no container)."""


async def http(
    check: HttpCheck,
    timeout: float | None,
    sock: socket.socket | None = None,
    host: str = TASK_HOST,
) -> CheckStatusInfo:
    """GET the check's path; the answer's status code. ``sock``: a socket in the task's own
    network namespace (``Containerizer.network_socket``), None when it shares the agent's."""
    code = await asyncio.wait_for(_get(host, check, sock), timeout)
    return CheckStatusInfo(type=CheckType.HTTP, http=HttpCheckStatus(status_code=code))


async def tcp(
    port: int,
    timeout: float | None,
    sock: socket.socket | None = None,
    host: str = TASK_HOST,
) -> CheckStatusInfo:
    """Connect; ``succeeded`` says whether the connection was made (a refusal is a result,
    a timeout is none)."""
    try:
        _, writer = await asyncio.wait_for(_connect(host, port, sock, None), timeout)
    except OSError:
        succeeded = False
    else:
        succeeded = True
        writer.close()
        await _closed(writer)
    return CheckStatusInfo(type=CheckType.TCP, tcp=TcpCheckStatus(succeeded=succeeded))


async def command(
    containerizer: Containerizer,
    container_id: str,
    info: CommandInfo,
    environment: Mapping[str, str],
    timeout: float | None,
    user: str | None = None,
) -> CheckStatusInfo:
    """Run the command in the container (as ``user``, the task's); its exit code."""
    merged = {**environment, **{variable.name: variable.value for variable in info.environment}}
    try:
        code = await containerizer.run_inside(
            container_id, command_argv(info), merged, timeout, user
        )
    except (ContainerError, OSError, ValueError, LookupError) as error:
        raise ProbeFailed(f"the command could not run: {error}") from error
    return CheckStatusInfo(type=CheckType.COMMAND, command=CommandCheckStatus(exit_code=code))


async def _connect(
    host: str, port: int, sock: socket.socket | None, context: ssl.SSLContext | None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    if sock is None:
        return await asyncio.open_connection(host, port, ssl=context)
    sock.setblocking(False)
    try:
        await asyncio.get_running_loop().sock_connect(sock, (host, port))
    except BaseException:
        sock.close()
        raise
    hostname = host if context is not None else None
    return await asyncio.open_connection(sock=sock, ssl=context, server_hostname=hostname)


async def _get(host: str, check: HttpCheck, sock: socket.socket | None) -> int:
    context = None
    if check.scheme == "https":
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    try:
        reader, writer = await _connect(host, check.port, sock, context)
    except OSError as error:
        raise ProbeFailed(f"cannot connect to {host}:{check.port}: {error}") from error
    try:
        request = (
            f"GET {check.path or '/'} HTTP/1.1\r\nHost: {host}:{check.port}\r\n"
            "User-Agent: corral-check\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        )
        writer.write(request.encode("latin-1"))
        await writer.drain()
        line = await reader.readline()
    except (OSError, ValueError) as error:
        raise ProbeFailed(f"{host}:{check.port} broke off the HTTP exchange: {error}") from error
    finally:
        writer.close()
        await _closed(writer)
    parts = line[:_STATUS_LINE_LIMIT].split()
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        shown = line[:80].decode("latin-1", "replace").strip() or "nothing"
        raise ProbeFailed(f"{host}:{check.port} answered {shown!r}, not an HTTP status line")
    return int(parts[1])


async def _closed(writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, ssl.SSLError):  # the peer went first: closed anyway
        await writer.wait_closed()
