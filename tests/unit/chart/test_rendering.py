"""``helm template`` output for the defaults and each documented mode: objects, labels, security,
operator and worker settings from values, and the RBAC shape of namespaced vs cluster-wide mode."""

from __future__ import annotations

import pytest

from tests.unit.chart.conftest import CHART, Obj, Rendered, RenderFn

SCENARIOS = sorted(p.name for p in (CHART / "ci").glob("*-values.yaml"))
NS = "noetl-system"


def deployment(objs: Rendered, component: str) -> Obj:
    return objs.get("Deployment", f"demo-noetl-{component}")


def container(dep: Obj) -> Obj:
    only: Obj
    (only,) = dep["spec"]["template"]["spec"]["containers"]
    return only


def env_of(c: Obj) -> dict[str, Obj]:
    return {e["name"]: e for e in c.get("env") or []}


def rules_of(obj: Obj) -> dict[str, set[str]]:
    """{"group/resource": verbs} of a Role or ClusterRole."""
    out: dict[str, set[str]] = {}
    for rule in obj["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                out.setdefault(f"{group}/{resource}", set()).update(rule["verbs"])
    return out


@pytest.mark.parametrize("scenario", ["<defaults>", *SCENARIOS])
def test_every_scenario_renders_valid_objects(render: RenderFn, scenario: str) -> None:
    args = () if scenario == "<defaults>" else ("--values", str(CHART / "ci" / scenario))
    objs = render(*args)
    assert objs.of_kind("Deployment"), "no Deployment rendered"
    for o in objs:
        meta = o["metadata"]
        assert o["apiVersion"] and o["kind"] and meta["name"]
        assert len(meta["name"]) <= 63
        labels = meta["labels"]
        for key in ("app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/version",
                    "app.kubernetes.io/managed-by", "app.kubernetes.io/part-of", "helm.sh/chart"):
            assert key in labels, f"{o['kind']} {meta['name']} lacks label {key}"
        if o["kind"] not in ("ClusterRole", "ClusterRoleBinding"):
            assert meta.get("namespace"), f"{o['kind']} {meta['name']} has no namespace"


def test_default_objects(render: RenderFn) -> None:
    objs = render()
    kinds = sorted((o["kind"], o["metadata"]["name"]) for o in objs)
    assert kinds == sorted([
        ("ServiceAccount", "demo-noetl-operator"), ("ServiceAccount", "demo-noetl-worker"),
        ("ServiceAccount", "demo-noetl-job"),
        ("Role", "demo-noetl-operator"), ("Role", "demo-noetl-worker"), ("Role", "demo-noetl-job"),
        ("RoleBinding", "demo-noetl-operator"), ("RoleBinding", "demo-noetl-worker"),
        ("RoleBinding", "demo-noetl-job"),
        ("Deployment", "demo-noetl-operator"), ("Deployment", "demo-noetl-worker"),
    ])
    assert all(o["metadata"]["namespace"] == NS for o in objs)


@pytest.mark.parametrize("component", ["operator", "worker"])
def test_pods_are_locked_down(render: RenderFn, component: str) -> None:
    dep = deployment(render(), component)
    pod = dep["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    c = container(dep)
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]
    assert any(v["name"] == "tmp" and "emptyDir" in v for v in pod["volumes"])
    for kind in ("requests", "limits"):
        assert set(c["resources"][kind]) == {"cpu", "memory"}
    assert c["command"] == ["noetl"]
    assert pod["serviceAccountName"] == f"demo-noetl-{component}"
    selector = dep["spec"]["selector"]["matchLabels"]
    assert selector.items() <= dep["spec"]["template"]["metadata"]["labels"].items()
    assert selector["app.kubernetes.io/component"] == component
    assert "app.kubernetes.io/version" not in selector  # selectors must survive upgrades


def test_operator_deployment(render: RenderFn) -> None:
    dep = deployment(render(), "operator")
    assert dep["spec"]["replicas"] == 1
    assert dep["spec"]["strategy"] == {"type": "Recreate"}
    c = container(dep)
    assert c["args"] == [
        "operator", f"--namespace={NS}", "--executor=worker", f"--worker-namespace={NS}",
        "--image=noetl:0.1.0", "--image-pull-policy=IfNotPresent", "--job-service-account=demo-noetl-job",
        "--liveness-port=8080", "--log-level=INFO", "--log-format=json"]
    for probe in ("livenessProbe", "readinessProbe"):
        assert c[probe]["httpGet"] == {"path": "/healthz", "port": "healthz"}
    assert {"name": "healthz", "containerPort": 8080, "protocol": "TCP"} in c["ports"]
    env = env_of(c)
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert "NOETL_RESULT_STORE_DSN" not in env


def test_operator_args_follow_values(render: RenderFn) -> None:
    objs = render("--set", "executor=job", "--set", "image.repository=reg.example/noetl", "--set", "image.tag=dev",
                  "--set", "image.pullPolicy=Always", "--set", "operator.livenessPort=9999", "--set", "logLevel=DEBUG",
                  "--set", "logFormat=text", "--set", "job.serviceAccount.name=runner")
    c = container(deployment(objs, "operator"))
    assert c["image"] == "reg.example/noetl:dev"
    assert {"--executor=job", "--image=reg.example/noetl:dev", "--image-pull-policy=Always",
            "--liveness-port=9999", "--log-level=DEBUG", "--log-format=text",
            "--job-service-account=runner"} <= set(c["args"])
    assert objs.get("ServiceAccount", "runner")["metadata"]["namespace"] == NS
    assert env_of(c)["NOETL_LOG_LEVEL"]["value"] == "DEBUG"


def test_worker_deployment_follows_values(render: RenderFn) -> None:
    objs = render("--set", "worker.replicas=5", "--set", "worker.concurrency=3")
    dep = deployment(objs, "worker")
    assert dep["spec"]["replicas"] == 5
    c = container(dep)
    assert c["args"] == ["worker", f"--namespace={NS}", "--concurrency=3", "--grace-seconds=55"]
    env = env_of(c)
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert env["POD_UID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.uid"


def test_worker_disabled(render: RenderFn) -> None:
    objs = render("--values", str(CHART / "ci" / "job-executor-values.yaml"))
    assert [o["metadata"]["name"] for o in objs.of_kind("Deployment")] == ["demo-noetl-operator"]
    assert not [o for o in objs if o["metadata"]["name"] == "demo-noetl-worker"]
    assert "--executor=job" in container(deployment(objs, "operator"))["args"]


def test_postgres_dsn_comes_from_a_secret(render: RenderFn) -> None:
    objs = render("--values", str(CHART / "ci" / "postgres-values.yaml"))
    for component in ("operator", "worker"):
        env = env_of(container(deployment(objs, component)))
        assert env["NOETL_RESULT_STORE"]["value"] == "postgres"
        assert env["NOETL_RESULT_STORE_DSN"]["valueFrom"] == {
            "secretKeyRef": {"name": "noetl-postgres", "key": "dsn"}}
        assert "value" not in env["NOETL_RESULT_STORE_DSN"]


def test_namespaced_mode_has_no_cluster_rights(render: RenderFn) -> None:
    objs = render()
    assert not objs.of_kind("ClusterRole") and not objs.of_kind("ClusterRoleBinding")
    worker = rules_of(objs.get("Role", "demo-noetl-worker"))
    assert worker == {
        "noetl.io/executions": {"get", "list", "watch"}, "noetl.io/playbooks": {"get", "list", "watch"},
        "noetl.io/executions/status": {"patch"}, "noetl.io/executions/finalizers": {"update"},
        "/configmaps": {"get", "create", "update"}, "/secrets": {"get", "list"},
        "coordination.k8s.io/leases": {"get", "list", "create", "update", "patch", "delete"},
    }
    job = rules_of(objs.get("Role", "demo-noetl-job"))
    assert job == {
        "noetl.io/executions": {"get"}, "noetl.io/playbooks": {"get", "list"},
        "noetl.io/executions/status": {"patch"},
        "noetl.io/executions/finalizers": {"update"}, "/configmaps": {"get", "create", "update"},
        "/secrets": {"get", "list"},
    }
    operator = rules_of(objs.get("Role", "demo-noetl-operator"))
    assert operator == {
        "noetl.io/executions": {"get", "list", "watch", "delete"}, "noetl.io/playbooks": {"get", "list", "watch"},
        "noetl.io/executions/status": {"patch"}, "noetl.io/playbooks/status": {"patch"},
        "noetl.io/executions/finalizers": {"update"}, "batch/jobs": {"create", "list", "delete"},
        "/configmaps": {"get", "create", "update"}, "/events": {"create"}, "coordination.k8s.io/leases": {"list"},
    }
    assert "/secrets" not in operator  # the operator never sees credentials
    for name in ("operator", "worker", "job"):
        binding = objs.get("RoleBinding", f"demo-noetl-{name}")
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                      "name": f"demo-noetl-{name}"}
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": f"demo-noetl-{name}", "namespace": NS}]


def test_cluster_wide_mode(render: RenderFn) -> None:
    objs = render("--values", str(CHART / "ci" / "cluster-wide-values.yaml"))
    assert all(f"--namespace={NS}" != a for a in container(deployment(objs, "operator"))["args"])
    assert not [a for a in container(deployment(objs, "worker"))["args"] if a.startswith("--namespace")]
    assert sorted(o["metadata"]["name"] for o in objs.of_kind("ClusterRole")) == [
        "demo-noetl-job", "demo-noetl-operator", "demo-noetl-worker"]
    # Job pods get their rights per namespace, never cluster-wide.
    assert sorted(o["metadata"]["name"] for o in objs.of_kind("ClusterRoleBinding")) == [
        "demo-noetl-operator", "demo-noetl-worker"]
    # Leases stay in the release namespace.
    assert rules_of(objs.get("Role", "demo-noetl-operator")) == {"coordination.k8s.io/leases": {"list"}}
    assert set(rules_of(objs.get("Role", "demo-noetl-worker"))) == {"coordination.k8s.io/leases"}
    assert "coordination.k8s.io/leases" not in rules_of(objs.get("ClusterRole", "demo-noetl-worker"))
    for ns in (NS, "analytics"):
        sa = objs.get("ServiceAccount", "demo-noetl-job", namespace=ns)
        assert sa["metadata"]["namespace"] == ns
        binding = objs.get("RoleBinding", "demo-noetl-job", namespace=ns)
        assert binding["roleRef"]["kind"] == "ClusterRole"
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "demo-noetl-job", "namespace": ns}]


def test_rbac_off_and_existing_service_accounts(render: RenderFn) -> None:
    objs = render("--values", str(CHART / "ci" / "custom-names-values.yaml"))
    assert {o["kind"] for o in objs} == {"Deployment"}
    op = objs.get("Deployment", "etl-operator")
    assert op["spec"]["template"]["spec"]["serviceAccountName"] == "etl-operator"
    assert op["spec"]["template"]["spec"]["imagePullSecrets"] == [{"name": "regcred"}]
    assert "--job-service-account=etl-job" in container(op)["args"]
    assert container(objs.get("Deployment", "etl-worker"))["args"] == [
        "worker", f"--namespace={NS}", "--concurrency=16", "--grace-seconds=55"]


def test_long_release_names_are_cut_to_63(render: RenderFn) -> None:
    release = "a-very-long-release-name-that-goes-on-and-on-and-on-x"
    objs = render(release=release)
    names = {o["metadata"]["name"] for o in objs}
    assert all(len(n) <= 63 for n in names)
    assert len(names) == 3  # operator, worker and job objects stay distinct
    assert all(n.endswith(("-operator", "-worker", "-job")) for n in names)
