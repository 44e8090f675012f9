"""Fixtures for end-to-end tests: the chart installed with helm on the real test control plane.

The control plane fixtures (``control_plane``, ``kube``, ``namespace``) come from tests/conftest.py
(one control plane per session). Pods of the chart (image ``noetl:dev``) are run by the local pod
runner as processes of the ``noetl`` on PATH, with their own ServiceAccount's token: the chart's
RBAC is what authorizes them.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.httpserver import free_port
from tools.testenv.kube import Kube

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "noetl"
Obj = dict[str, Any]


class HelmError(RuntimeError):
    """helm exited non-zero; carries its output."""


def helm(*args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """The helm of the control plane (first on PATH, KUBECONFIG exported by ``control_plane``)."""
    proc = subprocess.run(["helm", *args], capture_output=True, text=True, check=False, timeout=timeout,
                          env=dict(os.environ))
    if check and proc.returncode != 0:
        raise HelmError(f"helm {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


@dataclasses.dataclass
class Release:
    """One installed release of charts/noetl."""

    kube: Kube
    name: str
    namespace: str
    installed: bool = True

    @property
    def fullname(self) -> str:
        return f"{self.name}-noetl" if "noetl" not in self.name else self.name

    def upgrade(self, *set_args: str) -> None:
        helm("upgrade", self.name, str(CHART), "--namespace", self.namespace, "--reuse-values", "--wait",
             "--timeout", "180s", *[a for kv in set_args for a in ("--set", kv)])

    def uninstall(self) -> None:
        if self.installed:
            helm("uninstall", self.name, "--namespace", self.namespace, "--wait", "--timeout", "120s")
            self.installed = False

    def pods(self, component: str) -> list[Obj]:
        resp = self.kube.core.list_namespaced_pod(
            self.namespace, label_selector=f"app.kubernetes.io/instance={self.name},"
                                           f"app.kubernetes.io/component={component}", _preload_content=False)
        return list(json.loads(resp.data)["items"])

    def logs(self, tail: int | None = 6000) -> str:
        """The output of every operator and worker container (the last ``tail`` characters of each)."""
        out = []
        for component in ("operator", "worker"):
            for pod in self.pods(component):
                name = pod["metadata"]["name"]
                text = self.kube.pod_log(self.namespace, name, component)
                out.append(f"----- {name} -----\n{text[-tail:] if tail else text}")
        return "\n".join(out)


InstallFn = Callable[..., Release]


def install(kube: Kube, namespace: str, *set_args: str, name: str | None = None) -> Release:
    """``helm install --wait`` of the chart with image noetl:dev and a free liveness port."""
    name = name or f"r{secrets.token_hex(2)}"
    values = ["image.tag=dev", f"operator.livenessPort={free_port()}", "worker.replicas=1", *set_args]
    helm("install", name, str(CHART), "--namespace", namespace, "--wait", "--timeout", "180s",
         *[a for kv in values for a in ("--set", kv)])
    return Release(kube=kube, name=name, namespace=namespace)


@pytest.fixture
def release_factory(kube: Kube) -> Iterator[InstallFn]:
    """Installs releases; uninstalls what the test left installed."""
    made: list[Release] = []

    def make(namespace: str, *set_args: str, name: str | None = None) -> Release:
        rel = install(kube, namespace, *set_args, name=name)
        made.append(rel)
        return rel

    yield make
    for rel in made:
        rel.uninstall()


@pytest.fixture(scope="module")
def module_namespaces(kube: Kube) -> Iterator[Callable[[str], str]]:
    """Namespaces that live as long as the module (for one install shared by several tests)."""
    made: list[str] = []

    def make(prefix: str) -> str:
        name = f"{prefix}-{secrets.token_hex(3)}"
        kube.core.create_namespace({"metadata": {"name": name, "labels": {"noetl.dev/test": "true"}}},
                                   _preload_content=False)
        kube.wait_for(kube.core.list_namespaced_service_account,
                      lambda sas: any(s["metadata"]["name"] == "default" for s in sas),
                      namespace=name, what=f"serviceaccount {name}/default")
        made.append(name)
        return name

    yield make
    for name in made:
        kube.core.delete_namespace(name, _preload_content=False)
