"""The cluster simulator of ``benchmarks/cluster.py``: simulated agents and frameworks that
speak the real protocol to a real master (issue 8)."""

from benchmarks.sim.agents import AgentHost, AgentSpec, SimAgent

__all__ = ["AgentHost", "AgentSpec", "SimAgent"]
