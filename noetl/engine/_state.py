"""Mutable bookkeeping of one execution, owned by the engine.

Plain dataclasses of JSON values, so a snapshot is ``dataclasses.asdict`` and two engines fed the
same events can be compared field by field.
"""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass
class Item:
    """One unit of tool calls: a loop item, or the single call chain of a non-loop activation."""

    index: int | None
    value: Any = None
    call: int = 1
    attempt: int = 1
    overrides: dict[str, Any] = dataclasses.field(default_factory=dict)
    args: dict[str, Any] = dataclasses.field(default_factory=dict)
    result: Any = None
    result_set: bool = False
    error: dict[str, Any] | None = None
    handled: bool = False  # a rule routed the failure with `next`
    done: bool = False


@dataclasses.dataclass
class Activation:
    """One entry of a step (DESIGN §3.2)."""

    id: str
    step: str
    number: int
    args: dict[str, Any]
    items: dict[int | None, Item] = dataclasses.field(default_factory=dict)
    loop_values: list[Any] | None = None  # None for a non-loop step
    next_index: int = 0
    completed: int = 0
    results: list[Any] = dataclasses.field(default_factory=list)  # loop results, in item order
    first_error: dict[str, Any] | None = None  # of the first unhandled failed item
    failed: int = 0
    unhandled_failures: int = 0
    sinks: int = 0  # sink commands still outstanding
    sink_seq: int = 0
    exited: bool = False


@dataclasses.dataclass
class Pending:
    """An outstanding command: which activation and item its outcome belongs to."""

    activation: str
    item: int | None
    purpose: str  # "call" or "sink"
    command: dict[str, Any] | None = None  # kept only by runtimes that need to re-dispatch


@dataclasses.dataclass
class StepStats:
    status: str = "pending"  # pending | running | succeeded | failed | skipped
    runs: int = 0
    calls: int = 0
    result: Any = None
    items_done: int = 0
    items_total: int = 0


@dataclasses.dataclass
class ExecutionState:
    execution_id: str
    workload: dict[str, Any] = dataclasses.field(default_factory=dict)
    ctx: dict[str, Any] = dataclasses.field(default_factory=dict)
    results: dict[str, Any] = dataclasses.field(default_factory=dict)
    activations: dict[str, Activation] = dataclasses.field(default_factory=dict)
    pending: dict[str, Pending] = dataclasses.field(default_factory=dict)
    steps: dict[str, StepStats] = dataclasses.field(default_factory=dict)
    status: str = "pending"  # pending | running | succeeded | failed
    error: dict[str, Any] | None = None
    result: Any = None
    last_result: Any = None
    end_requested: bool = False
    end_args: dict[str, Any] = dataclasses.field(default_factory=dict)
    end_ran: bool = False
    warnings: list[str] = dataclasses.field(default_factory=list)
    events: int = 0


def _item_key(key: Any) -> int | None:
    """Item keys are ints (loop index) or None; JSON turned them into strings."""
    if key is None or key == "null" or key == "None":
        return None
    return int(key)


def state_from_dict(data: dict[str, Any]) -> ExecutionState:
    """Rebuild an ``ExecutionState`` from ``dataclasses.asdict`` output that went through JSON."""
    data = dict(data)
    activations = {}
    for act_id, raw in (data.pop("activations", None) or {}).items():
        raw = dict(raw)
        items = {_item_key(k): Item(**v) for k, v in (raw.pop("items", None) or {}).items()}
        activations[act_id] = Activation(**raw, items=items)
    pending = {cid: Pending(**p) for cid, p in (data.pop("pending", None) or {}).items()}
    steps = {name: StepStats(**st) for name, st in (data.pop("steps", None) or {}).items()}
    return ExecutionState(**data, activations=activations, pending=pending, steps=steps)
