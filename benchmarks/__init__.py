"""Benchmarks of Corral and its runtime; each module runs as a script (see the Makefile)."""
