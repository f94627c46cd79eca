"""The agent: runs tasks in containers on one machine and reports their states to the master."""

from agent.agent import AgentProcess
from agent.executor_lifecycle import ExecutorState
from agent.options import AgentOptions
from agent.resources_detection import agent_resources, detect_resources
from agent.sandbox import sandbox_path

__all__ = [
    "AgentOptions",
    "AgentProcess",
    "ExecutorState",
    "agent_resources",
    "detect_resources",
    "sandbox_path",
]
