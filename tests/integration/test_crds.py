"""The generated CRDs against the real apiserver: they install, explain, validate, keep status.

What matters most is the last point: the apiserver silently prunes fields a schema does not
describe, and the operator keeps its whole state in status (DESIGN §4.1), so a status written by
the operator must come back byte for byte.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from noetl.dsl import load_playbook, to_manifest
from noetl.k8s import _resources as res
from tools.testenv.kube import Kube, KubectlError

pytestmark = pytest.mark.k8s

ROOT = Path(__file__).resolve().parents[2]
CRD_NAMES = (f"{res.PLAYBOOKS}.{res.GROUP}", f"{res.EXECUTIONS}.{res.GROUP}")


def install_crds(kube: Kube) -> None:
    """``kubectl apply -f crds/``, then wait until both are Established and served by discovery."""
    kube.kubectl("apply", "-f", str(ROOT / "crds"))
    kube.kubectl("wait", "--for=condition=Established", "--timeout=60s", *(f"crd/{n}" for n in CRD_NAMES))
    # Discovery (what `kubectl get nex` resolves short names with) is published shortly after the
    # Established condition and cannot be watched: poll it, briefly.
    deadline = time.monotonic() + 30
    while True:
        out = kube.kubectl("api-resources", f"--api-group={res.GROUP}", "-o", "name", check=False).stdout
        if all(n in out for n in CRD_NAMES):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"noetl.io resources not in discovery after 30s: {out!r}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def crds(kube: Kube) -> Iterator[None]:
    install_crds(kube)
    yield


def execution(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": res.API_VERSION, "kind": "Execution", "metadata": {"name": name},
            "spec": spec or {"playbookRef": {"name": "some-playbook"}}}


def _create(kube: Kube, namespace: str, plural: str, body: dict[str, Any]) -> dict[str, Any]:
    resp = kube.custom.create_namespaced_custom_object(res.GROUP, res.VERSION, namespace, plural, body,
                                                       _preload_content=False)
    created: dict[str, Any] = json.loads(resp.data)
    return created


def _get(kube: Kube, namespace: str, plural: str, name: str) -> dict[str, Any]:
    resp = kube.custom.get_namespaced_custom_object(res.GROUP, res.VERSION, namespace, plural, name,
                                                    _preload_content=False)
    obj: dict[str, Any] = json.loads(resp.data)
    return obj


def test_crds_install_and_become_established(kube: Kube) -> None:
    install_crds(kube)
    out = kube.kubectl("get", "crd", *CRD_NAMES, "-o", "json").stdout
    for crd in json.loads(out)["items"]:
        established = [c for c in crd["status"]["conditions"] if c["type"] == "Established"]
        assert established and established[0]["status"] == "True", crd["metadata"]["name"]
        assert crd["status"]["acceptedNames"]["categories"] == ["noetl"]


def test_reapplying_is_a_no_op(kube: Kube, crds: None) -> None:
    out = kube.kubectl("apply", "-f", str(ROOT / "crds")).stdout
    assert out.count("unchanged") == 2, out


def test_explain_shows_descriptions(kube: Kube, crds: None) -> None:
    spec = kube.kubectl("explain", "nex.spec").stdout
    assert "timeoutSeconds" in spec and "DeadlineExceeded" in spec
    assert "Where commands run" in spec
    status = kube.kubectl("explain", "nex.status.inbox").stdout
    assert "Events reported by workers" in status
    loop = kube.kubectl("explain", "pb.spec.workflow.loop").stdout
    assert "max_in_flight" in loop and "Parallel items running at once" in loop


@pytest.mark.parametrize(("field", "value", "expected"), [
    ("timeoutSeconds", "abc", "spec.timeoutSeconds in body must be of type integer"),
    ("timeoutSeconds", 0, "spec.timeoutSeconds in body should be greater than or equal to 1"),
    ("executor", "other", 'spec.executor: Unsupported value: "other"'),
    ("suspend", "yes", "spec.suspend in body must be of type boolean"),
    ("cancel", 1, "spec.cancel in body must be of type boolean"),
    ("playbookRef", {"nom": "x"}, 'unknown field "spec.playbookRef.nom"'),
], ids=["timeout-string", "timeout-zero", "executor-enum", "suspend-string", "cancel-number", "ref-unknown-field"])
def test_wrong_spec_types_are_rejected(kube: Kube, namespace: str, crds: None, field: str, value: Any,
                                       expected: str) -> None:
    body = execution("bad", playbookRef={"name": "p"})
    body["spec"][field] = value
    with pytest.raises(KubectlError) as err:
        kube.apply(yaml.safe_dump(body), namespace)
    assert expected in str(err.value)


@pytest.mark.parametrize("spec", [
    {"workload": {"a": 1}},
    {"playbookRef": {"name": "p"}, "playbook": {"workflow": [{"step": "start"}]}},
], ids=["neither", "both"])
def test_exactly_one_playbook_source(kube: Kube, namespace: str, crds: None, spec: dict[str, Any]) -> None:
    with pytest.raises(KubectlError) as err:
        kube.apply(yaml.safe_dump(execution("bad", **spec)), namespace)
    assert "set exactly one of spec.playbookRef" in str(err.value)


def test_wrong_step_fields_are_rejected(kube: Kube, namespace: str, crds: None) -> None:
    body = {"apiVersion": res.API_VERSION, "kind": "Playbook", "metadata": {"name": "bad"},
            "spec": {"workflow": [{"step": "start", "loop": {"in": [1], "mode": "sideways", "max_in_flight": 0},
                                   "tool": "python"}]}}
    with pytest.raises(KubectlError) as err:
        kube.apply(yaml.safe_dump(body), namespace)
    text = str(err.value)
    assert 'spec.workflow[0].loop.mode: Unsupported value: "sideways"' in text
    assert "spec.workflow[0].loop.max_in_flight" in text
    assert "spec.workflow[0].tool" in text


@pytest.mark.parametrize("path", sorted((ROOT / "examples").glob("*.yaml")), ids=lambda p: p.name)
def test_example_playbooks_are_stored_unchanged(kube: Kube, namespace: str, crds: None, path: Path) -> None:
    """Nothing of a real playbook is pruned or rejected: the stored spec is the file's body."""
    manifest = to_manifest(load_playbook(path))
    stored = _create(kube, namespace, res.PLAYBOOKS, manifest)
    assert stored["spec"] == manifest["spec"]
    inline = _create(kube, namespace, res.EXECUTIONS, execution("inline", playbook=manifest["spec"]))
    assert inline["spec"]["playbook"] == manifest["spec"]


def sample_status(result: Any) -> dict[str, Any]:
    """Everything the operator and workers write, with awkward keys and deep nesting."""
    command = {"id": "c-7f3a/item:12#1", "execution": "ex", "step": "fetch", "activation": "fetch#3",
               "tool": {"kind": "http", "method": "GET", "endpoint": "http://x/{{ item }}",
                        "headers": {"X-Trace": "1"}, "params": {"page": 2}},
               "args": {"deep": {"list": [1, "two", {"three": [3.5, True, False]}]}}, "attempt": 2}
    return {
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "False", "reason": "Started", "message": "running",
                        "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": 1}],
        "observedGeneration": 1,
        "playbook": {"name": "pb", "uid": "0000-1111", "generation": 3, "configMap": "ex-playbook"},
        "startedAt": "2026-01-01T00:00:00Z",
        "finishedAt": "2026-01-01T00:00:12Z",
        "duration": "12s",
        "progress": "2/5",
        "steps": {"start": {"status": "succeeded", "runs": 1, "calls": 0},
                  "fetch": {"status": "running", "runs": 1, "calls": 40, "items": {"done": 40, "total": 100},
                            "extra": {"nested": ["kept"]}}},
        "commands": {"c-7f3a/item:12#1": {"worker": "worker-0", "assignedAt": "2026-01-01T00:00:01.123456Z",
                                          "command": command},
                     "c-big": {"job": "ex-c-big", "commandRef": {"configMap": "ex-cmd-c-big", "sha256": "ab"}}},
        "inbox": {"worker-0/c-7f3a/item:12#1:done": {"name": "call.done", "command_id": "c-7f3a/item:12#1",
                                                     "result": {"status": 200, "data": [{"id": 1}]},
                                                     "at": "2026-01-01T00:00:02Z"},
                  "job:ex-c-big#2": {"name": "call.done", "command_id": "c-big",
                                     "error": {"type": "HttpError", "message": "503", "status": 503}}},
        "state": {"seq": 17, "encoding": "json+zlib+base64", "data": "eJyrVkrLz1eyUkpKLFKqBQApswTx"},
        "result": result,
        "resultRef": {"configMap": "ex-result", "sha256": "0123456789abcdef", "parts": 2},
        "error": {"type": "ToolError", "message": "boom", "step": "fetch", "status": 500},
        "eventsProcessed": 41,
        "warnings": ["step 'fetch': when: 'x' is undefined"],
        "notInTheContractYet": {"kept": True},
    }


@pytest.mark.parametrize("result", [
    [1, "two", {"three": 3}], 42, 3.25, "a string", True, {"rows": [{"a": 1}], "count": 1},
], ids=["list", "int", "float", "string", "bool", "object"])
def test_status_round_trips_without_pruning(kube: Kube, namespace: str, crds: None, result: Any) -> None:
    _create(kube, namespace, res.EXECUTIONS, execution("ex"))
    status = sample_status(result)
    kube.custom.patch_namespaced_custom_object_status(res.GROUP, res.VERSION, namespace, res.EXECUTIONS, "ex",
                                                      {"status": status}, _preload_content=False)
    assert _get(kube, namespace, res.EXECUTIONS, "ex")["status"] == status


def test_worker_inbox_merge_patch_adds_without_clobbering(kube: Kube, namespace: str, crds: None) -> None:
    """Workers add inbox entries with JSON merge patches; keys with '/', '#', ':' stay separate."""
    _create(kube, namespace, res.EXECUTIONS, execution("ex"))
    keys = ["w-1/c:1#1", "w-2/c:1#1", "job:x/y#2"]
    for key in keys:
        patch = json.dumps({"status": {"inbox": {key: {"name": "call.done", "key": key}}}})
        kube.kubectl("patch", "nex", "ex", "--subresource=status", "--type=merge", "-p", patch, namespace=namespace)
    inbox = _get(kube, namespace, res.EXECUTIONS, "ex")["status"]["inbox"]
    assert inbox == {k: {"name": "call.done", "key": k} for k in keys}


def test_status_is_a_subresource(kube: Kube, namespace: str, crds: None) -> None:
    """Writing status through the main resource is ignored (only the operator's /status writes count)."""
    body = execution("ex")
    body["status"] = {"phase": "Succeeded"}
    created = _create(kube, namespace, res.EXECUTIONS, body)
    assert "status" not in created


def test_kubectl_get_shows_printer_columns(kube: Kube, namespace: str, crds: None) -> None:
    _create(kube, namespace, res.EXECUTIONS, execution("ex", playbookRef={"name": "hello"}))
    kube.custom.patch_namespaced_custom_object_status(
        res.GROUP, res.VERSION, namespace, res.EXECUTIONS, "ex",
        {"status": {"phase": "Succeeded", "progress": "3/3", "duration": "7s"}}, _preload_content=False)
    lines = kube.kubectl("get", "nex", namespace=namespace).stdout.splitlines()
    assert lines[0].split() == ["NAME", "PLAYBOOK", "PHASE", "PROGRESS", "AGE", "DURATION"]
    row = lines[1].split()
    assert row[:4] == ["ex", "hello", "Succeeded", "3/3"] and row[5] == "7s"

    _create(kube, namespace, res.PLAYBOOKS, {"apiVersion": res.API_VERSION, "kind": "Playbook",
                                              "metadata": {"name": "hello"},
                                              "spec": {"workflow": [{"step": "start"}]}})
    kube.custom.patch_namespaced_custom_object_status(
        res.GROUP, res.VERSION, namespace, res.PLAYBOOKS, "hello", {"status": {"phase": "Ready", "steps": 1}},
        _preload_content=False)
    lines = kube.kubectl("get", "pb", namespace=namespace).stdout.splitlines()
    assert lines[0].split() == ["NAME", "PHASE", "STEPS", "AGE"]
    assert lines[1].split()[:3] == ["hello", "Ready", "1"]
    both = kube.kubectl("get", "noetl", namespace=namespace).stdout
    assert "execution.noetl.io/ex" in both and "playbook.noetl.io/hello" in both


def test_playbook_status_round_trips(kube: Kube, namespace: str, crds: None) -> None:
    _create(kube, namespace, res.PLAYBOOKS, {"apiVersion": res.API_VERSION, "kind": "Playbook",
                                              "metadata": {"name": "pb"}, "spec": {"workflow": [{"step": "start"}]}})
    status = {"phase": "Invalid", "observedGeneration": 1, "steps": 1,
              "messages": ["playbook: step 'start': next: next target 'x' is not a step"],
              "conditions": [{"type": "Ready", "status": "False", "reason": "PlaybookInvalid", "message": "1 problem",
                              "lastTransitionTime": "2026-01-01T00:00:00Z"}],
              "kopf": {"progress": {"validate": {"started": "2026-01-01T00:00:00.000000", "retries": 1}}}}
    kube.custom.patch_namespaced_custom_object_status(res.GROUP, res.VERSION, namespace, res.PLAYBOOKS, "pb",
                                                      {"status": status}, _preload_content=False)
    assert _get(kube, namespace, res.PLAYBOOKS, "pb")["status"] == status
