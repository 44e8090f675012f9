"""`noetl crds|submit|get|cancel` against the real apiserver (no operator: the tests play its part
by writing status, which is all the CLI reads).

Commands run in-process through ``noetl.cli.main`` (``KUBECONFIG`` comes from the control_plane
fixture), except ``submit --watch``, which runs as a subprocess so the test can patch the
Execution while the command waits.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from noetl.cli import main
from noetl.dsl import load_playbook, to_manifest
from noetl.k8s import _cli as k8s_cli
from noetl.k8s import _resources as res
from noetl.k8s._cli import execution_body, parse_target, progress_line
from tests.integration.test_crds import install_crds
from tools.testenv.kube import Kube

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "hello_loop.yaml"
Obj = dict[str, Any]


@pytest.fixture(scope="module")
def crds(kube: Kube) -> Iterator[None]:
    install_crds(kube)
    yield


@pytest.fixture
def ns(namespace: str, crds: None, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh namespace with the CRDs installed; no NOETL_* variable leaks in from the shell."""
    for key in list(os.environ):
        if key.startswith("NOETL_") and key != "NOETL_DEBUG":
            monkeypatch.delenv(key)
    return namespace


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def objects(kube: Kube, ns: str, plural: str) -> list[Obj]:
    resp = kube.custom.list_namespaced_custom_object(res.GROUP, res.VERSION, ns, plural, _preload_content=False)
    items: list[Obj] = json.loads(resp.data)["items"]
    return items


def get(kube: Kube, ns: str, plural: str, name: str) -> Obj:
    resp = kube.custom.get_namespaced_custom_object(res.GROUP, res.VERSION, ns, plural, name, _preload_content=False)
    obj: Obj = json.loads(resp.data)
    return obj


def set_status(kube: Kube, ns: str, name: str, status: Obj, plural: str = res.EXECUTIONS) -> None:
    kube.custom.patch_namespaced_custom_object_status(res.GROUP, res.VERSION, ns, plural, name,
                                                      {"status": status}, _preload_content=False)


def create_execution(kube: Kube, ns: str, name: str, playbook: str = "hello-loop") -> None:
    body = execution_body(playbook=playbook, name=name, workload={}, executor=None, timeout=None)
    kube.custom.create_namespaced_custom_object(res.GROUP, res.VERSION, ns, res.EXECUTIONS, body,
                                                _preload_content=False)


# -- helpers without a cluster -------------------------------------------------------------------------
@pytest.mark.parametrize(("words", "expected"), [
    ([], (res.EXECUTIONS, None)),
    (["nex"], (res.EXECUTIONS, None)),
    (["pb"], (res.PLAYBOOKS, None)),
    (["nex/abc"], (res.EXECUTIONS, "abc")),
    (["playbooks", "p"], (res.PLAYBOOKS, "p")),
    (["abc"], (res.EXECUTIONS, "abc")),
], ids=["nothing", "nex", "pb", "slash", "kind-and-name", "bare-name"])
def test_parse_target(words: list[str], expected: tuple[str, str | None]) -> None:
    assert parse_target(words) == expected


def test_progress_line_shows_steps_phase_and_loop_items() -> None:
    obj = {"metadata": {"name": "ex"}, "status": {"phase": "Running", "progress": "1/4", "steps": {
        "start": {"status": "succeeded"}, "fetch": {"status": "running", "items": {"done": 40, "total": 100}}}}}
    line = progress_line(obj, width=8)
    assert line == "ex  Running    [##------] 1/4 steps  fetch 40/100 items"


def test_generated_names_fit_a_label_value() -> None:
    body = execution_body(playbook="p" * 100, name=None, workload={}, executor=None, timeout=None)
    assert len(body["metadata"]["generateName"]) + 5 <= 63


# -- submit --------------------------------------------------------------------------------------------


@pytest.mark.k8s
def test_submit_applies_the_playbook_and_creates_an_execution(kube: Kube, ns: str,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "submit", str(EXAMPLE), "-n", ns, "--set", "a.b=3", "--set", "name=x",
                         "--executor", "job", "--timeout", "30")
    assert code == 0, err
    name = out.strip()
    assert name.startswith("hello-loop-")
    playbook = get(kube, ns, res.PLAYBOOKS, "hello-loop")
    assert playbook["spec"] == to_manifest(load_playbook(EXAMPLE))["spec"]
    spec = get(kube, ns, res.EXECUTIONS, name)["spec"]
    assert spec == {"playbookRef": {"name": "hello-loop"}, "workload": {"a": {"b": 3}, "name": "x"},
                    "executor": "job", "timeoutSeconds": 30}


@pytest.mark.k8s
def test_submit_replaces_a_changed_playbook(kube: Kube, ns: str, capsys: pytest.CaptureFixture[str],
                                            tmp_path: Path) -> None:
    body = yaml.safe_load(EXAMPLE.read_text())
    path = tmp_path / "pb.yaml"
    path.write_text(yaml.safe_dump(body))
    assert cli(capsys, "submit", str(path), "-n", ns)[0] == 0
    kube.custom.patch_namespaced_custom_object(res.GROUP, res.VERSION, ns, res.PLAYBOOKS, "hello-loop",
                                               {"metadata": {"labels": {"team": "data"}}}, _preload_content=False)
    body["workload"] = {"only": "this"}
    path.write_text(yaml.safe_dump(body))
    assert cli(capsys, "submit", str(path), "-n", ns)[0] == 0
    stored = get(kube, ns, res.PLAYBOOKS, "hello-loop")
    assert stored["spec"]["workload"] == {"only": "this"}  # replaced, not merged
    assert stored["metadata"]["labels"] == {"team": "data"}  # what others set is kept
    assert stored["metadata"]["generation"] == 2
    assert len(objects(kube, ns, res.EXECUTIONS)) == 2


@pytest.mark.k8s
def test_submit_invalid_playbook_says_what_validate_says(kube: Kube, ns: str, capsys: pytest.CaptureFixture[str],
                                                         tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("apiVersion: noetl.io/v2\nkind: Playbook\nmetadata: {name: bad}\n"
                    "workflow:\n  - step: start\n    next: nowhere\n")
    code, out, err = cli(capsys, "submit", str(path), "-n", ns)
    assert code == 2
    v_code, v_out, _ = cli(capsys, "validate", str(path))
    assert v_code == 2 and v_out.strip() and v_out.strip() in err
    assert "next target 'nowhere' is not a step" in err
    assert objects(kube, ns, res.PLAYBOOKS) == [] and objects(kube, ns, res.EXECUTIONS) == []


@pytest.mark.k8s
def test_submit_options_from_environment(kube: Kube, ns: str, capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    workload = tmp_path / "w.yaml"
    workload.write_text("x: 1\ny: {z: 2}\n")
    monkeypatch.setenv("NOETL_NAMESPACE", ns)
    monkeypatch.setenv("NOETL_EXECUTOR", "worker")
    monkeypatch.setenv("NOETL_TIMEOUT", "45")
    monkeypatch.setenv("NOETL_OUTPUT", "json")
    monkeypatch.setenv("NOETL_WORKLOAD_FILE", str(workload))
    monkeypatch.setenv("NOETL_KUBECONFIG", os.environ["KUBECONFIG"])
    code, out, err = cli(capsys, "submit", str(EXAMPLE), "--set", "y.w=3")
    assert code == 0, err
    printed = json.loads(out)
    assert printed["namespace"] == ns and printed["playbook"] == "hello-loop"
    spec = get(kube, ns, res.EXECUTIONS, printed["execution"])["spec"]
    assert spec["executor"] == "worker" and spec["timeoutSeconds"] == 45
    assert spec["workload"] == {"x": 1, "y": {"z": 2, "w": 3}}


@pytest.mark.k8s
@pytest.mark.parametrize(("args", "env", "message"), [
    (["--timeout", "abc"], {}, "--timeout must be a whole number of seconds, got 'abc'"),
    (["--timeout", "0"], {}, "--timeout must be at least 1"),
    ([], {"NOETL_EXECUTOR": "other"}, "--executor must be one of worker, job, got 'other'"),
    (["--name", "n" * 64], {}, "--name: at most 63 characters"),
    (["--set", "novalue"], {}, "--set expects KEY=VALUE"),
], ids=["timeout-text", "timeout-zero", "executor-env", "name-too-long", "set-malformed"])
def test_submit_usage_errors(ns: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                             args: list[str], env: dict[str, str], message: str) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    code, _, err = cli(capsys, "submit", str(EXAMPLE), "-n", ns, *args)
    assert code == 2 and message in err and "Traceback" not in err


@pytest.mark.k8s
def test_submit_with_a_taken_name(ns: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(capsys, "submit", str(EXAMPLE), "-n", ns, "--name", "mine")[:2] == (0, "mine\n")
    code, _, err = cli(capsys, "submit", str(EXAMPLE), "-n", ns, "--name", "mine")
    assert code == 2 and "an Execution named 'mine' already exists" in err


@pytest.mark.k8s
def test_unreachable_cluster_and_bad_kubeconfig(ns: str, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = yaml.safe_load(Path(os.environ["KUBECONFIG"]).read_text())
    for cluster in config["clusters"]:
        cluster["cluster"]["server"] = "https://127.0.0.1:1"
    dead = tmp_path / "dead.yaml"
    dead.write_text(yaml.safe_dump(config))
    code, _, err = cli(capsys, "get", "--kubeconfig", str(dead), "-n", ns)
    assert code == 2 and "cannot reach the API server at https://127.0.0.1:1" in err and "Traceback" not in err
    code, _, err = cli(capsys, "get", "--kubeconfig", str(tmp_path / "missing.yaml"))
    assert code == 2 and "cannot load the kubeconfig" in err and "--kubeconfig" in err


# -- get -----------------------------------------------------------------------------------------------
@pytest.mark.k8s
def test_get_lists_executions_and_playbooks(kube: Kube, ns: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "get", "-n", ns)
    assert code == 0 and "No executions found" in err
    assert cli(capsys, "submit", str(EXAMPLE), "-n", ns, "--name", "one")[0] == 0
    create_execution(kube, ns, "two")
    set_status(kube, ns, "two", {"phase": "Running", "progress": "1/2"})
    code, out, _ = cli(capsys, "get", "-n", ns)
    lines = out.splitlines()
    assert code == 0 and lines[0].split() == ["NAME", "PLAYBOOK", "PHASE", "PROGRESS", "AGE", "DURATION"]
    assert lines[1].split()[:3] == ["one", "hello-loop", "Pending"]
    assert lines[2].split()[:4] == ["two", "hello-loop", "Running", "1/2"]
    code, out, _ = cli(capsys, "get", "pb", "-n", ns)
    assert out.splitlines()[0].split() == ["NAME", "PHASE", "STEPS", "AGE"]
    assert out.splitlines()[1].split()[0] == "hello-loop"
    code, out, _ = cli(capsys, "get", "nex", "-n", ns, "-o", "json")
    assert sorted(o["metadata"]["name"] for o in json.loads(out)["items"]) == ["one", "two"]


FINISHED_STATUS = {
    "phase": "Failed", "startedAt": "2026-01-01T00:00:00Z", "finishedAt": "2026-01-01T00:00:12Z",
    "duration": "12s", "progress": "1/2",
    "steps": {"start": {"status": "succeeded", "runs": 1, "calls": 1},
              "fetch": {"status": "failed", "runs": 1, "calls": 3, "items": "2/5"}},  # the operator's shape
    "error": {"type": "HttpError", "message": "503 from http://x", "step": "fetch"},
}


@pytest.mark.k8s
def test_get_one_execution_in_full(kube: Kube, ns: str, capsys: pytest.CaptureFixture[str]) -> None:
    create_execution(kube, ns, "ex")
    set_status(kube, ns, "ex", {**FINISHED_STATUS, "result": {"partial": [1, 2]}})
    for target in (["nex/ex"], ["nex", "ex"], ["ex"]):
        code, out, err = cli(capsys, "get", *target, "-n", ns)
        assert code == 0, err
        assert "execution ex" in out and "phase:     Failed" in out and "duration:  12s" in out
        assert "fetch  failed     runs=1    calls=3 items=2/5" in out
        assert "error in step 'fetch': HttpError: 503 from http://x" in out
        assert '"partial": [' in out
    code, out, _ = cli(capsys, "get", "nex/ex", "-n", ns, "-o", "yaml")
    assert yaml.safe_load(out)["status"]["error"]["type"] == "HttpError"


@pytest.mark.k8s
def test_get_reads_the_full_result_from_its_blob(kube: Kube, ns: str, capsys: pytest.CaptureFixture[str]) -> None:
    from noetl.k8s._blobs import put_blob
    from noetl.k8s._client import KubeClient

    create_execution(kube, ns, "big")
    owner = get(kube, ns, res.EXECUTIONS, "big")
    result = [{"i": i, "text": f"row {i} " + "x" * 40} for i in range(3000)]  # ~180 KB: above the inline limit

    async def store() -> Obj:
        async with KubeClient.from_env(os.environ["KUBECONFIG"]) as client:
            return await put_blob(client, ns, "big-result", result, owner=owner, kind_label="result")

    ref = asyncio.run(store())
    set_status(kube, ns, "big", {"phase": "Succeeded", "progress": "2/2", "resultRef": ref})
    code, out, err = cli(capsys, "get", "nex/big", "-n", ns, "-o", "json")
    assert code == 0, err
    assert json.loads(out)["status"]["result"] == result
    code, out, _ = cli(capsys, "get", "nex/big", "-n", ns)
    assert json.loads(out.split("result: ", 1)[1]) == result  # the whole result, not a preview


@pytest.mark.k8s
def test_get_missing_objects(ns: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "get", "nex/nope", "-n", ns)
    assert code == 2 and f"Execution 'nope' not found in namespace '{ns}'" in err
    code, _, err = cli(capsys, "get", "pb", "nope", "-n", ns)
    assert code == 2 and "Playbook 'nope' not found" in err
    code, _, err = cli(capsys, "get", "widgets", "x", "-n", ns)
    assert code == 2 and "unknown kind 'widgets'" in err


# -- cancel --------------------------------------------------------------------------------------------
@pytest.mark.k8s
def test_cancel_sets_the_flag(kube: Kube, ns: str, capsys: pytest.CaptureFixture[str]) -> None:
    create_execution(kube, ns, "ex")
    code, out, _ = cli(capsys, "cancel", "ex", "-n", ns)
    assert code == 0 and "cancel requested" in out
    assert get(kube, ns, res.EXECUTIONS, "ex")["spec"]["cancel"] is True


@pytest.mark.k8s
def test_cancel_of_a_finished_execution_changes_nothing(kube: Kube, ns: str,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    create_execution(kube, ns, "done")
    set_status(kube, ns, "done", {"phase": "Succeeded"})
    code, out, _ = cli(capsys, "cancel", "nex/done", "-n", ns)
    assert code == 0 and "already finished (Succeeded)" in out
    assert "cancel" not in get(kube, ns, res.EXECUTIONS, "done")["spec"]
    code, _, err = cli(capsys, "cancel", "nope", "-n", ns)
    assert code == 2 and "Execution 'nope' not found" in err


# -- submit --watch ------------------------------------------------------------------------------------
def start_watch(ns: str, *args: str) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-c", "import sys; from noetl.cli import main; sys.exit(main(sys.argv[1:]))",
           "submit", str(EXAMPLE), "-n", ns, "--watch", *args]
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOETL_")}
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)


def wait_for_stderr(proc: subprocess.Popen[str], text: str, timeout: float = 60) -> list[str]:
    """Lines of the command's stderr up to the first containing ``text`` (kills it on timeout)."""
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    seen: list[str] = []
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            seen.append(line)
            if text in line:
                return seen
    finally:
        timer.cancel()
    raise AssertionError(f"'{text}' never appeared on stderr (exit {proc.poll()}):\n{''.join(seen)}")


def the_execution(kube: Kube, ns: str) -> str:
    found = kube.wait_for(kube.custom.list_namespaced_custom_object, lambda objs: len(objs) == 1,
                          group=res.GROUP, version=res.VERSION, namespace=ns, plural=res.EXECUTIONS,
                          what="the submitted Execution")
    name: str = found[0]["metadata"]["name"]
    return name


@pytest.mark.k8s
def test_watch_follows_to_success(kube: Kube, ns: str) -> None:
    proc = start_watch(ns, "--output", "json")
    try:
        name = the_execution(kube, ns)
        wait_for_stderr(proc, "created; watching")
        set_status(kube, ns, name, {"phase": "Running", "progress": "1/2", "steps": {
            "start": {"status": "succeeded", "runs": 1, "calls": 1}}})
        set_status(kube, ns, name, {"phase": "Succeeded", "progress": "2/2", "duration": "3s", "result": [1, 2, 3],
                                    "steps": {"start": {"status": "succeeded", "runs": 1, "calls": 1},
                                              "greet": {"status": "succeeded", "runs": 1, "calls": 3}}})
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    summary = json.loads(out)
    assert summary == {"execution_id": name, "status": "succeeded", "result": [1, 2, 3], "error": None,
                       "steps": {"start": {"status": "succeeded", "runs": 1, "calls": 1},
                                 "greet": {"status": "succeeded", "runs": 1, "calls": 3}}}


@pytest.mark.k8s
def test_watch_shows_progress_and_fails_with_exit_1(kube: Kube, ns: str) -> None:
    proc = start_watch(ns)
    try:
        name = the_execution(kube, ns)
        wait_for_stderr(proc, "Pending")
        set_status(kube, ns, name, {"phase": "Running", "progress": "1/2", "steps": {
            "start": {"status": "succeeded"}, "fetch": {"status": "running", "items": "2/5"}}})
        lines = wait_for_stderr(proc, "fetch 2/5 items")
        assert f"{name}  Running" in lines[-1] and "1/2 steps" in lines[-1]
        set_status(kube, ns, name, FINISHED_STATUS)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 1, err
    assert out.startswith(f"execution {name}: failed\n")
    assert "error in step 'fetch': HttpError: 503 from http://x" in out


@pytest.mark.k8s
def test_watch_of_a_cancelled_execution_exits_1(kube: Kube, ns: str, capsys: pytest.CaptureFixture[str]) -> None:
    proc = start_watch(ns, "--output", "json")
    try:
        name = the_execution(kube, ns)
        assert cli(capsys, "cancel", name, "-n", ns)[0] == 0
        set_status(kube, ns, name, {"phase": "Cancelled"})
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 1, err
    assert json.loads(out)["status"] == "cancelled"


class _Recorder(io.StringIO):
    """A progress stream that signals when a given text was written."""

    def __init__(self, wanted: str) -> None:
        super().__init__()
        self.wanted, self.seen = wanted, threading.Event()

    def write(self, text: str) -> int:
        n = super().write(text)
        if self.wanted in self.getvalue():
            self.seen.set()
        return n


@pytest.mark.k8s
def test_watch_says_when_nobody_reconciles(kube: Kube, ns: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(k8s_cli, "PENDING_HINT_SECONDS", 1)
    create_execution(kube, ns, "lonely")
    stream = _Recorder("is the NoETL operator running")
    cluster = k8s_cli.connect(kubeconfig=None, namespace=ns)
    outcome: list[Obj] = []
    watcher = threading.Thread(target=lambda: outcome.append(
        k8s_cli.watch_execution(cluster, "lonely", bar=k8s_cli.ProgressBar(stream))))
    watcher.start()
    try:
        assert stream.seen.wait(60), stream.getvalue()
        set_status(kube, ns, "lonely", {"phase": "Succeeded"})
        watcher.join(60)
    finally:
        cluster.close()
    assert outcome and outcome[0]["status"]["phase"] == "Succeeded"
    assert stream.getvalue().count("is the NoETL operator running") == 1
