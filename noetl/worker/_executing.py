"""Execution of one engine ``Command`` into one ``call.done`` ``Event``; transport-agnostic.

Who calls it: the local runner (in process), the worker pods and the Job pods (which receive the
command from the operator and patch the event back). It knows nothing of Kubernetes or of the
engine's state, and it never waits for ``command.delay`` (the caller does: it owns the clock).

Steps: resolve ``command.auth`` (only here), render ``command.deferred`` templates with
``auth``/``secret`` into a copy of the tool config, pick the tool by ``tool.kind``, run it under
``command.timeout``, make the response JSON, redact the credential's values, build the event.

It never raises for a failed call: any exception becomes the event's error record. Only
cancellation (the runtime shutting down) propagates.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import inspect
import json
import logging
import time
from typing import Any, Mapping

import httpx

from noetl.engine._messages import Command, Event
from noetl.errors import ToolError, error_record
from noetl.templating import render
from noetl.tools import RunPlaybookFn, Tool, ToolContext, aclose_tools, default_tools
from noetl.worker._credentials import CredentialSource, EnvironmentCredentials
from noetl._redaction import redact, secret_strings

__all__ = ["WorkerRuntime", "create_http_client", "execute"]

log = logging.getLogger("noetl.worker")

#: Extra seconds the worker grants a tool past ``command.timeout`` before it gives up on it itself.
#: Tools enforce the timeout first (with a precise message); this only catches one that does not.
TIMEOUT_GRACE = 2.0


def create_http_client() -> httpx.AsyncClient:
    """The HTTP client a runtime shares between all calls (pooled connections, keep-alive).

    Limits: 100 connections in all and 20 idle ones kept, enough for parallel loops against one
    API without opening a socket per call. Timeouts are set per request by the http tool.
    """
    return httpx.AsyncClient(limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
                             timeout=None)


@dataclasses.dataclass
class WorkerRuntime:
    """What executing a command needs from its surroundings."""

    tools: Mapping[str, Tool]
    http: httpx.AsyncClient
    credentials: CredentialSource = dataclasses.field(default_factory=EnvironmentCredentials)
    run_playbook: RunPlaybookFn | None = None
    owns_http: bool = False  # close `http` in aclose() (True when `create` made it)

    @classmethod
    def create(cls, *, credentials: CredentialSource | None = None, run_playbook: RunPlaybookFn | None = None,
               tools: Mapping[str, Tool] | None = None) -> "WorkerRuntime":
        """A runtime with the default tools and its own HTTP client; ``await runtime.aclose()`` when done."""
        return cls(tools=tools if tools is not None else default_tools(), http=create_http_client(),
                   credentials=credentials if credentials is not None else EnvironmentCredentials(),
                   run_playbook=run_playbook, owns_http=True)

    async def aclose(self) -> None:
        """Release the tools' kept resources (and the HTTP client when this runtime created it)."""
        await aclose_tools(self.tools)
        if self.owns_http:
            await self.http.aclose()

    async def __aenter__(self) -> "WorkerRuntime":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


async def execute(command: Command, runtime: WorkerRuntime) -> Event:
    """Run ``command`` with ``runtime``'s tools; the outcome as a ``call.done`` event. Never raises."""
    started = time.time()
    secrets: list[str] = []
    response: Any = None
    error: dict[str, Any] | None = None
    try:
        credential = None
        if command.auth:
            credential = await _resolve(runtime.credentials, command.auth)
            secrets = secret_strings(credential)
        config = _with_deferred(command, credential)
        kind = str(config.get("kind") or "noop")
        tool = runtime.tools.get(kind)
        if tool is None:
            known = ", ".join(sorted(runtime.tools)) or "none"
            raise ToolError("UnknownToolKind", f"step '{command.step}': no tool of kind '{kind}' in this runtime "
                                               f"(known kinds: {known}); fix `tool.kind`")
        ctx = ToolContext(execution_id=command.execution_id, step=command.step, http=runtime.http,
                          credential=credential, timeout=command.timeout, run_playbook=runtime.run_playbook)
        # Tool-level args that needed the credential arrive in config["args"], rendered just now.
        extra_args = config.pop("args", None)
        args = {**command.args, **extra_args} if isinstance(extra_args, dict) else dict(command.args)
        call = tool(config, args, ctx)
        if command.timeout is not None:
            try:
                result = await asyncio.wait_for(call, command.timeout + TIMEOUT_GRACE)
            except asyncio.TimeoutError:
                raise ToolError("Timeout", f"step '{command.step}': {kind} call did not finish within "
                                           f"{command.timeout:g}s; raise the step's timeout") from None
        else:
            result = await call
        response = _as_json(result, step=command.step, kind=kind)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 - every tool failure becomes an error record
        error = error_record(exc)
        response = None
    finished = time.time()
    if secrets:
        response = redact(response, secrets)
        error = redact(error, secrets)
    if error is not None:
        log.debug("%s: %s call failed: %s", command.id, command.step, error.get("message"))
    return Event.done(command, response=response, error=error, started_at=started, finished_at=finished)


async def _resolve(source: CredentialSource, name: str) -> Any:
    value = source.resolve(name)
    if inspect.isawaitable(value):
        value = await value
    return value


def _with_deferred(command: Command, credential: Any) -> dict[str, Any]:
    """The tool config with the deferred templates rendered (a copy; the command stays frozen)."""
    if not command.deferred:
        return dict(command.tool)
    if command.auth is None:
        paths = ", ".join(f"tool.{p}" for p in command.deferred)
        raise ToolError("CredentialMissing",
                        f"step '{command.step}': {paths} use `auth`/`secret` but the tool has no `auth:`; "
                        "add `auth: <credential name>` to the tool")
    config = copy.deepcopy(command.tool)
    context = {**command.context, "auth": credential, "secret": credential}
    for path, template in command.deferred.items():
        value = render(template, context, where=f"step '{command.step}': tool.{path}")
        _set_path(config, path, value, step=command.step)
    return config


def _set_path(config: dict[str, Any], path: str, value: Any, *, step: str) -> None:
    """Set ``value`` at a dotted path (``headers.Authorization``, ``payload.messages.1.content``)."""
    parts = path.split(".")
    node: Any = config
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, list):
            try:
                index = int(part)
                if last:
                    node[index] = value
                    return
                node = node[index]
                continue
            except (ValueError, IndexError):
                raise ToolError("ToolConfigError", f"step '{step}': deferred field tool.{path}: "
                                                   f"'{part}' is not an index of the list there") from None
        if not isinstance(node, dict):
            raise ToolError("ToolConfigError", f"step '{step}': deferred field tool.{path}: "
                                               f"'{'.'.join(parts[:i])}' is not a mapping")
        if last:
            node[part] = value
            return
        node = node.setdefault(part, {})


def _as_json(value: Any, *, step: str, kind: str) -> Any:
    """``value`` as plain JSON data (lists, dicts, str, numbers, bool, None), or NonJSONResult."""
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ToolError("NonJSONResult", f"step '{step}': the {kind} tool returned a value that is not "
                                         f"JSON-serialisable ({exc}); return plain data") from None
