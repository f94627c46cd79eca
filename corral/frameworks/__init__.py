"""Frameworks that ship with Corral (used by ``corral run`` and ``make demo``)."""
