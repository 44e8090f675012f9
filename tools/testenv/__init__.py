"""A real Kubernetes control plane for the test suite, built from the Go module proxy.

``build`` compiles and caches etcd, kube-apiserver, kube-controller-manager, kubectl and helm;
``cluster`` starts/stops them on loopback; ``podrunner`` stands in for the kubelet.  See
docs/testenv.md.
"""

from tools.testenv.build import BuildError, BuildResult, ensure_built
from tools.testenv.cluster import ControlPlane, StartError, start, start_pod_runner, stop

__all__ = [
    "BuildError",
    "BuildResult",
    "ControlPlane",
    "StartError",
    "ensure_built",
    "start",
    "start_pod_runner",
    "stop",
]
