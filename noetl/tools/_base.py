"""The tool plugin contract.

A tool turns a rendered tool config and arguments into a JSON-serialisable result, or raises
``noetl.errors.ToolError`` with an error record. Tools never see the engine, events or other tools;
the worker gives them a ``ToolContext`` with what the runtime offers (a shared HTTP client, the
resolved credential, a way to run a child playbook).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Awaitable, Callable, ClassVar, Protocol

import httpx

#: Runs a child playbook: (reference {"path": ...} or {"name": ...}, args) -> the child's result.
RunPlaybookFn = Callable[[dict[str, Any], dict[str, Any]], Awaitable[Any]]


@dataclasses.dataclass
class ToolContext:
    """Runtime services handed to a tool for one call."""

    execution_id: str
    step: str
    http: httpx.AsyncClient
    credential: Any = None  # the resolved `auth` credential (dict or scalar), None without auth
    timeout: float | None = None
    run_playbook: RunPlaybookFn | None = None


class Tool(Protocol):
    kind: ClassVar[str]

    async def __call__(self, config: dict[str, Any], args: dict[str, Any], ctx: ToolContext) -> Any:
        """Run one call. Return the result or raise ToolError."""
        ...
