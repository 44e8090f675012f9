"""KubeClient, the ConfigMap blob store and Leases against the real test control plane (no mocks).

Each test runs its async body with ``asyncio.run`` and closes its client: warnings are errors, so
an unclosed socket or a leaked watch thread fails the test.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from kubernetes import client as k8s

from noetl.k8s import (
    API_VERSION,
    EXECUTIONS,
    LABEL_BLOB,
    LABEL_EXECUTION,
    LABEL_WORKER,
    Conflict,
    Forbidden,
    KubeClient,
    NotFound,
    get_blob,
    json_pointer,
    owner_reference,
    put_blob,
)
from tools.testenv import ControlPlane
from tools.testenv.kube import Kube

pytestmark = pytest.mark.k8s
Obj = dict[str, Any]
T = TypeVar("T")
CRD_DIR = Path(__file__).resolve().parents[2] / "crds"

# Used only when crds/ has not been generated: just enough schema for status to be kept.
_MINIMAL_CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: %(plural)s.noetl.io}
spec:
  group: noetl.io
  scope: Namespaced
  names: {plural: %(plural)s, singular: %(singular)s, kind: %(kind)s}
  versions:
    - name: v2
      served: true
      storage: true
      subresources: {status: {}}
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec: {type: object, x-kubernetes-preserve-unknown-fields: true}
            status: {type: object, x-kubernetes-preserve-unknown-fields: true}
"""


def install_crds(kube: Kube) -> None:
    """Apply crds/*.yaml (or minimal CRDs when absent) and wait until both are Established."""
    files = sorted(CRD_DIR.glob("*.yaml"))
    if files:
        for path in files:
            kube.apply(path.read_text())
    else:
        kube.apply(_MINIMAL_CRD % {"plural": "executions", "singular": "execution", "kind": "Execution"})
        kube.apply(_MINIMAL_CRD % {"plural": "playbooks", "singular": "playbook", "kind": "Playbook"})
    ext = k8s.ApiextensionsV1Api(kube.api)
    kube.wait_for(ext.list_custom_resource_definition, lambda crds: {
        c["metadata"]["name"] for c in crds
        if any(x["type"] == "Established" and x["status"] == "True" for x in (c.get("status") or {}).get("conditions") or [])
    } >= {"executions.noetl.io", "playbooks.noetl.io"}, what="noetl CRDs established")


@pytest.fixture(scope="session")
def crds(kube: Kube) -> None:
    install_crds(kube)


def run(control_plane: ControlPlane, body: Callable[[KubeClient], Awaitable[T]]) -> T:
    """Run ``body(client)`` in a fresh loop with a client that is closed afterwards."""
    async def go() -> T:
        async with KubeClient.from_env(str(control_plane.kubeconfig)) as client:
            return await body(client)
    return asyncio.run(go())


def create_execution(kube: Kube, ns: str, name: str = "run", status: Obj | None = None) -> Obj:
    body = {"apiVersion": API_VERSION, "kind": "Execution", "metadata": {"name": name, "namespace": ns},
            "spec": {"playbookRef": {"name": "demo"}}}
    resp = kube.custom.create_namespaced_custom_object("noetl.io", "v2", ns, EXECUTIONS, body, _preload_content=False)
    obj: Obj = json.loads(resp.data)
    if status:
        resp = kube.custom.patch_namespaced_custom_object_status(
            "noetl.io", "v2", ns, EXECUTIONS, name, {"status": status}, _preload_content=False,
            _content_type="application/merge-patch+json")
        obj = json.loads(resp.data)
    return obj


@pytest.fixture
def execution(kube: Kube, crds: None, namespace: str) -> Obj:
    return create_execution(kube, namespace)


# -- status patches ----------------------------------------------------------------------------------
def test_status_merge_patch_keeps_other_keys_and_guards_resource_version(
        control_plane: ControlPlane, namespace: str, execution: Obj) -> None:
    async def body(c: KubeClient) -> None:
        a = await c.patch_status(EXECUTIONS, namespace, "run", {"status": {"phase": "Running",
                                                                          "inbox": {"e1": {"id": "e1"}}}})
        assert a["status"]["phase"] == "Running"
        b = await c.patch_status(EXECUTIONS, namespace, "run", {"status": {"inbox": {"e2": {"id": "e2"}}}})
        assert set(b["status"]["inbox"]) == {"e1", "e2"} and b["status"]["phase"] == "Running"
        # Guarded write on a stale version: refused.
        with pytest.raises(Conflict) as info:
            await c.patch_status(EXECUTIONS, namespace, "run", {"status": {"phase": "Failed"}},
                                 resource_version=a["metadata"]["resourceVersion"])
        assert info.value.status == 409 and "modified" in info.value.message
        # On the current version: accepted; null removes an inbox key (what the operator does).
        c2 = await c.patch_status(EXECUTIONS, namespace, "run", {"status": {"phase": "Succeeded", "inbox": {"e1": None}}},
                                  resource_version=b["metadata"]["resourceVersion"])
        assert c2["status"]["phase"] == "Succeeded" and set(c2["status"]["inbox"]) == {"e2"}
        got = await c.get_object(EXECUTIONS, namespace, "run")
        assert got["metadata"]["resourceVersion"] == c2["metadata"]["resourceVersion"]
        # The main resource is separate from status.
        patched = await c.patch_object(EXECUTIONS, namespace, "run", {"spec": {"suspend": True}})
        assert patched["spec"]["suspend"] is True and patched["status"]["phase"] == "Succeeded"
    run(control_plane, body)


def test_json_patch_keeps_nulls_and_can_be_guarded(control_plane: ControlPlane, namespace: str,
                                                    execution: Obj) -> None:
    async def body(c: KubeClient) -> None:
        # A merge patch drops nulls at every depth of a new value; a JSON patch keeps them.
        merged = await c.patch_status(EXECUTIONS, namespace, "run", {"status": {"inbox": {"m": {"r": {"a": None}}}}})
        assert merged["status"]["inbox"]["m"] == {"r": {}}
        value = {"r": {"a": None, "b": [None]}}
        added = await c.json_patch_status(EXECUTIONS, namespace, "run", [
            {"op": "add", "path": json_pointer("status", "inbox", "x/1:done"), "value": value}])
        assert added["status"]["inbox"]["x/1:done"] == value
        with pytest.raises(Conflict):
            await c.json_patch_status(EXECUTIONS, namespace, "run", [
                {"op": "replace", "path": "/status/progress", "value": "9/9"}],
                resource_version=merged["metadata"]["resourceVersion"])
        ok = await c.json_patch_status(EXECUTIONS, namespace, "run", [
            {"op": "add", "path": "/status/progress", "value": "1/9"}],
            resource_version=added["metadata"]["resourceVersion"])
        assert ok["status"]["progress"] == "1/9"
    run(control_plane, body)


def test_get_list_delete_and_errors(control_plane: ControlPlane, kube: Kube, crds: None, namespace: str) -> None:
    create_execution(kube, namespace, "one")
    create_execution(kube, namespace, "two")

    async def body(c: KubeClient) -> None:
        items, version = await c.list_objects(EXECUTIONS, namespace)
        assert sorted(i["metadata"]["name"] for i in items) == ["one", "two"] and version
        assert all(i["kind"] == "Execution" and i["apiVersion"] == API_VERSION for i in items)
        everywhere, _ = await c.list_objects(EXECUTIONS, None)
        assert {"one", "two"} <= {i["metadata"]["name"] for i in everywhere}
        with pytest.raises(NotFound) as info:
            await c.get_object(EXECUTIONS, namespace, "missing")
        assert info.value.status == 404 and "missing" in str(info.value)
        with pytest.raises(Conflict):
            await c.create_object(EXECUTIONS, namespace, {"apiVersion": API_VERSION, "kind": "Execution",
                                                          "metadata": {"name": "one"},
                                                          "spec": {"playbookRef": {"name": "demo"}}})
        await c.delete_object(EXECUTIONS, namespace, "one")
        await c.delete_object(EXECUTIONS, namespace, "one")  # absent is fine
        with pytest.raises(NotFound):
            await c.delete_object(EXECUTIONS, namespace, "one", missing_ok=False)
        secrets_list, _ = await c.list_secrets(namespace)
        assert isinstance(secrets_list, list)
    run(control_plane, body)


def test_watch_sees_an_update_and_closes_cleanly(control_plane: ControlPlane, namespace: str, execution: Obj) -> None:
    async def body(c: KubeClient) -> None:
        _, version = await c.list_objects(EXECUTIONS, namespace)
        stream = c.watch_objects(EXECUTIONS, namespace, version, timeout_seconds=30)
        await c.patch_status(EXECUTIONS, namespace, "run", {"status": {"progress": "1/2"}})
        kind, obj = await asyncio.wait_for(stream.__anext__(), 10)
        assert kind == "MODIFIED" and obj["status"]["progress"] == "1/2"
        t0 = time.monotonic()
        await stream.aclose()
        assert time.monotonic() - t0 < 2
        with pytest.raises(StopAsyncIteration):
            await stream.__anext__()
        # A watch left open is stopped by the client's aclose (checked by the run helper closing it).
        c.watch_objects(EXECUTIONS, None, timeout_seconds=30)
    run(control_plane, body)


def test_watch_ends_when_the_server_times_it_out(control_plane: ControlPlane, namespace: str,
                                                   execution: Obj) -> None:
    async def body(c: KubeClient) -> list[str]:
        _, version = await c.list_objects(EXECUTIONS, namespace)
        seen = []
        async with c.watch_objects(EXECUTIONS, namespace, version, timeout_seconds=1) as stream:
            async for kind, _obj in stream:
                seen.append(kind)
        return seen
    assert run(control_plane, body) == []


# -- blobs -------------------------------------------------------------------------------------------
def test_blob_round_trip_small_and_split(control_plane: ControlPlane, namespace: str, execution: Obj) -> None:
    small = {"rows": [{"i": i, "name": f"row {i}"} for i in range(1000)]}
    # Random text compresses poorly: 3 MiB of it needs several ConfigMaps.
    big = {"blob": base64.b64encode(os.urandom(3 * 1024 * 1024 * 3 // 4)).decode(), "n": 1}

    async def body(c: KubeClient) -> None:
        ref = await put_blob(c, namespace, "run-result", small, owner=execution, kind_label="result")
        assert ref["configMap"] == "run-result" and "parts" not in ref
        assert await get_blob(c, namespace, ref) == small
        cm = await c.get_configmap(namespace, "run-result")
        assert cm["metadata"]["labels"][LABEL_BLOB] == "result"
        assert cm["metadata"]["labels"][LABEL_EXECUTION] == "run"
        assert cm["metadata"]["ownerReferences"] == [owner_reference(execution)]

        ref_big = await put_blob(c, namespace, "run-state-0", big, owner=execution, kind_label="state")
        assert ref_big["parts"] >= 3
        assert await get_blob(c, namespace, ref_big) == big
        # Writing the same name again replaces the value.
        ref2 = await put_blob(c, namespace, "run-result", {"v": 2}, owner=execution, kind_label="result")
        assert await get_blob(c, namespace, ref2) == {"v": 2}
        # Long or odd names are made valid and stay deterministic.
        odd = await put_blob(c, namespace, "Run/" + "x" * 300 + ":call#1", [1, 2], owner=execution, kind_label="event")
        again = await put_blob(c, namespace, "Run/" + "x" * 300 + ":call#1", [1, 2], owner=execution, kind_label="event")
        assert odd == again and len(odd["configMap"]) <= 240
        await c.delete_configmaps(namespace, f"{LABEL_EXECUTION}=run")
        with pytest.raises(NotFound):
            await get_blob(c, namespace, ref2)
    run(control_plane, body)


def test_put_configmap_creates_then_replaces(control_plane: ControlPlane, namespace: str) -> None:
    async def body(c: KubeClient) -> None:
        await c.put_configmap(namespace, "cfg", {"a": "1"}, labels={"x": "y"})
        await c.put_configmap(namespace, "cfg", {"b": "2"}, labels={"x": "z"})
        cm = await c.get_configmap(namespace, "cfg")
        assert cm["data"] == {"b": "2"} and cm["metadata"]["labels"] == {"x": "z"}
    run(control_plane, body)


# -- leases, events, jobs ----------------------------------------------------------------------------
def test_lease_create_renew_list_delete(control_plane: ControlPlane, namespace: str) -> None:
    async def body(c: KubeClient) -> None:
        first = await c.create_or_renew_lease(namespace, "noetl-worker-a", "a", 15, {LABEL_WORKER: "true"})
        assert first["spec"]["holderIdentity"] == "a" and first["spec"]["leaseDurationSeconds"] == 15
        await asyncio.sleep(0.01)
        second = await c.create_or_renew_lease(namespace, "noetl-worker-a", "a", 15, {LABEL_WORKER: "true"})
        assert second["spec"]["renewTime"] > first["spec"]["renewTime"]
        assert second["spec"]["acquireTime"] == first["spec"]["acquireTime"]
        leases, _ = await c.list_leases(namespace, f"{LABEL_WORKER}=true")
        assert [item["metadata"]["name"] for item in leases] == ["noetl-worker-a"]
        got = await c.get_lease(namespace, "noetl-worker-a")
        assert got["spec"]["renewTime"] == second["spec"]["renewTime"]
        await c.delete_lease(namespace, "noetl-worker-a")
        await c.delete_lease(namespace, "noetl-worker-a")
        assert (await c.list_leases(namespace, f"{LABEL_WORKER}=true"))[0] == []
    run(control_plane, body)


def test_post_event_about_an_execution(control_plane: ControlPlane, kube: Kube, namespace: str,
                                       execution: Obj) -> None:
    async def body(c: KubeClient) -> Obj:
        return await c.post_event(execution, reason="Started", message="m" * 5000, type="Normal")
    run(control_plane, body)
    events = json.loads(kube.core.list_namespaced_event(namespace, _preload_content=False).data)["items"]
    (event,) = [e for e in events if e["involvedObject"]["name"] == "run"]
    assert event["reason"] == "Started" and len(event["message"]) <= 1024
    assert event["involvedObject"]["uid"] == execution["metadata"]["uid"]
    assert event["involvedObject"]["kind"] == "Execution" and event["source"]["component"] == "noetl-operator"
    assert event["count"] == 1 and event["firstTimestamp"]


def test_jobs_create_list_delete(control_plane: ControlPlane, namespace: str, execution: Obj) -> None:
    job = {"metadata": {"name": "cmd-1", "labels": {LABEL_EXECUTION: "run"},
                        "ownerReferences": [owner_reference(execution)]},
           "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never", "containers": [
               {"name": "c", "image": "example.invalid/not-run:1", "command": ["true"]}]}}}}

    async def body(c: KubeClient) -> None:
        created = await c.create_job(namespace, job)
        assert created["metadata"]["name"] == "cmd-1"
        with pytest.raises(Conflict):
            await c.create_job(namespace, job)
        jobs, _ = await c.list_jobs(namespace, f"{LABEL_EXECUTION}=run")
        assert [j["metadata"]["name"] for j in jobs] == ["cmd-1"] and jobs[0]["kind"] == "Job"
        assert (await c.get_job(namespace, "cmd-1"))["metadata"]["uid"] == created["metadata"]["uid"]
        await c.delete_job(namespace, "cmd-1")
        await c.delete_job(namespace, "cmd-1")  # absent is fine
    run(control_plane, body)


# -- configuration and authorization -----------------------------------------------------------------
@pytest.fixture
def in_cluster_env(control_plane: ControlPlane, kube: Kube, namespace: str, tmp_path: Path) -> Iterator[Path]:
    """The environment the pod runner gives a pod: service variables and the token files' directory."""
    sa_dir = tmp_path / "sa"
    sa_dir.mkdir()
    (sa_dir / "token").write_text(kube.token_for(namespace, "default"))
    (sa_dir / "ca.crt").write_bytes(control_plane.ca_file.read_bytes())
    (sa_dir / "namespace").write_text(namespace)
    env = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(control_plane.apiserver_port),
           "NOETL_K8S_SERVICEACCOUNT_DIR": str(sa_dir)}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield sa_dir
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def test_in_cluster_config_uses_the_serviceaccount_token(in_cluster_env: Path, namespace: str, crds: None) -> None:
    """The ``default`` ServiceAccount is authenticated (so the token was used) but may not read Executions."""
    async def go() -> None:
        async with KubeClient.from_env() as c:
            assert c.host == f"https://127.0.0.1:{os.environ['KUBERNETES_SERVICE_PORT']}"
            with pytest.raises(Forbidden) as info:
                await c.get_object(EXECUTIONS, namespace, "run")
            assert f"system:serviceaccount:{namespace}:default" in info.value.message
            assert not info.value.retriable
    asyncio.run(go())


def test_kubeconfig_argument_wins_over_in_cluster(in_cluster_env: Path, control_plane: ControlPlane,
                                                  namespace: str, crds: None) -> None:
    async def go() -> None:
        async with KubeClient.from_env(str(control_plane.kubeconfig)) as c:
            items, _ = await c.list_objects(EXECUTIONS, namespace)
            assert items == []
    asyncio.run(go())


def test_unreachable_server_is_a_retriable_api_error(control_plane: ControlPlane, tmp_path: Path) -> None:
    config = yaml.safe_load(control_plane.kubeconfig.read_text())
    config["clusters"][0]["cluster"]["server"] = "https://127.0.0.1:9"  # nothing listens on the discard port
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config))

    async def go() -> None:
        async with KubeClient.from_env(str(path)) as c:
            from noetl.k8s import ApiError
            with pytest.raises(ApiError) as info:
                await c.get_object(EXECUTIONS, "default", "x")
            assert info.value.status == 0 and info.value.retriable
    asyncio.run(go())


def test_concurrent_calls_share_the_pool(control_plane: ControlPlane, namespace: str) -> None:
    """More calls than threads at once: they queue for the pool and all succeed."""
    async def body(c: KubeClient) -> None:
        names = [f"cm-{i}" for i in range(48)]
        await asyncio.gather(*(c.put_configmap(namespace, n, {"v": n}) for n in names))
        got = await asyncio.gather(*(c.get_configmap(namespace, n) for n in names))
        assert [g["data"]["v"] for g in got] == names
    run(control_plane, body)
