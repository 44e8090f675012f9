"""Finding the API server and credentials: in-cluster ServiceAccount or a kubeconfig.

In a pod (``KUBERNETES_SERVICE_HOST`` set) the ServiceAccount token and CA are read from
``/var/run/secrets/kubernetes.io/serviceaccount``; when that directory does not exist, from the
directory named by ``NOETL_K8S_SERVICEACCOUNT_DIR`` (the test pod runner announces its files there
where it cannot bind-mount them). The token file is re-read periodically (projected tokens rotate).
Elsewhere: the kubeconfig given, else ``KUBECONFIG``, else ``~/.kube/config``.
"""

from __future__ import annotations

import os
from pathlib import Path

from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

__all__ = ["SA_DIR_ENV", "SA_MOUNT", "load_configuration"]

SA_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
SA_DIR_ENV = "NOETL_K8S_SERVICEACCOUNT_DIR"


def _serviceaccount_dir() -> Path:
    standard = Path(SA_MOUNT)
    if (standard / "token").is_file():
        return standard
    announced = os.environ.get(SA_DIR_ENV)
    if announced and (Path(announced) / "token").is_file():
        return Path(announced)
    return standard  # the loader's error then names the standard path


def load_configuration(kubeconfig: str | None = None, *, pool_size: int) -> k8s_client.Configuration:
    """A client Configuration: the kubeconfig when given, in-cluster when in a pod, else KUBECONFIG."""
    cfg = k8s_client.Configuration()
    if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        sa = _serviceaccount_dir()
        loader = k8s_config.incluster_config.InClusterConfigLoader(
            token_filename=str(sa / "token"), cert_filename=str(sa / "ca.crt"))  # type: ignore[no-untyped-call]
        loader.load_and_set(cfg)  # type: ignore[no-untyped-call]
    else:
        # KUBECONFIG is read now: the client library reads it once, when it is first imported.
        config_file = kubeconfig or os.environ.get("KUBECONFIG") or None
        k8s_config.load_kube_config(config_file=config_file, client_configuration=cfg, persist_config=False)  # type: ignore[no-untyped-call]
    # One connection per worker thread, so concurrent calls never wait for a socket.
    cfg.connection_pool_maxsize = pool_size
    return cfg
