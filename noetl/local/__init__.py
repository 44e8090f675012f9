"""Embedded runner: engine + worker in one process, no cluster needed."""

from noetl.local._progress import Progress, describe_error
from noetl.local._runner import LocalRunner, resolve_child, run

__all__ = ["LocalRunner", "Progress", "describe_error", "resolve_child", "run"]
