"""Build and cache the test control plane's binaries from the Go module proxy.

There is no Docker and no release-binary download here, only package registries, so the
binaries are compiled from Go modules:

* ``k8s.io/kubernetes`` cannot be ``go install``-ed (its go.mod replaces every staging module
  with a ``./staging/...`` path, and replaces in a dependency are ignored).  A small generated
  wrapper module requires ``k8s.io/kubernetes vX.Y.Z``, replaces each staging module with its
  matching ``v0.Y.Z`` tag (the list is read from the release's own go.mod), declares the upstream
  ``cmd/...`` packages as ``tool`` dependencies and builds them unchanged.
* etcd has the same problem (``go.etcd.io/etcd/server/v3`` replaces its sibling modules with
  ``../api`` etc.), so it gets the same treatment; its ``main.go`` calls ``etcdmain.Main``.
* helm's go.mod has no replaces: plain ``go install`` with its version ldflag.

Results live in ``~/.cache/noetl-testenv/<versions>/bin`` with a ``manifest.json``; a complete
directory is reused as is.  Binaries are built into a temporary directory and moved into place
last, so an interrupted build never looks like a cache hit.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

#: Kubernetes releases tried in order; the first that builds wins.
K8S_CANDIDATES: tuple[str, ...] = ("v1.37.2", "v1.36.3", "v1.35.4")
#: etcd 3.6 is what Kubernetes 1.34+ is tested against.
ETCD_VERSION = "v3.6.17"
HELM_VERSION = "v4.3.2"

#: Binaries every complete cache directory holds.
BINARIES: tuple[str, ...] = ("etcd", "kube-apiserver", "kube-controller-manager", "kubectl", "helm")
K8S_COMMANDS: tuple[str, ...] = ("kube-apiserver", "kube-controller-manager", "kubectl")
#: Sibling modules that etcd's server go.mod replaces with relative paths.
ETCD_SIBLINGS: tuple[str, ...] = (
    "go.etcd.io/etcd/api/v3",
    "go.etcd.io/etcd/client/pkg/v3",
    "go.etcd.io/etcd/client/v3",
    "go.etcd.io/etcd/pkg/v3",
)
MANIFEST = "manifest.json"


class BuildError(RuntimeError):
    """A build step failed; the message names the module and the failing command."""


@dataclass
class BuildResult:
    """What :func:`ensure_built` produced or found."""

    bin_dir: Path
    versions: dict[str, str]
    durations: dict[str, float] = field(default_factory=dict)
    cached: bool = False

    def binary(self, name: str) -> Path:
        """Absolute path of one cached binary."""
        return self.bin_dir / name


def cache_root() -> Path:
    """Root of the binary cache (``NOETL_TESTENV_CACHE`` overrides ``~/.cache/noetl-testenv``)."""
    env = os.environ.get("NOETL_TESTENV_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "noetl-testenv"


def version_dir(k8s: str, etcd: str = ETCD_VERSION, helm: str = HELM_VERSION) -> Path:
    """Cache directory for one combination of versions."""
    return cache_root() / f"k8s-{k8s}_etcd-{etcd}_helm-{helm}"


def _log(msg: str) -> None:
    print(f"[testenv build] {msg}", file=sys.stderr, flush=True)


def go_env() -> dict[str, str]:
    """Environment for every go command: local toolchain, static binaries, module mode."""
    env = dict(os.environ)
    env.update({"GOTOOLCHAIN": "local", "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod"})
    return env


_MODULE_AT = re.compile(r"([A-Za-z0-9.\-_~]+(?:/[A-Za-z0-9.\-_~]+)+)@(v[0-9A-Za-z.\-+]+)")


def _run_go(args: list[str], cwd: Path, what: str, log: Path | None = None) -> str:
    """Run a go command; on failure raise :class:`BuildError` naming the module at fault.

    Go's own messages name the failing ``module@version``; they are pulled out and put first so
    a proxy outage or a missing tag is obvious in CI logs.
    """
    cmd = ["go", *args]
    proc = _run_with_heartbeat(cmd, cwd, go_env())
    if log is not None:
        log.write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-40:])
        modules = sorted({"@".join(m) for m in _MODULE_AT.findall(proc.stderr)})
        named = f" (modules named in the error: {', '.join(modules[:8])})" if modules else ""
        raise BuildError(
            f"{what} failed{named}\ncommand: (cd {cwd} && GOTOOLCHAIN=local CGO_ENABLED=0 "
            f"GOFLAGS=-mod=mod {' '.join(cmd)})\n{tail}"
        )
    return proc.stdout


def _run_with_heartbeat(cmd: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run a command, printing a line every minute so CI logs show a long build is alive."""
    started = time.monotonic()
    with subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True) as proc:
        while True:
            try:
                out, err = proc.communicate(timeout=60)
                break
            except subprocess.TimeoutExpired:
                _log(f"  ... {' '.join(cmd[:2])} still running ({(time.monotonic() - started) / 60:.0f} min)")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _download(module: str, version: str, cwd: Path) -> dict[str, str]:
    """``go mod download -json`` one module; fail naming it if the proxy cannot serve it."""
    cmd = ["go", "mod", "download", "-json", f"{module}@{version}"]
    proc = _run_with_heartbeat(cmd, cwd, go_env())
    try:
        info: dict[str, str] = json.loads(proc.stdout)
    except json.JSONDecodeError:
        info = {"Error": (proc.stdout + proc.stderr).strip()}
    if proc.returncode != 0 or info.get("Error"):
        raise BuildError(
            f"the Go module proxy could not serve {module}@{version}: {info.get('Error')}\n"
            f"command: (cd {cwd} && GOTOOLCHAIN=local {' '.join(cmd)})"
        )
    return info


def _local_replaces(gomod: Path, cwd: Path) -> list[str]:
    """Modules that a go.mod replaces with a relative path (the ones a wrapper must pin)."""
    parsed = json.loads(_run_go(["mod", "edit", "-json", str(gomod)], cwd, f"parsing {gomod}"))
    return [
        r["Old"]["Path"]
        for r in parsed.get("Replace") or []
        if r["New"]["Path"].startswith(("./", "../"))
    ]


def _directive_lines(gomod_text: str, keyword: str) -> list[str]:
    """Lines of a single-line or block directive (``godebug``), kept verbatim.

    They only take effect in the main module, so the wrapper copies them to build the binaries
    with the same runtime settings as upstream.
    """
    lines: list[str] = []
    in_block = False
    for raw in gomod_text.splitlines():
        line = raw.strip()
        if in_block:
            if line == ")":
                in_block = False
            elif line and not line.startswith("//"):
                lines.append(f"{keyword} {line}")
        elif line.startswith(f"{keyword} ("):
            in_block = True
        elif line.startswith(f"{keyword} "):
            lines.append(line)
    return lines


def _wrapper_gomod(
    name: str,
    go_line: str,
    require: tuple[str, str],
    replaces: list[str],
    replace_version: str,
    tools: list[str],
    extra: list[str],
) -> str:
    """Text of a generated wrapper go.mod."""
    out = [f"module noetl.dev/testenv/{name}", "", go_line, ""]
    out += extra + ([""] if extra else [])
    out += [f"require {require[0]} {require[1]}", ""]
    out += [f"replace {m} => {m} {replace_version}" for m in replaces]
    out += [""] + [f"tool {t}" for t in tools] + [""]
    return "\n".join(out)


def _go_line(gomod_text: str) -> str:
    m = re.search(r"^go\s+(\S+)", gomod_text, re.M)
    return f"go {m.group(1)}" if m else "go 1.24"


def _version_ldflags(version: str) -> str:
    """``-X`` flags that stamp the Kubernetes version (otherwise it reports v0.0.0-master)."""
    major, minor = version.lstrip("v").split(".")[:2]
    flags = []
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {pkg}.gitVersion={version}",
            f"-X {pkg}.gitMajor={major}",
            f"-X {pkg}.gitMinor={minor}",
            f"-X {pkg}.gitTreeState=clean",
        ]
    return " ".join(flags)


def build_kubernetes(version: str, src: Path, out: Path) -> float:
    """Build kube-apiserver, kube-controller-manager and kubectl at ``version`` into ``out``."""
    started = time.monotonic()
    src.mkdir(parents=True, exist_ok=True)
    _log(f"k8s.io/kubernetes@{version}: resolving staging modules")
    info = _download("k8s.io/kubernetes", version, src)
    upstream = Path(info["GoMod"])
    text = upstream.read_text()
    staging = [m for m in _local_replaces(upstream, src) if m.startswith("k8s.io/")]
    if not staging:
        raise BuildError(f"k8s.io/kubernetes@{version}: no staging replaces found in its go.mod")
    staging_version = "v0" + version[2:]  # v1.37.2 -> v0.37.2
    tools = [f"k8s.io/kubernetes/cmd/{c}" for c in K8S_COMMANDS]
    (src / "go.mod").write_text(
        _wrapper_gomod(
            "k8s",
            _go_line(text),
            ("k8s.io/kubernetes", version),
            staging,
            staging_version,
            tools,
            _directive_lines(text, "godebug"),
        )
    )
    (src / "go.sum").unlink(missing_ok=True)
    _log(f"k8s.io/kubernetes@{version}: {len(staging)} staging modules pinned at {staging_version}; go mod tidy")
    _run_go(["mod", "tidy"], src, f"resolving the k8s.io/kubernetes@{version} module graph", src / "tidy.log")
    _log(f"k8s.io/kubernetes@{version}: go build {' '.join(K8S_COMMANDS)} (slow on a cold cache)")
    _run_go(
        ["build", "-trimpath", "-ldflags", f"-s -w {_version_ldflags(version)}", "-o", str(out) + "/", *tools],
        src,
        f"building {', '.join(tools)}",
        src / "build.log",
    )
    return time.monotonic() - started


def build_etcd(version: str, src: Path, out: Path) -> float:
    """Build etcd from ``go.etcd.io/etcd/server/v3`` (its own main package)."""
    started = time.monotonic()
    src.mkdir(parents=True, exist_ok=True)
    info = _download("go.etcd.io/etcd/server/v3", version, src)
    text = Path(info["GoMod"]).read_text()
    (src / "go.mod").write_text(
        _wrapper_gomod(
            "etcd",
            _go_line(text),
            ("go.etcd.io/etcd/server/v3", version),
            list(ETCD_SIBLINGS),
            version,
            ["go.etcd.io/etcd/server/v3"],
            [],
        )
    )
    (src / "go.sum").unlink(missing_ok=True)
    _log(f"go.etcd.io/etcd/server/v3@{version}: go mod tidy + go build")
    _run_go(["mod", "tidy"], src, f"resolving the go.etcd.io/etcd/server/v3@{version} module graph", src / "tidy.log")
    _run_go(
        ["build", "-trimpath", "-ldflags", "-s -w", "-o", str(out / "etcd"), "go.etcd.io/etcd/server/v3"],
        src,
        f"building go.etcd.io/etcd/server/v3@{version}",
        src / "build.log",
    )
    return time.monotonic() - started


def build_helm(version: str, src: Path, out: Path) -> float:
    """``go install`` helm v4 with its version stamped."""
    started = time.monotonic()
    src.mkdir(parents=True, exist_ok=True)
    _log(f"helm.sh/helm/v4@{version}: go install")
    ld = f"-s -w -X helm.sh/helm/v4/internal/version.version={version} -X helm.sh/helm/v4/internal/version.gitTreeState=clean"
    env_out = str(out)
    cmd = ["install", "-trimpath", "-ldflags", ld, f"helm.sh/helm/v4/cmd/helm@{version}"]
    proc = _run_with_heartbeat(["go", *cmd], src, {**go_env(), "GOBIN": env_out, "GOFLAGS": ""})
    (src / "build.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise BuildError(
            f"go install helm.sh/helm/v4/cmd/helm@{version} failed (module helm.sh/helm/v4@{version})\n"
            + proc.stderr[-4000:]
        )
    return time.monotonic() - started


def _complete(d: Path) -> bool:
    return (d / MANIFEST).is_file() and all((d / "bin" / b).is_file() for b in BINARIES)


def find_cached() -> BuildResult | None:
    """First complete cache directory in candidate order, or None."""
    for k8s in K8S_CANDIDATES:
        d = version_dir(k8s)
        if _complete(d):
            manifest = json.loads((d / MANIFEST).read_text())
            return BuildResult(d / "bin", manifest["versions"], manifest.get("durations", {}), cached=True)
    return None


def _check_go() -> None:
    if shutil.which("go") is None:
        raise BuildError("the `go` command is not on PATH (Go >= 1.24 is needed to build the control plane)")


def build_versions(k8s: str) -> BuildResult:
    """Build one version combination from scratch into its cache directory."""
    d = version_dir(k8s)
    tmp_bin = d / "bin.partial"
    shutil.rmtree(tmp_bin, ignore_errors=True)
    tmp_bin.mkdir(parents=True)
    started = time.monotonic()
    durations = {
        "etcd": build_etcd(ETCD_VERSION, d / "src" / "etcd", tmp_bin),
        "helm": build_helm(HELM_VERSION, d / "src" / "helm", tmp_bin),
        "kubernetes": build_kubernetes(k8s, d / "src" / "k8s", tmp_bin),
    }
    durations["total"] = time.monotonic() - started
    versions = {"kubernetes": k8s, "etcd": ETCD_VERSION, "helm": HELM_VERSION, "go": _go_version()}
    shutil.rmtree(d / "bin", ignore_errors=True)
    tmp_bin.rename(d / "bin")
    (d / MANIFEST).write_text(json.dumps({"versions": versions, "durations": durations}, indent=2) + "\n")
    return BuildResult(d / "bin", versions, durations)


def _go_version() -> str:
    out = subprocess.run(["go", "env", "GOVERSION"], env=go_env(), capture_output=True, text=True, check=False)
    return out.stdout.strip()


def ensure_built(force: bool = False) -> BuildResult:
    """Reuse the cache or build, trying each Kubernetes release in :data:`K8S_CANDIDATES`.

    Raises :class:`BuildError` with every attempt's error when none builds.
    """
    if not force:
        cached = find_cached()
        if cached is not None:
            return cached
    _check_go()
    errors: list[str] = []
    for k8s in K8S_CANDIDATES:
        try:
            return build_versions(k8s)
        except BuildError as exc:
            _log(f"FAILED for kubernetes {k8s}:\n{exc}")
            errors.append(f"--- kubernetes {k8s} ---\n{exc}")
    raise BuildError("could not build the test control plane:\n" + "\n".join(errors))


def describe(result: BuildResult) -> str:
    """Human summary: versions, where, and how long each part took."""
    lines = [f"bin dir: {result.bin_dir}" + ("  (cached)" if result.cached else "")]
    lines += [f"  {k}: {v}" for k, v in result.versions.items()]
    label = "build time (recorded when built)" if result.cached else "build time"
    for name, secs in result.durations.items():
        lines.append(f"  {label} {name}: {secs / 60:.1f} min ({secs:.0f} s)")
    return "\n".join(lines)
