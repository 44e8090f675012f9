"""The pure control-flow engine (DESIGN §3): state + ordered events -> new state + commands."""

from noetl.engine._engine import Engine, deep_merge
from noetl.engine._messages import Command, Event, EventName

__all__ = ["Command", "Engine", "Event", "EventName", "deep_merge"]
