"""Helpers of the performance benchmark (benchmarks/run.py): FLOP counts, timing, memory."""
