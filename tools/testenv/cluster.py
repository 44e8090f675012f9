"""Start and stop a loopback control plane: etcd, kube-apiserver, kube-controller-manager.

Everything lives in one directory (``--dir``): etcd data, keys, the token file, the kubeconfig,
logs and ``state.json`` (PIDs and ports).  ``down`` works from ``state.json`` alone, so a control
plane started by one process (the CLI, a pytest session) can be stopped by another.

Processes are started in their own sessions (``start_new_session``) so that stopping kills a
whole process group, and a crashed test run can still be cleaned up by PID.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

STATE = "state.json"
ADMIN_USER = "testenv-admin"
#: Controllers the tests need.  The default set is avoided on purpose: the node-lifecycle
#: controller would mark the pod runner's node NotReady (it sends no heartbeats) and evict pods.
CONTROLLERS: tuple[str, ...] = (
    "job-controller",
    "cronjob-controller",
    "ttl-after-finished-controller",
    "garbage-collector-controller",
    "namespace-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "root-ca-certificate-publisher-controller",
    "clusterrole-aggregation-controller",
    "deployment-controller",
    "replicaset-controller",
)
SERVICE_CIDR = "10.0.0.0/24"
SA_ISSUER = "https://kubernetes.default.svc.cluster.local"
#: Popen objects of the components this process started: kept so they can be reaped (and so
#: Python does not warn about dropping a running child).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


class StartError(RuntimeError):
    """A component did not start or become ready; the message includes its log tail."""


@dataclass
class ControlPlane:
    """A running control plane, as recorded in ``state.json``."""

    dir: str
    bin_dir: str
    etcd_port: int
    apiserver_port: int
    kcm_port: int
    admin_token: str
    pids: dict[str, int] = field(default_factory=dict)

    @property
    def kubeconfig(self) -> Path:
        return Path(self.dir) / "kubeconfig"

    @property
    def ca_file(self) -> Path:
        """The apiserver's self-generated serving certificate (self-signed, so it is its own CA)."""
        return Path(self.dir) / "certs" / "apiserver.crt"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.apiserver_port}"

    @property
    def log_dir(self) -> Path:
        return Path(self.dir) / "logs"

    def save(self) -> None:
        (Path(self.dir) / STATE).write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, directory: Path) -> ControlPlane:
        return cls(**json.loads((directory / STATE).read_text()))


def free_port() -> int:
    """A currently free loopback TCP port (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def _spawn(name: str, argv: list[str], cp: ControlPlane, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start one component with stdout+stderr in ``logs/<name>.log`` and record its PID."""
    cp.log_dir.mkdir(parents=True, exist_ok=True)
    with open(cp.log_dir / f"{name}.log", "ab") as log:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, env=env,
        )
    _CHILDREN[proc.pid] = proc
    cp.pids[name] = proc.pid
    cp.save()
    return proc


def _wait_http(
    name: str,
    url: str,
    proc: subprocess.Popen[bytes],
    cp: ControlPlane,
    timeout: float,
    token: str | None = None,
    ca: Path | None = None,
) -> None:
    """Poll a health endpoint until it answers 200; fail early if the process died.

    Polling is fine here: nothing can be watched before the server exists.
    """
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise StartError(f"{name} exited with {proc.returncode}:\n{_log_tail(cp.log_dir / f'{name}.log')}")
        ctx: ssl.SSLContext | None = None
        if url.startswith("https"):
            if ca is None or not ca.exists():
                time.sleep(0.2)
                continue
            ctx = ssl.create_default_context(cafile=str(ca))
        req = urllib.request.Request(url)
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=5, context=ctx) as resp:
                if resp.status == 200:
                    return
                last = f"HTTP {resp.status}"
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}: {exc.read(500).decode(errors='replace')}"
            exc.close()
        except (OSError, ssl.SSLError) as exc:
            last = str(exc)
        time.sleep(0.2)
    raise StartError(f"{name} not ready at {url} after {timeout:.0f}s ({last}):\n{_log_tail(cp.log_dir / f'{name}.log')}")


def _write_keys(d: Path) -> None:
    """RSA key pair that signs and verifies ServiceAccount tokens (TokenRequest needs it)."""
    key, pub = d / "sa.key", d / "sa.pub"
    subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
    subprocess.run(["openssl", "rsa", "-in", str(key), "-pubout", "-out", str(pub)], check=True, capture_output=True)


def write_kubeconfig(cp: ControlPlane, path: Path, token: str, user: str = ADMIN_USER) -> Path:
    """A kubeconfig for ``token`` against this control plane (JSON is valid YAML)."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "testenv", "cluster": {"server": cp.server, "certificate-authority": str(cp.ca_file)}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "testenv", "context": {"cluster": "testenv", "user": user, "namespace": "default"}}],
        "current-context": "testenv",
    }
    path.write_text(json.dumps(config, indent=2) + "\n")
    path.chmod(0o600)
    return path


def start(directory: Path, bin_dir: Path, timeout: float = 240.0) -> ControlPlane:
    """Start etcd, kube-apiserver and kube-controller-manager; return when all are healthy.

    ``timeout`` is per component and generous: an idle machine needs ~7 s in all, but a busy
    2-core one (a Go build alongside) was measured at 150 s.

    On any failure everything already started is stopped again before the error propagates.
    """
    d = directory.resolve()
    if (d / STATE).exists():
        raise StartError(f"{d} already holds a control plane (state.json); run `down --dir {d}` first")
    for sub in ("etcd", "certs", "logs"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(24)
    ports: set[int] = set()
    while len(ports) < 4:
        ports.add(free_port())
    etcd_port, peer_port, api_port, kcm_port = sorted(ports)
    cp = ControlPlane(str(d), str(bin_dir.resolve()), etcd_port, api_port, kcm_port, token)
    cp.save()
    try:
        _start_all(cp, peer_port, timeout)
    except BaseException:
        stop(d)
        raise
    return cp


def _start_all(cp: ControlPlane, peer_port: int, timeout: float) -> None:
    d, b = Path(cp.dir), Path(cp.bin_dir)
    _write_keys(d)
    (d / "tokens.csv").write_text(f'{cp.admin_token},{ADMIN_USER},{ADMIN_USER},"system:masters"\n')
    (d / "tokens.csv").chmod(0o600)

    etcd_url = f"http://127.0.0.1:{cp.etcd_port}"
    peer_url = f"http://127.0.0.1:{peer_port}"
    etcd = _spawn("etcd", [
        str(b / "etcd"), "--name=default", f"--data-dir={d / 'etcd'}",
        f"--listen-client-urls={etcd_url}", f"--advertise-client-urls={etcd_url}",
        f"--listen-peer-urls={peer_url}", f"--initial-advertise-peer-urls={peer_url}",
        f"--initial-cluster=default={peer_url}", "--unsafe-no-fsync", "--log-level=warn",
        "--listen-metrics-urls=", "--quota-backend-bytes=2147483648",
    ], cp)
    _wait_http("etcd", f"{etcd_url}/health", etcd, cp, timeout)

    apiserver = _spawn("kube-apiserver", [
        str(b / "kube-apiserver"),
        f"--etcd-servers={etcd_url}",
        "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={cp.apiserver_port}",
        f"--cert-dir={d / 'certs'}",
        "--endpoint-reconciler-type=none",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        f"--service-account-issuer={SA_ISSUER}",
        f"--service-account-key-file={d / 'sa.pub'}",
        f"--service-account-signing-key-file={d / 'sa.key'}",
        f"--token-auth-file={d / 'tokens.csv'}",
        "--authorization-mode=RBAC",
        "--allow-privileged=true",
        "--profiling=false",
        "--v=1",
    ], cp)
    _wait_http("kube-apiserver", f"{cp.server}/readyz", apiserver, cp, timeout, cp.admin_token, cp.ca_file)
    write_kubeconfig(cp, cp.kubeconfig, cp.admin_token)

    kcm = _spawn("kube-controller-manager", [
        str(b / "kube-controller-manager"),
        f"--kubeconfig={cp.kubeconfig}",
        "--leader-elect=false",
        "--bind-address=127.0.0.1", f"--secure-port={cp.kcm_port}",
        f"--cert-dir={d / 'certs' / 'kcm'}",
        f"--controllers={','.join(CONTROLLERS)}",
        f"--service-account-private-key-file={d / 'sa.key'}",
        f"--root-ca-file={cp.ca_file}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--concurrent-gc-syncs=5",
        "--profiling=false",
        "--v=1",
    ], cp)
    _wait_kcm(kcm, cp, timeout)


def _wait_kcm(proc: subprocess.Popen[bytes], cp: ControlPlane, timeout: float) -> None:
    """Wait until the controller-manager answers /healthz (its cert is self-signed and unnamed)."""
    deadline = time.monotonic() + timeout
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    last = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise StartError(f"kube-controller-manager exited with {proc.returncode}:\n"
                             f"{_log_tail(cp.log_dir / 'kube-controller-manager.log')}")
        req = urllib.request.Request(f"https://127.0.0.1:{cp.kcm_port}/healthz")
        req.add_header("Authorization", f"Bearer {cp.admin_token}")
        try:
            with urllib.request.urlopen(req, timeout=5, context=ctx) as resp:
                if resp.status == 200:
                    return
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}"
            exc.close()
        except OSError as exc:
            last = str(exc)
        time.sleep(0.2)
    raise StartError(f"kube-controller-manager not healthy after {timeout:.0f}s ({last}):\n"
                     f"{_log_tail(cp.log_dir / 'kube-controller-manager.log')}")


def start_pod_runner(cp: ControlPlane, extra_args: list[str] | None = None) -> int:
    """Start the local pod runner as a subprocess of this Python (``python -m tools.testenv podrunner``)."""
    repo_root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (repo_root, env.get("PYTHONPATH", "")) if p)
    env["PATH"] = os.pathsep.join((cp.bin_dir, env.get("PATH", "")))
    proc = _spawn("pod-runner", [sys.executable, "-m", "tools.testenv", "podrunner", "--dir", cp.dir,
                                 *(extra_args or [])], cp, env)
    ready = Path(cp.dir) / "pod-runner.ready"
    deadline = time.monotonic() + 60
    while not ready.exists():
        if proc.poll() is not None:
            raise StartError(f"pod runner exited with {proc.returncode}:\n{_log_tail(cp.log_dir / 'pod-runner.log')}")
        if time.monotonic() > deadline:
            raise StartError(f"pod runner not ready after 60s:\n{_log_tail(cp.log_dir / 'pod-runner.log')}")
        time.sleep(0.1)
    return proc.pid


def _alive(pid: int) -> bool:
    if pid in _CHILDREN:
        return _CHILDREN[pid].poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours still "exists": reap it if it is ours.
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return _not_zombie(pid)


def _not_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def _kill_group(pid: int, grace: float) -> None:
    """SIGTERM a process group, then SIGKILL whatever survives ``grace`` seconds."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        except PermissionError:
            os.kill(pid, sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if not _alive(pid):
                return
            time.sleep(0.05)


def stop(directory: Path, purge: bool = False) -> list[str]:
    """Stop everything recorded in ``state.json`` (pod runner first, etcd last).

    Also kills any pod processes the runner left behind (``pods/*.pid``).  Keeps ``logs/`` and
    ``pods/`` logs unless ``purge``; removes etcd data, keys and tokens.  Returns what it stopped.
    """
    d = directory.resolve()
    if not (d / STATE).exists():
        return []
    cp = ControlPlane.load(d)
    stopped: list[str] = []
    order = ["pod-runner", "kube-controller-manager", "kube-apiserver", "etcd"]
    for name in order + [n for n in cp.pids if n not in order]:
        pid = cp.pids.get(name)
        if pid is not None and _alive(pid):
            _kill_group(pid, 10.0)
            stopped.append(f"{name} (pid {pid})")
        if pid is not None and pid in _CHILDREN:
            _CHILDREN.pop(pid).wait()
    for pidfile in (d / "pods").glob("**/*.pid") if (d / "pods").exists() else []:
        try:
            pid = int(pidfile.read_text().strip())
        except ValueError:
            continue
        if _alive(pid):
            _kill_group(pid, 2.0)
            stopped.append(f"pod process {pidfile.stem} (pid {pid})")
        pidfile.unlink(missing_ok=True)
    if purge:
        shutil.rmtree(d, ignore_errors=True)
    else:
        for sub in ("etcd", "certs", "tokens"):
            shutil.rmtree(d / sub, ignore_errors=True)
        for f in ("sa.key", "sa.pub", "tokens.csv", "kubeconfig", STATE, "pod-runner.ready"):
            (d / f).unlink(missing_ok=True)
    return stopped
