"""Exceptions of the noetl package and the error record of DSL v2 (DESIGN §3.8).

Tree::

    NoetlError                  root: everything noetl raises on purpose
    ├── PlaybookError           the input is wrong (usage errors: fix the file, do not retry)
    │   ├── PlaybookSyntaxError     YAML that does not parse
    │   └── PlaybookInvalid         a playbook that parses but breaks a DSL rule (carries Problems)
    ├── TemplateError           a template failed to compile or render (names step and field)
    └── ToolError               a tool call failed at run time; carries the error record

Run-time failures of a workflow are not exceptions: they travel as error records
``{"type", "message", "status"?}`` inside events. ``error_record`` and ``ToolError`` are the one pair
of functions that convert between the two forms.
"""

from __future__ import annotations

import dataclasses
from typing import Any

#: Longest message we keep from a remote party or a user exception. Long enough for a stack trace
#: summary, short enough that a misbehaving server cannot flood status objects and logs.
MAX_MESSAGE_CHARS = 2000


class NoetlError(Exception):
    """Root of every exception noetl raises on purpose."""


@dataclasses.dataclass(frozen=True)
class Problem:
    """One validation finding, located as precisely as the input allows."""

    message: str
    file: str = "<playbook>"
    line: int | None = None
    step: str | None = None
    field: str | None = None
    severity: str = "error"  # "error" or "warning"

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        parts = [where]
        if self.step:
            parts.append(f"step '{self.step}'")
        text = f"{': '.join(parts)}: "
        if self.field:
            text += f"{self.field}: "
        if self.severity == "warning":
            text += "warning: "
        return text + self.message


class PlaybookError(NoetlError):
    """The playbook (or its workload/overrides) is wrong: fix the input, retrying will not help."""


class PlaybookSyntaxError(PlaybookError):
    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem))
        self.problems = [problem]


class PlaybookInvalid(PlaybookError):
    def __init__(self, problems: list[Problem]) -> None:
        errors = [p for p in problems if p.severity == "error"]
        super().__init__("\n".join(str(p) for p in errors) or "invalid playbook")
        self.problems = problems


class TemplateError(NoetlError):
    """A template could not be compiled or rendered. ``where`` names the step and field."""

    def __init__(self, message: str, *, where: str = "") -> None:
        super().__init__(f"{where}: {message}" if where else message)
        self.where = where
        self.detail = message


class ToolError(NoetlError):
    """A tool call failed. ``record`` is the DSL error object ``{type, message, status?, ...}``."""

    def __init__(self, type: str, message: str, *, status: int | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.record: dict[str, Any] = {"type": type, "message": cap(message), "status": status, **extra}


def cap(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """Cut ``text`` to ``limit`` characters, saying that it was cut."""
    if len(text) <= limit:
        return text
    return text[: limit - 20] + f"... [{len(text) - limit + 20} chars cut]"


def error_record(exc: BaseException) -> dict[str, Any]:
    """Turn any exception into the DSL error record; never raises.

    ToolErrors carry their own record (the python tool puts the user's own frames in it). Anything
    else is reported with its class name and message only: a traceback here would show noetl's
    internals, which tell a playbook author nothing.
    """
    if isinstance(exc, ToolError):
        return dict(exc.record)
    if isinstance(exc, TemplateError):
        return {"type": "TemplateError", "message": cap(str(exc)), "status": None}
    if isinstance(exc, PlaybookError):
        return {"type": type(exc).__name__, "message": cap(str(exc)), "status": None}
    return {"type": type(exc).__name__, "message": cap(str(exc) or type(exc).__name__), "status": None}
