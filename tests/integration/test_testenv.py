"""Tests of the test control plane itself: real apiserver, real controllers, local pod runner.

Each test proves one thing the operator and chart tests will rely on.  Waiting is by watch
(``kube.wait_for``), never by sleeping.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tools.testenv import ControlPlane
from tools.testenv.kube import Kube, condition

pytestmark = pytest.mark.k8s
Obj = dict[str, Any]

CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.testenv.noetl.dev
spec:
  group: testenv.noetl.dev
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
    - name: v1
      served: true
      storage: true
      subresources: {status: {}}
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              properties:
                size: {type: integer}
            status:
              type: object
              properties:
                phase: {type: string}
"""


def _pid_alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def test_crd_with_status_subresource(kube: Kube, namespace: str) -> None:
    kube.apply(CRD)
    try:
        kube.kubectl("wait", "--for=condition=Established", "crd/widgets.testenv.noetl.dev", "--timeout=60s")
        widget = """
apiVersion: testenv.noetl.dev/v1
kind: Widget
metadata: {name: w1}
spec: {size: 3, unknownField: pruned}
status: {phase: IgnoredOnCreate}
"""
        # --validate=ignore: let the server prune instead of rejecting the unknown field.
        kube.apply(widget, namespace, "--validate=ignore")
        created = json.loads(kube.kubectl("get", "widget", "w1", "-o", "json", namespace=namespace).stdout)
        assert created["spec"] == {"size": 3}, "structural schema must prune unknown fields"
        assert "status" not in created, "status is ignored on create when the status subresource is on"

        kube.kubectl("patch", "widget", "w1", "--subresource=status", "--type=merge",
                     "-p", '{"status": {"phase": "Ready"}}', namespace=namespace)
        kube.kubectl("patch", "widget", "w1", "--type=merge",
                     "-p", '{"spec": {"size": 4}, "status": {"phase": "IgnoredOnMain"}}', namespace=namespace)
        got = kube.custom.get_namespaced_custom_object("testenv.noetl.dev", "v1", namespace, "widgets", "w1")
        assert got["status"] == {"phase": "Ready"}
        assert got["spec"] == {"size": 4}
        assert got["metadata"]["generation"] == 2, "status writes must not bump the generation"
    finally:
        kube.kubectl("delete", "crd", "widgets.testenv.noetl.dev", "--wait=false", check=False)


def _job(name: str, script: str, backoff_limit: int) -> str:
    return yaml.safe_dump({
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
        "spec": {"backoffLimit": backoff_limit, "template": {"spec": {
            "restartPolicy": "Never",
            "containers": [{
                "name": "main", "image": "noetl:dev", "command": ["sh", "-c", script],
                "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
            }],
        }}},
    })


def test_job_completes(kube: Kube, namespace: str) -> None:
    kube.apply(_job("hello", "echo hi from $POD_NAME", 0), namespace=namespace)
    kube.wait_for(kube.batch.list_namespaced_job, lambda jobs: bool(jobs) and condition(jobs[0], "Complete"),
                  namespace=namespace, what="job hello Complete", timeout=90)
    pods = kube.core.list_namespaced_pod(namespace, label_selector="job-name=hello").items
    assert len(pods) == 1
    pod = pods[0]
    assert pod.status.phase == "Succeeded"
    assert pod.status.container_statuses[0].state.terminated.exit_code == 0
    assert f"hi from {pod.metadata.name}" in kube.pod_log(namespace, pod.metadata.name, "main")


def test_job_fails_after_backoff(kube: Kube, namespace: str) -> None:
    kube.apply(_job("doomed", "echo failing; exit 3", 1), namespace=namespace)
    jobs = kube.wait_for(kube.batch.list_namespaced_job, lambda js: bool(js) and condition(js[0], "Failed"),
                         namespace=namespace, what="job doomed Failed", timeout=120)
    failed = next(c for c in jobs[0]["status"]["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "BackoffLimitExceeded"
    assert jobs[0]["status"]["failed"] == 2
    pods = kube.core.list_namespaced_pod(namespace, label_selector="job-name=doomed").items
    assert len(pods) == 2
    for pod in pods:
        assert pod.status.phase == "Failed"
        assert pod.status.container_statuses[0].state.terminated.exit_code == 3


def test_deployment_pod_runs_and_comes_back(kube: Kube, namespace: str, control_plane: ControlPlane) -> None:
    kube.apply(yaml.safe_dump({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "sleeper"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "sleeper"}},
                 "template": {"metadata": {"labels": {"app": "sleeper"}}, "spec": {
                     "terminationGracePeriodSeconds": 2,
                     "containers": [{"name": "main", "image": "noetl:dev", "command": ["sleep", "3600"]}]}}},
    }), namespace=namespace)

    def one_running(pods: list[Obj]) -> bool:
        return len(pods) == 1 and condition(pods[0], "Ready")

    first = kube.wait_for(kube.core.list_namespaced_pod, one_running, namespace=namespace,
                          label_selector="app=sleeper", what="a Ready sleeper pod")[0]
    kube.wait_for(kube.apps.list_namespaced_deployment,
                  lambda ds: bool(ds) and ds[0].get("status", {}).get("availableReplicas") == 1,
                  namespace=namespace, what="deployment available")
    name, uid = first["metadata"]["name"], first["metadata"]["uid"]
    pidfile = Path(control_plane.dir) / "pods" / namespace / name / "main.pid"
    pid = int(pidfile.read_text())
    assert _pid_alive(pid)

    kube.core.delete_namespaced_pod(name, namespace, _preload_content=False)
    pods = kube.wait_for(
        kube.core.list_namespaced_pod,
        lambda ps: len(ps) == 1 and ps[0]["metadata"]["uid"] != uid and condition(ps[0], "Ready"),
        namespace=namespace, label_selector="app=sleeper", what="old pod gone and a new Ready pod")
    assert pods[0]["metadata"]["name"] != name
    assert not _pid_alive(pid), "the deleted pod's process must be killed"


def test_serviceaccount_without_permission_is_forbidden(kube: Kube, namespace: str) -> None:
    kube.core.create_namespaced_service_account(namespace, {"metadata": {"name": "nobody"}},
                                                _preload_content=False)
    token = kube.token_for(namespace, "nobody")
    denied = kube.kubectl("get", "secrets", namespace=namespace, token=token, check=False)
    assert denied.returncode != 0
    assert "forbidden" in denied.stderr.lower()
    assert f"system:serviceaccount:{namespace}:nobody" in denied.stderr

    cfg = client.Configuration()
    cfg.host = kube.cp.server
    cfg.ssl_ca_cert = str(kube.cp.ca_file)
    cfg.api_key = {"authorization": f"Bearer {token}"}
    with client.ApiClient(cfg) as api:
        with pytest.raises(ApiException) as err:
            client.CoreV1Api(api).list_namespaced_config_map(namespace)
        assert err.value.status == 403

        kube.apply(textwrap.dedent(f"""
            apiVersion: rbac.authorization.k8s.io/v1
            kind: Role
            metadata: {{name: read-configmaps}}
            rules: [{{apiGroups: [""], resources: [configmaps], verbs: [get, list]}}]
            ---
            apiVersion: rbac.authorization.k8s.io/v1
            kind: RoleBinding
            metadata: {{name: nobody-reads-configmaps}}
            roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: read-configmaps}}
            subjects: [{{kind: ServiceAccount, name: nobody, namespace: {namespace}}}]
            """), namespace=namespace)
        allowed = client.CoreV1Api(api).list_namespaced_config_map(namespace)
        assert "kube-root-ca.crt" in [cm.metadata.name for cm in allowed.items if cm.metadata]
        with pytest.raises(ApiException) as err:
            client.CoreV1Api(api).list_namespaced_secret(namespace)
        assert err.value.status == 403


def test_namespace_deletion_removes_content(kube: Kube) -> None:
    ns = f"doomed-{secrets.token_hex(3)}"
    kube.core.create_namespace({"metadata": {"name": ns}}, _preload_content=False)
    kube.wait_for(kube.core.list_namespaced_service_account, lambda sas: len(sas) > 0, namespace=ns,
                  what="default serviceaccount")
    kube.core.create_namespaced_config_map(ns, {"metadata": {"name": "cm"}, "data": {"a": "b"}},
                                           _preload_content=False)
    kube.apply(yaml.safe_dump({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "sleeper"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "sleeper"}},
                 "template": {"metadata": {"labels": {"app": "sleeper"}}, "spec": {
                     "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "main", "image": "noetl:dev", "command": ["sleep", "3600"]}]}}},
    }), namespace=ns)
    pod = kube.wait_for(kube.core.list_namespaced_pod, lambda ps: len(ps) == 1 and condition(ps[0], "Ready"),
                        namespace=ns, what="a Ready pod")[0]
    pid = int((Path(kube.cp.dir) / "pods" / ns / pod["metadata"]["name"] / "main.pid").read_text())

    kube.core.delete_namespace(ns, _preload_content=False)
    kube.wait_for(kube.core.list_namespace, lambda nss: not nss, field_selector=f"metadata.name={ns}",
                  what=f"namespace {ns} gone", timeout=120)
    assert kube.core.list_config_map_for_all_namespaces(field_selector=f"metadata.namespace={ns}").items == []
    assert kube.core.list_pod_for_all_namespaces(field_selector=f"metadata.namespace={ns}").items == []
    assert kube.apps.list_replica_set_for_all_namespaces(field_selector=f"metadata.namespace={ns}").items == []
    assert not _pid_alive(pid)


def test_pod_of_another_image_stays_pending(kube: Kube, namespace: str) -> None:
    kube.core.create_namespaced_pod(namespace, {
        "metadata": {"name": "web"},
        "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"}]},
    }, _preload_content=False)
    pods = kube.wait_for(kube.core.list_namespaced_pod,
                         lambda ps: bool(ps) and condition(ps[0], "PodScheduled", "False"),
                         namespace=namespace, what="PodScheduled=False on pod web")
    cond = next(c for c in pods[0]["status"]["conditions"] if c["type"] == "PodScheduled")
    assert cond["reason"] == "NoetlTestenvImageNotRunnable"
    assert "nginx:1.27" in cond["message"]
    assert pods[0]["status"]["phase"] == "Pending"
    assert not pods[0]["spec"].get("nodeName")


INCLUSTER_SCRIPT = """
import os
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
config.load_incluster_config()
with client.ApiClient() as api:
    v1 = client.CoreV1Api(api)
    ns = os.environ["POD_NS"]
    print("PODS", " ".join(sorted(p.metadata.name for p in v1.list_namespaced_pod(ns).items)))
    try:
        v1.list_namespaced_secret(ns)
        print("SECRETS allowed")
    except ApiException as exc:
        print("SECRETS", exc.status)
for key in ("SECRET_VAL", "CM_VAL", "POD_NAME", "POD_NS", "SA_NAME", "GREETING", "FROM_CM_mode"):
    print(key, "=", os.environ.get(key))
"""


def test_pod_env_and_in_cluster_config(kube: Kube, namespace: str) -> None:
    kube.apply(textwrap.dedent(f"""
        apiVersion: v1
        kind: Secret
        metadata: {{name: creds}}
        stringData: {{password: s3cret}}
        ---
        apiVersion: v1
        kind: ConfigMap
        metadata: {{name: settings}}
        data: {{mode: fast}}
        ---
        apiVersion: v1
        kind: ServiceAccount
        metadata: {{name: reader}}
        ---
        apiVersion: rbac.authorization.k8s.io/v1
        kind: Role
        metadata: {{name: read-pods}}
        rules: [{{apiGroups: [""], resources: [pods], verbs: [get, list]}}]
        ---
        apiVersion: rbac.authorization.k8s.io/v1
        kind: RoleBinding
        metadata: {{name: reader-reads-pods}}
        roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: read-pods}}
        subjects: [{{kind: ServiceAccount, name: reader, namespace: {namespace}}}]
        """), namespace=namespace)
    kube.core.create_namespaced_pod(namespace, {
        "metadata": {"name": "probe"},
        "spec": {"restartPolicy": "Never", "serviceAccountName": "reader", "containers": [{
            "name": "main", "image": "noetl:dev", "command": [sys.executable, "-c", INCLUSTER_SCRIPT],
            "envFrom": [{"configMapRef": {"name": "settings"}, "prefix": "FROM_CM_"}],
            "env": [
                {"name": "SECRET_VAL", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
                {"name": "CM_VAL", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}},
                {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "POD_NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                {"name": "SA_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}},
                {"name": "GREETING", "value": "hello $(POD_NAME) $$(NOT_EXPANDED)"},
            ]}]},
    }, _preload_content=False)
    pods = kube.wait_for(kube.core.list_namespaced_pod,
                         lambda ps: bool(ps) and ps[0].get("status", {}).get("phase") in ("Succeeded", "Failed"),
                         namespace=namespace, what="pod probe finished", timeout=90)
    out = kube.pod_log(namespace, "probe", "main")
    assert pods[0]["status"]["phase"] == "Succeeded", out
    assert "PODS probe" in out
    assert "SECRETS 403" in out
    for line in ("SECRET_VAL = s3cret", "CM_VAL = fast", "POD_NAME = probe", f"POD_NS = {namespace}",
                 "SA_NAME = reader", "GREETING = hello probe $(NOT_EXPANDED)", "FROM_CM_mode = fast"):
        assert line in out, out
    assert os.environ["KUBECONFIG"] == str(kube.cp.kubeconfig)
