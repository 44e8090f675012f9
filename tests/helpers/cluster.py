"""Fixtures for tests against the real test control plane (tools/testenv, DESIGN.md §5).

Imported into tests/conftest.py, so one control plane serves the whole session (integration and
e2e tests alike).

* ``control_plane`` (session): reuses or builds the cached binaries, starts etcd,
  kube-apiserver, kube-controller-manager and the local pod runner in a temp dir, exports
  ``KUBECONFIG`` (and puts the cached kubectl/helm first on ``PATH``) for subprocesses, and tears
  everything down at the end.  When anything cannot be built or started, every test using it
  fails with the reason: never skipped, never mocked.
* ``kube`` (session): :class:`tools.testenv.kube.Kube` with admin clients and wait helpers.
* ``namespace`` (function): a fresh namespace per test, deleted afterwards.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator

import pytest

from tools.testenv import BuildError, ControlPlane, StartError, ensure_built, start, start_pod_runner, stop
from tools.testenv.kube import Kube


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """A running control plane for the whole session, with the pod runner."""
    try:
        built = ensure_built()
    except BuildError as exc:
        pytest.fail(f"the test control plane could not be built:\n{exc}", pytrace=False)
    directory = tmp_path_factory.mktemp("testenv")
    try:
        cp = start(directory, built.bin_dir)
        start_pod_runner(cp)
    except (StartError, OSError) as exc:
        stop(directory)
        pytest.fail(f"the test control plane could not be started (logs in {directory / 'logs'}):\n{exc}",
                    pytrace=False)
    saved = {k: os.environ.get(k) for k in ("KUBECONFIG", "PATH")}
    os.environ["KUBECONFIG"] = str(cp.kubeconfig)
    os.environ["PATH"] = os.pathsep.join((cp.bin_dir, os.environ.get("PATH", "")))
    try:
        yield cp
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        stop(directory)


@pytest.fixture(scope="session")
def kube(control_plane: ControlPlane) -> Iterator[Kube]:
    """Admin API clients and helpers (kubectl, apply, wait_for)."""
    k = Kube(control_plane)
    try:
        yield k
    finally:
        k.close()


@pytest.fixture
def namespace(kube: Kube, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace named after the test; ready once its ``default`` ServiceAccount exists
    (the ServiceAccount admission plugin rejects pods until the controller created it)."""
    base = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"{base}-{secrets.token_hex(3)}"
    kube.core.create_namespace({"metadata": {"name": name, "labels": {"noetl.dev/test": "true"}}},
                               _preload_content=False)
    kube.wait_for(kube.core.list_namespaced_service_account, lambda sas: any(
        s["metadata"]["name"] == "default" for s in sas), namespace=name, what=f"serviceaccount {name}/default")
    yield name
    kube.core.delete_namespace(name, _preload_content=False)
