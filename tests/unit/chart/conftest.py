"""Fixtures for the chart tests: the helm binary and a renderer of charts/noetl.

These tests need no cluster: ``helm lint`` and ``helm template`` only read the chart. helm is the
one built with the test control plane (tools/testenv, helm v4): first on PATH, else the build
cache (building it when missing, as the integration tests do; never skipped).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
CHART = ROOT / "charts" / "noetl"
Obj = dict[str, Any]


@pytest.fixture(scope="session")
def helm() -> str:
    found = shutil.which("helm")
    if found:
        return found
    from tools.testenv import BuildError, ensure_built

    try:
        built = ensure_built()
    except BuildError as exc:
        pytest.fail(f"helm could not be built (tools/testenv):\n{exc}", pytrace=False)
    return str(Path(built.bin_dir) / "helm")


def run_helm(helm: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([helm, *args], capture_output=True, text=True, check=False, timeout=120)


class Rendered(list[Obj]):
    """The objects ``helm template`` produced, with lookups by kind and name."""

    def of_kind(self, kind: str) -> list[Obj]:
        return [o for o in self if o["kind"] == kind]

    def get(self, kind: str, name: str, namespace: str | None = None) -> Obj:
        for o in self:
            meta = o["metadata"]
            if o["kind"] == kind and meta["name"] == name and (namespace is None or meta.get("namespace") == namespace):
                return o
        raise AssertionError(f"no {kind} {name} rendered; have: {sorted((o['kind'], o['metadata']['name']) for o in self)}")


RenderFn = Callable[..., Rendered]


@pytest.fixture(scope="session")
def render(helm: str) -> RenderFn:
    """``render("--set", "x=y", release="r", namespace="ns")``: the parsed objects (fails on error)."""

    def _render(*args: str, release: str = "demo", namespace: str = "noetl-system") -> Rendered:
        proc = run_helm(helm, "template", release, str(CHART), "--namespace", namespace, *args)
        assert proc.returncode == 0, f"helm template {' '.join(args)} failed:\n{proc.stderr}"
        return Rendered(d for d in yaml.safe_load_all(proc.stdout) if d)

    return _render
