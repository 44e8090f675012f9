"""Fixtures for operator tests: CRDs, RBAC, a real operator process, worker Deployments.

The operator runs as a subprocess with the admin kubeconfig (the chart tests run it as a pod);
workers and Job pods run as pods of the image `noetl:dev`, which the local pod runner executes as
local processes with their ServiceAccount's token, so the real RBAC applies to them.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import yaml

from tools.testenv.kube import Kube

ROOT = Path(__file__).resolve().parents[3]
HERE = Path(__file__).parent


CRD_NAMES = ("playbooks.noetl.io", "executions.noetl.io")


def _established(crds: list[dict[str, Any]]) -> bool:
    ready = {c["metadata"]["name"] for c in crds
             if any(x.get("type") == "Established" and x.get("status") == "True"
                    for x in (c.get("status") or {}).get("conditions") or [])}
    return all(name in ready for name in CRD_NAMES)


@pytest.fixture(scope="session")
def crds(kube: Kube) -> None:
    """The CRDs from crds/, applied as a user would and waited for (by watching) until Established."""
    from kubernetes import client

    kube.kubectl("apply", "-f", str(ROOT / "crds"))
    kube.wait_for(client.ApiextensionsV1Api(kube.api).list_custom_resource_definition, _established,
                  what="CRDs Established")


@pytest.fixture
def noetl_ns(kube: Kube, namespace: str, crds: None) -> str:
    """A test namespace with the worker and Job ServiceAccounts and Roles."""
    kube.apply((HERE / "rbac.yaml").read_text(), namespace=namespace)
    return namespace


@dataclasses.dataclass
class OperatorProcess:
    namespace: str
    log_path: Path
    args: list[str]
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen([sys.executable, "-m", "noetl.cli", "operator", *self.args],
                                         stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=ROOT)
        finally:
            log.close()

    def kill(self) -> None:
        """SIGKILL: the crash case (nothing flushed, nothing cleaned up)."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_operator(namespace: str, tmp_path: Path, executor: str) -> OperatorProcess:
    env = {**os.environ, "NOETL_LOG_FORMAT": "json"}
    op = OperatorProcess(namespace=namespace, log_path=tmp_path / "operator.log",
                         args=["--namespace", namespace, "--worker-namespace", namespace, "--executor", executor,
                               "--image", "noetl:dev"], env=env)
    op.start()
    return op


@pytest.fixture
def operator_factory(tmp_path: Path) -> Iterator[Callable[[str, str], OperatorProcess]]:
    started: list[OperatorProcess] = []

    def make(namespace: str, executor: str = "worker") -> OperatorProcess:
        op = start_operator(namespace, tmp_path, executor)
        started.append(op)
        return op

    yield make
    for op in started:
        op.stop()


def worker_deployment(name: str = "noetl-worker", replicas: int = 1, concurrency: int = 8) -> str:
    return yaml.safe_dump({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"serviceAccountName": "noetl-worker", "containers": [{
                                  "name": "worker", "image": "noetl:dev",
                                  "command": ["noetl", "worker", "--concurrency", str(concurrency)],
                                  "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                                          {"name": "POD_NAMESPACE",
                                           "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                                          {"name": "POD_UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
                                          {"name": "NOETL_NAMESPACE",
                                           "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}],
                              }]}}},
    })


def get_execution(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    return kube.custom.get_namespaced_custom_object("noetl.io", "v2", namespace, "executions", name)  # type: ignore[no-any-return]


def wait_execution(kube: Kube, namespace: str, name: str, *, timeout: float = 180,
                   until: Callable[[dict[str, Any]], bool] | None = None) -> dict[str, Any]:
    """Wait (by watching) until the Execution finished, or ``until`` holds."""
    check = until or (lambda o: (o.get("status") or {}).get("phase") in ("Succeeded", "Failed", "Cancelled"))
    items = kube.wait_for(kube.custom.list_namespaced_custom_object,
                          lambda objs: any(o["metadata"]["name"] == name and check(o) for o in objs),
                          timeout=timeout, what=f"execution {name}", group="noetl.io", version="v2",
                          namespace=namespace, plural="executions")
    return next(o for o in items if o["metadata"]["name"] == name)


def apply_playbook(kube: Kube, namespace: str, path: Path, text: str | None = None) -> str:
    """Apply a playbook file (file form) as a Playbook resource; returns its resource name."""
    from noetl.dsl import parse_playbook, to_manifest
    from noetl.dsl._yaml import dump_all

    parsed = parse_playbook(text if text is not None else path.read_text(), file=str(path))
    manifest = to_manifest(parsed)
    kube.apply(dump_all([manifest]), namespace=namespace)
    return str(manifest["metadata"]["name"])


def create_execution(kube: Kube, namespace: str, name: str, playbook: str, *, executor: str,
                     workload: dict[str, Any] | None = None, **spec: Any) -> None:
    body = {"apiVersion": "noetl.io/v2", "kind": "Execution", "metadata": {"name": name},
            "spec": {"playbookRef": {"name": playbook}, "executor": executor, **spec}}
    if workload:
        body["spec"]["workload"] = workload
    kube.custom.create_namespaced_custom_object("noetl.io", "v2", namespace, "executions", body)


def summary_of(obj: dict[str, Any]) -> dict[str, Any]:
    """The parts of an Execution comparable with `noetl run --output json`."""
    status = obj.get("status") or {}
    return {"status": (status.get("phase") or "").lower(), "result": status.get("result"),
            "steps": {k: {"status": v["status"], "runs": v["runs"], "calls": v["calls"]}
                      for k, v in (status.get("steps") or {}).items()}}

