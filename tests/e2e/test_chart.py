"""The Helm chart, end to end on the real test control plane (DESIGN §5).

``helm install`` of charts/noetl; the pod runner runs the chart's operator and worker pods (and
the operator's Job pods) with the chart's ServiceAccounts, so the chart's RBAC is what lets them
work. A Playbook from examples/ runs through Executions in both executor modes; ``helm upgrade``
rolls out; ``helm uninstall`` leaves nothing of the release; ``kubectl auth can-i`` checks that
each ServiceAccount has the rights it needs and no more.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import noetl
from tests.e2e.conftest import ROOT, InstallFn, Obj, Release, install
from tools.testenv.kube import Kube

pytestmark = pytest.mark.k8s

EXAMPLE = ROOT / "examples" / "hello_loop.yaml"
PLAYBOOK = "hello-loop"  # `noetl manifest examples/hello_loop.yaml` names it so


@pytest.fixture(scope="module")
def expected() -> Any:
    """The result the embedded runner (`noetl run`) gives: the cluster must give the same."""
    out = noetl.run(EXAMPLE)
    assert out["status"] == "succeeded"
    return out["result"]


# -- helpers -------------------------------------------------------------------------------------------
def apply_example(kube: Kube, namespace: str) -> None:
    """``noetl manifest examples/hello_loop.yaml | kubectl apply -f -``, as the docs say."""
    manifest = subprocess.run([sys.executable, "-m", "noetl.cli", "manifest", str(EXAMPLE)],
                              capture_output=True, text=True, check=True, cwd=ROOT).stdout
    kube.kubectl("apply", "-f", "-", input=manifest, namespace=namespace)


def run_execution(kube: Kube, namespace: str, name: str, executor: str, release: Release,
                  timeout: float = 180) -> Obj:
    """Create an Execution of the example playbook and wait until it finished."""
    body = {"apiVersion": "noetl.io/v2", "kind": "Execution", "metadata": {"name": name},
            "spec": {"playbookRef": {"name": PLAYBOOK}, "executor": executor}}
    kube.custom.create_namespaced_custom_object("noetl.io", "v2", namespace, "executions", body)
    finished = ("Succeeded", "Failed", "Cancelled")
    try:
        items = kube.wait_for(
            kube.custom.list_namespaced_custom_object,
            lambda objs: any(o["metadata"]["name"] == name and (o.get("status") or {}).get("phase") in finished
                             for o in objs),
            timeout=timeout, what=f"execution {namespace}/{name}", group="noetl.io", version="v2",
            namespace=namespace, plural="executions")
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\n{release.logs()}") from None
    return next(o for o in items if o["metadata"]["name"] == name)


def assert_succeeded(obj: Obj, release: Release, expected: Any) -> None:
    status = obj.get("status") or {}
    assert status.get("phase") == "Succeeded", f"{json.dumps(status)[:3000]}\n{release.logs()}"
    assert status["result"] == expected


def events_of(kube: Kube, namespace: str, name: str) -> set[str]:
    resp = kube.core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}",
                                           _preload_content=False)
    return {e["reason"] for e in json.loads(resp.data)["items"]}


def can_i(kube: Kube, sa_namespace: str, sa: str, verb: str, resource: str, namespace: str) -> bool:
    """``kubectl auth can-i VERB RESOURCE[/SUB] -n NAMESPACE --as system:serviceaccount:NS:SA``."""
    resource, _, sub = resource.partition("/")
    args = ["auth", "can-i", verb, resource, f"--as=system:serviceaccount:{sa_namespace}:{sa}"]
    args += ["--all-namespaces"] if namespace == "*" else [f"--namespace={namespace}"]
    if sub:
        args.append(f"--subresource={sub}")
    proc = kube.kubectl(*args, check=False)
    answer = proc.stdout.strip()
    assert answer in ("yes", "no"), f"kubectl {' '.join(args)}: {proc.stdout}{proc.stderr}"
    return answer == "yes"


# Rights per ServiceAccount, checked in the release namespace ("own") or another one ("other").
# (verb, resource, where, allowed)
WORKER_RIGHTS = [
    ("patch", "executions.noetl.io/status", "own", True),
    ("get", "executions.noetl.io", "own", True),
    ("list", "executions.noetl.io", "own", True),
    ("watch", "executions.noetl.io", "own", True),
    ("get", "playbooks.noetl.io", "own", True),
    ("list", "playbooks.noetl.io", "own", True),
    ("get", "configmaps", "own", True),
    ("create", "configmaps", "own", True),
    ("update", "configmaps", "own", True),
    ("get", "secrets", "own", True),
    ("list", "secrets", "own", True),
    ("create", "leases.coordination.k8s.io", "own", True),
    ("update", "leases.coordination.k8s.io", "own", True),
    ("delete", "leases.coordination.k8s.io", "own", True),
    # never the spec, never the lifecycle of an Execution, never the operator's work
    ("update", "executions.noetl.io", "own", False),
    ("patch", "executions.noetl.io", "own", False),
    ("create", "executions.noetl.io", "own", False),
    ("delete", "executions.noetl.io", "own", False),
    ("update", "executions.noetl.io/status", "own", False),
    ("patch", "playbooks.noetl.io", "own", False),
    ("patch", "playbooks.noetl.io/status", "own", False),
    ("create", "jobs.batch", "own", False),
    ("create", "pods", "own", False),
    ("delete", "configmaps", "own", False),
    ("create", "events", "own", False),
    ("create", "secrets", "own", False),
    # nothing in other namespaces
    ("get", "secrets", "other", False),
    ("list", "secrets", "other", False),
    ("list", "secrets", "*", False),
    ("patch", "executions.noetl.io/status", "other", False),
    ("list", "executions.noetl.io", "other", False),
    ("get", "configmaps", "other", False),
]
JOB_RIGHTS = [
    ("patch", "executions.noetl.io/status", "own", True),
    ("get", "executions.noetl.io", "own", True),
    ("get", "playbooks.noetl.io", "own", True),
    ("list", "playbooks.noetl.io", "own", True),
    ("create", "configmaps", "own", True),
    ("get", "secrets", "own", True),
    ("list", "executions.noetl.io", "own", False),
    ("watch", "executions.noetl.io", "own", False),
    ("update", "executions.noetl.io", "own", False),
    ("patch", "executions.noetl.io", "own", False),
    ("create", "jobs.batch", "own", False),
    ("create", "leases.coordination.k8s.io", "own", False),
    ("get", "secrets", "other", False),
    ("patch", "executions.noetl.io/status", "other", False),
]
OPERATOR_RIGHTS = [
    # every right of docs/operator.md
    ("get", "executions.noetl.io", "own", True),
    ("list", "executions.noetl.io", "own", True),
    ("watch", "executions.noetl.io", "own", True),
    ("delete", "executions.noetl.io", "own", True),
    ("patch", "executions.noetl.io/status", "own", True),
    ("update", "executions.noetl.io/finalizers", "own", True),
    ("get", "playbooks.noetl.io", "own", True),
    ("list", "playbooks.noetl.io", "own", True),
    ("watch", "playbooks.noetl.io", "own", True),
    ("patch", "playbooks.noetl.io/status", "own", True),
    ("create", "jobs.batch", "own", True),
    ("list", "jobs.batch", "own", True),
    ("delete", "jobs.batch", "own", True),
    ("get", "configmaps", "own", True),
    ("create", "configmaps", "own", True),
    ("update", "configmaps", "own", True),
    ("create", "events", "own", True),
    ("list", "leases.coordination.k8s.io", "own", True),
    # and nothing else
    ("get", "secrets", "own", False),
    ("list", "secrets", "own", False),
    ("create", "pods", "own", False),
    ("update", "executions.noetl.io", "own", False),
    ("patch", "executions.noetl.io", "own", False),
    ("update", "playbooks.noetl.io", "own", False),
    ("create", "leases.coordination.k8s.io", "own", False),
    ("list", "executions.noetl.io", "other", False),
    ("create", "jobs.batch", "other", False),
    ("list", "namespaces", "*", False),
    ("list", "customresourcedefinitions.apiextensions.k8s.io", "*", False),
]


def check_rights(kube: Kube, release: Release, sa: str, table: list[tuple[str, str, str, bool]],
                 other: str) -> None:
    wrong = []
    for verb, resource, where, allowed in table:
        ns = {"own": release.namespace, "other": other, "*": "*"}[where]
        if can_i(kube, release.namespace, sa, verb, resource, ns) != allowed:
            wrong.append(f"{sa} {'cannot' if allowed else 'CAN'} {verb} {resource} in {ns}")
    assert wrong == []


# -- one namespaced install shared by the tests of this class ---------------------------------------
@pytest.fixture(scope="class")
def other_ns(module_namespaces: Callable[[str], str]) -> str:
    return module_namespaces("chart-other")


@pytest.fixture(scope="class")
def release(kube: Kube, module_namespaces: Callable[[str], str]) -> Iterator[Release]:
    """The chart with its defaults (namespaced mode) and the example Playbook applied; uninstalled
    when the class is done, so that no other operator runs beside the tests that follow."""
    rel = install(kube, module_namespaces("chart"))
    apply_example(kube, rel.namespace)
    yield rel
    rel.uninstall()


class TestNamespacedInstall:
    def test_pods_run_with_the_charts_service_accounts(self, release: Release) -> None:
        for component in ("operator", "worker"):
            (pod,) = [p for p in release.pods(component) if not p["metadata"].get("deletionTimestamp")]
            assert pod["spec"]["serviceAccountName"] == f"{release.fullname}-{component}"
            assert pod["status"]["phase"] == "Running", release.logs()
            assert pod["spec"]["containers"][0]["image"] == "noetl:dev"

    def test_worker_mode(self, kube: Kube, release: Release, expected: Any) -> None:
        obj = run_execution(kube, release.namespace, "by-workers", "worker", release)
        assert_succeeded(obj, release, expected)
        jobs = kube.batch.list_namespaced_job(release.namespace, label_selector="noetl.io/execution=by-workers")
        assert jobs.items == []
        assert {"Started", "Succeeded"} <= events_of(kube, release.namespace, "by-workers")

    def test_job_mode(self, kube: Kube, release: Release, expected: Any) -> None:
        obj = run_execution(kube, release.namespace, "by-jobs", "job", release)
        assert_succeeded(obj, release, expected)
        jobs = kube.batch.list_namespaced_job(release.namespace, label_selector="noetl.io/execution=by-jobs").items
        calls = sum(step["calls"] for step in obj["status"]["steps"].values())
        assert len(jobs) == calls  # one Job per command
        assert {j.spec.template.spec.service_account_name for j in jobs} == {f"{release.fullname}-job"}
        assert {"Started", "Succeeded"} <= events_of(kube, release.namespace, "by-jobs")

    def test_no_request_was_forbidden(self, kube: Kube, release: Release) -> None:
        """The runs above needed no right the chart does not grant."""
        logs = release.logs(tail=None)
        refused = [line[:600] for line in logs.splitlines() if "Forbidden" in line or " 403" in line]
        assert refused == []

    def test_worker_rights(self, kube: Kube, release: Release, other_ns: str) -> None:
        check_rights(kube, release, f"{release.fullname}-worker", WORKER_RIGHTS, other_ns)

    def test_job_rights(self, kube: Kube, release: Release, other_ns: str) -> None:
        check_rights(kube, release, f"{release.fullname}-job", JOB_RIGHTS, other_ns)

    def test_operator_rights(self, kube: Kube, release: Release, other_ns: str) -> None:
        check_rights(kube, release, f"{release.fullname}-operator", OPERATOR_RIGHTS, other_ns)


# -- upgrade and uninstall ---------------------------------------------------------------------------
def release_objects(kube: Kube, release: Release) -> dict[str, list[str]]:
    """Names of everything in the namespace (and cluster) that belongs to the release."""
    selector = f"app.kubernetes.io/instance={release.name}"
    ns = release.namespace
    found: dict[str, list[str]] = {}

    def names(kind: str, resp: Any) -> None:
        items = [o["metadata"]["name"] for o in json.loads(resp.data)["items"]]
        if items:
            found[kind] = items

    names("deployments", kube.apps.list_namespaced_deployment(ns, label_selector=selector, _preload_content=False))
    names("replicasets", kube.apps.list_namespaced_replica_set(ns, label_selector=selector, _preload_content=False))
    names("pods", kube.core.list_namespaced_pod(ns, label_selector=selector, _preload_content=False))
    names("serviceaccounts", kube.core.list_namespaced_service_account(ns, label_selector=selector,
                                                                       _preload_content=False))
    names("roles", kube.rbac.list_namespaced_role(ns, label_selector=selector, _preload_content=False))
    names("rolebindings", kube.rbac.list_namespaced_role_binding(ns, label_selector=selector, _preload_content=False))
    names("clusterroles", kube.rbac.list_cluster_role(label_selector=selector, _preload_content=False))
    names("clusterrolebindings", kube.rbac.list_cluster_role_binding(label_selector=selector, _preload_content=False))
    names("helm secrets", kube.core.list_namespaced_secret(ns, label_selector=f"owner=helm,name={release.name}",
                                                          _preload_content=False))
    names("worker leases", kube.custom.list_namespaced_custom_object(
        "coordination.k8s.io", "v1", ns, "leases", label_selector="noetl.io/worker=true", _preload_content=False))
    return found


def test_upgrade_rolls_out_and_uninstall_leaves_nothing(kube: Kube, namespace: str, release_factory: InstallFn,
                                                       expected: Any) -> None:
    release = release_factory(namespace, "worker.concurrency=2")
    apply_example(kube, namespace)
    worker_dep = f"{release.fullname}-worker"
    before = {p["metadata"]["name"] for p in release.pods("worker")}

    release.upgrade("worker.replicas=2", "worker.concurrency=3")
    dep = kube.apps.read_namespaced_deployment(worker_dep, namespace)
    assert dep.spec.replicas == 2
    assert "--concurrency=3" in dep.spec.template.spec.containers[0].args

    def rolled_out(pods: list[Obj]) -> bool:
        live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
        return (len(live) == 2 and all(p["status"].get("phase") == "Running" for p in live)
                and all("--concurrency=3" in p["spec"]["containers"][0]["args"] for p in live)
                and not {p["metadata"]["name"] for p in live} & before)

    kube.wait_for(kube.core.list_namespaced_pod, rolled_out, timeout=120, what="the upgraded workers",
                  namespace=namespace, label_selector=f"app.kubernetes.io/instance={release.name},"
                                                      "app.kubernetes.io/component=worker")
    assert_succeeded(run_execution(kube, namespace, "after-upgrade", "worker", release), release, expected)

    release.uninstall()
    kube.wait_for(kube.core.list_namespaced_pod, lambda pods: not pods, timeout=90, what="release pods gone",
                  namespace=namespace, label_selector=f"app.kubernetes.io/instance={release.name}")
    assert release_objects(kube, release) == {}
    # CRDs stay (Helm never deletes crds/), and so do the user's Playbooks and Executions.
    for crd in ("playbooks.noetl.io", "executions.noetl.io"):
        kube.kubectl("get", "crd", crd)
    kube.custom.get_namespaced_custom_object("noetl.io", "v2", namespace, "executions", "after-upgrade")


# -- cluster-wide mode -------------------------------------------------------------------------------
def test_cluster_wide_mode(kube: Kube, namespace: str, module_namespaces: Callable[[str], str],
                           release_factory: InstallFn, expected: Any) -> None:
    apps = module_namespaces("chart-apps")
    elsewhere = module_namespaces("chart-elsewhere")
    release = release_factory(namespace, "watch.clusterWide=true", f"job.extraNamespaces={{{apps}}}")
    apply_example(kube, apps)
    for executor in ("worker", "job"):
        assert_succeeded(run_execution(kube, apps, f"cw-{executor}", executor, release), release, expected)

    worker, job, operator = (f"{release.fullname}-{c}" for c in ("worker", "job", "operator"))
    ns = release.namespace
    assert can_i(kube, ns, worker, "patch", "executions.noetl.io/status", elsewhere)
    assert can_i(kube, ns, operator, "create", "jobs.batch", elsewhere)
    assert not can_i(kube, ns, worker, "update", "executions.noetl.io", elsewhere)
    assert not can_i(kube, ns, worker, "create", "jobs.batch", apps)
    assert not can_i(kube, ns, worker, "create", "leases.coordination.k8s.io", apps)  # Leases: own namespace
    assert not can_i(kube, ns, operator, "get", "secrets", apps)
    # Job pods get rights per namespace: the ServiceAccount of `apps` only in `apps`.
    assert can_i(kube, apps, job, "patch", "executions.noetl.io/status", apps)
    assert not can_i(kube, apps, job, "patch", "executions.noetl.io/status", elsewhere)
    assert not can_i(kube, ns, job, "patch", "executions.noetl.io/status", apps)

    release.uninstall()
    kube.wait_for(kube.core.list_namespaced_pod, lambda pods: not pods, timeout=90, what="release pods gone",
                  namespace=namespace, label_selector=f"app.kubernetes.io/instance={release.name}")
    assert release_objects(kube, release) == {}
    selector = f"app.kubernetes.io/instance={release.name}"
    for listing in (kube.core.list_namespaced_service_account, kube.rbac.list_namespaced_role_binding):
        left = json.loads(listing(apps, label_selector=selector, _preload_content=False).data)["items"]
        assert left == [], f"{listing.__name__} in {apps}: {[o['metadata']['name'] for o in left]}"
