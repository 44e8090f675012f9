"""The ``postgres`` tool: SQL on psycopg 3 (async), one transaction per call.

Config: ``command`` or ``query`` (one or more statements), optional ``params`` (list for ``%s``,
mapping for ``%(name)s`` placeholders), optional ``timeout`` (seconds).

Connection: from the call's credential (``auth:``), which is a plain DSN string, or a mapping with
``dsn`` (also ``conninfo``/``connection_string``) and/or the libpq fields ``host``, ``port``,
``user``, ``password``, ``dbname`` (aliases: ``database``, ``db_host``, ``db_port``, ``db_user``,
``db_password``, ``db_name``, ``username``). Without a credential the tool's own ``dsn`` field is
used. Anything else in the mapping (a ``type:`` label...) is ignored.

Execution:
- Without ``params`` the whole text goes to the server in one round trip (simple query protocol,
  which accepts several statements; ``%`` needs no escaping).
- With ``params`` the text is split into statements (quotes, dollar quotes and comments respected);
  each statement that contains a placeholder is executed with ``params``, the others without.
- Everything runs in one transaction: committed at the end, rolled back on any error.

Result: ``{rows, columns, rowcount}`` of the last statement. Values become JSON types: numeric
(``Decimal``) -> float (NaN/Infinity -> string; precision beyond ~15 significant digits is lost:
cast to ``text`` in SQL to keep it), timestamps/dates/times -> ISO 8601 strings, intervals -> seconds
(float), UUID and network types -> strings, bytea -> base64 string, json/jsonb -> the JSON value,
arrays -> lists, ranges -> ``{lower, upper, bounds}``, anything else -> ``str(value)``.

Errors: a SQL error raises ``ToolError`` whose type is psycopg's class name (``UndefinedTable``,
``UniqueViolation``...), with ``sqlstate`` and a message naming the statement number and step. A
connection failure is ``ConnectError`` (host, port, database and user named; never the password).

Connections are kept (up to ``MAX_IDLE_PER_TARGET`` idle ones per conninfo) and reused within the
event loop that opened them, because connecting costs more than most statements; the runtime closes
them with ``aclose()``.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import decimal
import ipaddress
import math
import re
import uuid
from typing import Any, ClassVar, Mapping

import psycopg
from psycopg import conninfo as pg_conninfo
from psycopg import pq

from noetl.errors import ToolError
from noetl.tools._base import ToolContext

__all__ = ["PostgresTool", "conninfo_from_credential", "split_statements", "to_json_value"]

#: Idle connections kept per target. Small: a playbook rarely runs more Postgres calls at once, and
#: every kept connection is a server process on the database side.
MAX_IDLE_PER_TARGET = 4
DEFAULT_CONNECT_TIMEOUT = 10

_ALIASES = {
    "database": "dbname", "db_name": "dbname", "db": "dbname",
    "db_host": "host", "db_port": "port", "db_user": "user", "username": "user",
    "db_password": "password",
}
_LIBPQ_KEYS = frozenset({
    "host", "hostaddr", "port", "user", "password", "dbname", "sslmode", "sslrootcert", "sslcert",
    "sslkey", "connect_timeout", "application_name", "options", "target_session_attrs", "passfile",
})
_DSN_KEYS = ("dsn", "conninfo", "connection_string", "url")


class PostgresTool:
    """Runs ``tool: {kind: postgres}``."""

    kind: ClassVar[str] = "postgres"

    def __init__(self) -> None:
        self._idle: dict[str, list[tuple[asyncio.AbstractEventLoop, psycopg.AsyncConnection[Any]]]] = {}

    async def __call__(self, config: dict[str, Any], args: dict[str, Any], ctx: ToolContext) -> Any:
        sql = config.get("command") if config.get("command") is not None else config.get("query")
        if not isinstance(sql, str) or not sql.strip():
            raise ToolError("ToolConfigError",
                            f"step '{ctx.step}': postgres tool needs SQL in `command:` (or `query:`)")
        params = config.get("params")
        if params is not None and not isinstance(params, (list, tuple, Mapping)):
            raise ToolError("ToolConfigError",
                            f"step '{ctx.step}': postgres `params` must be a list (for %s) or a mapping "
                            f"(for %(name)s), got {type(params).__name__}")
        conninfo = conninfo_from_credential(ctx.credential if ctx.credential is not None else config, step=ctx.step)
        timeout = config.get("timeout") if config.get("timeout") is not None else ctx.timeout
        work = self._run(conninfo, sql, params, step=ctx.step)
        if timeout is None:
            return await work
        try:
            return await asyncio.wait_for(work, float(timeout))
        except asyncio.TimeoutError:
            raise ToolError("Timeout", f"step '{ctx.step}': SQL did not finish within {float(timeout):g}s; "
                                       "the transaction was rolled back; raise the tool's `timeout:`") from None

    async def _run(self, conninfo: str, sql: str, params: Any, *, step: str) -> dict[str, Any]:
        conn = await self._acquire(conninfo, step=step)
        healthy = False
        try:
            result = await _execute(conn, sql, params, step=step)
            await conn.commit()
            healthy = True
            return result
        except psycopg.Error as exc:
            await _rollback_quietly(conn)
            healthy = not conn.closed and conn.info.transaction_status == pq.TransactionStatus.IDLE
            raise _sql_error(exc, step=step) from None
        finally:
            if healthy:
                self._release(conninfo, conn)
            elif not conn.closed:
                await conn.close()

    async def _acquire(self, conninfo: str, *, step: str) -> psycopg.AsyncConnection[Any]:
        loop = asyncio.get_running_loop()
        pool = self._idle.get(conninfo, [])
        while pool:
            owner, conn = pool.pop()
            if owner is loop and not conn.closed and conn.info.transaction_status == pq.TransactionStatus.IDLE:
                return conn
            _discard(conn)
        try:
            return await psycopg.AsyncConnection.connect(conninfo)
        except psycopg.Error as exc:
            raise ToolError("ConnectError", f"step '{step}': could not connect to PostgreSQL "
                                            f"{_describe(conninfo)}: {_first_line(exc)}; check the "
                                            "credential named by `auth:`") from None

    def _release(self, conninfo: str, conn: psycopg.AsyncConnection[Any]) -> None:
        pool = self._idle.setdefault(conninfo, [])
        if len(pool) < MAX_IDLE_PER_TARGET:
            pool.append((asyncio.get_running_loop(), conn))
        else:
            _discard(conn)

    def __del__(self) -> None:
        # A runtime that forgets aclose() (or whose loop is gone) must not leak sockets or trigger
        # psycopg's "deleted while still open" warning: close the kept sockets synchronously.
        for pool in getattr(self, "_idle", {}).values():
            for _, conn in pool:
                _discard(conn)

    async def aclose(self) -> None:
        """Close every kept connection (call from the loop that used the tool)."""
        loop = asyncio.get_running_loop()
        pools, self._idle = self._idle, {}
        for pool in pools.values():
            for owner, conn in pool:
                if owner is loop and not conn.closed:
                    await conn.close()
                else:
                    _discard(conn)


def _discard(conn: psycopg.AsyncConnection[Any]) -> None:
    """Drop a kept connection without awaiting (its loop may be gone): close the socket directly."""
    if not conn.closed:
        conn.pgconn.finish()


async def _rollback_quietly(conn: psycopg.AsyncConnection[Any]) -> None:
    if conn.closed:
        return
    try:
        await conn.rollback()
    except psycopg.Error:
        await conn.close()


async def _execute(conn: psycopg.AsyncConnection[Any], sql: str, params: Any, *, step: str) -> dict[str, Any]:
    cur = conn.cursor()
    try:
        if params is None:
            await cur.execute(sql)
            while cur.nextset():  # several statements: move to the last result
                pass
        else:
            statements = split_statements(sql)
            for number, (statement, has_placeholder) in enumerate(statements, 1):
                try:
                    if has_placeholder:
                        await cur.execute(statement, params)
                    else:
                        await cur.execute(statement)
                except psycopg.Error as exc:
                    exc.add_note(f"statement {number} of {len(statements)}")
                    raise
        columns = [c.name for c in cur.description] if cur.description else []
        rows = [dict(zip(columns, (to_json_value(v) for v in row))) for row in await cur.fetchall()] if columns else []
        return {"rows": rows, "columns": columns, "rowcount": cur.rowcount}
    finally:
        await cur.close()


def _sql_error(exc: psycopg.Error, *, step: str) -> ToolError:
    diag = exc.diag
    primary = diag.message_primary or _first_line(exc)
    parts = [primary]
    if diag.message_detail:
        parts.append(f"detail: {diag.message_detail}")
    if diag.message_hint:
        parts.append(f"hint: {diag.message_hint}")
    notes = "; ".join(getattr(exc, "__notes__", []))
    where = f"step '{step}'" + (f", {notes}" if notes else "")
    sqlstate = exc.sqlstate
    state = f" (SQLSTATE {sqlstate})" if sqlstate else ""
    return ToolError(type(exc).__name__ if type(exc) is not psycopg.Error else "PostgresError",
                     f"{where}: {'; '.join(parts)}{state}; the transaction was rolled back",
                     sqlstate=sqlstate)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _describe(conninfo: str) -> str:
    """host:port/dbname as user -- for messages; never includes the password."""
    try:
        info = pg_conninfo.conninfo_to_dict(conninfo)
    except psycopg.Error:
        return "(unparsable conninfo)"
    host = info.get("host") or info.get("hostaddr") or "localhost"
    return f"at {host}:{info.get('port') or 5432}/{info.get('dbname') or '?'} as user {info.get('user') or '?'}"


def conninfo_from_credential(cred: Any, *, step: str = "?") -> str:
    """A libpq conninfo string from a credential (DSN string or mapping); see the module docstring."""
    fields: dict[str, str] = {}
    if isinstance(cred, str) and cred.strip():
        dsn = cred.strip()
    elif isinstance(cred, Mapping):
        dsn = next((str(cred[k]) for k in _DSN_KEYS if cred.get(k)), "")
        for key, value in cred.items():
            key = _ALIASES.get(str(key), str(key))
            if key in _LIBPQ_KEYS and value is not None and value != "":
                fields[key] = str(value)
    else:
        dsn = ""
    if not dsn and not fields.get("host") and not fields.get("dbname"):
        raise ToolError("ToolConfigError",
                        f"step '{step}': postgres tool has no connection; set `auth: <credential name>` on the "
                        "tool with a credential holding `dsn` or host/port/user/password/dbname")
    fields.setdefault("connect_timeout", str(DEFAULT_CONNECT_TIMEOUT))
    try:
        return pg_conninfo.make_conninfo(dsn, **fields)
    except psycopg.ProgrammingError:
        # libpq's parse error quotes the text around the problem, which may be the password.
        raise ToolError("ToolConfigError",
                        f"step '{step}': the postgres credential's dsn is not a valid libpq connection string "
                        "or URI (e.g. postgresql://user:password@host:5432/dbname)") from None


# -- statements ------------------------------------------------------------------------------

_DOLLAR_TAG = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")
_PLACEHOLDER = re.compile(r"%(?:[sbt]|\([^)]+\)[sbt])")


def split_statements(sql: str) -> list[tuple[str, bool]]:
    """Split SQL text into statements; each with whether it holds a ``%s``/``%(name)s`` placeholder.

    Semicolons inside quotes (``'...'``, ``"..."``), dollar quotes (``$tag$...$tag$``) and comments
    (``--``, ``/* */``) do not split. Comments are dropped from the statements (psycopg would read
    a ``%`` inside them as a placeholder); empty statements are dropped.
    """
    out: list[tuple[str, bool]] = []
    pieces: list[str] = []  # the current statement, comments left out
    i = piece_start = 0
    n = len(sql)
    placeholder = False

    def flush(end: int) -> None:
        nonlocal placeholder
        pieces.append(sql[piece_start:end])
        statement = "".join(pieces).strip()
        if statement:
            out.append((statement, placeholder))
        pieces.clear()
        placeholder = False

    while i < n:
        c = sql[i]
        if c in ("'", '"'):
            end = i + 1
            while end < n:
                if sql[end] == c:
                    if end + 1 < n and sql[end + 1] == c:  # a doubled quote escapes itself
                        end += 2
                        continue
                    break
                end += 1
            i = end + 1
        elif c == "-" and sql.startswith("--", i):
            pieces.append(sql[piece_start:i] + " ")
            nl = sql.find("\n", i)
            i = piece_start = n if nl < 0 else nl + 1
        elif c == "/" and sql.startswith("/*", i):
            pieces.append(sql[piece_start:i] + " ")
            depth, i = 1, i + 2
            while i < n and depth:
                if sql.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif sql.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
            piece_start = i
        elif c == "$" and (m := _DOLLAR_TAG.match(sql, i)) and not (i > 0 and (sql[i - 1].isalnum() or sql[i - 1] == "_")):
            close = sql.find(m.group(0), m.end())
            i = n if close < 0 else close + len(m.group(0))
        elif c == "%":
            if sql.startswith("%%", i):
                i += 2
            else:
                placeholder = placeholder or bool(_PLACEHOLDER.match(sql, i))
                i += 1
        elif c == ";":
            flush(i)
            i = piece_start = i + 1
        else:
            i += 1
    flush(n)
    return out


# -- values ----------------------------------------------------------------------------------

def to_json_value(value: Any) -> Any:
    """Convert one value psycopg returned into a JSON type (see the module docstring)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, decimal.Decimal):
        return float(value) if value.is_finite() else str(value)
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, (uuid.UUID, ipaddress.IPv4Address, ipaddress.IPv6Address,
                          ipaddress.IPv4Network, ipaddress.IPv6Network,
                          ipaddress.IPv4Interface, ipaddress.IPv6Interface)):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): to_json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json_value(v) for v in value]
    lower = getattr(value, "lower", None)
    if hasattr(value, "bounds") and hasattr(value, "upper"):  # psycopg Range
        return {"lower": to_json_value(lower), "upper": to_json_value(value.upper), "bounds": value.bounds}
    return str(value)
