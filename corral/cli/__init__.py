"""The ``corral`` command line: the top floor, the only part of corral that may import
master and agent."""
