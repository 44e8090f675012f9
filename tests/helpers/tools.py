"""Helpers to call one tool in tests without the engine: a real ToolContext around a real client."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from noetl.errors import ToolError
from noetl.tools import RunPlaybookFn, Tool, ToolContext

__all__ = ["acall_tool", "call_tool", "call_tool_error"]


async def acall_tool(tool: Tool, config: dict[str, Any], args: dict[str, Any] | None = None, *,
                     credential: Any = None, timeout: float | None = None, step: str = "s",
                     run_playbook: RunPlaybookFn | None = None) -> Any:
    async with httpx.AsyncClient() as http:
        ctx = ToolContext(execution_id="exec-1", step=step, http=http, credential=credential,
                          timeout=timeout, run_playbook=run_playbook)
        return await tool(config, args or {}, ctx)


def call_tool(tool: Tool, config: dict[str, Any], args: dict[str, Any] | None = None, **kw: Any) -> Any:
    """Run one call in a fresh event loop and return its result."""
    return asyncio.run(acall_tool(tool, config, args, **kw))


def call_tool_error(tool: Tool, config: dict[str, Any], args: dict[str, Any] | None = None,
                    **kw: Any) -> dict[str, Any]:
    """Run one call that must fail; return its error record."""
    try:
        result = call_tool(tool, config, args, **kw)
    except ToolError as exc:
        return exc.record
    raise AssertionError(f"expected a ToolError, got result {result!r}")
