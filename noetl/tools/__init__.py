"""Tool kinds: one module per kind, each a class implementing the ``Tool`` protocol.

Who calls it: the worker (``noetl.worker``) looks a command's ``tool.kind`` up in a registry made by
``default_tools()`` (plus whatever ``register_tool`` added). The engine never imports this package.
Tools never see the engine, events or other tools; each module stands alone.

Kinds: ``http``, ``postgres``, ``python``, ``noop``, ``playbook``. (``workbook`` is resolved by the
engine into the workbook entry's own tool, so it has no module.)

Some tools keep resources between calls (Postgres connections; the python tool's process pool is
process-wide and closes itself at exit). ``aclose_tools`` releases what a registry holds; the
runtime calls it when it shuts down.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any, Callable, Mapping

from noetl.tools._base import RunPlaybookFn, Tool, ToolContext
from noetl.tools._http import HttpTool
from noetl.tools._noop import NoopTool
from noetl.tools._playbook import PlaybookTool
from noetl.tools._python import PythonProcessPool, PythonTool, shared_pool

__all__ = [
    "HttpTool",
    "NoopTool",
    "PlaybookTool",
    "PostgresTool",
    "PythonProcessPool",
    "PythonTool",
    "RunPlaybookFn",
    "Tool",
    "ToolContext",
    "aclose_tools",
    "default_tools",
    "register_tool",
    "shared_pool",
]

ToolFactory = Callable[[], Tool]

_extra: dict[str, ToolFactory] = {}


def register_tool(kind: str, factory: ToolFactory) -> None:
    """Add (or replace) a tool kind for every registry ``default_tools()`` makes from now on.

    ``factory`` builds a fresh instance (a class with a no-argument constructor will do).
    """
    if not kind or not isinstance(kind, str):
        raise ValueError(f"register_tool: kind must be a non-empty string, got {kind!r}")
    _extra[kind] = factory


class _LazyTool:
    """A tool whose module is imported on its first call.

    Why: psycopg takes about 0.2 s to import, a large share of `noetl run`'s start-up, and most
    playbooks never touch Postgres.
    """

    def __init__(self, kind: str, module: str, name: str) -> None:
        self.kind = kind
        self._module, self._name = module, name
        self._tool: Any = None

    def _load(self) -> Any:
        if self._tool is None:
            self._tool = getattr(importlib.import_module(self._module), self._name)()
        return self._tool

    async def __call__(self, config: dict[str, Any], args: dict[str, Any], ctx: ToolContext) -> Any:
        return await self._load()(config, args, ctx)

    async def aclose(self) -> None:
        if self._tool is not None:
            await aclose_tools({"tool": self._tool})


def __getattr__(name: str) -> Any:
    if name == "PostgresTool":
        from noetl.tools._postgres import PostgresTool

        return PostgresTool
    raise AttributeError(f"module 'noetl.tools' has no attribute '{name}'")


def default_tools(**overrides: Tool) -> dict[str, Tool]:
    """A fresh registry ``{kind: tool}`` with the built-in kinds, registered ones, then ``overrides``."""
    tools: dict[str, Tool] = {
        "http": HttpTool(),
        "postgres": _LazyTool("postgres", "noetl.tools._postgres", "PostgresTool"),  # type: ignore[dict-item]
        "python": PythonTool(),
        "noop": NoopTool(),
        "playbook": PlaybookTool(),
    }
    for kind, factory in _extra.items():
        tools[kind] = factory()
    tools.update(overrides)
    return tools


async def aclose_tools(tools: Mapping[str, Any]) -> None:
    """Release what the tools keep between calls (``aclose()``/``close()`` when they have one)."""
    for tool in tools.values():
        closer = getattr(tool, "aclose", None)
        if closer is None:
            continue
        result = closer()
        if inspect.isawaitable(result):
            await result
