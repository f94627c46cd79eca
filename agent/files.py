"""Sandbox browsing, as Mesos's ``/files/browse``, ``/files/read`` and ``/files/download``.

Only the agent's sandboxes are served: everything under ``<work_dir>/frameworks/``. A path is
given as the sandbox's real path (the ``directory`` that ``/state`` lists) or relative to the
work directory as Mesos's virtual paths are (``/frameworks/<fid>/executors/...``). Refused, as
Mesos does: a missing ``path`` or a ``..`` component (400), a path outside the sandboxes or not
there (404), a path whose symlinks lead out of the sandboxes (403).

The functions here block (stat, listdir, read): the agent runs them off its actor, in the
loop's executor (``off_actor``). They never raise for bad input: they return the response
that says what is wrong.
"""

from __future__ import annotations

import asyncio
import grp
import json
import os
import pwd
import stat
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web

from corral.v1.http import CallError, text
from libprocess import Future, Process

log = structlog.get_logger("agent.files")

DEFAULT_READ_LENGTH = 16 * 4096  # bytes /files/read returns when no length is asked (Mesos's)
MAX_READ_LENGTH = 16 * 1024 * 1024  # bytes; a longer read is cut to this


class Refused(CallError):
    """A sandbox request refused with Mesos's status and a reason; a ``CallError``, so the v1
    calls that read sandboxes (LIST_FILES, READ_FILE) answer it as they answer their own."""


def resolve(work_dir: Path, path: str | None) -> Path:
    """The real file ``path`` names inside ``<work_dir>/frameworks``, or ``Refused``."""
    if not path:
        raise Refused(400, "Expecting 'path=value' in query: the sandbox path to serve")
    if ".." in Path(path).parts:
        raise Refused(400, f"'..' is not allowed in path {path!r}; give the path as it is")
    work = Path(work_dir).absolute()
    real_work = work.resolve()
    root = real_work / "frameworks"
    given = Path(path)
    for base in (work, real_work):
        if _within(given, base):
            candidate = real_work / given.relative_to(base)
            break
    else:  # Mesos's virtual form, relative to the work dir: /frameworks/<fid>/executors/...
        candidate = real_work / given.relative_to(given.anchor)
    if not _within(candidate, root):
        raise Refused(
            404, f"path {path!r} is not in a sandbox of this agent; sandboxes are under {root}"
        )
    if not os.path.lexists(candidate):
        raise Refused(404, f"path {path!r} does not exist")
    real = candidate.resolve()
    if not _within(real, root):
        raise Refused(403, f"path {path!r} leads out of the sandboxes (a symlink to {real})")
    return real


def _within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def file_info(path: Path, v1: bool = False) -> dict[str, Any]:
    """Mesos's ``FileInfo`` of ``path`` (not followed): path, nlink, size, mtime, mode, uid and
    gid (names). ``/files/browse`` writes mode as ``drwxr-xr-x`` and mtime in seconds; the v1
    API (``v1``) mode as the number ``st_mode`` and mtime as a TimeInfo."""
    info = path.lstat()
    return {
        "path": str(path),
        "nlink": info.st_nlink,
        "size": info.st_size,
        "mtime": {"nanoseconds": info.st_mtime_ns} if v1 else int(info.st_mtime),
        "mode": info.st_mode if v1 else stat.filemode(info.st_mode),
        "uid": _name(pwd.getpwuid, info.st_uid),
        "gid": _name(grp.getgrgid, info.st_gid),
    }


def _name(lookup: Callable[[int], Any], number: int) -> str:
    """A user's or group's name (``pw_name`` / ``gr_name``), or the number if it has none."""
    try:
        return lookup(number)[0]
    except KeyError:
        return str(number)


def browse(work_dir: Path, query: Mapping[str, str]) -> web.Response:
    """``/files/browse?path=``: the entries of a directory (or the one file), as JSON."""
    try:
        real = resolve(work_dir, query.get("path"))
        if real.is_dir():
            entries = [file_info(child) for child in sorted(real.iterdir())]
        else:
            entries = [file_info(real)]
    except Refused as refused:
        return refused.response()
    except OSError as error:
        return text(500, f"cannot list {query.get('path')!r}: {error.strerror}")
    return web.json_response(entries, dumps=json.dumps)


def read(work_dir: Path, query: Mapping[str, str]) -> web.Response:
    """``/files/read?path=&offset=&length=``: ``{"data", "offset"}``; ``offset=-1``, or one at
    or past the end, gives the file's size as the offset and no data (how Mesos's UI tails a
    file)."""
    try:
        real = resolve(work_dir, query.get("path"))
        offset = _integer(query, "offset", 0)
        length = _integer(query, "length", DEFAULT_READ_LENGTH)
        if offset < -1:
            raise Refused(400, f"offset is -1 (the size) or >= 0, got {offset}")
        if length < 0:
            raise Refused(400, f"length is >= 0, got {length}")
        if real.is_dir():
            raise Refused(400, f"{query.get('path')!r} is a directory; read a file, or browse it")
        size = real.stat().st_size
        if offset == -1 or offset >= size:  # nothing to read: where the end is, as Mesos
            return web.json_response({"data": "", "offset": size})
        with open(real, "rb") as handle:
            handle.seek(offset)
            data = handle.read(min(length, MAX_READ_LENGTH))
    except Refused as refused:
        return refused.response()
    except OSError as error:
        return text(500, f"cannot read {query.get('path')!r}: {error.strerror}")
    return web.json_response({"data": data.decode("utf-8", "replace"), "offset": offset})


def download(work_dir: Path, query: Mapping[str, str]) -> web.Response:
    """``/files/download?path=``: the file's bytes."""
    try:
        real = resolve(work_dir, query.get("path"))
        if real.is_dir():
            raise Refused(400, f"{query.get('path')!r} is a directory; download a file")
        data = real.read_bytes()
    except Refused as refused:
        return refused.response()
    except OSError as error:
        return text(500, f"cannot read {query.get('path')!r}: {error.strerror}")
    return web.Response(
        body=data,
        content_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{real.name}"'},
    )


def _integer(query: Mapping[str, str], name: str, default: int) -> int:
    given = query.get(name)
    if given is None or given == "":
        return default
    try:
        return int(given)
    except ValueError:
        raise Refused(400, f"Failed to parse {name}: {given!r} is not an integer") from None


def off_actor(process: Process, work: Callable[..., web.Response], *args: Any) -> Future[Any]:
    """``work(*args)`` in the loop's executor (files may be large or slow), answered inside
    ``process``; a failure is answered 500, saying so, and logged."""
    loop = asyncio.get_running_loop()
    done = process.run_async(loop.run_in_executor(None, work, *args))
    return done.recover(_failed)


def _failed(future: Future[Any]) -> web.Response:
    error = future.failure
    log.error("http_answer_failed", error=repr(error))
    return web.Response(
        status=500,
        text=f"the agent failed to answer: {error!r} (details in its log)\n",
        content_type="text/plain",
    )
