"""Operator throughput in `worker` mode on the test control plane (issue 4, "Speed").

Starts its own control plane (tools/testenv: etcd + kube-apiserver + kube-controller-manager + the
local pod runner), applies crds/ and the test RBAC, then in the same run measures:

(a) raw: how fast this apiserver accepts status patches on one Execution (JSON merge patches and
    RFC 6902 JSON patches, each adding one `status.inbox` key, as a worker does), sequentially and
    with several concurrent writers, through the same client the workers use (`KubeClient`);
(b) a parallel loop of N items (default 1,000, max_in_flight 64) run by the real operator
    (subprocess) and a worker Deployment (pods run by the pod runner): time to first dispatch, wall
    time, items/s, the ratio items/s / raw patches/s (target >= 0.5), and apiserver writes per item
    from `apiserver_request_total` (target <= 2); once with `noop`, once with `python`.

Prints what it measured and asserts no figure; exits 1 only when a run did not do the work (the
Execution did not succeed with N calls). Everything it started is stopped (`down --purge`), also on
failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

from _common import REPO_ROOT, fail, machine, median, ours_command, ours_version, tail

sys.path.insert(0, str(REPO_ROOT))  # tools.testenv and the working tree's noetl (imported in main)

WRITE_VERBS = ("PATCH", "POST", "PUT", "DELETE")
READ_VERBS = ("GET", "LIST", "WATCH")
RBAC = REPO_ROOT / "tests" / "integration" / "controller" / "rbac.yaml"
TERMINAL = ("Succeeded", "Failed", "Cancelled")


# -- apiserver /metrics ---------------------------------------------------------------------------
_LINE = re.compile(r'^apiserver_request_total\{([^}]*)\}\s+([0-9.eE+-]+)$')
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def write_counts(cp: Any, verbs: tuple[str, ...] = WRITE_VERBS) -> Counter[tuple[str, str, str, str]]:
    """apiserver_request_total for ``verbs``, keyed by (verb, resource, subresource, code)."""
    ctx = ssl.create_default_context(cafile=str(cp.ca_file))
    req = urllib.request.Request(cp.server + "/metrics", headers={"Authorization": f"Bearer {cp.admin_token}"})
    with urllib.request.urlopen(req, context=ctx, timeout=30) as resp:
        text = resp.read().decode()
    counts: Counter[tuple[str, str, str, str]] = Counter()
    for line in text.splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        labels = dict(_LABEL.findall(m.group(1)))
        if labels.get("verb") in verbs:
            key = (labels["verb"], labels.get("resource", ""), labels.get("subresource", ""), labels.get("code", ""))
            counts[key] += int(float(m.group(2)))
    return counts


def delta(after: Counter[Any], before: Counter[Any]) -> Counter[Any]:
    return Counter({k: after[k] - before.get(k, 0) for k in after if after[k] - before.get(k, 0) > 0})


def print_breakdown(d: Counter[tuple[str, str, str, str]], indent: str = "    ") -> None:
    for (verb, res, sub, code), n in sorted(d.items(), key=lambda kv: -kv[1]):
        print(f"{indent}{n:6d}  {verb:6s} {res}{'/' + sub if sub else ''}  ({code})")


# -- (a) raw patch rate ---------------------------------------------------------------------------
def execution_body(name: str, playbook: str = "none") -> dict[str, Any]:
    return {"apiVersion": "noetl.io/v2", "kind": "Execution", "metadata": {"name": name},
            "spec": {"playbookRef": {"name": playbook}, "executor": "worker"}}


def event(key: str, i: int) -> dict[str, Any]:
    """About the size of a worker's `call.done` for a noop item."""
    return {"name": "call.done", "command": key, "attempt": 1, "worker": "noetl-worker-0123456789-abcde",
            "response": {"x": i}, "at": "2026-12-03T00:00:00.000000Z"}


async def raw_rates(cp: Any, kube: Any, ns: str, n: int, writers: int) -> dict[str, float]:
    """Status patches/s on one fresh Execution per line; keys are ``kind/shape/writers``.

    ``grow``: every patch adds a new ``status.inbox`` key (the object grows by ~200 bytes per patch,
    as when nobody removes inbox entries). ``fixed``: every patch rewrites one of 16 keys (the object
    keeps its size, as when the operator drains the inbox as fast as it fills). ``big``: as ``fixed``
    on an object that also carries a 96 KiB ``status.state`` string, the size of an Execution whose
    engine state is inline at its limit (what the loop below runs on).
    """
    from noetl.k8s._client import KubeClient, json_pointer

    rates: dict[str, float] = {}
    async with KubeClient.from_env(str(cp.kubeconfig), pool_size=max(16, writers)) as kc:
        for kind, shape in (("merge", "grow"), ("json", "grow"), ("merge", "fixed"), ("merge", "big")):
            for w in (1, writers):
                name = f"raw-{kind}-{shape}-{w}"
                kube.custom.create_namespaced_custom_object("noetl.io", "v2", ns, "executions", execution_body(name))
                seed: dict[str, Any] = {"inbox": {"seed": {"name": "seed"}}}
                if shape == "big":
                    seed["state"] = {"seq": 0, "encoding": "zlib+base64+json", "data": "A" * (96 * 1024)}
                await kc.patch_status("executions", ns, name, {"status": seed})
                done: list[float] = []

                async def writer(wid: int, count: int, name: str = name, kind: str = kind, shape: str = shape,
                                 done: list[float] = done) -> None:
                    for j in range(count):
                        key = f"w{wid}-{j:05d}" if shape == "grow" else f"k{(wid * 7 + j) % 16:02d}"
                        if kind == "merge":
                            await kc.patch_status("executions", ns, name, {"status": {"inbox": {key: event(key, j)}}})
                        else:
                            await kc.json_patch_status("executions", ns, name, [
                                {"op": "add", "path": json_pointer("status", "inbox", key), "value": event(key, j)}])
                        done.append(time.perf_counter())

                per = [n // w + (1 if i < n % w else 0) for i in range(w)]
                started = time.perf_counter()
                await asyncio.gather(*(writer(i, c) for i, c in enumerate(per)))
                secs = time.perf_counter() - started
                got = kube.custom.get_namespaced_custom_object("noetl.io", "v2", ns, "executions", name)
                keys = len((got.get("status") or {}).get("inbox") or {}) - 1
                expected = n if shape == "grow" else len({(i * 7 + j) % 16 for i, c in enumerate(per) for j in range(c)})
                if keys != expected or len(done) != n:
                    fail(f"raw {kind} {shape} patches with {w} writer(s): {keys} inbox keys, expected {expected}")
                rates[f"{kind}/{shape}/{w}"] = n / secs
                fifth = max(1, n // 5)
                first = fifth / (done[fifth - 1] - started)
                last = fifth / (done[-1] - done[-fifth - 1]) if n > fifth else float("nan")
                print(f"  {kind:5s} patch, {shape:5s}, {w} writer{'s' if w > 1 else ' '}: {n} in {secs:6.2f} s = "
                      f"{n / secs:6.1f}/s ({secs / n * 1000:6.1f} ms each; first fifth {first:6.1f}/s, "
                      f"last fifth {last:6.1f}/s; final object {len(json.dumps(got)) // 1024} KiB)")
    return rates


# -- (b) loop through the operator ----------------------------------------------------------------
def playbook_text(name: str, items: int, max_in_flight: int, tool: str) -> str:
    if tool == "noop":
        tool_lines = ["    tool:", "      kind: noop"]
    else:
        tool_lines = ["    tool:", "      kind: python", '      code: "def main(i): return i"']
    return "\n".join([
        "apiVersion: noetl.io/v2", "kind: Playbook", "metadata:",
        f"  name: {name}", f"  path: bench/{name}",
        "workload:", f"  items: {json.dumps(list(range(items)))}",
        "workflow:",
        "  - step: start",
        "    loop:",
        '      in: "{{ workload.items }}"',
        "      iterator: it",
        "      mode: parallel",
        f"      max_in_flight: {max_in_flight}",
        *tool_lines,
        "    args:", '      ' + ('x' if tool == "noop" else 'i') + ': "{{ it }}"',
    ]) + "\n"


def apply_playbook(kube: Any, ns: str, text: str) -> str:
    from noetl.dsl import parse_playbook, to_manifest
    from noetl.dsl._yaml import dump_all

    manifest = to_manifest(parse_playbook(text, file="bench.yaml"))
    kube.apply(dump_all([manifest]), namespace=ns)
    return str(manifest["metadata"]["name"])


def worker_deployment(replicas: int, concurrency: int) -> str:
    fields = [("POD_NAME", "metadata.name"), ("POD_NAMESPACE", "metadata.namespace"),
              ("POD_UID", "metadata.uid"), ("NOETL_NAMESPACE", "metadata.namespace")]
    return json.dumps({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "noetl-worker"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "noetl-worker"}},
                 "template": {"metadata": {"labels": {"app": "noetl-worker"}},
                              "spec": {"serviceAccountName": "noetl-worker", "containers": [{
                                  "name": "worker", "image": "noetl:dev",
                                  "command": ["noetl", "worker", "--concurrency", str(concurrency)],
                                  "env": [{"name": k, "valueFrom": {"fieldRef": {"fieldPath": v}}} for k, v in fields],
                              }]}}}})


def run_loop(cp: Any, kube: Any, ns: str, tool: str, items: int, max_in_flight: int, timeout: float,
             op_log: Path, operator_pid: int) -> dict[str, Any]:
    playbook = apply_playbook(kube, ns, playbook_text(f"bench-{tool}-{items}", items, max_in_flight, tool))
    name = f"bench-{tool}"
    seen: dict[str, Any] = {"events": 0, "rvs": set(), "first": None, "end": None, "max_cmds": 0}
    before = write_counts(cp)
    reads_before = write_counts(cp, READ_VERBS)
    cpu_before = cpu_by_part(cp, Path(cp.dir), operator_pid)
    op_lines_before = len(op_log.read_text(errors="replace").splitlines())
    t0 = time.perf_counter()
    kube.custom.create_namespaced_custom_object("noetl.io", "v2", ns, "executions", execution_body(name, playbook))

    def check(objs: list[dict[str, Any]]) -> bool:
        now = time.perf_counter()
        for o in objs:
            if o["metadata"]["name"] != name:
                continue
            rv = o["metadata"]["resourceVersion"]
            if rv not in seen["rvs"]:
                seen["rvs"].add(rv)
                seen["events"] += 1
            status = o.get("status") or {}
            cmds = status.get("commands") or {}
            seen["max_cmds"] = max(seen["max_cmds"], len(cmds))
            seen["max_bytes"] = max(seen.get("max_bytes", 0), len(json.dumps(o)))
            if cmds and seen["first"] is None:
                seen["first"] = now
            if status.get("phase") in TERMINAL:
                seen["end"] = now
                seen["final"] = o
                return True
        return False

    try:
        kube.wait_for(kube.custom.list_namespaced_custom_object, check, timeout=timeout,
                      what=f"execution {name}", group="noetl.io", version="v2", namespace=ns, plural="executions")
    except TimeoutError as exc:
        fail(f"{tool} loop did not finish in {timeout:.0f} s", tail(str(exc), 40) + "\n--- operator log ---\n"
             + tail(op_log.read_text(errors="replace"), 40))
    wall = seen["end"] - t0
    after = write_counts(cp)
    reads = delta(write_counts(cp, READ_VERBS), reads_before)
    cpu_after = cpu_by_part(cp, Path(cp.dir), operator_pid)
    cpu = {k: cpu_after[k] - cpu_before.get(k, 0.0) for k in cpu_after}
    final = seen["final"]
    status = final.get("status") or {}
    step = (status.get("steps") or {}).get("start") or {}
    if status.get("phase") != "Succeeded" or step.get("calls") != items:
        fail(f"{tool} loop: phase {status.get('phase')}, start.calls {step.get('calls')} (expected Succeeded, {items})",
             json.dumps({k: status.get(k) for k in ("phase", "error", "steps", "progress")}, indent=1)[:3000])
    d = delta(after, before)
    op_lines = op_log.read_text(errors="replace").splitlines()[op_lines_before:]
    return {"tool": tool, "wall": wall, "first": (seen["first"] - t0) if seen["first"] else float("nan"),
            "versions": seen["events"], "max_cmds": seen["max_cmds"], "max_bytes": seen.get("max_bytes", 0), "writes": sum(d.values()), "delta": d, "cpu": cpu, "reads": reads,
            "duration": status.get("duration"), "op_lines": len(op_lines),
            "rounds": sum(1 for ln in op_lines if "on_execution' succeeded" in ln),
            "op_warnings": [ln for ln in op_lines if '"WARNING"' in ln or '"ERROR"' in ln or "Traceback" in ln]}


def _tree_cpu(pid: int, exclude: frozenset[int] = frozenset()) -> float:
    """user + system CPU seconds of a process, its reaped children, and its live descendants."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    todo = [pid]
    while todo:
        p = todo.pop()
        if p in exclude:
            continue
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(") ", 1)[1].split()
        except (FileNotFoundError, IndexError, ProcessLookupError):
            continue
        total += sum(int(x) for x in fields[11:15]) / tick  # utime stime cutime cstime
        try:
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return total


def cpu_by_part(cp: Any, directory: Path, operator_pid: int | None) -> dict[str, float]:
    """CPU seconds so far of each part: operator, workers (pod processes), apiserver, etcd, the rest."""
    parts: dict[str, float] = {}
    if operator_pid:
        parts["operator"] = _tree_cpu(operator_pid)
    pods: set[int] = set()
    for pidfile in (directory / "pods").glob("**/*.pid") if (directory / "pods").exists() else []:
        try:
            pods.add(int(pidfile.read_text().strip()))
        except (ValueError, OSError):
            pass
    parts["workers"] = sum(_tree_cpu(pid) for pid in pods)
    for name in ("kube-apiserver", "etcd", "kube-controller-manager", "pod-runner"):
        if name in cp.pids:  # the pod runner's own CPU, without the pod processes it started
            parts[name] = _tree_cpu(cp.pids[name], exclude=frozenset(pods))
    parts["bench (this script)"] = sum(os.times()[:2])
    return parts


def load_text() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--items", type=int, default=1000, help="loop items (default 1000)")
    p.add_argument("--max-in-flight", type=int, default=64, help="loop max_in_flight (default 64)")
    p.add_argument("--replicas", type=int, default=1, help="worker Deployment replicas (default 1)")
    p.add_argument("--concurrency", type=int, default=64, help="noetl worker --concurrency (default 64)")
    p.add_argument("--patches", type=int, default=300, help="raw status patches per measurement (default 300)")
    p.add_argument("--writers", type=int, default=4, help="concurrent raw writers (default 4)")
    p.add_argument("--tools", default="noop,python", help="loops to run, comma-separated (default noop,python)")
    p.add_argument("--timeout", type=float, default=900, help="seconds to wait for one loop (default 900)")
    p.add_argument("--dir", type=Path, default=None, help="control plane directory (default: a temp dir)")
    p.add_argument("--keep-logs", type=Path, default=None, help="copy operator/worker/control-plane logs here")
    opts = p.parse_args()

    from tools.testenv import ensure_built, start, start_pod_runner, stop
    from tools.testenv.kube import Kube

    prefix, env = ours_command(None)
    print(f"noetl:   {ours_version(prefix, env)}")
    try:
        import kopf
        import kubernetes
        print(f"kopf {getattr(kopf, '__version__', '?')}, kubernetes client {kubernetes.__version__}")
    except ImportError as exc:
        fail(f"missing dependency: {exc}")
    built = ensure_built()
    print("control plane: " + ", ".join(f"{k} {v}" for k, v in built.versions.items()))
    print(f"machine: {machine()}")
    print(f"loop:    {opts.items} items, parallel, max_in_flight {opts.max_in_flight}; worker Deployment "
          f"{opts.replicas} replica(s) x --concurrency {opts.concurrency}")

    directory = (opts.dir or Path(tempfile.mkdtemp(prefix="noetl-bench-cp-"))).resolve()
    operator: subprocess.Popen[bytes] | None = None
    kube = None
    results: list[dict[str, Any]] = []
    try:
        started = time.perf_counter()
        cp = start(directory, built.bin_dir)
        start_pod_runner(cp)
        print(f"control plane up in {time.perf_counter() - started:.1f} s: {cp.server} (dir {directory})")
        os.environ["KUBECONFIG"] = str(cp.kubeconfig)
        os.environ["PATH"] = os.pathsep.join((cp.bin_dir, os.environ.get("PATH", "")))
        kube = Kube(cp)
        from kubernetes import client

        kube.kubectl("apply", "-f", str(REPO_ROOT / "crds"))
        names = {"playbooks.noetl.io", "executions.noetl.io"}
        kube.wait_for(client.ApiextensionsV1Api(kube.api).list_custom_resource_definition,
                      lambda crds: names <= {c["metadata"]["name"] for c in crds if any(
                          x.get("type") == "Established" and x.get("status") == "True"
                          for x in (c.get("status") or {}).get("conditions") or [])},
                      what="CRDs Established")
        ns, raw_ns = "bench", "bench-raw"
        for n in (ns, raw_ns):
            kube.core.create_namespace({"metadata": {"name": n}})
        kube.apply(RBAC.read_text(), namespace=ns)

        # (a) raw
        print(f"\n(a) raw status patches on one Execution ({opts.patches} per line; {load_text()})")
        before = write_counts(cp)
        rates = asyncio.run(raw_rates(cp, kube, raw_ns, opts.patches, opts.writers))
        raw_writes = sum(delta(write_counts(cp), before).values())
        print(f"  apiserver writes counted during (a): {raw_writes} "
              f"(expected about {8 * (opts.patches + 2)}: patches + creates + seeds + background)")

        # (b) operator + workers
        op_log = directory / "logs" / "operator.log"
        op_env = {**os.environ, "NOETL_LOG_FORMAT": "json",
                  "PYTHONPATH": os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)}
        with open(op_log, "ab") as log:
            operator = subprocess.Popen([sys.executable, "-m", "noetl.cli", "operator", "--namespace", ns,
                                         "--worker-namespace", ns, "--executor", "worker", "--image", "noetl:dev"],
                                        stdout=log, stderr=subprocess.STDOUT, env=op_env, cwd=REPO_ROOT,
                                        start_new_session=True)
        kube.apply(worker_deployment(opts.replicas, opts.concurrency), namespace=ns)
        kube.wait_for(kube.core.list_namespaced_pod,
                      lambda pods: sum(1 for q in pods if (q.get("status") or {}).get("phase") == "Running")
                      >= opts.replicas, timeout=180, what="worker pods Running", namespace=ns)
        kube.wait_for(client.CoordinationV1Api(kube.api).list_namespaced_lease,
                      lambda leases: len(leases) >= opts.replicas, timeout=180, what="worker Leases",
                      namespace=ns, label_selector="noetl.io/worker=true")
        if operator.poll() is not None:
            fail("the operator exited", tail(op_log.read_text(errors="replace")))
        # Background writes (Leases renewals, controllers) over a quiet interval, to subtract by eye.
        time.sleep(1)
        q0, qt, c0 = write_counts(cp), time.perf_counter(), cpu_by_part(cp, directory, operator.pid)
        time.sleep(5)
        quiet = delta(write_counts(cp), q0)
        c1, secs = cpu_by_part(cp, directory, operator.pid), time.perf_counter() - qt
        quiet_rate = sum(quiet.values()) / secs
        print(f"\nidle apiserver writes with operator + workers running: {quiet_rate:.1f}/s")
        print_breakdown(quiet)
        print("idle CPU use (CPU-s per s): " + ", ".join(f"{k} {(c1[k] - c0.get(k, 0.0)) / secs:.2f}" for k in c1))

        for tool in [t.strip() for t in opts.tools.split(",") if t.strip()]:
            print(f"\n(b) {opts.items}-item loop of `{tool}` through the operator ({load_text()})")
            r = run_loop(cp, kube, ns, tool, opts.items, opts.max_in_flight, opts.timeout, op_log, operator.pid)
            results.append(r)
            rate = opts.items / r["wall"]
            r["rate"] = rate
            print(f"  time to first dispatch (create -> status.commands non-empty): {r['first']:.2f} s")
            print(f"  wall time (create -> phase Succeeded seen by a watch): {r['wall']:.2f} s "
                  f"(status.duration {r['duration']})")
            print(f"  items/s: {rate:.1f}")
            for key, raw in rates.items():
                print(f"  ratio items/s / raw {key} patches/s ({raw:.1f}): {rate / raw:.2f}")
            print(f"  apiserver writes: {r['writes']} = {r['writes'] / opts.items:.2f} per item "
                  f"(includes ~{quiet_rate * r['wall']:.0f} background writes at the idle rate)")
            print_breakdown(r["delta"])
            print(f"  Execution versions seen by the watch: {r['versions']}; most commands outstanding at once: "
                  f"{r['max_cmds']}; largest Execution object {r['max_bytes'] // 1024} KiB")
            print(f"  operator: {r['rounds']} Execution watch events handled (kopf on_execution calls), "
                  f"{r['op_lines']} log lines, {len(r['op_warnings'])} warnings/errors")
            reads = Counter({k: v for k, v in r["reads"].items() if k[1] in ("executions", "configmaps", "playbooks")})
            print(f"  apiserver reads of executions/configmaps/playbooks (GET, LIST, WATCH requests): {sum(reads.values())}")
            print_breakdown(reads)
            print(f"  CPU seconds during the loop ({r['wall']:.2f} s wall, {os.cpu_count()} cores = {(os.cpu_count() or 1) * r['wall']:.2f} CPU-s"
                  f" available): " + ", ".join(f"{k} {v:.2f}" for k, v in r["cpu"].items()))
            for line in r["op_warnings"][:5]:
                print("    " + line[:300])

        print(f"\nsummary ({load_text()}):")
        best = max(rates.values())
        print("  raw patches/s: " + ", ".join(f"{k} {v:.1f}" for k, v in rates.items()))
        for r in results:
            writes_item = r["writes"] / opts.items
            print(f"  {r['tool']:6s}: first dispatch {r['first']:.2f} s, wall {r['wall']:.1f} s, {r['rate']:.1f} items/s, "
                  f"ratio to merge/grow/1 {r['rate'] / rates['merge/grow/1']:.2f} (to best raw {r['rate'] / best:.2f}; target >= 0.5), "
                  f"writes/item {writes_item:.2f} (target <= 2)")
        if len(results) > 1:
            print(f"  median items/s over the loops: {median([r['rate'] for r in results]):.1f}")
    finally:
        if operator is not None and operator.poll() is None:
            operator.terminate()
            try:
                operator.wait(timeout=20)
            except subprocess.TimeoutExpired:
                operator.kill()
                operator.wait(timeout=10)
        if kube is not None:
            kube.close()
        if opts.keep_logs and (directory / "logs").exists():
            import shutil

            shutil.copytree(directory / "logs", opts.keep_logs / "logs", dirs_exist_ok=True)
            if (directory / "pods").exists():
                shutil.copytree(directory / "pods", opts.keep_logs / "pods", dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns("serviceaccount", "*.pid"))
        stopped = stop(directory, purge=True)
        print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
