"""Embedded runner: engine + worker in one process, no cluster needed."""

from noetl.local._progress import Progress
from noetl.local._runner import LocalRunner, resolve_child, run

__all__ = ["LocalRunner", "Progress", "resolve_child", "run"]
