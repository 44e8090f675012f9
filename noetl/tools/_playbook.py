"""The ``playbook`` tool: runs a child execution and returns its workflow result.

The tool only forwards the reference (``path`` or ``name``) and ``args`` to the runtime's
``run_playbook`` function: finding the file, deep-merging ``args`` over the child's workload and
running it belong to the runtime (local runner or operator), which knows where playbooks live.
"""

from __future__ import annotations

from typing import Any, ClassVar

from noetl.errors import ToolError
from noetl.tools._base import ToolContext

__all__ = ["PlaybookTool"]


class PlaybookTool:
    """Runs ``tool: {kind: playbook, path|name: ..., args: ...}``."""

    kind: ClassVar[str] = "playbook"

    async def __call__(self, config: dict[str, Any], args: dict[str, Any], ctx: ToolContext) -> Any:
        ref: dict[str, Any] = {}
        for key in ("path", "name"):
            if config.get(key):
                ref[key] = config[key]
        if not ref:
            raise ToolError("ToolConfigError",
                            f"step '{ctx.step}': playbook tool needs `path:` (or `name:`) of the playbook to run")
        if ctx.run_playbook is None:
            raise ToolError("Unsupported",
                            f"step '{ctx.step}': this runtime cannot run child playbooks "
                            f"({ref}); run it with the embedded runner or the operator")
        child_args = dict(config.get("args") or {})
        child_args.update(args or {})
        return await ctx.run_playbook(ref, child_args)
