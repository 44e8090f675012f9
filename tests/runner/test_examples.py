"""Every playbook in examples/ runs offline with the embedded runner and gives its documented result."""

from __future__ import annotations

from pathlib import Path

import pytest

import noetl
from tests.runner.conftest import EXAMPLES, noetl as noetl_cli


def test_every_example_is_covered() -> None:
    tested = {"hello_loop.yaml", "retry_and_recover.yaml", "pagination.yaml", "workbook_and_child.yaml"}
    assert {p.name for p in EXAMPLES.glob("*.yaml")} == tested


def test_hello_loop() -> None:
    out = noetl.run(EXAMPLES / "hello_loop.yaml")
    assert out["status"] == "succeeded"
    assert out["result"] == {"count": 4, "in_item_order": ["Hello, Ada!", "Hello, Grace!", "Hello, Alan!",
                                                           "Hello, Barbara!"], "in_finish_order": 4}
    assert out["steps"]["end"]["runs"] == 1


def test_hello_loop_with_overrides_through_the_cli() -> None:
    out = noetl_cli("run", str(EXAMPLES / "hello_loop.yaml"), "--set", "names=[linus]", "--set", "greeting=Hi",
                    "--output", "json")
    assert out.code == 0, out
    assert out.json["result"] == {"count": 1, "in_item_order": ["Hi, Linus!"], "in_finish_order": 1}


def test_retry_and_recover() -> None:
    out = noetl.run(EXAMPLES / "retry_and_recover.yaml")
    assert out["status"] == "succeeded"
    assert out["steps"]["start"]["calls"] == 3
    assert out["steps"]["always_fails"] == {"status": "failed", "runs": 1, "calls": 2, "result": None}
    assert out["result"] == {"problem": "ValueError", "retries_needed": 3, "recovered": True}


def test_pagination_against_the_server_the_example_starts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # works from any folder
    out = noetl.run(EXAMPLES / "pagination.yaml", workload={"page_size": 3})
    assert out["status"] == "succeeded", out["error"]
    assert out["steps"]["fetch"]["calls"] == 4
    assert out["result"]["count"] == 10
    assert out["result"]["names"][0] == "ada" and out["result"]["names"][-1] == "radia"


def test_workbook_and_child_playbook() -> None:
    out = noetl.run(EXAMPLES / "workbook_and_child.yaml")
    assert out["status"] == "succeeded", out["error"]
    assert out["result"] == {"passed": ["ada", "grace"], "failed": 1}


def test_child_playbook_found_by_metadata_path(tmp_path: Path) -> None:
    (tmp_path / "child.yaml").write_text(
        "apiVersion: noetl.io/v2\nkind: Playbook\nmetadata: {name: c, path: lib/child}\n"
        "workload: {x: 1}\nworkflow:\n- step: start\n  args: {x: '{{ workload.x }}', y: '{{ workload.y }}'}\n")
    (tmp_path / "parent.yaml").write_text(
        "apiVersion: noetl.io/v2\nkind: Playbook\nmetadata: {name: p}\nworkflow:\n- step: start\n"
        "  tool: {kind: playbook, path: lib/child, args: {y: 2}}\n")
    out = noetl.run(tmp_path / "parent.yaml")
    assert out["status"] == "succeeded", out["error"]
    assert out["result"] == {"x": 1, "y": 2}
