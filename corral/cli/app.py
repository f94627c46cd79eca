"""``corral app add|list|show|scale|restart|remove`` and ``corral deployments``: the services
scheduler's apps through Marathon's REST API (``/v2/apps``, ``/v2/deployments``), for those
without the DC/OS command line. By default through the front door
(``http://127.0.0.1:8000/service/marathon``); ``--url`` or ``CORRAL_MARATHON_URL`` name
another (the scheduler's own address works too)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

DEFAULT_URL = "http://127.0.0.1:8000/service/marathon"
URL_VARIABLE = "CORRAL_MARATHON_URL"
TIMEOUT = 30.0  # seconds for one answer


class MarathonError(Exception):
    """An answer other than a success, said as a sentence (``str(error)``)."""

    def __init__(self, sentence: str, status: int | None = None) -> None:
        super().__init__(sentence)
        self.status = status


def table(rows: list[list[str]], header: list[str]) -> str:
    """Columns as ``corral tasks`` prints them: left-aligned, two spaces apart."""
    widths = [max([len(h)] + [len(row[i]) for row in rows]) for i, h in enumerate(header)]
    lines = [header, *rows]
    cells = ("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in lines)
    return "\n".join(cell.rstrip() for cell in cells)


def error_sentence(status: int, body: bytes, what: str) -> str:
    """What went wrong, from Marathon's error JSON (``message``, and for a 422 every field
    path with its problems, one a line) or, when the body is not JSON (the front door's own
    502 or 404), from its text."""
    try:
        answer = json.loads(body)
    except ValueError:
        text = body.decode("utf-8", "replace").strip()
        return f"{what}: {status}: {text}" if text else f"{what}: HTTP {status}"
    if not isinstance(answer, dict):
        return f"{what}: HTTP {status}: {answer}"
    message = str(answer.get("message") or f"HTTP {status}")
    lines = [f"{what}: {message}"]
    for detail in answer.get("details") or []:
        if not isinstance(detail, dict):
            continue
        path = detail.get("path", "self")
        for problem in detail.get("errors") or [detail.get("error", "")]:
            lines.append(f"  {path}: {problem}")
    if status == 409 and answer.get("deployments"):
        held = ", ".join(str(d.get("id")) for d in answer["deployments"] if isinstance(d, dict))
        lines.append(f"  held by deployment(s) {held}; pass --force to override them")
    return "\n".join(lines)


class Marathon:
    """A small client of Marathon's REST API at ``url`` (``.../service/marathon``)."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def call(self, method: str, path: str, what: str, body: Any = None, **query: Any) -> Any:
        params = {k: str(v).lower() if isinstance(v, bool) else v for k, v in query.items()}
        url = self.url + path + (f"?{urllib.parse.urlencode(params)}" if params else "")
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method)
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
                raw = response.read()
        except urllib.error.HTTPError as error:
            raise MarathonError(
                error_sentence(error.code, error.read(), what), error.code
            ) from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise MarathonError(
                f"{what}: could not reach {self.url} ({reason}); is the front door running "
                f"(`corral local` prints its URL)? Name another with --url or {URL_VARIABLE}"
            ) from None
        return json.loads(raw) if raw.strip() else None


def app_path(app_id: str) -> str:
    """``/v2/apps/<id>``: Marathon's ids are absolute (``web`` is ``/web``)."""
    stripped = app_id.strip("/")
    if not stripped:
        raise MarathonError(f"an app id names an app, e.g. /web; got {app_id!r}")
    return "/v2/apps/" + urllib.parse.quote(stripped)


def apps_table(apps: list[dict[str, Any]]) -> str:
    rows = []
    for app in apps:
        wanted = app.get("instances", 0)
        health = "-"
        if app.get("healthChecks"):
            health = f"{app.get('tasksHealthy', 0)}/{wanted}"
        rows.append(
            [
                str(app.get("id", "?")),
                f"{app.get('tasksRunning', 0)}/{wanted}",
                health,
                f"{app.get('cpus', 0):g}",
                f"{app.get('mem', 0):g}",
                ",".join(str(d.get("id")) for d in app.get("deployments") or []) or "-",
                str(app.get("cmd") or " ".join(app.get("args") or []) or "-"),
            ]
        )
    return table(rows, ["ID", "RUNNING", "HEALTHY", "CPUS", "MEM", "DEPLOYMENTS", "CMD"])


def deployments_table(deployments: list[dict[str, Any]]) -> str:
    rows = []
    for deployment in deployments:
        actions = deployment.get("currentActions") or []
        rows.append(
            [
                str(deployment.get("id", "?")),
                ",".join(deployment.get("affectedApps") or []) or "-",
                ",".join(f"{a.get('action')} {a.get('app')}" for a in actions) or "-",
                f"{deployment.get('currentStep', 0)}/{deployment.get('totalSteps', 0)}",
                str(deployment.get("version", "-")),
            ]
        )
    return table(rows, ["ID", "APPS", "ACTIONS", "STEP", "VERSION"])


def tasks_table(tasks: list[dict[str, Any]]) -> str:
    rows = [
        [
            str(task.get("id", "?")),
            str(task.get("state", "?")),
            str(task.get("host", "?")),
            ",".join(str(p) for p in task.get("ports") or []) or "-",
            _health(task),
            str(task.get("startedAt") or "-"),
        ]
        for task in tasks
    ]
    return table(rows, ["TASK", "STATE", "HOST", "PORTS", "HEALTH", "STARTED"])


def _health(task: dict[str, Any]) -> str:
    results = task.get("healthCheckResults") or []
    if not results:
        return "-"
    return "healthy" if all(r.get("alive") for r in results) else "unhealthy"


# -- the command line -----------------------------------------------------------------------


def add_parsers(commands: argparse._SubParsersAction) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--url",
        default=None,
        help=f"Marathon's API (default: ${URL_VARIABLE}, else {DEFAULT_URL}, the front door's)",
    )
    common.add_argument("--json", action="store_true", help="print the API's JSON answer")

    app = commands.add_parser("app", help="the services scheduler's apps (Marathon's API)")
    verbs = app.add_subparsers(dest="verb", metavar="VERB", required=True)
    add = verbs.add_parser("add", parents=[common], help="post an app definition (JSON FILE)")
    add.add_argument("file", metavar="FILE", help="Marathon's app JSON; '-' reads stdin")
    verbs.add_parser("list", parents=[common], help="the apps, with instances running")
    show = verbs.add_parser("show", parents=[common], help="one app's definition and tasks")
    show.add_argument("id")
    scale = verbs.add_parser("scale", parents=[common], help="set an app's instances")
    scale.add_argument("id")
    scale.add_argument("instances", type=int)
    restart = verbs.add_parser("restart", parents=[common], help="replace every instance")
    restart.add_argument("id")
    remove = verbs.add_parser("remove", parents=[common], help="stop an app and delete it")
    remove.add_argument("id")
    for verb in (scale, restart, remove):
        verb.add_argument(
            "--force", action="store_true", help="override deployments holding the app"
        )
    commands.add_parser(
        "deployments", parents=[common], help="the deployments under way (Marathon's API)"
    )


def run(args: argparse.Namespace) -> int:
    url = args.url or os.environ.get(URL_VARIABLE) or DEFAULT_URL
    try:
        answer, text = _dispatch(Marathon(url), args)
    except MarathonError as error:
        print(f"corral {_command(args)}: {error}", file=sys.stderr)
        return 1
    print(json.dumps(answer, indent=2) if args.json else text)
    return 0


def _command(args: argparse.Namespace) -> str:
    return f"app {args.verb}" if args.subcommand == "app" else args.subcommand


def _dispatch(api: Marathon, args: argparse.Namespace) -> tuple[Any, str]:
    if args.subcommand == "deployments":
        deployments = api.call("GET", "/v2/deployments", "listing the deployments") or []
        return deployments, deployments_table(deployments) if deployments else "no deployments"
    verb = args.verb
    if verb == "list":
        answer = api.call("GET", "/v2/apps", "listing the apps", embed="apps.counts")
        listed = answer.get("apps", [])
        return answer, apps_table(listed) if listed else "no apps"
    if verb == "add":
        definition = _read_definition(args.file)
        app = api.call("POST", "/v2/apps", f"adding {definition.get('id', 'the app')}", definition)
        deployment = ",".join(str(d.get("id")) for d in app.get("deployments") or []) or "-"
        return (
            app,
            f"app {app.get('id')} added (version {app.get('version')}, deployment {deployment})",
        )
    path = app_path(args.id)
    app_id = "/" + args.id.strip("/")  # as Marathon names it
    if verb == "show":
        app = api.call("GET", path, f"showing {app_id}", embed="app.tasks")["app"]
        tasks = app.get("tasks") or []
        text = json.dumps({k: v for k, v in app.items() if k != "tasks"}, indent=2)
        return app, text + ("\n\n" + tasks_table(tasks) if tasks else "\n\n(no tasks)")
    if verb == "scale":
        if args.instances < 0:
            raise MarathonError(f"instances cannot be negative, got {args.instances}")
        answer = api.call(
            "PUT", path, f"scaling {app_id}", {"instances": args.instances}, force=args.force
        )
        return answer, _deployed(answer, f"{app_id} scaling to {args.instances}")
    if verb == "restart":
        answer = api.call("POST", path + "/restart", f"restarting {app_id}", force=args.force)
        return answer, _deployed(answer, f"{app_id} restarting")
    if verb == "remove":
        answer = api.call("DELETE", path, f"removing {app_id}", force=args.force)
        return answer, _deployed(answer, f"{app_id} being removed")
    raise AssertionError(f"unhandled verb {verb!r}")


def _deployed(answer: Any, what: str) -> str:
    answer = answer or {}
    deployment, version = answer.get("deploymentId", "-"), answer.get("version", "-")
    return f"{what}: deployment {deployment} (version {version})"


def _read_definition(file: str) -> dict[str, Any]:
    what = "stdin" if file == "-" else file
    try:
        text = sys.stdin.read() if file == "-" else Path(file).read_text()
    except OSError as error:
        raise MarathonError(f"cannot read {what}: {error.strerror or error}") from None
    try:
        definition = json.loads(text)
    except ValueError as error:
        raise MarathonError(
            f"{what} is not JSON ({error}); an app definition is a JSON object"
        ) from None
    if not isinstance(definition, dict):
        raise MarathonError(
            f"{what} holds a JSON {type(definition).__name__}; an app definition is an object"
        )
    return definition
