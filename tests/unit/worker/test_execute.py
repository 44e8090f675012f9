"""noetl.worker.execute: one Command in, one call.done Event out, with real tools and servers."""

from __future__ import annotations

import asyncio
import json
from typing import Any, ClassVar

import pytest

from noetl.engine._messages import Command, Event, EventName
from noetl.tools import PythonProcessPool, PythonTool, ToolContext, default_tools
from noetl.worker import MappingCredentials, WorkerRuntime, execute
from tests.conftest import PostgresServer
from tests.helpers.httpserver import LocalHTTPServer, Reply, Request

TOKEN = "sk-test-abcdef123456"
CLIENT_SECRET = "amadeus-client-secret-xyz"
CREDENTIALS = {
    "openai": {"openai": TOKEN},
    "amadeus": {"amadeus": {"client_id": "amadeus-client-id", "client_secret": CLIENT_SECRET}},
}


def make_command(tool: dict[str, Any], **fields: Any) -> Command:
    base: dict[str, Any] = {"id": "exec-1/step#1/1.1", "execution_id": "exec-1", "step": "step",
                            "activation": "step#1", "tool": tool}
    base.update(fields)
    return Command(**base)


def run(command: Command, *, credentials: dict[str, Any] | None = None, **tools: Any) -> Event:
    async def go() -> Event:
        async with WorkerRuntime.create(credentials=MappingCredentials(credentials or CREDENTIALS),
                                        tools=default_tools(**tools)) as runtime:
            return await execute(command, runtime)

    return asyncio.run(go())


def test_noop_command_gives_a_done_event_with_timestamps() -> None:
    command = make_command({"kind": "noop"}, args={"a": 1})
    event = run(command)
    assert event.id == f"{command.id}:done" and event.command_id == command.id
    assert event.name == EventName.CALL_DONE
    assert event.response == {"a": 1} and event.error is None
    assert event.started_at is not None and event.finished_at is not None and event.finished_at >= event.started_at


def test_tool_without_kind_is_noop() -> None:
    assert run(make_command({}, args={"x": 1})).response == {"x": 1}


def test_deferred_templates_render_with_auth_and_secret(http_server: LocalHTTPServer) -> None:
    http_server.route("/token", method="POST", json={"access_token": "at-1"})
    command = make_command(
        {"kind": "http", "method": "POST", "endpoint": http_server.url("/token"),
         "headers": {"Content-Type": "application/x-www-form-urlencoded"},
         "data": {"grant_type": "client_credentials", "client_id": None, "client_secret": None}},
        auth="amadeus",
        deferred={"data.client_id": "{{ auth.amadeus.client_id }}",
                  "data.client_secret": "{{ secret.amadeus.client_secret }}",
                  "headers.X-Exec": "{{ execution_id }}-{{ auth.amadeus.client_id | length }}"},
        context={"execution_id": "exec-1"},
    )
    event = run(command)
    assert event.error is None and event.response["data"] == {"access_token": "at-1"}
    request = http_server.requests_to("/token")[0]
    assert request.form() == {"grant_type": ["client_credentials"], "client_id": ["amadeus-client-id"],
                              "client_secret": [CLIENT_SECRET]}
    assert request.headers["x-exec"] == "exec-1-17"
    assert command.tool["data"]["client_id"] is None  # the frozen command is not changed


def test_deferred_path_into_a_list() -> None:
    command = make_command({"kind": "noop", "payload": {"messages": [{"content": "x"}, {"content": None}]}},
                           auth="openai", deferred={"payload.messages.1.content": "key={{ secret.openai }}"})

    class ConfigEcho:
        kind: ClassVar[str] = "noop"

        async def __call__(self, config: dict[str, Any], args: dict[str, Any], ctx: ToolContext) -> Any:
            return {"len": len(config["payload"]["messages"][1]["content"])}

    assert run(command, noop=ConfigEcho()).response == {"len": len("key=") + len(TOKEN)}


def test_credential_values_are_redacted_from_the_response(http_server: LocalHTTPServer) -> None:
    def echo(req: Request) -> Reply:
        return Reply(json={"you_sent": req.headers.get("authorization"), "nested": [{TOKEN: TOKEN}]})

    http_server.route("/chat", method="POST", handler=echo)
    command = make_command({"kind": "http", "method": "POST", "endpoint": http_server.url("/chat"),
                            "headers": {}, "payload": {"q": 1}},
                           auth="openai", deferred={"headers.Authorization": "Bearer {{ secret.openai }}"})
    event = run(command)
    assert http_server.requests_to("/chat")[0].headers["authorization"] == f"Bearer {TOKEN}"
    assert event.response["data"] == {"you_sent": "Bearer ***", "nested": [{"***": "***"}]}
    assert TOKEN not in json.dumps(event.model_dump())


def test_credential_values_are_redacted_from_errors(http_server: LocalHTTPServer) -> None:
    http_server.route("/deny", handler=lambda req: Reply(status=401, json={"bad_token": req.query["key"][0]}))
    command = make_command({"kind": "http", "endpoint": http_server.url("/deny"), "params": {}},
                           auth="openai", deferred={"params.key": "{{ secret.openai }}"})
    event = run(command)
    assert event.response is None
    assert event.error is not None and event.error["type"] == "HTTPStatusError" and event.error["status"] == 401
    assert event.error["data"] == {"bad_token": "***"}
    assert "key=***" in event.error["message"]
    assert TOKEN not in json.dumps(event.model_dump())


def test_redaction_in_python_tool_errors() -> None:
    pool = PythonProcessPool(max_idle=1)
    try:
        command = make_command({"kind": "python", "code": "def main(k):\n    raise ValueError('bad key ' + k)"},
                               auth="openai", args={"k": TOKEN})
        event = run(command, python=PythonTool(pool))
    finally:
        pool.close()
    assert event.error is not None and event.error["type"] == "ValueError"
    assert "bad key ***" in event.error["message"] and TOKEN not in event.error["message"]


def test_missing_credential_is_an_error_event_with_a_hint() -> None:
    event = run(make_command({"kind": "noop"}, auth="pg_local"))
    assert event.error is not None and event.error["type"] == "CredentialNotFound"
    assert "pg_local" in event.error["message"] and "NOETL_CREDENTIAL_PG_LOCAL" in event.error["message"]
    assert "--credentials" in event.error["message"]


def test_deferred_templates_without_auth_are_an_error() -> None:
    event = run(make_command({"kind": "noop", "headers": {}}, deferred={"headers.A": "{{ secret.x }}"}))
    assert event.error is not None and event.error["type"] == "CredentialMissing"
    assert "tool.headers.A" in event.error["message"]


def test_undefined_name_in_a_deferred_template_names_the_field() -> None:
    event = run(make_command({"kind": "noop"}, auth="openai", deferred={"headers.A": "{{ secret.nope.deeper }}"}))
    assert event.error is not None and event.error["type"] == "TemplateError"
    assert "tool.headers.A" in event.error["message"]


def test_unknown_kind_is_an_error_event() -> None:
    event = run(make_command({"kind": "ftp"}))
    assert event.error is not None and event.error["type"] == "UnknownToolKind"
    assert "'ftp'" in event.error["message"] and "http" in event.error["message"]


class Broken:
    kind: ClassVar[str] = "broken"

    async def __call__(self, config: dict[str, Any], args: dict[str, Any], ctx: ToolContext) -> Any:
        raise RuntimeError(f"kaput using {ctx.credential}")


class Slow:
    kind: ClassVar[str] = "slow"

    async def __call__(self, config: dict[str, Any], args: dict[str, Any], ctx: ToolContext) -> Any:
        await asyncio.sleep(30)


class NotJson:
    kind: ClassVar[str] = "notjson"

    async def __call__(self, config: dict[str, Any], args: dict[str, Any], ctx: ToolContext) -> Any:
        return {"obj": object()}


def test_any_exception_becomes_an_error_record_and_is_redacted() -> None:
    event = run(make_command({"kind": "broken"}, auth="openai"), broken=Broken())
    assert event.error is not None and event.error["type"] == "RuntimeError"
    assert "kaput" in event.error["message"] and TOKEN not in event.error["message"]


def test_command_timeout_is_enforced_by_the_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("noetl.worker._executing.TIMEOUT_GRACE", 0.0)
    event = run(make_command({"kind": "slow"}, timeout=0.2), slow=Slow())
    assert event.error is not None and event.error["type"] == "Timeout"


def test_non_json_response_is_an_error() -> None:
    event = run(make_command({"kind": "notjson"}), notjson=NotJson())
    assert event.error is not None and event.error["type"] == "NonJSONResult"
    assert "object" in event.error["message"]


def test_postgres_with_a_password_credential(postgres_server: PostgresServer) -> None:
    credentials = {"pg_local": postgres_server.credential()}
    event = run(make_command({"kind": "postgres", "command": "SELECT 40 + 2 AS answer"}, auth="pg_local"),
                credentials=credentials)
    assert event.error is None and event.response["rows"] == [{"answer": 42}]


def test_postgres_error_never_shows_the_password(postgres_server: PostgresServer) -> None:
    cred = {**postgres_server.credential(), "dbname": "no_such_db"}
    event = run(make_command({"kind": "postgres", "command": "SELECT 1"}, auth="pg"), credentials={"pg": cred})
    assert event.error is not None and event.error["type"] == "ConnectError"
    assert postgres_server.password not in json.dumps(event.model_dump())


def test_python_and_http_in_one_runtime(http_server: LocalHTTPServer) -> None:
    http_server.route("/w", json={"current_weather": {"temperature": 31.5}})

    async def go() -> list[Event]:
        pool = PythonProcessPool(max_idle=1)
        try:
            async with WorkerRuntime.create(tools=default_tools(python=PythonTool(pool))) as runtime:
                first = await execute(make_command({"kind": "http", "endpoint": http_server.url("/w")}), runtime)
                temp = first.response["data"]["current_weather"]["temperature"]
                second = await execute(make_command(
                    {"kind": "python", "code": "def main(t, threshold):\n    return {'alert': t > threshold}"},
                    args={"t": temp, "threshold": 30}), runtime)
                return [first, second]
        finally:
            pool.close()

    first, second = asyncio.run(go())
    assert first.error is None and second.response == {"alert": True}


def test_python_tool_receives_a_credential_through_deferred_args() -> None:
    command = make_command({"kind": "python", "code": "def main(token, plain):\n    return [len(token), plain]",
                            "args": {"token": None, "plain": 2}},
                           auth="openai", deferred={"args.token": "{{ secret.openai }}"})
    event = run(command)
    assert event.error is None and event.response == [len(TOKEN), 2]


def test_what_python_code_prints_is_redacted(caplog: pytest.LogCaptureFixture) -> None:
    # Regression: printed output went to the logs (and `noetl run`'s stderr) unmasked.
    command = make_command({"kind": "python", "code": "def main(t):\n    print('token is', t)\n    return 1",
                            "args": {"t": None}}, auth="openai", deferred={"args.t": "{{ secret.openai }}"})
    with caplog.at_level("INFO", logger="noetl.tools.python"):
        event = run(command)
    assert event.error is None
    assert "token is ***" in caplog.text and TOKEN not in caplog.text
