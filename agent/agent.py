"""The agent actor: registers with the master, runs tasks in containers, reports their states.

A thin actor in the sense of DESIGN.md: its handlers feed sans-IO cores and carry out what
they decide. Each executor run's life is ``ExecutorLifecycle``'s table (agent/
executor_lifecycle.py: state x event -> next state + actions); what a task may be is
``corral.task_validation``'s and agent/admission.py's; every status update goes through the
``StatusUpdateManager`` (agent/status_relay.py: ordering, one in flight per task, resend
until acknowledged). Around them: the master link (agent/master_link.py), recovery (agent/
recovery.py), the records (agent/executor_run.py, agent/framework_run.py) and the HTTP
surfaces, views of those records (agent/endpoints.py). The containerizer's blocking work
(launch, wait, destroy) runs on the runtime's loop owned by this process (``run_async``);
its results re-enter the actor as its own events, so no handler ever blocks; what is still
running when the agent stops is cancelled (its continuations then do nothing).

Executors, as in Mesos (docs/flows.md "Executors"):

- a command task (``TaskInfo.command``) gets an executor of its own, id = task id, run by the
  agent itself: its command runs in a container and the agent reports TASK_STARTING,
  TASK_RUNNING, then TASK_FINISHED / TASK_FAILED / TASK_KILLED (source SOURCE_EXECUTOR);
- a custom executor (``TaskInfo.executor``) is a program the agent starts in a container; it
  registers through ``corral.executor.ExecutorDriver`` (or the v1 executor API) and then
  receives its tasks. A registration the agent refuses is answered ``ShutdownExecutor`` with
  the reason.

Stopping: a clean stop (``finalize``) leaves the containers of checkpointing frameworks
running for the next agent to recover, and kills the others (SIGKILL: nothing can be awaited
there); ``shutdown()`` (dispatch it first) destroys every container gracefully. A master that
refuses this agent for good (``ShutdownAgent``) makes it destroy its containers, forget its
id and stop; ``refusal`` then says why.

Decisions where Mesos leaves room: ``ExitedExecutor`` is sent for custom executors only (the
master does not track command executors). Tasks of a group under a custom executor reach an
HTTP executor as one LAUNCH each (the agent queues and tracks tasks one by one).
"""

from __future__ import annotations

import dataclasses
import os
import signal
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import structlog

import corral
from agent import admission, endpoints, launch_config, mesos_state, recovery, subscriptions
from agent.check_schedule import empty_status
from agent.checkpoint import AgentCheckpoints
from agent.containerization import containerizer_for
from agent.containers import ExecutorContainers, unless_stopped
from agent.endings import Ending, exit_status, final_updates
from agent.executor_api import Call
from agent.executor_lifecycle import (
    Action,
    Destroy,
    Event,
    ExecutorState,
    Kill,
    Launch,
    Registered,
    Reregistered,
    Resubscribed,
    Shutdown,
    TimedOut,
)
from agent.executor_run import ExecutorRun, TaskRecord
from agent.framework_run import MAX_COMPLETED_FRAMEWORKS, FrameworkRun
from agent.master_link import MasterLink, reregistration
from agent.monitor import MonitorProcess
from agent.options import AgentOptions
from agent.port_watcher import allocate_ports, start_port_watcher
from agent.status_relay import StatusRelay
from agent.status_updates import StatusUpdateManager
from agent.task_checks import CheckUpdate, TaskChecks
from containerizer import (
    Containerizer,
    ContainerTermination,
    RecoveryResult,
    ResourceStatistics,
)
from corral.ids import AgentID, FrameworkID, TaskID, new_status_uuid
from corral.protocol import (
    AgentInfo,
    CheckStatusInfo,
    ExecutorInfo,
    FrameworkInfo,
    TaskInfo,
    TaskStatus,
)
from corral.protocol.endpoint import ProtocolProcess, receives
from corral.protocol.messages import (
    AgentRegistered,
    AgentReregistered,
    ExecutorRegistered,
    ExecutorReregistered,
    ExecutorToFramework,
    ExitedExecutor,
    FrameworkToExecutor,
    KillTask,
    Message,
    PingAgent,
    ReconnectExecutor,
    RegisterAgent,
    RegisterExecutor,
    ReregisterExecutor,
    RunTask,
    RunTaskGroup,
    ShutdownAgent,
    ShutdownExecutor,
    ShutdownFramework,
    StatusUpdate,
    StatusUpdateAcknowledgement,
)
from corral.task_states import Reason, Source, TaskState
from corral.v1.http import CallError
from libprocess import UPID, Future, Promise, Stream

log = structlog.get_logger("agent")


class AgentProcess(ProtocolProcess):
    """The agent: id ``agent``. Give it options and, for tests, a containerizer."""

    def __init__(
        self,
        options: AgentOptions,
        containerizer: Containerizer | None = None,
        id: str = "agent",
    ) -> None:
        super().__init__(id)
        self.options = options
        self.containerizer = containerizer or containerizer_for(options)
        self.agent_id: AgentID | None = None
        self.info = AgentInfo(
            hostname=options.agent_hostname(),
            port=options.port,
            resources=options.total_resources(),
            attributes=options.parsed_attributes(),
        )
        self.containers = ExecutorContainers(self, self.containerizer, self._feed, self._check_idle)
        # Command tasks' health checks and checks (agent/task_checks.py), run as Mesos's
        # command and default executors run them.
        self.checks = TaskChecks(
            self, self.containerizer, self._check_update, self._kill_unhealthy, self._task_env
        )
        self.frameworks: dict[FrameworkID, FrameworkRun] = {}
        self.checkpoints = AgentCheckpoints(options.meta_dir)
        self.recovered = False  # checkpoints read and containers recovered; then it registers
        self.start_time = time.time()  # wall clock, for /state and slave/uptime_secs
        # Mesos's JSON of frameworks removed from this agent (newest last), for /state.
        self.completed_frameworks: deque[dict[str, Any]] = deque(maxlen=MAX_COMPLETED_FRAMEWORKS)
        # Paused until registered: updates are accepted and kept, forwarded once resumed.
        self.updates = StatusUpdateManager(
            options.status_update_retry_min, options.status_update_retry_max, paused=True
        )
        self.relay = StatusRelay(
            self,
            self.updates,
            self.checkpoints,
            master=lambda: self.master_link.master,
            checkpointing=self._checkpointing,
            state_of=self._state_of,
        )
        self.master_link = MasterLink(
            self,
            options,
            registration=self._registration,
            registered=self._registered,
            lost=lambda _why: self.relay.pause(),
        )
        # Why the master refused this agent for good (ShutdownAgent), once it has.
        self.refusal: str | None = None
        self._metrics: list[Any] = []  # registered in the runtime's metrics; removed at exit
        self._idle: list[Promise[None]] = []  # shutdown()s waiting for every executor's end

    @property
    def master(self) -> UPID | None:
        return self.master_link.master

    @property
    def registered(self) -> bool:
        return self.master_link.registered

    # -- lifecycle --------------------------------------------------------------------------

    def initialize(self) -> None:
        self.options.work_dir.mkdir(parents=True, exist_ok=True)
        self._monitor = MonitorProcess(self)
        self.runtime.spawn(self._monitor)
        self.port_watcher = start_port_watcher(self)  # network/ports, when it is active
        endpoints.install(self)
        self._metrics, self.relay.counters = endpoints.install_metrics(self)
        log.info(
            "agent_started",
            pid=self.pid,
            master=self.options.master,
            resources=str(self.info.resources),
            work_dir=str(self.options.work_dir),
        )
        self._recover()

    def finalize(self) -> None:
        self.runtime.terminate(self._monitor)
        if self.port_watcher is not None:
            self.runtime.terminate(self.port_watcher)
        for metric in self._metrics:
            self.runtime.metrics.remove(metric.name)
        self.master_link.stop()
        self.relay.stop()
        self.checks.stop_all()
        kept = set()
        for executor in self.executors():
            subscriptions.close(self, executor)
            if executor.timer is not None:
                executor.timer.cancel()
            if self._checkpointing(executor.framework_id):
                kept.add(executor.container_id)
        # Containers of checkpointing frameworks stay for the next agent to recover. The
        # others could only become orphans; nothing can be awaited here, so each session gets
        # SIGKILL (shutdown() is the graceful way).
        self.containers.kill_at_exit(kept)
        if kept:
            log.info("containers_left_for_recovery", containers=sorted(kept))

    def shutdown(self, grace_seconds: float | None = None) -> Future[None]:
        """Destroy every container (dispatch it before stopping the runtime); ready when done.

        For an agent leaving for good: nothing is left to recover. Command tasks end
        TASK_KILLED, custom executors' open tasks TASK_FAILED, as with any destroy.
        """
        grace = self.options.executor_shutdown_grace if grace_seconds is None else grace_seconds
        for executor in self.executors():
            self._feed(executor, Kill(grace) if executor.command_task else Destroy(grace))
        promise: Promise[None] = Promise()
        self._idle.append(promise)
        self._check_idle()
        return promise.future

    def _check_idle(self) -> None:
        """Wake shutdown()s once no executor is left and no destroy is in flight."""
        if self._idle and not self.executors() and not self.containers.destroying:
            waiting, self._idle = self._idle, []
            for promise in waiting:
                promise.set(None)

    # -- recovery ---------------------------------------------------------------------------

    def _recover(self) -> None:
        """Read the checkpoints, then let the containerizer find the containers again;
        ``_recovered`` goes on (and registers) when it has."""
        found = recovery.read(self.checkpoints)
        if found.agent_id is not None:
            self.agent_id = found.agent_id
            self.info = dataclasses.replace(self.info, id=self.agent_id)
        self.frameworks = found.frameworks
        self.relay.recover(found.streams)
        containers = found.containers()
        log.info(
            "agent_recovering",
            agent_id=self.agent_id,
            frameworks=len(self.frameworks),
            executors=len(self.executors()),
            containers=len(containers),
        )
        self.containers.recover(containers).on_any(unless_stopped(self._recovered))

    def _recovered(self, recovered: Future[RecoveryResult]) -> None:
        if recovered.is_failed():
            log.error("container_recovery_failed", error=str(recovered.failure))
            result = RecoveryResult(frozenset(), {}, frozenset())
        else:
            result = recovered.value
        for executor in self.executors():
            found = recovery.outcome(executor, result)
            self._feed(executor, found.event, Ending(found.termination, found.how))
            if executor.command_task and executor.state is ExecutorState.RUNNING:
                self._start_checks(executor)  # found running: its checks start over
        for container_id in sorted(result.orphans):
            self.containers.destroy_orphan(container_id)
        self.recovered = True
        log.info(
            "agent_recovered",
            agent_id=self.agent_id,
            running=sorted(result.running),
            ended=sorted(result.ended),
            orphans=sorted(result.orphans),
        )
        self.master_link.start()

    # -- the master -------------------------------------------------------------------------

    def _registration(self) -> Message:
        """RegisterAgent the first time; ReregisterAgent, with what runs here, once it has
        an id."""
        if self.agent_id is None:
            return RegisterAgent(agent=self.info, version=corral.__version__)
        return reregistration(
            self.info, self.executors(), self.frameworks.values(), self.relay.latest_pending()
        )

    def _registered(self, agent_id: AgentID) -> None:
        if self.agent_id is not None and agent_id != self.agent_id:
            log.warning("agent_id_changed", old=self.agent_id, new=agent_id)
        if agent_id != self.agent_id:
            self.agent_id = agent_id
            self.info = dataclasses.replace(self.info, id=agent_id)
            self.checkpoints.save_agent(self.info)
        self.relay.resume()

    @receives(AgentRegistered)
    def agent_registered(self, sender: UPID | None, message: AgentRegistered) -> None:
        self.master_link.answered(
            sender, message.agent_id, message.ping_timeout, "agent_registered"
        )

    @receives(AgentReregistered)
    def agent_reregistered(self, sender: UPID | None, message: AgentReregistered) -> None:
        self.master_link.answered(
            sender, message.agent_id, message.ping_timeout, "agent_reregistered"
        )

    @receives(PingAgent)
    def ping(self, sender: UPID | None, message: PingAgent) -> None:
        self.master_link.ping(sender, message)

    def exited(self, pid: UPID) -> None:
        self.master_link.exited(pid)

    @receives(ShutdownAgent)
    def shutdown_agent(self, sender: UPID | None, message: ShutdownAgent) -> None:
        """The master refuses this agent for good: destroy every container, forget the
        agent's id (a restart on the same work directory registers as a new agent, as
        Mesos's agent removes its ``latest`` link) and stop."""
        if not self.master_link.is_master(sender):
            log.warning(
                "shutdown_agent_ignored",
                sender=sender,
                master=self.master,
                reason="only the master this agent registers with may shut it down",
            )
            return
        if self.refusal is not None:
            return  # already stopping
        self.refusal = message.message or "the master gave no reason"
        log.error(
            "agent_refused",
            master=sender,
            agent_id=self.agent_id,
            reason=self.refusal,
            executors=len(self.executors()),
        )
        self.master_link.stop()
        self.relay.pause()
        self.shutdown().on_any(self._refused)

    def _refused(self, _shut_down: Future[None]) -> None:
        self.checkpoints.remove_agent()
        log.error("agent_stopping_refused", agent_id=self.agent_id, reason=self.refusal)
        self.terminate()

    # -- tasks ------------------------------------------------------------------------------

    @receives(RunTask)
    def run_task(self, sender: UPID | None, message: RunTask) -> None:
        task = message.task
        framework = self._framework_for_launch(sender, message.framework, message.pid, (task,))
        if framework is not None:
            self._launch_task(framework, task, task.executor)

    @receives(RunTaskGroup)
    def run_task_group(self, sender: UPID | None, message: RunTaskGroup) -> None:
        """A task group, judged whole: under a custom executor, every task goes to it; under
        the default executor (no command), each task runs as a command task of the agent's
        own."""
        tasks = message.task_group.tasks
        framework = self._framework_for_launch(sender, message.framework, "", tasks)
        if framework is None:
            return
        refusal = admission.admit_group(framework, message.executor, tasks)
        if refusal is not None:
            for task in tasks:
                self._agent_update(
                    framework.id, task, refusal.state, refusal.message, refusal.reason
                )
            return
        executor = message.executor if message.executor.command is not None else None
        for task in tasks:
            self._launch_task(framework, task, executor, judged=True)

    def _framework_for_launch(
        self, sender: UPID | None, info: FrameworkInfo, pid: str, tasks: tuple[TaskInfo, ...]
    ) -> FrameworkRun | None:
        """The framework a launch is for, or None (logged) when the launch is not valid here."""
        task_ids = [task.task_id for task in tasks]
        if not self.master_link.is_master(sender) or not self.registered:
            log.warning(
                "run_task_ignored",
                task_ids=task_ids,
                sender=sender,
                reason="not from the master this agent is registered with",
            )
            return None
        framework_id = info.id
        if framework_id is None:
            log.warning("run_task_ignored", task_ids=task_ids, reason="the framework has no id")
            return None
        framework = self.frameworks.get(framework_id)
        if framework is None:
            framework = self.frameworks[framework_id] = FrameworkRun(framework_id, info, pid)
        elif framework.info == info and (not pid or pid == framework.pid):
            return framework
        else:
            framework.info = info
            framework.pid = pid or framework.pid
        if info.checkpoint:
            self.checkpoints.save_framework(info, framework.pid)
        return framework

    def _launch_task(
        self,
        framework: FrameworkRun,
        task: TaskInfo,
        executor_info: ExecutorInfo | None,
        judged: bool = False,
    ) -> None:
        decision = admission.admit_task(framework, task, executor_info, judged)
        if isinstance(decision, admission.Ignore):
            log.warning(
                "run_task_ignored",
                task_id=task.task_id,
                framework_id=framework.id,
                reason=decision.why,
            )
        elif isinstance(decision, admission.Refuse):
            self._agent_update(
                framework.id, task, decision.state, decision.message, decision.reason
            )
        elif isinstance(decision, admission.NewExecutor):
            executor = ExecutorRun.starting(
                framework.id, decision.info, decision.command_task, task, self.options.work_dir
            )
            framework.executors[executor.executor_id] = executor
            self._feed(executor, Launch())
        else:
            executor = decision.executor
            executor.tasks[task.task_id] = TaskRecord(task, queued=True)
            if executor.state.phase == "RUNNING" and executor.pid is not None:
                self._send_tasks(executor)
            else:
                self._checkpoint_executor(executor)

    @receives(KillTask)
    def kill_task(self, sender: UPID | None, message: KillTask) -> None:
        if not self.master_link.is_master(sender):
            log.warning(
                "kill_task_ignored",
                task_id=message.task_id,
                sender=sender,
                reason="kills come from the master this agent is registered with",
            )
            return
        framework = self.frameworks.get(message.framework_id)
        executor = None if framework is None else framework.executor_of(message.task_id)
        if executor is None:
            log.warning(
                "kill_task_ignored",
                task_id=message.task_id,
                framework_id=message.framework_id,
                reason="no such task on this agent",
            )
            return
        task = executor.tasks[message.task_id]
        if task.state.is_terminal:
            log.info(
                "kill_task_ignored", task_id=message.task_id, reason=f"it is {task.state.value}"
            )
            return
        if executor.command_task:
            if executor.lifecycle.killed:
                return
            policy = message.kill_policy
            grace = None if policy is None else policy.grace_period
            log.info(
                "task_killing",
                task_id=message.task_id,
                grace=executor.lifecycle.kill_grace if grace is None else grace,
            )
            self._feed(executor, Kill(grace))
        elif task.queued:
            del executor.tasks[message.task_id]
            self._checkpoint_executor(executor)
            self._agent_update(
                message.framework_id,
                task.info,
                TaskState.TASK_KILLED,
                "killed before its executor registered",
            )
            if not executor.open_tasks():
                self._shutdown_executor(executor)
        elif executor.pid is not None:
            self.send_message(executor.pid, message)

    @receives(ShutdownFramework)
    def shutdown_framework(self, sender: UPID | None, message: ShutdownFramework) -> None:
        if not self.master_link.is_master(sender):
            log.warning("shutdown_framework_ignored", sender=sender, reason="not the master")
            return
        framework = self.frameworks.get(message.framework_id)
        if framework is None:
            log.info(
                "shutdown_framework_ignored",
                framework_id=message.framework_id,
                reason="no such framework here",
            )
            return
        log.info(
            "framework_shutting_down", framework_id=framework.id, executors=len(framework.executors)
        )
        framework.shutting_down = True
        for executor in list(framework.executors.values()):
            if executor.command_task:
                self._feed(executor, Kill())
            else:
                self._shutdown_executor(executor)
        self._maybe_remove_framework(framework)

    @receives(ShutdownExecutor)
    def shutdown_executor(self, sender: UPID | None, message: ShutdownExecutor) -> None:
        if not self.master_link.is_master(sender):
            log.warning(
                "shutdown_executor_ignored",
                executor_id=message.executor_id,
                sender=sender,
                reason="only the master shuts executors down",
            )
            return
        framework = self.frameworks.get(message.framework_id)
        executor = None if framework is None else framework.executors.get(message.executor_id)
        if executor is None:
            log.info(
                "shutdown_executor_ignored",
                executor_id=message.executor_id,
                reason="no such executor here",
            )
            return
        self._shutdown_executor(executor)

    def _shutdown_executor(self, executor: ExecutorRun) -> None:
        """Ask an executor that is connected to exit (its container is destroyed after the
        grace); destroy one that is not."""
        self._feed(executor, Shutdown() if executor.pid is not None else Destroy())

    # -- custom executors -------------------------------------------------------------------

    @receives(RegisterExecutor)
    def register_executor(self, sender: UPID | None, message: RegisterExecutor) -> None:
        executor = self._joining(sender, message, Registered())
        if executor is None:
            return
        assert sender is not None and self.agent_id is not None  # RunTask came: registered
        framework = self.frameworks[executor.framework_id]
        log.info("executor_registered", executor_id=executor.executor_id, pid=sender)
        self.send_message(
            sender,
            ExecutorRegistered(
                executor_info=executor.info,
                framework_id=framework.id,
                framework_info=framework.info,
                agent_id=self.agent_id,
                agent_info=self.info,
            ),
        )
        self._feed(executor, Registered())

    @receives(ReregisterExecutor)
    def reregister_executor(self, sender: UPID | None, message: ReregisterExecutor) -> None:
        """A recovered executor answers ReconnectExecutor: it runs again under this agent.

        Also how an HTTP executor's bridge registers when the executor subscribes after an
        agent restart, or again (a new connection) while it runs: then the tasks it does not
        list are not lost, since a v1 executor lists only the tasks not yet acknowledged.
        """
        framework = self.frameworks.get(message.framework_id)
        known = None if framework is None else framework.executors.get(message.executor_id)
        via_http = known is not None and known.bridge is not None and sender == known.bridge.pid
        event: Event = Resubscribed() if via_http else Reregistered()
        executor = self._joining(sender, message, event)
        if executor is None:
            return
        assert sender is not None and self.agent_id is not None  # recovered: has an id
        log.info(
            "executor_reregistered",
            executor_id=executor.executor_id,
            pid=sender,
            tasks=len(message.tasks),
            updates=len(message.updates),
        )
        self.send_message(sender, ExecutorReregistered(self.agent_id, self.info))
        for status in message.updates:  # sent while the agent was down: into their streams
            self.status_update(sender, StatusUpdate(message.framework_id, status))
        if not via_http:
            reported = {task.task_id for task in message.tasks}
            reported |= {status.task_id for status in message.updates}
            for task in executor.launched():
                if task.task_id not in reported and not task.state.is_terminal:
                    self._agent_update(
                        executor.framework_id,
                        task.info,
                        TaskState.TASK_LOST,
                        "the executor did not know this task when it reconnected after the "
                        "agent restarted",
                        Reason.REASON_AGENT_RESTARTED,
                        executor,
                    )
        self._feed(executor, event)

    def _joining(
        self, sender: UPID | None, message: RegisterExecutor | ReregisterExecutor, event: Event
    ) -> ExecutorRun | None:
        """The custom executor a (re-)registration is from, now with ``sender`` as its pid;
        None when refused: the sender is told why (ShutdownExecutor's reason)."""
        if sender is None:
            return None
        framework = self.frameworks.get(message.framework_id)
        refusal = admission.registration_refusal(
            framework, message.framework_id, message.executor_id, sender, event
        )
        if refusal is not None:
            log.warning(
                "executor_registration_refused",
                message=message.NAME,
                executor_id=message.executor_id,
                framework_id=message.framework_id,
                sender=sender,
                reason=refusal,
            )
            refused = ShutdownExecutor(message.framework_id, message.executor_id, reason=refusal)
            self.send_message(sender, refused)
            return None
        assert framework is not None
        executor = framework.executors[message.executor_id]
        executor.pid = sender
        if executor.bridge is not None:
            executor.http = True  # checkpointed with the tasks it is given
        return executor

    @receives(StatusUpdate)
    def status_update(self, sender: UPID | None, message: StatusUpdate) -> None:
        """From an executor: take it into the stream, acknowledge it to the executor."""
        status = message.status
        framework = self.frameworks.get(message.framework_id)
        executor = None if framework is None else framework.executor_of(status.task_id)
        if executor is None or executor.pid is None or sender != executor.pid:
            log.warning(
                "status_update_ignored",
                task_id=status.task_id,
                sender=sender,
                reason="not from the executor of a task on this agent",
            )
            return
        if status.uuid is None:
            log.warning(
                "status_update_ignored",
                task_id=status.task_id,
                reason="an executor's update needs a uuid",
            )
            return
        status = dataclasses.replace(
            status,
            agent_id=self.agent_id,
            executor_id=executor.executor_id,
            source=status.source or Source.SOURCE_EXECUTOR,
            timestamp=status.timestamp or time.time(),
        )
        task = executor.tasks[status.task_id]
        if not task.state.is_terminal:
            task.state = status.state
            task.latest = status  # healthy and check_status as the executor sent them
        if self.relay.report(message.framework_id, status):
            self.send_message(
                sender,
                StatusUpdateAcknowledgement(
                    agent_id=self.agent_id,
                    framework_id=message.framework_id,
                    task_id=status.task_id,
                    uuid=status.uuid,
                ),
            )

    @receives(ExecutorToFramework)
    def executor_to_framework(self, sender: UPID | None, message: ExecutorToFramework) -> None:
        if self.master is None or not self.registered:
            log.info("framework_message_dropped", reason="not registered with a master")
            return
        framework = self.frameworks.get(message.framework_id)
        executor = None if framework is None else framework.executors.get(message.executor_id)
        if executor is None or executor.pid is None or sender != executor.pid:
            log.warning(
                "framework_message_dropped",
                sender=sender,
                framework_id=message.framework_id,
                executor_id=message.executor_id,
                reason="not from a registered executor of a framework known here",
            )
            return
        if self.agent_id is not None:
            message = dataclasses.replace(message, agent_id=self.agent_id)
        self.send_message(self.master, message)

    @receives(FrameworkToExecutor)
    def framework_to_executor(self, sender: UPID | None, message: FrameworkToExecutor) -> None:
        framework = self.frameworks.get(message.framework_id)
        executor = None if framework is None else framework.executors.get(message.executor_id)
        if executor is None or executor.pid is None or executor.state.phase != "RUNNING":
            log.info(
                "framework_message_dropped",
                executor_id=message.executor_id,
                reason="the executor is not running here",
            )
            return
        self.send_message(executor.pid, message)

    @receives(StatusUpdateAcknowledgement)
    def acknowledgement(self, sender: UPID | None, message: StatusUpdateAcknowledgement) -> None:
        framework_id, task_id = message.framework_id, message.task_id
        if self.relay.acknowledge(framework_id, task_id, message.uuid):
            # The stream's file goes: the executor's record keeps the final state.
            framework = self.frameworks.get(framework_id)
            executor = None if framework is None else framework.executor_of(task_id)
            if executor is not None:
                self._checkpoint_executor(executor)

    # -- the executor lifecycle: feeding it and doing what it decides ------------------------

    def _feed(self, executor: ExecutorRun, event: Event, ending: Ending | None = None) -> None:
        """Give ``event`` to the executor's lifecycle and carry out its actions, in order.
        ``ending`` says how the run ended, for the events that end it."""
        for action in executor.lifecycle.handle(event):
            self._do(executor, action, ending)

    def _do(self, executor: ExecutorRun, action: Action, ending: Ending | None) -> None:
        if action is Action.CANCEL_TIMER:
            if executor.timer is not None:
                executor.timer.cancel()
                executor.timer = None
        elif action is Action.ARM_TIMER:
            state = executor.state
            timeout = {
                ExecutorState.REGISTERING: self.options.executor_registration_timeout,
                ExecutorState.REREGISTERING: self.options.executor_reregistration_timeout,
                ExecutorState.SHUTTING_DOWN: self.options.executor_shutdown_grace,
            }[state]
            executor.timer = self.delay(timeout, self._timed_out, executor, state)
        elif action is Action.CHECKPOINT:
            self._checkpoint_executor(executor)
        elif action is Action.LAUNCH:
            address = launch_config.AgentAddress(self.pid, self.agent_id, self.runtime.http_address)
            framework = self.frameworks[executor.framework_id]
            config = launch_config.container_config(self.options, address, framework, executor)
            self.containers.launch(executor, config)
        elif action is Action.WATCH:
            self.containers.watch(executor)
        elif action is Action.DESTROY:
            self.containers.destroy(executor)
        elif action is Action.FORGET_CONTAINER:
            self.containers.forget(executor.container_id)
        elif action is Action.REPORT_STARTING:
            self._command_update(executor, TaskState.TASK_STARTING)
        elif action is Action.REPORT_RUNNING:
            self._command_update(executor, TaskState.TASK_RUNNING)
            self._start_checks(executor)
        elif action is Action.SEND_TASKS:
            self._send_tasks(executor)
        elif action is Action.RECONNECT:
            if executor.pid is not None and not executor.http:
                # Without a pid it never registered, and an HTTP executor subscribes again
                # by itself (with backoff): the timer destroys what does not come back.
                assert self.agent_id is not None
                self.send_message(executor.pid, ReconnectExecutor(self.agent_id))
        elif action is Action.SEND_SHUTDOWN:
            assert executor.pid is not None
            message = ShutdownExecutor(executor.framework_id, executor.executor_id)
            self.send_message(executor.pid, message)
        elif action is Action.REPORT_END:
            assert ending is not None
            self.checks.stop(executor)
            self._report_end(executor, ending)
        elif action is Action.SEND_EXITED:
            assert ending is not None
            if self.master is not None and self.registered and self.agent_id is not None:
                exited = ExitedExecutor(
                    self.agent_id, executor.framework_id, executor.executor_id, exit_status(ending)
                )
                self.send_message(self.master, exited)
        elif action is Action.REMOVE:
            self._remove(executor)
        else:  # a new action the table emits and this actor does not know: a bug here
            raise AssertionError(f"the agent does not carry out {action!r}")

    def _timed_out(self, executor: ExecutorRun, armed_in: ExecutorState) -> None:
        if executor.state is not armed_in:
            return  # it moved on while the timer fired
        executor.timer = None
        log.warning("executor_timeout", executor_id=executor.executor_id, waiting_in=armed_in.value)
        self._feed(executor, TimedOut())

    def _send_tasks(self, executor: ExecutorRun) -> None:
        """Give the queued tasks to the registered executor: recorded as its (checkpointed),
        then sent."""
        queued = executor.queued()
        for task in queued:
            task.queued = False
        self._checkpoint_executor(executor)
        if queued and self.port_watcher is not None:  # network/ports: the tasks' ports too
            allocate_ports(self.containerizer, executor)
        framework = self.frameworks[executor.framework_id]
        assert executor.pid is not None
        for task in queued:
            self.send_message(executor.pid, RunTask(framework.info, task.info, framework.pid))

    def _report_end(self, executor: ExecutorRun, ending: Ending) -> None:
        log.info(
            "executor_ended",
            executor_id=executor.executor_id,
            container_id=executor.container_id,
            how=ending.message,
        )
        for update in final_updates(executor, ending):
            self._agent_update(
                executor.framework_id,
                update.task.info,
                update.state,
                update.message,
                update.reason,
                executor,
                update.source,
                healthy=False if update.task.killed_unhealthy else None,
            )

    def _remove(self, executor: ExecutorRun) -> None:
        """The run is over: close its bridge, drop its checkpoint, list it as completed."""
        subscriptions.close(self, executor)
        self.checks.stop(executor)
        framework = self.frameworks.get(executor.framework_id)
        if framework is not None:
            if framework.info.checkpoint:
                self.checkpoints.remove_executor(executor.framework_id, executor.executor_id)
            if framework.executors.get(executor.executor_id) is executor:
                framework.completed_executors.append(
                    mesos_state.executor_json(self.agent_id, executor, set())
                )
                del framework.executors[executor.executor_id]
            self._maybe_remove_framework(framework)
        self._check_idle()

    def _maybe_remove_framework(self, framework: FrameworkRun) -> None:
        if framework.shutting_down and not framework.executors:
            if self.frameworks.pop(framework.id, None) is not None:
                self.completed_frameworks.append(
                    mesos_state.framework_json(self.agent_id, framework, set())
                )
            self.relay.cleanup(framework.id)
            self.checkpoints.remove_framework(framework.id)
            log.info("framework_removed", framework_id=framework.id)

    # -- checkpoints and status updates -----------------------------------------------------

    def _checkpointing(self, framework_id: FrameworkID) -> bool:
        framework = self.frameworks.get(framework_id)
        return framework is not None and bool(framework.info.checkpoint)

    def _checkpoint_executor(self, executor: ExecutorRun) -> None:
        if self._checkpointing(executor.framework_id):
            self.checkpoints.save_executor(
                executor.framework_id, executor.executor_id, executor.record()
            )

    def _state_of(self, framework_id: FrameworkID, task_id: TaskID) -> str:
        """A task's latest state as its record holds it ("" once the task is gone)."""
        framework = self.frameworks.get(framework_id)
        executor = None if framework is None else framework.executor_of(task_id)
        return "" if executor is None else executor.tasks[task_id].state.value

    def _agent_update(
        self,
        framework_id: FrameworkID,
        task: TaskInfo,
        state: TaskState,
        message: str | None = None,
        reason: Reason | None = None,
        executor: ExecutorRun | None = None,
        source: Source = Source.SOURCE_AGENT,
        healthy: bool | None = None,
        check_status: CheckStatusInfo | None = None,
    ) -> None:
        """An update the agent makes about a task: its own (SOURCE_AGENT), or as the built-in
        command executor (SOURCE_EXECUTOR). The task's record, when it has one, takes the
        state. As Mesos's executors, a command task with a check carries a check_status in
        every update (empty unless a check result is given)."""
        record = None if executor is None else executor.tasks[task.task_id]
        command_task = executor is not None and executor.command_task
        if check_status is None and command_task and task.check and task.check.type:
            check_status = empty_status(task.check.type)
        status = TaskStatus(
            task_id=task.task_id,
            state=state,
            message=message,
            source=source,
            reason=reason,
            agent_id=self.agent_id,
            executor_id=None if executor is None else executor.executor_id,
            timestamp=time.time(),
            uuid=new_status_uuid(),
            healthy=healthy,
            check_status=check_status,
        )
        if record is not None:
            record.state = state
            record.latest = status
        self.relay.report(framework_id, status)

    # -- command tasks' checks (agent/task_checks.py) ----------------------------------------

    def _start_checks(self, executor: ExecutorRun) -> None:
        (task,) = executor.tasks.values()
        self.checks.start(executor, task)

    def _check_update(self, executor: ExecutorRun, task: TaskRecord, update: CheckUpdate) -> None:
        """TASK_RUNNING again, with a new ``healthy`` or ``check_status``: the rest as the
        task's latest update had it (as Mesos's executors build it on their last status)."""
        latest = task.latest
        healthy = update.healthy
        check_status = update.check_status
        if healthy is None:
            reason = Reason.REASON_TASK_CHECK_STATUS_UPDATED
            healthy = None if latest is None else latest.healthy
        else:
            reason = Reason.REASON_TASK_HEALTH_CHECK_STATUS_UPDATED
            check_status = None if latest is None else latest.check_status
        self._agent_update(
            executor.framework_id,
            task.info,
            TaskState.TASK_RUNNING,
            None if latest is None else latest.message,
            reason,
            executor,
            Source.SOURCE_EXECUTOR,
            healthy=healthy,
            check_status=check_status,
        )

    def _kill_unhealthy(self, executor: ExecutorRun, task: TaskRecord) -> None:
        """Its health check failed ``consecutive_failures`` times: killed as by KillTask."""
        if executor.lifecycle.killed or not executor.lifecycle.allows(Kill()):
            return
        task.killed_unhealthy = True
        self._feed(executor, Kill())

    def _task_env(self, executor: ExecutorRun, task: TaskRecord) -> dict[str, str]:
        """The task's own environment, which a COMMAND check runs with."""
        assert task.info.command is not None  # a command task
        address = launch_config.AgentAddress(self.pid, self.agent_id, self.runtime.http_address)
        framework = self.frameworks[executor.framework_id]
        return launch_config.environment(
            self.options, address, framework, executor, task.info.command, task.task_id
        )

    def _command_update(self, executor: ExecutorRun, state: TaskState) -> None:
        """TASK_STARTING / TASK_RUNNING of the built-in command executor's one task."""
        (task,) = executor.tasks.values()
        source = Source.SOURCE_EXECUTOR
        self._agent_update(executor.framework_id, task.info, state, None, None, executor, source)

    # -- HTTP executors ---------------------------------------------------------------------

    def subscribe_executor(self, call: Call) -> Stream:
        """A v1 executor subscribes: a new bridge registers for it (replacing any earlier
        subscription's). Refused (CallError, the body a sentence saying why) for an executor
        this agent does not run, a command task's, or one that is ending."""
        framework = self.frameworks.get(call.framework_id)
        refusal = admission.subscription_refusal(framework, call.framework_id, call.executor_id)
        if refusal is not None:
            status, reason = refusal
            log.warning(
                "executor_subscription_refused",
                executor_id=call.executor_id,
                framework_id=call.framework_id,
                reason=reason,
            )
            raise CallError(status, reason)
        assert framework is not None
        return subscriptions.subscribe(self, framework, framework.executors[call.executor_id], call)

    def executor_call(self, call: Call) -> None:
        """A subscribed v1 executor's UPDATE or MESSAGE, sent on by its bridge."""
        framework = self.frameworks.get(call.framework_id)
        executor = None if framework is None else framework.executors.get(call.executor_id)
        if executor is None or executor.command_task:
            raise CallError(
                400,
                f"no executor {call.executor_id} of framework {call.framework_id} runs on this "
                "agent",
            )
        subscriptions.forward(self, executor, call)

    # -- what the HTTP surfaces read and ask (agent/agent_view.py) --------------------------

    def executors(self) -> list[ExecutorRun]:
        return [e for f in self.frameworks.values() for e in f.executors.values()]

    def unacknowledged(self) -> set[tuple[str, str]]:
        return self.relay.unacknowledged()

    def isolators(self) -> list[str]:
        active: Callable[[], Any] = getattr(self.containerizer, "active_isolators", lambda: ())
        return list(active())

    def usage_of(self, executor: ExecutorRun) -> Future[ResourceStatistics]:
        return self.containers.usage(executor)

    def kill_container(self, executor: ExecutorRun, number: int) -> None:
        """The operator's KILL_CONTAINER: SIGKILL destroys the container through the
        executor's lifecycle, so its tasks end as when it dies; another signal goes to the
        container's main process (ProcessLookupError when that has ended)."""
        if number == signal.SIGKILL:
            self._feed(executor, Destroy(0.0))
            return
        assert executor.container is not None
        os.kill(executor.container.pid, number)

    def wait_container(self, executor: ExecutorRun) -> Future[ContainerTermination]:
        return self.containers.wait(executor)
