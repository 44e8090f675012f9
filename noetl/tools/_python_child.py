"""Child process of the ``python`` tool: runs user code, one request per JSON line.

Started by ``noetl.tools._python`` (never imported by it) as ``python <this file>``, so the child
loads nothing of noetl (no httpx, psycopg or pydantic): it starts fast and user code sees a clean
interpreter. It must stay standard-library only.

Protocol (UTF-8 JSON lines):

- request on stdin: ``{"code": str, "args": {...}, "filename": str}``
- reply on the protocol channel: ``{"ok": true, "result": ..., "stdout": str}`` or
  ``{"ok": false, "error": {"type": str, "message": str}, "stdout": str}``

The protocol channel is a private copy of the original stdout; file descriptor 1 is then pointed
at stderr, and ``sys.stdout`` is captured per call, so nothing user code prints (``print``,
``os.write(1, ...)``, a C library, a subprocess) can corrupt the replies. stdin is replaced by
/dev/null for the same reason. The child exits when its stdin closes (the parent went away).
"""

from __future__ import annotations

import asyncio
import inspect
import io
import json
import linecache
import math
import os
import sys
import traceback
from typing import Any, Callable

#: Captured prints kept per call; the rest is cut (user code printing megabytes must not flood the
#: parent's memory or logs).
MAX_STDOUT_CHARS = 20000
#: Compiled code objects kept by source text; a playbook has few distinct code blocks.
MAX_CACHED_CODE = 256

_compiled: dict[tuple[str, str], Any] = {}


def _compile(code: str, filename: str) -> Any:
    key = (code, filename)
    compiled = _compiled.get(key)
    if compiled is None:
        compiled = compile(code, filename, "exec")
        if len(_compiled) >= MAX_CACHED_CODE:
            _compiled.clear()
        _compiled[key] = compiled
    # Make the source visible to tracebacks of this virtual file.
    linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
    return compiled


class _ArgumentError(Exception):
    pass


def _call_main(main: Callable[..., Any], args: dict[str, Any], label: str) -> Any:
    try:
        sig = inspect.signature(main)
    except (TypeError, ValueError):
        return main(**args)
    positional: list[Any] = []
    keywords: dict[str, Any] = {}
    missing: list[str] = []
    takes_kwargs = False
    for name, param in sig.parameters.items():
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            takes_kwargs = True
        elif param.kind is inspect.Parameter.VAR_POSITIONAL:
            continue
        elif name in args:
            if param.kind is inspect.Parameter.POSITIONAL_ONLY:
                positional.append(args[name])
            else:
                keywords[name] = args[name]
        elif param.default is inspect.Parameter.empty:
            missing.append(name)
    if missing:
        given = ", ".join(sorted(args)) or "none"
        names = ", ".join(f"'{m}'" for m in missing)
        raise _ArgumentError(
            f"main() of {label} needs argument(s) {names} that `args` does not have (args given: {given}); "
            f"add {', '.join(f'`{m}:`' for m in missing)} under the step's `args`, or give main() a default")
    if takes_kwargs:
        for name, value in args.items():
            if name not in keywords and name not in sig.parameters:
                keywords[name] = value
    result = main(*positional, **keywords)
    if inspect.isawaitable(result):
        result = asyncio.run(_await(result))
    return result


async def _await(awaitable: Any) -> Any:
    return await awaitable


def _non_json_path(value: Any, path: str = "result") -> str | None:
    """Where ``value`` stops being JSON (``"result['a'][2] is a datetime"``), or None."""
    if value is None or isinstance(value, (bool, int, str)):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{path} is {value!r} (JSON has no NaN/Infinity)"
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            found = _non_json_path(item, f"{path}[{i}]")
            if found:
                return found
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                return f"{path} has a key of type {type(key).__name__} ({key!r})"
            found = _non_json_path(item, f"{path}[{key!r}]")
            if found:
                return found
        return None
    return f"{path} is a {type(value).__module__}.{type(value).__qualname__}".replace("builtins.", "")


def _user_traceback(exc: BaseException, filename: str) -> str:
    """The frames of the user's code only (no frames of this runner)."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == filename]
    lines = []
    for frame in frames[-8:]:  # the last frames say where it broke; 8 is plenty for a script
        lines.append(f"  line {frame.lineno}, in {frame.name}")
        if frame.line:
            lines.append(f"    {frame.line.strip()}")
    if not lines:
        return ""
    return "Traceback (user code, most recent call last):\n" + "\n".join(lines)


def handle(request: dict[str, Any]) -> dict[str, Any]:
    code = request.get("code") or ""
    args = request.get("args") or {}
    filename = request.get("filename") or "<python tool>"
    label = request.get("label") or "the python tool"
    captured = io.StringIO()
    try:
        compiled = _compile(code, filename)
        namespace: dict[str, Any] = {"__name__": "__noetl_python_tool__", "__builtins__": __builtins__}
        namespace.update({k: v for k, v in args.items() if isinstance(k, str) and k.isidentifier()})
        namespace.setdefault("args", args)
        saved_stdout = sys.stdout
        sys.stdout = captured
        try:
            exec(compiled, namespace)
            main = namespace.get("main")
            if callable(main):
                result = _call_main(main, args, label)
            elif "result" in namespace:
                result = namespace["result"]
            else:
                return {"ok": False, "stdout": captured.getvalue()[:MAX_STDOUT_CHARS], "error": {
                    "type": "NoEntryPoint",
                    "message": f"the code of {label} defines no `def main(...)` and sets no module-level `result`; "
                               "define one of them"}}
        finally:
            sys.stdout = saved_stdout
    except _ArgumentError as exc:
        return {"ok": False, "stdout": captured.getvalue()[:MAX_STDOUT_CHARS],
                "error": {"type": "ArgumentError", "message": str(exc)}}
    except SyntaxError as exc:
        where = f"line {exc.lineno}" if exc.lineno else "the code"
        text = f"\n    {exc.text.rstrip()}" if exc.text else ""
        return {"ok": False, "stdout": "", "error": {
            "type": "SyntaxError", "message": f"SyntaxError in {label}, {where}: {exc.msg}{text}"}}
    except BaseException as exc:  # noqa: BLE001 - user code may raise anything, SystemExit included
        detail = str(exc)
        tb = _user_traceback(exc, filename)
        message = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
        return {"ok": False, "stdout": captured.getvalue()[:MAX_STDOUT_CHARS], "error": {
            "type": type(exc).__name__, "message": f"{message}\n{tb}".strip()}}
    problem = _non_json_path(result)
    if problem:
        return {"ok": False, "stdout": captured.getvalue()[:MAX_STDOUT_CHARS], "error": {
            "type": "NonJSONResult",
            "message": f"{label} returned a value that is not JSON-serialisable: {problem}; "
                       "return only dicts, lists, strings, numbers, booleans and None "
                       "(e.g. convert datetimes with .isoformat())"}}
    return {"ok": True, "result": result, "stdout": captured.getvalue()[:MAX_STDOUT_CHARS]}


def serve() -> None:
    # Protocol channel: a private copy of the real stdout. Then fd 1 -> stderr and fd 0 -> /dev/null.
    proto_out = os.fdopen(os.dup(1), "wb", buffering=0)
    proto_in = os.fdopen(os.dup(0), "rb")
    os.dup2(2, 1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    sys.stdout = io.TextIOWrapper(os.fdopen(1, "wb", buffering=0, closefd=False), write_through=True)
    sys.stdin = open(os.devnull)  # noqa: SIM115 - lives as long as the process
    for line in proto_in:
        try:
            request = json.loads(line)
            reply = handle(request)
        except Exception as exc:  # noqa: BLE001 - a malformed request must not kill the child
            reply = {"ok": False, "stdout": "", "error": {"type": "ProtocolError", "message": repr(exc)}}
        try:
            data = json.dumps(reply, allow_nan=False)
        except (TypeError, ValueError) as exc:  # e.g. a dict key json cannot encode
            data = json.dumps({"ok": False, "stdout": "", "error": {
                "type": "NonJSONResult", "message": f"the result could not be encoded as JSON: {exc}"}})
        proto_out.write(data.encode("utf-8") + b"\n")


def die_with_parent(parent: int) -> None:
    """Exit when the process that started us dies, even by SIGKILL (Linux ``PR_SET_PDEATHSIG``).

    Children run in their own session (so a terminal's Ctrl-C reaches only noetl, which stops them
    in order); without this, a killed noetl or worker would leave user code running on its own,
    and its side effects would happen twice once the command is retried elsewhere.
    """
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL))  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return  # not Linux: the parent's own clean-up still stops us on a normal exit
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


if __name__ == "__main__":
    if len(sys.argv) > 1:
        die_with_parent(int(sys.argv[1]))
    serve()
