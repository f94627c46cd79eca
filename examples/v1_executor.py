"""A minimal executor written directly against Mesos's v1 executor HTTP API.

It uses the standard library only, as a Mesos user's executor would: no Corral import. Name it
as a task's executor (``ExecutorInfo.command``: ``<python> examples/v1_executor.py``); the
agent starts it with Mesos's environment (``MESOS_AGENT_ENDPOINT``, ``MESOS_FRAMEWORK_ID``,
``MESOS_EXECUTOR_ID``, ...). It subscribes (``POST /api/v1/executor``, a RecordIO stream of
JSON events back), runs each task's ``data`` as a shell command (no data: it finishes at once),
reports TASK_RUNNING then TASK_FINISHED / TASK_FAILED / TASK_KILLED with UPDATE calls, answers
each framework MESSAGE with ``echo: <data>``, and exits on SHUTDOWN. The message ``resubscribe``
makes it drop its connection and subscribe again (as after a network blip).

It writes its environment to ``$MESOS_SANDBOX/environment.json`` and one line per event to
stdout, so that tests can see what it saw.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import subprocess
import sys
import threading
import time
import uuid


def seconds(duration: str, default: float) -> float:
    """Mesos's duration text (``2secs``, ``15mins``, ``500ms``) in seconds."""
    units = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "secs": 1.0, "mins": 60.0, "hrs": 3600.0,
             "days": 86400.0, "weeks": 604800.0}  # fmt: skip
    match = re.fullmatch(r"([0-9.]+)([a-z]+)", duration or "")
    if not match or match.group(2) not in units:
        return default
    return float(match.group(1)) * units[match.group(2)]


class V1Executor:
    def __init__(self) -> None:
        self.endpoint = os.environ["MESOS_AGENT_ENDPOINT"]
        self.framework_id = {"value": os.environ["MESOS_FRAMEWORK_ID"]}
        self.executor_id = {"value": os.environ["MESOS_EXECUTOR_ID"]}
        self.checkpoint = os.environ.get("MESOS_CHECKPOINT") == "1"
        self.backoff_max = seconds(os.environ.get("MESOS_SUBSCRIPTION_BACKOFF_MAX", ""), 2.0)
        self.recovery_timeout = seconds(os.environ.get("MESOS_RECOVERY_TIMEOUT", ""), 900.0)
        self.lock = threading.Lock()
        self.tasks: dict[str, dict] = {}  # launched, not finished
        self.processes: dict[str, subprocess.Popen] = {}
        self.killed: set[str] = set()
        self.unacknowledged: dict[str, dict] = {}  # uuid (base64) -> update
        self.connection: http.client.HTTPConnection | None = None
        self.done = False

    # -- calls ------------------------------------------------------------------------------

    def post(self, call: dict, stream: bool = False):
        host, port = self.endpoint.rsplit(":", 1)
        connection = http.client.HTTPConnection(host, int(port), timeout=None if stream else 10)
        body = json.dumps(
            {"framework_id": self.framework_id, "executor_id": self.executor_id, **call}
        )
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        connection.request("POST", "/api/v1/executor", body, headers)
        response = connection.getresponse()
        if stream:
            return connection, response
        reply = response.read()
        connection.close()
        if response.status != 202:
            print(f"call {call['type']} refused: {response.status} {reply!r}", flush=True)
        return response.status

    def update(self, task_id: str, state: str, message: str = "") -> None:
        status = {
            "task_id": {"value": task_id},
            "state": state,
            "source": "SOURCE_EXECUTOR",
            "message": message,
            "uuid": base64.b64encode(uuid.uuid4().bytes).decode(),
            "timestamp": time.time(),
        }
        with self.lock:
            self.unacknowledged[status["uuid"]] = {"status": status}
            if state not in ("TASK_STAGING", "TASK_STARTING", "TASK_RUNNING"):
                self.tasks.pop(task_id, None)
        print(f"update {task_id} {state}", flush=True)
        self.post({"type": "UPDATE", "update": {"status": status}})

    # -- events -----------------------------------------------------------------------------

    def subscribe(self) -> bool:
        """One subscription, until its stream ends; False if none could be made."""
        with self.lock:
            subscribe = {
                "unacknowledged_tasks": list(self.tasks.values()),
                "unacknowledged_updates": list(self.unacknowledged.values()),
            }
        try:
            connection, response = self.post({"type": "SUBSCRIBE", "subscribe": subscribe}, True)
        except OSError as error:
            print(f"subscribe failed: {error}", flush=True)
            return False
        if response.status != 200:
            print(f"subscribe refused: {response.status} {response.read()!r}", flush=True)
            connection.close()
            return False
        self.connection = connection
        buffer = b""
        try:
            while not self.done:
                chunk = response.read1(65536)
                if not chunk:
                    break
                buffer += chunk
                while b"\n" in buffer:
                    line, rest = buffer.split(b"\n", 1)
                    length = int(line)
                    if len(rest) < length:
                        break
                    record, buffer = rest[:length], rest[length:]
                    self.handle(json.loads(record))
        except (OSError, ValueError, http.client.HTTPException) as error:
            print(f"stream broke: {error!r}", flush=True)
        finally:
            connection.close()
        print("stream ended", flush=True)
        return True

    def handle(self, event: dict) -> None:
        kind = event.get("type")
        print(f"event {kind}", flush=True)
        if kind == "SUBSCRIBED":
            subscribed = event["subscribed"]
            agent = subscribed["agent_info"]["hostname"]
            print(f"subscribed on {agent} in {subscribed['container_id']['value']}", flush=True)
        elif kind == "LAUNCH":
            task = event["launch"]["task"]
            with self.lock:
                self.tasks[task["task_id"]["value"]] = task
            self.update(task["task_id"]["value"], "TASK_RUNNING")
            threading.Thread(target=self.run, args=(task,), daemon=True).start()
        elif kind == "KILL":
            self.kill(event["kill"]["task_id"]["value"])
        elif kind == "ACKNOWLEDGED":
            with self.lock:
                self.unacknowledged.pop(event["acknowledged"]["uuid"], None)
        elif kind == "MESSAGE":
            data = base64.b64decode(event["message"]["data"])
            if data == b"resubscribe":
                self.connection.sock.shutdown(2)  # drop the stream; main() subscribes again
                return
            reply = base64.b64encode(b"echo: " + data).decode()
            self.post({"type": "MESSAGE", "message": {"data": reply}})
        elif kind == "SHUTDOWN":
            with self.lock:
                task_ids = list(self.tasks)
            for task_id in task_ids:
                self.kill(task_id)
            self.done = True
        elif kind == "ERROR":
            print(f"error: {event['error']['message']}", flush=True)

    def run(self, task: dict) -> None:
        task_id = task["task_id"]["value"]
        command = base64.b64decode(task["data"]).decode() if task.get("data") else None
        if command is None:
            self.update(task_id, "TASK_FINISHED", "nothing to run")
            return
        with self.lock:
            if task_id in self.killed:
                return
            process = subprocess.Popen(command, shell=True)
            self.processes[task_id] = process
        code = process.wait()
        with self.lock:
            self.processes.pop(task_id, None)
            if task_id in self.killed:
                return
        state = "TASK_FINISHED" if code == 0 else "TASK_FAILED"
        self.update(task_id, state, f"{command!r} exited with status {code}")

    def kill(self, task_id: str) -> None:
        with self.lock:
            self.killed.add(task_id)
            process = self.processes.pop(task_id, None)
        if process is not None:
            process.terminate()
        self.update(task_id, "TASK_KILLED", "killed")


def main() -> int:
    executor = V1Executor()
    sandbox = os.environ.get("MESOS_SANDBOX", ".")
    mesos = {k: v for k, v in os.environ.items() if k.startswith("MESOS_")}
    with open(os.path.join(sandbox, "environment.json"), "w") as out:
        json.dump({**mesos, "session": os.getsid(0), "pid": os.getpid()}, out)
    # Subscribe, and again with backoff whenever the stream ends: for up to the recovery
    # timeout when the framework checkpoints (the agent may be restarting), a few seconds else.
    patience = executor.recovery_timeout if executor.checkpoint else 5.0
    backoff, deadline = 0.1, time.monotonic() + patience
    while not executor.done and time.monotonic() < deadline:
        if executor.subscribe():
            backoff, deadline = 0.1, time.monotonic() + patience
            continue
        time.sleep(backoff)
        backoff = min(backoff * 2, executor.backoff_max)
    time.sleep(0.2)  # let the last updates' acknowledgements come (best effort)
    return 0


if __name__ == "__main__":
    sys.exit(main())
