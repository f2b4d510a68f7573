"""Task suites and scoring."""

from metasearch.tasks.base import Suite, Task

__all__ = ["Suite", "Task"]
