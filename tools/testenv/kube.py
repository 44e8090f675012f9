"""Test helpers against a running control plane: kubectl, apply YAML, wait by watching.

Waiting is done with list + watch (never with sleeps): the condition is checked on the listed
objects, then re-checked on every watch event until it holds or the deadline passes.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from tools.testenv.cluster import ControlPlane

Obj = dict[str, Any]


class KubectlError(RuntimeError):
    """kubectl exited non-zero; carries its stderr."""


class Kube:
    """A handle on the test control plane for tests (admin credentials)."""

    def __init__(self, cp: ControlPlane) -> None:
        self.cp = cp
        self.api = config.new_client_from_config(config_file=str(cp.kubeconfig))  # type: ignore[no-untyped-call]
        # Any: tests pass JSON-shaped dicts as bodies (accepted at runtime); the client's
        # signatures are typed for its model classes only.
        self.core: Any = client.CoreV1Api(self.api)
        self.apps: Any = client.AppsV1Api(self.api)
        self.batch: Any = client.BatchV1Api(self.api)
        self.rbac: Any = client.RbacAuthorizationV1Api(self.api)
        self.custom: Any = client.CustomObjectsApi(self.api)

    def close(self) -> None:
        """Close the HTTP pool (unclosed sockets would be ResourceWarnings, i.e. errors)."""
        self.api.close()

    @property
    def kubectl_path(self) -> str:
        return str(Path(self.cp.bin_dir) / "kubectl")

    def kubectl(self, *args: str, input: str | None = None, namespace: str | None = None,
                token: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run the cached kubectl against the control plane (admin unless ``token`` is given)."""
        cmd = [self.kubectl_path, f"--kubeconfig={self.cp.kubeconfig}"]
        if namespace:
            cmd.append(f"--namespace={namespace}")
        if token:
            cmd.append(f"--token={token}")
        cmd += list(args)
        proc = subprocess.run(cmd, input=input, capture_output=True, text=True, check=False,
                              env={**os.environ, "KUBECONFIG": str(self.cp.kubeconfig)}, timeout=120)
        if check and proc.returncode != 0:
            raise KubectlError(f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
        return proc

    def apply(self, manifest: str, namespace: str | None = None, *extra: str) -> str:
        """``kubectl apply -f - [extra...]`` (client-side apply, as a user would run it)."""
        return self.kubectl("apply", "-f", "-", *extra, input=manifest, namespace=namespace).stdout

    def wait_for(self, list_fn: Callable[..., Any], predicate: Callable[[list[Obj]], bool], *,
                 timeout: float = 60.0, what: str = "condition", **list_kwargs: Any) -> list[Obj]:
        """Wait until ``predicate(objects)`` holds for the objects ``list_fn`` returns.

        ``list_fn`` is a client list method (``core.list_namespaced_pod``...) and ``list_kwargs``
        its arguments (namespace, label/field selectors).  The set is kept current from watch
        events, so "gone" and "a new one appeared" can be waited for as well.  Returns the objects.
        """
        deadline = time.monotonic() + timeout
        items: dict[str, Obj] = {}
        while True:
            resp = list_fn(**list_kwargs, _preload_content=False)
            listing = json.loads(resp.data)
            items = {o["metadata"]["uid"]: o for o in listing["items"]}
            if predicate(list(items.values())):
                return list(items.values())
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            w = watch.Watch()  # type: ignore[no-untyped-call]
            stream_fn: Any = w.stream
            stream = stream_fn(list_fn, deserialize=False, resource_version=listing["metadata"]["resourceVersion"],
                              timeout_seconds=max(1, int(remaining)), **list_kwargs)
            try:
                for event in stream:
                    obj = event["object"]
                    if event["type"] == "ERROR":
                        break  # expired resourceVersion: relist
                    if event["type"] == "DELETED":
                        items.pop(obj["metadata"]["uid"], None)
                    elif event["type"] in ("ADDED", "MODIFIED"):
                        items[obj["metadata"]["uid"]] = obj
                    else:
                        continue
                    if predicate(list(items.values())):
                        return list(items.values())
            except ApiException as exc:
                if exc.status != 410:
                    raise
            finally:
                stream.close()
                w.stop()  # type: ignore[no-untyped-call]
            if time.monotonic() >= deadline:
                break
        summary = json.dumps([{"name": o["metadata"]["name"], "status": o.get("status")} for o in items.values()],
                             indent=1)[:4000]
        raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}; last seen:\n{summary}")

    def pod_log(self, namespace: str, pod: str, container: str) -> str:
        """Output of a container run by the pod runner (there is no kubelet for ``kubectl logs``)."""
        path = Path(self.cp.dir) / "pods" / namespace / pod / f"{container}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def token_for(self, namespace: str, service_account: str, seconds: int = 600) -> str:
        """A token of a ServiceAccount from the TokenRequest API."""
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                "spec": {"expirationSeconds": seconds}}
        resp = self.core.create_namespaced_service_account_token(service_account, namespace, body,
                                                                 _preload_content=False)
        token: str = json.loads(resp.data)["status"]["token"]
        return token


def condition(obj: Obj, kind: str, status: str = "True") -> bool:
    """Whether ``obj.status.conditions`` has ``kind`` with ``status``."""
    return any(c.get("type") == kind and c.get("status") == status
               for c in (obj.get("status") or {}).get("conditions") or [])
