"""Local pod runner: the test control plane's stand-in for a kubelet (and scheduler).

There is no container runtime here, so pods of the project's image run as local processes:

* registers a Node (``noetl-local``) and binds pending pods whose every container uses the
  project image (``noetl:dev``, or any image starting with a prefix, default ``noetl``);
  pods of other images stay Pending with a ``PodScheduled=False`` condition that says why;
* runs each container's ``command`` + ``args`` (``$(VAR)`` expanded like a kubelet) as a
  process found on PATH (the image "entrypoint" is ``noetl`` when ``command`` is absent), with
  ``env``/``envFrom`` resolved (``value``, ``secretKeyRef``, ``configMapKeyRef``, ``fieldRef``),
  init containers first, restart policies honoured;
* gives each pod a ServiceAccount token from the TokenRequest API (bound to the pod, so it dies
  with it) plus ``ca.crt`` and ``namespace``, and the in-cluster variables
  (``KUBERNETES_SERVICE_HOST=127.0.0.1``, ``KUBERNETES_SERVICE_PORT``).  The files are made to
  appear at the fixed path ``/var/run/secrets/kubernetes.io/serviceaccount`` by running the
  process in a private mount namespace with a bind mount (``unshare``; needs root), so
  ``load_incluster_config()``, kopf and Go clients work unchanged.  Where ``unshare`` is not
  permitted, the directory is only announced in ``NOETL_K8S_SERVICEACCOUNT_DIR``;
* reports phase, conditions and container states/exit codes through ``pods/status``;
* on pod deletion kills the process group (SIGTERM, then SIGKILL after the grace period, capped)
  and completes the deletion as a kubelet would (grace period 0).

Container output goes to ``<dir>/pods/<namespace>/<pod>/<container>.log``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
from base64 import b64decode
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

SA_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
SA_DIR_ENV = "NOETL_K8S_SERVICEACCOUNT_DIR"
#: Host variables a pod process inherits (a kubelet passes none, but the processes need to
#: find ``sh``, ``python`` and the installed ``noetl`` script).
INHERITED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")
UNSUPPORTED_REASON = "NoetlTestenvImageNotRunnable"
MAX_GRACE = 10.0
TOKEN_TTL = 3600
Obj = dict[str, Any]


def now() -> str:
    """RFC 3339 timestamp as the API wants it."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def log(msg: str) -> None:
    print(f"{datetime.now(timezone.utc).strftime('%H:%M:%S.%f')[:-3]} [pod-runner] {msg}", flush=True)


class ConfigError(Exception):
    """A container cannot start yet (missing Secret/ConfigMap/key): CreateContainerConfigError."""


@dataclass
class RunnerConfig:
    """Settings of the runner; defaults match the project's image."""

    dir: Path
    kubeconfig: Path
    apiserver_port: int
    ca_file: Path
    node_name: str = "noetl-local"
    image: str = "noetl:dev"
    image_prefix: str = "noetl"
    entrypoint: tuple[str, ...] = ("noetl",)

    def runs(self, image: str) -> bool:
        """Whether an image is one the runner executes locally."""
        return image == self.image or bool(self.image_prefix and image.startswith(self.image_prefix))


_VAR_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.\-]*)\)")


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes ``$(VAR)`` expansion: known names replaced, unknown kept, ``$$`` -> ``$``."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))

    return _VAR_REF.sub(sub, text)


class PodEnv:
    """Resolves a pod's environment against the API (Secrets/ConfigMaps are read per start)."""

    def __init__(self, core: Any, cfg: RunnerConfig, pod: Obj) -> None:
        self.core, self.cfg, self.pod = core, cfg, pod
        self.ns = pod["metadata"]["namespace"]

    def _read(self, kind: str, name: str, key: str | None, optional: bool) -> dict[str, str] | None:
        try:
            read = self.core.read_namespaced_secret if kind == "Secret" else self.core.read_namespaced_config_map
            data = json.loads(read(name, self.ns, _preload_content=False).data)
        except ApiException as exc:
            if exc.status == 404 and optional:
                return None
            raise ConfigError(f'{kind.lower()} "{name}" not found') from exc
        if kind == "Secret":
            values = {k: b64decode(v).decode() for k, v in (data.get("data") or {}).items()}
            values.update(data.get("stringData") or {})
        else:
            values = dict(data.get("data") or {})
            values.update({k: b64decode(v).decode() for k, v in (data.get("binaryData") or {}).items()})
        if key is not None and key not in values and not optional:
            raise ConfigError(f'couldn\'t find key {key} in {kind} {self.ns}/{name}')
        return values

    def field(self, path: str) -> str:
        """``fieldRef`` values the downward API offers for env vars."""
        meta, spec = self.pod["metadata"], self.pod["spec"]
        m = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
        if m:
            return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
        simple: dict[str, str] = {
            "metadata.name": meta["name"],
            "metadata.namespace": meta["namespace"],
            "metadata.uid": meta.get("uid", ""),
            "spec.nodeName": self.cfg.node_name,
            "spec.serviceAccountName": spec.get("serviceAccountName", "default"),
            "status.hostIP": "127.0.0.1",
            "status.hostIPs": "127.0.0.1",
            "status.podIP": "127.0.0.1",
            "status.podIPs": "127.0.0.1",
        }
        if path not in simple:
            raise ConfigError(f"unsupported fieldRef {path}")
        return simple[path]

    def resolve(self, container: Obj, sa_dir: Path | None) -> dict[str, str]:
        """The container's environment: host basics, service variables, envFrom, then env."""
        env = {k: os.environ[k] for k in INHERITED_ENV if k in os.environ}
        port = str(self.cfg.apiserver_port)
        env.update({
            "KUBERNETES_SERVICE_HOST": "127.0.0.1",
            "KUBERNETES_SERVICE_PORT": port,
            "KUBERNETES_SERVICE_PORT_HTTPS": port,
            "KUBERNETES_PORT": f"tcp://127.0.0.1:{port}",
            "KUBERNETES_PORT_443_TCP": f"tcp://127.0.0.1:{port}",
            "KUBERNETES_PORT_443_TCP_PROTO": "tcp",
            "KUBERNETES_PORT_443_TCP_PORT": port,
            "KUBERNETES_PORT_443_TCP_ADDR": "127.0.0.1",
            "HOSTNAME": self.pod["metadata"]["name"],
        })
        if sa_dir is not None:
            env[SA_DIR_ENV] = str(sa_dir)
        for source in container.get("envFrom") or []:
            prefix = source.get("prefix", "")
            for kind, ref in (("ConfigMap", source.get("configMapRef")), ("Secret", source.get("secretRef"))):
                if ref:
                    values = self._read(kind, ref["name"], None, bool(ref.get("optional")))
                    env.update({prefix + k: v for k, v in (values or {}).items()})
        for var in container.get("env") or []:
            name, source = var["name"], var.get("valueFrom")
            if source is None:
                env[name] = expand(var.get("value", ""), env)
            elif "fieldRef" in source:
                env[name] = self.field(source["fieldRef"]["fieldPath"])
            elif "secretKeyRef" in source or "configMapKeyRef" in source:
                kind = "Secret" if "secretKeyRef" in source else "ConfigMap"
                ref = source["secretKeyRef" if kind == "Secret" else "configMapKeyRef"]
                values = self._read(kind, ref["name"], ref["key"], bool(ref.get("optional")))
                if values is not None and ref["key"] in values:
                    env[name] = values[ref["key"]]
            elif "resourceFieldRef" in source:
                res = source["resourceFieldRef"]["resource"]  # e.g. limits.cpu
                kind, _, what = res.partition(".")
                env[name] = str(((container.get("resources") or {}).get(kind) or {}).get(what, "0"))
            else:
                raise ConfigError(f"unsupported valueFrom for {name}: {sorted(source)}")
        return env


@dataclass
class ContainerState:
    """What the runner knows about one container, turned into a ContainerStatus."""

    spec: Obj
    init: bool = False
    restart_count: int = 0
    state: Obj = field(default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}})
    last_state: Obj = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    exit_code: int | None = None

    def status(self) -> Obj:
        running = "running" in self.state
        return {
            "name": self.spec["name"],
            "image": self.spec.get("image", ""),
            "imageID": f"noetl-testenv://{self.spec.get('image', '')}",
            "containerID": f"noetl-testenv://{self.proc.pid}" if self.proc else None,
            "ready": running and not self.init,
            "started": running,
            "restartCount": self.restart_count,
            "state": self.state,
            "lastState": self.last_state,
        }


class PodWorker(threading.Thread):
    """Runs one bound pod to completion (or until it is deleted) and reports its status."""

    def __init__(self, runner: PodRunner, pod: Obj) -> None:
        meta = pod["metadata"]
        super().__init__(name=f"pod-{meta['namespace']}/{meta['name']}", daemon=True)
        self.runner, self.pod = runner, pod
        self.ns, self.name, self.uid = meta["namespace"], meta["name"], meta["uid"]
        spec = pod["spec"]
        self.policy: str = spec.get("restartPolicy", "Always")
        self.inits = [ContainerState(c, init=True) for c in spec.get("initContainers") or []]
        self.mains = [ContainerState(c) for c in spec.get("containers") or []]
        self.dir = runner.cfg.dir / "pods" / self.ns / self.name
        self.stop_event = threading.Event()
        self.delete_after_stop = False
        self.grace = float(min(spec.get("terminationGracePeriodSeconds", 30) or 0, MAX_GRACE))
        self.status_lock = threading.Lock()
        self.phase = "Pending"
        self.initialized = not self.inits
        self.start_time = now()
        self.config_error: str | None = None
        self.envs: dict[str, dict[str, str]] = {}
        self.sa_dir: Path | None = None
        self.token_time = 0.0

    # -- API side ---------------------------------------------------------------------------
    def report(self) -> None:
        """Patch the pod's status from what is known now (serialised: one writer at a time)."""
        if self.stop_event.is_set():
            return
        with self.status_lock:
            body = {"status": self._status()}
            try:
                self.runner.core.patch_namespaced_pod_status(self.name, self.ns, body, _preload_content=False)
            except ApiException as exc:
                if exc.status != 404:
                    log(f"{self.ns}/{self.name}: status patch failed: {exc.status} {exc.body}")

    def _status(self) -> Obj:
        running = [c for c in self.mains if "running" in c.state]
        all_ready = bool(self.mains) and len(running) == len(self.mains) and self.phase == "Running"
        terminal = self.phase in ("Succeeded", "Failed")
        reason = {"Succeeded": "PodCompleted", "Failed": "PodFailed"}.get(self.phase)

        def cond(kind: str, ok: bool, why: str | None = None, msg: str | None = None) -> Obj:
            c: Obj = {"type": kind, "status": "True" if ok else "False", "lastTransitionTime": now()}
            if why:
                c["reason"] = why
            if msg:
                c["message"] = msg
            return c

        not_ready = reason or ("ContainersNotReady" if not all_ready else None)
        waiting = [c.spec["name"] for c in self.mains if "running" not in c.state]
        msg = f"containers with unready status: [{' '.join(waiting)}]" if waiting and not terminal else None
        status: Obj = {
            "phase": self.phase,
            "hostIP": "127.0.0.1",
            "hostIPs": [{"ip": "127.0.0.1"}],
            "podIP": "127.0.0.1",
            "podIPs": [{"ip": "127.0.0.1"}],
            "startTime": self.start_time,
            "conditions": [
                cond("PodReadyToStartContainers", not terminal),
                cond("Initialized", self.initialized, None if self.initialized else "ContainersNotInitialized"),
                cond("Ready", all_ready, None if all_ready else not_ready, msg),
                cond("ContainersReady", all_ready, None if all_ready else not_ready, msg),
                cond("PodScheduled", True),
            ],
            "containerStatuses": [c.status() for c in self.mains],
        }
        if self.inits:
            status["initContainerStatuses"] = [c.status() for c in self.inits]
        if self.phase == "Failed":
            status["reason"] = "Error"
        return status

    def _finalize_delete(self) -> None:
        """Complete a graceful deletion the way a kubelet does: delete with grace period 0."""
        try:
            # gracePeriodSeconds must be in the body: with a body, the query parameters are ignored.
            self.runner.core.delete_namespaced_pod(
                self.name, self.ns, body={"gracePeriodSeconds": 0, "preconditions": {"uid": self.uid}},
                _preload_content=False,
            )
            log(f"{self.ns}/{self.name}: deletion completed")
        except ApiException as exc:
            if exc.status not in (404, 409):
                log(f"{self.ns}/{self.name}: final delete failed: {exc.status} {exc.body}")

    def _prepare(self) -> None:
        """Resolve every container's environment and write the ServiceAccount files."""
        env = PodEnv(self.runner.core, self.runner.cfg, self.pod)
        spec = self.pod["spec"]
        if spec.get("automountServiceAccountToken", True):
            self.sa_dir = self.dir / "serviceaccount"
            self._write_token()
        for c in self.inits + self.mains:
            self.envs[c.spec["name"]] = env.resolve(c.spec, self.sa_dir)

    def _write_token(self) -> None:
        """TokenRequest for the pod's ServiceAccount, bound to the pod (dies with it)."""
        assert self.sa_dir is not None
        sa = self.pod["spec"].get("serviceAccountName") or "default"
        body = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {
                "expirationSeconds": TOKEN_TTL,
                "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": self.name, "uid": self.uid},
            },
        }
        try:
            resp = self.runner.core.create_namespaced_service_account_token(sa, self.ns, body, _preload_content=False)
        except ApiException as exc:
            raise ConfigError(f"TokenRequest for serviceaccount {self.ns}/{sa} failed: {exc.status} {exc.reason}") from exc
        token = json.loads(resp.data)["status"]["token"]
        self.sa_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.sa_dir / "token.tmp"
        tmp.write_text(token)
        tmp.replace(self.sa_dir / "token")
        shutil.copyfile(self.runner.cfg.ca_file, self.sa_dir / "ca.crt")
        (self.sa_dir / "namespace").write_text(self.ns)
        self.token_time = time.monotonic()

    # -- processes --------------------------------------------------------------------------
    def _argv(self, c: ContainerState) -> tuple[list[str], list[str]]:
        """(what to execute, what the container asked for): the first may wrap the second in
        ``unshare`` + bind mount of the ServiceAccount files."""
        env = self.envs[c.spec["name"]]
        command = [expand(a, env) for a in c.spec.get("command") or []]
        args = [expand(a, env) for a in c.spec.get("args") or []]
        argv = (command or list(self.runner.cfg.entrypoint)) + args
        exe = argv[0] if "/" in argv[0] else shutil.which(argv[0], path=env.get("PATH"))
        if exe is None:
            raise FileNotFoundError(f'executable "{argv[0]}" not found in $PATH')
        argv[0] = exe
        if self.runner.mount_isolation and self.sa_dir is not None:
            script = f'mount --bind "$1" {SA_MOUNT} && shift && exec "$@"'
            return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script,
                    "sa-mount", str(self.sa_dir), *argv], argv
        return argv, argv

    def _run_once(self, c: ContainerState) -> int:
        """Start the container's process, wait for it, record the termination; exit code."""
        name = c.spec["name"]
        try:
            argv, shown = self._argv(c)
        except FileNotFoundError as exc:
            c.state = {"terminated": {"exitCode": 128, "reason": "StartError", "message": str(exc),
                                      "startedAt": now(), "finishedAt": now()}}
            return 128
        workdir = c.spec.get("workingDir") or str(self.dir / "work")
        if not Path(workdir).is_dir():
            workdir = str(self.dir / "work")
        Path(workdir).mkdir(parents=True, exist_ok=True)
        with open(self.dir / f"{name}.log", "ab") as out:
            out.write(f"--- {now()} start {shown} ---\n".encode())
            out.flush()
            c.proc = subprocess.Popen(argv, env=self.envs[name], cwd=workdir, stdin=subprocess.DEVNULL,
                                      stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        if self.stop_event.is_set():  # deleted while starting: _kill may have missed it
            os.killpg(c.proc.pid, signal.SIGKILL)
        pidfile = self.dir / f"{name}.pid"
        pidfile.write_text(str(c.proc.pid))
        started = now()
        c.state = {"running": {"startedAt": started}}
        log(f"{self.ns}/{self.name}/{name}: started pid {c.proc.pid}: {shown}")
        self.report()
        code = c.proc.wait()
        pidfile.unlink(missing_ok=True)
        exit_code = 128 - code if code < 0 else code  # killed by signal N -> 128+N
        term: Obj = {"exitCode": exit_code, "reason": "Completed" if exit_code == 0 else "Error",
                     "startedAt": started, "finishedAt": now(), "containerID": f"noetl-testenv://{c.proc.pid}"}
        if code < 0:
            term["signal"] = -code
        c.state = {"terminated": term}
        c.exit_code = exit_code
        log(f"{self.ns}/{self.name}/{name}: exited {exit_code}")
        return exit_code

    def _run_container(self, c: ContainerState) -> int:
        """Run with the pod's restart policy (init containers never restart on success)."""
        backoff = 1.0
        while True:
            code = self._run_once(c)
            if self.stop_event.is_set():
                return code
            restart = (self.policy == "Always" and not c.init) or (self.policy != "Never" and code != 0)
            if not restart:
                self.report()
                return code
            c.restart_count += 1
            c.last_state, c.state = c.state, {"waiting": {
                "reason": "CrashLoopBackOff",
                "message": f"back-off {backoff:.0f}s restarting failed container={c.spec['name']} pod={self.name}"}}
            self.report()
            if self.stop_event.wait(backoff):
                return code
            backoff = min(backoff * 2, 10.0)

    def run(self) -> None:
        try:
            self._run()
        except Exception:  # noqa: BLE001 - a crash must be visible in the pod and the log
            log(f"{self.ns}/{self.name}: worker crashed:\n{traceback.format_exc()}")
        finally:
            if self.delete_after_stop:
                self._finalize_delete()

    def _run(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        while not self.stop_event.is_set():
            try:
                self._prepare()
                break
            except ConfigError as exc:
                if str(exc) != self.config_error:
                    self.config_error = str(exc)
                    log(f"{self.ns}/{self.name}: CreateContainerConfigError: {exc}")
                    for c in self.inits + self.mains:
                        c.state = {"waiting": {"reason": "CreateContainerConfigError", "message": str(exc)}}
                    self.report()
                self.stop_event.wait(1.0)
        self.phase = "Pending"
        for c in self.inits:
            if self.stop_event.is_set():
                return
            if self._run_container(c) != 0:
                self.phase = "Failed"
                self.report()
                return
        self.initialized = True
        if self.stop_event.is_set():
            return
        self.phase = "Running"
        threads = [threading.Thread(target=self._run_container, args=(c,), daemon=True) for c in self.mains]
        for t in threads:
            t.start()
        self.report()
        while alive := [t for t in threads if t.is_alive()]:
            alive[0].join(5.0)
            if self.sa_dir is not None and time.monotonic() - self.token_time > TOKEN_TTL * 0.6:
                try:
                    self._write_token()
                except ConfigError as exc:
                    log(f"{self.ns}/{self.name}: token refresh failed: {exc}")
        if self.stop_event.is_set():
            return
        self.phase = "Succeeded" if all(c.exit_code == 0 for c in self.mains) else "Failed"
        self.report()

    def stop(self, delete: bool) -> None:
        """Kill the pod's processes (SIGTERM, SIGKILL after the grace period)."""
        self.delete_after_stop = self.delete_after_stop or delete
        if self.stop_event.is_set():
            return
        self.stop_event.set()
        threading.Thread(target=self._kill, name=f"kill-{self.name}", daemon=True).start()

    def _kill(self) -> None:
        procs = [c.proc for c in self.inits + self.mains if c.proc is not None and c.proc.poll() is None]
        terminate(procs, grace=self.grace, kill_wait=5.0)


def terminate(procs: list[subprocess.Popen[bytes]], *, grace: float, kill_wait: float) -> None:
    """SIGTERM each process group, wait up to ``grace``; then SIGKILL what is left, as a kubelet does."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, kill_wait)):
        for p in procs:
            try:
                os.killpg(p.pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and any(p.poll() is None for p in procs):
            time.sleep(0.05)


class PodRunner:
    """Watches all pods, binds the runnable ones to its Node, and runs them."""

    def __init__(self, cfg: RunnerConfig) -> None:
        self.cfg = cfg
        self.api = config.new_client_from_config(config_file=str(cfg.kubeconfig))  # type: ignore[no-untyped-call]
        # Any: the runner sends raw JSON-shaped dicts and reads raw responses
        # (_preload_content=False); the client's signatures are typed for its model classes.
        self.core: Any = client.CoreV1Api(self.api)
        self.workers: dict[str, PodWorker] = {}
        self.mount_isolation = self._probe_mount_isolation()

    def _probe_mount_isolation(self) -> bool:
        """Can a child get a private bind mount over the ServiceAccount path?  (root + unshare)."""
        if shutil.which("unshare") is None:
            return False
        try:
            Path(SA_MOUNT).mkdir(parents=True, exist_ok=True)
        except OSError:
            return False
        probe = self.cfg.dir / "pods" / ".probe"
        probe.mkdir(parents=True, exist_ok=True)
        (probe / "namespace").write_text("probe")
        script = f'mount --bind "$1" {SA_MOUNT} && cat {SA_MOUNT}/namespace'
        proc = subprocess.run(["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script,
                               "probe", str(probe)], capture_output=True, text=True, check=False)
        shutil.rmtree(probe, ignore_errors=True)
        ok = proc.returncode == 0 and proc.stdout == "probe"
        log(f"ServiceAccount files at {SA_MOUNT} via private mount namespaces: "
            f"{'yes' if ok else 'NO, only $' + SA_DIR_ENV + ': ' + proc.stderr.strip()}")
        return ok

    def register_node(self) -> None:
        """Create the Node the pods are bound to and mark it Ready (nothing else heartbeats it)."""
        node = {"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": self.cfg.node_name, "labels": {
                    "kubernetes.io/hostname": self.cfg.node_name, "kubernetes.io/os": "linux",
                    "noetl.dev/testenv": "true"}}}
        try:
            self.core.create_node(node, _preload_content=False)
        except ApiException as exc:
            if exc.status != 409:
                raise
        capacity = {"cpu": str(os.cpu_count() or 2), "memory": "16Gi", "pods": "250", "ephemeral-storage": "100Gi"}
        status = {"status": {
            "capacity": capacity, "allocatable": capacity,
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"},
                          {"type": "Hostname", "address": self.cfg.node_name}],
            "conditions": [{"type": "Ready", "status": "True", "reason": "NoetlTestenvPodRunner",
                            "message": "local pod runner (no kubelet)", "lastHeartbeatTime": now(),
                            "lastTransitionTime": now()}],
            "nodeInfo": {"kubeletVersion": "noetl-testenv", "kubeProxyVersion": "", "operatingSystem": "linux",
                         "architecture": "amd64", "containerRuntimeVersion": "noetl-testenv://local-process",
                         "osImage": "", "kernelVersion": "", "machineID": "", "systemUUID": "", "bootID": ""},
        }}
        self.core.patch_node_status(self.cfg.node_name, status, _preload_content=False)

    def _unsupported_images(self, pod: Obj) -> list[str]:
        spec = pod["spec"]
        return [f"{c['name']}={c.get('image', '')}" for c in (spec.get("initContainers") or []) + spec["containers"]
                if not self.cfg.runs(c.get("image", ""))]

    def reconcile(self, kind: str, pod: Obj) -> None:
        """React to one pod event (idempotent: also used for every pod of a relist)."""
        meta, spec = pod["metadata"], pod["spec"]
        uid, node = meta["uid"], spec.get("nodeName")
        worker = self.workers.get(uid)
        if kind == "DELETED":
            if worker is not None:
                worker.stop(delete=False)
                self.workers.pop(uid, None)
            return
        deleting = meta.get("deletionTimestamp") is not None
        if not node:
            if not deleting:
                self._schedule(pod)
            return
        if node != self.cfg.node_name:
            return
        phase = (pod.get("status") or {}).get("phase")
        if worker is not None:
            if deleting:
                worker.stop(delete=True)
            return
        if deleting:
            if phase not in ("Succeeded", "Failed"):
                self._delete_orphan(pod)
            return
        if phase in ("Succeeded", "Failed"):
            return
        if self._unsupported_images(pod):
            return  # bound to us by someone else; nothing we can run
        worker = PodWorker(self, pod)
        self.workers[uid] = worker
        worker.start()

    def _delete_orphan(self, pod: Obj) -> None:
        """A pod bound here that no worker runs (runner restarted): finish its deletion."""
        meta = pod["metadata"]
        try:
            self.core.delete_namespaced_pod(meta["name"], meta["namespace"], _preload_content=False,
                                            body={"gracePeriodSeconds": 0, "preconditions": {"uid": meta["uid"]}})
        except ApiException as exc:
            if exc.status not in (404, 409):
                raise

    def _schedule(self, pod: Obj) -> None:
        """Bind a runnable pod to our Node; mark any other pod unschedulable with the reason."""
        meta = pod["metadata"]
        bad = self._unsupported_images(pod)
        if not bad:
            body = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": meta["name"]},
                    "target": {"apiVersion": "v1", "kind": "Node", "name": self.cfg.node_name}}
            try:
                self.core.create_namespaced_pod_binding(meta["name"], meta["namespace"], body, _preload_content=False)
                log(f"{meta['namespace']}/{meta['name']}: bound to {self.cfg.node_name}")
            except ApiException as exc:
                if exc.status not in (404, 409):
                    log(f"{meta['namespace']}/{meta['name']}: binding failed: {exc.status} {exc.body}")
            return
        message = (f"the local pod runner (no kubelet) only runs image {self.cfg.image!r}"
                   + (f" or images starting with {self.cfg.image_prefix!r}" if self.cfg.image_prefix else "")
                   + f"; not runnable here: {', '.join(bad)}")
        conditions = (pod.get("status") or {}).get("conditions") or []
        if any(c.get("type") == "PodScheduled" and c.get("reason") == UNSUPPORTED_REASON for c in conditions):
            return
        patch = {"status": {"conditions": [{"type": "PodScheduled", "status": "False", "reason": UNSUPPORTED_REASON,
                                            "message": message, "lastTransitionTime": now()}]}}
        try:
            self.core.patch_namespaced_pod_status(meta["name"], meta["namespace"], patch, _preload_content=False)
            log(f"{meta['namespace']}/{meta['name']}: left Pending: {message}")
        except ApiException as exc:
            if exc.status != 404:
                log(f"{meta['namespace']}/{meta['name']}: status patch failed: {exc.status}")

    def run_forever(self, ready_file: Path | None = None) -> None:
        """List+watch loop; relists on watch expiry or error."""
        self.register_node()
        first = True
        while True:
            resp = self.core.list_pod_for_all_namespaces(_preload_content=False)
            listing = json.loads(resp.data)
            seen = set()
            for pod in listing["items"]:
                seen.add(pod["metadata"]["uid"])
                self.reconcile("ADDED", pod)
            for uid in [u for u in self.workers if u not in seen]:
                self.workers.pop(uid).stop(delete=False)
            if first and ready_file is not None:
                ready_file.write_text(str(os.getpid()))
                log(f"ready: node {self.cfg.node_name}, image {self.cfg.image!r}, prefix {self.cfg.image_prefix!r}")
                first = False
            w = watch.Watch()  # type: ignore[no-untyped-call]
            stream: Any = w.stream
            try:
                for event in stream(self.core.list_pod_for_all_namespaces, deserialize=False,
                                      resource_version=listing["metadata"]["resourceVersion"],
                                      timeout_seconds=60, allow_watch_bookmarks=True):
                    obj = event["object"]
                    if event["type"] in ("ADDED", "MODIFIED", "DELETED"):
                        self.reconcile(event["type"], obj)
                    elif event["type"] == "ERROR":
                        break
            except ApiException as exc:
                log(f"watch ended: {exc.status}; relisting")
            finally:
                w.stop()  # type: ignore[no-untyped-call]

    def shutdown(self) -> None:
        """Kill every pod process (the control plane is going away; no API calls)."""
        procs = []
        for w in list(self.workers.values()):
            w.stop_event.set()
            procs += [c.proc for c in w.inits + w.mains if c.proc is not None and c.proc.poll() is None]
        terminate(procs, grace=3.0, kill_wait=3.0)
        self.api.close()


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m tools.testenv podrunner --dir D``."""
    from tools.testenv.cluster import ControlPlane  # local import: keep this module standalone

    p = argparse.ArgumentParser(prog="python -m tools.testenv podrunner")
    p.add_argument("--dir", required=True, type=Path)
    p.add_argument("--image", default=os.environ.get("NOETL_TESTENV_IMAGE", "noetl:dev"))
    p.add_argument("--image-prefix", default=os.environ.get("NOETL_TESTENV_IMAGE_PREFIX", "noetl"))
    p.add_argument("--node-name", default="noetl-local")
    args = p.parse_args(argv)
    cp = ControlPlane.load(args.dir.resolve())
    cfg = RunnerConfig(dir=Path(cp.dir), kubeconfig=cp.kubeconfig, apiserver_port=cp.apiserver_port,
                       ca_file=cp.ca_file, node_name=args.node_name, image=args.image,
                       image_prefix=args.image_prefix)
    runner = PodRunner(cfg)

    def on_term(signum: int, _frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, on_term)
    try:
        runner.run_forever(Path(cp.dir) / "pod-runner.ready")
    except (SystemExit, KeyboardInterrupt):
        pass
    finally:
        log("shutting down: killing pod processes")
        runner.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
