"""Pydantic models of a DSL v2 playbook (DESIGN §3.1, §3.2, §3.4, §3.6).

These hold a playbook as validated structure; templates inside stay unrendered strings. Both
document forms (file form and Kubernetes resource form) load into ``Playbook``. Shorthands are
normalised here once (``next: name`` -> a list of transitions, ``then`` map -> list of maps,
``set: {x: 1}`` -> ``{ctx: {x: 1}}``) so the engine sees one shape.
"""

from __future__ import annotations

import functools
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

#: Tool kinds the runtime provides. `workbook` is resolved by the engine to a workbook entry's tool.
TOOL_KINDS = frozenset({"http", "postgres", "python", "workbook", "playbook", "noop"})

#: The name that ends a branch; when a step of that name exists it is a join (DESIGN §3.5).
END = "end"
START = "start"

_MODEL = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class Transition(BaseModel):
    """One target of a `next`: the step to activate and the args handed to it."""

    model_config = _MODEL
    step: str = Field(description="Name of the step to activate ('end' is always allowed)")
    args: dict[str, Any] = Field(default_factory=dict, description="Templates rendered in the source context")


def _transitions(value: Any) -> Any:
    if value is None:
        return []
    if isinstance(value, (str, dict)):
        value = [value]
    if isinstance(value, list):
        return [{"step": v} if isinstance(v, str) else v for v in value]
    return value


class Loop(BaseModel):
    model_config = _MODEL
    in_: Any = Field(alias="in", description="Expression giving the list of items (null means empty)")
    iterator: str = Field(default="item", description="Name bound to the current item")
    mode: Literal["sequential", "parallel"] = Field(default="sequential")
    max_in_flight: int = Field(default=16, ge=1, description="Parallel items running at once")


class Collect(BaseModel):
    model_config = _MODEL
    from_: str = Field(alias="from", description="Expression evaluated in the event context")
    into: str = Field(description="ctx key that accumulates the values")
    mode: Literal["append", "extend", "replace"] = "append"


class Retry(BaseModel):
    model_config = _MODEL
    max_attempts: int = Field(default=3, ge=1, description="Total calls including the first")
    initial_delay: float = Field(default=0.5, ge=0)
    backoff_multiplier: float = Field(default=2.0, ge=1)
    max_delay: float = Field(default=60.0, ge=0)

    def delay_after(self, attempt: int) -> float:
        """Seconds to wait before attempt ``attempt + 1``."""
        return min(self.max_delay, self.initial_delay * self.backoff_multiplier ** (attempt - 1))


class Sink(BaseModel):
    model_config = _MODEL
    tool: dict[str, Any] = Field(description="Tool config of the side command (kind + fields)")
    args: dict[str, Any] = Field(default_factory=dict)


class Fail(BaseModel):
    model_config = _MODEL
    message: str = "failed by rule"


class Then(BaseModel):
    """One `then` map. Actions run in the fixed order of ACTION_ORDER, all of them."""

    model_config = _MODEL
    set: dict[str, Any] | None = None
    collect: list[Collect] | None = None
    result: Any = None
    has_result: bool = Field(default=False, exclude=True)
    sink: Sink | None = None
    call: dict[str, Any] | None = None
    retry: Retry | None = None
    next: list[Transition] | None = None
    skip: bool = False
    fail: Fail | None = None

    @model_validator(mode="before")
    @classmethod
    def _normalise(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if "result" in data:
            data["has_result"] = True
        if isinstance(data.get("set"), dict) and "ctx" not in data["set"]:
            data["set"] = {"ctx": data["set"]}
        elif isinstance(data.get("set"), dict):
            rest = {k: v for k, v in data["set"].items() if k != "ctx"}
            data["set"] = {"ctx": {**(data["set"]["ctx"] or {}), **rest}}
        if isinstance(data.get("collect"), dict):
            data["collect"] = [data["collect"]]
        if data.get("retry") is True or data.get("retry") == {}:
            data["retry"] = {}
        if isinstance(data.get("fail"), str):
            data["fail"] = {"message": data["fail"]}
        elif data.get("fail") is True:
            data["fail"] = {}
        if "next" in data:
            data["next"] = _transitions(data["next"])
        return data


ACTION_ORDER = ("set", "collect", "result", "sink", "call", "retry", "next", "skip", "fail")


class CaseRule(BaseModel):
    model_config = _MODEL
    when: str | bool | None = Field(default=None, description="Condition; missing means always")
    then: list[Then] = Field(default_factory=list)

    @field_validator("then", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        if value is None:
            return []
        return [value] if isinstance(value, dict) else value


class Step(BaseModel):
    model_config = _MODEL
    step: str = Field(min_length=1, description="Unique step name")
    desc: str | None = None
    args: dict[str, Any] = Field(default_factory=dict)
    tool: dict[str, Any] = Field(default_factory=lambda: {"kind": "noop"})
    loop: Loop | None = None
    case: list[CaseRule] = Field(default_factory=list)
    next: list[Transition] = Field(default_factory=list)

    @field_validator("next", mode="before")
    @classmethod
    def _next(cls, value: Any) -> Any:
        return _transitions(value)

    @field_validator("tool", mode="before")
    @classmethod
    def _tool(cls, value: Any) -> Any:
        if value is None:
            return {"kind": "noop"}
        if isinstance(value, str):
            return {"kind": value}
        if isinstance(value, dict) and "kind" not in value:
            return {"kind": "noop", **value}
        return value

    @property
    def kind(self) -> str:
        return str(self.tool.get("kind", "noop"))


class WorkbookEntry(BaseModel):
    model_config = _MODEL
    name: str
    desc: str | None = None
    tool: dict[str, Any]
    args: dict[str, Any] = Field(default_factory=dict)


class Metadata(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)
    name: str = Field(min_length=1)
    path: str | None = None
    version: str | None = None
    description: str | None = None

    @field_validator("version", mode="before")
    @classmethod
    def _str_version(cls, value: Any) -> Any:
        return None if value is None else str(value)


class Playbook(BaseModel):
    model_config = _MODEL
    api_version: str = Field(default="noetl.io/v2", alias="apiVersion")
    kind: Literal["Playbook"] = "Playbook"
    metadata: Metadata
    workload: dict[str, Any] = Field(default_factory=dict)
    workbook: list[WorkbookEntry] = Field(default_factory=list)
    workflow: list[Step] = Field(min_length=1)
    keychain: Any = None

    @field_validator("workload", mode="before")
    @classmethod
    def _workload(cls, value: Any) -> Any:
        return {} if value is None else value

    @field_validator("workbook", mode="before")
    @classmethod
    def _workbook(cls, value: Any) -> Any:
        return [] if value is None else value

    @functools.cached_property
    def steps(self) -> dict[str, Step]:
        """Steps by name (the first one wins if validation let a duplicate through)."""
        steps: dict[str, Step] = {}
        for s in self.workflow:
            steps.setdefault(s.step, s)
        return steps

    def workbook_entry(self, name: str) -> WorkbookEntry | None:
        return next((w for w in self.workbook if w.name == name), None)
