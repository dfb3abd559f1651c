"""hashee-bench: a benchmark harness for hash-based and instance-level early exit."""

__version__ = "0.1.0"
