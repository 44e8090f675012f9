"""Executions run by the real operator, with workers and Job pods run by the local pod runner.

Results must equal what the embedded runner (`noetl run`) gives for the same playbook.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import noetl
from tests.integration.controller.conftest import (
    ROOT,
    apply_playbook,
    create_execution,
    summary_of,
    wait_execution,
    worker_deployment,
)
from tools.testenv.kube import Kube

pytestmark = pytest.mark.k8s
EXAMPLES = ROOT / "examples"


def local_summary(path: Path, workload: dict[str, Any] | None = None) -> dict[str, Any]:
    out = noetl.run(path, workload=workload)
    return {"status": out["status"], "result": out["result"],
            "steps": {k: {"status": v["status"], "runs": v["runs"], "calls": v["calls"]}
                      for k, v in out["steps"].items()}}


@pytest.mark.parametrize("executor", ["worker", "job"])
@pytest.mark.parametrize("example", ["hello_loop.yaml", "retry_and_recover.yaml"])
def test_examples_match_the_embedded_runner(kube: Kube, noetl_ns: str, operator_factory: Any, executor: str,
                                            example: str) -> None:
    operator_factory(noetl_ns, executor)
    if executor == "worker":
        kube.apply(worker_deployment(), namespace=noetl_ns)
    name = apply_playbook(kube, noetl_ns, EXAMPLES / example)
    create_execution(kube, noetl_ns, "run-1", name, executor=executor)
    obj = wait_execution(kube, noetl_ns, "run-1", timeout=240)
    assert summary_of(obj) == local_summary(EXAMPLES / example), obj.get("status")


def test_missing_playbook_fails_with_a_clear_condition(kube: Kube, noetl_ns: str, operator_factory: Any) -> None:
    operator_factory(noetl_ns, "worker")
    create_execution(kube, noetl_ns, "orphan", "no-such-playbook", executor="worker")
    obj = wait_execution(kube, noetl_ns, "orphan")
    status = obj["status"]
    assert status["phase"] == "Failed"
    assert status["error"]["type"] == "PlaybookNotFound"
    assert "no-such-playbook" in status["error"]["message"]
    assert status["conditions"][0]["reason"] == "PlaybookNotFound"


def test_invalid_playbook_gets_status_invalid_with_messages(kube: Kube, noetl_ns: str, operator_factory: Any) -> None:
    operator_factory(noetl_ns, "worker")
    kube.apply("""
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: broken}
spec:
  workflow:
  - step: start
    next: nowhere
  - step: other
    args: {x: "{{ ''.__class__ }} {{ a b }}"}
""", namespace=noetl_ns)
    items = kube.wait_for(kube.custom.list_namespaced_custom_object,
                          lambda objs: any((o.get("status") or {}).get("phase") == "Invalid" for o in objs),
                          group="noetl.io", version="v2", namespace=noetl_ns, plural="playbooks", what="Invalid")
    messages = items[0]["status"]["messages"]
    assert any("next target 'nowhere' is not a step" in m for m in messages)
    assert any("template syntax error" in m for m in messages)
    create_execution(kube, noetl_ns, "uses-broken", "broken", executor="worker")
    obj = wait_execution(kube, noetl_ns, "uses-broken")
    assert obj["status"]["error"]["type"] == "PlaybookInvalid"
