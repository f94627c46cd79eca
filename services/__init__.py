"""The services scheduler: a Marathon-compatible framework for long-running services.

The DC/OS layer: it speaks to the cluster only as a framework (``corral.scheduler``) and never
imports the master, the agent or the containerizer. See docs/services.md.
"""
