"""Worker processes against the real test control plane, without the operator.

The test plays the operator: it creates an Execution, writes ``status.commands`` assigned to a
worker identity with the admin client, and checks what lands in ``status.inbox``. Deployment mode
runs in-process (an asyncio task) and as a subprocess (SIGTERM); Job mode as a subprocess.
Credentials come from real Secrets.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from noetl.dsl import load_playbook, to_manifest
from noetl.engine import Command
from noetl.errors import ToolError
from noetl.k8s import (
    ANNOTATION_CREDENTIAL,
    API_VERSION,
    EXECUTIONS,
    INLINE_LIMIT_BYTES,
    LABEL_COMPONENT,
    LABEL_WORKER,
    KubeClient,
    NotFound,
    SecretCredentials,
    get_blob,
    lease_name,
    put_blob,
    run_worker,
)
from tests.helpers.httpserver import LocalHTTPServer
from tests.integration.test_k8s_client import crds, create_execution  # noqa: F401 - crds is a fixture
from tools.testenv import ControlPlane
from tools.testenv.kube import Kube

pytestmark = pytest.mark.k8s
Obj = dict[str, Any]
REPO = Path(__file__).resolve().parents[2]


def command(cid: str, tool: Obj, **fields: Any) -> Obj:
    """A Command as the operator writes it into status.commands (JSON)."""
    base: Obj = {"id": cid, "execution_id": "exec-1", "step": cid.split("/")[0], "activation": "a#1", "tool": tool}
    base.update(fields)
    return Command(**base).model_dump(mode="json")


def assign(kube: Kube, ns: str, commands: dict[str, Obj], name: str = "run") -> None:
    kube.custom.patch_namespaced_custom_object_status(
        "noetl.io", "v2", ns, EXECUTIONS, name, {"status": {"commands": commands}}, _preload_content=False,
        _content_type="application/merge-patch+json")


def get_execution(kube: Kube, ns: str, name: str = "run") -> Obj:
    obj: Obj = json.loads(kube.custom.get_namespaced_custom_object("noetl.io", "v2", ns, EXECUTIONS, name,
                                                                  _preload_content=False).data)
    return obj


def wait_inbox(kube: Kube, ns: str, ids: set[str], name: str = "run", timeout: float = 60) -> Obj:
    """Wait until the inbox holds every id in ``ids``; the inbox."""
    found = kube.wait_for(kube.custom.list_namespaced_custom_object, lambda objs: any(
        o["metadata"]["name"] == name and ids <= set((o.get("status") or {}).get("inbox") or {}) for o in objs),
        timeout=timeout, what=f"inbox entries {sorted(ids)[:5]}...", group="noetl.io", version="v2", namespace=ns,
        plural=EXECUTIONS)
    (obj,) = [o for o in found if o["metadata"]["name"] == name]
    inbox: Obj = obj["status"]["inbox"]
    return inbox


def with_worker(control_plane: ControlPlane, ns: str, body: Callable[[KubeClient], Awaitable[Any]], *,
                identities: tuple[str, ...] = ("w1",), concurrency: int = 8) -> Any:
    """Run ``body(client)`` while in-process workers serve ``ns``; stop them gracefully afterwards."""
    async def go() -> Any:
        stop = asyncio.Event()
        async with KubeClient.from_env(str(control_plane.kubeconfig)) as client:
            workers = [asyncio.create_task(run_worker(kubeconfig=str(control_plane.kubeconfig), namespaces=[ns],
                                                      identity=ident, lease_namespace=ns, concurrency=concurrency,
                                                      stop=stop, grace_seconds=5))
                       for ident in identities]
            try:
                for ident in identities:  # started: each worker holds its Lease before taking commands
                    deadline = time.monotonic() + 30
                    while True:
                        try:
                            await client.get_lease(ns, lease_name(ident))
                            break
                        except NotFound:
                            assert time.monotonic() < deadline, f"worker {ident} took no Lease"
                            await asyncio.sleep(0.05)
                return await body(client)
            finally:
                stop.set()
                await asyncio.gather(*workers)
    return asyncio.run(go())


# -- SecretCredentials --------------------------------------------------------------------------------
def create_secret(kube: Kube, ns: str, name: str, data: dict[str, str], annotations: dict[str, str] | None = None
                  ) -> None:
    body = {"metadata": {"name": name, "annotations": annotations or {}},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}
    kube.core.create_namespaced_secret(ns, body, _preload_content=False)


def test_secret_credentials_by_annotation_name_json_and_scalar(control_plane: ControlPlane, kube: Kube,
                                                                namespace: str) -> None:
    create_secret(kube, namespace, "shared-apis", {"amadeus": '{"client_id": "id1", "client_secret": "s3cret"}',
                                                   "region": "eu"},
                  annotations={ANNOTATION_CREDENTIAL: "amadeus_api, travel"})
    create_secret(kube, namespace, "openai", {"value": "sk-abcdef"})
    create_secret(kube, namespace, "pg-local", {"host": "db", "password": "pw-1234"})

    async def go() -> None:
        async with KubeClient.from_env(str(control_plane.kubeconfig)) as client:
            creds = SecretCredentials(client, namespace)
            expected = {"amadeus": {"client_id": "id1", "client_secret": "s3cret"}, "region": "eu"}
            assert await creds.resolve("amadeus_api") == expected
            assert await creds.resolve("travel") == expected
            assert await creds.resolve("openai") == "sk-abcdef"
            assert await creds.resolve("pg_local") == {"host": "db", "password": "pw-1234"}
            with pytest.raises(ToolError) as info:
                await creds.resolve("missing_one")
            record = info.value.record
            assert record["type"] == "CredentialNotFound"
            for part in (namespace, f"{ANNOTATION_CREDENTIAL}: missing_one", "'missing_one'", "create secret",
                         "annotate secret"):
                assert part in record["message"]
            # Cached: a deleted Secret is still served within the TTL, and re-read after it.
            kube.core.delete_namespaced_secret("openai", namespace, _preload_content=False)
            assert await creds.resolve("openai") == "sk-abcdef"
            fresh = SecretCredentials(client, namespace, ttl=0)
            with pytest.raises(ToolError):
                await fresh.resolve("openai")
    asyncio.run(go())


def test_secret_credentials_forbidden_says_what_to_grant(control_plane: ControlPlane, kube: Kube, namespace: str,
                                                         tmp_path: Path) -> None:
    token = kube.token_for(namespace, "default")
    env = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(control_plane.apiserver_port),
           "NOETL_K8S_SERVICEACCOUNT_DIR": str(tmp_path)}
    (tmp_path / "token").write_text(token)
    (tmp_path / "ca.crt").write_bytes(control_plane.ca_file.read_bytes())
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)

    async def go() -> None:
        async with KubeClient.from_env() as client:
            with pytest.raises(ToolError) as info:
                await SecretCredentials(client, namespace).resolve("anything")
            assert info.value.record["type"] == "CredentialForbidden"
            assert "grant its ServiceAccount get/list on secrets" in info.value.record["message"]
    try:
        asyncio.run(go())
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# -- deployment mode, in process -----------------------------------------------------------------------
def test_worker_runs_its_commands_and_reports_events(control_plane: ControlPlane, kube: Kube, crds: None,
                                                     namespace: str) -> None:
    execution = create_execution(kube, namespace)
    big_args = {"blob": "x" * (INLINE_LIMIT_BYTES + 1000)}

    async def body(client: KubeClient) -> None:
        # The Lease exists before any command is taken, with the labels the operator selects on.
        lease = await client.get_lease(namespace, lease_name("w1"))
        assert lease["spec"]["holderIdentity"] == "w1"
        assert lease["metadata"]["labels"][LABEL_WORKER] == "true"
        assert lease["metadata"]["labels"][LABEL_COMPONENT] == "worker"
        stored = await put_blob(client, namespace, "run-cmd-ref", command("ref/1", {"kind": "noop"}, args={"r": 1}),
                                owner=execution, kind_label="command")
        commands = {
            "noop/1": {"worker": "w1", "command": command("noop/1", {"kind": "noop"}, args={"x": 1})},
            "nulls/1": {"worker": "w1", "command": command("nulls/1", {"kind": "python", "code": "def main():\n"
                                                                       "    return {'a': None, 'b': {'c': None}}"})},
            "py/1": {"worker": "w1", "command": command("py/1", {"kind": "python", "code": "def main(a):\n"
                                                                  "    return a * 2"}, args={"a": 21})},
            "late/1": {"worker": "w1", "command": command("late/1", {"kind": "noop"}, args={"d": 1}, delay=0.5)},
            "ref/1": {"worker": "w1", "commandRef": stored},
            "big/1": {"worker": "w1", "command": command("big/1", {"kind": "noop"}, args=big_args)},
            "bad/1": {"worker": "w1", "command": command("bad/1", {"kind": "nosuchtool"})},
            "other/1": {"worker": "someone-else", "command": command("other/1", {"kind": "noop"})},
        }
        t0 = time.monotonic()
        await asyncio.to_thread(assign, kube, namespace, commands)
        ids = {f"{c}:done" for c in commands if c != "other/1"}
        inbox = await asyncio.to_thread(wait_inbox, kube, namespace, ids)
        elapsed = time.monotonic() - t0
        assert elapsed >= 0.5  # the delayed command waited
        assert "other/1:done" not in inbox
        assert inbox["nulls/1:done"]["response"] == {"a": None, "b": {"c": None}}  # nulls survive the patch
        assert inbox["noop/1:done"]["response"] == {"x": 1} and inbox["noop/1:done"]["error"] is None
        assert inbox["noop/1:done"]["command_id"] == "noop/1" and inbox["noop/1:done"]["name"] == "call.done"
        assert inbox["py/1:done"]["response"] == 42
        assert inbox["ref/1:done"]["response"] == {"r": 1}
        assert inbox["bad/1:done"]["error"]["type"] == "UnknownToolKind"
        big = inbox["big/1:done"]
        assert set(big) == {"eventRef", "id", "command_id"} and big["command_id"] == "big/1"
        event = await get_blob(client, namespace, big["eventRef"])
        assert event["response"] == big_args and event["id"] == "big/1:done"

    with_worker(control_plane, namespace, body)
    # Graceful stop deleted the Lease; nothing but the inbox was written.
    assert json.loads(kube.kubectl("get", "leases", "-o", "json", namespace=namespace).stdout)["items"] == []
    final = get_execution(kube, namespace)
    assert set(final["status"]) == {"commands", "inbox"}


def test_worker_resolves_auth_from_a_secret_and_redacts(control_plane: ControlPlane, kube: Kube, crds: None,
                                                        namespace: str, http_server: LocalHTTPServer) -> None:
    create_execution(kube, namespace)
    create_secret(kube, namespace, "api-token", {"token": "tok-very-secret-1"},
                  annotations={ANNOTATION_CREDENTIAL: "api"})
    http_server.route("/me", json={"echo": "tok-very-secret-1", "ok": True})
    cmd = command("call/1", {"kind": "http", "url": http_server.url("/me"), "method": "GET"}, auth="api",
                  deferred={"headers.Authorization": "Bearer {{ secret.token }}"})

    async def body(client: KubeClient) -> Obj:
        await asyncio.to_thread(assign, kube, namespace, {"call/1": {"worker": "w1", "command": cmd},
                                                           "miss/1": {"worker": "w1", "command": command(
                                                               "miss/1", {"kind": "noop"}, auth="nope")}})
        return await asyncio.to_thread(wait_inbox, kube, namespace, {"call/1:done", "miss/1:done"})

    inbox = with_worker(control_plane, namespace, body)
    (request,) = http_server.requests_to("/me")
    assert request.headers["authorization"] == "Bearer tok-very-secret-1"
    assert inbox["call/1:done"]["response"]["data"] == {"echo": "***", "ok": True}
    assert "tok-very-secret-1" not in json.dumps(get_execution(kube, namespace))
    assert inbox["miss/1:done"]["error"]["type"] == "CredentialNotFound"
    assert namespace in inbox["miss/1:done"]["error"]["message"]


def test_worker_runs_child_playbooks_from_playbook_resources(control_plane: ControlPlane, kube: Kube, crds: None,
                                                             namespace: str) -> None:
    create_execution(kube, namespace)
    manifest = to_manifest(load_playbook(REPO / "examples" / "lib" / "summarise.yaml"), namespace=namespace)
    kube.custom.create_namespaced_custom_object("noetl.io", "v2", namespace, "playbooks", manifest,
                                                _preload_content=False)
    grades = [{"name": "ada", "passed": True}, {"name": "alan", "passed": False}]
    commands = {
        "by-path/1": {"worker": "w1", "command": command("by-path/1", {"kind": "playbook",
                                                                       "path": "examples/lib/summarise"},
                                                         args={"grades": grades})},
        "by-name/1": {"worker": "w1", "command": command("by-name/1", {"kind": "playbook", "name": "summarise"},
                                                         args={"grades": grades[:1]})},
        "missing/1": {"worker": "w1", "command": command("missing/1", {"kind": "playbook", "path": "nope/x"})},
    }

    async def body(client: KubeClient) -> Obj:
        await asyncio.to_thread(assign, kube, namespace, commands)
        return await asyncio.to_thread(wait_inbox, kube, namespace, {f"{c}:done" for c in commands})

    inbox = with_worker(control_plane, namespace, body)
    assert inbox["by-path/1:done"]["response"] == {"passed": ["ada"], "failed": 1}
    assert inbox["by-name/1:done"]["response"] == {"passed": ["ada"], "failed": 0}
    error = inbox["missing/1:done"]["error"]
    assert error["type"] == "PlaybookNotFound" and namespace in error["message"]


def test_four_workers_patching_500_events_lose_none(control_plane: ControlPlane, kube: Kube, crds: None,
                                                    namespace: str) -> None:
    create_execution(kube, namespace)
    identities = ("w0", "w1", "w2", "w3")
    commands = {f"n/{i}": {"worker": identities[i % 4], "command": command(f"n/{i}", {"kind": "noop"}, args={"i": i})}
                for i in range(500)}

    async def body(client: KubeClient) -> tuple[Obj, float]:
        t0 = time.monotonic()
        await asyncio.to_thread(assign, kube, namespace, commands)
        inbox = await asyncio.to_thread(wait_inbox, kube, namespace, {f"{c}:done" for c in commands}, timeout=240)
        return inbox, time.monotonic() - t0

    inbox, elapsed = with_worker(control_plane, namespace, body, identities=identities)
    assert len(inbox) == 500
    assert all(inbox[f"n/{i}:done"]["response"] == {"i": i} for i in range(500))
    print(f"\n500 events from 4 workers in {elapsed:.1f}s ({500 / elapsed:.0f} events/s)")


def test_worker_forgets_commands_that_left_and_cancels_them(control_plane: ControlPlane, kube: Kube, crds: None,
                                                             namespace: str) -> None:
    create_execution(kube, namespace)
    slow = command("slow/1", {"kind": "python", "code": "import time\ndef main():\n    time.sleep(30)"}, delay=20)

    async def body(client: KubeClient) -> None:
        await asyncio.to_thread(assign, kube, namespace, {"slow/1": {"worker": "w1", "command": slow}})
        await asyncio.sleep(1.0)
        await asyncio.to_thread(assign, kube, namespace, {"slow/1": None})  # cancelled by the operator
        await asyncio.to_thread(assign, kube, namespace, {"q/1": {"worker": "w1", "command": command(
            "q/1", {"kind": "noop"})}})
        await asyncio.to_thread(wait_inbox, kube, namespace, {"q/1:done"})

    t0 = time.monotonic()
    with_worker(control_plane, namespace, body)
    assert time.monotonic() - t0 < 15  # the slow command did not hold the shutdown
    assert "slow/1:done" not in get_execution(kube, namespace)["status"]["inbox"]


# -- subprocesses: job mode and deployment mode ----------------------------------------------------------
def worker_env(control_plane: ControlPlane, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBERNETES_", "NOETL_"))}
    env.update({"KUBECONFIG": str(control_plane.kubeconfig), "PYTHONPATH": str(REPO)}, **extra)
    return env


def run_job(control_plane: ControlPlane, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "noetl.k8s", "--job"], env=worker_env(control_plane, **env),
                          capture_output=True, text=True, timeout=120, cwd=REPO)


def test_job_mode_reports_the_event_and_exits_zero(control_plane: ControlPlane, kube: Kube, crds: None,
                                                    namespace: str) -> None:
    create_execution(kube, namespace)
    ok = run_job(control_plane, NOETL_COMMAND=json.dumps(command("job/1", {"kind": "noop"}, args={"j": 1})),
                 NOETL_EXECUTION=f"{namespace}/run")
    assert ok.returncode == 0, ok.stderr
    failing = run_job(control_plane, NOETL_COMMAND=json.dumps(command("job/2", {"kind": "python", "code":
                                                                      "def main():\n    raise ValueError('boom')"})),
                      NOETL_EXECUTION=f"{namespace}/run")
    assert failing.returncode == 0, failing.stderr  # the call failed, but its event was reported
    inbox = get_execution(kube, namespace)["status"]["inbox"]
    assert inbox["job/1:done"]["response"] == {"j": 1}
    assert inbox["job/2:done"]["error"]["type"] == "ValueError"
    lines = [json.loads(line) for line in ok.stderr.splitlines() if line.strip()]
    assert lines and all({"ts", "level", "msg"} <= set(line) for line in lines)
    assert any(line.get("command") == "job/1" and line.get("execution") == f"{namespace}/run" for line in lines)

    gone = run_job(control_plane, NOETL_COMMAND=json.dumps(command("job/3", {"kind": "noop"})),
                   NOETL_EXECUTION=f"{namespace}/no-such-execution")
    assert gone.returncode == 1 and "gone" in gone.stderr
    missing = run_job(control_plane, NOETL_EXECUTION=f"{namespace}/run")
    assert missing.returncode == 2 and "NOETL_COMMAND" in missing.stderr


def test_deployment_mode_subprocess_stops_on_sigterm(control_plane: ControlPlane, kube: Kube, crds: None,
                                                      namespace: str) -> None:
    create_execution(kube, namespace)
    proc = subprocess.Popen([sys.executable, "-m", "noetl.k8s", "--namespace", namespace, "--concurrency", "4"],
                            env=worker_env(control_plane, POD_NAME="wsub", POD_NAMESPACE=namespace),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        deadline = time.monotonic() + 60
        while True:
            resp = kube.kubectl("get", "leases", "-o", "json", namespace=namespace)
            if [item["metadata"]["name"] for item in json.loads(resp.stdout)["items"]] == [lease_name("wsub")]:
                break
            assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read() if proc.poll() else ""
            time.sleep(0.2)
        assign(kube, namespace, {"sub/1": {"worker": "wsub", "command": command("sub/1", {"kind": "noop"},
                                                                                 args={"s": 1})}})
        inbox = wait_inbox(kube, namespace, {"sub/1:done"})
        assert inbox["sub/1:done"]["response"] == {"s": 1}
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, stderr
    lines = [json.loads(line) for line in stderr.splitlines() if line.strip()]
    assert any(line["msg"].startswith("worker stopped") for line in lines)
    assert json.loads(kube.kubectl("get", "leases", "-o", "json", namespace=namespace).stdout)["items"] == []


def test_job_mode_in_a_pod_with_least_privilege(control_plane: ControlPlane, kube: Kube, crds: None,
                                                namespace: str) -> None:
    """A Job pod (run by the local pod runner with in-cluster config and its own ServiceAccount)
    reports its event with nothing but get on executions and patch on executions/status."""
    create_execution(kube, namespace)
    kube.core.create_namespaced_service_account(namespace, {"metadata": {"name": "noetl-job"}}, _preload_content=False)
    kube.rbac.create_namespaced_role(namespace, {"metadata": {"name": "noetl-job"}, "rules": [
        {"apiGroups": ["noetl.io"], "resources": ["executions"], "verbs": ["get"]},
        {"apiGroups": ["noetl.io"], "resources": ["executions/status"], "verbs": ["patch"]}]}, _preload_content=False)
    kube.rbac.create_namespaced_role_binding(namespace, {
        "metadata": {"name": "noetl-job"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "noetl-job"},
        "subjects": [{"kind": "ServiceAccount", "name": "noetl-job", "namespace": namespace}]}, _preload_content=False)
    env = [{"name": "NOETL_COMMAND", "value": json.dumps(command("pod/1", {"kind": "noop"}, args={"p": 1}))},
           {"name": "NOETL_EXECUTION", "value": f"{namespace}/run"},
           {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
           {"name": "PYTHONPATH", "value": str(REPO)}]
    pod = {"metadata": {"name": "job-pod"}, "spec": {"restartPolicy": "Never", "serviceAccountName": "noetl-job",
                                                     "containers": [{"name": "command", "image": "noetl:dev",
                                                                     "command": [sys.executable, "-m", "noetl.k8s", "--job"],
                                                                     "env": env}]}}
    kube.core.create_namespaced_pod(namespace, pod, _preload_content=False)
    pods = kube.wait_for(kube.core.list_namespaced_pod, lambda ps: any(
        p["status"].get("phase") in ("Succeeded", "Failed") for p in ps), timeout=90, what="the Job pod to finish",
        namespace=namespace)
    log = kube.pod_log(namespace, "job-pod", "command")
    assert pods[0]["status"]["phase"] == "Succeeded", log
    assert get_execution(kube, namespace)["status"]["inbox"]["pod/1:done"]["response"] == {"p": 1}
