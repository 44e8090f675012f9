"""The postgres tool against the real throwaway PostgreSQL server of tests/conftest.py."""

from __future__ import annotations

import asyncio
import json
import uuid

import psycopg
import pytest

from noetl.tools import PostgresTool
from noetl.tools._postgres import conninfo_from_credential, split_statements, to_json_value
from tests.conftest import PostgresServer
from tests.helpers.tools import acall_tool, call_tool, call_tool_error


def _table() -> str:
    return f"t_{uuid.uuid4().hex[:10]}"


def _exists(dsn: str, table: str) -> bool:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT to_regclass(%s) IS NOT NULL", [table]).fetchone()[0]  # type: ignore[index]


def test_ddl_insert_select_in_one_command(postgres_dsn: str) -> None:
    t = _table()
    result = call_tool(PostgresTool(), {"command": f"""
        CREATE TABLE {t} (id SERIAL PRIMARY KEY, name TEXT, score NUMERIC(6,2));
        INSERT INTO {t} (name, score) VALUES ('a', 1.5), ('b', 2.25);
        SELECT name, score FROM {t} ORDER BY id;
    """}, credential=postgres_dsn)
    assert result == {"rows": [{"name": "a", "score": 1.5}, {"name": "b", "score": 2.25}],
                      "columns": ["name", "score"], "rowcount": 2}
    assert _exists(postgres_dsn, t)  # committed


def test_statement_without_rows_reports_rowcount(postgres_dsn: str) -> None:
    t = _table()
    result = call_tool(PostgresTool(), {"query": f"CREATE TABLE {t} (x int); INSERT INTO {t} VALUES (1), (2), (3)"},
                       credential=postgres_dsn)
    assert result == {"rows": [], "columns": [], "rowcount": 3}


def test_percent_and_dollar_quotes_need_no_escaping_without_params(postgres_dsn: str) -> None:
    # What the seed playbooks send once their templates are rendered: quotes, $json$ quoting, '%'.
    t = _table()
    payload = json.dumps({"msg": "100% done; really", "n": 3})
    result = call_tool(PostgresTool(), {"command": f"""
        CREATE TABLE {t} (execution_id VARCHAR(64), summary JSONB, note TEXT);
        INSERT INTO {t} VALUES ('exec-1', $json${payload}$json$::jsonb, 'it''s 50%; ok');
        SELECT summary, note FROM {t};
    """}, credential=postgres_dsn)
    assert result["rows"] == [{"summary": {"msg": "100% done; really", "n": 3}, "note": "it's 50%; ok"}]


def test_positional_params(postgres_dsn: str) -> None:
    result = call_tool(PostgresTool(), {"query": "SELECT %s::int + %s::int AS total", "params": [2, 3]},
                       credential=postgres_dsn)
    assert result["rows"] == [{"total": 5}]


def test_named_params_bind_only_to_statements_with_placeholders(postgres_dsn: str) -> None:
    t = _table()
    result = call_tool(PostgresTool(), {"command": f"""
        CREATE TABLE {t} (name TEXT, pct TEXT);
        INSERT INTO {t} VALUES (%(name)s, '100%%');
        INSERT INTO {t} VALUES ('fixed', '50%');  -- no placeholder: '%' stays literal
        SELECT name, pct FROM {t} WHERE name = %(name)s OR name = 'fixed' ORDER BY name;
    """, "params": {"name": "zed"}}, credential=postgres_dsn)
    assert result["rows"] == [{"name": "fixed", "pct": "50%"}, {"name": "zed", "pct": "100%"}]


def test_sql_error_rolls_back_the_whole_transaction(postgres_dsn: str) -> None:
    t = _table()
    error = call_tool_error(PostgresTool(), {"command": f"""
        CREATE TABLE {t} (x int);
        INSERT INTO {t} VALUES (1);
        SELECT * FROM no_such_table_here;
    """}, credential=postgres_dsn, step="load")
    assert error["type"] == "UndefinedTable"
    assert error["sqlstate"] == "42P01"
    assert "no_such_table_here" in error["message"] and "SQLSTATE 42P01" in error["message"]
    assert "step 'load'" in error["message"] and "rolled back" in error["message"]
    assert not _exists(postgres_dsn, t)


def test_sql_error_with_params_names_the_statement(postgres_dsn: str) -> None:
    t = _table()
    error = call_tool_error(PostgresTool(), {"command": f"""
        CREATE TABLE {t} (x int PRIMARY KEY);
        INSERT INTO {t} VALUES (%s);
        INSERT INTO {t} VALUES (%s);
    """, "params": [7]}, credential=postgres_dsn)
    assert error["type"] == "UniqueViolation"
    assert "statement 3 of 3" in error["message"]
    assert not _exists(postgres_dsn, t)


def test_values_become_json_types(postgres_dsn: str) -> None:
    result = call_tool(PostgresTool(), {"query": """
        SELECT 12.50::numeric AS num, 'NaN'::numeric AS nan, 3::bigint AS big, 1.5::float8 AS f,
               true AS b, NULL::text AS nothing,
               '2026-03-15 10:20:30+00'::timestamptz AS ts, '2026-03-15'::date AS d, '10:20'::time AS tm,
               '1 hour 30 minutes'::interval AS iv,
               'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid AS id, '\\x0102ff'::bytea AS raw,
               '{"k": [1, 2]}'::jsonb AS doc, ARRAY[1, 2, 3] AS arr, '192.168.0.1'::inet AS ip,
               int4range(1, 5) AS r
    """}, credential=postgres_dsn)
    row = result["rows"][0]
    assert row["num"] == 12.5 and row["nan"] == "NaN" and row["big"] == 3 and row["f"] == 1.5
    assert row["b"] is True and row["nothing"] is None
    assert row["ts"].startswith("2026-03-15T10:20:30") and row["d"] == "2026-03-15" and row["tm"] == "10:20:00"
    assert row["iv"] == 5400.0
    assert row["id"] == "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
    assert row["raw"] == "AQL/"  # base64 of 01 02 ff
    assert row["doc"] == {"k": [1, 2]} and row["arr"] == [1, 2, 3] and row["ip"] == "192.168.0.1"
    assert row["r"] == {"lower": 1, "upper": 5, "bounds": "[)"}
    json.dumps(result, allow_nan=False)


def test_password_credential_with_libpq_fields(postgres_server: PostgresServer) -> None:
    result = call_tool(PostgresTool(), {"query": "SELECT current_user AS u"}, credential=postgres_server.credential())
    assert result["rows"] == [{"u": postgres_server.password_user}]


def test_aliases_and_dsn_credentials(postgres_server: PostgresServer) -> None:
    cred = {"db_host": postgres_server.host, "db_port": postgres_server.port, "username": postgres_server.password_user,
            "db_password": postgres_server.password, "database": postgres_server.dbname, "type": "postgres"}
    assert call_tool(PostgresTool(), {"query": "SELECT 1 AS one"}, credential=cred)["rows"] == [{"one": 1}]
    assert call_tool(PostgresTool(), {"query": "SELECT 1 AS one"},
                     credential={"dsn": postgres_server.dsn})["rows"] == [{"one": 1}]


def test_wrong_password_is_connect_error_without_the_password(postgres_server: PostgresServer) -> None:
    cred = {**postgres_server.credential(), "password": "definitely-wrong-pw"}
    error = call_tool_error(PostgresTool(), {"query": "SELECT 1"}, credential=cred)
    assert error["type"] == "ConnectError"
    assert postgres_server.password_user in error["message"] and str(postgres_server.port) in error["message"]
    assert "definitely-wrong-pw" not in error["message"]


def test_missing_connection_is_a_config_error() -> None:
    error = call_tool_error(PostgresTool(), {"query": "SELECT 1"}, step="save")
    assert error["type"] == "ToolConfigError" and "auth:" in error["message"] and "save" in error["message"]


def test_missing_sql_is_a_config_error(postgres_dsn: str) -> None:
    assert call_tool_error(PostgresTool(), {}, credential=postgres_dsn)["type"] == "ToolConfigError"


def test_connections_are_reused_and_closed(postgres_dsn: str) -> None:
    async def scenario() -> tuple[int, int, int]:
        tool = PostgresTool()
        try:
            first = await acall_tool(tool, {"query": "SELECT pg_backend_pid() AS pid"}, credential=postgres_dsn)
            second = await acall_tool(tool, {"query": "SELECT pg_backend_pid() AS pid"}, credential=postgres_dsn)
            kept = sum(len(v) for v in tool._idle.values())
            return first["rows"][0]["pid"], second["rows"][0]["pid"], kept
        finally:
            await tool.aclose()

    first, second, kept = asyncio.run(scenario())
    assert first == second and kept == 1


def test_connection_survives_a_failed_statement(postgres_dsn: str) -> None:
    async def scenario() -> list[int]:
        tool = PostgresTool()
        pids = []
        try:
            pids.append((await acall_tool(tool, {"query": "SELECT pg_backend_pid() AS p"}, credential=postgres_dsn))["rows"][0]["p"])
            with pytest.raises(Exception):
                await acall_tool(tool, {"query": "SELECT 1/0"}, credential=postgres_dsn)
            pids.append((await acall_tool(tool, {"query": "SELECT pg_backend_pid() AS p"}, credential=postgres_dsn))["rows"][0]["p"])
        finally:
            await tool.aclose()
        return pids

    pids = asyncio.run(scenario())
    assert pids[0] == pids[1]


def test_timeout_cancels_and_next_call_works(postgres_dsn: str) -> None:
    async def scenario() -> tuple[dict, dict]:
        tool = PostgresTool()
        try:
            from noetl.errors import ToolError
            try:
                await acall_tool(tool, {"query": "SELECT pg_sleep(10)", "timeout": 0.3}, credential=postgres_dsn)
                raise AssertionError("no timeout")
            except ToolError as exc:
                err = exc.record
            ok = await acall_tool(tool, {"query": "SELECT 2 AS two"}, credential=postgres_dsn)
            return err, ok
        finally:
            await tool.aclose()

    err, ok = asyncio.run(scenario())
    assert err["type"] == "Timeout" and "rolled back" in err["message"]
    assert ok["rows"] == [{"two": 2}]


SPLITS = {
    "simple": ("SELECT 1; SELECT 2;", ["SELECT 1", "SELECT 2"]),
    "quoted-semicolon": ("INSERT INTO t VALUES ('a;b'); SELECT \"x;y\" FROM t", ["INSERT INTO t VALUES ('a;b')", 'SELECT "x;y" FROM t']),
    "doubled-quote": ("SELECT 'it''s; fine'; SELECT 2", ["SELECT 'it''s; fine'", "SELECT 2"]),
    "dollar-quote": ("DO $$ BEGIN PERFORM 1; END $$; SELECT $tag$a;b$tag$", ["DO $$ BEGIN PERFORM 1; END $$", "SELECT $tag$a;b$tag$"]),
    "comments": ("-- first; comment\nSELECT 1; /* a; /* nested; */ b */ SELECT 2; -- trailing;", ["SELECT 1", "SELECT 2"]),
    "positional-param": ("SELECT $1", ["SELECT $1"]),
}


@pytest.mark.parametrize("sql, expected", list(SPLITS.values()), ids=list(SPLITS))
def test_split_statements(sql: str, expected: list[str]) -> None:
    assert [s for s, _ in split_statements(sql)] == expected


def test_split_statements_detects_placeholders() -> None:
    found = split_statements("SELECT '%s'; SELECT %s; SELECT %(n)s; SELECT 100%%; SELECT '%(x)s'")
    assert [p for _, p in found] == [False, True, True, False, False]


def test_conninfo_never_needs_the_password_in_messages() -> None:
    info = conninfo_from_credential({"host": "db", "port": 5432, "user": "u", "password": "p w'x", "dbname": "d"})
    assert "host=db" in info and "connect_timeout=10" in info


def test_to_json_value_falls_back_to_str() -> None:
    class Odd:
        def __str__(self) -> str:
            return "odd"

    assert to_json_value(Odd()) == "odd"
    assert to_json_value(float("inf")) == "inf"


def test_bad_dsn_error_does_not_echo_it() -> None:
    error = call_tool_error(PostgresTool(), {"query": "SELECT 1"}, credential="host=x password=hunter2 oops")
    assert error["type"] == "ToolConfigError" and "hunter2" not in error["message"]
