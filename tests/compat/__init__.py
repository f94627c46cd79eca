"""Compatibility: software written for Apache Mesos, unmodified, against a real Corral cluster."""
