"""noop and playbook tools, the registry and the package's public names."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import noetl.tools
from noetl.tools import (
    HttpTool,
    NoopTool,
    PlaybookTool,
    PostgresTool,
    PythonTool,
    ToolContext,
    aclose_tools,
    default_tools,
    register_tool,
)
from noetl.tools import _python
from tests.helpers.tools import call_tool, call_tool_error


def test_noop_returns_its_args() -> None:
    assert call_tool(NoopTool(), {"kind": "noop"}, {"a": 1, "b": [2]}) == {"a": 1, "b": [2]}


def test_noop_without_args_returns_none() -> None:
    assert call_tool(NoopTool(), {}, {}) is None


def test_playbook_tool_calls_the_runtime() -> None:
    calls: list[tuple[dict[str, Any], dict[str, Any]]] = []

    async def run_playbook(ref: dict[str, Any], args: dict[str, Any]) -> Any:
        calls.append((ref, args))
        return {"child": "done", "got": args}

    result = call_tool(PlaybookTool(), {"kind": "playbook", "path": "sub/child", "args": {"x": 1}}, {"y": 2},
                       run_playbook=run_playbook)
    assert result == {"child": "done", "got": {"x": 1, "y": 2}}
    assert calls == [({"path": "sub/child"}, {"x": 1, "y": 2})]


def test_playbook_tool_by_name() -> None:
    async def run_playbook(ref: dict[str, Any], args: dict[str, Any]) -> Any:
        return ref

    assert call_tool(PlaybookTool(), {"name": "child"}, run_playbook=run_playbook) == {"name": "child"}


def test_playbook_tool_without_runtime_support_is_an_error() -> None:
    error = call_tool_error(PlaybookTool(), {"path": "sub/child"}, step="sub")
    assert error["type"] == "Unsupported" and "step 'sub'" in error["message"]


def test_playbook_tool_needs_a_reference() -> None:
    async def run_playbook(ref: dict[str, Any], args: dict[str, Any]) -> Any:
        raise AssertionError("not called")

    assert call_tool_error(PlaybookTool(), {}, run_playbook=run_playbook)["type"] == "ToolConfigError"


def test_default_tools_has_every_builtin_kind() -> None:
    tools = default_tools()
    assert set(tools) == {"http", "postgres", "python", "noop", "playbook"}
    for kind, tool in tools.items():
        assert tool.kind == kind
    assert isinstance(tools["http"], HttpTool)
    assert isinstance(tools["postgres"]._load(), PostgresTool)  # type: ignore[attr-defined]
    assert isinstance(tools["python"], PythonTool) and tools["python"].pool is _python.shared_pool()


class EchoTool:
    kind: ClassVar[str] = "echo"

    async def __call__(self, config: dict[str, Any], args: dict[str, Any], ctx: ToolContext) -> Any:
        return {"config": config, "args": args}


def test_register_tool_and_overrides() -> None:
    register_tool("echo", EchoTool)
    try:
        tools = default_tools(noop=EchoTool())
        assert isinstance(tools["echo"], EchoTool) and isinstance(tools["noop"], EchoTool)
        assert tools["echo"] is not default_tools()["echo"]  # a fresh instance per registry
    finally:
        noetl.tools._extra.pop("echo", None)
    assert "echo" not in default_tools()


def test_aclose_tools_calls_aclose_and_close() -> None:
    closed: list[str] = []

    class AsyncClosing:
        async def aclose(self) -> None:
            closed.append("async")

    class SyncClosing:
        def aclose(self) -> None:
            closed.append("sync")

    asyncio.run(aclose_tools({"a": AsyncClosing(), "b": SyncClosing(), "c": NoopTool()}))  # type: ignore[dict-item]
    assert closed == ["async", "sync"]


def test_public_names_are_exported() -> None:
    exported = set(noetl.tools.__all__)
    public = {name for name, value in vars(noetl.tools).items()
              if not name.startswith("_") and getattr(value, "__module__", "").startswith("noetl.")}
    assert public <= exported
    for name in exported:
        assert hasattr(noetl.tools, name)


def test_postgres_module_is_imported_only_when_first_used() -> None:
    import subprocess
    import sys

    code = ("import sys, noetl.local, noetl.tools; t = noetl.tools.default_tools(); "
            "print('psycopg' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
