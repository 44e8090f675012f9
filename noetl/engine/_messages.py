"""What crosses the boundary between the engine and the runtimes: commands out, events in.

Both are frozen: once the engine has issued a command or accepted an event, nobody may change it.
Ids are deterministic (derived from the execution id, the activation and call counters), so a
runtime that re-sends a command or re-delivers an event can be recognised and ignored.
"""

from __future__ import annotations

import enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class EventName(str, enum.Enum):
    """Wire names of events (DESIGN §3.3)."""

    WORKFLOW_START = "workflow.start"
    STEP_ENTER = "step.enter"
    CALL_DONE = "call.done"
    STEP_EXIT = "step.exit"
    WORKFLOW_END = "workflow.end"

    def __str__(self) -> str:
        return self.value


class Command(BaseModel):
    """One tool call to run. Produced by the engine, executed by a worker (local, pod or Job)."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(description="Unique, deterministic id: execution/activation/item/call.attempt")
    execution_id: str
    step: str = Field(description="Name of the step the call belongs to")
    activation: str = Field(description="Activation id, e.g. 'fetch#2' for the 2nd entry of step fetch")
    item: int | None = Field(default=None, description="Loop item index, None outside loops")
    call: int = Field(default=1, description="1-based call number of this item (grows with `call:`)")
    attempt: int = Field(default=1, description="1-based attempt number (grows with `retry:`)")
    purpose: Literal["call", "sink"] = "call"
    tool: dict[str, Any] = Field(description="Tool config with every field rendered, except deferred ones")
    deferred: dict[str, str] = Field(
        default_factory=dict,
        description="Dotted path inside `tool` -> template that needs `auth`/`secret`; rendered where the tool runs",
    )
    context: dict[str, Any] = Field(
        default_factory=dict, description="Values the deferred templates reference (nothing else)"
    )
    args: dict[str, Any] = Field(default_factory=dict, description="Rendered arguments for the tool")
    auth: str | None = Field(default=None, description="Credential name, resolved only where the tool runs")
    delay: float = Field(default=0.0, description="Seconds to wait before running (retry backoff)")
    timeout: float | None = Field(default=None, description="Seconds the call may take")


class Event(BaseModel):
    """Outcome of one command, reported by a worker: ``call.done`` with ``response`` or ``error``."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(description="Deterministic: '<command id>:done'")
    name: EventName = EventName.CALL_DONE
    command_id: str
    response: Any = None
    error: dict[str, Any] | None = Field(default=None, description="{type, message, status?} when failed")
    started_at: float | None = Field(default=None, description="Unix time the call started (informational)")
    finished_at: float | None = Field(default=None, description="Unix time the call ended (informational)")

    @classmethod
    def done(cls, command: Command, *, response: Any = None, error: dict[str, Any] | None = None,
             started_at: float | None = None, finished_at: float | None = None) -> "Event":
        return cls(id=f"{command.id}:done", command_id=command.id, response=response, error=error,
                   started_at=started_at, finished_at=finished_at)
