"""network/ports's core (which containers listen on ports not theirs) and the port variables
of a task's environment: plain functions and classes, no sockets."""

from __future__ import annotations

import pytest

from agent.options import AgentOptions
from agent.port_environment import port_environment, task_ports, variable_name
from containerizer.isolators import resolve
from containerizer.port_watch import Listener, PortWatch
from corral.protocol import DiscoveryInfo, Port
from corral.ranges import Ranges
from corral.resources import Resources

AGENT_RANGE = Ranges([(31000, 32000)])


def watch_two() -> PortWatch:
    watch = PortWatch(AGENT_RANGE)
    watch.watch("web", session=100, ports=Ranges([(31000, 31001)]))
    watch.watch("db", session=200, ports=Ranges([(31005, 31005)]))
    return watch


# -- the core ---------------------------------------------------------------------------------


def test_containers_on_their_own_ports_are_fine():
    watch = watch_two()
    listeners = [Listener(100, 31000, session=100), Listener(201, 31005, session=200)]
    assert watch.check(listeners) == []


def test_a_foreign_port_in_the_agent_range_is_a_violation_naming_the_port():
    watch = watch_two()
    (violation,) = watch.check(
        [Listener(101, 31000, session=100), Listener(102, 31007, session=100)]
    )
    assert violation.container_id == "web"
    assert violation.ports == Ranges([(31007, 31007)])
    assert violation.pids == (102,)
    assert "31007" in violation.message and "web" in violation.message
    assert "31000-31001" in violation.message  # what it was given


def test_ports_outside_the_isolated_range_are_not_checked():
    watch = watch_two()
    # an executor's libprocess socket on an ephemeral port, sshd on 22
    assert watch.check([Listener(100, 45123, session=100), Listener(100, 22, session=100)]) == []


def test_without_an_isolated_range_every_port_counts():
    watch = PortWatch(None)
    watch.watch("web", session=100, ports=Ranges([(31000, 31000)]))
    (violation,) = watch.check([Listener(100, 45123, session=100)])
    assert violation.ports == Ranges([(45123, 45123)])


def test_a_container_given_no_ports_may_listen_on_none_of_the_range():
    watch = PortWatch(AGENT_RANGE)
    watch.watch("batch", session=300, ports=Ranges())
    (violation,) = watch.check([Listener(300, 31500, session=300)])
    assert "allocated: none" in violation.message


def test_the_cgroup_wins_over_the_session():
    """A process that called setsid left its session, not its cgroup."""
    watch = watch_two()
    escapee = Listener(555, 31001, session=555, cgroup="db")
    (violation,) = watch.check([escapee])
    assert violation.container_id == "db"
    assert violation.ports == Ranges([(31001, 31001)])


def test_processes_of_no_container_are_ignored():
    watch = watch_two()
    assert watch.check([Listener(1, 31003, session=1), Listener(2, 31004, cgroup="other")]) == []


def test_a_violation_is_reported_once_until_its_ports_change():
    watch = watch_two()
    first = [Listener(100, 31007, session=100)]
    assert len(watch.check(first)) == 1
    assert watch.check(first) == []  # the same ports: already reported
    more = [*first, Listener(100, 31008, session=100)]
    (again,) = watch.check(more)
    assert again.ports == Ranges([(31007, 31008)])
    assert "31007-31008" in again.message
    assert watch.check([]) == []  # it stopped: nothing to say, and the slate is clean
    assert len(watch.check(first)) == 1


def test_updated_ports_make_a_listener_legal():
    watch = watch_two()
    watch.update("web", Ranges([(31000, 31001), (31007, 31007)]))
    assert watch.check([Listener(100, 31007, session=100)]) == []
    with pytest.raises(KeyError, match="not watched"):
        watch.update("gone", Ranges())


def test_unwatched_containers_are_not_checked_and_their_session_is_free():
    watch = watch_two()
    watch.unwatch("web")
    watch.unwatch("never-watched")
    assert watch.watched() == {"db"}
    assert watch.check([Listener(100, 31007, session=100)]) == []


def test_a_check_of_ten_thousand_containers_is_cheap():
    import time

    watch = PortWatch(Ranges([(31000, 41000)]))
    for index in range(10_000):
        watch.watch(f"c{index}", session=100_000 + index, ports=Ranges([(31000 + index,) * 2]))
    listeners = [Listener(100_000 + i, 31000 + i, session=100_000 + i) for i in range(10_000)]
    listeners.append(Listener(100_007, 40_999, session=100_007))
    started = time.perf_counter()
    (violation,) = watch.check(listeners)
    elapsed = time.perf_counter() - started
    print(f"one check of 10,000 listening containers: {elapsed * 1000:.1f} ms")
    assert violation.container_id == "c7"
    assert elapsed < 0.5


# -- the isolator's name and the agent's options ------------------------------------------------


def test_network_ports_is_a_known_isolator_needing_no_cgroups():
    isolation = resolve("filesystem/posix,network/ports", frozenset())
    assert "network/ports" in isolation.active
    assert not isolation.missing


def test_the_agent_checks_its_own_range_unless_told_otherwise(tmp_path):
    options = AgentOptions(master="127.0.0.1:5050", work_dir=tmp_path, resources="ports:[100-199]")
    assert options.isolated_ports() == ((100, 199),)
    everything = AgentOptions(
        master="127.0.0.1:5050", work_dir=tmp_path, check_agent_port_range_only=False
    )
    assert everything.isolated_ports() is None
    chosen = AgentOptions(
        master="127.0.0.1:5050",
        work_dir=tmp_path,
        resources="ports:[100-199]",
        container_ports_isolated_range="[150-160, 170-171]",
    )
    assert chosen.isolated_ports() == ((150, 160), (170, 171))


def test_bad_port_options_are_refused_saying_what_to_give(tmp_path):
    with pytest.raises(ValueError, match="container_ports_watch_interval must be positive"):
        AgentOptions(master="m@h:1", work_dir=tmp_path, container_ports_watch_interval=0)
    with pytest.raises(ValueError, match=r"container_ports_isolated_range: ranges are written"):
        AgentOptions(master="m@h:1", work_dir=tmp_path, container_ports_isolated_range="31000")


# -- PORT0..., PORTS, PORT_<NAME>, HOST -------------------------------------------------------


def test_ports_are_numbered_in_ascending_order_across_ranges():
    resources = Resources.parse("cpus:1;ports:[31007-31008,31000-31000]")
    assert task_ports(resources) == [31000, 31007, 31008]
    env = port_environment(resources, None, "node-1")
    assert env == {
        "HOST": "node-1",
        "PORT0": "31000",
        "PORT1": "31007",
        "PORT2": "31008",
        "PORT": "31000",
        "PORTS": "31000,31007,31008",
    }


def test_a_task_without_ports_gets_only_its_host():
    assert port_environment(Resources.parse("cpus:1"), None, "node-1") == {"HOST": "node-1"}
    assert port_environment(Resources.parse("cpus:1"), None, None) == {}


def test_named_ports_get_a_variable_by_number():
    discovery = DiscoveryInfo(
        name="web",
        ports=(
            Port(number=31001, name="admin-http", protocol="tcp"),
            Port(number=31000, name="http", protocol="tcp"),
            Port(number=31009, name="stolen", protocol="tcp"),  # not the task's
            Port(number=31000, name="HTTP", protocol="tcp"),  # same variable: the first wins
            Port(number=31001, protocol="tcp"),  # no name
        ),
    )
    env = port_environment(Resources.parse("ports:[31000-31001]"), discovery, None)
    assert env["PORT_HTTP"] == "31000"
    assert env["PORT_ADMIN_HTTP"] == "31001"
    assert "PORT_STOLEN" not in env
    assert sorted(k for k in env if k.startswith("PORT_")) == ["PORT_ADMIN_HTTP", "PORT_HTTP"]


def test_port_names_become_environment_names():
    assert variable_name("http") == "PORT_HTTP"
    assert variable_name("admin.http-2") == "PORT_ADMIN_HTTP_2"


def test_a_command_tasks_container_gets_its_ports_and_the_commands_own_variables_win(tmp_path):
    from agent import admission
    from agent.executor_run import ExecutorRun
    from agent.framework_run import FrameworkRun
    from agent.launch_config import AgentAddress, container_config
    from corral.ids import AgentID, FrameworkID, TaskID
    from corral.protocol import CommandInfo, EnvironmentVariable, FrameworkInfo, TaskInfo
    from libprocess import UPID

    options = AgentOptions(master="m@127.0.0.1:1", work_dir=tmp_path, hostname="node-7")
    framework = FrameworkRun(FrameworkID("f1"), FrameworkInfo(user="root", name="t"), "")
    own = (EnvironmentVariable("PORT1", "9999"), EnvironmentVariable("EXTRA", "x"))
    task = TaskInfo(
        name="t",
        task_id=TaskID("t1"),
        agent_id=AgentID("a1"),
        resources=Resources.parse("cpus:0.1;ports:[31002-31003]"),
        command=CommandInfo(value="true", environment=own),
        discovery=DiscoveryInfo(ports=(Port(number=31003, name="admin"),)),
    )
    decision = admission.admit_task(framework, task, None)
    assert isinstance(decision, admission.NewExecutor)
    executor = ExecutorRun.starting(framework.id, decision.info, True, task, tmp_path)
    address = AgentAddress(UPID("agent@127.0.0.1:2"), AgentID("a1"), None)
    config = container_config(options, address, framework, executor)
    env = config.environment
    assert (env["PORT0"], env["PORT"], env["PORTS"]) == ("31002", "31002", "31002,31003")
    assert env["PORT1"] == "9999"  # the framework set it: its value wins
    assert env["PORT_ADMIN"] == "31003" and env["HOST"] == "node-7"
    assert env["MESOS_FRAMEWORK_ID"] == "f1" and env["EXTRA"] == "x"
    assert config.ports == ((31002, 31003),)


def test_the_agent_command_line_takes_the_port_flags():
    from corral.cli.main import build_parser

    args = build_parser().parse_args(
        [
            "agent",
            "--container-ports-watch-interval",
            "0.5",
            "--no-check-agent-port-range-only",
            "--container-ports-isolated-range",
            "[31000-31099]",
            "--no-enforce-container-ports",
        ]
    )
    assert args.container_ports_watch_interval == 0.5
    assert args.check_agent_port_range_only is False
    assert args.container_ports_isolated_range == "[31000-31099]"
    assert args.enforce_container_ports is False
    defaults = build_parser().parse_args(["agent"])
    assert (defaults.container_ports_watch_interval, defaults.check_agent_port_range_only) == (
        30.0,
        True,
    )
    assert defaults.enforce_container_ports is True
