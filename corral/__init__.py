"""Corral's shared kernel and public face: resources, ids, task states, protocol
messages, the framework API, and the ``corral`` command line."""

__version__ = "0.1.0"
