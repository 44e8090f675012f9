"""Bad input yields one clear error naming file/step/field, never a Python traceback from noetl."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.httpserver import LocalHTTPServer
from tests.runner.conftest import noetl

HEAD = "apiVersion: noetl.io/v2\nkind: Playbook\nmetadata: {name: bad}\n"


def write(tmp_path: Path, body: str, name: str = "pb.yaml") -> Path:
    path = tmp_path / name
    path.write_text(HEAD + textwrap.dedent(body).lstrip("\n"))
    return path


def no_traceback(out: Any) -> None:
    assert "Traceback (most recent call last)" not in out.stdout + out.stderr, out


@pytest.mark.parametrize("body,expected", [
    ("workflow:\n- step: start\n  tool: {kind: noop\n", ":6: malformed YAML"),
    ("workflow:\n- step: start\n  loop: {in: '{{ [1] }}', mode: sideways}\n", ":6: step 'start': loop.mode:"),
    ("workflow:\n- step: start\n  next: missing\n", ":6: step 'start': next[0]: next target 'missing'"),
    ("workflow:\n- step: start\n- step: start\n", ":6: step 'start': step: duplicate step name"),
    ("workflow:\n- step: start\n  args: {a: '{{ x +* 1 }}'}\n", ":6: step 'start': args.a: template syntax error"),
], ids=["malformed-yaml", "schema", "unknown-next", "duplicate-step", "template-syntax"])
def test_validate_and_run_reject_bad_playbooks(tmp_path: Path, body: str, expected: str) -> None:
    path = write(tmp_path, body)
    for command in (["validate", str(path)], ["run", str(path)]):
        out = noetl(*command)
        assert out.code == 2, out
        assert f"{path}{expected}" in out.stdout + out.stderr
        no_traceback(out)


def test_validate_accepts_good_files_and_reports_each_bad_one(tmp_path: Path) -> None:
    good = write(tmp_path, "workflow:\n- step: start\n", "good.yaml")
    bad = write(tmp_path, "workflow:\n- step: begin\n", "bad.yaml")
    assert noetl("validate", str(good)).code == 0
    out = noetl("validate", str(good), str(bad))
    assert out.code == 2
    assert out.stdout.strip().splitlines() == [f"{bad}:4: workflow: no step named 'start': the workflow begins at "
                                               "the step named 'start'"]


def test_missing_file_and_bad_options_are_usage_errors(tmp_path: Path) -> None:
    out = noetl("run", str(tmp_path / "nope.yaml"))
    assert out.code == 2 and "cannot read file" in out.stderr
    good = write(tmp_path, "workflow:\n- step: start\n")
    out = noetl("run", str(good), "--set", "novalue")
    assert out.code == 2 and "--set expects KEY=VALUE" in out.stderr
    out = noetl("run", str(good), "--credentials", str(tmp_path / "missing.yaml"))
    assert out.code == 2
    no_traceback(out)


def run_json(tmp_path: Path, body: str, *extra: str) -> Any:
    out = noetl("run", str(write(tmp_path, body)), "--output", "json", *extra)
    no_traceback(out)
    assert out.code == 1, out
    return out.json


def test_undefined_name_at_run_time_names_step_field_and_name(tmp_path: Path) -> None:
    summary = run_json(tmp_path, """
        workflow:
        - step: start
          tool: {kind: http, endpoint: "http://127.0.0.1:9/{{ workload.missing_key }}"}
        """)
    err = summary["error"]
    assert err["step"] == "start" and err["type"] == "TemplateError"
    assert "tool.endpoint" in err["message"] and "missing_key" in err["message"]


def test_python_exception_gives_message_and_short_traceback(tmp_path: Path) -> None:
    summary = run_json(tmp_path, """
        workflow:
        - step: start
          tool:
            kind: python
            code: |
              def helper(x):
                  return 1 / x
              def main():
                  return helper(0)
        """)
    err = summary["error"]
    assert err["type"] == "ZeroDivisionError" and err["step"] == "start"
    assert "division by zero" in err["message"] and "helper" in err["message"]
    assert "noetl/" not in err["message"]  # only the user's frames


def test_non_json_result_is_an_error(tmp_path: Path) -> None:
    summary = run_json(tmp_path, """
        workflow:
        - step: start
          tool: {kind: python, code: "def main():\\n    return object()"}
        """)
    assert summary["error"]["type"] == "NonJSONResult"
    assert "object" in summary["error"]["message"]


def test_sql_error_rolls_back_and_names_the_step(tmp_path: Path, postgres_server: Any) -> None:
    import psycopg
    import yaml

    creds = tmp_path / "creds.yaml"
    creds.write_text(yaml.safe_dump({"db": postgres_server.credential()}))
    summary = run_json(tmp_path, """
        workflow:
        - step: start
          tool:
            kind: postgres
            auth: db
            command: |
              CREATE TABLE rollback_probe (id int);
              INSERT INTO rollback_probe VALUES (1);
              SELECT * FROM no_such_table;
        """, "--credentials", str(creds))
    err = summary["error"]
    assert err["step"] == "start" and "no_such_table" in err["message"]
    with psycopg.connect(postgres_server.dsn) as conn:
        exists = conn.execute("SELECT to_regclass('rollback_probe')").fetchone()
    assert exists == (None,)  # the CREATE TABLE was rolled back with the failing statement
    assert postgres_server.password not in str(summary)


def test_http_timeout_is_an_error_event(tmp_path: Path, http_server: LocalHTTPServer) -> None:
    http_server.route("/slow", json={}, delay=5)
    summary = run_json(tmp_path, f"""
        workflow:
        - step: start
          tool: {{kind: http, endpoint: "{http_server.url('/slow')}", timeout: 0.3}}
        """)
    assert summary["error"]["type"] == "Timeout" and summary["error"]["status"] is None


def test_http_503_is_a_failed_call_with_status(tmp_path: Path, http_server: LocalHTTPServer) -> None:
    http_server.route("/down", status=503, json={"why": "maintenance"})
    summary = run_json(tmp_path, f"""
        workflow:
        - step: start
          tool: {{kind: http, endpoint: "{http_server.url('/down')}"}}
        """)
    assert summary["error"]["status"] == 503 and summary["error"]["type"] == "HTTPStatusError"


def test_sandbox_escape_is_refused_at_run_time(tmp_path: Path) -> None:
    summary = run_json(tmp_path, """
        workflow:
        - step: start
          args: {x: "{{ ''.__class__.__mro__[1].__subclasses__() }}"}
        """)
    assert "sandbox" in summary["error"]["message"]


@pytest.mark.parametrize("content,expected", [
    (HEAD.encode() + b"workflow:\n- step: start\n  args: {x: &a [*a]}\n", "recursive alias"),
    (b"\x89PNG\r\n\x1a\n\x00\xff\xfe binary", "not UTF-8 text"),
    (HEAD.encode() + b"workflow: 5\n", "'workflow' must be a list of steps"),
    (HEAD.encode() + b"workflow:\n- step: start\n  args: {x: " + b"[" * 3000 + b"]" * 3000 + b"}\n",
     "nesting too deep"),
], ids=["recursive-alias", "binary", "workflow-not-a-list", "deep-nesting"])
def test_broken_documents_are_usage_errors_not_crashes(tmp_path: Path, content: bytes, expected: str) -> None:
    # Regression: each of these was an "internal error" (exit 1) instead of a located problem.
    path = tmp_path / "pb.yaml"
    path.write_bytes(content)
    for command in ("validate", "run"):
        out = noetl(command, str(path))
        assert out.code == 2, out
        assert expected in out.stdout + out.stderr, out
        no_traceback(out)


def test_unquoted_dates_stay_strings(tmp_path: Path) -> None:
    # Regression: YAML turned 2024-02-02 into a date, which no step could pass on (NonJSONResult).
    out = noetl("run", str(write(tmp_path, "workflow:\n- step: start\n  args: {d: 2024-02-02}\n")),
                "--set", "when=2001-01-01", "--output", "json")
    assert out.code == 0, out
    assert out.json["result"] == {"d": "2024-02-02"}


def test_kubernetes_commands_without_the_k8s_extra_say_how_to_install_it() -> None:
    # Regression: without `kubernetes` installed, `noetl submit` printed an "internal error".
    import subprocess
    import sys

    from tests.runner.conftest import EXAMPLES, ROOT

    code = ("import sys; sys.modules['kubernetes'] = None; from noetl.cli import main; "
            f"sys.exit(main(['submit', {str(EXAMPLES / 'hello_loop.yaml')!r}]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 2, out.stderr
    assert "needs the Kubernetes extras" in out.stderr and "Traceback" not in out.stderr
