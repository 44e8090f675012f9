"""A deterministic driver for the pure engine: commands are answered by a Python function."""

from __future__ import annotations

import dataclasses
import textwrap
from typing import Any, Callable

import pytest

from noetl.dsl import parse_playbook
from noetl.engine import Command, Engine, Event

Respond = Callable[[Command], Any]


class Fail(Exception):
    """Raised by a responder to answer a command with an error record."""

    def __init__(self, type: str = "Boom", status: int | None = None, message: str = "boom") -> None:
        self.record = {"type": type, "status": status, "message": message}


@dataclasses.dataclass
class Run:
    engine: Engine
    commands: list[Command]
    max_outstanding: dict[str, int]

    @property
    def summary(self) -> dict[str, Any]:
        return self.engine.summary()

    @property
    def status(self) -> str:
        return self.engine.state.status

    def calls(self, step: str) -> list[Command]:
        return [c for c in self.commands if c.step == step and c.purpose == "call"]


def playbook(body: str) -> Any:
    head = "apiVersion: noetl.io/v2\nkind: Playbook\nmetadata: {name: test}\n"
    return parse_playbook(head + textwrap.dedent(body)).playbook


def drive(body: str, respond: Respond | None = None, *, workload: dict[str, Any] | None = None,
          order: str = "fifo", duplicate: bool = False) -> Run:
    """Run a playbook on the engine; ``respond(command)`` returns the response or raises Fail.

    ``order='lifo'`` answers the newest command first (to shake out ordering assumptions);
    ``duplicate=True`` delivers every event twice.
    """
    respond = respond or (lambda c: c.args or None)
    engine = Engine(playbook(body), execution_id="ex", workload=workload)
    queue = list(engine.start())
    seen: list[Command] = list(queue)
    peak: dict[str, int] = {}
    for _ in range(100_000):
        if not queue:
            break
        outstanding: dict[str, int] = {}
        for c in queue:
            outstanding[c.step] = outstanding.get(c.step, 0) + 1
        for k, v in outstanding.items():
            peak[k] = max(peak.get(k, 0), v)
        command = queue.pop(0 if order == "fifo" else -1)
        try:
            event = Event.done(command, response=respond(command))
        except Fail as exc:
            event = Event.done(command, error=exc.record)
        new = engine.handle(event)
        if duplicate:
            assert engine.handle(event) == []
        seen.extend(new)
        queue.extend(new)
    else:  # pragma: no cover - a runaway playbook in a test
        raise AssertionError("engine did not finish")
    return Run(engine=engine, commands=seen, max_outstanding=peak)


@pytest.fixture
def run_playbook() -> Callable[..., Run]:
    return drive
