"""What the agent takes (agent/admission.py): tasks judged once by the kernel, plus what only
this agent's state can say; executors' registrations and subscriptions, each refusal a
sentence. Plain records, no agent, no containers."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from agent.admission import (
    Ignore,
    NewExecutor,
    Refuse,
    ToExecutor,
    admit_group,
    admit_task,
    registration_refusal,
    subscription_refusal,
)
from agent.executor_lifecycle import (
    ExecutorKind,
    ExecutorLifecycle,
    ExecutorState,
    Registered,
    Reregistered,
)
from agent.executor_run import ExecutorRun, TaskRecord
from agent.framework_run import FrameworkRun
from corral.ids import AgentID, ContainerID, ExecutorID, FrameworkID, TaskID
from corral.protocol import (
    CommandInfo,
    ContainerInfo,
    ExecutorInfo,
    FrameworkInfo,
    Image,
    ImageType,
    MesosContainerInfo,
    TaskInfo,
)
from corral.resources import Resources
from corral.task_states import Reason, TaskState
from libprocess import UPID

FW = FrameworkID("fw-1")
NAMELESS_IMAGE = ContainerInfo(mesos=MesosContainerInfo(image=Image(ImageType.DOCKER)))
SENDER = UPID("executor(1)@127.0.0.1:9")


def framework() -> FrameworkRun:
    return FrameworkRun(FW, FrameworkInfo(user="u", name="f", id=FW), "scheduler(1)@127.0.0.1:9")


def task(task_id: str = "t", **fields) -> TaskInfo:
    fields.setdefault("command", CommandInfo(value="true"))
    fields.setdefault("resources", Resources.parse("cpus:0.1;mem:16"))
    return TaskInfo(name=task_id, task_id=TaskID(task_id), agent_id=AgentID("a"), **fields)


def custom(executor_id: str = "e1", command: str | None = "run-it") -> ExecutorInfo:
    return ExecutorInfo(
        executor_id=ExecutorID(executor_id),
        command=None if command is None else CommandInfo(value=command),
    )


def on(executor: ExecutorInfo, task_id: str) -> TaskInfo:
    return task(task_id, command=None, executor=executor)


def running(fw: FrameworkRun, info: ExecutorInfo, kind=ExecutorKind.CUSTOM, state=None):
    lifecycle = ExecutorLifecycle(kind, f"{info.executor_id}", state or ExecutorState.RUNNING)
    executor = ExecutorRun(FW, info, ContainerID("c"), Path("/sandbox"), lifecycle)
    fw.executors[info.executor_id] = executor
    return executor


def test_a_command_task_gets_an_executor_of_its_own():
    decision = admit_task(framework(), task("t", command=CommandInfo(value="echo hi")), None)
    assert isinstance(decision, NewExecutor) and decision.command_task
    assert decision.argv == "echo hi"
    assert decision.info.executor_id == "t" and decision.info.framework_id == FW
    assert decision.info.name == "Command Executor (Task: t)"
    argv = CommandInfo(value="/bin/echo", shell=False, arguments=("echo", "a"))
    assert admit_task(framework(), task(command=argv), None).argv == ["/bin/echo", "a"]


def test_resources_are_the_masters_to_judge():
    decision = admit_task(framework(), task(resources=Resources()), None)
    assert isinstance(decision, NewExecutor)


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ({"command": None}, "neither 'command' nor 'executor'"),
        ({"executor": custom()}, "both 'command' and 'executor'"),
        ({"command": CommandInfo(value="  ")}, "shell command (shell: true) with no 'value'"),
        ({"command": CommandInfo(value="", shell=False)}, "no 'value' naming the program"),
        ({"container": NAMELESS_IMAGE}, "image has no name"),
        ({"command": None, "executor": custom(command=None)}, "has no 'command' to start it"),
    ],
)
def test_what_a_task_says_is_the_kernels_judgement(fields, needle):
    decision = admit_task(framework(), task(**fields), fields.get("executor"))
    assert isinstance(decision, Refuse)
    assert (decision.state, decision.reason) == (TaskState.TASK_ERROR, Reason.REASON_TASK_INVALID)
    assert needle in decision.message


def test_what_depends_on_this_agent_is_judged_here():
    fw = framework()
    executor = running(fw, custom("e1"))
    executor.tasks[TaskID("held")] = TaskRecord(task("held"))
    assert isinstance(admit_task(fw, task("held"), None), Ignore)
    # An executor (not a task) already has the command task's id.
    taken = admit_task(fw, task("e1"), None)
    assert isinstance(taken, Refuse) and "executor id 'e1' is taken" in taken.message
    # A task for a running custom executor goes to it.
    assert admit_task(fw, on(custom("e1"), "more"), custom("e1")) == ToExecutor(executor)
    # A command task's executor id is not a custom executor's.
    running(fw, ExecutorInfo(ExecutorID("cmd")), ExecutorKind.COMMAND)
    refused = admit_task(fw, on(custom("cmd"), "x"), custom("cmd"))
    assert isinstance(refused, Refuse) and refused.state is TaskState.TASK_ERROR
    assert "is a command task's here" in refused.message
    # An executor that is ending drops what comes for it.
    for state in (ExecutorState.SHUTTING_DOWN, ExecutorState.DESTROYING, ExecutorState.ABORTING):
        running(fw, custom("ending"), state=state)
        dropped = admit_task(fw, on(custom("ending"), "late"), custom("ending"))
        assert isinstance(dropped, Refuse) and dropped.state is TaskState.TASK_DROPPED
        assert dropped.reason is Reason.REASON_EXECUTOR_TERMINATED
    # A framework shutting down drops every launch.
    fw.shutting_down = True
    dropped = admit_task(fw, task("after"), None)
    assert (dropped.state, dropped.reason) == (
        TaskState.TASK_DROPPED,
        Reason.REASON_FRAMEWORK_REMOVED,
    )


def test_a_task_group_is_judged_whole():
    default = ExecutorInfo(ExecutorID("default"))
    assert admit_group(framework(), default, (task("a"), task("b"))) is None
    refused = admit_group(framework(), default, (task("a"), task("b", command=None)))
    assert isinstance(refused, Refuse) and refused.reason is Reason.REASON_TASK_GROUP_INVALID
    assert "task b has neither" in refused.message
    assert admit_group(framework(), default, (task("a", resources=Resources()),)) is None


def test_each_registration_refusal_is_its_own_sentence():
    fw = framework()
    nope = FrameworkID("nope")
    unknown = registration_refusal(None, nope, ExecutorID("e1"), SENDER, Registered())
    assert unknown.startswith("framework nope is not known on this agent")
    missing = registration_refusal(fw, FW, ExecutorID("e9"), SENDER, Registered())
    assert missing.startswith("framework fw-1 has no executor e9 on this agent")
    running(fw, ExecutorInfo(ExecutorID("cmd")), ExecutorKind.COMMAND)
    command = registration_refusal(fw, FW, ExecutorID("cmd"), SENDER, Registered())
    assert "is the command executor of task cmd" in command
    waiting = running(fw, custom("e1"), state=ExecutorState.REGISTERING)
    assert registration_refusal(fw, FW, ExecutorID("e1"), SENDER, Registered()) is None
    wrong = registration_refusal(fw, FW, ExecutorID("e1"), SENDER, Reregistered())
    assert "e1 of framework fw-1 is REGISTERING on this agent" in wrong
    waiting.lifecycle.state = ExecutorState.SHUTTING_DOWN
    ending = registration_refusal(fw, FW, ExecutorID("e1"), SENDER, Registered())
    assert "is SHUTTING_DOWN on this agent: it is being shut down" in ending


def test_subscriptions_are_refused_with_a_status_and_a_sentence():
    fw = framework()
    assert subscription_refusal(None, FW, ExecutorID("e1"))[0] == 400
    running(fw, ExecutorInfo(ExecutorID("cmd")), ExecutorKind.COMMAND)
    status, text = subscription_refusal(fw, FW, ExecutorID("cmd"))
    assert status == 400 and "command executor" in text
    executor = running(fw, custom("e1"), state=ExecutorState.LAUNCHING)
    for state in (ExecutorState.LAUNCHING, ExecutorState.REGISTERING, ExecutorState.RUNNING,
                  ExecutorState.REREGISTERING, ExecutorState.REGISTERED_EARLY):  # fmt: skip
        executor.lifecycle.state = state
        assert subscription_refusal(fw, FW, ExecutorID("e1")) is None, state
    executor.lifecycle.state = ExecutorState.DESTROYING
    status, text = subscription_refusal(fw, FW, ExecutorID("e1"))
    assert status == 409 and "is DESTROYING on this agent" in text


def test_the_kernel_still_judges_resources_for_the_master():
    from corral.task_validation import task_problem

    empty = replace(task(), resources=Resources())
    assert "uses no resources" in task_problem(empty)
    assert task_problem(empty, resources=False) is None
