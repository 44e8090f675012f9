"""The python tool: real child processes from a real pool (no mocks)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Iterator

import pytest

from noetl.tools import PythonProcessPool, PythonTool
from tests.helpers.tools import acall_tool, call_tool, call_tool_error


@pytest.fixture(scope="module")
def pool() -> Iterator[PythonProcessPool]:
    pool = PythonProcessPool(max_idle=4)
    pool.warm(2)
    yield pool
    pool.close()


@pytest.fixture
def tool(pool: PythonProcessPool) -> PythonTool:
    return PythonTool(pool)


def test_main_gets_the_args_it_names(tool: PythonTool) -> None:
    code = "def main(city, threshold=10):\n    return {'city': city['name'], 'hot': city['t'] > threshold}"
    result = call_tool(tool, {"code": code}, {"city": {"name": "Oslo", "t": 12}, "unused": 1})
    assert result == {"city": "Oslo", "hot": True}


def test_main_with_kwargs_receives_every_arg(tool: PythonTool) -> None:
    code = "def main(a, **rest):\n    return {'a': a, 'rest': rest}"
    assert call_tool(tool, {"code": code}, {"a": 1, "b": 2, "c": 3}) == {"a": 1, "rest": {"b": 2, "c": 3}}


def test_main_without_args(tool: PythonTool) -> None:
    assert call_tool(tool, {"code": "def main():\n    return {'status': 'initialized'}"}) == {"status": "initialized"}


def test_async_main_is_awaited(tool: PythonTool) -> None:
    code = "import asyncio\nasync def main(x):\n    await asyncio.sleep(0)\n    return x * 2"
    assert call_tool(tool, {"code": code}, {"x": 4}) == 8


def test_module_level_result_sees_args_as_names(tool: PythonTool) -> None:
    assert call_tool(tool, {"code": "result = {'double': x * 2, 'n': len(args)}"}, {"x": 21}) == {"double": 42, "n": 1}


def test_missing_required_arg_is_named(tool: PythonTool) -> None:
    error = call_tool_error(tool, {"code": "def main(pages, endpoint):\n    return 1"}, {"pages": []}, step="validate")
    assert error["type"] == "ArgumentError"
    assert "'endpoint'" in error["message"] and "step 'validate'" in error["message"] and "args" in error["message"]


def test_exception_has_type_message_and_short_user_traceback(tool: PythonTool) -> None:
    code = "def helper(d):\n    return d['missing']\n\ndef main():\n    return helper({})\n"
    error = call_tool_error(tool, {"code": code}, step="parse")
    assert error["type"] == "KeyError"
    message = error["message"]
    assert message.startswith("KeyError: 'missing'")
    assert "line 5, in main" in message and "line 2, in helper" in message and "return d['missing']" in message
    assert "noetl" not in message.replace("step 'parse'", "") and "_python_child" not in message
    assert len(message.splitlines()) <= 8


def test_syntax_error_names_the_line(tool: PythonTool) -> None:
    error = call_tool_error(tool, {"code": "x = 1\ndef main(:\n    pass"})
    assert error["type"] == "SyntaxError" and "line 2" in error["message"]


def test_no_entry_point(tool: PythonTool) -> None:
    assert call_tool_error(tool, {"code": "x = 1"})["type"] == "NoEntryPoint"


def test_non_json_result_names_the_type(tool: PythonTool) -> None:
    code = "import datetime\ndef main():\n    return {'when': [datetime.date(2026, 1, 1)]}"
    error = call_tool_error(tool, {"code": code})
    assert error["type"] == "NonJSONResult"
    assert "datetime.date" in error["message"] and "result['when'][0]" in error["message"]


def test_nan_is_not_json(tool: PythonTool) -> None:
    assert call_tool_error(tool, {"code": "result = float('nan')"})["type"] == "NonJSONResult"


def test_prints_do_not_break_the_protocol_and_are_logged(tool: PythonTool, caplog: pytest.LogCaptureFixture) -> None:
    code = ("import os, sys\n"
            "def main(alert):\n"
            "    print(f\"ALERT: {alert}\")\n"
            "    sys.stdout.write('{\"ok\": true, \"result\": \"forged\"}\\n')\n"
            "    os.write(1, b'raw fd write\\n')\n"
            "    print('to stderr', file=sys.stderr)\n"
            "    return {'alert_sent': True}\n")
    with caplog.at_level(logging.INFO, logger="noetl.tools.python"):
        assert call_tool(tool, {"code": code}, {"alert": "hot"}, step="send_alert") == {"alert_sent": True}
    assert any("ALERT: hot" in r.getMessage() and "send_alert" in r.getMessage() for r in caplog.records)
    # The next call on the same pool still gets its own reply.
    assert call_tool(tool, {"code": "result = 7"}) == 7


def test_timeout_kills_the_child_and_the_pool_recovers(pool: PythonProcessPool, tool: PythonTool) -> None:
    async def scenario() -> tuple[dict, float, object]:
        from noetl.errors import ToolError
        started = time.monotonic()
        try:
            await acall_tool(tool, {"code": "import time\ndef main():\n    time.sleep(30)", "timeout": 0.5}, step="slow")
            raise AssertionError("no timeout")
        except ToolError as exc:
            record = exc.record
        elapsed = time.monotonic() - started
        after = await acall_tool(tool, {"code": "result = 'alive'"})
        return record, elapsed, after

    record, elapsed, after = asyncio.run(scenario())
    assert record["type"] == "Timeout" and "0.5s" in record["message"] and "step 'slow'" in record["message"]
    assert elapsed < 5
    assert after == "alive"
    assert all(child.alive for child in pool._idle)


def test_call_timeout_applies_when_tool_has_none(tool: PythonTool) -> None:
    error = call_tool_error(tool, {"code": "import time\ndef main():\n    time.sleep(30)"}, timeout=0.3)
    assert error["type"] == "Timeout"


def test_crashing_process_is_reported_and_replaced(tool: PythonTool) -> None:
    error = call_tool_error(tool, {"code": "import os\ndef main():\n    os._exit(3)"})
    assert error["type"] == "ProcessDied" and "exit code 3" in error["message"]
    assert call_tool(tool, {"code": "result = 1"}) == 1


def test_sys_exit_is_an_error_not_a_dead_child(tool: PythonTool) -> None:
    error = call_tool_error(tool, {"code": "import sys\ndef main():\n    sys.exit(2)"})
    assert error["type"] == "SystemExit"
    assert call_tool(tool, {"code": "result = 2"}) == 2


def test_calls_do_not_share_globals(tool: PythonTool) -> None:
    call_tool(tool, {"code": "leak = 1\nresult = 0"})
    assert call_tool(tool, {"code": "result = 'leak' in globals()"}) is False


def test_parallel_calls_run_in_parallel(tool: PythonTool) -> None:
    # Each call reports when it ran; all four must overlap (robust to slow interpreter start-up).
    code = "import time\ndef main():\n    start = time.time()\n    time.sleep(0.5)\n    return [start, time.time()]"

    async def scenario() -> list[list[float]]:
        return list(await asyncio.gather(*(acall_tool(tool, {"code": code}) for _ in range(4))))

    spans = asyncio.run(scenario())
    assert max(start for start, _ in spans) < min(end for _, end in spans)


def test_missing_code_is_a_config_error(tool: PythonTool) -> None:
    assert call_tool_error(tool, {})["type"] == "ToolConfigError"


def test_closed_pool_stops_children() -> None:
    pool = PythonProcessPool(max_idle=2)
    pool.warm(2)
    children = list(pool._idle)
    assert call_tool(PythonTool(pool), {"code": "result = 3"}) == 3
    pool.close()
    assert all(not c.alive for c in children)
    assert call_tool_error(PythonTool(pool), {"code": "result = 3"})["type"] == "PoolClosed"


def test_children_die_with_the_process_that_started_them(tmp_path: Any) -> None:
    # Regression: a SIGKILLed worker left its python child running the user's code, whose side
    # effects then happened twice when the command was run again.
    import os
    import signal
    import subprocess
    import sys
    import textwrap

    marker = tmp_path / "child.pid"
    user_code = f"def main():\n    import os, time\n    open({str(marker)!r}, 'w').write(str(os.getpid()))\n" \
                "    time.sleep(60)\n"
    script = tmp_path / "parent.py"
    script.write_text(textwrap.dedent(f"""
        import asyncio
        from noetl.tools import PythonProcessPool, PythonTool
        from tests.helpers.tools import acall_tool
        asyncio.run(acall_tool(PythonTool(PythonProcessPool()), {{"code": {user_code!r}, "timeout": 120}}))
        """))
    parent = subprocess.Popen([sys.executable, str(script)], cwd=os.getcwd(), env={**os.environ, "PYTHONPATH": "."})
    deadline = time.monotonic() + 30
    while not (marker.exists() and marker.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    child = int(marker.read_text())
    parent.send_signal(signal.SIGKILL)
    parent.wait(timeout=10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        os.kill(child, signal.SIGKILL)
        raise AssertionError("the python child outlived its killed parent")
