"""Benchmarks: each prints the project's figure, a baseline measured in the same run, and
the ratio, with the core count."""
