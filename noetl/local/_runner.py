"""The embedded runner: engine and worker in one process (DESIGN §1, mode 1).

Who calls it: `noetl run`, `noetl.run()`, the `playbook` tool of a local run (child executions).
It owns the asyncio loop's tasks: every command becomes a task that waits out the command's delay,
executes it with the worker and reports the ``call.done`` event back to the engine. Parallel loop
items therefore really run at the same time (bounded by the engine's ``max_in_flight`` and the
runner's ``concurrency``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from pathlib import Path
from typing import Any

from noetl.dsl import ParsedPlaybook, load_playbook
from noetl.engine import Command, Engine, Event
from noetl.errors import PlaybookError, ToolError, error_record
from noetl.local._progress import Progress
from noetl.worker import CredentialSource, WorkerRuntime, execute

#: Child playbooks may call children; this bounds accidental infinite recursion.
MAX_DEPTH = 16
#: Files larger than this are not read when looking for a child playbook by metadata.path.
MAX_SCANNED_BYTES = 1024 * 1024


class LocalRunner:
    """Runs one execution to the end. Use ``await runner.run()`` or ``noetl.run()``."""

    def __init__(self, parsed: ParsedPlaybook, *, workload: dict[str, Any] | None = None,
                 credentials: CredentialSource | None = None, progress: Progress | None = None,
                 execution_id: str | None = None, concurrency: int = 64, runtime: WorkerRuntime | None = None,
                 depth: int = 0) -> None:
        self.parsed = parsed
        self.execution_id = execution_id or uuid.uuid4().hex[:16]
        self.engine = Engine(parsed.playbook, execution_id=self.execution_id, workload=workload)
        self.credentials = credentials
        self.progress = progress or Progress(quiet=True)
        self.concurrency = concurrency
        self._parent_runtime = runtime
        self._depth = depth

    async def run(self) -> dict[str, Any]:
        """Run until the engine says the workflow ended; return the summary."""
        if self._parent_runtime is None:
            runtime = WorkerRuntime.create(credentials=self.credentials, run_playbook=self._run_child)
        else:  # a child execution shares its parent's HTTP pool and tool resources
            runtime = dataclasses.replace(self._parent_runtime, run_playbook=self._run_child, owns_http=False)
        self._runtime = runtime
        events: asyncio.Queue[Event] = asyncio.Queue()
        slots = asyncio.Semaphore(self.concurrency)
        tasks: set[asyncio.Task[None]] = set()

        async def run_command(command: Command) -> None:
            try:
                if command.delay > 0:
                    await asyncio.sleep(command.delay)
                async with slots:
                    event = await execute(command, runtime)
            except Exception as exc:  # noqa: BLE001 - the worker should not raise; never lose an event
                event = Event.done(command, error=error_record(exc))
            events.put_nowait(event)

        def dispatch(commands: list[Command]) -> None:
            for command in commands:
                task = asyncio.create_task(run_command(command), name=command.id)
                tasks.add(task)
                task.add_done_callback(tasks.discard)

        try:
            dispatch(self.engine.start())
            self.progress.show(self.engine.drain_records())
            while not self.engine.finished:
                if not tasks and events.empty():
                    # Cannot happen with a correct engine; refuse to hang if it does.
                    raise RuntimeError(f"engine is waiting for {self.engine.outstanding()} but nothing runs")
                event = await events.get()
                dispatch(self.engine.handle(event))
                self.progress.show(self.engine.drain_records())
        finally:
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
            if self._parent_runtime is None:
                await runtime.aclose()
            self.progress.show(self.engine.drain_records())
        return self.engine.summary()

    async def _run_child(self, ref: dict[str, Any], args: dict[str, Any]) -> Any:
        """The `playbook` tool: run a child execution in this process; its result is the call's result."""
        if self._depth + 1 > MAX_DEPTH:
            raise ToolError("PlaybookError", f"child playbooks nested deeper than {MAX_DEPTH} levels")
        try:
            child = resolve_child(self.parsed, ref)
        except PlaybookError as exc:
            raise ToolError("PlaybookInvalid", f"child playbook {ref}: {exc}") from None
        runner = LocalRunner(child, workload=args, credentials=self.credentials,
                             progress=Progress(self.progress.stream, quiet=self.progress.quiet,
                                               prefix=self.progress.prefix + "  "),
                             execution_id=f"{self.execution_id}.{uuid.uuid4().hex[:6]}",
                             concurrency=self.concurrency, runtime=self._runtime, depth=self._depth + 1)
        summary = await runner.run()
        if summary["status"] != "succeeded":
            err = summary["error"] or {}
            raise ToolError("PlaybookFailed", f"child playbook '{child.playbook.metadata.name}' failed at step "
                            f"'{err.get('step')}': {err.get('type')}: {err.get('message')}")
        return summary["result"]


def resolve_child(parent: ParsedPlaybook, ref: dict[str, Any]) -> ParsedPlaybook:
    """Find a child playbook: a file relative to the parent, or a playbook in the parent's folder
    whose ``metadata.path`` (or ``metadata.name``) matches."""
    folder = parent.directory or Path.cwd()
    wanted = str(ref.get("path") or ref.get("name") or "")
    if not wanted:
        raise ToolError("PlaybookError", "the playbook tool needs 'path' or 'name'")
    for candidate in (folder / wanted, folder / f"{wanted}.yaml", folder / f"{wanted}.yml"):
        if candidate.is_file():
            return load_playbook(candidate)
    for candidate in sorted(folder.glob("*.y*ml")):
        try:
            if candidate.stat().st_size > MAX_SCANNED_BYTES:
                continue
            parsed = load_playbook(candidate)
        except (PlaybookError, OSError):  # other files in the folder may be anything
            continue
        meta = parsed.playbook.metadata
        if wanted in (meta.path, meta.name):
            return parsed
    raise ToolError("PlaybookNotFound", f"no playbook '{wanted}': not a file next to {parent.file} and no "
                    f"playbook in {folder} has metadata.path or metadata.name '{wanted}'")


def run(playbook: str | Path | ParsedPlaybook, workload: dict[str, Any] | None = None,
        credentials: CredentialSource | dict[str, Any] | None = None, *, progress: Progress | None = None,
        execution_id: str | None = None) -> dict[str, Any]:
    """Run a playbook with the embedded runner and return the run summary.

    ``playbook`` is a path or a parsed playbook; ``credentials`` a mapping ``name -> value`` or a
    credential source. Raises ``PlaybookError`` for invalid input; a failed workflow is reported in
    the summary (``status: failed`` and ``error``), not raised.
    """
    from noetl.worker import MappingCredentials

    if workload is not None and not isinstance(workload, dict):
        raise TypeError(f"noetl.run(): workload must be a dict or None, not {type(workload).__name__}")
    if credentials is not None and not isinstance(credentials, dict) and not hasattr(credentials, "resolve"):
        raise TypeError("noetl.run(): credentials must be a dict name -> value or a credential source "
                        f"(e.g. noetl.worker.default_credentials(path)), not {type(credentials).__name__}")
    if execution_id is not None and not isinstance(execution_id, str):
        raise TypeError(f"noetl.run(): execution_id must be a string, not {type(execution_id).__name__}")
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise RuntimeError("noetl.run() cannot be called from a running event loop; "
                           "use `await noetl.local.LocalRunner(noetl.load_playbook(path), ...).run()`")
    parsed = playbook if isinstance(playbook, ParsedPlaybook) else load_playbook(playbook)
    source = MappingCredentials(credentials) if isinstance(credentials, dict) else credentials
    runner = LocalRunner(parsed, workload=workload, credentials=source, progress=progress,
                         execution_id=execution_id)
    return asyncio.run(runner.run())
