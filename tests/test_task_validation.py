"""The kernel's task validation, shared by the master (ACCEPT) and the agent (RunTask)."""

from __future__ import annotations

import pytest

from corral.ids import AgentID, ExecutorID, FrameworkID, TaskID
from corral.protocol import (
    CommandInfo,
    ContainerInfo,
    DockerImage,
    ExecutorInfo,
    ExecutorType,
    Image,
    ImageType,
    MesosContainerInfo,
    Operation,
    TaskInfo,
)
from corral.resources import Resources
from corral.task_validation import (
    InvalidCommand,
    command_argv,
    group_problem,
    task_problem,
)

RESOURCES = Resources.scalars(cpus=0.1, mem=16)
FRAMEWORK = FrameworkID("f1")


def task(**fields) -> TaskInfo:
    values = {
        "name": "t",
        "task_id": TaskID("t1"),
        "agent_id": AgentID("a1"),
        "resources": RESOURCES,
        "command": CommandInfo("true"),
    }
    values.update(fields)
    return TaskInfo(**values)


def executor(**fields) -> ExecutorInfo:
    values = {"executor_id": ExecutorID("e1"), "command": CommandInfo("run-executor")}
    values.update(fields)
    return ExecutorInfo(**values)


def test_a_plain_command_task_is_launchable() -> None:
    assert task_problem(task(), FRAMEWORK) is None
    assert task_problem(task(command=None, executor=executor()), FRAMEWORK) is None


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"command": None}, "neither 'command' nor 'executor'"),
        ({"executor": executor()}, "both 'command' and 'executor'"),
        ({"command": CommandInfo("  ")}, "shell command (shell: true) with no 'value'"),
        ({"command": CommandInfo(None, shell=False)}, "no 'value' naming the program"),
        ({"resources": Resources()}, "uses no resources"),
        (
            {
                "container": ContainerInfo(
                    mesos=MesosContainerInfo(image=Image(ImageType.DOCKER, docker=None))
                )
            },
            "image has no name; give container.mesos.image.docker.name",
        ),
        (
            {"command": None, "executor": executor(command=None)},
            "executor e1 has no 'command' to start it",
        ),
        (
            {"command": None, "executor": executor(framework_id=FrameworkID("other"))},
            "executor e1 names framework other, not f1",
        ),
        (
            {"command": None, "executor": executor(command=CommandInfo(""))},
            "executor e1: the command is a shell command",
        ),
    ],
)
def test_each_problem_is_named(fields: dict, words: str) -> None:
    problem = task_problem(task(**fields), FRAMEWORK)
    assert problem is not None and words in problem
    assert problem.startswith("task t1")


def test_an_image_with_a_name_is_fine() -> None:
    image = Image(ImageType.DOCKER, docker=DockerImage("busybox"))
    container = ContainerInfo(mesos=MesosContainerInfo(image=image))
    assert task_problem(task(container=container), FRAMEWORK) is None


def test_command_argv_is_a_shell_string_or_an_argv() -> None:
    assert command_argv(CommandInfo("echo hi")) == "echo hi"
    argv = CommandInfo("/bin/echo", shell=False, arguments=("echo", "a", "b"))
    assert command_argv(argv) == ["/bin/echo", "a", "b"]
    with pytest.raises(InvalidCommand):
        command_argv(CommandInfo(""))


def test_groups_launch_whole_or_not_at_all() -> None:
    default = ExecutorInfo(ExecutorID("g"), type=ExecutorType.DEFAULT)
    tasks = (task(task_id=TaskID("a")), task(task_id=TaskID("b")))
    assert group_problem(default, tasks, FRAMEWORK) is None
    assert "empty" in group_problem(default, (), FRAMEWORK)
    stranger = task(task_id=TaskID("c"), command=None, executor=executor())
    assert "names executor e1, not the group's g" in group_problem(default, (stranger,))
    custom = ExecutorInfo(ExecutorID("g"), type=ExecutorType.CUSTOM)
    assert "CUSTOM but has no 'command'" in group_problem(custom, tasks)
    broken = (task(task_id=TaskID("a")), task(task_id=TaskID("b"), resources=Resources()))
    assert "task b uses no resources" in group_problem(default, broken)


def test_operations_list_the_tasks_they_launch() -> None:
    tasks = (task(task_id=TaskID("a")), task(task_id=TaskID("b")))
    assert Operation.of_launch(*tasks).launched_tasks() == tasks
    group = Operation.of_launch_group(executor(), tasks)
    assert group.launched_tasks() == tasks
