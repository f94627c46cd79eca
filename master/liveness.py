"""Whether agents are still there: pings, the removal rate limit, and the re-registration
deadline after a master restart.

A sans-IO core, as Mesos's master judges agents:

- Every ``agent_ping_timeout`` each registered agent is pinged (``PingAgent``, saying whether
  the master counts it as connected); a pong resets its count. After
  ``max_agent_ping_timeouts`` pings in a row without a pong, the agent is unreachable.
  A round is cut into ``PING_SLICES`` slices, one every ``agent_ping_timeout / PING_SLICES``,
  each pinging its share of the agents (as Mesos, whose per-agent timers start at each
  agent's registration): 20,000 pongs arriving together sat in front of every other message
  for the time the master took to take them all.
- Unreachable agents are removed at most ``agent_removal_rate_limit`` per second (None: no
  limit); the first at once, later ones spaced. Waiting ones stay registered, marked
  ``pending_removal``; a pong or a re-registration meanwhile cancels their removal.
- After a master restart, the registry's admitted agents must re-register within
  ``agent_reregister_timeout``; those that do not are marked unreachable then.
"""

from __future__ import annotations

from collections import deque

import structlog

from corral.ids import AgentID
from corral.protocol.messages import PingAgent
from master.agents import AgentLifecycle, Removal
from master.outbox import Outbox
from master.registry import AgentStatus, Registry, RegistryError
from master.state import AgentRecord, MasterState

log = structlog.get_logger("master")

PING_ROUND = "ping round"  # the key of the ping timer
PING_SLICES = 10  # a round's agents are pinged in this many slices, spread over the round
REMOVAL = "removal"  # the key of the timer that waits for the removal rate limit


class AgentLiveness:
    """Pings, unreachability and its rate limit; see the module docstring."""

    def __init__(
        self,
        state: MasterState,
        out: Outbox,
        agents: AgentLifecycle,
        registry: Registry,
        agent_ping_timeout: float,
        max_agent_ping_timeouts: int,
        removal_rate_limit: float | None,
        reregister_timeout: float,
    ) -> None:
        self.state = state
        self.out = out
        self.agents = agents
        self.registry = registry
        self.agent_ping_timeout = agent_ping_timeout
        self.max_agent_ping_timeouts = max_agent_ping_timeouts
        self.removal_rate_limit = removal_rate_limit
        self.reregister_timeout = reregister_timeout
        # Unreachable agents waiting for the removal rate limit, oldest first (an id whose
        # agent is no longer pending_removal is skipped when reached).
        self._removals: deque[AgentID] = deque()
        self._next_removal_at = float("-inf")  # runtime-clock time the next removal may run
        self._removal_armed = False  # the REMOVAL timer is set
        # The round under way: the agents it pings (taken when it began) and the next slice.
        self._round: list[AgentID] = []
        self._slice = 0
        self._slice_due = 0.0  # runtime-clock time the current slice was due

    def start(self, now: float) -> None:
        """The master started: arm the ping rounds and, if agents are to re-register, their
        deadline."""
        step = self.agent_ping_timeout / PING_SLICES
        self._slice_due = now + step
        self.out.schedule(PING_ROUND, step, self.ping_slice)
        if self.state.recovering:
            self.out.schedule("reregister", self.reregister_timeout, self.reregister_expired)

    def ping_slice(self, now: float) -> None:
        """One slice of the round: the agents registered when the round began, in order, a
        ``PING_SLICES``-th of them (so each is pinged once per ``agent_ping_timeout``; one
        that registers meanwhile waits for the next round)."""
        if self._slice == 0:
            self._round = list(self.state.agents)
        count = len(self._round)
        start = count * self._slice // PING_SLICES
        end = count * (self._slice + 1) // PING_SLICES
        self._slice = (self._slice + 1) % PING_SLICES
        agents = self.state.agents
        self._ping([agents[i] for i in self._round[start:end] if i in agents], now)
        if self._slice == 0:
            self._round = []
        # The next slice is due a step after this one was (a late timer does not stretch
        # the round), or a step from now if this one came later than that.
        step = self.agent_ping_timeout / PING_SLICES
        self._slice_due += step
        if self._slice_due <= now:
            self._slice_due = now + step
        self.out.schedule(PING_ROUND, self._slice_due - now, self.ping_slice)

    def _ping(self, slice_: list[AgentRecord], now: float) -> None:
        """Count unanswered pings, queue the unreachable for removal, then ping again."""
        for agent in slice_:
            if agent.awaiting_pong and not agent.pending_removal:
                agent.missed_pings += 1
                if agent.missed_pings >= self.max_agent_ping_timeouts:
                    log.warning(
                        "agent_unreachable",
                        agent_id=agent.id,
                        pid=agent.pid,
                        missed_pings=agent.missed_pings,
                    )
                    self._queue_removal(agent, now)
                    if agent.id not in self.state.agents:
                        continue
            agent.awaiting_pong = True
            self.out.send(agent.pid, PingAgent(connected=agent.connected))

    def pong(self, agent: AgentRecord) -> None:
        agent.awaiting_pong = False
        agent.missed_pings = 0
        if agent.pending_removal:
            agent.pending_removal = False  # skipped when the removal queue reaches it
            log.info("agent_removal_cancelled", agent_id=agent.id, reason="it answered a ping")

    def _queue_removal(self, agent: AgentRecord, now: float) -> None:
        """Remove an unreachable agent now, or when the removal rate limit allows it."""
        if self.removal_rate_limit is None:
            self.agents.remove(agent, Removal.UNREACHABLE)
            return
        agent.pending_removal = True
        self._removals.append(agent.id)
        self._run_removals(now)

    def _run_removals(self, now: float) -> None:
        rate = self.removal_rate_limit
        assert rate is not None, "removals only queue under a rate limit"
        while self._removals:
            agent = self.state.agents.get(self._removals[0])
            if agent is None or not agent.pending_removal:
                self._removals.popleft()  # came back, re-registered or removed meanwhile
                continue
            if now < self._next_removal_at - 1e-9:
                if not self._removal_armed:
                    self._removal_armed = True
                    self.out.schedule(REMOVAL, self._next_removal_at - now, self._removal_allowed)
                log.info(
                    "agent_removal_pending",
                    agent_id=agent.id,
                    queued=len(self._removals),
                    in_seconds=round(self._next_removal_at - now, 3),
                )
                return
            self._removals.popleft()
            agent.pending_removal = False
            self._next_removal_at = now + 1.0 / rate
            self.agents.remove(agent, Removal.UNREACHABLE)

    def _removal_allowed(self, now: float) -> None:
        self._removal_armed = False
        self._run_removals(now)

    def reregister_expired(self, now: float) -> None:
        """Agents of the registry that did not re-register after the master's restart."""
        state = self.state
        missing, state.recovering = state.recovering, {}
        missing = {
            agent_id: info
            for agent_id, info in missing.items()
            if agent_id not in state.agents
            and self.registry.status(agent_id) is AgentStatus.ADMITTED
        }
        if not missing:
            return
        try:
            self.registry.mark_all(missing, AgentStatus.UNREACHABLE)
        except RegistryError as error:
            log.error("registry_update_failed", agents=sorted(missing), error=str(error))
        for info in missing.values():
            state.add_unreachable(info)
        log.warning(
            "agents_not_reregistered",
            agents=sorted(missing),
            timeout=self.reregister_timeout,
            reason="marked unreachable",
        )
