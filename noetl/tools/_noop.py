"""The ``noop`` tool: no side effect; the result is the call's rendered ``args`` (None when empty).

Used for steps that only route or compute with templates, and by benchmarks that measure the
engine without I/O.
"""

from __future__ import annotations

from typing import Any, ClassVar

from noetl.tools._base import ToolContext

__all__ = ["NoopTool"]


class NoopTool:
    """Runs ``tool: {kind: noop}`` (and steps without a tool)."""

    kind: ClassVar[str] = "noop"

    async def __call__(self, config: dict[str, Any], args: dict[str, Any], ctx: ToolContext) -> Any:
        return dict(args) if args else None
