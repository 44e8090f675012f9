"""Faults, size and security against the real control plane, the real operator process, and worker
and Job pods run by the local pod runner (issue 4)."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.controller.conftest import (
    apply_playbook,
    create_execution,
    get_execution,
    wait_execution,
    worker_deployment,
)
from tools.testenv.kube import Kube

pytestmark = pytest.mark.k8s


def counted_loop(counter: Path, items: int, sleep: float) -> str:
    """A playbook whose every item appends one line to ``counter`` (to count real executions)."""
    return f"""
apiVersion: noetl.io/v2
kind: Playbook
metadata: {{name: counted}}
workload: {{n: {items}}}
workflow:
- step: start
  loop: {{in: "{{{{ range(workload.n) | list }}}}", iterator: i}}
  tool:
    kind: python
    code: |
      def main(i):
          import time
          with open({str(counter)!r} + ".started", "a") as f:
              f.write(f"{{i}}\\n")
          time.sleep({sleep})
          with open({str(counter)!r}, "a") as f:
              f.write(f"{{i}}\\n")
          return i * 2
  args: {{i: "{{{{ i }}}}"}}
  next: end
- step: end
  args: {{total: "{{{{ start.results | sum }}}}"}}
"""


def items_done(obj: dict[str, Any]) -> int:
    items = ((obj.get("status") or {}).get("steps") or {}).get("start", {}).get("items", "0/0")
    return int(str(items).split("/")[0])


def test_operator_killed_mid_execution_resumes_with_no_step_lost_or_repeated(
        kube: Kube, noetl_ns: str, operator_factory: Any, tmp_path: Path) -> None:
    counter = tmp_path / "executed.txt"
    kube.apply(worker_deployment(), namespace=noetl_ns)
    operator = operator_factory(noetl_ns, "worker")
    name = apply_playbook(kube, noetl_ns, tmp_path / "counted.yaml", counted_loop(counter, 6, 0.4))
    create_execution(kube, noetl_ns, "survives", name, executor="worker")
    wait_execution(kube, noetl_ns, "survives", until=lambda o: items_done(o) >= 2, timeout=120)
    operator.kill()  # SIGKILL: no clean-up, whatever was in memory is gone
    time.sleep(1.0)  # let the worker report an event or two into the inbox meanwhile (not a sync point)
    operator_factory(noetl_ns, "worker")
    obj = wait_execution(kube, noetl_ns, "survives", timeout=180)
    status = obj["status"]
    assert status["phase"] == "Succeeded", status
    assert status["result"] == {"total": sum(i * 2 for i in range(6))}
    assert status["steps"]["start"]["calls"] == 6
    executed = sorted(int(x) for x in counter.read_text().split())
    assert executed == list(range(6)), "an item ran twice or never"


def test_worker_killed_mid_command_has_it_run_again(kube: Kube, noetl_ns: str, operator_factory: Any,
                                                    tmp_path: Path, control_plane: Any) -> None:
    counter = tmp_path / "executed.txt"
    kube.apply(worker_deployment(), namespace=noetl_ns)
    operator_factory(noetl_ns, "worker")
    name = apply_playbook(kube, noetl_ns, tmp_path / "counted.yaml", counted_loop(counter, 2, 3.0))
    create_execution(kube, noetl_ns, "reassigned", name, executor="worker")
    obj = wait_execution(kube, noetl_ns, "reassigned", timeout=120, until=lambda o: any(
        r.get("worker") for r in ((o.get("status") or {}).get("commands") or {}).values()))
    worker = next(r["worker"] for r in obj["status"]["commands"].values() if r.get("worker"))
    pidfile = Path(control_plane.dir) / "pods" / noetl_ns / worker / "worker.pid"
    started = Path(str(counter) + ".started")
    deadline = time.monotonic() + 60
    while not started.exists() and time.monotonic() < deadline:  # the first call is inside its sleep
        time.sleep(0.05)
    os.killpg(int(pidfile.read_text()), signal.SIGKILL)
    obj = wait_execution(kube, noetl_ns, "reassigned", timeout=180)
    assert obj["status"]["phase"] == "Succeeded", obj["status"]
    assert obj["status"]["result"] == {"total": 2}
    assert sorted(int(x) for x in counter.read_text().split()) == [0, 1]  # the killed call never counted


def test_job_pod_deleted_before_reporting_becomes_a_failed_call_that_is_retried(
        kube: Kube, noetl_ns: str, operator_factory: Any, tmp_path: Path) -> None:
    operator_factory(noetl_ns, "job")
    name = apply_playbook(kube, noetl_ns, tmp_path / "slow.yaml", """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: slow-first}
workflow:
- step: start
  tool:
    kind: python
    args: {attempt: "{{ event.attempt }}"}
    code: |
      def main(attempt):
          import time
          if attempt == 1:
              time.sleep(120)
          return {"attempt": attempt}
  case:
  - when: "{{ event.name == 'call.done' and error is defined and error.type in ['JobFailed', 'JobLost'] }}"
    then: {retry: {max_attempts: 2, initial_delay: 0}}
""")
    create_execution(kube, noetl_ns, "pod-gone", name, executor="job")
    pods = kube.wait_for(kube.core.list_namespaced_pod,
                         lambda ps: any((p.get("status") or {}).get("phase") == "Running" for p in ps),
                         namespace=noetl_ns, what="a running Job pod", timeout=120)
    running = next(p for p in pods if (p.get("status") or {}).get("phase") == "Running")
    kube.core.delete_namespaced_pod(running["metadata"]["name"], noetl_ns, grace_period_seconds=0)
    obj = wait_execution(kube, noetl_ns, "pod-gone", timeout=180)
    assert obj["status"]["phase"] == "Succeeded", obj["status"]
    assert obj["status"]["result"] == {"attempt": 2}
    assert obj["status"]["steps"]["start"]["calls"] == 2


def test_canary_credential_never_leaves_the_worker(kube: Kube, noetl_ns: str, operator_factory: Any,
                                                    tmp_path: Path, control_plane: Any, http_server: Any) -> None:
    canary = "canary-7f3c9e1d5b"
    http_server.route("/echo", json={"ok": True})
    kube.core.create_namespaced_secret(noetl_ns, {
        "metadata": {"name": "api-token", "annotations": {"noetl.io/credential": "api"}},
        "stringData": {"token": canary}})
    kube.apply(worker_deployment(), namespace=noetl_ns)
    operator = operator_factory(noetl_ns, "worker")
    name = apply_playbook(kube, noetl_ns, tmp_path / "secret.yaml", f"""
apiVersion: noetl.io/v2
kind: Playbook
metadata: {{name: uses-secret}}
workflow:
- step: start
  tool:
    kind: http
    auth: api
    endpoint: "{http_server.url('/echo')}"
    params: {{t: "{{{{ secret.token }}}}"}}
    headers: {{Authorization: "Bearer {{{{ secret.token }}}}"}}
  next: leak
- step: leak
  tool:
    kind: python
    auth: api
    args: {{t: "{{{{ secret.token }}}}"}}
    code: |
      def main(t):
          print("token", t)
          raise ValueError("bad token " + t)
""")
    create_execution(kube, noetl_ns, "guarded", name, executor="worker")
    obj = wait_execution(kube, noetl_ns, "guarded", timeout=120)
    assert obj["status"]["phase"] == "Failed"
    assert http_server.requests_to("/echo")[0].headers["authorization"] == f"Bearer {canary}"
    events = kube.core.list_namespaced_event(noetl_ns, _preload_content=False).data.decode()
    worker_logs = "".join(p.read_text(errors="replace") for p in (Path(control_plane.dir) / "pods" / noetl_ns)
                          .rglob("*.log"))
    for where, text in [("status", json.dumps(obj)), ("events", events), ("operator log", operator.log),
                        ("worker logs", worker_logs)]:
        assert canary not in text, f"the credential leaked into {where}"
    assert "***" in json.dumps(obj["status"]["error"])


def test_template_escape_is_refused_and_the_operator_keeps_running(kube: Kube, noetl_ns: str,
                                                                    operator_factory: Any, tmp_path: Path) -> None:
    kube.apply(worker_deployment(), namespace=noetl_ns)
    operator = operator_factory(noetl_ns, "worker")
    name = apply_playbook(kube, noetl_ns, tmp_path / "escape.yaml", """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: escape}
workflow:
- step: start
  args: {x: "{{ ''.__class__.__mro__[1].__subclasses__() }}"}
""")
    create_execution(kube, noetl_ns, "escape-1", name, executor="worker")
    obj = wait_execution(kube, noetl_ns, "escape-1")
    assert obj["status"]["phase"] == "Failed"
    assert "sandbox" in obj["status"]["error"]["message"]
    assert operator.proc.poll() is None
    ok = apply_playbook(kube, noetl_ns, tmp_path / "ok.yaml",
                        "apiVersion: noetl.io/v2\nkind: Playbook\nmetadata: {name: fine}\n"
                        "workflow:\n- step: start\n  args: {x: 1}\n")
    create_execution(kube, noetl_ns, "after", ok, executor="worker")
    assert wait_execution(kube, noetl_ns, "after")["status"]["result"] == {"x": 1}


def test_ten_thousand_item_loop_keeps_the_execution_under_256_kib(kube: Kube, noetl_ns: str,
                                                                   operator_factory: Any, tmp_path: Path) -> None:
    kube.apply(worker_deployment(replicas=2, concurrency=64), namespace=noetl_ns)
    operator_factory(noetl_ns, "worker")
    name = apply_playbook(kube, noetl_ns, tmp_path / "big.yaml", """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: big-loop}
workload: {n: 10000}
workflow:
- step: start
  loop: {in: "{{ range(workload.n) | list }}", iterator: i, mode: parallel, max_in_flight: 64}
  args: {i: "{{ i }}"}
""")
    create_execution(kube, noetl_ns, "big", name, executor="worker")
    largest = {"bytes": 0}

    def measure(o: dict[str, Any]) -> bool:
        largest["bytes"] = max(largest["bytes"], len(json.dumps(o)))
        return (o.get("status") or {}).get("phase") in ("Succeeded", "Failed")

    wait_execution(kube, noetl_ns, "big", until=measure, timeout=1500)
    final = get_execution(kube, noetl_ns, "big")
    largest["bytes"] = max(largest["bytes"], len(json.dumps(final)))
    assert final["status"]["phase"] == "Succeeded", final["status"].get("error")
    assert final["status"]["steps"]["start"]["items"] == "10000/10000"
    assert largest["bytes"] < 256 * 1024, largest
    assert "resultRef" in final["status"]  # the 10,000 results live in a ConfigMap, not in status
