"""An in-memory stand-in for ``noetl.k8s.KubeClient`` (unit tests only: the API seam).

It keeps objects as dicts, applies JSON merge patches (RFC 7386), bumps resourceVersion on every
write and answers a stale resourceVersion with Conflict, like the apiserver. Integration tests use
the real apiserver; this fake exists so the reconcile logic can be driven event by event.
"""

from __future__ import annotations

import copy
import itertools
import json
from typing import Any, Callable

from noetl.k8s import Conflict, NotFound


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def apply_operation(doc: dict[str, Any], op: dict[str, Any]) -> None:
    """One RFC 6902 add/replace/remove, strict like the apiserver (a missing parent is an error)."""
    parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
    parent: Any = doc
    for part in parts[:-1]:
        if not isinstance(parent, dict) or part not in parent:
            raise ValueError(f"json patch: missing parent for {op['path']}")
        parent = parent[part]
    last = parts[-1]
    if op["op"] in ("add", "replace"):
        if op["op"] == "replace" and last not in parent:
            raise ValueError(f"json patch: replace of missing {op['path']}")
        parent[last] = copy.deepcopy(op["value"])
    elif op["op"] == "remove":
        if last not in parent:
            raise ValueError(f"json patch: remove of missing {op['path']}")
        del parent[last]
    else:
        raise ValueError(f"unsupported op {op['op']}")


class FakeKube:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self._rv = itertools.count(1)
        self._uid = itertools.count(1)
        self.jobs_created: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.leases: list[dict[str, Any]] = []
        self.status_writes = 0
        #: called before each status patch is applied (to inject concurrent writers)
        self.before_patch: Callable[[str, str, str], None] | None = None

    # -- helpers for tests ---------------------------------------------------------------------
    def create(self, kind: str, ns: str, body: dict[str, Any]) -> dict[str, Any]:
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        meta.setdefault("namespace", ns)
        meta.setdefault("uid", f"uid-{next(self._uid)}")
        meta.setdefault("generation", 1)
        meta["resourceVersion"] = str(next(self._rv))
        self.objects[(kind, ns, meta["name"])] = obj
        return copy.deepcopy(obj)

    def obj(self, kind: str, ns: str, name: str) -> dict[str, Any]:
        return copy.deepcopy(self.objects[(kind, ns, name)])

    def add_inbox_event(self, ns: str, name: str, event: dict[str, Any]) -> None:
        """What a worker does: a JSON patch `add` of one inbox key, no resourceVersion."""
        key = ("executions", ns, name)
        apply_operation(self.objects[key], {"op": "add", "path": "/status/inbox/" + event["id"].replace(
            "~", "~0").replace("/", "~1"), "value": event})
        self.objects[key]["metadata"]["resourceVersion"] = str(next(self._rv))

    def size(self, kind: str, ns: str, name: str) -> int:
        return len(json.dumps(self.objects[(kind, ns, name)]))

    # -- the KubeClient surface the operator uses ----------------------------------------------
    async def get_object(self, kind: str, ns: str, name: str) -> dict[str, Any]:
        try:
            return copy.deepcopy(self.objects[(kind, ns, name)])
        except KeyError:
            raise NotFound(404, "NotFound", f"{kind} {name} not found") from None

    def _guarded_write(self, kind: str, ns: str, name: str, resource_version: str | None,
                       change: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
        """What both patch flavours share: hooks, 404, the resourceVersion guard, a new version."""
        if self.before_patch is not None:
            self.before_patch(kind, ns, name)
        key = (kind, ns, name)
        if key not in self.objects:
            raise NotFound(404, "NotFound", f"{kind} {name} not found")
        current = self.objects[key]
        if resource_version is not None and current["metadata"]["resourceVersion"] != resource_version:
            raise Conflict(409, "Conflict", "the object has been modified")
        updated = change(current)
        updated["metadata"]["resourceVersion"] = str(next(self._rv))
        json.dumps(updated)  # everything written must be JSON
        self.objects[key] = updated
        self.status_writes += 1
        return copy.deepcopy(updated)

    async def patch_status(self, kind: str, ns: str, name: str, patch: dict[str, Any], *,
                           resource_version: str | None = None) -> dict[str, Any]:
        return self._guarded_write(kind, ns, name, resource_version,
                                   lambda current: merge_patch(current, {"status": patch.get("status")}))

    async def json_patch_status(self, kind: str, ns: str, name: str, operations: list[dict[str, Any]], *,
                                resource_version: str | None = None) -> dict[str, Any]:
        def change(current: dict[str, Any]) -> dict[str, Any]:
            updated = copy.deepcopy(current)
            for op in operations:
                apply_operation(updated, op)
            return updated

        return self._guarded_write(kind, ns, name, resource_version, change)

    async def delete_object(self, kind: str, ns: str, name: str) -> None:
        self.objects.pop((kind, ns, name), None)

    async def create_job(self, ns: str, body: dict[str, Any]) -> dict[str, Any]:
        if ("jobs", ns, body["metadata"]["name"]) in self.objects:
            raise Conflict(409, "AlreadyExists", "job exists")
        self.jobs_created.append(body)
        return self.create("jobs", ns, body)

    async def list_jobs(self, ns: str, label_selector: str | None = None) -> tuple[list[dict[str, Any]], str]:
        key, _, value = (label_selector or "").partition("=")
        jobs = [copy.deepcopy(o) for (k, n, _), o in self.objects.items() if k == "jobs" and n == ns
                and (not key or (o["metadata"].get("labels") or {}).get(key) == value)]
        return jobs, "1"

    async def delete_job(self, ns: str, name: str, propagation: str = "Background") -> None:
        self.objects.pop(("jobs", ns, name), None)

    async def list_leases(self, ns: str, label_selector: str | None = None) -> tuple[list[dict[str, Any]], str]:
        return copy.deepcopy(self.leases), "1"

    async def get_configmap(self, ns: str, name: str) -> dict[str, Any]:
        return await self.get_object("configmaps", ns, name)

    async def put_configmap(self, ns: str, name: str, data: dict[str, str] | None = None, *,
                            binary_data: dict[str, str] | None = None, labels: dict[str, str] | None = None,
                            annotations: dict[str, str] | None = None,
                            owner: dict[str, Any] | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"metadata": {"name": name, "labels": dict(labels or {}),
                                             "annotations": dict(annotations or {})}}
        if data:
            body["data"] = dict(data)
        if binary_data:
            body["binaryData"] = dict(binary_data)
        self.objects.pop(("configmaps", ns, name), None)  # replace, like the real client
        return self.create("configmaps", ns, body)

    async def post_event(self, obj: dict[str, Any], *, reason: str, message: str, type: str = "Normal",
                         component: str = "noetl-operator") -> None:
        self.events.append({"object": obj["metadata"]["name"], "reason": reason, "message": message, "type": type})

    async def aclose(self) -> None:
        pass
